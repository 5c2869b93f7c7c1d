#!/usr/bin/env bash
# 89-h1-chromium: headless Chromium with HTTP/2 disabled (--disable-http2, so its ALPN offers
# only http/1.1) loads a page through weir over TLS (issue 16 part 3). The page's script comes
# from a second URL and writes into the DOM, so the dumped DOM shows that both loads were
# served and the script ran; weir's access log shows both requests with proto=http/1.1 and
# /stats counts them as HTTP/1.1 (requests_http2 stays 0). Control: the same browser without
# the flag uses HTTP/2 (requests_http2 grows), so the flag is what made it HTTP/1.1.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need openssl
need jq
need_chromium
self_signed_cert
cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
    tls: {cert: $T/cert.pem, key: $T/key.pem}
routes:
  - match: {path_prefix: /app.js}
    direct_response:
      status: 200
      content_type: text/javascript
      body: "document.getElementById('out').textContent = 'script ran over ' + 'weir';\n"
  - match: {path_prefix: /favicon.ico}
    direct_response: {status: 204, body: ""}
  - match: {path_prefix: /}
    direct_response:
      status: 200
      content_type: text/html
      body: "<!doctype html><html><head><title>weir h1</title></head><body><p id=out>not yet</p><script src=/app.js></script></body></html>\n"
admin: {address: "127.0.0.1:0"}
workers: 1
YAML
start_weir -c "$T/weir.yaml" --access-log "$T/access.log"
[ -n "$WEIR_TLS_PORT" ] || fail "no TLS listener"

run_chrome() { chromium_dump "$1" "https://127.0.0.1:$WEIR_TLS_PORT/" "${@:2}"; }

run_chrome h1 --disable-http2 >"$T/dom-h1.html" || fail "chromium failed: $(tail -n 5 "$T/chrome-h1.err")"
grep -q '<p id="out">script ran over weir</p>' "$T/dom-h1.html" ||
    fail "the page's script did not run: $(head -c 400 "$T/dom-h1.html")"
h1=$(stat_of requests_http1)
h2=$(stat_of requests_http2)
[ "$h1" -ge 2 ] && [ "$h2" = 0 ] || fail "requests_http1 $h1, requests_http2 $h2 (want >= 2 and 0)"
pass "Chromium --disable-http2 loaded the page and its script over TLS (requests_http1 $h1, requests_http2 $h2)"

run_chrome h2 >"$T/dom-h2.html" || fail "chromium (control) failed: $(tail -n 5 "$T/chrome-h2.err")"
grep -q '<p id="out">script ran over weir</p>' "$T/dom-h2.html" || fail "control: script did not run"
h2b=$(stat_of requests_http2)
[ "$h2b" -ge 2 ] || fail "control: Chromium without the flag made $h2b HTTP/2 requests"
pass "control: without --disable-http2 Chromium used HTTP/2 (requests_http2 $h2b)"

stop_weir TERM || fail "weir exited $? after SIGTERM"
grep -qE '"GET 127\.0\.0\.1:[0-9]+ /app\.js" 200 [0-9]+ [0-9.]+ms upstream=direct proto=http/1\.1$' "$T/access.log" ||
    fail "no HTTP/1.1 access-log line for /app.js: $(cat "$T/access.log")"
pass "access log: $(grep -c 'proto=http/1.1$' "$T/access.log") lines with proto=http/1.1, $(grep -c 'proto=h2$' "$T/access.log") with proto=h2"
