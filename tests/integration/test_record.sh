#!/usr/bin/env bash
# test_record.sh - `larder record` and /-/api/v1/record: while a recording runs every answer from the cache (MISS,
# HIT, REVALIDATED, a HEAD) pins its entry to the set, errors and answers after the stop do not; one recording at a
# time; the token guards start and stop; a client filter records one client only (curl --interface 127.0.0.2);
# a recording ends with the daemon, its pins stay; offline, a STALE answer is recorded too.
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
ORIG=$WORK/origin
for f in a b c d e f g; do make_file "$ORIG/root/x/$f.bin" $((20000 + RANDOM)); done
start_nginx "$ORIG" "$NP"
U=http://127.0.0.1:$NP

CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  ttl: 2s
  mirrors:
    - name: origin
      url: $U/
EOF
start_larder "$CFG" "$LP"
L=$LARDER_URL/files/origin/x

rec() { # rec ARGS... -> output of `larder record` (stdout+stderr); exit code in $WORK/rec.rc
    local rc=0
    timeout 30 "$LARDER_BIN" record "$@" --config "$CFG" >"$WORK/rec.out" 2>&1 </dev/null || rc=$?
    echo "$rc" >"$WORK/rec.rc"
    cat "$WORK/rec.out"
}
rec_rc() { cat "$WORK/rec.rc"; }
pinned() { api GET "pins/$1" | "$PY" -c 'import json,sys
d = json.load(sys.stdin)
print(" ".join(sorted(e["key"].rsplit("/", 1)[-1] for e in (d if isinstance(d, list) else d.get("entries", [])))))'; }

# ---- before any recording ------------------------------------------------------------------------------------------
out=$(rec status)
assert_eq 0 "$(rec_rc)" "record status exits 0 with nothing recording"
assert_contains "$out" "not recording" "status says not recording"
assert_eq "not recording" "$(rec stop | head -c 100 | grep -o 'nothing is recording' | sed 's/nothing is recording/not recording/')" \
    "stop with nothing recording says so"
assert_eq 1 "$(rec_rc)" "stop with nothing recording exits 1"
assert_eq "MISS" "$(fetch "$L/c.bin" "$WORK/c0" | cut -d' ' -f2)" "c.bin cached before the recording"

# ---- the token guards writes -----------------------------------------------------------------------------------------
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST --data '{"pin_set":"x"}' "$LARDER_URL/-/api/v1/record")
assert_eq 401 "$code" "POST /-/api/v1/record without the token: 401"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$LARDER_URL/-/api/v1/record")
assert_eq 401 "$code" "DELETE /-/api/v1/record without the token: 401"
api POST record --data '{"pin_set":"bad name!"}' >/dev/null
assert_eq 400 "$(api_status)" "a bad pin set name: 400"
api POST record --data 'not json' >/dev/null
assert_eq 400 "$(api_status)" "a body that is not JSON: 400"
out=$(rec start x1 --client 300.1.2.3)
assert_eq 2 "$(rec_rc)" "a bad client address: exit 2"
assert_contains "$out" "not a client address" "the message names the address problem"
assert_contains "$(rec status)" "not recording" "refused starts left nothing recording"

# ---- one recording ---------------------------------------------------------------------------------------------------
out=$(rec start build1)
assert_eq 0 "$(rec_rc)" "record start build1 exits 0 ($out)"
assert_contains "$out" "recording into pin set build1" "start prints the state"
out=$(rec start build2)
assert_eq 2 "$(rec_rc)" "a second recording is refused"
assert_contains "$out" "already recording into pin set build1" "the refusal names the running recording"

assert_eq "200 MISS" "$(fetch "$L/a.bin" "$WORK/a1")" "a.bin: MISS while recording"
assert_eq "200 HIT" "$(fetch "$L/c.bin" "$WORK/c1")" "c.bin: HIT while recording"
assert_eq "200 HIT" "$(fetch "$L/c.bin" "$WORK/c2")" "c.bin again"
assert_eq "200" "$(curl -sS -o /dev/null -w '%{http_code}' -I "$L/b.bin")" "HEAD b.bin"
assert_eq "404" "$(fetch "$L/missing.bin" "$WORK/m" | cut -d' ' -f1)" "an upstream 404 while recording"
out=$(rec status)
assert_contains "$out" "recording into pin set build1 (every client)" "status while recording"
assert_contains "$out" "3 entries pinned from 4 answers" "status counts distinct entries and answers ($out)"
st=$(api GET record)
assert_eq "True" "$(json_get "$st" 'd["recording"]')" "GET /-/api/v1/record: recording"
assert_eq "build1" "$(json_get "$st" 'd["pin_set"]')" "GET /-/api/v1/record: the set"

