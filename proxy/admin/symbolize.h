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
/* As px_symbolize_dump, for heap `which` (MEM_HEAPSNAP_LIVE, _PEAK or an overload snapshot's
 * number, mem/heapsnap.h); -ENOENT when there is no such snapshot. */
int px_symbolize_dump_at(long which, mem_write_fn write, void *ud);

/* A symbolizer that keeps the ELF images it has opened between lookups (a dump resolves many
 * addresses in a few objects). */
typedef struct px_symbolizer_s px_symbolizer_t;

/* Creates one. Returns NULL on ENOMEM. Ownership: gives (px_symbolizer_free). Alloc: system
 * (mmap), never the heap. */
px_symbolizer_t *px_symbolizer_new(void);
/* Names the function that holds return address `pc` (the call before it), or NULL when no
 * symbol covers it. The name lives until px_symbolizer_free(). Alloc: system (mmap). */
const char *px_symbolizer_name(px_symbolizer_t *sy, const void *pc);
/* Unmaps everything it opened. NULL is a no-op. */
void px_symbolizer_free(px_symbolizer_t *sy);

/* Resolves one code address to its function name in-process (ELF .symtab/.dynsym of the
 * object that holds it, then dladdr) and copies it into `out`. Returns 0, -ENOENT when no
 * symbol covers `pc`, or -ENOMEM. Thread: any. Alloc: system (mmap), never the heap. */
int px_symbolize_pc(const void *pc, char *out, size_t out_len);

#endif /* PX_ADMIN_SYMBOLIZE_H */
