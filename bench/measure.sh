# shellcheck shell=bash
# bench/measure.sh - measuring helpers shared by pypi.sh, apt.sh, oci.sh, gems.sh and git.sh, on top of bench/lib.sh
# (source it after lib.sh). Every function that bench_pair calls prints one number on stdout and nothing else, and
# keeps working when bench_pair runs it in a subshell ($(...)): what must outlive one call is written to files.
#
#   bench_time CMD...                  run CMD (its stdout goes to stderr); print its wall time in seconds
#   bench_wrk KEY SIDE FIELD ARGS...   one `wrk --latency ARGS...`; the output is kept as $WORK/wrk/KEY/SIDE.*.txt;
#                                      print wrk_field FIELD of it (reqs, mibs...); errors are logged
#   bench_wrk_record KEY ROW UNIT BETTER ANCHOR_LABEL ANCHOR_SIDE LARDER_SIDE FIELD
#                                      bench_record of another field of the same wrk runs (p99 from the req/s runs)
#   bench_wrk_errors KEY LABEL...      a bench_note for every side of KEY whose wrk runs saw socket errors or non-2xx
#   bench_hwm_kb PID...                the sum of VmHWM (KiB) over PID... (0 for a gone process)
#   bench_hwm_tree_kb PID              the same over PID and its children (nginx: master, workers, cache processes)
#   bench_kib_mib KIB                  KiB -> MiB, one decimal

bench_time() {
    local t0=$EPOCHREALTIME
    "$@" >&2
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", b - a }'
}

bench_wrk() {
    local key=$1 side=$2 field=$3 dir out e
    shift 3
    dir=$WORK/wrk/$key
    mkdir -p "$dir"
    out=$dir/$side.${EPOCHREALTIME/./}.txt
    log "wrk --latency $* ($side)"
    wrk --timeout 30s --latency "$@" </dev/null >"$out" 2>&1 || fail "wrk $key via $side: $(cat "$out")"
    e=$(wrk_field "$out" errors)
    [ "${e:-0}" = 0 ] || log "WARNING: wrk $key via $side: $e socket errors or non-2xx responses"
    wrk_field "$out" "$field"
}

# _bench_wrk_values KEY SIDE FIELD -> the FIELD of every kept run of SIDE, in the order they ran
_bench_wrk_values() {
    local f
    for f in "$WORK/wrk/$1/$2".*.txt; do
        [ -f "$f" ] && wrk_field "$f" "$3"
    done | tr '\n' ' '
}

bench_wrk_record() {
    bench_record "$2" "$3" "$4" "$5" "$(_bench_wrk_values "$1" "$6" "$8")" "$(_bench_wrk_values "$1" "$7" "$8")"
}

bench_wrk_errors() {
    local key=$1 side f e total runs
    shift
    for side in "$@"; do
        total=0 runs=0
        for f in "$WORK/wrk/$key/$side".*.txt; do
            [ -f "$f" ] || continue
            e=$(wrk_field "$f" errors)
            [ "${e:-0}" = 0 ] || runs=$((runs + 1))
            total=$((total + ${e:-0}))
        done
        [ "$total" = 0 ] || bench_note "WARNING $key: $side's wrk runs had $total socket errors or non-2xx responses ($runs runs): its req/s counts them"
    done
    return 0
}

bench_hwm_kb() {
    local p h total=0
    for p in "$@"; do
        h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${h:-0}))
    done
    echo "$total"
}

# shellcheck disable=SC2046 # the children's PIDs are words
bench_hwm_tree_kb() { bench_hwm_kb "$1" $(ps -o pid= --ppid "$1" 2>/dev/null || true); }

bench_kib_mib() { awk -v k="$1" 'BEGIN { printf "%.1f\n", k / 1024 }'; }
