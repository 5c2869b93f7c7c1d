#!/usr/bin/env bash
# 03-tls: a TLS listener with ALPN h2 (certificate generated here, never committed) serves
# curl --http2 and nghttp; a client that offers only http/1.1 (curl --http1.1) is served over
# HTTP/1.1 (issue 16: ALPN h2 preferred, http/1.1 accepted; e2e 83 has the details).
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need openssl

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || fail "openssl req failed"

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
[ -n "$WEIR_TLS_PORT" ] || fail "no 'weir: listener NAME tls HOST:PORT' line"
URL="https://127.0.0.1:$WEIR_TLS_PORT/"

out=$(curl -sS --max-time 10 --http2 --cacert "$T/cert.pem" -o "$T/body" \
    -w '%{http_code} %{http_version}' "$URL") || fail "curl --http2 over TLS failed"
[ "$out" = "200 2" ] || fail "expected '200 2', got '$out'"
grep -q "built-in default" "$T/body" || fail "unexpected body"
pass "curl --http2 over TLS (ALPN h2, verified certificate)"

if command -v nghttp >/dev/null; then
    nghttp -nv "$URL" >"$T/nghttp.out" 2>&1 || fail "nghttp over TLS: $(tail -n 5 "$T/nghttp.out")"
    grep -qi 'negotiated protocol: h2' "$T/nghttp.out" || fail "nghttp did not negotiate h2"
    grep -q ':status: 200' "$T/nghttp.out" || fail "nghttp: no 200"
    pass "nghttp over TLS"
fi

if command -v h2load >/dev/null; then
    h2load -n 2000 -c 4 -m 10 "$URL" >"$T/h2load.out" 2>&1 || true
    grep -q '2000 succeeded, 0 failed, 0 errored' "$T/h2load.out" ||
        fail "h2load over TLS: $(grep -E 'requests:|TLS' "$T/h2load.out")"
    pass "h2load over TLS: 2000 requests, 0 failed"
fi

# ALPN http/1.1: HTTP/1.1 over TLS (issue 16; e2e 83 has the details).
got=$(curl -sS --max-time 10 -k --http1.1 -o "$T/body1" -w '%{http_code} %{http_version}' "$URL" 2>"$T/err1") ||
    fail "HTTP/1.1 over TLS failed: $(cat "$T/err1")"
[ "$got" = "200 1.1" ] || fail "HTTP/1.1 over TLS: $got"
pass "TLS with ALPN http/1.1: served over HTTP/1.1"

# Plain h2c on a TLS port is not TLS: the connection fails cleanly, weir keeps running.
curl -sS --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$WEIR_TLS_PORT/" >/dev/null 2>&1 || true
out=$(curl -sS --max-time 10 --http2 -k -o /dev/null -w '%{http_code}' "$URL") || fail "after garbage"
[ "$out" = 200 ] || fail "TLS after a non-TLS client: $out"
pass "non-TLS bytes on the TLS port do not hurt"

stop_weir TERM || fail "weir exited $? after SIGTERM"
