#!/usr/bin/env bash
# test_admin_api.sh - the admin API's entries, pins and hygiene (issue 14), against a real daemon and a real nginx
# upstream: GET /-/api/v1/entries pages through 260 cached files with limit=100 and returns each exactly once, q
# filters (case-insensitive, key or url), hits count answers from the cache; DELETE of an unpinned entry makes it a
# MISS again, of a pinned one is 409 naming the set; POST /-/api/v1/pins/SET/entries pins one entry (404 when not
# cached); GET /-/api/v1/pins counts what only one set pins; every read path answers a POST with 405 and Allow;
# /-/ui/ carries its Content-Security-Policy; successful admin reads are not logged at the default level while a
# write is; GET /-/api/v1/info says what the Clients page needs and never the token.
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
ORIG=$WORK/origin
mkdir -p "$ORIG/root/m"
for i in $(seq -w 1 260); do printf 'file %s\n' "$i" >"$ORIG/root/m/f$i.txt"; done
make_file "$ORIG/root/m/Big.BIN" 30000
cp "$ORIG/root/m/Big.BIN" "$ORIG/root/m/same.bin" # one blob, two entries
start_nginx "$ORIG" "$NP"
U=http://127.0.0.1:$NP

CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  mirrors:
    - name: origin
      url: $U/
  pins:
    - name: tool.bin
      url: $U/m/Big.BIN
