#!/usr/bin/python3
# tests/e2e/h2raw.py: raw HTTP/2 frame client and e2e plumbing for the conformance (5x) and
# attack (6x) tests. Runs on Debian's /usr/bin/python3 with python3-hyperframe and
# python3-hpack. Nothing here sleeps and hopes: every wait polls with a deadline.
#
#   Weir(args, cfg=None)   starts the real binary (WEIR_BIN) on :0 ports, reads the ports
#                          from its "weir: listener/admin/ready" lines; .rss_kib(), .stats(),
#                          .memory(), .stop() (returns the exit status)
#   Upstream()             tests/e2e/upstream.js on :0 (node), .port
#   Conn(port)             one raw TCP connection: .preface(), .send(), .frames(), .until()
#   Checks                 named checks printing "ok   NAME" / "FAIL NAME: why"; .exit()
#   get_once(port)         one GET / on a fresh h2c connection: True or the reason
#   two_routes(run, extra) the memory-tenant tests' weir: /bytes/ -> "slow", the rest -> "fast"
#   GoodClient(port, path) a thread running curl --http2-prior-knowledge in a loop
#   RssSampler(pid)        a thread sampling VmRSS every 50 ms; .max_kib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

try:
    from hyperframe.frame import (
        ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
        PriorityFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)
    from hpack import Decoder, Encoder
except ImportError:
    print("SKIP: python3-hyperframe/python3-hpack are not installed")
    sys.exit(77)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SRC = os.environ.get("WEIR_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                                 "..", ".."))
E2E = os.path.join(SRC, "tests", "e2e")

# Error codes (RFC 9113 7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL = 4, 5, 6, 7, 8
COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 9, 11
CODE_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
              4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR",
              7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR",
              11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}

REQ = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", "/")]


def weir_bin():
    b = os.environ.get("WEIR_BIN")
    if not b or not os.access(b, os.X_OK):
        print("SKIP: WEIR_BIN is not set to the weir binary")
        sys.exit(77)
    return b


def raw_frame(ftype, flags, sid, payload):
    """Any frame, with any length and payload: for the malformed cases hyperframe refuses."""
    n = len(payload)
    return struct.pack(">BHBBI", (n >> 16) & 0xff, n & 0xffff, ftype, flags,
                       sid & 0x7fffffff) + payload


def next_frame(buf, off):
    """The whole frame at buf[off:] as (type, flags, stream id, payload, the offset after it),
    or None while it is incomplete: for clients that parse thousands of connections' bytes."""
    if len(buf) - off < 9:
        return None
    n = int.from_bytes(buf[off:off + 3], "big")
    if len(buf) - off < 9 + n:
        return None
    sid = int.from_bytes(buf[off + 5:off + 9], "big") & 0x7fffffff
    return buf[off + 3], buf[off + 4], sid, buf[off + 9:off + 9 + n], off + 9 + n


def settings_values(payload):
    """The (identifier, value) pairs of a SETTINGS payload."""
    return [struct.unpack(">HI", payload[i:i + 6]) for i in range(0, len(payload) - 5, 6)]


def settings(pairs, ack=False):
    payload = b"".join(struct.pack(">HI", k, v) for k, v in pairs)
    return raw_frame(0x4, 0x1 if ack else 0, 0, payload)


def headers(sid, hdrs=None, enc=None, end_stream=True, end_headers=True, block=None):
    f = HeadersFrame(sid)
    f.data = block if block is not None else (enc or Encoder()).encode(hdrs or REQ)
    if end_headers:
        f.flags.add("END_HEADERS")
    if end_stream:
        f.flags.add("END_STREAM")
    return f.serialize()


def data(sid, payload, end_stream=False):
    f = DataFrame(sid)
    f.data = payload
    if end_stream:
        f.flags.add("END_STREAM")
    return f.serialize()


