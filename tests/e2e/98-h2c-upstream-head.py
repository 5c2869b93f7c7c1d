#!/usr/bin/python3
# tests/e2e/98-h2c-upstream-head.py: a HEAD request through an h2c upstream is answered as
# soon as the upstream's final response head arrives, with END_STREAM, whatever the upstream
# sends after it (issue 15 part 4; RFC 9110 9.3.2: a response to HEAD has no content). The
# upstream is raw frames from Python, scripted by :path:
#   - /nghttpd: HEADERS(404, content-length 25) then 25 bytes of DATA with END_STREAM, in one
#     write, as nghttpd answers HEAD on its 404 page (before: nghttp2's client session saw
#     DATA on a HEAD response, reset the stream with PROTOCOL_ERROR, and the client's stream
#     was reset with INTERNAL_ERROR instead of getting the head);
#   - /held: HEADERS(200, content-length 1048576), then DATA only once the client has its
#     answer (before: weir waited for the body and passed the DATA on to the client);
#   - /silent: HEADERS(200) and nothing more, ever (before: the client waited for the request
#     timeout and got its stream reset);
#   - /proper: HEADERS(200, content-length 5) with END_STREAM, the ordinary case, unchanged.
# Each client stream must get the status and content-length of the head, END_STREAM, no
# RST_STREAM and no DATA with payload, within 10 s (the request timeout is 60 s). Afterwards a
# GET /ok on the same client connection gets its 200 and body, and weir's upstream connection
# is still the one it opened (the HEAD streams were reset upstream, not the connection).
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (PREFACE, Checks, Conn, ContinuationFrame, DataFrame, Encoder, GoAwayFrame,
                   HeadersFrame, RstStreamFrame, Weir, headers, raw_frame, settings)
from hpack import Decoder

END_STREAM, END_HEADERS = 0x1, 0x4
HEADERS_T, DATA_T, RST_T = 0x1, 0x0, 0x3


class ScriptedUpstream(threading.Thread):
    """An h2c server answering by :path; counts the connections weir opens and the
    RST_STREAM frames it receives."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.conns = 0
        self.rst = {}  # path -> error code of the RST_STREAM weir sent
        self.release = threading.Event()  # lets /held send its DATA
        self.lock = threading.Lock()

    def run(self):
        while True:
            s, _ = self.ls.accept()
            with self.lock:
                self.conns += 1
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        dec, enc = Decoder(), Encoder()
        wlock = threading.Lock()
        paths = {}
        buf = b""

        def send(b):
            with wlock:
                s.sendall(b)

        try:
            send(settings(()))
            while len(buf) < len(PREFACE):
                chunk = s.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[len(PREFACE):]
            while True:
                while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                n = int.from_bytes(buf[:3], "big")
                ftype, flags = buf[3], buf[4]
                sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
                payload = buf[9:9 + n]
                buf = buf[9 + n:]
                if ftype == 0x4 and not flags & 0x1:
                    send(settings((), ack=True))
                elif ftype == RST_T:
                    with self.lock:
                        self.rst[paths.get(sid, "?")] = int.from_bytes(payload[:4], "big")
                elif ftype == HEADERS_T:
                    # weir sends whole blocks in one HEADERS frame, unpadded, no priority.
                    h = dict((k.decode() if isinstance(k, bytes) else k,
                              v.decode() if isinstance(v, bytes) else v)
                             for k, v in dec.decode(payload))
                    paths[sid] = h.get(":path", "")
                    self.answer(send, enc, sid, h.get(":path", ""))
        except OSError:
            return
        finally:
            s.close()

    def answer(self, send, enc, sid, path):
        def head(fields, end=False):
            return raw_frame(HEADERS_T, END_HEADERS | (END_STREAM if end else 0), sid,
                             enc.encode(fields))

        if path == "/nghttpd":
            body = b"<html>404 Not Found</html>"[:25]
            send(head([(":status", "404"), ("content-length", "25")]) +
                 raw_frame(DATA_T, END_STREAM, sid, body))
        elif path == "/held":
            send(head([(":status", "200"), ("content-length", "1048576")]))

            def later():
                self.release.wait(30)
                try:
                    send(raw_frame(DATA_T, 0, sid, b"x" * 16384))
                except OSError:
                    pass
            threading.Thread(target=later, daemon=True).start()
        elif path == "/silent":
            send(head([(":status", "200"), ("content-length", "7")]))
        elif path == "/proper":
            send(head([(":status", "200"), ("content-length", "5")], end=True))
        elif path == "/ok":
            send(head([(":status", "200")]) + raw_frame(DATA_T, END_STREAM, sid, b"ok\n"))
        else:
            send(head([(":status", "404")], end=True))


def answer(conn, sid, seconds):
    """(status, content-length, how, body bytes) for stream `sid`; how is 'end', 'rst:CODE',
    'eof', 'goaway' or 'timeout'."""
    status, clen, body = None, None, 0
    for f in conn.frames(seconds):
        if f is None:
            return status, clen, "eof", body
        if isinstance(f, GoAwayFrame):
            return status, clen, "goaway", body
        if getattr(f, "stream_id", 0) != sid:
            continue
        if isinstance(f, HeadersFrame):
            h = dict((k.decode() if isinstance(k, bytes) else k,
                      v.decode() if isinstance(v, bytes) else v)
                     for k, v in conn.dec.decode(f.data))
            status = h.get(":status", status)
            clen = h.get("content-length", clen)
        elif isinstance(f, DataFrame):
            body += len(f.data)
        elif isinstance(f, RstStreamFrame):
            return status, clen, "rst:%d" % f.error_code, body
        if "END_STREAM" in f.flags:
            return status, clen, "end", body
    return status, clen, "timeout", body


def request(conn, sid, method, path):
    req = [(":method", method), (":scheme", "http"), (":authority", "localhost"),
           (":path", path)]
    conn.send(headers(sid, req, enc=conn.enc))


up = ScriptedUpstream()
up.start()
ck = Checks()
weir = Weir(cfg="""listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: up, endpoints: ["127.0.0.1:%d"], request_timeout: 60s}
routes:
  - cluster: up
