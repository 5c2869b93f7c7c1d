#!/usr/bin/env bash
# 08-no-libc-malloc: from the first request on, proxying makes zero libc
# malloc/calloc/realloc/memalign calls: libuv, nghttp2 and OpenSSL allocate through mem/. The
# count is armed once weir is ready, before any request, so it covers the first upstream
# connects (h2c and HTTP/1.1), TLS handshakes, and the reconnects after both upstreams restart;
# HTTP/1.1 clients (h2load --h1, cleartext and TLS with ALPN http/1.1) are in every round.
# An LD_PRELOAD interposer (malloc_count.c, built here) counts the calls; it must have seen
# some before it was armed (start-up), or it was not working.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need cc
need h2load
need node
need openssl
# Sanitizer runtimes replace malloc themselves and must come first in the library list.
ldd "$WEIR_BIN" >"$T/ldd.txt" 2>&1 || true
if grep -qE "lib(a|t|ub)san" "$T/ldd.txt"; then
    skip "weir is built with a sanitizer runtime; the interposer cannot count under it"
fi

cc -shared -fPIC -O2 "$E2E_DIR/malloc_count.c" -o "$T/malloc_count.so" -ldl ||
    fail "cannot build the interposer"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || fail "openssl req failed"

start_upstream up --proto h2c
start_upstream up1 --proto http1
cat >"$T/weir.yaml" <<YEOF
listeners:
  - name: plain
    address: 127.0.0.1:0
  - name: secure
    address: 127.0.0.1:0
    tls: {cert: $T/cert.pem, key: $T/key.pem}
admin:
  address: 127.0.0.1:0
clusters:
  - name: backend
    endpoints: [127.0.0.1:$up_PORT]
  - name: backend1
    protocol: http1
    endpoints: [127.0.0.1:$up1_PORT]
routes:
  - match: {path_prefix: /direct}
    direct_response: {status: 200, body: "direct\n"}
  - match: {authority: h1.test}
    cluster: backend1
  - match: {path_prefix: /}
    cluster: backend
access_log: $T/access.log
YEOF

export MALLOC_COUNT_OUT="$T/count.txt"
export LD_PRELOAD="$T/malloc_count.so"
start_weir -c "$T/weir.yaml"
unset LD_PRELOAD
PLAIN="http://127.0.0.1:$WEIR_PORT"
TLS="https://127.0.0.1:$WEIR_TLS_PORT"

load() { # load N URL [h2load args]: h2load must succeed completely
    local n=$1 url=$2
    shift 2
    h2load -n "$n" -c 8 -m 10 "$@" "$url" >"$T/h2load.out" 2>&1 || true
    grep -q "$n succeeded, 0 failed, 0 errored" "$T/h2load.out" ||
        fail "h2load $url $*: $(grep -E 'requests:' "$T/h2load.out")"
}
snapshot() { # snapshot: ask the interposer for its counts, wait for the file
    rm -f "$MALLOC_COUNT_OUT"
    kill -USR2 "$WEIR_PID"
    wait_for 5 test -s "$MALLOC_COUNT_OUT" || fail "interposer wrote no counts"
}

snapshot
total=$(sed -nE 's/^total=([0-9]+).*/\1/p' "$MALLOC_COUNT_OUT")
[ "${total:-0}" -gt 0 ] || fail "the interposer saw no libc allocation at all: it is not working"
pass "interposer active ($total libc allocation calls during start-up)"

kill -USR1 "$WEIR_PID" # arm: count from now on, before the first request
sleep_until_armed() { snapshot; grep -q 'armed=' "$MALLOC_COUNT_OUT"; }
sleep_until_armed
round() {
    load 1000 "$PLAIN/bytes/4096" --h1 -m 1
    load 1000 "$TLS/bytes/1000" --h1 -m 1
    load 4000 "$PLAIN/direct"
    load 4000 "$PLAIN/bytes/4096"
    load 2000 "$PLAIN/bytes/4096" -H ':authority: h1.test'
    load 1000 "$TLS/direct"
    load 1000 "$TLS/bytes/1000"
    load 1000 "$TLS/bytes/1000" -H ':authority: h1.test'
}
round
grep -q ' 200 ' "$T/access.log" && grep -q 'backend1' "$T/access.log" ||
    fail "no request reached the HTTP/1.1 upstream"
# Both upstreams restart on the same ports: every pooled connection dies and is made anew.
kill "$up_PID" "$up1_PID"
wait "$up_PID" "$up1_PID" 2>/dev/null || true
start_upstream up --proto h2c --port "$up_PORT"
start_upstream up1 --proto http1 --port "$up1_PORT"
sleep 1
round
snapshot
armed=$(sed -nE 's/.* armed=([0-9]+).*/\1/p' "$MALLOC_COUNT_OUT")
if [ "${armed:-x}" != 0 ]; then
    echo "--- call sites (addresses in weir's maps):" >&2
    cat "$MALLOC_COUNT_OUT" >&2
    grep -E 'r-xp' "/proc/$WEIR_PID/maps" >&2 || true
    fail "$armed libc allocation calls from the first request on (expected 0)"
fi
pass "30,000 requests from the first on (4,000 of them HTTP/1.1, cleartext and TLS), with upstream connects, TLS handshakes and reconnects: 0 libc malloc/calloc/realloc calls"
stop_weir TERM || fail "weir exited $? after SIGTERM"
