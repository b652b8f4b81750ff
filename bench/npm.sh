#!/usr/bin/env bash
# bench/npm.sh - larder's npm registry cache vs verdaccio as a proxy (uplink) of the same upstream, both warm:
#   1. `npm ci` of the test app (13 packages), empty npm cache each run: mean wall time
#   2. packument req/s with wrk: a small abbreviated packument and a ~55 KB full one
#   3. a ~30 MB packument: the first (cold) GET, which includes the rewrite, and warm GETs
#   4. small-packument p99 while other clients download the 30 MB packument in a loop (does it stall others?)
#   5. peak RSS
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN        daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION    wrk duration per run (default 10s)
#   BENCH_C           wrk connections (default 32)
#   BENCH_THREADS     wrk threads (default 2)
#   BENCH_CI_RUNS     npm ci runs per server (default 5)
#   BENCH_HUGE_VERSIONS  versions in the huge packument (default 3200, about 30 MB)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/npm_fixture.sh
. "$BENCH_DIR/../tests/integration/npm_fixture.sh"

DUR=${BENCH_DURATION:-10s}
CONN=${BENCH_C:-32}
WRK_T=${BENCH_THREADS:-2}
CI_RUNS=${BENCH_CI_RUNS:-5}
HUGE_N=${BENCH_HUGE_VERSIONS:-3200}
command -v wrk >/dev/null || fail "wrk not installed (apt-get install wrk)"
[ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"

UP_PORT=$(free_port) # upstream verdaccio
VX_PORT=$(free_port) # verdaccio proxy
LP=$(free_port)      # larder
A='application/vnd.npm.install-v1+json'

# ---- upstream: verdaccio with the test packages and one huge packument ---------------------------------------------
FX=$WORK/fx
UPD=$WORK/upstream
make_npm_packages "$FX"
start_verdaccio "$UPD" "$UP_PORT"
UP_PID=$VERDACCIO_PID
publish_npm_packages "$FX" "$VERDACCIO_URL"
make_npm_lockfile "$FX" "$VERDACCIO_URL"
U=$VERDACCIO_URL
mkdir -p "$UPD/storage/huge-pkg"
"$PY" "$BENCH_DIR/make_huge_packument.py" huge-pkg "$HUGE_N" "$U" "$UPD/storage/huge-pkg/package.json"
huge_bytes=$(curl -sS -o /dev/null -w '%{size_download}' "$U/huge-pkg")
[ "$huge_bytes" -gt 1000000 ] || fail "the upstream does not serve huge-pkg"

# ---- verdaccio as a caching proxy of the upstream ------------------------------------------------------------------
VXD=$WORK/verdaccio-proxy
mkdir -p "$VXD/storage" "$VXD/logs"
cat >"$VXD/config.yaml" <<EOF
storage: $VXD/storage
listen:
  - 127.0.0.1:$VX_PORT
uplinks:
  up:
    url: $U/
    cache: true
    maxage: 10m
auth:
  htpasswd:
    file: $VXD/htpasswd
    max_users: -1
packages:
  '@*/*':
    access: \$all
    proxy: up
  '**':
    access: \$all
    proxy: up
web:
  enable: false
server:
  keepAliveTimeout: 60
log:
  type: file
  path: $VXD/logs/verdaccio.log
  format: json
  level: warn
EOF
"$NPMFX_VERDACCIO" --config "$VXD/config.yaml" >>"$VXD/logs/stderr.log" 2>&1 </dev/null &
VX_PID=$!
track_pid "$VX_PID"
wait_for "verdaccio proxy" 30 verdaccio_up "$VX_PORT" || fail "the verdaccio proxy did not start"

# ---- larder --------------------------------------------------------------------------------------------------------
CFG=$WORK/larder.yaml
CFG_QUOTA=4GiB CFG_IDLE=60s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
npm:
  ttl: 10m
  upstream: $U/
EOF
start_larder "$CFG" "$LP" "$WORK/larder.log"

declare -A REG=([verdaccio]=http://127.0.0.1:$VX_PORT [larder]=$LARDER_URL/npm)
declare -A PID=([verdaccio]=$VX_PID [larder]=$LARDER_PID)
NPMC=$WORK/npmc

ci_once() { # ci_once REGISTRY
    rm -rf "$WORK/app"
    mkdir -p "$WORK/app"
    cp "$FX/app-public/package.json" "$FX/app-public/package-lock.json" "$WORK/app/"
    npm_isolated "$NPMC" ci --prefix "$WORK/app" --registry "$1/" >"$WORK/npm-ci.log" 2>&1 ||
        fail "npm ci via $1 failed: $(tail -5 "$WORK/npm-ci.log")"
    rm -rf "$NPM_LAST_CACHE"
}

# ---- the huge packument, cold: the first GET includes fetching and rewriting it -------------------------------------
declare -A HUGE_COLD HUGE_WARM
for t in verdaccio larder; do
    HUGE_COLD[$t]=$(curl -sS -o /dev/null -w '%{time_total}' "${REG[$t]}/huge-pkg")
done

# ---- warm both -----------------------------------------------------------------------------------------------------
for t in verdaccio larder; do
    log "warming $t"
    ci_once "${REG[$t]}"
    for p in "@larder-test%2fcore" larder-test-docs huge-pkg; do
        curl -sS -o /dev/null -H "Accept: $A" "${REG[$t]}/$p"
        curl -sS -o /dev/null "${REG[$t]}/$p"
    done
done
tarballs_before=$(verdaccio_requests "$UPD" | grep -c '\.tgz$' || true)

# ---- npm ci, warm ----------------------------------------------------------------------------------------------------
declare -A CI
for t in verdaccio larder; do
    log "npm ci x$CI_RUNS via $t"
    start=$(date +%s.%N)
    for _ in $(seq 1 "$CI_RUNS"); do ci_once "${REG[$t]}"; done
    end=$(date +%s.%N)
    CI[$t]=$(awk -v a="$start" -v b="$end" -v n="$CI_RUNS" 'BEGIN { printf "%.3f\n", (b - a) / n }')
done
[ "$tarballs_before" = "$(verdaccio_requests "$UPD" | grep -c '\.tgz$' || true)" ] ||
    log "WARNING: tarballs were fetched upstream during the warm runs"

# ---- the huge packument, warm ---------------------------------------------------------------------------------------
for t in verdaccio larder; do
    HUGE_WARM[$t]=$(for _ in 1 2 3 4 5; do curl -sS -o /dev/null -w '%{time_total}\n' "${REG[$t]}/huge-pkg"; done |
        sort -n | sed -n 3p)
done

# ---- wrk on packuments -----------------------------------------------------------------------------------------------
to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; printf "%.3f\n", n }'
}
declare -A R
run_wrk() { # run_wrk KEY URL [ACCEPT]
    local out=$WORK/wrk.$1.txt
    local hdr=()
    [ -n "${3:-}" ] && hdr=(-H "Accept: $3")
    log "wrk -t$WRK_T -c$CONN -d$DUR --latency ${3:+-H 'Accept: $3'} $2"
    wrk -t"$WRK_T" -c"$CONN" -d"$DUR" --timeout 30s --latency "${hdr[@]}" "$2" >"$out" 2>&1 || fail "wrk: $(cat "$out")"
    R[$1.rps]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    R[$1.p99]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    R[$1.err]=$(awk '/Non-2xx|Socket errors/ { sub(/^ +/, ""); printf "%s; ", $0 }' "$out")
}
for t in verdaccio larder; do
    run_wrk "$t.small" "${REG[$t]}/@larder-test%2fcore" "$A"
    run_wrk "$t.docs" "${REG[$t]}/larder-test-docs"
