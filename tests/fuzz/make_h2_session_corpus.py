#!/usr/bin/python3
# tests/fuzz/make_h2_session_corpus.py: writes the seed corpus of fuzz_h2_session
# (tests/fuzz/corpus/fuzz_h2_session/) from the frame sequences of the conformance tests
# (tests/e2e/50-53: each case's bytes, as its test sends them after the preface), with
# python3-hyperframe and python3-hpack, plus request/response exchanges and floods for both
# roles. An input is one flags byte (see fuzz_h2_session.c) and the peer's bytes.
# The conformance cases also go into fuzz_downstream's corpus (tests/fuzz/corpus/fuzz_downstream/,
# files named conf-*): there the first byte picks the read size (fuzz_downstream.c), and the
# frames reach weir's whole server glue (proxy/h2/) rather than the codec alone.
# Run it again after adding a conformance case: /usr/bin/python3 tests/fuzz/make_h2_session_corpus.py
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "e2e")
sys.path.insert(0, E2E)
from h2raw import (PREFACE, REQ, ContinuationFrame, DataFrame, Encoder, GoAwayFrame, PingFrame,
                   RstStreamFrame, WindowUpdateFrame, headers, raw_frame, settings)

OUT = os.path.join(HERE, "corpus", "fuzz_h2_session")
OUT_DOWN = os.path.join(HERE, "corpus", "fuzz_downstream")
CLIENT, CONSUME, BODY, SHUTDOWN, SHRINK, FAULTS = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


class FakeConn:
    """What a case's build(conn) uses of tests/e2e/h2raw.Conn: its HPACK encoder, and for the
    cases that talk first, send (kept, to come before the case's bytes) and until (no
    answer: the codec's answer comes as the fuzzer feeds the bytes)."""

    def __init__(self):
        self.enc = Encoder()
        self.sent = b""

    def send(self, b):
        self.sent += b
        return True

    def until(self, pred, seconds=5.0):
        return None


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]


def write(name, flags, payload):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([flags]) + payload)


def conformance_cases():
    for fn in sorted(os.listdir(E2E)):
        if not re.match(r"5[0-3]-conformance-.*\.py$", fn):
            continue
        src = open(os.path.join(E2E, fn)).read()
        # Everything but the run: the module ends by calling conformance(cases, ...).
        src = re.sub(r"^conformance\(.*$", "", src, flags=re.M | re.S)
        ns = {"__file__": os.path.join(E2E, fn), "__name__": "corpus"}
        exec(compile(src, fn, "exec"), ns)
        for case in ns["cases"]:
            name, build = case[0], case[1]
            c = FakeConn()
            out = build(c)
            # (bytes, False): the case sends its own preface; the harness feeds it as is.
            data = c.sent + (out[0] if isinstance(out, tuple) else out)
            yield fn[:2] + "-" + slug(name), data


def main():
    os.makedirs(OUT, exist_ok=True)
    n = 0
    for name, data in conformance_cases():
        write(name, CONSUME | BODY, data)
        # fuzz_downstream: reads of 256 bytes (first byte 255 + 1), frame boundaries anywhere.
        with open(os.path.join(OUT_DOWN, "conf-" + name), "wb") as f:
            f.write(bytes([255]) + data)
        n += 1
    c = FakeConn()
    post = [(":method", "POST")] + REQ[1:]
    # Server role: requests, bodies, trailers, resets, window updates, GOAWAY, floods.
    write("s-get", CONSUME | BODY, headers(1, enc=c.enc) + headers(3, enc=c.enc))
    c = FakeConn()
    write("s-post-body-trailers", BODY | 0x40,
          headers(1, hdrs=post, enc=c.enc, end_stream=False) + DataFrame(1, b"x" * 20000).serialize()
          + headers(1, hdrs=[("x-t", "1")], enc=c.enc, end_stream=True))
    c = FakeConn()
    write("s-slow-reader-shrink", SHRINK | 0x80,
          headers(1, hdrs=post, enc=c.enc, end_stream=False) +
          b"".join(DataFrame(1, b"y" * 8000).serialize() for _ in range(3)) +
          WindowUpdateFrame(0, window_increment=100000).serialize())
    c = FakeConn()
    write("s-rapid-reset", CONSUME,
          b"".join(headers(s, enc=c.enc) + RstStreamFrame(s, error_code=8).serialize()
                   for s in range(1, 80, 2)))
    c = FakeConn()
    write("s-continuation-flood", CONSUME,
          headers(1, enc=c.enc, end_headers=False) +
          b"".join(ContinuationFrame(1, data=b"").serialize() for _ in range(40)))
    write("s-ping-settings-flood", FAULTS,
          b"".join(PingFrame(0, opaque_data=b"12345678").serialize() + settings(())
                   for _ in range(30)))
    c = FakeConn()
    write("s-shutdown-drain", SHUTDOWN | BODY | 0xc0,
          headers(1, enc=c.enc) + PingFrame(0, opaque_data=b"weirdrn!", flags=["ACK"]).serialize()
          + headers(3, enc=c.enc) + settings((), ack=True))
    # Client role: responses to our streams 1, 3 (with a body going up) and 5.
    c = FakeConn()
    resp = [(":status", "200")]
    write("c-responses", CLIENT | CONSUME,
          settings((), ack=True) + headers(1, hdrs=resp, enc=c.enc, end_stream=False) +
          DataFrame(1, b"z" * 3000, flags=["END_STREAM"]).serialize() +
          WindowUpdateFrame(0, window_increment=65536).serialize() +
          WindowUpdateFrame(3, window_increment=65536).serialize() +
          headers(3, hdrs=resp, enc=c.enc) + headers(5, hdrs=[(":status", "100")], enc=c.enc,
                                                     end_stream=False) +
          headers(5, hdrs=resp, enc=c.enc))
    c = FakeConn()
    write("c-goaway-refuses", CLIENT,
          headers(1, hdrs=resp, enc=c.enc, end_stream=False) +
          GoAwayFrame(0, last_stream_id=1, error_code=0).serialize() +
          DataFrame(1, b"q", flags=["END_STREAM"]).serialize())
    write("c-settings-window", CLIENT | FAULTS,
          settings([(0x4, 1), (0x5, 20000), (0x1, 0)]) + settings([(0x4, 70000)]) +
          RstStreamFrame(3, error_code=7).serialize() + raw_frame(0x5, 0x4, 1, b"\x00\x00\x00\x02"))
    print("fuzz_h2_session corpus: %d conformance cases + 10 exchanges in %s; the %d cases "
          "also in %s" % (n, OUT, n, OUT_DOWN))


main()
