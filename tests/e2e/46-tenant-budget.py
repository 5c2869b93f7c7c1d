#!/usr/bin/python3
# tests/e2e/46-tenant-budget.py: a memory tenant past its limit is refused and shed, and the
# other tenants are served (issue 18 part 2).
#
# Two routes to two upstreams (two tests/e2e/upstream.js processes): /bytes/ goes to cluster
# "slow", which carries memory: {limit: 1MiB}; everything else to cluster "fast", which has no
# tenant limit. weir runs on two workers with a 256 MiB global budget, so the global pressure
# stays normal throughout. For 8 s, 6 hogging connections each open streams for 1 MiB bodies
# on the slow route (16 at once, then 2 more every 250 ms) and never read a byte nor open a
# window: each stream that weir admits buffers up to limits.stream_buffer (64 KiB) of its
# body. Meanwhile a client makes one request on a fresh connection every 50 ms to the fast
# route. /memory is polled every 100 ms for the slow tenant's bytes.
#
# Required: every fast-route request is answered 200 "ok\n" (none refused); the slow tenant's
# figures (/memory JSON and /metrics) show refusals and sheds; the tenant's bytes stay under
# 4 MiB at every poll, and so does the growth of weir's live bytes (without the limit the hogs'
# streams pin much more: the run with WEIR_E2E46_NO_LIMIT=1 drops the key, prints that growth
# and fails); once the hogs go, the tenant holds 0 bytes and 0 streams. Prints the figures.
# On the code before tenants, weir refuses the config (clusters[0].memory: unknown key).
import json
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw
from h2raw import PREFACE, Conn, check_drained, get_once, headers, settings, two_routes, REQ

HOGS = 6
FIRST = 16
MORE = 2
BODY = 1 << 20
PAD = 14000
LIMIT = 1 << 20
BOUND = 4 << 20
ATTACK_S = float(os.environ.get("WEIR_E2E46_SECONDS", "8"))
NO_LIMIT = os.environ.get("WEIR_E2E46_NO_LIMIT") == "1"


class Hogs(h2raw.Hogs):
    """HOGS connections that ask for 1 MiB bodies on the slow route and never read."""

    def __init__(self, port):
        super().__init__(port)
        self.sent = 0

    def run(self):
        from hpack import Encoder
        # A 14 KB header (one HEADERS frame, never indexed: larger than the HPACK table) makes
        # each stream's sub-arena hold more than the stream buffer weir reserves at admission,
        # so the tenant passes its limit and its heaviest streams are shed.
        req = [(k, "/bytes/%d" % BODY if k == ":path" else v) for k, v in REQ]
        req.append(("x-pad", "p" * PAD))
        conns = []
        for _ in range(HOGS):
            s = Conn(self.port).s
            enc = Encoder()
            out = PREFACE + settings(())
            for i in range(FIRST):
                out += headers(1 + 2 * i, hdrs=req, enc=enc)
            s.sendall(out)
            s.settimeout(0.5)  # weir may stop reading a connection whose output is stuck
            conns.append([s, enc, FIRST])
            self.sent += FIRST
        self.socks = [c[0] for c in conns]
        while not self.stop_ev.wait(0.25):
            for c in conns:
                out = b""
                for _ in range(MORE):
                    out += headers(1 + 2 * c[2], hdrs=req, enc=c[1])
                    c[2] += 1
                try:
                    c[0].sendall(out)
                    self.sent += MORE
                except OSError:
                    pass


def main():
    two_routes(run, "" if NO_LIMIT else ", memory: {limit: %d}" % LIMIT)


def run(ck, w):
    ck.check("fast route before the hogs", get_once(w.port) is True, "")
    hogs = Hogs(w.port)
    hogs.start()
    live0 = w.memory()["live"]
    peak = [0, 0, 0]  # tenant bytes, tenant streams, growth of weir's live bytes
    stop_poll = threading.Event()

    def poll():
        while not stop_poll.wait(0.1):
            try:
                m = w.memory()
            except OSError:
                continue
            peak[2] = max(peak[2], m["live"] - live0)
            t = [x for x in m.get("tenants", []) if x["name"] == "slow"]
            if t:
                peak[0] = max(peak[0], t[0]["bytes"])
                peak[1] = max(peak[1], t[0]["streams"])

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    results = []
    lock = threading.Lock()

    def one():
        r = get_once(w.port)
        with lock:
            results.append(r)

    threads = []
    t0 = time.time()
    k = 0
    while time.time() - t0 < ATTACK_S:
        due = t0 + k * 0.05
        if time.time() < due:
            time.sleep(due - time.time())
        k += 1
        th = threading.Thread(target=one, daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join(10)
    during = w.tenant("slow")
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % w.admin, timeout=10) as r:
        metrics = r.read().decode()
    stop_poll.set()
    poller.join(5)
    hogs.stop()
    n_ok = sum(1 for r in results if r is True)
    whys = {}
    for r in results:
        if r is not True:
            whys[r] = whys.get(r, 0) + 1
    # The hogs' streams end with their connections: the tenant's figures go back to zero.
    after = w.tenant_drained("slow")
    print("figures: fast route %d of %d ok; hog streams sent %d; weir's live bytes grew by at "
          "most %d; slow tenant (limit %d): peak %d bytes, peak %d streams, %s; after the hogs: "
          "%s" % (n_ok, len(results), hogs.sent, peak[2], LIMIT, peak[0], peak[1],
                  json.dumps(during), json.dumps(after)), flush=True)
    if whys:
        print("fast-route failures: %s" % sorted(whys.items(), key=lambda x: -x[1])[:5])
    ck.check("every fast-route request served", n_ok == len(results) and len(results) > 50,
             "%d of %d" % (n_ok, len(results)))
    ck.check("weir's live bytes grew by less than %d" % BOUND, peak[2] < BOUND,
             "grew by %d" % peak[2])
    ck.check("the slow tenant is reported", during is not None, "no 'slow' in /memory tenants")
    if during is None:
        return
    ck.check("the slow tenant's new streams were refused", during["refused"] > 0,
             json.dumps(during))
    ck.check("the slow tenant's heaviest streams were shed", during["shed"] > 0,
             json.dumps(during))
    ck.check("the slow tenant stayed under %d bytes" % BOUND, 0 < peak[0] < BOUND,
             "peak %d" % peak[0])
    ck.check("/metrics reports the refusals",
             'weir_tenant_streams_refused_total{tenant="slow"} %d' % 0 not in metrics and
             'weir_tenant_streams_refused_total{tenant="slow"}' in metrics and
             'weir_tenant_memory_limit_bytes{tenant="slow"} %d' % LIMIT in metrics, "")
    ck.check("the fast cluster is no tenant", w.tenant("fast") is None, "")
    check_drained(ck, w, after)


if __name__ == "__main__":
    main()
