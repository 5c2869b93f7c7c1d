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

#include "mem/heapprof.h"
#include "mem/sampling.h"
#include "mem/internal.h"
#include "mem/malloc.h"

static __thread mem_region_t *tl_regions;
/* The sampling distances released arenas had left: a new arena starts from one of them. By the
 * memorylessness of the exponential, what is left of a distance that has not run out is
 * itself a fresh exponential draw, so recycling it keeps the sampling exact and saves a
 * logarithm per stream. A stack, not one slot: with many streams open at once, creations
 * and releases interleave (new, new, release, release), and one slot recycled only about
 * one distance in several (the profile showed a draw for 4,955 of 5,000 streams). It must
 * hold a whole burst of releases: on weir's codec a request opens two sub-arenas (the
 * client's stream and the upstream's), h2load -c 16 -m 10 keeps 320 open and closes them in
 * bursts, and 32 slots left 8,040 draws in 10,000 arenas (145 instructions a request).
 * 512 slots: 4 KiB of TLS a thread. */
#define SPARE_MAX 512
static __thread int64_t tl_spare_left[SPARE_MAX];
static __thread unsigned tl_spare_cnt;
static __thread size_t tl_spare_interval; /* the mean they were drawn with */
static uint64_t region_next_id = 1;       /* atomic */

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
MEM_INLINE size_t arena_room(const mem__arena_t *a)
{
    size_t room = SIZE_MAX;
    for (; a; a = a->parent) {
        if (a->cap_bytes)
            room = MEM_MIN(room, a->cap_bytes > arena_total(a) ? a->cap_bytes - arena_total(a) : 0);
    }
    return room;
}

MEM_INLINE void arena_charge(mem__arena_t *a, size_t size)
{
    a->bytes += size;
    if (a->parent)
        a->parent->child_bytes += size;
    MEM_TSTAT_ADD(mem__arena_tstats(), region_bytes, size);
}

/* Takes an unsampled facade object of `len` bytes: the thread cache's pop, inline, for the
 * size classes (chunks always are; large objects may not be). */
static void *obj_take(size_t len)
{
#if MEM_DEBUG < 1
    unsigned c = mem_sc_of(len);
    if (MEM_LIKELY(c < MEM_SC_COUNT))
        return mem__tcache_alloc_unsampled(mem__tc_self, c);
#endif
    return mem__malloc_unsampled(len); /* debug checks, or a dedicated mapping */
}

/* Takes a chunk of `size` bytes from the facade, unpoisoned for the caller to carve. Chunks
 * are not kept as facade samples: the profiler attributes region memory to the allocation
 * sites inside the region (mem__arena_sample) instead of to chunk refills. */
static mem__block_t *block_take(size_t size)
{
    MEM_ASSERT(size > sizeof(mem__block_t));
    mem__block_t *b = obj_take(size);
    if (b == NULL)
        return NULL;
    b->size = size;
    b->next = NULL;
    return b;
}

/* Gives a facade object of `size` bytes back (`size` matters only under ASan). Unpoison what the
 * arena poisoned (chunk tails, large-object padding) first: the facade writes its free-list link
 * into the object and poisons its free objects itself (mem/tcache.c), so a touch after the arena's
 * free is still a use-after-poison report. */
static void object_give(void *p, size_t size)
{
    MEM_UNPOISON(p, size);
#if MEM_DEBUG >= 1
    mem_free(p); /* with the facade's double-free and foreign-pointer checks */
#else
    mem__tcache_free(mem__tc_self, p); /* the facade's free, inline: once per chunk */
#endif
}

/* Makes [data, end) the current chunk (the caller reopens the window). */
static void chunk_set(mem__arena_t *a, char *data, char *end)
{
    if (a->chunk_data)
        a->used_closed += (size_t)(a->bump.cur - a->chunk_data);
    a->chunk_data = data;
    a->chunk_end = end;
    a->bump.cur = data;
    a->bump.end = data;
}

/* Counts what the window handed out against the sampling distance. */
static void win_close(mem__arena_t *a)
{
    a->sample_left -= (int64_t)(a->bump.cur - a->win_start);
    a->win_start = a->bump.cur;
}

