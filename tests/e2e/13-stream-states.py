#!/usr/bin/python3
# tests/e2e/13-stream-states.py: /memory/regions names each stream's state (RFC 9113 5.1, as
# weir's codec has it) and weir's own phase of it, and each connection's protocol (issue 15
# part 5). One raw h2c connection through weir to the node upstream holds three streams at once:
#   1. GET /slow with the head 4 s away, END_STREAM sent: half_closed_remote, waiting_upstream;
#   2. POST /sha256 with 10 body bytes and no END_STREAM: open, waiting_upstream (the upstream
#      answers once the body ends);
#   3. GET /slow with the head at once and 100,000 bytes over 4 s: half_closed_remote,
#      response_body.
# An HTTP/1.1 connection beside it waiting on the same slow head shows as "http/1.1". Then
# stream 2's body ends and it is answered (200), and the rows of the streams that ended go.
import os, socket, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Conn, HeadersFrame, Upstream, Weir, data, headers

up = Upstream()
cfg = ("listeners:\n  - address: 127.0.0.1:0\n"
       "clusters:\n  - {name: up, endpoints: [\"127.0.0.1:%d\"]}\n"
       "routes:\n  - cluster: up\n"
       "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n" % up.port)
w = Weir(cfg=cfg)
ck = Checks()


def req(method, path):
    return [(":method", method), (":scheme", "http"), (":authority", "localhost"),
            (":path", path)]


c = Conn(w.port, timeout=10)
c.preface()
c.send(headers(1, hdrs=req("GET", "/slow?ms=4000&bytes=0"), enc=c.enc))
c.send(headers(3, hdrs=req("POST", "/sha256"), enc=c.enc, end_stream=False) +
       data(3, b"0123456789"))
c.send(headers(5, hdrs=req("GET", "/slow?ms=4000&bytes=100000&head_ms=0"), enc=c.enc))
h1 = socket.create_connection(("127.0.0.1", w.port), timeout=10)
h1.sendall(b"GET /slow?ms=4000&bytes=0 HTTP/1.1\r\nHost: localhost\r\n\r\n")

want = {1: ("half_closed_remote", "waiting_upstream"), 3: ("open", "waiting_upstream"),
        5: ("half_closed_remote", "response_body")}
rows, got = [], {}
deadline = time.time() + 3.0
while time.time() < deadline:
    rows = w.admin_json("/memory/regions?top=50")["regions"]
    got = {r["stream_id"]: (r.get("state"), r.get("phase")) for r in rows
           if r["kind"] == "stream" and r["path"].startswith(("/slow", "/sha256"))
           and r.get("state") != "http/1.1"}
    if got == want:
        break
    time.sleep(0.1)
for sid, (state, phase) in sorted(want.items()):
    ck.check("stream %d: state %s, phase %s" % (sid, state, phase),
             got.get(sid) == (state, phase), "got %s" % (got.get(sid),))
conns = sorted(r.get("state") for r in rows if r["kind"] == "connection")
ck.check("connection rows name their protocol: h2 and http/1.1", conns == ["h2", "http/1.1"],
         "got %s" % conns)
h1row = [(r.get("state"), r.get("phase")) for r in rows
         if r["kind"] == "stream" and r.get("state") == "http/1.1"]
ck.check("the HTTP/1.1 request row: http/1.1, request", h1row == [("http/1.1", "request")],
         "got %s" % h1row)

# Stream 3's body ends: it is answered, and its row goes.
c.send(data(3, b"", end_stream=True))
r3 = None
for f in c.frames(10):  # every header block decoded in order: HPACK's table is shared
    if f is None:
        break
    if isinstance(f, HeadersFrame):
        h = dict(c.dec.decode(f.data))
        if f.stream_id == 3:
            r3 = h.get(":status")
            break
ck.check("stream 3 answered once its body ended", r3 == "200", "got %s" % (r3,))
left = None
deadline = time.time() + 3.0
while time.time() < deadline:
    left = sorted(r["stream_id"] for r in w.admin_json("/memory/regions?top=50")["regions"]
                  if r["kind"] == "stream" and r.get("state") != "http/1.1")
    if 3 not in left:
        break
    time.sleep(0.1)
ck.check("stream 3's row is gone once it closed; 1 and 5 remain", left == [1, 5],
         "rows for streams %s" % left)
c.close()
h1.close()
ck.check("weir alive", w.alive(), "")
rc = w.stop()
ck.check("clean exit on SIGTERM", rc == 0, "exit %s" % rc)
up.stop()
ck.exit(w)
