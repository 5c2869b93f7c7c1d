#!/usr/bin/env node
// tests/e2e/upstream.js: the upstream server that weir's e2e and driver tests proxy to.
//
// Node built-ins only (http2, http, crypto). Usage:
//     node upstream.js --proto h2c|http1 [--port 0] [--host 127.0.0.1]
//                      [--tls-cert FILE --tls-key FILE]   (over TLS: h2c becomes h2 with
//                                                          ALPN h2, http1 becomes https)
// Prints "PORT <n>" on stdout once listening. Everything streams with backpressure, so
// 100 MB bodies pass through without being held in memory.
//
// Endpoints:
//   GET  /                       "ok\n"
//   GET  /bytes/N                N deterministic bytes (a fixed 64 KiB PRNG block repeated);
//                                header x-sha256 = hex sha256 of the body, x-bytes = N
//   POST /echo                   streams the request body back; trailer x-sha256 (and
//                                x-bytes) of what it received
//   POST /sha256                 body "<hex sha256> <bytes>\n" of the request body; also as
//                                headers x-sha256 and x-bytes
//   GET  /slow?ms=N&bytes=M[&head_ms=K]
//                                headers after K ms (default 0; when M is 0 they come after
//                                N ms), then M bytes in 10 pieces spread over N ms; x-sha256
//   ANY  /trailers               reads the request body, replies "trailers\n" with response
//                                trailers x-trailer-one: 1, x-trailer-two: two, and echoes
//                                each request trailer back as header x-req-trailer-<name>,
//                                their names in arrival order as x-req-trailer-order
//   ANY  /headers, /any/path/headers
//                                the request headers as JSON (after the body is read):
//                                method, url, httpVersion, headers (no pseudo-headers),
//                                pseudo (h2c: :method, :scheme, :authority, :path),
//                                rawHeaders
//   GET  /die-mid-stream[?mode=socket|rst&bytes=N]
//                                sends headers and N (default 65536) of 1 MiB announced
//                                bytes, then destroys the socket (mode=socket, default) or,
//                                on h2c, resets only this stream (mode=rst)
//   GET  /hop                    (http1) Connection: keep-alive, x-hop-secret, with an
//                                x-hop-secret header (hop-by-hop) and x-end-to-end: yes
//   ANY  /status/NNN             replies with status NNN and body "status NNN\n"
//   GET  /early-hints?n=K        K (default 1) informational 103 Early Hints, the i-th with
//                                link: </hint-i.css>; rel=preload; as=style, then 200
//                                "hinted\n"
//   POST /continue               an informational 100 Continue, then reads the body and
//                                replies 200 "<bytes>\n"
//   GET  /goaway?ms=N            after N ms (default 100) h2c sends GOAWAY(NO_ERROR) with
//                                last_stream_id = this stream, so streams opened after it
//                                count as never processed, then answers "goaway\n";
//                                http1 answers with Connection: close
//   GET  /count                  "<n>\n": how many requests (other than /count) this upstream
//                                has received since it started
//   ANY  /early[?status=NNN]     answers at once with NNN (default 200) and "posted\n",
//                                without reading the request body (RFC 9113 8.1: an early
//                                response to an upload)
//   anything else                404
'use strict';

const http = require('http');
const http2 = require('http2');
const crypto = require('crypto');

function parseArgs(argv) {
    const a = { proto: 'h2c', port: 0, host: '127.0.0.1' };
    for (let i = 2; i < argv.length; i++) {
        const k = argv[i];
        const v = argv[i + 1];
        if (k === '--proto') { a.proto = v; i++; }
        else if (k === '--port') { a.port = Number(v); i++; }
        else if (k === '--host') { a.host = v; i++; }
        // h2c only: the stream window weir may send request bodies into (0: none at all).
        else if (k === '--window') { a.window = Number(v); i++; }
        // Serve over TLS with this PEM certificate and key (h2c: HTTP/2 with ALPN h2).
        else if (k === '--tls-cert') { a.tlsCert = v; i++; }
        else if (k === '--tls-key') { a.tlsKey = v; i++; }
        else {
            process.stderr.write(`upstream.js: unknown argument ${k}\n`);
            process.exit(2);
        }
    }
    if (a.proto !== 'h2c' && a.proto !== 'http1') {
        process.stderr.write(`upstream.js: --proto must be h2c or http1, not ${a.proto}\n`);
        process.exit(2);
    }
    if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) {
        process.stderr.write('upstream.js: --port must be 0..65535\n');
        process.exit(2);
    }
    return a;
}