/* Opens the window at `cur`: to the chunk's end, or to the next sample point if nearer. */
static void win_open(mem__arena_t *a)
{
    size_t room = (size_t)(a->chunk_end - a->bump.cur);
    size_t left = a->sample_left > 0 ? (size_t)a->sample_left : 0;
    a->win_start = a->bump.cur;
    a->bump.end = a->bump.cur + MEM_MIN(room, left);
}

size_t mem__arena_used(const mem__arena_t *a)
{
    return a->used_closed + (size_t)(a->bump.cur - a->chunk_data);
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
    chunk_set(a, (char *)(c + 1), (char *)c + size);
    MEM_POISON(a->bump.cur, size - sizeof(mem__block_t));
    a->chunk_next = MEM_MIN(a->chunk_next * 2, (size_t)MEM__ARENA_CHUNK_MAX);
    MEM_ASSERT(((uintptr_t)a->bump.cur & (MEM__ARENA_ALIGN - 1)) == 0);
    return true;
}

/* Takes `need` bytes from the current chunk, or from a new one when they do not fit. The
 * caller closed the window before and reopens it after. */
static void *arena_bump(mem__arena_t *a, size_t need)
{
    if ((size_t)(a->chunk_end - a->bump.cur) < need && !arena_grow(a, need))
        return NULL;
    char *p = a->bump.cur;
    a->bump.cur = p + need;
    return p;
}

/* Bytes the facade will hold for a request of `need` bytes (its size class, or for a
 * dedicated mapping at least `need`; mem_usable_size() tells the exact figure then). */
static size_t big_size(size_t need)
{
    unsigned c = mem_sc_of(need);
    return c < MEM_SC_COUNT ? mem_sc_size[c] : need;
}

/* A large request: a facade object of its own, recorded on the arena's list. */
static void *arena_big(mem__arena_t *a, size_t len, size_t need)
{
    size_t size = big_size(need);
    if (!arena_fits(a, size))
        return NULL;
    /* The record first (it may take a chunk), so that a failure leaves nothing to undo. */
    mem__big_t *rec = arena_bump(a, MEM_ALIGN_UP(sizeof(mem__big_t), (size_t)MEM__ARENA_ALIGN));
    if (rec == NULL)
        return NULL;
    /* The record may have taken a new chunk, charged to the cap: check again, or the object
     * would pass the cap by up to a chunk. */
    if (!arena_fits(a, size))
        return NULL; /* the record stays as a little dead space in the chunk */
    MEM_UNPOISON(rec, sizeof(*rec));
    char *p = obj_take(need);
    if (p == NULL)
        return NULL; /* the record stays as a little dead space in the chunk */
    if (size == need && need > MEM_SC_MAX) {
        size = mem_usable_size(p); /* a dedicated mapping: page-rounded */
        if (!arena_fits(a, size)) {
            mem_free(p);
            return NULL;
        }
    }
    rec->p = p;
    rec->next = a->bigs;
    a->bigs = rec;
    arena_charge(a, size);
    a->used_closed += need;
    /* Poison the padding so that an overrun is caught here too. */
    MEM_POISON(p + len, size - len);
    return p;
}

/* The slow path of mem__bump_alloc (mem/bump.h): a new chunk, a large object, a sample. */
MEM_ALLOC_TEXT void *mem__bump_alloc_slow(mem__bump_t *b, size_t len)
{
    mem__arena_t *a = MEM_CONTAINER_OF(b, mem__arena_t, bump);
    if (len > SIZE_MAX / 2)
        return NULL;
    size_t need = MEM_ALIGN_UP(len, (size_t)MEM__ARENA_ALIGN);
    win_close(a);
    char *p;
    if (len <= MEM__ARENA_BIG && need <= (size_t)(a->chunk_end - b->cur)) {
        p = b->cur; /* it fitted: this allocation crosses the sample point */
        b->cur = p + need;
    } else {
#if defined(MEM_FAULT_INJECT) && MEM_FAULT_INJECT
        /* Random allocation faults: a region that needs a new chunk or object fails here. */
        if (MEM_UNLIKELY(__atomic_load_n(&mem__fault.one_in, __ATOMIC_RELAXED) != 0) &&
            mem__fault_alloc_hit()) {
            __atomic_fetch_add(&mem__budget.alloc_failed, 1, __ATOMIC_RELAXED);
            win_open(a);
            return NULL;
        }
#endif
        p = len > MEM__ARENA_BIG ? arena_big(a, len, need) : arena_bump(a, need);
        if (MEM_UNLIKELY(p == NULL)) {
            win_open(a);
            return NULL;
        }
    }
    if (len <= MEM__ARENA_BIG)
        MEM_UNPOISON(p, len);
    MEM_ASSERT(((uintptr_t)p & (MEM__ARENA_ALIGN - 1)) == 0);
    /* The allocation that reaches the sample point is the sample (Poisson sampling per byte,
     * as the facade does). Bookkeeping bumps (records, cleanups) are outside the window and
     * do not count. */
    bool sample = (int64_t)need >= a->sample_left;
    a->sample_left = sample ? (int64_t)mem__sampling_next() : a->sample_left - (int64_t)need;
    win_open(a);
    if (MEM_UNLIKELY(sample))
        mem__arena_sample(a, p, len);
    return p;
}

