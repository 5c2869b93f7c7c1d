/*
 * mem/region.c: the per-connection region and the bump arena it shares with sub-arenas.
 *
 * A region is created, used and freed by one thread (its owner): the connection's worker.
 * Its struct lives at the start of its first chunk, so a region costs one thread-cache object
 * until it outgrows that chunk. Live regions sit on an intrusive per-thread list that
 * mem_region_foreach_local() walks for attribution. The arena code here (chunks, large blocks,
 * caps, cleanups, sampling) is shared with mem/subregion.c through mem/arena_internal.h.
 */
#include "mem/base.h"
#include "mem/region.h"
#include "mem/arena_internal.h"

#include <string.h>
#include <time.h>

#include "mem/heapprof.h"
#include "mem/internal.h"
#include "mem/malloc.h"

__thread int64_t mem__arena_countdown;
static __thread bool tl_countdown_armed;
static __thread mem_region_t *tl_regions;
static uint64_t region_next_id = 1; /* atomic */

/* The thread's counters. Non-NULL: every caller just got memory from the facade, so the
 * library is initialised. */
static mem__tstats_t *tstats(void)
{
    mem__tstats_t *ts = mem__tstats_self();
    MEM_ASSERT(ts != NULL);
    return ts;
}

/* ---- arena ----------------------------------------------------------------------------- */

static size_t arena_total(const mem__arena_t *a)
{
    return a->bytes + a->child_bytes;
}

/* True when taking `size` more bytes keeps `a` (and its parent) within their caps. */
static bool arena_fits(const mem__arena_t *a, size_t size)
{
    if (a->cap_bytes && (arena_total(a) > a->cap_bytes || size > a->cap_bytes - arena_total(a)))
        return false;
    if (a->parent)
        return arena_fits(a->parent, size);
    return true;
}

/* Room left under the caps of `a` and its parent (SIZE_MAX when uncapped). */
static size_t arena_room(const mem__arena_t *a)
{
    size_t room = SIZE_MAX;
    for (; a; a = a->parent) {
        if (a->cap_bytes)
            room = MEM_MIN(room, a->cap_bytes > arena_total(a) ? a->cap_bytes - arena_total(a) : 0);
    }
    return room;
}

static void arena_charge(mem__arena_t *a, size_t size)
{
    a->bytes += size;
    if (a->parent)
        a->parent->child_bytes += size;
    MEM_STAT_ADD(tstats()->region_bytes, size);
}

/* Takes a block of `size` bytes from the facade, unpoisoned for the caller to carve. Chunks are
 * not kept as facade samples: the profiler attributes region memory to the allocation sites
 * inside the region (mem__arena_sample) instead of to chunk refills. */
static mem__block_t *block_take(size_t size)
{
    MEM_ASSERT(size > sizeof(mem__block_t));
    mem__block_t *b = mem__malloc_unsampled(size);
    if (b == NULL)
        return NULL;
    b->size = size;
    b->next = NULL;
    return b;
}

static void block_give(mem__block_t *b)
{
    size_t size = b->size;
    MEM_ASSERT(size > sizeof(mem__block_t));
    /* Unpoison what the arena poisoned (chunk tails, large-block padding) before the facade
     * takes the block back: the facade writes its free-list link into the object and poisons
     * its free objects itself (mem/tcache.c), so a touch after the arena's free is still a
     * use-after-poison report. */
    MEM_UNPOISON(b, size);
    mem_free(b);
}

/* Starts a new chunk of at least `need` data bytes. Returns false past a cap or on OOM. */
static bool arena_grow(mem__arena_t *a, size_t need)
{
    size_t min = sizeof(mem__block_t) + need;
    size_t size = MEM_MAX(a->chunk_next, min);
    size_t room = arena_room(a);
    if (size > room)
        size = room; /* a capped arena takes what is left rather than failing early */
    if (size < min)
        return false;
    mem__block_t *c = block_take(size);
    if (c == NULL)
        return false;
    c->next = a->chunks;
    a->chunks = c;
    arena_charge(a, size);
    /* The old chunk's tail stays poisoned: it was poisoned when the chunk was new. */
    a->cur = (char *)(c + 1);
    a->end = (char *)c + size;
    MEM_POISON(a->cur, (size_t)(a->end - a->cur));
    if (a->chunk_next < MEM__ARENA_CHUNK_MAX)
        a->chunk_next *= 2;
    MEM_ASSERT(a->chunk_next <= MEM__ARENA_CHUNK_MAX);
    MEM_ASSERT(((uintptr_t)a->cur & (MEM__ARENA_ALIGN - 1)) == 0);
    return true;
}

