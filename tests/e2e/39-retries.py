#!/usr/bin/python3
# tests/e2e/39-retries.py: requests the upstream never processed are retried on another
# endpoint (issue 17 part 3), against real upstream processes:
#   A. an h2c cluster of three endpoints: one that refuses every stream (RST_STREAM
#      REFUSED_STREAM, python3-h2), one closed port (connect refused), one node upstream.
#      h2load sends 600 requests: 0 fail, the node upstream serves each exactly once (its own
#      /count says 600), /stats counts the retries and the connect failures, and the access
#      log marks retried requests with retries=N;
#   B. the same cluster with a retry budget of 0 (budget_percent 0, min_retry_concurrency 0):
#      no retry is made (upstream_retry_budget_exhausted counts them) and the requests that
#      met the refusing or closed endpoint fail, which shows the budget is what bounds them;
#   C. an HTTP/1.1 cluster of an upstream that resets the connection after reading a request
#      head (no response byte) and a node upstream: every GET succeeds (retried on the other
#      endpoint), while no POST is retried, with a body or without one (POST is not
#      idempotent): each POST the resetter took is a 502, the node upstream never sees it
#      again, and upstream_retries does not move during the POSTs.
#   D. an h2c upstream's GOAWAY (node, last_stream_id = the /goaway stream) while 12 slow
#      streams opened after it are in flight on the same connection: each is retried on the
#      other endpoint, 0 fail, even with a zero retry budget (an orderly shutdown is exempt).
# --check-config refuses retries with connect_retries beside it, and budget_percent 101.
import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Upstream, Weir, weir_bin

import h2.config
import h2.connection
import h2.errors
import h2.events

ck = Checks()


class Server(threading.Thread):
    """A loopback server on a kernel-chosen port, a thread per connection (serve())."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.lock = threading.Lock()

    def run(self):
        while True:
            s, _ = self.ls.accept()
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()


class Refuser(Server):
    """An h2c server that answers every request stream with RST_STREAM(REFUSED_STREAM)."""

    def __init__(self):
        super().__init__()
        self.refused = 0

    def serve(self, s):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        try:
            s.sendall(conn.data_to_send())
            while True:
                data = s.recv(65536)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        conn.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                        with self.lock:
                            self.refused += 1
                s.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            s.close()


class Resetter(Server):
    """An HTTP/1.1 server that reads a request head, then resets the connection (SO_LINGER 0)
    without a response byte. Records each request's method."""

    def __init__(self):
        super().__init__()
        self.methods = []

    def serve(self, s):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            with self.lock:
                self.methods.append(buf.split(b" ", 1)[0].decode())
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        finally:
            s.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def count(port, h2c):
    args = ["curl", "-sS", "--max-time", "10"] + (["--http2-prior-knowledge"] if h2c else [])
    return int(subprocess.check_output(args + ["http://127.0.0.1:%d/count" % port]).strip())


def h2load(port, n, c=4, m=4):
    out = subprocess.run(["h2load", "-c", str(c), "-m", str(m), "-n", str(n),
                          "http://127.0.0.1:%d/" % port], capture_output=True, text=True,
                         timeout=120).stdout
    r = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed",
                  out)
    return (int(r.group(2)), int(r.group(3))) if r else (0, -1)


def curl(port, method, path, body=None):
    args = ["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "-o", "/dev/null",
            "-w", "%{http_code}", "-X", method]
    if body is not None:
        args += ["--data-binary", body, "-H", "content-type: application/octet-stream"]
    return subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)], capture_output=True,
                          text=True, timeout=30).stdout


def stat(w, name):
    return w.stats()[name]


def config(tmp_log, eps, proto, retries):
    return """listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
workers: 2
access_log: %s
clusters:
  - name: c
    protocol: %s
    endpoints: [%s]
    retries: %s
routes:
  - cluster: c
""" % (tmp_log, proto, ", ".join("127.0.0.1:%d" % p for p in eps), retries)


def access_lines(path):
    with open(path) as f:
        return f.read().splitlines()


# --check-config.
tmp = tempfile.mkdtemp(prefix="weir-e2e.")
for name, body, want in [
    ("both", "    connect_retries: 1\n    retries: {max: 2}\n",
     r"bad\.yaml:5:\d+: clusters\[0\]\.retries: give either 'retries' or 'connect_retries'"),
    ("budget", "    retries:\n      budget_percent: 101\n",
     r"bad\.yaml:5:\d+: clusters\[0\]\.retries\.budget_percent: 101 is out of range"),
]:
    p = os.path.join(tmp, "bad.yaml")
    with open(p, "w") as f:
        f.write("clusters:\n  - name: c\n    endpoints: [127.0.0.1:1]\n" + body +
                "routes:\n  - cluster: c\n")
    r = subprocess.run([weir_bin(), "--check-config", p], capture_output=True, text=True)
    msg = (r.stdout + r.stderr).strip()
    ck.check("--check-config " + name, r.returncode != 0 and re.search(want, msg), msg)

refuser = Refuser()
refuser.start()
resetter = Resetter()
resetter.start()
good = Upstream("h2c")
good1 = Upstream("http1")
# A failed start of weir ends the script (SystemExit) before the stops at the end: the node
# upstreams must not outlive it.
atexit.register(lambda: [u.proc.kill() for u in (good, good1)])
closed = closed_port()

# A. connect failure and REFUSED_STREAM, retried on another endpoint: 0 failed.
log_a = os.path.join(tmp, "access-a.log")
w = Weir(cfg=config(log_a, [refuser.port, closed, good.port], "h2c",
                    "{max: 2, budget_percent: 100, min_retry_concurrency: 100}"))
