#!/usr/bin/env bash
# 24-upstream-down: upstream endpoints that refuse connections.
#   - every endpoint down (h2c:// and http:// clusters): the client gets a 503 (or 502) whose
#     body names the reason ("upstream unavailable"), and weir stays up;
#   - the first of two endpoints down: every request still succeeds, through the connect
#     retry to the second endpoint; admin /stats counts upstream_connect_failed and
#     upstream_retries.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need node
need curl

# A loopback port that nothing listens on (bound by the kernel, then closed).
closed_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
stat_of() { admin_get /stats | tr -d ' \n' | grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2; }

DOWN1=$(closed_port)
DOWN2=$(closed_port)

for scheme in h2c http; do
    start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
        --upstream "$scheme://127.0.0.1:$DOWN1" --upstream "$scheme://127.0.0.1:$DOWN2"
    code=$(curl -sS --max-time 15 --http2-prior-knowledge -o "$T/body" -w '%{http_code}' \
        "http://127.0.0.1:$WEIR_PORT/bytes/10") || fail "$scheme all down: curl failed"
    case "$code" in 502 | 503) ;; *) fail "$scheme all down: status $code, want 502/503" ;; esac
    grep -q "upstream unavailable" "$T/body" || fail "$scheme all down: body '$(cat "$T/body")'"
    # weir is still up and says the same again.
    code2=$(curl -sS --max-time 15 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$WEIR_PORT/") || fail "$scheme: weir died"
    [ "$code2" = "$code" ] || fail "$scheme all down, second request: $code2"
    kill -0 "$WEIR_PID" || fail "$scheme: weir is gone"
    pass "$scheme cluster, all endpoints down: $code \"$(head -c 80 "$T/body" | tr -d '\n')\""
    [ "$(stat_of upstream_connect_failed)" -ge 1 ] || fail "no upstream_connect_failed counted"
    stop_weir TERM || fail "weir exited $? after SIGTERM"
done

start_upstream live --proto h2c
start_upstream live1 --proto http1
for scheme in h2c http; do
    port=$live_PORT
    [ "$scheme" = http ] && port=$live1_PORT
    start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
        --upstream "$scheme://127.0.0.1:$DOWN1" --upstream "$scheme://127.0.0.1:$port"
    for i in $(seq 1 20); do
        code=$(curl -sS --max-time 15 --http2-prior-knowledge -o "$T/b" -w '%{http_code}' \
            "http://127.0.0.1:$WEIR_PORT/bytes/1000") || fail "$scheme retry: request $i failed"
        [ "$code" = 200 ] || fail "$scheme retry: request $i got $code: $(cat "$T/b")"
        [ "$(stat -c %s "$T/b")" = 1000 ] || fail "$scheme retry: request $i: short body"
    done
    failed=$(stat_of upstream_connect_failed)
    retries=$(stat_of upstream_retries)
    [ "$failed" -ge 1 ] && [ "$retries" -ge 1 ] ||
        fail "$scheme retry: connect_failed=$failed retries=$retries"
    pass "$scheme cluster, first endpoint down: 20/20 succeed (connect_failed=$failed, retries=$retries)"
    stop_weir TERM || fail "weir exited $? after SIGTERM"
done
