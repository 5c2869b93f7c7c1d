#!/usr/bin/python3
# tests/e2e/81-h1-upstream-framing.py: how weir frames HTTP/1.1 upstream responses whose
# headers lie, against a scripted raw HTTP/1.1 upstream (a Python socket server here) and a
# raw HTTP/2 client (h2raw.Conn), one worker so every request shares one upstream pool.
# Shows (issue 13 part 7):
#   - a 204 with Content-Length: 7, a 304 with Transfer-Encoding: chunked and a 103 with
#     Content-Length: 7 have no body (RFC 9112 6.3): the 204 and 304 end at once and their
#     connection serves the next request; the 103 is passed on and the 200 after it arrives
#     whole (before: weir waited for a body that never came, or ate the next head as one);
#   - a connection reset in the middle of a close-delimited body resets the client stream
#     (RST_STREAM), where a clean close ends it (END_STREAM): a truncated body is never passed
#     off as complete (before: both ended with END_STREAM);
#   - bytes that arrive on a pooled connection after a complete response (in the same segment,
#     or later while it is idle) mean it is not reused: the next request goes on a new
#     connection and never gets the stray bytes as its answer.
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Conn, DataFrame, HeadersFrame, RstStreamFrame, Weir, headers

STRAY = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nEVIL!\n"


class RawUpstream(threading.Thread):
    """An HTTP/1.1 server that answers each GET with a scripted byte sequence."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.conns = 0
        self.lock = threading.Lock()

    def run(self):
        while True:
            s, _ = self.ls.accept()
            with self.lock:
                self.conns += 1
                cid = self.conns
            threading.Thread(target=self.serve, args=(s, cid), daemon=True).start()

    def serve(self, s, cid):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
                if not self.answer(s, cid, path):
                    return
        except OSError:
            return
        finally:
            s.close()

    def answer(self, s, cid, path):
        """Sends the scripted answer; False when the connection is done."""
        if path == "/plain":
            body = b"plain %d\n" % cid
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif path == "/s204":
            s.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n")
        elif path == "/s304":
            s.sendall(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n")
        elif path == "/s103":
            s.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
                      b"Content-Length: 7\r\n\r\n"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfinal\n")
        elif path in ("/reset", "/eof"):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 1000)
            time.sleep(0.3)
            if path == "/reset":
                # SO_LINGER 0: close() sends a RST instead of a FIN.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        elif path == "/stray-same":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n" + STRAY)
        elif path == "/stray-later":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            time.sleep(0.3)
            s.sendall(STRAY)
        else:
            s.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True


class Client:
    def __init__(self, port):
        self.c = Conn(port, timeout=10)
        self.c.preface()
        self.sid = 1

    def get(self, path, seconds=5.0):
        """(statuses, body, how): how is 'end' (END_STREAM), 'rst', 'eof' or 'timeout'."""
        sid = self.sid
        self.sid += 2
        req = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
               (":path", path)]
        self.c.send(headers(sid, req, enc=self.c.enc))
        statuses, body = [], b""
        for f in self.c.frames(seconds):
            if f is None:
                return statuses, body, "eof"
            if getattr(f, "stream_id", 0) != sid:
                continue
            if isinstance(f, HeadersFrame):
                h = dict((k.decode() if isinstance(k, bytes) else k,
                          v.decode() if isinstance(v, bytes) else v)
                         for k, v in self.c.dec.decode(f.data))
                if ":status" in h:
                    statuses.append(h[":status"])
            elif isinstance(f, DataFrame):
                body += f.data
            elif isinstance(f, RstStreamFrame):
                return statuses, body, "rst"
            if "END_STREAM" in f.flags:
                return statuses, body, "end"
        return statuses, body, "timeout"


up = RawUpstream()
up.start()
cfg = """listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: up, protocol: http1, endpoints: ["127.0.0.1:%d"], request_timeout: 20s}
routes:
  - cluster: up
admin: {address: "127.0.0.1:0"}
workers: 1
""" % up.port
w = Weir(cfg=cfg)
ck = Checks()
cl = Client(w.port)

st, body, how = cl.get("/plain")
ck.check("plain", st == ["200"] and body == b"plain 1\n" and how == "end",
         "%s %r %s" % (st, body, how))

# 1. No body for 204, 304 and 1xx, whatever the headers say.
t0 = time.time()
st, body, how = cl.get("/s204")
ck.check("204 with content-length: 7 ends at once with no body",
         st == ["204"] and body == b"" and how == "end",
         "%s %r %s after %.2f s" % (st, body, how, time.time() - t0))
st, body, how = cl.get("/plain")
ck.check("the 204's connection is reused", st == ["200"] and body == b"plain 1\n",
         "%s %r %s (upstream connections: %d)" % (st, body, how, up.conns))
t0 = time.time()
st, body, how = cl.get("/s304")
ck.check("304 with transfer-encoding: chunked ends at once with no body",
         st == ["304"] and body == b"" and how == "end",
         "%s %r %s after %.2f s" % (st, body, how, time.time() - t0))
st, body, how = cl.get("/s103")
ck.check("103 with content-length: 7 has no body; the 200 after it is whole",
         st == ["103", "200"] and body == b"final\n" and how == "end",
         "%s %r %s" % (st, body, how))
conns_before = up.conns
st, body, how = cl.get("/plain")
ck.check("the 304's and 103's connection is reused",
         st == ["200"] and body == b"plain 1\n" and up.conns == conns_before,
         "%s %r %s (upstream connections: %d)" % (st, body, how, up.conns))

# 2. A close ends a close-delimited body; a reset cuts it short.
st, body, how = cl.get("/eof")
ck.check("close-delimited body ended by a FIN: END_STREAM with all 1000 bytes",
         st == ["200"] and len(body) == 1000 and how == "end",
         "%s %d bytes %s" % (st, len(body), how))
st, body, how = cl.get("/reset")
ck.check("close-delimited body cut by a RST: RST_STREAM, not END_STREAM",
         st == ["200"] and how == "rst", "%s %d bytes %s" % (st, len(body), how))

# 3. Stray bytes after a complete response: the connection is not reused.
for path in ("/stray-same", "/stray-later"):
    st, body, how = cl.get(path)
    ck.check(path + " answered", st == ["200"] and body == b"ok\n" and how == "end",
             "%s %r %s" % (st, body, how))
    time.sleep(0.6)  # the stray bytes of /stray-later come 0.3 s after the response
    conns_before = up.conns
    st, body, how = cl.get("/plain")
    ck.check(path + ": the next request goes on a new connection and gets its own answer",
             st == ["200"] and body == b"plain %d\n" % up.conns and up.conns == conns_before + 1,
             "%s %r %s (upstream connections: %d before, %d after)"
             % (st, body, how, conns_before, up.conns))

ck.check("weir alive", w.alive())
cl.c.close()
ck.exit(w)
