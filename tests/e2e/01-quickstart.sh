#!/usr/bin/env bash
# 01-quickstart: the built-in default config (one direct_response route) on kernel-chosen
# ports answers curl over h2c with prior knowledge and nghttp, and stops cleanly on SIGTERM.
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -e -o pipefail` when no line matches (no TLS listener);
# this tolerant copy returns an empty port instead.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0
[ -n "$WEIR_PORT" ] || fail "no listener line"

code=$(h2get "http://127.0.0.1:$WEIR_PORT/" -o "$T/body" -w '%{http_code} %{http_version}')
[ "$code" = "200 2" ] || fail "expected '200 2' (status, HTTP/2), got '$code'"
grep -q "built-in default" "$T/body" || fail "unexpected body: $(head -c 200 "$T/body")"
pass "curl --http2-prior-knowledge gets the direct response"

# HEAD gets the headers (with the length) and no body.
hdrs=$(h2get "http://127.0.0.1:$WEIR_PORT/" -I)
echo "$hdrs" | grep -qi '^content-length: [1-9]' || fail "HEAD: no content-length: $hdrs"
pass "HEAD answered"

if command -v nghttp >/dev/null; then
    nghttp -nv "http://127.0.0.1:$WEIR_PORT/some/path" >"$T/nghttp.out" 2>&1 ||
        fail "nghttp failed: $(tail -n 5 "$T/nghttp.out")"
    grep -q ':status: 200' "$T/nghttp.out" || fail "nghttp: no :status 200"
    grep -q 'recv DATA frame.*END_STREAM\|; END_STREAM' "$T/nghttp.out" || fail "nghttp: no END_STREAM"
    pass "nghttp -nv works"
fi

# Many streams on one connection, several connections.
if command -v h2load >/dev/null; then
    h2load -n 2000 -c 4 -m 16 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load.out" 2>&1 || true
    grep -q '2000 succeeded, 0 failed, 0 errored' "$T/h2load.out" ||
        fail "h2load: $(grep -E 'requests:' "$T/h2load.out")"
    pass "h2load 2000 requests, 0 failed"
fi

rc=0
stop_weir TERM || rc=$?
[ "$rc" = 0 ] || fail "weir exited $rc after SIGTERM"
grep -q '^weir: stopped' "$T/weir.log" || fail "no 'weir: stopped' line"
pass "SIGTERM: exit 0"