void *mem__arena_alloc_slow(mem__arena_t *a, size_t len)
{
    MEM_ASSERT(a != NULL);
    if (len > SIZE_MAX / 2)
        return NULL;
#if defined(MEM_FAULT_INJECT) && MEM_FAULT_INJECT
    /* Random allocation faults: a region that needs a new chunk or block fails here. */
    if (MEM_UNLIKELY(__atomic_load_n(&mem__g.fault_one_in, __ATOMIC_RELAXED) != 0) &&
        mem__fault_alloc_hit())
        return NULL;
#endif
    size_t need = MEM_ALIGN_UP(len, (size_t)MEM__ARENA_ALIGN);
    if (len > MEM__ARENA_BIG) {
        size_t size = sizeof(mem__block_t) + need;
        if (!arena_fits(a, size))
            return NULL;
        mem__block_t *b = block_take(size);
        if (b == NULL)
            return NULL;
        b->next = a->bigs;
        a->bigs = b;
        arena_charge(a, size);
        a->bytes_used += need;
        char *p = (char *)(b + 1);
        /* Poison the padding so an overrun is caught here too. */
        MEM_POISON(p + len, need - len);
        return p;
    }
    if (!arena_grow(a, need))
        return NULL;
    char *p = a->cur;
    MEM_ASSERT((size_t)(a->end - p) >= need);
    a->cur = p + need;
    a->bytes_used += need;
    MEM_UNPOISON(p, len);
    return p;
}

MEM_NOINLINE void mem__arena_sample(mem__arena_t *a, void *p, size_t len)
{
    MEM_ASSERT(p != NULL);
    bool armed = tl_countdown_armed;
    mem__arena_countdown = (int64_t)mem__heapprof_next_interval();
    tl_countdown_armed = true;
    MEM_ASSERT(mem__arena_countdown > 0);
    /* A thread's first countdown starts at 0: it only arms the sampler. */
    if (!armed)
        return;
    /* Skip this frame: the stack starts at mem_region_alloc or mem_subregion_alloc. */
    if (mem__heapprof_record(p, len, a, 1) == 0)
        a->sampled = true;
}

void *mem__arena_new(size_t hdr_len, size_t cap_bytes, mem__arena_t *parent)
{
    MEM_ASSERT(hdr_len >= sizeof(mem__arena_t));
    size_t hdr = MEM_ALIGN_UP(hdr_len, (size_t)MEM__ARENA_ALIGN);
    size_t min = sizeof(mem__block_t) + hdr;
    size_t size = MEM__ARENA_CHUNK_MIN;
    MEM_STATIC_ASSERT(MEM__ARENA_CHUNK_MIN >= 256, "the first chunk holds the owner struct");
    if (cap_bytes)
        size = MEM_MIN(size, cap_bytes);
    if (parent)
        size = MEM_MIN(size, arena_room(parent));
    if (size < min)
        return NULL; /* the cap cannot hold even the arena's own header */
    mem__block_t *c = block_take(size);
    if (c == NULL)
        return NULL;
    mem__arena_t *a = (mem__arena_t *)(c + 1);
    memset(a, 0, hdr);
    a->chunks = c;
    a->cap_bytes = cap_bytes;
    a->parent = parent;
    a->chunk_next = MEM__ARENA_CHUNK_MIN * 2;
    arena_charge(a, size);
    a->cur = (char *)a + hdr;
    a->end = (char *)c + size;
    MEM_POISON(a->cur, (size_t)(a->end - a->cur));
    MEM_ASSERT(a->cur <= a->end);
    return a;
}