MEM_ALLOC_TEXT MEM_NOINLINE void mem__arena_sample(mem__arena_t *a, void *p, size_t len)
{
    MEM_ASSERT(p != NULL);
    /* The stack starts at the allocation site: this function and mem__bump_alloc_slow are
     * allocator text (MEM_ALLOC_TEXT), and mem_region_alloc() and mem_subregion_alloc() are
     * inline in the site. */
    if (mem__heapprof_record(
            p, len, a, a->parent ? MEM_HEAPPROF_OWNER_SUBREGION : MEM_HEAPPROF_OWNER_REGION) == 0)
        a->sampled = true;
}

/* Sets up the arena at the start of chunk `c` (`size` bytes, the owner struct of `hdr` bytes
 * first, zeroed past the arena), charges it and opens its window. `sample_left` is the
 * distance to the next sample it starts with, 0 to take a fresh one. */
static void arena_init(mem__arena_t *a, mem__block_t *c, size_t size, size_t hdr, size_t cap_bytes,
                       mem__arena_t *parent, int64_t sample_left)
{
    MEM_ASSERT(a == (mem__arena_t *)(c + 1));
    MEM_ASSERT(sizeof(mem__block_t) + hdr <= size);
    memset(a, 0, hdr);
    c->next = NULL;
    a->chunks = c;
    a->cap_bytes = cap_bytes;
    a->parent = parent;
    a->chunk_next = MEM_MIN(size * 2, (size_t)MEM__ARENA_CHUNK_MAX);
    arena_charge(a, size);
    chunk_set(a, (char *)a + hdr, (char *)c + size);
    MEM_POISON(a->bump.cur, (size_t)(a->chunk_end - a->bump.cur));
    size_t iv = mem_heapprof_interval();
    if (sample_left > 0 && tl_spare_interval == iv) {
        a->sample_left = sample_left;
    } else if (tl_spare_cnt > 0 && tl_spare_interval == iv) {
        a->sample_left = tl_spare_left[--tl_spare_cnt];
        MEM_ASSERT(a->sample_left > 0);
    } else {
        a->sample_left = (int64_t)mem__sampling_next();
    }
    win_open(a);
    MEM_ASSERT(a->bump.cur <= a->bump.end);
}

/* The first chunk's size for an arena with these caps; 0 when it cannot hold `min` bytes. */
static size_t first_chunk_size(size_t min, size_t first_len, size_t cap_bytes,
                               const mem__arena_t *parent)
{
    size_t size = MEM_MAX(parent ? MEM__ARENA_CHUNK_SUB : MEM__ARENA_CHUNK_MIN, first_len);
    MEM_STATIC_ASSERT(MEM__ARENA_CHUNK_MIN >= 256, "the first chunk holds the owner struct");
    if (cap_bytes)
        size = MEM_MIN(size, cap_bytes);
    if (parent)
        size = MEM_MIN(size, arena_room(parent));
    return size < min ? 0 : size; /* 0: the cap cannot hold even the arena's own header */
}

void *mem__arena_new(size_t hdr_len, size_t first_len, size_t cap_bytes, mem__arena_t *parent)
{
    MEM_ASSERT(hdr_len >= sizeof(mem__arena_t));
    size_t hdr = MEM_ALIGN_UP(hdr_len, (size_t)MEM__ARENA_ALIGN);
    size_t size = first_chunk_size(sizeof(mem__block_t) + hdr, first_len, cap_bytes, parent);
    if (size == 0)
        return NULL;
    mem__block_t *c = block_take(size);
    if (c == NULL)
        return NULL;
    mem__arena_t *a = (mem__arena_t *)(c + 1);
    arena_init(a, c, size, hdr, cap_bytes, parent, 0);
    return a;
}

