#!/usr/bin/env bash
# 29-outlier-ejection: passive outlier detection (Envoy's outlier_detection semantics) on an
# HTTP/1.1 cluster of three real upstreams: two node upstreams and one that answers 503 to
# everything (a Python HTTP/1.1 server that counts what it gets).
#   - consecutive_5xx: 3: after its third 503 in a row the bad endpoint is ejected and gets no
#     request while ejected (its own counter stays at 3; the client saw exactly three 503s of
#     300 sequential requests); /clusters says "ejected" with reason consecutive_5xx;
#   - base_ejection_time: 2s: it comes back after about 2 s, fails 3 more, and is ejected for
#     base x 2 = 4 s this time (its ejected_for_ms is above 2 s);
#   - max_ejection_percent: 34 of 3 endpoints: with two bad endpoints only one is ejected, the
#     other keeps its traffic (its consecutive_5xx passes 3; ejections_refused_max_percent > 0);
#   - /metrics passes promtool with the weir_cluster_endpoint_* families;
#   - --check-config refuses max_ejection_percent: 101 with file:line:column.
source "$(dirname "$0")/lib.sh"
need node
need h2load
need curl
need promtool

cl_field() { admin_get /clusters | $PY -c 'import json,sys; print(json.load(sys.stdin)["clusters"][0][sys.argv[1]])' "$1"; }
ep_is() { [ "$(cluster_ep "$1" "$2")" = "$3" ]; }

# A bad upstream: 503 to every request; GET /count answers its count of the others.
start_bad() { # start_bad NAME
    local name=$1
    $PY -u - >"$T/$name.out" 2>"$T/$name.err" <<'PY' &
import http.server, socketserver, threading
n = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global n
        if self.path == "/count":
            with lock:
                body = ("%d\n" % n).encode()
            code = 200
        else:
            with lock:
                n += 1
            body = b"bad\n"
            code = 503
        self.send_response(code)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print("PORT", s.server_address[1], flush=True)
s.serve_forever()
PY
    local pid=$!
    E2E_PIDS+=("$pid")
    wait_for 20 grep -q '^PORT ' "$T/$name.out" || fail "bad upstream $name did not start: $(cat "$T/$name.err")"
    eval "${name}_PORT=$(awk '/^PORT /{print $2; exit}' "$T/$name.out")"
}
bad_count() { curl -sS --max-time 5 "http://127.0.0.1:$1/count"; }
codes() { # codes LOG: "N2xx N5xx" from h2load's status line
    sed -nE 's/^status codes: ([0-9]+) 2xx, [0-9]+ 3xx, [0-9]+ 4xx, ([0-9]+) 5xx/\1 \2/p' "$1"
}

# --check-config.
cat >"$T/bad.yaml" <<YAML
clusters:
  - name: b
    endpoints: [127.0.0.1:1]
    outlier_detection:
      consecutive_5xx: 3
      max_ejection_percent: 101
routes:
  - cluster: b
YAML
check_config_rejects "$T/bad.yaml" 'bad\.yaml:6:[0-9]+: clusters\[0\]\.outlier_detection\.max_ejection_percent: '

start_upstream a --proto http1
start_upstream b --proto http1
start_bad x
start_bad y

config() { # config EP1 EP2 EP3
    cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
workers: 2
clusters:
  - name: three
    protocol: http1
    endpoints: [127.0.0.1:$1, 127.0.0.1:$2, 127.0.0.1:$3]
    retries: {max: 0}
    outlier_detection:
      consecutive_5xx: 3
      base_ejection_time: 2s
      max_ejection_percent: 34
      # The multiplier decays one step per interval once an endpoint has been back for an
      # interval (as in Envoy): 5 s leaves time to fail it again at multiplier 2.
      interval: 5s
routes:
  - cluster: three
YAML
}

