#!/usr/bin/env bash
# bench/cold.sh - the cold path: a 200 MB miss fetched through larder vs nginx proxy_cache vs straight from the
# origin, its time to first byte, and how much 100 clients tailing one miss slow larder's own upstream transfer.
# See bench/README.md. Loopback only; every process it starts is stopped at exit.
#
#   LARDER_BIN        daemon binary (default: <repo>/build/larder)
#   BENCH_BIG_MB      size of the object (default 200)
#   BENCH_TAILERS     clients tailing one miss in the last row (default 100)
#   BENCH_RUNS ...    see bench/lib.sh
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$BENCH_DIR/../tests/integration/lib.sh"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

BIG_MB=${BENCH_BIG_MB:-200}
TAILERS=${BENCH_TAILERS:-100}
[ -x "$LARDER_BIN" ] || fail "larder binary not found: $LARDER_BIN (run make first)"

OP=$(free_port) # origin
XP=$(free_port) # nginx proxy_cache
LP=$(free_port) # larder

# ---- origin: a static nginx; its access log gives each request's $request_time ---------------------------------------
ORIG=$WORK/origin
mkdir -p "$ORIG/root"
log "generating a ${BIG_MB} MB object"
head -c "${BIG_MB}M" /dev/urandom >"$ORIG/root/big.bin"
BIG_SHA=$(sha256_file "$ORIG/root/big.bin")
BIG_SIZE=$(file_size "$ORIG/root/big.bin")
start_nginx "$ORIG" "$OP"
ORIG_LOG=$ORIG/logs/access.log

# ---- nginx reverse proxy with proxy_cache, set up as in bench/files.sh ------------------------------------------------
NX=$WORK/nginx-cache
start_nginx_proxy_cache "$NX" "$XP" "$OP" 8g

# ---- larder ---------------------------------------------------------------------------------------------------------
CFG=$WORK/larder.yaml
CFG_QUOTA=8GiB CFG_IDLE=60s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$OP/
EOF
start_larder "$CFG" "$LP" "$WORK/larder.log"
LDR=$LARDER_URL/files/origin/big.bin
NGX=http://127.0.0.1:$XP/files/origin/big.bin
DIRECT=http://127.0.0.1:$OP/big.bin
# the origin file stays in the page cache for every side: what is measured is the cache's own work
cat "$ORIG/root/big.bin" >/dev/null

