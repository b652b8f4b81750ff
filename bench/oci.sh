#!/usr/bin/env bash
# bench/oci.sh - larder's registry mirror vs docker-registry in proxy mode (proxy.remoteurl), same upstream:
#   1. `skopeo copy` of the test images, cold (every run through a new, empty mirror) and warm
#   2. BENCH_CLIENTS concurrent cold pulls of the same image through a new mirror: wall time and upstream blob GETs
#   3. wrk on a manifest by tag and on the ~5 MiB layer (req/s or MiB/s, p99), peak RSS
# Every comparison runs through bench/lib.sh: alternating runs (docker-registry, larder, ...), median and spread of
# each side, sub-second rows repeated until their spread is below 10 %. See bench/README.md. Loopback only; every
# process it starts is stopped at exit.
#
#   LARDER_BIN       daemon binary (default: <repo>/build/larder)
#   BENCH_DURATION   wrk duration per run (default 5s)
#   BENCH_C          wrk connections (default 32; 4 for the layer)
#   BENCH_RUNS       runs per side of every row (default 5, bench/lib.sh); BENCH_MAX_RUNS (15)
#   BENCH_OCI_RUNS   runs per side of the cold and warm pull rows (default: BENCH_RUNS)
#   BENCH_CLIENTS    concurrent cold pulls (default 10)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=../tests/integration/oci_fixture.sh
. "$BENCH_DIR/../tests/integration/oci_fixture.sh"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"
# shellcheck source=measure.sh
. "$BENCH_DIR/measure.sh"

DUR=${BENCH_DURATION:-5s}
CONN=${BENCH_C:-32}
RUNS=${BENCH_OCI_RUNS:-$BENCH_RUNS}
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

# start_mirror KIND NAME - a new, empty mirror (KIND registry or larder) with its files in $WORK/NAME; sets
# MIRROR_HOSTPORT and MIRROR_PID. Safe in a subshell ($(...)): the daemon's stdout is not the caller's, and its PID
# is also written to $WORK/mirrors.pids, which the EXIT trap reads (a subshell's track_pid is lost).
start_mirror() {
    local kind=$1 dir=$WORK/$2 port
    port=$(free_port)
    if [ "$kind" = registry ]; then
        start_oci_proxy_registry "$dir" "$port" "$U" >/dev/null
        MIRROR_PID=$OCI_PROXY_PID
    else
        mkdir -p "$dir"
        CFG_QUOTA=4GiB CFG_IDLE=60s write_config "$dir/larder.yaml" "$port" "$dir/data"
        printf 'oci:\n  ttl: 1h\n  registries:\n    docker.io: %s\n' "$U" >>"$dir/larder.yaml"
        start_larder "$dir/larder.yaml" "$port" "$dir/larder.log" >/dev/null
        MIRROR_PID=$LARDER_PID
    fi
    echo "$MIRROR_PID" >>"$WORK/mirrors.pids"
    MIRROR_HOSTPORT=127.0.0.1:$port
}
stop_mirrors() { # the EXIT trap's: every mirror still running, whichever shell started it
    local p
    [ -f "$WORK/mirrors.pids" ] || return 0
    while read -r p; do stop_pid "$p"; done <"$WORK/mirrors.pids"
}
at_cleanup stop_mirrors
pull_all() { # pull_all HOSTPORT DEST_PREFIX
    skopeo_pull "$1/larder-test/hello:1.0" "dir:$2-hello" >"$2.log" 2>&1 || fail "pull via $1 failed: $(tail -3 "$2.log")"
    skopeo_pull "$1/larder-test/multi:2.0" "dir:$2-multi" --all >>"$2.log" 2>&1 || fail "pull --all via $1 failed"
    rm -rf "$2-hello" "$2-multi"
}
hello_gets() { oci_requests "$UD" | awk '$1 == "GET" && index($2, "/v2/larder-test/hello/blobs/") == 1 { n++ } END { print n + 0 }'; }

