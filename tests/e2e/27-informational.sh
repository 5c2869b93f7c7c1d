#!/usr/bin/env bash
# 27-informational: informational (1xx) responses from the upstream reach the client as
# their own HEADERS frames before the final response, for an h2c and an HTTP/1.1 upstream:
#   - two 103 Early Hints arrive in order with their link headers, then the 200 and its body;
#   - an upstream that sends 20 of them gets 8 through (PX_UPSTREAM_INFO_MAX), then the 200;
#   - a 100 Continue precedes the answer to a POST whose body arrives intact;
#   - /stats counts the forwarded ones in responses_1xx.
source "$(dirname "$0")/lib.sh"
need node
need curl

cat >"$T/info.js" <<'EOF2'
// node info.js URL METHOD PATH WANT_1XX_STATUS WANT_1XX_COUNT WANT_BODY [REQUEST_BODY]
const http2 = require('http2');
const [url, method, path, infoStatus, infoCount, wantBody, reqBody] = process.argv.slice(2);
const s = http2.connect(url);
s.on('error', (e) => { console.error('session error', e.message); process.exit(1); });
const req = s.request({ ':method': method, ':path': path });
const infos = [];
let head = null, body = '';
req.on('headers', (h) => infos.push(h));          // informational (1xx) heads
req.on('response', (h) => { head = h; });
req.setEncoding('utf8');
req.on('data', (d) => { body += d; });
req.on('end', () => {
    s.close();
    const errs = [];
    if (infos.length !== Number(infoCount))
        errs.push(`${infos.length} informational heads, want ${infoCount}`);
    infos.forEach((h, i) => {
        if (String(h[':status']) !== infoStatus) errs.push(`head ${i}: status ${h[':status']}`);
        if (infoStatus === '103' && h.link !== `</hint-${i + 1}.css>; rel=preload; as=style`)
            errs.push(`head ${i}: link ${JSON.stringify(h.link)}`);
    });
    if (!head || head[':status'] !== 200) errs.push(`final status ${head && head[':status']}`);
    if (body !== wantBody.replace(/\\n/g, '\n')) errs.push(`body ${JSON.stringify(body)}`);
    if (errs.length) { console.error(errs.join('; ')); process.exit(1); }
    console.log('ok', infos.length);
});
req.on('error', (e) => { console.error('stream error', e.message); process.exit(1); });
req.end(reqBody || undefined);
setTimeout(() => { console.error('timeout'); process.exit(1); }, 10000).unref();
EOF2

stat_1xx() { admin_get /stats | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["responses_1xx"])'; }

run_checks() {
    local label=$1 u="http://127.0.0.1:$WEIR_PORT" before after
    before=$(stat_1xx)
    node "$T/info.js" "$u" GET "/early-hints?n=2" 103 2 'hinted\n' >"$T/o" 2>&1 ||
        fail "$label: early hints: $(cat "$T/o")"
    pass "$label: two 103 Early Hints, in order with their link headers, then the 200"
    node "$T/info.js" "$u" GET "/early-hints?n=20" 103 8 'hinted\n' >"$T/o" 2>&1 ||
        fail "$label: 20 early hints: $(cat "$T/o")"
    pass "$label: of 20 informational heads 8 pass (the per-exchange bound), then the 200"
    node "$T/info.js" "$u" POST /continue 100 1 '5000\n' "$(head -c 5000 /dev/zero | tr '\0' x)" \
        >"$T/o" 2>&1 || fail "$label: 100 continue: $(cat "$T/o")"
    pass "$label: 100 Continue, then the answer to the POST with its 5000-byte body"
    after=$(stat_1xx)
    [ "$((after - before))" = 11 ] || fail "$label: responses_1xx went $before -> $after, want +11"
    pass "$label: /stats responses_1xx counts the 11 forwarded heads"
}

with_each_upstream run_checks
