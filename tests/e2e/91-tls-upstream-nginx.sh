#!/usr/bin/env bash
# 91-tls-upstream-nginx: HTTP/1.1 over TLS to Debian's nginx (issue 16 part 2), with a test PKI
# made here. nginx terminates TLS (one server block plain, one that requires a client
# certificate: ssl_verify_client on) and proxies to tests/e2e/upstream.js, which checksums.
#   - GET /bytes/N and POST /sha256 of 0 B, 1 B, 16 KiB, 1 MiB and 100 MB, checksummed end to
#     end, through weir's h2c and TLS listeners; the pooled upstream connections are reused
#     (upstream_tls_handshakes stays at most one per worker for the 20 requests);
#   - session resumption: a cluster whose pooled connections idle out after 100 ms reconnects
#     6 times; every reconnect after a worker's first resumes (upstream_tls_resumed);
#   - a CA that did not sign nginx's certificate, and an SNI that does not match it: 502 with
#     the reason in the body and the log, upstream_tls_verify_failed counted, and nginx saw
#     no request;
#   - verify: false accepts what the CA cannot verify; an h2 cluster to nginx without h2 gets
#     a no_application_protocol alert: 502 with that reason, upstream_tls_failed counted;
#   - a 16 KiB stream buffer: 43 response sizes, none stalls with plaintext left in the SSL;
#   - mutual TLS: with the client certificate nginx serves (checksummed), without it nginx
#     answers 400 "No required SSL certificate was sent";
#   - --check-config names the cluster and the file when tls.ca is not a certificate.
source "$(dirname "$0")/lib.sh"
need curl
need openssl
need node
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || skip "nginx is not installed (Debian: apt-get install nginx)"

make_test_pki "$T"
start_upstream back --proto http1

