#!/usr/bin/python3
# tests/e2e/50-conformance-preface-settings.py: RFC 9113 3.4 (connection preface) and 6.5
# (SETTINGS): each case sends one malformed preface or SETTINGS frame on its own connection and
# checks the exact reaction the RFC requires (connection error -> GOAWAY with the code).
import os, struct, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import *

GA = lambda code: {("goaway", code)}
cases = [
    # A preface that is neither HTTP/2's nor an HTTP/1.1 request line gets GOAWAY before the
    # close (3.4 allows a bare close; weir says why). Before, all three went to HTTP/1.1: the
    # first got a bare close (eof), the other two nothing within 5 s (a request line awaited).
    ("3.4 invalid preface -> GOAWAY(PROTOCOL_ERROR)",
     lambda c: (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings(()), False), 0,
     GA(PROTOCOL_ERROR)),
    ("3.4 frames without the preface -> GOAWAY(PROTOCOL_ERROR)",
     lambda c: (settings(()) + headers(1, enc=c.enc), False), 0, GA(PROTOCOL_ERROR)),
    ("3.4 a TLS ClientHello on the h2c port -> GOAWAY(PROTOCOL_ERROR)",
     lambda c: (bytes.fromhex("160301020001000200fc0303") + bytes(32), False), 0,
     GA(PROTOCOL_ERROR)),
    ("3.4 first frame not SETTINGS -> PROTOCOL_ERROR",
     lambda c: (PREFACE + PingFrame(0, opaque_data=b"12345678").serialize(), False), 0,
     {("goaway", PROTOCOL_ERROR), ("eof", None)}),
    ("6.5.2 ENABLE_PUSH=2 -> PROTOCOL_ERROR", lambda c: settings([(0x2, 2)]), 0,
     GA(PROTOCOL_ERROR)),
    ("6.5.2 INITIAL_WINDOW_SIZE=2^31 -> FLOW_CONTROL_ERROR",
     lambda c: settings([(0x4, 1 << 31)]), 0, GA(FLOW_CONTROL_ERROR)),
    ("6.5.2 MAX_FRAME_SIZE=16383 -> PROTOCOL_ERROR", lambda c: settings([(0x5, 16383)]), 0,
     GA(PROTOCOL_ERROR)),
    ("6.5.2 MAX_FRAME_SIZE=2^24 -> PROTOCOL_ERROR", lambda c: settings([(0x5, 1 << 24)]), 0,
     GA(PROTOCOL_ERROR)),
    ("6.5 SETTINGS ACK with payload -> FRAME_SIZE_ERROR",
     lambda c: raw_frame(0x4, 0x1, 0, struct.pack(">HI", 3, 100)), 0, GA(FRAME_SIZE_ERROR)),
    ("6.5 SETTINGS length not a multiple of 6 -> FRAME_SIZE_ERROR",
     lambda c: raw_frame(0x4, 0, 0, b"\x00\x03\x00\x00\x00"), 0, GA(FRAME_SIZE_ERROR)),
    ("6.5 SETTINGS on stream 1 -> PROTOCOL_ERROR",
     lambda c: raw_frame(0x4, 0, 1, b""), 0, GA(PROTOCOL_ERROR)),
    ("6.5.2 unknown setting id is ignored (request served)",
     lambda c: settings([(0x99, 7)]) + headers(1, enc=c.enc), 1, {("response", "200")}),
]
conformance(cases)
