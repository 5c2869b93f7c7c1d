#!/usr/bin/python3
# tests/e2e/79-upstream-authority-path.py: what the upstream is told about where a request
# goes (issue 13 part 4), against an h2c and an HTTP/1.1 upstream (tests/e2e/upstream.js,
# whose /headers and */headers answer what they received as JSON):
#   - the upstream's Host (HTTP/1.1) or :authority (h2c) is the request's :authority, never a
#     host header sent beside it; a host header that names another authority is a 400 (RFC
#     9113 8.3.1, compared after scheme-based normalisation, so "A.Example:80" is "a.example"
#     on http), two host headers are refused (nghttp2 1.52 resets the stream itself; weir
#     would answer 400), a request with only a host header uses it, and one with neither is
#     refused (http and https have a mandatory authority; nghttp2 resets it, weir would 400);
#   - an authority with userinfo or a comma is a 400; one with a space is refused (nghttp2
#     resets the stream before weir sees it);
#   - routing sees the normalised path: /v1/../admin, /v1/%2e%2e/admin, //admin and
#     /%61dmin all reach the /admin route (a direct 403), not the /v1/ cluster, and
#     /v1/..%2fadmin, a backslash and a fragment are 400s (with escaped_slashes: keep, %2F
#     and %5C pass on encoded, inside their segment);
#   - the upstream receives the normalised path, so routing and forwarding agree, with the
#     query as it came.
# Each request is a raw HTTP/2 HEADERS frame (h2raw.py), so the test, not a client library,
# decides what :authority, host and :path are.
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (  # noqa: E402
    Checks, Conn, DataFrame, HeadersFrame, RstStreamFrame, Upstream, Weir, CODE_NAMES, headers)

ck = Checks()


def config(up_h2, up_h1, extra=""):
    return """listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: h2, protocol: h2c, endpoints: ["127.0.0.1:%d"]}
  - {name: h1, protocol: http1, endpoints: ["127.0.0.1:%d"]}
routes:
  - match: {path_prefix: /admin}
    direct_response: {status: 403, body: "admin is internal\\n"}
  - match: {authority: h1.example, path_prefix: /v1/}
    cluster: h1
  - match: {path_prefix: /v1/}
    cluster: h2
admin: {address: "127.0.0.1:0"}
workers: 1
%s""" % (up_h2, up_h1, extra)


def request(port, authority=None, path="/v1/headers", host=(), scheme="http", extra=()):
    """One GET on a fresh connection; returns (kind, status, body) where kind is 'response',
    'rst' (status = the error code name) or 'none'."""
    hdrs = [(":method", "GET"), (":scheme", scheme)]
    if authority is not None:
        hdrs.append((":authority", authority))
    hdrs.append((":path", path))
    hdrs += [("host", h) for h in host]
    hdrs += list(extra)
    c = Conn(port)
    try:
        c.preface()
        c.send(headers(1, hdrs, enc=c.enc))
        status, body = None, b""
        for f in c.frames(15.0):
            if f is None:
                return ("eof", None, b"")
            if isinstance(f, RstStreamFrame) and f.stream_id == 1:
                return ("rst", CODE_NAMES.get(f.error_code, f.error_code), b"")
            if isinstance(f, HeadersFrame) and f.stream_id == 1:
                h = dict(c.dec.decode(f.data))
                status = int(h.get(":status", 0)) if status is None else status
                if "END_STREAM" in f.flags:
                    return ("response", status, body)
            if isinstance(f, DataFrame) and f.stream_id == 1:
                body += f.data
                if "END_STREAM" in f.flags:
                    return ("response", status, body)
        return ("none", None, b"")
    finally:
        c.close()


def seen(res):
    """The request the upstream received (the /headers JSON), or None."""
    kind, status, body = res
    if kind != "response" or status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def upstream_authority(d, proto):
    """Host as an HTTP/1.1 upstream got it, or :authority as an h2c upstream got it."""
    if proto == "h2c":
        return d["pseudo"].get(":authority")
    hosts = [d["rawHeaders"][i + 1] for i in range(0, len(d["rawHeaders"]), 2)
             if d["rawHeaders"][i].lower() == "host"]
    return hosts[0] if len(hosts) == 1 else hosts


def show(res):
    kind, status, body = res
    return "%s %s %r" % (kind, status, body[:120])


u2 = Upstream("h2c")
u1 = Upstream("http1")
w = Weir(cfg=config(u2.port, u1.port))
P = w.port

