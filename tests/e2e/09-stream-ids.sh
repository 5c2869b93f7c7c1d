#!/usr/bin/env bash
# 09-stream-ids: RFC 9113 5.1.1: a HEADERS frame that would open a stream with an id lower
# than one already used is a connection error PROTOCOL_ERROR. nghttp2 ignores such frames,
# weir checks them itself. Also the other frame-level checks nghttp2 1.52 leaves to us:
# CONTINUATION flood, rapid reset, PING flood -> GOAWAY(ENHANCE_YOUR_CALM), and a header
# list past SETTINGS_MAX_HEADER_LIST_SIZE -> 431. Frames are crafted with hyperframe/hpack.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
$PY -c 'import hyperframe, hpack' 2>/dev/null || skip "python3-hyperframe/python3-hpack missing"

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0

cat >"$T/ids.py" <<'PYEOF'
import os, socket, sys, time
from hyperframe.frame import Frame, SettingsFrame, HeadersFrame, GoAwayFrame, DataFrame
from hpack import Encoder

port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
enc = Encoder()
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())

def headers(sid):
    f = HeadersFrame(sid)
    f.data = enc.encode([(":method", "GET"), (":scheme", "http"),
                         (":authority", "localhost"), (":path", "/")])
    f.flags.add("END_HEADERS")
    f.flags.add("END_STREAM")
    return f.serialize()

