#!/usr/bin/env bash
# test_store_damage.sh - damage under the cache, not from the upstream:
#  (1) bit rot in a stored blob is caught while it is served (verify_on_read): the transfer is aborted, the blob
#      goes to <data>/quarantine/, the log names it, the next request is a MISS with good bytes (offline: 504);
#  (2) a damaged RocksDB (garbage in an .sst; CURRENT deleted) is refused at start-up, `larder fsck` deletes nothing,
#      `larder fsck --repair-db` recovers, and the blobs (pinned ones included) are still on disk and served by digest.
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
DATA=$WORK/data
ORIG=$WORK/origin
N=20
for i in $(seq 1 $N); do make_file "$ORIG/root/f$i.bin" $((20000 + i * 1000)); done
make_file "$ORIG/root/big.bin" $((2 * 1024 * 1024 + 12345)) # several send buffers
make_file "$ORIG/root/one.bin" 70000                        # a single buffer
start_nginx "$ORIG" "$NP"
ALOG=$ORIG/logs/access.log

CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$DATA"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
EOF
CFG_OFF=$WORK/larder-offline.yaml
CFG_OFFLINE=true write_config "$CFG_OFF" "$LP" "$DATA"
sed -n '/^files:/,$p' "$CFG" >>"$CFG_OFF"

blob_of() { echo "$DATA/blobs/sha256/${1:0:2}/$1"; }
blob_count() { find "$DATA/blobs/sha256" -type f | wc -l; }
# flip FILE OFFSET [keep] - invert one byte in place (bit rot that keeps the size); with "keep", the file's mtime
# is restored too, as real bit rot leaves it
flip() {
    "$PY" - "$1" "$2" "${3:-}" <<'EOF'
import os, sys
path, off, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "keep"
st = os.stat(path)
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
if keep:
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
EOF
}
# get URL OUT [CURL ARGS] -> "curl_exit http_code"
get() {
    local url=$1 out=$2 rc=0 code
    shift 2
    code=$(curl -sS -o "$out" -w '%{http_code}' --max-time 30 "$@" "$url" 2>>"$WORK/curl-stderr.log") || rc=$?
    echo "$rc $code"
}

# ---- (1) bit rot is caught while serving ---------------------------------------------------------------------------
start_larder "$CFG" "$LP"
L=$LARDER_URL/files
BIG_SHA=$(sha256_file "$ORIG/root/big.bin")
ONE_SHA=$(sha256_file "$ORIG/root/one.bin")
for f in big one; do
    out=$(fetch "$L/origin/$f.bin" "$WORK/$f.1") || fail "GET $f.bin"
    assert_eq "200 MISS" "$out" "$f.bin fetched"
done
assert_cache_soon "$L/origin/big.bin" HIT
assert_cache_soon "$L/origin/one.bin" HIT
out=$(fetch "$L/origin/big.bin" "$WORK/big.2") || fail "GET big.bin (HIT)"
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/big.2")" "an intact blob is served whole on a HIT"

flip "$(blob_of "$BIG_SHA")" 300000 # in the second send buffer: the first one has already gone out
res=$(get "$L/origin/big.bin" "$WORK/big.rot")
rc=${res% *}
if [ "$rc" -ne 0 ]; then pass "rotten blob: transfer aborted (curl exit $rc, HTTP ${res#* })"; else
    fail "rotten blob served as a complete response (HTTP ${res#* }, $(file_size "$WORK/big.rot") bytes)"
fi
assert_ne "$BIG_SHA" "$(sha256_file "$WORK/big.rot")" "the client did not get bytes that look complete"
[ ! -e "$(blob_of "$BIG_SHA")" ] && pass "rotten blob gone from blobs/" || fail "rotten blob still in blobs/"
q=$(find "$DATA/quarantine" -name "$BIG_SHA.*" -type f 2>/dev/null | sed -n 1p)
[ -n "$q" ] && pass "rotten blob kept in quarantine (${q#"$DATA"/})" || fail "no $BIG_SHA.* in $DATA/quarantine"
assert_match "$(cat "$LARDER_LOG")" "$BIG_SHA of files [^ ]*/big.bin is corrupt" "the log names the blob, protocol and key"
out=$(fetch "$L/origin/big.bin" "$WORK/big.3") || fail "GET big.bin after quarantine"
assert_eq "200 MISS" "$out" "after quarantine: MISS (refetched)"
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/big.3")" "after quarantine: good bytes"
assert_eq 2 "$(nginx_count "$ALOG" GET /big.bin)" "the refetch went upstream"
assert_cache_soon "$L/origin/big.bin" HIT
out=$(fetch "$L/origin/big.bin" "$WORK/big.4") || fail "GET big.bin (HIT after refetch)"
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/big.4")" "HIT after the refetch: good bytes"
# an HTTP/1.0 client (no chunking, Content-Length only) sees the abort too
flip "$(blob_of "$BIG_SHA")" 5
res=$(get "$L/origin/big.bin" "$WORK/big.rot10" --http1.0)
[ "${res% *}" -ne 0 ] && pass "HTTP/1.0: aborted (curl exit ${res% *})" || fail "HTTP/1.0: rotten blob served complete"
stop_larder

