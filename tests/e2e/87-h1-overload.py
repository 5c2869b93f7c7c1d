#!/usr/bin/python3
# tests/e2e/87-h1-overload.py: one overload policy for both protocols (issue 16: "under
# pressure HTTP/1.1 clients get 503s and HTTP/2 clients REFUSED_STREAM, in one test"). A new
# HTTP/1.1 request asks the rule a new HTTP/2 stream asks (proxy/core/shed.c through
# px_h1_io_t.admit_request): a pool at normal, then a fair share of the elevated-to-critical
# band per connection, nothing at critical.
#   - weir: 1 worker, a 16 MiB budget, elevated 0.30, critical 0.36, stream buffers of 16 KiB,
#     and a slow h2c upstream that holds each request for delay_ms; 8 node http2 sessions push
#     1 MiB uploads at it (tests/e2e/overload-uploads.js) until /overload leaves "normal";
#   - while it is above normal, two probes that each ask for more than their share at once:
#       HTTP/2: one connection opens 40 streams in one write: some are reset REFUSED_STREAM;
#       HTTP/1.1: 8 connections each pipeline about 48 KiB of GETs in one write (what waits
#       in a connection's input buffer counts against its share): some request is answered
#       "503 Service Unavailable" with retry-after and connection: close, then EOF;
#     both probes in the same overload episode: the level read before and after each is above
#     normal, and it never went back to normal in between (polled every 20 ms by a thread);
#   - after the load stops the level returns to normal and both protocols are served (200).
#   - and at elevated, a fresh connection's single request is served on both protocols (its
#     connection holds far less than its share): with the old rule, HTTP/1.1 refused every
#     request from elevated on (503 here) while HTTP/2 admitted it.
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import E2E, REFUSED_STREAM, Checks, Conn, Weir, headers
from hyperframe.frame import HeadersFrame, RstStreamFrame

