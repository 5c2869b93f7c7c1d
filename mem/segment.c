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

static void list_push(mem__spanlist_t *l, mem_span_t *s)
{
    MEM_ASSERT(!s->on_list);
    s->next = l->head.next;
    s->prev = &l->head;
    l->head.next->prev = s;
    l->head.next = s;
    s->on_list = 1;
}

static void list_remove(mem_span_t *s)
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

static mem_segment_t *span_seg(const mem_span_t *s)
{
    return (mem_segment_t *)mem__seghdr_of(s);
}

static mem__spanlist_t *partial_of(mem__node_t *n, const mem_span_t *s)
{
    return s->sampled ? &n->sampled[s->cls] : &n->partial[s->cls];
}

static char *span_base(const mem_span_t *s)
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

static mem_segment_t *segment_new(mem__node_t *n)
{
    size_t meta = MEM_ALIGN_UP(sizeof(mem_segment_t), mem__g.page);
    if (mem__budget_charge(meta) != 0)
        return NULL;
    mem_segment_t *seg = mem__map_aligned(MEM_SEG_SIZE);
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
        mem_span_t *s = &seg->spans[i];
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
    __atomic_fetch_add(&mem__g.mapped, MEM_SEG_SIZE, __ATOMIC_RELAXED);
    return seg;
}

/* ---- spans ------------------------------------------------------------------------- */

/* Finds `k` adjacent spans, each CLEAN or DIRTY, in one of the node's segments (mapping a
 * new segment when none has them), takes them off their lists and commits the clean ones.
 * Returns the first, or NULL when nothing can be mapped or committed. `*fresh` says whether
 * every span was clean. Runs are rare next to single spans (classes above 32 KiB, each run
 * holding several objects), so a first-fit scan of the segments under the lock is enough. */
static mem_span_t *run_take(mem__node_t *n, unsigned k, bool *fresh)
{
    MEM_ASSERT(k >= 2 && k <= MEM_SC_RUN_MAX);
    mem_segment_t *seg = n->segs;
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
        mem_span_t *t = &seg->spans[i];
        MEM_ASSERT(t->state == MEM_SPAN_CLEAN || t->state == MEM_SPAN_DIRTY);
        list_remove(t);
        t->state = MEM_SPAN_TAIL;
        t->head = (uint8_t)first;
        t->run = 0;
    }
    MEM_STAT_ADD(n->committed, (uint64_t)clean * MEM_SPAN_SIZE);
    MEM_STAT_ADD(n->free_in_segs, (uint64_t)clean * MEM_SPAN_SIZE);
    *fresh = clean == k;
    mem_span_t *s = &seg->spans[first];
    s->run = (uint8_t)k;
    return s;
}

/* Returns a span carved for class `cls` (sample-only when `sampled`), or NULL when nothing
 * can be committed. */
static mem_span_t *span_new(mem__node_t *n, unsigned cls, bool sampled)
{
    mem_span_t *s;
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
static void span_retire(mem__node_t *n, mem_span_t *s)
{
    mem_segment_t *seg = span_seg(s);
    unsigned k = s->run;
    MEM_ASSERT(k >= 1 && s->idx + k <= MEM_SPANS_PER_SEG);
    MEM_ASSERT(s->state == MEM_SPAN_USED);
    uint64_t now = mem__now_ns();
    for (unsigned i = k; i-- > 0;) {
        mem_span_t *t = &seg->spans[s->idx + i];
        MEM_ASSERT(i == 0 || t->state == MEM_SPAN_TAIL);
        __atomic_store_n(&seg->hdr.tag[t->idx], (uint8_t)MEM_TAG_FREE, __ATOMIC_RELEASE);
        t->state = MEM_SPAN_DIRTY;
        t->sampled = 0;
        t->free_list = NULL;
        t->run = 0;
        t->head = 0;
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
        mem_span_t *s =
            list_empty(&n->partial[cls]) ? span_new(n, cls, false) : n->partial[cls].head.next;
        if (!s)
            break;
        MEM_ASSERT(s->state == MEM_SPAN_USED && s->cls == cls);
        unsigned before = got;
        while (got < k && s->free_list) {
            void *o = s->free_list;
            MEM_UNPOISON(o, sizeof(void *));
            s->free_list = *(void **)o;
            MEM_POISON(o, sizeof(void *));
            out[got++] = o;
        }
        /* Never-carved objects are not touched: their pages stay unfaulted until used. */
        while (got < k && s->bump < s->nobj)
            out[got++] = span_base(s) + (size_t)s->bump++ * size;
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
    mem_span_t *s =
        list_empty(&n->partial[cls]) ? span_new(n, cls, false) : n->partial[cls].head.next;
    if (s && s->fresh) {
        MEM_ASSERT(s->state == MEM_SPAN_USED && s->cls == cls);
        while (got < k && s->bump < s->nobj) {
            out[got++] = span_base(s) + (size_t)s->bump++ * s->size;
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
    mem_span_t *s =
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
    pthread_mutex_lock(&n->lock);
    for (unsigned i = 0; i < cnt; i++) {
        void *o = objs[i];
        mem_segment_t *seg = (mem_segment_t *)mem__seghdr_of(o);
        MEM_ASSERT(seg->hdr.node == n->id);
        mem_span_t *s = mem__span_of(seg, o);
        MEM_ASSERT(s->state == MEM_SPAN_USED);
        MEM_ASSERT(s->cls == cls);
        /* The link word stays unpoisoned: `o` may be a batch head a stale CK popper reads. */
        MEM_UNPOISON(o, sizeof(void *));
        *(void **)o = s->free_list;
        s->free_list = o;
        s->free_cnt++;
        MEM_ASSERT(s->free_cnt <= s->nobj);
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
    mem_span_t *batch[RELEASE_BATCH];
    for (;;) {
        /* Detach a few eligible spans under the lock (RELEASING: on no list, and neither
         * carved nor merged into a run meanwhile), madvise them without it, then file them
         * as CLEAN under it again: no thread waits for the node lock behind a system call. */
        unsigned k = 0;
        pthread_mutex_lock(&n->lock);
        while (k < RELEASE_BATCH && done + k < spans_max && !list_empty(&n->dirty)) {
            mem_span_t *s = n->dirty.head.prev; /* oldest */
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
        __atomic_fetch_add(&mem__g.released_total, released, __ATOMIC_RELAXED);
    if (spans)
        *spans = done;
    return released;
}

void mem__node_unmap_all(mem__node_t *n)
{
    pthread_mutex_lock(&n->lock);
    while (n->segs) {
        mem_segment_t *seg = n->segs;
        n->segs = seg->next;
        mem__registry_set(seg, false);
        MEM_UNPOISON(seg, MEM_SEG_SIZE);
        munmap(seg, MEM_SEG_SIZE);
    }
    mem__node_lists_init(n);
    pthread_mutex_unlock(&n->lock);
}
