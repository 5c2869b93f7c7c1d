#!/usr/bin/python3
# tests/e2e/37-admin-slowloris.py: slow clients against the admin port (issue 13, part 3).
# 64 connections (every slot, PX_ADMIN_CONNS_MAX) dribble a request head one byte every 2 s;
# meanwhile `weir health` (the Docker HEALTHCHECK) and /ready must still answer within 2 s,
# because a new connection evicts the one whose request has been incomplete longest. Then:
# every dribbler that was not evicted gets 408 and is closed at the 10 s head deadline; a body
# dribbled after a complete head gets 408 at the 10 s body deadline; a connection that sends
# nothing is closed without a word at 10 s; a head sent in two pieces 1 s apart is served.
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Weir, weir_bin  # noqa: E402

CONNS_MAX = 64
HEAD_TIMEOUT_S = 10.0

ck = Checks()
w = Weir(cfg="listeners:\n  - address: 127.0.0.1:0\n"
             "routes:\n  - direct_response: {status: 200, body: \"hi\\n\"}\n"
             "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n")
port = w.admin


def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s, seconds):
    """Reads until EOF (returns (bytes, True)) or `seconds` pass (returns (bytes, False))."""
    out = b""
    end = time.time() + seconds
    while True:
        left = end - time.time()
        if left <= 0:
            return out, False
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            return out, False
        except OSError:
            return out, True
        if not b:
            return out, True
        out += b


class Dribbler:
    """A connection sending a request head (or, with body=True, a body) one byte at a time."""

    def __init__(self, body=False):
        self.s = connect()
        self.t0 = time.time()
        if body:
            self.s.sendall(b"POST /memory/release HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Length: 100\r\n\r\n")
        else:
            self.s.sendall(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        self.dead = False
        self.got = b""
        self.closed_at = None

    def drip(self):
        if self.dead:
            return
        try:
            self.s.sendall(b"a")
        except OSError:
            self.dead = True


# Fill every slot with dribblers (one byte every 2 s from a background thread).
drib = [Dribbler() for _ in range(CONNS_MAX)]
stop = threading.Event()


def dripper():
    while not stop.wait(2.0):
        for d in drib:
            d.drip()


th = threading.Thread(target=dripper, daemon=True)
th.start()
time.sleep(0.5)  # let weir accept them all: the slots are full now

# The HEALTHCHECK: `weir health HOST:PORT` exits 0 within 2 s.
t = time.time()
r = subprocess.run([weir_bin(), "health", "127.0.0.1:%d" % port], capture_output=True,
                   text=True, timeout=30)
took = time.time() - t
ck.check("weir health answers while 64 slowloris connections hold every slot",
         r.returncode == 0 and took < 2.0,
         "rc=%d in %.2f s: %s%s" % (r.returncode, took, r.stdout.strip(), r.stderr.strip()))

# And plain /ready several times in a row, each on a new connection.
oks = 0
t = time.time()
for i in range(5):
    s = connect()
    s.sendall(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    out, _ = read_all(s, 2.0)
    s.close()
    oks += out.startswith(b"HTTP/1.1 200 ")
ck.check("/ready 5/5 while the slots are full", oks == 5 and time.time() - t < 5.0,
         "%d/5 in %.2f s" % (oks, time.time() - t))

# Extra cases, each on a fresh slot (it evicts a dribbler, which is fine).
silent = connect()
silent_t0 = time.time()
body = Dribbler(body=True)
two = connect()
try:
    two.sendall(b"GET /healthz HTTP/1.1\r\nHost: loc")
    time.sleep(1.0)
    two.sendall(b"alhost\r\nConnection: close\r\n\r\n")
    out, closed = read_all(two, 3.0)
except OSError as e:
    out = repr(e).encode()
ck.check("a head in two pieces 1 s apart is served", out.startswith(b"HTTP/1.1 200 "),
         repr(out[:60]))


# Wait for the head deadline: each surviving dribbler gets a 408 and EOF.
def collect(conns, until):
    for c in conns:
        left = max(0.0, until - time.time())
        got, closed = read_all(c.s, left)
        c.got, c.closed_at = got, (time.time() if closed else None)


collect(drib, drib[0].t0 + HEAD_TIMEOUT_S + 4.0)
stop.set()
evicted = [d for d in drib if d.closed_at is not None and d.got == b""]
timed = [d for d in drib if d.got.startswith(b"HTTP/1.1 408 ")]
late = [d for d in drib if d.closed_at is None]
early = [d for d in timed if d.closed_at - d.t0 < HEAD_TIMEOUT_S - 0.5]
ck.check("dribblers past the 10 s head deadline get 408 and close",
         len(timed) + len(evicted) == CONNS_MAX and not late and not early and len(timed) > 0,
         "%d got 408, %d evicted for new connections, %d still open, %d closed early" %
         (len(timed), len(evicted), len(late), len(early)))
if timed:
    lat = sorted(d.closed_at - d.t0 for d in timed)
    print("     408 after %.1f..%.1f s" % (lat[0], lat[-1]))
ck.check("at least one dribbler was evicted for the newcomers", len(evicted) >= 1,
         "%d evicted" % len(evicted))

got, closed = read_all(silent, max(0.0, silent_t0 + HEAD_TIMEOUT_S + 3.0 - time.time()))
ck.check("a connection that sends nothing is closed at 10 s without an answer",
         closed and got == b"" and time.time() - silent_t0 >= HEAD_TIMEOUT_S - 0.5,
         "closed=%s after %.1f s, got %r" % (closed, time.time() - silent_t0, got[:40]))
collect([body], body.t0 + HEAD_TIMEOUT_S + 4.0)
ck.check("a body dribbled after the head gets 408 at the 10 s body deadline",
         body.got.startswith(b"HTTP/1.1 408 ") and body.closed_at is not None and
         body.closed_at - body.t0 >= HEAD_TIMEOUT_S - 0.5,
         "%r closed after %s s" % (body.got[:40], None if body.closed_at is None
                                   else "%.1f" % (body.closed_at - body.t0)))

# Afterwards the port is back to normal.
s = connect()
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
out, _ = read_all(s, 3.0)
ck.check("/healthz afterwards", out.startswith(b"HTTP/1.1 200 "), repr(out[:40]))
ck.check("weir is alive", w.alive())
ck.exit(w)
