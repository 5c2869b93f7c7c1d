#!/usr/bin/env bash
# docker/test.sh: builds weir's image and checks it the way an operator uses it.
# Works with Docker where a user has it, else with rootful podman (prepared by
# ../shared/tools/podman-setup.sh, or by this script when it is found there).
#
#  1. build with --pull=never (podman: --format docker, needed for HEALTHCHECK);
#  2. run it on random loopback ports, proxying to a node upstream on the host's loopback;
#  3. proxy real HTTP/2 requests through it and check the bytes;
#  4. read /memory through the admin port with the token (and 401 without it);
#  5. check that the HEALTHCHECK reports healthy;
#  6. SIGTERM while a long request is in flight: the request completes, exit code 0;
#  7. run with --memory 256m: /memory reports a budget derived from that limit;
#  8. run with --cpus 1: one worker (the worker count follows the CPU quota).
#
# The containers use the host's network namespace (--network host) so that every byte of
# the test stays on 127.0.0.1; the ports are picked free at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
IMAGE=${IMAGE:-weir:test}
TOKEN=test-token-$$
T=$(mktemp -d /tmp/weir-docker.XXXXXX)
PIDS=()
CIDS=()

log() { printf 'docker/test: %s\n' "$*"; }
fail() { log "FAIL: $*"; for c in "${CIDS[@]:-}"; do [ -n "$c" ] && $ENGINE logs "$c" 2>&1 | tail -n 30; done; exit 1; }
cleanup() {
    for c in "${CIDS[@]:-}"; do [ -n "$c" ] && $ENGINE rm -f "$c" >/dev/null 2>&1 || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT

wait_for() { # TIMEOUT_S CMD...
    local deadline=$(($(date +%s) + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- engine -------------------------------------------------------------------------------
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    ENGINE=docker
    BUILD_FLAGS=(--pull=false)
else
    if [ -z "${CONTAINERS_CONF:-}" ] && [ -x "$SRC/../shared/tools/podman-setup.sh" ]; then
        eval "$("$SRC/../shared/tools/podman-setup.sh")"
    fi
    command -v podman >/dev/null || { log "SKIP: neither a Docker engine nor podman is available"; exit 77; }
    ENGINE=podman
    BUILD_FLAGS=(--pull=never --format docker)
fi
log "engine: $ENGINE"

# ---- 1. build -----------------------------------------------------------------------------
$ENGINE build "${BUILD_FLAGS[@]}" -t "$IMAGE" -f docker/Dockerfile . >"$T/build.log" 2>&1 ||
    { tail -n 40 "$T/build.log"; fail "image build"; }
size=$($ENGINE image inspect "$IMAGE" --format '{{.Size}}')
log "built $IMAGE: $((size / 1000000)) MB"

# ---- upstream on the host's loopback ------------------------------------------------------
node tests/e2e/upstream.js --proto h2c --port 0 >"$T/up.out" 2>"$T/up.err" &
PIDS+=($!)
wait_for 20 grep -q '^PORT ' "$T/up.out" || fail "upstream did not start"
UP=$(awk '/^PORT /{print $2; exit}' "$T/up.out")

start() { # NAME EXTRA_RUN_ARGS... -- (sets CID, PORT, ADMIN)
    PORT=$(free_port); ADMIN=$(free_port)
    CID=$($ENGINE run -d --network host \
        -e WEIR_LISTEN="127.0.0.1:$PORT" -e WEIR_ADMIN="127.0.0.1:$ADMIN" -e WEIR_ADMIN_TOKEN="$TOKEN" \
        "$@" "$IMAGE" -c /etc/weir/weir.yaml --upstream "h2c://127.0.0.1:$UP")
    CIDS+=("$CID")
    wait_for 30 curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN/ready" ||
        fail "container did not become ready"
}

# ---- 2. run ---------------------------------------------------------------------------------
start
log "running: h2c 127.0.0.1:$PORT, admin 127.0.0.1:$ADMIN"
[ "$($ENGINE inspect "$CID" --format '{{.Config.User}}')" = "weir:weir" ] || fail "image does not run as the weir user"

# ---- 3. proxy real HTTP/2 requests -----------------------------------------------------------
for n in 0 1000 1048576; do
    curl -sS --http2-prior-knowledge -D "$T/h" -o "$T/body" "http://127.0.0.1:$PORT/bytes/$n" || fail "GET /bytes/$n"
    grep -qi '^HTTP/2 200' "$T/h" || fail "GET /bytes/$n: not HTTP/2 200"
    want=$(awk -F': ' 'tolower($1)=="x-sha256"{gsub("\r","",$2); print $2}' "$T/h")
    got=$(sha256sum "$T/body" | cut -d' ' -f1)
    [ -n "$want" ] && [ "$want" = "$got" ] || fail "GET /bytes/$n: checksum $got != $want"
done
log "proxied HTTP/2 requests through the container, checksums match"

# ---- 4. /memory with the token ----------------------------------------------------------------
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/memory")
[ "$code" = 401 ] || fail "/memory without the token answered $code, want 401"
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN/memory" >"$T/mem.json" || fail "/memory with the token"
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert int(d["allocated"])>0, d' "$T/mem.json" ||
    fail "/memory is not the expected JSON"
log "/memory answers with the token, 401 without"

# ---- 5. HEALTHCHECK -------------------------------------------------------------------------
if [ "$ENGINE" = podman ]; then
    wait_for 30 podman healthcheck run "$CID" || fail "healthcheck is not healthy"
else
    wait_for 60 sh -c "[ \"\$(docker inspect --format '{{.State.Health.Status}}' $CID)\" = healthy ]" ||
        fail "healthcheck is not healthy"
fi
log "HEALTHCHECK reports healthy"

# ---- 6. SIGTERM drains an in-flight request ------------------------------------------------------
curl -sS --http2-prior-knowledge -o "$T/slow" -w '%{http_code}' \
    "http://127.0.0.1:$PORT/slow?ms=3000&bytes=300000" >"$T/slow.code" 2>"$T/slow.err" &
slow=$!
wait_for 10 sh -c "curl -sf -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$ADMIN/stats | grep -q '\"streams_active\": *[1-9]'" ||
    fail "the slow request never became active"
$ENGINE kill --signal TERM "$CID" >/dev/null
wait "$slow" || fail "in-flight request failed during drain: $(cat "$T/slow.err")"
[ "$(cat "$T/slow.code")" = 200 ] && [ "$(stat -c %s "$T/slow")" = 300000 ] ||
    fail "in-flight request truncated: code $(cat "$T/slow.code"), $(stat -c %s "$T/slow") bytes"
rc=$($ENGINE wait "$CID")
[ "$rc" = 0 ] || fail "exit code after SIGTERM: $rc"
log "SIGTERM: the in-flight request completed, exit code 0"

# ---- 7. budget from the cgroup limit -------------------------------------------------------------
start --memory 256m
limit=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN/memory" |
    /usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["budget_limit"]))')
want=$((256 * 1024 * 1024 * 9 / 10))
[ "$limit" -ge $((want - 1048576)) ] && [ "$limit" -le $((want + 1048576)) ] ||
    fail "budget under --memory 256m is $limit, want 90% of 256 MiB ($want)"
log "--memory 256m: budget $limit bytes (90% of the cgroup limit)"

# ---- 8. workers from the CPU quota -----------------------------------------------------------------
start --cpus 1
workers=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN/memory" |
    /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["workers"]))')
[ "$workers" = 1 ] || fail "--cpus 1 gave $workers workers, want 1"
log "--cpus 1: $workers worker (from the CPU quota)"

log "PASS"
