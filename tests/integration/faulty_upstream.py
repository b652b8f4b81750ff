#!/usr/bin/python3
"""faulty_upstream.py - a tiny HTTP/1.1 upstream that misbehaves on purpose (stdlib only, 127.0.0.1 only).

Paths (any query string is ignored; a path may carry a suffix, e.g. /reset/2, so that each test case gets its
own cache key):
  /ok[...]        200, OK_SIZE bytes of deterministic content (sha256 printed by --print-ok-sha256)
  /reset[...]     200 with Content-Length: 1000000, sends 8 KiB, then closes with a TCP RST (SO_LINGER 0)
  /truncate[...]  200 with Content-Length: 1000000, sends 64 KiB, then closes cleanly (FIN): a short body
  /500[...]       500 Internal Server Error
  /404[...]       404 Not Found
  /slow[...]      200, SLOW_SIZE bytes sent in SLOW_CHUNKS chunks with SLOW_DELAY seconds between them
  /hang[...]      200 with Content-Length: 1000000, sends 4 KiB, then stays silent for 120 s
  /chunked[...]   200, the OK content chunked (no Content-Length) in 8 chunks, 50 ms apart
  /chunkflip[...] the same with one bit flipped (digest differs from the OK content)
  /closeshort[...] 200, no Content-Length, Connection: close, the first 100000 bytes of OK, then FIN
  /closereset[...] like /closeshort, but the connection ends with a TCP RST
  /flip[...]      200 with Content-Length, the OK content with one bit flipped
  /oncebad[...]   like /flip on the first request of that exact path, like /ok afterwards
  /slowflip[...]  like /slow (Content-Length) with one bit flipped
  /big[...]       200 with Content-Length, BIG_SIZE bytes (12 MiB, past the sizes larder hashes as they arrive and
                  releases only once committed) in 64 KiB writes (sha256 printed by --print-big-sha256)
  /bigflip[...]   the same with one bit flipped 1000 bytes before the end
  /bigchunked[...] the BIG content chunked (no Content-Length), 64 KiB chunks
  /bigtrickle[...] 200 with Content-Length, TRICKLE_FAST bytes of BIG at once (not a multiple of any power of two),
                  silence for TRICKLE_PAUSE seconds, then TRICKLE_CHUNKS chunks of TRICKLE_CHUNK bytes TRICKLE_DELAY
                  seconds apart (sha256 by --print-bigtrickle-sha256)
  /badcl[...]     200 with "Content-Length: 10x00", 1000 bytes, then close
  /dupcl[...]     200 with "Content-Length: 10" and "Content-Length: 1000", 1000 bytes, then close

Every request is appended to --log as "METHOD PATH" (one line, flushed), so tests can count upstream hits.
"""
import argparse
import hashlib
import http.server
import socket
import struct
import sys
import threading
import time

OK_SIZE = 256 * 1024
SLOW_SIZE = 64 * 1024
SLOW_CHUNKS = 16
SLOW_DELAY = 0.25
ANNOUNCED = 1000000
BIG_SIZE = 12 * 1024 * 1024
TRICKLE_FAST = 6 * 1024 * 1024 + 1000
TRICKLE_PAUSE = 3
TRICKLE_CHUNK = 16 * 1024
TRICKLE_CHUNKS = 8
TRICKLE_DELAY = 0.25


def ok_body(size=OK_SIZE):
    # deterministic, incompressible enough, cheap
    out = bytearray()
    block = b"larder-faulty-upstream"
    i = 0
    while len(out) < size:
        out += hashlib.sha256(block + str(i).encode()).digest()
        i += 1
    return bytes(out[:size])


OK = ok_body()
SLOW = ok_body(SLOW_SIZE)


def flipped(b):
    return b[:1000] + bytes([b[1000] ^ 0x10]) + b[1001:]


FLIP = flipped(OK)
SLOWFLIP = flipped(SLOW)
_big = []


