/*
 * mem/segment.c: segments and spans (the slow, locked layer under the depots). Large
 * mappings are in mem/large.c, the debug registry of mapped segments in mem/registry.c.
 *
 * Segments are owned by their node (mem__node_t.segs) and unmapped only by mem_fini().
 * Every function that changes span state holds the node lock; callers are slow paths.
 * Accounting invariant per node (exact under the lock):
 *     committed == meta_bytes + committed spans + large mappings
 *     free_in_segs == meta_bytes + DIRTY spans + free objects held by USED spans
 *                     + the unusable tail of each USED span
 * so that live + tcache + depot + free_in_segs == committed across the process.
 */
#include "mem/base.h"
#include "mem/segment.h"
#include "mem/internal.h"
#include "mem/numa.h"
#include "mem/heapprof.h"

#include <string.h>
#include <sys/mman.h>

/* ---- span lists -------------------------------------------------------------------- */

static void list_init(mem__spanlist_t *l)
{
    l->head.next = &l->head;
    l->head.prev = &l->head;
}

static bool list_empty(const mem__spanlist_t *l)
{
    return l->head.next == &l->head;
}

static void list_push(mem__spanlist_t *l, mem__span_t *s)
{
    MEM_ASSERT(!s->on_list);
    s->next = l->head.next;
    s->prev = &l->head;
    l->head.next->prev = s;
    l->head.next = s;
    s->on_list = 1;
}

/* Files `s` last: a span whose free pages were given back goes behind the warm ones, so
 * allocations keep to spans whose pages are resident. */
static void list_push_tail(mem__spanlist_t *l, mem__span_t *s)
{
    MEM_ASSERT(!s->on_list);
    s->prev = l->head.prev;
    s->next = &l->head;
    l->head.prev->next = s;
    l->head.prev = s;
    s->on_list = 1;
}

static void list_remove(mem__span_t *s)
{
    MEM_ASSERT(s->on_list);
    s->prev->next = s->next;
    s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->on_list = 0;
}

void mem__node_lists_init(mem__node_t *n)
{
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        list_init(&n->partial[c]);
        list_init(&n->sampled[c]);
    }
    list_init(&n->dirty);
    list_init(&n->clean);
}

static mem__segment_t *span_seg(const mem__span_t *s)
{
    return (mem__segment_t *)mem__seghdr_of(s);
}

static mem__spanlist_t *partial_of(mem__node_t *n, const mem__span_t *s)
{
    return s->sampled ? &n->sampled[s->cls] : &n->partial[s->cls];
}

static char *span_base(const mem__span_t *s)
{
    return mem__span_base(s);
}

MEM_STATIC_ASSERT(MEM_SC_SPAN_BYTES == MEM_SPAN_SIZE, "sizeclass.h repeats the span size");
MEM_STATIC_ASSERT(MEM_SC_RUN_MAX < MEM_SPANS_PER_SEG, "a run fits in one segment");

/* ---- mappings ---------------------------------------------------------------------- */

/* Maps `len` bytes aligned to MEM_SEG_SIZE: over-map by one segment and trim both ends.
 * MAP_NORESERVE: only pages that are touched cost memory; the budget counts commitment. */