int mem__arena_cleanup_add(mem__arena_t *a, mem_cleanup_fn fn, void *arg)
{
    MEM_ASSERT(a != NULL);
    MEM_ASSERT(fn != NULL);
    /* Through the bump path without sampling: the record is bookkeeping, not a caller's. */
    mem__cleanup_t *c;
    size_t need = MEM_ALIGN_UP(sizeof(*c), (size_t)MEM__ARENA_ALIGN);
    if ((size_t)(a->end - a->cur) >= need) {
        c = (mem__cleanup_t *)a->cur;
        a->cur += need;
        a->bytes_used += need;
        MEM_UNPOISON(c, sizeof(*c));
    } else {
        c = mem__arena_alloc_slow(a, sizeof(*c));
        if (c == NULL)
            return -ENOMEM;
    }
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

void mem__arena_run_cleanups(mem__arena_t *a)
{
    MEM_ASSERT(a != NULL);
    /* Pop one at a time: a callback may add another cleanup, which then runs next. */
    while (a->cleanups) {
        mem__cleanup_t *c = a->cleanups;
        a->cleanups = c->next;
        c->fn(c->arg);
    }
}

void mem__arena_release(mem__arena_t *a)
{
    MEM_ASSERT(a != NULL);
    MEM_ASSERT(a->cleanups == NULL);
    MEM_ASSERT(a->child_bytes == 0);
    if (a->sampled)
        mem__heapprof_forget_owner(a);
    size_t total = a->bytes;
    if (a->parent) {
        MEM_ASSERT(a->parent->child_bytes >= total);
        a->parent->child_bytes -= total;
    }
    MEM_STAT_SUB(tstats()->region_bytes, total);
    mem__block_t *big = a->bigs;
    while (big) {
        mem__block_t *next = big->next;
        block_give(big);
        big = next;
    }
    /* Newest chunk first and the first chunk (which holds `a`) last: the thread cache is LIFO
     * per class, so the next arena gets the first chunk back first, then the others. */
    mem__block_t *c = a->chunks;
    while (c) {
        mem__block_t *next = c->next;
        block_give(c); /* on the last round this frees `a` itself */
        c = next;
    }
    /* a freed */
}

/* ---- region ---------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

mem_region_t *mem_region_new(size_t cap_bytes)
{
    mem_region_t *r = mem__arena_new(sizeof(*r), cap_bytes, NULL);
    if (r == NULL)
        return NULL;
    MEM_ASSERT(&r->arena == (mem__arena_t *)r);
    r->id = __atomic_fetch_add(&region_next_id, 1, __ATOMIC_RELAXED);
    r->created_ns = now_ns();
    r->home = &tl_regions;
    r->next = tl_regions;
    if (tl_regions)
        tl_regions->prev = r;
    tl_regions = r;
    mem__tstats_t *ts = tstats();
    MEM_STAT_ADD(ts->regions_live, 1);
    MEM_STAT_ADD(ts->regions_created, 1);
    return r;
}

void mem_region_free(mem_region_t *r)
{
    if (r == NULL)
        return;
    MEM_ASSERT(r->home == &tl_regions);
    /* Cleanups first, while the sub-arenas are still open: a connection cleanup (closing the
     * h2 session) may close its streams, which free their own sub-arenas. */
    mem__arena_run_cleanups(&r->arena);
    mem__region_free_subs(r);
    MEM_ASSERT(r->subs_cnt == 0);
    if (r->prev)
        r->prev->next = r->next;
    else
        tl_regions = r->next;
    if (r->next)
        r->next->prev = r->prev;
    MEM_STAT_SUB(tstats()->regions_live, 1);
    mem__arena_release(&r->arena);
    /* r freed */
}

void *mem_region_alloc(mem_region_t *r, size_t len)
{
    MEM_ASSERT_HOT(r != NULL);
    return mem__arena_alloc(&r->arena, len);
}

void *mem_region_calloc(mem_region_t *r, size_t len)
{
    void *p = mem__arena_alloc(&r->arena, len);
    if (p)
        memset(p, 0, len);
    return p;
}

char *mem_region_strndup(mem_region_t *r, const char *s, size_t len)
{
    MEM_ASSERT(s != NULL || len == 0);
    if (len == SIZE_MAX)
        return NULL;
    char *p = mem__arena_alloc(&r->arena, len + 1);
    if (p == NULL)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

int mem_region_cleanup_add(mem_region_t *r, mem_cleanup_fn fn, void *arg)
{
    MEM_ASSERT(r != NULL);
    return mem__arena_cleanup_add(&r->arena, fn, arg);
}

void mem_region_set_label(mem_region_t *r, const char *label)
{
    MEM_ASSERT(r != NULL);
    size_t n = label ? strnlen(label, MEM__REGION_LABEL_MAX - 1) : 0;
    if (n)
        memcpy(r->label, label, n);
    r->label[n] = '\0';
}

size_t mem_region_bytes(const mem_region_t *r)
{
    return arena_total(&r->arena);
}

size_t mem_region_bytes_used(const mem_region_t *r)
{
    size_t used = r->arena.bytes_used;
    for (const mem_subregion_t *s = r->subs; s; s = s->next)
        used += s->arena.bytes_used;
    return used;
}

size_t mem_region_cap(const mem_region_t *r)
{
    return r->arena.cap_bytes;
}

uint64_t mem_region_id(const mem_region_t *r)
{
    return r->id;
}

void mem_region_foreach_local(void (*fn)(const mem_region_info_t *info, void *arg), void *arg)
{
    MEM_ASSERT(fn != NULL);
    for (mem_region_t *r = tl_regions, *next; r; r = next) {
        next = r->next; /* the callback may free r */
        mem_region_info_t info = {
            .region = r,
            .label = r->label,
            .id = r->id,
            .bytes = mem_region_bytes(r),
            .bytes_used = mem_region_bytes_used(r),
            .cap_bytes = r->arena.cap_bytes,
            .subregions_cnt = r->subs_cnt,
            .created_ns = r->created_ns,
        };
        fn(&info, arg);
    }
}
