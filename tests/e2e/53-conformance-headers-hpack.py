#!/usr/bin/python3
# tests/e2e/53-conformance-headers-hpack.py: RFC 9113 8.2/8.3 (field validity, pseudo-headers,
# connection-specific fields, te, content-length) and RFC 7541 (HPACK decoding errors). A
# malformed request is a stream error PROTOCOL_ERROR (RST_STREAM); an HPACK decoding error is a
# connection error COMPRESSION_ERROR (GOAWAY).
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import *

GA = lambda code: {("goaway", code)}
RST = lambda code: {("rst", code)}
M, S, A, P = REQ
POST = [(":method", "POST"), S, A, P]


def req(hdrs, **kw):
    return lambda c: headers(1, hdrs=hdrs, enc=c.enc, **kw)


def lit(name, value):
    """Literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


STATIC = bytes([0x82, 0x86, 0x84]) + lit(":authority", "localhost")  # GET http /
cases = [
    ("8.2.1 uppercase header name -> PROTOCOL_ERROR",
     lambda c: headers(1, block=STATIC + lit("X-Upper", "v")), 1, RST(PROTOCOL_ERROR)),
    ("8.2.2 connection-specific header (connection) -> PROTOCOL_ERROR",
     req(REQ + [("connection", "keep-alive")]), 1, RST(PROTOCOL_ERROR)),
    ("8.2.2 connection-specific header (transfer-encoding) -> PROTOCOL_ERROR",
     req(REQ + [("transfer-encoding", "chunked")]), 1, RST(PROTOCOL_ERROR)),
    ("8.2.2 te other than trailers -> PROTOCOL_ERROR", req(REQ + [("te", "gzip")]), 1,
     RST(PROTOCOL_ERROR)),
    ("8.2.2 te: trailers is allowed (request served)", req(REQ + [("te", "trailers")]), 1,
     {("response", "200")}),
    ("8.3.1 :method missing -> PROTOCOL_ERROR", req([S, A, P]), 1, RST(PROTOCOL_ERROR)),
    ("8.3.1 :scheme missing -> PROTOCOL_ERROR", req([M, A, P]), 1, RST(PROTOCOL_ERROR)),
    ("8.3.1 :path missing -> PROTOCOL_ERROR", req([M, S, A]), 1, RST(PROTOCOL_ERROR)),
    ("8.3.1 :path duplicated -> PROTOCOL_ERROR", req(REQ + [(":path", "/x")]), 1,
     RST(PROTOCOL_ERROR)),
    ("8.3.1 :method duplicated -> PROTOCOL_ERROR", req([M, M, S, A, P]), 1,
     RST(PROTOCOL_ERROR)),
    ("8.3 pseudo-header after a regular field -> PROTOCOL_ERROR",
     req([M, S, A, ("x-a", "b"), P]), 1, RST(PROTOCOL_ERROR)),
    ("8.3.1 empty :path -> PROTOCOL_ERROR", req([M, S, A, (":path", "")]), 1,
     RST(PROTOCOL_ERROR)),
    ("8.3 unknown pseudo-header -> PROTOCOL_ERROR", req(REQ + [(":foo", "bar")]), 1,
     RST(PROTOCOL_ERROR)),
    ("8.3.2 response pseudo-header in a request -> PROTOCOL_ERROR",
     req(REQ + [(":status", "200")]), 1, RST(PROTOCOL_ERROR)),
    ("8.1 pseudo-header in trailers -> PROTOCOL_ERROR",
     lambda c: headers(1, hdrs=POST, enc=c.enc, end_stream=False) +
     headers(1, hdrs=[(":path", "/t")], enc=c.enc), 1, RST(PROTOCOL_ERROR)),
    ("8.1.1 content-length 10 with 5 bytes of DATA -> PROTOCOL_ERROR",
     lambda c: headers(1, hdrs=POST + [("content-length", "10")], enc=c.enc, end_stream=False)
     + data(1, b"12345", end_stream=True), 1, RST(PROTOCOL_ERROR)),
    ("8.1.1 content-length 3 with 5 bytes of DATA -> PROTOCOL_ERROR",
     lambda c: headers(1, hdrs=POST + [("content-length", "3")], enc=c.enc, end_stream=False)
     + data(1, b"12345", end_stream=True), 1, RST(PROTOCOL_ERROR)),
    ("RFC 7541 2.3.3 index past the tables -> COMPRESSION_ERROR",
     lambda c: headers(1, block=STATIC + b"\xff\x7f"), 1, GA(COMPRESSION_ERROR)),
    ("RFC 7541 2.3.3 index 0 -> COMPRESSION_ERROR",
     lambda c: headers(1, block=STATIC + b"\x80"), 1, GA(COMPRESSION_ERROR)),
    ("RFC 7541 6.3 table size update over SETTINGS_HEADER_TABLE_SIZE -> COMPRESSION_ERROR",
     lambda c: headers(1, block=b"\x3f\xe1\x3f" + STATIC), 1, GA(COMPRESSION_ERROR)),
    ("RFC 7541 4.2 table size update after a field -> COMPRESSION_ERROR",
     lambda c: headers(1, block=STATIC + b"\x20"), 1, GA(COMPRESSION_ERROR)),
    ("RFC 7541 5.2 Huffman string with EOS -> COMPRESSION_ERROR",
     lambda c: headers(1, block=STATIC + b"\x00\x81a\x84\xff\xff\xff\xff"), 1,
     GA(COMPRESSION_ERROR)),
    ("RFC 7541 5.2 Huffman padding longer than 7 bits -> COMPRESSION_ERROR",
     lambda c: headers(1, block=STATIC + b"\x00\x81a\x82\x1f\xff"), 1, GA(COMPRESSION_ERROR)),
    ("RFC 7541 5.1 integer overflow in a length -> COMPRESSION_ERROR",
     lambda c: headers(1, block=STATIC + b"\x00\x7f\xff\xff\xff\xff\xff\x0f"), 1,
     GA(COMPRESSION_ERROR)),
]
conformance(cases)
