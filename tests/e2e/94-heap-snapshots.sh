#!/usr/bin/env bash
# 94-heap-snapshots: heap snapshots that outlive the moment (issue 18 part 1). weir runs with
# a 16 MiB budget (elevated 0.30, critical 0.36: the stream admission pool, sized by the
# elevated mark, holds a burst below a critical mark far above it) and heap sampling every
# 4 KiB. A burst of
# 8 node http2 sessions x 20 concurrent 1 MiB uploads to an upstream that leaves each body
# unread for 1.5 s drives it to critical; the client then goes away and the level comes back
# to normal. Afterwards, checked with the real readers:
#   - weir logged the overload snapshot with the transition, and /memory lists it;
#   - GET /heap_dump?overload=N (text, read by `google-pprof --text` against the binary) and
#     GET /heap_dump?overload=N&format=proto (read by `go tool pprof -top`) name the burst's
#     allocation site: the function holding the most sampled bytes at the rise is a named
#     function (not an address) holding at least 512 KiB in both readers (taken at the rise to
#     critical 0.36, the burst then holds 0.6-2 MiB);
#   - GET /heap_dump?peak=1 (google-pprof) and ?peak=1&format=proto (go tool pprof) give that
#     same function at least 512 KiB;
#   - the live heap (GET /heap_dump, both formats) gives it less than a tenth of that;
#   - the protobuf carries the worker, owner and size_class labels;
#   - GET /memory/regions?overload=N has the burst's streams as they were at the rise;
#   - POST /heap_dump/peak/reset forgets the peak; bad parameters get 400, unknown
#     snapshots 404.
source "$(dirname "$0")/lib.sh"
need node
need curl
need google-pprof
need go

LIMIT_MIB=16
BYTES=$((1024 * 1024))

node "$E2E_DIR/overload-slow-upstream.js" >"$T/up.out" 2>"$T/up.err" &
E2E_PIDS+=("$!")
wait_for 20 grep -q '^PORT ' "$T/up.out" || fail "slow upstream did not start: $(cat "$T/up.err")"
UP=$(awk '/^PORT /{print $2; exit}' "$T/up.out")

cat >"$T/ov.yaml" <<EOF
listeners: [{name: main, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 2
clusters: [{name: up, protocol: h2c, endpoints: ["127.0.0.1:$UP"]}]
routes: [{match: {path_prefix: /}, cluster: up}]
memory: {limit: ${LIMIT_MIB}MiB, elevated: 0.30, critical: 0.36, hysteresis: 0.05}
EOF
start_weir -c "$T/ov.yaml"
sb=$(curl -sS --max-time 10 -X POST "http://127.0.0.1:$ADMIN_PORT/heap_dump?sample_bytes=4096")
[ "$sb" = '{"sample_bytes":4096}' ] || fail "POST /heap_dump?sample_bytes=4096 answered: $sb"

jq_node() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const o=JSON.parse(s);console.log($1)})"; }
level() { admin_get /overload | jq_node 'o.level'; }
is_normal() { [ "$(level)" = normal ]; }
is_normal || fail "weir did not start at level normal"

