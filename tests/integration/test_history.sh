#!/usr/bin/env bash
# test_history.sh - the persisted counters (/-/api/v1/stats), their time series (/-/api/v1/history) and the
# upstreams' health and hold-off (/-/api/v1/upstreams), against a real nginx upstream and curl:
#   - every counter equals the traffic made (requests, hits, misses, errors, bytes served, from upstream, saved)
#   - a seed job's upstream bytes count as bytes_seed, not bytes_upstream; a HIT of what it fetched is saved bytes
#   - the history's sums equal the counters; totals and history survive a restart (counters_since kept)
#   - an upstream that is killed is held off after timeouts.holdoff_after failures (misses fail at once, with the
#     message), shows in /upstreams, and a probe after the hold-off ends it once the upstream is back
#   - 400 on a bad range or step, 405 with Allow on a POST
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
ORIG=$WORK/origin
R=$ORIG/root
make_file "$R/a.bin" 100000
make_file "$R/b.bin" 50000
make_file "$R/c.bin" 30000
make_file "$R/s.bin" 70000
make_file "$R/slow/big.bin" 400000
export NGINX_EXTRA="location /slow/ { limit_rate 100k; }"
start_nginx "$ORIG" "$NP"
U=http://127.0.0.1:$NP

CFG=$WORK/larder.yaml
CFG_CONNECT=1s write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
  holdoff_after: 2
  holdoff: 2s
  holdoff_max: 4s
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: $U/
EOF
start_larder "$CFG" "$LP"
F=$LARDER_URL/files/origin

# stats_get EXPR -> the expression on d = /-/api/v1/stats
stats_get() { json_get "$(api GET stats)" "$1"; }
# hist RANGE STEP EXPR -> the expression on d = /-/api/v1/history (sum: Python's sum)
hist() { json_get "$(api GET "history?range=$1&step=$2")" "$3"; }

# ---- a fresh daemon counts nothing ------------------------------------------------------------------------------
assert_eq 0 "$(stats_get 'd["protocols"]["files"]["requests"]')" "no requests yet"
assert_eq None "$(stats_get 'd["total"]["hit_ratio"]')" "hit_ratio is null without cache answers"
SINCE=$(stats_get 'd["counters_since"]')
assert_gt "$SINCE" 1600000000 "counters_since is a time"

# ---- traffic: 2 misses, 2 hits, 1 upstream 404 ----------------------------------------------------------------------
assert_eq "200 MISS" "$(fetch "$F/a.bin" "$WORK/a1")" "a.bin: miss"
assert_eq "200 HIT" "$(fetch "$F/a.bin" "$WORK/a2")" "a.bin: hit"
assert_eq "200 HIT" "$(fetch "$F/a.bin" "$WORK/a3")" "a.bin: hit again"
assert_eq "200 MISS" "$(fetch "$F/b.bin" "$WORK/b1")" "b.bin: miss"
assert_eq "404 MISS" "$(fetch "$F/missing.bin" "$WORK/m1")" "missing.bin: the upstream's 404"
cmp -s "$WORK/a3" "$R/a.bin" || fail "a.bin from the cache differs"

