#!/usr/bin/env python3
"""bench/allocshare.py: the allocator's share of weir's user-space instructions per proxied
request, from callgrind_annotate listings (inclusive=no, as bench/peers/peers.py writes them
to callgrind-weir-<front>-up<up>.txt).

A function counts as the allocator's when its name is defined in mem/'s static library
(`nm --defined-only libmem.a`, global and file-local text symbols) and nowhere in pxcore's,
so that a static helper of the same name in proxy/ is not counted by mistake (such names are
reported, not counted). What the compiler inlined from mem/'s headers into proxy/ functions
(the thread cache's and the arenas' fast paths) is counted where it was inlined, in proxy/,
so the share is a floor for the allocator's cost and exact for its out-of-line code.
The DWARF unwinder that heap samples of libraries' own allocations take (libgcc_s, reached
through libc's backtrace()) runs for the allocator too: it is reported in a column of its own
and in a second share that includes it.

Usage: allocshare.py --libmem build-peers/libmem.a --libpx build-peers/libpxcore.a
                     --requests N LISTING... > table.md
"""
import argparse
import re
import subprocess
import sys


def text_symbols(lib):
    out = subprocess.run(['nm', '--defined-only', lib], capture_output=True, text=True,
                         check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in 'Tt':
            names.add(parts[2])
    return names


LINE = re.compile(r'^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?):(\S+)(?:\s+\[(.*)\])?\s*$')


def parse(path):
    """Returns (total, {function: self instructions}) of the first inclusive=no section."""
    total, funcs, section = 0, {}, None
    for line in open(path):
        if line.startswith('### '):
            if section is not None:
                break  # the first listing only (the inclusive one follows)
            section = line
            continue
        if 'PROGRAM TOTALS' in line:
            total = int(line.split()[0].replace(',', ''))
            continue
        m = LINE.match(line)
        if m:
            ir = int(m.group(1).replace(',', ''))
            fn = m.group(3)
            obj = m.group(4) or ''
            if obj.endswith('.so') or '.so.' in obj:
                fn = obj.split('/')[-1] + ':' + fn  # a library's function, never mem/'s
            funcs[fn] = funcs.get(fn, 0) + ir
    return total, funcs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--libmem', required=True)
    ap.add_argument('--libpx', required=True)
    ap.add_argument('--requests', type=int, required=True)
    ap.add_argument('listings', nargs='+')
    a = ap.parse_args()
    mem = text_symbols(a.libmem)
    px = text_symbols(a.libpx)
    ambiguous = mem & px
    mem_only = mem - px
    print('| listing | Ir/request | allocator Ir/request | allocator share | unwinder '
          '(libgcc_s) Ir/request | share with the unwinder | top allocator functions '
          '(self Ir/request) |')
    print('|---|---|---|---|---|---|---|')
    for path in a.listings:
        total, funcs = parse(path)
        alloc = {f: ir for f, ir in funcs.items() if f in mem_only}
        amb = {f: ir for f, ir in funcs.items() if f in ambiguous}
        s = sum(alloc.values())
        unw = sum(ir for f, ir in funcs.items()
                  if f.startswith('libgcc_s.so') or f.endswith(':backtrace')
                  or f.endswith(':backtrace_helper'))
        top = sorted(alloc.items(), key=lambda kv: -kv[1])[:6]
        name = path.split('/')[-1]
        print('| %s | %.0f | %.0f | %.2f%% | %.0f | %.2f%% | %s |' % (
            name, total / a.requests, s / a.requests, 100.0 * s / total if total else 0,
            unw / a.requests, 100.0 * (s + unw) / total if total else 0,
            ', '.join('%s %.0f' % (f, ir / a.requests) for f, ir in top)))
        if amb:
            sys.stderr.write('%s: names in both libraries, not counted: %s\n' % (
                name, ', '.join('%s (%d)' % kv for kv in sorted(amb.items()))))


if __name__ == '__main__':
    main()
