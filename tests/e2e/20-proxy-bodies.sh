#!/usr/bin/env bash
# 20-proxy-bodies: bodies of 0 B, 1 B, 16 KiB, 1 MiB and 100 MB through weir, checksummed
# end to end, both ways:
#   GET  /bytes/N   the sha256 of what arrives equals the upstream's x-sha256 header;
#   POST /sha256    the upstream's digest of what it received equals ours;
#   POST /echo      what comes back is what we sent, and the x-sha256 trailer agrees.
# Paths: h2c and TLS (ALPN h2) downstream, each to an h2c and to an HTTP/1.1 upstream.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need node

SIZES=(0 1 16384 1048576 100000000)
for n in "${SIZES[@]}"; do
    head -c "$n" /dev/urandom >"$T/in.$n"
    sha256sum "$T/in.$n" | cut -d' ' -f1 >"$T/in.$n.sha"
done

hdr() { tr -d '\r' <"$1" | awk -v k="$2" 'tolower($1) == k":" {print $2}' | tail -n 1; }

# check_path LABEL BASEURL CURL_ARGS...
check_path() {
    local label=$1 base=$2; shift 2
    local n got want code
    for n in "${SIZES[@]}"; do
        code=$(curl -sS --max-time 120 "$@" -D "$T/h" -o "$T/out" -w '%{http_code}' \
            "$base/bytes/$n") || fail "$label GET /bytes/$n: curl failed"
        [ "$code" = 200 ] || fail "$label GET /bytes/$n: status $code"
        got=$(sha256sum "$T/out" | cut -d' ' -f1)
        want=$(hdr "$T/h" x-sha256)
        [ -n "$want" ] && [ "$got" = "$want" ] ||
            fail "$label GET /bytes/$n: sha256 $got, upstream says '$want'"
        [ "$(stat -c %s "$T/out")" = "$n" ] || fail "$label GET /bytes/$n: wrong length"

        want=$(cat "$T/in.$n.sha")
        code=$(curl -sS --max-time 120 "$@" -X POST -T "$T/in.$n" -o "$T/out" \
            -w '%{http_code}' "$base/sha256") || fail "$label POST /sha256 $n: curl failed"
        [ "$code" = 200 ] || fail "$label POST /sha256 $n: status $code"
        [ "$(cat "$T/out")" = "$want $n" ] ||
            fail "$label POST /sha256 $n: upstream got '$(cat "$T/out")', sent '$want $n'"

        code=$(curl -sS --max-time 120 "$@" -X POST -T "$T/in.$n" -D "$T/h" -o "$T/out" \
            -w '%{http_code}' "$base/echo") || fail "$label POST /echo $n: curl failed"
        [ "$code" = 200 ] || fail "$label POST /echo $n: status $code"
        got=$(sha256sum "$T/out" | cut -d' ' -f1)
        [ "$got" = "$want" ] || fail "$label POST /echo $n: echoed body differs"
        [ "$(hdr "$T/h" x-sha256)" = "$want" ] ||
            fail "$label POST /echo $n: trailer x-sha256 '$(hdr "$T/h" x-sha256)' != $want"
    done
    pass "$label: GET, POST and echo of 0 B, 1 B, 16 KiB, 1 MiB, 100 MB, checksums match"
}

start_upstream h2 --proto h2c
start_upstream h1 --proto http1

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "h2c://127.0.0.1:$h2_PORT"
check_path "h2c -> h2c" "http://127.0.0.1:$WEIR_PORT" --http2-prior-knowledge
stop_weir TERM || fail "weir exited $? after SIGTERM"

start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "http://127.0.0.1:$h1_PORT"
check_path "h2c -> http1" "http://127.0.0.1:$WEIR_PORT" --http2-prior-knowledge
stop_weir TERM || fail "weir exited $? after SIGTERM"

need openssl
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || fail "openssl req failed"
for up in "h2c://127.0.0.1:$h2_PORT" "http://127.0.0.1:$h1_PORT"; do
    start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --tls-cert "$T/cert.pem" \
        --tls-key "$T/key.pem" --upstream "$up"
    [ -n "$WEIR_TLS_PORT" ] || fail "no TLS listener line"
    check_path "tls -> ${up%%:*}" "https://127.0.0.1:$WEIR_TLS_PORT" --http2 --cacert "$T/cert.pem"
    stop_weir TERM || fail "weir exited $? after SIGTERM"
done
