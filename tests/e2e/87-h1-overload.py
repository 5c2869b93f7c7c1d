#!/usr/bin/python3
# tests/e2e/87-h1-overload.py: under memory pressure HTTP/1.1 clients get 503s and HTTP/2
# clients REFUSED_STREAM, in one test (issue 16 part 3), and the pressure actions reach
# HTTP/1.1 connections:
#   - weir runs with a 16 MiB budget (elevated 0.40, critical 0.70) and a slow h2c upstream;
#     8 node http2 sessions push 1 MiB uploads at it (tests/e2e/overload-uploads.js) until
#     /overload leaves "normal";
#   - while it is above normal, a new HTTP/1.1 request (raw socket) is answered
#     "503 Service Unavailable" with retry-after and connection: close, then EOF, and a new
#     HTTP/2 stream (raw frames) is reset with REFUSED_STREAM: both probes in the same
#     overload episode, each taken with the level read just before and after it;
#   - an idle HTTP/1.1 keep-alive connection opened before the load is closed by weir if the
#     level reaches critical (reported either way; checked only when critical was seen);
#   - after the load stops the level returns to normal and HTTP/1.1 is served again (200).
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import E2E, REFUSED_STREAM, REQ, Checks, Conn, Weir, fmt, headers

up = subprocess.Popen(["node", os.path.join(E2E, "overload-slow-upstream.js")],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = up.stdout.readline()
if not line.startswith("PORT "):
    raise SystemExit("FAIL: slow upstream did not start")
UP = int(line.split()[1])
cfg = """listeners: [{name: main, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 2
clusters: [{name: up, protocol: h2c, endpoints: ["127.0.0.1:%d"]}]
routes: [{match: {path_prefix: /}, cluster: up}]
memory: {limit: 16MiB, elevated: 0.40, critical: 0.70, hysteresis: 0.05}
""" % UP
w = Weir(cfg=cfg)
ck = Checks()


def level():
    return w.admin_json("/overload")["level"]


def h1_request(sock, path="/up?delay_ms=0"):
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")


def read_all(sock, seconds=10):
    out = b""
    deadline = time.time() + seconds
    sock.settimeout(1.0)
    while time.time() < deadline:
        try:
            d = sock.recv(65536)
        except socket.timeout:
            if b"\r\n\r\n" in out and b"content-length: 0" not in out.lower() and \
                    out.endswith(b"\n") and b"HTTP/1.1 200" in out:
                return out, False
            continue
        except ConnectionResetError:
            return out, True
        if not d:
            return out, True
        out += d
    return out, False


# An idle keep-alive HTTP/1.1 connection, served once before the load.
idle = socket.create_connection(("127.0.0.1", w.port), timeout=10)
h1_request(idle)
first, closed = read_all(idle, 5)
ck.check("before the load: HTTP/1.1 GET 200 on a kept-alive connection",
         first.startswith(b"HTTP/1.1 200") and not closed, repr(first[:40]))

load = subprocess.Popen(["node", os.path.join(E2E, "overload-uploads.js"),
                         "http://127.0.0.1:%d" % w.port, "8", "60", str(1 << 20), "1500", "8000",
                         "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
levels = set()
h1_seen = h2_seen = None
deadline = time.time() + 60
while time.time() < deadline and (h1_seen is None or h2_seen is None):
    l0 = level()
    levels.add(l0)
    if l0 == "normal":
        time.sleep(0.05)
        continue
    if h1_seen is None:
        s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
        h1_request(s)
        out, closed = read_all(s, 5)
        s.close()
        l1 = level()
        levels.add(l1)
        head = out.partition(b"\r\n\r\n")[0].lower()
        if l1 != "normal" and out.startswith(b"HTTP/1.1 503"):
            h1_seen = (l0, l1, b"retry-after:" in head, b"connection: close" in head, closed)
    if h2_seen is None:
        c = Conn(w.port, timeout=10)
        c.preface()
        c.send(headers(1, REQ))
        r = c.reaction(1, 5.0)
        c.close()
        l1 = level()
        levels.add(l1)
        if l1 != "normal" and r == ("rst", REFUSED_STREAM):
            h2_seen = (l0, l1, fmt(r))
ck.check("HTTP/1.1 under pressure: 503 with retry-after and connection: close, then EOF",
         h1_seen is not None and all(h1_seen[2:]),
         "levels %s -> %s, retry-after %s, connection: close %s, EOF %s" % h1_seen
         if h1_seen else "no 503 seen while above normal (levels seen: %s)" % sorted(levels))
ck.check("HTTP/2 under pressure: REFUSED_STREAM", h2_seen is not None,
         "levels %s -> %s, %s" % h2_seen if h2_seen else
         "no REFUSED_STREAM while above normal (levels seen: %s)" % sorted(levels))

# The idle keep-alive connection: closed by weir at critical.
while time.time() < deadline and "critical" not in levels and load.poll() is None:
    levels.add(level())
    time.sleep(0.05)
idle.settimeout(0.5)
try:
    gone = idle.recv(1) == b""
except socket.timeout:
    gone = False
except OSError:
    gone = True
if "critical" in levels:
    ck.check("at critical the idle HTTP/1.1 keep-alive connection was closed", gone,
             "levels seen %s" % sorted(levels))
else:
    print("note: critical not reached (levels seen %s); idle connection %s" %
          (sorted(levels), "closed" if gone else "open"))
idle.close()

load.terminate()
load.wait()
t0 = time.time()
while time.time() - t0 < 15 and level() != "normal":
    time.sleep(0.05)
ck.check("level back to normal after the load", level() == "normal",
         "%.1f s after the load stopped" % (time.time() - t0))
s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
h1_request(s)
out, _ = read_all(s, 5)
s.close()
ck.check("HTTP/1.1 served again after recovery (200)", out.startswith(b"HTTP/1.1 200"),
         repr(out[:40]))
st = w.stats()
ck.check("weir alive", w.alive())
up.kill()
ck.exit(w)
