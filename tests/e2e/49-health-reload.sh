#!/usr/bin/env bash
# 49-health-reload: health checks and reload together (issue 17 parts 1 and 2). A cluster of three
# real upstreams (node, h2c) with active health checks and no retries (retries: {max: 0}, so a
# request sent to a dead endpoint fails where the client sees it), 4 workers:
#   - c is killed and turns unhealthy, and in a second cluster o (outlier_detection only) an
#     endpoint where nothing listens is ejected for 60 s; a reload that changes only a route
#     keeps o's endpoint ejected (its remaining time goes on, 1 ejection; 100 requests to o all
#     2xx) and c unhealthy:
#     300 requests after the reload (h2load, 8 connections spread over the workers, each making
#     its pool for the cluster only now) all answer 2xx, none goes to c, and /clusters says c is
#     unhealthy;
#   - a reload that changes the cluster (a fourth endpoint d) starts it afresh and the probes
#     follow it: /clusters lists the new endpoints, d is probed and healthy, c turns unhealthy
#     again by the new cluster's own probes, and the old cluster's probe timer is gone (no UAF);
#   - 12 reloads that each change the cluster (and retire cluster h, whose endpoint never answers,
#     with a probe of it in flight) while /clusters and /metrics are read in a loop:
#     every answer is whole and names the config's cluster of that moment (under ASan, the CI
#     build, a read of a freed config aborts weir); /clusters ends with the last cluster; the
#     retired clusters' probes in flight hold their configs (configs_live >= 2) until they time
#     out, then every old config is freed (configs_live 1).
source "$(dirname "$0")/lib.sh"
need node
need curl
need h2load

start_upstream a --proto h2c
start_upstream b --proto h2c
start_upstream c --proto h2c
start_upstream d --proto h2c
dead_PORT=$(free_port) # nothing listens there: each connect fails at once
# An endpoint that accepts (the kernel's backlog) and never answers: a probe of it stays in flight
# for its 5 s timeout, so the reloads of part 3 retire its cluster with a probe running.
$PY -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128)
print("PORT", s.getsockname()[1], flush=True); time.sleep(600)' >"$T/hang.out" &
E2E_PIDS+=("$!")
wait_for 10 grep -q '^PORT ' "$T/hang.out" || fail "the hanging endpoint did not start"
hang_PORT=$(awk '/^PORT /{print $2}' "$T/hang.out")

# gen NAME ENDPOINTS [EXTRA_ROUTE]: writes the config (cluster NAME over ENDPOINTS, a port list).
gen() {
    local eps="" p
    for p in $2; do eps="$eps${eps:+, }127.0.0.1:$p"; done
    cat >"$T/weir.yaml.new" <<YAML
listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
workers: 4
reload: {watch: false}
clusters:
  - name: $1
    protocol: h2c
    endpoints: [$eps]
    health_check: {path: /, interval: 200ms, timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}
    retries: {max: 0}
  - name: o
    protocol: h2c
    endpoints: [127.0.0.1:$a_PORT, 127.0.0.1:$dead_PORT]
    outlier_detection: {consecutive_5xx: 2, base_ejection_time: 60s, max_ejection_percent: 50}
    retries: {max: 0}
  - name: h${4:-0}
    protocol: h2c
    endpoints: [127.0.0.1:$hang_PORT]
    health_check: {path: /, interval: 100ms, timeout: 5s}
routes:
  - match: {path_prefix: /status/}
    cluster: o
  - match: {path_prefix: /${3:-r0}}
    direct_response: {status: 200, body: "${3:-r0}\n"}
  - match: {path_prefix: /}
    cluster: $1
YAML
    mv "$T/weir.yaml.new" "$T/weir.yaml"
}
A() { echo "http://127.0.0.1:$ADMIN_PORT"; }
reload() { # reload N: POST /reload, which must answer version N
    local out
    out=$(curl -sS --max-time 40 -X POST "$(A)/reload") || fail "POST /reload: curl failed"
    echo "$out" | grep -q "^reloaded: version $1 " || fail "POST /reload (want version $1): $out"
}
ep_is() { [ "$(cluster_ep "$1" "$2")" = "$3" ]; }
ep_ge() { local v; v=$(cluster_ep "$1" "$2") && [ "$v" -ge "$3" ]; }
cluster_names() { admin_get /clusters | $PY -c 'import json,sys; print(" ".join(c["name"] for c in json.load(sys.stdin)["clusters"]))'; }
# load N [PATH]: N requests from h2load on 8 fresh connections (the kernel spreads them over the
# workers); prints how many answered 2xx.
load() {
    h2load -c 8 -m 1 -n "$1" "http://127.0.0.1:$WEIR_PORT${2:-/}" >"$T/h2load.log" 2>&1 || true
    sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p' "$T/h2load.log" | grep . || echo 0
}