void *mem__map_aligned(size_t len)
{
    if (mem__fault_hit())
        return NULL;
    if (len > SIZE_MAX - MEM_SEG_SIZE)
        return NULL;
    size_t over = len + MEM_SEG_SIZE;
    char *raw = mmap(NULL, over, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *base = (char *)MEM_ALIGN_UP((uintptr_t)raw, (uintptr_t)MEM_SEG_SIZE);
    size_t head = (size_t)(base - raw);
    size_t tail = over - head - len;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap(base + len, tail);
    MEM_ASSERT(((uintptr_t)base & MEM_SEG_MASK) == 0);
    return base;
}

static mem__segment_t *segment_new(mem__node_t *n)
{
    size_t meta = MEM_ALIGN_UP(sizeof(mem__segment_t), mem__g.page);
    if (mem__budget_charge(meta) != 0)
        return NULL;
    mem__segment_t *seg = mem__map_aligned(MEM_SEG_SIZE);
    if (!seg) {
        mem__budget_uncharge(meta);
        return NULL;
    }
    if (mem__g.bind)
        (void)mem_numa_bind(seg, MEM_SEG_SIZE, n->id);
    /* Spans decay one by one (64 KiB): with THP "always", a 2 MiB huge page under them would
     * be split by the first MADV_DONTNEED, or keep 2 MiB resident for one live span. */
    (void)madvise(seg, MEM_SEG_SIZE, MADV_NOHUGEPAGE);
    /* Fresh anonymous memory is zero: only the fields that are not zero are written. */
    memset(seg->hdr.tag, MEM_TAG_FREE, sizeof(seg->hdr.tag));
    seg->hdr.tag[0] = MEM_TAG_META;
    seg->hdr.node = n->id;
    seg->hdr.magic = MEM_SEG_MAGIC;
    seg->meta_bytes = meta;
    seg->spans[0].state = MEM_SPAN_HDR;
    for (unsigned i = MEM_SPANS_PER_SEG - 1; i >= 1; i--) {
        mem__span_t *s = &seg->spans[i];
        s->idx = (uint8_t)i;
        s->state = MEM_SPAN_CLEAN;
        list_push(&n->clean, s);
    }
    seg->next = n->segs;
    n->segs = seg;
    mem__registry_set(seg, true);
    MEM_STAT_ADD(n->segments, 1);
    MEM_STAT_ADD(n->committed, meta);
    MEM_STAT_ADD(n->meta_bytes, meta);
    MEM_STAT_ADD(n->free_in_segs, meta);
    __atomic_fetch_add(&mem__budget.mapped, MEM_SEG_SIZE, __ATOMIC_RELAXED);
    return seg;
}

static void span_retire(mem__node_t *n, mem__span_t *s);

/* ---- page reset: pages in USED runs given back to the OS --------------------------- */

/* A page of a USED run may be given back (madvise MADV_DONTNEED) while every object that
 * overlaps it is free in the span. The free list is linked through each object's first word,
 * which such a page would lose (it reads back as zero), so:
 *   - a page is reset only if it overlaps no live object, no object in a cache or a depot;
 *   - a free object whose first word lies in a reset page is on no list ("parked"); every
 *     other free object below `bump` is on the free list; objects at or past `bump` were
 *     never handed out and need no link;
 *   - before an object is handed out, every reset page it overlaps is taken back (its bit
 *     cleared, the objects parked in it linked again): touching the page faults in a zero
 *     page, no system call.
 * So a parked object is exactly an object below `bump` whose first byte is in a reset page.
 * Pages are counted per span of the run (`reset_mask`, 16 pages of 4 KiB per 64 KiB span),
 * the total in the run's head (`reset_cnt`). The objects stay free in the span throughout:
 * the node's counters do not change. */

static unsigned pages_per_span(void)
{
    return (unsigned)(MEM_SPAN_SIZE / mem__g.page);
}

static bool page_is_reset(const mem__span_t *s, unsigned pg)
{
    unsigned pps = pages_per_span();
    return (s[pg / pps].reset_mask >> (pg % pps)) & 1u;
}

/* Takes page `pg` of the run `s` back: clears its bit and links the objects parked in it. */
static void page_take_back(mem__span_t *s, unsigned pg)
{
    unsigned pps = pages_per_span();
    size_t page = mem__g.page;
    MEM_ASSERT(page_is_reset(s, pg));
    MEM_ASSERT(s->reset_cnt > 0);
    s[pg / pps].reset_mask = (uint16_t)(s[pg / pps].reset_mask & ~(1u << (pg % pps)));
    s->reset_cnt--;
    /* Objects whose first byte is in [pg * page, (pg + 1) * page), below bump. */
    size_t lo = (size_t)pg * page, hi = lo + page;
    size_t first = (lo + s->size - 1) / s->size;
    size_t end = MEM_MIN((hi + s->size - 1) / s->size, (size_t)s->bump);
    char *base = mem__span_base(s);
    for (size_t i = first; i < end; i++) {
        void *o = base + i * s->size;
        MEM_UNPOISON(o, sizeof(void *));
        *(void **)o = s->free_list;
        s->free_list = o;
    }
}

/* Takes back every reset page that the object at `o` overlaps, before it is handed out. */
static void pages_take_back(mem__span_t *s, const void *o)
{
    size_t page = mem__g.page;
    size_t off = (size_t)((const char *)o - mem__span_base(s));
    unsigned last = (unsigned)((off + s->size - 1) / page);
    for (unsigned pg = (unsigned)(off / page); pg <= last && s->reset_cnt; pg++)
        if (page_is_reset(s, pg))
            page_take_back(s, pg);
}

/* Takes back the first reset page that holds a parked object (the span's free list and bump
 * are empty but it still holds free objects). Returns false when there is none. */
static bool page_take_back_parked(mem__span_t *s)
{
    unsigned np = (unsigned)(((size_t)s->run * MEM_SPAN_SIZE) / mem__g.page);
    for (unsigned pg = 0; pg < np && s->reset_cnt; pg++) {
        if (!page_is_reset(s, pg))
            continue;
        page_take_back(s, pg);
        if (s->free_list)
            return true;
    }
    return false;
}

#define RESET_PAGES_MAX ((unsigned)(MEM_SC_RUN_MAX * MEM_SPAN_SIZE / 4096))

/* Finds the pages of the USED run `s` that hold only free objects and are not yet reset,
 * marks them reset, parks the free objects that start in them and sets `newpg` (one bit per
 * page of the run). Returns how many pages are new. Node lock held. */
static unsigned span_mark_free_pages(mem__span_t *s, uint64_t newpg[RESET_PAGES_MAX / 64])
{
    size_t page = mem__g.page;
    unsigned np = (unsigned)(((size_t)s->run * MEM_SPAN_SIZE) / page);
    MEM_ASSERT(np <= RESET_PAGES_MAX);
    MEM_ASSERT(s->nobj <= MEM_SPAN_OBJS_MAX);
    char *base = mem__span_base(s);
    uint64_t fr[MEM_SPAN_OBJS_MAX / 64] = {0}; /* one bit per free object */
    unsigned free_seen = 0;
    for (unsigned i = s->bump; i < s->nobj; i++)
        fr[i / 64] |= 1ull << (i % 64);
    free_seen += s->nobj - s->bump;
    for (void *o = s->free_list; o;) {
        size_t i = (size_t)((char *)o - base) / s->size;
        MEM_ASSERT(i < s->bump);
        fr[i / 64] |= 1ull << (i % 64);
        free_seen++;
        MEM_UNPOISON(o, sizeof(void *));
        o = *(void **)o;
    }
    if (s->reset_cnt) {
        for (unsigned i = 0; i < s->bump; i++) {
            if (page_is_reset(s, (unsigned)(((size_t)i * s->size) / page))) {
                fr[i / 64] |= 1ull << (i % 64);
                free_seen++;
            }
        }
    }
    MEM_ASSERT(free_seen == s->free_cnt);
    unsigned fresh_pages = 0, pps = pages_per_span();
    memset(newpg, 0, RESET_PAGES_MAX / 8);
    for (unsigned pg = 0; pg < np; pg++) {
        if (page_is_reset(s, pg))
            continue;
        size_t lo = (size_t)pg * page, hi = lo + page;
        /* In a span that was clean when carved, nothing at or past bump was ever touched:
         * those pages are not resident, and giving them back would only count bytes that
         * never were. */
        if (s->fresh && lo >= (size_t)s->bump * s->size)
            break;
        size_t first = lo / s->size, last = MEM_MIN((hi - 1) / s->size, (size_t)s->nobj - 1);
        bool all_free = true;
        for (size_t i = first; i <= last && i < s->nobj && all_free; i++)
            all_free = (fr[i / 64] >> (i % 64)) & 1;
        if (!all_free)
            continue;
        newpg[pg / 64] |= 1ull << (pg % 64);
        fresh_pages++;
    }
    if (fresh_pages == 0)
        return 0;
    for (unsigned pg = 0; pg < np; pg++)
        if ((newpg[pg / 64] >> (pg % 64)) & 1)
            s[pg / pps].reset_mask = (uint16_t)(s[pg / pps].reset_mask | (1u << (pg % pps)));
    s->reset_cnt = (uint16_t)(s->reset_cnt + fresh_pages);
    /* Relink the free list in address order with only the objects whose first byte stays in
     * a resident page; the others are parked. */
    void *head = NULL;
    for (unsigned i = s->bump; i-- > 0;) {
        if (!((fr[i / 64] >> (i % 64)) & 1))
            continue;
        if (page_is_reset(s, (unsigned)(((size_t)i * s->size) / page)))
            continue;
        void *o = base + (size_t)i * s->size;
        MEM_UNPOISON(o, sizeof(void *));
        *(void **)o = head;
        head = o;
    }
    s->free_list = head;
    return fresh_pages;
}

#define RESET_BATCH 16 /* spans detached per lock hold */

size_t mem__node_reset(mem__node_t *n, unsigned cls, uint64_t before_ns, size_t spans_max,
                       size_t *spans)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    MEM_ASSERT(mem__g.page >= 4096 && mem__g.page <= MEM_SPAN_SIZE);
    size_t page = mem__g.page, reset = 0, done = 0;
    mem__span_t *batch[RESET_BATCH];
    uint64_t newpg[RESET_BATCH][RESET_PAGES_MAX / 64];
    uint64_t gave_ns[RESET_BATCH];
    while (done < spans_max) {
        /* Under the lock: find spans with pages to give back, mark and park, detach them
         * (RESETTING: on no list, so no allocation touches their pages while they are
         * madvise()d; frees into them are still linked). Spans with nothing new are marked
         * done, so that the next scan passes them. */
        unsigned k = 0;
        size_t seen = 0;
        pthread_mutex_lock(&n->lock);
        mem__span_t *s = n->partial[cls].head.next;
        while (s != &n->partial[cls].head && k < RESET_BATCH && done + seen < spans_max) {
            mem__span_t *next = s->next;
            MEM_ASSERT(s->state == MEM_SPAN_USED && s->cls == cls);
            if (!s->reset_done && !s->sampled &&
                (before_ns == UINT64_MAX || s->idle_since_ns <= before_ns)) {
                seen++;
                if (span_mark_free_pages(s, newpg[k]) == 0) {
                    s->reset_done = 1;
                } else {
                    list_remove(s);
                    s->resetting = 1;
                    gave_ns[k] = s->idle_since_ns;
                    batch[k++] = s;
                }
            }
            s = next;
        }
        pthread_mutex_unlock(&n->lock);
        done += seen;
        if (k == 0)
            break;
        size_t bytes = 0;
        for (unsigned j = 0; j < k; j++) {
            unsigned np = (unsigned)(((size_t)batch[j]->run * MEM_SPAN_SIZE) / page);
            char *base = mem__span_base(batch[j]);
            for (unsigned pg = 0; pg < np;) {
                if (!((newpg[j][pg / 64] >> (pg % 64)) & 1)) {
                    pg++;
                    continue;
                }
                unsigned end = pg;
                while (end < np && ((newpg[j][end / 64] >> (end % 64)) & 1))
                    end++;
                /* MADV_DONTNEED: out of RSS now, zero when next touched. */
                int rc =
                    madvise(base + (size_t)pg * page, (size_t)(end - pg) * page, MADV_DONTNEED);
                MEM_ASSERT(rc == 0);
                bytes += (size_t)(end - pg) * page;
                pg = end;
            }
        }
        pthread_mutex_lock(&n->lock);
        for (unsigned j = 0; j < k; j++) {
            mem__span_t *t = batch[j];
            MEM_ASSERT(t->resetting);
            MEM_ASSERT(!t->on_list);
            t->resetting = 0;
            t->reset_done = t->idle_since_ns == gave_ns[j];
            if (t->free_cnt == t->nobj)
                span_retire(n, t); /* wholly freed meanwhile */
            else
                list_push_tail(&n->partial[cls], t);
        }
        pthread_mutex_unlock(&n->lock);
        reset += bytes;
    }
    if (reset) {
        __atomic_fetch_add(&mem__budget.released_total, reset, __ATOMIC_RELAXED);
        __atomic_fetch_add(&mem__budget.reset_total, reset, __ATOMIC_RELAXED);
    }
    if (spans)
        *spans = done;
    return reset;
}

