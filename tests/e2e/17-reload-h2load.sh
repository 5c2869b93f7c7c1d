#!/usr/bin/env bash
# 17-reload-h2load: h2load runs through ten reloads that change the routes and the clusters
# (issue 17 part 1). Each reload renames the cluster behind "/" and moves it between an h2c and
# an HTTP/1.1 upstream, and adds a direct route /vN; the reloads alternate POST /reload and
# SIGHUP. Checks: h2load (HTTP/2, and HTTP/1.1 keep-alive beside it) reports 0 failed and 0
# errored requests over the whole run; after each reload /vN answers, /v(N-1) is gone (404),
# "/" reaches the new cluster's upstream, and /config_dump shows the new version; a file that does not validate, mid-run, changes nothing
# (POST /reload answers 400 with file:line:column, /vN still answers, the version stays, the
# failed counter counts it); /stats and /metrics count 10 ok and 1 failed; the older configs are
# all freed once the load is over (configs_live 1); SIGTERM exits 0.
source "$(dirname "$0")/lib.sh"
need h2load
need node
need curl

start_upstream a --proto h2c
start_upstream b --proto http1

# gen N: the config of step N. Cluster cN goes to the h2c upstream for even N, the HTTP/1.1
# one for odd N; the file watch is off so that every reload here is one this test asked for.
gen() {
    local n=$1 ep
    if [ $((n % 2)) = 0 ]; then ep=$a_PORT; proto=h2c; else ep=$b_PORT; proto=http1; fi
    cat >"$T/weir.yaml.new" <<YEOF
listeners:
  - name: main
    address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
workers: 2
reload: {watch: false}
clusters:
  - name: c$n
    protocol: $proto
    endpoints: [127.0.0.1:$ep]
routes:
  - match: {path_prefix: /v$n}
    direct_response: {status: 200, body: "v$n\n"}
  - match: {path_prefix: /}
    cluster: c$n
YEOF
    mv "$T/weir.yaml.new" "$T/weir.yaml"
}