# the first fetch through larder tells the entry's key (for DELETE) and checks the bytes
[ "$(curl -sS "$LDR" | sha256_stdin)" = "$BIG_SHA" ] || fail "larder: wrong bytes for big.bin"
KEY=
for _ in $(seq 1 100); do
    KEY=$(api GET "entries?protocol=files&limit=10" | "$PY" -c 'import json, sys
d = json.load(sys.stdin)
print(next((e["key"] for e in d.get("entries", []) if e["key"].endswith("big.bin")), ""))')
    [ -n "$KEY" ] && break
    sleep 0.1
done
[ -n "$KEY" ] || fail "larder did not commit big.bin"
KEY_Q=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$KEY")

# make the next larder request a miss: DELETE the entry once the last run committed it (its clients may finish
# before the commit, so a 404 is retried for a while)
larder_cold() {
    for _ in $(seq 1 200); do
        api DELETE "entries?protocol=files&key=$KEY_Q" >/dev/null
        [ "$(api_status)" = 404 ] || break
        sleep 0.05
    done
    [ "$(api_status)" = 200 ] || fail "DELETE of $KEY answered $(api_status)"
}
# nginx: a fresh cache key per run (the query string is part of proxy_cache_key; the origin ignores it), and the
# cache directory emptied so the disk does not fill
NRUN=0
nginx_cold_url() {
    find "$NX/cache" -mindepth 1 -delete 2>/dev/null || true
    NRUN=$((NRUN + 1))
    echo "$NGX?cold=$NRUN.$$"
}
check_miss() { # check_miss HEADERS_FILE NAME HEADER
    grep -qi "^$3: *MISS" "$1" || fail "$2 was not a miss: $(grep -i "^$3:" "$1" | tr -d '\r')"
}
# curl_time URL FIELD HEADERFILE -> seconds; fails unless 200 and the whole object arrived
curl_time() {
    local out
    out=$(curl -sS -o /dev/null -D "$3" -w '%{http_code} %{size_download} %{'"$2"'}' "$1") || fail "curl $1 failed"
    set -- $out
    [ "$1" = 200 ] && [ "$2" = "$BIG_SIZE" ] || fail "got HTTP $1 with $2 bytes"
    echo "$3"
}
H=$WORK/headers
total_nginx() { local u; u=$(nginx_cold_url); local t; t=$(curl_time "$u" time_total "$H"); check_miss "$H" nginx X-Cache-Status; echo "$t"; }
total_larder() { larder_cold; local t; t=$(curl_time "$LDR" time_total "$H"); check_miss "$H" larder X-Larder-Cache; echo "$t"; }
total_direct() { curl_time "$DIRECT" time_total "$H"; }
ms() { awk -v s="$1" 'BEGIN { printf "%.2f\n", s * 1000 }'; }
ttfb_nginx() { local u; u=$(nginx_cold_url); local t; t=$(curl_time "$u" time_starttransfer "$H"); check_miss "$H" nginx X-Cache-Status; ms "$t"; }
ttfb_larder() { larder_cold; local t; t=$(curl_time "$LDR" time_starttransfer "$H"); check_miss "$H" larder X-Larder-Cache; ms "$t"; }
ttfb_direct() { ms "$(curl_time "$DIRECT" time_starttransfer "$H")"; }

# the upstream transfer of one larder miss: $request_time of larder's GET in the origin's access log (from the
# request line to the last byte written to larder's socket)
origin_rt() {
    local rt=
    for _ in $(seq 1 100); do
        rt=$(awk '/"GET \/big.bin HTTP/ && / 200 / { v = $NF } END { sub(/^rt=/, "", v); print v }' "$ORIG_LOG")
        [ -n "$rt" ] && break
        sleep 0.05
    done
    echo "$rt"
}
# tail_run N: N clients ask for the same miss at once (one `curl --parallel` process with N transfers, so that
# starting 100 processes does not count as the download's competition); prints the origin's transfer time; every
# client must get all the bytes
tail_run() {
    local n=$1 i args=() out=$WORK/tail.out
    larder_cold
    : >"$ORIG_LOG"
    kill -USR1 "$(cat "$ORIG/nginx.pid")" # reopen the (truncated) log
    for i in $(seq 1 "$n"); do args+=(-o /dev/null "$LDR"); done
    curl -sS --parallel --parallel-immediate --parallel-max "$n" -w '%{http_code} %{size_download}\n' "${args[@]}" \
        >"$out" 2>&1 || fail "tailing clients: curl failed: $(sort "$out" | uniq -c)"
    [ "$(grep -c "^200 $BIG_SIZE\$" "$out")" = "$n" ] || fail "tailing clients: $(sort "$out" | uniq -c)"
    origin_rt
}
tail_1() { tail_run 1; }
tail_many() { tail_run "$TAILERS"; }

bench_note "cold = larder: entry DELETEd through the admin API after it was committed; nginx: a new cache key and an empty cache dir; the origin file is in the page cache for every side; loopback, $(nproc) cores"
bench_pair "cold ${BIG_MB} MB, total s" s lower "nginx proxy_cache" total_nginx total_larder
bench_pair "cold ${BIG_MB} MB, total s (vs direct)" s lower "direct from origin" total_direct total_larder
bench_pair "TTFB on a miss, ms" ms lower "nginx proxy_cache" ttfb_nginx ttfb_larder
bench_pair "TTFB on a miss, ms (vs direct)" ms lower "direct from origin" ttfb_direct ttfb_larder
bench_note "upstream transfer = the origin nginx's \$request_time for larder's GET; larder column: $TAILERS clients tail the miss, anchor: 1 client"
bench_pair "upstream transfer with $TAILERS tailing clients / with 1, s" s lower "1 client" tail_1 tail_many

# shellcheck disable=SC2034 # read by the EXIT trap in lib.sh
T_DONE=1
