#!/usr/bin/python3
# tests/e2e/grpcsvc.py: a real gRPC service (Debian's python3-grpcio) for the gRPC e2e tests
# (7x-grpc*.py). It is written with grpc's generic handlers, so no stubs are generated: the
# messages are UTF-8 decimal text, which keeps each case readable in a failure message.
#
#   service weirtest.Math
#     Square(n)       -> n*n; n < 0 -> INVALID_ARGUMENT "negative n" with trailing metadata
#                        x-detail: n=<n> (sent by grpcio as one HEADERS frame with END_STREAM:
#                        the "trailers-only" form every gRPC error status without messages takes)
#     Count(n)        -> the stream 1..n; n < 0 -> the same error before any message
#     CountThenFail(n)-> the stream 1..n, then OUT_OF_RANGE "past n" (status in real trailers)
#     Sum(stream)     -> the sum of a client stream; a negative item -> INVALID_ARGUMENT
#     Echo(stream)    -> each item back as it comes (bidirectional)
#   service weirtest.Bytes (raw bytes messages, for sizes up to 8 MiB and more; e2e 54)
#     Digest(blob)    -> "<len> <sha256 hex>" of the request
#     Make(n)         -> n bytes (text n), byte i = (i * 7 + 3) & 0xff; the client checks them
#     Mirror(stream)  -> each blob back as it comes (bidirectional)
#     Sleep(ms)       -> "slept" after ms milliseconds, or ends early when the call is
#                        cancelled (deadline, client cancel); records how each call ended
#     Ticks(ms)       -> an endless stream of "tick" every ms milliseconds until cancelled
#     Fail(code)      -> aborts with status <code name> and the message "failed with <code>"
#   events: (method, "cancelled" | "done") per Sleep/Ticks call, as the server saw it end
#
#   start_server() -> (server, port)      on 127.0.0.1, a kernel-chosen port, h2c; messages of
#                                         up to 32 MiB both ways (MAX_MSG)
#   Client(port)   .square(n) .count(n) .count_then_fail(n) .sum(items) .echo(items); each
#                  returns (code name, details, result, trailing metadata dict)
import hashlib
import os
import sys
import threading
import time
from concurrent import futures

try:
    import grpc
except ImportError:
    print("SKIP: python3-grpcio is not installed")
    sys.exit(77)

SERVICE = "weirtest.Math"
BYTES = "weirtest.Bytes"
MAX_MSG = 32 << 20
MSG_OPTS = [("grpc.max_send_message_length", MAX_MSG),
            ("grpc.max_receive_message_length", MAX_MSG)]
events = []  # (method, "cancelled" | "done"): how the server saw Sleep and Ticks calls end
_events_lock = threading.Lock()


def pattern(n):
    """The bytes Make(n) returns."""
    return bytes((i * 7 + 3) & 0xff for i in range(256)) * (n // 256) + \
        bytes((i * 7 + 3) & 0xff for i in range(n % 256))


def _note(method, how):
    with _events_lock:
        events.append((method, how))


def _digest(blob, ctx):
    return ("%d %s" % (len(blob), hashlib.sha256(blob).hexdigest())).encode()


def _make(req, ctx):
    return pattern(int(req.decode()))


def _mirror(it, ctx):
    for b in it:
        yield b


def _sleep(req, ctx):
    end = time.time() + int(req.decode()) / 1000.0
    while time.time() < end:
        if not ctx.is_active():
            _note("Sleep", "cancelled")
            return b""
        time.sleep(0.01)
    _note("Sleep", "done")
    return b"slept"


def _ticks(req, ctx):
    # The call never ends by itself: its end (the callback, run when grpcio terminates the
    # RPC) is a cancel. A note after the loop would be lost when the generator is dropped.
    ctx.add_callback(lambda: _note("Ticks", "cancelled"))
    ms = int(req.decode())
    while ctx.is_active():
        yield b"tick"
        time.sleep(ms / 1000.0)


def _fail(req, ctx):
    code = req.decode()
    ctx.abort(getattr(grpc.StatusCode, code), "failed with " + code)


def _enc(v):
    return str(v).encode()


def _dec(b):
    return int(b.decode())


def _square(n, ctx):
    if n < 0:
        ctx.set_trailing_metadata((("x-detail", "n=%d" % n),))
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "negative n")
    return n * n


