#!/usr/bin/python3
# tests/e2e/cdp.py CHROME USERDIR URL SCREENSHOT|- samples|errors N
# Drives headless Chromium over the Chrome DevTools protocol with Debian's python3-websocket
# (so it runs on Debian 12's own packages: its nodejs 18 has no built-in WebSocket). Opens URL
# (the admin dashboard), runs the page until <body data-samples> (or data-errors) reaches N or
# 30 s pass, reads every canvas back once, optionally saves a PNG screenshot, and prints one
# JSON line: {samples, errors, polls, regions, committed, marks, rps_workers, tenants,
# tenant_rows, ink, console}.
import base64, json, os, re, select, subprocess, sys, time

import websocket  # Debian: python3-websocket

chrome_path, user_dir, url, shot, wait_for, wait_n = sys.argv[1:7]
wait_n = int(wait_n)
chrome = subprocess.Popen(
    [chrome_path, "--headless", "--no-sandbox", "--disable-gpu",
     "--disable-background-networking", "--disable-component-update", "--disable-sync",
     "--no-first-run", "--user-data-dir=" + user_dir, "--remote-debugging-port=0",
     "--window-size=1400,1000", "about:blank"],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
overall = time.time() + 60


def die(code, msg):
    sys.stderr.write(msg + "\n")
    chrome.kill()
    sys.exit(code)


# "DevTools listening on ws://..." on Chromium's stderr.
err = b""
ws_url = None
while ws_url is None:
    if time.time() > overall or chrome.poll() is not None:
        die(3, "cdp.py: Chromium gave no DevTools address: " + err.decode(errors="replace")[-500:])
    r, _, _ = select.select([chrome.stderr], [], [], 0.5)
    if r:
        chunk = os.read(chrome.stderr.fileno(), 65536)
        err += chunk
        m = re.search(rb"DevTools listening on (ws://\S+)", err)
        if m:
            ws_url = m.group(1).decode()

ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
next_id = 0
console = []


def note(msg):
    """Keeps what the page logged: console calls, exceptions, log entries."""
    m, p = msg.get("method"), msg.get("params", {})
    if m == "Runtime.consoleAPICalled":
        console.append("console.%s: %s" % (p["type"], " ".join(
            str(a["value"]) if "value" in a else a.get("description", "") for a in p["args"])))
    elif m == "Runtime.exceptionThrown":
        console.append("exception: %s" % p["exceptionDetails"].get("exception", {})
                       .get("description"))
    elif m == "Log.entryAdded":
        e = p["entry"]
        console.append("log.%s: %s %s" % (e["level"], e["text"], e.get("url", "")))


def send(method, params=None, session=None):
    """One request; events read while waiting for its answer are noted."""
    global next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    ws.send(json.dumps(msg))
    while True:
        if time.time() > overall:
            die(3, "cdp.py: overall deadline passed")
        reply = json.loads(ws.recv())
        if reply.get("id") == next_id:
            if "error" in reply:
                raise RuntimeError("%s: %s" % (method, reply["error"]))
            return reply.get("result", {})
        note(reply)


target = send("Target.createTarget", {"url": "about:blank"})["targetId"]
session = send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]


def S(method, params=None):
    return send(method, params, session)


def js(expr):
    return S("Runtime.evaluate", {"expression": expr, "returnByValue": True})["result"].get("value")


S("Runtime.enable")
S("Log.enable")
S("Page.enable")
S("Page.navigate", {"url": url})
deadline = time.time() + 30
state = None
while True:
    state = js("""(() => {
        const b = document.body; if (!b) return null;
        const c = document.getElementById('committed');
        const tb = document.getElementById('tenants');
        return { samples: +b.dataset.samples, errors: +b.dataset.errors, polls: +b.dataset.polls,
                 regions: +b.dataset.regions, committed: c ? c.textContent : '',
                 marks: +(b.dataset.marks || 0), rps_workers: +(b.dataset.rpsWorkers || 0),
                 tenants: +(b.dataset.tenants === undefined ? -1 : b.dataset.tenants),
                 tenant_rows: tb ? Array.from(tb.rows).map((r) => Array.from(r.cells)
                     .map((x) => x.textContent)) : [] };
    })()""")
    if state and (state.get(wait_for) or 0) >= wait_n:
        break
    if time.time() > deadline:
        break
    time.sleep(0.25)
# Each canvas read back once (repeated readbacks make Chrome log a performance warning).
if state:
    state["ink"] = js("""Array.from(document.querySelectorAll('canvas')).map((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })""")
if shot != "-":
    data = S("Page.captureScreenshot", {"format": "png"})["data"]
    with open(shot, "wb") as f:
        f.write(base64.b64decode(data))
state = state or {}
state["console"] = console
print(json.dumps(state), flush=True)
try:
    send("Browser.close")
except Exception:  # closing: the socket may go first
    pass
chrome.kill()
chrome.wait()