# cold KIND - one pull of both images through a new mirror, stopped and deleted afterwards; prints seconds
cold() {
    local name=cold-$1-${EPOCHREALTIME/./} secs
    start_mirror "$1" "$name"
    secs=$(bench_time pull_all "$MIRROR_HOSTPORT" "$WORK/$name-pull")
    stop_pid "$MIRROR_PID"
    rm -rf "${WORK:?}/$name"
    echo "$secs"
}
# concurrent KIND - CLIENTS concurrent pulls of hello through a new mirror; prints the seconds from the first start
# to the last exit, and appends the upstream's hello blob GETs during it to $WORK/upgets.KIND
concurrent() {
    local kind=$1 name=conc-$1-${EPOCHREALTIME/./} before t0 c ok=0 pids=() secs
    start_mirror "$kind" "$name"
    before=$(hello_gets)
    t0=$EPOCHREALTIME
    for c in $(seq 1 "$CLIENTS"); do
        skopeo_pull "$MIRROR_HOSTPORT/larder-test/hello:1.0" "dir:$WORK/$name-$c" >"$WORK/$name-$c.log" 2>&1 &
        pids+=($!)
    done
    for c in "${pids[@]}"; do wait "$c" && ok=$((ok + 1)); done
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", b - a }')
    [ "$ok" = "$CLIENTS" ] || fail "$((CLIENTS - ok)) of $CLIENTS concurrent pulls through $kind failed: $(tail -3 "$WORK/$name-1.log")"
    echo "$(($(hello_gets) - before))" >>"$WORK/upgets.$kind"
    stop_pid "$MIRROR_PID"
    rm -rf "${WORK:?}/$name" "$WORK/$name"-*
    echo "$secs"
}
cold_registry() { cold registry; }
cold_larder() { cold larder; }
conc_registry() { concurrent registry; }
conc_larder() { concurrent larder; }

# the warm mirrors: one of each kind for the whole run, warmed by one pull
declare -A HP PIDS
for kind in registry larder; do
    start_mirror "$kind" "warm-$kind"
    HP[$kind]=$MIRROR_HOSTPORT
    PIDS[$kind]=$MIRROR_PID
    pull_all "${HP[$kind]}" "$WORK/warmup-$kind"
done
warm_registry() { bench_time pull_all "${HP[registry]}" "$WORK/warm-registry-pull"; }
warm_larder() { bench_time pull_all "${HP[larder]}" "$WORK/warm-larder-pull"; }
cat >"$WORK/accept.lua" <<'EOF'
wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json"
EOF
manifest() { bench_wrk manifest "$1" reqs -t2 -c"$CONN" -d"$DUR" -s "$WORK/accept.lua" "http://${HP[$1]}/v2/larder-test/hello/manifests/1.0"; }
layer() { bench_wrk layer "$1" mibs -t2 -c4 -d"$DUR" "http://${HP[$1]}/v2/larder-test/hello/blobs/$BIG"; }
manifest_registry() { manifest registry; }
manifest_larder() { manifest larder; }
layer_registry() { layer registry; }
layer_larder() { layer larder; }

bench_note "same upstream registry; $(nproc) cores; skopeo 1.9; wrk -t2 -d$DUR, one run per measurement; loopback"
BENCH_RUNS=$RUNS bench_pair "cold pull, hello + multi --all" s lower docker-registry cold_registry cold_larder
BENCH_RUNS=$RUNS bench_pair "warm pull, hello + multi --all" s lower docker-registry warm_registry warm_larder
bench_pair "$CLIENTS concurrent cold pulls of hello" s lower docker-registry conc_registry conc_larder
bench_record "  upstream blob GETs (3 layers + config)" GETs lower docker-registry "$(tr '\n' ' ' <"$WORK/upgets.registry")" \
    "$(tr '\n' ' ' <"$WORK/upgets.larder")"
bench_pair "manifest by tag req/s (c=$CONN)" req/s higher docker-registry manifest_registry manifest_larder
bench_wrk_record manifest "manifest by tag p99" ms lower docker-registry registry larder p99ms
bench_pair "5 MiB layer MiB/s (c=4)" MiB/s higher docker-registry layer_registry layer_larder
bench_wrk_record layer "5 MiB layer p99" ms lower docker-registry registry larder p99ms
bench_wrk_errors manifest registry larder
bench_wrk_errors layer registry larder
bench_record "peak RSS MiB (VmHWM)" MiB lower docker-registry "$(bench_kib_mib "$(bench_hwm_kb "${PIDS[registry]}")")" \
    "$(bench_kib_mib "$(bench_hwm_kb "${PIDS[larder]}")")"
finish >/dev/null