# One bad endpoint of three. Sequential requests (one connection, one stream at a time), so
# the count is exact: the bad endpoint answers its turn until its third 503 in a row.
config "$a_PORT" "$b_PORT" "$x_PORT"
start_weir -c "$T/weir.yaml"
h2load -c 1 -m 1 -n 300 "http://127.0.0.1:$WEIR_PORT/" >"$T/h1.log" 2>&1 || fail "h2load 1"
read -r ok5 bad5 <<<"$(codes "$T/h1.log")"
[ "$bad5" = 3 ] && [ "$ok5" = 297 ] || fail "300 requests: $ok5 2xx and $bad5 5xx, want 297 and 3"
[ "$(bad_count "$x_PORT")" = 3 ] || fail "the bad endpoint got $(bad_count "$x_PORT") requests, want 3"
ep_is "$x_PORT" health ejected || fail "not ejected: $(admin_get /clusters)"
reason=$(cluster_ep "$x_PORT" ejected_reason)
[ "$reason" = consecutive_5xx ] || fail "ejected_reason $reason"
pass "consecutive_5xx 3: 297 x 200 and 3 x 503 of 300; the bad endpoint got 3 requests and is ejected ($reason, $(cluster_ep "$x_PORT" ejected_for_ms) ms left)"

# It comes back after base_ejection_time, then the second ejection lasts base x 2.
t0=$(date +%s%N)
wait_for 20 ep_is "$x_PORT" health healthy || fail "never came back"
back_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
h2load -c 1 -m 1 -n 30 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2.log" 2>&1 || fail "h2load 2"
read -r ok5 bad5 <<<"$(codes "$T/h2.log")"
[ "$bad5" = 3 ] || fail "after it came back: $bad5 5xx of 30, want 3"
ep_is "$x_PORT" health ejected || fail "not ejected again"
left=$(cluster_ep "$x_PORT" ejected_for_ms)
[ "$left" -gt 2000 ] && [ "$left" -le 4000 ] || fail "second ejection: $left ms left, want 2000 < x <= 4000 (base x 2)"
[ "$(cluster_ep "$x_PORT" ejections)" = 2 ] || fail "ejections $(cluster_ep "$x_PORT" ejections)"
pass "back after $back_ms ms (base 2 s); ejected again after 3 more 503s, for base x 2 ($left ms left)"

# Prometheus: promtool accepts /metrics, and the ejection is there.
admin_get /metrics >"$T/metrics.txt"
promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 ||
    fail "promtool rejects /metrics: $(head -n 20 "$T/promtool.out")"
grep -qE "^weir_cluster_endpoint_ejected\{cluster=\"three\",endpoint=\"127\.0\.0\.1:$x_PORT\"\} 1$" "$T/metrics.txt" ||
    fail "metrics: $(grep weir_cluster_endpoint_ejected "$T/metrics.txt")"
grep -qE "^weir_cluster_endpoint_responses_5xx_total\{cluster=\"three\",endpoint=\"127\.0\.0\.1:$x_PORT\"\} 6$" "$T/metrics.txt" ||
    fail "metrics: $(grep weir_cluster_endpoint_responses_5xx_total "$T/metrics.txt")"
pass "/metrics: promtool accepts it; weir_cluster_endpoint_ejected 1 and responses_5xx_total 6 for the bad endpoint ($(grep -c '^weir_cluster_' "$T/metrics.txt") weir_cluster_* samples)"
stop_weir TERM || fail "weir exited $? after SIGTERM"

# Two bad endpoints of three, max_ejection_percent 34: one ejection at most.
config "$a_PORT" "$x_PORT" "$y_PORT"
x0=$(bad_count "$x_PORT")
y0=$(bad_count "$y_PORT")
start_weir -c "$T/weir.yaml"
h2load -c 1 -m 1 -n 60 "http://127.0.0.1:$WEIR_PORT/" >"$T/h3.log" 2>&1 || fail "h2load 3"
ex=$(cluster_ep "$x_PORT" health)
ey=$(cluster_ep "$y_PORT" health)
case "$ex/$ey" in
ejected/healthy) kept=$y_PORT ;;
healthy/ejected) kept=$x_PORT ;;
*) fail "two bad endpoints: $ex and $ey, want one ejected" ;;
esac
[ "$(cl_field ejected)" = 1 ] || fail "ejected $(cl_field ejected)"
refused=$(cl_field ejections_refused_max_percent)
[ "$refused" -ge 1 ] || fail "ejections_refused_max_percent $refused"
cons=$(cluster_ep "$kept" consecutive_5xx)
[ "$cons" -gt 3 ] || fail "the bad endpoint kept in: consecutive_5xx $cons"
pass "two bad of three at max_ejection_percent 34: one ejected, the other kept in (consecutive_5xx $cons, $refused ejections refused); $(( $(bad_count "$x_PORT") - x0 + $(bad_count "$y_PORT") - y0 )) 503s"
stop_weir TERM || fail "weir exited $? after SIGTERM"
