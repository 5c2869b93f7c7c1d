# tests/e2e/lib.sh: shared helpers for e2e tests (sourced, bash).
#
# Every test starts the real weir binary on kernel-chosen loopback ports (":0") and learns
# the ports from weir's startup lines on stderr:
#     weir: listener NAME PROTO HOST:PORT      (PROTO is h2c or tls)
#     weir: admin HOST:PORT
#     weir: ready
# so no test depends on a fixed port. Waits poll for a condition with a deadline; nothing
# sleeps for a fixed time and hopes.
#
# Environment from ctest: WEIR_BIN (the binary), WEIR_SRC (source tree), WEIR_BUILD.

set -euo pipefail

: "${WEIR_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${WEIR_BUILD:=$WEIR_SRC/build}"
: "${WEIR_BIN:=$WEIR_BUILD/weir}"
E2E_DIR="$WEIR_SRC/tests/e2e"
PY=/usr/bin/python3

T=$(mktemp -d /tmp/weir-e2e.XXXXXX)
E2E_PIDS=()

e2e_cleanup() {
    local p
    for p in "${E2E_PIDS[@]:-}"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${E2E_PIDS[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    if [ "${E2E_KEEP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap e2e_cleanup EXIT

fail() { echo "FAIL: $*" >&2; [ -f "$T/weir.log" ] && { echo "--- weir log (tail)" >&2; tail -n 40 "$T/weir.log" >&2; }; exit 1; }
pass() { echo "ok   $*"; }
skip() { echo "SKIP: $*"; exit 77; }
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed"; }

# wait_for TIMEOUT_S CMD...: runs CMD every 50 ms until it succeeds or the deadline passes.
wait_for() {
    local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# log_port LOGFILE REGEX: prints the port from the first line matching REGEX (":PORT$").
# A missing line prints nothing and is not an error (a config may have no TLS listener).
log_port() { { grep -m1 -E "$2" "$1" 2>/dev/null || true; } | sed -E 's/.*:([0-9]+)$/\1/'; }

# start_weir [ARGS...]: starts weir with ARGS (add --listen/--admin 127.0.0.1:0 yourself or
# let the defaults below apply), waits for "weir: ready", sets WEIR_PID, WEIR_PORT (first
# listener), WEIR_TLS_PORT (first tls listener, if any), ADMIN_PORT. Log: $T/weir.log.
start_weir() {
    local log="$T/weir.log"
    : >"$log"
    "$WEIR_BIN" "$@" 2>>"$log" >>"$T/weir.out" &
    WEIR_PID=$!
    E2E_PIDS+=("$WEIR_PID")
    wait_for 30 grep -q '^weir: ready' "$log" || fail "weir did not become ready: $(tail -n 5 "$log")"
    WEIR_PORT=$(log_port "$log" '^weir: listener ')
    WEIR_TLS_PORT=$(log_port "$log" '^weir: listener [^ ]+ tls ')
    ADMIN_PORT=$(log_port "$log" '^weir: admin ')
    export WEIR_PID WEIR_PORT WEIR_TLS_PORT ADMIN_PORT
}

# stop_weir [SIGNAL]: sends SIGNAL (default TERM), waits, and returns weir's exit status.
stop_weir() {
    local sig=${1:-TERM} rc=0
    kill -"$sig" "$WEIR_PID" 2>/dev/null || true
    wait "$WEIR_PID" || rc=$?
    return $rc
}

# start_upstream NAME ARGS...: starts tests/e2e/upstream.js (node) with ARGS; it prints
# "PORT <n>" first. Sets UP_PORT and UP_PID (also NAME_PORT via eval).
start_upstream() {
    local name=$1; shift
    local out="$T/upstream-$name.out"
    node "$E2E_DIR/upstream.js" "$@" >"$out" 2>"$T/upstream-$name.err" &
    UP_PID=$!
    E2E_PIDS+=("$UP_PID")
    wait_for 20 grep -q '^PORT ' "$out" || fail "upstream $name did not start: $(cat "$T/upstream-$name.err")"
    UP_PORT=$(awk '/^PORT /{print $2; exit}' "$out")
    eval "${name}_PORT=$UP_PORT; ${name}_PID=$UP_PID"
}

# with_each_upstream FUNC: starts tests/e2e/upstream.js twice (h2c and HTTP/1.1), then for
# each runs a weir proxying to it, calls FUNC "h2c upstream" / FUNC "http1 upstream" while it
# serves, and stops it, failing unless it exits 0 on SIGTERM.
with_each_upstream() {
    local fn=$1
    start_upstream h2 --proto h2c
    start_upstream h1 --proto http1
    start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "h2c://127.0.0.1:$h2_PORT"
    "$fn" "h2c upstream"
    stop_weir TERM || fail "weir exited $? after SIGTERM"
    start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "http://127.0.0.1:$h1_PORT"
    "$fn" "http1 upstream"
    stop_weir TERM || fail "weir exited $? after SIGTERM"
}

# admin_get PATH: GET on the admin port, body to stdout.
admin_get() { curl -sS --max-time 10 "http://127.0.0.1:$ADMIN_PORT$1"; }

# stat_of NAME: the first field NAME anywhere in the admin /stats JSON (needs jq).
stat_of() { admin_get /stats | jq -r ".. | .$1? // empty" | head -n1; }

# need_chromium: sets CHROME to headless Chromium's binary, or skips the test.
need_chromium() {
    CHROME=$(command -v chromium || command -v chromium-browser || true)
    [ -n "$CHROME" ] || skip "chromium is not installed (Debian package: chromium)"
}

# self_signed_cert: $T/cert.pem and $T/key.pem, for localhost and 127.0.0.1 (made now).
self_signed_cert() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || fail "openssl req failed"
}

# chromium_dump NAME URL [flags...]: headless Chromium ($CHROME) loads URL (any certificate
# accepted) and prints its DOM; its profile is $T/chrome-NAME, its stderr $T/chrome-NAME.err.
chromium_dump() {
    local name=$1 url=$2
    shift 2
    timeout 90 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --user-data-dir="$T/chrome-$name" \
        --ignore-certificate-errors "$@" --dump-dom "$url" 2>"$T/chrome-$name.err"
}

# h2get URL [curl args]: GET over h2c with prior knowledge.
h2get() { local u=$1; shift; curl -sS --max-time 30 --http2-prior-knowledge "$@" "$u"; }

# make_test_pki DIR: a test PKI made now (never committed), for TLS upstreams: DIR/ca.pem (a CA),
# DIR/srv.pem + srv.key (a server certificate from that CA for localhost and 127.0.0.1),
# DIR/cli.pem + cli.key (a client certificate from that CA, for mutual TLS) and
# DIR/otherca.pem (an unrelated CA, which verifies none of them). P-256 keys: quick to make.
make_test_pki() {
    local d=$1 c
    for c in ca otherca; do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj "/CN=weir test $c" -keyout "$d/$c.key" -out "$d/$c.pem" >/dev/null 2>&1 ||
            fail "openssl req ($c) failed"
    done
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/srv.ext"
    printf 'extendedKeyUsage=clientAuth\n' >"$d/cli.ext"
    for c in srv cli; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj "/CN=weir test $c" -keyout "$d/$c.key" -out "$d/$c.csr" >/dev/null 2>&1 &&
            openssl x509 -req -in "$d/$c.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
                -CAcreateserial -days 2 -extfile "$d/$c.ext" -out "$d/$c.pem" >/dev/null 2>&1 ||
            fail "openssl x509 ($c) failed"
    done
}

# free_port: a loopback port that was free a moment ago, for servers that cannot report the
# port the kernel chose (nginx, nghttpd). Callers retry their start if another process took it.
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stat_total NAME: counter NAME in /stats, the first (all workers summed) occurrence.
# (awk reads all of its input: an early exit would make the pipeline fail under pipefail).
stat_total() { admin_get /stats | tr -d ' \n' | grep -o "\"$1\":[0-9]*" | awk -F: 'NR == 1 {print $2}'; }

# check_config_rejects FILE REGEX: `weir --check-config FILE` must fail with a message that
# matches REGEX (grep -E); passes with the message's first line.
check_config_rejects() {
    if "$WEIR_BIN" --check-config "$1" >"$T/check.out" 2>&1; then fail "--check-config accepted $1"; fi
    grep -qE "$2" "$T/check.out" || fail "--check-config message: $(cat "$T/check.out")"
    pass "--check-config: $(head -n1 "$T/check.out")"
}

# cluster_ep PORT FIELD: FIELD of the endpoint whose address ends in :PORT, from /clusters
# (empty when the endpoint has no such field; fails when there is no such endpoint).
cluster_ep() {
    admin_get /clusters | $PY -c '
import json, sys
port, field = sys.argv[1], sys.argv[2]
for c in json.load(sys.stdin)["clusters"]:
    for e in c["endpoints"]:
        if e["address"].endswith(":" + port):
            print(e.get(field, "")); sys.exit(0)
sys.exit(1)' "$1" "$2"
}
