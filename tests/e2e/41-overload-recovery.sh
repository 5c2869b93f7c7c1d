#!/usr/bin/env bash
# 41-overload-recovery: after an overload the level comes back to normal on its own and weir
# serves again. weir runs with a 16 MiB budget and, from a config file, elevated at 0.50 and
# critical at 0.90. 8 node http2 sessions open 60 uploads each of 1 MiB, spread over 8 s, to
# an upstream that leaves each body unread for 1.5 s and then takes it at full speed: while
# bodies flow, weir's buffers fill. Checked:
#   - /overload (polled on the admin port) leaves "normal";
#   - then the load stops (the clients go away, resetting their streams), and within RECOVER_S
#     seconds /overload shows "normal" again and the recovery transition is logged;
#   - new requests succeed: 1 MiB uploads come back 200 with the upstream's sha256 of exactly
#     the bytes sent.
source "$(dirname "$0")/lib.sh"
need node
need curl

LIMIT_MIB=16
RECOVER_S=5

cat >"$T/slow-up.js" <<'EOF'
// An h2c upstream that leaves each request body unread for delay_ms, then hashes it.
const http2 = require('http2');
const crypto = require('crypto');
const srv = http2.createServer({ maxSessionMemory: 1024 });
srv.on('stream', (st, h) => {
    const u = new URL(h[':path'], 'http://x');
    const delay = Number(u.searchParams.get('delay_ms') || 0);
    const hash = crypto.createHash('sha256');
    let n = 0;
    st.on('error', () => {});
    st.pause();
    setTimeout(() => st.resume(), delay);
    st.on('data', (d) => { hash.update(d); n += d.length; });
    st.on('end', () => {
        if (st.destroyed || st.closed) return;
        st.respond({ ':status': 200, 'x-sha256': hash.digest('hex'), 'x-bytes': String(n) });
        st.end(`${n}\n`);
    });
});
srv.on('sessionError', () => {});
srv.listen(0, '127.0.0.1', () => console.log(`PORT ${srv.address().port}`));
EOF

cat >"$T/load.js" <<'EOF'
// node load.js URL SESSIONS STREAMS BYTES DELAY_MS SPREAD_MS DEADLINE_S: concurrent uploads,
// each started at a random time within SPREAD_MS (so some open while memory is already
// short); prints one JSON line of outcomes. Each stream sends its own bytes, and a 200 must
// carry their sha256 and length.
const http2 = require('http2');
const crypto = require('crypto');
const [url, nsess, nstr, nbytes, delay, spread, deadline] = process.argv.slice(2);
const S = Number(nsess), N = Number(nstr), B = Number(nbytes);
const out = { ok: 0, bad: 0, refused: 0, reset: 0, reset_codes: {}, status: {}, session_err: 0,
              hung: 0, total: S * N };
let open = S * N;
const base = crypto.randomBytes(B);
function finish() { console.log(JSON.stringify(out)); process.exit(0); }
setTimeout(() => { out.hung = open; finish(); }, Number(deadline) * 1000);

function record(kind, extra) {
    if (kind === 'ok') out.ok++;
    else if (kind === 'bad') { out.bad++; out.bad_detail = extra; }
    else if (kind === 'refused') out.refused++;
    else if (kind === 'reset') { out.reset++; out.reset_codes[extra] = (out.reset_codes[extra] || 0) + 1; }
    else if (kind === 'status') out.status[extra] = (out.status[extra] || 0) + 1;
    else out.session_err++;
    if (--open === 0) finish();
}