sleep 2.5 # ttl 2s: a.bin is stale, the next GET revalidates it
assert_eq "200 REVALIDATED" "$(fetch "$L/a.bin" "$WORK/a2")" "a.bin revalidated while recording"
out=$(rec stop)
assert_eq 0 "$(rec_rc)" "record stop exits 0"
assert_contains "$out" "last recording was pin set build1" "stop prints the final state"
assert_eq "MISS" "$(fetch "$L/d.bin" "$WORK/d1" | cut -d' ' -f2)" "d.bin fetched after the stop"
assert_eq "a.bin b.bin c.bin" "$(pinned build1)" "build1 holds what was served while recording: a (MISS, REVALIDATED), b (HEAD), c (HIT); not the 404 nor d.bin"

# pinned entries are what the set says: unpinning the set works as for a seeded set
assert_contains "$(api GET pins)" '"build1"' "GET /-/api/v1/pins lists the recorded set"

# ---- a client filter -----------------------------------------------------------------------------------------------
if curl -sS -o /dev/null --max-time 5 --interface 127.0.0.2 "$LARDER_URL/-/health" 2>/dev/null; then
    out=$(rec start build2 --client 127.0.0.2)
    assert_eq 0 "$(rec_rc)" "record start build2 --client 127.0.0.2 ($out)"
    assert_contains "$out" "(127.0.0.2)" "status names the client"
    fetch "$L/e.bin" "$WORK/e1" >/dev/null
    fetch "$L/f.bin" "$WORK/f1" --interface 127.0.0.2 >/dev/null
    fetch "$L/c.bin" "$WORK/c3" --interface 127.0.0.2 >/dev/null
    out=$(rec status)
    assert_contains "$out" "2 entries pinned from 2 answers, 1 answers to other clients not recorded" \
        "the other client's answer is counted as skipped ($out)"
    rec stop >/dev/null
    assert_eq "c.bin f.bin" "$(pinned build2)" "build2 holds only 127.0.0.2's answers"
    # a prefix
    rec start build3 --client 127.0.0.0/8 >/dev/null
    assert_eq 0 "$(rec_rc)" "record start --client 127.0.0.0/8"
    fetch "$L/g.bin" "$WORK/g1" >/dev/null
    rec stop >/dev/null
    assert_eq "g.bin" "$(pinned build3)" "a /8 prefix matches 127.0.0.1"
else
    skip "127.0.0.2 is not usable as a source address here: client filter not tested"
fi

# ---- recording ends with the daemon; the pins stay ---------------------------------------------------------------------
rec start build4 >/dev/null
fetch "$L/e.bin" "$WORK/e2" >/dev/null
stop_larder
start_larder "$CFG" "$LP"
assert_contains "$(rec status)" "not recording" "a restarted daemon is not recording"
assert_eq "e.bin" "$(pinned build4)" "the pins written before the restart are kept"
stop_larder

# ---- offline: an expired entry served STALE is recorded too ---------------------------------------------------------
CFG_OFF=$WORK/larder-offline.yaml
CFG_OFFLINE=true write_config "$CFG_OFF" "$LP" "$WORK/data"
sed -n '/^files:/,$p' "$CFG" >>"$CFG_OFF"
start_larder "$CFG_OFF" "$LP"
rec start build5 >/dev/null
assert_eq 0 "$(rec_rc)" "record start on an offline daemon"
sleep 2.1 # ttl 2s: d.bin (fetched after build1) has expired
assert_eq "200 STALE" "$(fetch "$L/d.bin" "$WORK/d2")" "d.bin served STALE offline"
rec stop >/dev/null
assert_eq "d.bin" "$(pinned build5)" "a STALE answer is recorded"
stop_larder
grep -q "record: recording into pin set build1 (every client)" "$WORK"/larder.*.log ||
    fail "the log says when a recording starts"
grep -q "record: pin set build1: recording stopped, 3 entries pinned" "$WORK"/larder.*.log ||
    fail "the log says when a recording stops and what it pinned"
pass "the log tells when recordings start and stop"
finish