check_counts() { # check_counts WHEN: the counters of the traffic above (and the seed below when SEEDED=1)
    local when=$1 d seed=${SEEDED:-0}
    d=$(api GET stats)
    local hits=$((2 + seed)) requests=$((5 + seed)) served=$((350000 + seed * 70000)) saved=$((200000 + seed * 70000))
    assert_eq "$requests" "$(json_get "$d" 'd["protocols"]["files"]["requests"]')" "$when: requests"
    assert_eq "$hits" "$(json_get "$d" 'd["protocols"]["files"]["hits"]')" "$when: hits"
    assert_eq 2 "$(json_get "$d" 'd["protocols"]["files"]["misses"]')" "$when: misses"
    assert_eq 0 "$(json_get "$d" 'd["protocols"]["files"]["stale"]')" "$when: stale"
    # the upstream's 404: one failed fetch and one error answer
    assert_eq 2 "$(json_get "$d" 'd["protocols"]["files"]["errors"]')" "$when: errors"
    assert_eq "$served" "$(json_get "$d" 'd["protocols"]["files"]["bytes_served"]')" "$when: bytes_served"
    assert_eq 150000 "$(json_get "$d" 'd["protocols"]["files"]["bytes_upstream"]')" "$when: bytes_upstream (clients)"
    assert_eq $((seed * 70000)) "$(json_get "$d" 'd["protocols"]["files"]["bytes_seed"]')" "$when: bytes_seed"
    assert_eq "$saved" "$(json_get "$d" 'd["protocols"]["files"]["bytes_saved"]')" "$when: bytes_saved = HIT bytes"
    assert_eq "$(json_get "$d" 'round('"$hits"' / ('"$hits"' + 2), 6)')" \
        "$(json_get "$d" 'round(d["protocols"]["files"]["hit_ratio"], 6)')" "$when: hit_ratio"
    assert_eq "$requests $served $saved" \
        "$(json_get "$d" '"%d %d %d" % (d["total"]["requests"], d["total"]["bytes_served"], d["total"]["bytes_saved"])')" \
        "$when: the total object"
    assert_eq "$SINCE" "$(json_get "$d" 'd["counters_since"]')" "$when: counters_since"
    local h
    for rs in "1h 1m" "24h 5m" "7d 1h" "90d 1d"; do
        # shellcheck disable=SC2086
        h=$(api GET "history?range=${rs% *}&step=${rs#* }")
        assert_eq "$requests $hits 2 2 $served 150000 $((seed * 70000)) $saved" "$(json_get "$h" '" ".join(str(sum(d["series"]["files"][k])) for k in ("requests", "hits", "misses", "errors", "bytes_served", "bytes_upstream", "bytes_seed", "bytes_saved"))')" \
            "$when: history range ${rs% *} step ${rs#* }: the files series sum to the counters"
        assert_eq "$requests $served" "$(json_get "$h" '"%d %d" % (sum(d["series"]["total"]["requests"]), sum(d["series"]["total"]["bytes_served"]))')" \
            "$when: history ${rs% *}: the total series"
    done
}
check_counts "after the traffic"

h=$(api GET "history?range=1h&step=5m")
assert_eq "12 12 300 ok" "$(json_get "$h" '"%d %d %d %s" % (len(d["times"]), len(d["series"]["files"]["requests"]), d["step"], "ok" if d["end"] - d["start"] == 3600 and d["times"][0] == d["start"] and all(b - a == 300 for a, b in zip(d["times"], d["times"][1:])) else "bad")')" \
    "history 1h/5m: 12 aligned points"
assert_eq "288 86400" "$(json_get "$(api GET history)" '"%d %d" % (len(d["times"]), d["end"] - d["start"])')" \
    "history defaults: 24h in 5m steps"
assert_eq "$(json_get "$h" 'd["series"]["files"]["requests"][-1] + d["series"]["files"]["requests"][-2]')" 5 \
    "the traffic is in the last two 5 minute steps"

# ---- a seed job: its upstream bytes are bytes_seed, then a HIT of it is saved --------------------------------------
printf 'pin_set: hist\nfiles:\n  - origin/s.bin\n' >"$WORK/spec.yaml"
resp=$(api POST jobs --data-binary "@$WORK/spec.yaml" -H 'Content-Type: application/yaml')
assert_eq 202 "$(api_status)" "seed job accepted ($resp)"
JID=$(json_get "$resp" 'd["id"]')
state=running
for _ in $(seq 1 100); do
    state=$(json_get "$(api GET "jobs/$JID")" 'd.get("state", "")')
    [ "$state" = running ] || break
    sleep 0.1