gen three "$a_PORT $b_PORT $c_PORT"
start_weir -c "$T/weir.yaml"
wait_for 20 ep_ge "$c_PORT" health_checks 2 || fail "no health checks"
ep_is "$c_PORT" health healthy || fail "c not healthy at start"

# 1. c dies and turns unhealthy; a reload that changes only a route keeps it so.
kill -KILL "$c_PID"
wait "$c_PID" 2>/dev/null || true
wait_for 20 ep_is "$c_PORT" health unhealthy || fail "c never turned unhealthy"
r_c=$(cluster_ep "$c_PORT" requests)
# Cluster o's dead endpoint: two failed connects in a row eject it for 60 s.
for _ in 1 2 3 4 5 6 7 8; do
    curl -sS --max-time 10 --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$WEIR_PORT/status/200" || true
done
wait_for 10 ep_is "$dead_PORT" health ejected || fail "o's dead endpoint was not ejected: $(admin_get /clusters)"
left0=$(cluster_ep "$dead_PORT" ejected_for_ms)
gen three "$a_PORT $b_PORT $c_PORT" r1
reload 2
[ "$(curl -sS --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$WEIR_PORT/r1")" = r1 ] ||
    fail "the reloaded route /r1 does not answer"
ok=$(load 300)
[ "$ok" = 300 ] || fail "after a route-only reload: $ok of 300 requests answered 2xx (the others went to the dead c?)"
kill -0 "$WEIR_PID" 2>/dev/null || fail "weir died after the route-only reload"
st=$(cluster_ep "$c_PORT" health) || fail "/clusters after the route-only reload: no answer or no c"
[ "$st" = unhealthy ] || fail "after a route-only reload /clusters says c is '$st', not unhealthy"
ok=$(load 100 /status/200)
[ "$ok" = 100 ] || fail "after a route-only reload: $ok of 100 requests to cluster o answered 2xx (the others went to its ejected endpoint?)"
ep_is "$dead_PORT" health ejected || fail "o's dead endpoint is no longer ejected after the reload"
left1=$(cluster_ep "$dead_PORT" ejected_for_ms)
[ "$left1" -le "$left0" ] && [ "$left1" -gt 0 ] || fail "the ejection's remaining time went from $left0 to $left1 ms across the reload"
[ "$(cluster_ep "$dead_PORT" ejections)" = 1 ] || fail "o's dead endpoint: $(cluster_ep "$dead_PORT" ejections) ejections, want 1"
r_c2=$(cluster_ep "$c_PORT" requests)
[ "$r_c2" = "$r_c" ] || fail "$((r_c2 - r_c)) requests went to the unhealthy c after the reload"
pass "route-only reload: c stayed unhealthy; 300 of 300 requests answered 2xx, 0 went to c; o's ejected endpoint stayed ejected ($left0 ms left before, $left1 after, 1 ejection), 100 of 100 to o 2xx"

