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
/* Distinct (stack, labels) buckets ever sampled (cumulative counts keep them alive, as
 * tcmalloc's buckets). A kept snapshot (mem/heapsnap.h) holds at most this many. */
#define MEM_HEAPPROF_BUCKETS_MAX 8192

/* Who owns a sampled allocation: the `owner` label of the protobuf profile. */
enum {
    MEM_HEAPPROF_OWNER_TCACHE = 0,    /* the facade (mem_malloc), a size class or large */
    MEM_HEAPPROF_OWNER_REGION = 1,    /* a connection region's bump */
    MEM_HEAPPROF_OWNER_SUBREGION = 2, /* a stream sub-arena's bump */
    MEM_HEAPPROF_OWNER_LIBRARY = 3,   /* the facade, called by a library (libuv, nghttp2, ...) */
};

/* The `owner` label's value for MEM_HEAPPROF_OWNER_* `kind` ("region", ...). */
const char *mem_heapprof_owner_name(unsigned kind);

/* Records a sampled allocation `p` of `len` bytes with the stack of its caller: the frames in
 * the allocator's own text (MEM_ALLOC_TEXT) are dropped from the top, whatever the compiler
 * inlined. `owner` is the region it lives in, or NULL for a facade allocation; `kind` is
 * MEM_HEAPPROF_OWNER_REGION or _SUBREGION for a region, _TCACHE for the facade (the
 * profiler makes it _LIBRARY when a library called the facade). The bucket is chosen by the
 * stack and the labels: the thread's name, the size class, the owner kind.
 * Returns 0, or -ENOMEM when the sample table is full (the sample is then dropped). When
 * sampling is off it records nothing and returns 0. */
int mem__heapprof_record(void *p, size_t len, const void *owner, unsigned kind);
/* Forgets the sample for `p`, if any. */
void mem__heapprof_forget(void *p);
/* Forgets every sample whose owner is `owner` (a region or sub-arena being freed). */
void mem__heapprof_forget_owner(const void *owner);

/* Forgets the tables' metadata charge (mem_fini resets the budget; the next sample charges
 * the tables again). Thread: main. */
void mem__heapprof_meta_forget(void);

/* One distinct stack with its labels, and its sample counts. */
typedef struct mem__heapprof_bucket_s {
    uint64_t hash;     /* 0 = empty slot */
    uint32_t depth;    /* frames in pcs */
    uint32_t sc_bytes; /* the size class's object size; 0 = none (a region, or large) */
    uint32_t owner;    /* MEM_HEAPPROF_OWNER_* */
    uint32_t pad;
    char thread[16];                  /* the allocating thread's name ("weir-w0"), NUL-terminated */
    uint64_t live_objs, live_bytes;   /* samples alive now */
    uint64_t alloc_objs, alloc_bytes; /* samples ever recorded */
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
/* Copies the buckets into `dst` (room for MEM_HEAPPROF_BUCKETS_MAX) under the profiler's lock
 * and returns how many. Thread: any, not holding the profiler's lock. Alloc: none. */
size_t mem__heapprof_copy(mem__heapprof_bucket_t *dst);
/* Unmaps a snapshot (a zeroed or released one is a no-op). */
void mem__heapprof_snap_release(mem__heapprof_snap_t *snap);

#endif /* MEM_HEAPPROF_H */