n0 = count(good.port, True)
ok, failed = h2load(w.port, 600)
served = count(good.port, True) - n0
retries, cfail = stat(w, "upstream_retries"), stat(w, "upstream_connect_failed")
ck.check("A: 600 requests through a refusing and a closed endpoint, 0 failed",
         ok == 600 and failed == 0, "%d succeeded, %d failed" % (ok, failed))
ck.check("A: the node upstream served each request exactly once", served == 600,
         "its /count grew by %d" % served)
ck.check("A: retries counted", retries >= 1 and cfail >= 1 and refuser.refused >= 1,
         "upstream_retries %d, upstream_connect_failed %d, streams refused %d" %
         (retries, cfail, refuser.refused))
w.stop()
lines = access_lines(log_a)
retried = [l for l in lines if re.search(r" retries=[12]$", l)]
non200 = [l for l in lines if '" 200 ' not in l]
ck.check("A: access log", len(lines) == 600 and not non200 and len(retried) >= 1,
         "%d lines, %d non-200, %d with retries= (e.g. %s)" %
         (len(lines), len(non200), len(retried), retried[0].split('"')[2] if retried else "-"))

# B. no retry budget: the same requests fail instead.
w = Weir(cfg=config(os.path.join(tmp, "access-b.log"), [refuser.port, closed, good.port], "h2c",
                    "{max: 2, budget_percent: 0, min_retry_concurrency: 0}"))
ok, failed = h2load(w.port, 300)
exhausted, retries = stat(w, "upstream_retry_budget_exhausted"), stat(w, "upstream_retries")
ck.check("B: a zero budget makes no retry", retries == 0 and exhausted >= 1 and failed >= 1,
         "%d succeeded, %d failed, upstream_retries %d, upstream_retry_budget_exhausted %d" %
         (ok, failed, retries, exhausted))
w.stop()

# C. a reset before any response byte: GET is retried, POST never.
log_c = os.path.join(tmp, "access-c.log")
w = Weir(cfg=config(log_c, [resetter.port, good1.port], "http1", "{max: 2}"))
codes = [curl(w.port, "GET", "/bytes/100") for _ in range(10)]
got_get = resetter.methods.count("GET")
ck.check("C: GETs reset by one endpoint are retried on the other",
         codes == ["200"] * 10 and got_get >= 1,
         "statuses %s; the resetter took %d of them" % (",".join(sorted(set(codes))), got_get))
r0 = stat(w, "upstream_retries")
n0 = count(good1.port, False)
codes_body = [curl(w.port, "POST", "/sha256", "x" * 100) for _ in range(10)]
codes_empty = [curl(w.port, "POST", "/sha256", "") for _ in range(10)]
posts = resetter.methods.count("POST")
bad_posts = (codes_body + codes_empty).count("502")
served = count(good1.port, False) - n0
r1 = stat(w, "upstream_retries")
ck.check("C: POST not retried after a reset",
         posts >= 2 and bad_posts == posts and served == 20 - posts and r1 == r0,
         "20 POSTs (10 with a 100-byte body, 10 empty): the resetter took %d, %d got 502, the "
         "node upstream served %d, upstream_retries %d -> %d" % (posts, bad_posts, served, r0, r1))
w.stop()
lines = access_lines(log_c)
post_retried = [l for l in lines if '"POST ' in l and " retries=" in l]
get_retried = [l for l in lines if '"GET ' in l and " retries=" in l]
ck.check("C: access log", not post_retried and len(get_retried) == got_get,
         "%d GET lines with retries=, %d POST lines with retries=" %
         (len(get_retried), len(post_retried)))
# D. GOAWAY above the stream id, a zero budget: retried all the same.
g2 = Upstream("h2c")
atexit.register(g2.proc.kill)
cfg_d = config(os.path.join(tmp, "access-d.log"), [good.port, g2.port], "h2c",
               "{max: 2, budget_percent: 0, min_retry_concurrency: 0}").replace(
                   "workers: 2", "workers: 1")
w = Weir(cfg=cfg_d)
# Warm one connection to each endpoint, so that the slow streams below ride the pooled one.
for _ in range(4):
    curl(w.port, "GET", "/")
n0 = count(good.port, True) + count(g2.port, True)
ga = subprocess.Popen(["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "-o",
                       "/dev/null", "-w", "%{http_code}",
                       "http://127.0.0.1:%d/goaway?ms=400" % w.port], stdout=subprocess.PIPE,
                      text=True)
# The /goaway stream must be open upstream first (its id is the GOAWAY's last_stream_id):
# wait until an upstream has counted it.
deadline = time.time() + 10
while count(good.port, True) + count(g2.port, True) == n0 and time.time() < deadline:
    time.sleep(0.02)
out = subprocess.run(["h2load", "-c", "1", "-m", "12", "-n", "12",
                      "http://127.0.0.1:%d/slow?ms=100&bytes=10&head_ms=700" % w.port],
                     capture_output=True, text=True, timeout=60).stdout
ga_code = ga.communicate(timeout=30)[0]
m = re.search(r"(\d+) succeeded, (\d+) failed", out)
retries, exhausted = stat(w, "upstream_retries"), stat(w, "upstream_retry_budget_exhausted")
ck.check("D: streams above an upstream's GOAWAY retried, budget or not",
         m and m.group(1) == "12" and ga_code == "200" and retries >= 1 and exhausted == 0,
         "/goaway %s; 12 slow streams: %s succeeded, %s failed; upstream_retries %d, "
         "upstream_retry_budget_exhausted %d" % (ga_code, m.group(1) if m else "?",
                                                  m.group(2) if m else "?", retries, exhausted))
w.stop()
g2.stop()
good.stop()
good1.stop()
shutil.rmtree(tmp, ignore_errors=True)
ck.exit()
