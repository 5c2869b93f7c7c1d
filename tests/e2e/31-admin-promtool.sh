#!/usr/bin/env bash
# tests/e2e/31-admin-promtool.sh: Prometheus's own checker (`promtool check metrics`, Debian
# package prometheus) accepts /metrics and /memory?format=prometheus after real traffic, and
# the metric names follow the conventions (counters end in _total, sizes in _bytes).
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -o pipefail` when no line matches (no TLS listener), which
# ends start_weir; tolerate that here until lib.sh does.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need promtool
need h2load

cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
routes:
  - direct_response: {status: 200, body: "hello\n"}
admin: {address: "127.0.0.1:0"}
workers: 2
YAML
start_weir -c "$T/weir.yaml"
h2load -n 2000 -c 4 -m 8 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load.out" 2>&1 || fail "h2load: $(tail -n 5 "$T/h2load.out")"

check() { # check PATH NAME
    admin_get "$1" >"$T/$2.prom"
    [ -s "$T/$2.prom" ] || fail "$1 is empty"
    if ! promtool check metrics <"$T/$2.prom" >"$T/$2.promtool" 2>&1; then
        fail "promtool rejects $1: $(head -n 20 "$T/$2.promtool")"
    fi
    # Every counter ends in _total; no family is declared twice.
    awk '/^# TYPE / && $4 == "counter" && $3 !~ /_total$/ {print "counter without _total: " $3; bad=1}
         /^# TYPE / {if (seen[$3]++) {print "family declared twice: " $3; bad=1}}
         END {exit bad}' "$T/$2.prom" || fail "$1 naming"
    pass "promtool accepts $1 ($(grep -vc '^#' "$T/$2.prom") samples)"
}
check /metrics metrics
check "/memory?format=prometheus" memory
grep -q '^weir_requests_total [1-9]' "$T/metrics.prom" || fail "weir_requests_total did not count the load"
grep -q '^weir_memory_node_committed_bytes{node="0"} [0-9]' "$T/metrics.prom" || fail "no per-node series"
grep -q '^weir_memory_thread_cache_bytes{thread="' "$T/metrics.prom" || fail "no per-thread series"
pass "series present after load"
