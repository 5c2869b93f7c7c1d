#!/usr/bin/env bash
# 07-access-log: one line per stream with time, peer, method, authority, path, status,
# bytes, duration and upstream; written by the 1 s flush timer, and flushed at exit.
source "$(dirname "$0")/lib.sh"
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need node

start_upstream up --proto h2c
LOG="$T/access.log"
start_weir --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "h2c://127.0.0.1:$up_PORT" \
    --access-log "$LOG"
B="http://127.0.0.1:$WEIR_PORT"
h2get "$B/bytes/1234" -o /dev/null
h2get "$B/status/404" -o /dev/null
h2get "$B/nothing/here" -o /dev/null
lines() { [ -f "$LOG" ] && [ "$(wc -l <"$LOG")" -ge "$1" ]; }
wait_for 5 lines 3 || fail "access log has $(wc -l <"$LOG" 2>/dev/null) lines after 5 s, expected 3"

ts='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
peer='127\.0\.0\.1:[0-9]+'
grep -qE "^$ts $peer \"GET 127\.0\.0\.1:$WEIR_PORT /bytes/1234\" 200 1234 [0-9]+\.[0-9]ms upstream=upstream proto=h2$" "$LOG" ||
    fail "no well-formed line for /bytes/1234: $(cat "$LOG")"
grep -qE "\"GET [^ ]+ /status/404\" 404 [0-9]+ " "$LOG" || fail "no 404 line: $(cat "$LOG")"
pass "lines are well-formed: $(head -n 1 "$LOG")"

# Flush at exit: lines written just before SIGTERM are not lost.
h2load -n 500 -c 2 -m 5 "$B/" >"$T/h2load.out" 2>&1 || true
grep -q '500 succeeded' "$T/h2load.out" || fail "h2load: $(grep requests: "$T/h2load.out")"
stop_weir TERM || fail "weir exited $? after SIGTERM"
n=$(wc -l <"$LOG")
[ "$n" -ge 503 ] || fail "expected >= 503 lines after exit, got $n"
[ "$(grep -c '"GET 127.0.0.1:'"$WEIR_PORT"' /" 200 3 ' "$LOG")" -ge 500 ] ||
    fail "h2load lines missing or malformed: $(tail -n 2 "$LOG")"
pass "all $n lines flushed at exit"
