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

A raw profile (a callgrind.out file, which bench/peers/peers.py keeps beside its listings)
is read instead of a listing when given: then, with a build that has line tables (-g, as
bench/run-alloc-share makes), each instruction also carries the source file it came from,
and an instruction inlined from one of mem/'s files (`--mem-dir`: the thread cache's and the
arenas' inline fast paths in proxy/ functions) counts as the allocator's too, so the share is
exact rather than a floor: the column "inlined in callers" says how much of it that is.

Usage: allocshare.py --libmem build-peers/libmem.a --libpx build-peers/libpxcore.a
                     [--mem-dir SRC/mem] --requests N LISTING|callgrind.out... > table.md
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


def hook_symbols(lib):
    """The allocator hooks weir hands to libraries (MEM_LIB_HOOK: nghttp2_mem's and OpenSSL's
    malloc, calloc and realloc), found by their text section. They are thin wrappers around
    mem/'s entry points, which they inline; callgrind finds no line table for that section,
    so the inlined code cannot be told by its file there and each hook counts whole."""
    out = subprocess.run(['objdump', '-t', lib], capture_output=True, text=True,
                         check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[-3] == 'mem_lib_hook_text' and 'F' in parts[1:-3]:
            names.add(parts[-1])
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


class Names:
    """callgrind's name compression: "(id) name" defines, "(id)" refers."""

    def __init__(self):
        self.ids = {}

    def get(self, v):
        v = v.strip()
        if v.startswith('('):
            i = v.index(')')
            key, rest = v[1:i], v[i + 1:].strip()
            if rest:
                self.ids[key] = rest
            return self.ids.get(key, rest)
        return v


def parse_raw(path, mem_dir):
    """Returns (total, {function: self instructions}, inlined) of a callgrind.out file, where
    `inlined` is the self instructions whose source file lies in `mem_dir` but whose function
    is not mem/'s own (keyed by function, so the caller can exclude mem/'s functions)."""
    files, fns, objs = Names(), Names(), Names()
    total, funcs, inl = 0, {}, {}
    fn, ob, fl, cur = '', '', '', ''
    skip = False  # the cost line after calls= is the call's inclusive cost, not self cost
    mem_dir = mem_dir.rstrip('/') + '/' if mem_dir else None
    for line in open(path):
        c = line[:1]
        if c.isdigit() or c in '+-*':
            if skip:
                skip = False
                continue
            parts = line.split()
            if len(parts) < 2:
                continue
            ir = int(parts[1])
            funcs[fn] = funcs.get(fn, 0) + ir
            if mem_dir and cur.startswith(mem_dir):
                inl[fn] = inl.get(fn, 0) + ir
            continue
        if line.startswith('fn='):
            name = fns.get(line[3:])
            if ob.endswith('.so') or '.so.' in ob:
                name = ob.split('/')[-1] + ':' + name
            fn = name
        elif line.startswith('fl='):
            fl = cur = files.get(line[3:])
        elif line.startswith('fi=') or line.startswith('fe='):
            cur = files.get(line[3:])
        elif line.startswith('ob='):
            ob = objs.get(line[3:])
        elif line.startswith('cfn='):
            fns.get(line[4:])
        elif line.startswith('cfi=') or line.startswith('cfl='):
            files.get(line[4:])
        elif line.startswith('cob='):
            objs.get(line[4:])
        elif line.startswith('calls='):
            skip = True
        elif line.startswith('summary:') or line.startswith('totals:'):
            total = max(total, int(line.split()[1]))
    del fl
    return total, funcs, inl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--libmem', required=True)
    ap.add_argument('--libpx', required=True)
    ap.add_argument('--requests', type=int, required=True)
    ap.add_argument('--mem-dir', default='',
                    help="mem/'s source folder: raw profiles count what was inlined from it")
    ap.add_argument('listings', nargs='+')
    a = ap.parse_args()
    mem = text_symbols(a.libmem)
    px = text_symbols(a.libpx)
    ambiguous = mem & px
    mem_only = (mem - px) | hook_symbols(a.libpx)
    print('| profile | Ir/request | allocator Ir/request | of which inlined in callers | '
          'allocator share | unwinder (libgcc_s) Ir/request | share with the unwinder | top '
          'allocator functions (self Ir/request; "inlined in X": mem/ code inlined in X) |')
    print('|---|---|---|---|---|---|---|---|')
    for path in a.listings:
        with open(path) as fh:
            raw = fh.readline().startswith('# callgrind format')
        if raw:
            total, funcs, inl = parse_raw(path, a.mem_dir)
        else:
            (total, funcs), inl = parse(path), {}
        alloc = {f: ir for f, ir in funcs.items() if f in mem_only}
        inlined = {f: ir for f, ir in inl.items() if f not in mem_only}
        ninl = sum(inlined.values())
        for f, ir in inlined.items():
            alloc['inlined in ' + f] = ir
        amb = {f: ir for f, ir in funcs.items() if f in ambiguous}
        s = sum(alloc.values())
        unw = sum(ir for f, ir in funcs.items()
                  if f.startswith('libgcc_s.so') or f.endswith(':backtrace')
                  or f.endswith(':backtrace_helper'))
        top = sorted(alloc.items(), key=lambda kv: -kv[1])[:6]
        name = path.split('/')[-1]
        print('| %s | %.0f | %.0f | %.0f | %.2f%% | %.0f | %.2f%% | %s |' % (
            name, total / a.requests, s / a.requests, ninl / a.requests,
            100.0 * s / total if total else 0,
            unw / a.requests, 100.0 * (s + unw) / total if total else 0,
            ', '.join('%s %.0f' % (f, ir / a.requests) for f, ir in top)))
        if amb:
            sys.stderr.write('%s: names in both libraries, not counted: %s\n' % (
                name, ', '.join('%s (%d)' % kv for kv in sorted(amb.items()))))


if __name__ == '__main__':
    main()
