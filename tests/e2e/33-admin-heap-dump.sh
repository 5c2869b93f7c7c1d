#!/usr/bin/env bash
# tests/e2e/33-admin-heap-dump.sh: under load (h2load against a direct_response route), set
# heap sampling to 4 KiB with POST /heap_dump?sample_bytes=4096, take GET /heap_dump, and check
# that google-pprof reads it against the binary and names weir's allocation sites (functions
# from proxy/ or nghttp2). /heap_dump/symbols names them as well, resolved in-process.
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -o pipefail` when no line matches (no TLS listener), which
# ends start_weir; tolerate that here until lib.sh does.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need h2load
need google-pprof

cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
routes:
  - direct_response: {status: 200, body: "hello from weir\n"}
admin: {address: "127.0.0.1:0"}
workers: 2
YAML
start_weir -c "$T/weir.yaml"

sb=$(curl -sS --max-time 10 -X POST "http://127.0.0.1:$ADMIN_PORT/heap_dump?sample_bytes=4096")
[ "$sb" = '{"sample_bytes":4096}' ] || fail "POST /heap_dump?sample_bytes=4096 answered: $sb"

# Long enough load that dumps can be taken while connections and streams are alive.
h2load -D 20 -c 32 -m 16 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load.out" 2>&1 &
LOAD_PID=$!
E2E_PIDS+=("$LOAD_PID")

# Take dumps only once the load is flowing, so the live samples are request-path memory.
load_flowing() {
    admin_get /stats | $PY -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["requests_total"] > 1000 else 1)'
}
wait_for 15 load_flowing || fail "h2load did not get going: $(tail -n 5 "$T/h2load.out")"
# dump_has_samples: takes a dump; true once it has live samples ("heap profile: N: ..." N >= 5).
dump_has_samples() {
    admin_get /heap_dump >"$T/heap.prof" || return 1
    head -n1 "$T/heap.prof" | awk '$1 == "heap" && $2 == "profile:" {n = $3 + 0} END {exit !(n >= 5)}'
}
wait_for 15 dump_has_samples || fail "no live samples under load: $(head -n 3 "$T/heap.prof")"
grep -q '^MAPPED_LIBRARIES:' "$T/heap.prof" || fail "dump lacks MAPPED_LIBRARIES"
pass "heap dump under load: $(head -n1 "$T/heap.prof")"

admin_get /heap_dump/symbols >"$T/heap.sym"
kill "$LOAD_PID" 2>/dev/null || true

google-pprof --text "$WEIR_BIN" "$T/heap.prof" >"$T/pprof.txt" 2>"$T/pprof.err" ||
    fail "google-pprof failed: $(tail -n 5 "$T/pprof.err")"
# The request path's allocation sites must be named: nghttp2's session (through weir's
# nghttp2_mem hooks) or weir's own px_* functions.
grep -Eq '(px_[a-z_0-9]+|nghttp2_[a-z_0-9]+)' "$T/pprof.txt" ||
    fail "pprof names no weir allocation site: $(head -n 15 "$T/pprof.txt")"
pass "google-pprof --text names: $(grep -Eo '(px_[a-z_0-9]+|nghttp2_[a-z_0-9]+|mem_[a-z_0-9]+)' "$T/pprof.txt" | sort -u | head -n 8 | tr '\n' ' ')"
grep -Eq '^0x[0-9a-f]+ .*(px_|nghttp2_|mem_)' "$T/heap.sym" ||
    fail "/heap_dump/symbols names no weir function: $(head -n 5 "$T/heap.sym")"
pass "/heap_dump/symbols resolves in-process"
