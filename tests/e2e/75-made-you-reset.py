#!/usr/bin/python3
# tests/e2e/75-made-you-reset.py: "MadeYouReset" (CVE-2025-8671, issue 13 part 2). The client
# sends no RST_STREAM at all: it makes weir reset each stream for it, after weir has already
# passed the request on. Two variants, each 5,000 streams on one connection (50 in flight, as
# fast as weir resets them), against an HTTP/1.1 and an h2c upstream that count the requests
# they receive (upstream.js /count):
#   window:  HEADERS(END_STREAM) then a WINDOW_UPDATE that overflows the stream window
#            (RST_STREAM(FLOW_CONTROL_ERROR) from weir)
#   clen0:   HEADERS with content-length: 0, then a DATA frame with one byte
#            (RST_STREAM(PROTOCOL_ERROR) from weir)
# Those resets count against limits.rst_per_second like the client's own, so the connection
# must end with GOAWAY(ENHANCE_YOUR_CALM) and at most a few hundred requests may reach the
# upstream (before: thousands of the 5,000, and the connection stayed open).
# A third case checks the h2c exchange cancelled before its HEADERS frame left: 50 streams
# opened and reset by the client in one write (under the rate limit) on a warm upstream
# connection put no request on the upstream (before: all 50).
import os, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (Checks, Conn, GoAwayFrame, RstStreamFrame, Upstream, Weir, CODE_NAMES,
                   ENHANCE_YOUR_CALM, REQ, data, headers, raw_frame)

STREAMS = 5000
BATCH = 50  # streams in flight at once, under max_concurrent_streams (100)
MAX_UPSTREAM = 500  # "a few hundred": the budget is 100 a second


def upstream_count(up):
    h2 = ["--http2-prior-knowledge"] if up.proto == "h2c" else []
    r = subprocess.run(["curl", "-sS", "--max-time", "10"] + h2 +
                       ["http://127.0.0.1:%d/count" % up.port], capture_output=True, text=True)
    return int(r.stdout.strip())


def settled_count(up):
    """The upstream's request count once it stops moving (0.5 s unchanged, 15 s at most):
    requests weir already sent may still be in flight when the attack ends."""
    last, since, deadline = upstream_count(up), time.time(), time.time() + 15
    while time.time() < deadline:
        time.sleep(0.1)
        n = upstream_count(up)
        if n != last:
            last, since = n, time.time()
        elif time.time() - since >= 0.5:
            break
    return last


def await_resets(c, sids, seconds=10):
    """Reads until weir has reset every stream in `sids` (the slots are free again), or a
    GOAWAY, EOF or the deadline; returns the GOAWAY if one came."""
    left = set(sids)
    for f in c.frames(seconds):
        if f is None:
            return None
        if isinstance(f, GoAwayFrame):
            return f
        if isinstance(f, RstStreamFrame):
            left.discard(f.stream_id)
            if not left:
                return None
    return None


def window_variant(c, sid):
    return headers(sid, enc=c.enc) + raw_frame(0x8, 0, sid, (0x7fffffff).to_bytes(4, "big"))


def clen0_variant(c, sid):
    h = [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"), (":path", "/"),
         ("content-length", "0")]
    return headers(sid, h, enc=c.enc, end_stream=False) + data(sid, b"x", end_stream=True)


def attack(w, build):
    """Sends STREAMS streams built by `build`, BATCH at a time: a batch, then its resets
    (which free the slots: max_concurrent_streams is 100), then the next, as an attacker
    does. Returns (GOAWAY code or None, streams sent, seconds, closed after it)."""
    c = Conn(w.port)
    c.preface()
    t0 = time.time()
    sid, sent, goaway = 1, 0, None
    while sent < STREAMS and goaway is None and not c.eof:
        sids = [sid + 2 * i for i in range(BATCH)]
        if not c.send(b"".join(build(c, s) for s in sids)):
            break
        sid += 2 * BATCH
        sent += BATCH
        goaway = await_resets(c, sids)
    if goaway is None and not c.eof:
        goaway = c.goaway(10)
    secs = time.time() - t0
    # The connection must end after the GOAWAY: EOF within 10 s.
    deadline = time.time() + 10
    while not c.eof and time.time() < deadline:
        for f in c.frames(deadline - time.time()):
            if f is None:
                break
    eof = c.eof
    c.close()
    return (goaway.error_code if goaway is not None else None), sent, secs, eof


def start(proto):
    up = Upstream(proto)
    up.proto = proto
    cfg = ("listeners:\n  - address: 127.0.0.1:0\n"
           "clusters:\n  - {name: up, protocol: %s, endpoints: [\"127.0.0.1:%d\"]}\n"
           "routes:\n  - cluster: up\n"
           "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n" % (proto, up.port))
    return up, Weir(cfg=cfg)


ck = Checks()
for proto in ("http1", "h2c"):
    up, w = start(proto)
    for name, build in (("window", window_variant), ("clen0", clen0_variant)):
        name = "%s upstream, %s" % (proto, name)
        before = settled_count(up)
        code, sent, secs, eof = attack(w, build)
        n = settled_count(up) - before
        ck.check("%s: GOAWAY(ENHANCE_YOUR_CALM)" % name, code == ENHANCE_YOUR_CALM,
                 "got %s after %d streams in %.2f s" % (CODE_NAMES.get(code, code), sent, secs))
        ck.check("%s: connection closed after the GOAWAY" % name, eof,
                 "" if eof else "still open 10 s later")
        ck.check("%s: at most %d requests reached the upstream" % (name, MAX_UPSTREAM),
                 n <= MAX_UPSTREAM, "%d of %d streams sent" % (n, sent))
        print("info %s: %d streams sent, %d requests reached the upstream, GOAWAY(%s) after "
              "%.2f s" % (name, sent, n, CODE_NAMES.get(code, code), secs))
    if proto == "http1":
        rc = w.stop()
        ck.check("http1 upstream: clean exit on SIGTERM", rc == 0, "exit %s" % rc)
        up.stop()

# Exchanges cancelled before their HEADERS left weir for the upstream. Warm the upstream
# connection first (a request queued while it connects is never sent anyway), then open and
# reset 50 streams in one write, well under the reset budget.
c = Conn(w.port)
c.preface()
c.send(headers(1, enc=c.enc))
ck.check("rapid cancel: warm-up request answered", c.reaction(1) == ("response", "200"), "")
before = settled_count(up)
burst = b"".join(headers(sid, enc=c.enc) + RstStreamFrame(sid, error_code=8).serialize()
                 for sid in range(3, 103, 2))
c.send(burst)
c.send(headers(103, enc=c.enc))
ck.check("rapid cancel: the connection still serves", c.reaction(103) == ("response", "200"), "")
n = settled_count(up) - before - 1  # stream 103 is the one request that should arrive
ck.check("rapid cancel: cancelled exchanges never reached the upstream", n <= 2,
         "%d of 50 reached it" % n)
print("info rapid cancel: %d of 50 cancelled requests reached the upstream" % n)
c.close()

r = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge",
                    "http://127.0.0.1:%d/" % w.port], capture_output=True, text=True)
ck.check("weir serves after the attacks", r.stdout == "ok\n", r.stdout + r.stderr)
ck.check("weir alive", w.alive(), "")
rc = w.stop()
ck.check("clean exit on SIGTERM", rc == 0, "exit %s" % rc)
up.stop()
ck.exit(w)