const args = parseArgs(process.argv);

// The deterministic body: a 64 KiB block from xorshift32 seeded with 1, repeated.
const BLOCK_LEN = 65536;
const BLOCK = (() => {
    const b = Buffer.alloc(BLOCK_LEN);
    let x = 1;
    for (let i = 0; i < BLOCK_LEN; i++) {
        x ^= x << 13; x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5; x >>>= 0;
        b[i] = x & 0xff;
    }
    return b;
})();

const digestCache = new Map();
function bytesDigest(n) {
    let d = digestCache.get(n);
    if (d) return d;
    const h = crypto.createHash('sha256');
    let left = n;
    while (left > 0) {
        const k = Math.min(left, BLOCK_LEN);
        h.update(k === BLOCK_LEN ? BLOCK : BLOCK.subarray(0, k));
        left -= k;
    }
    d = h.digest('hex');
    if (digestCache.size > 64) digestCache.clear();
    digestCache.set(n, d);
    return d;
}

// Writes `n` pattern bytes to `res` honouring backpressure, then calls done().
function writePattern(res, n, done) {
    let left = n;
    const pump = () => {
        while (left > 0) {
            if (res.destroyed || res.writableEnded) return;
            const k = Math.min(left, BLOCK_LEN);
            left -= k;
            const ok = res.write(k === BLOCK_LEN ? BLOCK : BLOCK.subarray(0, k));
            if (!ok) { res.once('drain', pump); return; }
        }
        done();
    };
    pump();
}

function isH2(req) { return req.httpVersionMajor === 2; }

function hopFree(headers) {
    const out = {};
    for (const [k, v] of Object.entries(headers)) {
        if (k.startsWith(':')) continue;
        out[k] = v;
    }
    return out;
}

// The pseudo-headers of an h2c request (:method, :scheme, :authority, :path); {} on http1.
function pseudoOf(headers) {
    const out = {};
    for (const [k, v] of Object.entries(headers)) {
        if (k.startsWith(':')) out[k] = v;
    }
    return out;
}

function readAll(req, cb) {
    const h = crypto.createHash('sha256');
    let n = 0;
    req.on('data', (c) => { h.update(c); n += c.length; });
    req.on('end', () => cb(h.digest('hex'), n));
    req.on('error', () => {});
}

let requestsSeen = 0;