/* ---- spans ------------------------------------------------------------------------- */

/* Finds `k` adjacent spans, each CLEAN or DIRTY, in one of the node's segments (mapping a
 * new segment when none has them), takes them off their lists and commits the clean ones.
 * Returns the first, or NULL when nothing can be mapped or committed. `*fresh` says whether
 * every span was clean. Runs are rare next to single spans (classes above 32 KiB, each run
 * holding several objects), so a first-fit scan of the segments under the lock is enough. */
static mem__span_t *run_take(mem__node_t *n, unsigned k, bool *fresh)
{
    MEM_ASSERT(k >= 2 && k <= MEM_SC_RUN_MAX);
    mem__segment_t *seg = n->segs;
    unsigned first = 0;
    for (; seg; seg = seg->next) {
        unsigned len = 0;
        for (unsigned i = 1; i < MEM_SPANS_PER_SEG && len < k; i++) {
            uint8_t st = seg->spans[i].state;
            len = (st == MEM_SPAN_CLEAN || st == MEM_SPAN_DIRTY) ? len + 1 : 0;
            first = i + 1 - len;
        }
        if (len == k)
            break;
    }
    if (!seg) {
        seg = segment_new(n);
        if (!seg)
            return NULL;
        first = 1;
    }
    unsigned clean = 0;
    for (unsigned i = first; i < first + k; i++)
        clean += seg->spans[i].state == MEM_SPAN_CLEAN;
    if (clean && mem__budget_charge((size_t)clean * MEM_SPAN_SIZE) != 0)
        return NULL;
    for (unsigned i = first; i < first + k; i++) {
        mem__span_t *t = &seg->spans[i];
        MEM_ASSERT(t->state == MEM_SPAN_CLEAN || t->state == MEM_SPAN_DIRTY);
        list_remove(t);
        t->state = MEM_SPAN_TAIL;
        t->head = (uint8_t)first;
        t->run = 0;
    }
    MEM_STAT_ADD(n->committed, (uint64_t)clean * MEM_SPAN_SIZE);
    MEM_STAT_ADD(n->free_in_segs, (uint64_t)clean * MEM_SPAN_SIZE);
    *fresh = clean == k;
    mem__span_t *s = &seg->spans[first];
    s->run = (uint8_t)k;
    return s;
}

