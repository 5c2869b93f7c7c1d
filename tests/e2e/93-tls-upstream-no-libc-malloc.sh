#!/usr/bin/env bash
# 93-tls-upstream-no-libc-malloc: 08's check on the TLS upstream path (issue 16 part 2:
# "OpenSSL allocates through mem/ on this path too"). From the first request on, proxying to
# an h2-over-TLS and an HTTP/1.1-over-TLS upstream (tests/e2e/upstream.js --tls-cert) makes
# zero libc malloc/calloc/realloc/memalign calls: client handshakes with certificate
# verification, resumed handshakes (the pools idle out after 200 ms between rounds), and the
# reconnects after both upstreams restart. The interposer (malloc_count.c) must have counted
# start-up calls, or it was not working; the handshake and resumption counters must have moved
# after arming, or the path was not exercised.
source "$(dirname "$0")/lib.sh"
need cc
need h2load
need node
need openssl
ldd "$WEIR_BIN" >"$T/ldd.txt" 2>&1 || true
if grep -qE "lib(a|t|ub)san" "$T/ldd.txt"; then
    skip "weir is built with a sanitizer runtime; the interposer cannot count under it"
fi
cc -shared -fPIC -O2 "$E2E_DIR/malloc_count.c" -o "$T/malloc_count.so" -ldl ||
    fail "cannot build the interposer"
make_test_pki "$T"

start_upstream up2 --proto h2c --tls-cert "$T/srv.pem" --tls-key "$T/srv.key"
start_upstream up1 --proto http1 --tls-cert "$T/srv.pem" --tls-key "$T/srv.key"
cat >"$T/weir.yaml" <<YEOF
listeners:
  - {name: plain, address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
clusters:
  - name: h2tls
    protocol: h2
    endpoints: [127.0.0.1:$up2_PORT]
    idle_timeout: 200ms
    tls: {ca: $T/ca.pem}
  - name: h1tls
    protocol: http1
    endpoints: [127.0.0.1:$up1_PORT]
    idle_timeout: 200ms
    tls: {ca: $T/ca.pem, sni: localhost}
routes:
  - match: {authority: h1.test}
    cluster: h1tls
  - cluster: h2tls
YEOF

export MALLOC_COUNT_OUT="$T/count.txt"
export LD_PRELOAD="$T/malloc_count.so"
start_weir -c "$T/weir.yaml"
unset LD_PRELOAD
PLAIN="http://127.0.0.1:$WEIR_PORT"

load() { # load N URL [h2load args]: h2load must succeed completely
    local n=$1 url=$2
    shift 2
    h2load -n "$n" -c 8 -m 10 "$@" "$url" >"$T/h2load.out" 2>&1 || true
    grep -q "$n succeeded, 0 failed, 0 errored" "$T/h2load.out" ||
        fail "h2load $url $*: $(grep -E 'requests:' "$T/h2load.out")"
}
snapshot() {
    rm -f "$MALLOC_COUNT_OUT"
    kill -USR2 "$WEIR_PID"
    wait_for 5 test -s "$MALLOC_COUNT_OUT" || fail "interposer wrote no counts"
}
snapshot
total=$(sed -nE 's/^total=([0-9]+).*/\1/p' "$MALLOC_COUNT_OUT")
[ "${total:-0}" -gt 0 ] || fail "the interposer saw no libc allocation at all: it is not working"
pass "interposer active ($total libc allocation calls during start-up)"

kill -USR1 "$WEIR_PID" # arm before the first request
armed_yet() { snapshot; grep -q 'armed=' "$MALLOC_COUNT_OUT"; }
wait_for 5 armed_yet || fail "interposer did not arm"
idle_out() { [ "$(stat_total upstream_conn_active)" = 0 ]; }
round() {
    load 2000 "$PLAIN/bytes/4096"
    load 1000 "$PLAIN/bytes/4096" -H ':authority: h1.test'
    curl -sS --max-time 60 --http2-prior-knowledge -X POST -T "$T/srv.pem" -o /dev/null \
        "$PLAIN/sha256" || fail "POST over h2+TLS"
    wait_for 20 idle_out || fail "pooled connections did not idle out"
}
round
round
# Both upstreams restart on the same ports (same certificate, new session keys): resumption
# fails over to full handshakes, and new sessions are stored.
kill "$up2_PID" "$up1_PID"
wait "$up2_PID" "$up1_PID" 2>/dev/null || true
start_upstream up2 --proto h2c --tls-cert "$T/srv.pem" --tls-key "$T/srv.key" --port "$up2_PORT"
start_upstream up1 --proto http1 --tls-cert "$T/srv.pem" --tls-key "$T/srv.key" --port "$up1_PORT"
round
round
hs=$(stat_total upstream_tls_handshakes)
res=$(stat_total upstream_tls_resumed)
[ "$hs" -ge 8 ] || fail "only $hs upstream TLS handshakes: the TLS path was not exercised"
[ "$res" -ge 1 ] || fail "no resumed upstream TLS handshake"
snapshot
armed=$(sed -nE 's/.* armed=([0-9]+).*/\1/p' "$MALLOC_COUNT_OUT")
if [ "${armed:-x}" != 0 ]; then
    echo "--- call sites (addresses in weir's maps):" >&2
    cat "$MALLOC_COUNT_OUT" >&2
    grep -E 'r-xp' "/proc/$WEIR_PID/maps" >&2 || true
    fail "$armed libc allocation calls from the first request on (expected 0)"
fi
pass "12,000 requests over h2+TLS and HTTP/1.1+TLS upstreams, $hs client handshakes ($res resumed), an upstream restart: 0 libc malloc/calloc/realloc calls"
stop_weir TERM || fail "weir exited $? after SIGTERM"
