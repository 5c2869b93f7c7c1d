/*
 * mem/malloc.c: the malloc-compatible facade over the thread caches.
 *
 * Debug checks (MEM_DEBUG>=1): before touching a pointer's would-be header, free() checks a
 * registry of mem/'s 4 MiB-aligned mappings (foreign pointers die with a message instead of a
 * segfault); a per-span bitmap with one "live" bit per object catches double frees and
 * pointers into the middle of an object. Both abort with "weir: mem_free(...): ...".
 */
#include "mem/base.h"
#include "mem/malloc.h"
#include "mem/heapprof.h"
#include "mem/internal.h"
#include "mem/tcache.h"

#include <string.h>

#if MEM_DEBUG >= 1
/* Returns the bit and word for small object `p`, dying on a pointer that is not one. */
static uint64_t *live_word(const void *p, uint64_t *bit, const char *who)
{
    mem__seghdr_t *h = mem__seghdr_of(p);
    if (!mem__registry_has(h))
        mem__die("%s(%p): pointer not allocated by mem/ (foreign or already freed)", who, p);
    unsigned tag = h->tag[mem__span_idx(p)];
    if (tag == MEM_TAG_LARGE)
        return NULL;
    if (MEM_TAG_IS_SAMPLED(tag))
        tag -= MEM_TAG_SAMPLED_BASE;
    if (tag >= MEM_SC_COUNT || h->magic != MEM_SEG_MAGIC)
        mem__die("%s(%p): pointer not allocated by mem/ (free span or header)", who, p);
    mem__segment_t *seg = (mem__segment_t *)h;
    /* A run's objects are numbered from its first span, whose row holds their bits. */
    const mem__span_t *s = mem__span_of(seg, p);
    size_t off = (size_t)((const char *)p - mem__span_base(s));
    size_t i = off / mem_sc_size[tag];
    if (off % mem_sc_size[tag] != 0)
        mem__die("%s(%p): pointer into the middle of a %u-byte object", who, p, mem_sc_size[tag]);
    *bit = (uint64_t)1 << (i % 64);
    return &seg->live_bits[s->idx][i / 64];
}

static void debug_on_alloc(void *p)
{
    uint64_t bit;
    uint64_t *w = live_word(p, &bit, "mem_malloc");
    if (!w)
        return;
    uint64_t old = __atomic_fetch_or(w, bit, __ATOMIC_RELAXED);
    MEM_ASSERT((old & bit) == 0);
}

static void debug_on_free(void *p)
{
    uint64_t bit;
    uint64_t *w = live_word(p, &bit, "mem_free");
    if (!w)
        return;
    uint64_t old = __atomic_fetch_and(w, ~bit, __ATOMIC_RELAXED);
    if (!(old & bit))
        mem__die("mem_free(%p): double free (or never allocated)", p);
}
#define DEBUG_ALLOC(p)                                                                             \
    do {                                                                                           \
        if (p)                                                                                     \
            debug_on_alloc(p);                                                                     \
    } while (0)
#define DEBUG_FREE(p) debug_on_free(p)
#else
#define DEBUG_ALLOC(p) ((void)(p))
#define DEBUG_FREE(p)  ((void)(p))
#endif

MEM_ALLOC_TEXT void *(mem_malloc)(size_t len)
{
    void *p = mem__tcache_alloc(mem__tc_self, len);
    DEBUG_ALLOC(p);
    return p;
}

MEM_ALLOC_TEXT void *mem__malloc_unsampled(size_t len)
{
    unsigned c = mem_sc_of(len);
    void *p;
    if (MEM_LIKELY(c < MEM_SC_COUNT)) {
        p = mem__tcache_alloc_unsampled(mem__tc_self, c);
    } else {
        /* Dedicated mappings are rare here (region blocks past 256 KiB): take the ordinary
         * path and drop the sample if it drew one. */
        p = mem__tcache_alloc_slow(mem__tc_self, len);
        if (p)
            mem__heapprof_forget(p);
    }
    DEBUG_ALLOC(p);
    return p;
}

void(mem_free)(void *p)
{
    if (MEM_UNLIKELY(p == NULL))
        return;
    DEBUG_FREE(p);
    mem__tcache_free(mem__tc_self, p);
}

size_t mem_usable_size(const void *p)
{
    if (!p)
        return 0;
#if MEM_DEBUG >= 1
    if (!mem__registry_has(mem__seghdr_of(p)))
        mem__die("mem_usable_size(%p): pointer not allocated by mem/", p);
#endif
    mem__seghdr_t *h = mem__seghdr_of(p);
    unsigned tag = h->tag[mem__span_idx(p)];
    if (MEM_TAG_IS_SAMPLED(tag))
        tag -= MEM_TAG_SAMPLED_BASE;
    if (MEM_LIKELY(tag < MEM_SC_COUNT))
        return mem_sc_size[tag];
    if (tag == MEM_TAG_LARGE) {
        mem__large_t *l = (mem__large_t *)h;
        return l->map_len - (size_t)((const char *)p - (const char *)l);
    }
    mem__die("mem_usable_size(%p): pointer not allocated by mem/", p);
}

#define CALLOC_FRESH_MIN 8192