def _count(n, ctx):
    if n < 0:
        ctx.set_trailing_metadata((("x-detail", "n=%d" % n),))
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "negative n")
    for i in range(1, n + 1):
        yield i


def _count_then_fail(n, ctx):
    for i in range(1, n + 1):
        yield i
    ctx.abort(grpc.StatusCode.OUT_OF_RANGE, "past n")


def _sum(it, ctx):
    total = 0
    for v in it:
        if v < 0:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "negative item")
        total += v
    return total


def _echo(it, ctx):
    for v in it:
        yield v


def start_server():
    handlers = {
        "Square": grpc.unary_unary_rpc_method_handler(_square, _dec, _enc),
        "Count": grpc.unary_stream_rpc_method_handler(_count, _dec, _enc),
        "CountThenFail": grpc.unary_stream_rpc_method_handler(_count_then_fail, _dec, _enc),
        "Sum": grpc.stream_unary_rpc_method_handler(_sum, _dec, _enc),
        "Echo": grpc.stream_stream_rpc_method_handler(_echo, _dec, _enc),
    }
    raw = {
        "Digest": grpc.unary_unary_rpc_method_handler(_digest),
        "Make": grpc.unary_unary_rpc_method_handler(_make),
        "Mirror": grpc.stream_stream_rpc_method_handler(_mirror),
        "Sleep": grpc.unary_unary_rpc_method_handler(_sleep),
        "Ticks": grpc.unary_stream_rpc_method_handler(_ticks),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=MSG_OPTS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),
                                     grpc.method_handlers_generic_handler(BYTES, raw)))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


class Client:
    """A grpcio channel to `port` (h2c, prior knowledge, as gRPC always is)."""

    def __init__(self, port, timeout=10.0, ca=None):
        """ca: a PEM certificate to trust: TLS (ALPN h2) to 127.0.0.1 instead of h2c, with the
        name checked as "localhost"."""
        if ca is None:
            self.ch = grpc.insecure_channel("127.0.0.1:%d" % port, options=MSG_OPTS)
        else:
            creds = grpc.ssl_channel_credentials(root_certificates=ca)
            self.ch = grpc.secure_channel("127.0.0.1:%d" % port, creds, options=MSG_OPTS + [
                ("grpc.ssl_target_name_override", "localhost")])
        self.timeout = timeout

    def _call(self, fn):
        try:
            result, call = fn()
            return ("OK", "", result, dict(call.trailing_metadata() or ()))
        except grpc.RpcError as e:
            return (e.code().name, e.details(), None, dict(e.trailing_metadata() or ()))

    def _m(self, kind, name):
        return getattr(self.ch, kind)("/%s/%s" % (SERVICE, name), request_serializer=_enc,
                                      response_deserializer=_dec)

    def square(self, n):
        m = self._m("unary_unary", "Square")
        return self._call(lambda: m.with_call(n, timeout=self.timeout))

    def _stream(self, call):
        def run():
            items = list(call)
            return items, call
        return self._call(run)

    def count(self, n):
        return self._stream(self._m("unary_stream", "Count")(n, timeout=self.timeout))

    def count_then_fail(self, n):
        call = self._m("unary_stream", "CountThenFail")(n, timeout=self.timeout)
        got = []
        try:
            for v in call:
                got.append(v)
            return ("OK", "", got, dict(call.trailing_metadata() or ()))
        except grpc.RpcError as e:
            return (e.code().name, e.details(), got, dict(e.trailing_metadata() or ()))

    def sum(self, items):
        m = self._m("stream_unary", "Sum")
        return self._call(lambda: m.with_call(iter(items), timeout=self.timeout))

    def echo(self, items):
        return self._stream(self._m("stream_stream", "Echo")(iter(items), timeout=self.timeout))

    def raw(self, kind, name):
        """A weirtest.Bytes method: bytes in, bytes out."""
        return getattr(self.ch, kind)("/%s/%s" % (BYTES, name))

    def close(self):
        self.ch.close()


if __name__ == "__main__":
    # By hand: python3 grpcsvc.py serves until killed and prints "PORT n".
    s, p = start_server()
    print("PORT %d" % p, flush=True)
    s.wait_for_termination()
