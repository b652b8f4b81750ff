#!/usr/bin/env bash
# bench/store.sh - the store at scale (issue 16, goal 5): `larder serve` start-up time, /-/api/v1/stats latency and
# the cost of an eviction pass, on a store of BENCH_STORE_ENTRIES entries (default 1 M) over pypi, npm, apt, gems,
# oci and files. See bench/README.md ("store"). Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN             daemon binary (default: <repo>/build/larder)
#   LARDER_STORE_FILL      the filler (default: larder-store-fill beside LARDER_BIN; build it with
#                          cmake -DLARDER_BENCH_TOOLS=ON ... && cmake --build ... --target larder-store-fill)
#   BENCH_STORE_ENTRIES    entries of the big store (default 1000000)
#   BENCH_STORE_SMALL      entries of the small store, the reference of the eviction rows (default 100000)
#   BENCH_STORE_CACHE      where filled stores are kept between runs (default /var/tmp/larder-bench-store-<uid>);
#                          a filled store is never changed: every run works on a copy (db copied, blobs hard-linked)
#   BENCH_STATS_REQUESTS   /-/api/v1/stats requests per run (default 200)
#   BENCH_EVICT_RUNS       eviction passes per row and side (default 3; each needs a fresh copy of the store)
#   BENCH_STORE_PARTS      which measurements (default "startup stats evict")
#   BENCH_EVICT_K          entries the three passes evict (default "1000 10000 100000"; the first two on both
#                          stores, the third on the big one; files holds 1/6 of each store)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

N=${BENCH_STORE_ENTRIES:-1000000}
SMALL=${BENCH_STORE_SMALL:-100000}
FILL=${LARDER_STORE_FILL:-$(dirname "$LARDER_BIN")/larder-store-fill}
CACHE=${BENCH_STORE_CACHE:-/var/tmp/larder-bench-store-$(id -u)}
STATS_N=${BENCH_STATS_REQUESTS:-200}
EVICT_RUNS=${BENCH_EVICT_RUNS:-3}
EVICT_K=${BENCH_EVICT_K:-1000 10000 100000} # entries per pass: K1 and K2 on both stores, K3 on the big one
PARTS=${BENCH_STORE_PARTS:-startup stats evict}
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
GEN=1 # bump when bench/store_fill.c changes what it writes: a cached store of another generation is not reused
[ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"
[ -x "$FILL" ] || fail "larder-store-fill not found: $FILL (cmake -DLARDER_BENCH_TOOLS=ON, target larder-store-fill)"

# filled COUNT -> the cached data_dir of COUNT entries (filled through the store's API the first time)
filled() {
    local n=$1 dir=$CACHE/n$1-g$GEN
    if [ ! -f "$dir/complete" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        log "filling a store of $n entries into $dir (once; later runs reuse it)"
        nice "$FILL" "$dir/data" "$n" >"$dir/fill.out" 2>"$dir/fill.err" || fail "larder-store-fill: $(tail -3 "$dir/fill.err")"
        cat "$dir/fill.out" >&2
        touch "$dir/complete"
    fi
    echo "$dir/data"
}

# copy_store SRC DEST - a working copy: the metadata copied, the blob files hard-linked (the daemon never writes a
# blob file in place: eviction unlinks the copy's name only)
copy_store() {
    rm -rf "$2"
    mkdir -p "$2/tmp"
    cp -a "$1/db" "$2/db"
    cp -al "$1/blobs" "$2/blobs" 2>/dev/null || cp -a "$1/blobs" "$2/blobs"
}

OP=$(free_port) # origin of the files protocol (the fetch that makes a quota evict)
LP=$(free_port)
ORIG=$WORK/origin
for i in $(seq 1 200); do make_file "$ORIG/root/new$i.bin" 4096; done
start_nginx "$ORIG" "$OP"

# config DATA [FILES_QUOTA] -> a config file for that data_dir
config() {
    local cfg
    cfg=$WORK/larder.$(basename "$1").yaml
    write_config "$cfg" "$LP" "$1"
    {
        echo "files:"
        [ -n "${2:-}" ] && echo "  quota: $2"
        echo "  mirrors:"
        echo "    - name: origin"
        echo "      url: http://127.0.0.1:$OP/"
    } >>"$cfg"
    echo "$cfg"
}
export CFG_QUOTA=0 # write_config's quota.total: none (files.quota makes the evictions)

# start_daemon CFG LOG - start_larder with a deadline that suits a big store (a daemon that reads the whole
# metadata before answering takes seconds at 1 M entries), then, when the daemon verifies its metadata beside serving,
# wait for that to end: the measurements are of the steady state
VERIFY_LOGGED=0
grep -q "metadata verified" "$LARDER_BIN" && VERIFY_LOGGED=1
start_daemon() {
    LARDER_LOG=$2
    LARDER_URL="http://127.0.0.1:$LP"
    "$LARDER_BIN" serve --config "$1" 2>>"$LARDER_LOG" &
    LARDER_PID=$!
    track_pid "$LARDER_PID"
    local deadline=$((SECONDS + 300))
    until curl -fsS --max-time 2 "$LARDER_URL/-/health" >/dev/null 2>&1 &&
        { [ "$VERIFY_LOGGED" = 0 ] || grep -q "metadata verified" "$LARDER_LOG"; }; do
        pid_alive "$LARDER_PID" || fail "larder exited during start-up (config $1)"
        [ "$SECONDS" -lt "$deadline" ] || fail "larder did not start within 300 s"
        sleep 0.1
    done
}

# seconds from the spawn of `larder serve --config CFG` to the first 200 from /-/health; the daemon is stopped after
cat >"$WORK/startup.py" <<'EOF'
import http.client, os, signal, subprocess, sys, time
cfg, port, binary, logf = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(logf, "ab") as lf:
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "serve", "--config", cfg], stdout=lf, stderr=lf)
    up = None
    while time.monotonic() - t0 < 120:
        if p.poll() is not None:
            sys.exit("larder exited during start-up, see " + logf)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/-/health")
            if c.getresponse().status == 200:
                up = time.monotonic() - t0
                break
        except OSError:
            pass
        time.sleep(0.005)
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    if up is None:
        sys.exit("no answer from /-/health within 120 s")
    print("%.3f" % up)