done
assert_eq done "$state" "the seed job finished"
assert_eq "200 HIT" "$(fetch "$F/s.bin" "$WORK/s1")" "s.bin: a hit of the seeded copy"
SEEDED=1 check_counts "after the seed"
assert_eq 70000 "$(metric larder_bytes_seed_total 'protocol="files"')" "/-/metrics: larder_bytes_seed_total"
assert_eq 150000 "$(metric larder_bytes_upstream_total 'protocol="files"')" "/-/metrics: larder_bytes_upstream_total"
assert_eq 6 "$(metric larder_requests_total 'protocol="files"')" "/-/metrics: larder_requests_total"

# ---- a restart keeps them all -----------------------------------------------------------------------------------------
stop_larder
start_larder "$CFG" "$LP"
SEEDED=1 check_counts "after a restart"
assert_eq 3 "$(metric larder_cache_hits_total 'protocol="files"')" "/-/metrics: lifetime hits after a restart"
assert_eq "200 HIT" "$(fetch "$F/b.bin" "$WORK/b2")" "b.bin: a hit after the restart"
assert_eq 4 "$(stats_get 'd["protocols"]["files"]["hits"]')" "the hit after the restart counts on top"
assert_eq 4 "$(hist 1h 1m 'sum(d["series"]["files"]["hits"])')" "and in the history"

# a kill -9 loses at most the last 10 s: after a flush, the counts are there
sleep 11
kill9_larder
start_larder "$CFG" "$LP"
assert_eq 4 "$(stats_get 'd["protocols"]["files"]["hits"]')" "after kill -9 (flushed 10 s before)"

# ---- /-/api/v1/upstreams and the hold-off ----------------------------------------------------------------------------
up=$(api GET upstreams)
assert_eq 200 "$(api_status)" "GET upstreams"
assert_eq "files origin $U/ False 0 None" \
    "$(json_get "$up" '" ".join(str(x) for x in [(u["protocol"], u["name"], u["url"], u["held_off"], u["consecutive_failures"], u["last_error"]) for u in d["upstreams"] if u["protocol"] == "files"][0])')" \
    "the files mirror is listed, healthy"
assert_eq 1 "$(json_get "$up" 'len([u for u in d["upstreams"] if u["protocol"] == "pypi" and u["name"] == "upstream" and u["last_success"] is None])')" \
    "an unused configured upstream is listed too (pypi's default), never contacted"
stop_pid "$NGINX_PID"
for i in 1 2; do
    out=$(fetch "$F/c.bin" "$WORK/c$i")
    assert_match "$out" '^50[24] ' "c.bin with the upstream down: fails ($i)"
done
up=$(api GET upstreams)
assert_eq "True 2" "$(json_get "$up" '" ".join(str(x) for x in [(u["held_off"], u["consecutive_failures"]) for u in d["upstreams"] if u["url"] == "'"$U/"'"][0])')" \
    "after 2 failures the mirror is held off ($up)"
assert_gt "$(json_get "$up" '[u for u in d["upstreams"] if u["url"] == "'"$U/"'"][0]["held_off_until"]')" "$(date +%s)" \
    "held_off_until is in the future"
t0=$(date +%s%N)
out=$(fetch "$F/c.bin" "$WORK/c3")
t1=$(date +%s%N)
assert_match "$out" '^50[24] ' "a miss while held off fails"
assert_le $(((t1 - t0) / 1000000)) 500 "at once (ms)"
assert_contains "$(cat "$WORK/c3")" "upstream $U/ is held off for " "the answer says why"
larder_log_has "upstream $U/ is held off for 2 s after 2 failures" || fail "the hold-off is not logged"
pass "the hold-off is logged"
# a.bin is still served from the cache
assert_eq "200 HIT" "$(fetch "$F/a.bin" "$WORK/a4")" "cached objects are still served"
# the upstream comes back; after the hold-off a probe goes through and ends it
start_nginx "$ORIG" "$NP"
sleep 2.5
assert_eq "200 MISS" "$(fetch "$F/c.bin" "$WORK/c4")" "the probe after the hold-off fetches c.bin"
up=$(api GET upstreams)
assert_eq "False 0 None" "$(json_get "$up" '" ".join(str(x) for x in [(u["held_off"], u["consecutive_failures"], u["held_off_until"]) for u in d["upstreams"] if u["url"] == "'"$U/"'"][0])')" \
    "the hold-off is over"
