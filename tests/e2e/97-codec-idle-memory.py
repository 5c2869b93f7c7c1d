#!/usr/bin/python3
# tests/e2e/97-codec-idle-memory.py: what an idle HTTP/2 connection costs on weir's own codec
# against nghttp2's session, in one run (issue 15 part 2; run by e2ecodec_97, skipped by e2e_97).
# Two weirs side by side, one per path (WEIR_CODEC=weir and =nghttp2), one worker each. 2,000
# h2c connections to each send the preface and one GET, read the answer, and then stay silent.
# RSS per connection is read once they are all answered, and again 2.5 s later: by then the
# codec's one-second tick has found each connection idle and dropped its HPACK encoder
# (px_h2_ep_trim). Checked: the codec holds less than nghttp2's path at both moments, and at most
# 8 KiB a connection (measured 6.7 KiB against nghttp2's 16.3 in e2e 68 on this machine).
import os, resource, selectors, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("WEIR_CODEC") != "weir":
    print("SKIP: compares the codec with nghttp2's path; run as e2ecodec_97 (WEIR_CODEC=weir)")
    sys.exit(77)
from h2raw import Checks, Conn, Weir, headers, PREFACE, recv_ready, sanitized, settings

N = int(os.environ.get("WEIR_IDLE_CONNS", "2000"))
BOUND_KIB = 8
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 2 * N * 2 + 256
if hard != resource.RLIM_INFINITY and hard < want:
    print("SKIP: RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
    sys.exit(77)
resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the weirs inherit it

CFG = ("listeners:\n  - address: 127.0.0.1:0\n"
       "routes:\n  - direct_response: {status: 200, body: \"ok\\n\"}\n"
       "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n"
       "limits: {idle_timeout: 60s}\n")


def idle_cost(w):
    """Opens N connections that each get one answer; returns (KiB each now, 2.5 s later, the
    connections)."""
    base = w.rss_kib()
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(N):
        c = Conn(w.port, timeout=10)
        c.send(PREFACE + settings(()) + headers(1, enc=c.enc))
        c.s.setblocking(False)
        sel.register(c.s, selectors.EVENT_READ, c)
        conns.append(c)
    answered = set()
    deadline = time.time() + 60
    while len(answered) < N and time.time() < deadline:
        for key, _ in sel.select(timeout=0.2):
            c = key.data
            d = recv_ready(c.s)
            if d:
                c.buf += d
                if b"ok\n" in c.buf:
                    answered.add(id(c))
                    sel.unregister(c.s)
    if len(answered) < N:
        raise SystemExit("FAIL: %d of %d connections answered" % (len(answered), N))
    now = (w.rss_kib() - base) / N
    time.sleep(2.5)
    later = (w.rss_kib() - base) / N
    return now, later, conns


ck = Checks()
ws = {name: Weir(cfg=CFG, env={"WEIR_CODEC": name}) for name in ("nghttp2", "weir")}
res = {}
for name, w in ws.items():
    now, later, conns = idle_cost(w)
    res[name] = (now, later)
    print("     %-7s: %.1f KiB per idle connection once answered, %.1f KiB 2.5 s later"
          % (name, now, later), flush=True)
    for c in conns:
        c.close()
(ng_now, ng_later), (co_now, co_later) = res["nghttp2"], res["weir"]
ck.check("the codec holds less per idle connection than nghttp2's path",
         co_now < ng_now and co_later < ng_later,
         "codec %.1f / %.1f KiB, nghttp2 %.1f / %.1f KiB" % (co_now, co_later, ng_now, ng_later))
if sanitized():
    ck.check("idle connection on the codec (sanitizer build: bound not enforced)", True,
             "%.1f KiB" % co_later)
else:
    ck.check("idle connection on the codec <= %d KiB" % BOUND_KIB, co_later <= BOUND_KIB,
             "%.1f KiB" % co_later)
for name, w in ws.items():
    ck.check("weir (%s) alive" % name, w.alive(), "")
    rc = w.stop()
    ck.check("weir (%s): clean exit on SIGTERM" % name, rc == 0, "exit %s" % rc)
ck.exit()