class Checks:
    """Named checks; each prints one line. exit() ends the test with the right status."""

    def __init__(self):
        self.failed = []
        self.passed = 0

    def check(self, name, cond, why=""):
        if cond:
            self.passed += 1
            print("ok   " + name + (": " + why if why else ""), flush=True)
        else:
            self.failed.append(name)
            print("FAIL " + name + ": " + why, flush=True)
        return cond

    def exit(self, weir=None):
        if weir is not None:
            weir.stop()
            if self.failed:
                print("--- weir log (tail)\n" + weir.log_tail())
        print("%d passed, %d failed" % (self.passed, len(self.failed)))
        sys.exit(1 if self.failed else 0)


class Weir:
    """The real weir binary on kernel-chosen loopback ports."""

    def __init__(self, args=(), cfg=None, env=None):
        self.tmp = tempfile.mkdtemp(prefix="weir-e2e.")
        argv = [weir_bin()]
        if cfg is not None:
            path = os.path.join(self.tmp, "weir.yaml")
            with open(path, "w") as f:
                f.write(cfg)
            argv += ["-c", path]
        argv += list(args)
        self.logpath = os.path.join(self.tmp, "weir.log")
        self.log = open(self.logpath, "w")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(argv, stderr=self.log, stdout=subprocess.DEVNULL, env=e)
        self.pid = self.proc.pid
        deadline = time.time() + 30
        while True:
            text = open(self.logpath).read()
            if re.search(r"^weir: ready", text, re.M):
                break
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("FAIL: weir did not become ready:\n" + text[-2000:])
            time.sleep(0.05)
        self.port = int(re.search(r"^weir: listener \S+ \S+ \S+:(\d+)$", text, re.M).group(1))
        m = re.search(r"^weir: admin \S+:(\d+)$", text, re.M)
        self.admin = int(m.group(1)) if m else None

    def log_tail(self, n=3000):
        return open(self.logpath).read()[-n:]

    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def admin_json(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin, path), timeout=10) as r:
            return json.load(r)

    def stats(self):
        return self.admin_json("/stats")

    def memory(self):
        return self.admin_json("/memory")

    def tenant(self, name):
        """The memory tenant `name` from /memory's "tenants" (a dict), or None."""
        for t in self.memory().get("tenants", []):
            if t["name"] == name:
                return t
        return None

    def tenant_drained(self, name, seconds=10.0):
        """Polls tenant `name` until it holds 0 bytes and 0 streams (or `seconds` pass);
        returns what it saw last."""
        deadline = time.time() + seconds
        while True:
            t = self.tenant(name)
            if t is None or (t["bytes"] == 0 and t["streams"] == 0) or time.time() > deadline:
                return t
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Upstream:
    """tests/e2e/upstream.js (node); dies with this process (stdin pipe + kill at exit)."""

    def __init__(self, proto="h2c", extra=()):
        self.proc = subprocess.Popen(["node", os.path.join(E2E, "upstream.js"), "--proto", proto]
                                     + list(extra),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise SystemExit("FAIL: upstream did not start")
        self.port = int(line.split()[1])

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Conn:
    """One raw HTTP/2 connection. frames() yields parsed frames, None at EOF/reset."""

    def __init__(self, port, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.enc = Encoder()
        self.dec = Decoder()
        self.eof = False

    def send(self, b):
        try:
            self.s.sendall(b)
            return True
        except OSError:
            return False

    def preface(self, pairs=(), ack_server=True):
        self.send(PREFACE + settings(pairs))
        self.ack_server = ack_server
        if ack_server:
            # Take the server's SETTINGS (and send its ACK) now: an ACK sent later could land
            # between a HEADERS without END_HEADERS and its CONTINUATION, which RFC 9113 6.10
            # makes a PROTOCOL_ERROR, failing tests by timing rather than by what weir does.
            self.until(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags, 5.0)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def frames(self, seconds=5.0):
        deadline = time.time() + seconds
        while True:
            while len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + length:
                    break
                f, _ = Frame.parse_frame_header(memoryview(self.buf[:9]))
                try:
                    f.parse_body(memoryview(self.buf[9:9 + length]))
                except Exception:
                    pass
                self.buf = self.buf[9 + length:]
                if isinstance(f, SettingsFrame) and "ACK" not in f.flags and \
                        getattr(self, "ack_server", True):
                    # As every HTTP/2 client does (RFC 7541 4.2): the encoder takes the
                    # server's table size, and says so at the start of its next block. weir
                    # holds an idle client to 0 and drops its decoder on the ACK.
                    if SettingsFrame.HEADER_TABLE_SIZE in f.settings:
                        self.enc.header_table_size = f.settings[SettingsFrame.HEADER_TABLE_SIZE]
                    self.send(settings((), ack=True))
                yield f
            left = deadline - time.time()
            if left <= 0 or self.eof:
                return
            self.s.settimeout(min(left, 1.0))
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                yield None
                return
            self.buf += chunk

    def until(self, pred, seconds=5.0):
        """First frame for which pred(f) is true; None at EOF or deadline. Keeps .seen."""
        self.seen = []
        for f in self.frames(seconds):
            if f is None:
                return None
            self.seen.append(f)
            if pred(f):
                return f
        return None

    def goaway(self, seconds=5.0):
        """The GOAWAY weir sends (or None): reads until it, EOF or the deadline."""
        return self.until(lambda f: isinstance(f, GoAwayFrame), seconds)

    def reaction(self, sid, seconds=5.0):
        """('goaway', code) | ('rst', code) on `sid` | ('response', status) | ('eof', None) |
        ('none', None): the first of these that arrives."""
        for f in self.frames(seconds):
            if f is None:
                return ("eof", None)
            if isinstance(f, GoAwayFrame):
                return ("goaway", f.error_code)
            if isinstance(f, RstStreamFrame) and f.stream_id == sid:
                return ("rst", f.error_code)
            if isinstance(f, HeadersFrame) and f.stream_id == sid:
                try:
                    h = dict(self.dec.decode(f.data))
                    return ("response", h.get(":status"))
                except Exception:
                    return ("response", "?")
        return ("none", None)


def get_once(port, timeout=5.0):
    """One GET / on a fresh connection: True for a 200 with body "ok\\n" (upstream.js), else
    the reason (connect error, GOAWAY, RST_STREAM, other status, no answer)."""
    try:
        c = Conn(port, timeout=timeout)
    except OSError as e:
        return "connect: %s" % e
    try:
        c.send(PREFACE + settings(()) + headers(1, enc=c.enc))
        status, body = None, b""
        for f in c.frames(timeout):
            if f is None:
                return "closed (status %s)" % status
            if isinstance(f, GoAwayFrame):
                return "GOAWAY %d" % f.error_code
            if f.stream_id != 1:
                continue
            if isinstance(f, RstStreamFrame):
                return "RST_STREAM %d" % f.error_code
            if isinstance(f, HeadersFrame):
                status = dict(c.dec.decode(f.data)).get(":status")
            elif isinstance(f, DataFrame):
                body += f.data
            if "END_STREAM" in f.flags:
                return True if status == "200" and body == b"ok\n" else \
                    "status %s body %r" % (status, body[:40])
        return "no answer in %.0f s" % timeout
    finally:
        c.close()


class Hogs(threading.Thread):
    """The memory-tenant tests' clients that never read: a subclass's run() keeps its sockets
    in .socks and returns once .stop_ev is set; stop() ends it and closes them."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop_ev = threading.Event()
        self.socks = []

    def stop(self):
        self.stop_ev.set()
        self.join(10)
        for s in self.socks:
            s.close()


def check_drained(ck, w, after):
    """The memory-tenant tests' last checks: the tenant (as tenant_drained returned it) holds
    nothing once its clients are gone, and weir is alive."""
    ck.check("the tenant holds nothing once the hogs are gone",
             after is not None and after["bytes"] == 0 and after["streams"] == 0,
             json.dumps(after))
    ck.check("weir is alive", w.alive(), w.log_tail())


def two_routes(run, slow_extra=""):
    """Memory tenant tests (46, 47): two upstream.js processes, cluster "slow" (with
    `slow_extra` added to its mapping, e.g. ", memory: {limit: 1048576}") for /bytes/ and
    cluster "fast" for the rest, two workers, a 256 MiB budget. Calls run(checks, weir),
    stops everything and exits with the checks' status."""
    ck = Checks()
    slow, fast = Upstream(), Upstream()
    cfg = ("listeners:\n  - address: 127.0.0.1:0\n"
           "clusters:\n"
           "  - {name: slow, endpoints: [\"127.0.0.1:%d\"]%s}\n"
           "  - {name: fast, endpoints: [\"127.0.0.1:%d\"]}\n"
           "routes:\n"
           "  - {match: {path_prefix: /bytes/}, cluster: slow}\n"
           "  - {cluster: fast}\n"
           "admin: {address: \"127.0.0.1:0\"}\nworkers: 2\n"
           "memory: {limit: 256MiB}\n" % (slow.port, slow_extra, fast.port))
    try:
        w = Weir(cfg=cfg)
    except BaseException:
        slow.stop()
        fast.stop()
        raise
    try:
        run(ck, w)
    finally:  # an exception must not leave the upstreams or weir running
        slow.stop()
        fast.stop()
        w.stop()
    ck.exit(w)


def fmt(reaction):
    kind, code = reaction
    if kind in ("goaway", "rst"):
        return "%s(%s)" % (kind.upper(), CODE_NAMES.get(code, code))
    return "%s %s" % (kind, code if code is not None else "")


class GoodClient(threading.Thread):
    """A well-behaved client in parallel with an attack: curl over h2c in a loop."""

    def __init__(self, port, path="/"):
        super().__init__(daemon=True)
        self.url = "http://127.0.0.1:%d%s" % (port, path)
        self.ok = 0
        self.bad = 0
        self.errors = []
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            r = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge",
                                "-o", "/dev/null", "-w", "%{http_code}", self.url],
                               capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip() == "200":
                self.ok += 1
            else:
                self.bad += 1
                self.errors.append((r.stdout + r.stderr).strip()[-200:])
            self.stop_ev.wait(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join(20)


class RssSampler(threading.Thread):
    def __init__(self, weir, period=0.05):
        super().__init__(daemon=True)
        self.weir = weir
        self.period = period
        self.max_kib = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            self.max_kib = max(self.max_kib, self.weir.rss_kib())
            self.stop_ev.wait(self.period)

    def stop(self):
        self.stop_ev.set()
        self.join(5)


def recv_ready(sock):
    """recv() on a non-blocking socket a selector reported readable: the bytes, b"" at EOF or
    on an error (the connection is gone either way), None when nothing was there after all."""
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def sanitized():
    """True when weir runs under a sanitizer (shadow memory is outside any budget)."""
    try:
        out = subprocess.run(["ldd", weir_bin()], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "libasan" in out or "libtsan" in out or "libubsan" in out


def attack_test(name, attack, cfg_extra="", limit_mib=64, cut_within_s=10.0, good_path="/",
                weir_args=(), slack_mib=16, setup=None, upstream=False):
    """Runs one attack against weir with a parallel well-behaved client and an RSS sampler.
    `attack(weir, checks)` performs the attack and returns (cut_off: bool, detail: str,
    seconds_to_cut: float). Checks: cut off in time, weir under limit + slack, the good
    client never failed and got answers during the attack, weir still serves after, clean
    exit on SIGTERM."""
    ck = Checks()
    up = Upstream() if upstream else None
    routes = ("routes:\n  - direct_response: {status: 200, body: \"ok\\n\"}\n" if up is None else
              "clusters:\n  - {name: up, endpoints: [\"127.0.0.1:%d\"]}\n"
              "routes:\n  - cluster: up\n" % up.port)
    cfg = ("listeners:\n  - address: 127.0.0.1:0\n" + routes +
           "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n"
           "memory: {limit: %dMiB}\n" % limit_mib + cfg_extra)
    w = Weir(list(weir_args), cfg=cfg)
    if setup:
        setup(w)
    rss = RssSampler(w)
    rss.start()
    good = GoodClient(w.port, good_path)
    good.start()
    t0 = time.time()
    try:
        cut, detail, secs = attack(w, ck)
    except Exception as e:  # a broken attack script is a failure, not a pass
        cut, detail, secs = False, "attack raised %r" % (e,), time.time() - t0
    ck.check(name + ": attacker cut off", cut and secs <= cut_within_s,
             "%s after %.2f s (bound %.0f s)" % (detail, secs, cut_within_s))
    # Let the good client run past the attack so its requests overlap it.
    deadline = time.time() + 10
    while good.ok < 3 and time.time() < deadline:
        time.sleep(0.05)
    good.stop()
    rss.stop()
    ck.check(name + ": weir alive", w.alive(), "")
    ck.check(name + ": good client served during the attack", good.ok >= 3 and good.bad == 0,
             "%d ok, %d failed %s" % (good.ok, good.bad, good.errors[:2]))
    bound = (limit_mib + slack_mib) * 1024
    if sanitized():
        ck.check(name + ": RSS peak (sanitizer build: reported, not enforced)", True,
                 "%d KiB" % rss.max_kib)
    else:
        ck.check(name + ": RSS stayed under the memory limit + %d MiB" % slack_mib,
                 0 < rss.max_kib <= bound, "peak %d KiB, bound %d KiB" % (rss.max_kib, bound))
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", "-o",
                        "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d/" % w.port],
                       capture_output=True, text=True)
    ck.check(name + ": serves after the attack", r.stdout.strip() == "200", r.stdout + r.stderr)
    rc = w.stop()
    ck.check(name + ": clean exit on SIGTERM", rc == 0, "exit %s" % rc)
    if up is not None:
        up.stop()
    ck.exit(w)  # weir has stopped already (stop() is idempotent); prints its log on failure


def conformance(cases, cfg=None, upstream=False, upstream_args=()):
    """Runs each case on its own connection against one weir: case = (name, build, sid,
    expected) where build(conn) -> bytes to send after the preface (or, when it returns a
    tuple (bytes, False), instead of it), and expected is a set of reactions as returned by
    Conn.reaction (e.g. {("goaway", PROTOCOL_ERROR)}). Afterwards weir must still serve.
    `upstream_args` go to tests/e2e/upstream.js."""
    ck = Checks()
    up = Upstream(extra=upstream_args) if upstream else None
    if cfg is None:
        routes = ("routes:\n  - direct_response: {status: 200, body: \"ok\\n\"}\n" if up is None
                  else "clusters:\n  - {name: up, endpoints: [\"127.0.0.1:%d\"]}\n"
                  "routes:\n  - cluster: up\n" % up.port)
        cfg = ("listeners:\n  - address: 127.0.0.1:0\n" + routes +
               "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n")
    w = Weir(cfg=cfg)
    for name, build, sid, expected in cases:
        c = Conn(w.port)
        out = build(c)
        if isinstance(out, tuple):
            c.send(out[0])
        else:
            c.send(PREFACE + settings(()) + out)
        r = c.reaction(sid, 5)
        want = " or ".join(sorted(fmt(e) for e in expected))
        ck.check(name, r in expected, "got %s, RFC requires %s" % (fmt(r), want) if r not in
                 expected else fmt(r))
        c.close()
    c = Conn(w.port)
    c.preface()
    c.send(headers(1, enc=c.enc))
    ck.check("still serves after the malformed input", c.reaction(1) == ("response", "200"), "")
    c.close()
    ck.check("weir alive", w.alive(), "")
    rc = w.stop()
    ck.check("clean exit on SIGTERM", rc == 0, "exit %s" % rc)
    if up is not None:
        up.stop()
    ck.exit(w)  # weir has stopped already (stop() is idempotent); prints its log on failure


def has_nghttp2_session():
    """True while the weir binary still has nghttp2's session path (it imports
    nghttp2_session_*; the codec became the only path in issue 15's flip)."""
    try:
        out = subprocess.run(["nm", "-D", weir_bin()], capture_output=True, text=True).stdout
    except OSError:
        return True
    return "nghttp2_session_server_new" in out


def on_codec():
    """True when the weir under test serves clients on its own codec: WEIR_CODEC=weir, or a
    binary without nghttp2's session path."""
    return os.environ.get("WEIR_CODEC") == "weir" or not has_nghttp2_session()
