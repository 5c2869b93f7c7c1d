#!/usr/bin/python3
# tests/e2e/65-empty-frames.py: empty-frame floods (CVE-2019-9518): zero-length DATA frames
# without END_STREAM on an open request stream, and zero-length CONTINUATION/HEADERS blocks.
# They carry nothing, cost the server a frame each, and never end. weir counts empty DATA
# against limits.control_frames_per_second and CONTINUATION frames against
# limits.max_continuations; either ends the connection with GOAWAY(ENHANCE_YOUR_CALM).
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (Conn, ContinuationFrame, GoAwayFrame, attack_test, data, headers,
                   CODE_NAMES, REQ)

POST = [(":method", "POST")] + REQ[1:]


def flood(w, first, frame, label):
    c = Conn(w.port)
    c.preface()
    t0 = time.time()
    c.send(first)
    n = 0
    while time.time() - t0 < 10 and n < 50000:
        if not c.send(frame * 100):
            break
        n += 100
        g = c.until(lambda x: isinstance(x, GoAwayFrame), 0.001)
        if g is not None or c.eof:
            break
    g = c.goaway(5) if not c.eof and not any(isinstance(x, GoAwayFrame)
                                             for x in getattr(c, "seen", [])) else \
        next((x for x in c.seen if isinstance(x, GoAwayFrame)), None)
    secs = time.time() - t0
    if g is not None:
        return g.error_code == 11, "%s: GOAWAY(%s) after %d frames" % (
            label, CODE_NAMES.get(g.error_code), n), secs
    return c.eof, "%s: closed=%s after %d frames" % (label, c.eof, n), secs


def attack(w, ck):
    enc_probe = Conn(w.port)
    first = headers(1, hdrs=POST, enc=enc_probe.enc, end_stream=False)
    enc_probe.close()
    ok1, d1, s1 = flood(w, first, data(1, b""), "empty DATA")
    ck.check("empty-frames: empty DATA flood cut off", ok1, d1)
    first = headers(1, hdrs=POST, enc=Conn(w.port).enc, end_stream=False, end_headers=False)
    ok2, d2, s2 = flood(w, first, ContinuationFrame(1).serialize(), "empty CONTINUATION")
    ck.check("empty-frames: empty CONTINUATION flood cut off", ok2, d2)
    return ok1 and ok2, d1 + "; " + d2, max(s1, s2)


attack_test("empty-frames", attack, cut_within_s=6)
