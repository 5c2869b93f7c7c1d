/*
 * mem/pprof.h: the heap profile's output: pprof's legacy heap profile text and the list of
 * the program counters in it (for a symbolizer).
 *
 * Both work from a snapshot of the profiler's buckets (mem/heapprof.h), so the profiler's lock
 * is held only for the copy. Thread: any. Alloc: none through mem/ (scratch is mmap()ed).
 */
#ifndef MEM_PPROF_H
#define MEM_PPROF_H

#include "mem/base.h"

#include <stddef.h>

/* Writer used by dumps: returns 0, or negative to stop the dump. */
typedef int (*mem_write_fn)(void *ud, const char *buf, size_t len);

/* Writes the live-sample profile in pprof legacy heap format ("heap profile: ..." header, one
 * line per stack, then MAPPED_LIBRARIES from /proc/self/maps). Returns 0 or negative errno.
 * Thread: any. Alloc: none through mem/ (it maps scratch space directly). */
int mem_heapprof_dump(mem_write_fn write, void *ud);

/* Calls `fn` once for each distinct program counter in the stacks of the live samples
 * (stack by stack, innermost first). Stops at the first non-zero return of `fn` and returns
 * it; otherwise returns 0, or a negative errno when no snapshot could be taken.
 * Thread: any. Alloc: none through mem/. */
int mem_heapprof_each_pc(int (*fn)(void *ud, const void *pc), void *ud);

#endif /* MEM_PPROF_H */