def big_body():
    """BIG_SIZE bytes (the OK content repeated), made on first use"""
    if not _big:
        _big.append((OK * (BIG_SIZE // OK_SIZE + 1))[:BIG_SIZE])
    return _big[0]


def big_flipped():
    b = big_body()
    i = BIG_SIZE - 1000
    return b[:i] + bytes([b[i] ^ 0x10]) + b[i + 1:]


def trickle_body():
    return big_body()[:TRICKLE_FAST + TRICKLE_CHUNK * TRICKLE_CHUNKS]
_seen = set()

_log_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faulty-upstream/1"

    def log_message(self, fmt, *args):  # quiet stderr; requests go to --log
        pass

    def record(self):
        if self.server.logfile:
            with _log_lock:
                with open(self.server.logfile, "a") as f:
                    f.write("%s %s\n" % (self.command, self.path))

    def head_only(self):
        return self.command == "HEAD"

    def send_simple(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self.head_only():
            self.wfile.write(body)

    def start_200(self, length=None):
        """200 octet-stream headers with a Content-Length, or chunked when length is None; False for a HEAD"""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        return not self.head_only()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")

    def start_announced(self, length):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def rst_close(self):
        try:
            self.wfile.flush()
        except OSError:
            pass
        s = self.connection
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        self.close_connection = True

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.record()
        path = self.path.split("?", 1)[0]
        name = path.strip("/").split("/", 1)[0]
        if name == "ok":
            self.send_simple(200, OK, "application/octet-stream")
        elif name == "500":
            self.send_simple(500, b"upstream exploded on purpose\n")
        elif name == "404":
            self.send_simple(404, b"no such thing\n")
        elif name == "reset":
            self.start_announced(ANNOUNCED)
            if self.head_only():
                return
            self.wfile.write(OK[:8192])
            self.wfile.flush()
            time.sleep(0.3)
            self.rst_close()
        elif name == "truncate":
            self.start_announced(ANNOUNCED)
            if self.head_only():
                return
            self.wfile.write(OK[:65536])
            self.wfile.flush()
            time.sleep(0.3)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
        elif name in ("slow", "slowflip"):
            body = SLOW if name == "slow" else SLOWFLIP
            if not self.start_200(len(body)):
                return
            step = len(body) // SLOW_CHUNKS
            for i in range(SLOW_CHUNKS):
                self.wfile.write(body[i * step:(i + 1) * step])
                self.wfile.flush()
                time.sleep(SLOW_DELAY)
        elif name in ("big", "bigflip", "bigtrickle"):
            body = big_flipped() if name == "bigflip" else trickle_body() if name == "bigtrickle" else big_body()
            if not self.start_200(len(body)):
                return
            if name == "bigtrickle":
                self.wfile.write(body[:TRICKLE_FAST])
                self.wfile.flush()
                time.sleep(TRICKLE_PAUSE)
                for i in range(TRICKLE_CHUNKS):
                    time.sleep(TRICKLE_DELAY)
                    off = TRICKLE_FAST + i * TRICKLE_CHUNK
                    self.wfile.write(body[off:off + TRICKLE_CHUNK])
                    self.wfile.flush()
                return
            for off in range(0, len(body), 65536):
                self.wfile.write(body[off:off + 65536])
            self.wfile.flush()
        elif name == "bigchunked":
            body = big_body()
            if not self.start_200():
                return
            for off in range(0, len(body), 65536):
                self.write_chunk(body[off:off + 65536])
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        elif name == "hang":
            self.start_announced(ANNOUNCED)
            if self.head_only():
                return
            self.wfile.write(OK[:4096])
            self.wfile.flush()
            time.sleep(120)
            self.close_connection = True
        elif name in ("chunked", "chunkflip"):
            body = OK if name == "chunked" else FLIP
            if not self.start_200():
                return
            step = len(body) // 8
            for i in range(8):
                self.write_chunk(body[i * step:(i + 1) * step if i < 7 else len(body)])
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        elif name == "closereset":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.head_only():
                return
            self.wfile.write(OK[:100000])
            time.sleep(0.2)
            self.rst_close()
        elif name == "closeshort":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.head_only():
                return
            self.wfile.write(OK[:100000])
            self.wfile.flush()
            time.sleep(0.2)
            self.connection.shutdown(socket.SHUT_WR)
        elif name == "flip":
            self.send_simple(200, FLIP, "application/octet-stream")
        elif name == "oncebad":
            with _log_lock:
                first = path not in _seen
                _seen.add(path)
            self.send_simple(200, FLIP if first else OK, "application/octet-stream")
        elif name in ("badcl", "dupcl"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if name == "badcl":
                self.send_header("Content-Length", "10x00")
            else:
                self.send_header("Content-Length", "10")
                self.send_header("Content-Length", "1000")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if not self.head_only():
                self.wfile.write(OK[:1000])
                self.wfile.flush()
        else:
            self.send_simple(404, b"unknown fault\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", default=None)
    ap.add_argument("--print-ok-sha256", action="store_true")
    ap.add_argument("--print-slow-sha256", action="store_true")
    ap.add_argument("--print-big-sha256", action="store_true")
    ap.add_argument("--print-bigtrickle-sha256", action="store_true")
    a = ap.parse_args()
    if a.print_big_sha256:
        print(hashlib.sha256(big_body()).hexdigest())
        return
    if a.print_bigtrickle_sha256:
        print(hashlib.sha256(trickle_body()).hexdigest())
        return
    if a.print_ok_sha256:
        print(hashlib.sha256(OK).hexdigest())
        return
    if a.print_slow_sha256:
        print(hashlib.sha256(SLOW).hexdigest())
        return
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.logfile = a.log
    sys.stderr.write("faulty upstream on 127.0.0.1:%d\n" % srv.server_address[1])
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
