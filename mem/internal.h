/*
 * mem/internal.h: state and helpers shared by the files of mem/ (not a public interface).
 *
 * One process has one instance of everything here: `mem__g` (configuration, class tables, the
 * nodes with their segments, span lists and depots) and one state per subsystem beside it.
 * Thread: as noted per field. Per-thread state lives in mem/tcache.h.
 *
 * Names (../shared/STYLE.md section 2, applied to types): a type of the public interface is
 * `mem_<mod>_t` (mem_region_t, mem_stats_t); a type that only mem/'s own files use, like the
 * functions they share, carries the double underscore (mem__span_t, mem__segment_t,
 * mem__tcache_t, mem__node_t), wherever it is declared.
 */
#ifndef MEM_INTERNAL_H
#define MEM_INTERNAL_H

#include "mem/base.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "mem/sizeclass.h"
#include "mem/segment.h"
#include "mem/depot.h"

#include <pthread.h>
#include <stdbool.h>

/* Per-thread counters that the region/sub-region code keeps (with MEM_STAT_ADD/SUB) and
 * mem_stats_snapshot() sums. Owned by the thread's cache; folded into a global total when
 * the thread exits. */
typedef struct mem__tstats_s {
    uint64_t regions_live;
    uint64_t subregions_live;
    uint64_t region_bytes;
    uint64_t regions_created;
    uint64_t subregions_created;
    uint64_t shared; /* 1 in the shared cache's block: several threads write it (atomic RMW) */
} mem__tstats_t;

/* Adds `n` (two's complement for a subtraction) to counter `f` of block `ts`: a relaxed
 * store in a thread's own block, an atomic add in the shared cache's block, which threads
 * without a cache of their own update concurrently without its lock. */
#define MEM_TSTAT_ADD(ts, f, n)                                                                    \
    do {                                                                                           \
        mem__tstats_t *mem_ts_ = (ts);                                                             \
        if (MEM_UNLIKELY(mem_ts_->shared))                                                         \
            __atomic_fetch_add(&mem_ts_->f, (uint64_t)(n), __ATOMIC_RELAXED);                      \
        else                                                                                       \
            MEM_STAT_ADD(mem_ts_->f, (uint64_t)(n));                                               \
    } while (0)
#define MEM_TSTAT_SUB(ts, f, n) MEM_TSTAT_ADD(ts, f, -(uint64_t)(n))

/* Returns the calling thread's counter block, creating its thread cache if needed.
 * NULL only when the library cannot be initialised. Thread: the caller's own block. */
mem__tstats_t *mem__tstats_self(void);

/* mem_malloc without heap sampling, for memory sampled where it is used (region chunks and
 * blocks: mem__arena_sample attributes their bytes to the region's allocation sites).
 * Freed with mem_free. Thread: any. Alloc: tcache. */
void *mem__malloc_unsampled(size_t len) MEM_MALLOC_ATTR;

/* A circular doubly linked list of spans with a sentinel. */
typedef struct mem__spanlist_s {
    mem__span_t head;
} mem__spanlist_t;

/* One NUMA node (possibly pretended): its segments, span lists and depots. */
typedef struct mem__node_s {
    mem__depot_t depot[MEM_SC_COUNT]; /* lock-free, any thread */
    pthread_mutex_t lock;             /* guards everything below (slow path only) */
    mem__segment_t *segs;             /* owns: every segment of this node */
    mem__spanlist_t partial[MEM_SC_COUNT];
    mem__spanlist_t sampled[MEM_SC_COUNT]; /* sample-only spans with free objects */
    mem__spanlist_t dirty;                 /* newest first; decay takes from the tail */
    mem__spanlist_t clean;
    unsigned id;
    /* Stats. One discipline per counter: these five are written only under the lock (relaxed
     * stores, so snapshots read them relaxed without it); remote_frees only with atomic
     * read-modify-writes (any thread, no lock). */
    uint64_t committed;    /* segment headers + committed spans + large mappings */
    uint64_t free_in_segs; /* headers + free objects in spans + dirty spans */
    uint64_t meta_bytes;   /* segment headers (part of free_in_segs) */
    uint64_t segments;
    uint64_t large_bytes;  /* live large mappings homed here */
    uint64_t remote_frees; /* objects freed on another node and sent home (atomic RMW) */
} mem__node_t;

