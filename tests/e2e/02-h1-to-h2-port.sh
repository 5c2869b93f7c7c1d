#!/usr/bin/env bash
# 02-h1-to-h2-port: an HTTP/1.1 client on the h2c port gets a well-formed
# "505 HTTP Version Not Supported" with Connection: close and an explanation, promptly,
# and the proxy keeps serving HTTP/2 afterwards.
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -e -o pipefail` when no line matches (no TLS listener);
# this tolerant copy returns an empty port instead.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0

code=$(curl -sS --max-time 5 --http1.1 -o "$T/body" -D "$T/hdrs" -w '%{http_code}' \
    "http://127.0.0.1:$WEIR_PORT/") || fail "curl --http1.1 failed (hang or reset?)"
[ "$code" = 505 ] || fail "expected 505, got $code"
grep -qi '^connection: close' "$T/hdrs" || fail "no Connection: close: $(cat "$T/hdrs")"
grep -q 'HTTP/2' "$T/body" || fail "body does not say HTTP/2 is required: $(cat "$T/body")"
len=$(grep -i '^content-length:' "$T/hdrs" | tr -dc '0-9')
[ "$len" = "$(wc -c <"$T/body")" ] || fail "content-length $len does not match the body"
pass "HTTP/1.1 GET gets 505 with Connection: close"

# A raw HTTP/1.0 request with a body: the answer still arrives whole, then EOF.
$PY - "$WEIR_PORT" <<'PYEOF' || fail "raw HTTP/1.0 client did not get the 505"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"POST /x HTTP/1.0\r\nContent-Length: 5000\r\n\r\n" + b"a" * 5000)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
assert data.startswith(b"HTTP/1.1 505 "), data[:80]
head, _, body = data.partition(b"\r\n\r\n")
assert b"HTTP/2" in body, body
PYEOF
pass "raw HTTP/1.0 POST gets the 505 and EOF"

# The port still speaks HTTP/2.
code=$(h2get "http://127.0.0.1:$WEIR_PORT/" -o /dev/null -w '%{http_code}')
[ "$code" = 200 ] || fail "h2c after the rejections: $code"
if command -v jq >/dev/null && [ -n "${ADMIN_PORT:-}" ]; then
    n=$(admin_get /stats | jq -r '.. | .conn_rejected_h1? // empty' | head -n1)
    [ -z "$n" ] || [ "$n" -ge 2 ] || fail "conn_rejected_h1 = $n, expected >= 2"
fi
pass "HTTP/2 still served"
stop_weir TERM || fail "weir exited $? after SIGTERM"
