#!/usr/bin/python3
# tests/e2e/16-h1-request-forms.py: the request forms an edge proxy meets besides origin-form
# GETs (issue 16), on the HTTP/1.1 front and, where they exist, the HTTP/2 front; weir proxies
# to tests/e2e/upstream.js (http1), whose /headers shows what it received.
#   - CONNECT (authority-form) is a 501 on HTTP/1.1 with connection: close and EOF: the bytes a
#     client sends into the tunnel it expected (here a TLS record header) are never read as a
#     request. weir is a reverse proxy and does not tunnel. For comparison, nginx 1.22 (Debian
#     12) answers 400 to it and Envoy 404 (no route matches a CONNECT unless a route has a
#     connect_matcher, which then tunnels). On HTTP/2, CONNECT has no :scheme and no :path
#     (RFC 9113 8.5): weir answers it 501 too and forwards nothing.
#   - OPTIONS * (asterisk-form) asks about the server in general (RFC 9110 9.3.7): weir answers
#     it itself, 200 with an empty body, keep-alive kept, on HTTP/1.1 and on HTTP/2 (:path *);
#     any other method with the target * is a 400. nginx 1.22 answers 400 and Envoy refuses
#     the path * (envoyproxy/envoy#28481).
#   - none of the above opens a connection to the upstream (/stats upstream_conn_opened 0).
#   - HTTP/1.0 without Host is routed like any request, with the authority RFC 9112 3.3 gives
#     it when no default name is configured: the local address and port the client reached
#     (the upstream gets it as host); without keep-alive the response ends the connection, with
#     Connection: keep-alive it says so and a second request is served on it. nginx serves such
#     a request from its default server too; Envoy needs accept_http_10 and
#     default_host_for_http_10.
#   - HTTP/1.1 without Host is still a 400 (RFC 9112 3.2).
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Conn, Upstream, Weir, headers

up = Upstream("http1")
w = Weir(args=["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", "1",
               "--upstream", "http://127.0.0.1:%d" % up.port])
ck = Checks()


class Client:
    """One raw HTTP/1.x connection that reads whole responses (content-length or EOF)."""

    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
        self.buf = b""
        self.eof = False

    def fill(self, deadline):
        self.s.settimeout(max(0.05, deadline - time.time()))
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def response(self, seconds=10):
        """(status line, {lower name: value}, body) or None."""
        deadline = time.time() + seconds
        while b"\r\n\r\n" not in self.buf:
            if self.eof or time.time() > deadline or not self.fill(deadline):
                if self.eof or time.time() > deadline:
                    return None
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(rest) < n and not self.eof and time.time() < deadline:
                if self.fill(deadline):
                    rest = self.buf.partition(b"\r\n\r\n")[2]
            body, self.buf = rest[:n], rest[n:]
        else:
            while not self.eof and time.time() < deadline:
                self.fill(deadline)
            body, self.buf = self.buf.partition(b"\r\n\r\n")[2], b""
        return lines[0], hdrs, body

    def closed(self, seconds=5):
        """True when the peer closes with nothing more to read."""
        deadline = time.time() + seconds
        while not self.eof and time.time() < deadline:
            self.fill(deadline)
        return self.eof and self.buf == b""

    def close(self):
        self.s.close()


def stat(key):
    def find(d):
        if isinstance(d, dict):
            if key in d and not isinstance(d[key], (dict, list)):
                return d[key]
            for v in d.values():
                r = find(v)
                if r is not None:
                    return r
        elif isinstance(d, list):
            return sum(x for x in (find(v) for v in d) if x is not None) if d else None
        return None
    return find(w.stats())


# CONNECT on HTTP/1.1, followed at once by what a client would send into the tunnel.
c = Client()
c.s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
r = c.response()
ck.check("HTTP/1.1 CONNECT: 501 with connection: close, then EOF, nothing else answered",
         r is not None and r[0] == "HTTP/1.1 501 Not Implemented" and
         r[1].get("connection") == "close" and c.closed(),
         "%r %r, EOF %s" % (r[0] if r else None, r[2][:80] if r else b"", c.eof))