#define MEM_BATCH_MAX 256 /* objects in one depot batch (half the largest tcache capacity) */
#define MEM_REG_MAX   256 /* thread caches at once; threads beyond share one locked cache */

struct mem__tcache_s;

/* What every part of mem/ reads: the configuration, the size-class tables sized at init, and
 * the nodes. Written by mem_init() and mem_fini() (the nodes under their own locks). Each
 * subsystem keeps its own state beside it: the budget's counters (mem__budget, budget.c),
 * the large objects' (mem__large_totals, large.c), the fault injector's (mem__fault, mem.c),
 * the thread registry (mem__threads, tcache.c), the decay's (decay.c, private). */
typedef struct mem__global_s {
    bool initialised; /* atomic */
    mem_config_t cfg;
    size_t page;
    unsigned nodes_cnt;
    unsigned real_nodes;
    bool bind;                                /* mbind segments (nodes are real) */
    uint32_t cap[MEM_SC_COUNT];               /* tcache capacity per class, objects */
    uint32_t batch[MEM_SC_COUNT];             /* objects per depot batch */
    uint32_t depot_batches_max[MEM_SC_COUNT]; /* per node */
    mem__node_t nodes[MEM_STATS_NODES_MAX];
} mem__global_t;

extern mem__global_t mem__g;

/* The budget's byte accounting (budget.c; atomics, any thread). */
typedef struct mem__budget_s {
    uint64_t committed;
    uint64_t limit;
    uint64_t mapped;
    uint64_t released_total;
    uint64_t reset_total;  /* of which pages inside partly used spans (page reset) */
    uint64_t alloc_failed; /* allocations that returned NULL */
    uint64_t refused;      /* charges refused at the limit (each then retried once) */
    uint64_t metadata;     /* mem/'s own bookkeeping charged to the budget (see budget.h) */
    uint64_t exempt_live;  /* bytes handed out by the *_exempt entry points, not yet freed */
    uint64_t exempt_over;  /* charges that passed the limit because the caller was exempt */
} mem__budget_t;

extern mem__budget_t mem__budget;

/* Large mappings (large.c; atomics, any thread). */
typedef struct mem__large_totals_s {
    uint64_t live; /* bytes */
    uint64_t cnt;
    uint64_t alloc_cnt;
    uint64_t free_cnt;
} mem__large_totals_t;

extern mem__large_totals_t mem__large_totals;

/* Fault injection (mem.c; atomics, any thread). */
typedef struct mem__fault_s {
    uint64_t nth;
    uint64_t one_in;
    uint64_t count;
    uint64_t seq;
} mem__fault_t;

extern mem__fault_t mem__fault;

/* Thread registry (tcache.c): slot i is used by one live thread at a time; its memory stays
 * mapped until mem_fini() so snapshot readers never touch unmapped memory. */
typedef struct mem__threads_s {
    pthread_mutex_t reg_lock;
    struct mem__tcache_s *reg[MEM_REG_MAX]; /* atomic loads by readers */
    bool reg_claimed[MEM_REG_MAX];          /* under reg_lock */
    bool reg_used[MEM_REG_MAX];             /* published (atomic) once the slot's identity is set */
    /* Counters of exited threads (atomics). */
    uint64_t retired_alloc[MEM_SC_COUNT];
    uint64_t retired_free[MEM_SC_COUNT];
    mem__tstats_t retired_tstats;
    /* The locked cache shared by threads without their own. */
    pthread_mutex_t shared_lock;
    struct mem__tcache_s *shared;
} mem__threads_t;

extern mem__threads_t mem__threads;

/* Budget: charges `len` committed bytes (fails past the limit or on an injected fault,
 * except while the calling thread is exempt). */
