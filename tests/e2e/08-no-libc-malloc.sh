#!/usr/bin/env bash
# 08-no-libc-malloc: after warm-up, 10,000 proxied requests (h2c direct_response, h2c to an
# upstream, and TLS) make zero libc malloc/calloc/realloc/memalign calls: libuv, nghttp2 and
# OpenSSL allocate through mem/. An LD_PRELOAD interposer (malloc_count.c, built here) counts
# the calls; it must have seen some before it was armed, or it was not working.
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
routes:
  - match: {path_prefix: /direct}
    direct_response: {status: 200, body: "direct\n"}
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

load() { # load N URL: h2load must succeed completely
    h2load -n "$1" -c 8 -m 10 "$2" >"$T/h2load.out" 2>&1 || true
    grep -q "$1 succeeded, 0 failed, 0 errored" "$T/h2load.out" ||
        fail "h2load $2: $(grep -E 'requests:' "$T/h2load.out")"
}
snapshot() { # snapshot: ask the interposer for its counts, wait for the file
    rm -f "$MALLOC_COUNT_OUT"
    kill -USR2 "$WEIR_PID"
    wait_for 5 test -s "$MALLOC_COUNT_OUT" || fail "interposer wrote no counts"
}

# Warm-up: thread caches, depots, pools, TLS contexts and upstream connections.
load 5000 "$PLAIN/direct"
load 5000 "$PLAIN/bytes/4096"
load 2000 "$TLS/direct"
load 2000 "$TLS/"

snapshot
total=$(sed -nE 's/^total=([0-9]+).*/\1/p' "$MALLOC_COUNT_OUT")
[ "${total:-0}" -gt 0 ] || fail "the interposer saw no libc allocation at all: it is not working"
pass "interposer active ($total libc allocation calls during start-up and warm-up)"

kill -USR1 "$WEIR_PID" # arm: count from now on
sleep_until_armed() { snapshot; grep -q 'armed=' "$MALLOC_COUNT_OUT"; }
sleep_until_armed
load 4000 "$PLAIN/direct"
load 4000 "$PLAIN/bytes/4096"
load 1000 "$TLS/direct"
load 1000 "$TLS/bytes/1000"
snapshot
armed=$(sed -nE 's/.* armed=([0-9]+).*/\1/p' "$MALLOC_COUNT_OUT")
if [ "${armed:-x}" != 0 ]; then
    echo "--- call sites (addresses in weir's maps):" >&2
    cat "$MALLOC_COUNT_OUT" >&2
    grep -E 'r-xp' "/proc/$WEIR_PID/maps" >&2 || true
    fail "$armed libc allocation calls during 10,000 proxied requests (expected 0)"
fi
pass "10,000 requests after warm-up: 0 libc malloc/calloc/realloc calls"
stop_weir TERM || fail "weir exited $? after SIGTERM"
