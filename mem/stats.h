/*
 * mem/stats.h: snapshots of mem/'s counters, per thread, size class, NUMA node and in total.
 *
 * Counters are plain per-thread values written with relaxed atomics and summed by the reader,
 * so a snapshot is cheap to take from any thread (the admin thread) and TSan-clean.
 * The totals reconcile exactly when the library is quiescent:
 *     live + tcache + depot + free_in_segments + metadata == committed
 * (large mappings count in live and committed). Under concurrent load they reconcile within
 * the bytes in flight during the read.
 */
#ifndef MEM_STATS_H
#define MEM_STATS_H

#include "mem/base.h"

#define MEM_STATS_CLASSES_MAX 64
#define MEM_STATS_NODES_MAX   8
#define MEM_STATS_THREADS_MAX 128

typedef struct mem_class_stats_s {
    uint32_t size;         /* object size of this class in bytes */
    uint64_t live_cnt;     /* objects handed out and not freed */
    uint64_t live_bytes;   /* live_cnt * size */
    uint64_t tcache_bytes; /* free objects in thread caches */
    uint64_t depot_bytes;  /* free objects in depot batches */
    uint64_t alloc_cnt;    /* cumulative */
    uint64_t free_cnt;     /* cumulative */
} mem_class_stats_t;

typedef struct mem_node_stats_s {
    uint64_t committed;
    uint64_t live;
    uint64_t depot;
    uint64_t segments;     /* segments owned by this node */
    uint64_t remote_frees; /* objects freed on another node and sent home */
} mem_node_stats_t;

typedef struct mem_thread_stats_s {
    uint64_t tid;  /* kernel thread id */
    char name[16]; /* pthread name */
    int node;
    uint64_t live; /* bytes allocated by this thread not yet freed (may be negative
                      transiently per thread when others free; summed it is exact) */
    int64_t live_signed;
    uint64_t tcache; /* bytes in this thread's cache */
    uint64_t alloc_cnt;
    uint64_t free_cnt;
    uint64_t regions_live;
    uint64_t subregions_live;
    uint64_t region_bytes; /* bytes held by this thread's regions */
} mem_thread_stats_t;

typedef struct mem_stats_s {
    /* Totals. */
    uint64_t committed;        /* mapped and not returned to the OS */
    uint64_t mapped;           /* virtual bytes of the heap's mappings, segments and large
                                  objects (committed less metadata, plus released-but-mapped;
                                  metadata has mappings of its own, outside this) */
    uint64_t live;             /* handed out to callers, large objects included */
    uint64_t tcache;           /* free in thread caches */
    uint64_t depot;            /* free in depot batches */
    uint64_t free_in_segments; /* free spans inside segments, not yet returned (includes
                                  meta_bytes and the unusable tail of each carved span) */
    uint64_t meta_bytes;       /* committed segment headers (part of free_in_segments) */
    uint64_t large_live;       /* live bytes in dedicated large mappings */
    uint64_t large_cnt;
    uint64_t released_total;   /* cumulative bytes returned to the OS with madvise/munmap */
    uint64_t reset_total;      /* of which whole free pages inside partly used spans (page
                                  reset: still counted in committed and free_in_segments) */
    uint64_t released_pending; /* mapped but released (resident 0), reusable */
    uint64_t alloc_cnt, free_cnt;
    uint64_t alloc_failed;   /* allocations that returned NULL (after the one retry) */
    uint64_t budget_refused; /* charges refused at the limit (before any retry) */
    uint64_t metadata;       /* mem/'s own bookkeeping: thread-cache mappings, heap-profiler
                                tables, debug registry (part of committed) */
    uint64_t exempt_live;    /* bytes held by the *_exempt entry points (libuv), part of live */
    uint64_t exempt_over;    /* exempt charges that passed the budget's limit */
    uint64_t regions_live, subregions_live, region_bytes;
    uint64_t regions_created, subregions_created;
    uint64_t budget_limit;  /* 0 = none */
    double pressure;        /* mem_budget_pressure() */
    uint64_t segment_bytes; /* size of one segment */
    uint64_t segments;      /* segments mapped now */
    uint64_t sample_bytes;  /* heap sampling interval, 0 = off */
    uint64_t samples_live;  /* sampled allocations still live */
    /* Breakdowns. */
    unsigned classes_cnt;
    mem_class_stats_t classes[MEM_STATS_CLASSES_MAX];
    unsigned nodes_cnt;
    mem_node_stats_t nodes[MEM_STATS_NODES_MAX];
    unsigned threads_cnt;
    mem_thread_stats_t threads[MEM_STATS_THREADS_MAX];
} mem_stats_t;

/* Fills `out` with a snapshot. Thread: any. Alloc: none (the caller provides `out`, which is
 * large: allocate it, do not put it on a small stack). Returns 0. */
int mem_stats_snapshot(mem_stats_t *out);

/* Objects freed by the calling thread so far (its thread cache's count, every size class):
 * a value that moved since it was last read says memory came back here. For the proxy's
 * memory wait list (proxy/core/memwait.c). Thread: the caller's own count. Alloc: none. */
uint64_t mem_stats_thread_frees(void);

/* Reads this process's resident set size in bytes from /proc/self/statm (0 on error). */
uint64_t mem_stats_rss(void);

#endif /* MEM_STATS_H */