/* Returns a span carved for class `cls` (sample-only when `sampled`), or NULL when nothing
 * can be committed. */
static mem__span_t *span_new(mem__node_t *n, unsigned cls, bool sampled)
{
    mem__span_t *s;
    bool fresh = false;
    unsigned k = mem_sc_run[cls];
    if (k > 1) {
        s = run_take(n, k, &fresh);
        if (!s)
            return NULL;
    } else if (!list_empty(&n->dirty)) {
        /* The most recently freed span: warmest, and keeps old ones aging toward release. */
        s = n->dirty.head.next;
        list_remove(s);
        MEM_ASSERT(s->state == MEM_SPAN_DIRTY);
    } else {
        if (list_empty(&n->clean) && !segment_new(n))
            return NULL;
        if (mem__budget_charge(MEM_SPAN_SIZE) != 0)
            return NULL;
        s = n->clean.head.next;
        list_remove(s);
        MEM_ASSERT(s->state == MEM_SPAN_CLEAN);
        MEM_STAT_ADD(n->committed, MEM_SPAN_SIZE);
        MEM_STAT_ADD(n->free_in_segs, MEM_SPAN_SIZE);
        fresh = true;
    }
    if (k == 1)
        s->run = 1;
    s->fresh = fresh;
    uint32_t size = mem_sc_size[cls];
    size_t run_len = (size_t)k * MEM_SPAN_SIZE;
    s->state = MEM_SPAN_USED;
    s->cls = (uint8_t)cls;
    s->size = size;
    s->nobj = (uint16_t)(run_len / size);
    MEM_ASSERT(s->nobj >= 1);
    s->free_cnt = s->nobj;
    s->bump = 0;
    s->free_list = NULL;
    MEM_UNPOISON(span_base(s), run_len);
    MEM_POISON(span_base(s), run_len);
    s->sampled = sampled;
    uint8_t tag = (uint8_t)(sampled ? MEM_TAG_SAMPLED_BASE + cls : cls);
    for (unsigned i = 0; i < k; i++)
        __atomic_store_n(&span_seg(s)->hdr.tag[s->idx + i], tag, __ATOMIC_RELEASE);
    list_push(partial_of(n, s), s);
    return s;
}