# store.verify_interval: a blob a worker verified lately (and unchanged on disk) is not hashed again by it; with 0s,
# every read is hashed, so rot that leaves the mtime alone is caught right after a verified HIT
CFG_V0=$WORK/larder-v0.yaml
cp "$CFG" "$CFG_V0"
printf 'store:\n  verify_interval: 0s\n' >>"$CFG_V0"
start_larder "$CFG_V0" "$LP"
for i in 1 2 3 4; do fetch "$L/origin/big.bin" "$WORK/big.v0.$i" >/dev/null || fail "GET big.bin (verified HIT $i)"; done
assert_eq "$BIG_SHA" "$(sha256_file "$WORK/big.v0.4")" "verified HITs: good bytes"
flip "$(blob_of "$BIG_SHA")" 1000000 keep
res=$(get "$L/origin/big.bin" "$WORK/big.v0.rot")
[ "${res% *}" -ne 0 ] && pass "verify_interval 0s: rot under an unchanged mtime caught at once (curl exit ${res% *})" ||
    fail "verify_interval 0s: rotten blob served complete right after verified HITs (HTTP ${res#* })"
stop_larder
# and with the default interval, a new process hashes it again whatever it verified before
start_larder "$CFG" "$LP"
out=$(fetch "$L/origin/big.bin" "$WORK/big.5") || fail "GET big.bin (refetch after the verify_interval case)"
assert_eq "200 MISS" "$out" "refetched"
assert_cache_soon "$L/origin/big.bin" HIT
stop_larder
start_larder "$CFG" "$LP"
flip "$(blob_of "$BIG_SHA")" 7 keep
res=$(get "$L/origin/big.bin" "$WORK/big.v1.rot")
[ "${res% *}" -ne 0 ] && pass "a new process hashes the blob again (curl exit ${res% *})" ||
    fail "rotten blob (mtime kept) served complete by a new process (HTTP ${res#* })"
stop_larder

# offline: a single-buffer blob; the abort, then a 504 (nothing to refetch from)
flip "$(blob_of "$ONE_SHA")" 69999
start_larder "$CFG_OFF" "$LP"
res=$(get "$L/origin/one.bin" "$WORK/one.rot")
[ "${res% *}" -ne 0 ] && pass "offline: rotten blob aborted (curl exit ${res% *})" || fail "offline: rotten blob served (HTTP ${res#* })"
assert_status "$L/origin/one.bin" 504
assert_status "$L/sha256/$ONE_SHA" 404
stop_larder

# ---- (2) a damaged metadata store -----------------------------------------------------------------------------------
start_larder "$CFG" "$LP"
for i in $(seq 1 $N); do fetch "$L/origin/f$i.bin" /dev/null >/dev/null || fail "GET f$i.bin"; done
cat >"$WORK/pins.yaml" <<EOF
pin_set: keep
files:
  - origin/f1.bin
  - origin/f2.bin
  - origin/f3.bin
EOF
rc=0
timeout 60 "$LARDER_BIN" seed --config "$CFG" "$WORK/pins.yaml" >"$WORK/seed.log" 2>&1 </dev/null || rc=$?
assert_eq 0 "$rc" "pin set seeded ($(tail -1 "$WORK/seed.log"))"
for i in $(seq 1 $N); do assert_cache_soon "$L/origin/f$i.bin" HIT; done
# a second larder on the same data_dir: the lock hint, and only there
rc=0
"$LARDER_BIN" fsck --config "$CFG" >"$WORK/fsck.locked.log" 2>&1 || rc=$?
assert_eq 2 "$rc" "fsck while the daemon runs is refused"
assert_contains "$(cat "$WORK/fsck.locked.log")" "another larder" "a lock conflict says so"
stop_larder
# a clean fsck run replays the WAL into an .sst; the copy is for the CURRENT case below
rc=0
"$LARDER_BIN" fsck --config "$CFG" >"$WORK/fsck.0.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "fsck of the intact store is clean ($(grep '^fsck:' "$WORK/fsck.0.log"))"
cp -a "$DATA" "$WORK/data.copy"
BLOBS=$(blob_count)
assert_eq "$N" "$BLOBS" "blob files before the damage (big and one are in quarantine)"
PIN_SHA=$(sha256_file "$ORIG/root/f1.bin")