EOF
start_larder "$CFG" "$LP"
L=$LARDER_URL/files/origin/m
urlenc() { "$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
key_of() { json_get "$(api GET "entries?q=$1")" 'd["entries"][0]["key"]'; }

for i in $(seq -w 1 260); do curl -fsS -o /dev/null "$L/f$i.txt" || fail "could not fetch f$i.txt"; done
assert_eq "200 MISS" "$(fetch "$L/Big.BIN" "$WORK/big")" "Big.BIN cached"
assert_eq "200 MISS" "$(fetch "$L/same.bin" "$WORK/same")" "same.bin cached (the same bytes)"

# ---- paging ----------------------------------------------------------------------------------------------------
keys=$WORK/keys
: >"$keys"
cursor=
pages=0
while :; do
    page=$(api GET "entries?protocol=files&limit=100${cursor:+&cursor=$cursor}")
    assert_eq 200 "$(api_status)" "GET entries page $pages"
    json_get "$page" '"\n".join(e["key"] for e in d["entries"])' | sed '/^$/d' >>"$keys"
    n=$(json_get "$page" 'len(d["entries"])')
    assert_le "$n" 100 "a page holds at most limit entries"
    cursor=$(json_get "$page" 'd["next_cursor"] or ""')
    pages=$((pages + 1))
    [ -n "$cursor" ] || break
    [ "$pages" -lt 10 ] || fail "paging does not end"
done
assert_eq 262 "$(wc -l <"$keys")" "262 entries listed over the pages"
assert_eq 262 "$(sort -u "$keys" | wc -l)" "each entry exactly once"
assert_eq 3 "$pages" "three pages of 100"
first=$(api GET "entries?limit=1")
assert_eq 1 "$(json_get "$first" 'len(d["entries"])')" "limit=1: one entry"
assert_ne "None" "$(json_get "$first" 'd["next_cursor"]')" "limit=1: a cursor for the next page"
for k in protocol key url sha256 size fetched_at last_access hits pinned pin_sets immutable fresh_until; do
    assert_eq True "$(json_get "$first" "'$k' in d['entries'][0]")" "an entry has $k"
done
api GET "entries?limit=1001" >/dev/null
assert_eq 400 "$(api_status)" "limit over 1000: 400"
api GET "entries?cursor=zz" >/dev/null
assert_eq 400 "$(api_status)" "a cursor not given out: 400"
api GET "entries?protocol=nope" >/dev/null
assert_eq 400 "$(api_status)" "an unknown protocol: 400"
assert_eq 100 "$(json_get "$(api GET entries)" 'len(d["entries"])')" "limit defaults to 100"

# ---- q ---------------------------------------------------------------------------------------------------------
out=$(api GET "entries?protocol=files&q=F25")
assert_eq "f250.txt f251.txt f252.txt f253.txt f254.txt f255.txt f256.txt f257.txt f258.txt f259.txt" \
    "$(json_get "$out" '" ".join(sorted(e["key"].rsplit("/",1)[-1] for e in d["entries"]))')" \
    "q=F25 finds f250..f259, case-insensitively"
assert_eq None "$(json_get "$out" 'd["next_cursor"]')" "a filtered list that fits has no cursor"
out=$(api GET "entries?q=big.bin")
assert_eq 1 "$(json_get "$out" 'len(d["entries"])')" "q matches the key: Big.BIN"
out=$(api GET "entries?q=$NP%2Fm%2Ff007")
assert_eq 1 "$(json_get "$out" 'len(d["entries"])')" "q matches the url (percent-encoded)"
cnt=0 cursor=
while :; do
    out=$(api GET "entries?q=f2&limit=10${cursor:+&cursor=$cursor}")
    cnt=$((cnt + $(json_get "$out" 'len(d["entries"])')))
    cursor=$(json_get "$out" 'd["next_cursor"] or ""')
    [ -n "$cursor" ] || break
done
assert_eq 61 "$cnt" "q=f2 over pages of 10: f200..f260, each once"

# ---- hits ------------------------------------------------------------------------------------------------------
hits() { json_get "$(api GET "entries?q=f003.txt")" 'd["entries"][0]["hits"]'; }
assert_eq 0 "$(hits)" "no hits after the MISS"
for _ in 1 2 3; do assert_eq "200 HIT" "$(fetch "$L/f003.txt" "$WORK/x")" "f003 HIT"; done
assert_eq 3 "$(hits)" "three HITs counted"
stop_larder
start_larder "$CFG" "$LP"
assert_eq 3 "$(hits)" "the hits survive a restart (written at stop)"
fetch "$L/f003.txt" "$WORK/x" >/dev/null
assert_eq 4 "$(hits)" "and go on counting"

# ---- delete ----------------------------------------------------------------------------------------------------
KEY=$(key_of f010.txt)
code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$LARDER_URL/-/api/v1/entries?protocol=files&key=$(urlenc "$KEY")")
assert_eq 401 "$code" "DELETE without the token: 401"
out=$(api DELETE "entries?protocol=files&key=$(urlenc "$KEY")")
assert_eq 200 "$(api_status)" "DELETE an unpinned entry: 200"
assert_eq "$KEY" "$(json_get "$out" 'd["deleted"]')" "the answer names the key"
api DELETE "entries?protocol=files&key=$(urlenc "$KEY")" >/dev/null
assert_eq 404 "$(api_status)" "DELETE it again: 404"
assert_eq "200 MISS" "$(fetch "$L/f010.txt" "$WORK/x")" "the deleted entry is a MISS again"
api DELETE "entries?protocol=files" >/dev/null
assert_eq 400 "$(api_status)" "DELETE without key: 400"

# a blob two entries share stays until the last one goes
BIGKEY=$(key_of Big.BIN)
SAMEKEY=$(key_of same.bin)
DIG=$(sha256sum "$ORIG/root/m/Big.BIN" | cut -d' ' -f1)
BLOB=$WORK/data/blobs/sha256/${DIG:0:2}/$DIG
api DELETE "entries?protocol=files&key=$(urlenc "$SAMEKEY")" >/dev/null
assert_eq 200 "$(api_status)" "DELETE same.bin"
[ -f "$BLOB" ] || fail "the blob Big.BIN still uses was removed"
pass "a blob another entry references stays"

# ---- pin one entry ---------------------------------------------------------------------------------------------
api POST pins/set1/entries --data "{\"protocol\":\"files\",\"key\":\"$BIGKEY\"}" >/dev/null
assert_eq 200 "$(api_status)" "pin Big.BIN in set1"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST --data "{\"protocol\":\"files\",\"key\":\"$BIGKEY\"}" \
    "$LARDER_URL/-/api/v1/pins/set1/entries")
