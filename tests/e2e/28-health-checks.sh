#!/usr/bin/env bash
# 28-health-checks: active health checks over a cluster of three real upstreams (node), for an
# h2c and an HTTP/1.1 cluster:
#   - one endpoint is killed (SIGKILL) while h2load runs: the checker (health_check, one probe
#     per interval per endpoint from one worker) marks it unhealthy after unhealthy_threshold
#     failed probes, and from then on no request is sent to it (its `requests` figure in
#     /clusters stays put through a second h2load run); requests caught by the kill before
#     their response began retry on another endpoint (h2load fails at most the 16 in flight
#     whose response c had begun), and every access-log line is a 200;
#   - it is started again on the same port: healthy_threshold passing probes bring it back, and
#     it serves requests again (its own /count and weir's figure both grow);
#   - the probe rate does not grow with the workers: 4 workers, ~1 probe per interval;
#   - over TLS too: an h2 (HTTP/2 over TLS) and an HTTP/1.1-over-TLS cluster of two node
#     upstreams with a test CA: probed through handshakes (healthy), one killed -> unhealthy,
#     requests all go to the other;
#   - --check-config refuses a bad health_check with file:line:column.
source "$(dirname "$0")/lib.sh"
need node
need h2load
need curl

ep_ge() { local v; v=$(cluster_ep "$1" "$2") && [ "$v" -ge "$3" ]; }  # ep_ge PORT FIELD N
ep_is() { [ "$(cluster_ep "$1" "$2")" = "$3" ]; }                     # ep_is PORT FIELD VALUE
probes_ge() { [ "$(stat_total upstream_health_probes)" -ge "$1" ]; }
h2load_ok() { # h2load_ok LOG: "0 failed, 0 errored" and at least one success
    grep -qE 'requests: [0-9]+ total, [0-9]+ started, [0-9]+ done, [1-9][0-9]* succeeded, 0 failed, 0 errored, 0 timeout' "$1"
}

# --check-config: a bad key in health_check names file, line and column.
cat >"$T/bad.yaml" <<YAML
clusters:
  - name: b
    endpoints: [127.0.0.1:1]
    health_check:
      path: /
      unhealthy_threshold: 0
routes:
  - cluster: b
YAML
check_config_rejects "$T/bad.yaml" 'bad\.yaml:6:[0-9]+: clusters\[0\]\.health_check\.unhealthy_threshold: '

for proto in h2c http1; do
    start_upstream a --proto "$proto"
    start_upstream b --proto "$proto"
    start_upstream c --proto "$proto"
    cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
workers: 4
access_log: $T/access-$proto.log
clusters:
  - name: three
    protocol: $proto
    endpoints: [127.0.0.1:$a_PORT, 127.0.0.1:$b_PORT, 127.0.0.1:$c_PORT]
    health_check:
      path: /
      interval: 200ms
      timeout: 1s
      healthy_threshold: 2
      unhealthy_threshold: 2
    # Room for every request caught by the kill (16 in flight, and those sent to c before
    # the threshold) to retry: the default budget (20%, at least 3) would fail some of them.
    retries: {max: 2, budget_percent: 100, min_retry_concurrency: 100}
routes:
  - cluster: three
