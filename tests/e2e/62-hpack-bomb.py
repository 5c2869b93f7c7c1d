#!/usr/bin/python3
# tests/e2e/62-hpack-bomb.py: HPACK bomb. One 4 KB header value goes into the dynamic table
# once; every later request references it thousands of times with one-byte indexed fields,
# so a few KB on the wire would decode into megabytes of header list. weir stops copying
# at max_header_list_size (set to 16 KiB here) and answers 431, so memory stays bounded;
# an attacker that keeps going is cut off by the per-connection rate limits (RST/PING) or
# the stream refusals. Checks the 431 and that weir's RSS stays under the budget.
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (Conn, Decoder, GoAwayFrame, HeadersFrame, RstStreamFrame, attack_test,
                   CODE_NAMES, REQ, headers)


def attack(w, ck):
    c = Conn(w.port)
    c.preface()
    t0 = time.time()
    # Literal with incremental indexing: "x-bomb: <4000 x a>" becomes dynamic index 62.
    first = c.enc.encode(REQ + [("x-bomb", "a" * 4000)])
    c.send(headers(1, block=first))
    # Each further stream: the four pseudo-headers (static indices) + 2000 x index 62.
    block = bytes([0x82, 0x86, 0x84]) + c.enc.encode([(":authority", "localhost")]) + \
        bytes([0x80 | 62]) * 2000
    sid = 3
    answers = {}
    for _ in range(40):
        c.send(headers(sid, block=block))
        sid += 2
    decoded = 0
    for f in c.frames(8):
        if f is None:
            break
        if isinstance(f, GoAwayFrame):
            return True, "GOAWAY(%s)" % CODE_NAMES.get(f.error_code), time.time() - t0
        if isinstance(f, HeadersFrame):
            st = dict(c.dec.decode(f.data)).get(":status")  # every block: table state
            if f.stream_id >= 3:
                answers[f.stream_id] = st
        if isinstance(f, RstStreamFrame) and f.stream_id >= 3:
            answers[f.stream_id] = "RST(%s)" % CODE_NAMES.get(f.error_code)
        if len(answers) >= 40:
            break
    vals = set(answers.values())
    ok = len(answers) == 40 and all(v == "431" or str(v).startswith("RST") for v in vals)
    ck.check("hpack-bomb: each 8 MB-decoded request refused (431/RST)", ok,
             "%d answers: %s" % (len(answers), sorted(vals)))
    return ok, "%d bomb streams refused %s" % (len(answers), sorted(vals)), time.time() - t0


attack_test("hpack-bomb", attack, cfg_extra="limits: {max_header_list_size: 16KiB}\n",
            cut_within_s=10)
