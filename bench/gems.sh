#!/usr/bin/env bash
# bench/gems.sh - `bundle install` of the test app warm through larder (as bundler's mirror) vs straight from the
# local upstream (nginx serving the compact index and the gems), plus wrk on /versions and /info, peak RSS.
# Every comparison runs through bench/lib.sh: alternating runs (upstream, larder, ...), median and spread of each side.
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN         daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION     wrk duration per run (default 5s)
#   BENCH_C            wrk connections (default 32)
#   BENCH_RUNS         runs per side of every row (default 5, bench/lib.sh); BENCH_MAX_RUNS (15)
#   BENCH_BUNDLE_RUNS  bundle installs per side (default: BENCH_RUNS)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/gems_fixture.sh
. "$BENCH_DIR/../tests/integration/gems_fixture.sh"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"
# shellcheck source=measure.sh
. "$BENCH_DIR/measure.sh"

DUR=${BENCH_DURATION:-5s}
CONN=${BENCH_C:-32}
RUNS=${BENCH_BUNDLE_RUNS:-$BENCH_RUNS}
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
for t in direct larder; do
    log "warming: bundle install via $t"
    bundle_install "$WORK/client-$t" "$REPO/app" "${MIRROR[$t]}" >"$WORK/warm-$t.log" 2>&1 || fail "bundle install via $t failed"
done
# bundle T - one `bundle install` of the test app through T with bundler's caches reset; prints seconds
bundle_once() {
    gems_client_reset "$WORK/client-$1"
    bundle_install "$WORK/client-$1" "$REPO/app" "${MIRROR[$1]}" >"$WORK/run-$1.log" 2>&1 ||
        fail "bundle install via $1 failed: $(tail -5 "$WORK/run-$1.log")"
}
bundle_direct() { bench_time bundle_once direct; }
bundle_larder() { bench_time bundle_once larder; }
bench_note "warm; the anchor is nginx serving the upstream's static files, the fastest possible origin, not a cache; $(nproc) cores; wrk -t2 -c$CONN -d$DUR, one run per measurement; loopback"
BENCH_RUNS=$RUNS bench_pair "bundle install of the test app" s lower upstream bundle_direct bundle_larder

get() { bench_wrk "$1" "$2" reqs -t2 -c"$CONN" -d"$DUR" "${MIRROR[$2]}$3"; }
versions_direct() { get versions direct /versions; }
versions_larder() { get versions larder /versions; }
info_direct() { get info direct /info/larder_test_core; }
info_larder() { get info larder /info/larder_test_core; }
bench_pair "/versions req/s" req/s higher upstream versions_direct versions_larder
bench_wrk_record versions "/versions p99" ms lower upstream direct larder p99ms
bench_pair "/info/larder_test_core req/s" req/s higher upstream info_direct info_larder
bench_wrk_record info "/info/larder_test_core p99" ms lower upstream direct larder p99ms
bench_wrk_errors versions direct larder
bench_wrk_errors info direct larder
bench_note "peak RSS (VmHWM): larder $(bench_kib_mib "$(bench_hwm_kb "$LARDER_PID")") MiB, the upstream nginx $(bench_kib_mib "$(bench_hwm_tree_kb "$NGINX_UP_PID")") MiB (no ratio: nginx serves static files, it is no cache)"
finish >/dev/null