# 2. A reload that changes the cluster: its endpoints start afresh and the probes follow it.
gen three "$a_PORT $b_PORT $c_PORT $d_PORT" r2
reload 3
wait_for 20 ep_ge "$d_PORT" health_checks 2 || fail "the new endpoint d is not probed after the reload: $(admin_get /clusters)"
wait_for 20 ep_is "$d_PORT" health healthy || fail "d never turned healthy"
wait_for 20 ep_is "$c_PORT" health unhealthy || fail "c never turned unhealthy in the changed cluster"
hc_c=$(cluster_ep "$c_PORT" health_checks)
ok=$(load 200)
[ "$ok" = 200 ] || fail "after the cluster changed: $ok of 200 requests answered 2xx"
d_n=$(curl -sS --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$d_PORT/count")
[ "$d_n" -ge 10 ] || fail "d got only $d_n requests (probes included)"
pass "changed cluster: d probed and healthy, c unhealthy again after $hc_c probes of its own; 200 of 200 answered 2xx, d counted $d_n"

# 3. Reloads that change the cluster while the admin reads /clusters and /metrics.
(
    while [ ! -e "$T/stop" ]; do
        curl -sS --max-time 10 "$(A)/clusters" >>"$T/clusters.out" 2>/dev/null && echo >>"$T/clusters.out"
        curl -sS --max-time 10 "$(A)/metrics" 2>/dev/null | grep -c '^weir_cluster_endpoint_healthy{' >>"$T/metrics.out" || true
    done
) &
POLL=$!
E2E_PIDS+=("$POLL")
v=3
for i in $(seq 1 12); do
    v=$((v + 1))
    if [ $((i % 2)) = 1 ]; then gen "k$i" "$a_PORT $b_PORT" "r$i" "$i"; else gen "k$i" "$a_PORT $b_PORT $d_PORT" "r$i" "$i"; fi
    reload "$v"
    # Traffic on the new cluster, so the old config's pools drain and it is freed.
    [ "$(load 20)" = 20 ] || fail "reload $i: requests failed"
    kill -0 "$WEIR_PID" 2>/dev/null || fail "weir died during reload $i"
done
touch "$T/stop"
wait "$POLL" 2>/dev/null || true
# The retired h11 still has its probe of the silent endpoint in flight (5 s timeout), which holds
# its pool and so its config; when the probe times out the pool and the config go.
live=$(stat_total configs_live)
[ "$live" -ge 2 ] || fail "configs_live $live right after the reloads: no retired cluster held by a probe in flight?"
configs_one() { [ "$(stat_total configs_live)" = 1 ]; }
wait_for 30 configs_one || fail "old configs still alive 30 s after the reloads: configs_live $(stat_total configs_live)"
kill -0 "$WEIR_PID" 2>/dev/null || fail "weir died while /clusters was read during reloads"
polls=$(grep -c . "$T/clusters.out" || true)
[ "$polls" -ge 12 ] || fail "only $polls /clusters answers during the reloads"
$PY - "$T/clusters.out" <<'PY' || fail "a /clusters answer during the reloads was not whole"
import json, re, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    if not line.strip():
        continue
    cs = json.loads(line)["clusters"]
    assert len(cs) == 3 and re.fullmatch(r"three|k[0-9]+", cs[0]["name"]), (n, line[:200])
    assert cs[1]["name"] == "o" and re.fullmatch(r"h[0-9]+", cs[2]["name"]), (n, line[:200])
PY
names=$(cluster_names)
[ "$names" = "k12 o h12" ] || fail "/clusters after the reloads lists '$names', not the active config's k12 o h12"
wait_for 20 ep_ge "$d_PORT" health_checks 2 || fail "k12's d is not probed"
pass "12 cluster-changing reloads with $polls /clusters reads (and as many /metrics) meanwhile: each whole, /clusters ends with k12, d probed; configs_live $live while probes of retired clusters ran, then 1"
stop_weir TERM || fail "weir exited $? after SIGTERM"
