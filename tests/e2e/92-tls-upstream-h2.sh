#!/usr/bin/env bash
# 92-tls-upstream-h2: HTTP/2 over TLS to upstreams (issue 16 part 2; cluster `protocol: h2`,
# `--upstream h2://`), with a test PKI made here.
#   - nghttpd (nghttp2-server) serves files of 0 B, 1 B, 16 KiB, 1 MiB and 100 MB: GETs through
#     weir's h2c and TLS listeners match the files' sha256;
#   - node's http2.createSecureServer (tests/e2e/upstream.js --tls-cert): POST /sha256 and the
#     full-duplex POST /echo of the same sizes, checksummed;
#   - h2load runs 400 requests, 8 connections, 10 streams each, through weir: all 200, over
#     at most one upstream connection per worker (multiplexed on the TLS connection);
#   - resumption against nghttpd: 6 reconnects after a 100 ms idle timeout, >= 4 resumed;
#   - --upstream h2:// verifies with the system bundle by default: the test CA is not in it,
#     so the answer is 502 "unable to get local issuer certificate", and nghttpd saw nothing.
source "$(dirname "$0")/lib.sh"
need curl
need openssl
need node
need nghttpd
need h2load

make_test_pki "$T"
mkdir -p "$T/docroot"
SIZES=(0 1 16384 1048576 100000000)
for n in "${SIZES[@]}"; do
    head -c "$n" /dev/urandom >"$T/docroot/f$n"
    sha256sum "$T/docroot/f$n" | cut -d' ' -f1 >"$T/f$n.sha"
done

start_nghttpd() {
    local try
    for try in 1 2 3 4 5; do
        NGH_PORT=$(free_port)
        nghttpd -a 127.0.0.1 -d "$T/docroot" -v "$NGH_PORT" "$T/srv.key" "$T/srv.pem" \
            >"$T/nghttpd.out" 2>&1 &
        NGH_PID=$!
        E2E_PIDS+=("$NGH_PID")
        if wait_for 10 curl -sf --max-time 2 --http2 --cacert "$T/ca.pem" -o /dev/null \
            "https://127.0.0.1:$NGH_PORT/f1"; then
            return 0
        fi
        kill "$NGH_PID" 2>/dev/null || true
        wait "$NGH_PID" 2>/dev/null || true
    done
    fail "nghttpd did not start: $(tail -n 5 "$T/nghttpd.out")"
}
start_nghttpd
start_upstream node --proto h2c --tls-cert "$T/srv.pem" --tls-key "$T/srv.key"

cat >"$T/weir.yaml" <<EOF
listeners:
  - {name: plain, address: 127.0.0.1:0}
  - {name: secure, address: 127.0.0.1:0, tls: {cert: srv.pem, key: srv.key}}
workers: 2
clusters:
  - name: nghttpd
    protocol: h2
    endpoints: ["127.0.0.1:$NGH_PORT"]
    tls: {ca: ca.pem}
  - name: node
    protocol: h2
    endpoints: ["127.0.0.1:$node_PORT"]
    tls: {ca: ca.pem, sni: localhost}
  - name: resume
    protocol: h2
    endpoints: ["127.0.0.1:$NGH_PORT"]
    idle_timeout: 100ms
    tls: {ca: ca.pem}
routes:
  - {match: {authority: node.test}, cluster: node}
  - {match: {authority: resume.test}, cluster: resume}
  - cluster: nghttpd
admin: {address: 127.0.0.1:0}
EOF
start_weir -c "$T/weir.yaml"
[ -n "$WEIR_TLS_PORT" ] || fail "no TLS listener line"

# gets LABEL BASEURL CURL_ARGS...: each file from nghttpd, checksummed.
gets() {
    local label=$1 base=$2; shift 2
    local n code
    for n in "${SIZES[@]}"; do
        code=$(curl -sS --max-time 120 "$@" -o "$T/out" -w '%{http_code}' "$base/f$n") ||
            fail "$label GET /f$n: curl failed"
        [ "$code" = 200 ] || fail "$label GET /f$n: status $code ($(head -c 200 "$T/out"))"
        [ "$(sha256sum "$T/out" | cut -d' ' -f1)" = "$(cat "$T/f$n.sha")" ] ||
            fail "$label GET /f$n: checksum differs"
    done
}
gets "h2c listener -> nghttpd" "http://127.0.0.1:$WEIR_PORT" --http2-prior-knowledge
gets "TLS listener -> nghttpd" "https://127.0.0.1:$WEIR_TLS_PORT" --http2 --cacert "$T/ca.pem"
pass "GET of 0 B, 1 B, 16 KiB, 1 MiB, 100 MB from nghttpd over h2+TLS via h2c and TLS listeners: checksums match"