assert_eq 401 "$code" "pinning without the token: 401"
api POST pins/set1/entries --data '{"protocol":"files","key":"no/such/key"}' >/dev/null
assert_eq 404 "$(api_status)" "pinning an entry that is not cached: 404"
api POST pins/set1/entries --data 'nope' >/dev/null
assert_eq 400 "$(api_status)" "a body that is not JSON: 400"
assert_contains "$(api GET pins/set1)" "\"$BIGKEY\"" "set1 lists the entry"
out=$(api GET "entries?q=Big.BIN")
assert_eq True "$(json_get "$out" 'd["entries"][0]["pinned"]')" "the entry says pinned"
assert_eq '["set1"]' "$(json_get "$out" 'd["entries"][0]["pin_sets"]')" "and names its set"
out=$(api DELETE "entries?protocol=files&key=$(urlenc "$BIGKEY")")
assert_eq 409 "$(api_status)" "DELETE of a pinned entry: 409"
assert_contains "$out" "pinned in set set1: unpin it first" "the 409 names the set"
assert_eq "200 HIT" "$(fetch "$L/Big.BIN" "$WORK/x")" "the pinned entry is still served"

# ---- exclusive counts -----------------------------------------------------------------------------------------
K1=$(key_of f001.txt)
K2=$(key_of f002.txt)
api POST pins/set1/entries --data "{\"protocol\":\"files\",\"key\":\"$K1\"}" >/dev/null
api POST pins/set2/entries --data "{\"protocol\":\"files\",\"key\":\"$K1\"}" >/dev/null
api POST pins/set2/entries --data "{\"protocol\":\"files\",\"key\":\"$K2\"}" >/dev/null
out=$(api GET pins)
s1='[s for s in d["pin_sets"] if s["name"] == "set1"][0]'
s2='[s for s in d["pin_sets"] if s["name"] == "set2"][0]'
assert_eq 2 "$(json_get "$out" "$s1[\"entries\"]")" "set1: 2 entries"
assert_eq 1 "$(json_get "$out" "$s1[\"exclusive_entries\"]")" "set1: 1 of them its own (Big.BIN)"
assert_eq 30000 "$(json_get "$out" "$s1[\"exclusive_bytes\"]")" "set1: its own bytes"
assert_eq 1 "$(json_get "$out" "$s2[\"exclusive_entries\"]")" "set2: 1 of its own (f002)"
assert_eq 9 "$(json_get "$out" "$s2[\"exclusive_bytes\"]")" "set2: 9 bytes of its own"
out=$(api GET "entries?q=f001.txt")
assert_eq '["set1", "set2"]' "$(json_get "$out" 'sorted(d["entries"][0]["pin_sets"])')" "an entry in two sets names both"

# ---- 405 and Allow ---------------------------------------------------------------------------------------------
allow_of() { # allow_of METHOD PATH -> "CODE|Allow"
    curl -sS -o /dev/null -D "$WORK/h405" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" \
        "$LARDER_URL$2" >"$WORK/c405"
    printf '%s|%s' "$(cat "$WORK/c405")" "$(grep -i '^allow:' "$WORK/h405" | cut -d' ' -f2- | tr -d '\r')"
}
for p in /-/health /-/metrics /-/ui/ /-/ui /-/api/v1/stats /-/api/v1/info /-/api/v1/pins /-/api/v1/pins/set1/spec \
    /-/api/v1/pins/set1/bundle; do
    assert_eq "405|GET, HEAD" "$(allow_of POST "$p")" "POST $p: 405 with Allow"
done
assert_eq "405|GET, HEAD, DELETE" "$(allow_of POST /-/api/v1/entries)" "POST entries: 405 with Allow"
assert_eq "405|GET, HEAD, DELETE" "$(allow_of PUT /-/api/v1/pins/set1)" "PUT a pin set: 405 with Allow"
assert_eq "405|POST" "$(allow_of GET /-/api/v1/pins/set1/entries)" "GET pins/SET/entries: 405 with Allow"
assert_eq "405|POST" "$(allow_of GET /-/api/v1/imports)" "GET imports: 405 with Allow"
assert_eq "405|GET, HEAD, POST, DELETE" "$(allow_of PUT /-/api/v1/record)" "PUT record: 405 with Allow"
assert_eq "405|GET, HEAD, PUT, DELETE" "$(allow_of POST /-/api/v1/imports/0123456789abcdef0123456789abcdef)" \
    "POST an import: 405 with Allow"
