#!/usr/bin/env bash
# 12-no-nghttp2-session: weir speaks HTTP/2 on its own codec only (issue 15). The binary's
# dynamic symbol table (nm -D) imports nghttp2's HPACK (nghttp2_hd_*) and header checks
# (nghttp2_check_*), and no nghttp2_session_* (nor the nghttp2_submit_* that drive a session).
# The HPACK import must be there, or the check proves nothing (an nm that lists nothing, a
# statically linked nghttp2). Then the binary serves HTTP/2 in both roles: h2c and TLS clients
# through an h2c upstream, each answered with the upstream's sha256 of the bytes sent.
source "$(dirname "$0")/lib.sh"
need nm
need curl
need node
need openssl

nm -D "$WEIR_BIN" >"$T/nm.txt" 2>&1 || fail "nm -D $WEIR_BIN failed: $(head -n 3 "$T/nm.txt")"
hd=$(grep -cE ' U nghttp2_hd_(inflate|deflate)_' "$T/nm.txt" || true)
[ "$hd" -ge 4 ] || fail "nm -D lists $hd nghttp2_hd_* imports (want >= 4): the check would prove nothing"
session=$(grep -E ' U nghttp2_(session|submit)_' "$T/nm.txt" | awk '{print $2}' | sort -u || true)
[ -z "$session" ] ||
    fail "weir imports $(echo "$session" | wc -l) nghttp2 session symbols: $(echo "$session" | head -n 8 | tr '\n' ' ')"
pass "nm -D: $hd nghttp2_hd_* imports, no nghttp2_session_* or nghttp2_submit_* ($(grep -c ' U nghttp2_' "$T/nm.txt") nghttp2 imports: $(grep ' U nghttp2_' "$T/nm.txt" | awk '{print $2}' | sed 's/^nghttp2_//' | tr '\n' ' '))"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || fail "openssl req failed"
start_upstream up --proto h2c
cat >"$T/weir.yaml" <<YEOF
listeners:
  - {address: 127.0.0.1:0}
  - {address: 127.0.0.1:0, tls: {cert: $T/cert.pem, key: $T/key.pem}}
admin: {address: 127.0.0.1:0}
clusters:
  - {name: up, protocol: h2c, endpoints: ["127.0.0.1:$up_PORT"]}
routes:
  - {match: {path_prefix: /}, cluster: up}
YEOF
start_weir -c "$T/weir.yaml"
head -c 300000 /dev/urandom >"$T/body.bin"
want=$(sha256sum "$T/body.bin" | awk '{print $1}')
for url in "http://127.0.0.1:$WEIR_PORT/sha256" "https://127.0.0.1:$WEIR_TLS_PORT/sha256"; do
    curl -sS --max-time 30 --http2-prior-knowledge -k --data-binary "@$T/body.bin" \
        -D "$T/h.txt" -o /dev/null "$url" 2>"$T/curl.err" || fail "POST $url failed: $(cat "$T/curl.err")"
    grep -q '^HTTP/2 200' "$T/h.txt" || fail "POST $url: $(head -n 1 "$T/h.txt")"
    got=$(awk 'tolower($1)=="x-sha256:" {print $2}' "$T/h.txt" | tr -d '\r')
    [ "$got" = "$want" ] || fail "POST $url: sha256 $got, want $want"
done
pass "HTTP/2 both ways on the codec: 300,000-byte POSTs over h2c and TLS through an h2c upstream, sha256 intact"
stop_weir TERM || fail "weir exited $? after SIGTERM"
