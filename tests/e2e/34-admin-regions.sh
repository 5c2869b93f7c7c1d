#!/usr/bin/env bash
# tests/e2e/34-admin-regions.sh: a slow, large upload through weir (node's http2 client
# POSTing to a route whose upstream reads the whole body before answering) holds a stream
# open; /memory/regions must name that client's connection (its peer port) and the stream's
# path, with bytes > 0. After the upload finishes the stream's row goes away.
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -o pipefail` when no line matches (no TLS listener), which
# ends start_weir; tolerate that here until lib.sh does.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need node

start_upstream up --proto h2c
cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
clusters:
  - name: up
    endpoints: [127.0.0.1:$up_PORT]
routes:
  - match: {path_prefix: /sha256}
    cluster: up
  - direct_response: {status: 200, body: "hello\n"}
admin: {address: "127.0.0.1:0"}
workers: 2
YAML
start_weir -c "$T/weir.yaml"

# The client sends 256 KiB, then waits for "go" on stdin before sending the rest and ending.
cat >"$T/slow-upload.js" <<'JS'
const http2 = require('http2');
const port = process.argv[2];
const s = http2.connect(`http://127.0.0.1:${port}`);
s.on('error', (e) => { console.error('session error', e.message); process.exit(1); });
s.on('connect', () => {
    const req = s.request({ ':method': 'POST', ':path': '/sha256?slow-upload',
                            'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(16384, 0x61);
    let sent = 0;
    function pump() {
        while (sent < 256 * 1024) {
            sent += chunk.length;
            if (!req.write(chunk)) { req.once('drain', pump); return; }
        }
    }
    pump();
    console.log(`LOCALPORT ${s.socket.localPort}`);
    process.stdin.once('data', () => {
        req.end(chunk);
        let status = 0, body = '';
        req.on('response', (h) => { status = h[':status']; });
        req.on('data', (d) => { body += d; });
        req.on('end', () => { console.log(`DONE ${status} ${body.trim()}`); s.close(); });
    });
    req.on('error', (e) => { console.error('stream error', e.message); process.exit(1); });
});
JS
mkfifo "$T/go"
node "$T/slow-upload.js" "$WEIR_PORT" <"$T/go" >"$T/client.out" 2>"$T/client.err" &
CLIENT_PID=$!
E2E_PIDS+=("$CLIENT_PID")
exec 9>"$T/go" # keeps the client's stdin open until we write to it
wait_for 20 grep -q '^LOCALPORT ' "$T/client.out" || fail "client did not start: $(cat "$T/client.err")"
LPORT=$(awk '/^LOCALPORT /{print $2}' "$T/client.out")

# row_found: /memory/regions has a stream row for our peer port and path, and the
# connection row for the same peer.
row_found() {
    admin_get "/memory/regions?top=1000" >"$T/regions.json" || return 1
    $PY - "$T/regions.json" "$LPORT" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
port = sys.argv[2]
rows = [x for x in r["regions"] if x["peer"].endswith(":" + port)]
stream = [x for x in rows if x["stream_id"] > 0 and x["path"].startswith("/sha256") and x["bytes"] > 0]
conn = [x for x in rows if x["stream_id"] == 0]
sys.exit(0 if stream and conn else 1)
PYEOF
}
wait_for 20 row_found || fail "no region row for peer port $LPORT path /sha256: $(head -c 800 "$T/regions.json")"
pass "/memory/regions names peer :$LPORT and /sha256: $($PY -c '
import json,sys; r=json.load(open(sys.argv[1]))
print([ (x["peer"], x["stream_id"], x["path"], x["bytes"]) for x in r["regions"] if x["peer"].endswith(":"+sys.argv[2])])' "$T/regions.json" "$LPORT")"

echo go >&9
exec 9>&-
wait_for 30 grep -q '^DONE ' "$T/client.out" || fail "upload did not finish: $(cat "$T/client.err")"
grep -q '^DONE 200 ' "$T/client.out" || fail "upload answer: $(cat "$T/client.out")"
stream_gone() {
    admin_get "/memory/regions?top=1000" >"$T/regions2.json" || return 1
    $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(1 if [x for x in r["regions"] if x["path"].startswith("/sha256") and x["stream_id"] > 0] else 0)' "$T/regions2.json"
}
wait_for 20 stream_gone || fail "stream row still listed after the upload ended"
pass "stream row gone after the upload completed"
