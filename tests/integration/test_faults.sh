#!/usr/bin/env bash
# test_faults.sh - upstream faults (reset, truncation, 500, wrong digest, unreachable, slow, silent), kill -9 during
# downloads, fsck after a crash and after blob corruption, and a full disk.
. "$(dirname "$0")/lib.sh"

FP=$(free_port)   # faulty python upstream
NP=$(free_port)   # nginx origin
LP=$(free_port)   # larder
DEAD=$(free_port) # nothing listens here
DATA=$WORK/data

start_faulty "$WORK/faulty" "$FP"
RLOG=$WORK/faulty/requests.log
OK_SHA=$("$PY" "$LIB_DIR/faulty_upstream.py" --print-ok-sha256)
SLOW_SHA=$("$PY" "$LIB_DIR/faulty_upstream.py" --print-slow-sha256)
ZERO_SHA=0000000000000000000000000000000000000000000000000000000000000000

ORIG=$WORK/origin
make_file "$ORIG/root/crash.bin" $((60 * 1024 * 1024))
make_file "$ORIG/root/small.bin" 100000
make_file "$ORIG/root/small2.bin" 200000
make_file "$ORIG/root/victim.bin" 300000
make_file "$ORIG/root/victim2.bin" 300000
make_file "$ORIG/root/huge.bin" $((50 * 1024 * 1024))
CRASH_SHA=$(sha256_file "$ORIG/root/crash.bin")
start_nginx "$ORIG" "$NP" 15m # crash.bin takes ~4 s
ALOG=$ORIG/logs/access.log

CFG=$WORK/larder.yaml
CFG_CONNECT=2s CFG_IDLE=3s write_config "$CFG" "$LP" "$DATA"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  pins:
    - name: goodsum
      url: http://127.0.0.1:$FP/ok/goodsum
      sha256: $OK_SHA
    - name: badsum
      url: http://127.0.0.1:$FP/ok/badsum
      sha256: $ZERO_SHA
    - name: deadpin
      url: http://127.0.0.1:$DEAD/file.bin
  mirrors:
    - name: faulty
      url: http://127.0.0.1:$FP/
    - name: origin
      url: http://127.0.0.1:$NP/
    - name: dead
      url: http://127.0.0.1:$DEAD/
EOF
start_larder "$CFG" "$LP"
L=$LARDER_URL/files

upstream_hits() { grep -c "^GET $1\$" "$RLOG" || true; }

# client_failed URL WHAT -> asserts the client did not get a complete successful response
client_failed() {
    local url=$1 what=$2 code rc=0
    code=$(curl -sS -o "$WORK/fault.body" -w '%{http_code}' --max-time 60 "$url" 2>>"$WORK/curl-stderr.log") || rc=$?
    if [ "$rc" -ne 0 ] || [ "${code:-000}" -ge 500 ]; then
        pass "$what: client saw an error (curl exit $rc, HTTP $code)"
    else
        fail "$what: expected an aborted connection or a 5xx, got HTTP $code with $(file_size "$WORK/fault.body") bytes and curl exit 0"
    fi
}

# not_cached URL UPSTREAM_PATH WHAT -> the next request is not a HIT, and the entries API does not list the URL
not_cached() {
    local url=$1 upath=$2 what=$3 cache entries
    cache=$(http_header "$url" X-Larder-Cache)
    case "$cache" in HIT | STALE | REVALIDATED) fail "$what: the failed download was cached (X-Larder-Cache: $cache)" ;; esac
    pass "$what: retry is $cache, not a cache hit"
    entries=$(api GET 'entries?protocol=files')
    assert_eq 200 "$(api_status)" "GET entries"
    assert_not_contains "$entries" "127.0.0.1:$FP$upath\"" "$what: entries API does not list it"
}

# ---- upstream faults --------------------------------------------------------------------------------------------------
client_failed "$L/faulty/reset/1" "reset mid-body"
not_cached "$L/faulty/reset/1" /reset/1 "reset mid-body"
assert_gt "$(upstream_hits /reset/1)" 1 "reset: the retry went upstream again"

client_failed "$L/faulty/truncate/1" "truncated body"
not_cached "$L/faulty/truncate/1" /truncate/1 "truncated body"
assert_gt "$(upstream_hits /truncate/1)" 1 "truncate: the retry went upstream again"

assert_status "$L/faulty/500/1" 502
not_cached "$L/faulty/500/1" /500/1 "upstream 500"
assert_gt "$(upstream_hits /500/1)" 1 "500: the retry went upstream again"

assert_status "$L/faulty/404/1" 404

code=$(http_status "$L/badsum")
if [ "$code" = 502 ]; then pass "wrong sha256 -> 502"; else client_failed "$L/badsum" "wrong sha256 (HTTP $code)"; fi
cache=$(http_header "$L/badsum" X-Larder-Cache)
assert_eq MISS "$cache" "wrong sha256: the next request is MISS again"
# a latecomer may join a fetch that is still streaming (200, then aborted) or find it failed (502): both are errors
client_failed "$L/badsum" "wrong sha256, third request"
assert_not_contains "$(api GET 'entries?protocol=files')" "/ok/badsum" "wrong sha256: not listed in entries"
# the mismatching bytes (whose digest is OK_SHA) were not stored either (not asked as /sha256/OK_SHA: that is the
# goodsum pin, which would fetch it)
[ ! -e "$DATA/blobs/sha256/${OK_SHA:0:2}/$OK_SHA" ] || fail "wrong sha256: the mismatching bytes were stored as a blob"
pass "wrong sha256: no blob of the mismatching bytes"