int mem__budget_charge(size_t len);
void mem__budget_uncharge(size_t len);

/* Metadata (thread-cache mappings, heap-profiler tables, the debug registry): charged to the
 * budget and counted in mem__budget.metadata; never refused (the callers cannot fail cleanly, and
 * the bytes are small and bounded). Thread: any. */
void mem__meta_charge(size_t len);
void mem__meta_uncharge(size_t len);

/* While > 0, the calling thread's charges pass the limit (mem_malloc_exempt and friends:
 * libuv aborts when its allocator returns NULL) and no fault is injected. */
extern __thread unsigned mem__exempt_depth;

/* Charges the calling thread saw refused at the limit (a slow path compares it before and
 * after an attempt to learn whether the budget, not a mapping, failed it). */
extern __thread uint64_t mem__refused_self;

/* Gives back what is merely cached before a refused allocation is retried: the cache `tc`
 * that the caller is using (its own, or the shared one under its lock), every node's depots,
 * then every node's free spans, regardless of decay. Returns the bytes released. Thread:
 * any, holding no node lock. */
struct mem__tcache_s;
size_t mem__release_cached(struct mem__tcache_s *tc);

/* Fault injection: true when this slow-path event must fail. */
bool mem__fault_hit(void);
/* Fault injection on allocation slow paths (tcache refill, region chunk): true when the random
 * rule of mem_fault_set(_, one_in) says this one fails. Callers test mem__fault.one_in first,
 * so with injection off it costs one predictable branch; compiled only with MEM_FAULT_INJECT. */
bool mem__fault_alloc_hit(void);

/* Auto-initialises with defaults when a thread allocates before mem_init(). Returns 0. */
int mem__ensure_init(void);

/* CLOCK_MONOTONIC in ns: the one clock of mem/ (clock.c). */
uint64_t mem__now_ns(void);

/* splitmix64 (Steele, Lea, Flood): one step over `x`, the one copy of mem/ (the heap
 * profiler's seeds, the fault injector's random rule). */
MEM_INLINE uint64_t mem__splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Steps decay by a few units if a round is due or under way (slow paths call it). */
void mem__decay_maybe(void);
/* Forgets a round under way (mem_fini). */
void mem__decay_reset(void);

/* The bytes handed out and not freed, summed over every thread (quiescent: exact). */
size_t mem__live_bytes(void);

/* Debug-build death with a message (double free, foreign pointer). */
MEM_NOINLINE MEM_COLD __attribute__((noreturn)) void mem__die(const char *fmt, ...)
    MEM_PRINTF(1, 2);

/* ThreadSanitizer cannot see Concurrency Kit's inline assembly, so depot pushes and pops
 * publish their happens-before edge explicitly. */
#if MEM_HAVE_TSAN
#include <sanitizer/tsan_interface.h>
/* Dynamic annotations exported by the TSan runtime. CK's C accesses to entries and the
 * stack word race by design (a stale popper reads a head another thread took; its CAS then
 * fails), so they are hidden and the push/pop pair is published as release/acquire. */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#define MEM_TSAN_RELEASE(a) __tsan_release((void *)(a))
#define MEM_TSAN_ACQUIRE(a) __tsan_acquire((void *)(a))
#define MEM_TSAN_IGNORE_BEGIN()                                                                    \
    (AnnotateIgnoreReadsBegin(__FILE__, __LINE__), AnnotateIgnoreWritesBegin(__FILE__, __LINE__))
#define MEM_TSAN_IGNORE_END()                                                                      \
    (AnnotateIgnoreWritesEnd(__FILE__, __LINE__), AnnotateIgnoreReadsEnd(__FILE__, __LINE__))
#else
#define MEM_TSAN_RELEASE(a)     ((void)(a))
#define MEM_TSAN_ACQUIRE(a)     ((void)(a))
#define MEM_TSAN_IGNORE_BEGIN() ((void)0)
#define MEM_TSAN_IGNORE_END()   ((void)0)
#endif

#endif /* MEM_INTERNAL_H */
