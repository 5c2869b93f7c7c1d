/*
 * mem/tcache.h: the thread-private size-class cache and its inline fast paths.
 *
 * Per class a bounded LIFO array of free objects. The owner thread is the only writer; other
 * threads (stats snapshots) read the counters with relaxed loads, and the owner writes them
 * with relaxed stores, which compile to plain moves. Alloc and free are one unlikely branch
 * each to a cold slow path in tcache.c (refill a batch from the depot / spill half as one
 * batch, remote frees, large objects, sampling, first use). Created lazily on first use or by
 * mem_thread_attach(); flushed to the depots by a pthread key destructor at thread exit.
 * Bounded in bytes: batches are sized in bytes (about MEM_TC_BATCH_BYTES each, so big classes
 * move several objects per depot operation too), a class holds at most two batches and at
 * most half of tcache_bytes_max, and the whole cache at most tcache_bytes_max: the fast
 * paths keep `bytes` (the sum over classes of cnt * size) and a free that would pass the bound
 * goes to the slow path, which spills the classes holding the most bytes. Partial remote
 * batches are sent home once they hold more than a quarter of the bound.
 */
#ifndef MEM_TCACHE_H
#define MEM_TCACHE_H

#include "mem/base.h"
#include "mem/internal.h"

#define MEM_TC_IDX           256 /* cnt/cap are indexed by a span tag: tags >= classes have cap 0 */
#define MEM_TC_CAP_MAX       512
#define MEM_SAMPLE_OFF       ((int64_t)1 << 40)  /* countdown while sampling is off */
#define MEM_TC_BATCH_BYTES   ((size_t)64 * 1024) /* target bytes per depot batch */
#define MEM_TC_FRESH_FIRST   31u /* the 8 KiB class: calloc's fresh objects from here on */
#define MEM_TC_FRESH_CLASSES (MEM_SC_COUNT - MEM_TC_FRESH_FIRST)
#define MEM_TC_FRESH_MAX     4u
/* The keep stash (below): objects of this size, at most this many (2 MiB a thread). */
#define MEM_TC_KEEP_SIZE 4096u
#define MEM_TC_KEEP_MAX  512u

/* Object size per span tag: mem_sc_size for classes, 0 for every other tag, so the free fast
 * path may index it with any tag before it knows the pointer is a class object. */
extern uint32_t mem__tc_size[MEM_TC_IDX];

typedef struct mem__remote_s {
    void *head; /* batch being collected for another node */
    uint32_t cnt;
    uint32_t pad;
} mem__remote_t;

typedef struct mem__tcache_s {
    /* Hot: the owner reads and writes these on every allocation and free. */
    int64_t sample_left; /* bytes until the next heap sample */
    uint64_t bytes;      /* bytes in the slots: sum of cnt[c] * size (owner only) */
    uint64_t bytes_max;  /* tcache_bytes_max; 0 in the sentinels */
    uint32_t node;
    uint32_t flags;
    void **slots[MEM_SC_COUNT]; /* owns (inside this mapping): cap[c] entries each */
    uint32_t cnt[MEM_TC_IDX];   /* free objects cached per class (relaxed stores) */
    uint32_t cap[MEM_TC_IDX];   /* capacity per class; 0 for non-class tags */
    uint64_t alloc_cnt[MEM_SC_COUNT];
    uint64_t free_cnt[MEM_SC_COUNT];
    /* calloc's stash of known-zero objects of classes >= 8 KiB, taken several under one node
     * lock (at most MEM_TC_BATCH_BYTES per class): later callocs pop them without a lock.
     * Counted as cached bytes in the stats, outside `bytes`; flushed with the cache. */
    uint32_t fresh_cnt[MEM_TC_FRESH_CLASSES];
    void *fresh[MEM_TC_FRESH_CLASSES][MEM_TC_FRESH_MAX];
    /* The keep stash: objects of MEM_TC_KEEP_SIZE that an arena gave back with their contents
     * still useful to it (mem/subregion.c: a closed sub-arena's first chunk, header set up,
     * LIFO), so that it takes them back without resetting them. Counted as freed and as cached
     * bytes, like the slots, but bounded by MEM_TC_KEEP_MAX of its own, outside `bytes`: it
     * holds at most the chunks of the streams that were open at once, which the slots would
     * otherwise spill to the depot. Flushed with the cache as ordinary frees. */
    uint32_t keep_cnt;
    void *keep[MEM_TC_KEEP_MAX];
    /* Cold. */
    mem__remote_t remote[MEM_STATS_NODES_MAX][MEM_SC_COUNT];
    uint64_t remote_bytes; /* bytes waiting in remote batches (relaxed) */
    mem__tstats_t tstats;
    uint64_t tid;
    char name[16];
    int reg_idx;    /* -1 for the sentinels */
    size_t map_len; /* this mapping */
} mem__tcache_t;

