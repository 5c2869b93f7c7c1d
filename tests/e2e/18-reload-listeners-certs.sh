#!/usr/bin/env bash
# 18-reload-listeners-certs: what a reload changes besides routes (issue 17 part 1).
#  - A listener added by a reload accepts (its port from weir's "listener" line), one removed by
#    the next reload refuses connections, the listener that stays keeps its port, and one on a
#    fixed port that the reload renames keeps its socket.
#  - A certificate replaced on disk is served to new TLS connections after the reload (the
#    subject seen by openssl s_client changes from CN=weir-one to CN=weir-two).
#  - A request in flight finishes on the config it started with: a slow upstream response
#    (4 s) whose cluster the reload removes arrives whole (its x-sha256 matches).
#  - The old config is freed once that response and its retired pool are gone (configs_live 1).
#  - An option that needs a restart (workers, the set of memory tenants) is refused with the
#    field named: 400, nothing changes.
source "$(dirname "$0")/lib.sh"
need node
need curl
need openssl

for n in one two; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=weir-$n" -keyout "$T/$n.key" -out "$T/$n.pem" 2>/dev/null ||
        fail "openssl could not make a certificate"
done
cp "$T/one.pem" "$T/cert.pem"
cp "$T/one.key" "$T/key.pem"
start_upstream up --proto h2c

# A listener on a fixed port, renamed by reload 1: a rename keeps the socket.
FIXED_PORT=$(free_port)
FIXED_NAME=fixed
# gen EXTRA CLUSTER_ROUTE WORKERS
gen() {
    {
        cat <<YEOF
listeners:
  - name: main
    address: 127.0.0.1:0
  - name: secure
    address: 127.0.0.1:0
    tls: {cert: cert.pem, key: key.pem}
  - name: $FIXED_NAME
    address: 127.0.0.1:$FIXED_PORT
YEOF
        [ "$1" = yes ] && printf '  - name: extra\n    address: 127.0.0.1:0\n'
        cat <<YEOF
admin:
  address: 127.0.0.1:0
workers: $3
reload: {watch: false}
clusters:
  - name: slowpool
    endpoints: [127.0.0.1:$up_PORT]
routes:
YEOF
        [ "$2" = yes ] && printf '  - match: {path_prefix: /slow}\n    cluster: slowpool\n'
        printf '  - match: {path_prefix: /}\n    direct_response: {status: 200, body: "here\\n"}\n'
    } >"$T/weir.yaml"
}
A() { echo "http://127.0.0.1:$ADMIN_PORT"; }
reload() { curl -sS --max-time 40 -o "$T/reload.out" -w '%{http_code}' -X POST "$(A)/reload"; }
subject() { openssl s_client -connect "127.0.0.1:$WEIR_TLS_PORT" -alpn h2 </dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null | sed 's/.*CN *= *//'; }

gen no yes 2
start_weir -c "$T/weir.yaml"
MAIN_PORT=$WEIR_PORT
[ "$(subject)" = weir-one ] || fail "TLS listener serves '$(subject)' at start, want weir-one"

# A slow response in flight across the reload that removes its route and cluster.
curl -sS --max-time 30 --http2-prior-knowledge -D "$T/slow.h" -o "$T/slow.body" \
    "http://127.0.0.1:$MAIN_PORT/slow?ms=4000&bytes=200000" &
SLOW_PID=$!
wait_for 10 sh -c "[ \$(curl -s '$(A)/stats' | tr -d ' \n' | grep -o '\"upstream_requests\":[0-9]*' | head -1 | cut -d: -f2) -ge 1 ]" ||
    fail "the slow request did not reach the upstream"

# Reload 1: new certificate at the same path, a listener added, the slow route and its cluster
# removed.
cp "$T/two.pem" "$T/cert.pem"
cp "$T/two.key" "$T/key.pem"
FIXED_NAME=renamed
gen yes no 2
code=$(reload)
[ "$code" = 200 ] || fail "reload 1: $code $(cat "$T/reload.out")"
# The slow response still holds the old config (its stream and its retired pool).
[ "$(stat_total configs_live)" = 2 ] || fail "configs_live $(stat_total configs_live) while the slow response is in flight, want 2"
EXTRA_PORT=$(log_port "$T/weir.log" '^weir: listener extra ')
[ -n "$EXTRA_PORT" ] || fail "no 'listener extra' line after the reload"
[ "$(curl -sS --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$EXTRA_PORT/")" = here ] ||
    fail "the listener added by the reload does not answer"
