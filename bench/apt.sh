#!/usr/bin/env bash
# bench/apt.sh - larder's apt cache vs apt-cacher-ng, both as apt's HTTP proxy for the same signed repository, warm:
#   1. `apt-get update` with empty lists
#   2. the download phase: `apt-get install --download-only` of the test set with empty archives
#   3. wrk through each proxy (absolute-URI request lines): the Release file (a small index) and a .deb
#   4. peak RSS
# Every comparison runs through bench/lib.sh: alternating runs (apt-cacher-ng, larder, ...), median and spread of
# each side, sub-second rows repeated until their spread is below 10 %. See bench/README.md. Loopback only; every
# process it starts is stopped at exit.
#
#   LARDER_BIN       daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION   wrk duration per run (default 5s)
#   BENCH_C          wrk connections (default 32)
#   BENCH_THREADS    wrk threads (default 2)
#   BENCH_RUNS       runs per side of every row (default 5, bench/lib.sh); BENCH_MAX_RUNS (15)
#   BENCH_APT_RUNS   apt-get runs per side for the two apt-get rows (default: BENCH_RUNS)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/apt_fixture.sh
. "$BENCH_DIR/../tests/integration/apt_fixture.sh"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"
# shellcheck source=measure.sh
. "$BENCH_DIR/measure.sh"

DUR=${BENCH_DURATION:-5s}
CONN=${BENCH_C:-32}
WRK_T=${BENCH_THREADS:-2}
RUNS=${BENCH_APT_RUNS:-$BENCH_RUNS}
command -v wrk >/dev/null || fail "wrk not installed (apt-get install wrk)"
[ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"

AP=$(acng_free_port) # upstream: apt-cacher-ng cannot fetch from ports above 32767
CP=$(acng_free_port) # apt-cacher-ng
LP=$(free_port)      # larder

REPO=$WORK/repo
make_apt_repo "$REPO"
start_apt_upstream "$REPO" "$AP"
UP=$APT_UPSTREAM_URL
PKGS=$(tr '\n' ' ' <"$REPO/packages.txt")
NDEBS=$(wc -l <"$REPO/all-debs.txt")

ACNG_EXTRA_CONF="VerboseLog: 0" start_apt_cacher_ng "$WORK/acng" "$CP" "$AP"

CFG=$WORK/larder.yaml
CFG_QUOTA=4GiB CFG_IDLE=60s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
apt:
  ttl: 30m
  allow: ["127.0.0.1:$AP"]
EOF
start_larder "$CFG" "$LP" "$WORK/larder.log"

declare -A PROXY=([acng]=$ACNG_URL [larder]=$LARDER_URL)
declare -A PID=([acng]=$ACNG_PID [larder]=$LARDER_PID)

run_update() { # run_update CLIENT
    apt_client_reset "$1"
    apt_client "$1" update >"$WORK/apt.log" 2>&1 || fail "apt-get update failed: $(tail -5 "$WORK/apt.log")"
}
run_download() { # run_download CLIENT
    rm -f "$1"/cache/archives/*.deb
    # shellcheck disable=SC2086
    apt_client "$1" install --download-only -y --no-install-recommends $PKGS >"$WORK/apt.log" 2>&1 ||
        fail "apt-get install --download-only failed: $(tail -5 "$WORK/apt.log")"
    [ "$(apt_client_debs "$1" | wc -l)" = "$NDEBS" ] || fail "not every package was downloaded"
}
for t in acng larder; do
    apt_client_sources "$WORK/client-$t" "$UP" "$REPO/keyring.gpg"
    log "warming $t"
    APT_CLIENT_OPTS="-o Acquire::http::Proxy=${PROXY[$t]}/" run_update "$WORK/client-$t"
    APT_CLIENT_OPTS="-o Acquire::http::Proxy=${PROXY[$t]}/" run_download "$WORK/client-$t"
done
# via T STEP - one timed apt-get STEP (run_update, run_download) through T's proxy with T's own client directory
via() { APT_CLIENT_OPTS="-o Acquire::http::Proxy=${PROXY[$1]}/" bench_time "$2" "$WORK/client-$1"; }
update_acng() { via acng run_update; }
update_larder() { via larder run_update; }
download_acng() { via acng run_download; }
download_larder() { via larder run_download; }
bench_note "warm caches; $(nproc) cores; wrk -t$WRK_T -c$CONN -d$DUR through each proxy, one run per measurement; loopback"
BENCH_RUNS=$RUNS bench_pair "apt-get update" s lower apt-cacher-ng update_acng update_larder
BENCH_RUNS=$RUNS bench_pair "install --download-only, $NDEBS debs" s lower apt-cacher-ng download_acng download_larder

# ---- wrk through each proxy: the request line carries the absolute URI, as apt sends it -----------------------------
DEB=$(sort -k3 -n "$REPO/all-debs.txt" | head -1 | cut -d' ' -f1)
rel_size=$(wc -c <"$REPO/root/dists/bookworm/Release")
deb_size=$(stat -c %s "$REPO/root/$DEB")
for k in release deb; do
    if [ "$k" = release ]; then path=$UP/dists/bookworm/Release; else path=$UP/$DEB; fi
    printf 'wrk.path = "%s"\nwrk.headers["Host"] = "127.0.0.1:%s"\n' "$path" "$AP" >"$WORK/wrk.$k.lua"
done
# through KEY T - one wrk run of KEY's Lua script through T's proxy; prints req/s
through() { bench_wrk "$1" "$2" reqs -t"$WRK_T" -c"$CONN" -d"$DUR" -s "$WORK/wrk.$1.lua" "${PROXY[$2]}"; }
release_acng() { through release acng; }
release_larder() { through release larder; }
deb_acng() { through deb acng; }
deb_larder() { through deb larder; }
bench_pair "Release ($rel_size B) req/s" req/s higher apt-cacher-ng release_acng release_larder
bench_wrk_record release "Release p99" ms lower apt-cacher-ng acng larder p99ms
bench_pair ".deb ($deb_size B) req/s" req/s higher apt-cacher-ng deb_acng deb_larder
bench_wrk_record deb ".deb p99" ms lower apt-cacher-ng acng larder p99ms
bench_wrk_errors release acng larder
bench_wrk_errors deb acng larder

bench_record "peak RSS MiB (VmHWM)" MiB lower apt-cacher-ng "$(bench_kib_mib "$(bench_hwm_kb "${PID[acng]}")")" \
    "$(bench_kib_mib "$(bench_hwm_kb "${PID[larder]}")")"
finish >/dev/null
