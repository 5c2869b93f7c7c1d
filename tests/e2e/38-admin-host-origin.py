#!/usr/bin/python3
# tests/e2e/38-admin-host-origin.py: the admin port against browsers turned on it (issue 13,
# part 3). Without a token: DNS rebinding (a Host naming another site) gets 421 while
# loopback names, IP literals and no Host at all are served; a POST that a page of another
# site could send (Sec-Fetch-Site cross-site, a foreign or "null" Origin, a foreign Referer, a
# form or text/plain content type) gets 403 while curl's POST and a same-origin POST from the
# dashboard work; two Host headers are 400. With a token, a request carrying it is served
# whatever its Host and Origin. `weir health` and the dashboard's own requests keep working.
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Weir, weir_bin  # noqa: E402

ck = Checks()


def config(token=None):
    return ("listeners:\n  - address: 127.0.0.1:0\n"
            "routes:\n  - direct_response: {status: 200, body: \"hi\\n\"}\n"
            "admin: {address: \"127.0.0.1:0\"%s}\nworkers: 1\n" %
            (", token: \"%s\"" % token if token else ""))


def request(port, method, path, headers, version="1.1"):
    """Sends one request with exactly `headers` (a list of (name, value)); returns the status."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = "%s %s HTTP/%s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in headers)
    head += "Connection: close\r\n\r\n"
    s.sendall(head.encode("latin-1"))
    out = b""
    while True:
        try:
            b = s.recv(65536)
        except OSError:
            break
        if not b:
            break
        out += b
    s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", out)
    return int(m.group(1)) if m else None


w = Weir(cfg=config())
P = w.admin
HP = "127.0.0.1:%d" % P

# DNS rebinding: Host.
hosts = [
    ("127.0.0.1:%d" % P, 200), ("127.0.0.1", 200), ("127.3.4.5:%d" % P, 200),
    ("localhost:%d" % P, 200), ("LOCALHOST", 200), ("localhost.", 200),
    ("dash.localhost:%d" % P, 200), ("[::1]:%d" % P, 200), ("[::1]", 200),
    ("10.1.2.3:%d" % P, 200),  # an IP literal cannot come from rebinding
    ("::1:%d" % P, 200),  # what `weir health` writes for an IPv6 admin address
    ("evil.example:%d" % P, 421), ("evil.example", 421), ("127.0.0.1.nip.io:%d" % P, 421),
    ("localhost.evil.example", 421), ("evillocalhost", 421), ("", 421),
    ("127.0.0.1:%d:%d" % (P, P), 421), ("[::1]x", 421), ("0x7f.1", 421),
    ("a" * 600, 421),
]
bad = []
for h, want in hosts:
    got = request(P, "GET", "/memory", [("Host", h)])
    if got != want:
        bad.append("%r -> %s (want %d)" % (h[:40], got, want))
ck.check("Host check: %d cases (loopback names and IP literals 200, other names 421)" %
         len(hosts), not bad, "; ".join(bad))
for path in ("/", "/ready", "/metrics"):
    got = request(P, "GET", path, [("Host", "evil.example:%d" % P)])
    ck.check("rebound GET %s is 421" % path, got == 421, "got %s" % got)
got = request(P, "POST", "/memory/release", [("Host", "evil.example:%d" % P)])
ck.check("rebound POST /memory/release is 421", got == 421, "got %s" % got)
ck.check("HTTP/1.0 without Host is served (no browser omits Host)",
         request(P, "GET", "/ready", [], version="1.0") == 200)
ck.check("HTTP/1.1 without Host is served", request(P, "GET", "/ready", []) == 200)
ck.check("two Host headers are 400",
         request(P, "GET", "/ready", [("Host", HP), ("Host", "evil.example")]) == 400)

# weir health (the HEALTHCHECK) and the dashboard's own requests.
r = subprocess.run([weir_bin(), "health", HP], capture_output=True, text=True, timeout=30)
ck.check("weir health", r.returncode == 0, r.stdout + r.stderr)
dash = [("Host", HP), ("Referer", "http://%s/" % HP), ("Sec-Fetch-Site", "same-origin"),
        ("Sec-Fetch-Mode", "cors"), ("Accept", "*/*")]
ck.check("the dashboard's fetch of /memory (same-origin, Referer) is 200",
         request(P, "GET", "/memory", dash) == 200)
ck.check("the dashboard page itself is 200",
         request(P, "GET", "/", [("Host", HP), ("Sec-Fetch-Site", "none")]) == 200)

# Cross-site POST.
post = [
    ([("Host", HP)], 200, "curl -X POST"),
    ([("Host", HP), ("User-Agent", "curl/7.88.1"), ("Accept", "*/*")], 200, "curl headers"),
    ([("Host", HP), ("Origin", "http://%s" % HP), ("Sec-Fetch-Site", "same-origin")], 200,
     "same-origin fetch"),
    ([("Host", "localhost:%d" % P), ("Origin", "http://LOCALHOST:%d" % P)], 200,
     "same origin, case"),
    ([("Host", "127.0.0.1"), ("Origin", "http://127.0.0.1:80")], 200, "default port"),
    ([("Host", HP), ("Referer", "http://%s/#token=x" % HP)], 200, "same-origin Referer"),
    ([("Host", HP), ("Content-Type", "application/json")], 200, "JSON body type"),
    ([("Host", HP), ("Origin", "http://evil.example")], 403, "foreign Origin"),
    ([("Host", HP), ("Origin", "null")], 403, "Origin null"),
    ([("Host", HP), ("Origin", "http://127.0.0.1:%d" % (P + 1))], 403, "other port"),
    ([("Host", HP), ("Origin", "https://%s" % HP)], 200, "https, same host:port (TLS front end)"),
    ([("Host", HP), ("Origin", "ftp://%s" % HP)], 403, "other scheme"),
    ([("Host", HP), ("Origin", "http://user@%s" % HP)], 403, "user info"),
    ([("Host", HP), ("Origin", "http://%s" % HP), ("Origin", "http://evil.example")], 403,
     "two Origins"),
    ([("Host", HP), ("Referer", "http://evil.example/page")], 403, "foreign Referer"),
    ([("Host", HP), ("Referer", "http://%s.evil.example/" % HP)], 403, "Referer prefix trick"),
    ([("Host", HP), ("Sec-Fetch-Site", "cross-site")], 403, "Sec-Fetch-Site cross-site"),
    ([("Host", HP), ("Sec-Fetch-Site", "same-site")], 403, "Sec-Fetch-Site same-site"),
    ([("Host", HP), ("Content-Type", "application/x-www-form-urlencoded")], 403, "form"),
    ([("Host", HP), ("Content-Type", "multipart/form-data; boundary=x")], 403, "multipart"),
    ([("Host", HP), ("Content-Type", " Text/Plain ; charset=utf-8")], 403, "text/plain"),
    ([("Host", HP), ("Origin", "http://%s" % HP), ("Content-Type", "text/plain")], 403,
     "same origin but text/plain"),
]
bad = []
for hdrs, want, name in post:
    for path in ("/memory/release", "/heap_dump?sample_bytes=524288"):
        got = request(P, "POST", path, hdrs)
        if got != want:
            bad.append("%s %s -> %s (want %d)" % (name, path, got, want))
ck.check("cross-site POST: %d cases x 2 endpoints" % len(post), not bad, "; ".join(bad))
ck.check("a cross-site GET is still answered (it changes nothing and the page cannot read it)",
         request(P, "GET", "/ready", [("Host", HP), ("Origin", "http://evil.example"),
                                      ("Sec-Fetch-Site", "cross-site")]) == 200)
w.stop()

# With a token: the token is the proof; Host and Origin do not matter.
TOKEN = "t-%d" % os.getpid()
w = Weir(cfg=config(TOKEN))
P = w.admin
auth = ("Authorization", "Bearer " + TOKEN)
ck.check("token: any Host is served with the token",
         request(P, "GET", "/memory", [("Host", "weir-admin.internal:9901"), auth]) == 200)
ck.check("token: a foreign Host without the token is 401",
         request(P, "GET", "/memory", [("Host", "weir-admin.internal:9901")]) == 401)
ck.check("token: a form POST from another Origin with the token is 200",
         request(P, "POST", "/memory/release",
                 [("Host", "127.0.0.1:%d" % P), ("Origin", "http://evil.example"),
                  ("Content-Type", "application/x-www-form-urlencoded"), auth]) == 200)
ck.check("token: the same POST without the token is 401",
         request(P, "POST", "/memory/release",
                 [("Host", "127.0.0.1:%d" % P), ("Origin", "http://evil.example")]) == 401)
r = subprocess.run([weir_bin(), "health", "127.0.0.1:%d" % P, "--admin-token", TOKEN],
                   capture_output=True, text=True, timeout=30)
ck.check("token: weir health --admin-token", r.returncode == 0, r.stdout + r.stderr)
ck.exit(w)
