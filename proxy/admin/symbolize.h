/*
 * proxy/admin/symbolize.h: in-process symbolization of code addresses, from the running
 * binary's own ELF symbol tables, for /heap_dump/symbols: names functions where no copy of the
 * binary or no pprof is at hand, and for binaries stripped of debug information (`strip -g`).
 * A binary stripped of `.symtab` (`strip -s`) keeps only its exported (`.dynsym`) names.
 * Not memory management, so not in mem/: it reads the profile's program counters through
 * mem_heapprof_each_pc(). Thread: any.
 */
#ifndef PX_ADMIN_SYMBOLIZE_H
#define PX_ADMIN_SYMBOLIZE_H

#include "mem/base.h"
#include "mem/pprof.h"

#include <stddef.h>

/* Writes "ADDRESS FUNCTION" lines for every program counter in the live samples, the
 * format pprof's symbol server uses (`--symbols`), resolved in-process from the binary's
 * own ELF symbol tables and dladdr. Returns 0 or negative errno. */
int px_symbolize_dump(mem_write_fn write, void *ud);

/* Resolves one code address to its function name in-process (ELF .symtab/.dynsym of the
 * object that holds it, then dladdr) and copies it into `out`. Returns 0, -ENOENT when no
 * symbol covers `pc`, or -ENOMEM. Thread: any. Alloc: system (mmap), never the heap. */
int px_symbolize_pc(const void *pc, char *out, size_t out_len);

#endif /* PX_ADMIN_SYMBOLIZE_H */
