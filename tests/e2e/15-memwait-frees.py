#!/usr/bin/python3
# tests/e2e/15-memwait-frees.py: a connection that cannot get memory waits on its worker's
# list and is woken by frees, not by a fast timer (issue 15 part 5; proxy/core/memwait.c).
# WEIR_FAULT_SEND_MS=3000 (a test knob of MEM_FAULT_INJECT builds) makes every allocation of a
# downstream write batch fail for 3 s from the first one. A curl request on one worker then
# waits the 3 s out. Meanwhile 5 other clients connect, send a preface and close: closing them
# frees their connections' memory on the worker's thread, which wakes the list (each waiter
# tries again, fails, parks again). Checked with /stats: the list was woken by a free at least
# once, by the 1 s fallback timer at most 8 times (main retried every 10 ms: about 300 timer
# wake-ups in the 3 s, and had no such counters), weir used under 0.5 s of CPU, and curl got its
# whole answer after the window (at most 8 s after it began: the fallback or a free wakes it).
import os, shutil, socket, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import PREFACE, Checks, Weir, settings

if shutil.which("curl") is None:
    print("SKIP: curl is not installed")
    sys.exit(77)
WINDOW_MS = 3000
BODY = "y" * 20000
w = Weir(cfg="""listeners:
  - address: 127.0.0.1:0
routes:
  - direct_response: {status: 200, body: "%s"}
admin: {address: "127.0.0.1:0"}
workers: 1
""" % BODY, env={"WEIR_FAULT_SEND_MS": str(WINDOW_MS)})
if "WEIR_FAULT_SEND_MS: downstream write batches fail" not in w.log_tail():
    w.stop()
    print("SKIP: this weir build has no fault injection (MEM_FAULT_INJECT=0)")
    sys.exit(77)
ck = Checks()
TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


before = w.stats()
cpu0 = cpu_s(w.pid)
t0 = time.time()
curl = subprocess.Popen(["curl", "-sS", "--max-time", "60", "--http2-prior-knowledge", "-o", "-",
                         "-w", "\n%{http_code}", "http://127.0.0.1:%d/" % w.port],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
# Once curl's connection is parked (its SETTINGS could not be written), others come and go.
deadline = time.time() + 10
while time.time() < deadline and w.stats().get("conn_active", 0) < 1:
    time.sleep(0.05)
time.sleep(0.3)
for _ in range(5):
    s = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    s.sendall(PREFACE + settings(()))
    time.sleep(0.1)
    s.close()
    time.sleep(0.1)
out, _ = curl.communicate(timeout=90)
elapsed = time.time() - t0
cpu = cpu_s(w.pid) - cpu0
body, _, code = out.decode(errors="replace").rpartition("\n")
ck.check("the request waited out the window, then got 200 and its whole body",
         code == "200" and body == BODY and WINDOW_MS / 1000 * 0.8 <= elapsed <= 8,
         "curl exit %d, status %s, %d body bytes after %.2f s" % (curl.returncode, code,
                                                                  len(body), elapsed))
st = w.stats()
have = "memwait_woken_free" in st and "memwait_woken_timer" in st
ck.check("/stats counts the wait list's wake-ups", have,
         "no memwait_woken_* in /stats (main: a 10 ms retry timer)" if not have else "")
if have:
    by_free = st["memwait_woken_free"] - before.get("memwait_woken_free", 0)
    by_timer = st["memwait_woken_timer"] - before.get("memwait_woken_timer", 0)
    print("     wake-ups in %.2f s: %d by frees, %d by the fallback timer; CPU %.2f s"
          % (elapsed, by_free, by_timer, cpu), flush=True)
    ck.check("frees on the worker woke the list", by_free >= 1, "%d" % by_free)
    ck.check("the fallback timer woke it at most 8 times (not every 10 ms)", by_timer <= 8,
             "%d" % by_timer)
ck.check("no busy loop while out of memory: CPU < 0.5 s", cpu < 0.5, "%.2f s" % cpu)
deadline = time.time() + 10
while time.time() < deadline and w.stats()["conn_active"] != 0:
    time.sleep(0.05)
ck.check("no connection left", w.stats()["conn_active"] == 0, "")
ck.check("weir alive", w.alive(), "")
rc = w.stop()
ck.check("clean exit on SIGTERM", rc == 0, "exit %s" % rc)
ck.exit()