# nginx cannot report a port the kernel chose: take free ones, and retry if another process
# took one meanwhile.
start_nginx() {
    local try user=""
    [ "$(id -u)" = 0 ] && user="user root;" # workers must read $T (mode 700)
    mkdir -p "$T/nginx"
    for try in 1 2 3 4 5; do
        NGX_PORT=$(free_port)
        NGX_MTLS_PORT=$(free_port)
        cat >"$T/nginx.conf" <<EOF
$user
daemon off;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log info;
events { worker_connections 512; }
http {
    access_log $T/nginx/access.log;
    client_body_temp_path $T/nginx/cbt;
    proxy_temp_path $T/nginx/pt;
    fastcgi_temp_path $T/nginx/ft;
    uwsgi_temp_path $T/nginx/ut;
    scgi_temp_path $T/nginx/st;
    client_max_body_size 0;
    ssl_certificate $T/srv.pem;
    ssl_certificate_key $T/srv.key;
    ssl_session_cache shared:weir:1m;
    proxy_http_version 1.1;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_set_header Connection "";
    upstream back { server 127.0.0.1:$back_PORT; keepalive 8; }
    server {
        listen 127.0.0.1:$NGX_PORT ssl;
        location / { proxy_pass http://back; }
    }
    server {
        listen 127.0.0.1:$NGX_MTLS_PORT ssl;
        ssl_verify_client on;
        ssl_client_certificate $T/ca.pem;
        location / { proxy_pass http://back; }
    }
}
EOF
        "$NGINX" -c "$T/nginx.conf" -p "$T/nginx" >"$T/nginx/out" 2>&1 &
        NGX_PID=$!
        E2E_PIDS+=("$NGX_PID")
        if wait_for 10 curl -sf --max-time 2 --cacert "$T/ca.pem" -o /dev/null \
            "https://127.0.0.1:$NGX_PORT/"; then
            return 0
        fi
        kill "$NGX_PID" 2>/dev/null || true
        wait "$NGX_PID" 2>/dev/null || true
    done
    fail "nginx did not start: $(tail -n 5 "$T/nginx/out" "$T/nginx/error.log" 2>/dev/null)"
}
start_nginx
pass "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') serves TLS on $NGX_PORT and mutual TLS on $NGX_MTLS_PORT"

cat >"$T/weir.yaml" <<EOF
listeners:
  - {name: plain, address: 127.0.0.1:0}
  - {name: secure, address: 127.0.0.1:0, tls: {cert: srv.pem, key: srv.key}}
workers: 2
clusters:
  - name: good
    protocol: http1
    endpoints: ["127.0.0.1:$NGX_PORT"]
    tls: {ca: ca.pem}
  - name: resume
    protocol: http1
    endpoints: ["127.0.0.1:$NGX_PORT"]
    idle_timeout: 100ms
    tls: {ca: ca.pem, sni: localhost}
  - name: wrongca
    protocol: http1
    endpoints: ["127.0.0.1:$NGX_PORT"]
    tls: {ca: otherca.pem}
  - name: wrongname
    protocol: http1
    endpoints: ["127.0.0.1:$NGX_PORT"]
    tls: {ca: ca.pem, sni: wrong.example}
  - name: mtls
    protocol: http1
    endpoints: ["127.0.0.1:$NGX_MTLS_PORT"]
    tls: {ca: ca.pem, cert: cli.pem, key: cli.key}
  - name: nocert
    protocol: http1
    endpoints: ["127.0.0.1:$NGX_MTLS_PORT"]
    tls: {ca: ca.pem}
  - name: noverify
    protocol: http1
    endpoints: ["127.0.0.1:$NGX_PORT"]
    tls: {ca: otherca.pem, verify: false}
  - name: noh2
    protocol: h2
    endpoints: ["127.0.0.1:$NGX_PORT"]
    tls: {ca: ca.pem}
routes:
  - {match: {authority: resume.test}, cluster: resume}
  - {match: {authority: wrongca.test}, cluster: wrongca}
  - {match: {authority: wrongname.test}, cluster: wrongname}
  - {match: {authority: mtls.test}, cluster: mtls}
  - {match: {authority: nocert.test}, cluster: nocert}
  - {match: {authority: noverify.test}, cluster: noverify}
  - {match: {authority: noh2.test}, cluster: noh2}
  - cluster: good
admin: {address: 127.0.0.1:0}
EOF
"$WEIR_BIN" --check-config "$T/weir.yaml" >"$T/check.out" 2>&1 ||
    fail "--check-config: $(cat "$T/check.out")"
start_weir -c "$T/weir.yaml"
[ -n "$WEIR_TLS_PORT" ] || fail "no TLS listener line"
H2C="http://127.0.0.1:$WEIR_PORT"
TLS="https://127.0.0.1:$WEIR_TLS_PORT"

SIZES=(0 1 16384 1048576 100000000)
for n in "${SIZES[@]}"; do
    head -c "$n" /dev/urandom >"$T/in.$n"
    sha256sum "$T/in.$n" | cut -d' ' -f1 >"$T/in.$n.sha"
done
hdr() { tr -d '\r' <"$1" | awk -v k="$2" 'tolower($1) == k":" {print $2}' | tail -n 1; }

# bodies LABEL BASEURL CURL_ARGS...: GET /bytes/N and POST /sha256 for each size, checksummed.
bodies() {
    local label=$1 base=$2; shift 2
    local n code got want
    for n in "${SIZES[@]}"; do
        code=$(curl -sS --max-time 120 "$@" -D "$T/h" -o "$T/out" -w '%{http_code}' \
            "$base/bytes/$n") || fail "$label GET /bytes/$n: curl failed"
        [ "$code" = 200 ] || fail "$label GET /bytes/$n: status $code ($(head -c 200 "$T/out"))"
        got=$(sha256sum "$T/out" | cut -d' ' -f1)
        want=$(hdr "$T/h" x-sha256)
        [ -n "$want" ] && [ "$got" = "$want" ] ||
            fail "$label GET /bytes/$n: sha256 $got, upstream says '$want'"
        [ "$(stat -c %s "$T/out")" = "$n" ] || fail "$label GET /bytes/$n: wrong length"
        want=$(cat "$T/in.$n.sha")
        code=$(curl -sS --max-time 120 "$@" -X POST -T "$T/in.$n" -o "$T/out" \
            -w '%{http_code}' "$base/sha256") || fail "$label POST /sha256 $n: curl failed"
        [ "$code" = 200 ] || fail "$label POST /sha256 $n: status $code"
        [ "$(cat "$T/out")" = "$want $n" ] ||
            fail "$label POST /sha256 $n: upstream got '$(cat "$T/out")', sent '$want $n'"
    done
}

bodies "h2c listener -> nginx TLS" "$H2C" --http2-prior-knowledge
bodies "TLS listener -> nginx TLS" "$TLS" --http2 --cacert "$T/ca.pem"
hs=$(stat_total upstream_tls_handshakes)
req=$(stat_total upstream_requests)
[ "$req" = 20 ] || fail "upstream_requests $req, want 20"
[ "$hs" -ge 1 ] && [ "$hs" -le 2 ] ||
    fail "$hs TLS handshakes to nginx for 20 sequential requests on 2 workers: pooled connections were not reused"
pass "GET and POST of 0 B, 1 B, 16 KiB, 1 MiB, 100 MB via h2c and TLS listeners to nginx over TLS: checksums match; 20 requests, $hs TLS handshakes (pooled connections reused)"

# A slow reader: weir's HTTP/1.1 flow control stops taking plaintext out of the SSL while the
# client's window is full, and must resume it (what waits in the SSL gets no new socket read).
code=$(curl -sS --max-time 60 --http2-prior-knowledge --limit-rate 2M -D "$T/h" -o "$T/out" \
    -w '%{http_code}' "$H2C/bytes/8000000") || fail "slow reader: curl failed"
[ "$code" = 200 ] && [ "$(sha256sum "$T/out" | cut -d' ' -f1)" = "$(hdr "$T/h" x-sha256)" ] ||
    fail "slow reader: status $code or checksum"
pass "a client reading at 2 MB/s gets 8 MB from nginx over TLS intact (flow control through the SSL)"

# Resumption: each request on resume.test opens a connection that idles out after 100 ms.
hs0=$(stat_total upstream_tls_handshakes)
res0=$(stat_total upstream_tls_resumed)
act0=$(stat_total upstream_conn_active)
for i in 1 2 3 4 5 6; do
    code=$(curl -sS --max-time 30 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
        --resolve "resume.test:$WEIR_PORT:127.0.0.1" "http://resume.test:$WEIR_PORT/bytes/100") ||
        fail "resume.test request $i: curl failed"
    [ "$code" = 200 ] || fail "resume.test request $i: status $code"
    idle_closed() { [ "$(stat_total upstream_conn_active)" = "$act0" ]; }
    wait_for 20 idle_closed || fail "resume.test connection $i did not idle out"
done
hs=$(($(stat_total upstream_tls_handshakes) - hs0))
res=$(($(stat_total upstream_tls_resumed) - res0))
[ "$hs" = 6 ] || fail "resume.test: $hs handshakes for 6 fresh connections"
# Each worker's first connection is a full handshake; every later one offers the session.
[ "$res" -ge 4 ] || fail "resume.test: only $res of 6 reconnects resumed (want >= 4 on 2 workers)"
pass "session resumption: 6 reconnects after the pool's idle timeout, $res resumed (upstream_tls_resumed)"

# A certificate that does not verify: 502 with the reason; nginx never sees the request.
verify_case() { # HOST PATH WANT_REASON
    local host=$1 path=$2 want=$3 code
    code=$(curl -sS --max-time 30 --http2-prior-knowledge -o "$T/out" -w '%{http_code}' \
        --resolve "$host:$WEIR_PORT:127.0.0.1" "http://$host:$WEIR_PORT$path") ||
        fail "$host: curl failed"
    [ "$code" = 502 ] || fail "$host: status $code, want 502"
    grep -qF "$want" "$T/out" || fail "$host: body '$(cat "$T/out")' lacks '$want'"
    grep -qF "$want" "$T/weir.log" || fail "$host: the log lacks '$want'"
    ! grep -qF "$path" "$T/nginx/access.log" || fail "$host: nginx saw $path"
}
vf0=$(stat_total upstream_tls_verify_failed)
verify_case wrongca.test /bytes/7?case=wrongca \
    "upstream TLS certificate verify failed: unable to get local issuer certificate"
verify_case wrongname.test /bytes/7?case=wrongname \
    "upstream TLS certificate verify failed: hostname mismatch"
vf=$(($(stat_total upstream_tls_verify_failed) - vf0))
[ "$vf" = 2 ] || fail "upstream_tls_verify_failed went up by $vf, want 2"
admin_get /metrics >"$T/metrics"
grep -q '^weir_upstream_errors_total{kind="tls_verify"} 2$' "$T/metrics" ||
    fail "/metrics: $(grep weir_upstream_errors_total "$T/metrics")"
pass "wrong CA and wrong SNI: 502 with the reason in body and log, nothing reached nginx, counted in /stats and /metrics"

# verify: false accepts the certificate that otherca.pem cannot verify.
code=$(curl -sS --max-time 30 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
    --resolve "noverify.test:$WEIR_PORT:127.0.0.1" "http://noverify.test:$WEIR_PORT/bytes/10") ||
    fail "noverify.test: curl failed"
[ "$code" = 200 ] || fail "noverify.test: status $code, want 200 (verify: false)"
# An h2 cluster whose upstream does not select h2 (nginx 1.22 without http2 on that server).
tf0=$(stat_total upstream_tls_failed)
code=$(curl -sS --max-time 30 --http2-prior-knowledge -o "$T/out" -w '%{http_code}' \
    --resolve "noh2.test:$WEIR_PORT:127.0.0.1" "http://noh2.test:$WEIR_PORT/bytes/7?case=noh2") ||
    fail "noh2.test: curl failed"
# nginx answers an ALPN list without a protocol it serves with a no_application_protocol alert.
[ "$code" = 502 ] && grep -q "upstream TLS handshake failed: no application protocol" "$T/out" ||
    fail "noh2.test: status $code, body '$(cat "$T/out")'"
grep -q "upstream noh2 127.0.0.1:$NGX_PORT: .*alert no application protocol" "$T/weir.log" ||
    fail "noh2.test: the log lacks the alert"
[ "$(($(stat_total upstream_tls_failed) - tf0))" = 1 ] || fail "noh2.test: upstream_tls_failed"
! grep -qF "case=noh2" "$T/nginx/access.log" || fail "noh2.test: nginx saw the request"
pass "verify: false accepts an unverifiable certificate; an h2 cluster to an upstream without h2 -> 502 '$(head -c 60 "$T/out")...', alert logged, upstream_tls_failed counted"

# Mutual TLS: nginx requires a client certificate from ca.pem.
code=$(curl -sS --max-time 60 --http2-prior-knowledge -D "$T/h" -o "$T/out" -w '%{http_code}' \
    --resolve "mtls.test:$WEIR_PORT:127.0.0.1" "http://mtls.test:$WEIR_PORT/bytes/1048576") ||
    fail "mtls.test: curl failed"
[ "$code" = 200 ] || fail "mtls.test: status $code ($(head -c 200 "$T/out"))"
[ "$(sha256sum "$T/out" | cut -d' ' -f1)" = "$(hdr "$T/h" x-sha256)" ] || fail "mtls.test: checksum"
want=$(cat "$T/in.1048576.sha")
out=$(curl -sS --max-time 60 --http2-prior-knowledge -T "$T/in.1048576" \
    --resolve "mtls.test:$WEIR_PORT:127.0.0.1" "http://mtls.test:$WEIR_PORT/sha256") ||
    fail "mtls.test POST: curl failed"
[ "$out" = "$want 1048576" ] || fail "mtls.test POST: upstream got '$out'"
code=$(curl -sS --max-time 30 --http2-prior-knowledge -o "$T/out" -w '%{http_code}' \
    --resolve "nocert.test:$WEIR_PORT:127.0.0.1" "http://nocert.test:$WEIR_PORT/bytes/10") ||
    fail "nocert.test: curl failed"
[ "$code" = 400 ] && grep -q "No required SSL certificate was sent" "$T/out" ||
    fail "nocert.test: status $code, want nginx's 400 for a missing client certificate"
pass "mutual TLS: with weir's client certificate 1 MiB GET and POST checksums match; without it nginx answers 400"

stop_weir TERM || fail "weir exited $? after SIGTERM"

# HTTP/1.1 flow control over TLS with a small stream buffer (16 KiB): the reader's room runs
# out in the middle of a TLS record, so plaintext waits in the SSL with no socket read to
# come once the response has all arrived; freeing room must read it (43 sizes from 16,000 to
# 79,000 bytes; without that wake-up 42 of them stalled).
cat >"$T/small.yaml" <<EOF
listeners: [{name: plain, address: 127.0.0.1:0}]
admin: {address: 127.0.0.1:0}
limits: {stream_buffer: 16KiB}
clusters:
  - {name: good, protocol: http1, endpoints: ["127.0.0.1:$NGX_PORT"], tls: {ca: ca.pem}}
routes: [{cluster: good}]
EOF
start_weir -c "$T/small.yaml"
for n in $(seq 16000 1500 80000); do
    code=$(curl -sS --max-time 15 --http2-prior-knowledge --limit-rate 50K -D "$T/h" \
        -o "$T/out" -w '%{http_code}' "http://127.0.0.1:$WEIR_PORT/bytes/$n") ||
        fail "stream_buffer 16 KiB: GET /bytes/$n stalled or failed"
    [ "$code" = 200 ] && [ "$(stat -c %s "$T/out")" = "$n" ] &&
        [ "$(sha256sum "$T/out" | cut -d' ' -f1)" = "$(hdr "$T/h" x-sha256)" ] ||
        fail "stream_buffer 16 KiB: GET /bytes/$n: status $code or body"
done
pass "stream_buffer 16 KiB: 43 responses of 16,000 to 79,000 bytes through nginx over TLS, none stalled, checksums match"
stop_weir TERM || fail "weir exited $? after SIGTERM"

# --check-config: a tls.ca that is no certificate, and a client key that is not the
# certificate's, are refused with file, line, column and field.
printf 'not a certificate\n' >"$T/bad.pem"
sed "s|ca: otherca.pem|ca: bad.pem|" "$T/weir.yaml" >"$T/bad.yaml"
line=$(grep -n "ca: bad.pem" "$T/bad.yaml" | cut -d: -f1)
if "$WEIR_BIN" --check-config "$T/bad.yaml" >"$T/check.out" 2>&1; then
    fail "--check-config accepted a tls.ca that is no certificate"
fi
grep -qE "bad.yaml:$line:[0-9]+: clusters\[2\]\.tls\.ca: '$T/bad.pem' holds no PEM certificate" \
    "$T/check.out" || fail "--check-config said: $(cat "$T/check.out")"
pass "--check-config: $(head -n 1 "$T/check.out")"
sed "s|cert: cli.pem, key: cli.key|cert: cli.pem, key: srv.key|" "$T/weir.yaml" >"$T/bad2.yaml"
line=$(grep -n "key: srv.key}" "$T/bad2.yaml" | cut -d: -f1)
if "$WEIR_BIN" --check-config "$T/bad2.yaml" >"$T/check.out" 2>&1; then
    fail "--check-config accepted a client key that does not match the certificate"
fi
grep -qE "bad2.yaml:$line:[0-9]+: clusters\[4\]\.tls\.key: key '$T/srv.key' does not match cert '$T/cli.pem'" \
    "$T/check.out" || fail "--check-config said: $(cat "$T/check.out")"
pass "--check-config: $(head -n 1 "$T/check.out")"
