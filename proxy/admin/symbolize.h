/*
 * mem/symbolize.h: in-process symbolization of code addresses, from the running binary's own
 * ELF symbol tables: names functions where no copy of the binary or no pprof is at hand, and
 * for binaries stripped of debug information (`strip -g`). A binary stripped of `.symtab`
 * (`strip -s`) keeps only its exported (`.dynsym`) names. Thread: any.
 */
#ifndef MEM_SYMBOLIZE_H
#define MEM_SYMBOLIZE_H

#include "mem/base.h"
#include "mem/pprof.h"

#include <stddef.h>

/* Writes "ADDRESS FUNCTION" lines for every program counter in the live samples, the
 * format pprof's symbol server uses (`--symbols`), resolved in-process from the binary's
 * own ELF symbol tables and dladdr. Returns 0 or negative errno. */
int mem_heapprof_dump_symbols(mem_write_fn write, void *ud);

/* Resolves one code address to its function name in-process (ELF .symtab/.dynsym of the
 * object that holds it, then dladdr) and copies it into `out`. Returns 0, -ENOENT when no
 * symbol covers `pc`, or -ENOMEM. Thread: any. Alloc: none through mem/ (mmap). */
int mem_heapprof_symbolize(const void *pc, char *out, size_t out_len);

#endif /* MEM_SYMBOLIZE_H */