buf = b""
def frames(deadline):
    """Yields frames until EOF or the deadline."""
    global buf
    while time.time() < deadline:
        while len(buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            f.parse_body(memoryview(buf[9:9 + length]))
            buf = buf[9 + length:]
            yield f
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return
        if not chunk:
            yield None
            return
        buf += chunk

# Stream 5 first: must be answered.
s.sendall(headers(5))
ok5 = False
for f in frames(time.time() + 5):
    if f is None:
        break
    if isinstance(f, DataFrame) and f.stream_id == 5 and "END_STREAM" in f.flags:
        ok5 = True
        break
    if isinstance(f, HeadersFrame) and f.stream_id == 5 and "END_STREAM" in f.flags:
        ok5 = True
        break
assert ok5, "stream 5 was not answered"

second = 3 if mode == "lower" else 7
if mode == "late":
    # A late HEADERS on stream 5, already closed: ignored (RFC 9113 5.1), not fatal.
    s.sendall(headers(5))
s.sendall(headers(second))
goaway = None
answered = False
for f in frames(time.time() + 5):
    if f is None:
        break
    if isinstance(f, GoAwayFrame):
        goaway = f
        break
    if f.stream_id == second and ("END_STREAM" in f.flags):
        answered = True
        break
if mode == "lower":
    assert goaway is not None, "no GOAWAY after HEADERS on a lower stream id"
    assert goaway.error_code == 1, "GOAWAY error %d, expected PROTOCOL_ERROR(1)" % goaway.error_code
    assert goaway.last_stream_id == 5, "last_stream_id %d" % goaway.last_stream_id
    print("GOAWAY PROTOCOL_ERROR last_stream_id=5")
elif mode == "late":
    # weir's codec remembers how stream 5 closed: both sides ended it, so HEADERS on it is a
    # connection error STREAM_CLOSED (RFC 9113 5.1, 5.4.1); the nghttp2 session weir had
    # before stayed silent.
    assert goaway is not None, "no GOAWAY after HEADERS on a normally closed stream"
    assert goaway.error_code == 5, "GOAWAY error %d, expected STREAM_CLOSED(5)" % goaway.error_code
    print("GOAWAY STREAM_CLOSED after a late HEADERS on closed stream 5 (codec)")
else:
    assert answered and goaway is None, "stream 7 after 5 must be served"
    print("stream 7 served" + (" after a late HEADERS on closed stream 5" if mode == "late" else ""))
PYEOF

out=$($PY "$T/ids.py" "$WEIR_PORT" lower 2>&1) || fail "lower stream id: $out"
pass "HEADERS on stream 3 after 5: $out"
out=$($PY "$T/ids.py" "$WEIR_PORT" higher 2>&1) || fail "higher stream id: $out"
pass "HEADERS on stream 7 after 5: $out"
out=$($PY "$T/ids.py" "$WEIR_PORT" late 2>&1) || fail "late HEADERS on a closed stream: $out"
pass "$out"
cat >"$T/flood.py" <<'PYEOF'
import socket, sys, time
from hyperframe.frame import (Frame, SettingsFrame, HeadersFrame, ContinuationFrame, GoAwayFrame,
                              RstStreamFrame, PingFrame)
from hpack import Encoder, Decoder
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
enc = Encoder()
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())
base = [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/")]
def hdr(sid, extra=(), end_headers=True):
    f = HeadersFrame(sid)
    f.data = enc.encode(base + list(extra))
    if end_headers: f.flags.add("END_HEADERS")
    f.flags.add("END_STREAM")
    return f.serialize()
out = b""
if mode == "continuation":
    out += hdr(1, end_headers=False)
    for i in range(20):
        c = ContinuationFrame(1); c.data = enc.encode([("x-c%d" % i, "v")]); out += c.serialize()
elif mode == "rapid-reset":
    for i in range(300):
        sid = 1 + 2 * i
        out += hdr(sid) + RstStreamFrame(sid, error_code=8).serialize()
elif mode == "ping":
    for i in range(300):
        out += PingFrame(0, opaque_data=b"12345678").serialize()
elif mode == "big-headers":
    block = enc.encode(base + [("x-big%d" % i, "v" * 4000) for i in range(20)])
    parts = [block[i:i + 16000] for i in range(0, len(block), 16000)]
    f = HeadersFrame(1); f.data = parts[0]; f.flags.add("END_STREAM")
    if len(parts) == 1: f.flags.add("END_HEADERS")
    out += f.serialize()
    for j, part in enumerate(parts[1:]):
        c = ContinuationFrame(1); c.data = part
        if j == len(parts) - 2: c.flags.add("END_HEADERS")
        out += c.serialize()
try:
    s.sendall(out)
except OSError:
    pass
buf = b""; deadline = time.time() + 5
while time.time() < deadline:
    try:
        d = s.recv(65536)
    except (socket.timeout, ConnectionResetError):
        break
    if not d: break
    buf += d
    while len(buf) >= 9:
        f, l = Frame.parse_frame_header(memoryview(buf[:9]))
        if len(buf) < 9 + l: break
        f.parse_body(memoryview(buf[9:9 + l])); buf = buf[9 + l:]
        if isinstance(f, GoAwayFrame):
            print("GOAWAY %d" % f.error_code); sys.exit(0)
        if isinstance(f, HeadersFrame) and mode == "big-headers":
            print("HEADERS " + dict(Decoder().decode(f.data))[":status"]); sys.exit(0)
print("nothing"); sys.exit(1)
PYEOF
expect() { # expect MODE ANSWER
    local out
    out=$($PY "$T/flood.py" "$WEIR_PORT" "$1" 2>&1 | tail -n 1) || true
    [ "$out" = "$2" ] || fail "$1: expected '$2', got '$out'"
    pass "$1: $2"
}
expect continuation "GOAWAY 11"   # 20 CONTINUATION frames > max_continuations (8)
expect rapid-reset "GOAWAY 11"    # 300 HEADERS+RST_STREAM > rst_per_second (100)
expect ping "GOAWAY 11"           # 300 PING > control_frames_per_second (100)
expect big-headers "HEADERS 431"  # 80 KB header list > max_header_list_size (64 KiB)
flood=$(admin_get /stats | $PY -c "import json,sys; print(json.load(sys.stdin)['flood_goaway'])")
[ "$flood" -ge 3 ] || fail "flood_goaway = $flood, expected >= 3"
pass "flood_goaway counted ($flood)"

code=$(h2get "http://127.0.0.1:$WEIR_PORT/" -o /dev/null -w '%{http_code}')
[ "$code" = 200 ] || fail "weir no longer serves: $code"
stop_weir TERM || fail "weir exited $? after SIGTERM"
