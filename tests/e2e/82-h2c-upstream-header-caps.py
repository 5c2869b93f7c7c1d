#!/usr/bin/python3
# tests/e2e/82-h2c-upstream-header-caps.py: a hostile h2c upstream (raw frames from Python:
# hyperframe + hand-made HPACK literals) sends response header blocks without end, and the
# downstream limits.max_header_list_size and limits.max_continuations hold for upstream
# sessions too (CVE-2024-28182 class). Shows (issue 13 part 7):
#   - with max_header_list_size 16KiB and max_continuations 3: a 64 KB header block in
#     HEADERS + 3 CONTINUATION frames gets the client a 502 (before: weir collected it and
#     passed all of it on, 200); 5 small CONTINUATION frames (past 3, within nghttp2's own 8)
#     get a 502 (before: 200); an endless CONTINUATION stream (1 KB frames) gets a 502 and
#     weir drops the upstream connection, so the upstream's writes fail long before 100 MB;
#   - with max_continuations 1000 (the largest allowed) and the default 64 KiB list size:
#     8 streams whose header blocks run to 16 MB each all get a 502, and weir's RSS grows by
#     less than 32 MiB: the list size alone bounds what is kept (before the fix, nghttp2's
#     own default of 8 CONTINUATION frames cut these blocks off and max_continuations was
#     ignored, so this part guards that applying the configured count opens no hole);
#   - a well-behaved response on the same upstream still gets a 200 afterwards.
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (PREFACE, Checks, Conn, ContinuationFrame, DataFrame, Decoder, Frame,
                   GoAwayFrame, HeadersFrame, RssSampler, RstStreamFrame, SettingsFrame, Weir,
                   headers, raw_frame, settings)

END_STREAM, END_HEADERS = 0x1, 0x4
HEADERS_T, CONTINUATION_T, DATA_T = 0x1, 0x9, 0x0


def hpack_int(v, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if v < limit:
        return bytes([first | v])
    out = [first | limit]
    v -= limit
    while v >= 128:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def literal(name, value):
    """Literal header field without indexing, new name (RFC 7541 6.2.2): no table state."""
    return (b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value)


STATUS_200 = b"\x88"  # indexed :status 200


def fields(n, start=0, vlen=1000):
    return b"".join(literal(b"x-f%06d" % (start + i), b"v" * vlen) for i in range(n))


class HostileUpstream(threading.Thread):
    """An h2c server that answers by :path, with scripted header blocks."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.cont_sent = {}  # path -> CONTINUATION frames sent before weir stopped reading
        self.lock = threading.Lock()

    def run(self):
        while True:
            s, _ = self.ls.accept()
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        dec = Decoder()
        buf = b""
        try:
            s.sendall(settings(()))
            while len(buf) < len(PREFACE):
                chunk = s.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[len(PREFACE):]
            block, sid_open = b"", 0
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
                    s.sendall(settings((), ack=True))
                elif ftype in (HEADERS_T, CONTINUATION_T):
                    if ftype == HEADERS_T:
                        if flags & 0x8:  # PADDED
                            payload = payload[1:len(payload) - payload[0]]
                        if flags & 0x20:  # PRIORITY
                            payload = payload[5:]
                        block, sid_open = b"", sid
                    block += payload
                    if flags & END_HEADERS:
                        h = dict((k.decode() if isinstance(k, bytes) else k,
                                  v.decode() if isinstance(v, bytes) else v)
                                 for k, v in dec.decode(block))
                        self.answer(s, sid_open, h.get(":path", ""))
        except OSError:
            return
        finally:
            s.close()

    def answer(self, s, sid, path):
        def frame(t, flags, payload):
            s.sendall(raw_frame(t, flags, sid, payload))

        if path == "/ok":
            frame(HEADERS_T, END_HEADERS, STATUS_200)
            frame(DATA_T, END_STREAM, b"ok\n")
        elif path == "/list":
            # 64 fields of ~1 KB: HEADERS + 3 CONTINUATION of 16 fields each.
            frame(HEADERS_T, 0, STATUS_200 + fields(16, 0))
            for i in range(3):
                frame(CONTINUATION_T, END_HEADERS if i == 2 else 0, fields(16, 16 * (i + 1)))
            frame(DATA_T, END_STREAM, b"list\n")
        elif path == "/five-cont":
            frame(HEADERS_T, 0, STATUS_200)
            for i in range(5):
                frame(CONTINUATION_T, END_HEADERS if i == 4 else 0, literal(b"x-c%d" % i, b"1"))
            frame(DATA_T, END_STREAM, b"five\n")
        elif path in ("/endless", "/huge"):
            frame(HEADERS_T, 0, STATUS_200)
            sent, k = 0, 0
            try:
                limit = 100000 if path == "/endless" else 1000
                while sent < limit:
                    # /endless: 1 KB frames, 100 MB at most; /huge: 16 KB frames, 16 MB.
                    body = fields(1, k) if path == "/endless" else fields(16, 16 * k)
                    last = path == "/huge" and sent == limit - 1
                    frame(CONTINUATION_T, END_HEADERS if last else 0, body)
                    sent += 1
                    k += 1
                if path == "/huge":
                    frame(DATA_T, END_STREAM, b"huge\n")
            finally:
                with self.lock:
                    self.cont_sent.setdefault(path, []).append(sent)
        else:
            frame(HEADERS_T, END_HEADERS | END_STREAM, b"\x8d")  # :status 404


def response(conn, sid, seconds=30.0):
    """(status, how) for stream `sid`: the header block is reassembled across
    CONTINUATION frames; how is 'end', 'rst', 'eof' or 'timeout'."""
    block, status = b"", None
    for f in conn.frames(seconds):
        if f is None:
            return status, "eof"
        if isinstance(f, GoAwayFrame):
            return status, "goaway"
        if getattr(f, "stream_id", 0) != sid:
            continue
        if isinstance(f, (HeadersFrame, ContinuationFrame)):
            block += f.data
            if "END_HEADERS" in f.flags:
                h = dict((k.decode() if isinstance(k, bytes) else k,
                          v.decode() if isinstance(v, bytes) else v)
                         for k, v in conn.dec.decode(block))
                block = b""
                status = h.get(":status", status)
        elif isinstance(f, RstStreamFrame):
            return status, "rst"
        if "END_STREAM" in f.flags:
            return status, "end"
    return status, "timeout"


def get(conn, sid, path):
    req = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", path)]
    conn.send(headers(sid, req, enc=conn.enc))


up = HostileUpstream()
up.start()
ck = Checks()
BASE = """listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: up, endpoints: ["127.0.0.1:%d"], request_timeout: 30s}
routes:
  - cluster: up
