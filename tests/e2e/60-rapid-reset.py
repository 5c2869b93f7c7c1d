#!/usr/bin/python3
# tests/e2e/60-rapid-reset.py: CVE-2023-44487 (HTTP/2 rapid reset). The attacker opens streams
# and cancels each at once, as fast as it can write. weir counts client RST_STREAM per second
# (limits.rst_per_second, default 100) and answers past it with GOAWAY(ENHANCE_YOUR_CALM).
# Checks (h2raw.attack_test): cut off within 5 s, RSS under the budget, a parallel curl client
# never fails, weir serves afterwards.
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Conn, GoAwayFrame, RstStreamFrame, attack_test, headers, CODE_NAMES


def attack(w, ck):
    c = Conn(w.port)
    c.preface()
    t0 = time.time()
    sid = 1
    while time.time() - t0 < 10:
        batch = b""
        for _ in range(50):
            batch += headers(sid, enc=c.enc) + RstStreamFrame(sid, error_code=8).serialize()
            sid += 2
        if not c.send(batch):
            return True, "connection closed (%d streams)" % (sid // 2), time.time() - t0
        g = c.until(lambda f: isinstance(f, GoAwayFrame), 0.01)
        if g is not None or c.eof:
            code = g.error_code if g is not None else None
            return (code in (None, 11), "GOAWAY(%s) after %d streams" %
                    (CODE_NAMES.get(code, code), sid // 2), time.time() - t0)
    return False, "still open after %d streams" % (sid // 2), time.time() - t0


attack_test("rapid-reset", attack, cut_within_s=5)
