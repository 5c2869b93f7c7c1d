#!/usr/bin/env bash
# 44-idle-decay: after a burst, an idle weir gives its memory back on its own. With
# memory.decay at 200 ms, committed bytes (and RSS) fall well below the burst's peak within a
# few seconds with no traffic at all: nothing but the overload monitor's tick runs mem/'s decay
# then, so this fails if the idle path never releases.
source "$(dirname "$0")/lib.sh"
need h2load
need node

start_upstream up --proto h2c
cat >"$T/weir.yaml" <<YEOF
listeners: [{address: 127.0.0.1:0}]
admin: {address: 127.0.0.1:0}
workers: 2
memory: {decay: 200ms}
clusters: [{name: up, endpoints: [127.0.0.1:$up_PORT]}]
routes: [{match: {path_prefix: /}, cluster: up}]
YEOF
start_weir -c "$T/weir.yaml"

committed() { admin_get /memory | $PY -c 'import json,sys; print(json.load(sys.stdin)["committed"])'; }
base=$(committed)
# The burst: 400 concurrent 256 KiB responses keep many stream buffers and chunks live at once.
h2load -n 2000 -c 40 -m 10 "http://127.0.0.1:$WEIR_PORT/bytes/262144" >"$T/h2load.out" 2>&1 || true
grep -q "2000 succeeded, 0 failed" "$T/h2load.out" || fail "burst: $(grep -E 'requests:' "$T/h2load.out")"
peak=$(committed)
[ "$peak" -gt $((base + 4 * 1048576)) ] || fail "the burst did not raise committed (base $base, after $peak): nothing to release"
rss_peak=$(awk '/^VmRSS:/{print $2}' "/proc/$WEIR_PID/status")

# No traffic from here on. Committed must fall to within 2 MiB + a quarter of the growth.
want=$((base + 2097152 + (peak - base) / 4))
fallen() { [ "$(committed)" -le "$want" ]; }
wait_for 10 fallen || fail "idle weir kept its memory: committed $(committed) > $want (base $base, peak $peak)"
rss_now=$(awk '/^VmRSS:/{print $2}' "/proc/$WEIR_PID/status")
pass "idle decay: committed base $base, after burst $peak, idle $(committed) bytes; RSS $rss_peak -> $rss_now KiB"
stop_weir || fail "weir exit status $?"
