#!/usr/bin/python3
# tests/e2e/47-tenant-budget-h1.py: a memory tenant past its limit, over HTTP/1.1 (issue 18
# part 2): its new requests get 503 with Retry-After, its heaviest requests' connections are
# closed, and the other route is served.
#
# Two routes to two upstreams: /bytes/ to cluster "slow" with memory: {limit: 256KiB} (four
# stream buffers of 64 KiB), everything else to cluster "fast". 6 HTTP/1.1 clients ask the
# slow route for 4 MiB each with a 24 KB header and never read (a 4 KiB receive buffer); weir
# buffers what their sockets do not take; one that weir closes connects again. While they
# press the tenant, a probe asks the slow route for 1 KiB every
# 100 ms on a fresh connection and reads the answer, and a client asks the fast route every
# 50 ms. Required: every fast-route request gets 200 "ok\n"; the slow route answers some probes
# 503 with "retry-after: 1" and weir's reason; the tenant's figures show the refusals and the
# closed connections (shed); once the hogs go, the tenant holds 0 bytes and 0 streams.
# On the code before tenants, weir refuses the config (clusters[0].memory: unknown key).
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw
from h2raw import check_drained, two_routes

HOGS = 6
LIMIT = 256 << 10
RUN_S = float(os.environ.get("WEIR_E2E47_SECONDS", "6"))


def http1(port, path, timeout=5.0):
    """One GET on a fresh connection, read to the end: (status, headers dict, body) or the
    reason it failed."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return "connect: %s" % e
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" %
                  path.encode())
        buf = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        head, sep, body = buf.partition(b"\r\n\r\n")
        if not sep:
            return "no response head (%d bytes)" % len(buf)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs, body
    finally:
        s.close()


class Hogs(h2raw.Hogs):
    """HOGS connections that ask the slow route for 4 MiB with a 24 KB header (weir keeps
    the request head: each hog weighs more than the stream buffer the tenant reserves for it)
    and never read. One that weir closes connects again at once, so HOGS keep pressing the
    tenant."""

    def __init__(self, port):
        super().__init__(port)
        self.closed = 0

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(2)
        s.connect(("127.0.0.1", self.port))
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: localhost\r\nX-Pad: %s\r\n\r\n" %
                  (4 << 20, b"p" * 24000))
        return s

    def run(self):
        self.socks = [self.connect() for _ in range(HOGS)]
        while not self.stop_ev.wait(0.1):
            for i, s in enumerate(self.socks):
                # A closed connection answers this probe with RST, and the send after fails.
                # On a live one it is an empty line before the next request, which HTTP/1.1
                # servers ignore (RFC 9112 2.2); weir reads it only after the response.
                try:
                    s.send(b"\r\n")
                    continue
                except (socket.timeout, BlockingIOError):
                    continue
                except OSError:
                    pass
                self.closed += 1
                s.close()
                try:
                    self.socks[i] = self.connect()
                except OSError:
                    self.socks[i] = socket.socket()  # not connected: fails again next round


def main():
    two_routes(run, ", memory: {limit: %d}" % LIMIT)


def run(ck, w):
    r = http1(w.port, "/")
    ck.check("fast route before the hogs", isinstance(r, tuple) and r[0] == 200, str(r)[:200])
    hogs = Hogs(w.port)
    hogs.start()
    # The hogs hold the tenant once its streams are counted (measured, not slept).
    held = None
    deadline = time.time() + 10
    while time.time() < deadline:
        held = w.tenant("slow")
        if held and held["streams"] > 0 and held["bytes"] > 0:
            break
        time.sleep(0.05)
    fast_res, probe_res = [], []
    lock = threading.Lock()

    def loop(path, period, out):
        t0 = time.time()
        k = 0
        while time.time() - t0 < RUN_S:
            due = t0 + k * period
            if time.time() < due:
                time.sleep(due - time.time())
            k += 1
            res = http1(w.port, path)
            with lock:
                out.append(res)

    th = [threading.Thread(target=loop, args=("/", 0.05, fast_res), daemon=True),
          threading.Thread(target=loop, args=("/bytes/1024", 0.1, probe_res), daemon=True)]
    for t in th:
        t.start()
    for t in th:
        t.join(RUN_S + 30)
    during = w.tenant("slow")
    hogs.stop()
    after = w.tenant_drained("slow")
    n_ok = sum(1 for r in fast_res if isinstance(r, tuple) and r[0] == 200 and r[2] == b"ok\n")
    refused = [r for r in probe_res if isinstance(r, tuple) and r[0] == 503]
    with_retry = [r for r in refused if r[1].get("retry-after") == "1" and
                  b"memory budget is spent" in r[2]]
    served = sum(1 for r in probe_res if isinstance(r, tuple) and r[0] == 200)
    print("figures: fast route %d of %d ok; slow-route probes: %d answered 503 (%d with "
          "retry-after: 1), %d served, %d other; hog connections closed by weir %d; slow "
          "tenant (limit %d) with the hogs: %s; during: %s; after: %s" %
          (n_ok, len(fast_res), len(refused), len(with_retry), served,
           len(probe_res) - len(refused) - served, hogs.closed, LIMIT, json.dumps(held),
           json.dumps(during), json.dumps(after)), flush=True)
    others = [r for r in fast_res if not (isinstance(r, tuple) and r[0] == 200)]
    if others:
        print("fast-route failures: %s" % [str(r)[:120] for r in others[:5]])
    ck.check("every fast-route request served", n_ok == len(fast_res) and len(fast_res) > 40,
             "%d of %d" % (n_ok, len(fast_res)))
    ck.check("the slow route refuses with 503 and retry-after: 1", len(with_retry) > 0 and
             len(with_retry) == len(refused), "%d of %d" % (len(with_retry), len(refused)))
    ck.check("the slow tenant is reported", during is not None, "")
    if during is None:
        return
    ck.check("the tenant counts the refusals", during["refused"] >= len(refused) > 0,
             json.dumps(during))
    # Under a sanitizer the hogs push more slowly and admission may hold the tenant under its
    # limit for the whole run (CI's ASan run once saw 253,984 of 262,144 bytes, 63 refused, 0
    # shed): the sheds are then reported, not required. The release suite requires them.
    if h2raw.sanitized() and during["shed"] == 0:
        ck.check("the tenant's heaviest requests shed (sanitizer build: reported, not required)",
                 True, json.dumps(during))
    else:
        ck.check("the tenant's heaviest requests were shed (connections closed)",
                 during["shed"] > 0, json.dumps(during))
    check_drained(ck, w, after)


if __name__ == "__main__":
    main()
