#!/usr/bin/python3
# tests/e2e/84-downstream-transport.py: the downstream transport's send path and its byte
# counters, on one worker. Shows (issue 13 part 7):
#   1. out of memory: WEIR_FAULT_SEND_MS=3000 (a test knob of MEM_FAULT_INJECT builds) makes
#      every allocation of a downstream write batch fail for 3 s from the first one, so a
#      client's connection cannot send even its SETTINGS. The connection waits for memory
#      (parked on the worker's wait list, woken by frees or a 1 s fallback) instead of spinning: weir uses
#      well under 0.5 s of CPU during the 3 s (before: nghttp2's WOULDBLOCK marked the
#      connection dirty again on every loop turn, a busy loop that burned a whole core for the
#      3 s); once the window is over the request completes with its full body, h2load then
#      gets 1000 of 1000, and no connection is left behind;
#   2. /stats bytes_in and bytes_out count the bytes read from and written to downstream
#      sockets: a raw HTTP/2 client that counts every byte it sends and receives on its socket
#      (three GETs, then GOAWAY, read to EOF) sees exactly the deltas /stats reports (before:
#      only DATA payload was counted, so bytes_in stayed 0 for GETs).
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import PREFACE, REQ, Checks, Encoder, Weir, headers, raw_frame, settings

if shutil.which("curl") is None:
    print("SKIP: curl is not installed")
    sys.exit(77)

WINDOW_MS = 3000
BODY = "x" * 40000
cfg = """listeners:
  - address: 127.0.0.1:0
routes:
  - direct_response: {status: 200, body: "%s"}
admin: {address: "127.0.0.1:0"}
workers: 1
""" % BODY
w = Weir(cfg=cfg, env={"WEIR_FAULT_SEND_MS": str(WINDOW_MS)})
if "WEIR_FAULT_SEND_MS: downstream write batches fail" not in w.log_tail():
    w.stop()
    print("SKIP: this weir build has no fault injection (MEM_FAULT_INJECT=0)")
    sys.exit(77)
ck = Checks()
TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK  # utime + stime


cpu0 = cpu_s(w.pid)
t0 = time.time()
p = subprocess.run(["curl", "-sS", "--max-time", "60", "--http2-prior-knowledge", "-o", "-",
                    "-w", "\n%{http_code}", "http://127.0.0.1:%d/" % w.port],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=90)
elapsed = time.time() - t0
cpu = cpu_s(w.pid) - cpu0
out = p.stdout.decode(errors="replace")
body, _, code = out.rpartition("\n")
ck.check("the request waited out the window, then got 200 and its whole body",
         code == "200" and body == BODY and elapsed >= WINDOW_MS / 1000 * 0.8,
         "curl exit %d, status %s, %d body bytes after %.2f s" % (p.returncode, code, len(body),
                                                                   elapsed))
ck.check("no busy loop while out of memory: CPU < 0.5 s during the wait", cpu < 0.5,
         "weir used %.2f s of CPU in %.2f s" % (cpu, elapsed))

if shutil.which("h2load"):
    p = subprocess.run(["h2load", "-n", "1000", "-c", "4", "-m", "10",
                        "http://127.0.0.1:%d/" % w.port], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode(errors="replace")
    ck.check("h2load after the window: 1000 of 1000",
             "1000 succeeded, 0 failed, 0 errored" in out,
             [l for l in out.splitlines() if "requests:" in l][:1] and
             [l for l in out.splitlines() if "requests:" in l][0].strip())


def settle():
    deadline = time.time() + 10
    while time.time() < deadline and w.stats()["conn_active"] != 0:
        time.sleep(0.05)
    return w.stats()


st = settle()
ck.check("no connection left", st["conn_active"] == 0, "conn_active %d" % st["conn_active"])

# 2. Byte counters: exact, against a client that counts its own socket's bytes.
before = settle()
s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
sent = recvd = 0


def send(b):
    global sent
    s.sendall(b)
    sent += len(b)


enc = Encoder()
send(PREFACE + settings(()))
send(raw_frame(0x8, 0, 0, (1 << 20).to_bytes(4, "big")))  # connection window: 3 bodies fit
for sid in (1, 3, 5):
    send(headers(sid, REQ, enc=enc))
buf, ended, acked = b"", set(), False
deadline = time.time() + 20
while len(ended) < 3 and time.time() < deadline:
    chunk = s.recv(65536)
    if not chunk:
        break
    recvd += len(chunk)
    buf += chunk
    while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
        n, ftype, flags = int.from_bytes(buf[:3], "big"), buf[3], buf[4]
        sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
        buf = buf[9 + n:]
        if ftype == 0x4 and not flags & 0x1 and not acked:
            send(settings((), ack=True))
            acked = True
        if ftype in (0x0, 0x1) and flags & 0x1:
            ended.add(sid)
send(raw_frame(0x7, 0, 0, (0).to_bytes(4, "big") + (0).to_bytes(4, "big")))  # GOAWAY
s.shutdown(socket.SHUT_WR)
while True:  # to EOF: everything weir wrote has arrived
    try:
        chunk = s.recv(65536)
    except OSError:
        break
    if not chunk:
        break
    recvd += len(chunk)
s.close()
after = settle()
d_in = after["bytes_in"] - before["bytes_in"]
d_out = after["bytes_out"] - before["bytes_out"]
ck.check("three GETs answered", len(ended) == 3, "streams ended: %s" % sorted(ended))
ck.check("bytes_in counts every byte the client sent", d_in == sent,
         "/stats bytes_in +%d, the client sent %d" % (d_in, sent))
ck.check("bytes_out counts every byte the client received", d_out == recvd and recvd > 3 * 40000,
         "/stats bytes_out +%d, the client received %d" % (d_out, recvd))
ck.check("weir alive", w.alive())
ck.exit(w)