void *mem__arena_renew(mem__arena_t *a, size_t hdr_len, size_t cap_bytes, mem__arena_t *parent)
{
    mem__block_t *c = (mem__block_t *)(void *)a - 1;
    MEM_ASSERT(c->size == MEM__ARENA_CHUNK_SUB);
    MEM_ASSERT(a->bytes == 0);
    /* The rest of what strip left, checked in debug builds (this runs once per stream). */
    MEM_ASSERT_HOT(parent != NULL);
    MEM_ASSERT_HOT(a->chunks == c && c->next == NULL);
    MEM_ASSERT_HOT(a->bigs == NULL && a->cleanups == NULL && !a->sampled);
    /* What first_chunk_size() would say, short: these caps must leave the whole chunk. */
    if ((cap_bytes != 0 && cap_bytes < MEM__ARENA_CHUNK_SUB) ||
        arena_room(parent) < MEM__ARENA_CHUNK_SUB)
        return NULL;
    size_t hdr = MEM_ALIGN_UP(hdr_len, (size_t)MEM__ARENA_ALIGN);
    MEM_UNPOISON(a, hdr); /* strip poisoned the owner's fields past the arena */
    /* The fields strip left as a new arena has them (bigs, cleanups, sampled, chunks) stay;
     * the owner's fields past the arena are the caller's to set. */
    a->cap_bytes = cap_bytes;
    a->parent = parent;
    a->used_closed = 0;
    a->closing = false;
    a->chunk_next = MEM__ARENA_CHUNK_MAX;
    a->chunk_data = (char *)a + hdr;
    a->chunk_end = (char *)c + MEM__ARENA_CHUNK_SUB;
    a->bump.cur = a->chunk_data;
    arena_charge(a, MEM__ARENA_CHUNK_SUB);
    /* Its distance was drawn with the mean of the time it was stripped. */
    if (MEM_UNLIKELY(a->sample_left <= 0 || a->sample_iv != mem_heapprof_interval()))
        a->sample_left = (int64_t)mem__sampling_next();
    win_open(a);
    MEM_ASSERT(a->bump.cur <= a->bump.end);
    return a;
}