for proto, auth in (("h2c", "h2.example"), ("http1", "h1.example")):
    tag = proto + " upstream"

    # The upstream's Host / :authority is :authority; a matching host header changes nothing.
    r = request(P, auth, host=[auth])
    d = seen(r)
    ck.check("%s: :authority and an equal host -> upstream gets the :authority once" % tag,
             d is not None and upstream_authority(d, proto) == auth,
             "upstream got %r" % (upstream_authority(d, proto) if d else show(r)))

    # A host header naming another site beside :authority: 400, the upstream never asked.
    r = request(P, auth, host=["evil.example"])
    ck.check("%s: host differing from :authority -> 400" % tag,
             r[0] == "response" and r[1] == 400 and b"host header differs" in r[2], show(r))

    # Scheme-based normalisation: case and the default port do not make them differ.
    r = request(P, auth.upper() + ":80", host=[auth])
    d = seen(r)
    ck.check("%s: %s:80 and host %s are the same authority on http" % (tag, auth.upper(), auth),
             d is not None and upstream_authority(d, proto) == auth.upper() + ":80",
             "upstream got %r" % (upstream_authority(d, proto) if d else show(r)))
    r = request(P, auth + ":8080", host=[auth])
    ck.check("%s: a different port is another authority -> 400" % tag,
             r[0] == "response" and r[1] == 400, show(r))

    # Only a host header: it is the authority (RFC 9113 8.3.1 allows it).
    r = request(P, None, host=[auth])
    d = seen(r)
    ck.check("%s: a host header alone is the authority" % tag,
             d is not None and upstream_authority(d, proto) == auth,
             "upstream got %r" % (upstream_authority(d, proto) if d else show(r)))

    r = request(P, None)
    ck.check("%s: neither :authority nor host is refused (nghttp2's RST_STREAM, or 400)" % tag,
             (r[0] == "response" and r[1] == 400 and b"no :authority or host" in r[2]) or
             r[0] == "rst", show(r))

    r = request(P, None, host=[auth, auth])
    ck.check("%s: two host headers are refused (nghttp2's RST_STREAM, or 400)" % tag,
             (r[0] == "response" and r[1] == 400 and b"more than one host" in r[2]) or
             r[0] == "rst", show(r))

    for bad, why in (("user@" + auth, b"userinfo"), ("u:pw@" + auth + ":80", b"userinfo"),
                     (auth + ",evil.example", b"comma")):
        r = request(P, bad)
        ck.check("%s: :authority %r -> 400" % (tag, bad),
                 r[0] == "response" and r[1] == 400 and why in r[2], show(r))
    r = request(P, None, host=["user@" + auth])
    ck.check("%s: host with userinfo (no :authority) -> 400" % tag,
             r[0] == "response" and r[1] == 400 and b"userinfo" in r[2], show(r))
    r = request(P, auth + " x")
    ck.check("%s: :authority with a space is refused (400, or nghttp2's RST_STREAM)" % tag,
             (r[0] == "response" and r[1] == 400) or r[0] == "rst", show(r))

    # Routing sees the normalised path.
    for path in ("/v1/../admin", "/v1/%2e%2e/admin", "/v1/%2E%2E/admin", "/v1/.%2e/admin",
                 "//admin", "/v1//..//admin", "/%61dmin", "/v1/../admin/../v1/../admin"):
        r = request(P, auth, path)
        ck.check("%s: %s routes as /admin (direct 403)" % (tag, path),
                 r[0] == "response" and r[1] == 403 and r[2] == b"admin is internal\n", show(r))
    for path, why in (("/v1/..%2fadmin", b"encoded slash"), ("/v1/..%2Fadmin", b"encoded slash"),
                      ("/v1/..%5cadmin", b"backslash"), ("/v1/..\\admin", b"backslash"),
                      ("/v1/headers%zz", b"percent-encoding"), ("/v1/headers#x", b"fragment")):
        r = request(P, auth, path)
        ck.check("%s: %s -> 400" % (tag, path),
                 (r[0] == "response" and r[1] == 400 and why in r[2]) or r[0] == "rst", show(r))

    # The upstream receives the normalised path (routing and forwarding agree); the query is
    # passed as it came.
    r = request(P, auth, "/v1/./x/..//%7Ea/%2e%2e/headers?q=/../a&b=%2f")
    d = seen(r)
    ck.check("%s: upstream gets the normalised path and the query as it came" % tag,
             d is not None and d["url"] == "/v1/headers?q=/../a&b=%2f",
             "upstream got %r" % (d["url"] if d else show(r)))

rc = w.stop()
ck.check("weir exits 0 on SIGTERM", rc == 0, "exit %s" % rc)

# escaped_slashes: keep passes %2F and %5C on encoded (an npm registry's "@scope%2fname"),
# as data inside a segment: "..%2f" is no dot-segment, so the request stays under /v1/.
w = Weir(cfg=config(u2.port, u1.port, "escaped_slashes: keep\n"))
for proto, auth in (("h2c", "h2.example"), ("http1", "h1.example")):
    tag = proto + " upstream, escaped_slashes: keep"
    for path, want in (("/v1/@scope%2fname/headers", "/v1/@scope%2Fname/headers"),
                       ("/v1/..%2fx/./headers", "/v1/..%2Fx/headers"),
                       ("/v1/a%5cb/../headers", "/v1/headers")):
        r = request(w.port, auth, path)
        d = seen(r)
        ck.check("%s: %s reaches the upstream as %s" % (tag, path, want),
                 d is not None and d["url"] == want,
                 "upstream got %r" % (d["url"] if d else show(r)))
    r = request(w.port, auth, "/v1/..\\admin")
    ck.check("%s: a raw backslash is still a 400" % tag,
             (r[0] == "response" and r[1] == 400) or r[0] == "rst", show(r))
rc = w.stop()
ck.check("weir (escaped_slashes: keep) exits 0 on SIGTERM", rc == 0, "exit %s" % rc)
u1.stop()
u2.stop()
ck.exit(w)
