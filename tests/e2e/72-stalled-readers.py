#!/usr/bin/python3
# tests/e2e/72-stalled-readers.py: clients that stop reading must not deny service to everyone
# else (issue 13 part 1). For 40 s, 20 attacking connections each open every stream weir
# allows (100) for a 1 MiB body, with their windows opened wide, and then never read a byte;
# an attacker whose connection weir closes opens a new one at once, so 20 are attacking
# throughout. weir runs on one worker with a 48 MiB memory budget. Meanwhile a benign client
# makes one request on a fresh connection every 100 ms (to the same upstream). Required: the
# benign client succeeds for >= 95% of its requests, is never refused (or unanswered) for more
# than 1 s in a row, and weir's RSS stays under the budget plus a fixed overhead.
# Prints the figures: benign success rate, longest outage, RSS peak, attacker connections
# opened and closed by weir, and weir's counters (send timeouts, stalled connections shed).
import os, socket, struct, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import (PREFACE, Checks, RssSampler, Upstream, Weir, get_once, headers,
                   raw_frame, sanitized, settings, REQ)

ATTACKERS = 20
STREAMS = 100
BODY = 1 << 20
LIMIT_MIB = 48
OVERHEAD_MIB = 16  # binary, libraries, stacks and the allocator's own metadata (as e2e 6x)
ATTACK_S = float(os.environ.get("WEIR_E2E72_SECONDS", "40"))
PERIOD_S = 0.1
REQ_TIMEOUT_S = 5.0


