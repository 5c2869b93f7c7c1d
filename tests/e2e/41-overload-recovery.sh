#!/usr/bin/env bash
# 41-overload-recovery: after an overload the level comes back to normal on its own and weir
# serves again. weir runs with a 16 MiB budget and, from a config file, elevated at 0.30 (stream
# admission refuses from a pool sized by the elevated mark: at 0.50 this load stayed below it) and
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

UPSTREAM_PID=
node "$E2E_DIR/overload-slow-upstream.js" >"$T/up.out" 2>"$T/up.err" &
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
memory: {limit: ${LIMIT_MIB}MiB, elevated: 0.30, critical: 0.90, hysteresis: 0.05}
EOF
start_weir -c "$T/ov.yaml"

level() { admin_get /overload | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).level))"; }
is_normal() { [ "$(level)" = normal ]; }
is_normal || fail "weir did not start at level normal: $(admin_get /overload)"

node "$E2E_DIR/overload-uploads.js" "http://127.0.0.1:$WEIR_PORT" 8 60 $((1024 * 1024)) 1500 8000 60 \
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
