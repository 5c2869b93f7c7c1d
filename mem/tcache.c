/*
 * mem/tcache.c: thread caches: creation, the slow paths, flushing, the thread registry.
 *
 * Each cache is one private mapping (metadata charged to the budget: under 100 KiB) owned
 * by its thread while it lives; its registry slot keeps the mapping until mem_fini() so that
 * a stats reader on another thread never touches unmapped memory. Threads that cannot get a
 * cache (registry full, or during thread exit after the destructor ran) share one cache under
 * a mutex.
 */
#include "mem/base.h"
#include "mem/tcache.h"
#include "mem/heapprof.h"
#include "mem/sampling.h"
#include "mem/numa.h"
#include "mem/malloc.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The first-use sentinel (creates a cache on the first miss) and the after-exit sentinel
 * (routes to the shared cache). All capacities are 0, so every call misses. */
static mem__tcache_t tc_empty = {.reg_idx = -1, .node = UINT32_MAX};
static mem__tcache_t tc_dead = {.reg_idx = -1, .node = UINT32_MAX};

__thread mem__tcache_t *mem__tc_self = &tc_empty;

uint32_t mem__tc_size[MEM_TC_IDX];
mem__threads_t mem__threads;

__attribute__((constructor)) static void tc_size_init(void)
{
    for (unsigned c = 0; c < MEM_SC_COUNT; c++)
        mem__tc_size[c] = mem_sc_size[c];
    MEM_ASSERT(mem_sc_size[MEM_TC_FRESH_FIRST] == 8192); /* calloc's fresh classes start here */
}

static pthread_key_t tc_key;
static pthread_once_t tc_key_once = PTHREAD_ONCE_INIT;

static void on_thread_exit(void *arg)
{
    (void)arg;
    if (mem__tc_self != &tc_empty && mem__tc_self != &tc_dead)
        mem__tcache_detach_self(true);
}

static void key_create(void)
{
    int rc = pthread_key_create(&tc_key, on_thread_exit);
    MEM_ASSERT(rc == 0);
}

/* ---- creation ---------------------------------------------------------------------- */

static mem__tcache_t *tcache_map(int reg_idx, unsigned node)
{
    size_t slots = 0;
    for (unsigned c = 0; c < MEM_SC_COUNT; c++)
        slots += mem__g.cap[c];
    size_t len = MEM_ALIGN_UP(sizeof(mem__tcache_t) + slots * sizeof(void *), mem__g.page);
    mem__tcache_t *tc = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tc == MAP_FAILED)
        return NULL;
    mem__meta_charge(len);
    void **s = (void **)(tc + 1);
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        tc->slots[c] = s;
        tc->cap[c] = mem__g.cap[c];
        s += mem__g.cap[c];
    }
    tc->map_len = len;
    tc->bytes_max = mem__g.cfg.tcache_bytes_max;
    tc->reg_idx = reg_idx;
    tc->node = node;
    size_t iv = mem_heapprof_interval();
    tc->sample_left = iv ? (int64_t)mem__sampling_next() : MEM_SAMPLE_OFF;
    return tc;
}

