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
#include <stdint.h>

/* Writer used by dumps: returns 0, or negative to stop the dump. */
typedef int (*mem_write_fn)(void *ud, const char *buf, size_t len);

/* One bucket of a heap profile, as mem_heapprof_each_row() hands it out: a stack (innermost
 * first), its labels and its raw sample counts (not scaled by the interval). */
typedef struct mem_heapprof_row_s {
    const void *const *pcs; /* borrows: valid during the callback */
    uint32_t depth;
    uint32_t sc_bytes;  /* size class's object size; 0 = none (region bump, or large) */
    const char *thread; /* borrows: the allocating thread's name */
    const char *owner;  /* static: "tcache", "region", "subregion" or "library" */
    uint64_t live_objs, live_bytes, alloc_objs, alloc_bytes;
} mem_heapprof_row_t;

/* Calls `fn` for each bucket of heap `which` (MEM_HEAPSNAP_LIVE, _PEAK or an overload
 * snapshot's number, mem/heapsnap.h) and stores the sampling interval it was taken with in
 * `*interval_out`. Stops at the first non-zero return of `fn` and returns it; otherwise 0,
 * -ENOENT (no such snapshot) or -ENOMEM. Thread: any. Alloc: none through mem/. */
int mem_heapprof_each_row(long which, int (*fn)(void *ud, const mem_heapprof_row_t *r), void *ud,
                          size_t *interval_out);

/* As mem_heapprof_dump() and mem_heapprof_each_pc(), for heap `which` (see above); -ENOENT
 * when there is no such snapshot. */
int mem_heapprof_dump_at(long which, mem_write_fn write, void *ud);
int mem_heapprof_each_pc_at(long which, int (*fn)(void *ud, const void *pc), void *ud);

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
