#!/usr/bin/python3
# tests/e2e/69-idle-stream.py: a stream opened and left idle. The attacker sends the HEADERS of
# a POST /sha256 (no END_STREAM) to an upstream that answers after the whole body, then nothing, on 50 streams.
# After limits.stream_idle_timeout (2 s here) weir answers each with 504 (the upstream never
# answered) and, as the client still does not finish, resets it with RST_STREAM(CANCEL) one
# timeout later. Memory held by the streams is released (streams_active back to 0).
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (Conn, HeadersFrame, RstStreamFrame, attack_test, headers, CODE_NAMES, REQ)

N = 50


def attack(w, ck):
    c = Conn(w.port)
    c.preface()
    t0 = time.time()
    req = [(":method", "POST")] + [(k, "/sha256" if k == ":path" else v) for k, v in REQ[1:]]
    for i in range(N):
        c.send(headers(1 + 2 * i, hdrs=req, enc=c.enc, end_stream=False))
    status, rst = {}, {}
    t504 = None
    for f in c.frames(12):
        if f is None:
            break
        if isinstance(f, HeadersFrame):
            status[f.stream_id] = dict(c.dec.decode(f.data)).get(":status")
            if len(status) == N:
                t504 = time.time() - t0
        if isinstance(f, RstStreamFrame):
            rst[f.stream_id] = f.error_code
        if len(rst) == N:
            break
    secs = time.time() - t0
    ck.check("idle-stream: 504 on every idle stream", len(status) == N and
             set(status.values()) == {"504"}, "%d answers %s after %s s" %
             (len(status), sorted(set(status.values())), t504))
    ck.check("idle-stream: each then reset with CANCEL", len(rst) == N and
             set(rst.values()) == {8}, "%d RST %s" % (len(rst),
                                                      sorted(set(CODE_NAMES.get(x) for x in rst.values()))))
    # The good client (attack_test runs it throughout) has at most one stream open at a time,
    # so the attacker's 50 are released once streams_active is 1 or less.
    deadline = time.time() + 5
    active = None
    while time.time() < deadline:
        active = w.stats().get("streams_active")
        if active is not None and active <= 1:
            break
        time.sleep(0.05)
    ck.check("idle-stream: streams released", active is not None and active <= 1,
             "streams_active=%s (the good client may hold one)" % active)
    return len(rst) == N, "%d streams 504 then RST" % len(rst), secs


attack_test("idle-stream", attack, upstream=True, cut_within_s=8,
            cfg_extra="limits: {stream_idle_timeout: 2s}\n")
