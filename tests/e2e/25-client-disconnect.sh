#!/usr/bin/env bash
# 25-client-disconnect: clients that vanish mid-upload leave nothing behind in weir.
# A node http2 client opens 8 uploads on one connection (POST /echo and POST /sha256 with
# bodies that never end), sends part of each, then destroys the session. Three rounds, to an
# h2c and to an HTTP/1.1 upstream. Afterwards, polled with a deadline: admin /stats shows
# 0 active streams and 0 active downstream connections, admin /memory shows 0 live sub-arenas,
# and weir still answers with the right bytes.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need node
need curl

cat >"$T/vanish.js" <<'EOF'
// node vanish.js URL: 8 uploads on one session, part of each sent, then the session dies.
const http2 = require('http2');
const s = http2.connect(process.argv[2]);
s.on('error', () => {});
const chunk = Buffer.alloc(16384, 7);
let started = 0, sent = 0;
for (let i = 0; i < 8; i++) {
    const req = s.request({ ':method': 'POST', ':path': i % 2 ? '/sha256' : '/echo' });
    req.on('error', () => {});
    req.on('response', () => { started++; });
    req.on('data', () => {});
    const pump = () => {
        while (sent < 8 * 1048576) {
            sent += chunk.length;
            if (!req.write(chunk)) { req.once('drain', pump); return; }
        }
    };
    pump();
}
// Destroy once weir has had time to open the upstream exchanges and move some bytes.
setTimeout(() => {
    console.log(`responses=${started} sent=${sent}`);
    s.destroy();
    process.exit(0);
}, 400);
EOF

stat_of() { admin_get /stats | tr -d ' \n' | grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2; }
mem_of() { admin_get /memory | tr -d ' \n' | grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2; }
all_clear() {
    [ "$(stat_of streams_active)" = 0 ] && [ "$(stat_of conn_active)" = 0 ] &&
        [ "$(mem_of subregions_live)" = 0 ]
}

run_case() {
    local label=$1 i out
    for i in 1 2 3; do
        out=$(node "$T/vanish.js" "http://127.0.0.1:$WEIR_PORT") || fail "$label: client: $out"
    done
    wait_for 15 all_clear || fail "$label: left behind: streams_active=$(stat_of streams_active) conn_active=$(stat_of conn_active) subregions_live=$(mem_of subregions_live)"
    code=$(curl -sS --max-time 10 --http2-prior-knowledge -o "$T/b" -w '%{http_code}' \
        "http://127.0.0.1:$WEIR_PORT/bytes/100000") || fail "$label: weir stopped serving"
    [ "$code" = 200 ] && [ "$(stat -c %s "$T/b")" = 100000 ] || fail "$label: after: $code"
    wait_for 15 all_clear || fail "$label: the last request left something behind"
    pass "$label: 3 x 8 uploads cut mid-body ($out): 0 streams, 0 connections, 0 sub-arenas left (upstream_requests=$(stat_of upstream_requests))"
}

start_upstream h2 --proto h2c
start_upstream h1 --proto http1

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "h2c://127.0.0.1:$h2_PORT"
admin_get /memory | grep -q subregions_live || skip "admin /memory has no subregions_live"
run_case "h2c upstream"
stop_weir TERM || fail "weir exited $? after SIGTERM"

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "http://127.0.0.1:$h1_PORT"
run_case "http1 upstream"
stop_weir TERM || fail "weir exited $? after SIGTERM"
