#!/usr/bin/env bash
# test_cold_release.sh - a large miss's (8 MiB or more) clients get their last byte once the body is verified, not
# once it is committed:
# with the commit held up after verification (test hook), a client of the miss and a client that joins it meanwhile
# both get the whole, correct object (the second one a HIT: it waits for no upstream), and nothing is an entry until
# the commit has run. A commit that fails after verification (no room within the quota) leaves its client the complete,
# verified body, and nothing is stored. (Aborted downloads: test_faults.sh.)
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
ORIG=$WORK/origin
make_file "$ORIG/root/a.bin" $((10 * 1024 * 1024))
make_file "$ORIG/root/big.bin" $((24 * 1024 * 1024))
A_SHA=$(sha256_file "$ORIG/root/a.bin")
BIG_SHA=$(sha256_file "$ORIG/root/big.bin")
start_nginx "$ORIG" "$NP"

CFG=$WORK/larder.yaml
CFG_QUOTA=20MiB CFG_IDLE=30s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
EOF
export LARDER_TEST_HOOKS=1
start_larder "$CFG" "$LP"
unset LARDER_TEST_HOOKS
BASE=$LARDER_URL/files/origin
STALL=30

stall_commit() {
    assert_status "$LARDER_URL/-/debug/stall?worker=commit&seconds=$STALL" 202 -X POST -H "Authorization: Bearer $ADMIN_TOKEN"
}

# ---- a verified body is released while its commit is held up ------------------------------------------------------
stall_commit
T0=$SECONDS
r=$(CURL_MAX_TIME=$((STALL - 10)) fetch "$BASE/a.bin" "$WORK/a.out") || fail "the miss was not answered in time: $r"
assert_eq "200 MISS" "$r" "the miss answers 200 MISS"
assert_eq "$A_SHA" "$(sha256_file "$WORK/a.out")" "the client got the whole object before the commit ran"
wait_for "the commit to be held up" 10 larder_log_has "the commit of .*a.bin waits $STALL s" ||
    fail "the commit hook did not run"
# the fetch is still in flight (committing): a second client joins it and gets the verified body at once
r=$(CURL_MAX_TIME=$((STALL - 10)) fetch "$BASE/a.bin" "$WORK/a2.out") || fail "the joining client was not answered in time: $r"
assert_eq "200 HIT" "$r" "a client joining the verified, committing fetch answers 200 HIT at once"
assert_eq "$A_SHA" "$(sha256_file "$WORK/a2.out")" "the joining client got the whole object"
entries=$(api GET "entries?protocol=files&limit=10")
[ $((SECONDS - T0)) -lt "$STALL" ] || fail "the clients were held until the commit ran"
pass "both clients were answered before the commit ran"
assert_not_contains "$entries" "a.bin" "nothing is an entry before its commit"
is_hit() { [ "$(http_header "$1" X-Larder-Cache -I)" = HIT ]; }
wait_for "a.bin to be committed" $((STALL + 30)) is_hit "$BASE/a.bin" || fail "a.bin was not committed after the hook"
pass "a.bin is an entry once its commit ran"

# ---- a commit that fails after verification keeps the verified bytes for its client ------------------------------
# big.bin (24 MiB) cannot fit within the 20 MiB quota whatever is evicted
r=$(fetch "$BASE/big.bin" "$WORK/big.out") || fail "big.bin: $r"
assert_eq "200 MISS" "$r" "a body that cannot be stored is still answered"
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/big.out")" "its client got the whole verified object"
wait_for "the failed commit" 10 larder_log_has "big.bin: not cached" || fail "big.bin's commit did not fail as expected"
assert_eq MISS "$(http_header "$BASE/big.bin" X-Larder-Cache -I)" "nothing was stored for big.bin"

finish
