#!/usr/bin/env bash
# 40-overload-heavy: weir with a 16 MiB memory budget (--memory-limit's smallest; weir's own
# baseline is about 1 MiB committed) takes 8 node http2 sessions x 40 concurrent 1 MiB
# uploads to a deliberately slow h2c upstream (it leaves each request body unread for 1.5 s,
# then hashes it). Each stream in flight holds up to its 64 KiB flow-control buffer in weir, so
# the load asks for far more than the budget. Checked:
#   - clients see RST_STREAM(REFUSED_STREAM) for new streams: the overload manager refuses
#     them once the worker's streams could together fill its part of the budget up to the
#     elevated threshold (the stream pool, proxy/core/shed.c), so memory need not fill first;
#     where it does, the level rises to elevated and the transition is logged;
#   - weir's VmRSS, sampled every 50 ms, stays under the limit plus a fixed overhead
#     (RSS_OVERHEAD_MIB below: the binary, its libraries, thread stacks and the memory
#     library's own metadata, none of which the budget counts);
#   - every stream ends as one of: 200 with the sha256 of exactly the bytes sent, refused,
#     reset (ENHANCE_YOUR_CALM when shed at critical, or another reset code), or an explicit
#     5xx; a 200 with a wrong checksum or byte count (silent truncation) fails the test, and so
#     does a stream still open at the deadline;
#   - weir is still alive and serving afterwards, and /overload counted the refusals.
# Then a second weir with low thresholds (critical at 0.45) takes a burst, to check the critical
# actions: the heaviest streams are reset with RST_STREAM(ENHANCE_YOUR_CALM) and an idle
# connection gets GOAWAY(NO_ERROR).
source "$(dirname "$0")/lib.sh"
need node
need curl

LIMIT_MIB=16
RSS_OVERHEAD_MIB=8
SESSIONS=8
STREAMS=40
BYTES=$((1024 * 1024))

# Sanitizer runtimes add shadow memory to VmRSS that no budget counts: there the RSS bound is
# reported but not enforced (everything else still is).
ldd "$WEIR_BIN" >"$T/ldd.txt" 2>&1 || true
SANITIZED=0
grep -qE "lib(a|t|ub)san" "$T/ldd.txt" && SANITIZED=1

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$WEIR_PID/status" 2>/dev/null || echo 0; }

UPSTREAM_PID=
node "$E2E_DIR/overload-slow-upstream.js" >"$T/up.out" 2>"$T/up.err" &
UPSTREAM_PID=$!
E2E_PIDS+=("$UPSTREAM_PID")
wait_for 20 grep -q '^PORT ' "$T/up.out" || fail "slow upstream did not start: $(cat "$T/up.err")"
UP=$(awk '/^PORT /{print $2; exit}' "$T/up.out")

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers 2 \
    --memory-limit "${LIMIT_MIB}MiB" --upstream "h2c://127.0.0.1:$UP"
grep -q "^weir: memory limit $((LIMIT_MIB * 1048576)) bytes" "$T/weir.log" ||
    fail "weir did not report its memory limit"
h2get "http://127.0.0.1:$WEIR_PORT/up?delay_ms=0" -d warmup -o /dev/null ||
    fail "warm-up request failed"
base_kb=$(rss_kb)

node "$E2E_DIR/overload-uploads.js" "http://127.0.0.1:$WEIR_PORT" "$SESSIONS" "$STREAMS" "$BYTES" 1500 3000 90 \
    >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!
max_kb=$base_kb
saw_level=normal
while kill -0 "$LOAD_PID" 2>/dev/null; do
    cur=$(rss_kb)
    [ "$cur" -gt "$max_kb" ] && max_kb=$cur
    kill -0 "$WEIR_PID" 2>/dev/null || fail "weir died under load"
    sleep 0.05
