#!/usr/bin/python3
# tests/e2e/96-codec-rfc.py: RFC behaviours that weir's own HTTP/2 codec gets right where the
# nghttp2 session it replaced did not (issue 15 part 4; the comments say what that path did).
#   1. HEAD through an upstream that answers with a body (as nghttpd does on its 404 page):
#      the client gets the head, the stream ends (END_STREAM), no body and no RST_STREAM.
#      nghttp2's path reset the stream with INTERNAL_ERROR.
#   2. DATA on a stream after the client's RST_STREAM on it: a stream error STREAM_CLOSED
#      (RFC 9113 5.1); nghttp2's path stayed silent.
#   3. HEADERS on a stream that closed normally: a connection error STREAM_CLOSED (5.1, 5.4.1);
#      nghttp2's path stayed silent.
#   4. Every flood and rate limit ends the connection one way (issue 15 part 5): GOAWAY
#      (ENHANCE_YOUR_CALM) with the reason as debug data, counted, and logged once per reason.
#   5. The client's GOAWAY with an error: no GOAWAY back, counted as a close in error only.
# The upstream is a Python h2 server (python3-h2), so that it can send what node's http2 will
# not (a body to HEAD).
import os, socket, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import h2.config, h2.connection, h2.events
except ImportError:
    print("SKIP: python3-h2 missing")
    sys.exit(77)
from h2raw import (Checks, Conn, DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame, Weir, data,
                   headers, raw_frame, settings, REQ)

STREAM_CLOSED = 5