function handle(req, res) {
    const u = new URL(req.url, 'http://x');
    const path = u.pathname;
    res.on('error', () => {});
    req.on('error', () => {});

    if (path === '/count') {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`${requestsSeen}\n`);
        return;
    }
    requestsSeen++;
    if (path === '/early') {
        const st = Number(u.searchParams.get('status') || 200);
        res.writeHead(st >= 200 && st <= 599 ? st : 400,
            { 'content-type': 'text/plain', 'content-length': 7 });
        res.end('posted\n');
        return;
    }

    if (path === '/') {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
        res.end('ok\n');
        return;
    }
    let m = /^\/bytes\/(\d+)$/.exec(path);
    if (m) {
        req.resume();
        const n = Number(m[1]);
        res.writeHead(200, {
            'content-type': 'application/octet-stream',
            'content-length': n,
            'x-sha256': bytesDigest(n),
            'x-bytes': n,
        });
        writePattern(res, n, () => res.end());
        return;
    }
    if (path === '/echo') {
        const h = crypto.createHash('sha256');
        let n = 0;
        const hdrs = { 'content-type': 'application/octet-stream' };
        if (!isH2(req)) hdrs['trailer'] = 'x-sha256, x-bytes';
        res.writeHead(200, hdrs);
        req.on('data', (c) => {
            h.update(c);
            n += c.length;
            if (!res.write(c)) {
                req.pause();
                res.once('drain', () => req.resume());
            }
        });
        req.on('end', () => {
            res.addTrailers({ 'x-sha256': h.digest('hex'), 'x-bytes': String(n) });
            res.end();
        });
        return;
    }
    if (path === '/sha256') {
        readAll(req, (hex, n) => {
            const body = `${hex} ${n}\n`;
            res.writeHead(200, {
                'content-type': 'text/plain',
                'content-length': Buffer.byteLength(body),
                'x-sha256': hex,
                'x-bytes': n,
            });
            res.end(body);
        });
        return;
    }
    if (path === '/slow') {
        req.resume();
        const ms = Math.max(0, Number(u.searchParams.get('ms') || 1000));
        const bytes = Math.max(0, Number(u.searchParams.get('bytes') || 0));
        const headMs = Number(u.searchParams.get('head_ms') || (bytes === 0 ? ms : 0));
        let timer = null;
        res.on('close', () => { if (timer) clearTimeout(timer); });
        timer = setTimeout(() => {
            res.writeHead(200, {
                'content-type': 'application/octet-stream',
                'content-length': bytes,
                'x-sha256': bytesDigest(bytes),
            });
            if (bytes === 0) { res.end(); return; }
            // The body is the /bytes pattern, in 10 pieces spread over `ms`.
            const pieces = 10;
            let sent = 0;
            let i = 0;
            const step = () => {
                timer = null;
                if (res.destroyed) return;
                i++;
                const upto = i === pieces ? bytes : Math.floor((bytes * i) / pieces);
                const parts = [];
                for (let off = sent; off < upto;) {
                    const bo = off % BLOCK_LEN;
                    const k = Math.min(upto - off, BLOCK_LEN - bo);
                    parts.push(BLOCK.subarray(bo, bo + k));
                    off += k;
                }
                if (parts.length) res.write(Buffer.concat(parts));
                sent = upto;
                if (i === pieces) { res.end(); return; }
                timer = setTimeout(step, ms / pieces);
            };
            step();
        }, headMs);
        return;
    }
    if (path === '/trailers') {
        readAll(req, (hex, n) => {
            const hdrs = {
                'content-type': 'text/plain',
                'x-req-sha256': hex,
                'x-req-bytes': String(n),
            };
            for (const [k, v] of Object.entries(req.trailers || {})) {
                hdrs[`x-req-trailer-${k}`] = v;
            }
            // The request trailers' names in the order they arrived.
            const raw = req.rawTrailers || [];
            hdrs['x-req-trailer-order'] = raw.filter((_, i) => i % 2 === 0)
                .map((n) => n.toLowerCase()).join(',');
            if (!isH2(req)) hdrs['trailer'] = 'x-trailer-one, x-trailer-two';
            res.writeHead(200, hdrs);
            res.write('trailers\n');
            res.addTrailers({ 'x-trailer-one': '1', 'x-trailer-two': 'two' });
            res.end();
        });
        return;
    }
    if (path === '/headers' || path.endsWith('/headers')) {
        readAll(req, () => {
            const body = JSON.stringify({
                method: req.method,
                url: req.url,
                httpVersion: req.httpVersion,
                headers: hopFree(req.headers),
                pseudo: pseudoOf(req.headers),
                rawHeaders: req.rawHeaders,
            });
            res.writeHead(200, {
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(body),
            });
            res.end(body);
        });
        return;
    }
    if (path === '/die-mid-stream') {
        req.resume();
        const mode = u.searchParams.get('mode') || 'socket';
        const part = Number(u.searchParams.get('bytes') || 65536);
        res.writeHead(200, {
            'content-type': 'application/octet-stream',
            'content-length': 1048576,
        });
        res.write(BLOCK.subarray(0, Math.min(part, BLOCK_LEN)));
        // Let the part reach the wire before the socket or stream dies.
        setTimeout(() => {
            if (isH2(req)) {
                if (mode === 'rst') req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
                else {
                    // The session's socket is a guarded proxy; kill the raw socket so the
                    // peer sees an abrupt close (no GOAWAY), as a crashing upstream would.
                    const raw = rawSockets.get(req.stream.session.socket.remotePort);
                    if (raw) raw.destroy();
                    else req.stream.session.destroy();
                }
            } else {
                req.socket.destroy();
            }
        }, 50);
        return;
    }
    if (path === '/goaway') {
        req.resume();
        const ms = Math.max(0, Number(u.searchParams.get('ms') || 100));
        setTimeout(() => {
            if (isH2(req)) {
                req.stream.session.goaway(http2.constants.NGHTTP2_NO_ERROR, req.stream.id);
                res.writeHead(200, { 'content-type': 'text/plain' });
            } else {
                res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
            }
            res.end('goaway\n');
        }, ms);
        return;
    }
    if (path === '/hop' && !isH2(req)) {
        // HTTP/1.1 only: a header named in Connection is hop-by-hop and must not pass.
        req.resume();
        res.writeHead(200, {
            'content-type': 'text/plain', 'content-length': 4,
            connection: 'keep-alive, x-hop-secret', 'x-hop-secret': 'do-not-forward',
            'x-end-to-end': 'yes',
        });
        res.end('hop\n');
        return;
    }
    if (path === '/early-hints') {
        req.resume();
        const n = Number(u.searchParams.get('n') || 1);
        for (let i = 1; i <= n; i++)
            res.writeEarlyHints({ link: `</hint-${i}.css>; rel=preload; as=style` });
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 7 });
        res.end('hinted\n');
        return;
    }
    if (path === '/continue') {
        res.writeContinue();
        let n = 0;
        req.on('data', (c) => { n += c.length; });
        req.on('end', () => {
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.end(`${n}\n`);
        });
        return;
    }
    m = /^\/status\/(\d{3})$/.exec(path);
    if (m) {
        req.resume();
        const st = Number(m[1]);
        if (st < 200 || st > 599) {
            res.writeHead(400, { 'content-type': 'text/plain' });
            res.end('status must be 200..599\n');
            return;
        }
        const body = st === 204 || st === 304 ? '' : `status ${st}\n`;
        res.writeHead(st, { 'content-type': 'text/plain' });
        res.end(body);
        return;
    }
    req.resume();
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end(`no such endpoint: ${path}\n`);
}