class Attackers(threading.Thread):
    """20 connections that ask for 100 x 1 MiB each and never read. Liveness is probed with a
    PRIORITY frame (weir answers nothing to it) every 200 ms: once weir has closed the
    connection the kernel answers the probe with RST and the next send fails, and the slot
    connects again."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop_ev = threading.Event()
        self.opened = 0
        self.closed = 0
        self.slots = [None] * ATTACKERS

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        from hpack import Encoder
        enc = Encoder()
        req = [(k, "/bytes/%d" % BODY if k == ":path" else v) for k, v in REQ]
        # Windows opened wide, as a browser or curl does: weir may send as fast as it can.
        out = PREFACE + settings([(0x4, 0x7fffffff)])
        out += raw_frame(0x8, 0, 0, struct.pack(">I", 0x7fffffff - 65535))
        for i in range(STREAMS):
            out += headers(1 + 2 * i, hdrs=req, enc=enc)
        s.sendall(out)
        s.settimeout(0.5)
        self.opened += 1
        return s

    def run(self):
        prio = raw_frame(0x2, 0, 1, struct.pack(">IB", 0, 15))
        while not self.stop_ev.is_set():
            for i in range(ATTACKERS):
                s = self.slots[i]
                if s is not None:
                    try:
                        s.send(prio)
                        continue
                    except (socket.timeout, BlockingIOError):
                        continue
                    except OSError:
                        self.closed += 1
                        s.close()
                        self.slots[i] = None
                try:
                    self.slots[i] = self.connect()
                except OSError:
                    self.slots[i] = None
            self.stop_ev.wait(0.2)
        for s in self.slots:
            if s is not None:
                s.close()

    def stop(self):
        self.stop_ev.set()
        self.join(10)


def benign_once(port):
    """One GET / on a fresh connection: True for a 200 with its whole body, else the reason."""
    return get_once(port, REQ_TIMEOUT_S)


def main():
    ck = Checks()
    up = Upstream()
    cfg = ("listeners:\n  - address: 127.0.0.1:0\n"
           "clusters:\n  - {name: up, endpoints: [\"127.0.0.1:%d\"]}\n"
           "routes:\n  - cluster: up\n"
           "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n"
           "memory: {limit: %dMiB}\n" % (up.port, LIMIT_MIB))
    try:
        w = Weir(cfg=cfg)
    except BaseException:
        up.stop()
        raise
    try:
        run(ck, up, w)
    finally:  # an exception must not leave the upstream or weir running
        up.stop()
        w.stop()


def run(ck, up, w):
    # Warm up: the upstream connection exists and the baseline is taken before the attack.
    ck.check("benign request before the attack", benign_once(w.port) is True, "")
    base_kib = w.rss_kib()
    rss = RssSampler(w)
    rss.start()
    att = Attackers(w.port)
    att.start()
    t0 = time.time()
    # One request every 100 ms, each on its own thread: a request that hangs does not delay
    # the next, so the cadence holds whatever weir does.
    results = []  # (start, ok, why)
    lock = threading.Lock()

    def one(start):
        r = benign_once(w.port)
        with lock:
            results.append((start, r is True, r))

    threads = []
    k = 0
    while time.time() - t0 < ATTACK_S:
        due = t0 + k * PERIOD_S
        now = time.time()
        if now < due:
            time.sleep(due - now)
        k += 1
        th = threading.Thread(target=one, args=(time.time() - t0,), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join(REQ_TIMEOUT_S + 5)
    results.sort()
    att.stop()
    rss.stop()
    # Longest run of failures: from the start of the first failed request to the start of the
    # next request that succeeded (or the end of the attack).
    longest, run_start, worst_at = 0.0, None, None
    for start, ok, _ in results + [(time.time() - t0, True, True)]:
        if not ok and run_start is None:
            run_start = start
        elif ok and run_start is not None:
            if start - run_start > longest:
                longest, worst_at = start - run_start, run_start
            run_start = None
    n_ok = sum(1 for _, ok, _ in results if ok)
    rate = 100.0 * n_ok / max(1, len(results))
    whys = {}
    for _, ok, why in results:
        if not ok:
            whys[why] = whys.get(why, 0) + 1
    try:
        st = w.stats()
    except OSError as e:  # weir died: reported by the checks below
        st = {"error": str(e)}
    print("figures: benign %d of %d ok (%.1f%%), longest outage %.2f s%s; attacker connections "
          "opened %d, seen closed %d; RSS baseline %d KiB, peak %d KiB (budget %d MiB); "
          "send timeouts %s, stalled connections shed %s, streams refused %s" %
          (n_ok, len(results), rate, longest,
           " at t=%.1f s" % worst_at if worst_at is not None else "", att.opened, att.closed,
           base_kib, rss.max_kib, LIMIT_MIB, st.get("timeouts_send"),
           st.get("overload_conns_shed"), st.get("overload_streams_refused")), flush=True)
    if whys:
        print("benign failures: %s" % sorted(whys.items(), key=lambda x: -x[1])[:5])
        print("first failures at t = %s s" % ", ".join("%.1f" % t for t, ok, _ in results
                                                       if not ok)[:200])
    ck.check("benign client succeeds for >= 95% of its requests", rate >= 95.0,
             "%.1f%% (%d of %d)" % (rate, n_ok, len(results)))
    ck.check("benign client never refused for more than 1 s in a row", longest <= 1.0,
             "longest outage %.2f s" % longest)
    ck.check("the attack really ran (attackers connected throughout)",
             att.opened >= ATTACKERS, "%d connections opened" % att.opened)
    bound = (LIMIT_MIB + OVERHEAD_MIB) * 1024
    if sanitized():
        ck.check("RSS peak (sanitizer build: reported, not enforced)", True, "%d KiB" % rss.max_kib)
    else:
        ck.check("RSS stayed under the budget + %d MiB" % OVERHEAD_MIB, 0 < rss.max_kib <= bound,
                 "peak %d KiB, bound %d KiB" % (rss.max_kib, bound))
    ck.check("weir alive", w.alive(), "")
    # Once the attackers are gone their memory goes and the level falls (within seconds).
    deadline, r = time.time() + 15, None
    while time.time() < deadline:
        r = benign_once(w.port)
        if r is True:
            break
        time.sleep(0.2)
    ck.check("serves after the attack", r is True, "" if r is True else str(r))
    rc = w.stop()
    ck.check("clean exit on SIGTERM", rc == 0, "exit %s" % rc)
    up.stop()
    ck.exit(w)  # weir has stopped already (stop() is idempotent); prints its log on failure


main()