mem__tcache_t *mem__tcache_create(unsigned node)
{
    MEM_ASSERT(node < mem__g.nodes_cnt);
    pthread_once(&tc_key_once, key_create);
    pthread_mutex_lock(&mem__threads.reg_lock);
    int idx = -1;
    for (int i = 0; i < MEM_REG_MAX; i++) {
        if (!mem__threads.reg_claimed[i]) {
            idx = i;
            mem__threads.reg_claimed[i] = true;
            break;
        }
    }
    pthread_mutex_unlock(&mem__threads.reg_lock);
    if (idx < 0)
        return NULL;
    mem__tcache_t *tc = mem__threads.reg[idx];
    if (tc) {
        /* Reuse the exited thread's mapping: its counters were folded into the totals. */
        MEM_ASSERT(tc->reg_idx == idx);
        MEM_ASSERT(tc->bytes == 0);
        MEM_STAT_STORE(tc->node, node);
        tc->flags = 0;
        size_t iv = mem_heapprof_interval();
        tc->sample_left = iv ? (int64_t)mem__sampling_next() : MEM_SAMPLE_OFF;
    } else {
        tc = tcache_map(idx, node);
        if (!tc) {
            pthread_mutex_lock(&mem__threads.reg_lock);
            mem__threads.reg_claimed[idx] = false;
            pthread_mutex_unlock(&mem__threads.reg_lock);
            return NULL;
        }
    }
    /* Identity first, then publish: a stats reader that sees reg_used sees the name. */
    tc->tid = (uint64_t)syscall(SYS_gettid);
    memset(tc->name, 0, sizeof(tc->name));
    (void)pthread_getname_np(pthread_self(), tc->name, sizeof(tc->name));
    __atomic_store_n(&mem__threads.reg[idx], tc, __ATOMIC_RELEASE);
    __atomic_store_n(&mem__threads.reg_used[idx], true, __ATOMIC_RELEASE);
    pthread_setspecific(tc_key, tc);
    mem__tc_self = tc;
    return tc;
}

int mem__tcache_global_init(void)
{
    pthread_once(&tc_key_once, key_create);
    mem__tcache_t *tc = tcache_map(-1, 0);
    if (!tc)
        return -ENOMEM;
    tc->flags = MEM_TC_SHARED;
    tc->tstats.shared = 1;
    snprintf(tc->name, sizeof(tc->name), "shared");
    mem__threads.shared = tc;
    return 0;
}

void mem__tcache_global_fini(void)
{
    if (mem__threads.shared) {
        mem__tcache_flush(mem__threads.shared);
        size_t len = mem__threads.shared->map_len;
        munmap(mem__threads.shared, len);
        mem__meta_uncharge(len);
        mem__threads.shared = NULL;
    }
    for (int i = 0; i < MEM_REG_MAX; i++) {
        mem__tcache_t *tc = mem__threads.reg[i];
        if (!tc)
            continue;
        if (mem__threads.reg_claimed[i])
            mem__die("mem_fini: a thread (tid %llu) still has a cache: join it or call "
                     "mem_thread_detach() on it first",
                     (unsigned long long)tc->tid);
        mem__threads.reg[i] = NULL;
        size_t len = tc->map_len;
        munmap(tc, len);
        mem__meta_uncharge(len);
    }
    if (mem__tc_self != &tc_dead)
        mem__tc_self = &tc_empty;
}

/* ---- refill, spill, remote ---------------------------------------------------------- */

static void trim_to_bound(mem__tcache_t *tc, unsigned keep);

/* Gets one batch for class `c` into the empty LIFO. Returns the objects added. */
static unsigned refill(mem__tcache_t *tc, unsigned c)
{
    MEM_ASSERT(tc->cnt[c] == 0);
#if defined(MEM_FAULT_INJECT) && MEM_FAULT_INJECT
    /* Random allocation faults (mem_fault_set(_, one_in)) hit here, on the refill slow path,
     * never on the LIFO fast path. */
    if (MEM_UNLIKELY(__atomic_load_n(&mem__fault.one_in, __ATOMIC_RELAXED) != 0) &&
        mem__fault_alloc_hit())
        return 0;
#endif
    unsigned want = mem__g.batch[c];
    void **dst = tc->slots[c];
    mem__node_t *n = &mem__g.nodes[tc->node];
    unsigned got = mem__depot_pop(n, c, dst, want);
    if (got == 0)
        got = mem__span_take(n, c, dst, want);
    /* dst[0] may be a depot batch head that a stale CK popper can still read: its first
     * word stays unpoisoned (see depot.c). */
    for (unsigned i = 0; i < got; i++)
        MEM_POISON((char *)dst[i] + (i == 0 ? sizeof(void *) : 0),
                   mem_sc_size[c] - (i == 0 ? sizeof(void *) : 0));
    MEM_STAT_STORE(tc->cnt[c], got);
    tc->bytes += (uint64_t)got * mem_sc_size[c];
    trim_to_bound(tc, c);
    mem__decay_maybe();
    return got;
}