# garbage inside the table file
# (the largest table holds the entries; the garbage lands in its first data block, the file keeps its size)
sst=$(ls -S "$DATA"/db/*.sst 2>/dev/null | sed -n 1p)
[ -n "$sst" ] || fail "no .sst in $DATA/db ($(ls "$DATA/db" | tr '\n' ' '))"
sst_size=$(file_size "$sst")
head -c $((sst_size / 4)) /dev/urandom | dd of="$sst" bs=1 seek=16 conv=notrunc status=none
assert_eq "$sst_size" "$(file_size "$sst")" "garbage written inside $(basename "$sst")"
rc=0
timeout 20 "$LARDER_BIN" serve --config "$CFG" >"$WORK/serve.sst.log" 2>&1 || rc=$?
assert_ne 0 "$rc" "larder serve refuses a damaged metadata store (exit $rc)"
msg=$(cat "$WORK/serve.sst.log")
assert_contains "$msg" "larder fsck --repair-db" "the refusal names the recovery"
assert_not_contains "$msg" "another larder" "no lock hint when there is no lock conflict"
rc=0
"$LARDER_BIN" fsck --config "$CFG" >"$WORK/fsck.sst.log" 2>&1 || rc=$?
assert_eq 2 "$rc" "fsck refuses a damaged metadata store"
assert_contains "$(cat "$WORK/fsck.sst.log")" "--repair-db" "fsck says how to recover"
assert_eq "$BLOBS" "$(blob_count)" "fsck deleted no blob"
rc=0
"$LARDER_BIN" fsck --repair-db --config "$CFG" >"$WORK/fsck.repair.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "fsck --repair-db succeeds ($(grep '^fsck:' "$WORK/fsck.repair.log" | head -1))"
assert_eq "$BLOBS" "$(blob_count)" "every blob is still on disk after the repair"
for i in 1 2 3; do
    [ -f "$(blob_of "$(sha256_file "$ORIG/root/f$i.bin")")" ] || fail "pinned f$i.bin blob lost"
done
pass "pinned blobs still on disk"
rc=0
"$LARDER_BIN" fsck --config "$CFG" >"$WORK/fsck.after.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "fsck after the repair is clean ($(grep '^fsck:' "$WORK/fsck.after.log"))"
assert_eq "$BLOBS" "$(blob_count)" "a later fsck keeps the re-indexed blobs"
CFG_OFFLINE=true
start_larder "$CFG_OFF" "$LP"
out=$(fetch "$L/sha256/$PIN_SHA" "$WORK/pin.bysha") || fail "GET by digest after the repair"
assert_contains "$out" "200" "offline, by digest: re-indexed blob served"
assert_eq "$PIN_SHA" "$(sha256_file "$WORK/pin.bysha")" "re-indexed blob: bytes"
stop_larder
start_larder "$CFG" "$LP"
before=$(nginx_count "$ALOG" GET /f5.bin)
out=$(fetch "$L/origin/f5.bin" "$WORK/f5.after") || fail "GET f5.bin after the repair"
assert_contains "$out" "200" "by name after the repair"
assert_eq "$(sha256_file "$ORIG/root/f5.bin")" "$(sha256_file "$WORK/f5.after")" "by name after the repair: bytes"
assert_cache_soon "$L/origin/f5.bin" HIT
log "upstream GETs of f5.bin after the repair: $(($(nginx_count "$ALOG" GET /f5.bin) - before))"
stop_larder
rc=0
"$LARDER_BIN" fsck --config "$CFG" >"$WORK/fsck.adopt.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "fsck after an entry adopted a re-indexed blob is clean ($(grep '^fsck:' "$WORK/fsck.adopt.log"))"
assert_eq "$BLOBS" "$(blob_count)" "blob count after adoption"

# CURRENT deleted: no empty database over the old files
rm -rf "$DATA"
mv "$WORK/data.copy" "$DATA"
rm -f "$DATA/db/CURRENT"
rc=0
timeout 20 "$LARDER_BIN" serve --config "$CFG" >"$WORK/serve.current.log" 2>&1 || rc=$?
assert_ne 0 "$rc" "larder serve refuses a store without CURRENT (exit $rc)"
assert_contains "$(cat "$WORK/serve.current.log")" "larder fsck --repair-db" "the refusal names the recovery"
[ ! -e "$DATA/db/CURRENT" ] && pass "no empty database was created" || fail "an empty database was created over the old files"
rc=0
"$LARDER_BIN" fsck --config "$CFG" >"$WORK/fsck.current.log" 2>&1 || rc=$?
assert_eq 2 "$rc" "fsck refuses a store without CURRENT"
assert_eq "$BLOBS" "$(blob_count)" "fsck deleted no blob (CURRENT missing)"
rc=0
"$LARDER_BIN" fsck --repair-db --config "$CFG" >"$WORK/fsck.repair2.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "fsck --repair-db without CURRENT ($(grep '^fsck:' "$WORK/fsck.repair2.log" | head -1))"
assert_eq "$BLOBS" "$(blob_count)" "every blob is still on disk"
start_larder "$CFG_OFF" "$LP"
# the tables were intact: the entries and the pin set come back
for i in 1 7 20; do
    out=$(fetch "$L/origin/f$i.bin" "$WORK/f$i.cur") || fail "GET f$i.bin after repair (CURRENT)"
    assert_eq "200 HIT" "$out" "f$i.bin is a HIT offline after the repair"
    assert_eq "$(sha256_file "$ORIG/root/f$i.bin")" "$(sha256_file "$WORK/f$i.cur")" "f$i.bin bytes"
done
assert_contains "$(api GET pins/keep)" "f2.bin" "the pin set survived"
stop_larder

finish