admin: {address: "127.0.0.1:0"}
workers: 1
""" % up.port

# Part 1: small limits.
w = Weir(cfg=BASE + "limits: {max_header_list_size: 16KiB, max_continuations: 3}\n")
c = Conn(w.port, timeout=30)
c.dec.max_header_list_size = 1 << 26  # see what weir passes on, however large
c.preface()
for sid, path, want in ((1, "/ok", "200"), (3, "/list", "502"), (5, "/five-cont", "502"),
                        (7, "/endless", "502"), (9, "/ok", "200")):
    t0 = time.time()
    get(c, sid, path)
    st, how = response(c, sid)
    ck.check("%s -> %s" % (path, want), st == want and how in ("end", "rst"),
             "status %s, %s after %.2f s" % (st, how, time.time() - t0))
deadline = time.time() + 10
while "/endless" not in up.cont_sent and time.time() < deadline:
    time.sleep(0.05)
sent = up.cont_sent.get("/endless", [None])[0]
ck.check("endless CONTINUATION: weir stops reading after a few frames",
         sent is not None and sent < 100000,
         "the upstream got %s of 100000 1 KB frames out before weir closed" % sent)
c.close()
ck.check("weir alive (part 1)", w.alive())
if ck.failed:
    print("--- weir log (tail)\n" + w.log_tail())
w.stop()

# Part 2: the largest CONTINUATION count allowed; the list size alone bounds memory.
w = Weir(cfg=BASE + "limits: {max_continuations: 1000}\n")
c = Conn(w.port, timeout=60)
c.dec.max_header_list_size = 1 << 26
c.preface()
get(c, 1, "/ok")
st, how = response(c, 1)
ck.check("part 2: /ok -> 200", st == "200", "status %s, %s" % (st, how))
rss0 = w.rss_kib()
sampler = RssSampler(w)
sampler.start()
t0 = time.time()
sids = [3 + 2 * i for i in range(8)]
for sid in sids:
    get(c, sid, "/huge")
results = {}
for f in c.frames(120):
    if f is None:
        break
    sid = getattr(f, "stream_id", 0)
    if sid in sids and isinstance(f, HeadersFrame):
        h = dict((k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes)
                  else v) for k, v in c.dec.decode(f.data)) if "END_HEADERS" in f.flags else {}
        results[sid] = h.get(":status", "?")
    if sid in sids and isinstance(f, RstStreamFrame):
        results.setdefault(sid, "rst")
    if len(results) == len(sids) and all(v != "?" for v in results.values()):
        break
time.sleep(0.3)
sampler.stop()
grown = (sampler.max_kib - rss0) / 1024
ck.check("8 streams with 16 MB header blocks: all 502",
         sorted(results.values()) == ["502"] * 8,
         "%s after %.1f s; CONTINUATION frames sent per block: %s"
         % (sorted(results.values()), time.time() - t0, up.cont_sent.get("/huge")))
ck.check("RSS grew < 32 MiB", grown < 32, "RSS %.0f MiB -> max %.0f MiB (+%.1f MiB)"
         % (rss0 / 1024, sampler.max_kib / 1024, grown))
get(c, 99, "/ok")
st, how = response(c, 99)
ck.check("part 2: /ok -> 200 afterwards", st == "200", "status %s, %s" % (st, how))
ck.check("weir alive (part 2)", w.alive())
c.close()
ck.exit(w)
