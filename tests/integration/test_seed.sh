#!/usr/bin/env bash
# test_seed.sh - `larder seed` and the admin API: a spec of pins and mirror paths is fetched and pinned; a spec with
# bad items fails naming them; unauthenticated writes are refused; jobs via the API; deleting a pin set.
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
ORIG=$WORK/origin
make_file "$ORIG/root/rel/tool-2.0.tar.gz" 200000
for f in a b c d e; do make_file "$ORIG/root/x/$f.bin" $((10000 + RANDOM)); done
TOOL_SHA=$(sha256_file "$ORIG/root/rel/tool-2.0.tar.gz")
C_SHA=$(sha256_file "$ORIG/root/x/c.bin")
start_nginx "$ORIG" "$NP"
ALOG=$ORIG/logs/access.log
U=http://127.0.0.1:$NP

CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  pins:
    - name: tool
      url: $U/rel/tool-2.0.tar.gz
      sha256: $TOOL_SHA
  mirrors:
    - name: origin
      url: $U/
EOF
start_larder "$CFG" "$LP"
L=$LARDER_URL/files

seed() { # seed SPEC LOG -> exit code of `larder seed`
    local rc=0
    timeout 120 "$LARDER_BIN" seed --config "$CFG" "$1" >"$2" 2>&1 </dev/null || rc=$?
    return $rc
}

# ---- a good spec ------------------------------------------------------------------------------------------------------------
cat >"$WORK/good.yaml" <<EOF
pin_set: tutor-18
files:
  - tool
  - origin/x/a.bin
  - "origin/x/b.bin"
  - path: origin/x/c.bin
    sha256: $C_SHA
EOF
rc=0
seed "$WORK/good.yaml" "$WORK/seed-good.log" || rc=$?
assert_eq 0 "$rc" "larder seed good.yaml exits 0 ($(tail -3 "$WORK/seed-good.log" | tr '\n' ' '))"
for p in tool origin/x/a.bin origin/x/b.bin origin/x/c.bin; do assert_cache "$L/$p" HIT; done
for f in /rel/tool-2.0.tar.gz /x/a.bin /x/b.bin /x/c.bin; do
    assert_eq 1 "$(nginx_count "$ALOG" GET "$f")" "$f fetched upstream exactly once"
done
fetch "$L/origin/x/c.bin" "$WORK/c.got" >/dev/null || fail "GET c.bin"
assert_eq "$C_SHA" "$(sha256_file "$WORK/c.got")" "seeded bytes"
pins=$(api GET pins)
assert_eq 200 "$(api_status)" "GET pins"
assert_contains "$pins" '"tutor-18"' "pins lists the set"
set_json=$(api GET pins/tutor-18)
assert_eq 200 "$(api_status)" "GET pins/tutor-18"
for f in rel/tool-2.0.tar.gz x/a.bin x/b.bin x/c.bin; do assert_contains "$set_json" "$f" "pin set lists $f"; done
entries=$(api GET 'entries?protocol=files')
for f in rel/tool-2.0.tar.gz x/a.bin x/b.bin x/c.bin; do assert_contains "$entries" "$U/$f" "entries lists $f"; done
# seeding again is idempotent and fetches nothing
rc=0
seed "$WORK/good.yaml" "$WORK/seed-good2.log" || rc=$?
assert_eq 0 "$rc" "re-seeding the same spec exits 0"
assert_eq 1 "$(nginx_count "$ALOG" GET /x/a.bin)" "re-seeding fetched nothing again"

# ---- a spec with bad items -----------------------------------------------------------------------------------------------------
cat >"$WORK/bad.yaml" <<EOF
pin_set: broken
files:
  - origin/x/d.bin
  - origin/x/missing-file.bin
  - nosuchpin
  - path: origin/x/e.bin
    sha256: 1111111111111111111111111111111111111111111111111111111111111111
