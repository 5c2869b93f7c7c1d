#!/usr/bin/env node
// bench/peers/holdconns.js: holds many HTTP/2 sessions (and optionally slow streams) open
// against a proxy so that bench/peers/peers.py can read the proxy's RSS per connection and
// per active stream.
//
// Usage:
//     node holdconns.js --url URL --conns N [--path /small.bin]
//                       [--streams S --slow-path /slow?ms=30000&bytes=10000]
// URL is http://HOST:PORT (h2c prior knowledge) or https://HOST:PORT (TLS, ALPN h2, the
// certificate is not checked). Protocol on stdout/stdin, one line each:
//     IDLE n errors      N sessions are open and each has completed one GET of --path
//     (waits for a line on stdin)
//     READY n errors     when --streams: S streams per session have their response headers
//                        and are still receiving (skipped without --streams)
//     (waits for a line on stdin)
//     CLOSED             every session is closed; then the process exits 0
// Exits 1 with a message on stderr when a session or request fails before IDLE.
'use strict';

const http2 = require('http2');
const readline = require('readline');

function parseArgs(argv) {
    const a = { url: null, conns: 100, path: '/small.bin', streams: 0, slowPath: null,
                parallel: 64 };
    for (let i = 2; i < argv.length; i++) {
        const k = argv[i], v = argv[i + 1];
        if (k === '--url') { a.url = v; i++; }
        else if (k === '--conns') { a.conns = Number(v); i++; }
        else if (k === '--path') { a.path = v; i++; }
        else if (k === '--streams') { a.streams = Number(v); i++; }
        else if (k === '--slow-path') { a.slowPath = v; i++; }
        else if (k === '--parallel') { a.parallel = Number(v); i++; }
        else { die(`unknown argument ${k}`); }
    }
    if (!a.url || !(a.conns > 0)) die('--url and --conns N (N > 0) are required');
    if (a.streams > 0 && !a.slowPath) die('--streams needs --slow-path');
    return a;
}

function die(msg) { process.stderr.write(`holdconns: ${msg}\n`); process.exit(1); }

const args = parseArgs(process.argv);
const sessions = [];
const lines = readline.createInterface({ input: process.stdin });
const waiters = [];
lines.on('line', () => { const w = waiters.shift(); if (w) w(); });
lines.on('close', () => { while (waiters.length) waiters.shift()(); });
function nextLine() { return new Promise((r) => waiters.push(r)); }

function get(session, path, keepOpen) {
    return new Promise((resolve, reject) => {
        const req = session.request({ ':path': path });
        let status = 0;
        req.on('response', (h) => {
            status = h[':status'];
            if (keepOpen) resolve({ status, req });
        });
        req.on('data', () => {});
        req.on('end', () => { if (!keepOpen) resolve({ status }); });
        req.on('error', reject);
        req.end();
    });
}

function openOne() {
    return new Promise((resolve, reject) => {
        const s = http2.connect(args.url, { rejectUnauthorized: false,
                                            settings: { initialWindowSize: 65535 } });
        s.on('error', reject);
        s.on('connect', () => {
            get(s, args.path, false).then((r) => {
                if (r.status !== 200) reject(new Error(`GET ${args.path}: status ${r.status}`));
                else resolve(s);
            }, reject);
        });
    });
}

async function main() {
    let next = 0;
    const worker = async () => {
        while (next < args.conns) {
            next++;
            sessions.push(await openOne());
        }
    };
    const ws = [];
    for (let i = 0; i < Math.min(args.parallel, args.conns); i++) ws.push(worker());
    await Promise.all(ws);
    process.stdout.write(`IDLE ${sessions.length} 0\n`);
    await nextLine();
    if (args.streams > 0) {
        const pending = [];
        for (const s of sessions)
            for (let i = 0; i < args.streams; i++) pending.push(get(s, args.slowPath, true));
        const res = await Promise.allSettled(pending);
        const bad = res.filter((r) => r.status !== 'fulfilled' || r.value.status !== 200).length;
        process.stdout.write(`READY ${res.length - bad} ${bad}\n`);
        await nextLine();
    }
    await Promise.all(sessions.map((s) => new Promise((r) => {
        if (s.destroyed) { r(); return; }
        s.on('close', r);
        s.destroy();
    })));
    process.stdout.write('CLOSED\n');
    process.exit(0);
}

main().catch((e) => die(e && e.message ? e.message : String(e)));