YAML
    start_weir -c "$T/weir.yaml"
    wait_for 20 ep_ge "$c_PORT" health_checks 2 || fail "$proto: no health checks"
    [ "$(cluster_ep "$c_PORT" health)" = healthy ] || fail "$proto: c not healthy at start"

    # The probe rate: one probe per endpoint per 200 ms from one worker, not four.
    p0=$(stat_total upstream_health_probes)
    t0=$(date +%s%N)
    wait_for 10 probes_ge $((p0 + 30))
    t1=$(date +%s%N)
    p1=$(stat_total upstream_health_probes)
    rate=$(( (p1 - p0) * 1000000000 / (t1 - t0) ))
    [ "$rate" -le 20 ] || fail "$proto: $rate probes/s for 3 endpoints at 200 ms (4 workers multiply it?)"
    pass "$proto: $rate probes/s for 3 endpoints at a 200 ms interval with 4 workers"

    # h2load through the kill of c.
    # (-n, not -D: at the end of a duration h2load cancels what is in flight and counts it failed)
    h2load -c 4 -m 4 -n 60000 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load1.log" 2>&1 &
    H2L=$!
    wait_for 10 ep_ge "$c_PORT" requests 50 || fail "$proto: c got no traffic"
    kill -KILL "$c_PID"
    wait "$c_PID" 2>/dev/null || true
    t_kill=$(date +%s%N)
    wait_for 20 ep_is "$c_PORT" health unhealthy || fail "$proto: c never turned unhealthy"
    t_unh=$(date +%s%N)
    why=$(cluster_ep "$c_PORT" health_check_failure)
    r1=$(cluster_ep "$c_PORT" requests)
    kill -0 "$H2L" 2>/dev/null || fail "$proto: h2load ended before c was marked unhealthy (too fast a machine: raise -n)"
    wait "$H2L" || fail "$proto: h2load exited $?: $(tail -n 5 "$T/h2load1.log")"
    # Requests that had not started their response retry on another endpoint; one whose
    # response c had begun when it died cannot be replayed (its head reached the client), so
    # up to the 16 in flight (4 connections x 4 streams) may fail, and nothing else.
    failed=$(sed -nE 's/^requests: .* ([0-9]+) failed, .*/\1/p' "$T/h2load1.log")
    ok1=$(sed -nE 's/^requests: .* ([0-9]+) succeeded, .*/\1/p' "$T/h2load1.log")
    [ -n "$failed" ] && [ "$failed" -le 16 ] && [ "$ok1" -ge 59984 ] ||
        fail "$proto: h2load across the kill: $(grep requests: "$T/h2load1.log")"
    pass "$proto: c killed, unhealthy after $(( (t_unh - t_kill) / 1000000 )) ms ($why); h2load: $ok1 succeeded, $failed failed (cut mid-response by the kill; at most the 16 in flight)"

    # No request goes to c while it is unhealthy.
    h2load -c 4 -m 4 -n 3000 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load2.log" 2>&1 || fail "$proto: h2load 2"
    h2load_ok "$T/h2load2.log" || fail "$proto: h2load while c is down: $(grep requests: "$T/h2load2.log")"
    r2=$(cluster_ep "$c_PORT" requests)
    [ "$r2" = "$r1" ] || fail "$proto: $((r2 - r1)) requests went to c after it was marked unhealthy"
    pass "$proto: 3000 more requests, 0 to the unhealthy endpoint (its figure stayed at $r1)"

    # c comes back on the same port and rejoins.
    start_upstream c --proto "$proto" --port "$c_PORT"
    wait_for 20 ep_is "$c_PORT" health healthy || fail "$proto: c never rejoined"
    n0=$(curl -sS --max-time 5 "http://127.0.0.1:$c_PORT/count" --http2-prior-knowledge 2>/dev/null ||
        curl -sS --max-time 5 "http://127.0.0.1:$c_PORT/count")
    h2load -c 4 -m 4 -n 900 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load3.log" 2>&1 || fail "$proto: h2load 3"
    h2load_ok "$T/h2load3.log" || fail "$proto: h2load after rejoin: $(grep requests: "$T/h2load3.log")"
    r3=$(cluster_ep "$c_PORT" requests)
    n1=$(curl -sS --max-time 5 "http://127.0.0.1:$c_PORT/count" --http2-prior-knowledge 2>/dev/null ||
        curl -sS --max-time 5 "http://127.0.0.1:$c_PORT/count")
    [ $((r3 - r2)) -ge 100 ] || fail "$proto: only $((r3 - r2)) of 900 requests went to c after it rejoined"
    [ $((n1 - n0)) -ge $((r3 - r2)) ] || fail "$proto: c counted $((n1 - n0)) requests, weir sent $((r3 - r2))"
    pass "$proto: c rejoined; it served $((r3 - r2)) of 900 requests (its own count grew by $((n1 - n0)), probes included)"

    stop_weir TERM || fail "$proto: weir exited $? after SIGTERM"
    # Every request of the three runs got a 200 (the access log is complete after the drain).
    total=$(wc -l <"$T/access-$proto.log")
    bad=$(grep -vc '" 200 ' "$T/access-$proto.log" || true)
    [ "$bad" = 0 ] || fail "$proto: $bad non-200 lines in the access log: $(grep -v '" 200 ' "$T/access-$proto.log" | head -n 3)"
    retried=$(grep -c ' retries=' "$T/access-$proto.log" || true)
    pass "$proto: access log: $total lines, all 200 ($retried with retries=)"
    kill "$a_PID" "$b_PID" "$c_PID" 2>/dev/null || true
done

# Over TLS: the probes use the cluster's transport (handshake, verification with the CA).
make_test_pki "$T"
for proto in h2 http1; do
    up=h2c
    [ "$proto" = http1 ] && up=http1
    start_upstream ta --proto "$up" --tls-cert "$T/srv.pem" --tls-key "$T/srv.key"
    start_upstream tb --proto "$up" --tls-cert "$T/srv.pem" --tls-key "$T/srv.key"
    cat >"$T/tls.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
workers: 2
clusters:
  - name: sec
    protocol: $proto
    endpoints: [127.0.0.1:$ta_PORT, 127.0.0.1:$tb_PORT]
    tls: {ca: ca.pem}
    health_check: {path: /, interval: 200ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2}
routes:
  - cluster: sec
YAML
    start_weir -c "$T/tls.yaml"
    wait_for 20 ep_ge "$tb_PORT" health_checks 3 || fail "tls $proto: no health checks"
    ep_is "$ta_PORT" health healthy && ep_is "$tb_PORT" health healthy || fail "tls $proto: $(admin_get /clusters)"
    hs=$(stat_total upstream_tls_handshakes)
    [ "$hs" -ge 2 ] || fail "tls $proto: $hs handshakes"
    kill -KILL "$tb_PID"
    wait "$tb_PID" 2>/dev/null || true
    wait_for 20 ep_is "$tb_PORT" health unhealthy || fail "tls $proto: tb never turned unhealthy"
    h2load -c 2 -m 2 -n 200 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load-tls.log" 2>&1 || fail "tls $proto: h2load"
    h2load_ok "$T/h2load-tls.log" || fail "tls $proto: $(grep requests: "$T/h2load-tls.log")"
    pass "tls $proto: both endpoints probed over TLS ($hs handshakes, healthy); one killed: unhealthy ($(cluster_ep "$tb_PORT" health_check_failure)), 200 of 200 requests served by the other"
    stop_weir TERM || fail "tls $proto: weir exited $? after SIGTERM"
    kill "$ta_PID" 2>/dev/null || true
done
