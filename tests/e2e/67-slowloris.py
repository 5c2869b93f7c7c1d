#!/usr/bin/python3
# tests/e2e/67-slowloris.py: slowloris over HTTP/2. 100 connections each dribble a request
# one byte every 250 ms: a third stop inside the HEADERS frame (no stream exists yet), a third
# send a HEADERS frame without END_HEADERS and dribble the CONTINUATION (a stream exists, its
# header block never completes), a third open the header block and then send nothing (weir
# held these until stream_idle_timeout before the sweep learnt header_timeout). limits.header_timeout (2 s here) must close all of them,
# although stream_idle_timeout stays at its 60 s default: a header block is held to the
# header timeout, not to the stream timeout.
import os, selectors, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (Conn, ContinuationFrame, attack_test, headers, PREFACE, recv_ready, settings,
                   REQ)

N = 100


def attack(w, ck):
    conns = []
    for i in range(N):
        c = Conn(w.port)
        if i % 3 == 0:
            c.send(PREFACE + settings(()))
            c.tail = headers(1, enc=c.enc)
        elif i % 3 == 2:  # an open header block, then silence
            c.send(PREFACE + settings(()) + headers(1, enc=c.enc, end_headers=False))
            c.tail = b""
        else:
            c.send(PREFACE + settings(()) + headers(1, enc=c.enc, end_headers=False))
            f = ContinuationFrame(1)
            f.data = c.enc.encode([("x-slow", "v" * 200)])
            f.flags.add("END_HEADERS")
            c.tail = f.serialize()
        c.s.setblocking(False)
        conns.append(c)
    t0 = time.time()
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.s, selectors.EVENT_READ, c)
    open_ = set(range(N))
    closed_at = {}
    nxt = time.time()
    while open_ and time.time() - t0 < 12:
        if time.time() >= nxt:
            nxt += 0.25
            for i in list(open_):
                c = conns[i]
                if len(c.tail) > 1:  # never the last byte: the block never completes
                    try:
                        c.s.send(c.tail[:1])
                    except OSError:
                        pass
                    c.tail = c.tail[1:]
        for key, _ in sel.select(timeout=0.05):
            c = key.data
            d = recv_ready(c.s)
            if d is None:
                continue
            c.buf += d
            # Walk whole frames: a GOAWAY (type 7) counts as cut off; EOF too.
            goaway = False
            while len(c.buf) >= 9:
                ln = int.from_bytes(c.buf[:3], "big")
                if len(c.buf) < 9 + ln:
                    break
                goaway = goaway or c.buf[3] == 7
                c.buf = c.buf[9 + ln:]
            if not d or goaway:
                i = conns.index(c)
                if i in open_:
                    open_.discard(i)
                    closed_at[i] = time.time() - t0
                    sel.unregister(c.s)
    secs = max(closed_at.values()) if closed_at else time.time() - t0
    a = [closed_at.get(i) for i in range(0, N, 3)]
    b = [closed_at.get(i) for i in range(1, N, 3)]
    s_ = [closed_at.get(i) for i in range(2, N, 3)]
    ck.check("slowloris: dribbled HEADERS frames cut off", all(x is not None for x in a),
             "%d/%d, last after %.2f s" % (sum(x is not None for x in a), len(a),
                                           max([x for x in a if x] or [0])))
    ck.check("slowloris: dribbled CONTINUATION (open stream) cut off",
             all(x is not None for x in b), "%d/%d, last after %.2f s" % (
                 sum(x is not None for x in b), len(b), max([x for x in b if x] or [0])))
    ck.check("slowloris: open header block then silence cut off (stream held to header_timeout)",
             all(x is not None for x in s_), "%d/%d, last after %.2f s" % (
                 sum(x is not None for x in s_), len(s_), max([x for x in s_ if x] or [0])))
    for c in conns:
        c.close()
    return not open_, "%d of %d connections cut off" % (N - len(open_), N), secs


if __name__ == "__main__":  # 71-slowloris-no-idle-timeout.py runs the same attack
    attack_test("slowloris", attack, cut_within_s=5, cfg_extra="limits: {header_timeout: 2s}\n")
