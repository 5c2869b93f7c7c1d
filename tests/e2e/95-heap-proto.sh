#!/usr/bin/env bash
# 95-heap-proto: GET /heap_dump?format=proto is the profile the text format is, in pprof's
# gzipped protobuf. Under h2load (a direct_response route and an h2c upstream, so regions,
# sub-arenas, the facade and nghttp2 all allocate) with sampling every 4 KiB, the peak
# snapshot is read in both formats (one snapshot: the numbers must agree) after the load:
#   - the body is gzip (gzip -t) and `go tool pprof` reads it: sample types alloc_objects,
#     alloc_space, inuse_objects, inuse_space, default inuse_space;
#   - the totals of inuse_space, inuse_objects and alloc_space by `go tool pprof -top` are
#     within 1% of `google-pprof --text`'s on the text format (both un-sample the same counts);
#   - the function with the most inuse bytes is the same in both, with the same bytes within
#     1%, and none of the first 5 is a bare address;
#   - the labels name the workers and the four owners region, subregion, tcache, library;
#   - `-tagfocus owner=subregion` keeps only sub-arena sites.
source "$(dirname "$0")/lib.sh"
need curl
need h2load
need node
need google-pprof
need go

start_upstream h2 --proto h2c
cat >"$T/weir.yaml" <<EOF
listeners: [{name: main, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 2
clusters: [{name: up, protocol: h2c, endpoints: ["127.0.0.1:$h2_PORT"]}]
routes:
  - {match: {path_prefix: /direct}, direct_response: {status: 200, body: "hello from weir\n"}}
  - {match: {path_prefix: /}, cluster: up}
EOF
start_weir -c "$T/weir.yaml"
sb=$(curl -sS --max-time 10 -X POST "http://127.0.0.1:$ADMIN_PORT/heap_dump?sample_bytes=4096")
[ "$sb" = '{"sample_bytes":4096}' ] || fail "POST /heap_dump?sample_bytes=4096 answered: $sb"

h2load -n 20000 -c 32 -m 16 "http://127.0.0.1:$WEIR_PORT/direct" >"$T/h2load1.out" 2>&1 ||
    fail "h2load /direct failed: $(tail -n 3 "$T/h2load1.out")"
h2load -n 5000 -c 16 -m 8 -d "$WEIR_SRC/README.md" "http://127.0.0.1:$WEIR_PORT/echo" \
    >"$T/h2load2.out" 2>&1 || fail "h2load upstream failed: $(tail -n 3 "$T/h2load2.out")"
grep -E '^requests:' "$T/h2load1.out" "$T/h2load2.out"

admin_get "/heap_dump?peak=1" >"$T/peak.prof"
curl -sS --max-time 20 -D "$T/h" -o "$T/peak.pb.gz" "http://127.0.0.1:$ADMIN_PORT/heap_dump?peak=1&format=proto"
grep -qi '^content-type: application/octet-stream' "$T/h" || fail "content type: $(cat "$T/h")"
gzip -t "$T/peak.pb.gz" || fail "the protobuf profile is not gzip: $(head -c 100 "$T/peak.pb.gz" | od -c | head -3)"
# The peak may not move between the two reads: nothing allocates now. If it did, read again.
admin_get "/heap_dump?peak=1" | cmp -s - "$T/peak.prof" || fail "the peak moved while idle"
pass "peak snapshot: $(head -n1 "$T/peak.prof"); protobuf $(stat -c %s "$T/peak.pb.gz") bytes gzipped"

go tool pprof -raw "$T/peak.pb.gz" >"$T/raw" 2>"$T/raw.err" || fail "go tool pprof -raw: $(cat "$T/raw.err")"
grep -q 'alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes' "$T/raw" ||
    fail "sample types: $(head -n 5 "$T/raw")"
for idx in inuse_space inuse_objects alloc_space; do
    go tool pprof -top -nodecount=400 -sample_index=$idx "$T/peak.pb.gz" >"$T/go.$idx" 2>/dev/null ||
        fail "go tool pprof -top -sample_index=$idx failed"
    gp_flag="--$idx"
    google-pprof --text $gp_flag "$WEIR_BIN" "$T/peak.prof" >"$T/gp.$idx" 2>/dev/null ||
        fail "google-pprof --text $gp_flag failed"
done
# go: "Showing nodes accounting for X, P% of T total" (B/kB/MB, or a count);
# google-pprof: "Total: T MB" (or "Total: T objects").
go_total() { sed -nE 's/.* of ([0-9.]+)([kMG]?B)? total.*/\1 \2/p' "$1" | head -n1 |
    awk '{n = $1; if ($2 == "kB") n *= 1024; else if ($2 == "MB") n *= 1048576; else if ($2 == "GB") n *= 1073741824; printf "%d\n", n}'; }
gp_total() { sed -nE 's/^Total: ([0-9.]+) (MB|objects).*/\1 \2/p' "$1" | head -n1 |
    awk '{n = $1; if ($2 == "MB") n *= 1048576; printf "%d\n", n}'; }
for idx in inuse_space inuse_objects alloc_space; do
    g=$(go_total "$T/go.$idx"); p=$(gp_total "$T/gp.$idx")
    [ -n "$g" ] && [ -n "$p" ] && [ "$g" -gt 0 ] || fail "$idx totals missing: go '$g', google-pprof '$p'"
    # google-pprof prints MB with 1 decimal place: allow that rounding (0.05 MB) as well as 1%.
    slack=52429
    [ "$idx" = inuse_objects ] && slack=1
    d=$((g > p ? g - p : p - g))
    [ "$d" -le $((g / 100 + slack)) ] ||
        fail "$idx: go tool pprof total $g, google-pprof $p"
    echo "$idx: go tool pprof $g, google-pprof $p"
done
pass "totals agree within 1% between the protobuf (go tool pprof) and the text (google-pprof)"

# The function with the most inuse bytes: the same name and bytes within 1% (plus
# google-pprof's rounding) in both. Only the first: below it the two name frames differently
# (google-pprof splits out inlined functions and names a stripped library's static functions
# after the nearest exported symbol; the protobuf names the enclosing function, and a library
# function without a symbol as object+offset). None of the first 5 is a bare address.
rows() { awk 'NF >= 6 && $2 ~ /%$/ && $1 != "flat" {print $6, $1}' "$1" | head -n "$2"; }
rows "$T/go.inuse_space" 5 >"$T/top5"
[ "$(wc -l <"$T/top5")" = 5 ] || fail "fewer than 5 functions: $(cat "$T/go.inuse_space")"
! grep -q '^0x' "$T/top5" || fail "an unnamed function among the first 5: $(cat "$T/top5")"
read -r fn v <"$T/top5"
gb=$(awk -v v="$v" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "kB") n *= 1024; else if (u == "MB") n *= 1048576; printf "%d", n }')
pv=$(awk -v fn="$fn" 'NF >= 6 && $6 == fn { printf "%d", $1 * 1048576; exit }' "$T/gp.inuse_space")
gp_fn=$(awk 'NF >= 6 && $2 ~ /%$/ {print $6; exit}' "$T/gp.inuse_space")
[ "$gp_fn" = "$fn" ] || fail "first function: $fn in go tool pprof, $gp_fn in google-pprof"
d=$((gb > pv ? gb - pv : pv - gb))
[ "$d" -le $((gb / 100 + 52429)) ] || fail "$fn: go tool pprof $gb, google-pprof $pv"
pass "the first function agrees: $fn, $gb bytes (go tool pprof) and $pv (google-pprof); the first 5: $(awk '{print $1}' "$T/top5" | tr '\n' ' ')"

go tool pprof -tags "$T/peak.pb.gz" >"$T/tags" 2>/dev/null || fail "go tool pprof -tags failed"
for o in region subregion tcache library; do
    grep -qE "^ +[0-9.]+[kMG]?B \( *[0-9.]+%\): $o\$" "$T/tags" || fail "no owner=$o: $(cat "$T/tags")"
done
grep -qE ': weir-w0$' "$T/tags" && grep -qE ': weir-w1$' "$T/tags" || fail "workers: $(cat "$T/tags")"
grep -qE ': large$|: [0-9]+$' "$T/tags" || fail "size classes: $(cat "$T/tags")"
pass "labels: $(grep -E '^ *owner:' -A5 "$T/tags" | grep -oE '(region|subregion|tcache|library)$' | tr '\n' ' ')"
go tool pprof -top -nodecount=1000 -tagfocus=owner=subregion "$T/peak.pb.gz" >"$T/sub.top" 2>/dev/null ||
    fail "-tagfocus owner=subregion failed"
# With a focus, "Showing nodes accounting for X, P% of T total": X is what the focus keeps.
sub=$(sed -nE 's/.*accounting for ([0-9.]+)([kMG]?B)?, .*/\1 \2/p' "$T/sub.top" | head -n1 |
    awk '{n = $1; if ($2 == "kB") n *= 1024; else if ($2 == "MB") n *= 1048576; printf "%d\n", n}')
all=$(go_total "$T/go.inuse_space")
[ -n "$sub" ] && [ "$sub" -gt 0 ] && [ "$sub" -lt "$all" ] ||
    fail "owner=subregion total $sub of $all: $(head -n 8 "$T/sub.top")"
pass "owner=subregion holds $sub of $all bytes; its top site: $(rows "$T/sub.top" 1)"
stop_weir TERM || fail "weir exited $? after SIGTERM"
