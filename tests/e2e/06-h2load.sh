#!/usr/bin/env bash
# 06-h2load: h2load -n 100000 -c 32 -m 10 through weir, to a direct_response and to an h2c
# upstream: 0 failed, 0 errored; weir's own counters agree; the drain afterwards exits 0.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need h2load
need node

start_upstream up --proto h2c
cat >"$T/weir.yaml" <<YEOF
listeners:
  - name: main
    address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
clusters:
  - name: backend
    endpoints: [127.0.0.1:$up_PORT]
routes:
  - match: {path_prefix: /direct}
    direct_response: {status: 200, body: "direct answer\n"}
  - match: {path_prefix: /}
    cluster: backend
YEOF
start_weir -c "$T/weir.yaml"
B="http://127.0.0.1:$WEIR_PORT"

run_load() { # run_load NAME URL
    h2load -n 100000 -c 32 -m 10 "$2" >"$T/$1.out" 2>&1 || true
    grep -q '100000 succeeded, 0 failed, 0 errored, 0 timeout' "$T/$1.out" ||
        fail "$1: $(grep -E 'requests:|status codes:' "$T/$1.out")"
    grep -q 'status codes: 100000 2xx' "$T/$1.out" || fail "$1: $(grep 'status codes' "$T/$1.out")"
    pass "$1: 100000 requests, 0 failed, 0 errored ($(grep -oE '[0-9.]+ req/s' "$T/$1.out"))"
}
run_load direct "$B/direct"
run_load upstream "$B/"

stats=$(admin_get /stats)
req=$($PY -c "import json,sys; print(json.loads(sys.argv[1])['requests_total'])" "$stats")
[ "$req" -ge 200000 ] || fail "requests_total $req < 200000"
pass "requests_total = $req"
stop_weir TERM || fail "weir exited $? after SIGTERM"
