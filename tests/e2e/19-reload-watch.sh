#!/usr/bin/env bash
# 19-reload-watch: weir watches its config file and reloads when it changes (issue 17 part 4,
# reload through a Kubernetes ConfigMap without a sidecar). The file is mounted as Kubernetes
# mounts a ConfigMap: weir.yaml -> ..data/weir.yaml, ..data -> ..<timestamp>/, and an update
# writes a new ..<timestamp>/ folder and renames a new ..data symlink over the old one (the
# file's own inode never changes). Checks: after the swap the new route answers (the log says
# "reload (file changed)"); a swap to a file that does not validate changes nothing (the old
# route still answers, the version stays, the log has file:line:column, reloads_failed counts
# it); the next good swap applies; with reload.watch poll (stat polls, for file systems without
# inotify events) a swap reloads too; with reload.watch false a change waits for SIGHUP.
source "$(dirname "$0")/lib.sh"
need curl

CM="$T/configmap"
mkdir -p "$CM"
# swap NAME ROUTE [EXTRA [ACTION]]: a new timestamped folder with the whole config (route /ROUTE
# answering ROUTE, EXTRA top-level lines, ACTION instead of the direct response), then the
# atomic swap of ..data.
swap() {
    local dir="..2026_$1" action=${4:-}
    [ -n "$action" ] || action="direct_response: {status: 200, body: \"$2\\n\"}"
    mkdir "$CM/$dir"
    cat >"$CM/$dir/weir.yaml" <<YEOF
listeners:
  - name: main
    address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
${3:-}
routes:
  - match: {path_prefix: /$2}
    $action
YEOF
    ln -s "$dir" "$CM/..data_tmp"
    mv -T "$CM/..data_tmp" "$CM/..data"
    [ -n "${OLD_DIR:-}" ] && rm -rf "$CM/$OLD_DIR"
    OLD_DIR=$dir
}
get() { curl -sS --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$WEIR_PORT/$1"; }
version() { curl -sS --max-time 10 "http://127.0.0.1:$ADMIN_PORT/config_dump" | awk '/^# version:/ {print $3}'; }

swap a one
ln -s ..data/weir.yaml "$CM/weir.yaml"
start_weir -c "$CM/weir.yaml"
# inotify on the folder; where the user's inotify instances are used up (fs.inotify.
# max_user_instances, shared by every process of the user), the stat poll (2 s) stands in and
# the checks below still hold, more slowly.
grep -qE "^weir: config watch $CM/weir.yaml \((inotify on its folder|stat poll every 2000 ms)\)" "$T/weir.log" ||
    fail "no config watch line: $(grep watch "$T/weir.log")"
grep -q "(inotify on its folder)" "$T/weir.log" || echo "note: inotify unavailable, the stat poll watched" >&2
[ "$(get one)" = one ] || fail "/one at start"

swap b two
wait_for 20 sh -c "[ \"\$(curl -sS --http2-prior-knowledge http://127.0.0.1:$WEIR_PORT/two)\" = two ]" ||
    fail "the ..data swap was not reloaded: /two answers '$(get two)'; $(grep reload "$T/weir.log")"
grep -q '^weir: reload (file changed): version 2 ' "$T/weir.log" || fail "no 'reload (file changed): version 2' line"
pass "a ConfigMap-style ..data swap reloads: /two answers, version $(version)"

# A bad file: a route that names no cluster.
swap c three 'clusters: []' 'cluster: missing'
wait_for 20 sh -c "[ \"\$(curl -sS http://127.0.0.1:$ADMIN_PORT/stats | tr -d ' \n' | grep -o '\"reloads_failed\":[0-9]*' | cut -d: -f2)\" -ge 1 ]" ||
    fail "the bad file was not tried"
grep -qE "^weir: reload \(file changed\) failed, configuration unchanged: $CM/weir.yaml:[0-9]+:[0-9]+: routes\[0\]" "$T/weir.log" ||
    fail "no file:line:column error in the log: $(grep 'failed' "$T/weir.log")"
[ "$(get two)" = two ] || fail "the bad file changed the routes: /two answers '$(get two)'"
[ "$(version)" = 2 ] || fail "the bad file changed the version to $(version)"
pass "a bad file changes nothing: $(grep -m1 'reload (file changed) failed' "$T/weir.log" | sed 's/.*unchanged: //')"

swap d four
wait_for 20 sh -c "[ \"\$(curl -sS --http2-prior-knowledge http://127.0.0.1:$WEIR_PORT/four)\" = four ]" ||
    fail "the good swap after the bad one was not reloaded"
[ "$(version)" = 3 ] || fail "version $(version) after the good swap, want 3"
pass "the next good swap applies (version 3)"
stop_weir TERM || fail "weir exited $? after SIGTERM"

# fresh NAME ROUTE EXTRA: a new ConfigMap folder holding one config, and weir started on it.
fresh() {
    OLD_DIR=
    rm -rf "$CM" && mkdir -p "$CM"
    swap "$1" "$2" "$3"
    ln -s ..data/weir.yaml "$CM/weir.yaml"
    start_weir -c "$CM/weir.yaml"
}

# reload.watch: poll: stat polls (here every 200 ms) see the swap too.
fresh p1 seven 'reload: {watch: poll, poll_interval: 200ms}'
grep -q "^weir: config watch $CM/weir.yaml (stat poll every 200 ms)" "$T/weir.log" ||
    fail "watch: poll: $(grep watch "$T/weir.log")"
swap p2 eight 'reload: {watch: poll, poll_interval: 200ms}'
wait_for 20 sh -c "[ \"\$(curl -sS --http2-prior-knowledge http://127.0.0.1:$WEIR_PORT/eight)\" = eight ]" ||
    fail "watch: poll: the swap was not reloaded"
pass "reload.watch poll: the stat poll sees the swap (version $(version))"
stop_weir TERM || fail "weir exited $? after SIGTERM"

# reload.watch: false: a change waits for SIGHUP.
fresh e five 'reload: {watch: false}'
grep -q "^weir: config watch" "$T/weir.log" && fail "reload.watch false still watches"
swap f six 'reload: {watch: false}'
# Nothing to wait for here but time: the watch (were it on) settles in 0.2 s.
sleep 1
[ "$(version)" = 1 ] || fail "reload.watch false: the change was applied without SIGHUP"
kill -HUP "$WEIR_PID"
wait_for 20 sh -c "[ \"\$(curl -sS --http2-prior-knowledge http://127.0.0.1:$WEIR_PORT/six)\" = six ]" ||
    fail "SIGHUP did not reload"
pass "reload.watch false: the change waits for SIGHUP"
stop_weir TERM || fail "weir exited $? after SIGTERM"
