#!/usr/bin/env bash
# bench/summary.sh TSV... - the one summary table of bench/lib.sh's rows, as markdown on stdout.
# Every ratio is arranged so that > 1.00x means Larder is better; the "better" column says which way the raw numbers
# go. Values are "median ±spread" (interquartile range over the median) of n runs per side (no spread when n is 1).
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 SUMMARY.tsv..." >&2; exit 2; }
cat "$@" | awk -F'\t' '
    function fmt(m, s) { if (m == "-" || m == "") return "-"; return (s == "" || s == "-" || $10 == 1) ? m : m " ±" s "%" }
    function flush() { if (notes != "") printf "\nNotes (%s):%s\n", cur, notes; notes = "" }
    {
        if ($1 != cur) {
            flush()
            cur = $1
            printf "\n**%s**\n\n", cur
            print "| measurement | unit | better | Larder | anchor | anchor value | ratio | n | note |"
            print "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | --- |"
        }
        if ($2 == "#note") { notes = notes "\n- " $12; next }
        r = ($11 == "-") ? "-" : $11 "x"
        if ($11 != "-" && $11 + 0 < 1) r = "**" r "**"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $2, $3, $4, fmt($8, $9), ($5 == "" ? "-" : $5), fmt($6, $7), r, $10, $12
    }
    END { flush() }  # notes come after the table of their section'
