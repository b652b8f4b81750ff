#!/usr/bin/env python3
"""raw_http.py - small raw-socket HTTP/1.1 clients for tests that curl cannot express.

  raw_http.py send PORT < REQUEST
      Send the bytes of REQUEST (as given, \\r\\n included) and print one line per response received,
      "STATUS connection=<value of Connection>", then "closed" if the server closed the connection within 3 s
      or "open" if it kept it. Answers are read until the server closes or 3 s pass without data.
  raw_http.py bodies PORT PATH N SIZE [--chunked] [-H 'Name: value']...
      N clients at once each send `POST PATH` with a SIZE-byte body (Content-Length, or chunked), writing the
      body while watching for an answer, and stop writing at the first answer. Prints one line per client:
      "STATUS SENT" (SENT = body bytes written before the answer came; STATUS 000 = no answer).
  raw_http.py hold PORT N HEAD_FILE
      Open N connections, send the bytes of HEAD_FILE on each (may be empty), print "held K" (K = connections
      that could be opened) and keep them open until killed.
"""
import argparse
import select
import socket
import sys
import threading
import time


def parse_responses(data):
    """status and Connection header of each complete response head in data"""
    out = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        head = data[:end].decode("latin-1").split("\r\n")
        rest = data[end + 4:]
        status = head[0].split(" ")[1] if len(head[0].split(" ")) > 1 else "???"
        conn = "-"
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "connection":
                conn = value.strip().lower()
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        out.append((status, conn))
        data = rest[length:]
    return out


def cmd_send(port):
    req = sys.stdin.buffer.read()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req)
    data = b""
    closed = False
    deadline = time.time() + 3
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], max(0.0, deadline - time.time()))
        if not r:
            break
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
        deadline = time.time() + 3
    for status, conn in parse_responses(data):
        print(f"{status} connection={conn}")
    print("closed" if closed else "open")


def one_body(port, path, size, chunked, headers, results, idx):
    status, sent = "000", 0
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/octet-stream\r\n"
        for h in headers:
            head += h + "\r\n"
        head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
        s.sendall((head + "\r\n").encode())
        block = b"x" * 65536
        s.setblocking(False)
        data = b""
        pending = b""
        deadline = time.time() + 60
        while time.time() < deadline:
            want_write = sent < size or pending
            r, w, _ = select.select([s], [s] if want_write else [], [], 1.0)
            if r:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    chunk = b""
                data += chunk
                if b"\r\n" in data:
                    status = data.split(b" ", 2)[1].decode()
                    break
                if not chunk:
                    break
            if w:
                if not pending:
                    n = min(len(block), size - sent)
                    pending = (b"%x\r\n" % n + block[:n] + b"\r\n") if chunked else block[:n]
                    if chunked and sent + n >= size:
                        pending += b"0\r\n\r\n"
                    sent += n
                try:
                    k = s.send(pending)
                    pending = pending[k:]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    want_write = False
                    size = sent  # the server closed; wait for its answer only
        s.close()
    except OSError:
        pass
    results[idx] = f"{status} {sent}"


def cmd_bodies(port, path, n, size, chunked, headers):
    results = [None] * n
    threads = [threading.Thread(target=one_body, args=(port, path, size, chunked, headers, results, i)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        print(r)


def cmd_hold(port, n, head_file):
    head = open(head_file, "rb").read() if head_file else b""
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            if head:
                s.sendall(head)
            socks.append(s)
        except OSError:
            break
    print(f"held {len(socks)}", flush=True)
    while True:
        time.sleep(3600)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("send")
    p.add_argument("port", type=int)
    p = sub.add_parser("bodies")
    p.add_argument("port", type=int)
    p.add_argument("path")
    p.add_argument("n", type=int)
    p.add_argument("size", type=int)
    p.add_argument("--chunked", action="store_true")
    p.add_argument("-H", action="append", default=[])
    p = sub.add_parser("hold")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("head_file", nargs="?", default="")
    a = ap.parse_args()
    if a.cmd == "send":
        cmd_send(a.port)
    elif a.cmd == "bodies":
        cmd_bodies(a.port, a.path, a.n, a.size, a.chunked, a.H)
    else:
        cmd_hold(a.port, a.n, a.head_file)


if __name__ == "__main__":
    main()
