#!/usr/bin/env bash
# 85-h1-downstream-bodies: HTTP/1.1 clients (curl --http1.1) through weir (issue 16 parts 1
# and 3): GET and POST of 0 B, 1 B, 16 KiB, 1 MiB and 100 MB, checksummed end to end, through
# an h2c listener (the first bytes choose HTTP/1.1) and a TLS listener (ALPN http/1.1), each
# to an h2c and to an HTTP/1.1 upstream; POST bodies both with content-length and chunked:
#   GET  /bytes/N   the sha256 of what arrives equals the upstream's x-sha256 header;
#   POST /sha256    the upstream's digest of what it received equals ours;
#   POST /echo      what comes back (chunked: the upstream gives no length) is what we sent,
#                   and the upstream's x-sha256 trailer arrives in the last chunk and agrees.
# Early hints: the upstream's 103s reach HTTP/1.1 clients before the 200, not HTTP/1.0 ones.
# Keep-alive: 20 GETs in one curl run open one connection (/stats conn_accepted + 1, curl's
# num_connects 1); the access log says proto=http/1.1; requests_http1 counts them.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need node
need jq
need openssl

SIZES=(0 1 16384 1048576 100000000)
for n in "${SIZES[@]}"; do
    head -c "$n" /dev/urandom >"$T/in.$n"
    sha256sum "$T/in.$n" | cut -d' ' -f1 >"$T/in.$n.sha"
done

hdr() { tr -d '\r' <"$1" | awk -v k="$2" 'tolower($1) == k":" {print $2}' | tail -n 1; }
stat_of() { admin_get /stats | jq -r ".. | .$1? // empty" | head -n1; }

# check_path LABEL BASEURL CURL_ARGS...
check_path() {
    local label=$1 base=$2; shift 2
    local n got want code te
    for n in "${SIZES[@]}"; do
        code=$(curl -sS --max-time 120 --http1.1 "$@" -D "$T/h" -o "$T/out" \
            -w '%{http_code} %{http_version}' "$base/bytes/$n") ||
            fail "$label GET /bytes/$n: curl failed"
        [ "$code" = "200 1.1" ] || fail "$label GET /bytes/$n: $code"
        got=$(sha256sum "$T/out" | cut -d' ' -f1)
        want=$(hdr "$T/h" x-sha256)
        [ -n "$want" ] && [ "$got" = "$want" ] ||
            fail "$label GET /bytes/$n: sha256 $got, upstream says '$want'"
        [ "$(stat -c %s "$T/out")" = "$n" ] || fail "$label GET /bytes/$n: wrong length"

        want=$(cat "$T/in.$n.sha")
        for te in length chunked; do
            # curl 7.88 sends no last chunk for an empty file (it waits for ever); e2e 86's
            # control sends an empty-ended chunked body by hand.
            [ "$te" = chunked ] && [ "$n" = 0 ] && continue
            local extra=()
            [ "$te" = chunked ] && extra=(-H "Transfer-Encoding: chunked")
            code=$(curl -sS --max-time 120 --http1.1 "$@" "${extra[@]}" -X POST -T "$T/in.$n" \
                -o "$T/out" -w '%{http_code}' "$base/sha256") ||
                fail "$label POST /sha256 $n ($te): curl failed"
            [ "$code" = 200 ] || fail "$label POST /sha256 $n ($te): status $code"
            [ "$(cat "$T/out")" = "$want $n" ] ||
                fail "$label POST /sha256 $n ($te): upstream got '$(cat "$T/out")', sent '$want $n'"
        done

        code=$(curl -sS --max-time 120 --http1.1 "$@" -X POST -T "$T/in.$n" -D "$T/h" \
            -o "$T/out" -w '%{http_code}' "$base/echo") || fail "$label POST /echo $n: curl failed"
        [ "$code" = 200 ] || fail "$label POST /echo $n: status $code"
        got=$(sha256sum "$T/out" | cut -d' ' -f1)
        [ "$got" = "$want" ] || fail "$label POST /echo $n: echoed body differs"
        [ "$(hdr "$T/h" x-sha256)" = "$want" ] ||
            fail "$label POST /echo $n: trailer x-sha256 '$(hdr "$T/h" x-sha256)' != $want"
    done
    pass "$label: GET, POST (length and chunked) and echo of 0 B .. 100 MB, checksums and trailers match"

    # Keep-alive: 20 requests, one connection.
    local before after urls=()
    before=$(stat_of conn_accepted)
    for n in $(seq 1 20); do urls+=("$base/bytes/$n"); done
    got=$(curl -sS --max-time 60 --http1.1 "$@" -o /dev/null -w '%{num_connects}\n' "${urls[@]}" |
        awk '{s += $1} END {print s}') || fail "$label keep-alive run failed"
    after=$(stat_of conn_accepted)
    [ "$got" = 1 ] && [ "$((after - before))" = 1 ] ||
        fail "$label keep-alive: curl connects $got, conn_accepted $before -> $after"
    pass "$label: 20 GETs on one kept-alive connection (conn_accepted $before -> $after)"

    # Informational heads: the upstream's two 103 Early Hints, then the 200; none to HTTP/1.0.
    got=$(curl -sS --max-time 20 --http1.1 "$@" -D - -o /dev/null "$base/early-hints?n=2" |
        tr -d '\r' | grep -E '^(HTTP/|link:)' | paste -sd'|')
    [ "$got" = "HTTP/1.1 103 Early Hints|link: </hint-1.css>; rel=preload; as=style|HTTP/1.1 103 Early Hints|link: </hint-2.css>; rel=preload; as=style|HTTP/1.1 200 OK" ] ||
        fail "$label early hints: $got"
    got=$(curl -sS --max-time 20 --http1.0 "$@" -D - -o /dev/null "$base/early-hints?n=2" |
        tr -d '\r' | grep -E '^HTTP/' | paste -sd'|')
    [ "$got" = "HTTP/1.1 200 OK" ] || fail "$label early hints to HTTP/1.0: $got"
    pass "$label: two 103 Early Hints then 200 (HTTP/1.0: the 200 only)"
}