[ "$(curl -sS --max-time 10 "http://127.0.0.1:$EXTRA_PORT/")" = here ] ||
    fail "the listener added by the reload does not answer HTTP/1.1"
[ "$(curl -sS --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$MAIN_PORT/")" = here ] ||
    fail "the kept listener stopped answering on its port"
grep -q "^weir: listener fixed is now renamed (same socket)" "$T/weir.log" ||
    fail "the renamed listener on port $FIXED_PORT did not keep its socket: $(grep listener "$T/weir.log")"
[ "$(curl -sS --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$FIXED_PORT/")" = here ] ||
    fail "the renamed listener does not answer"
pass "a listener added by reload accepts (port $EXTRA_PORT); the kept one stays on $MAIN_PORT; a renamed one on $FIXED_PORT keeps its socket"
[ "$(subject)" = weir-two ] || fail "after the reload new TLS connections get '$(subject)', want weir-two"
[ "$(curl -sS --max-time 10 -k --http2 "https://127.0.0.1:$WEIR_TLS_PORT/")" = here ] ||
    fail "the TLS listener does not answer after the certificate change"
pass "a certificate replaced by reload is served to new connections (CN=weir-one -> CN=weir-two)"

wait "$SLOW_PID" || fail "the slow request across the reload failed (curl $?)"
grep -qi '^HTTP/2 200' "$T/slow.h" || fail "slow request: $(head -1 "$T/slow.h")"
want=$(tr -d '\r' <"$T/slow.h" | awk -F': ' 'tolower($1) == "x-sha256" {print $2}')
got=$(sha256sum "$T/slow.body" | cut -d' ' -f1)
[ "$(stat -c %s "$T/slow.body")" = 200000 ] && [ "$want" = "$got" ] ||
    fail "slow request: $(stat -c %s "$T/slow.body") bytes, sha $got, want 200000 and $want"
code=$(curl -sS --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MAIN_PORT/slow?ms=0&bytes=10")
[ "$code" = 200 ] && [ "$(curl -sS --http2-prior-knowledge "http://127.0.0.1:$MAIN_PORT/slow?ms=0&bytes=10")" = here ] ||
    fail "a new request to /slow did not take the new routes"
pass "a 4 s response in flight across the reload that removed its cluster arrived whole (200000 bytes, sha256 ok)"
# The retired pool closed its connection once the response ended, and with it went the last
# reference on the old config: one config is alive again.
wait_for 20 sh -c "[ \$(curl -s '$(A)/stats' | tr -d ' \n' | grep -o '\"configs_live\":[0-9]*' | cut -d: -f2) = 1 ]" ||
    fail "the old config is still alive after its last stream and pool: configs_live $(stat_total configs_live)"
pass "the old config is freed once its last stream and pool are gone (configs_live 1)"

# Reload 2: the extra listener goes.
gen no no 2
code=$(reload)
[ "$code" = 200 ] || fail "reload 2: $code $(cat "$T/reload.out")"
grep -q '^weir: listener extra closed' "$T/weir.log" || fail "no 'listener extra closed' line"
if curl -sS --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$EXTRA_PORT/" >/dev/null 2>&1; then
    fail "the listener removed by the reload still accepts"
fi
pass "a listener removed by reload refuses connections"

# Reload 3: workers needs a restart: refused, nothing changes.
gen yes no 3
code=$(reload)
[ "$code" = 400 ] || fail "workers change: reload answered $code"
grep -q "weir.yaml: workers changed: it needs a restart" "$T/reload.out" ||
    fail "workers change: $(cat "$T/reload.out")"
if curl -sS --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$EXTRA_PORT/" >/dev/null 2>&1; then
    fail "a refused reload opened a listener"
fi
ver=$(curl -sS "$(A)/config_dump" | awk '/^# version:/ {print $3}')
[ "$ver" = 3 ] || fail "a refused reload changed the version to $ver"
pass "workers: 3 refused: $(cat "$T/reload.out")"

# Reload 4: a memory tenant added (a cluster's memory: {limit}): the tenants' table is sized at
# start, so the set of tenants needs a restart too.
gen no no 2
sed -i "/endpoints: \[127.0.0.1:$up_PORT\]/a\\    memory: {limit: 1MiB}" "$T/weir.yaml"
grep -q 'memory: {limit: 1MiB}' "$T/weir.yaml" || fail "could not add the tenant to the file"
code=$(reload)
[ "$code" = 400 ] && grep -q "the memory tenants (routes and clusters with memory: {limit}) changed: it needs a restart" "$T/reload.out" ||
    fail "a new tenant: reload answered $code: $(cat "$T/reload.out")"
pass "a memory tenant added refused: $(cat "$T/reload.out")"
stop_weir TERM || fail "weir exited $? after SIGTERM"
pass "drained and exited 0"