EOF
rc=0
seed "$WORK/bad.yaml" "$WORK/seed-bad.log" || rc=$?
assert_ne 0 "$rc" "larder seed with bad items exits non-zero"
badout=$(cat "$WORK/seed-bad.log")
assert_contains "$badout" "missing-file.bin" "failure output names the upstream 404 item"
assert_contains "$badout" "nosuchpin" "failure output names the unknown pin"
assert_contains "$badout" "e.bin" "failure output names the digest mismatch"
assert_not_contains "$(echo "$badout" | grep -i -E 'fail|error' || true)" "origin/x/d.bin" "the good item is not reported as failed"
assert_cache "$L/origin/x/d.bin" HIT
assert_eq MISS "$(http_header "$L/origin/x/e.bin" X-Larder-Cache)" "the digest-mismatching item was not cached"

# malformed specs
printf 'pin_set: [oops\nfiles: - a\n' >"$WORK/garbage.yaml"
rc=0
seed "$WORK/garbage.yaml" "$WORK/seed-garbage.log" || rc=$?
assert_ne 0 "$rc" "malformed YAML spec fails ($(head -1 "$WORK/seed-garbage.log"))"
printf 'files:\n  - origin/x/a.bin\n' >"$WORK/noset.yaml"
rc=0
seed "$WORK/noset.yaml" "$WORK/seed-noset.log" || rc=$?
assert_ne 0 "$rc" "spec without pin_set fails ($(head -1 "$WORK/seed-noset.log"))"
rc=0
seed "$WORK/does-not-exist.yaml" "$WORK/seed-nofile.log" || rc=$?
assert_ne 0 "$rc" "missing spec file fails"

# ---- authentication ------------------------------------------------------------------------------------------------------------
J=$LARDER_URL/-/api/v1
assert_status "$J/jobs" 401 -X POST --data-binary "@$WORK/good.yaml" -H 'Content-Type: application/yaml'
assert_status "$J/jobs" 401 -X POST --data-binary "@$WORK/good.yaml" -H 'Authorization: Bearer wrong-token'
assert_status "$J/jobs" 401 -X POST --data-binary "@$WORK/good.yaml" -H "Authorization: Basic $(printf 'admin:%s' "$ADMIN_TOKEN" | base64)"
assert_status "$J/pins/tutor-18" 401 -X DELETE
assert_status "$J/pins/tutor-18" 401 -X DELETE -H 'Authorization: Bearer wrong-token'
assert_contains "$(api GET pins)" '"tutor-18"' "unauthenticated DELETE changed nothing"
# a seed CLI whose config has a wrong token fails cleanly
sed "s/token: $ADMIN_TOKEN/token: not-the-token/" "$CFG" >"$WORK/wrongtoken.yaml"
rc=0
timeout 60 "$LARDER_BIN" seed --config "$WORK/wrongtoken.yaml" "$WORK/good.yaml" >"$WORK/seed-wrongtoken.log" 2>&1 </dev/null || rc=$?
assert_ne 0 "$rc" "larder seed with a wrong token fails ($(tail -1 "$WORK/seed-wrongtoken.log"))"

# ---- jobs through the API -------------------------------------------------------------------------------------------------------
cat >"$WORK/api.yaml" <<EOF
pin_set: via-api
files:
  - origin/x/e.bin
EOF
resp=$(api POST jobs --data-binary "@$WORK/api.yaml" -H 'Content-Type: application/yaml')
assert_eq 202 "$(api_status)" "POST jobs"
JID=$(json_get "$resp" 'd["id"]')
assert_ne "" "$JID" "job id"
state=running
for _ in $(seq 1 300); do
    job=$(api GET "jobs/$JID")
    state=$(json_get "$job" 'd.get("state", "")')
    [ "$state" = running ] || break
    sleep 0.1
done
assert_eq "done" "$state" "API seed job finished ($job)"
assert_cache "$L/origin/x/e.bin" HIT
assert_contains "$(api GET pins)" '"via-api"' "API job created its pin set"

# ---- deleting a pin set -----------------------------------------------------------------------------------------------------------
api DELETE pins/via-api >/dev/null
assert_match "$(api_status)" '^20[04]$' "DELETE pins/via-api"
assert_not_contains "$(api GET pins)" '"via-api"' "deleted set no longer listed"
assert_cache "$L/origin/x/e.bin" HIT # unpinned, not deleted

stop_larder
finish
