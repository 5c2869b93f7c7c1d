#!/usr/bin/python3
# tests/e2e/90-h1-timeouts.py: the connection timeouts reach HTTP/1.1 (issue 16 part 1: "the
# same byte caps, the same overload actions"), with limits header_timeout 2 s,
# stream_idle_timeout 2 s and idle_timeout 3 s, against the real binary over raw sockets:
#   - slowloris: a request head sent one byte every 0.5 s is cut at header_timeout (closed
#     within 2-6 s of the first byte, though bytes keep coming; timeouts_header counts it);
#   - a body that stalls: a POST announcing 100 bytes that sends 10 and stops is cut at
#     stream_idle_timeout (2-6 s) with no answer; meanwhile /memory/regions lists the request
#     (kind stream, its path, its bytes);
#   - a body that trickles one byte every 0.5 s keeps its request alive past the timeout (each
#     byte is progress) and gets its 200;
#   - an idle keep-alive connection after a response is closed at idle_timeout (3-7 s);
#   - drain (SIGTERM): an idle keep-alive connection closes at once, a request in flight is
#     answered whole with connection: close, and weir exits 0.
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Upstream, Weir

up = Upstream("http1")
cfg = """listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 1
clusters: [{name: up, protocol: http1, endpoints: ["127.0.0.1:%d"]}]
routes: [{match: {path_prefix: /}, cluster: up}]
limits: {header_timeout: 2s, stream_idle_timeout: 2s, idle_timeout: 3s}
""" % up.port
w = Weir(cfg=cfg)
ck = Checks()


def closed_after(s, send_every=None, payload=b"", limit=15):
    """Seconds until weir closes `s` (reading what it sends), dribbling `payload` one byte per
    `send_every` seconds meanwhile; (seconds, received bytes); None seconds if still open."""
    t0 = time.time()
    got = b""
    i = 0
    next_send = t0
    s.settimeout(0.1)
    while time.time() - t0 < limit:
        if send_every is not None and i < len(payload) and time.time() >= next_send:
            try:
                s.send(payload[i:i + 1])
            except OSError:
                return time.time() - t0, got
            i += 1
            next_send += send_every
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return time.time() - t0, got
        if not d:
            return time.time() - t0, got
        got += d
    return None, got


# Slowloris head.
s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
head = b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
t, got = closed_after(s, 0.5, head)
ck.check("slowloris head (1 byte / 0.5 s) cut at header_timeout", t is not None and 1.5 <= t <= 6,
         "closed after %s s, got %r" % ("%.1f" % t if t else "never", got[:30]))
s.close()

# Stalled body.
s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
s.sendall(b"POST /sha256 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
time.sleep(0.3)
rows = [r for r in w.admin_json("/memory/regions").get("regions", [])
        if r.get("kind") == "stream" and r.get("path") == "/sha256"]
ck.check("/memory/regions lists the HTTP/1.1 request in progress with its bytes",
         len(rows) == 1 and rows[0].get("bytes", 0) > 0, str(rows))
t, got = closed_after(s)
ck.check("stalled body cut at stream_idle_timeout, no answer", t is not None and 1.5 <= t <= 6
         and got == b"", "closed after %s s, got %r" % ("%.1f" % t if t else "never", got[:40]))
s.close()

# Trickled body: progress keeps it alive past the timeout.
s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
s.sendall(b"POST /sha256 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\n")
t0 = time.time()
for b in b"abcdefgh":
    time.sleep(0.5)
    s.sendall(bytes([b]))
s.settimeout(10)
resp = s.recv(65536)
ck.check("body trickled over %.1f s (> stream_idle_timeout): 200 with the right digest" %
         (time.time() - t0), resp.startswith(b"HTTP/1.1 200") and
         b"9c56cc51b374c3ba189210d5b6d4bf57790d351c96c47c02190ecf1e430635ab 8" in resp,
         repr(resp[:40]))
# Then idle: closed at idle_timeout.
t, got = closed_after(s)
ck.check("idle keep-alive connection closed at idle_timeout", t is not None and 2.5 <= t <= 7,
         "closed after %s s" % ("%.1f" % t if t else "never"))
s.close()

st = w.stats()


def find(d, key):
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            r = find(v, key)
            if r is not None:
                return r
    return None


ck.check("counted: timeouts_header >= 1, timeouts_idle >= 2",
         find(st, "timeouts_header") >= 1 and find(st, "timeouts_idle") >= 2,
         "timeouts_header %s, timeouts_idle %s" % (find(st, "timeouts_header"),
                                                   find(st, "timeouts_idle")))
ck.check("weir alive", w.alive())

# Drain (SIGTERM): an idle keep-alive connection is closed at once; a request in flight is
# (its head comes 1 s after the drain began) is answered whole with connection: close;
# weir exits 0.
idle = socket.create_connection(("127.0.0.1", w.port), timeout=10)
idle.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
idle.settimeout(5)
first = idle.recv(65536)
busy = socket.create_connection(("127.0.0.1", w.port), timeout=10)
busy.sendall(b"GET /slow?ms=1500&bytes=1000&head_ms=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
time.sleep(0.3)
w.proc.terminate()
t_idle, _ = closed_after(idle, limit=5)
t_busy, resp = closed_after(busy, limit=10)
head, _, body = resp.partition(b"\r\n\r\n")
ck.check("drain: idle keep-alive HTTP/1.1 connection closed at once",
         first.startswith(b"HTTP/1.1 200") and t_idle is not None and t_idle < 1.5,
         "closed after %s s" % ("%.2f" % t_idle if t_idle is not None else "never"))
ck.check("drain: the request in flight answered whole with connection: close, then EOF",
         head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower() and
         t_busy is not None, "%r ... %d body bytes, EOF after %s s" %
         (head[:20], len(body), "%.1f" % t_busy if t_busy is not None else "never"))
rc = w.proc.wait(timeout=30)
ck.check("drain: weir exits 0", rc == 0, "exit %s" % rc)
up.stop()
ck.exit(w)
