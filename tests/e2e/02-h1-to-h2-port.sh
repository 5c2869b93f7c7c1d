#!/usr/bin/env bash
# 02-h1-to-h2-port: on an h2c listener the first bytes choose the protocol (issue 16): an
# HTTP/1.1 client is served (200, keep-alive), a raw HTTP/1.0 POST is answered whole and the
# connection then closes, and the same port keeps serving HTTP/2 with prior knowledge.
# (Before issue 16 HTTP/1.1 got "505 HTTP Version Not Supported"; TLS connections that chose
# h2 by ALPN and then send HTTP/1.1 still do: e2e 83.)
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -e -o pipefail` when no line matches (no TLS listener);
# this tolerant copy returns an empty port instead.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0

code=$(curl -sS --max-time 5 --http1.1 -D "$T/hdrs" -w '%{http_code} %{http_version} %{num_connects};' \
    -o "$T/body" "http://127.0.0.1:$WEIR_PORT/" -o "$T/body2" "http://127.0.0.1:$WEIR_PORT/") || fail "curl --http1.1 failed (hang or reset?)"
[ "$code" = "200 1.1 1;200 1.1 0;" ] || fail "expected two HTTP/1.1 200s on one connection, got $code"
grep -qi '^connection: close' "$T/hdrs" && fail "keep-alive expected: $(cat "$T/hdrs")"
len=$(grep -i '^content-length:' "$T/hdrs" | head -n1 | tr -dc '0-9')
[ "$len" = "$(wc -c <"$T/body")" ] || fail "content-length $len does not match the body"
cmp -s "$T/body" "$T/body2" || fail "the two answers differ"
pass "HTTP/1.1 GETs on the h2c port: 200 twice on one connection"

# A raw HTTP/1.0 request with a body and no host: routed (its authority is the local address,
# RFC 9112 3.3; e2e 16), answered whole by the default route, then EOF (no keep-alive).
$PY - "$WEIR_PORT" <<'PYEOF' || fail "raw HTTP/1.0 client did not get its answer and EOF"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"POST /x HTTP/1.0\r\nContent-Length: 5000\r\n\r\n" + b"a" * 5000)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
assert data.startswith(b"HTTP/1.1 200 "), data[:80]
head, _, body = data.partition(b"\r\n\r\n")
assert b"connection: close" in head.lower(), head
cl = [l for l in head.lower().split(b"\r\n") if l.startswith(b"content-length:")]
assert cl and int(cl[0].split(b":")[1]) == len(body), (head, body)
PYEOF
pass "raw HTTP/1.0 POST without host is served (200) and ends with EOF"

# The port still speaks HTTP/2.
code=$(h2get "http://127.0.0.1:$WEIR_PORT/" -o /dev/null -w '%{http_code}')
[ "$code" = 200 ] || fail "h2c after HTTP/1.1: $code"
if command -v jq >/dev/null && [ -n "${ADMIN_PORT:-}" ]; then
    n=$(admin_get /stats | jq -r '.. | .requests_http1? // empty' | head -n1)
    [ "$n" = 3 ] || fail "requests_http1 = $n, expected 3"
    n=$(admin_get /stats | jq -r '.. | .requests_http2? // empty' | head -n1)
    [ "$n" = 1 ] || fail "requests_http2 = $n, expected 1"
fi
pass "HTTP/2 still served; per-protocol counters 3 and 1"
stop_weir TERM || fail "weir exited $? after SIGTERM"
