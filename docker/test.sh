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
#  9. run it as docker/kubernetes/deployment.yaml does: uid 10001, read-only root filesystem,
#     no capabilities, no new privileges, the ConfigMap's weir.yaml mounted read-only as a
#     directory in the kubelet's ..data layout, the token in the environment: the manifest's
#     probe commands (`weir health`, `weir health --live`) answer 0 inside the container,
#     nothing can be written to its root, and it proxies to an HTTP/1.1 upstream.
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

# ---- 9. as the Kubernetes Deployment runs it ---------------------------------------------------------
VAL="$SRC/docker/kubernetes/validate"
[ -d "$VAL/node_modules/kubernetes-models" ] || (cd "$VAL" && npm ci --no-audit --no-fund --silent) >/dev/null 2>&1 ||
    fail "npm ci in $VAL"
node "$VAL/validate.js" --json "$T/k8s.json" docker/kubernetes >/dev/null || fail "docker/kubernetes does not validate"
mkdir -p "$T/cm/..2026_01_01_00_00_00.1"
# The ConfigMap's cluster names a Service of the cluster; here the upstream is on the loopback.
/usr/bin/python3 - "$T/k8s.json" >"$T/cm-weir.yaml" <<'PYEOF' || fail "no weir.yaml in the ConfigMap"
import json, sys
print([d["doc"] for d in json.load(open(sys.argv[1])) if d["doc"]["kind"] == "ConfigMap"][0]["data"]["weir.yaml"], end="")
PYEOF
# The probe commands of the manifest, each on a line, the admin address moved to this run's.
/usr/bin/python3 - "$T/k8s.json" >"$T/probes" <<'PYEOF' || fail "no probes in the Deployment"
import json, sys
dep = [d["doc"] for d in json.load(open(sys.argv[1])) if d["doc"]["kind"] == "Deployment"][0]
c = dep["spec"]["template"]["spec"]["containers"][0]
for p in ("readinessProbe", "livenessProbe"):
    print(" ".join(c[p]["exec"]["command"]))
PYEOF
node tests/e2e/upstream.js --proto http1 --port 0 >"$T/up1.out" 2>"$T/up1.err" &
PIDS+=($!)
wait_for 20 grep -q '^PORT ' "$T/up1.out" || fail "HTTP/1.1 upstream did not start"
UP1=$(awk '/^PORT /{print $2; exit}' "$T/up1.out")
grep -q 'app.default.svc.cluster.local:80' "$T/cm-weir.yaml" || fail "the ConfigMap's cluster endpoint changed: update this test"
sed "s/app.default.svc.cluster.local:80/127.0.0.1:$UP1/" "$T/cm-weir.yaml" >"$T/cm/..2026_01_01_00_00_00.1/weir.yaml"
ln -s ..2026_01_01_00_00_00.1 "$T/cm/..data"
ln -s ..data/weir.yaml "$T/cm/weir.yaml"
chmod -R a+rX "$T/cm"
PORT=$(free_port); ADMIN=$(free_port)
RO=(--read-only)
# podman mounts a tmpfs on /tmp and /run of a read-only container; Kubernetes does not.
[ "$ENGINE" = podman ] && RO+=(--read-only-tmpfs=false)
CID=$($ENGINE run -d --network host "${RO[@]}" --user 10001:10001 --cap-drop ALL \
    --security-opt no-new-privileges -v "$T/cm:/etc/weir:ro" \
    -e WEIR_LISTEN="127.0.0.1:$PORT" -e WEIR_ADMIN="127.0.0.1:$ADMIN" -e WEIR_ADMIN_TOKEN="$TOKEN" \
    -e WEIR_WORKERS=2 "$IMAGE" -c /etc/weir/weir.yaml)
CIDS+=("$CID")
wait_for 30 curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN/ready" ||
    fail "the container run as the Deployment does did not become ready"
while read -r probe; do
    probe=${probe/127.0.0.1:9901/127.0.0.1:$ADMIN}
    # shellcheck disable=SC2086 # the words of the manifest's command, none with spaces
    out=$($ENGINE exec "$CID" $probe 2>&1) || fail "probe '$probe' failed in the container: $out"
    log "probe '$probe': $out"
done <"$T/probes"
[ "$(wc -l <"$T/probes")" = 2 ] || fail "want 2 probe commands, have $(wc -l <"$T/probes")"
[ "$($ENGINE exec "$CID" id -u)" = 10001 ] || fail "the container does not run as uid 10001"
$ENGINE exec "$CID" sh -c 'echo x >/tmp/weir-test' 2>/dev/null && fail "the root filesystem is writable (/tmp)"
code=$(curl -sS --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/bytes/1000") ||
    fail "GET through the Deployment-style container"
[ "$code" = 200 ] || fail "GET through the Deployment-style container: $code"
log "as the Deployment runs it: uid 10001, read-only root, ConfigMap directory, probes answer, GET 200"

log "PASS"
