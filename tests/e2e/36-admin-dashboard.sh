#!/usr/bin/env bash
# tests/e2e/36-admin-dashboard.sh: the dashboard at / in a real headless browser (Debian
# package chromium), driven over the Chrome DevTools protocol by tests/e2e/cdp.py with Debian's
# python3-websocket (Debian 12's nodejs 18 has no built-in WebSocket, so node cannot do it there).
# With the token in the URL fragment the page must poll /memory, /memory/regions and /stats,
# draw from live data (data-samples >= 5 and data-errors = 0 on <body>, ink on every chart
# canvas, a committed byte count in the header) and log nothing: no console message, no
# exception, no failed resource load. A screenshot goes to $WEIR_BUILD/artifacts/dashboard.png.
# Issue 18 part 3: weir runs with a 16 MiB budget and elevated at 0.10, so it rises to
# elevated at start (a kept overload snapshot with its time), and with a memory tenant (route
# /t/, 64 KiB, one stream at a time) that h2load's concurrent requests pass while the page
# polls. The page must draw overload transitions and actions on the time axis (data-marks >= 2:
# the rise, and the tenant's refusals), requests per second for a worker (data-rps-workers >= 1)
# and the tenant's row with its figures (admitted and refused above 0).
# Negative control: without the token the polls get 401, and the same checks see it.
source "$(dirname "$0")/lib.sh"
# lib.sh's log_port fails under `set -o pipefail` when no line matches (no TLS listener), which
# ends start_weir; tolerate that here until lib.sh does.
log_port() { grep -m1 -E "$2" "$1" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true; }
need curl
need h2load
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || skip "chromium is not installed (Debian package: chromium)"
$PY -c 'import websocket' 2>/dev/null ||
    fail "python3-websocket is missing (Debian package; ./bootstrap deps test installs it)"

TOKEN=dash-$RANDOM$RANDOM
need node
start_upstream up --proto h2c
cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
clusters:
  - {name: up, endpoints: ["127.0.0.1:$up_PORT"]}
routes:
  - {match: {path_prefix: /t/}, cluster: up, memory: {limit: 64KiB}}
  - direct_response: {status: 200, body: "hello\n"}
admin: {address: "127.0.0.1:0", token: "$TOKEN"}
workers: 2
memory: {limit: 16MiB, elevated: 0.10, critical: 0.95, hysteresis: 0.05}
YAML
start_weir -c "$T/weir.yaml"
h2load -n 2000 -c 4 -m 8 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load.out" 2>&1 || fail "h2load failed"
# Traffic while the page polls: the direct route and the tenant's (/t/ -> the upstream's 404).
( end=$((SECONDS + 40)); while [ $SECONDS -lt $end ]; do
    h2load -n 200 -c 2 -m 4 "http://127.0.0.1:$WEIR_PORT/" "http://127.0.0.1:$WEIR_PORT/t/x" \
        >/dev/null 2>&1 || true
    sleep 0.2
  done ) &
LOAD_PID=$!
E2E_PIDS+=("$LOAD_PID")

ART="$WEIR_BUILD/artifacts"
mkdir -p "$ART"
$PY "$E2E_DIR/cdp.py" "$CHROME" "$T/chrome1" \
    "http://127.0.0.1:$ADMIN_PORT/#token=$TOKEN" "$ART/dashboard.png" samples 6 >"$T/run1.json" 2>"$T/run1.err" ||
    fail "browser run failed: $(tail -n 5 "$T/run1.err")"
$PY - "$T/run1.json" <<'PYEOF' || fail "dashboard check failed: $(cat "$T/run1.json")"
import json, re, sys
s = json.loads(open(sys.argv[1]).read())
assert s["samples"] >= 6, "samples %s" % s["samples"]
assert s["errors"] == 0, "errors %s" % s["errors"]
assert s["regions"] >= 0, "regions table never filled"
assert re.match(r"^[0-9.]+ (B|KiB|MiB|GiB)$", s["committed"]), "header committed %r" % s["committed"]
assert len(s["ink"]) == 4 and all(n > 0 for n in s["ink"]), "empty canvas: %s" % s["ink"]
assert s["marks"] >= 2, "overload transitions and actions on the time axis: %s" % s["marks"]
assert s["rps_workers"] >= 1, "requests per second per worker: %s" % s["rps_workers"]
assert s["tenants"] == 1 and len(s["tenant_rows"]) == 1, "tenants: %s" % s["tenant_rows"]
row = s["tenant_rows"][0]  # tenant, bytes, limit, use, streams, admitted, refused, shed
assert row[0] == "routes[0]" and row[2] == "64.0 KiB", row
assert int(row[5]) > 0 and int(row[6]) > 0, "admitted and refused: %s" % row
assert not s["console"], "console: %s" % s["console"]
PYEOF
[ -s "$ART/dashboard.png" ] || fail "no screenshot"
kill "$LOAD_PID" 2>/dev/null || true
pass "dashboard drew live data, console clean: $(cat "$T/run1.json"); screenshot $ART/dashboard.png"

# Negative control: no token, so every poll is a 401 that the page and the console show.
$PY "$E2E_DIR/cdp.py" "$CHROME" "$T/chrome2" \
    "http://127.0.0.1:$ADMIN_PORT/" - errors 2 >"$T/run2.json" 2>"$T/run2.err" ||
    fail "browser run (no token) failed: $(tail -n 5 "$T/run2.err")"
$PY - "$T/run2.json" <<'PYEOF' || fail "negative control: $(cat "$T/run2.json")"
import json, sys
s = json.loads(open(sys.argv[1]).read())
assert s["samples"] == 0 and s["errors"] >= 1, s
assert any("401" in m for m in s["console"]), s["console"]
PYEOF
pass "without the token the polls fail with 401 and the console check sees it"