/* Gives the oldest half (one batch) of class `c` to the depot. */
static void spill(mem__tcache_t *tc, unsigned c)
{
    uint32_t n = tc->cnt[c];
    unsigned k = MEM_MIN(mem__g.batch[c], n);
    MEM_ASSERT(k > 0);
    mem__depot_push(&mem__g.nodes[tc->node], c, tc->slots[c], k);
    memmove(tc->slots[c], tc->slots[c] + k, (n - k) * sizeof(void *));
    MEM_STAT_STORE(tc->cnt[c], n - k);
    MEM_ASSERT(tc->bytes >= (uint64_t)k * mem_sc_size[c]);
    tc->bytes -= (uint64_t)k * mem_sc_size[c];
    mem__decay_maybe();
}

/* Keeps the cache within its byte bound: spills a batch of whichever class other than
 * `keep` holds the most bytes until the bound holds (`keep` = MEM_SC_COUNT: any class).
 * A class alone never passes the bound (its capacity is at most half of it). */
static void trim_to_bound(mem__tcache_t *tc, unsigned keep)
{
    while (tc->bytes > tc->bytes_max) {
        unsigned worst = MEM_SC_COUNT;
        uint64_t most = 0;
        for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
            uint64_t b = (uint64_t)tc->cnt[c] * mem_sc_size[c];
            if (c != keep && b > most) {
                most = b;
                worst = c;
            }
        }
        if (worst == MEM_SC_COUNT)
            break;
        spill(tc, worst);
    }
    MEM_ASSERT(keep < MEM_SC_COUNT || tc->bytes <= tc->bytes_max);
}

static void remote_flush(mem__tcache_t *tc, unsigned node, unsigned c)
{
    mem__remote_t *r = &tc->remote[node][c];
    if (!r->cnt)
        return;
    void *objs[MEM_BATCH_MAX];
    unsigned k = 0;
    for (void *o = r->head; o; k++) {
        MEM_ASSERT(k < MEM_BATCH_MAX);
        objs[k] = o;
        MEM_UNPOISON(o, sizeof(void *));
        void *next = *(void **)o;
        MEM_POISON(o, sizeof(void *));
        o = next;
    }
    MEM_ASSERT(k == r->cnt);
    mem__node_t *home = &mem__g.nodes[node];
    mem__depot_push(home, c, objs, k);
    __atomic_fetch_add(&home->remote_frees, k, __ATOMIC_RELAXED);
    MEM_STAT_SUB(tc->remote_bytes, (uint64_t)k * mem_sc_size[c]);
    r->head = NULL;
    MEM_STAT_STORE(r->cnt, 0);
}

/* A free of an object homed on another node: collect a batch that goes home whole. */
static void remote_free(mem__tcache_t *tc, void *p, unsigned node, unsigned c)
{
    MEM_ASSERT(node < mem__g.nodes_cnt);
    mem__remote_t *r = &tc->remote[node][c];
    MEM_POISON(p, mem_sc_size[c]);
    MEM_UNPOISON(p, sizeof(void *));
    *(void **)p = r->head;
    MEM_POISON(p, sizeof(void *));
    r->head = p;
    MEM_STAT_STORE(r->cnt, r->cnt + 1);
    MEM_STAT_ADD(tc->remote_bytes, mem_sc_size[c]);
    MEM_STAT_ADD(tc->free_cnt[c], 1);
    if (r->cnt >= mem__g.batch[c]) {
        remote_flush(tc, node, c);
    } else if (tc->remote_bytes > mem__g.cfg.tcache_bytes_max / 4) {
        /* Partial batches for many (node, class) pairs must not grow the cache past its
         * bound: send them all home now. */
        for (unsigned nd = 0; nd < mem__g.nodes_cnt; nd++)
            for (unsigned k = 0; k < MEM_SC_COUNT; k++)
                remote_flush(tc, nd, k);
    }
}