def serve_one(sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                validate_inbound_headers=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while True:
        try:
            d = sock.recv(65536)
        except OSError:
            return
        if not d:
            return
        for ev in conn.receive_data(d):
            if isinstance(ev, h2.events.RequestReceived):
                body = b"no such page, and a body to HEAD all the same\n"
                conn.send_headers(ev.stream_id, [(":status", "404"),
                                                 ("content-length", str(len(body)))])
                conn.send_data(ev.stream_id, body, end_stream=True)
        out = conn.data_to_send()
        if out:
            sock.sendall(out)


def upstream():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def loop():
        while True:
            s, _ = ls.accept()
            threading.Thread(target=serve_one, args=(s,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return ls.getsockname()[1]


ck = Checks()
port = upstream()
cfg = ("listeners:\n  - address: 127.0.0.1:0\n"
       "clusters:\n  - {name: up, protocol: h2c, endpoints: [\"127.0.0.1:%d\"]}\n"
       "routes:\n  - match: {path_prefix: /direct}\n    direct_response: {status: 200, body: \"ok\\n\"}\n"
       "  - cluster: up\n"
       "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n" % port)
w = Weir(cfg=cfg)

# 1. HEAD answered at the upstream's head, whatever the upstream sends after it.
for i in range(3):
    c = Conn(w.port)
    c.preface()
    head = [(":method", "HEAD")] + [(k, "/missing" if k == ":path" else v) for k, v in REQ[1:]]
    c.send(headers(1, hdrs=head, enc=c.enc))
    status, ended, rst, body = None, False, None, 0
    for f in c.frames(5):
        if f is None:
            break
        if f.stream_id != 1:
            continue
        if isinstance(f, HeadersFrame):
            status = dict(c.dec.decode(f.data)).get(":status")
        if isinstance(f, DataFrame):
            body += len(f.data)
        if isinstance(f, RstStreamFrame):
            rst = f.error_code
            break
        if "END_STREAM" in getattr(f, "flags", ()):
            ended = True
            break
    c.close()
    ck.check("HEAD #%d through an upstream that sends a body: head, END_STREAM, no body, no reset"
             % (i + 1), status == "404" and ended and rst is None and body == 0,
             "status %s, END_STREAM %s, RST_STREAM %s, %d body bytes" % (status, ended, rst, body))

# 2. DATA after the client's RST_STREAM: RST_STREAM(STREAM_CLOSED).
c = Conn(w.port)
c.preface()
post = [(":method", "POST")] + [(k, "/direct" if k == ":path" else v) for k, v in REQ[1:]]
c.send(headers(1, hdrs=post, enc=c.enc, end_stream=False))
c.until(lambda f: isinstance(f, HeadersFrame) and f.stream_id == 1, 5)
c.send(raw_frame(0x3, 0, 1, (8).to_bytes(4, "big")))  # RST_STREAM(CANCEL)
c.send(data(1, b"late"))
r = c.until(lambda f: isinstance(f, (RstStreamFrame, GoAwayFrame)), 5)
ck.check("DATA after the client's RST_STREAM: RST_STREAM(STREAM_CLOSED)",
         isinstance(r, RstStreamFrame) and r.stream_id == 1 and r.error_code == STREAM_CLOSED,
         "got %r" % (r,))
c.send(headers(3, hdrs=post[:1] + [(k, v) for k, v in REQ[1:]], enc=c.enc))
r = c.until(lambda f: isinstance(f, HeadersFrame) and f.stream_id == 3, 5)
ck.check("the connection goes on after the stream error", r is not None, "")
c.close()

# 3. HEADERS on a stream that closed normally: GOAWAY(STREAM_CLOSED).
c = Conn(w.port)
c.preface()
get = [(":method", "GET")] + [(k, "/direct" if k == ":path" else v) for k, v in REQ[1:]]
c.send(headers(1, hdrs=get, enc=c.enc))
c.until(lambda f: f.stream_id == 1 and "END_STREAM" in getattr(f, "flags", ()), 5)
c.send(headers(1, hdrs=get, enc=c.enc))
g = c.goaway(5)
ck.check("HEADERS on a normally closed stream: GOAWAY(STREAM_CLOSED)",
         g is not None and g.error_code == STREAM_CLOSED, "got %r" % (g,))
c.close()

# 4. One end for every abuse: each flood and rate check ends the connection through the codec's
#    px_h2_ep_fail, which counts it (/stats flood_goaway), sends GOAWAY(ENHANCE_YOUR_CALM) with
#    the reason as its debug data (RFC 9113 6.8) and has weir log it: once per reason, however
#    many connections end for it (before: counted and sent, never logged).
ping = raw_frame(0x6, 0, 0, b"weirping")
abuses = [
    ("PING flood", "control frame rate", lambda c: ping * 300),
    ("SETTINGS flood", "control frame rate", lambda c: settings(()) * 300),
    ("empty DATA flood", "empty frame rate",
     lambda c: headers(1, hdrs=post, enc=c.enc, end_stream=False) + data(1, b"") * 300),
    ("rapid reset", "RST_STREAM rate",
     lambda c: b"".join(headers(2 * i + 1, hdrs=get, enc=c.enc) +
                        raw_frame(0x3, 0, 2 * i + 1, (8).to_bytes(4, "big"))
                        for i in range(300))),
    ("CONTINUATION flood", "too many CONTINUATION frames",
     lambda c: headers(1, block=c.enc.encode(get), end_headers=False) +
     raw_frame(0x9, 0, 1, b"") * 50),
]
before = w.stats().get("flood_goaway", 0)
ends = 0
for name, reason, frames in abuses:
    for i in range(2):
        c = Conn(w.port)
        c.preface()
        c.send(frames(c))
        g = c.goaway(10)
        ck.check("%s (connection %d): GOAWAY(ENHANCE_YOUR_CALM) with debug data %r"
                 % (name, i + 1, reason),
                 g is not None and g.error_code == 11 and g.additional_data == reason.encode(),
                 "got %r" % ((g.error_code, g.additional_data) if g else None,))
        ends += 1
        c.close()
got = w.stats().get("flood_goaway", 0) - before
ck.check("/stats flood_goaway counts each of the %d ends once" % ends, got == ends,
         "flood_goaway +%s" % got)
log = open(w.logpath).read()
for reason in sorted({r for _, r, _ in abuses}):
    n = log.count('GOAWAY(ENHANCE_YOUR_CALM, "%s")' % reason)
    ck.check("the log names %r once (for %d connections)"
             % (reason, 2 * sum(1 for _, r, _ in abuses if r == reason)), n == 1,
             "%d lines" % n)

# 5. The client's own GOAWAY with an error ends the connection too, but weir sends no GOAWAY
#    then: it is counted as a connection closed in error, not as a GOAWAY sent nor as a flood
#    (before: goaway_sent +1 each, and flood_goaway +1 for ENHANCE_YOUR_CALM).
st0 = w.stats()
theirs = 0
for code in (1, 11):  # PROTOCOL_ERROR, ENHANCE_YOUR_CALM
    c = Conn(w.port)
    c.preface()
    c.send(raw_frame(0x7, 0, 0, (0).to_bytes(4, "big") + code.to_bytes(4, "big") + b"bye"))
    g = c.goaway(3)
    theirs += g is not None
    c.close()
deadline = time.time() + 5
while time.time() < deadline:
    st1 = w.stats()
    if st1.get("conn_closed_error", 0) - st0.get("conn_closed_error", 0) >= 2:
        break
    time.sleep(0.05)
d = {k: st1.get(k, 0) - st0.get(k, 0) for k in ("goaway_sent", "flood_goaway", "conn_closed_error")}
ck.check("the client's GOAWAY(PROTOCOL_ERROR) and GOAWAY(ENHANCE_YOUR_CALM): no GOAWAY back, "
         "counted as 2 closed in error, none sent, no flood",
         theirs == 0 and d == {"goaway_sent": 0, "flood_goaway": 0, "conn_closed_error": 2},
         "%d GOAWAY back, %r" % (theirs, d))

ck.check("weir alive", w.alive(), "")
rc = w.stop()
ck.check("clean exit on SIGTERM", rc == 0, "exit %s" % rc)
ck.exit(w)
