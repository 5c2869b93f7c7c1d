#!/usr/bin/python3
# tests/e2e/35-admin-malformed.py: a burst of malformed, oversized and abusive requests at the
# admin port over raw sockets (garbage, bad request lines, bad headers, heads over 8 KiB, long
# targets, oversized bodies, an HTTP/2 preface, bad chunked framing, half requests, more
# connections than the cap). Each bad request gets a 4xx or a close, never a hang; afterwards
# /healthz is still 200 and /memory still parses.
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

WEIR_BIN = os.environ.get("WEIR_BIN")
if not WEIR_BIN or not os.access(WEIR_BIN, os.X_OK):
    print("SKIP: WEIR_BIN is not set to the weir binary")
    sys.exit(77)

tmp = tempfile.mkdtemp(prefix="weir-e2e.")
cfg = os.path.join(tmp, "weir.yaml")
with open(cfg, "w") as f:
    f.write("listeners:\n  - address: 127.0.0.1:0\n"
            "routes:\n  - direct_response: {status: 200, body: \"hi\\n\"}\n"
            "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n")
log = open(os.path.join(tmp, "weir.log"), "w+")
proc = subprocess.Popen([WEIR_BIN, "-c", cfg], stderr=log, stdout=subprocess.DEVNULL)


def fail(msg):
    log.flush()
    log.seek(0)
    tail = log.read()[-3000:]
    print("FAIL: " + msg + "\n--- weir log (tail)\n" + tail)
    proc.kill()
    sys.exit(1)


deadline = time.time() + 30
port = None
while time.time() < deadline:
    log.flush()
    with open(log.name) as f:
        text = f.read()
    m = re.search(r"^weir: admin [^ ]+:(\d+)$", text, re.M)
    if m and re.search(r"^weir: ready", text, re.M):
        port = int(m.group(1))
        break
    if proc.poll() is not None:
        fail("weir exited early with %d" % proc.returncode)
    time.sleep(0.05)
if port is None:
    fail("weir did not become ready")


def talk(data, read_timeout=5.0):
    """Sends data, half-closes nothing, reads until close or timeout. Returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close while we are still sending an oversized request
        s.settimeout(read_timeout)
        out = b""
        end = time.time() + read_timeout
        while time.time() < end:
            try:
                b = s.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not b:
                return out, True
            out += b
        return out, False
    finally:
        s.close()


def status_of(resp):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    return int(m.group(1)) if m else None


cases = [
    ("garbage", b"\x00\x01\x02garbage\r\n\r\n"),
    ("no version", b"GET /healthz\r\n\r\n"),
    ("bad version", b"GET /healthz HTTP/2.0\r\n\r\n"),
    ("space in header name", b"GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n"),
    ("no colon", b"GET /healthz HTTP/1.1\r\nNoColon\r\n\r\n"),
    ("bad content-length", b"POST /memory/release HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
    ("two content-lengths", b"POST /memory/release HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
    ("bad chunk", b"POST /memory/release HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("head over 8 KiB", b"GET /healthz HTTP/1.1\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n"),
    ("many headers", b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(2000)) + b"\r\n"),
    ("head of 1 MiB", b"GET /healthz HTTP/1.1\r\nX-A: " + b"a" * (1 << 20) + b"\r\n\r\n"),
    ("long target", b"GET /" + b"p" * 20000 + b" HTTP/1.1\r\n\r\n"),
    ("body over limit", b"POST /memory/release HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n" + b"b" * 65536),
    ("upgrade", b"GET /healthz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
    ("valid then garbage", b"GET /healthz HTTP/1.1\r\n\r\n\x16\x03\x01garbage\r\n\r\n"),
    ("nul in target", b"GET /heal\x00thz HTTP/1.1\r\n\r\n"),
]
bad = 0
for name, data in cases:
    resp, closed = talk(data)
    st = status_of(resp)
    # A bad request ends with a 4xx answer and the connection closed (for "valid then
    # garbage" the first answer is the 200 for the valid request, then a 400).
    statuses = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", resp)]
    if not closed:
        print("case %-22s: connection left open (status %s)" % (name, st))
        bad += 1
    elif not statuses or not 400 <= statuses[-1] < 500:
        print("case %-22s: statuses %s, expected a final 4xx" % (name, statuses))
        bad += 1
    else:
        print("ok   %-22s -> %s" % (name, statuses))
if bad:
    fail("%d malformed cases not rejected cleanly" % bad)

# A half-sent request and then silence: the server must not block others meanwhile.
idle = socket.create_connection(("127.0.0.1", port))
idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

# More connections than the cap at once, each sending a little garbage.
flood = []
for i in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"X" * 100)
        flood.append(s)
    except OSError:
        break
for s in flood:
    s.close()

# A burst of random bytes on many connections.
rnd = open("/dev/urandom", "rb")
for i in range(100):
    talk(rnd.read(1 + i * 37), read_timeout=2.0)
print("ok   flood of %d connections and 100 random payloads" % len(flood))


def healthz():
    resp, _ = talk(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    return status_of(resp), resp


end = time.time() + 10
st = None
while time.time() < end:
    st, resp = healthz()
    if st == 200:
        break
    time.sleep(0.05)
if st != 200:
    fail("/healthz after the burst: %r" % (st,))
resp, _ = talk(b"GET /memory HTTP/1.1\r\nConnection: close\r\n\r\n")
body = resp.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in resp else b""
try:
    json.loads(body)
except ValueError:
    fail("/memory after the burst is not JSON: %r" % body[:200])
idle.close()
if proc.poll() is not None:
    fail("weir died with %d" % proc.returncode)
print("ok   /healthz 200 and /memory parses after the burst")
proc.terminate()
try:
    rc = proc.wait(timeout=40)
except subprocess.TimeoutExpired:
    proc.kill()
    fail("weir did not exit on SIGTERM")
if rc != 0:
    fail("weir exited with %d" % rc)
subprocess.run(["rm", "-rf", tmp])
print("ok   weir exited 0")
