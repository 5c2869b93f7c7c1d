#!/usr/bin/python3
# tests/e2e/83-tls-alpn-ciphers.py: a TLS listener (ECDSA test certificate) enforces what
# RFC 9113 asks of HTTP/2 over TLS, against openssl s_client, curl and Python's ssl module.
# Shows (issue 13 part 7):
#   - ALPN decides the protocol (issue 16): h2 preferred, http/1.1 served by proxy/h1/ (curl
#     --http1.1: 200 over HTTP/1.1), no ALPN at all is HTTP/1.1 (an answer, 200), and a client
#     offering only protocols weir does not speak gets a no_application_protocol alert
#     (before issue 16: http/1.1 got the alert and no ALPN got no answer);
#   - TLS 1.2 suites that RFC 9113 9.2.2 forbids are not offered: ECDHE-ECDSA-AES128-SHA
#     (CBC) fails the handshake (before: it succeeded); ECDHE-ECDSA-AES128-GCM-SHA256 and
#     ECDHE-ECDSA-CHACHA20-POLY1305 over TLS 1.2 and TLS 1.3 serve HTTP/2 (curl, 200);
#   - a client that negotiates h2 and then speaks HTTP/1.1 is rejected (505) without weir
#     buffering its input: 256 MiB poured in during the 2 s linger leave RSS growth under
#     32 MiB (before: every byte sat in the TLS read buffer, RSS grew by hundreds of MiB);
#   - one that negotiates h2 and then sends neither HTTP/2's preface nor HTTP/1.1 gets SETTINGS
#     and GOAWAY(PROTOCOL_ERROR) before the close (RFC 9113 3.4; before: a 505 in HTTP/1.1).
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import E2E, Checks, RssSampler, Weir

for tool in ("openssl", "curl"):
    if shutil.which(tool) is None:
        print("SKIP: %s is not installed" % tool)
        sys.exit(77)

CERTS = os.path.join(E2E, "configs", "certs")
cfg = """listeners:
  - address: 127.0.0.1:0
    tls: {cert: %s/test-cert.pem, key: %s/test-key.pem}
admin: {address: "127.0.0.1:0"}
workers: 1
""" % (CERTS, CERTS)
w = Weir(cfg=cfg)
ck = Checks()
port = w.port


