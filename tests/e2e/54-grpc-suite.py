#!/usr/bin/python3
# tests/e2e/54-grpc-suite.py: the gRPC suite of issue 15 part 4 through weir, over an h2c front
# and a TLS front (ALPN h2, certificate made here), with Debian's python3-grpcio as client and
# server (tests/e2e/grpcsvc.py, an h2c upstream). On each front:
#   - unary, server streaming, client streaming and bidirectional calls (weirtest.Math);
#   - 8 MiB messages: an 8 MiB request digested by the server (length and sha256 match ours),
#     an 8 MiB response checked byte for byte, and two 8 MiB messages each way on one
#     bidirectional call;
#   - error statuses with messages: seven status codes, each with its message, sent by grpcio
#     as trailers-only responses (one HEADERS frame with END_STREAM);
#   - deadlines: a 5 s call with a 0.5 s deadline ends DEADLINE_EXCEEDED in well under 5 s, and
#     the server sees the call cancelled (weir passed the reset on to the upstream);
#   - cancellation: an endless server stream, cancelled by the client after 3 messages, ends
#     CANCELLED and the server sees it end;
# and at the end weir holds no stream (streams_active 0) and exits 0 on SIGTERM.
# e2e 77 compares the Math cases with direct calls on an h2c front; this test adds the rest.
import hashlib, os, re, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Weir
import grpcsvc
import grpc

MIB8 = 8 << 20
ck = Checks()
tmp = tempfile.mkdtemp(prefix="weir-e2e54.")
cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout", key, "-out", cert], check=True, capture_output=True)
server, port = grpcsvc.start_server()
cfg = ("listeners:\n  - {name: plain, address: 127.0.0.1:0}\n"
       "  - {name: secure, address: 127.0.0.1:0, tls: {cert: %s, key: %s}}\n"
       "clusters:\n  - {name: grpc, protocol: h2c, endpoints: [\"127.0.0.1:%d\"]}\n"
       "routes:\n  - cluster: grpc\n"
       "admin: {address: \"127.0.0.1:0\"}\nworkers: 2\n" % (cert, key, port))
w = Weir(cfg=cfg)
tls_port = int(re.search(r"^weir: listener secure tls \S+:(\d+)$", open(w.logpath).read(),
                         re.M).group(1))
ca = open(cert, "rb").read()


def server_saw(method, since, seconds=10.0):
    """Waits for the server to record how a `method` call after index `since` ended."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        for m, how in grpcsvc.events[since:]:
            if m == method:
                return how
        time.sleep(0.02)
    return None


def suite(front, c):
    # Calls of every kind, errors in trailers-only form and in real trailers.
    cases = [
        ("unary Square(7)", lambda: c.square(7), ("OK", "", 49)),
        ("unary Square(-3): INVALID_ARGUMENT, trailers-only", lambda: c.square(-3),
         ("INVALID_ARGUMENT", "negative n", None)),
        ("server streaming Count(5)", lambda: c.count(5), ("OK", "", [1, 2, 3, 4, 5])),
        ("server streaming CountThenFail(3): OUT_OF_RANGE in trailers",
         lambda: c.count_then_fail(3), ("OUT_OF_RANGE", "past n", [1, 2, 3])),
        ("client streaming Sum(1..1000)", lambda: c.sum(range(1, 1001)), ("OK", "", 500500)),
        ("bidirectional Echo(100 items)", lambda: c.echo(range(100)), ("OK", "", list(range(100)))),
    ]
    for name, call, want in cases:
        got = call()
        ck.check("%s: %s" % (front, name), got[:3] == want, "got %r, want %r" % (got[:3], want))
    md = c.square(-3)[3]
    ck.check("%s: the trailers-only error keeps its trailing metadata" % front,
             md.get("x-detail") == "n=-3", "got %r" % (md,))

    # 8 MiB messages.
    blob = os.urandom(MIB8)
    t0 = time.time()
    got = c.raw("unary_unary", "Digest")(blob, timeout=60)
    want = ("%d %s" % (MIB8, hashlib.sha256(blob).hexdigest())).encode()
    ck.check("%s: an 8 MiB request reaches the server intact" % front, got == want,
             "server saw %r, want %r (%.1f s)" % (got[:80], want[:80], time.time() - t0))
    got = c.raw("unary_unary", "Make")(str(MIB8).encode(), timeout=60)
    ck.check("%s: an 8 MiB response arrives intact" % front, got == grpcsvc.pattern(MIB8),
             "%d bytes, equal %s" % (len(got), got == grpcsvc.pattern(MIB8)))
    blobs = [os.urandom(MIB8), os.urandom(MIB8)]
    back = list(c.raw("stream_stream", "Mirror")(iter(blobs), timeout=60))
    ck.check("%s: two 8 MiB messages each way on one bidirectional call" % front, back == blobs,
             "%d messages back, sizes %r" % (len(back), [len(b) for b in back]))

    # Error statuses with messages.
    bad = []
    for code in ("INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                 "UNAVAILABLE", "INTERNAL", "UNAUTHENTICATED"):
        try:
            c.raw("unary_unary", "Fail")(code.encode(), timeout=10)
            bad.append("%s: OK" % code)
        except grpc.RpcError as e:
            if e.code().name != code or e.details() != "failed with " + code:
                bad.append("%s: %s %r" % (code, e.code().name, e.details()))
    ck.check("%s: 7 error statuses arrive with their messages" % front, not bad, "; ".join(bad))

    # Deadlines: the call ends at its deadline, and the server sees it cancelled.
    since = len(grpcsvc.events)
    t0 = time.time()
    try:
        c.raw("unary_unary", "Sleep")(b"5000", timeout=0.5)
        got = "OK"
    except grpc.RpcError as e:
        got = e.code().name
    took = time.time() - t0
    ck.check("%s: a 5 s call with a 0.5 s deadline ends DEADLINE_EXCEEDED" % front,
             got == "DEADLINE_EXCEEDED" and took < 4.0, "%s after %.2f s" % (got, took))
    how = server_saw("Sleep", since)
    ck.check("%s: the server sees the call past its deadline cancelled" % front,
             how == "cancelled", "server saw %r" % (how,))

    # Cancellation: the client gives up on an endless stream.
    since = len(grpcsvc.events)
    call = c.raw("unary_stream", "Ticks")(b"20", timeout=30)
    n = 0
    for _ in call:
        n += 1
        if n == 3:
            call.cancel()
            break
    ck.check("%s: the cancelled stream ends CANCELLED after 3 messages" % front,
             call.code() == grpc.StatusCode.CANCELLED and n == 3,
             "%s after %d messages" % (call.code(), n))
    how = server_saw("Ticks", since)
    ck.check("%s: the server sees the cancel (weir reset the upstream stream)" % front,
             how == "cancelled", "server saw %r" % (how,))


for front, p, cert_pem in (("h2c", w.port, None), ("TLS", tls_port, ca)):
    c = grpcsvc.Client(p, timeout=30, ca=cert_pem)
    suite(front, c)
    c.close()

deadline = time.time() + 15
st = w.stats()
while st.get("streams_active") != 0 and time.time() < deadline:
    time.sleep(0.1)
    st = w.stats()
ck.check("no stream left in weir", st.get("streams_active") == 0,
         "streams_active %s" % st.get("streams_active"))
ck.check("weir alive", w.alive(), "")
rc = w.stop()
ck.check("clean exit on SIGTERM", rc == 0, "exit %s" % rc)
server.stop(0)
ck.exit(w)