done

# ---- small packuments while others download the huge one --------------------------------------------------------------
for t in verdaccio larder; do
    (while :; do curl -sS -o /dev/null "${REG[$t]}/huge-pkg" || break; done) &
    L1=$!
    (while :; do curl -sS -o /dev/null "${REG[$t]}/huge-pkg" || break; done) &
    L2=$!
    track_pid "$L1"
    track_pid "$L2"
    run_wrk "$t.busy" "${REG[$t]}/@larder-test%2fcore" "$A"
    kill "$L1" "$L2" 2>/dev/null || true
    stop_pid "$L1"
    stop_pid "$L2"
done
small_size=$(curl -sS -H "Accept: $A" "${REG[larder]}/@larder-test%2fcore" | wc -c)
docs_size=$(curl -sS "${REG[larder]}/larder-test-docs" | wc -c)
huge_size=$(curl -sS "${REG[larder]}/huge-pkg" | wc -c)
rewrite_ms=$(grep -o 'rewriting the full packument of huge-pkg ([0-9]* bytes) took [0-9]* ms' "$WORK/larder.log" |
    awk '{ print $(NF-1) }' | sed -n 1p)

# ---- peak RSS ----------------------------------------------------------------------------------------------------------
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
declare -A RSS
for t in verdaccio larder; do
    RSS[$t]=$(hwm_kb "${PID[$t]}")
    for c in $(ps -o pid= --ppid "${PID[$t]}"); do RSS[$t]=$((RSS[$t] + $(hwm_kb "$c"))); done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'; }
