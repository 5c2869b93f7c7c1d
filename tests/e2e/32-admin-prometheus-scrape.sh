#!/usr/bin/env bash
# tests/e2e/32-admin-prometheus-scrape.sh: a real Prometheus server (Debian package
# prometheus) scrapes weir's admin port every second, with the bearer token, both /metrics
# and /memory?format=prometheus, and its query API returns weir_memory_committed_bytes.
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -o pipefail` when no line matches (no TLS listener), which
# ends start_weir; tolerate that here until lib.sh does.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need prometheus

TOKEN=scrape-$RANDOM$RANDOM
cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
routes:
  - direct_response: {status: 200, body: "hello\n"}
admin: {address: "127.0.0.1:0", token: "$TOKEN"}
workers: 1
YAML
start_weir -c "$T/weir.yaml"

cat >"$T/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: weir
    scrape_interval: 1s
    metrics_path: /metrics
    authorization: {type: Bearer, credentials: "$TOKEN"}
    static_configs: [{targets: ["127.0.0.1:$ADMIN_PORT"]}]
  - job_name: weir-memory
    scrape_interval: 1s
    metrics_path: /memory
    params: {format: [prometheus]}
    authorization: {type: Bearer, credentials: "$TOKEN"}
    static_configs: [{targets: ["127.0.0.1:$ADMIN_PORT"]}]
YAML

# Prometheus cannot report a kernel-chosen port, so take a free one and retry if another
# process grabs it before Prometheus binds.
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
started=0
for attempt in 1 2 3; do
    PP=$(free_port)
    prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb-$attempt" \
        --web.listen-address="127.0.0.1:$PP" --log.level=warn >"$T/prom.log" 2>&1 &
    PROM_PID=$!
    E2E_PIDS+=("$PROM_PID")
    if wait_for 30 curl -sf "http://127.0.0.1:$PP/-/ready"; then started=1; break; fi
    kill "$PROM_PID" 2>/dev/null || true
done
[ $started = 1 ] || fail "prometheus did not start: $(tail -n 5 "$T/prom.log")"
pass "prometheus on 127.0.0.1:$PP scraping admin 127.0.0.1:$ADMIN_PORT"

query() { curl -sf --max-time 5 "http://127.0.0.1:$PP/api/v1/query" --data-urlencode "query=$1"; }
# has_sample QUERY: the query returns at least one sample whose value is > 0.
has_sample() {
    query "$1" | $PY -c '
import json, sys
r = json.load(sys.stdin)
res = r["data"]["result"]
sys.exit(0 if r["status"] == "success" and res and float(res[0]["value"][1]) > 0 else 1)'
}
wait_for 60 has_sample 'weir_memory_committed_bytes{job="weir"}' ||
    fail "no weir_memory_committed_bytes sample: $(query weir_memory_committed_bytes); targets: $(curl -s "http://127.0.0.1:$PP/api/v1/targets" | head -c 600)"
pass "query weir_memory_committed_bytes{job=\"weir\"} = $(query 'weir_memory_committed_bytes{job="weir"}' | $PY -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])')"
wait_for 30 has_sample 'weir_memory_committed_bytes{job="weir-memory"}' || fail "/memory?format=prometheus not scraped"
wait_for 30 has_sample 'up{job="weir-memory"}' || fail "weir-memory target not up"
pass "/memory?format=prometheus scraped too"
