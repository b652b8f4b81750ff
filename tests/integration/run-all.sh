#!/usr/bin/env bash
# run-all.sh - run every tests/integration/test_*.sh (or the ones named as arguments), print PASS/FAIL per script
# and "N passed, M failed" at the end; exit non-zero when any failed. Each script's output goes to
# $INTEGRATION_LOG_DIR (default: a temp dir) and is shown in full when the script fails.
#
#   LARDER_BIN           daemon binary (default: <repo>/build/larder)
#   INTEGRATION_TIMEOUT  seconds per script (default 600, or the script's own "# ctest-timeout: SECONDS")
set -uo pipefail

DIR=$(cd "$(dirname "$0")" && pwd)
LOGDIR=${INTEGRATION_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/larder-it-logs.XXXXXX")}
mkdir -p "$LOGDIR"
TIMEOUT=${INTEGRATION_TIMEOUT:-600}

if [ "$#" -gt 0 ]; then
    scripts=()
    for a in "$@"; do
        case "$a" in
        */*) scripts+=("$a") ;;
        test_*.sh) scripts+=("$DIR/$a") ;;
        *) scripts+=("$DIR/test_$a.sh") ;;
        esac
    done
else
    scripts=("$DIR"/test_*.sh)
fi

passed=0
failed=0
failed_names=()
for s in "${scripts[@]}"; do
    name=$(basename "$s" .sh)
    start=$SECONDS
    rc=0
    t=$TIMEOUT
    # a longer "# ctest-timeout: SECONDS" of the script itself (as CMakeLists.txt reads it) wins
    mark=$(sed -n 's/^# ctest-timeout: *\([0-9][0-9]*\)$/\1/p' "$s" | head -n 1)
    [ -n "$mark" ] && [ -z "${INTEGRATION_TIMEOUT:-}" ] && t=$mark
    timeout --kill-after=20 "$t" bash "$s" >"$LOGDIR/$name.log" 2>&1 </dev/null || rc=$?
    secs=$((SECONDS - start))
    summary=$(grep -a -E '[0-9]+ passed, [0-9]+ failed' "$LOGDIR/$name.log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        printf 'PASS  %-22s %4ss  %s\n' "$name" "$secs" "${summary#*: }"
        grep 'SKIP:' "$LOGDIR/$name.log" | sed 's/^/      /'
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        [ "$rc" -eq 124 ] && summary="timed out after ${t}s"
        printf 'FAIL  %-22s %4ss  %s (exit %s)\n' "$name" "$secs" "${summary#*: }" "$rc"
        sed 's/^/      | /' "$LOGDIR/$name.log" | tail -n 80
    fi
done

echo
echo "logs: $LOGDIR"
[ "$failed" -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