NODE="http://node.test:$WEIR_PORT"
RES=(--resolve "node.test:$WEIR_PORT:127.0.0.1" --http2-prior-knowledge)
for n in "${SIZES[@]}"; do
    want=$(cat "$T/f$n.sha")
    out=$(curl -sS --max-time 120 "${RES[@]}" -X POST -T "$T/docroot/f$n" "$NODE/sha256") ||
        fail "POST /sha256 $n: curl failed"
    [ "$out" = "$want $n" ] || fail "POST /sha256 $n: upstream got '$out', sent '$want $n'"
    code=$(curl -sS --max-time 120 "${RES[@]}" -X POST -T "$T/docroot/f$n" -D "$T/h" \
        -o "$T/out" -w '%{http_code}' "$NODE/echo") || fail "POST /echo $n: curl failed"
    [ "$code" = 200 ] || fail "POST /echo $n: status $code"
    [ "$(sha256sum "$T/out" | cut -d' ' -f1)" = "$want" ] || fail "POST /echo $n: echo differs"
    [ "$(tr -d '\r' <"$T/h" | awk 'tolower($1) == "x-sha256:" {print $2}' | tail -n 1)" = "$want" ] ||
        fail "POST /echo $n: trailer x-sha256"
done
pass "POST /sha256 and full-duplex /echo of 0 B .. 100 MB to node's h2 over TLS: checksums match"

hs0=$(stat_total upstream_tls_handshakes)
h2load -n 400 -c 8 -m 10 "http://127.0.0.1:$WEIR_PORT/f16384" >"$T/h2load.out" 2>&1 ||
    fail "h2load: $(tail -n 5 "$T/h2load.out")"
grep -q "400 succeeded" "$T/h2load.out" && grep -q "400 2xx" "$T/h2load.out" ||
    fail "h2load: $(grep -E 'requests:|status codes:' "$T/h2load.out")"
hs=$(($(stat_total upstream_tls_handshakes) - hs0))
[ "$hs" -le 2 ] || fail "h2load: $hs new upstream TLS connections; the pooled h2 ones were not shared"
pass "h2load 400 requests, 8 x 10 streams, all 2xx; $hs new upstream TLS handshakes (multiplexed on the pooled ones)"

hs0=$(stat_total upstream_tls_handshakes)
res0=$(stat_total upstream_tls_resumed)
act0=$(stat_total upstream_conn_active)
for i in 1 2 3 4 5 6; do
    code=$(curl -sS --max-time 30 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
        --resolve "resume.test:$WEIR_PORT:127.0.0.1" "http://resume.test:$WEIR_PORT/f16384") ||
        fail "resume.test request $i: curl failed"
    [ "$code" = 200 ] || fail "resume.test request $i: status $code"
    idle_closed() { [ "$(stat_total upstream_conn_active)" = "$act0" ]; }
    wait_for 20 idle_closed || fail "resume.test connection $i did not idle out"
done
hs=$(($(stat_total upstream_tls_handshakes) - hs0))
res=$(($(stat_total upstream_tls_resumed) - res0))
[ "$hs" = 6 ] || fail "resume.test: $hs handshakes for 6 fresh connections"
[ "$res" -ge 4 ] || fail "resume.test: only $res of 6 reconnects resumed (want >= 4 on 2 workers)"
pass "session resumption with nghttpd: 6 reconnects, $res resumed"
stop_weir TERM || fail "weir exited $? after SIGTERM"

# The command line: h2:// verifies against the system bundle, which lacks the test CA.
start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "h2://127.0.0.1:$NGH_PORT"
code=$(curl -sS --max-time 30 --http2-prior-knowledge -o "$T/out" -w '%{http_code}' \
    "http://127.0.0.1:$WEIR_PORT/f1?case=cli") || fail "--upstream h2://: curl failed"
[ "$code" = 502 ] || fail "--upstream h2://: status $code, want 502"
grep -q "upstream TLS certificate verify failed: unable to get local issuer certificate" "$T/out" ||
    fail "--upstream h2://: body '$(cat "$T/out")'"
! grep -q "case=cli" "$T/nghttpd.out" || fail "nghttpd saw the request"
[ "$(stat_total upstream_tls_verify_failed)" = 1 ] || fail "upstream_tls_verify_failed not 1"
pass "--upstream h2:// verifies by default (system bundle): 502 '$(cat "$T/out")'"
stop_weir TERM || fail "weir exited $? after SIGTERM"
