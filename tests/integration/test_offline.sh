#!/usr/bin/env bash
# test_offline.sh - freshness and offline behaviour: TTL expiry with revalidation, STALE when the upstream is down,
# and `offline: true` (cached -> served, uncached -> 504 naming the URL, upstream never contacted).
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
DATA=$WORK/data
ORIG=$WORK/origin
make_file "$ORIG/root/a.bin" 100000
make_file "$ORIG/root/b.bin" 100000
make_file "$ORIG/root/upd.bin" 50000
make_file "$ORIG/root/imm.bin" 70000
A_SHA=$(sha256_file "$ORIG/root/a.bin")
IMM_SHA=$(sha256_file "$ORIG/root/imm.bin")
start_nginx "$ORIG" "$NP"
ALOG=$ORIG/logs/access.log
U=http://127.0.0.1:$NP

write_cfg() { # write_cfg OFFLINE
    CFG_OFFLINE=$1 write_config "$CFG" "$LP" "$DATA"
    cat >>"$CFG" <<EOF
files:
  ttl: 1s
  pins:
    - name: imm
      url: $U/imm.bin
      sha256: $IMM_SHA
  mirrors:
    - name: origin
      url: $U/
EOF
}
CFG=$WORK/larder.yaml
write_cfg false
start_larder "$CFG" "$LP"
L=$LARDER_URL/files

# ---- online: cache, expire, revalidate, update ---------------------------------------------------------------------------
for p in origin/a.bin origin/upd.bin imm; do
    out=$(fetch "$L/$p" "$WORK/x") || fail "GET $p"
    assert_eq "200 MISS" "$out" "GET $p online"
done
sleep 2
out=$(fetch "$L/origin/a.bin" "$WORK/a.reval") || fail "GET a.bin after TTL"
assert_eq "200 REVALIDATED" "$out" "past TTL with the upstream up: conditional GET"
assert_eq "$A_SHA" "$(sha256_file "$WORK/a.reval")" "revalidated bytes"
assert_match "$(grep '"GET /a.bin ' "$ALOG" | tail -1)" '" 304 ' "the revalidation was a conditional GET answered 304"
make_file "$ORIG/root/upd.bin" 60000 # changed upstream (new size, new mtime)
sleep 2
out=$(fetch "$L/origin/upd.bin" "$WORK/upd.new") || fail "GET upd.bin after change"
assert_contains "$out" "200 " "changed upstream object"
assert_eq "$(sha256_file "$ORIG/root/upd.bin")" "$(sha256_file "$WORK/upd.new")" "changed upstream object: new bytes served"
assert_cache "$L/sha256/$IMM_SHA" HIT

# ---- upstream down: stale copies are served, misses fail ------------------------------------------------------------------
stop_pid "$NGINX_PID"
port_open "$NP" && fail "nginx still listening after stop"
sleep 2
out=$(fetch "$L/origin/a.bin" "$WORK/a.stale") || fail "GET a.bin with the upstream down"
assert_eq "200 STALE" "$out" "past TTL with the upstream down"
assert_eq "$A_SHA" "$(sha256_file "$WORK/a.stale")" "stale bytes"
out=$(fetch "$L/imm" "$WORK/imm.down") || fail "GET imm with the upstream down"
assert_match "$out" '^200 (HIT|STALE)$' "immutable pin with the upstream down"
assert_eq "$IMM_SHA" "$(sha256_file "$WORK/imm.down")" "immutable pin bytes"
assert_status "$L/origin/b.bin" 502
assert_gt "$(metric larder_cache_stale_total 'protocol="files"')" 0 "larder_cache_stale_total"
assert_gt "$(metric larder_cache_revalidated_total 'protocol="files"')" 0 "larder_cache_revalidated_total"

# ---- an upstream that accepts connections but never answers: one wait, then stale at once -----------------------------------
stop_larder
"$PY" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])' "$NP" &
BLACKHOLE_PID=$!
track_pid "$BLACKHOLE_PID"
wait_for "blackhole" 10 port_open "$NP" || fail "blackhole did not start"
start_larder "$CFG" "$LP"
t0=$(date +%s%N)
out=$(fetch "$L/origin/a.bin" "$WORK/a.bh1") || fail "GET a.bin with a silent upstream"
t1=$(date +%s%N)
assert_eq "200 STALE" "$out" "a silent upstream: stale after the idle timeout"
out=$(fetch "$L/origin/upd.bin" "$WORK/upd.bh2") || fail "GET upd.bin with a silent upstream"
t2=$(date +%s%N)
assert_eq "200 STALE" "$out" "the same upstream again: stale"
assert_le $(((t2 - t1) / 1000000)) 1000 "stale at once, without waiting for another timeout ($(((t1 - t0) / 1000000)) ms the first time)"
larder_log_has 'does not answer' || fail "the log says the upstream does not answer"
stop_pid "$BLACKHOLE_PID"

# ---- offline: true ---------------------------------------------------------------------------------------------------------
stop_larder
start_nginx "$ORIG" "$NP" # the upstream is back, but an offline daemon must not use it
lines_before=$(wc -l <"$ALOG")
write_cfg true
start_larder "$CFG" "$LP"
out=$(fetch "$L/origin/a.bin" "$WORK/a.off") || fail "GET a.bin offline"
assert_eq "200 STALE" "$out" "offline, cached, past TTL"
assert_eq "$A_SHA" "$(sha256_file "$WORK/a.off")" "offline bytes"
out=$(fetch "$L/imm" "$WORK/imm.off") || fail "GET imm offline"
assert_match "$out" '^200 (HIT|STALE)$' "offline, immutable pin"
code=$(curl -sS -o "$WORK/b.off" -w '%{http_code}' "$L/origin/b.bin")
assert_eq 504 "$code" "offline miss"
assert_contains "$(cat "$WORK/b.off")" "$U/b.bin" "offline 504 names the URL"
assert_match "$(cat "$WORK/b.off")" '[Ss]eed' "offline 504 says how to seed it"
assert_ne "" "$(http_header "$L/origin/b.bin" X-Larder-Cache)" "offline 504 carries X-Larder-Cache"
code=$(http_status "$L/origin/a.bin" -I)
assert_eq 200 "$code" "offline HEAD of a cached object"
assert_status "$L/origin/a.bin" 206 -H 'Range: bytes=0-9'
assert_eq "$lines_before" "$(wc -l <"$ALOG")" "offline daemon never contacted the upstream"

stop_larder
finish