assert_eq "405|POST" "$(allow_of GET /-/api/v1/imports/0123456789abcdef0123456789abcdef/commit)" \
    "GET an import's commit: 405 with Allow"
assert_eq "application/json" "$(http_header "$LARDER_URL/-/api/v1/stats" content-type -X POST)" "a 405 is JSON"

# ---- headers ---------------------------------------------------------------------------------------------------
CSP="default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
assert_header "$LARDER_URL/-/ui/" content-security-policy "$CSP"
assert_header "$LARDER_URL/-/ui/" x-content-type-options nosniff
assert_header "$LARDER_URL/-/ui/" referrer-policy no-referrer
assert_header "$LARDER_URL/-/ui/no-such-file" content-security-policy "$CSP"
assert_header "$LARDER_URL/-/api/v1/stats" x-content-type-options nosniff
assert_eq "" "$(http_header "$LARDER_URL/-/api/v1/stats" content-security-policy)" "no CSP on JSON"

# ---- logging ---------------------------------------------------------------------------------------------------
curl -fsS -o /dev/null "$LARDER_URL/-/api/v1/stats?marker=quiet1"
curl -fsS -o /dev/null "$LARDER_URL/-/ui/?marker=quiet2"
curl -fsS -o /dev/null "$LARDER_URL/-/health?marker=quiet3"
curl -sS -o /dev/null "$LARDER_URL/-/api/v1/nope?marker=loud1"
api POST pins/set3/entries --data "{\"protocol\":\"files\",\"key\":\"$K2\"}" >/dev/null
curl -fsS -o /dev/null "$L/f004.txt?marker=loud2"
wait_for "the write's log line" 5 grep -q 'POST /-/api/v1/pins/set3/entries 200' "$LARDER_LOG"
assert_eq 0 "$(grep -c 'marker=quiet' "$LARDER_LOG" || true)" "admin GETs that succeed are not logged at info"
assert_eq 1 "$(grep -c 'api/v1/nope?marker=loud1 404' "$LARDER_LOG" || true)" "an admin error is logged"
assert_eq 1 "$(grep -c 'marker=loud2' "$LARDER_LOG" || true)" "a client request is logged"

# ---- info ------------------------------------------------------------------------------------------------------
out=$(api GET info)
assert_eq 200 "$(api_status)" "GET info"
assert_eq 0.1.0 "$(json_get "$out" 'd["version"]')" "info: version"
assert_eq False "$(json_get "$out" 'd["offline"]')" "info: offline"
assert_eq True "$(json_get "$out" 'd["admin_token_set"]')" "info: the token is set"
assert_not_contains "$out" "$ADMIN_TOKEN" "info never shows the token"
assert_eq "/files/" "$(json_get "$out" 'd["protocols"]["files"]["mount"]')" "info: a module's mount"
assert_eq True "$(json_get "$out" 'd["protocols"]["files"]["enabled"]')" "info: a module's enabled flag"
assert_eq '["docker.io"]' "$(json_get "$out" 'd["oci_registries"]')" "info: the OCI registries (the default)"
assert_eq docker.io "$(json_get "$out" 'd["protocols"]["oci"]["docker_hub"]')" "info: which one is Docker Hub"
assert_eq '{"pins": ["tool.bin"], "mirrors": ["origin"]}' "$(json_get "$out" 'd["files"]')" "info: files names"
assert_eq True "$(json_get "$out" 'd["protocols"]["apt"]["proxy"]')" "info: the module that answers as a proxy"
assert_eq False "$(json_get "$out" 'd["record"]["recording"]')" "info: not recording"

stop_larder
finish