up = subprocess.Popen(["node", os.path.join(E2E, "overload-slow-upstream.js")],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = up.stdout.readline()
if not line.startswith("PORT "):
    raise SystemExit("FAIL: slow upstream did not start")
UP = int(line.split()[1])
cfg = """listeners: [{name: main, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 1
clusters: [{name: up, protocol: h2c, endpoints: ["127.0.0.1:%d"]}]
routes: [{match: {path_prefix: /}, cluster: up}]
memory: {limit: 16MiB, elevated: 0.30, critical: 0.36, hysteresis: 0.05}
limits: {stream_buffer: 16KiB}
""" % UP
w = Weir(cfg=cfg)
ck = Checks()


def level():
    return w.admin_json("/overload")["level"]


class Watcher(threading.Thread):
    """Polls /overload every 20 ms and records (time, level) so the test can say whether the
    level stayed above normal between two instants."""

    def __init__(self):
        super().__init__(daemon=True)
        self.log = []
        self.halt = False

    def run(self):
        while not self.halt:
            try:
                self.log.append((time.time(), level()))
            except Exception:
                pass
            time.sleep(0.02)

    def normal_between(self, t0, t1):
        return any(l == "normal" for t, l in list(self.log) if t0 <= t <= t1)


def h2_probe(n=40):
    """One connection, n GET streams in one write. Returns (refused, answered)."""
    c = Conn(w.port, timeout=10)
    c.preface()
    blob = b"".join(headers(2 * i + 1, [(":method", "GET"), (":scheme", "http"),
                                        (":authority", "localhost"),
                                        (":path", "/up?delay_ms=200")], enc=c.enc)
                    for i in range(n))
    c.send(blob)
    refused = answered = 0
    for f in c.frames(8.0):
        if f is None:
            break
        if isinstance(f, RstStreamFrame) and f.error_code == REFUSED_STREAM:
            refused += 1
        elif isinstance(f, HeadersFrame):
            answered += 1
        if refused + answered >= n:
            break
    c.close()
    return refused, answered


PAD = "x" * 960


def h1_probe(conns=8, per_conn=48):
    """`conns` connections, each pipelining `per_conn` GETs (about 1 KiB each) in one write.
    Returns the first refusal seen as (status line, retry-after, connection: close, EOF after
    it), or None, and how many 200s came back."""
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
        req = ("GET /up?delay_ms=200 HTTP/1.1\r\nHost: localhost\r\nX-Pad: %s\r\n\r\n" % PAD)
        s.sendall(req.encode() * per_conn)
        socks.append(s)
    seen = None
    ok = 0
    for s in socks:
        out = b""
        eof = False
        deadline = time.time() + 10
        s.settimeout(1.0)
        while time.time() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                eof = True
                break
            if not d:
                eof = True
                break
            out += d
            if out.count(b"HTTP/1.1 ") >= per_conn and out.endswith(b"\n"):
                break
        ok += out.count(b"HTTP/1.1 200")
        i = out.find(b"HTTP/1.1 503")
        if i >= 0 and seen is None:
            head = out[i:].partition(b"\r\n\r\n")[0].lower()
            seen = (head.split(b"\r\n")[0].decode(), b"\r\nretry-after: 1" in head,
                    b"\r\nconnection: close" in head, eof)
        s.close()
    return seen, ok


watch = Watcher()
watch.start()
# Both protocols served before the load.
r, a = h2_probe(1)
ck.check("before the load: an HTTP/2 stream is answered", a == 1 and r == 0,
         "%d answered, %d refused" % (a, r))

load = subprocess.Popen(["node", os.path.join(E2E, "overload-uploads.js"),
                         "http://127.0.0.1:%d" % w.port, "8", "60", str(1 << 20), "1500", "8000",
                         "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
h1_seen = h2_seen = None
t_first = t_last = None
deadline = time.time() + 50
tries = 0
while time.time() < deadline and (h1_seen is None or h2_seen is None):
    if level() == "normal":
        time.sleep(0.02)
        continue
    tries += 1
    t0 = time.time()
    l0 = level()
    if h2_seen is None:
        r, a = h2_probe()
        if r > 0:
            h2_seen = (l0, r, a, t0)
    if h1_seen is None:
        seen, ok = h1_probe()
        if seen is not None:
            h1_seen = (l0, seen, ok, t0)
    t1 = time.time()
    l1 = level()
    # Both refusals must come from one episode: drop what a dip to normal separated.
    if l0 == "normal" or l1 == "normal" or watch.normal_between(t0, t1):
        h1_seen = h2_seen = None
        continue
    if h1_seen is not None and h2_seen is not None:
        t_first, t_last = min(h1_seen[3], h2_seen[3]), t1
        if watch.normal_between(t_first, t_last):
            h1_seen = h2_seen = None

# The other half of one rule: at elevated a light request is served on either protocol (a
# fresh connection holds far less than its share). Taken while the level reads elevated
# before and after, and stays above normal between.
light = None
while time.time() < deadline and light is None:
    t0 = time.time()
    if level() != "elevated":
        time.sleep(0.02)
        continue
    r, a = h2_probe(1)
    s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
    s.sendall(b"GET /up?delay_ms=0 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    s.settimeout(10)
    try:
        out = s.recv(65536)
    except OSError:
        out = b""
    s.close()
    if level() == "elevated" and not watch.normal_between(t0, time.time()):
        light = (a, r, out.split(b"\r\n")[0].decode(errors="replace"))

ck.check("HTTP/2 under pressure: a connection asking 40 streams at once gets REFUSED_STREAM",
         h2_seen is not None,
         "level %s: %d of 40 refused, %d answered" % h2_seen[:3] if h2_seen else
         "none refused while above normal (%d rounds)" % tries)
ck.check("HTTP/1.1 under pressure: 503 with retry-after and connection: close, then EOF",
         h1_seen is not None and all(h1_seen[1][1:]),
         "level %s: %r, retry-after %s, connection: close %s, EOF %s; %d answered 200 first" %
         ((h1_seen[0],) + h1_seen[1] + (h1_seen[2],)) if h1_seen else
         "no 503 while above normal (%d rounds)" % tries)
ck.check("both refusals in one overload episode (never normal in between)",
         t_first is not None and not watch.normal_between(t_first, t_last),
         "%.2f s apart, levels polled every 20 ms" % (t_last - t_first) if t_first else
         "not both seen")

ck.check("at elevated a fresh connection's single request is served on both protocols",
         light is not None and light[0] == 1 and light[2].startswith("HTTP/1.1 200"),
         "HTTP/2: %d answered, %d refused; HTTP/1.1: %r" % light if light else
         "the level never read elevated twice in a row")

load.terminate()
load.wait()
t0 = time.time()
while time.time() - t0 < 20 and level() != "normal":
    time.sleep(0.05)
ck.check("level back to normal after the load", level() == "normal",
         "%.1f s after the load stopped" % (time.time() - t0))
s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
s.sendall(b"GET /up?delay_ms=0 HTTP/1.1\r\nHost: localhost\r\n\r\n")
s.settimeout(10)
out = s.recv(65536)
s.close()
ck.check("HTTP/1.1 served again after recovery (200)", out.startswith(b"HTTP/1.1 200"),
         repr(out[:40]))
r, a = h2_probe(1)
ck.check("HTTP/2 served again after recovery", a == 1 and r == 0, "%d answered" % a)
watch.halt = True
ck.check("weir alive", w.alive())
up.kill()
ck.exit(w)
