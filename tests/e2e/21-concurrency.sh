#!/usr/bin/env bash
# 21-concurrency: many streams at once through the upstream pools.
#   - 1,000 requests as 10 connections x 100 concurrent streams (h2load -n 1000 -c 10 -m 100)
#     to an h2c upstream and to an HTTP/1.1 upstream: 0 failed, 0 errored, all 2xx;
#   - 100,000 requests (h2load -n 100000 -c 32 -m 10) to an h2c upstream: 0 failed;
#   - afterwards weir's admin /stats shows no active stream left, and it still answers.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need h2load
need node
need curl

# h2load_ok NAME ARGS...: runs h2load and checks that every request succeeded with a 2xx.
h2load_ok() {
    local name=$1; shift
    local n
    h2load "$@" >"$T/$name.out" 2>&1 || true
    n=$(awk '/^requests:/ {print $2}' "$T/$name.out")
    grep -qE "^requests: $n total, $n started, $n done, $n succeeded, 0 failed, 0 errored" \
        "$T/$name.out" || fail "$name: $(grep -E '^requests:|^status codes:' "$T/$name.out")"
    grep -qE "^status codes: $n 2xx, 0 3xx, 0 4xx, 0 5xx" "$T/$name.out" ||
        fail "$name: $(grep -E '^status codes:' "$T/$name.out")"
    pass "$name: $n requests, 0 failed, 0 errored, all 2xx ($(awk '/^finished in/ {gsub(",", ""); print $3, $4, $5}' "$T/$name.out"))"
}

# no_active_streams: admin /stats (JSON) reports streams_active 0, polled with a deadline.
stats_idle() { admin_get /stats | tr -d ' \n' | grep -q '"streams_active":0'; }

start_upstream h2 --proto h2c
start_upstream h1 --proto http1

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "h2c://127.0.0.1:$h2_PORT"
U="http://127.0.0.1:$WEIR_PORT"
h2load_ok "h2c upstream, -n 1000 -c 10 -m 100" -n 1000 -c 10 -m 100 "$U/bytes/1024"
h2load_ok "h2c upstream, -n 100000 -c 32 -m 10" -n 100000 -c 32 -m 10 "$U/"
if admin_get /stats >/dev/null 2>&1 && admin_get /stats | grep -q streams_active; then
    wait_for 10 stats_idle || fail "streams still active after the load: $(admin_get /stats)"
    pass "no stream left active (admin /stats)"
fi
code=$(h2get "$U/bytes/10" -o /dev/null -w '%{http_code}') || fail "weir stopped answering"
[ "$code" = 200 ] || fail "after the load: status $code"
stop_weir TERM || fail "weir exited $? after SIGTERM"

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "http://127.0.0.1:$h1_PORT"
U="http://127.0.0.1:$WEIR_PORT"
h2load_ok "http1 upstream, -n 1000 -c 10 -m 100" -n 1000 -c 10 -m 100 "$U/bytes/1024"
stop_weir TERM || fail "weir exited $? after SIGTERM"
