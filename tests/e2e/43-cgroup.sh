#!/usr/bin/env bash
# 43-cgroup: with no explicit limit weir's memory budget is 90% of its own cgroup's memory
# limit. The test creates a child memory cgroup with a 256 MiB limit (cgroup v2: memory.max
# in a child of /sys/fs/cgroup with the memory controller enabled; else cgroup v1:
# memory.limit_in_bytes under /sys/fs/cgroup/memory), starts weir inside it, and checks that
# /memory reports budget_limit = 0.9 x 256 MiB and that weir logged where the limit came from.
# A second start with --memory-limit 50% checks the share option against the same cgroup.
# weir finds its cgroup through /proc/self/cgroup, so this also checks that a nested cgroup
# (not the root's files) is what counts. Exits 77 (skip) when no cgroup can be created here:
# not root, or neither hierarchy is writable, or v2 without the memory controller.
source "$(dirname "$0")/lib.sh"
need curl
need node

CG_LIMIT=$((256 * 1024 * 1024))
NAME="weir-e2e-$$"
CG=
VER=

[ "$(id -u)" = 0 ] || skip "creating a cgroup needs root"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
        skip "cgroup v2 at /sys/fs/cgroup does not enable the memory controller for children (cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null))"
    mkdir "/sys/fs/cgroup/$NAME" 2>/dev/null || skip "cannot create a cgroup v2 child under /sys/fs/cgroup (read-only or delegated elsewhere)"
    CG="/sys/fs/cgroup/$NAME"
    VER=2
    echo "$CG_LIMIT" >"$CG/memory.max" || skip "cannot write $CG/memory.max"
elif [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
    mkdir "/sys/fs/cgroup/memory/$NAME" 2>/dev/null || skip "cannot create a cgroup v1 memory child under /sys/fs/cgroup/memory (read-only)"
    CG="/sys/fs/cgroup/memory/$NAME"
    VER=1
    echo "$CG_LIMIT" >"$CG/memory.limit_in_bytes" || skip "cannot write $CG/memory.limit_in_bytes"
else
    skip "no cgroup memory controller mounted at /sys/fs/cgroup (neither v2 nor v1)"
fi

cg_cleanup() {
    e2e_cleanup
    # The cgroup can go once weir (its only member) has exited.
    [ -n "$CG" ] && rmdir "$CG" 2>/dev/null || true
}
trap cg_cleanup EXIT

# weir is started through a wrapper that joins the cgroup and then execs it (same PID).
REAL_BIN=$WEIR_BIN
cat >"$T/in-cgroup.sh" <<EOF
#!/usr/bin/env bash
echo \$\$ >"$CG/cgroup.procs" || exit 3
exec "$REAL_BIN" "\$@"
EOF
chmod +x "$T/in-cgroup.sh"
WEIR_BIN="$T/in-cgroup.sh"

budget_limit() {
    admin_get /memory | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).budget_limit))"
}

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers 1
grep -qx "0::/$NAME\|[0-9]*:[^:]*memory[^:]*:/$NAME" "/proc/$WEIR_PID/cgroup" ||
    fail "weir is not in $CG: $(cat "/proc/$WEIR_PID/cgroup")"
want=$((CG_LIMIT * 9 / 10))
got=$(budget_limit)
# 0.9 x the limit in floating point: allow one byte of rounding.
[ "$got" -ge $((want - 1)) ] && [ "$got" -le $((want + 1)) ] ||
    fail "budget_limit is $got, want 90% of $CG_LIMIT = $want (cgroup v$VER $CG)"
grep -q "^weir: memory limit $got bytes (cgroup v$VER limit $CG_LIMIT bytes in $CG)" "$T/weir.log" ||
    fail "weir did not log the cgroup limit it used: $(grep 'memory limit' "$T/weir.log")"
code=$(curl -sS -o /dev/null -w '%{http_code}' --http2-prior-knowledge "http://127.0.0.1:$WEIR_PORT/") ||
    fail "weir inside the cgroup did not answer"
pass "cgroup v$VER: memory limit $CG_LIMIT -> budget_limit $got (90%), weir answered $code"
stop_weir TERM || fail "weir exited $? after SIGTERM"

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers 1 --memory-limit 50%
got=$(budget_limit)
[ "$got" = $((CG_LIMIT / 2)) ] || fail "--memory-limit 50%: budget_limit is $got, want $((CG_LIMIT / 2))"
pass "cgroup v$VER: --memory-limit 50% -> budget_limit $got"
stop_weir TERM || fail "weir exited $? after SIGTERM"