MEM_ALLOC_TEXT void *mem_calloc(size_t cnt, size_t len)
{
    size_t n;
    if (__builtin_mul_overflow(cnt, len, &n))
        return NULL;
    /* From 8 KiB on, clearing costs more than a locked O(1) look for an object in a span
     * that was clean when carved: such objects are zero and their pages untouched, so an
     * idle buffer (nghttp2's 16 KiB frame buffer) costs no RSS until it is written. */
    /* An allocation that the sampling countdown makes a sample takes mem_malloc's path below,
     * which records it (its object then comes from a sample-only span and is cleared). */
    /* Warm objects in the cache come first (they are resident anyway; clearing one takes no
     * lock); fresh ones only when the cache would otherwise refill. */
    if (n >= CALLOC_FRESH_MIN && n <= MEM_SC_MAX &&
        MEM_STAT_LOAD(mem__tc_self->cnt[mem_sc_of(n)]) == 0 && !mem__tcache_sample_due(n)) {
        void *f = mem__tcache_alloc_fresh(mem_sc_of(n));
        if (f) {
            DEBUG_ALLOC(f);
            return f;
        }
    }
    void *p = mem_malloc(n);
    if (!p)
        return NULL;
    /* Large objects are fresh anonymous mappings, already zero: clearing them would only
     * fault in pages nobody may ever write. */
    if (mem__seghdr_of(p)->tag[mem__span_idx(p)] != MEM_TAG_LARGE)
        memset(p, 0, n);
    return p;
}

MEM_ALLOC_TEXT void *mem_realloc(void *p, size_t len)
{
    if (!p)
        return mem_malloc(len);
    if (len == 0) {
        mem_free(p);
        return NULL;
    }
    size_t old = mem_usable_size(p);
    unsigned tag = mem__seghdr_of(p)->tag[mem__span_idx(p)];
    if (MEM_TAG_IS_SAMPLED(tag))
        tag -= MEM_TAG_SAMPLED_BASE;
    /* Keep the block when the new size maps to the same class, or for a large block when it
     * still fills more than half of it. */
    if (tag < MEM_SC_COUNT ? mem_sc_of(len) == tag : (len <= old && len > old / 2))
        return p;
    void *q = mem_malloc(len);
    if (!q)
        return NULL; /* p untouched, as realloc(3) requires */
    memcpy(q, p, MEM_MIN(old, len));
    mem_free(p);
    return q;
}

MEM_ALLOC_TEXT void *mem_aligned_alloc(size_t align, size_t len)
{
    if (!MEM_IS_POW2(align))
        return NULL;
    if (align <= MEM_SC_ALIGN)
        return mem_malloc(len);
    if (len <= MEM_SC_MAX && align <= MEM_SPAN_SIZE) {
        /* Objects sit at span_base + i * size and spans are 64 KiB aligned, so a class whose
         * size is a multiple of `align` gives aligned objects. */
        for (unsigned c = mem_sc_of(len); c < MEM_SC_COUNT; c++) {
            if (mem_sc_size[c] % align == 0) {
                /* Sample-only spans hold the same classes at the same offsets, so a sample
                 * is just as aligned. */
                void *p = NULL;
                if (mem__tcache_sample_take(len))
                    p = mem__tcache_alloc_sample(c, len);
                if (!p)
                    p = mem__tcache_alloc_cls(c);
                DEBUG_ALLOC(p);
                return p;
            }
        }
    }
    if (mem__ensure_init() != 0)
        return NULL;
    unsigned node = mem__tc_self->reg_idx >= 0 ? mem__tc_self->node : 0;
    uint64_t refused = mem__refused_self;
    bool sampled = mem__tcache_sample_take(len);
    void *p = mem__large_alloc(len, align, node, sampled);
    if (!p && mem__refused_self != refused && mem__tc_self->reg_idx >= 0) {
        (void)mem__release_cached(mem__tc_self);
        p = mem__large_alloc(len, align, node, sampled);
    }
    if (!p) {
        __atomic_fetch_add(&mem__budget.alloc_failed, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    if (sampled)
        (void)mem__heapprof_record(p, len, NULL, MEM_HEAPPROF_OWNER_TCACHE);
    return p;
}

/* ---- exempt entry points ------------------------------------------------------------ */

/* The bytes an exempt object holds, counted when it is handed out and when it is freed. */
static void exempt_add(const void *p, int64_t sign)
{
    if (!p)
        return;
    size_t u = mem_usable_size(p);
    if (sign > 0)
        __atomic_fetch_add(&mem__budget.exempt_live, u, __ATOMIC_RELAXED);
    else
        __atomic_fetch_sub(&mem__budget.exempt_live, u, __ATOMIC_RELAXED);
}

MEM_ALLOC_TEXT void *mem_malloc_exempt(size_t len)
{
    mem__exempt_depth++;
    void *p = mem_malloc(len);
    mem__exempt_depth--;
    exempt_add(p, 1);
    return p;
}

MEM_ALLOC_TEXT void *mem_calloc_exempt(size_t cnt, size_t len)
{
    mem__exempt_depth++;
    void *p = mem_calloc(cnt, len);
    mem__exempt_depth--;
    exempt_add(p, 1);
    return p;
}

MEM_ALLOC_TEXT void *mem_realloc_exempt(void *p, size_t len)
{
    size_t old = p ? mem_usable_size(p) : 0;
    mem__exempt_depth++;
    void *q = mem_realloc(p, len);
    mem__exempt_depth--;
    if (q || len == 0) {
        /* realloc(p, 0) freed p; a successful one replaced it by q. */
        __atomic_fetch_sub(&mem__budget.exempt_live, old, __ATOMIC_RELAXED);
        exempt_add(q, 1);
    }
    return q;
}

void mem_free_exempt(void *p)
{
    exempt_add(p, -1);
    mem_free(p);
}

MEM_ALLOC_TEXT char *mem_strndup(const char *s, size_t len)
{
    MEM_ASSERT(s != NULL);
    size_t n = strnlen(s, len);
    char *d = mem_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

MEM_ALLOC_TEXT char *mem_strdup(const char *s)
{
    MEM_ASSERT(s != NULL);
    return mem_strndup(s, strlen(s));
}
