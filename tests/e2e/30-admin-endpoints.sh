#!/usr/bin/env bash
# tests/e2e/30-admin-endpoints.sh: every admin endpoint on the real binary over loopback:
# status codes, content types, JSON that parses, the memory totals reconciling, 404 listing
# the endpoints, 405 with Allow, and bearer-token auth (401 without, 200 with).
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -o pipefail` when no line matches (no TLS listener), which
# ends start_weir; tolerate that here until lib.sh does.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl

write_config() { # write_config FILE [TOKEN]
    cat >"$1" <<YAML
listeners:
  - name: main
    address: 127.0.0.1:0
routes:
  - match: {path_prefix: /}
    direct_response: {status: 200, body: "hello from weir\n"}
admin:
  address: 127.0.0.1:0
${2:+  token: "$2"}
workers: 2
YAML
}

# status METHOD PATH [curl args]: prints the HTTP status code.
status() { local m=$1 p=$2; shift 2; curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X "$m" "$@" "http://127.0.0.1:$ADMIN_PORT$p"; }
json_ok() { $PY -m json.tool >/dev/null; }

write_config "$T/weir.yaml"
start_weir -c "$T/weir.yaml"

# Some traffic first, so counters and memory are not all zero.
for i in 1 2 3; do h2get "http://127.0.0.1:$WEIR_PORT/x$i" >/dev/null || fail "proxy request $i failed"; done

[ "$(status GET /healthz)" = 200 ] || fail "/healthz not 200"
[ "$(admin_get /healthz)" = ok ] || fail "/healthz body"
[ "$(status GET /ready)" = 200 ] || fail "/ready not 200 while serving"
pass "healthz, ready"

admin_get /memory >"$T/memory.json"
json_ok <"$T/memory.json" || fail "/memory is not JSON: $(head -c 300 "$T/memory.json")"
$PY - "$T/memory.json" <<'PYEOF' || fail "/memory fields or totals wrong"
import json, sys
m = json.load(open(sys.argv[1]))
for k in ("allocated", "heap_size", "pageheap_free", "pageheap_unmapped", "total_thread_cache",
          "total_physical_bytes", "committed", "live", "tcache", "depot", "free_in_segments",
          "budget_limit", "pressure", "overload_level", "released_total", "threads", "classes",
          "nodes", "workers", "regions_live", "subregions_live", "samples_live"):
    assert k in m, "missing " + k
assert m["allocated"] == m["live"], "allocated != live"
assert m["total_thread_cache"] == m["tcache"], "total_thread_cache != tcache"
assert m["pageheap_free"] == m["free_in_segments"] + m["depot"], "pageheap_free mapping"
assert m["committed"] > 0 and m["live"] > 0, "empty totals"
assert m["total_physical_bytes"] > 0, "no RSS"
assert m["overload_level"] == "normal", m["overload_level"]
parts = m["live"] + m["tcache"] + m["depot"] + m["free_in_segments"]
# The snapshot is taken while other threads allocate: allow the bytes in flight.
tol = max(1 << 20, m["committed"] // 50)
assert abs(m["committed"] - parts) <= tol, "committed %d vs parts %d" % (m["committed"], parts)
assert len(m["threads"]) >= 2, "threads"
assert len(m["classes"]) > 0 and all("size" in c for c in m["classes"]), "classes"
assert len(m["workers"]) == 2, "workers %d" % len(m["workers"])
print("committed=%d live=%d tcache=%d depot=%d free=%d diff=%d" %
      (m["committed"], m["live"], m["tcache"], m["depot"], m["free_in_segments"],
       m["committed"] - parts))
PYEOF
pass "/memory JSON, Envoy mapping, totals reconcile"

admin_get "/memory?format=prometheus" >"$T/memory.prom"
grep -q '^# TYPE weir_memory_committed_bytes gauge$' "$T/memory.prom" || fail "/memory?format=prometheus lacks committed"
grep -q '^weir_memory_class_live_bytes{class="' "$T/memory.prom" || fail "no per-class series"
curl -s -D "$T/h" -o /dev/null "http://127.0.0.1:$ADMIN_PORT/memory?format=prometheus"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/h" || fail "prometheus content type"
[ "$(status GET '/memory?format=yaml')" = 400 ] || fail "bad format not 400"
admin_get /metrics >"$T/metrics"
grep -q '^weir_memory_committed_bytes [0-9]' "$T/metrics" || fail "/metrics lacks memory"
req=$(awk '/^weir_requests_total /{print $2}' "$T/metrics")
[ -n "$req" ] && [ "$req" -ge 3 ] || fail "weir_requests_total=$req after 3 requests"
ok2=$(awk '/^weir_responses_total\{code="2xx"\} /{print $2}' "$T/metrics")
[ -n "$ok2" ] && [ "$ok2" -ge 3 ] || fail "weir_responses_total{code=2xx}=$ok2"
grep -q '^weir_upstream_errors_total{kind="connect_failed"} ' "$T/metrics" || fail "upstream errors family"
grep -q '^weir_overload_actions_total{action="refuse_stream"} ' "$T/metrics" || fail "overload actions family"
grep -q '^weir_overload_level 0$' "$T/metrics" || fail "overload level"
pass "/memory?format=prometheus, /metrics (requests_total=$req)"

admin_get "/memory/regions?top=5" | json_ok || fail "/memory/regions not JSON"
[ "$(status GET '/memory/regions?top=0')" = 400 ] || fail "top=0 not 400"
[ "$(status GET '/memory/regions?top=1001')" = 400 ] || fail "top=1001 not 400"
admin_get /stats >"$T/stats.json"; json_ok <"$T/stats.json" || fail "/stats not JSON"
grep -q '"requests_total":' "$T/stats.json" || fail "/stats lacks requests_total"
admin_get /overload >"$T/overload.json"; json_ok <"$T/overload.json" || fail "/overload not JSON"
grep -q '"level":"normal"' "$T/overload.json" || fail "/overload level"
# /overload reports the monitor's own samples: it has ticked at least once since start-up.
$PY -c 'import json,sys; o=json.load(open(sys.argv[1]))
for k in ("budget_pressure","cgroup_pressure","cgroup_version","transitions","releases","level_since_ms"):
    assert k in o, k
assert o["samples"] >= 1, o["samples"]
assert o["thresholds"]["elevated"] == 0.8, o["thresholds"]' "$T/overload.json" || fail "/overload monitor fields: $(cat "$T/overload.json")"
admin_get /config_dump >"$T/config.yaml"
grep -q 'admin' "$T/config.yaml" || fail "/config_dump: $(head -c 200 "$T/config.yaml")"
pass "/memory/regions, /stats, /overload, /config_dump"

rel=$(curl -sS --max-time 10 -X POST "http://127.0.0.1:$ADMIN_PORT/memory/release")
echo "$rel" | json_ok || fail "/memory/release not JSON: $rel"
echo "$rel" | grep -q '"released_bytes":[0-9]' || fail "/memory/release: $rel"
sb=$(curl -sS --max-time 10 -X POST "http://127.0.0.1:$ADMIN_PORT/heap_dump?sample_bytes=65536")
[ "$sb" = '{"sample_bytes":65536}' ] || fail "POST /heap_dump?sample_bytes: $sb"
[ "$(status POST /heap_dump)" = 400 ] || fail "POST /heap_dump without sample_bytes not 400"
admin_get /heap_dump >"$T/heap"
head -n1 "$T/heap" | grep -q '^heap profile:' || fail "/heap_dump: $(head -c 200 "$T/heap")"
grep -q MAPPED_LIBRARIES "$T/heap" || fail "/heap_dump lacks MAPPED_LIBRARIES"
[ "$(status GET /heap_dump/symbols)" = 200 ] || fail "/heap_dump/symbols"
pass "/memory/release ($rel), /heap_dump"

admin_get / >"$T/page.html"
grep -q '<canvas' "$T/page.html" || fail "/ is not the dashboard"
if grep -Eiq '<(script|link|img)[^>]*(src|href)="?(https?:)?//' "$T/page.html"; then fail "dashboard loads external resources"; fi
pass "dashboard page is self-contained"

[ "$(status GET /no/such/thing)" = 404 ] || fail "unknown path not 404"
body=$(admin_get /no/such/thing)
for e in /memory /metrics /memory/regions /heap_dump /memory/release /ready /healthz /stats /config_dump /overload; do
    echo "$body" | grep -q " $e " || fail "404 body does not list $e"
done
[ "$(status GET /memory/release)" = 405 ] || fail "GET /memory/release not 405"
curl -s -D "$T/h405" -o /dev/null "http://127.0.0.1:$ADMIN_PORT/memory/release"
grep -qi '^allow: POST' "$T/h405" || fail "405 lacks Allow: POST"
[ "$(status DELETE /memory)" = 405 ] || fail "DELETE /memory not 405"
pass "404 lists endpoints, 405 with Allow"

# Keep-alive: several requests on one connection (curl reuses it).
n=$(curl -sS -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects}\n' \
    "http://127.0.0.1:$ADMIN_PORT/healthz" "http://127.0.0.1:$ADMIN_PORT/ready" \
    "http://127.0.0.1:$ADMIN_PORT/stats" | awk '{s += $1} END {print s}')
[ "$n" = 1 ] || fail "keep-alive: $n connections for 3 requests"
pass "keep-alive"

stop_weir || fail "weir exited with $? on SIGTERM"

# With a token.
TOKEN=e2e-token-$RANDOM$RANDOM
write_config "$T/weir-token.yaml" "$TOKEN"
start_weir -c "$T/weir-token.yaml"
for p in /memory /metrics /healthz /stats /no/such/thing; do
    [ "$(status GET $p)" = 401 ] || fail "$p without token not 401"
    [ "$(status GET $p -H "Authorization: Bearer wrong-$TOKEN")" = 401 ] || fail "$p wrong token not 401"
done
curl -s -D "$T/h401" -o /dev/null "http://127.0.0.1:$ADMIN_PORT/memory"
grep -qi '^www-authenticate: Bearer' "$T/h401" || fail "401 lacks WWW-Authenticate: Bearer"
[ "$(status GET /memory -H "Authorization: Bearer $TOKEN")" = 200 ] || fail "/memory with token not 200"
[ "$(status GET /metrics -H "Authorization: Bearer $TOKEN")" = 200 ] || fail "/metrics with token not 200"
[ "$(status POST /memory/release -H "Authorization: Bearer $TOKEN")" = 200 ] || fail "release with token"
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN_PORT/config_dump" >"$T/cfg2"
if grep -q "$TOKEN" "$T/cfg2"; then fail "/config_dump shows the token"; fi
pass "token: 401 without (WWW-Authenticate), 200 with, redacted in /config_dump"
stop_weir || fail "weir exited with $? on SIGTERM"
