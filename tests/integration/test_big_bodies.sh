#!/usr/bin/env bash
# test_big_bodies.sh - bodies past the sizes larder hashes as they arrive (4 MiB) and releases only once committed
# (8 MiB): the curl thread writes them in 256 KiB pieces and a hash thread hashes them from the temp file while they
# download. Checked with a faulty upstream (tests/integration/faulty_upstream.py /big*):
#   - a pinned sha256 is verified over the whole body: the right bytes are stored, one bit flipped near the end
#     (hashed by the hash thread, not inline) aborts the client and stores nothing;
#   - a chunked body of unknown length is stored under the digest of exactly its bytes;
#   - two downloads at once share the hash thread and both come out right;
#   - a slow upstream's bytes reach a tailing client while the download still runs (a partial piece is written
#     within milliseconds, not once 256 KiB have gathered).
# Integration tests of the pieces and the hash thread with small bodies: test_faults.sh, test_cold_release.sh.
. "$(dirname "$0")/lib.sh"

FP=$(free_port)
LP=$(free_port)
DATA=$WORK/data
start_faulty "$WORK/faulty" "$FP"
RLOG=$WORK/faulty/requests.log
BIG_SHA=$("$PY" "$LIB_DIR/faulty_upstream.py" --print-big-sha256)
TRICKLE_SHA=$("$PY" "$LIB_DIR/faulty_upstream.py" --print-bigtrickle-sha256)

CFG=$WORK/larder.yaml
CFG_IDLE=30s write_config "$CFG" "$LP" "$DATA"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  pins:
    - name: bigpin
      url: http://127.0.0.1:$FP/big/pin
      sha256: $BIG_SHA
    - name: bigbad
      url: http://127.0.0.1:$FP/bigflip/pin
      sha256: $BIG_SHA
  mirrors:
    - name: faulty
      url: http://127.0.0.1:$FP/
EOF
start_larder "$CFG" "$LP"
L=$LARDER_URL/files

# ---- a chunked body of unknown length: stored under the digest of its bytes ----------------------------------------
out=$(fetch "$L/faulty/bigchunked/1" "$WORK/chunked") || fail "chunked big body: $out"
assert_eq "200 MISS" "$out" "chunked big body"
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/chunked")" "chunked big body: bytes"
assert_cache_soon "$L/faulty/bigchunked/1" HIT
entry_sha() { # entry_sha URL_SUFFIX -> the sha256 the entries API gives for the files entry whose key ends so
    api GET "entries?protocol=files&limit=100" | "$PY" -c 'import json, sys
print(next((e["sha256"] for e in json.load(sys.stdin).get("entries", []) if e["key"].endswith(sys.argv[1])), ""))' "$1"
}
assert_eq "$BIG_SHA" "$(entry_sha /bigchunked/1)" "the chunked body is stored under the digest of its bytes"

# ---- a pinned digest, verified over the whole body ------------------------------------------------------------------
out=$(fetch "$L/bigpin" "$WORK/bigpin") || fail "pin, right digest: $out"
assert_eq "200 MISS" "$out" "pin with the right sha256"
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/bigpin")" "pin with the right sha256: bytes"
assert_cache_soon "$L/bigpin" HIT

rc=0
code=$(curl -sS -o "$WORK/bigbad" -w '%{http_code}' --max-time 60 "$L/bigbad" 2>>"$WORK/curl-stderr.log") || rc=$?
if [ "$rc" -ne 0 ] || [ "${code:-000}" -ge 500 ]; then
    pass "one bit flipped near the end: the client saw an error (curl exit $rc, HTTP $code)"
else
    fail "one bit flipped near the end: HTTP $code with $(file_size "$WORK/bigbad") bytes and curl exit 0"
fi
[ "$(file_size "$WORK/bigbad")" -lt $((12 * 1024 * 1024)) ] || fail "the client of the flipped body got every byte"
wait_for "the mismatch in the log" 10 larder_log_has "bigflip/pin failed: sha256 mismatch" ||
    fail "no sha256 mismatch was logged for the flipped body"
pass "the mismatch was logged"
case "$(http_header "$L/bigbad" X-Larder-Cache)" in HIT | STALE | REVALIDATED) fail "the flipped body was cached" ;; esac
assert_not_contains "$(api GET 'entries?protocol=files')" "bigflip" "the flipped body is not an entry"

# ---- two downloads at once ------------------------------------------------------------------------------------------
fetch "$L/faulty/big/a" "$WORK/big.a" >"$WORK/big.a.r" &
PA=$!
fetch "$L/faulty/big/b" "$WORK/big.b" >"$WORK/big.b.r" &
PB=$!
wait "$PA" || fail "concurrent download a: $(cat "$WORK/big.a.r")"
wait "$PB" || fail "concurrent download b: $(cat "$WORK/big.b.r")"
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/big.a")" "concurrent download a: bytes"
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/big.b")" "concurrent download b: bytes"
assert_cache_soon "$L/faulty/big/a" HIT
assert_cache_soon "$L/faulty/big/b" HIT
assert_eq "$BIG_SHA" "$(entry_sha /big/a)" "concurrent download a: stored under its digest"
assert_eq "$BIG_SHA" "$(entry_sha /big/b)" "concurrent download b: stored under its digest"

# ---- a slow upstream: its bytes reach the tailing client while the download runs ------------------------------------
# the upstream sends 6 MiB + 1000 bytes at once, falls silent for 3 s, then sends 8 x 16 KiB: the client has every
# byte of the first part during the silence (curl -N: unbuffered) only if a partial 256 KiB piece is written as it waits, not once whole
curl -sS -N -o "$WORK/trickle" --max-time 60 "$L/faulty/bigtrickle/1" 2>>"$WORK/curl-stderr.log" &
PT=$!
FAST=$((6 * 1024 * 1024 + 1000)) # faulty_upstream.py TRICKLE_FAST
has_fast() { [ -s "$WORK/trickle" ] && [ "$(file_size "$WORK/trickle")" -ge "$FAST" ]; }
client_done() { ! kill -0 "$PT" 2>/dev/null; }
if wait_for "the first part" 2 has_fast; then
    client_done && fail "the download ended before the check (the upstream is silent for 3 s)"
    pass "a slow upstream's bytes reached the client while the download ran ($(file_size "$WORK/trickle") bytes)"
else
    fail "the client had $(file_size "$WORK/trickle" 2>/dev/null) of the first $FAST bytes 2 s into the upstream's 3 s silence"
fi
wait "$PT" || fail "the trickling download failed"
assert_eq "$TRICKLE_SHA" "$(sha256_file "$WORK/trickle")" "trickled body: bytes"
assert_eq 1 "$(grep -c '^GET /bigtrickle/1$' "$RLOG")" "one upstream request for the trickled body"

finish