function one(sess, idx, done) {
    if (sess.destroyed || sess.closed) { record('session'); return done(); }
    const body = Buffer.from(base);
    body.writeUInt32BE(idx, 0); // distinct bodies: a mix-up shows as a bad checksum
    const want = crypto.createHash('sha256').update(body).digest('hex');
    let req;
    try {
        req = sess.request({ ':method': 'POST', ':path': `/up?delay_ms=${delay}`,
                             'content-type': 'application/octet-stream' });
    } catch (e) { record('session', e.code); return done(); }
    let head = null, settled = false;
    const settle = (kind, extra) => {
        if (settled) return;
        settled = true;
        record(kind, extra);
        done();
    };
    req.on('response', (h) => { head = h; });
    req.on('data', () => {});
    req.on('end', () => {
        if (!head) return settle('bad', 'ended without headers');
        const st = head[':status'];
        if (st !== 200) return settle('status', st);
        if (head['x-sha256'] === want && Number(head['x-bytes']) === B) return settle('ok');
        settle('bad', `200 with ${head['x-bytes']} bytes, sha ${head['x-sha256']}`);
    });
    req.on('close', () => {
        if (settled) return;
        const code = req.rstCode;
        if (code === http2.constants.NGHTTP2_REFUSED_STREAM) settle('refused');
        else if (code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR) settle('reset', code);
        else if (!head) settle('session', 'closed without a response');
        else settle('bad', `closed after headers without end (rst ${code})`);
    });
    req.on('error', () => {});
    req.end(body);
}

for (let s = 0; s < S; s++) {
    const sess = http2.connect(url, { maxSessionMemory: 1024 });
    sess.on('error', () => {});
    let left = N;
    const done = () => { if (--left === 0) sess.close(); };
    for (let i = 0; i < N; i++)
        setTimeout(() => one(sess, s * N + i, done), Math.random() * Number(spread));
}
EOF

UPSTREAM_PID=
node "$T/slow-up.js" >"$T/up.out" 2>"$T/up.err" &
UPSTREAM_PID=$!
E2E_PIDS+=("$UPSTREAM_PID")
wait_for 20 grep -q '^PORT ' "$T/up.out" || fail "slow upstream did not start: $(cat "$T/up.err")"
UP=$(awk '/^PORT /{print $2; exit}' "$T/up.out")

cat >"$T/ov.yaml" <<EOF
listeners: [{name: main, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 2
clusters: [{name: up, protocol: h2c, endpoints: ["127.0.0.1:$UP"]}]
routes: [{match: {path_prefix: /}, cluster: up}]
memory: {limit: ${LIMIT_MIB}MiB, elevated: 0.50, critical: 0.90, hysteresis: 0.05}
EOF
start_weir -c "$T/ov.yaml"

level() { admin_get /overload | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).level))"; }
is_normal() { [ "$(level)" = normal ]; }
is_normal || fail "weir did not start at level normal: $(admin_get /overload)"

node "$T/load.js" "http://127.0.0.1:$WEIR_PORT" 8 60 $((1024 * 1024)) 1500 8000 60 \
    >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!
E2E_PIDS+=("$LOAD_PID")
obs="$T/levels"
seen_high() {
    local l
    l=$(level)
    echo "$l" >>"$obs"
    [ "$l" != normal ]
}
wait_for 30 seen_high || fail "the level never left normal under load: $(admin_get /overload)"
peak=$(tail -n 1 "$obs")
pass "under load the level reached $peak"

# Stop the load: the client goes away, its streams are reset, weir frees what they held.
kill -TERM "$LOAD_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
t0=$(date +%s%N)
wait_for "$RECOVER_S" is_normal ||
    fail "the level did not return to normal within $RECOVER_S s: $(admin_get /overload)"
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q -- '-> normal' "$T/weir.log" || fail "the recovery transition was not logged"

# New requests succeed, with intact bodies.
head -c 1048576 /dev/urandom >"$T/body.bin"
want=$(sha256sum "$T/body.bin" | awk '{print $1}')
for i in 1 2 3 4 5; do
    h2get "http://127.0.0.1:$WEIR_PORT/up?delay_ms=0" --data-binary "@$T/body.bin" \
        -D "$T/h.$i" -o /dev/null || fail "request $i after recovery failed"
    grep -q '^HTTP/2 200' "$T/h.$i" || fail "request $i after recovery: $(head -n1 "$T/h.$i")"
    got=$(awk 'tolower($1)=="x-sha256:" {print $2}' "$T/h.$i" | tr -d '\r')
    [ "$got" = "$want" ] || fail "request $i after recovery: sha256 $got, want $want"
done
ov=$(admin_get /overload)
echo "overload after recovery: $ov"
pass "recovered to normal ${ms} ms after the load stopped (level seen: $peak); 5 x 1 MiB uploads after it came back 200 with intact checksums"
grep '^weir: overload:' "$T/weir.log"
stop_weir TERM || fail "weir exited $? after SIGTERM"
