# shellcheck shell=bash
# bench/lib.sh - the measuring half every bench script shares: alternating runs, median and spread, one TSV row per
# comparison, and the summary table. Source it after tests/integration/lib.sh (which gives WORK, log, fail and the
# process tracking). See bench/README.md, "How the numbers are made".
#
#   BENCH_RUNS      measurements per side of a comparison (default 5)
#   BENCH_MAX_RUNS  the most per side when a sub-second measurement keeps a spread >= 10 % (default 15)
#   BENCH_SUMMARY   the TSV file rows are appended to (default: $WORK/summary.tsv, printed when the script ends)
#   BENCH_SCRIPT    the section name in the summary (default: the script's name without .sh)
#
# bench_pair ROW UNIT BETTER ANCHOR_LABEL ANCHOR_FN LARDER_FN
#     BETTER is `higher` or `lower`. Each function makes ONE measurement and prints ONE number on stdout (logs go to
#     stderr). They are called alternately, anchor first, BENCH_RUNS times each, so a machine that drifts (page
#     cache, another process, thermal) drifts under both. A time (unit s or ms) whose median is under a second is
#     measured again, pair by pair, while either side's spread is >= 10 %, up to BENCH_MAX_RUNS; a row that ends
#     with a larger spread says so in its note.
# bench_record ROW UNIT BETTER ANCHOR_LABEL "ANCHOR_VALUES" "LARDER_VALUES" [NOTE]
#     the same row from values the script collected itself (space-separated); ANCHOR_VALUES may be "-" for a row
#     with no anchor (then no ratio).
# bench_note TEXT                 a line printed under the script's rows in the summary
# bench_median V... / bench_spread V...
# wrk_field FILE reqs|mibs|p50ms|p99ms|errors
#
# Ratio: larder/anchor when BETTER is higher, anchor/larder when lower: > 1.00x always means Larder is better.
# Spread: the interquartile range over the median, in %: half the runs lie within it; unlike max-min it does not
# grow with every extra run, so repeating a noisy measurement can bring it down. The TSV keeps min and max too.
#
# TSV columns: script row unit better anchor_label anchor_median anchor_spread larder_median larder_spread n ratio
#              note anchor_min anchor_max larder_min larder_max

BENCH_RUNS=${BENCH_RUNS:-5}
BENCH_MAX_RUNS=${BENCH_MAX_RUNS:-15}
BENCH_SCRIPT=${BENCH_SCRIPT:-$(basename "$0" .sh)}
if [ -z "${BENCH_SUMMARY:-}" ]; then
    BENCH_SUMMARY=$WORK/summary.tsv
    B_PRINT_SUMMARY=1
else
    B_PRINT_SUMMARY=0
fi

# bench_stats V... -> "median spread% min max" (linear interpolation between order statistics)
bench_stats() {
    printf '%s\n' "$@" | sort -g | awk '
        { v[NR] = $1 }
        function q(p,   h, lo) { h = (NR - 1) * p + 1; lo = int(h); if (lo >= NR) return v[NR]; return v[lo] + (h - lo) * (v[lo + 1] - v[lo]) }
        END {
            if (NR == 0) { print "- - - -"; exit }
            m = q(0.5); s = (m != 0) ? (q(0.75) - q(0.25)) / m * 100 : 0; if (s < 0) s = -s
            printf "%.6g %.1f %.6g %.6g\n", m, s, v[1], v[NR] }'
}
bench_median() { bench_stats "$@" | awk '{ print $1 }'; }
bench_spread() { bench_stats "$@" | awk '{ print $2 }'; }

b_is_number() { [[ $1 =~ ^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }

# b_measure FN -> the number it printed (fails the script when it did not print exactly one number)
b_measure() {
    local v
    v=$("$1") || fail "bench: measurement $1 failed"
    v=${v//[[:space:]]/}
    b_is_number "$v" || fail "bench: measurement $1 printed '$v', not one number"
    printf '%s\n' "$v"
}

# b_subsecond UNIT MEDIAN -> true when the median is a time under one second
b_subsecond() {
    case $1 in
    s) awk -v m="$2" 'BEGIN { exit !(m < 1) }' ;;
    ms) awk -v m="$2" 'BEGIN { exit !(m < 1000) }' ;;
    *) return 1 ;;
    esac
}

b_row() { # ROW UNIT BETTER LABEL "AVALS" "LVALS" NOTE
    local row=$1 unit=$2 better=$3 label=$4 avals=$5 lvals=$6 note=$7 as ls ratio n
    # shellcheck disable=SC2086
    ls=$(bench_stats $lvals)
    n=$(wc -w <<<"$lvals")
    if [ "$avals" = - ] || [ -z "$avals" ]; then
        as="- - - -"
        ratio=-
    else
        # shellcheck disable=SC2086
        as=$(bench_stats $avals)
        ratio=$(awk -v a="${as%% *}" -v l="${ls%% *}" -v b="$better" 'BEGIN {
            if (b == "higher") { if (a == 0) print "-"; else printf "%.2f\n", l / a }
            else { if (l == 0) print "-"; else printf "%.2f\n", a / l } }')
    fi
    local am asp amin amax lm lsp lmin lmax
    read -r am asp amin amax <<<"$as"
    read -r lm lsp lmin lmax <<<"$ls"
    mkdir -p "$(dirname "$BENCH_SUMMARY")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$BENCH_SCRIPT" "$row" "$unit" "$better" \
        "$label" "$am" "$asp" "$lm" "$lsp" "$n" "$ratio" "$note" "$amin" "$amax" "$lmin" "$lmax" >>"$BENCH_SUMMARY"
    if [ "$ratio" = - ]; then
        log "$row: larder $lm $unit ±$lsp% (n=$n)${note:+ [$note]}"
    else
        log "$row: larder $lm ±$lsp% vs $label $am ±$asp% $unit (n=$n, $better is better) -> ${ratio}x${note:+ [$note]}"
    fi
}