start_upstream h2 --proto h2c
start_upstream h1 --proto http1

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || fail "openssl req failed"
cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
  - address: 127.0.0.1:0
    tls: {cert: $T/cert.pem, key: $T/key.pem}
admin: {address: "127.0.0.1:0"}
YAML

for up in "h2c://127.0.0.1:$h2_PORT" "http://127.0.0.1:$h1_PORT"; do
    start_weir -c "$T/weir.yaml" --upstream "$up" --access-log "$T/access.log"
    [ -n "$WEIR_TLS_PORT" ] || fail "no TLS listener line"
    check_path "h2c listener -> ${up%%:*}" "http://127.0.0.1:$WEIR_PORT"
    check_path "tls listener -> ${up%%:*}" "https://127.0.0.1:$WEIR_TLS_PORT" --cacert "$T/cert.pem"
    n=$(stat_of requests_http1)
    # Per listener: 5 GETs, 5 + 4 POSTs to /sha256, 5 echoes, 20 keep-alive GETs, 2 hints.
    [ "$n" = 82 ] || fail "requests_http1 = $n, expected 82"
    h2n=$(stat_of requests_http2)
    [ "$h2n" = 0 ] || fail "requests_http2 = $h2n, expected 0"
    stop_weir TERM || fail "weir exited $? after SIGTERM"
    lines=$(grep -c ' proto=http/1.1$' "$T/access.log" || true)
    [ "$lines" -ge "$n" ] || fail "access log: $lines proto=http/1.1 lines for $n requests"
    pass "${up%%:*} upstream: requests_http1 $n, requests_http2 0, $lines access-log lines with proto=http/1.1"
    : >"$T/access.log"
done