EOF
startup() { "$PY" "$WORK/startup.py" "$1" "$LP" "$LARDER_BIN" "$WORK/startup.log"; }

# p50 and p99 (ms) of STATS_N sequential GET /-/api/v1/stats on one connection
cat >"$WORK/stats.py" <<'EOF'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
ts = []
for _ in range(n):
    t = time.monotonic()
    c.request("GET", "/-/api/v1/stats")
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("stats: HTTP %d" % r.status)
    ts.append((time.monotonic() - t) * 1000)
ts.sort()
print("%.3f %.3f" % (ts[len(ts) // 2], ts[min(len(ts) - 1, int(len(ts) * 0.99))]))
EOF

BIG_SRC=$(filled "$N")
SMALL_SRC=$(filled "$SMALL")
EMPTY=$WORK/empty
BIG=$WORK/big
mkdir -p "$EMPTY"
copy_store "$BIG_SRC" "$BIG"
CFG_EMPTY=$(config "$EMPTY")
CFG_BIG=$(config "$BIG")
bench_note "store: $N entries (pypi, npm, apt, gems, oci, files: N/6 each, files the newest), $(find "$BIG/blobs" -type f | wc -l) blob files (16 entries per blob), metadata $(du -sh "$BIG/db" | cut -f1); page cache warm"
# the first open of a copy replays the filler's write-ahead log: not measured
startup "$CFG_EMPTY" >/dev/null
startup "$CFG_BIG" >/dev/null

# ---- start-up: empty store (the anchor) vs the big store -----------------------------------------------------------
startup_empty() { startup "$CFG_EMPTY"; }
startup_big() { startup "$CFG_BIG"; }
part startup && bench_pair "start-up to /-/health, empty -> $N entries" s lower "empty store" startup_empty startup_big

# ---- /-/api/v1/stats latency ---------------------------------------------------------------------------------------
stats_runs() { # CFG -> "p50s|p99s" over BENCH_RUNS runs
    local p50s="" p99s="" out
    start_daemon "$1" "$WORK/stats.log"
    for _ in $(seq 1 "${BENCH_RUNS:-5}"); do
        out=$("$PY" "$WORK/stats.py" "$LP" "$STATS_N")
        p50s="$p50s ${out% *}"
        p99s="$p99s ${out#* }"
    done
    stop_larder
    echo "$p50s|$p99s"
}
if part stats; then
    e=$(stats_runs "$CFG_EMPTY") || fail "stats runs (empty store) failed"
    b=$(stats_runs "$CFG_BIG") || fail "stats runs ($N entries) failed"
    [ -n "$e" ] && [ -n "$b" ] || fail "stats runs gave nothing"
    bench_record "stats p50 ($STATS_N requests), empty -> $N entries" ms lower "empty store" "${e%|*}" "${b%|*}"
    bench_record "stats p99 ($STATS_N requests), empty -> $N entries" ms lower "empty store" "${e#*|}" "${b#*|}"
fi

# ---- eviction passes ------------------------------------------------------------------------------------------------
# evict_once SRC K -> the ms of the eviction pass that a files quota makes evict about K files entries: a fresh copy
# is started without a quota (to read files' bytes and entries), then with files.quota = bytes - K * average entry
# size - the new object, and one new files object is fetched. The number is the pass's own time from its log line
# ("store: eviction pass: E entries ..., M ms"; with a daemon too old to log it, the time of the request that made it
# evict); the number of entries it evicted is logged to stderr.
echo 0 >"$WORK/evict.seq" # (a file: evict_once runs in command substitutions)
evict_once() {
    local src=$1 k=$2 d=$WORK/evict cfg st bytes entries quota line req n EVICT_SEQ
    EVICT_SEQ=$(($(cat "$WORK/evict.seq") + 1))
    echo "$EVICT_SEQ" >"$WORK/evict.seq"
    copy_store "$src" "$d"
    cfg=$(config "$d")
    start_daemon "$cfg" "$WORK/evict.$EVICT_SEQ.a.log"
    st=$(curl -fsS "$LARDER_URL/-/api/v1/stats")
    stop_larder
    bytes=$(echo "$st" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["protocols"]["files"]["bytes"])')
    entries=$(echo "$st" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["protocols"]["files"]["entries"])')
    quota=$((bytes - k * bytes / entries - 4096 + bytes / entries / 2))
    cfg=$(config "$d" "$quota")
    start_daemon "$cfg" "$WORK/evict.$EVICT_SEQ.b.log"
    req=$(curl -fsS -o /dev/null -w '%{time_total}' "$LARDER_URL/files/origin/new$EVICT_SEQ.bin") ||
        fail "fetch of new$EVICT_SEQ.bin"
    stop_larder
    n=$(grep -c 'store: evicted files ' "$WORK/evict.$EVICT_SEQ.b.log" || true)
    line=$(grep -o 'eviction pass: [0-9]* entries.*ms' "$WORK/evict.$EVICT_SEQ.b.log" || true)
    [ "$(echo "$line" | grep -c .)" -le 1 ] || fail "more than one eviction pass in $WORK/evict.$EVICT_SEQ.b.log"
    log "$(basename "$(dirname "$src")"), K=$k: $n entries evicted; the request took $req s; ${line:-no pass line}"
    [ "$n" -gt 0 ] || fail "nothing evicted, see $WORK/evict.$EVICT_SEQ.b.log"
    if [ -n "$line" ]; then
        echo "$line" | sed 's/.* \([0-9]*\) ms$/\1/'
    else # a daemon older than the pass's log line: the request that made it evict
        "$PY" -c "print(round($req * 1000))"
    fi
}
evict_runs() { # SRC K -> space-separated ms
    local v="" one
    for _ in $(seq 1 "$EVICT_RUNS"); do
        one=$(evict_once "$1" "$2") || fail "eviction of $2 entries in $1 failed"
        [ -n "$one" ] || fail "eviction of $2 entries in $1 gave nothing"
        v="$v $one"
    done
    echo "$v"
}
kname() { if [ "$1" -ge 1000 ]; then echo "$(($1 / 1000))k"; else echo "$1"; fi; }
if part evict; then
    read -r K1 K2 K3 <<<"$EVICT_K"
    for k in "$K1" "$K2"; do
        s=$(evict_runs "$SMALL_SRC" "$k") || fail "eviction runs failed"
        b=$(evict_runs "$BIG_SRC" "$k") || fail "eviction runs failed"
        bench_record "eviction pass of ~$(kname "$k") files entries, $SMALL -> $N entries" ms lower "$SMALL-entry store" "$s" "$b"
        [ "$k" = "$K2" ] && b2=$b
    done
    b3=$(evict_runs "$BIG_SRC" "$K3") || fail "eviction runs failed"
    x=""
    for v in $b2; do x="$x $((v * K3 / K2))"; done
    bench_record "eviction pass of ~$(kname "$K3") files entries ($N entries) vs $((K3 / K2)) x the ~$(kname "$K2") pass" ms lower \
        "$((K3 / K2)) x the $(kname "$K2") pass" "$x" "$b3"
    bench_note "eviction rows: lower is better; ratio ~1.00x = the pass costs what it evicts, whatever the store's size"
fi

finish
