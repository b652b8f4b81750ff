#!/usr/bin/env bash
# test_client_idle.sh - timeouts.client_idle: a client's keep-alive connection idle for longer than the configured
# time is closed by the daemon; one idle for less is reused. HTTP/1.1 keep-alive and HTTP/2 (h2c prior knowledge),
# on a served HIT, with a 2 s timeout so the test takes seconds.
. "$(dirname "$0")/lib.sh"

NP=$(free_port)
LP=$(free_port)
ORIG=$WORK/origin
make_file "$ORIG/root/pub/a.bin" 20000
start_nginx "$ORIG" "$NP"

CFG=$WORK/larder.yaml
write_config "$CFG" "$LP" "$WORK/data"
echo "  client_idle: 2s" >>"$CFG" # appended to the timeouts: mapping write_config ends with
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
EOF
start_larder "$CFG" "$LP"
assert_match "$("$LARDER_BIN" config --check "$CFG" 2>/dev/null)" "client_idle: 2s" "larder config shows timeouts.client_idle: 2s"
U=$LARDER_URL/files/origin/pub/a.bin
curl -fsS -o /dev/null "$U" || fail "warming $U failed"
assert_cache_soon "$U" HIT

# keepalive.py h1 PORT PATH SLEEP  -> "reused" (the second request on the connection was answered 200) or "closed"
# keepalive.py h2 PORT SLEEP       -> "open" (a PING sent after SLEEP s was acknowledged) or "closed" (EOF, GOAWAY
#                                      first or not)
cat >"$WORK/keepalive.py" <<'EOF'
import socket, struct, sys, time

def recv_http1(s):
    """one complete response (Content-Length framing); b"" when the server closed first"""
    data = b""
    while b"\r\n\r\n" not in data:
        c = s.recv(65536)
        if not c:
            return b""
        data += c
    head, _, body = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        c = s.recv(65536)
        if not c:
            return b""
        body += c
    return head

def frames(s, deadline):
    """yield (type, flags) of each HTTP/2 frame until EOF or the deadline"""
    buf = b""
    while time.time() < deadline:
        s.settimeout(max(0.05, deadline - time.time()))
        try:
            c = s.recv(65536)
        except socket.timeout:
            return
        if not c:
            yield ("eof", 0)
            return
        buf += c
        while len(buf) >= 9:
            ln = struct.unpack(">I", b"\0" + buf[:3])[0]
            if len(buf) < 9 + ln:
                break
            yield (buf[3], buf[4])
            buf = buf[9 + ln:]

mode, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
if mode == "h1":
    path, pause = sys.argv[3], float(sys.argv[4])
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()
    s.sendall(req)
    head = recv_http1(s)
    if not head.startswith(b"HTTP/1.1 200"):
        print("first request failed: %r" % head[:80])
        sys.exit(1)
    time.sleep(pause)
    try:
        s.sendall(req)
        head = recv_http1(s)
    except OSError:
        head = b""
    print("reused" if head.startswith(b"HTTP/1.1 200") else "closed")
else:
    pause = float(sys.argv[3])
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    closed = False
    for t, f in frames(s, time.time() + pause):  # the server's SETTINGS, its ACK of ours, ...
        if t == "eof":
            closed = True
        elif t == 4 and not f & 1:
            s.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")  # SETTINGS ACK
    if closed:
        print("closed")
        sys.exit(0)
    try:
        s.sendall(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678")  # PING
    except OSError:
        print("closed")
        sys.exit(0)
    res = "closed"
    for t, f in frames(s, time.time() + 2):
        if t == 6 and f & 1:
            res = "open"
            break
        if t == "eof":
            break
    print(res)
EOF
ka() { "$PY" "$WORK/keepalive.py" "$@"; }

# HTTP/1.1: idle 0.5 s -> the same connection answers again; idle 3.5 s (> 2 s) -> closed by the daemon
assert_eq reused "$(ka h1 "$LP" /files/origin/pub/a.bin 0.5)" "HTTP/1.1 keep-alive idle 0.5 s"
assert_eq closed "$(ka h1 "$LP" /files/origin/pub/a.bin 3.5)" "HTTP/1.1 keep-alive idle 3.5 s (client_idle 2s)"
# HTTP/2 (h2c prior knowledge): idle 0.5 s -> a PING is answered; idle 3.5 s -> the daemon closed it
assert_eq open "$(ka h2 "$LP" 0.5)" "HTTP/2 connection idle 0.5 s"
assert_eq closed "$(ka h2 "$LP" 3.5)" "HTTP/2 connection idle 3.5 s (client_idle 2s)"
stop_larder

# the default is 60 s, longer than h2o's own 10 s: a connection idle for 11 s is still reused
write_config "$CFG" "$LP" "$WORK/data"
cat >>"$CFG" <<EOF
files:
  ttl: 1d
  mirrors:
    - name: origin
      url: http://127.0.0.1:$NP/
EOF
assert_match "$("$LARDER_BIN" config --check "$CFG" 2>/dev/null)" "client_idle: 1m" "the default timeouts.client_idle is 1m"
start_larder "$CFG" "$LP"
assert_eq reused "$(ka h1 "$LP" /files/origin/pub/a.bin 11)" "HTTP/1.1 keep-alive idle 11 s with the default"
stop_larder
finish