/* A wholly free span (or run) forgets its class; each of its spans waits for decay alone. */
static void span_retire(mem__node_t *n, mem__span_t *s)
{
    mem__segment_t *seg = span_seg(s);
    unsigned k = s->run;
    MEM_ASSERT(k >= 1 && s->idx + k <= MEM_SPANS_PER_SEG);
    MEM_ASSERT(s->state == MEM_SPAN_USED);
    MEM_ASSERT(!s->resetting);
    uint64_t now = mem__now_ns();
    s->reset_cnt = 0;
    s->reset_done = 0;
    for (unsigned i = k; i-- > 0;) {
        mem__span_t *t = &seg->spans[s->idx + i];
        MEM_ASSERT(i == 0 || t->state == MEM_SPAN_TAIL);
        __atomic_store_n(&seg->hdr.tag[t->idx], (uint8_t)MEM_TAG_FREE, __ATOMIC_RELEASE);
        t->state = MEM_SPAN_DIRTY;
        t->sampled = 0;
        t->free_list = NULL;
        t->run = 0;
        t->head = 0;
        t->reset_mask = 0; /* a reset page is as good as a dirty one */
        t->idle_since_ns = now;
        list_push(&n->dirty, t);
    }
}

unsigned mem__span_take(mem__node_t *n, unsigned cls, void **out, unsigned k)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    MEM_ASSERT(k > 0);
    unsigned got = 0;
    uint32_t size = mem_sc_size[cls];
    pthread_mutex_lock(&n->lock);
    while (got < k) {
        mem__span_t *s =
            list_empty(&n->partial[cls]) ? span_new(n, cls, false) : n->partial[cls].head.next;
        if (!s)
            break;
        MEM_ASSERT(s->state == MEM_SPAN_USED && s->cls == cls);
        unsigned before = got;
        for (;;) {
            while (got < k && s->free_list) {
                void *o = s->free_list;
                MEM_UNPOISON(o, sizeof(void *));
                s->free_list = *(void **)o;
                MEM_POISON(o, sizeof(void *));
                if (MEM_UNLIKELY(s->reset_cnt))
                    pages_take_back(s, o);
                out[got++] = o;
            }
            /* Never-carved objects are not touched: their pages stay unfaulted until used. */
            while (got < k && s->bump < s->nobj) {
                void *o = span_base(s) + (size_t)s->bump * size;
                if (MEM_UNLIKELY(s->reset_cnt))
                    pages_take_back(s, o); /* before bump moves: `o` is not parked */
                s->bump++;
                out[got++] = o;
            }
            /* Only parked objects left: take back a page that holds some. */
            if (got == k || !s->reset_cnt || got - before == s->free_cnt ||
                !page_take_back_parked(s))
                break;
        }
        MEM_ASSERT(got == k || got - before == s->free_cnt);
        unsigned took = got - before;
        MEM_ASSERT(took <= s->free_cnt);
        s->free_cnt = (uint16_t)(s->free_cnt - took);
        if (s->free_cnt == 0)
            list_remove(s);
    }
    MEM_STAT_SUB(n->free_in_segs, (uint64_t)got * size);
    pthread_mutex_unlock(&n->lock);
    return got;
}

