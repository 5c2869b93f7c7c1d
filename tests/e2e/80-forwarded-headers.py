#!/usr/bin/python3
# tests/e2e/80-forwarded-headers.py: what the upstream is told about the client (issue 13
# part 4), for each headers.x_forwarded_for mode, against an h2c and an HTTP/1.1 upstream
# (tests/e2e/upstream.js's /headers answers what it received as JSON):
#   - append (the default): the client's x-forwarded-for values, all of them in order, then
#     the peer address; replace: only the peer address, and the client's forwarded header is
#     dropped; off: no x-forwarded-for at all;
#   - x-forwarded-proto is the listener's scheme (http on the h2c listener, https on the TLS
#     one), whatever the client sent as x-forwarded-proto;
#   - :scheme toward an h2c upstream is the listener's, not the client's (a client that says
#     :scheme https on a cleartext connection does not make the upstream believe in TLS).
# Cleartext requests are raw HTTP/2 frames (h2raw.py) so the test decides every field; the
# TLS ones come from curl --http2 (ALPN h2).
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (  # noqa: E402
    E2E, Checks, Conn, DataFrame, HeadersFrame, RstStreamFrame, Upstream, Weir, headers)

ck = Checks()
CERTS = os.path.join(E2E, "configs", "certs")
PEER = "127.0.0.1"


def config(mode, up_h2, up_h1):
    return """listeners:
  - {name: plain, address: 127.0.0.1:0}
  - name: secure
    address: 127.0.0.1:0
    tls: {cert: %s, key: %s}
clusters:
  - {name: h2, protocol: h2c, endpoints: ["127.0.0.1:%d"]}
  - {name: h1, protocol: http1, endpoints: ["127.0.0.1:%d"]}
routes:
  - match: {authority: h1.example}
    cluster: h1
  - cluster: h2
admin: {address: "127.0.0.1:0"}
workers: 1
headers: {x_forwarded_for: %s}
""" % (os.path.join(CERTS, "test-cert.pem"), os.path.join(CERTS, "test-key.pem"), up_h2, up_h1,
       mode)


def raw_get(port, authority, extra):
    """GET /headers over cleartext h2 with :scheme https and `extra` headers; the JSON."""
    hdrs = [(":method", "GET"), (":scheme", "https"), (":authority", authority),
            (":path", "/headers")] + list(extra)
    c = Conn(port)
    try:
        c.preface()
        c.send(headers(1, hdrs, enc=c.enc))
        status, body = None, b""
        for f in c.frames(15.0):
            if f is None or (isinstance(f, RstStreamFrame) and f.stream_id == 1):
                break
            if isinstance(f, HeadersFrame) and f.stream_id == 1 and status is None:
                status = int(dict(c.dec.decode(f.data)).get(":status", 0))
            if isinstance(f, DataFrame) and f.stream_id == 1:
                body += f.data
            if getattr(f, "stream_id", 0) == 1 and "END_STREAM" in f.flags:
                break
        return json.loads(body) if status == 200 else {"status": status, "body": body[:200]}
    finally:
        c.close()


def tls_get(port, authority, extra):
    """GET /headers with curl --http2 over the TLS listener; the JSON."""
    args = ["curl", "-sS", "--max-time", "15", "--http2", "-k", "--resolve",
            "%s:%d:127.0.0.1" % (authority, port)]
    for k, v in extra:
        args += ["-H", "%s: %s" % (k, v)]
    args.append("https://%s:%d/headers" % (authority, port))
    out = subprocess.run(args, capture_output=True, timeout=30)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return {"curl": out.returncode, "out": out.stdout[:200], "err": out.stderr[:200]}


def tls_port(w):
    import re
    m = re.search(r"^weir: listener secure tls \S+:(\d+)$", w.log_tail(100000), re.M)
    return int(m.group(1))


CLIENT_XFF = [("x-forwarded-for", "203.0.113.7"), ("x-forwarded-for", "198.51.100.2, 10.0.0.1")]
SPOOF = [("x-forwarded-proto", "https"), ("forwarded", "for=192.0.2.60;proto=https")]
WANT_XFF = {
    "append": "203.0.113.7, 198.51.100.2, 10.0.0.1, " + PEER,
    "replace": PEER,
    "off": None,
}

u2 = Upstream("h2c")
u1 = Upstream("http1")
for mode in ("append", "replace", "off"):
    w = Weir(cfg=config(mode, u2.port, u1.port))
    plain, secure = w.port, tls_port(w)
    for proto, auth in (("h2c", "h2.example"), ("http1", "h1.example")):
        tag = "%s, %s upstream" % (mode, proto)

        d = raw_get(plain, auth, CLIENT_XFF + SPOOF)
        h = d.get("headers", {})
        ck.check("%s, cleartext: x-forwarded-for" % tag,
                 "headers" in d and h.get("x-forwarded-for") == WANT_XFF[mode],
                 "got %r" % (h.get("x-forwarded-for") if "headers" in d else d))
        ck.check("%s, cleartext: x-forwarded-proto is the listener's (http), not the client's"
                 % tag, h.get("x-forwarded-proto") == "http",
                 "got %r" % h.get("x-forwarded-proto"))
        want_fwd = None if mode == "replace" else "for=192.0.2.60;proto=https"
        ck.check("%s, cleartext: forwarded %s" % (tag, "dropped" if want_fwd is None else
                                                   "passed on"),
                 "headers" in d and h.get("forwarded") == want_fwd,
                 "got %r" % h.get("forwarded"))
        if proto == "h2c":
            ck.check("%s, cleartext: :scheme toward the upstream is http (client said https)"
                     % tag, d.get("pseudo", {}).get(":scheme") == "http",
                     "got %r" % d.get("pseudo"))

        d = tls_get(secure, auth, [("x-forwarded-for", "192.0.2.1"),
                                   ("x-forwarded-proto", "http")])
        h = d.get("headers", {})
        want = {"append": "192.0.2.1, " + PEER, "replace": PEER, "off": None}[mode]
        ck.check("%s, TLS: x-forwarded-for" % tag,
                 "headers" in d and h.get("x-forwarded-for") == want,
                 "got %r" % (h.get("x-forwarded-for") if "headers" in d else d))
        ck.check("%s, TLS: x-forwarded-proto is https" % tag, h.get("x-forwarded-proto") ==
                 "https", "got %r" % h.get("x-forwarded-proto"))
        if proto == "h2c":
            ck.check("%s, TLS: :scheme toward the upstream is https" % tag,
                     d.get("pseudo", {}).get(":scheme") == "https", "got %r" % d.get("pseudo"))
    rc = w.stop()
    ck.check("%s: weir exits 0 on SIGTERM" % mode, rc == 0, "exit %s" % rc)

u1.stop()
u2.stop()
ck.exit()
