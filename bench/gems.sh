#!/usr/bin/env bash
# bench/gems.sh - `bundle install` of the test app warm through larder (as bundler's mirror) vs straight from the
# local upstream (nginx serving the compact index and the gems), plus wrk on /versions and /info, peak RSS.
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN         daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION     wrk duration per run (default 10s)
#   BENCH_C            wrk connections (default 32)
#   BENCH_BUNDLE_RUNS  bundle installs per setting (default 5)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/gems_fixture.sh
. "$BENCH_DIR/../tests/integration/gems_fixture.sh"

DUR=${BENCH_DURATION:-10s}
CONN=${BENCH_C:-32}
RUNS=${BENCH_BUNDLE_RUNS:-5}
command -v wrk >/dev/null || fail "wrk not installed (apt-get install wrk)"
[ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"

GP=$(free_port)
LP=$(free_port)
REPO=$WORK/repo
make_gems_repo "$REPO"
start_gems_upstream "$REPO" "$GP"
NGINX_UP_PID=$NGINX_PID
U=$GEMS_UPSTREAM_URL

CFG=$WORK/larder.yaml
CFG_QUOTA=4GiB CFG_IDLE=60s write_config "$CFG" "$LP" "$WORK/data"
printf 'gems:\n  ttl: 10m\n  upstream: %s/\n' "$U" >>"$CFG"
start_larder "$CFG" "$LP" "$WORK/larder.log"
G=$LARDER_URL/gems

declare -A MIRROR=([direct]=$U [larder]=$G)
declare -A BI
for t in direct larder; do
    C=$WORK/client-$t
    bundle_install "$C" "$REPO/app" "${MIRROR[$t]}" >"$WORK/warm-$t.log" 2>&1 || fail "bundle install via $t failed"
    log "bundle install x$RUNS via $t"
    start=$(date +%s.%N)
    for _ in $(seq 1 "$RUNS"); do
        gems_client_reset "$C"
        bundle_install "$C" "$REPO/app" "${MIRROR[$t]}" >"$WORK/run-$t.log" 2>&1 || fail "bundle install via $t failed"
    done
    BI[$t]=$(awk -v a="$start" -v b="$(date +%s.%N)" -v n="$RUNS" 'BEGIN { printf "%.3f\n", (b - a) / n }')
done

declare -A R
run_wrk() { # KEY URL
    wrk -t2 -c"$CONN" -d"$DUR" --latency "$2" >"$WORK/wrk.$1.txt" 2>&1 || fail "wrk: $(cat "$WORK/wrk.$1.txt")"
    R[$1.rps]=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.$1.txt")
    R[$1.p99]=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.$1.txt")
}
for t in direct larder; do
    run_wrk "$t.versions" "${MIRROR[$t]}/versions"
    run_wrk "$t.info" "${MIRROR[$t]}/info/larder_test_core"
done
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
nginx_hwm=$(hwm_kb "$NGINX_UP_PID")
for w in $(ps -o pid= --ppid "$NGINX_UP_PID"); do nginx_hwm=$((nginx_hwm + $(hwm_kb "$w"))); done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'; }
row() { printf '%-40s %12s %14s %8s\n' "$@"; }
echo
echo "bundle install through larder vs straight from the upstream (nginx), warm; $(nproc) cores; loopback"
row "" larder "upstream" ratio
row "bundle install of the test app, s (mean $RUNS)" "${BI[larder]}" "${BI[direct]}" "$(ratio "${BI[direct]}" "${BI[larder]}")"
row "/versions req/s" "${R[larder.versions.rps]}" "${R[direct.versions.rps]}" "$(ratio "${R[larder.versions.rps]}" "${R[direct.versions.rps]}")"
row "  p99" "${R[larder.versions.p99]}" "${R[direct.versions.p99]}" ""
row "/info/larder_test_core req/s" "${R[larder.info.rps]}" "${R[direct.info.rps]}" "$(ratio "${R[larder.info.rps]}" "${R[direct.info.rps]}")"
row "  p99" "${R[larder.info.p99]}" "${R[direct.info.p99]}" ""
row "peak RSS MiB (VmHWM)" "$(awk -v k="$(hwm_kb "$LARDER_PID")" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="$nginx_hwm" 'BEGIN { printf "%.1f", k / 1024 }')" ""
echo "(ratios > 1.00x: larder better; the upstream is nginx serving static files, the fastest possible origin)"
finish >/dev/null
