#!/usr/bin/env bash
# 04-drain: SIGTERM during a slow in-flight response: the response completes intact, new
# connections are refused while draining, and weir exits 0. With a short drain_timeout, a
# response slower than the deadline is cut and weir still exits 0, promptly.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need node

stat_of() { # stat_of NAME: one counter from the admin /stats JSON
    admin_get /stats | $PY -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}
active_ge1() { [ "$(stat_of streams_active 2>/dev/null || echo 0)" -ge 1 ]; }
refused() { # a new connection must be refused (curl exit 7) while draining
    local rc=0
    curl -sS --max-time 2 --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$WEIR_PORT/" 2>/dev/null || rc=$?
    [ "$rc" = 7 ]
}

start_upstream up --proto h2c

# --- 1. graceful: the slow response finishes ---------------------------------------------
start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "h2c://127.0.0.1:$up_PORT"
curl -sS --max-time 30 --http2-prior-knowledge -D "$T/slow.hdrs" -o "$T/slow.body" \
    "http://127.0.0.1:$WEIR_PORT/slow?ms=2500&bytes=300000" &
CURL_PID=$!
wait_for 10 active_ge1 || fail "the slow request never became active"
t0=$(date +%s%N)
kill -TERM "$WEIR_PID"
wait_for 2 refused || fail "new connections are still accepted while draining"
pass "new connections refused while draining"
crc=0
wait "$CURL_PID" || crc=$?
[ "$crc" = 0 ] || fail "in-flight curl failed with $crc during drain"
[ "$(wc -c <"$T/slow.body")" = 300000 ] || fail "in-flight body truncated: $(wc -c <"$T/slow.body")"
want=$(grep -i '^x-sha256:' "$T/slow.hdrs" | tr -d '\r' | awk '{print $2}')
got=$(sha256sum "$T/slow.body" | awk '{print $1}')
[ "$want" = "$got" ] || fail "in-flight body corrupted ($got != $want)"
pass "in-flight slow response completed intact during drain"
rc=0
wait "$WEIR_PID" || rc=$?
[ "$rc" = 0 ] || fail "weir exited $rc after drain"
grep -q 'draining' "$T/weir.log" || fail "no drain message"
pass "weir exited 0 after the drain ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"

# --- 2. deadline: a response slower than drain_timeout is cut, exit is still 0 ------------
cat >"$T/drain.yaml" <<YEOF
listeners:
  - name: main
    address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
clusters:
  - name: backend
    endpoints: [127.0.0.1:$up_PORT]
routes:
  - match: {path_prefix: /}
    cluster: backend
drain_timeout: 500ms
YEOF
start_weir -c "$T/drain.yaml"
curl -sS --max-time 30 --http2-prior-knowledge -o "$T/slow2.body" \
    "http://127.0.0.1:$WEIR_PORT/slow?ms=20000&bytes=100000" 2>/dev/null &
CURL_PID=$!
wait_for 10 active_ge1 || fail "the slow request never became active (2)"
t0=$(date +%s%N)
kill -TERM "$WEIR_PID"
rc=0
wait "$WEIR_PID" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$rc" = 0 ] || fail "weir exited $rc after the drain deadline"
[ "$ms" -lt 5000 ] || fail "weir took $ms ms to stop with drain_timeout 500ms"
grep -q 'drain deadline passed' "$T/weir.log" || fail "no deadline message"
crc=0
wait "$CURL_PID" || crc=$?
[ "$crc" != 0 ] || fail "the 20 s response cannot have completed"
pass "drain deadline: exit 0 after $ms ms, the slow stream was cut"
