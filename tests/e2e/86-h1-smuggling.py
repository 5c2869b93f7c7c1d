#!/usr/bin/python3
# tests/e2e/86-h1-smuggling.py: HTTP/1.1 request smuggling is refused (issue 16 part 1, RFC 9112
# 6.3 and the known attacks). Each case sends one request built to be framed differently by
# two parsers, followed on the same connection by "GET /smuggled"; the check is the exact
# status weir answers, that weir answers once and closes (nothing after the bad request is
# read as a request), and what a recording upstream (a raw TCP server here, which keeps every
# byte it receives) saw: nothing at all when the head is refused, and never "/smuggled".
# Valid controls (a chunked body with an extension and trailers, a pipelined pair) pass
# through and show the upstream is really reached.
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Weir


class Recorder:
    """An HTTP/1.1 upstream that records every byte and answers each request head with 200
    (reading a content-length or chunked body first)."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.lock = threading.Lock()
        self.data = b""
        threading.Thread(target=self.accept, daemon=True).start()

    def take(self):
        with self.lock:
            d, self.data = self.data, b""
        return d

    def accept(self):
        while True:
            c, _ = self.ls.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        c.settimeout(30)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    with self.lock:
                        self.data += d
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m:
                    need = int(m.group(1))
                    while len(buf) < need:
                        d = c.recv(65536)
                        if not d:
                            return
                        with self.lock:
                            self.data += d
                        buf += d
                    buf = buf[need:]
                elif re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
                    while not re.search(rb"(^|\r\n)0\r\n(.*\r\n)*\r\n", buf, re.S):
                        d = c.recv(65536)
                        if not d:
                            return
                        with self.lock:
                            self.data += d
                        buf += d
                    buf = buf[re.search(rb"(^|\r\n)0\r\n(.*?\r\n)*?\r\n", buf, re.S).end():]
                c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nupstream\n")
        except OSError:
            return


up = Recorder()
w = Weir(args=["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", "1",
               "--upstream", "http://127.0.0.1:%d" % up.port])
ck = Checks()

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


def exchange(data, timeout=10):
    """Sends `data`, reads until EOF (or the timeout); returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", w.port), timeout=timeout)
    s.sendall(data)
    out = b""
    closed = False
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            out += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return out, closed


def case(name, req, status, head_refused=True):
    up.take()
    out, closed = exchange(req + SMUGGLED)
    time.sleep(0.2)  # let anything weir forwarded reach the recorder
    seen = up.take()
    answers = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
    got = answers[0].decode() if answers else "none"
    ok = got == str(status) and len(answers) == 1 and closed and b"/smuggled" not in seen
    if head_refused:
        ok = ok and seen == b""
    ck.check("%s: %d, one answer, closed, upstream saw %s" %
             (name, status, "nothing" if head_refused else "no /smuggled"), ok,
             "answers %s, closed %s, upstream got %d bytes%s" %
             ([a.decode() for a in answers], closed, len(seen),
              " incl. /smuggled" if b"/smuggled" in seen else ""))


P = b"POST /x HTTP/1.1\r\nHost: a\r\n"
case("content-length and transfer-encoding", P +
     b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
case("transfer-encoding and content-length", P +
     b"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n", 400)
case("two content-length headers", P + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400)
case("two equal content-length headers", P + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
     400)
case("content-length list", P + b"Content-Length: 5, 5\r\n\r\nhello", 400)
case("content-length with a sign", P + b"Content-Length: +5\r\n\r\nhello", 400)
case("transfer-encoding chunked, identity (chunked not final)", P +
     b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400)
case("transfer-encoding gzip, chunked (unsupported coding)", P +
     b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501)
case("transfer-encoding xchunked", P + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400)
case("two transfer-encoding headers", P +
     b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
case("transfer-encoding with a space before the colon", P +
     b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400)
case("transfer-encoding on HTTP/1.0", b"POST /x HTTP/1.0\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
case("obs-fold line", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", 400)
case("obs-fold transfer-encoding", P + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400)
case("bare CR in a header", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", 400)
case("bare LF line ending", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400)
case("whitespace before the colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400)
case("tab before the colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400)
case("request line over 8 KiB", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414)
case("head over 64 KiB", b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Big: " + b"b" * 70000 +
     b"\r\n\r\n", 431)
case("Upgrade: h2c", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", 400)
C = P + b"Transfer-Encoding: chunked\r\n\r\n"
case("chunk size not hex", C + b"zz\r\nhello\r\n0\r\n\r\n", 400, head_refused=False)
case("chunk size 0x prefix", C + b"0x5\r\nhello\r\n0\r\n\r\n", 400, head_refused=False)
case("chunk size over 15 digits (overflow)", C + b"1" + b"0" * 16 + b"\r\nhello\r\n0\r\n\r\n", 400,
     head_refused=False)
case("negative chunk size", C + b"-5\r\nhello\r\n0\r\n\r\n", 400, head_refused=False)
case("chunk size with a bare LF", C + b"5\nhello\r\n0\r\n\r\n", 400, head_refused=False)
case("chunk extension with a control byte", C + b"5;a\x01b\r\nhello\r\n0\r\n\r\n", 400,
     head_refused=False)
case("chunk extension with a bare LF", C + b"5;a\nhello\r\n0\r\n\r\n", 400, head_refused=False)
case("chunk data longer than its size", C + b"3\r\nhello\r\n0\r\n\r\n", 400, head_refused=False)

# Controls: valid requests reach the upstream.
up.take()
out, closed = exchange(C + b"5;name=\"value\"\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n" +
                       b"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
time.sleep(0.2)
seen = up.take()
answers = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
ck.check("control: chunked body with an extension and trailers, then a pipelined GET: 200, 200",
         [a.decode() for a in answers] == ["200", "200"] and b"hello" in seen and b"/second" in seen,
         "answers %s, upstream got %d bytes" % ([a.decode() for a in answers], len(seen)))
ck.check("weir alive", w.alive())
ck.exit(w)
