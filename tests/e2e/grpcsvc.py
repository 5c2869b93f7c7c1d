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
#
#   start_server() -> (server, port)      on 127.0.0.1, a kernel-chosen port, h2c
#   Client(port)   .square(n) .count(n) .count_then_fail(n) .sum(items) .echo(items); each
#                  returns (code name, details, result, trailing metadata dict)
import os
import sys
from concurrent import futures

try:
    import grpc
except ImportError:
    print("SKIP: python3-grpcio is not installed")
    sys.exit(77)

SERVICE = "weirtest.Math"


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
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


class Client:
    """A grpcio channel to `port` (h2c, prior knowledge, as gRPC always is)."""

    def __init__(self, port, timeout=10.0):
        self.ch = grpc.insecure_channel("127.0.0.1:%d" % port)
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

    def close(self):
        self.ch.close()


if __name__ == "__main__":
    # By hand: python3 grpcsvc.py serves until killed and prints "PORT n".
    s, p = start_server()
    print("PORT %d" % p, flush=True)
    s.wait_for_termination()