# No overload snapshot yet: 404, and bad parameters 400.
code() { curl -sS --max-time 10 -o "$T/body" -w '%{http_code}' "$@"; }
[ "$(code "http://127.0.0.1:$ADMIN_PORT/heap_dump?overload=1")" = 404 ] ||
    fail "?overload=1 before any overload: $(cat "$T/body")"
[ "$(code "http://127.0.0.1:$ADMIN_PORT/memory/regions?overload=1")" = 404 ] ||
    fail "/memory/regions?overload=1 before any overload: $(cat "$T/body")"
for q in "overload=0" "overload=x" "peak=2" "peak=1&overload=1" "format=json" "format=proto&symbols=1"; do
    [ "$(code "http://127.0.0.1:$ADMIN_PORT/heap_dump?$q")" = 400 ] ||
        fail "/heap_dump?$q did not get 400: $(cat "$T/body")"
done
pass "before the burst: ?overload=1 is 404; bad parameters get 400 ($(head -c 80 "$T/body"))"

node "$E2E_DIR/overload-uploads.js" "http://127.0.0.1:$WEIR_PORT" 8 20 "$BYTES" 1500 0 90 \
    >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!
E2E_PIDS+=("$LOAD_PID")
wait_for 60 grep -q -- '-> critical' "$T/weir.log" ||
    fail "the burst never drove weir to critical: $(admin_get /overload)"
# Then the load stops: the client goes away (its streams are reset) rather than waiting for
# the streams an upstream timeout ends (30 s).
kill -TERM "$LOAD_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
wait_for 30 is_normal || fail "the level did not come back to normal: $(admin_get /overload)"
grep -q -- '-> normal' "$T/weir.log" || fail "the recovery was not logged"
# The snapshot of the rise to critical (the rise to elevated may have come first).
line=$(grep -m1 -E '^weir: overload: snapshot [0-9]+ kept \([a-z]+ -> critical\)' "$T/weir.log") ||
    fail "no overload snapshot logged with the rise to critical: $(grep overload "$T/weir.log")"
N=$(sed -E 's/.*snapshot ([0-9]+) kept.*/\1/' <<<"$line")
grep -q "heap sampled" <<<"$line" || fail "the snapshot has no heap: $line"
grep '^weir: overload:' "$T/weir.log"
admin_get /memory | jq_node 'JSON.stringify(o.heap_snapshots)' >"$T/snaps.json"
node -e "const h=JSON.parse(require('fs').readFileSync(process.argv[1]));
  const s=h.overload.find(x=>x.overload==$N);
  if(!s||s.to!=='critical'||!s.heap) process.exit(1);
  if(!h.peak||h.bytes<=0||h.peak.committed<0.36*$LIMIT_MIB*1048576) process.exit(2); // at least the critical mark" "$T/snaps.json" ||
    fail "/memory heap_snapshots lacks overload $N, or the peak: $(cat "$T/snaps.json")"
pass "/memory heap_snapshots: $(cat "$T/snaps.json")"

# The readers, on the overload snapshot, the peak and the live heap, in both formats.
admin_get "/heap_dump?overload=$N" >"$T/ov.prof"
curl -sS --max-time 20 -o "$T/ov.pb.gz" "http://127.0.0.1:$ADMIN_PORT/heap_dump?overload=$N&format=proto"
admin_get "/heap_dump?peak=1" >"$T/peak.prof"
curl -sS --max-time 20 -o "$T/peak.pb.gz" "http://127.0.0.1:$ADMIN_PORT/heap_dump?peak=1&format=proto"
admin_get "/heap_dump" >"$T/live.prof"
curl -sS --max-time 20 -o "$T/live.pb.gz" "http://127.0.0.1:$ADMIN_PORT/heap_dump?format=proto"
for f in ov peak live; do
    google-pprof --text --inuse_space "$WEIR_BIN" "$T/$f.prof" >"$T/$f.gp.txt" 2>"$T/$f.gp.err" ||
        fail "google-pprof --text $f failed: $(tail -n 3 "$T/$f.gp.err")"
    go tool pprof -top -sample_index=inuse_space "$T/$f.pb.gz" >"$T/$f.go.txt" 2>"$T/$f.go.err" ||
        fail "go tool pprof -top $f failed: $(tail -n 3 "$T/$f.go.err")"
done
# fn_bytes FILE FN: FN's flat bytes in a listing (rows "flat flat% sum% cum cum% name";
# google-pprof prints MB without a unit, go tool pprof B, kB, MB), 0 when absent.
fn_bytes() {
    awk -v fn="$2" '
        function bytes(v,   u, n) { u = v; sub(/^[0-9.]+/, "", u); n = v + 0
            if (u == "") n *= 1048576; else if (u == "kB") n *= 1024
            else if (u == "MB") n *= 1048576; else if (u == "GB") n *= 1073741824
            return n }
        NF >= 6 && $2 ~ /%$/ && $6 == fn { print int(bytes($1)); f = 1; exit }
        END { if (!f) print 0 }' "$1"
}
# top_fn FILE: the function with the most flat bytes (the listing's first row).
top_fn() { awk 'NF >= 6 && $2 ~ /%$/ { print $6; exit }' "$1"; }
site=$(top_fn "$T/ov.go.txt")
[ -n "$site" ] || fail "go tool pprof -top of the overload snapshot is empty: $(head "$T/ov.go.txt")"
[[ "$site" != 0x* && "$site" != *+0x* ]] ||
    fail "the overload snapshot's top allocation site is not a named function: $site"
ov_go=$(fn_bytes "$T/ov.go.txt" "$site")
ov_gp=$(fn_bytes "$T/ov.gp.txt" "$site")
peak_go=$(fn_bytes "$T/peak.go.txt" "$site")
peak_gp=$(fn_bytes "$T/peak.gp.txt" "$site")
live_go=$(fn_bytes "$T/live.go.txt" "$site")
live_gp=$(fn_bytes "$T/live.gp.txt" "$site")
echo "burst site $site: overload snapshot $ov_go B (go tool pprof) / $ov_gp B (google-pprof);" \
    "peak $peak_go / $peak_gp; live now $live_go / $live_gp"
for v in "$ov_go" "$ov_gp" "$peak_go" "$peak_gp"; do
    [ "$v" -ge 524288 ] ||
        fail "$site holds under 512 KiB in a snapshot ($v): $(head -n 12 "$T/ov.go.txt") $(head -n 12 "$T/peak.go.txt") $(head -n 12 "$T/ov.gp.txt")"
done
[ $((live_go * 10)) -lt "$ov_go" ] && [ $((live_gp * 10)) -lt "$ov_gp" ] ||
    fail "the live heap still holds the burst's $site: $(head -n 12 "$T/live.go.txt")"
pass "the overload snapshot and the peak name $site ($((ov_go / 1024)) KiB and $((peak_go / 1024)) KiB by go tool pprof, $((ov_gp / 1024)) and $((peak_gp / 1024)) KiB by google-pprof); the live heap gives it $((live_go / 1024)) KiB"

# The protobuf carries the labels.
go tool pprof -tags "$T/ov.pb.gz" >"$T/ov.tags" 2>/dev/null || fail "go tool pprof -tags failed"
for k in worker owner size_class; do
    grep -q "^ *$k:" "$T/ov.tags" || fail "label $k missing: $(cat "$T/ov.tags")"
done
grep -q 'weir-w[0-9]' "$T/ov.tags" || fail "no worker label names a worker: $(cat "$T/ov.tags")"
pass "labels: $(grep -E '^ *(worker|owner|size_class):' "$T/ov.tags" | tr -s ' ' | tr '\n' ' ')"

admin_get "/memory/regions?overload=$N" >"$T/regions.json"
node -e "const r=JSON.parse(require('fs').readFileSync(process.argv[1]));
  if(r.overload!=$N||r.to!=='critical'||r.count<1||r.regions.length!==r.count) process.exit(1);
  if(!r.regions.some(x=>x.kind==='stream'&&x.path.startsWith('/up'))) process.exit(2);" "$T/regions.json" ||
    fail "/memory/regions?overload=$N: $(head -c 600 "$T/regions.json")"
pass "/memory/regions?overload=$N: $(jq_node '`${o.count} regions, largest ${o.regions[0].bytes} bytes (${o.regions[0].kind} ${o.regions[0].path})`' <"$T/regions.json")"

# Reset: the peak is forgotten, and the next one starts from what is held now.
r=$(curl -sS --max-time 10 -X POST "http://127.0.0.1:$ADMIN_PORT/heap_dump/peak/reset")
grep -q '"peak_committed_was"' <<<"$r" || fail "POST /heap_dump/peak/reset answered: $r"
peak_again() { admin_get "/heap_dump?peak=1" >"$T/peak2.prof" && head -n1 "$T/peak2.prof" | grep -q '^heap profile:'; }
wait_for 10 peak_again || fail "no new peak after the reset: $(head -c 200 "$T/peak2.prof")"
google-pprof --text --inuse_space "$WEIR_BIN" "$T/peak2.prof" >"$T/peak2.gp.txt" 2>/dev/null ||
    fail "google-pprof on the peak after the reset failed"
p2=$(fn_bytes "$T/peak2.gp.txt" "$site")
[ $((p2 * 10)) -lt "$peak_gp" ] || fail "after the reset the peak still holds the burst's $site ($p2)"
pass "after POST /heap_dump/peak/reset ($r) the peak gives $site $((p2 / 1024)) KiB"
stop_weir TERM || fail "weir exited $? after SIGTERM"