int mem__arena_cleanup_add(mem__arena_t *a, mem_cleanup_fn fn, void *arg)
{
    MEM_ASSERT(a != NULL);
    MEM_ASSERT(fn != NULL);
    win_close(a);
    mem__cleanup_t *c = arena_bump(a, MEM_ALIGN_UP(sizeof(*c), (size_t)MEM__ARENA_ALIGN));
    win_open(a); /* the record is bookkeeping: the sampling distance skips it */
    if (c == NULL)
        return -ENOMEM;
    MEM_UNPOISON(c, sizeof(*c));
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

void mem__arena_strip(mem__arena_t *a)
{
    MEM_ASSERT(a != NULL);
    MEM_ASSERT(a->cleanups == NULL);
    MEM_ASSERT(a->child_bytes == 0);
    if (a->sampled)
        mem__heapprof_forget_owner(a);
    a->sampled = false;
    win_close(a);
    size_t iv = mem_heapprof_interval();
    a->sample_iv = iv;
    if (tl_spare_interval != iv) {
        tl_spare_cnt = 0; /* drawn with another mean: forget them */
        tl_spare_interval = iv;
    }
    size_t total = a->bytes;
    if (a->parent) {
        MEM_ASSERT(a->parent->child_bytes >= total);
        a->parent->child_bytes -= total;
    }
    MEM_TSTAT_SUB(mem__arena_tstats(), region_bytes, total);
    a->bytes = 0;
    /* The records live in the chunks, which go back after them. */
    for (mem__big_t *big = a->bigs; big; big = big->next)
        object_give(big->p, MEM_HAVE_ASAN ? mem_usable_size(big->p) : 0);
    /* Newest chunk first, the first chunk (which holds `a`) stays: the thread cache is LIFO
     * per class, so the next arena gets the newest back first. */
    mem__block_t *c = a->chunks;
    while (c->next) {
        mem__block_t *next = c->next;
        object_give(c, c->size);
        c = next;
    }
    a->chunks = c;
    a->bigs = NULL;
    /* Poison what the window handed out: a touch of the arena's memory after its free is a
     * use-after-poison report, whether the chunk goes back to the facade or is kept. */
    char *data = (char *)(c + 1) + MEM_ALIGN_UP(sizeof(*a), (size_t)MEM__ARENA_ALIGN);
    if (data < (char *)c + c->size)
        MEM_POISON(data, (size_t)((char *)c + c->size - data));
}

void mem__arena_drop(mem__arena_t *a)
{
    MEM_ASSERT(a->bigs == NULL);
    MEM_ASSERT(a->chunks != NULL && a->chunks->next == NULL);
    if (a->sample_left > 0 && tl_spare_cnt < SPARE_MAX &&
        tl_spare_interval == mem_heapprof_interval())
        tl_spare_left[tl_spare_cnt++] = a->sample_left;
    mem__block_t *c = a->chunks;
    object_give(c, c->size); /* this frees `a` itself */
    /* a freed */
}

void mem__arena_release(mem__arena_t *a)
{
    mem__arena_strip(a);
    mem__arena_drop(a);
    /* a freed */
}

/* ---- region ---------------------------------------------------------------------------- */

/* The region's struct, rounded to the arena's alignment: an owner struct follows it. */
#define REGION_HDR_LEN MEM_ALIGN_UP(sizeof(mem_region_t), (size_t)MEM__ARENA_ALIGN)

mem_region_t *mem_region_new(size_t cap_bytes)
{
    return mem_region_new_ext(cap_bytes, 0, 0);
}

mem_region_t *mem_region_new_ext(size_t cap_bytes, size_t first_len, size_t ext_len)
{
    size_t first = 0;
    if (first_len > 0 || ext_len > 0) {
        /* The chunk is a facade object: its whole size class is the chunk, so the bytes the
         * class rounds up to are bump room and not a hidden tail. */
        first = MEM_MAX(first_len, sizeof(mem__block_t) + REGION_HDR_LEN + ext_len);
        unsigned cls = mem_sc_of(first);
        if (cls < MEM_SC_COUNT)
            first = mem_sc_size[cls];
    }
    mem_region_t *r = mem__arena_new(REGION_HDR_LEN + ext_len, first, cap_bytes, NULL);
    if (r == NULL)
        return NULL;
    MEM_ASSERT(&r->arena == (mem__arena_t *)r);
    r->id = __atomic_fetch_add(&region_next_id, 1, __ATOMIC_RELAXED);
    r->created_ns = mem__now_ns();
    r->home = &tl_regions;
    r->next = tl_regions;
    if (tl_regions)
        tl_regions->prev = r;
    tl_regions = r;
    mem__tstats_t *ts = mem__arena_tstats();
    MEM_TSTAT_ADD(ts, regions_live, 1);
    MEM_TSTAT_ADD(ts, regions_created, 1);
    return r;
}

void mem_region_free(mem_region_t *r)
{
    if (r == NULL)
        return;
    MEM_ASSERT(r->home == &tl_regions);
    if (r->arena.closing)
        return; /* freed from one of its own cleanups: the outer call finishes */
    r->arena.closing = true;
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
    MEM_TSTAT_SUB(mem__arena_tstats(), regions_live, 1);
    mem__arena_release(&r->arena);
    /* r freed */
}

MEM_ALLOC_TEXT char *mem__bump_strndup_big(mem__bump_t *b, const char *s, size_t len)
{
    MEM_ASSERT(s != NULL || len == 0);
    if (len == SIZE_MAX)
        return NULL;
    char *p = mem__bump_alloc(b, len + 1);
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

void *mem_region_ext(mem_region_t *r)
{
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->home == &tl_regions);
    return (char *)r + REGION_HDR_LEN;
}

uint64_t mem_region_created_ns(const mem_region_t *r)
{
    return r->created_ns;
}

size_t mem_region_bytes(const mem_region_t *r)
{
    return arena_total(&r->arena);
}

size_t mem_region_bytes_used(const mem_region_t *r)
{
    size_t used = mem__arena_used(&r->arena);
    for (const mem_subregion_t *s = r->subs; s; s = s->next)
        used += mem__arena_used(&s->arena);
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