def s_client(*args):
    """openssl s_client with `args`; (handshake done, negotiated ALPN or '', output)."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "localhost"] + list(args),
                       input=b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    out = p.stdout.decode(errors="replace")
    done = "Cipher is (NONE)" not in out and ("New, TLSv1" in out) and p.returncode == 0
    alpn = ""
    for line in out.splitlines():
        if line.startswith("ALPN protocol:"):
            alpn = line.split(":", 1)[1].strip()
    return done, alpn, out


def alert_line(out):
    for line in out.splitlines():
        if "alert" in line:
            return line.strip()[-80:]
    return "no alert line"


# 1. TLS 1.2 cipher suites.
done, alpn, out = s_client("-tls1_2", "-alpn", "h2", "-cipher", "ECDHE-ECDSA-AES128-SHA")
ck.check("TLS 1.2 ECDHE-ECDSA-AES128-SHA (CBC, RFC 9113 9.2.2 blocklist) is refused", not done,
         "handshake done" if done else alert_line(out))
for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
    done, alpn, out = s_client("-tls1_2", "-alpn", "h2", "-cipher", suite)
    ck.check("TLS 1.2 %s with ALPN h2 is accepted" % suite, done and alpn == "h2",
             "done=%s alpn=%r" % (done, alpn))
for extra in (["--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"],
              ["--tlsv1.3"]):
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2", "-k", "-o", "/dev/null",
                        "-w", "%{http_code} %{http_version}"] + extra +
                       ["https://127.0.0.1:%d/" % port], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    got = p.stdout.decode().strip()
    ck.check("curl %s: HTTP/2 200" % " ".join(extra), got == "200 2", got)

# 2. ALPN: h2 preferred, http/1.1 accepted, none = HTTP/1.1, anything else refused.
done, alpn, out = s_client("-alpn", "http/1.1,h2")
ck.check("ALPN http/1.1,h2 offered: h2 chosen (preferred)", done and alpn == "h2",
         "done=%s alpn=%r" % (done, alpn))
done, alpn, out = s_client("-alpn", "http/1.1")
ck.check("ALPN http/1.1 only: accepted", done and alpn == "http/1.1",
         "done=%s alpn=%r" % (done, alpn))
done, alpn, out = s_client("-alpn", "http/1.0")
ck.check("ALPN http/1.0 only: accepted (served by the HTTP/1.1 code, as nginx does)",
         done and alpn == "http/1.0", "done=%s alpn=%r" % (done, alpn))
done, alpn, out = s_client("-alpn", "spdy/3,foo")
ck.check("ALPN with only unknown protocols: handshake refused (no_application_protocol)",
         not done, "done=%s alpn=%r %s" % (done, alpn, alert_line(out)))
p = subprocess.run(["curl", "-sS", "--max-time", "10", "--http1.1", "-k", "-o", "/dev/null",
                    "-w", "%{http_code} %{http_version}", "https://127.0.0.1:%d/" % port],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
got = p.stdout.decode().strip()
ck.check("curl --http1.1 (ALPN http/1.1): HTTP/1.1 200", got == "200 1.1", got)


def no_alpn_exchange():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
        except (ssl.SSLError, OSError) as e:
            return "handshake failed: %s" % e
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                c = s.recv(4096)
                if not c:
                    break
                data += c
        except (ssl.SSLError, OSError) as e:
            return "closed: %s after %r" % (type(e).__name__, data[:40])
        return "answered: %r" % data[:40] if data else "closed: EOF"


r = no_alpn_exchange()
ck.check("no ALPN offered: served as HTTP/1.1 (200)", r.startswith("answered: b'HTTP/1.1 200"), r)

# 3. h2 by ALPN, then HTTP/1.1 bytes: 505, and the input poured in meanwhile is not kept.
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="localhost")
ck.check("ALPN h2 negotiated", s.selected_alpn_protocol() == "h2", str(s.selected_alpn_protocol()))
rss0 = w.rss_kib()
sampler = RssSampler(w)
sampler.start()
s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
answer = b""
s.settimeout(10)
while b"\r\n\r\n" not in answer:
    chunk = s.recv(4096)
    if not chunk:
        break
    answer += chunk
ck.check("HTTP/1.1 after ALPN h2: 505", answer.startswith(b"HTTP/1.1 505"), repr(answer[:40]))
sent = 0
block = b"x" * (1 << 20)
t0 = time.time()
s.settimeout(5)
try:
    while sent < (256 << 20) and time.time() - t0 < 10:
        s.sendall(block)
        sent += len(block)
except (OSError, ssl.SSLError):
    pass
time.sleep(0.3)
sampler.stop()
grown = (sampler.max_kib - rss0) / 1024
ck.check("rejected client's input not buffered: RSS grew < 32 MiB",
         sent >= (16 << 20) and grown < 32,
         "%d MiB sent in %.1f s, RSS %.0f MiB -> max %.0f MiB (+%.1f MiB)"
         % (sent >> 20, time.time() - t0, rss0 / 1024, sampler.max_kib / 1024, grown))
s.close()

# 4. h2 by ALPN, then bytes that are neither HTTP/2's preface nor HTTP/1.1 (here an HTTP/2
# frame without the preface): our SETTINGS, then GOAWAY(PROTOCOL_ERROR), then the close
# (RFC 9113 3.4; before: a 505 in HTTP/1.1, which an HTTP/2 client cannot read).
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(bytes.fromhex("000000040000000000"))  # an empty SETTINGS frame, no preface
got, s_frames = b"", []
s.settimeout(10)
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
except (OSError, ssl.SSLError):
    pass
s.close()
off = 0
while off + 9 <= len(got):
    n = int.from_bytes(got[off:off + 3], "big")
    s_frames.append((got[off + 3], got[off + 9:off + 9 + n]))
    off += 9 + n
kinds = [t for t, _ in s_frames]
code = (int.from_bytes(s_frames[-1][1][4:8], "big") if s_frames and s_frames[-1][0] == 7
        else None)
ck.check("bytes that are neither HTTP/2 nor HTTP/1.1 after ALPN h2: SETTINGS, "
         "GOAWAY(PROTOCOL_ERROR), close", kinds[:1] == [4] and kinds[-1:] == [7] and code == 1,
         "frame types %s, GOAWAY code %s, debug %r" %
         (kinds, code, s_frames[-1][1][8:] if s_frames else b""))

ck.check("weir alive", w.alive())
ck.exit(w)