unsigned mem__span_take_fresh(mem__node_t *n, unsigned cls, void **out, unsigned k)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    MEM_ASSERT(k >= 1);
    unsigned got = 0;
    pthread_mutex_lock(&n->lock);
    /* Only the list head is looked at, or a new span when there is no partial one: this
     * must stay O(1) under the lock. */
    mem__span_t *s =
        list_empty(&n->partial[cls]) ? span_new(n, cls, false) : n->partial[cls].head.next;
    if (s && s->fresh) {
        MEM_ASSERT(s->state == MEM_SPAN_USED && s->cls == cls);
        while (got < k && s->bump < s->nobj) {
            void *o = span_base(s) + (size_t)s->bump * s->size;
            if (MEM_UNLIKELY(s->reset_cnt))
                pages_take_back(s, o); /* a reset page reads as zero: still fresh */
            s->bump++;
            out[got++] = o;
            s->free_cnt--;
        }
        if (s->free_cnt == 0)
            list_remove(s);
        MEM_STAT_SUB(n->free_in_segs, (uint64_t)got * s->size);
    }
    pthread_mutex_unlock(&n->lock);
    return got;
}

void *mem__span_take_sampled(mem__node_t *n, unsigned cls)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    void *p = NULL;
    pthread_mutex_lock(&n->lock);
    mem__span_t *s =
        list_empty(&n->sampled[cls]) ? span_new(n, cls, true) : n->sampled[cls].head.next;
    if (s) {
        MEM_ASSERT(s->state == MEM_SPAN_USED && s->cls == cls);
        MEM_ASSERT(s->sampled);
        if (s->free_list) {
            p = s->free_list;
            MEM_UNPOISON(p, sizeof(void *));
            s->free_list = *(void **)p;
        } else {
            MEM_ASSERT(s->bump < s->nobj);
            p = span_base(s) + (size_t)s->bump++ * s->size;
        }
        s->free_cnt--;
        if (s->free_cnt == 0)
            list_remove(s);
        MEM_STAT_SUB(n->free_in_segs, s->size);
    }
    pthread_mutex_unlock(&n->lock);
    return p;
}

