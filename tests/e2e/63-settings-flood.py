#!/usr/bin/python3
# tests/e2e/63-settings-flood.py: SETTINGS flood. Every SETTINGS frame obliges the peer to
# queue an ACK; a client that never reads makes a naive server buffer them without bound.
# weir counts SETTINGS/PING/empty frames per second (limits.control_frames_per_second,
# default 100) and ends the connection with GOAWAY(ENHANCE_YOUR_CALM). The attacker never
# reads until the end, so the ACKs pile up on weir's side unless it cuts the connection.
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Conn, GoAwayFrame, attack_test, settings, CODE_NAMES


def attack(w, ck):
    c = Conn(w.port)
    c.preface()
    t0 = time.time()
    frame = settings([(0x3, 100), (0x4, 65535)])
    n = 0
    closed = False
    while time.time() - t0 < 10:
        if not c.send(frame * 100):
            closed = True
            break
        n += 100
        if n >= 20000:
            break
    g = c.goaway(5)
    secs = time.time() - t0
    if g is not None:
        return g.error_code == 11, "GOAWAY(%s) after %d SETTINGS" % (
            CODE_NAMES.get(g.error_code), n), secs
    return closed or c.eof, "closed after %d SETTINGS (no GOAWAY read)" % n, secs


attack_test("settings-flood", attack, cut_within_s=6)
