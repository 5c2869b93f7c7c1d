"""bench/allocsummary.py: puts the allocator benchmark's summary into bench/results/peers.md.

Issue 8 asks for one results file: bench/run-alloc writes the full allocator report to
results/alloc.md, and this copies its verdict tables (the allocator share against mimalloc's,
peak RSS, callgrind instructions, microbenchmarks, verdict) into peers.md between two markers,
replacing the previous copy, followed by bench/run-alloc-share's table (the allocator's share
of weir's instructions per proxied request, results/alloc-share.md) when there is one. The
reports call embed(): run-alloc's after writing alloc.md, run-alloc-share's after writing
alloc-share.md, run-peers' after writing peers.md, so whichever ran last, peers.md carries
them all.
"""
import os
import re

BEGIN = "<!-- allocator benchmark: begin (bench/allocsummary.py) -->"
END = "<!-- allocator benchmark: end -->"
# The sections of alloc.md that go into peers.md, by their headings.
KEEP = ("### weir's share against mimalloc's",
        "### weir's peak RSS against mimalloc's",
        "## Trace: callgrind instructions per pair",
        "## Microbenchmarks",
        "## Verdict")


def sections(text):
    """Splits markdown into (heading, body) pairs at '## ' and '### ' headings."""
    out, head, body = [], None, []
    for line in text.splitlines():
        if re.match(r"#{2,3} ", line):
            if head is not None:
                out.append((head, body))
            head, body = line, []
        elif head is not None:
            body.append(line)
    if head is not None:
        out.append((head, body))
    return out


def share_section(share_md):
    """bench/run-alloc-share's report (results/alloc-share.md) as a subsection: its text
    without its title, the links made relative to results/ as they already are."""
    body = [l for l in share_md.splitlines() if not l.startswith("# ")]
    while body and not body[0].strip():
        body.pop(0)
    return ["### The allocator's share of weir's instructions per request "
            "(bench/run-alloc-share, [`alloc-share.md`](alloc-share.md))", ""] + body


def summary(alloc_md, share_md=None):
    run = re.search(r"^- weir commit .*$", alloc_md, re.M)
    L = [BEGIN, "", "## Allocator benchmark (bench/run-alloc)", "",
         "The HTTP/2-shaped allocation trace and the microbenchmarks of `mem/`, copied from "
         "[`alloc.md`](alloc.md) (method and every table there; findings in "
         "[`../README.md`](../README.md))" + (": " + run.group(0)[2:] if run else "") + ".", ""]
    for head, body in sections(alloc_md):
        if head.startswith(KEEP):
            L.append("#" + head if head.startswith("## ") else head)
            L.extend(body)
    if share_md:
        L += [""] + share_section(share_md)
    L += ["", END]
    return "\n".join(L) + "\n"


def embed(results_dir):
    """Replaces (or appends) the allocator section of peers.md. No-op without both files."""
    peers = os.path.join(results_dir, "peers.md")
    alloc = os.path.join(results_dir, "alloc.md")
    if not (os.path.exists(peers) and os.path.exists(alloc)):
        return False
    with open(peers) as f:
        text = f.read()
    share = os.path.join(results_dir, "alloc-share.md")
    share_md = None
    if os.path.exists(share):
        with open(share) as f:
            share_md = f.read()
    with open(alloc) as f:
        block = summary(f.read(), share_md)
    i, j = text.find(BEGIN), text.find(END)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(END):].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(peers, "w") as f:
        f.write(text)
    return True
