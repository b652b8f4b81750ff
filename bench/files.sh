#!/usr/bin/env bash
# bench/files.sh - serving cached objects (10 KB and 200 MB HITs): Larder against nginx serving the same files
# statically (sendfile: the ceiling) and against nginx proxy_cache (the usual pull-through cache), alternating runs.
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN       daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION   wrk duration per run of the small object (default 10s)
#   BENCH_BIG_DURATION  wrk duration per run of the large object (default: 20s at c <= 8, 60s above: at c=32 one
#                    response takes 10 s or more on 2 cores, and wrk counts only the responses completed in the run)
#   BENCH_BIG_MB     size of the large object (default 200)
#   BENCH_SMALL_C    connections for the small object (default 32; 0: no 10 KB rows)
#   BENCH_BIG_CS     connection counts for the large object (default "4 32")
#   BENCH_THREADS    wrk threads (default 2)
#   BENCH_ANCHORS    which nginx set-ups to compare with (default "static proxy_cache")
#   BENCH_VERIFY     larder's store.verify_on_read: true / false (default: the daemon's default, true)
#   BENCH_RUNS, BENCH_MAX_RUNS, BENCH_SUMMARY: see bench/lib.sh
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

DUR=${BENCH_DURATION:-10s}
big_dur() { if [ -n "${BENCH_BIG_DURATION:-}" ]; then echo "$BENCH_BIG_DURATION"; elif [ "$1" -le 8 ]; then echo 20s; else echo 60s; fi; }
BIG_MB=${BENCH_BIG_MB:-200}
SMALL_C=${BENCH_SMALL_C:-32}
BIG_CS=${BENCH_BIG_CS:-4 32}
WRK_T=${BENCH_THREADS:-2}
ANCHORS=${BENCH_ANCHORS:-static proxy_cache}
command -v wrk >/dev/null || fail "wrk not installed (apt-get install wrk)"
[ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"

OP=$(free_port) # origin
SP=$(free_port) # nginx static, the same files
XP=$(free_port) # nginx proxy_cache
LP=$(free_port) # larder

# ---- origin -------------------------------------------------------------------------------------------------------
ORIG=$WORK/origin
make_file "$ORIG/root/small.bin" 10240
log "generating a ${BIG_MB} MB object"
head -c "${BIG_MB}M" /dev/urandom >"$ORIG/root/big.bin"
SMALL_SHA=$(sha256_file "$ORIG/root/small.bin")
BIG_SHA=$(sha256_file "$ORIG/root/big.bin")
start_nginx "$ORIG" "$OP"

# ---- nginx static: the same files from disk, as fast as nginx serves anything (the ceiling) ----------------------
NS=$WORK/nginx-static
mkdir -p "$NS/tmp" "$NS/logs"
{
    NGINX_WORKERS=auto nginx_common_main "$NS"
    cat <<EOF
    sendfile on;
    tcp_nopush on;
    server {
        listen 127.0.0.1:$SP;
        location /files/origin/ {
            alias $ORIG/root/;
            add_header X-Cache-Status HIT;
        }
    }
}
EOF
} >"$NS/nginx.conf"
NGINX_WAIT_PORTS=$SP run_nginx "$NS"
NGINX_STATIC_PID=$NGINX_PID

# ---- nginx reverse proxy with proxy_cache (the usual pull-through cache set-up) --------------------------------------
NX=$WORK/nginx-cache
start_nginx_proxy_cache "$NX" "$XP" "$OP" 4g
NGINX_CACHE_PID=$NGINX_PID

# ---- larder -------------------------------------------------------------------------------------------------------
CFG=$WORK/larder.yaml
CFG_QUOTA=4GiB CFG_IDLE=60s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$OP/
EOF
if [ -n "${BENCH_VERIFY:-}" ]; then printf 'store:\n  verify_on_read: %s\n' "$BENCH_VERIFY" >>"$CFG"; fi
start_larder "$CFG" "$LP" "$WORK/larder.log"

declare -A BASE=([static]=http://127.0.0.1:$SP/files/origin [proxy_cache]=http://127.0.0.1:$XP/files/origin
    [larder]=$LARDER_URL/files/origin)
declare -A LABEL=([static]="nginx static" [proxy_cache]="nginx proxy_cache")

# ---- warm the caches and check every server answers from cache with the right bytes ----------------------------------
warm() { # warm BASE HEADER NAME
    local base=$1 hdr=$2 f v
    for f in small big; do
        curl -sS -o /dev/null "$base/$f.bin" || fail "warming $base/$f.bin failed"
        # the commit (hash check, fsync, rename) may finish a moment after the first client got its last byte
        for _ in $(seq 1 60); do
            v=$(http_header "$base/$f.bin" "$hdr")
            [ "$v" = HIT ] && break
            sleep 0.5
        done
        [ "$v" = HIT ] || fail "$3 does not serve $f.bin from cache after warming ($hdr: $v)"
    done
    [ "$(curl -sS "$base/small.bin" | sha256_stdin)" = "$SMALL_SHA" ] || fail "$3: wrong bytes for small.bin"
    [ "$(curl -sS "$base/big.bin" | sha256_stdin)" = "$BIG_SHA" ] || fail "$3: wrong bytes for big.bin"
}
log "warming nginx proxy_cache and larder, checking nginx static"
warm "${BASE[static]}" X-Cache-Status "nginx static"
warm "${BASE[proxy_cache]}" X-Cache-Status "nginx proxy_cache"
warm "${BASE[larder]}" X-Larder-Cache larder