#define MEM_TC_SHARED 1u

/* The calling thread's cache: a static empty sentinel until first use (cap 0 everywhere, so
 * the first call misses into the slow path, which creates the real one). */
extern __thread mem__tcache_t *mem__tc_self;

/* Not MEM_COLD: a call to a cold function moves the caller's block into a part of its own,
 * "f.cold", whose symbol would name a heap sample's allocation site in tools that read the
 * symbol table (google-pprof); MEM_UNLIKELY at the call keeps it off the hot path. */
void *mem__tcache_alloc_slow(mem__tcache_t *tc, size_t len) MEM_NOINLINE;
void mem__tcache_free_slow(mem__tcache_t *tc, void *p) MEM_NOINLINE MEM_COLD;
/* Allocates one object of class `cls` without sampling (aligned_alloc). */
void *mem__tcache_alloc_cls(unsigned cls) MEM_NOINLINE;

/* Allocates one known-zero object of class `cls` straight from a fresh span, or NULL when
 * none is at hand (the caller falls back to an ordinary allocation and clears it). */
void *mem__tcache_alloc_fresh(unsigned cls) MEM_NOINLINE;

/* The sampling countdown for allocations that do not pass through the fast path's own
 * (calloc's fresh objects, aligned_alloc): true when an allocation of `len` bytes must be a
 * heap sample. `take` consumes the countdown (drawing a new distance after a hit); `due`
 * only looks. Both are false for threads without a cache of their own. */
bool mem__tcache_sample_take(size_t len);
bool mem__tcache_sample_due(size_t len);
/* Allocates one object of class `cls` from the node's sample-only spans and records it as
 * a heap sample of `len` bytes. NULL when nothing can be committed. */
void *mem__tcache_alloc_sample(unsigned cls, size_t len) MEM_NOINLINE;

/* Flushes every cached object of `tc` (slots and remote batches) to the depots. */
void mem__tcache_flush(mem__tcache_t *tc);
/* Stops using the caller's cache: flush, fold its counters into the totals, free its slot.
 * `dead`: the thread is exiting (later allocations use the shared cache). */
void mem__tcache_detach_self(bool dead);
/* Creates the caller's cache homed on `node`. Returns NULL when the registry is full or on
 * OOM (the caller then uses the shared cache). */
mem__tcache_t *mem__tcache_create(unsigned node);
/* Creates the shared cache (mem_init) and releases every cache mapping (mem_fini). */
int mem__tcache_global_init(void);
void mem__tcache_global_fini(void);

/* The calling thread's counters (mem__tstats_self() without a call when the thread has its
 * own cache). Non-NULL once the library is initialised. */
MEM_INLINE mem__tstats_t *mem__tstats_local(void)
{
    mem__tcache_t *tc = mem__tc_self;
    if (MEM_LIKELY(tc->reg_idx >= 0))
        return &tc->tstats;
    return mem__tstats_self();
}

/* Fast path: pops from the class's LIFO, or returns NULL when the slow path must run (empty
 * class, a heap sample due, a size past every class). A hit is never NULL. */
MEM_INLINE void *mem__tcache_pop(mem__tcache_t *tc, size_t len)
{
    /* A size known at compile time to pass every class (a caller inlining this) misses at
     * once: the class index would be MEM_SC_COUNT, whose counters hold 0 so that the test
     * below misses, but whose slots and size the compiler sees indexed past the end. */
    if (__builtin_constant_p(len) && len > MEM_SC_MAX)
        return NULL;
    unsigned c = mem_sc_of(len);
    uint32_t n = MEM_STAT_LOAD(tc->cnt[c]);
    int64_t left = tc->sample_left - (int64_t)len;
    if (MEM_UNLIKELY((n == 0) | (left < 0)))
        return NULL;
    tc->sample_left = left;
    void *p = tc->slots[c][n - 1];
    MEM_STAT_STORE(tc->cnt[c], n - 1);
    tc->bytes -= mem_sc_size[c];
    MEM_STAT_ADD(tc->alloc_cnt[c], 1);
    MEM_UNPOISON(p, mem_sc_size[c]);
    return p;
}