row() { printf '%-44s %12s %12s %8s\n' "$@"; }
echo
echo "larder vs verdaccio (proxy of the same upstream), warm; $(nproc) cores; wrk -t$WRK_T -c$CONN -d$DUR; loopback"
row "" larder verdaccio ratio
row "npm ci, 13 packages, s (mean of $CI_RUNS)" "${CI[larder]}" "${CI[verdaccio]}" "$(ratio "${CI[verdaccio]}" "${CI[larder]}")"
row "abbreviated packument (${small_size} B) req/s" "${R[larder.small.rps]}" "${R[verdaccio.small.rps]}" \
    "$(ratio "${R[larder.small.rps]}" "${R[verdaccio.small.rps]}")"
row "  p99 ms" "${R[larder.small.p99]}" "${R[verdaccio.small.p99]}" "$(ratio "${R[verdaccio.small.p99]}" "${R[larder.small.p99]}")"
row "full packument (${docs_size} B) req/s" "${R[larder.docs.rps]}" "${R[verdaccio.docs.rps]}" \
    "$(ratio "${R[larder.docs.rps]}" "${R[verdaccio.docs.rps]}")"
row "  p99 ms" "${R[larder.docs.p99]}" "${R[verdaccio.docs.p99]}" "$(ratio "${R[verdaccio.docs.p99]}" "${R[larder.docs.p99]}")"
row "small req/s, 2 clients pulling huge-pkg" "${R[larder.busy.rps]}" "${R[verdaccio.busy.rps]}" \
    "$(ratio "${R[larder.busy.rps]}" "${R[verdaccio.busy.rps]}")"
row "  p99 ms" "${R[larder.busy.p99]}" "${R[verdaccio.busy.p99]}" "$(ratio "${R[verdaccio.busy.p99]}" "${R[larder.busy.p99]}")"
row "huge-pkg ($((huge_size / 1048576)) MiB) first GET s" "${HUGE_COLD[larder]}" "${HUGE_COLD[verdaccio]}" \
    "$(ratio "${HUGE_COLD[verdaccio]}" "${HUGE_COLD[larder]}")"
row "huge-pkg warm GET s (median of 5)" "${HUGE_WARM[larder]}" "${HUGE_WARM[verdaccio]}" \
    "$(ratio "${HUGE_WARM[verdaccio]}" "${HUGE_WARM[larder]}")"
row "peak RSS MiB (VmHWM)" "$(awk -v k="${RSS[larder]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="${RSS[verdaccio]}" 'BEGIN { printf "%.1f", k / 1024 }')" "$(ratio "${RSS[verdaccio]}" "${RSS[larder]}")"
echo "larder's rewrite of the huge packument (commit thread): ${rewrite_ms:-?} ms"
for k in larder.small larder.docs larder.busy verdaccio.small verdaccio.docs verdaccio.busy; do
    [ -z "${R[$k.err]}" ] || echo "WARNING $k: ${R[$k.err]}"
done
echo "(ratios > 1.00x: larder better)"
finish >/dev/null
