#!/usr/bin/env bash
# tests/e2e/36-admin-dashboard.sh: the dashboard at / in a real headless browser (Debian
# package chromium), driven over the Chrome DevTools protocol by tests/e2e/cdp.py with Debian's
# python3-websocket (Debian 12's nodejs 18 has no built-in WebSocket, so node cannot do it there).
# With the token in the URL fragment the page must poll /memory and /memory/regions, draw
# from live data (data-samples >= 3 and data-errors = 0 on <body>, ink on every chart canvas,
# a committed byte count in the header) and log nothing: no console message, no exception,
# no failed resource load. A screenshot goes to $WEIR_BUILD/artifacts/dashboard.png.
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
cat >"$T/weir.yaml" <<YAML
listeners:
  - address: 127.0.0.1:0
routes:
  - direct_response: {status: 200, body: "hello\n"}
admin: {address: "127.0.0.1:0", token: "$TOKEN"}
workers: 2
YAML
start_weir -c "$T/weir.yaml"
h2load -n 2000 -c 4 -m 8 "http://127.0.0.1:$WEIR_PORT/" >"$T/h2load.out" 2>&1 || fail "h2load failed"

ART="$WEIR_BUILD/artifacts"
mkdir -p "$ART"
$PY "$E2E_DIR/cdp.py" "$CHROME" "$T/chrome1" \
    "http://127.0.0.1:$ADMIN_PORT/#token=$TOKEN" "$ART/dashboard.png" samples 3 >"$T/run1.json" 2>"$T/run1.err" ||
    fail "browser run failed: $(tail -n 5 "$T/run1.err")"
$PY - "$T/run1.json" <<'PYEOF' || fail "dashboard check failed: $(cat "$T/run1.json")"
import json, re, sys
s = json.loads(open(sys.argv[1]).read())
assert s["samples"] >= 3, "samples %s" % s["samples"]
assert s["errors"] == 0, "errors %s" % s["errors"]
assert s["regions"] >= 0, "regions table never filled"
assert re.match(r"^[0-9.]+ (B|KiB|MiB|GiB)$", s["committed"]), "header committed %r" % s["committed"]
assert len(s["ink"]) == 3 and all(n > 0 for n in s["ink"]), "empty canvas: %s" % s["ink"]
assert not s["console"], "console: %s" % s["console"]
PYEOF
[ -s "$ART/dashboard.png" ] || fail "no screenshot"
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