void mem__span_give(mem__node_t *n, unsigned cls, void *const *objs, unsigned cnt)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    uint32_t size = mem_sc_size[cls];
    uint64_t now = mem__now_ns(); /* page reset waits for the decay delay after this */
    pthread_mutex_lock(&n->lock);
    for (unsigned i = 0; i < cnt; i++) {
        void *o = objs[i];
        mem__segment_t *seg = (mem__segment_t *)mem__seghdr_of(o);
        MEM_ASSERT(seg->hdr.node == n->id);
        mem__span_t *s = mem__span_of(seg, o);
        MEM_ASSERT(s->state == MEM_SPAN_USED);
        MEM_ASSERT(s->cls == cls);
        /* The link word stays unpoisoned: `o` may be a batch head a stale CK popper reads. */
        MEM_UNPOISON(o, sizeof(void *));
        *(void **)o = s->free_list;
        s->free_list = o;
        s->free_cnt++;
        MEM_ASSERT(s->free_cnt <= s->nobj);
        s->idle_since_ns = now;
        s->reset_done = 0;
        if (MEM_UNLIKELY(s->resetting))
            continue; /* mem__node_reset files it again (or retires it) when done */
        if (s->free_cnt == 1)
            list_push(partial_of(n, s), s);
        if (s->free_cnt == s->nobj) {
            /* Wholly free: the span forgets its class and waits for decay. */
            list_remove(s);
#if MEM_DEBUG >= 2
            for (unsigned w = 0; w < MEM_SPAN_OBJS_MAX / 64; w++)
                MEM_ASSERT_SLOW(seg->live_bits[s->idx][w] == 0);
#endif
            span_retire(n, s);
        }
    }
    MEM_STAT_ADD(n->free_in_segs, (uint64_t)cnt * size);
    pthread_mutex_unlock(&n->lock);
}