void mem__tcache_keep_drain(mem__tcache_t *tc)
{
    while (tc->keep_cnt > 0) {
        void *p = mem__tcache_keep_take(tc);
        MEM_UNPOISON(p, MEM_TC_KEEP_SIZE); /* the free below poisons it whole */
#if MEM_DEBUG >= 1
        /* The debug build's live bits still mark it allocated (the arena took it with
         * mem__malloc_unsampled and never freed it): the facade's free clears them. Only the
         * owner thread flushes its own cache, so this is `tc`'s free. */
        MEM_ASSERT(tc == mem__tc_self);
        mem_free(p);
#else
        mem__tcache_free(tc, p);
#endif
    }
}

void mem__tcache_flush(mem__tcache_t *tc)
{
    /* The keep stash first, as ordinary frees: its objects join the slots flushed below. */
    mem__tcache_keep_drain(tc);
    for (unsigned f = 0; f < MEM_TC_FRESH_CLASSES; f++) {
        if (tc->fresh_cnt[f] == 0)
            continue;
        /* Never handed out: straight back to their spans (homed on this cache's node). */
        mem__span_give(&mem__g.nodes[tc->node], MEM_TC_FRESH_FIRST + f, tc->fresh[f],
                       tc->fresh_cnt[f]);
        MEM_STAT_STORE(tc->fresh_cnt[f], 0);
    }
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        while (tc->cnt[c] > 0)
            spill(tc, c);
        for (unsigned nd = 0; nd < mem__g.nodes_cnt; nd++)
            remote_flush(tc, nd, c);
    }
}

/* ---- slow paths -------------------------------------------------------------------- */

/* One attempt at an allocation for a cache the caller may use (its own, or the shared one
 * under its lock). Returns NULL on failure without counting it. */
MEM_ALLOC_TEXT static void *alloc_try(mem__tcache_t *tc, size_t len, bool sample)
{
    if (sample) {
        /* Sampling switched on since this countdown was drawn: start a real one. */
        if (MEM_UNLIKELY(tc->sample_left > MEM_SAMPLE_OFF / 2) && mem_heapprof_interval() > 0)
            tc->sample_left = (int64_t)mem__sampling_next();
        int64_t left = tc->sample_left - (int64_t)len;
        if (left < 0) {
            size_t iv = mem_heapprof_interval();
            tc->sample_left = iv ? (int64_t)mem__sampling_next() : MEM_SAMPLE_OFF;
            if (iv) {
                /* Sampled objects come from sample-only spans (or, when large, a mapping
                 * flagged "sampled"), so free() learns it on a path that is already slow. */
                unsigned sc = mem_sc_of(len);
                void *p;
                if (sc < MEM_SC_COUNT) {
                    p = mem__span_take_sampled(&mem__g.nodes[tc->node], sc);
                    if (p) {
                        MEM_UNPOISON(p, mem_sc_size[sc]);
                        MEM_STAT_ADD(tc->alloc_cnt[sc], 1);
                    }
                } else {
                    p = mem__large_alloc(len, MEM_SC_ALIGN, tc->node, true);
                }
                if (p) {
                    (void)mem__heapprof_record(p, len, NULL, MEM_HEAPPROF_OWNER_TCACHE);
                    return p;
                }
            }
        } else {
            tc->sample_left = left;
        }
    }
    unsigned c = mem_sc_of(len);
    if (c == MEM_SC_COUNT) {
        void *p = mem__large_alloc(len, MEM_SC_ALIGN, tc->node, false);
        mem__decay_maybe();
        return p;
    }
    if (tc->cap[c] == 0) {
        /* Classes too large for this cache's byte bound go straight to the depot. */
        void *p;
        mem__node_t *n = &mem__g.nodes[tc->node];
        if (mem__depot_pop(n, c, &p, 1) == 0 && mem__span_take(n, c, &p, 1) == 0)
            return NULL;
        MEM_UNPOISON(p, mem_sc_size[c]);
        MEM_STAT_ADD(tc->alloc_cnt[c], 1);
        return p;
    }
    if (tc->cnt[c] == 0 && refill(tc, c) == 0)
        return NULL;
    uint32_t n = tc->cnt[c];
    void *p = tc->slots[c][n - 1];
    MEM_STAT_STORE(tc->cnt[c], n - 1);
    tc->bytes -= mem_sc_size[c];
    MEM_STAT_ADD(tc->alloc_cnt[c], 1);
    MEM_UNPOISON(p, mem_sc_size[c]);
    return p;
}

