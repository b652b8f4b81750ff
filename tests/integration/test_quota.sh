#!/usr/bin/env bash
# test_quota.sh - total quota 10 MiB, 30 x 1 MiB files through a mirror: blob usage stays within quota + one object,
# LRU entries are evicted (metric), and a seeded (pinned) set of 2 files survives.
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
DATA=$WORK/data
ORIG=$WORK/origin
MiB=1048576
for i in $(seq -w 1 30); do make_file "$ORIG/root/f$i.bin" $MiB; done
make_file "$ORIG/root/keep/p1.bin" $MiB
make_file "$ORIG/root/keep/p2.bin" $MiB
start_nginx "$ORIG" "$NP"
ALOG=$ORIG/logs/access.log

CFG=$WORK/larder.yaml
CFG_QUOTA=10MiB write_config "$CFG" "$LP" "$DATA"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
EOF
start_larder "$CFG" "$LP"
L=$LARDER_URL/files

blob_bytes() { find "$DATA/blobs" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

# ---- seed a pin set of two files first -----------------------------------------------------------------------------
cat >"$WORK/keep.yaml" <<EOF
pin_set: keep
files:
  - origin/keep/p1.bin
  - origin/keep/p2.bin
EOF
rc=0
"$LARDER_BIN" seed --config "$CFG" "$WORK/keep.yaml" >"$WORK/seed.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "larder seed of the pin set 'keep' ($(tail -2 "$WORK/seed.log" | tr '\n' ' '))"
assert_cache "$L/origin/keep/p1.bin" HIT
assert_cache "$L/origin/keep/p2.bin" HIT

# ---- fill three times past the quota ----------------------------------------------------------------------------------
max_seen=0
for i in $(seq -w 1 30); do
    out=$(fetch "$L/origin/f$i.bin" "$WORK/got.bin") || fail "GET f$i.bin: curl failed"
    assert_contains "$out" "200 " "GET f$i.bin"
    assert_eq "$(sha256_file "$ORIG/root/f$i.bin")" "$(sha256_file "$WORK/got.bin")" "f$i.bin bytes"
    b=$(blob_bytes)
    [ "$b" -gt "$max_seen" ] && max_seen=$b
done
sleep 1 # eviction may run just after a commit
used=$(blob_bytes)
log "blob bytes now $used (max seen after a request: $max_seen); quota 10 MiB"
assert_le "$used" $((11 * MiB)) "blob bytes within quota + one object"
assert_le "$max_seen" $((11 * MiB)) "blob bytes never above quota + one object between requests"
ev=$(metric larder_evictions_total)
assert_gt "$ev" 0 "larder_evictions_total"
log "evictions: $ev"

# ---- LRU: the oldest unpinned entries went, the newest stayed ----------------------------------------------------------
assert_cache "$L/origin/f30.bin" HIT
before=$(nginx_count "$ALOG" GET /f01.bin)
assert_eq MISS "$(http_header "$L/origin/f01.bin" X-Larder-Cache)" "oldest entry was evicted"
assert_eq $((before + 1)) "$(nginx_count "$ALOG" GET /f01.bin)" "evicted entry fetched again"

# ---- the pinned set survived ------------------------------------------------------------------------------------------
for f in p1 p2; do
    out=$(fetch "$L/origin/keep/$f.bin" "$WORK/$f.got") || fail "GET pinned $f.bin"
    assert_eq "200 HIT" "$out" "pinned $f.bin survived eviction"
    assert_eq "$(sha256_file "$ORIG/root/keep/$f.bin")" "$(sha256_file "$WORK/$f.got")" "pinned $f.bin bytes"
    assert_eq 1 "$(nginx_count "$ALOG" GET "/keep/$f.bin")" "pinned $f.bin fetched upstream once"
done
pins=$(api GET pins)
assert_eq 200 "$(api_status)" "GET pins"
assert_contains "$pins" '"keep"' "pins lists the set"
set_json=$(api GET pins/keep)
assert_eq 200 "$(api_status)" "GET pins/keep"
assert_contains "$set_json" "keep/p1.bin" "pin set lists p1"
assert_contains "$set_json" "keep/p2.bin" "pin set lists p2"

# ---- a seed that cannot fit is refused clearly ---------------------------------------------------------------------------
for i in $(seq -w 1 12); do make_file "$ORIG/root/big/b$i.bin" $MiB; done
{
    echo "pin_set: toobig"
    echo "files:"
    for i in $(seq -w 1 12); do echo "  - origin/big/b$i.bin"; done
} >"$WORK/toobig.yaml"
rc=0
"$LARDER_BIN" seed --config "$CFG" "$WORK/toobig.yaml" >"$WORK/seed-toobig.log" 2>&1 </dev/null || rc=$?
assert_ne 0 "$rc" "seeding 12 MiB of pins into a 10 MiB quota fails"
log "too-big seed said: $(tail -3 "$WORK/seed-toobig.log" | tr '\n' ' ')"
assert_le "$(blob_bytes)" $((11 * MiB)) "blob bytes within quota after the refused seed"
assert_cache "$L/origin/keep/p1.bin" HIT

stop_larder
finish