bench_pair() {
    local row=$1 unit=$2 better=$3 label=$4 afn=$5 lfn=$6
    case $better in higher | lower) ;; *) fail "bench_pair $row: BETTER must be higher or lower, not '$better'" ;; esac
    local -a av=() lv=()
    local target=$BENCH_RUNS note=
    log "$row: $label vs larder, alternating, $BENCH_RUNS runs each"
    while :; do
        while [ "${#lv[@]}" -lt "$target" ]; do
            av+=("$(b_measure "$afn")")
            lv+=("$(b_measure "$lfn")")
        done
        local am lm asp lsp
        am=$(bench_median "${av[@]}")
        lm=$(bench_median "${lv[@]}")
        asp=$(bench_spread "${av[@]}")
        lsp=$(bench_spread "${lv[@]}")
        if { b_subsecond "$unit" "$am" || b_subsecond "$unit" "$lm"; } &&
            awk -v a="$asp" -v l="$lsp" 'BEGIN { exit !(a >= 10 || l >= 10) }'; then
            if [ "$target" -ge "$BENCH_MAX_RUNS" ]; then
                note="spread>=10% after $target runs"
                break
            fi
            target=$((target + 2))
            [ "$target" -gt "$BENCH_MAX_RUNS" ] && target=$BENCH_MAX_RUNS
            log "$row: spread $asp% / $lsp%: $target runs each"
            continue
        fi
        break
    done
    b_row "$row" "$unit" "$better" "$label" "${av[*]}" "${lv[*]}" "$note"
}

bench_record() {
    local row=$1 unit=$2 better=$3 label=$4 avals=$5 lvals=$6 note=${7:-} v
    case $better in higher | lower) ;; *) fail "bench_record $row: BETTER must be higher or lower, not '$better'" ;; esac
    for v in $lvals; do b_is_number "$v" || fail "bench_record $row: '$v' is not a number"; done
    if [ "$avals" != - ]; then
        for v in $avals; do b_is_number "$v" || fail "bench_record $row: '$v' is not a number"; done
    fi
    [ -n "$lvals" ] || fail "bench_record $row: no values"
    b_row "$row" "$unit" "$better" "$label" "$avals" "$lvals" "$note"
}

bench_note() {
    mkdir -p "$(dirname "$BENCH_SUMMARY")"
    printf '%s\t#note\t\t\t\t\t\t\t\t\t\t%s\t\t\t\t\n' "$BENCH_SCRIPT" "$*" >>"$BENCH_SUMMARY"
}

# wrk_field FILE FIELD: a number from `wrk --latency` output (latencies in ms, transfer in MiB/s)
wrk_field() {
    local f=$1 field=$2
    case $field in
    reqs) awk '/^Requests\/sec:/ { print $2; found = 1 } END { if (!found) print "-" }' "$f" ;;
    mibs) awk '/^Transfer\/sec:/ { v = $2; n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "GB") n *= 1024; else if (u == "KB") n /= 1024; else if (u == "B") n /= 1048576; else if (u == "TB") n *= 1048576
            printf "%.2f\n", n; found = 1 } END { if (!found) print "-" }' "$f" ;;
    p50ms | p99ms)
        local pct=99%
        [ "$field" = p50ms ] && pct=50%
        awk -v p="$pct" '$1 == p && $2 ~ /^[0-9.]+[a-z]+$/ { v = $2; n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
            printf "%.3f\n", n; found = 1 } END { if (!found) print "-" }' "$f" ;;
    errors) awk '/Socket errors:/ { for (i = 3; i <= NF; i++) { x = $i; gsub(/[^0-9]/, "", x); n += x } }
                 /Non-2xx or 3xx responses:/ { n += $NF } END { print n + 0 }' "$f" ;;
    *) fail "wrk_field: unknown field $field" ;;
    esac
}

# start_nginx_proxy_cache DIR PORT ORIGIN_PORT MAX_SIZE - the nginx people deploy as a pull-through cache of ORIGIN
# under /files/origin/ (the anchor of files.sh and cold.sh); sets NGINX_PID
start_nginx_proxy_cache() {
    local nx=$1 port=$2 origin=$3 max=$4
    mkdir -p "$nx/cache" "$nx/tmp" "$nx/logs"
    {
        NGINX_WORKERS=auto nginx_common_main "$nx"
        cat <<EOF
    sendfile on;
    tcp_nopush on;
    proxy_cache_path $nx/cache levels=1:2 keys_zone=files:10m max_size=$max inactive=7d use_temp_path=off;
    server {
        listen 127.0.0.1:$port;
        location /files/origin/ {
            proxy_pass http://127.0.0.1:$origin/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache files;
            proxy_cache_valid 200 1d;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10m;
            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
            proxy_cache_background_update on;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
    } >"$nx/nginx.conf"
    NGINX_WAIT_PORTS=$port run_nginx "$nx"
}

b_print_own_summary() {
    [ "$B_PRINT_SUMMARY" = 1 ] && [ -s "$BENCH_SUMMARY" ] || return 0
    "$(dirname "${BASH_SOURCE[0]}")/summary.sh" "$BENCH_SUMMARY" >&2 || true
}
at_cleanup b_print_own_summary
