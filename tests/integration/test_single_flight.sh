#!/usr/bin/env bash
# test_single_flight.sh - N concurrent clients of one cold large object cause exactly one upstream GET, all get
# identical, correct bytes, and the first bytes reach clients while the (throttled) upstream is still sending.
#
#   SF_SIZE_MB (200)   size of the object
#   SF_CLIENTS (50)    concurrent clients
#   SF_RATE    (40m)   nginx limit_rate for the upstream connection (200 MB at 40m takes ~5 s)
. "$(dirname "$0")/lib.sh"

SIZE_MB=${SF_SIZE_MB:-200}
CLIENTS=${SF_CLIENTS:-50}
RATE=${SF_RATE:-40m}

NP=$(free_port)
LP=$(free_port)
ORIG=$WORK/origin
mkdir -p "$ORIG/root"
log "generating a ${SIZE_MB} MB random file"
head -c "${SIZE_MB}M" /dev/urandom >"$ORIG/root/big.bin"
BIG_SHA=$(sha256_file "$ORIG/root/big.bin")
BIG_SIZE=$(file_size "$ORIG/root/big.bin")

start_nginx "$ORIG" "$NP" "$RATE"
ALOG=$ORIG/logs/access.log

CFG=$WORK/larder.yaml
CFG_QUOTA=2GiB CFG_IDLE=30s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
EOF
start_larder "$CFG" "$LP"
URL=$LARDER_URL/files/origin/big.bin

C=$WORK/clients
mkdir -p "$C"
log "starting $CLIENTS concurrent clients of $URL"
pids=()
for i in $(seq 1 "$CLIENTS"); do
    (
        set +e
        curl -sS --max-time 300 -D "$C/hdr.$i" \
            -w '%{stderr}TIMING %{http_code} %{time_starttransfer} %{time_total} %{size_download}\n' \
            "$URL" 2>"$C/err.$i" | openssl dgst -sha256 -r | cut -d' ' -f1 >"$C/sha.$i"
        echo "${PIPESTATUS[0]}" >"$C/rc.$i"
    ) &
    pids+=($!)
    track_pid "$!"
done
for p in "${pids[@]}"; do
    wait "$p" || true
    untrack_pid "$p"
done

# ---- exactly one upstream GET ---------------------------------------------------------------------------------
assert_eq 1 "$(nginx_count "$ALOG" GET /big.bin)" "upstream GETs for $CLIENTS concurrent clients (access log: $(grep -c big.bin "$ALOG" || true) lines)"
UP_RT=$(awk '/"GET \/big.bin / { sub(/^rt=/, "", $NF); print $NF }' "$ALOG" | sed -n 1p)
UP_BYTES=$(awk '/"GET \/big.bin / { print $(NF-1) }' "$ALOG" | sed -n 1p)
assert_eq "$BIG_SIZE" "$UP_BYTES" "upstream sent the whole file once"

# ---- every client: exit 0, status 200, identical correct bytes ---------------------------------------------------
bad=0
for i in $(seq 1 "$CLIENTS"); do
    rc=$(cat "$C/rc.$i" 2>/dev/null || echo missing)
    sha=$(cat "$C/sha.$i" 2>/dev/null || echo missing)
    timing=$(grep '^TIMING' "$C/err.$i" | tail -1)
    code=$(echo "$timing" | awk '{ print $2 }')
    if [ "$rc" != 0 ] || [ "$code" != 200 ] || [ "$sha" != "$BIG_SHA" ]; then
        bad=$((bad + 1))
        log "client $i: curl rc=$rc status=$code sha256=$sha ($(grep -v '^TIMING' "$C/err.$i" | sed -n 1,2p | tr '\n' ' '))"
    fi
done
assert_eq 0 "$bad" "clients with a failed transfer or wrong bytes (of $CLIENTS)"
pass "all $CLIENTS clients got sha256 $BIG_SHA"

# ---- first bytes while the upstream is still downloading -------------------------------------------------------
read -r TTFB_MIN TTFB_MED TTFB_MAX TOTAL_MAX < <(cat "$C"/err.* | awk '/^TIMING/ { print $3, $4 }' | sort -n |
    awk '{ t[NR] = $1; if ($2 > tm) tm = $2 } END { printf "%s %s %s %s\n", t[1], t[int((NR + 1) / 2)], t[NR], tm }')
# cache statuses seen by the clients
STATUSES=$(cat "$C"/hdr.* | tr -d '\r' | awk 'tolower($1) == "x-larder-cache:" { print $2 }' | sort | uniq -c | tr '\n' ' ' | tr -s ' ')
log "upstream transfer ${UP_RT}s; client time to first byte min ${TTFB_MIN}s median ${TTFB_MED}s max ${TTFB_MAX}s; slowest client ${TOTAL_MAX}s; X-Larder-Cache: $STATUSES"
if awk -v a="$TTFB_MIN" -v b="$UP_RT" 'BEGIN { exit !(a < b / 2) }'; then
    pass "first byte (${TTFB_MIN}s) arrived in the first half of the upstream transfer (${UP_RT}s)"
else
    fail "first byte after ${TTFB_MIN}s, upstream transfer took ${UP_RT}s: clients are not streamed while downloading"
fi
if awk -v a="$TTFB_MAX" -v b="$UP_RT" 'BEGIN { exit !(a < b) }'; then
    pass "every client got its first byte (max ${TTFB_MAX}s) before the upstream finished (${UP_RT}s)"
else
    fail "a client waited ${TTFB_MAX}s for its first byte, longer than the whole upstream transfer (${UP_RT}s)"
fi

# ---- now cached -----------------------------------------------------------------------------------------------------
out=$(fetch "$URL" "$WORK/after.bin") || fail "GET after the single flight failed"
assert_eq "200 HIT" "$out" "request after the single flight"
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/after.bin")" "bytes of the cached object"
rm -f "$WORK/after.bin"
assert_eq 1 "$(nginx_count "$ALOG" GET /big.bin)" "still one upstream GET"
log "$(grep -c 'GET /files/origin/big.bin' "$LARDER_LOG" || true) request log lines for the object"

stop_larder
finish