out=$(fetch "$L/goodsum" "$WORK/goodsum") || fail "pin with the right sha256: curl failed"
assert_eq "200 MISS" "$out" "pin with the right sha256"
assert_eq "$OK_SHA" "$(sha256_file "$WORK/goodsum")" "pin with the right sha256: bytes"
assert_cache "$L/goodsum" HIT

assert_status "$L/dead/file.bin" 502
assert_status "$L/deadpin" 502
out=$(fetch "$L/dead/file.bin" "$WORK/dead.body") || true
assert_contains "$out" "502" "unreachable upstream"

t0=$SECONDS
out=$(fetch "$L/faulty/slow/1" "$WORK/slow") || fail "slow upstream: curl failed"
assert_eq "200 MISS" "$out" "slow upstream completes"
assert_eq "$SLOW_SHA" "$(sha256_file "$WORK/slow")" "slow upstream bytes"
assert_cache "$L/faulty/slow/1" HIT
log "slow upstream took $((SECONDS - t0)) s"

t0=$SECONDS
client_failed "$L/faulty/hang/1" "upstream silent mid-body (idle timeout 3s)"
assert_le $((SECONDS - t0)) 30 "silent upstream given up within 30 s"
not_cached "$L/faulty/hang/1" /hang/1 "silent upstream"

assert_gt "$(metric larder_errors_total)" 0 "errors metric after upstream faults"
curl -fsS "$LARDER_URL/-/health" >/dev/null || fail "health after upstream faults"
pass "daemon healthy after upstream faults"

# ---- kill -9 during three downloads, restart ---------------------------------------------------------------------------
cpids=()
for i in 1 2 3; do
    curl -sS --max-time 60 -o "$WORK/crash.$i" "$L/origin/crash.bin" 2>/dev/null &
    cpids+=($!)
    track_pid "$!"
done
wait_for "bytes flowing" 10 test -s "$WORK/crash.1" || fail "no bytes arrived for the throttled download"
sleep 1
log "kill -9 larder with downloads in progress ($(file_size "$WORK/crash.1") bytes received by client 1)"
kill9_larder
for p in "${cpids[@]}"; do
    wait "$p" && fail "a client of the crashed daemon finished successfully"
    untrack_pid "$p"
done
pass "clients of the killed daemon saw errors"
leftovers=$(find "$DATA/tmp" -type f 2>/dev/null | wc -l)
log "tmp files left by the crash: $leftovers"
start_larder "$CFG" "$LP"
assert_eq 0 "$(find "$DATA/tmp" -type f 2>/dev/null | wc -l)" "start-up removed orphaned tmp files"
assert_status "$L/sha256/$CRASH_SHA" 404
out=$(fetch "$L/origin/crash.bin" "$WORK/crash.after") || fail "download after the crash: curl failed"
assert_eq "200 MISS" "$out" "download after the crash"
assert_eq "$CRASH_SHA" "$(sha256_file "$WORK/crash.after")" "bytes after the crash"
assert_cache_soon "$L/origin/crash.bin" HIT
log "upstream GETs of crash.bin: $(nginx_count "$ALOG" GET /crash.bin) (1 interrupted + 1 after restart expected)"
rm -f "$WORK"/crash.*

stop_larder
rc=0
"$LARDER_BIN" fsck --config "$CFG" >"$WORK/fsck.1.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "fsck after a crash and restart is clean ($(grep '^fsck:' "$WORK/fsck.1.log" || tail -1 "$WORK/fsck.1.log"))"
assert_match "$(cat "$WORK/fsck.1.log")" '^fsck:' "fsck prints a summary line"

# ---- blob corruption --------------------------------------------------------------------------------------------------
start_larder "$CFG" "$LP"
for v in victim victim2; do
    out=$(fetch "$L/origin/$v.bin" "$WORK/$v.1") || fail "GET $v"
    assert_eq "200 MISS" "$out" "$v fetched"
done
VIC_SHA=$(sha256_file "$ORIG/root/victim.bin")
VIC2_SHA=$(sha256_file "$ORIG/root/victim2.bin")
blob_of() { find "$DATA/blobs/sha256" -type f 2>/dev/null | grep -- "${1:2}" | sed -n 1p; }
VIC_BLOB=$(blob_of "$VIC_SHA")
VIC2_BLOB=$(blob_of "$VIC2_SHA")
[ -n "$VIC_BLOB" ] || fail "blob file for $VIC_SHA not found under $DATA/blobs/sha256 ($(find "$DATA/blobs" -type f | sed -n 1,3p))"
[ -n "$VIC2_BLOB" ] || fail "blob file for $VIC2_SHA not found"
pass "blob files found: ${VIC_BLOB#"$DATA"/}"

