#!/usr/bin/python3
# tests/e2e/77-grpc.py: gRPC through weir (issue 13 part 6), with Debian's python3-grpcio as
# both client and server (tests/e2e/grpcsvc.py, an h2c upstream). Each case runs directly
# against the server and through weir, and the two results must be identical:
#   - unary OK, and unary INVALID_ARGUMENT "negative n" with trailing metadata: grpcio sends
#     that error as one HEADERS frame with END_STREAM ("trailers-only"). weir used to forward
#     it as HEADERS plus an empty DATA frame with END_STREAM, so grpc-status arrived in the
#     initial headers and the client saw "UNKNOWN: Stream removed".
#   - server streaming: 1..5 OK; the same error before any message (trailers-only); 3
#     messages then OUT_OF_RANGE "past n" in real trailers.
#   - client streaming (sum, and an error) and bidirectional streaming (echo).
# The gRPC suite starts here; the codec issue extends it (more cases in grpcsvc.py).
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import Checks, Weir
import grpcsvc

ck = Checks()
server, port = grpcsvc.start_server()
cfg = ("listeners:\n  - address: 127.0.0.1:0\n"
       "clusters:\n  - {name: grpc, protocol: h2c, endpoints: [\"127.0.0.1:%d\"]}\n"
       "routes:\n  - cluster: grpc\n"
       "admin: {address: \"127.0.0.1:0\"}\nworkers: 1\n" % port)
w = Weir(cfg=cfg)
direct = grpcsvc.Client(port)
via = grpcsvc.Client(w.port)

CASES = [
    ("unary Square(7)", lambda c: c.square(7), ("OK", "", 49)),
    ("unary Square(-3): INVALID_ARGUMENT (trailers-only)", lambda c: c.square(-3),
     ("INVALID_ARGUMENT", "negative n", None)),
    ("server streaming Count(5)", lambda c: c.count(5), ("OK", "", [1, 2, 3, 4, 5])),
    ("server streaming Count(-1): INVALID_ARGUMENT (trailers-only)", lambda c: c.count(-1),
     ("INVALID_ARGUMENT", "negative n", None)),
    ("server streaming CountThenFail(3): 3 messages, then OUT_OF_RANGE in trailers",
     lambda c: c.count_then_fail(3), ("OUT_OF_RANGE", "past n", [1, 2, 3])),
    ("client streaming Sum(1..100)", lambda c: c.sum(range(1, 101)), ("OK", "", 5050)),
    ("client streaming Sum with a negative item: INVALID_ARGUMENT",
     lambda c: c.sum([1, 2, -5, 4]), ("INVALID_ARGUMENT", "negative item", None)),
    ("bidirectional Echo(10 items)", lambda c: c.echo(range(10)), ("OK", "", list(range(10)))),
]

for name, call, want in CASES:
    d = call(direct)
    v = call(via)
    ck.check(name + ": direct as expected (the test itself)", d[:3] == want,
             "direct %r, want %r" % (d[:3], want))
    ck.check(name + ": through weir, identical to direct", v == d,
             "through weir %r, direct %r" % (v, d))

# The trailing metadata of the trailers-only error arrives too (x-detail: n=-3).
v = via.square(-3)
ck.check("trailers-only error keeps its trailing metadata through weir",
         v[3].get("x-detail") == "n=-3", "got %r" % (v[3],))

# Many calls on one channel (one weir connection) after the errors: nothing is left stuck.
errs = 0
for i in range(-50, 50):
    r = via.square(i)
    if r[0] != ("OK" if i >= 0 else "INVALID_ARGUMENT") or (i >= 0 and r[2] != i * i):
        errs += 1
ck.check("100 calls, half of them errors, on one channel through weir", errs == 0,
         "%d of 100 wrong" % errs)

direct.close()
via.close()
ck.check("weir alive", w.alive(), "")
rc = w.stop()
ck.check("clean exit on SIGTERM", rc == 0, "exit %s" % rc)
server.stop(0)
ck.exit(w)