#define RELEASE_BATCH 16 /* spans detached per lock hold */

size_t mem__node_release(mem__node_t *n, uint64_t before_ns, size_t spans_max, size_t *spans)
{
    size_t released = 0, done = 0;
    mem__span_t *batch[RELEASE_BATCH];
    for (;;) {
        /* Detach a few eligible spans under the lock (RELEASING: on no list, and neither
         * carved nor merged into a run meanwhile), madvise them without it, then file them
         * as CLEAN under it again: no thread waits for the node lock behind a system call. */
        unsigned k = 0;
        pthread_mutex_lock(&n->lock);
        while (k < RELEASE_BATCH && done + k < spans_max && !list_empty(&n->dirty)) {
            mem__span_t *s = n->dirty.head.prev; /* oldest */
            MEM_ASSERT(s->state == MEM_SPAN_DIRTY);
            if (before_ns != UINT64_MAX && s->idle_since_ns > before_ns)
                break;
            list_remove(s);
            s->state = MEM_SPAN_RELEASING;
            batch[k++] = s;
        }
        pthread_mutex_unlock(&n->lock);
        if (k == 0)
            break;
        for (unsigned i = 0; i < k; i++) {
            char *b = span_base(batch[i]);
            MEM_UNPOISON(b, MEM_SPAN_SIZE);
            /* MADV_DONTNEED: the pages drop out of RSS now and read back as zero. */
            int rc = madvise(b, MEM_SPAN_SIZE, MADV_DONTNEED);
            MEM_ASSERT(rc == 0);
        }
        pthread_mutex_lock(&n->lock);
        for (unsigned i = 0; i < k; i++) {
            MEM_ASSERT(batch[i]->state == MEM_SPAN_RELEASING);
            batch[i]->state = MEM_SPAN_CLEAN;
            list_push(&n->clean, batch[i]);
        }
        MEM_STAT_SUB(n->committed, (uint64_t)k * MEM_SPAN_SIZE);
        MEM_STAT_SUB(n->free_in_segs, (uint64_t)k * MEM_SPAN_SIZE);
        pthread_mutex_unlock(&n->lock);
        mem__budget_uncharge((size_t)k * MEM_SPAN_SIZE);
        released += (size_t)k * MEM_SPAN_SIZE;
        done += k;
        if (k < RELEASE_BATCH)
            break;
    }
    if (released)
        __atomic_fetch_add(&mem__budget.released_total, released, __ATOMIC_RELAXED);
    if (spans)
        *spans = done;
    return released;
}

void mem__node_unmap_all(mem__node_t *n)
{
    pthread_mutex_lock(&n->lock);
    while (n->segs) {
        mem__segment_t *seg = n->segs;
        n->segs = seg->next;
        mem__registry_set(seg, false);
        MEM_UNPOISON(seg, MEM_SEG_SIZE);
        munmap(seg, MEM_SEG_SIZE);
    }
    mem__node_lists_init(n);
    pthread_mutex_unlock(&n->lock);
}
