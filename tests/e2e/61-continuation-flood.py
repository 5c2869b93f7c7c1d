#!/usr/bin/python3
# tests/e2e/61-continuation-flood.py: the CONTINUATION flood class (CVE-2024-27316): a HEADERS
# frame without END_HEADERS followed by an endless run of CONTINUATION frames, each carrying
# more header fields. weir counts CONTINUATION frames per header block
# (limits.max_continuations, default 8) and ends the connection with
# GOAWAY(ENHANCE_YOUR_CALM); the header bytes it holds meanwhile stay under
# max_header_list_size.
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Conn, ContinuationFrame, GoAwayFrame, attack_test, headers, CODE_NAMES


def attack(w, ck):
    c = Conn(w.port)
    c.preface()
    t0 = time.time()
    c.send(headers(1, enc=c.enc, end_headers=False))
    n = 0
    while time.time() - t0 < 10:
        f = ContinuationFrame(1)
        f.data = c.enc.encode([("x-flood-%d" % n, "v" * 1000)])
        n += 1
        if not c.send(f.serialize()):
            return True, "connection closed after %d CONTINUATION" % n, time.time() - t0
        g = c.until(lambda x: isinstance(x, GoAwayFrame), 0.002)
        if g is not None or c.eof:
            code = g.error_code if g is not None else None
            return (code in (None, 11), "GOAWAY(%s) after %d CONTINUATION" %
                    (CODE_NAMES.get(code, code), n), time.time() - t0)
    return False, "still open after %d CONTINUATION" % n, time.time() - t0


attack_test("continuation-flood", attack, cut_within_s=5)
