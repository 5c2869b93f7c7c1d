#!/usr/bin/python3
# tests/e2e/73-send-timeout.py: limits.send_timeout (issue 13 part 1). Three connections open
# their windows wide, ask for 100 x 1 MiB each and never read: weir's writes to them stop
# making progress, and with send_timeout 2s each is closed about 2 s later (the sweep runs
# once a second), all its streams ended and their memory freed, with no memory pressure at
# all (no budget). A slow client that reads 256 KiB every 500 ms is never blocked for 2 s and
# gets its whole 4 MB body: the timeout measures progress, not speed.
import os, socket, struct, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (PREFACE, Checks, Conn, DataFrame, HeadersFrame, Upstream, Weir, headers,
                   raw_frame, settings, REQ)
from hpack import Encoder

STALLERS = 3
TIMEOUT_S = 2.0
SLOW_BYTES = 4000000


def wide_open(port, path, streams):
    """A connection with its windows opened wide that asks `streams` times for `path`."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    enc = Encoder()
    req = [(k, path if k == ":path" else v) for k, v in REQ]
    out = PREFACE + settings([(0x4, 0x7fffffff)])
    out += raw_frame(0x8, 0, 0, struct.pack(">I", 0x7fffffff - 65535))
    for i in range(streams):
        out += headers(1 + 2 * i, hdrs=req, enc=enc)
    s.sendall(out)
    return s


def closed_after(socks, t0, seconds):
    """Probes each socket with PRIORITY frames (weir answers nothing) every 100 ms, without
    reading: once weir has closed a connection the kernel answers with RST and a send fails.
    Returns, per socket, the seconds from `t0` until then, or None."""
    prio = raw_frame(0x2, 0, 1, struct.pack(">IB", 0, 15))
    took = [None] * len(socks)
    for s in socks:
        s.settimeout(0.2)
    while time.time() - t0 < seconds and None in took:
        for i, s in enumerate(socks):
            if took[i] is not None:
                continue
            try:
                s.send(prio)
            except socket.timeout:
                pass
            except OSError:
                took[i] = time.time() - t0
        time.sleep(0.1)
    return took


def slow_reader(port, out):
    """Reads one 4 MB body 256 KiB at a time, every 500 ms."""
    c = Conn(port)
    req = [(k, "/bytes/%d" % SLOW_BYTES if k == ":path" else v) for k, v in REQ]
    c.send(PREFACE + settings([(0x4, 0x7fffffff)]) +
           raw_frame(0x8, 0, 0, struct.pack(">I", 0x7fffffff - 65535)) +
           headers(1, hdrs=req, enc=c.enc))
    got, status, ended = 0, None, False
    deadline = time.time() + 60
    while time.time() < deadline and not ended and not c.eof:
        try:
            c.s.settimeout(2)
            chunk = c.s.recv(262144)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        c.buf += chunk
        for f in c.frames(0):  # only the frames already received
            if f is None or f.stream_id != 1:
                continue
            if isinstance(f, HeadersFrame):
                status = dict(c.dec.decode(f.data)).get(":status")
            if isinstance(f, DataFrame):
                got += len(f.data)
            ended = ended or "END_STREAM" in f.flags
        time.sleep(0.5)
    out.update(status=status, got=got, ended=ended)
    c.close()


def main():
    ck = Checks()
    up = Upstream()
    cfg = ("listeners:\n  - address: 127.0.0.1:0\n"
           "clusters:\n  - {name: up, endpoints: [\"127.0.0.1:%d\"]}\n"
           "routes:\n  - cluster: up\n"
           "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n"
           "limits: {send_timeout: 2s}\n" % up.port)
    w = Weir(cfg=cfg)
    slow = {}
    th = threading.Thread(target=slow_reader, args=(w.port, slow), daemon=True)
    th.start()
    t0 = time.time()
    socks = [wide_open(w.port, "/bytes/1048576", 100) for _ in range(STALLERS)]
    # Bound: the timeout, plus the sweep's 1 s period, plus a loaded machine's slack.
    bound = TIMEOUT_S + 1 + 5
    took = closed_after(socks, t0, bound + 2)
    ok = [t for t in took if t is not None]
    ck.check("send-timeout: every stalled reader closed", len(ok) == STALLERS and
             max(ok) <= bound, "closed after %s s (bound %.0f s)" %
             (", ".join("%.1f" % t if t is not None else "never" for t in took), bound))
    th.join(70)
    ck.check("send-timeout: a slow reader that keeps reading is never cut off",
             slow.get("status") == "200" and slow.get("ended") and
             slow.get("got") == SLOW_BYTES,
             "status %s, %s of %d bytes, ended %s" % (slow.get("status"), slow.get("got"),
                                                      SLOW_BYTES, slow.get("ended")))
    st = w.stats()
    ck.check("send-timeout: timeouts_send counted", st.get("timeouts_send") == STALLERS,
             "timeouts_send=%s" % st.get("timeouts_send"))
    deadline = time.time() + 10
    while time.time() < deadline and st.get("streams_active") != 0:
        time.sleep(0.2)
        st = w.stats()
    ck.check("send-timeout: their streams ended and freed", st.get("streams_active") == 0 and
             st.get("conn_active") == 0, "streams_active=%s conn_active=%s" %
             (st.get("streams_active"), st.get("conn_active")))
    for s in socks:
        s.close()
    c = Conn(w.port)
    c.preface()
    c.send(headers(1, enc=c.enc))
    ck.check("send-timeout: still serves", c.reaction(1) == ("response", "200"), "")
    c.close()
    rc = w.stop()
    ck.check("send-timeout: clean exit on SIGTERM", rc == 0, "exit %s" % rc)
    up.stop()
    ck.exit(w)


main()
