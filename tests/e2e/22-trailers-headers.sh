#!/usr/bin/env bash
# 22-trailers-headers: what is not a plain body also gets through weir, to an h2c and to an
# HTTP/1.1 upstream:
#   - request trailers reach the upstream (node http2 client sends x-checksum as a trailer;
#     /trailers echoes it back as the header x-req-trailer-x-checksum), and response trailers
#     reach the client (x-trailer-one, x-trailer-two);
#   - a 16 KiB header value arrives intact (/headers echoes the request headers as JSON);
#   - 100 headers arrive, each with its own value.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need node
need curl

cat >"$T/trailers.js" <<'EOF'
// node trailers.js URL: POST /trailers with a body and a request trailer; checks both ways.
const http2 = require('http2');
const url = new URL(process.argv[2]);
const s = http2.connect(url.origin);
s.on('error', (e) => { console.error('session error', e.message); process.exit(1); });
const req = s.request({ ':method': 'POST', ':path': '/trailers', te: 'trailers' },
                      { waitForTrailers: true });
let head = null, trailers = null, body = '';
req.on('wantTrailers', () => req.sendTrailers({ 'x-checksum': 'c0ffee-42', 'x-t-one': '1',
                                                 'x-t-two': '2', 'x-t-three': '3' }));
req.on('response', (h) => { head = h; });
req.on('trailers', (t) => { trailers = t; });
req.setEncoding('utf8');
req.on('data', (d) => { body += d; });
req.on('end', () => {
    s.close();
    const errs = [];
    if (!head || head[':status'] !== 200) errs.push(`status ${head && head[':status']}`);
    if (head && head['x-req-trailer-x-checksum'] !== 'c0ffee-42')
        errs.push(`request trailer not echoed: ${JSON.stringify(head)}`);
    // Field order is kept (RFC 9110 5.3): the upstream saw the trailers as they were sent.
    if (head && head['x-req-trailer-order'] !== 'x-checksum,x-t-one,x-t-two,x-t-three')
        errs.push(`request trailers out of order: ${head['x-req-trailer-order']}`);
    if (head && head['x-req-bytes'] !== '11') errs.push(`request body bytes ${head['x-req-bytes']}`);
    if (!trailers || trailers['x-trailer-one'] !== '1' || trailers['x-trailer-two'] !== 'two')
        errs.push(`response trailers: ${JSON.stringify(trailers)}`);
    if (body !== 'trailers\n') errs.push(`body ${JSON.stringify(body)}`);
    if (errs.length) { console.error(errs.join('; ')); process.exit(1); }
    console.log('ok');
});
req.on('error', (e) => { console.error('stream error', e.message); process.exit(1); });
req.end('hello world');
setTimeout(() => { console.error('timeout'); process.exit(1); }, 10000).unref();
EOF

check_json() {
    /usr/bin/python3 - "$@" <<'EOF'
import json, sys
path, kind = sys.argv[1], sys.argv[2]
d = json.load(open(path))
h = d["headers"]
if kind == "big":
    v = h.get("x-big", "")
    assert len(v) == 16384 and v == "b" * 16384, f"x-big has {len(v)} bytes"
elif kind == "many":
    for i in range(1, 101):
        assert h.get(f"x-h-{i}") == f"value-{i}", f"x-h-{i} = {h.get(f'x-h-{i}')}"
print("ok")
EOF
}

run_checks() {
    local label=$1 u="http://127.0.0.1:$WEIR_PORT"
    node "$T/trailers.js" "$u/" >"$T/tr.out" 2>&1 || fail "$label trailers: $(cat "$T/tr.out")"
    pass "$label: request and response trailers both ways"

    local big
    big=$(head -c 16384 /dev/zero | tr '\0' 'b')
    code=$(curl -sS --max-time 10 --http2-prior-knowledge -H "x-big: $big" -o "$T/big.json" \
        -w '%{http_code}' "$u/headers") || fail "$label: 16 KiB header: curl failed"
    [ "$code" = 200 ] || fail "$label: 16 KiB header: status $code"
    check_json "$T/big.json" big >/dev/null || fail "$label: 16 KiB header value not intact"
    pass "$label: a 16 KiB header value arrives intact"

    local args=() i
    for i in $(seq 1 100); do args+=(-H "x-h-$i: value-$i"); done
    code=$(curl -sS --max-time 10 --http2-prior-knowledge "${args[@]}" -o "$T/many.json" \
        -w '%{http_code}' "$u/headers") || fail "$label: 100 headers: curl failed"
    [ "$code" = 200 ] || fail "$label: 100 headers: status $code"
    check_json "$T/many.json" many >/dev/null || fail "$label: 100 headers: $(head -c 300 "$T/many.json")"
    pass "$label: 100 request headers arrive with their values"
}

with_each_upstream run_checks
