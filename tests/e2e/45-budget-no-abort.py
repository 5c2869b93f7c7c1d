#!/usr/bin/python3
# tests/e2e/45-budget-no-abort.py: thousands of connections opened at once against a budget
# small enough that weir must refuse streams and connections (issue 14 part 3). One worker, so
# its libuv loop holds every descriptor: past about 4,000 its watcher array grows beyond 32 KiB,
# an allocation that libuv cannot survive failing (libuv 1.44 aborts on NULL). Checks: weir
# never dies; the budget did refuse charges (budget_refused) and every allocation that failed
# for it shows up as a refused connection or stream in /stats; libuv's memory is counted as
# exempt; and once the clients are gone weir serves again, with nothing left live.
import os, resource, socket, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Weir, headers, PREFACE, settings

N = int(os.environ.get("WEIR_BUDGET_CONNS", "4500"))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = N * 2 + 256
if hard != resource.RLIM_INFINITY and hard < want:
    print("SKIP: RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
    sys.exit(77)
resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # weir inherits it

ck = Checks()
cfg = """listeners:
  - {name: plain, address: "127.0.0.1:0"}
admin: {address: "127.0.0.1:0"}
workers: 1
memory: {limit: 16MiB}
routes:
  - match: {path_prefix: /}
    direct_response: {status: 200, body: "ok\\n"}
"""
w = Weir(cfg=cfg)
conns = []
t0 = time.time()
hello = PREFACE + settings(()) + headers(1)
for i in range(N):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", w.port))
    except BlockingIOError:
        pass
    conns.append(s)
    if i % 200 == 199:
        time.sleep(0.01)  # let weir accept: the point is that many are open at once
# Once connected, each sends its preface and a request; none reads.
time.sleep(1.0)
sent = 0
for s in conns:
    try:
        s.send(hello)
        sent += 1
    except OSError:
        pass
time.sleep(3.0)
ck.check("budget: weir alive with %d connections opened at once" % N, w.alive(),
         "exit %s" % w.proc.poll())
mem = w.memory() if w.alive() else {}
st = w.stats() if w.alive() else {}
ck.check("budget: the limit refused charges", mem.get("budget_refused", 0) > 0,
         "budget_refused %s, alloc_failed %s, committed %s of %s" %
         (mem.get("budget_refused"), mem.get("alloc_failed"), mem.get("committed"),
          mem.get("budget_limit")))
refusals = sum(st.get(k, 0) for k in ("conn_refused_overload", "overload_streams_refused",
                                       "conn_cap_resets", "stream_cap_resets",
                                       "conn_closed_error"))
ck.check("budget: failed allocations show up as refused connections or streams",
         mem.get("alloc_failed", 0) == 0 or refusals > 0,
         "alloc_failed %s, refusals in /stats %d (%s)" %
         (mem.get("alloc_failed"), refusals,
          {k: st.get(k) for k in ("conn_accepted", "conn_refused_overload",
                                  "overload_streams_refused", "conn_cap_resets",
                                  "stream_cap_resets", "conn_closed_error")}))
ck.check("budget: libuv's memory counted as exempt", mem.get("exempt_live", 0) > 0,
         "exempt_live %s, exempt_over %s" % (mem.get("exempt_live"), mem.get("exempt_over")))
for s in conns:
    s.close()
conns = []
# Recovery: the overload level falls and a fresh client is served.
served = False
last = ""
deadline = time.time() + 30
while time.time() < deadline and w.alive():
    buf = b""
    try:
        c = socket.create_connection(("127.0.0.1", w.port), timeout=5)
        c.sendall(hello)
    except OSError as e:
        last = "connect: %s; overload %s" % (e, w.admin_json("/overload").get("level"))
        time.sleep(0.5)
        continue
    end = time.time() + 2
    try:
        while time.time() < end and b"ok\n" not in buf:
            d = c.recv(65536)
            if not d:
                break
            buf += d
    except OSError:
        pass
    c.close()
    if b"ok\n" in buf:
        served = True
        break
    time.sleep(0.5)
ck.check("budget: served again after the clients left", served,
         "in %.1f s" % (time.time() - t0) if served else last)
if w.alive():
    regions = w.memory().get("regions_live")
    deadline = time.time() + 10
    while regions and time.time() < deadline:
        time.sleep(0.2)
        regions = w.memory().get("regions_live")
    ck.check("budget: no connection region left", regions == 0, "regions_live %s" % regions)
ck.check("budget: exits 0 on SIGTERM", w.stop() == 0)
ck.exit()