done
wait "$LOAD_PID" || fail "load client failed: $(cat "$T/load.err")"
res=$(cat "$T/load.out")
echo "load: $res"
kill -0 "$WEIR_PID" 2>/dev/null || fail "weir died under load"

field() { node -e "const o=JSON.parse(process.argv[1]); console.log(o['$1'])" "$res"; }
ok=$(field ok)
bad=$(field bad)
refused=$(field refused)
hung=$(field hung)
total=$(field total)
[ "$bad" = 0 ] || fail "$bad streams answered 200 with a wrong checksum or length: $res"
[ "$hung" = 0 ] || fail "$hung streams still open at the deadline: $res"
[ "$refused" -gt 0 ] || fail "no stream was refused under overload: $res"
[ "$ok" -gt 0 ] || fail "no stream completed: $res"
# Refusals come from the stream pool before the level need rise (see the top); a transition,
# when there is one, is logged (checked in the burst below).

limit_kb=$((LIMIT_MIB * 1024))
bound_kb=$(((LIMIT_MIB + RSS_OVERHEAD_MIB) * 1024))
[ "$max_kb" -le "$bound_kb" ] || [ "$SANITIZED" = 1 ] ||
    fail "weir VmRSS peaked at $max_kb KiB, over the limit ($limit_kb KiB) + $RSS_OVERHEAD_MIB MiB"

ov=$(admin_get /overload)
echo "overload: $ov"
node -e "const o=JSON.parse(process.argv[1]); process.exit(o.actions.refuse_stream > 0 ? 0 : 1)" \
    "$ov" || fail "/overload did not count refused streams: $ov"
admin_get /healthz | grep -q ok || fail "weir's admin port stopped answering"
pass "overload-heavy: $total streams: $ok ok (checksummed), $refused refused, $(field reset) reset $(node -e "console.log(JSON.stringify(JSON.parse(process.argv[1]).reset_codes))" "$res"), 5xx $(node -e "console.log(JSON.stringify(JSON.parse(process.argv[1]).status))" "$res"); VmRSS baseline $base_kb KiB, peak $max_kb KiB (limit $limit_kb KiB + $RSS_OVERHEAD_MIB MiB overhead allowed$([ "$SANITIZED" = 1 ] && echo '; sanitizer build: not enforced'))"

stop_weir TERM || fail "weir exited $? after SIGTERM"

