#!/usr/bin/python3
# tests/e2e/64-ping-flood.py: PING flood (CVE-2019-9512). Each PING asks for a PING ACK; an
# attacker that does not read makes the server queue them. weir's control frame budget
# (limits.control_frames_per_second, default 100) answers with GOAWAY(ENHANCE_YOUR_CALM).
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Conn, GoAwayFrame, PingFrame, attack_test, CODE_NAMES


def attack(w, ck):
    c = Conn(w.port)
    c.preface()
    t0 = time.time()
    frame = PingFrame(0, opaque_data=b"weirping").serialize()
    n = 0
    closed = False
    while time.time() - t0 < 10 and n < 20000:
        if not c.send(frame * 100):
            closed = True
            break
        n += 100
    g = c.goaway(5)
    secs = time.time() - t0
    if g is not None:
        return g.error_code == 11, "GOAWAY(%s) after %d PING" % (
            CODE_NAMES.get(g.error_code), n), secs
    return closed or c.eof, "closed after %d PING (no GOAWAY read)" % n, secs


attack_test("ping-flood", attack, cut_within_s=6)