/* The pop, or the slow path on a miss. */
MEM_INLINE void *mem__tcache_alloc(mem__tcache_t *tc, size_t len)
{
    void *p = mem__tcache_pop(tc, len);
    return MEM_LIKELY(p != NULL) ? p : mem__tcache_alloc_slow(tc, len);
}

/* Fast path without the sampling countdown: pops an object of class `c` for memory that the
 * profiler samples where it is used instead (region chunks), so it is never a sample itself
 * and costs no countdown arithmetic. */
MEM_INLINE void *mem__tcache_alloc_unsampled(mem__tcache_t *tc, unsigned c)
{
    MEM_ASSERT_HOT(c < MEM_SC_COUNT);
    uint32_t n = MEM_STAT_LOAD(tc->cnt[c]);
    if (MEM_UNLIKELY(n == 0))
        return mem__tcache_alloc_cls(c);
    void *p = tc->slots[c][n - 1];
    MEM_STAT_STORE(tc->cnt[c], n - 1);
    tc->bytes -= mem_sc_size[c];
    MEM_STAT_ADD(tc->alloc_cnt[c], 1);
    MEM_UNPOISON(p, mem_sc_size[c]);
    return p;
}

/* Fast path: push on the class's LIFO when the object is homed on this thread's node. */
MEM_INLINE void mem__tcache_free(mem__tcache_t *tc, void *p)
{
    mem__seghdr_t *h = mem__seghdr_of(p);
    unsigned c = h->tag[mem__span_idx(p)];
    uint32_t n = MEM_STAT_LOAD(tc->cnt[c]);
    uint64_t b = tc->bytes + mem__tc_size[c];
    if (MEM_UNLIKELY((n >= tc->cap[c]) | (h->node != tc->node) | (b > tc->bytes_max))) {
        mem__tcache_free_slow(tc, p);
        return;
    }
    MEM_POISON(p, mem_sc_size[c]);
    tc->slots[c][n] = p;
    MEM_STAT_STORE(tc->cnt[c], n + 1);
    tc->bytes = b;
    MEM_STAT_ADD(tc->free_cnt[c], 1);
}

/* Puts `p` (an object of MEM_TC_KEEP_SIZE from this thread's cache) in the keep stash.
 * Returns false, leaving `p` alone, when the stash is full, when the
 * thread has no cache of its own or `p` is homed on another node: the caller frees it. */
MEM_INLINE bool mem__tcache_keep_put(mem__tcache_t *tc, void *p)
{
    unsigned c = mem_sc_of(MEM_TC_KEEP_SIZE);
    uint32_t n = tc->keep_cnt;
    if (MEM_UNLIKELY((n >= MEM_TC_KEEP_MAX) | (tc->reg_idx < 0) |
                     (mem__seghdr_of(p)->node != tc->node)))
        return false;
    tc->keep[n] = p;
    MEM_STAT_STORE(tc->keep_cnt, n + 1);
    MEM_STAT_ADD(tc->free_cnt[c], 1);
    return true;
}

/* Empties the keep stash as ordinary frees (into the cache, whose bound spills the rest to the
 * depots). Thread: tc's owner. */
void mem__tcache_keep_drain(mem__tcache_t *tc);

/* Takes the object put last in the keep stash, contents as they were put, or NULL. */
MEM_INLINE void *mem__tcache_keep_take(mem__tcache_t *tc)
{
    unsigned c = mem_sc_of(MEM_TC_KEEP_SIZE);
    uint32_t n = tc->keep_cnt;
    if (n == 0)
        return NULL;
    void *p = tc->keep[n - 1];
    MEM_STAT_STORE(tc->keep_cnt, n - 1);
    MEM_STAT_ADD(tc->alloc_cnt[c], 1);
    return p;
}

#endif /* MEM_TCACHE_H */
