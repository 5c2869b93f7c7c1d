#!/usr/bin/python3
# tests/e2e/56-frames-after-reset.py: RFC 9113 5.1 on a stream the client has reset (issue 15
# part 4): "An endpoint that receives any frame other than PRIORITY after receiving a
# RST_STREAM MUST treat that as a stream error of type STREAM_CLOSED." For each frame type the
# client sends after its RST_STREAM on stream 1, weir must answer:
#   HEADERS, DATA, WINDOW_UPDATE -> RST_STREAM(STREAM_CLOSED) on stream 1 (a stream error:
#                                   no GOAWAY);
#   PRIORITY                     -> nothing (allowed on a closed stream);
#   RST_STREAM                   -> nothing (5.4.2: no RST_STREAM in answer to a RST_STREAM);
#   an unknown type (0x20)       -> nothing (5.5: ignored);
# and in every case the connection goes on: a PING is answered and a new request (stream 3)
# is served. Each case runs twice: on a stream that weir answers itself (a direct response,
# already complete when the client resets) and on a stream proxied to an h2c upstream that is
# still answering (upstream.js /slow), which weir must cancel and forget. e2e 96 has DATA after
# the reset, this test the other types; e2e 52 the frames on streams that closed normally.
# At the end no stream is left in weir (streams_active 0).
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (REQ, Checks, Conn, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame,
                   Upstream, Weir, data, headers, raw_frame)

STREAM_CLOSED, CANCEL = 5, 8
ck = Checks()
up = Upstream()
w = Weir(cfg="listeners:\n  - address: 127.0.0.1:0\n"
         "clusters:\n  - {name: up, protocol: h2c, endpoints: [\"127.0.0.1:%d\"]}\n"
         "routes:\n  - match: {path_prefix: /direct}\n"
         "    direct_response: {status: 200, body: \"direct\\n\"}\n"
         "  - cluster: up\n"
         "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n" % up.port)

CASES = [  # name, frame on stream 1 after the reset, RST_STREAM code expected (None: no answer)
    ("HEADERS", lambda c: headers(1, hdrs=[("x-trailer", "1")], enc=c.enc), STREAM_CLOSED),
    ("DATA", lambda c: data(1, b"late"), STREAM_CLOSED),
    ("WINDOW_UPDATE", lambda c: raw_frame(0x8, 0, 1, (1000).to_bytes(4, "big")), STREAM_CLOSED),
    ("PRIORITY", lambda c: raw_frame(0x2, 0, 1, bytes([0, 0, 0, 3, 15])), None),
    ("RST_STREAM", lambda c: raw_frame(0x3, 0, 1, CANCEL.to_bytes(4, "big")), None),
    ("unknown type 0x20", lambda c: raw_frame(0x20, 0, 1, b"abc"), None),
]
PATHS = [("a direct response", "/direct"), ("a proxied stream still open upstream",
                                           "/slow?ms=3000&bytes=100000&head_ms=0")]


def req(path, method="GET"):
    return [(":method", method)] + [(k, path if k == ":path" else v) for k, v in REQ[1:]]


for where, path in PATHS:
    for name, frame, want in CASES:
        c = Conn(w.port)
        c.preface()
        c.send(headers(1, hdrs=req(path, "POST"), enc=c.enc, end_stream=False))
        c.until(lambda f: isinstance(f, HeadersFrame) and f.stream_id == 1, 10)
        c.send(raw_frame(0x3, 0, 1, CANCEL.to_bytes(4, "big")))  # the client's RST_STREAM
        c.send(frame(c))
        c.send(raw_frame(0x6, 0, 0, b"afterrst"))  # PING: everything before it was read
        seen = []
        ack = c.until(lambda f: seen.append(f) or (isinstance(f, PingFrame) and
                                                   "ACK" in f.flags), 10)
        rst = [f.error_code for f in seen if isinstance(f, RstStreamFrame) and f.stream_id == 1]
        ga = [f for f in seen if isinstance(f, GoAwayFrame)]
        if want is None:
            ok = ack is not None and not rst and not ga
            expect = "no answer"
        else:
            ok = ack is not None and rst == [want] and not ga
            expect = "RST_STREAM(STREAM_CLOSED)"
        ck.check("%s after the client's RST_STREAM, on %s: %s" % (name, where, expect), ok,
                 "PING answered %s, RST_STREAM codes on stream 1 %r, GOAWAY %r" %
                 (ack is not None, rst, [g.error_code for g in ga]))
        c.send(headers(3, hdrs=req("/direct"), enc=c.enc))
        r = c.until(lambda f: isinstance(f, HeadersFrame) and f.stream_id == 3, 10)
        ck.check("%s, on %s: the connection goes on (stream 3 served)" % (name, where),
                 r is not None, "")
        c.close()

deadline = time.time() + 10
while w.stats().get("streams_active") != 0 and time.time() < deadline:
    time.sleep(0.05)
st = w.stats().get("streams_active")
ck.check("no stream left in weir (the reset proxied streams were cancelled)", st == 0,
         "streams_active %s" % st)
ck.check("weir alive", w.alive(), "")
rc = w.stop()
ck.check("clean exit on SIGTERM", rc == 0, "exit %s" % rc)
up.stop()
ck.exit(w)