/* An allocation that the budget refused is retried once after what is merely cached went
 * back (this cache, the depots, free spans on every node); every allocation that still
 * fails is counted in alloc_failed. */
MEM_ALLOC_TEXT static void *alloc_in(mem__tcache_t *tc, size_t len, bool sample)
{
    uint64_t refused = mem__refused_self;
    void *p = alloc_try(tc, len, sample);
    if (MEM_LIKELY(p != NULL))
        return p;
    if (mem__refused_self != refused) {
        (void)mem__release_cached(tc);
        p = alloc_try(tc, len, false);
        if (p)
            return p;
    }
    __atomic_fetch_add(&mem__budget.alloc_failed, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void free_in(mem__tcache_t *tc, void *p, unsigned c, unsigned node)
{
    MEM_ASSERT(c < MEM_SC_COUNT);
    if (node != tc->node) {
        remote_free(tc, p, node, c);
        return;
    }
    MEM_POISON(p, mem_sc_size[c]);
    if (tc->cap[c] == 0) {
        mem__depot_push(&mem__g.nodes[node], c, &p, 1);
        MEM_STAT_ADD(tc->free_cnt[c], 1);
        return;
    }
    if (tc->cnt[c] >= tc->cap[c])
        spill(tc, c);
    uint32_t n = tc->cnt[c];
    tc->slots[c][n] = p;
    MEM_STAT_STORE(tc->cnt[c], n + 1);
    tc->bytes += mem_sc_size[c];
    MEM_STAT_ADD(tc->free_cnt[c], 1);
    if (tc->bytes > tc->bytes_max)
        trim_to_bound(tc, c);
    if (tc->bytes > tc->bytes_max)
        spill(tc, c); /* only this class is left: it alone may not pass the bound */
}

/* Resolves the cache the calling thread should use; NULL = use the shared one. */
static mem__tcache_t *self_or_create(mem__tcache_t *tc)
{
    if (tc == &tc_empty) {
        if (mem__ensure_init() != 0)
            return NULL;
        tc = mem__tcache_create(mem_numa_cpu_node() % mem__g.nodes_cnt);
        if (!tc)
            mem__tc_self = &tc_dead; /* registry full: share the locked cache from now on */
    } else if (tc == &tc_dead) {
        tc = NULL;
    }
    return tc;
}

MEM_ALLOC_TEXT void *mem__tcache_alloc_slow(mem__tcache_t *tc, size_t len)
{
    tc = self_or_create(tc);
    if (MEM_LIKELY(tc != NULL))
        return alloc_in(tc, len, true);
    if (!mem_is_initialised())
        return NULL;
    pthread_mutex_lock(&mem__threads.shared_lock);
    void *p = alloc_in(mem__threads.shared, len, false);
    pthread_mutex_unlock(&mem__threads.shared_lock);
    return p;
}

MEM_ALLOC_TEXT void *mem__tcache_alloc_cls(unsigned cls)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    mem__tcache_t *tc = self_or_create(mem__tc_self);
    if (MEM_LIKELY(tc != NULL))
        return alloc_in(tc, mem_sc_size[cls], false);
    if (!mem_is_initialised())
        return NULL;
    pthread_mutex_lock(&mem__threads.shared_lock);
    void *p = alloc_in(mem__threads.shared, mem_sc_size[cls], false);
    pthread_mutex_unlock(&mem__threads.shared_lock);
    return p;
}

bool mem__tcache_sample_due(size_t len)
{
    mem__tcache_t *tc = mem__tc_self;
    return tc->reg_idx >= 0 && tc->sample_left - (int64_t)len < 0;
}

bool mem__tcache_sample_take(size_t len)
{
    mem__tcache_t *tc = mem__tc_self;
    if (tc->reg_idx < 0)
        return false;
    int64_t left = tc->sample_left - (int64_t)len;
    if (left >= 0) {
        tc->sample_left = left;
        return false;
    }
    size_t iv = mem_heapprof_interval();
    tc->sample_left = iv ? (int64_t)mem__sampling_next() : MEM_SAMPLE_OFF;
    return iv != 0;
}

MEM_ALLOC_TEXT void *mem__tcache_alloc_sample(unsigned cls, size_t len)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    mem__tcache_t *tc = mem__tc_self;
    MEM_ASSERT(tc->reg_idx >= 0);
    void *p = mem__span_take_sampled(&mem__g.nodes[tc->node], cls);
    if (!p)
        return NULL;
    MEM_UNPOISON(p, mem_sc_size[cls]);
    MEM_STAT_ADD(tc->alloc_cnt[cls], 1);
    (void)mem__heapprof_record(p, len, NULL, MEM_HEAPPROF_OWNER_TCACHE);
    return p;
}

