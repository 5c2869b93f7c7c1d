#!/usr/bin/env python3
"""The include rules of ../shared/STYLE.md section 1, checked over the tracked sources.

Layers, lowest first (a file may include its own folder and any folder below it):
    mem/  <  proxy/config/  <  proxy/codec/  <  proxy/upstream/  <  proxy/h2/, proxy/h1/  <  proxy/core/
          <  proxy/admin/  <  proxy/main.c
Exceptions and extra rules:
  - h1/ and h2/ sit side by side: neither includes the other;
  - the protocol folders below the core (config/, codec/, upstream/, h2/, h1/) may include the core's
    types headers, proxy/core/*-t.h, and nothing else of it: they run on a worker's loop and
    count into its counters, but reach its functions only through callback tables;
  - a types header (*-t.h) includes no project header but mem/ and other types headers;
  - mem/ includes nothing of proxy/;
  - there is no cycle among the project's headers.
Prints every violation and exits 1 if there is one.
"""
import os
import re
import subprocess
import sys

ORDER = ["mem", "config", "codec", "upstream", "h2", "core", "admin", "main"]
# h1/ ranks with h2/: the same layer, and the two never include each other.
RANK = {"h1": ORDER.index("h2")}
LOWER_THAN_CORE = {"config", "codec", "upstream", "h2", "h1"}
INC = re.compile(r'^\s*#\s*include\s+"((?:mem|proxy)/[^"]+)"', re.M)


def rank(name):
    return RANK.get(name, ORDER.index(name) if name in ORDER else len(ORDER))


def layer(path):
    parts = path.split("/")
    if parts[0] == "mem":
        return "mem"
    if parts[0] == "proxy":
        if len(parts) == 2:
            return "main" if parts[1] == "main.c" else None
        return parts[1]
    return None


def main():
    root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
    os.chdir(root)
    files = subprocess.check_output(["git", "ls-files", "--cached", "--others", "--exclude-standard", "mem", "proxy"], text=True).split()
    files = [f for f in files if f.endswith((".c", ".h"))]
    bad = []
    graph = {}
    for f in files:
        me = layer(f)
        if me is None:
            bad.append(f"{f}: outside the layers (proxy/ holds main.c and the folders {ORDER[1:-1]})")
            continue
        incs = INC.findall(open(f, encoding="utf-8").read())
        graph[f] = [i for i in incs if i.endswith(".h")]
        for inc in incs:
            other = layer(inc)
            if other is None:
                bad.append(f"{f}: includes {inc}, which is in no layer")
                continue
            if f.endswith("-t.h") and other != "mem" and not inc.endswith("-t.h"):
                bad.append(f"{f}: a types header includes {inc}, which is not a types header")
            if other == me:
                continue
            if me in LOWER_THAN_CORE and other == "core" and inc.endswith("-t.h"):
                continue
            if {me, other} == {"h1", "h2"}:
                bad.append(f"{f}: {me}/ includes {inc}: h1/ and h2/ are side by side")
                continue
            if rank(other) > rank(me):
                bad.append(f"{f}: {me}/ includes {inc} from {other}/, a higher layer")
    # Cycles among headers (depth-first search with colours).
    state = {}

    def visit(h, stack):
        state[h] = 1
        stack.append(h)
        for n in graph.get(h, []):
            if n not in graph:
                continue
            if state.get(n) == 1:
                bad.append("include cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n, stack)
        stack.pop()
        state[h] = 2

    for h in sorted(g for g in graph if g.endswith(".h")):
        if h not in state:
            visit(h, [])
    for b in bad:
        print("layering:", b)
    if bad:
        return 1
    print(f"layering: {len(files)} files follow the include rules of ../shared/STYLE.md section 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
