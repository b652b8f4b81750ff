#!/usr/bin/env bash
# bench/run-all.sh [SCRIPT...] - what `make bench` runs: every bench script (or the ones named, e.g. `files npm`)
# with one shared summary, then the one table: build/bench/summary.md (and on stdout). A script that fails is
# named in the table's header, and the others still run.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/build/bench}
mkdir -p "$OUT"
export BENCH_SUMMARY=$OUT/summary.tsv
: >"$BENCH_SUMMARY"
DEFAULT="files cold pypi npm apt oci gems git store"
if [ "$#" -gt 0 ]; then SCRIPTS="$*"; else SCRIPTS=$DEFAULT; fi
failed=
start=$(date +%s)
rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') # the code measured: what is checked out now
for s in $SCRIPTS; do
    [ -x "$ROOT/bench/$s.sh" ] || { echo "bench: no bench/$s.sh, skipped" >&2; continue; }
    echo "=== bench/$s.sh ($(date -u +%H:%M:%S))" >&2
    t0=$(date +%s)
    if ! BENCH_SCRIPT=$s "$ROOT/bench/$s.sh" >"$OUT/$s.out" 2>"$OUT/$s.log"; then
        failed="$failed $s"
        echo "bench: bench/$s.sh FAILED, see $OUT/$s.log" >&2
        tail -n 15 "$OUT/$s.log" >&2
    fi
    echo "=== bench/$s.sh took $(($(date +%s) - t0)) s" >&2
done
{
    echo "# make bench, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); larder $rev; BENCH_RUNS=${BENCH_RUNS:-5}; $(($(date +%s) - start)) s in all."
    echo "Every ratio is arranged so that **> 1.00x means Larder is better** (bold: below 1.00x). Values: median ±spread (interquartile range / median) of n runs per side, anchor and Larder measured alternately."
    [ -n "$failed" ] && echo && echo "**FAILED:**$failed (see $OUT/<name>.log)"
    "$ROOT/bench/summary.sh" "$BENCH_SUMMARY"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
[ -z "$failed" ]