gen 0
start_weir -c "$T/weir.yaml"
B="http://127.0.0.1:$WEIR_PORT"
A="http://127.0.0.1:$ADMIN_PORT"
version() { curl -sS --max-time 10 -D - -o /dev/null "$A/config_dump" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "x-weir-config-version" {print $2}'; }
[ "$(version)" = 1 ] || fail "config version at start: $(version)"

# The load: 8 connections, 10 streams each, for LOAD_S seconds (h2load's timing mode; it cannot
# be stopped early); h2load's own count is the judge. The ten reloads take about 3 s here; the
# test fails, rather than pass unloaded, if the load ended before the last reload.
LOAD_S=${LOAD_S:-25}
T0=$(date +%s)
h2load -D "$LOAD_S" -c 8 -m 10 "$B/" >"$T/h2load.out" 2>&1 &
LOAD_PID=$!
E2E_PIDS+=("$LOAD_PID")
# And HTTP/1.1 keep-alive clients beside it (4 connections), through the same reloads.
h2load --h1 -D "$LOAD_S" -c 4 "$B/" >"$T/h1load.out" 2>&1 &
H1_PID=$!
E2E_PIDS+=("$H1_PID")
wait_for 20 sh -c "[ \$(curl -s '$A/stats' | tr -d ' \n' | grep -o '\"requests_total\":[0-9]*' | head -1 | cut -d: -f2) -gt 1000 ]" ||
    fail "h2load did not start"

for n in $(seq 1 10); do
    gen "$n"
    if [ $((n % 2)) = 1 ]; then
        out=$(curl -sS --max-time 40 -X POST "$A/reload") || fail "POST /reload $n: curl failed"
        echo "$out" | grep -q "^reloaded: version $((n + 1)) " || fail "POST /reload $n: $out"
    else
        kill -HUP "$WEIR_PID"
        wait_for 30 sh -c "[ \"\$(curl -sS -D - -o /dev/null '$A/config_dump' | tr -d '\r' | awk -F': ' 'tolower(\$1) == \"x-weir-config-version\" {print \$2}')\" = $((n + 1)) ]" ||
            fail "SIGHUP $n: version $(version), want $((n + 1))"
    fi
    got=$(curl -sS --max-time 10 --http2-prior-knowledge "$B/v$n") || fail "/v$n: curl failed"
    [ "$got" = "v$n" ] || fail "after reload $n: /v$n answered '$got'"
    code=$(curl -sS --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "$B/v$((n - 1))")
    [ "$code" = 200 ] && [ "$(curl -sS --http2-prior-knowledge "$B/v$((n - 1))")" = "v$((n - 1))" ] &&
        fail "after reload $n: the old route /v$((n - 1)) still answers"
    # /headers reaches the new cluster's upstream: HTTP/2 for even n, HTTP/1.1 for odd n.
    hv=$(curl -sS --max-time 10 --http2-prior-knowledge "$B/headers" |
        $PY -c 'import json,sys; print(json.load(sys.stdin)["httpVersion"])')
    want=2.0
    [ $((n % 2)) = 1 ] && want=1.1
    [ "$hv" = "$want" ] || fail "after reload $n: / reached an HTTP/$hv upstream, want HTTP/$want"
    if [ "$n" = 5 ]; then
        # A file that does not validate: route to a cluster that does not exist (line 16).
        sed -i 's/^    cluster: c5$/    cluster: nosuch/' "$T/weir.yaml"
        line=$(grep -n 'cluster: nosuch' "$T/weir.yaml" | cut -d: -f1)
        code=$(curl -sS --max-time 40 -o "$T/bad.out" -w '%{http_code}' -X POST "$A/reload")
        [ "$code" = 400 ] || fail "bad file: POST /reload answered $code: $(cat "$T/bad.out")"
        grep -q "weir.yaml:$line:[0-9]*: routes\[1\].cluster" "$T/bad.out" ||
            fail "bad file: the answer lacks file:line:column and field: $(cat "$T/bad.out")"
        pass "bad file mid-run: $(cat "$T/bad.out")"
        [ "$(version)" = 6 ] || fail "bad file changed the version to $(version)"
        [ "$(curl -sS --http2-prior-knowledge "$B/v5")" = v5 ] || fail "bad file: /v5 stopped answering"
        grep -q 'reload (POST /reload) failed, configuration unchanged: .*weir.yaml:' "$T/weir.log" ||
            fail "bad file: no error in the log"
    fi
done
kill -0 "$LOAD_PID" 2>/dev/null ||
    fail "h2load's ${LOAD_S} s ended before the last reload (a very slow machine: raise LOAD_S)"
pass "10 reloads (5 POST /reload, 5 SIGHUP) in $(($(date +%s) - T0)) s under load: each new route answered, the old one was gone, / reached the new cluster"

wait "$LOAD_PID" || true
wait "$H1_PID" || true
# check_load WHAT FILE MIN: h2load's summary in FILE says 0 failed, 0 errored, 0 timeout, only
# 2xx, and more than MIN succeeded; prints the count.
check_load() {
    grep -E '^requests:' "$2" >&2 || true
    grep -qE '^requests: [0-9]+ total, [0-9]+ started, [0-9]+ done, [0-9]+ succeeded, 0 failed, 0 errored, 0 timeout' "$2" ||
        fail "$1 through the reloads: $(grep -E 'requests:|status codes:' "$2")"
    local n
    n=$(grep -oE '[0-9]+ succeeded' "$2" | cut -d' ' -f1)
    [ "$n" -gt "$3" ] || fail "$1: only $n requests succeeded"
    grep -qE 'status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' "$2" || fail "$1: $(grep 'status codes' "$2")"
    echo "$n"
}
ok=$(check_load h2load "$T/h2load.out" 1000)
pass "h2load through 10 reloads: $ok succeeded, 0 failed, 0 errored, all 2xx"
h1ok=$(check_load "h2load --h1" "$T/h1load.out" 100)
pass "h2load --h1 (HTTP/1.1 keep-alive) through the same reloads: $h1ok succeeded, 0 failed, all 2xx"

[ "$(stat_total reloads_ok)" = 10 ] || fail "/stats reloads_ok $(stat_total reloads_ok)"
[ "$(stat_total reloads_failed)" = 1 ] || fail "/stats reloads_failed $(stat_total reloads_failed)"
m=$(curl -sS "$A/metrics")
echo "$m" | grep -q '^weir_config_reloads_total{result="ok"} 10$' || fail "/metrics: $(echo "$m" | grep reload)"
echo "$m" | grep -q '^weir_config_reloads_total{result="failed"} 1$' || fail "/metrics: $(echo "$m" | grep reload)"
echo "$m" | grep -q '^weir_config_version 11$' || fail "/metrics: $(echo "$m" | grep config_version)"
pass "/stats and /metrics: 10 reloads ok, 1 failed, version 11"
# Once the load is over, the ten older configs (held by streams and retired pools meanwhile)
# are all freed: retired pools close their connections as they go idle.
wait_for 20 sh -c "[ \$(curl -s '$A/stats' | tr -d ' \n' | grep -o '\"configs_live\":[0-9]*' | cut -d: -f2) = 1 ]" ||
    fail "old configs still alive after the load: configs_live $(stat_total configs_live)"
pass "every older config freed after the load (configs_live 1)"
stop_weir TERM || fail "weir exited $? after SIGTERM"
pass "drained and exited 0"
