#!/usr/bin/env bash
# test_verify.sh - the cache never answers wrong bytes as a success (issue 10: items 6, 7, 9, 15):
#   - a pin's sha256 cannot be bypassed through a mirror path naming the same URL (stored first, or in flight);
#   - an unknown-length (chunked or close-delimited) body that fails verification is never a complete 200, for
#     HTTP/1.0 clients (which cannot see an aborted body) and HTTP/1.1 clients alike;
#   - a malformed or contradictory upstream Content-Length fails the download (never cached);
#   - a lowered ttl applies to objects cached before the change.
. "$(dirname "$0")/lib.sh"

FP=$(free_port) # faulty python upstream
LP=$(free_port) # larder
DATA=$WORK/data

start_faulty "$WORK/faulty" "$FP"
RLOG=$WORK/faulty/requests.log
OK_SHA=$("$PY" "$LIB_DIR/faulty_upstream.py" --print-ok-sha256)
SLOW_SHA=$("$PY" "$LIB_DIR/faulty_upstream.py" --print-slow-sha256)
U=http://127.0.0.1:$FP

# write_cfg TTL -> the config with the files protocol's ttl
write_cfg() {
    write_config "$CFG" "$LP" "$DATA"
    cat >>"$CFG" <<EOF
files:
  ttl: $1
  pins:
    - name: poisoned
      url: $U/flip/1
      sha256: $OK_SHA
    - name: healed
      url: $U/oncebad/1
      sha256: $OK_SHA
    - name: joined
      url: $U/slowflip/1
      sha256: $SLOW_SHA
    - name: goodchunks
      url: $U/chunked/1
      sha256: $OK_SHA
    - name: chunkflip10
      url: $U/chunkflip/10
      sha256: $OK_SHA
    - name: chunkflip11
      url: $U/chunkflip/11
      sha256: $OK_SHA
    - name: short10
      url: $U/closeshort/10
      sha256: $OK_SHA
    - name: short11
      url: $U/closeshort/11
      sha256: $OK_SHA
  mirrors:
    - name: faulty
      url: $U/
EOF
}
CFG=$WORK/larder.yaml
write_cfg 1d
start_larder "$CFG" "$LP"
L=$LARDER_URL/files

upstream_hits() { grep -c "^GET $1\$" "$RLOG" || true; }

# not_success URL WHAT [CURL ARGS...] -> the client did not get a complete successful response
not_success() {
    local url=$1 what=$2 code rc=0
    shift 2
    code=$(curl -sS -o "$WORK/body" -w '%{http_code}' --max-time 60 "$@" "$url" 2>>"$WORK/curl-stderr.log") || rc=$?
    if [ "$rc" -ne 0 ] || [ "${code:-000}" != 200 ]; then
        pass "$what: no success (curl exit $rc, HTTP $code)"
    else
        fail "$what: HTTP 200 and curl exit 0 with $(file_size "$WORK/body") bytes, sha256 $(sha256_file "$WORK/body")"
    fi
}

# ---- item 6: a pin's digest is honoured whatever the mirror stored --------------------------------------------------
out=$(fetch "$L/faulty/flip/1" "$WORK/flip") || fail "mirror path: curl failed"
assert_eq "200 MISS" "$out" "mirror path (no digest) fetches the upstream bytes"
assert_ne "$OK_SHA" "$(sha256_file "$WORK/flip")" "the upstream bytes differ from the pin's sha256"
assert_cache "$L/faulty/flip/1" HIT
not_success "$L/poisoned" "pin after the mirror stored other bytes"
assert_ne HIT "$(http_header "$L/poisoned" X-Larder-Cache)" "pin with a mismatching stored entry is never a HIT"
assert_gt "$(upstream_hits /flip/1)" 1 "the pin went upstream to verify"

# a mismatching entry is replaced by the verified download
out=$(fetch "$L/faulty/oncebad/1" "$WORK/oncebad") || fail "mirror path oncebad: curl failed"
assert_eq "200 MISS" "$out" "mirror path stores the first (bad) answer"
assert_ne "$OK_SHA" "$(sha256_file "$WORK/oncebad")" "first answer is bad"
out=$(fetch "$L/healed" "$WORK/healed") || fail "pin healed: curl failed"
assert_eq "200 MISS" "$out" "pin refetches instead of serving the mismatching entry"
assert_eq "$OK_SHA" "$(sha256_file "$WORK/healed")" "pin: verified bytes"
assert_cache_soon "$L/healed" HIT
assert_cache "$L/faulty/oncebad/1" HIT
fetch "$L/faulty/oncebad/1" "$WORK/oncebad2" >/dev/null || fail "mirror path after the pin"
assert_eq "$OK_SHA" "$(sha256_file "$WORK/oncebad2")" "the verified object replaced the mismatching one"

# joining: a pin request never joins an unverified in-flight download of the same URL
curl -sS -o "$WORK/join.mirror" --max-time 60 "$L/faulty/slowflip/1" 2>/dev/null &
mpid=$!
track_pid "$mpid"
wait_for "mirror download streaming" 10 test -s "$WORK/join.mirror" || fail "no bytes from the slow mirror download"
not_success "$L/joined" "pin while an unverified download of its URL is in flight"
wait "$mpid" || true
untrack_pid "$mpid"
assert_ne HIT "$(http_header "$L/joined" X-Larder-Cache)" "pin after the unverified download is never a HIT"

