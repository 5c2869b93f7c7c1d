/*
 * mem/heapprof.h: the sampling heap profiler: the table of live samples with their stacks.
 *
 * Allocations are sampled on average once every `sample_bytes` bytes with a geometric
 * interval (as tcmalloc does; mem/sampling.h). A sample keeps the allocation's size and
 * backtrace (mem/unwind.h) while it is live. The dump is pprof's legacy heap profile text
 * format (mem/pprof.h), which `google-pprof --text` reads; the admin names the functions of
 * its program counters in-process (proxy/admin/symbolize.h).
 * Its own storage is mapped directly, never through the facade, so it cannot recurse.
 * This header also brings in the interval and dump API, so a caller needs only this one.
 */
#ifndef MEM_HEAPPROF_H
#define MEM_HEAPPROF_H

#include "mem/base.h"
#include "mem/sampling.h"
#include "mem/pprof.h"

/* Live samples now. Thread: any. */
size_t mem_heapprof_samples_live(void);

/* ---- internal interface between the allocator and the profiler (mem/ only) ----------- */

/* Frames kept per sample: deep enough for nghttp2 callbacks under libuv under a worker. */
#define MEM_HEAPPROF_FRAMES_MAX 32

/* Records a sampled allocation `p` of `len` bytes with the stack of its caller: the frames in
 * the allocator's own text (MEM_ALLOC_TEXT) are dropped from the top, whatever the compiler
 * inlined. `owner` is the region it lives in, or NULL for a facade allocation.
 * Returns 0, or -ENOMEM when the sample table is full (the sample is then dropped). When
 * sampling is off it records nothing and returns 0. */
int mem__heapprof_record(void *p, size_t len, const void *owner);
/* Forgets the sample for `p`, if any. */
void mem__heapprof_forget(void *p);
/* Forgets every sample whose owner is `owner` (a region or sub-arena being freed). */
void mem__heapprof_forget_owner(const void *owner);

/* Forgets the tables' metadata charge (mem_fini resets the budget; the next sample charges
 * the tables again). Thread: main. */
void mem__heapprof_meta_forget(void);

/* One distinct stack and its sample counts. */
typedef struct mem__heapprof_bucket_s {
    uint64_t hash;  /* 0 = empty slot */
    uint32_t depth; /* frames in pcs */
    uint32_t pad;
    uint64_t live_objs, live_bytes;     /* samples alive now */
    uint64_t alloc_objs, alloc_bytes;   /* samples ever recorded */
    void *pcs[MEM_HEAPPROF_FRAMES_MAX]; /* return addresses, innermost first */
} mem__heapprof_bucket_t;

/* A copy of every bucket, taken under the profiler's lock and written out without it. */
typedef struct mem__heapprof_snap_s {
    mem__heapprof_bucket_t *b; /* owns: a private mapping of `map_len` bytes */
    size_t cnt;
    size_t map_len;
    size_t interval; /* the sampling interval when it was taken */
} mem__heapprof_snap_t;

/* Takes a snapshot of the buckets. Returns 0 or -ENOMEM. Thread: any. Alloc: system (mmap). */
int mem__heapprof_snap_take(mem__heapprof_snap_t *snap);
/* Unmaps a snapshot (a zeroed or released one is a no-op). */
void mem__heapprof_snap_release(mem__heapprof_snap_t *snap);

#endif /* MEM_HEAPPROF_H */