assert_gt "$(json_get "$up" '[u for u in d["upstreams"] if u["url"] == "'"$U/"'"][0]["last_success"]')" 0 "last_success"
assert_contains "$(json_get "$up" '[u for u in d["upstreams"] if u["url"] == "'"$U/"'"][0]["last_error"]')" "onnect" \
    "last_error keeps the last failure's reason"
larder_log_has "upstream $U/ answers again" || fail "the recovery is not logged"
pass "the recovery is logged"

# ---- a client that joins a seed job's download: the bytes are the job's -----------------------------------------------
before=$(stats_get '"%d %d %d" % (d["protocols"]["files"]["bytes_upstream"], d["protocols"]["files"]["bytes_seed"], d["protocols"]["files"]["bytes_saved"])')
read -r UP0 SEED0 SAVED0 <<<"$before"
printf 'pin_set: hist2\nfiles:\n  - origin/slow/big.bin\n' >"$WORK/spec2.yaml"
resp=$(api POST jobs --data-binary "@$WORK/spec2.yaml" -H 'Content-Type: application/yaml')
assert_eq 202 "$(api_status)" "a seed job of a slow download ($resp)"
JID=$(json_get "$resp" 'd["id"]')
sleep 1
assert_eq 1 "$(stats_get 'd["fetches_active"]')" "the job's download is running"
assert_eq "200 MISS" "$(fetch "$F/slow/big.bin" "$WORK/big1")" "a client joins it"
cmp -s "$WORK/big1" "$R/slow/big.bin" || fail "the joined download's bytes differ"
for _ in $(seq 1 100); do
    [ "$(json_get "$(api GET "jobs/$JID")" 'd.get("state", "")')" = running ] || break
    sleep 0.1
done
assert_eq "$UP0 $((SEED0 + 400000)) $SAVED0" \
    "$(stats_get '"%d %d %d" % (d["protocols"]["files"]["bytes_upstream"], d["protocols"]["files"]["bytes_seed"], d["protocols"]["files"]["bytes_saved"])')" \
    "the joined download counts as bytes_seed, not bytes_upstream, and saved nothing"
assert_eq 1 "$(nginx_count "$ORIG/logs/access.log" GET /slow/big.bin)" "one upstream request for both"

# ---- bad queries and methods ---------------------------------------------------------------------------------------
api GET "history?range=2h" >"$WORK/bad1"
assert_eq 400 "$(api_status)" "range=2h"
assert_contains "$(cat "$WORK/bad1")" "range must be one of 1h, 24h, 7d, 30d, 90d" "range=2h: the allowed ranges"
api GET "history?range=7d&step=5m" >"$WORK/bad2"
assert_eq 400 "$(api_status)" "range=7d&step=5m"
assert_contains "$(cat "$WORK/bad2")" "use one of 1h, 6h, 1d" "7d in 5m steps: the allowed steps"
api GET "history?range=1h&step=6h" >"$WORK/bad3"
assert_eq 400 "$(api_status)" "a step longer than the range"
api GET "history?step=2m" >"$WORK/bad4"
assert_eq 400 "$(api_status)" "step=2m"
for p in history upstreams; do
    assert_status "$LARDER_URL/-/api/v1/$p" 405 -X POST -H "Authorization: Bearer $ADMIN_TOKEN"
    assert_header "$LARDER_URL/-/api/v1/$p" Allow "GET, HEAD" -X DELETE
done
stop_larder
finish
