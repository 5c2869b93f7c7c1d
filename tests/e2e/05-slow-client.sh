#!/usr/bin/env bash
# 05-slow-client: end-to-end flow control. A client asks for 32 MB through weir from an h2c
# upstream and stops opening its window: weir's per-stream buffering stays bounded
# (stream_buffer_bytes, not the body), and RSS does not grow with the body. When the client
# reads again, the whole body arrives intact. Then the same with a 8 MB request body sent to
# an upstream that echoes its hash.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need node
$PY -c 'import h2' 2>/dev/null || skip "python3-h2 missing"

start_upstream up --proto h2c
start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "h2c://127.0.0.1:$up_PORT" \
    --workers 1

cat >"$T/slow.py" <<'PYEOF'
import hashlib, json, socket, sys, time, urllib.request
import h2.connection, h2.config, h2.events, h2.settings

port, admin, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
N = 32 * 1024 * 1024

def rss():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

def regions():
    with urllib.request.urlopen("http://127.0.0.1:%d/memory/regions?top=50" % admin, timeout=5) as r:
        return json.load(r)["regions"]

s = socket.create_connection(("127.0.0.1", port), timeout=10)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
c.initiate_connection()
s.sendall(c.data_to_send())
rss0 = rss()
sid = c.get_next_available_stream_id()
c.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                     (":path", "/bytes/%d" % N)], end_stream=True)
s.sendall(c.data_to_send())

want_sha, got, h, done = None, 0, hashlib.sha256(), False
unacked = []
def pump(ack):
    global want_sha, got, done
    data = s.recv(1 << 20)
    if not data:
        raise SystemExit("connection closed early")
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            want_sha = dict(ev.headers).get("x-sha256")
        elif isinstance(ev, h2.events.DataReceived):
            got += len(ev.data)
            h.update(ev.data)
            if ack:
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            else:
                unacked.append((ev.flow_controlled_length, ev.stream_id))
        elif isinstance(ev, h2.events.StreamEnded):
            done = True
        elif isinstance(ev, h2.events.StreamReset):
            raise SystemExit("stream reset by weir")
    s.sendall(c.data_to_send())

# Phase 1: read without opening the window, until weir cannot send more.
s.settimeout(1.0)
while True:
    try:
        pump(ack=False)
    except socket.timeout:
        break
assert got <= 65535, "weir sent %d bytes past the client's window" % got
time.sleep(0.5)  # let the upstream fill whatever weir would buffer
rows = [r for r in regions() if r["kind"] == "stream"]
assert rows, "no stream row in /memory/regions"
held = max(r["bytes"] for r in rows)
conn = max(r["bytes"] for r in regions() if r["kind"] == "connection")
grow = rss() - rss0
print("stalled: client has %d bytes, stream holds %d B, connection region %d B, RSS +%d KiB"
      % (got, held, conn, grow // 1024))
assert held <= 256 * 1024, "stream holds %d bytes while the client is stalled" % held
assert grow < 16 * 1024 * 1024, "RSS grew by %d bytes for a stalled 32 MB body" % grow

# Phase 2: read everything.
for n, i in unacked:
    c.acknowledge_received_data(n, i)
s.sendall(c.data_to_send())
s.settimeout(30)
while not done:
    pump(ack=True)
assert got == N, "got %d of %d bytes" % (got, N)
assert h.hexdigest() == want_sha, "body corrupted"
print("resumed: %d bytes, sha256 ok" % got)
PYEOF
out=$($PY "$T/slow.py" "$WEIR_PORT" "$ADMIN_PORT" "$WEIR_PID" 2>&1) || fail "slow client: $out"
pass "$(echo "$out" | head -n 1)"
pass "$(echo "$out" | tail -n 1)"

# A large request body goes through with the client's window opened only as weir drains it.
head -c 8388608 /dev/urandom >"$T/req.bin"
want=$(sha256sum "$T/req.bin" | awk '{print $1}')
got=$(h2get "http://127.0.0.1:$WEIR_PORT/sha256" --data-binary @"$T/req.bin" | awk '{print $1}')
[ "$got" = "$want" ] || fail "8 MB request body: upstream saw $got, expected $want"
pass "8 MB request body arrives intact"
stop_weir TERM || fail "weir exited $? after SIGTERM"

# Stream idle timeout: an upstream that sends nothing for 4 s, with a 1 s limit, gets the
# client a 504 that says why, in well under the 4 s.
cat >"$T/idle.yaml" <<YEOF
listeners:
  - {name: main, address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
clusters:
  - {name: backend, endpoints: [127.0.0.1:$up_PORT]}
routes:
  - {match: {path_prefix: /}, cluster: backend}
limits: {stream_idle_timeout: 1s}
YEOF
start_weir -c "$T/idle.yaml"
t0=$(date +%s%N)
code=$(h2get "http://127.0.0.1:$WEIR_PORT/slow?ms=4000&bytes=0" -o "$T/idle.body" -w '%{http_code}')
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$code" = 504 ] || fail "idle stream: expected 504, got $code after $ms ms"
grep -q 'idle timeout' "$T/idle.body" || fail "504 body does not say why: $(cat "$T/idle.body")"
[ "$ms" -lt 3500 ] || fail "idle stream answered only after $ms ms"
pass "stream idle timeout: 504 after $ms ms"
code=$(h2get "http://127.0.0.1:$WEIR_PORT/slow?ms=600&bytes=1000" -o /dev/null -w '%{http_code}')
[ "$code" = 200 ] || fail "a stream that keeps moving must not time out: $code"
pass "a slow but moving stream is not cut"
stop_weir TERM || fail "weir exited $? after SIGTERM"