admin: {address: "127.0.0.1:0"}
workers: 1
""" % up.port)
try:
    c = Conn(weir.port, timeout=10)
    c.preface()
    cases = [("/nghttpd", "404", "25"), ("/held", "200", "1048576"), ("/silent", "200", "7"),
             ("/proper", "200", "5")]
    sid = 1
    for path, want_status, want_len in cases:
        t0 = time.monotonic()
        request(c, sid, "HEAD", path)
        status, clen, how, body = answer(c, sid, 10.0)
        took = time.monotonic() - t0
        print("HEAD %s: status %s, content-length %s, %s, %d body bytes, %.3f s"
              % (path, status, clen, how, body, took))
        ck.check("HEAD %s answered with END_STREAM" % path, how == "end",
                 "stream ended by %s" % how)
        ck.check("HEAD %s status %s" % (path, want_status), status == want_status,
                 "got %s" % status)
        ck.check("HEAD %s keeps content-length %s" % (path, want_len), clen == want_len,
                 "got %s" % clen)
        ck.check("HEAD %s carries no body" % path, body == 0, "%d bytes" % body)
        sid += 2
    up.release.set()
    request(c, sid, "GET", "/ok")
    status, clen, how, body = answer(c, sid, 10.0)
    ck.check("GET /ok afterwards on the same connection", status == "200" and how == "end"
             and body == 3, "status %s, %s, %d bytes" % (status, how, body))
    c.close()
    # The upstream streams weir no longer reads were reset (CANCEL), not left open: the
    # ones that had not ended when the head arrived.
    deadline = time.time() + 10
    while time.time() < deadline:
        with up.lock:
            if "/held" in up.rst and "/silent" in up.rst:
                break
        time.sleep(0.05)
    with up.lock:
        rst, conns = dict(up.rst), up.conns
    print("upstream: %d connection(s), RST_STREAM %s" % (conns, rst))
    ck.check("the unfinished HEAD streams were reset upstream",
             "/held" in rst and "/silent" in rst, "RST_STREAM seen for %s" % sorted(rst))
    ck.check("one upstream connection served every stream", conns == 1,
             "%d connections" % conns)
finally:
    rc = weir.stop()
ck.check("weir exits 0 on SIGTERM", rc == 0, "exit %s" % rc)
ck.exit(weir)
