#!/usr/bin/env bash
# tests/e2e/36-admin-dashboard.sh: the dashboard at / in a real headless browser (Debian
# package chromium), driven over the Chrome DevTools protocol from node (built-in WebSocket).
# With the token in the URL fragment the page must poll /memory and /memory/regions, draw
# from live data (data-samples >= 3 and data-errors = 0 on <body>, ink on every chart canvas,
# a committed byte count in the header) and log nothing: no console message, no exception,
# no failed resource load. A screenshot goes to $WEIR_BUILD/artifacts/dashboard.png.
# Negative control: without the token the polls get 401, and the same checks see it.
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -o pipefail` when no line matches (no TLS listener), which
# ends start_weir; tolerate that here until lib.sh does.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need node
need h2load
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || skip "chromium is not installed (Debian package: chromium)"
node --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null ||
    skip "this node has no built-in WebSocket (needs node >= 20.10)"

TOKEN=dash-$RANDOM$RANDOM
cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
routes:
  - direct_response: {status: 200, body: "hello\n"}
admin: {address: "127.0.0.1:0", token: "$TOKEN"}
workers: 2
YAML
start_weir -c "$T/weir.yaml"
h2load -n 2000 -c 4 -m 8 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load.out" 2>&1 || fail "h2load failed"

cat >"$T/cdp.js" <<'JS'
// node --experimental-websocket cdp.js CHROME USERDIR URL SCREENSHOT|- samples|errors N
// Runs the page until <body data-samples> (or data-errors) reaches N, or 30 s pass.
// Prints one JSON line: {samples, errors, polls, regions, committed, ink, console}.
const { spawn } = require('child_process');
const fs = require('fs');
const [chromePath, userDir, url, shot, waitFor, waitNArg] = process.argv.slice(2);
const waitN = Number(waitNArg);
const chrome = spawn(chromePath, ['--headless', '--no-sandbox', '--disable-gpu',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', `--user-data-dir=${userDir}`, '--remote-debugging-port=0',
    '--window-size=1400,1000', 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] });
const killAll = (code, msg) => {
    if (msg) process.stderr.write(msg + '\n');
    try { chrome.kill('SIGKILL'); } catch (e) { /* already gone */ }
    process.exit(code);
};
setTimeout(() => killAll(3, 'cdp.js: overall deadline passed'), 60000);
let errBuf = '';
chrome.stderr.on('data', (d) => {
    errBuf += d;
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(errBuf);
    if (m && !started) { started = true; run(m[1]).catch((e) => killAll(2, 'cdp.js: ' + e.stack)); }
});
let started = false;
async function run(wsUrl) {
    const ws = new WebSocket(wsUrl);
    await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
    let id = 0;
    const pending = new Map();
    const consoleMsgs = [];
    ws.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        if (msg.id && pending.has(msg.id)) {
            const { res, rej } = pending.get(msg.id);
            pending.delete(msg.id);
            if (msg.error) rej(new Error(JSON.stringify(msg.error))); else res(msg.result);
            return;
        }
        if (msg.method === 'Runtime.consoleAPICalled')
            consoleMsgs.push(`console.${msg.params.type}: ` +
                msg.params.args.map((a) => a.value !== undefined ? a.value : a.description).join(' '));
        else if (msg.method === 'Runtime.exceptionThrown')
            consoleMsgs.push('exception: ' + (msg.params.exceptionDetails.exception || {}).description);
        else if (msg.method === 'Log.entryAdded')
            consoleMsgs.push(`log.${msg.params.entry.level}: ${msg.params.entry.text} ${msg.params.entry.url || ''}`);
    };
    const send = (method, params = {}, sessionId) => new Promise((res, rej) => {
        const m = { id: ++id, method, params };
        if (sessionId) m.sessionId = sessionId;
        pending.set(m.id, { res, rej });
        ws.send(JSON.stringify(m));
    });
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    const S = (m, p) => send(m, p, sessionId);
    await S('Runtime.enable');
    await S('Log.enable');
    await S('Page.enable');
    await S('Page.navigate', { url });
    const evalJs = async (expr) => (await S('Runtime.evaluate', { expression: expr, returnByValue: true })).result.value;
    const deadline = Date.now() + 30000;
    let state;
    for (;;) {
        state = await evalJs(`(() => {
            const b = document.body; if (!b) return null;
            const c = document.getElementById('committed');
            return { samples: +b.dataset.samples, errors: +b.dataset.errors, polls: +b.dataset.polls,
                     regions: +b.dataset.regions, committed: c ? c.textContent : '' };
        })()`);
        if (state && state[waitFor] >= waitN) break;
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 250));
    }
    // Read each canvas back once (repeated readbacks make Chrome log a performance warning).
    if (state) state.ink = await evalJs(`Array.from(document.querySelectorAll('canvas')).map((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })`);
    if (shot !== '-') {
        const { data } = await S('Page.captureScreenshot', { format: 'png' });
        fs.writeFileSync(shot, Buffer.from(data, 'base64'));
    }
    state = state || {};
    state.console = consoleMsgs;
    process.stdout.write(JSON.stringify(state) + '\n');
    try { await send('Browser.close'); } catch (e) { /* closing */ }
    killAll(0);
}
JS

ART="$WEIR_BUILD/artifacts"
mkdir -p "$ART"
node --experimental-websocket "$T/cdp.js" "$CHROME" "$T/chrome1" \
    "http://127.0.0.1:$ADMIN_PORT/#token=$TOKEN" "$ART/dashboard.png" samples 3 >"$T/run1.json" 2>"$T/run1.err" ||
    fail "browser run failed: $(tail -n 5 "$T/run1.err")"
$PY - "$T/run1.json" <<'PYEOF' || fail "dashboard check failed: $(cat "$T/run1.json")"
import json, re, sys
s = json.loads(open(sys.argv[1]).read())
assert s["samples"] >= 3, "samples %s" % s["samples"]
assert s["errors"] == 0, "errors %s" % s["errors"]
assert s["regions"] >= 0, "regions table never filled"
assert re.match(r"^[0-9.]+ (B|KiB|MiB|GiB)$", s["committed"]), "header committed %r" % s["committed"]
assert len(s["ink"]) == 3 and all(n > 0 for n in s["ink"]), "empty canvas: %s" % s["ink"]
assert not s["console"], "console: %s" % s["console"]
PYEOF
[ -s "$ART/dashboard.png" ] || fail "no screenshot"
pass "dashboard drew live data, console clean: $(cat "$T/run1.json"); screenshot $ART/dashboard.png"

# Negative control: no token, so every poll is a 401 that the page and the console show.
node --experimental-websocket "$T/cdp.js" "$CHROME" "$T/chrome2" \
    "http://127.0.0.1:$ADMIN_PORT/" - errors 2 >"$T/run2.json" 2>"$T/run2.err" ||
    fail "browser run (no token) failed: $(tail -n 5 "$T/run2.err")"
$PY - "$T/run2.json" <<'PYEOF' || fail "negative control: $(cat "$T/run2.json")"
import json, sys
s = json.loads(open(sys.argv[1]).read())
assert s["samples"] == 0 and s["errors"] >= 1, s
assert any("401" in m for m in s["console"]), s["console"]
PYEOF
pass "without the token the polls fail with 401 and the console check sees it"
