#!/usr/bin/env bash
# bench/apt.sh - larder's apt cache vs apt-cacher-ng, both as apt's HTTP proxy for the same signed repository, warm:
#   1. `apt-get update` with empty lists (mean of BENCH_APT_RUNS)
#   2. the download phase: `apt-get install --download-only` of the test set with empty archives (mean)
#   3. wrk through each proxy (absolute-URI request lines): the Release file (a small index) and a .deb
#   4. peak RSS
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN       daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION   wrk duration per run (default 10s)
#   BENCH_C          wrk connections (default 32)
#   BENCH_THREADS    wrk threads (default 2)
#   BENCH_APT_RUNS   apt-get runs per measurement (default 10)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/apt_fixture.sh
. "$BENCH_DIR/../tests/integration/apt_fixture.sh"

DUR=${BENCH_DURATION:-10s}
CONN=${BENCH_C:-32}
WRK_T=${BENCH_THREADS:-2}
RUNS=${BENCH_APT_RUNS:-10}
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
mean_of() { # mean_of N COMMAND... -> mean seconds
    local n=$1 start end
    shift
    start=$(date +%s.%N)
    for _ in $(seq 1 "$n"); do "$@"; done
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" -v n="$n" 'BEGIN { printf "%.4f\n", (b - a) / n }'
}

declare -A UPD DL
for t in acng larder; do
    C=$WORK/client-$t
    apt_client_sources "$C" "$UP" "$REPO/keyring.gpg"
    export APT_CLIENT_OPTS="-o Acquire::http::Proxy=${PROXY[$t]}/"
    log "warming $t"
    run_update "$C"
    run_download "$C"
    log "apt-get update x$RUNS via $t"
    UPD[$t]=$(mean_of "$RUNS" run_update "$C")
    log "apt-get install --download-only x$RUNS via $t"
    DL[$t]=$(mean_of "$RUNS" run_download "$C")
done
unset APT_CLIENT_OPTS

# ---- wrk through each proxy: the request line carries the absolute URI, as apt sends it -----------------------------
to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; printf "%.3f\n", n }'
}
declare -A R
DEB=$(sort -k3 -n "$REPO/all-debs.txt" | head -1 | cut -d' ' -f1)
run_wrk() { # run_wrk KEY PROXY URL
    local out=$WORK/wrk.$1.txt script=$WORK/wrk.$1.lua
    printf 'wrk.path = "%s"\nwrk.headers["Host"] = "127.0.0.1:%s"\n' "$3" "$AP" >"$script"
    log "wrk -t$WRK_T -c$CONN -d$DUR --latency (proxy $2) $3"
    wrk -t"$WRK_T" -c"$CONN" -d"$DUR" --timeout 30s --latency -s "$script" "$2" >"$out" 2>&1 || fail "wrk: $(cat "$out")"
    R[$1.rps]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    R[$1.p99]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    R[$1.err]=$(awk '/Non-2xx|Socket errors/ { sub(/^ +/, ""); printf "%s; ", $0 }' "$out")
}
for t in acng larder; do
    run_wrk "$t.release" "${PROXY[$t]}" "$UP/dists/bookworm/Release"
    run_wrk "$t.deb" "${PROXY[$t]}" "$UP/$DEB"
done
rel_size=$(wc -c <"$REPO/root/dists/bookworm/Release")
deb_size=$(stat -c %s "$REPO/root/$DEB")

hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
declare -A RSS
for t in acng larder; do RSS[$t]=$(hwm_kb "${PID[$t]}"); done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'; }
row() { printf '%-44s %12s %12s %8s\n' "$@"; }
echo
echo "larder vs apt-cacher-ng (HTTP proxy for apt), warm; $(nproc) cores; wrk -t$WRK_T -c$CONN -d$DUR; loopback"
row "" larder apt-cacher-ng ratio
row "apt-get update, s (mean of $RUNS)" "${UPD[larder]}" "${UPD[acng]}" "$(ratio "${UPD[acng]}" "${UPD[larder]}")"
row "install --download-only, $NDEBS debs, s" "${DL[larder]}" "${DL[acng]}" "$(ratio "${DL[acng]}" "${DL[larder]}")"
row "Release (${rel_size} B) req/s" "${R[larder.release.rps]}" "${R[acng.release.rps]}" \
    "$(ratio "${R[larder.release.rps]}" "${R[acng.release.rps]}")"
row "  p99 ms" "${R[larder.release.p99]}" "${R[acng.release.p99]}" "$(ratio "${R[acng.release.p99]}" "${R[larder.release.p99]}")"
row ".deb (${deb_size} B) req/s" "${R[larder.deb.rps]}" "${R[acng.deb.rps]}" "$(ratio "${R[larder.deb.rps]}" "${R[acng.deb.rps]}")"
row "  p99 ms" "${R[larder.deb.p99]}" "${R[acng.deb.p99]}" "$(ratio "${R[acng.deb.p99]}" "${R[larder.deb.p99]}")"
row "peak RSS MiB (VmHWM)" "$(awk -v k="${RSS[larder]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="${RSS[acng]}" 'BEGIN { printf "%.1f", k / 1024 }')" "$(ratio "${RSS[acng]}" "${RSS[larder]}")"
for k in larder.release larder.deb acng.release acng.deb; do
    [ -z "${R[$k.err]}" ] || echo "WARNING $k: ${R[$k.err]}"
done
echo "(ratios > 1.00x: larder better)"
finish >/dev/null