MEM_ALLOC_TEXT void *mem__tcache_alloc_fresh(unsigned cls)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    mem__tcache_t *tc = self_or_create(mem__tc_self);
    if (!tc)
        return NULL; /* the shared cache: the caller's ordinary path takes its lock */
    void *p = NULL;
    if (cls >= MEM_TC_FRESH_FIRST) {
        /* The fast path: a stashed fresh object, no lock. Else refill the stash. */
        unsigned f = cls - MEM_TC_FRESH_FIRST;
        if (tc->fresh_cnt[f] == 0) {
            unsigned k =
                (unsigned)MEM_MIN(MEM_MAX(MEM_TC_BATCH_BYTES / mem_sc_size[cls], (size_t)1),
                                  (size_t)MEM_TC_FRESH_MAX);
            unsigned got = mem__span_take_fresh(&mem__g.nodes[tc->node], cls, tc->fresh[f], k);
            MEM_STAT_STORE(tc->fresh_cnt[f], got);
        }
        if (tc->fresh_cnt[f] > 0) {
            uint32_t n = tc->fresh_cnt[f] - 1;
            p = tc->fresh[f][n];
            MEM_STAT_STORE(tc->fresh_cnt[f], n);
        }
    } else if (mem__span_take_fresh(&mem__g.nodes[tc->node], cls, &p, 1) == 0) {
        p = NULL;
    }
    if (p) {
        MEM_UNPOISON(p, mem_sc_size[cls]);
        MEM_STAT_ADD(tc->alloc_cnt[cls], 1);
        /* The caller checked that no sample is due (mem__tcache_sample_due). */
        tc->sample_left -= (int64_t)mem_sc_size[cls];
    }
    return p;
}

/* A sampled object goes straight back to its sample-only span, never into a cache. */
static void free_sampled(mem__tcache_t *tc, void *p, unsigned c, unsigned node)
{
    MEM_ASSERT(c < MEM_SC_COUNT);
    MEM_ASSERT(node < mem__g.nodes_cnt);
    mem__heapprof_forget(p);
    MEM_POISON(p, mem_sc_size[c]);
    mem__span_give(&mem__g.nodes[node], c, &p, 1);
    tc = self_or_create(tc);
    if (MEM_LIKELY(tc != NULL)) {
        MEM_STAT_ADD(tc->free_cnt[c], 1);
        return;
    }
    pthread_mutex_lock(&mem__threads.shared_lock);
    MEM_STAT_ADD(mem__threads.shared->free_cnt[c], 1);
    pthread_mutex_unlock(&mem__threads.shared_lock);
}

