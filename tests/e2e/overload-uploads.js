// node overload-uploads.js URL SESSIONS STREAMS BYTES DELAY_MS SPREAD_MS DEADLINE_S: concurrent uploads,
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
