#!/usr/bin/env bash
# 55-chromium-h2-proxy: a real browser through weir over HTTP/2 (issue 15 part 4): headless
# Chromium loads a page over TLS (ALPN h2, served by weir itself) whose inline script fetches 1 MiB from an h2c upstream
# (node upstream.js) and posts it to an HTTP/1.1 upstream (a second upstream.js), both through
# weir; in the browser the script checks the download's sha256 (crypto.subtle) against the
# upstream's x-sha256 header and the upload's digest as the HTTP/1.1 upstream computed it, and
# reads each load's protocol (Resource Timing's nextHopProtocol) into the DOM. The dumped DOM
# must show both digests matching and "h2" for every load; weir's /stats counts the loads as
# HTTP/2 (requests_http1 stays 0) and its access log names both clusters with proto=h2.
# (e2e 89 is the HTTP/1.1 counterpart, served by weir's direct responses alone.)
source "$(dirname "$0")/lib.sh"
need openssl
need jq
need node
need_chromium
self_signed_cert
start_upstream h2up --proto h2c
start_upstream h1up --proto http1
cat >"$T/page.html" <<'HTML'
<!doctype html><html><head><title>weir h2</title></head><body><p id=out>not yet</p><script>
const out = document.getElementById('out');
const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');
(async () => {
    try {
        const r = await fetch('/bytes/1048576');
        const body = await r.arrayBuffer();
        const got = hex(await crypto.subtle.digest('SHA-256', body));
        const want = r.headers.get('x-sha256');
        const p = await fetch('/sha256', { method: 'POST', body });
        const posted = (await p.text()).split(' ')[0];
        const protos = performance.getEntriesByType('navigation').concat(
            performance.getEntriesByType('resource')).map((e) => e.nextHopProtocol);
        out.textContent = 'get ' + (got === want ? 'ok' : 'BAD') + ' ' + body.byteLength +
            ' ' + got + ' post ' + (posted === got ? 'ok' : 'BAD ' + posted) +
            ' protos ' + protos.join(',');
    } catch (e) {
        out.textContent = 'error ' + e;
    }
})();
</script></body></html>
HTML
cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
    tls: {cert: $T/cert.pem, key: $T/key.pem}
clusters:
  - {name: h2up, protocol: h2c, endpoints: ["127.0.0.1:$h2up_PORT"]}
  - {name: h1up, protocol: http1, endpoints: ["127.0.0.1:$h1up_PORT"]}
routes:
  - match: {path_prefix: /bytes/}
    cluster: h2up
  - match: {path_prefix: /sha256}
    cluster: h1up
  - match: {path_prefix: /}
    direct_response: {status: 200, content_type: text/html, body: $(jq -Rs . <"$T/page.html")}
admin: {address: "127.0.0.1:0"}
workers: 2
YAML
start_weir -c "$T/weir.yaml" --access-log "$T/access.log"
[ -n "$WEIR_TLS_PORT" ] || fail "no TLS listener"

# --virtual-time-budget: the DOM is dumped once the page's fetches have settled.
chromium_dump h2 "https://127.0.0.1:$WEIR_TLS_PORT/" --virtual-time-budget=30000 >"$T/dom.html" ||
    fail "chromium failed: $(tail -n 5 "$T/chrome-h2.err")"
line=$(sed -nE 's/.*<p id="out">([^<]*)<\/p>.*/\1/p' "$T/dom.html")
echo "page says: $line"
[[ "$line" =~ ^get\ ok\ 1048576\ ([0-9a-f]{64})\ post\ ok\ protos\ (.*)$ ]] ||
    fail "the page's fetches did not check out: '$line'"
digest=${BASH_REMATCH[1]}
protos=${BASH_REMATCH[2]}
pass "Chromium: 1 MiB from the h2c upstream, sha256 $digest matches x-sha256; posted back to the HTTP/1.1 upstream, same digest"
[ "$(echo "$protos" | tr ',' '\n' | sort -u)" = h2 ] ||
    fail "not every load was HTTP/2: nextHopProtocol $protos"
pass "every load over HTTP/2 (nextHopProtocol: $protos)"
h1=$(stat_of requests_http1)
h2=$(stat_of requests_http2)
[ "$h2" -ge 3 ] && [ "$h1" = 0 ] || fail "requests_http2 $h2, requests_http1 $h1 (want >= 3 and 0)"
pass "/stats: requests_http2 $h2, requests_http1 $h1"

stop_weir TERM || fail "weir exited $? after SIGTERM"
grep -qE '"GET 127\.0\.0\.1:[0-9]+ /bytes/1048576" 200 [0-9]+ [0-9.]+ms upstream=h2up proto=h2$' "$T/access.log" ||
    fail "no h2 access-log line for the download via h2up: $(cat "$T/access.log")"
grep -qE '"POST 127\.0\.0\.1:[0-9]+ /sha256" 200 [0-9]+ [0-9.]+ms upstream=h1up proto=h2$' "$T/access.log" ||
    fail "no h2 access-log line for the upload via h1up: $(cat "$T/access.log")"
pass "access log: the download via h2up and the upload via h1up, both proto=h2"