void mem__tcache_free_slow(mem__tcache_t *tc, void *p)
{
    mem__seghdr_t *h = mem__seghdr_of(p);
    unsigned tag = h->tag[mem__span_idx(p)];
    if (tag == MEM_TAG_LARGE) {
        mem__large_free((mem__large_t *)h, p);
        mem__decay_maybe();
        return;
    }
    if (MEM_TAG_IS_SAMPLED(tag) && tag - MEM_TAG_SAMPLED_BASE < MEM_SC_COUNT &&
        h->magic == MEM_SEG_MAGIC) {
        free_sampled(tc, p, tag - MEM_TAG_SAMPLED_BASE, h->node);
        return;
    }
    if (tag >= MEM_SC_COUNT || h->magic != MEM_SEG_MAGIC)
        mem__die("mem_free(%p): pointer not allocated by mem/ (or span already free)", p);
    unsigned node = h->node;
    tc = self_or_create(tc);
    if (MEM_LIKELY(tc != NULL)) {
        free_in(tc, p, tag, node);
        return;
    }
    pthread_mutex_lock(&mem__threads.shared_lock);
    free_in(mem__threads.shared, p, tag, node);
    pthread_mutex_unlock(&mem__threads.shared_lock);
}

/* ---- detach, stats block ----------------------------------------------------------- */

void mem__tcache_detach_self(bool dead)
{
    mem__tcache_t *tc = mem__tc_self;
    if (tc == &tc_empty || tc == &tc_dead) {
        if (dead)
            mem__tc_self = &tc_dead;
        return;
    }
    MEM_ASSERT(tc->reg_idx >= 0 && tc->reg_idx < MEM_REG_MAX);
    mem__tcache_flush(tc);
    /* Fold the counters into the totals of exited threads so that sums stay exact when
     * another thread frees what this one allocated. */
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        __atomic_fetch_add(&mem__threads.retired_alloc[c], MEM_STAT_LOAD(tc->alloc_cnt[c]),
                           __ATOMIC_RELAXED);
        __atomic_fetch_add(&mem__threads.retired_free[c], MEM_STAT_LOAD(tc->free_cnt[c]),
                           __ATOMIC_RELAXED);
        MEM_STAT_STORE(tc->alloc_cnt[c], 0);
        MEM_STAT_STORE(tc->free_cnt[c], 0);
    }
    mem__tstats_t *r = &mem__threads.retired_tstats, *t = &tc->tstats;
    __atomic_fetch_add(&r->regions_live, MEM_STAT_LOAD(t->regions_live), __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->subregions_live, MEM_STAT_LOAD(t->subregions_live), __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->region_bytes, MEM_STAT_LOAD(t->region_bytes), __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->regions_created, MEM_STAT_LOAD(t->regions_created), __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->subregions_created, MEM_STAT_LOAD(t->subregions_created),
                       __ATOMIC_RELAXED);
    /* The admin thread may be summing this block right now: clear it with relaxed stores,
     * never a plain memset. */
    MEM_STAT_STORE(t->regions_live, 0);
    MEM_STAT_STORE(t->subregions_live, 0);
    MEM_STAT_STORE(t->region_bytes, 0);
    MEM_STAT_STORE(t->regions_created, 0);
    MEM_STAT_STORE(t->subregions_created, 0);
    MEM_STATIC_ASSERT(sizeof(mem__tstats_t) == 6 * sizeof(uint64_t),
                      "clear every mem__tstats_t counter above (`shared` is not one)");
    pthread_setspecific(tc_key, NULL);
    __atomic_store_n(&mem__threads.reg_used[tc->reg_idx], false, __ATOMIC_RELEASE);
    pthread_mutex_lock(&mem__threads.reg_lock);
    mem__threads.reg_claimed[tc->reg_idx] = false;
    pthread_mutex_unlock(&mem__threads.reg_lock);
    mem__tc_self = dead ? &tc_dead : &tc_empty;
}

mem__tstats_t *mem__tstats_self(void)
{
    mem__tcache_t *tc = self_or_create(mem__tc_self);
    if (tc)
        return &tc->tstats;
    if (!mem_is_initialised())
        return NULL;
    /* Threads without their own cache share this block (rare: registry full or exiting). */
    return &mem__threads.shared->tstats;
}