# ---- one wrk run = one measurement; the run's other figure (p99) is kept for a bench_record row ----------------------
# W_FILE / W_C / W_DUR / W_FIELD / W_KEEP: the workload of the current row, set before each bench_pair
run_wrk() { # run_wrk SERVER -> prints W_FIELD; appends the run's p99 to $WORK/p99.$W_KEEP.SERVER
    local server=$1 out=$WORK/wrk.$W_KEEP.$1.$SECONDS.txt url=${BASE[$1]}/$W_FILE
    log "wrk -t$WRK_T -c$W_C -d$W_DUR --latency $url"
    wrk -t"$WRK_T" -c"$W_C" -d"$W_DUR" --timeout 60s --latency "$url" >"$out" 2>&1 || fail "wrk failed: $(cat "$out")"
    local e n
    e=$(wrk_field "$out" errors)
    [ "$e" = 0 ] || fail "wrk reported $e errors (socket errors or non-2xx) against $server: $(cat "$out")"
    # a p99 over fewer responses than connections is one client's luck: said under the table
    n=$(awk '/ requests in / { print $1 }' "$out")
    [ "${n:-0}" -gt 0 ] || fail "no response completed in $W_DUR with $W_C connections against $server: raise BENCH_BIG_DURATION"
    if [ "$n" -lt "$W_C" ]; then echo "$W_FILE c=$W_C $server: $n responses" >>"$WORK/short_runs"; fi
    wrk_field "$out" p99ms >>"$WORK/p99.$W_KEEP.$server"
    wrk_field "$out" "$W_FIELD"
}
m_static() { run_wrk static; }
m_proxy_cache() { run_wrk proxy_cache; }
m_larder() { run_wrk larder; }

workload() { # workload FILE CONNECTIONS DURATION FIELD WHAT UNIT: a throughput row and a p99 row (the same runs) per anchor
    local file=$1 c=$2 dur=$3 field=$4 what=$5 unit=$6 a
    for a in $ANCHORS; do
        W_FILE=$file W_C=$c W_DUR=$dur W_FIELD=$field W_KEEP=$file.$c.$a
        rm -f "$WORK/p99.$W_KEEP".*
        bench_pair "$what $unit (c=$c)" "$unit" higher "${LABEL[$a]}" "m_$a" m_larder
        bench_record "$what p99 (c=$c)" ms lower "${LABEL[$a]}" "$(cat "$WORK/p99.$W_KEEP.$a")" \
            "$(cat "$WORK/p99.$W_KEEP.larder")"
    done
}

bench_note "$(nproc) cores shared by wrk (-t$WRK_T), nginx (workers = cores) and Larder (threads = cores); loopback; wrk -d$DUR (10 KB) / -d$(big_dur 4) at c<=8, -d$(big_dur 32) above (${BIG_MB} MB) per run; static = nginx sendfile of the same files on disk${BENCH_VERIFY:+; larder store.verify_on_read: $BENCH_VERIFY}"
if [ "$SMALL_C" -gt 0 ]; then workload small.bin "$SMALL_C" "$DUR" reqs "10 KB" req/s; fi
for c in $BIG_CS; do
    workload big.bin "$c" "$(big_dur "$c")" mibs "${BIG_MB} MB" MiB/s
done

# ---- peak RSS (VmHWM) over the whole run, warm-up included ------------------------------------------------------------
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
nginx_hwm_mib() { # the master and all its children
    local kb w
    kb=$(hwm_kb "$1")
    for w in $(ps -o pid= --ppid "$1"); do kb=$((kb + $(hwm_kb "$w"))); done
    awk -v k="$kb" 'BEGIN { printf "%.1f\n", k / 1024 }'
}
larder_mib=$(awk -v k="$(hwm_kb "$LARDER_PID")" 'BEGIN { printf "%.1f\n", k / 1024 }')
for a in $ANCHORS; do
    if [ "$a" = static ]; then pid=$NGINX_STATIC_PID; else pid=$NGINX_CACHE_PID; fi
    bench_record "peak RSS (VmHWM)" MiB lower "${LABEL[$a]}" "$(nginx_hwm_mib "$pid")" "$larder_mib"
done
if [ -s "$WORK/short_runs" ]; then
    bench_note "runs that completed fewer responses than connections (their p99 is a few clients' luck; raise BENCH_BIG_DURATION): $(sort "$WORK/short_runs" | uniq -c | awk '{ $1 = $1 "x"; print }' | paste -sd ';' -)"
fi
if [ "${KEEP_WORK:-0}" = 1 ]; then log "raw wrk output: $WORK/wrk.*.txt"; fi
# shellcheck disable=SC2034 # read by the EXIT trap in lib.sh
T_DONE=1
