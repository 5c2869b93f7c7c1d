#!/usr/bin/python3
# tests/e2e/74-stalled-shed.py: under memory pressure the connections that hold the most and
# cannot make progress are closed, and a connection that holds little is still served
# (issue 13 part 1). Six connections open their windows wide, ask for 100 x 1 MiB each and
# never read; weir (one worker, 32 MiB budget, elevated at 0.20) buffers what it may for them
# and the pressure passes the elevated threshold. send_timeout is off, so nothing but the
# overload manager can close them: it must close the stalled ones, heaviest first, within a
# few seconds, and pressure must fall back to normal. While the level is elevated, a benign
# request on a fresh connection must get its 200 (it holds far less than its fair share).
import json, os, socket, struct, sys, time, urllib.request
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (PREFACE, Checks, Conn, Upstream, Weir, headers, raw_frame, settings, REQ)
from hpack import Encoder

STALLERS = 6


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
    s.settimeout(0.2)
    return s


def overload(w):
    with urllib.request.urlopen("http://127.0.0.1:%d/overload" % w.admin, timeout=10) as r:
        return json.load(r)


def main():
    ck = Checks()
    up = Upstream()
    cfg = ("listeners:\n  - address: 127.0.0.1:0\n"
           "clusters:\n  - {name: up, endpoints: [\"127.0.0.1:%d\"]}\n"
           "routes:\n  - cluster: up\n"
           "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n"
           "memory: {limit: 32MiB, elevated: 0.20, critical: 0.95, hysteresis: 0.05}\n"
           "limits: {send_timeout: 0}\n" % up.port)
    w = Weir(cfg=cfg)
    ov = overload(w)
    ck.check("stalled-shed: normal before the attack", ov["level"] == "normal",
             "level %s, pressure %.2f" % (ov["level"], ov["pressure"]))
    t0 = time.time()
    socks = [wide_open(w.port, "/bytes/1048576", 100) for _ in range(STALLERS)]
    # Probe each with PRIORITY frames (weir answers nothing) without reading; a send fails
    # once weir has closed it (the kernel answers the probe with RST). Meanwhile, the first
    # time the level is seen elevated, a benign request on a fresh connection.
    prio = raw_frame(0x2, 0, 1, struct.pack(">IB", 0, 15))
    took = [None] * STALLERS
    benign, peak, levels = None, 0.0, set()
    while time.time() - t0 < 15 and None in took:
        for i, s in enumerate(socks):
            if took[i] is None:
                try:
                    s.send(prio)
                except socket.timeout:
                    pass
                except OSError:
                    took[i] = time.time() - t0
        ov = overload(w)
        levels.add(ov["level"])
        peak = max(peak, ov["pressure"])
        if benign is None and ov["level"] == "elevated":
            c = Conn(w.port)
            c.preface()
            c.send(headers(1, enc=c.enc))
            benign = c.reaction(1, 10)
            c.close()
        time.sleep(0.1)
    closed = [t for t in took if t is not None]
    ck.check("stalled-shed: the pressure passed the elevated threshold",
             "elevated" in levels or "critical" in levels,
             "levels seen %s, peak pressure %.2f" % (sorted(levels), peak))
    ck.check("stalled-shed: stalled connections closed within 6 s", len(closed) >= 1 and
             max(closed) <= 6.0, "%d of %d closed, after %s s" %
             (len(closed), STALLERS, ", ".join("%.1f" % t for t in sorted(closed))))
    ck.check("stalled-shed: a fresh connection is served while elevated",
             benign == ("response", "200"), "reaction %s" % (benign,))
    deadline = time.time() + 15
    while time.time() < deadline and overload(w)["level"] != "normal":
        time.sleep(0.2)
    ov = overload(w)
    ck.check("stalled-shed: pressure back to normal", ov["level"] == "normal",
             "level %s, pressure %.2f (peak %.2f)" % (ov["level"], ov["pressure"], peak))
    st = w.stats()
    ck.check("stalled-shed: the overload manager closed them, not a timeout",
             st.get("overload_conns_shed") == len(closed) and st.get("timeouts_send") == 0,
             "overload_conns_shed=%s timeouts_send=%s, %d closed" %
             (st.get("overload_conns_shed"), st.get("timeouts_send"), len(closed)))
    for s in socks:
        s.close()
    c = Conn(w.port)
    c.preface()
    c.send(headers(1, enc=c.enc))
    ck.check("stalled-shed: still serves", c.reaction(1) == ("response", "200"), "")
    c.close()
    rc = w.stop()
    ck.check("stalled-shed: clean exit on SIGTERM", rc == 0, "exit %s" % rc)
    up.stop()
    ck.exit(w)


main()