# (a) a blob truncated under a running daemon is never served short
truncate -s 1000 "$VIC2_BLOB"
code=0
got=$(curl -sS --max-time 30 "$L/origin/victim2.bin" 2>/dev/null | sha256_stdin) || true
if [ "$got" = "$VIC2_SHA" ]; then pass "truncated blob: re-fetched, correct bytes"; else
    code=$(http_status "$L/origin/victim2.bin")
    case "$code" in 5??) pass "truncated blob: refused with $code" ;; *) fail "truncated blob served with HTTP $code and wrong bytes" ;; esac
fi

# (b) a blob whose bytes (not size) were changed: fsck finds and repairs it
stop_larder
printf 'CORRUPTED-BY-TEST' | dd of="$VIC_BLOB" bs=1 seek=1000 conv=notrunc status=none
rc=0
"$LARDER_BIN" fsck --config "$CFG" >"$WORK/fsck.2.log" 2>&1 || rc=$?
assert_eq 1 "$rc" "fsck after corruption exits 1 ($(grep '^fsck:' "$WORK/fsck.2.log" || tail -1 "$WORK/fsck.2.log"))"
rc=0
"$LARDER_BIN" fsck --config "$CFG" >"$WORK/fsck.3.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "second fsck is clean ($(grep '^fsck:' "$WORK/fsck.3.log" || tail -1 "$WORK/fsck.3.log"))"
start_larder "$CFG" "$LP"
code=$(curl -sS -o "$WORK/vic.after" -w '%{http_code}' --max-time 30 "$L/origin/victim.bin" 2>/dev/null) || true
if [ "$code" = 200 ]; then
    assert_eq "$VIC_SHA" "$(sha256_file "$WORK/vic.after")" "after fsck: the object is re-fetched with correct bytes"
else
    pass "after fsck: not served ($code)"
fi
code=$(curl -sS -o "$WORK/vic.bysha" -w '%{http_code}' --max-time 30 "$L/sha256/$VIC_SHA" 2>/dev/null) || true
if [ "$code" = 200 ]; then
    assert_eq "$VIC_SHA" "$(sha256_file "$WORK/vic.bysha")" "after fsck: by digest, correct bytes"
else
    assert_eq 404 "$code" "after fsck: by digest"
fi
assert_not_contains "$(cat "$WORK/vic.after" "$WORK/vic.bysha" 2>/dev/null)" "CORRUPTED-BY-TEST" "corrupted bytes never served"
stop_larder

# ---- disk full -------------------------------------------------------------------------------------------------------
TMPFS=$WORK/tmpfs
mkdir -p "$TMPFS"
if [ "$(id -u)" != 0 ]; then
    skip "disk full: not root, cannot mount a tmpfs"
elif ! mount -t tmpfs -o size=20m larder-test "$TMPFS" 2>"$WORK/mount.err"; then
    skip "disk full: mount -t tmpfs failed ($(cat "$WORK/mount.err")): sandbox without mount rights?"
else
    T_MOUNTS+=("$TMPFS")
    LP2=$(free_port)
    CFG2=$WORK/larder-full.yaml
    write_config "$CFG2" "$LP2" "$TMPFS/data"
    cat >>"$CFG2" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
EOF
    # the origin's throttle would make the 50 MB take ~3 s; fine
    start_larder "$CFG2" "$LP2" "$WORK/larder-full.log"
    L2=$LARDER_URL/files
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 60 "$L2/origin/huge.bin" 2>>"$WORK/curl-stderr.log") && rc=0 || rc=$?
    if [ "$rc" -ne 0 ] || [ "${code:-000}" -ge 500 ]; then
        pass "disk full: 50 MB object on a 20 MB disk fails (curl exit $rc, HTTP $code)"
    else
        fail "disk full: 50 MB object on a 20 MB disk returned HTTP $code and curl exit 0"
    fi
    sleep 0.5
    pid_alive "$LARDER_PID" || fail "disk full: the daemon died"
    assert_status "$LARDER_URL/-/health" 200
    for f in small small2; do
        out=$(fetch "$L2/origin/$f.bin" "$WORK/$f.full") || fail "disk full: GET $f.bin afterwards failed"
        assert_contains "$out" "200" "disk full: $f.bin served afterwards"
        assert_eq "$(sha256_file "$ORIG/root/$f.bin")" "$(sha256_file "$WORK/$f.full")" "disk full: $f.bin bytes"
    done
    assert_cache "$L2/origin/small.bin" HIT
    assert_le "$(du -sk "$TMPFS/data/tmp" 2>/dev/null | cut -f1 || echo 0)" 1024 "disk full: partial download removed from tmp"
    if grep -Eiq 'no space|enospc|disk (is )?full|free space|space left|quota' "$LARDER_LOG"; then
        pass "disk full: log says why"
    else
        fail "disk full: no clear message in the log (expected ENOSPC / no space / disk full)"
    fi
    stop_larder
    umount "$TMPFS" && T_MOUNTS=()
fi

finish
