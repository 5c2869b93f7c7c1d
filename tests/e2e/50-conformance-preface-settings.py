#!/usr/bin/python3
# tests/e2e/50-conformance-preface-settings.py: RFC 9113 3.4 (connection preface) and 6.5
# (SETTINGS): each case sends one malformed preface or SETTINGS frame on its own connection and
# checks the exact reaction the RFC requires (connection error -> GOAWAY with the code).
import os, struct, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import *

GA = lambda code: {("goaway", code)}
cases = [
    ("3.4 invalid preface -> PROTOCOL_ERROR (GOAWAY or close)",
     lambda c: (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings(()), False), 0,
     {("goaway", PROTOCOL_ERROR), ("eof", None)}),
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
