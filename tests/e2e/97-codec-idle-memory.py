#!/usr/bin/python3
# tests/e2e/97-codec-idle-memory.py: what an idle HTTP/2 connection costs on weir's own codec
# (issue 15 part 2). One weir, one worker. 2,000 h2c connections send the preface and one GET,
# read the answer, and then stay silent. RSS per connection is read once they are all answered,
# and again 2.5 s later: by then the codec's one-second tick has found each connection idle and
# dropped its HPACK encoder (px_h2_ep_trim). Checked: no more later than at once, and then at
# most 8 KiB a connection (measured 5.4 KiB; 16.5 KiB on the nghttp2 session it replaced, side
# by side in one run on this machine before that path was removed).
import os, resource, selectors, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Conn, Weir, headers, PREFACE, recv_ready, sanitized, settings

N = int(os.environ.get("WEIR_IDLE_CONNS", "2000"))
BOUND_KIB = 8
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = N * 2 + 256
if hard != resource.RLIM_INFINITY and hard < want:
    print("SKIP: RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
    sys.exit(77)
resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # weir inherits it

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
w = Weir(cfg=CFG)
co_now, co_later, conns = idle_cost(w)
print("     %.1f KiB per idle connection once answered, %.1f KiB 2.5 s later"
      % (co_now, co_later), flush=True)
ck.check("the encoder's trim does not make an idle connection grow", co_later <= co_now + 0.5,
         "%.1f KiB once answered, %.1f KiB 2.5 s later" % (co_now, co_later))
if sanitized():
    ck.check("idle connection (sanitizer build: bound not enforced)", True,
             "%.1f / %.1f KiB" % (co_now, co_later))
else:
    ck.check("idle connection <= %d KiB once its encoder is dropped" % BOUND_KIB,
             co_later <= BOUND_KIB,
             "%.1f KiB once answered, %.1f KiB 2.5 s later" % (co_now, co_later))
for c in conns:
    c.close()
ck.check("weir alive", w.alive(), "")
rc = w.stop()
ck.check("weir: clean exit on SIGTERM", rc == 0, "exit %s" % rc)
ck.exit()
