#!/usr/bin/env bash
# 42-stream-cap: a stream that passes its sub-arena cap (limits.stream_memory, here 8 KiB from
# a config file) is reset on its own: the connection and its other streams keep working.
# One node http2 session carries, at the same time, a normal GET of 1 MB through weir to the
# upstream (checksummed) and a request with 24 headers of 1000 bytes each (24 KB of header
# copies: three times the cap, well under max_header_list_size). The big one must be reset
# (RST_STREAM; weir counts stream_cap_resets), the normal one must complete intact, and a third
# request on the same session afterwards must succeed too.
source "$(dirname "$0")/lib.sh"
need node
need curl

start_upstream up --proto h2c
cat >"$T/cap.yaml" <<EOF
listeners: [{name: main, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 1
clusters: [{name: up, protocol: h2c, endpoints: ["127.0.0.1:$up_PORT"]}]
routes: [{match: {path_prefix: /}, cluster: up}]
limits: {stream_memory: 8KiB}
EOF
start_weir -c "$T/cap.yaml"

cat >"$T/cap.js" <<'EOF'
// node cap.js URL: one session, a normal 1 MB GET and an oversized-header GET in parallel,
// then one more GET; prints one JSON line.
const http2 = require('http2');
const crypto = require('crypto');
const s = http2.connect(process.argv[2]);
const out = {};
s.on('error', (e) => { out.session_error = e.message; });
function get(name, path, extra) {
    return new Promise((resolve) => {
        const req = s.request(Object.assign({ ':path': path }, extra || {}));
        const h = crypto.createHash('sha256');
        let head = null, n = 0;
        req.on('response', (hd) => { head = hd; });
        req.on('data', (d) => { h.update(d); n += d.length; });
        req.on('end', () => {
            out[name] = { status: head && head[':status'], bytes: n,
                          intact: !!head && h.digest('hex') === head['x-sha256'] };
        });
        req.on('close', () => {
            if (!out[name]) out[name] = { rst: req.rstCode, status: head && head[':status'] };
            resolve();
        });
        req.on('error', () => {});
    });
}
const big = {};
for (let i = 0; i < 24; i++) big[`x-big-${i}`] = 'v'.repeat(1000);
Promise.all([get('normal', '/bytes/1000000'), get('big', '/bytes/100', big)])
    .then(() => get('after', '/bytes/5000'))
    .then(() => { console.log(JSON.stringify(out)); s.close(); process.exit(0); });
setTimeout(() => { console.log(JSON.stringify(Object.assign(out, { timeout: true }))); process.exit(1); }, 20000);
EOF

res=$(node "$T/cap.js" "http://127.0.0.1:$WEIR_PORT") || fail "client failed: $res"
echo "result: $res"
check() { node -e "const o=JSON.parse(process.argv[1]); process.exit(($1) ? 0 : 1)" "$res"; }
check '!o.session_error && !o.timeout' || fail "the session failed: $res"
check 'o.big && o.big.rst !== undefined && o.big.rst !== 0 && o.big.status == null' ||
    fail "the oversized stream was not reset: $res"
check 'o.normal && o.normal.status === 200 && o.normal.bytes === 1000000 && o.normal.intact' ||
    fail "the parallel normal stream did not complete intact: $res"
check 'o.after && o.after.status === 200 && o.after.intact' ||
    fail "the connection did not keep working after the reset: $res"
ov=$(admin_get /overload)
node -e "const o=JSON.parse(process.argv[1]); process.exit(o.actions.stream_cap_reset >= 1 ? 0 : 1)" \
    "$ov" || fail "stream_cap_reset was not counted: $ov"
stats=$(admin_get /stats)
node -e "const o=JSON.parse(process.argv[1]); process.exit(o.conn_closed_error === 0 ? 0 : 1)" \
    "$stats" || fail "a connection was closed with an error: $stats"
pass "stream-cap: 24 KB of headers over an 8 KiB stream cap reset that stream (RST_STREAM $(node -e "console.log(JSON.parse(process.argv[1]).big.rst)" "$res")); the parallel 1 MB stream and a later one on the same connection came back intact"
stop_weir TERM || fail "weir exited $? after SIGTERM"
