#!/usr/bin/python3
# tests/e2e/66-zero-window.py: zero-window stall. The attacker sets SETTINGS_INITIAL_WINDOW_SIZE
# to 0, asks 40 streams for 4 MB each from the upstream and never sends WINDOW_UPDATE, so
# weir cannot deliver a byte. weir buffers at most its per-stream bound, stops reading the
# upstream, and after limits.stream_idle_timeout (2 s here) resets each stalled stream with
# RST_STREAM(CANCEL); the then idle connection gets GOAWAY after limits.idle_timeout (2 s).
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (Conn, GoAwayFrame, RstStreamFrame, attack_test, headers, CODE_NAMES, REQ)

N = 40


def attack(w, ck):
    c = Conn(w.port)
    c.preface([(0x4, 0)])  # INITIAL_WINDOW_SIZE = 0
    t0 = time.time()
    req = [(k, "/bytes/4000000" if k == ":path" else v) for k, v in REQ]
    for i in range(N):
        c.send(headers(1 + 2 * i, hdrs=req, enc=c.enc))
    rst = {}
    goaway = None
    for f in c.frames(15):
        if f is None:
            break
        if isinstance(f, RstStreamFrame):
            rst[f.stream_id] = f.error_code
        if isinstance(f, GoAwayFrame):
            goaway = f
            break
    secs = time.time() - t0
    ck.check("zero-window: every stalled stream reset", len(rst) == N and
             set(rst.values()) <= {8}, "%d of %d RST_STREAM, codes %s" %
             (len(rst), N, sorted(set(CODE_NAMES.get(x) for x in rst.values()))))
    st = w.stats()
    ck.check("zero-window: no stream left active", st.get("streams_active") == 0,
             "streams_active=%s" % st.get("streams_active"))
    ok = len(rst) == N and (goaway is not None or c.eof)
    return ok, "%d streams reset, then %s" % (
        len(rst), "GOAWAY(%s)" % CODE_NAMES.get(goaway.error_code) if goaway else
        ("close" if c.eof else "still open")), secs


attack_test("zero-window", attack, upstream=True, cut_within_s=10,
            cfg_extra="limits: {stream_idle_timeout: 2s, idle_timeout: 2s}\n")
