#!/usr/bin/env bash
# 26-slow-reader: a 100 MB response streamed through weir to a client that reads slowly
# (node http2 client pausing the stream: about 16 MB/s, in 256 KiB steps) must not make weir
# buffer the response. Flow control runs end to end: the client's window stops weir's sends,
# weir consumes upstream bytes only as the client takes them, so the upstream's window stops
# the upstream. What weir may hold for the stream is then bounded by its stream buffer
# (limits.stream_buffer_bytes, 64 KiB) on each side, plus the write batch and nghttp2's frame
# buffers: well under 1 MiB. The bound checked, baseline + 32 MiB, leaves room for the
# allocator's caches and segment granularity (4 MiB segments) while still catching any design
# that buffers the body (100 MB). VmRSS is sampled every 20 ms during the transfer, and the
# body's sha256 must equal the upstream's x-sha256. Both an h2c and an HTTP/1.1 upstream.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need node
need curl

N=100000000
BOUND_KB=$((32 * 1024))

cat >"$T/slow.js" <<'EOF'
// node slow.js URL N: GET /bytes/N, reading ~256 KiB then pausing 16 ms; prints the result.
const http2 = require('http2');
const crypto = require('crypto');
const [base, n] = process.argv.slice(2);
const s = http2.connect(base);
s.on('error', (e) => { console.log(`session error ${e.message}`); process.exit(1); });
const req = s.request({ ':path': `/bytes/${n}` });
const h = crypto.createHash('sha256');
let head = null, got = 0, since = 0;
req.on('response', (hd) => { head = hd; });
req.on('data', (d) => {
    h.update(d);
    got += d.length;
    since += d.length;
    if (since >= 262144) {
        since = 0;
        req.pause();
        setTimeout(() => req.resume(), 16);
    }
});
req.on('end', () => {
    const hex = h.digest('hex');
    const ok = head && head[':status'] === 200 && got === Number(n) && hex === head['x-sha256'];
    console.log(`${ok ? 'ok' : 'BAD'} status=${head && head[':status']} bytes=${got}`);
    s.close();
    process.exit(ok ? 0 : 1);
});
req.on('error', (e) => { console.log(`stream error ${e.message} after ${got}`); process.exit(1); });
EOF

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$WEIR_PID/status"; }

run_case() {
    local label=$1 base max cur out rc=0
    # Warm up: one small exchange, so pools, thread caches and the upstream connection exist.
    curl -sS --max-time 10 --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$WEIR_PORT/bytes/1000" ||
        fail "$label: warm-up failed"
    base=$(rss_kb)
    max=$base
    node "$T/slow.js" "http://127.0.0.1:$WEIR_PORT" "$N" >"$T/slow.out" 2>&1 &
    local cpid=$!
    while kill -0 "$cpid" 2>/dev/null; do
        cur=$(rss_kb)
        [ "$cur" -gt "$max" ] && max=$cur
        sleep 0.02
    done
    wait "$cpid" || rc=$?
    out=$(cat "$T/slow.out")
    [ "$rc" = 0 ] || fail "$label: slow client: $out"
    [ $((max - base)) -le "$BOUND_KB" ] ||
        fail "$label: weir RSS grew by $((max - base)) KiB (baseline $base KiB, peak $max KiB), bound $BOUND_KB KiB"
    pass "$label: 100 MB to a slow reader, $out; weir VmRSS baseline $base KiB, peak $max KiB (+$((max - base)) KiB, bound +$BOUND_KB KiB)"
}

with_each_upstream run_case
