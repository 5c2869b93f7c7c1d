#!/usr/bin/env bash
# tests/e2e/10-config-errors.sh: the real weir binary rejects bad configuration with one exact
# "FILE:LINE:COL: FIELD: reason" line (or "--flag: reason"), accepts the good sample files
# with --check-config, and never starts half-configured.
#
# Each tests/e2e/configs/bad-*.yaml starts with "# expect: LINE:COL: FIELD: reason-prefix";
# weir must print "weir: FILE:" plus that prefix on stderr and exit 2.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$WEIR_BIN" ] || skip "weir binary not built ($WEIR_BIN)"
CFG="$E2E_DIR/configs"
unset WEIR_LISTEN WEIR_ADMIN WEIR_ADMIN_TOKEN WEIR_MEMORY_LIMIT WEIR_WORKERS

# has_line_prefix FILE PREFIX: some line of FILE starts with PREFIX (no regex, no escapes).
has_line_prefix() {
    PREFIX="$2" awk 'index($0, ENVIRON["PREFIX"]) == 1 { found = 1 } END { exit !found }' "$1"
}

# 1. Every bad file: exit 2 with the exact message.
n=0
for f in "$CFG"/bad-*.yaml; do
    expect=$(sed -n '1s/^# expect: //p' "$f")
    [ -n "$expect" ] || fail "$f has no '# expect:' first line"
    want="weir: $f:$expect"
    rc=0
    timeout 20 "$WEIR_BIN" --check-config "$f" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" -eq 2 ] || fail "--check-config $(basename "$f"): exit $rc, want 2; stderr: $(cat "$T/err")"
    has_line_prefix "$T/err" "$want" ||
        fail "--check-config $(basename "$f"): want a line starting with
  $want
got:
$(cat "$T/err")"
    grep -q 'configuration OK' "$T/out" "$T/err" && fail "$(basename "$f") was reported OK"
    n=$((n + 1))
done
[ "$n" -ge 10 ] || fail "only $n bad sample files found in $CFG"
pass "--check-config rejects $n bad files with FILE:LINE:COL: FIELD messages"

# 2. The good sample files pass.
for f in "$CFG/full.yaml" "$CFG/minimal.yaml" "$CFG/empty.yaml"; do
    rc=0
    timeout 20 "$WEIR_BIN" --check-config "$f" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" -eq 0 ] || fail "--check-config $(basename "$f"): exit $rc: $(cat "$T/err")"
    grep -qF "weir: configuration OK: $f" "$T/out" "$T/err" ||
        fail "--check-config $(basename "$f"): no 'weir: configuration OK: $f' line"
done
pass "--check-config accepts full.yaml, minimal.yaml and empty.yaml"

# 3. Bad flags and environment: "weir: --flag: reason", non-zero exit, nothing started.
check_flag_error() { # WANT ARGS...
    local want=$1 rc=0
    shift
    timeout 20 "$WEIR_BIN" "$@" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" -ne 0 ] || fail "weir $*: exit 0, want an error"
    has_line_prefix "$T/err" "$want" || fail "weir $*: want '$want', got: $(cat "$T/err")"
    grep -q '^weir: ready' "$T/err" && fail "weir $*: became ready despite the error"
    return 0
}
check_flag_error "weir: --listen: '127.0.0.1' has no port (use HOST:PORT)" --listen 127.0.0.1
check_flag_error "weir: --listen: needs a value" --listen
check_flag_error "weir: --no-such-flag: unknown option" --no-such-flag
check_flag_error "weir: --upstream: 'http://127.0.0.1:2' mixes h2c:// and http://" \
    --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream h2c://127.0.0.1:1 --upstream http://127.0.0.1:2
check_flag_error "weir: --memory-limit: 'lots' is not a memory limit" --memory-limit lots
check_flag_error "weir: --workers: 0 is out of range (1-1024)" --workers 0
check_flag_error "weir: --tls-key: cannot read '$T/none.pem'" --listen 127.0.0.1:0 \
    --tls-cert "$CFG/certs/test-cert.pem" --tls-key "$T/none.pem"
WEIR_WORKERS=lots check_flag_error "weir: WEIR_WORKERS: 'lots' is not a worker count" \
    --listen 127.0.0.1:0 --admin 127.0.0.1:0
pass "bad flags and environment give 'weir: --flag: reason' and a non-zero exit"

# 4. Running (not checking) a bad file: exits non-zero, never listens. The file's listener and
#    admin port are valid and come first, so a loader that applied them before finding the bad
#    route would have announced a listener.
cat >"$T/half.yaml" <<'EOF'
listeners:
  - name: early
    address: 127.0.0.1:0
admin: {address: "127.0.0.1:0"}
clusters:
  - name: backend
    endpoints: [127.0.0.1:9]
routes:
  - cluster: backend
  - cluster: missing
EOF
"$WEIR_BIN" -c "$T/half.yaml" >"$T/run.out" 2>"$T/run.err" &
pid=$!
E2E_PIDS+=("$pid")
wait_for 20 bash -c "! kill -0 $pid" || fail "weir -c half.yaml kept running with a bad config"
rc=0
wait "$pid" || rc=$?
[ "$rc" -ne 0 ] || fail "weir -c half.yaml exited 0"
has_line_prefix "$T/run.err" "weir: $T/half.yaml:10:14: routes[1].cluster: unknown cluster 'missing'" ||
    fail "weir -c half.yaml: unexpected stderr: $(cat "$T/run.err")"
grep -qE '^weir: (listener|admin|ready)' "$T/run.err" &&
    fail "weir -c half.yaml started something: $(cat "$T/run.err")"
pass "weir -c with a bad file exits $rc without listening"

# 5. --help names every flag and variable; --version names weir and its libraries.
rc=0
"$WEIR_BIN" --help >"$T/help" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "--help exited $rc"
for word in --config --listen --tls-cert --tls-key --upstream --admin --admin-token --workers \
    --memory-limit --access-log --check-config --help --version health WEIR_LISTEN WEIR_ADMIN \
    WEIR_ADMIN_TOKEN WEIR_MEMORY_LIMIT WEIR_WORKERS; do
    grep -qF -- "$word" "$T/help" || fail "--help does not mention $word"
done
rc=0
"$WEIR_BIN" --version >"$T/version" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "--version exited $rc"
grep -qE '^weir [0-9]+\.[0-9]+' "$T/version" || fail "--version: $(cat "$T/version")"
for lib in nghttp2 libuv OpenSSL; do
    grep -q "$lib" "$T/version" || fail "--version does not name $lib"
done
pass "--help and --version"
