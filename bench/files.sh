#!/usr/bin/env bash
# bench/files.sh - larder vs nginx proxy_cache on the same cached objects (10 KB and 200 MB), served from cache.
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN       daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION   wrk duration per run (default 10s)
#   BENCH_BIG_MB     size of the large object (default 200)
#   BENCH_SMALL_C    connections for the small object (default 32)
#   BENCH_BIG_C      connections for the large object (default 4)
#   BENCH_THREADS    wrk threads (default 2)
#   BENCH_TARGETS    which servers to measure (default "nginx larder")
#   BENCH_VERIFY     larder's store.verify_on_read: true / false (default: the daemon's default, true)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# reuse the integration helpers: free_port, start_nginx/run_nginx, start_larder, PID tracking and cleanup
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"

DUR=${BENCH_DURATION:-10s}
BIG_MB=${BENCH_BIG_MB:-200}
SMALL_C=${BENCH_SMALL_C:-32}
BIG_C=${BENCH_BIG_C:-4}
WRK_T=${BENCH_THREADS:-2}
TARGETS=${BENCH_TARGETS:-nginx larder}
has_target() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }
command -v wrk >/dev/null || fail "wrk not installed (apt-get install wrk)"
if has_target larder; then [ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"; fi

OP=$(free_port) # origin
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

# ---- nginx reverse proxy with proxy_cache (the usual pull-through cache set-up) --------------------------------------
NX=$WORK/nginx-cache
mkdir -p "$NX/cache" "$NX/tmp" "$NX/logs"
{
    NGINX_WORKERS=auto nginx_common_main "$NX"
    cat <<EOF
    sendfile on;
    tcp_nopush on;
    proxy_cache_path $NX/cache levels=1:2 keys_zone=files:10m max_size=4g inactive=7d use_temp_path=off;
    server {
        listen 127.0.0.1:$XP;
        location /files/origin/ {
            proxy_pass http://127.0.0.1:$OP/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache files;
            proxy_cache_valid 200 1d;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10m;
            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
            proxy_cache_background_update on;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
} >"$NX/nginx.conf"
NGINX_WAIT_PORTS=$XP run_nginx "$NX"
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
LARDER_URL=http://127.0.0.1:$LP
if has_target larder; then start_larder "$CFG" "$LP" "$WORK/larder.log"; fi

NGX=http://127.0.0.1:$XP/files/origin
LDR=$LARDER_URL/files/origin

# ---- warm both caches and check they serve from cache ----------------------------------------------------------------
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
log "warming nginx proxy_cache and larder"
has_target nginx && warm "$NGX" X-Cache-Status nginx
has_target larder && warm "$LDR" X-Larder-Cache larder

# ---- wrk runs ------------------------------------------------------------------------------------------------------
to_ms() { # "1.23ms" / "850.00us" / "1.20s" / "2.00m" -> ms
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f\n", n }'
}
to_mib() { # "1.23GB" / "512.00MB" / "10.0KB" / "100B" -> MiB (wrk uses binary units)
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "GB") n *= 1024; else if (u == "KB") n /= 1024; else if (u == "B") n /= 1048576; else if (u == "TB") n *= 1048576
        printf "%.1f\n", n }'
}

declare -A R
for k in larder.small larder.big nginx.small nginx.big; do R[$k.rps]=-; R[$k.mbs]=-; R[$k.p99]=-; R[$k.err]=; done
run_wrk() { # run_wrk KEY URL CONNECTIONS
    local key=$1 url=$2 c=$3 out=$WORK/wrk.$1.txt
    log "wrk -t$WRK_T -c$c -d$DUR --latency $url"
    wrk -t"$WRK_T" -c"$c" -d"$DUR" --timeout 30s --latency "$url" >"$out" 2>&1 || fail "wrk failed: $(cat "$out")"
    R[$key.rps]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    R[$key.mbs]=$(to_mib "$(awk '/^Transfer\/sec:/ { print $2 }' "$out")")
    R[$key.p99]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    R[$key.err]=$(awk '/Non-2xx|Socket errors/ { sub(/^ +/, ""); printf "%s; ", $0 }' "$out")
}
for target in nginx larder; do
    has_target "$target" || continue
    if [ "$target" = nginx ]; then base=$NGX; else base=$LDR; fi
    run_wrk "$target.small" "$base/small.bin" "$SMALL_C"
    run_wrk "$target.big" "$base/big.bin" "$BIG_C"
done

# ---- peak RSS (VmHWM) --------------------------------------------------------------------------------------------------
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
nginx_hwm=$(hwm_kb "$NGINX_CACHE_PID")
for w in $(ps -o pid= --ppid "$NGINX_CACHE_PID"); do nginx_hwm=$((nginx_hwm + $(hwm_kb "$w"))); done
larder_hwm=0
if has_target larder; then larder_hwm=$(hwm_kb "$LARDER_PID"); fi

# ---- table ---------------------------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a + 0 == 0 || b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'; }
row() { printf '%-28s %14s %14s %10s\n' "$@"; }
echo
echo "larder vs nginx proxy_cache, objects served from cache; $(nproc) cores; wrk -t$WRK_T -d$DUR; loopback${BENCH_VERIFY:+; larder store.verify_on_read: $BENCH_VERIFY}"
row "" larder nginx ratio
row "10 KB  req/s   (c=$SMALL_C)" "${R[larder.small.rps]}" "${R[nginx.small.rps]}" "$(ratio "${R[larder.small.rps]}" "${R[nginx.small.rps]}")"
row "10 KB  MiB/s" "${R[larder.small.mbs]}" "${R[nginx.small.mbs]}" "$(ratio "${R[larder.small.mbs]}" "${R[nginx.small.mbs]}")"
row "10 KB  p99 ms" "${R[larder.small.p99]}" "${R[nginx.small.p99]}" "$(ratio "${R[nginx.small.p99]}" "${R[larder.small.p99]}")"
row "${BIG_MB} MB req/s   (c=$BIG_C)" "${R[larder.big.rps]}" "${R[nginx.big.rps]}" "$(ratio "${R[larder.big.rps]}" "${R[nginx.big.rps]}")"
row "${BIG_MB} MB MiB/s" "${R[larder.big.mbs]}" "${R[nginx.big.mbs]}" "$(ratio "${R[larder.big.mbs]}" "${R[nginx.big.mbs]}")"
row "${BIG_MB} MB p99 ms" "${R[larder.big.p99]}" "${R[nginx.big.p99]}" "$(ratio "${R[nginx.big.p99]}" "${R[larder.big.p99]}")"
mib() { awk -v k="$1" 'BEGIN { if (k + 0 == 0) print "-"; else printf "%.1f\n", k / 1024 }'; }
row "peak RSS MiB (VmHWM)" "$(mib "$larder_hwm")" "$(mib "$nginx_hwm")" "$(ratio "$nginx_hwm" "$larder_hwm")"
echo "ratio: larder/nginx for req/s and MiB/s; nginx/larder for p99 and RSS (so > 1.00x means larder is better)"
for k in larder.small larder.big nginx.small nginx.big; do
    [ -z "${R[$k.err]}" ] || echo "WARNING $k: ${R[$k.err]}"
done
if [ "${KEEP_WORK:-0}" = 1 ]; then echo "raw wrk output: $WORK/wrk.*.txt"; fi
# shellcheck disable=SC2034 # read by the EXIT trap in lib.sh
T_DONE=1
