#!/usr/bin/env bash
# bench/oci.sh - larder's registry mirror vs docker-registry in proxy mode (proxy.remoteurl), same upstream:
#   1. `skopeo copy` of the test images, cold (first pull through the mirror) and warm (mean of BENCH_OCI_RUNS)
#   2. 10 concurrent cold pulls of the same image through a fresh mirror: wall time and upstream blob GETs
#   3. wrk on a manifest by tag and on the ~5 MiB layer (req/s, p99), peak RSS
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN       daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION   wrk duration per run (default 10s)
#   BENCH_C          wrk connections (default 32; 4 for the layer)
#   BENCH_OCI_RUNS   warm pulls per mirror (default 5)
#   BENCH_CLIENTS    concurrent cold pulls (default 10)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/oci_fixture.sh
. "$BENCH_DIR/../tests/integration/oci_fixture.sh"

DUR=${BENCH_DURATION:-10s}
CONN=${BENCH_C:-32}
RUNS=${BENCH_OCI_RUNS:-5}
CLIENTS=${BENCH_CLIENTS:-10}
command -v wrk >/dev/null || fail "wrk not installed (apt-get install wrk)"
[ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"

UPP=$(free_port)
IMG=$WORK/images
UD=$WORK/upstream
make_oci_images "$IMG"
start_oci_registry "$UD" "$UPP"
push_oci_images "$IMG" "$OCI_REGISTRY_URL" "$WORK/pushed.json"
U=$OCI_REGISTRY_URL
BIG=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(max(d["images"]["larder-test/hello:1.0"]["layers"], key=lambda l: l["size"])["digest"])' "$WORK/pushed.json")

# mirrors: start_mirror KIND N -> sets MIRROR_HOSTPORT, MIRROR_PID (a fresh, empty mirror each time)
start_mirror() {
    local kind=$1 n=$2 port
    port=$(free_port)
    if [ "$kind" = registry ]; then
        start_oci_proxy_registry "$WORK/proxy-$n" "$port" "$U"
        MIRROR_PID=$OCI_PROXY_PID
    else
        local cfg=$WORK/larder-$n.yaml
        CFG_QUOTA=4GiB CFG_IDLE=60s write_config "$cfg" "$port" "$WORK/data-$n"
        printf 'oci:\n  ttl: 1h\n  registries:\n    docker.io: %s\n' "$U" >>"$cfg"
        start_larder "$cfg" "$port" "$WORK/larder-$n.log"
        MIRROR_PID=$LARDER_PID
    fi
    MIRROR_HOSTPORT=127.0.0.1:$port
}
pull_all() { # pull_all HOSTPORT DEST_PREFIX
    skopeo_pull "$1/larder-test/hello:1.0" "dir:$2-hello" >"$2.log" 2>&1 || fail "pull via $1 failed: $(tail -3 "$2.log")"
    skopeo_pull "$1/larder-test/multi:2.0" "dir:$2-multi" --all >>"$2.log" 2>&1 || fail "pull --all via $1 failed"
    rm -rf "$2-hello" "$2-multi"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f\n", b - a }'; }

declare -A COLD WARM CONC UPGETS RPS P99 LRPS LP99 RSS
n=0
for kind in registry larder; do
    # cold and warm, one client
    n=$((n + 1))
    start_mirror "$kind" "$n"
    t=$(now)
    pull_all "$MIRROR_HOSTPORT" "$WORK/cold-$kind"
    COLD[$kind]=$(since "$t")
    t=$(now)
    for _ in $(seq 1 "$RUNS"); do pull_all "$MIRROR_HOSTPORT" "$WORK/warm-$kind"; done
    WARM[$kind]=$(awk -v s="$(since "$t")" -v n="$RUNS" 'BEGIN { printf "%.3f\n", s / n }')
    # wrk: a manifest by tag, and the big layer
    cat >"$WORK/accept.lua" <<'EOF'
wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json"
EOF
    log "wrk manifest via $kind"
    wrk -t2 -c"$CONN" -d"$DUR" --latency -s "$WORK/accept.lua" "http://$MIRROR_HOSTPORT/v2/larder-test/hello/manifests/1.0" >"$WORK/wrk-m-$kind.txt" 2>&1
    RPS[$kind]=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk-m-$kind.txt")
    P99[$kind]=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk-m-$kind.txt")
    log "wrk layer via $kind"
    wrk -t2 -c4 -d"$DUR" --latency "http://$MIRROR_HOSTPORT/v2/larder-test/hello/blobs/$BIG" >"$WORK/wrk-l-$kind.txt" 2>&1
    LRPS[$kind]=$(awk '/^Transfer\/sec:/ { print $2 }' "$WORK/wrk-l-$kind.txt")
    LP99[$kind]=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk-l-$kind.txt")
    RSS[$kind]=$(awk '/^VmHWM:/ { print $2 }' "/proc/$MIRROR_PID/status")
    grep -q 'Non-2xx\|Socket errors' "$WORK/wrk-m-$kind.txt" "$WORK/wrk-l-$kind.txt" && log "WARNING: wrk errors via $kind"

    # concurrent cold pulls of one image through a fresh mirror
    n=$((n + 1))
    start_mirror "$kind" "$n"
    before=$(oci_requests "$UD" | grep -c '^GET /v2/larder-test/hello/blobs/' || true)
    t=$(now)
    pids=()
    for c in $(seq 1 "$CLIENTS"); do
        (skopeo_pull "$MIRROR_HOSTPORT/larder-test/hello:1.0" "dir:$WORK/conc-$kind-$c" >"$WORK/conc-$kind-$c.log" 2>&1) &
        pids+=($!)
    done
    ok=0
    for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
    CONC[$kind]="$(since "$t") ($ok/$CLIENTS ok)"
    UPGETS[$kind]=$(($(oci_requests "$UD" | grep -c '^GET /v2/larder-test/hello/blobs/' || true) - before))
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'; }
row() { printf '%-46s %18s %18s %8s\n' "$@"; }
echo
echo "larder vs docker-registry (proxy mode), same upstream registry; $(nproc) cores; skopeo 1.9; loopback"
row "" larder docker-registry ratio
row "cold pull, hello + multi --all, s" "${COLD[larder]}" "${COLD[registry]}" "$(ratio "${COLD[registry]}" "${COLD[larder]}")"
row "warm pull, hello + multi --all, s (mean $RUNS)" "${WARM[larder]}" "${WARM[registry]}" "$(ratio "${WARM[registry]}" "${WARM[larder]}")"
row "$CLIENTS concurrent cold pulls of hello, s" "${CONC[larder]}" "${CONC[registry]}" \
    "$(ratio "${CONC[registry]%% *}" "${CONC[larder]%% *}")"
row "  upstream blob GETs (3 blobs + config)" "${UPGETS[larder]}" "${UPGETS[registry]}" "$(ratio "${UPGETS[registry]}" "${UPGETS[larder]}")"
row "manifest by tag, req/s (c=$CONN)" "${RPS[larder]}" "${RPS[registry]}" "$(ratio "${RPS[larder]}" "${RPS[registry]}")"
row "  p99" "${P99[larder]}" "${P99[registry]}" ""
row "5 MiB layer, transfer/s (c=4)" "${LRPS[larder]}" "${LRPS[registry]}" ""
row "  p99" "${LP99[larder]}" "${LP99[registry]}" ""
row "peak RSS MiB (VmHWM)" "$(awk -v k="${RSS[larder]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="${RSS[registry]}" 'BEGIN { printf "%.1f", k / 1024 }')" "$(ratio "${RSS[registry]}" "${RSS[larder]}")"
echo "(ratios > 1.00x: larder better)"
finish >/dev/null
