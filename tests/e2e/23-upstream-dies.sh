#!/usr/bin/env bash
# 23-upstream-dies: an upstream that dies mid-response (/die-mid-stream sends the head and
# 64 KiB of an announced 1 MiB, then drops) costs only the affected request:
#   - its client gets RST_STREAM (curl reports an unclean stream end) or a 5xx, never a
#     complete-looking 200;
#   - a request running in parallel on the same weir connection completes with the right
#     checksum (h2c upstream: the dying stream is reset on its own; HTTP/1.1 upstream: the
#     socket itself is destroyed);
#   - with the h2c upstream connection itself destroyed, weir opens a new one and keeps
#     serving; admin /stats counts upstream_reset.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need node
need curl

cat >"$T/par.js" <<'EOF'
// node par.js URL DIE_PATH: on ONE h2 connection, starts a slow checksummed GET, then the
// dying request; prints "dying=<outcome> slow=<ok|error>".
const http2 = require('http2');
const crypto = require('crypto');
const [base, diePath] = process.argv.slice(2);
const s = http2.connect(base);
s.on('error', () => {});
let dying = null, slow = null;
const done = () => {
    if (dying === null || slow === null) return;
    console.log(`dying=${dying} slow=${slow}`);
    s.close();
};
const sreq = s.request({ ':path': '/slow?ms=1500&bytes=300000' });
const h = crypto.createHash('sha256');
let sh = null, n = 0;
sreq.on('response', (hd) => { sh = hd; });
sreq.on('data', (d) => { h.update(d); n += d.length; });
sreq.on('end', () => {
    slow = sh && sh[':status'] === 200 && n === 300000 && h.digest('hex') === sh['x-sha256']
        ? 'ok' : `bad(${sh && sh[':status']},${n})`;
    done();
});
sreq.on('error', (e) => { slow = `error(${e.code})`; done(); });
setTimeout(() => {
    const d = s.request({ ':path': diePath });
    let st = null, got = 0;
    d.on('response', (hd) => { st = hd[':status']; });
    d.on('data', (c) => { got += c.length; });
    d.on('end', () => { dying = st >= 500 ? `status${st}` : `complete(${st},${got})`; done(); });
    d.on('close', () => {
        if (dying === null) { dying = d.rstCode ? `rst${d.rstCode}` : `closed`; done(); }
    });
    d.on('error', () => {});
}, 200);
setTimeout(() => { console.log(`timeout dying=${dying} slow=${slow}`); process.exit(1); }, 15000).unref();
EOF

# dies_alone URL: the dying request on its own: not a complete 200.
dies_alone() {
    local rc=0 code
    code=$(curl -sS --max-time 10 --http2-prior-knowledge -o "$T/die.out" -w '%{http_code}' \
        "$1" 2>"$T/die.err") || rc=$?
    if [ "$rc" = 0 ] && [ "${code:0:1}" != 5 ]; then
        fail "dying upstream looked like success: status $code, $(stat -c %s "$T/die.out") bytes"
    fi
    echo "curl rc=$rc status=$code bytes=$(stat -c %s "$T/die.out")"
}

still_serves() {
    local code
    code=$(curl -sS --max-time 10 --http2-prior-knowledge -o "$T/ok.out" -D "$T/ok.h" \
        -w '%{http_code}' "http://127.0.0.1:$WEIR_PORT/bytes/200000") || fail "weir stopped serving"
    [ "$code" = 200 ] || fail "after the upstream died: status $code"
    local want
    want=$(tr -d '\r' <"$T/ok.h" | awk 'tolower($1)=="x-sha256:"{print $2}')
    [ "$(sha256sum "$T/ok.out" | cut -d' ' -f1)" = "$want" ] || fail "after the death: bad body"
}

check_parallel() {
    local label=$1 path=$2 out
    out=$(node "$T/par.js" "http://127.0.0.1:$WEIR_PORT" "$path") || fail "$label: $out"
    case "$out" in
    *"slow=ok"*) ;;
    *) fail "$label: the parallel request did not complete: $out" ;;
    esac
    case "$out" in
    *"dying=rst"* | *"dying=status5"* | *"dying=closed"*) ;;
    *) fail "$label: the dying request was not reset or 5xx: $out" ;;
    esac
    pass "$label: $out"
}

start_upstream h2 --proto h2c
start_upstream h1 --proto http1

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "h2c://127.0.0.1:$h2_PORT"
check_parallel "h2c upstream, stream reset" "/die-mid-stream?mode=rst"
r=$(dies_alone "http://127.0.0.1:$WEIR_PORT/die-mid-stream")
pass "h2c upstream, connection destroyed: $r"
still_serves
pass "h2c upstream: weir keeps serving after the upstream connection died"
# The first "upstream_reset" in /stats is the sum over workers.
resets=$(admin_get /stats | tr -d ' \n' | grep -o '"upstream_reset":[0-9]*' | head -n 1 | cut -d: -f2 || true)
[ -n "$resets" ] && [ "$resets" -ge 2 ] || fail "admin /stats upstream_reset is '$resets', want >= 2"
pass "admin /stats upstream_reset = $resets"
stop_weir TERM || fail "weir exited $? after SIGTERM"

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "http://127.0.0.1:$h1_PORT"
check_parallel "http1 upstream, socket destroyed" "/die-mid-stream"
still_serves
pass "http1 upstream: weir keeps serving"
stop_weir TERM || fail "weir exited $? after SIGTERM"