# seeds: an item with a sha256 is never satisfied by an entry a mirror path stored with other bytes
# run_seed NAME SPEC_BODY -> the job's final state
run_seed() {
    printf 'pin_set: %s\nfiles:\n%s\n' "$1" "$2" >"$WORK/$1.yaml"
    local resp jid state=running job
    resp=$(api POST jobs --data-binary "@$WORK/$1.yaml" -H 'Content-Type: application/yaml')
    jid=$(json_get "$resp" 'd["id"]')
    for _ in $(seq 1 300); do
        job=$(api GET "jobs/$jid")
        state=$(json_get "$job" 'd.get("state", "")')
        [ "$state" = running ] || break
        sleep 0.1
    done
    echo "$state"
}
assert_eq failed "$(run_seed seedpoison "  - {path: faulty/flip/1, sha256: $OK_SHA}")" "seed with a sha256 refuses the mismatching entry"
fetch "$L/faulty/oncebad/2" "$WORK/oncebad.seed" >/dev/null || fail "mirror path oncebad/2"
assert_ne "$OK_SHA" "$(sha256_file "$WORK/oncebad.seed")" "oncebad/2: the mirror stored the bad answer"
assert_eq done "$(run_seed seedheal "  - {path: faulty/oncebad/2, sha256: $OK_SHA}")" "seed with a sha256 refetches and verifies"
fetch "$L/faulty/oncebad/2" "$WORK/oncebad.seed2" >/dev/null || fail "mirror path oncebad/2 after the seed"
assert_eq "$OK_SHA" "$(sha256_file "$WORK/oncebad.seed2")" "the seed's verified object replaced the mismatching one"

# ---- item 7: unknown length + expected digest ----------------------------------------------------------------------
for v in 1.0 1.1; do
    out=$(fetch "$L/goodchunks" "$WORK/goodchunks.$v" "--http$v") || fail "chunked pin, HTTP/$v: curl failed"
    assert_contains "$out" "200" "chunked pin with the right digest, HTTP/$v"
    assert_eq "$OK_SHA" "$(sha256_file "$WORK/goodchunks.$v")" "chunked pin bytes, HTTP/$v"
done
not_success "$L/chunkflip10" "chunked body with a flipped bit, HTTP/1.0 client" --http1.0
not_success "$L/chunkflip11" "chunked body with a flipped bit, HTTP/1.1 client" --http1.1
not_success "$L/short10" "close-delimited short body, HTTP/1.0 client" --http1.0
not_success "$L/short11" "close-delimited short body, HTTP/1.1 client" --http1.1
# no digest to compare, but the upstream connection broke: never a success either, and never cached
not_success "$L/faulty/closereset/10" "close-delimited body ended by a reset, HTTP/1.0 client" --http1.0
not_success "$L/faulty/closereset/11" "close-delimited body ended by a reset, HTTP/1.1 client" --http1.1
assert_ne HIT "$(http_header "$L/faulty/closereset/10" X-Larder-Cache)" "close-delimited reset body not cached"

# ---- item 9: malformed Content-Length --------------------------------------------------------------------------------
for p in badcl dupcl; do
    not_success "$L/faulty/$p/1" "upstream Content-Length ($p)"
    assert_status "$L/faulty/$p/1" 502
    assert_gt "$(upstream_hits /$p/1)" 1 "$p: not cached, the retry went upstream"
    larder_log_has "Content-Length" || fail "$p: the log names the Content-Length problem"
done
assert_not_contains "$(api GET 'entries?protocol=files')" "/badcl/" "malformed Content-Length: not listed in entries"

# ---- item 15: a lowered ttl applies to cached objects ------------------------------------------------------------------
out=$(fetch "$L/faulty/ok/ttl" "$WORK/ttl") || fail "ttl object: curl failed"
assert_eq "200 MISS" "$out" "ttl object fetched"
assert_cache "$L/faulty/ok/ttl" HIT
stop_larder
write_cfg 0s
start_larder "$CFG" "$LP"
before=$(upstream_hits /ok/ttl)
c=$(http_header "$L/faulty/ok/ttl" X-Larder-Cache)
assert_ne HIT "$c" "after ttl 1d -> 0s the cached object is not fresh ($c)"
assert_gt "$(upstream_hits /ok/ttl)" "$before" "after ttl 1d -> 0s the object was revalidated upstream"
stop_larder
write_cfg 1d
start_larder "$CFG" "$LP"
assert_cache "$L/faulty/ok/ttl" HIT

# ---- offline: wrong bytes are never the answer ---------------------------------------------------------------------
stop_larder
CFG_OFFLINE=true write_cfg 1d
start_larder "$CFG" "$LP"
assert_cache "$L/faulty/flip/1" HIT # the mirror path's own (undigested) entry is still served
not_success "$L/poisoned" "offline pin with a mismatching stored entry"
assert_status "$L/poisoned" 504
assert_status "$L/faulty/badcl/1" 504
assert_status "$L/faulty/dupcl/1" 504
assert_cache "$L/healed" HIT

curl -fsS "$LARDER_URL/-/health" >/dev/null || fail "health"
finish