let server;
const rawSockets = new Map();   // remote port -> raw net.Socket (h2c only)
if (args.proto === 'h2c') {
    const make = args.tlsCert ? http2.createSecureServer : http2.createServer;
    server = make(Object.assign(args.tlsCert ? {
        cert: require('fs').readFileSync(args.tlsCert),
        key: require('fs').readFileSync(args.tlsKey),
        allowHTTP1: false,
    } : {}, {
        maxSessionMemory: 1000,
        maxHeaderListPairs: 4096,
        settings: Object.assign({ maxConcurrentStreams: 1000, maxHeaderListSize: 1 << 20 },
            args.window !== undefined ? { initialWindowSize: args.window } : {}),
    }), handle);
    server.on('sessionError', () => {});
    server.on('connection', (sock) => {
        const port = sock.remotePort;
        rawSockets.set(port, sock);
        sock.on('close', () => { if (rawSockets.get(port) === sock) rawSockets.delete(port); });
    });
} else {
    const opts = { maxHeaderSize: 1 << 20, keepAliveTimeout: 60000 };
    server = args.tlsCert ? require('https').createServer(Object.assign(opts, {
        cert: require('fs').readFileSync(args.tlsCert),
        key: require('fs').readFileSync(args.tlsKey),
    }), handle) : http.createServer(opts, handle);
    server.headersTimeout = 0;
    server.requestTimeout = 0;
}
server.on('error', (e) => {
    process.stderr.write(`upstream.js: ${e.message}\n`);
    process.exit(1);
});
server.listen(args.port, args.host, () => {
    process.stdout.write(`PORT ${server.address().port}\n`);
});
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