c.close()

# OPTIONS * twice on one connection: weir's own answer, and the connection stays open.
c = Client()
c.s.sendall(b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n" * 2)
r1, r2 = c.response(), c.response()
ok = [r for r in (r1, r2) if r and r[0] == "HTTP/1.1 200 OK" and r[1].get("content-length") == "0"
      and r[2] == b"" and r[1].get("connection") != "close"]
ck.check("HTTP/1.1 OPTIONS *: answered 200 with an empty body by weir, twice on one kept-alive "
         "connection", len(ok) == 2, "%r / %r" % (r1[:2] if r1 else None, r2[:2] if r2 else None))
c.close()

c = Client()
c.s.sendall(b"GET * HTTP/1.1\r\nHost: localhost\r\n\r\n")
r = c.response()
ck.check("HTTP/1.1 GET *: 400 (the target * is for OPTIONS only), then EOF",
         r is not None and r[0] == "HTTP/1.1 400 Bad Request" and c.closed(),
         "%r %r" % (r[0] if r else None, r[2][:80] if r else b""))
c.close()


def h2_reaction(hdrs):
    h = Conn(w.port, timeout=10)
    h.preface()
    h.send(headers(1, hdrs, enc=h.enc))
    got = h.reaction(1, 5.0)
    h.close()
    return got


got = h2_reaction([(":method", "OPTIONS"), (":scheme", "http"), (":authority", "localhost"),
                   (":path", "*")])
ck.check("HTTP/2 OPTIONS with :path *: answered 200 by weir", got == ("response", "200"),
         repr(got))
got = h2_reaction([(":method", "CONNECT"), (":authority", "example.com:443")])
ck.check("HTTP/2 CONNECT (no :scheme, no :path): 501 as on HTTP/1.1, not tunnelled",
         got == ("response", "501"), repr(got))

opened = stat("upstream_conn_opened")
ck.check("CONNECT and OPTIONS * reached no upstream", opened == 0,
         "upstream_conn_opened %s" % opened)

# HTTP/1.0 without Host: routed, with the local address as the authority.
local = "127.0.0.1:%d" % w.port
c = Client()
c.s.sendall(b"GET /headers HTTP/1.0\r\n\r\n")
r = c.response()
seen = json.loads(r[2]) if r and r[0].endswith("200 OK") else {}
ck.check("HTTP/1.0 without Host: 200, the upstream got host %s" % local,
         seen.get("headers", {}).get("host") == local and seen.get("url") == "/headers",
         "%r, upstream saw host %r url %r" % (r[0] if r else None,
                                             seen.get("headers", {}).get("host"), seen.get("url")))
ck.check("HTTP/1.0 without keep-alive: the response ends the connection",
         r is not None and r[1].get("connection") != "keep-alive" and c.closed(),
         "connection: %r, EOF %s" % (r[1].get("connection") if r else None, c.eof))
c.close()

c = Client()
c.s.sendall(b"GET /headers HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
r1 = c.response()
c.s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
r2 = c.response()
ck.check("HTTP/1.0 with Connection: keep-alive: connection: keep-alive, a second request served "
         "on the same connection",
         r1 is not None and r1[0].endswith("200 OK") and r1[1].get("connection") == "keep-alive"
         and "content-length" in r1[1] and r2 is not None and r2[0].endswith("200 OK") and
         r2[2] == b"ok\n",
         "%r %r / %r" % (r1[0] if r1 else None, r1[1].get("connection") if r1 else None,
                         r2[:3:2] if r2 else None))
c.close()

c = Client()
c.s.sendall(b"GET / HTTP/1.1\r\n\r\n")
r = c.response()
ck.check("HTTP/1.1 without Host: still 400", r is not None and r[0] == "HTTP/1.1 400 Bad Request",
         repr(r[0] if r else None))
c.close()

opened = stat("upstream_conn_opened")
ck.check("the HTTP/1.0 requests did reach the upstream (the counter above counts)",
         opened is not None and opened >= 1, "upstream_conn_opened %s" % opened)
ck.check("weir alive", w.alive())
up.stop()
ck.exit(w)
