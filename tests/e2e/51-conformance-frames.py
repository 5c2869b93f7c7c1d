#!/usr/bin/python3
# tests/e2e/51-conformance-frames.py: RFC 9113 4.2 (frame size) and section 6 (frame
# definitions): frames over MAX_FRAME_SIZE, wrong lengths for PING, PRIORITY, RST_STREAM,
# WINDOW_UPDATE, frames on the wrong stream (0 or not 0), CONTINUATION rules, padding. Each case
# checks the exact reaction the RFC requires: GOAWAY for connection errors, RST_STREAM for
# stream errors, each with its error code. RFC 9113 5.4 lets an endpoint treat a stream error
# as a connection error; nghttp2 does so for a malformed PRIORITY, and the code is still checked.
import os, struct, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import *

GA = lambda code: {("goaway", code)}
RST = lambda code: {("rst", code)}
POST = [(":method", "POST")] + REQ[1:]
post_open = lambda c: headers(1, hdrs=POST, enc=c.enc, end_stream=False)
cases = [
    ("4.2 DATA over MAX_FRAME_SIZE (16385) -> FRAME_SIZE_ERROR",
     lambda c: post_open(c) + raw_frame(0x0, 0, 1, b"x" * 16385), 1,
     GA(FRAME_SIZE_ERROR) | RST(FRAME_SIZE_ERROR)),
    ("4.2 HEADERS over MAX_FRAME_SIZE -> FRAME_SIZE_ERROR (connection: header block)",
     lambda c: raw_frame(0x1, 0x5, 1, c.enc.encode(REQ + [("x-big", "~" * 16400)])), 1,
     GA(FRAME_SIZE_ERROR)),
    ("6.7 PING length 7 -> FRAME_SIZE_ERROR", lambda c: raw_frame(0x6, 0, 0, b"1234567"), 0,
     GA(FRAME_SIZE_ERROR)),
    ("6.7 PING on stream 1 -> PROTOCOL_ERROR", lambda c: raw_frame(0x6, 0, 1, b"12345678"), 0,
     GA(PROTOCOL_ERROR)),
    ("6.3 PRIORITY length 4 -> FRAME_SIZE_ERROR (stream error; 5.4: MAY be a connection error)",
     lambda c: post_open(c) + raw_frame(0x2, 0, 1, b"\x00\x00\x00\x00"), 1,
     RST(FRAME_SIZE_ERROR) | GA(FRAME_SIZE_ERROR)),
    ("6.3 PRIORITY on stream 0 -> PROTOCOL_ERROR",
     lambda c: raw_frame(0x2, 0, 0, b"\x00\x00\x00\x00\x10"), 0, GA(PROTOCOL_ERROR)),
    ("6.4 RST_STREAM length 3 -> FRAME_SIZE_ERROR",
     lambda c: post_open(c) + raw_frame(0x3, 0, 1, b"\x00\x00\x08"), 1, GA(FRAME_SIZE_ERROR)),
    ("6.4 RST_STREAM on stream 0 -> PROTOCOL_ERROR",
     lambda c: raw_frame(0x3, 0, 0, b"\x00\x00\x00\x08"), 0, GA(PROTOCOL_ERROR)),
    ("6.9 WINDOW_UPDATE length 3 -> FRAME_SIZE_ERROR",
     lambda c: raw_frame(0x8, 0, 0, b"\x00\x00\x01"), 0, GA(FRAME_SIZE_ERROR)),
    ("6.5 SETTINGS length 5 -> FRAME_SIZE_ERROR",
     lambda c: raw_frame(0x4, 0, 0, b"\x00\x04\x00\x00\x00"), 0, GA(FRAME_SIZE_ERROR)),
    ("6.8 GOAWAY on stream 1 -> PROTOCOL_ERROR",
     lambda c: raw_frame(0x7, 0, 1, b"\x00\x00\x00\x00\x00\x00\x00\x00"), 0, GA(PROTOCOL_ERROR)),
    ("6.1 DATA on stream 0 -> PROTOCOL_ERROR", lambda c: raw_frame(0x0, 0, 0, b"abc"), 0,
     GA(PROTOCOL_ERROR)),
    ("6.1 DATA padding longer than the payload -> PROTOCOL_ERROR",
     lambda c: post_open(c) + raw_frame(0x0, 0x8, 1, b"\x09abc"), 1, GA(PROTOCOL_ERROR)),
    ("6.2 HEADERS padding longer than the payload -> PROTOCOL_ERROR",
     lambda c: raw_frame(0x1, 0x5 | 0x8, 1, b"\xff" + c.enc.encode(REQ)), 1,
     GA(PROTOCOL_ERROR)),
    ("6.10 CONTINUATION without HEADERS -> PROTOCOL_ERROR",
     lambda c: raw_frame(0x9, 0x4, 1, c.enc.encode(REQ)), 1, GA(PROTOCOL_ERROR)),
    ("6.10 other frame inside a header block -> PROTOCOL_ERROR",
     lambda c: headers(1, enc=c.enc, end_headers=False) +
     PingFrame(0, opaque_data=b"12345678").serialize(), 1, GA(PROTOCOL_ERROR)),
    ("6.10 CONTINUATION on another stream -> PROTOCOL_ERROR",
     lambda c: headers(1, enc=c.enc, end_headers=False) + raw_frame(0x9, 0x4, 3, b""), 1,
     GA(PROTOCOL_ERROR)),
    ("5.5 unknown frame type is ignored (request served)",
     lambda c: raw_frame(0xfa, 0, 0, b"whatever") + headers(1, enc=c.enc), 1,
     {("response", "200")}),
]
conformance(cases)
