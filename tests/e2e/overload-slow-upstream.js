// node overload-slow-upstream.js (tests 40, 41): an h2c upstream that leaves each request body
// unread for delay_ms, then hashes it.
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