# Phase 2: shedding at critical. The same budget with low thresholds (elevated 0.40, critical
# 0.45, from a config file; the stream pool admits streams up to 0.40 of the budget counted at
# two stream buffers each, and what they really hold plus weir's baseline passes 0.45 but
# not 0.50, so critical sits just above elevated) and a burst of 8 sessions x 20 streams
# opened at once: the level reaches critical with memory to spare under the hard limit, and
# the heaviest streams are reset with RST_STREAM(ENHANCE_YOUR_CALM) (11), a bounded number per
# worker per shedding tick. The same outcome rules hold: no silent truncation, no hang, no crash, RSS under the same bound.
cat >"$T/shed.yaml" <<EOF
listeners: [{name: main, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 2
clusters: [{name: up, protocol: h2c, endpoints: ["127.0.0.1:$UP"]}]
routes: [{match: {path_prefix: /}, cluster: up}]
memory: {limit: ${LIMIT_MIB}MiB, elevated: 0.40, critical: 0.45, hysteresis: 0.05}
EOF
start_weir -c "$T/shed.yaml"

# An idle connection (one finished request, no open stream) must get GOAWAY at critical.
cat >"$T/idle.js" <<'EOF'
// node idle.js URL: one GET, then idle; prints "goaway CODE" when the server sends GOAWAY.
const http2 = require('http2');
const s = http2.connect(process.argv[2]);
s.on('error', () => {});
s.on('goaway', (code) => { console.log(`goaway ${code}`); process.exit(0); });
const req = s.request({ ':method': 'POST', ':path': '/up?delay_ms=0' });
req.on('response', () => console.log('ready'));
req.on('data', () => {});
req.on('error', () => {});
req.end('idle');
setTimeout(() => { console.log('no goaway'); process.exit(1); }, 60000);
EOF
node "$T/idle.js" "http://127.0.0.1:$WEIR_PORT" >"$T/idle.out" 2>&1 &
IDLE_PID=$!
E2E_PIDS+=("$IDLE_PID")
wait_for 10 grep -q '^ready' "$T/idle.out" || fail "the idle client did not get its answer"
node "$E2E_DIR/overload-uploads.js" "http://127.0.0.1:$WEIR_PORT" 8 20 "$BYTES" 1500 0 90 \
    >"$T/load2.out" 2>"$T/load2.err" &
LOAD_PID=$!
while kill -0 "$LOAD_PID" 2>/dev/null; do
    cur=$(rss_kb)
    [ "$cur" -gt "$max_kb" ] && max_kb=$cur
    kill -0 "$WEIR_PID" 2>/dev/null || fail "weir died under the burst"
    sleep 0.05
done
wait "$LOAD_PID" || fail "burst client failed: $(cat "$T/load2.err")"
res=$(cat "$T/load2.out")
echo "burst: $res"
kill -0 "$WEIR_PID" 2>/dev/null || fail "weir died under the burst"
[ "$(field bad)" = 0 ] || fail "burst: a 200 with a wrong checksum or length: $res"
[ "$(field hung)" = 0 ] || fail "burst: streams still open at the deadline: $res"
[ "$max_kb" -le "$bound_kb" ] || [ "$SANITIZED" = 1 ] ||
    fail "burst: weir VmRSS peaked at $max_kb KiB, over the limit ($limit_kb KiB) + $RSS_OVERHEAD_MIB MiB"
grep -q -- '-> critical' "$T/weir.log" || fail "burst: the level never reached critical"
ov=$(admin_get /overload)
echo "overload: $ov"
node -e "const o=JSON.parse(process.argv[1]); process.exit(o.actions.shed_stream > 0 ? 0 : 1)" \
    "$ov" || fail "burst: no stream was shed at critical: $ov"
node -e "const o=JSON.parse(process.argv[1]); process.exit(o.reset_codes['11'] > 0 ? 0 : 1)" \
    "$res" || fail "burst: no client saw RST_STREAM(ENHANCE_YOUR_CALM): $res"
wait_for 10 grep -q '^goaway 0' "$T/idle.out" ||
    fail "burst: the idle connection got no GOAWAY(NO_ERROR) at critical: $(cat "$T/idle.out")"
node -e "const o=JSON.parse(process.argv[1]); process.exit(o.actions.goaway_idle > 0 ? 0 : 1)" \
    "$ov" || fail "burst: goaway_idle was not counted: $ov"
# New streams are refused until the burst's memory has gone back (monitor ticks, decay) and
# the level is normal again; how long that takes depends on how much of the burst got in,
# so wait for it (e2e 41 times the recovery itself).
level() { admin_get /overload | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).level))"; }
is_normal() { [ "$(level)" = normal ]; }
wait_for 30 is_normal || fail "burst: the level did not return to normal: $(admin_get /overload)"
code=$(h2get "http://127.0.0.1:$WEIR_PORT/up?delay_ms=0" -d after -o /dev/null -w '%{http_code}' ||
    true)
[ "$code" = 200 ] || fail "burst: a request after the load got '$code'"
pass "overload-shed (critical at 0.45): $(field total) streams: $(field ok) ok (checksummed), $(field refused) refused, $(field reset) reset $(node -e "console.log(JSON.stringify(JSON.parse(process.argv[1]).reset_codes))" "$res"), 5xx $(node -e "console.log(JSON.stringify(JSON.parse(process.argv[1]).status))" "$res"); VmRSS peak $max_kb KiB"
grep '^weir: overload:' "$T/weir.log" | head -n 12
stop_weir TERM || fail "weir exited $? after SIGTERM"
