#!/usr/bin/env bash
# 44-idle-decay: after a burst, an idle weir gives its memory back on its own. With
# memory.decay at 200 ms, committed bytes (and RSS) fall well below the burst's peak within a
# few seconds with no traffic at all: nothing but the overload monitor's tick runs mem/'s decay
# then, so this fails if the idle path never releases. And each worker, once it has had no
# connection for memory.decay, hands its thread cache back (its `tcache` in /memory goes to 0),
# which is what lets that memory reach the OS; POST /memory/release has them do it at once.
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
worker_caches() {
    admin_get /memory | $PY -c 'import json,sys
print(" ".join("%s=%d" % (t["name"], t["tcache"]) for t in json.load(sys.stdin)["threads"]
               if t["name"].startswith("weir-w")))'
}
caches_empty() { ! worker_caches | grep -Eq '=[1-9]'; }
wait_for 10 caches_empty || fail "idle workers kept their caches: $(worker_caches)"
[ "$(worker_caches | wc -w)" = 2 ] || fail "expected 2 workers in /memory threads: $(worker_caches)"
pass "idle workers handed their caches back: $(worker_caches)"

# POST /memory/release does not wait for the decay: right after another burst, the answer
# comes once every worker has handed its cache back.
h2load -n 400 -c 8 -m 10 "http://127.0.0.1:$WEIR_PORT/bytes/65536" >"$T/h2load2.out" 2>&1 || true
grep -q "400 succeeded, 0 failed" "$T/h2load2.out" || fail "second burst: $(grep -E 'requests:' "$T/h2load2.out")"
rel=$(curl -sS --max-time 10 -X POST "http://127.0.0.1:$ADMIN_PORT/memory/release") || fail "POST /memory/release"
caches_empty || fail "after POST /memory/release the workers still cache: $(worker_caches) ($rel)"
pass "POST /memory/release: $rel; worker caches then: $(worker_caches)"
stop_weir || fail "weir exit status $?"
