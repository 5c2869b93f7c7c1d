/*
 * mem/segment.h: segments (4 MiB aligned mappings cut into 64 KiB spans), the spans'
 * per-class object accounting, and dedicated mappings for large objects.
 *
 * A segment belongs to one NUMA node for its whole life and stays mapped until mem_fini()
 * (type-stable: lock-free depot readers may touch any object in it). Its header sits in span
 * 0 and starts with a tag per span, so free(p) finds the size class with
 * `tag[(p >> 16) & 63]` of `p & ~(4 MiB - 1)`: no per-object header, no global page map.
 * A large object's mapping is also 4 MiB aligned and starts with the same tag array (all
 * MEM_TAG_LARGE), so the same two loads classify it.
 * Spans: CLEAN (never committed or released with madvise), DIRTY (committed, wholly free,
 * waiting for decay) or USED (carved for one class; on the node's partial list while it has
 * free objects). A class above 32 KiB is carved from a run of adjacent spans: the first is
 * USED and holds the run's state, the others are TAIL and name the first (`head`); every span
 * of the run carries the class tag, so free() classifies any of its objects with the same
 * two loads. A wholly free run falls apart into single DIRTY spans. All span state changes
 * happen under the owning node's lock (slow path).
 */
#ifndef MEM_SEGMENT_H
#define MEM_SEGMENT_H

#include "mem/base.h"

#include <stdbool.h>

#define MEM_SEG_SHIFT     22
#define MEM_SEG_SIZE      ((size_t)1 << MEM_SEG_SHIFT)
#define MEM_SEG_MASK      (MEM_SEG_SIZE - 1)
#define MEM_SPAN_SHIFT    16
#define MEM_SPAN_SIZE     ((size_t)1 << MEM_SPAN_SHIFT)
#define MEM_SPANS_PER_SEG ((unsigned)(MEM_SEG_SIZE / MEM_SPAN_SIZE))
#define MEM_SPAN_OBJS_MAX ((unsigned)(MEM_SPAN_SIZE / 16))

MEM_STATIC_ASSERT(MEM_IS_POW2(MEM_SEG_SIZE), "segment size is a power of two");
MEM_STATIC_ASSERT(MEM_SPANS_PER_SEG == 64, "64 spans per segment");

/* A span that serves only heap-profile samples of class c is tagged 0x80 + c, so free()'s
 * fast path (capacity 0 for such tags) sends its objects to the slow path, which forgets the
 * sample: unsampled objects pay nothing and a sample costs no mapping. */
#define MEM_TAG_SAMPLED_BASE  0x80u
#define MEM_TAG_IS_SAMPLED(t) ((t) >= MEM_TAG_SAMPLED_BASE && (t) < MEM_TAG_SAMPLED_BASE + 64u)

/* Span tags above every class id. */
#define MEM_TAG_FREE  0xF0u /* span not carved: a pointer into it was never handed out */
#define MEM_TAG_META  0xF1u /* the segment header span */
#define MEM_TAG_LARGE 0xF2u /* a large object's mapping */

#define MEM_SEG_MAGIC   0x7365676d656d5731ull /* "1Wmemges" */
#define MEM_LARGE_MAGIC 0x6567726c6d655731ull

enum {
    MEM_SPAN_CLEAN = 0,
    MEM_SPAN_DIRTY = 1,
    MEM_SPAN_USED = 2,
    MEM_SPAN_HDR = 3,
    MEM_SPAN_TAIL = 4,      /* a later span of a USED run */
    MEM_SPAN_RELEASING = 5, /* off every list while decay madvise()s it without the lock */
};

/* The prefix every 4 MiB-aligned mapping of mem/ starts with. */
typedef struct mem__seghdr_s {
    uint8_t tag[MEM_SPANS_PER_SEG]; /* class id or MEM_TAG_*, per span */
    uint32_t node;                  /* owning node (UINT32_MAX for large mappings) */
    uint32_t pad;
    uint64_t magic;
} mem__seghdr_t;

typedef struct mem__span_s {
    struct mem__span_s *next, *prev; /* node list: partial[cls], dirty or clean */
    void *free_list;                 /* objects returned to this span, linked at offset 0 */
    uint64_t idle_since_ns;          /* when it became DIRTY; USED: when it last got a free */
    uint32_t size;                   /* object size (USED) */
    uint16_t nobj;                   /* objects in the span (USED) */
    uint16_t free_cnt;               /* objects held by the span: free_list + not yet carved */
    uint16_t bump;                   /* next never-carved object */
    uint8_t cls;
    uint8_t state;
    uint8_t idx;     /* index in the segment */
    uint8_t on_list; /* 1 while linked on a node list */
    uint8_t fresh;   /* carved from a CLEAN span: never-carved objects read as zero */
    uint8_t sampled; /* serves heap-profile samples only (tag MEM_TAG_SAMPLED_BASE + cls) */
    uint8_t run;     /* spans in the run this span heads (USED), else 0 */
    uint8_t head;    /* index of the run's first span (TAIL) */
    /* Page reset (USED runs; see "page reset" in segment.c). */
    uint16_t reset_mask; /* this span's pages given back to the OS while its run is USED */
    uint16_t reset_cnt;  /* pages given back in the whole run (run head) */
    uint8_t resetting;   /* off every list while its pages are madvise()d (run head) */
    uint8_t reset_done;  /* no free page left to give back since the last free (run head) */
} mem__span_t;

MEM_STATIC_ASSERT(sizeof(mem__span_t) <= 56, "span state stays at 56 bytes");

typedef struct mem__segment_s {
    mem__seghdr_t hdr;           /* must stay first */
    struct mem__segment_s *next; /* the node's segment list (borrows: node owns it) */
    size_t meta_bytes;           /* committed header bytes, page-rounded */
    mem__span_t spans[MEM_SPANS_PER_SEG];
#if MEM_DEBUG >= 1
    /* One bit per possible object: 1 = handed out (live). Double frees find 0. */
    uint64_t live_bits[MEM_SPANS_PER_SEG][MEM_SPAN_OBJS_MAX / 64];
#endif
} mem__segment_t;

MEM_STATIC_ASSERT(offsetof(mem__segment_t, hdr) == 0, "tags first");
MEM_STATIC_ASSERT(sizeof(mem__segment_t) < MEM_SPAN_SIZE, "the header fits in span 0");

typedef struct mem__large_s {
    mem__seghdr_t hdr; /* must stay first */
    size_t map_len;    /* whole mapping, charged to the budget */
    size_t off;        /* user pointer = base + off */
    size_t user_len;   /* requested length */
    uint32_t node;
    uint8_t sampled; /* heap profiler holds a sample for it */
} mem__large_t;

struct mem__node_s;

MEM_INLINE mem__seghdr_t *mem__seghdr_of(const void *p)
{
    return (mem__seghdr_t *)((uintptr_t)p & ~(uintptr_t)MEM_SEG_MASK);
}
MEM_INLINE unsigned mem__span_idx(const void *p)
{
    return (unsigned)(((uintptr_t)p >> MEM_SPAN_SHIFT) & (MEM_SPANS_PER_SEG - 1));
}
/* The span that holds the state of the object at `p` (the run's first span for a run). */
MEM_INLINE mem__span_t *mem__span_of(mem__segment_t *seg, const void *p)
{
    mem__span_t *s = &seg->spans[mem__span_idx(p)];
    return s->state == MEM_SPAN_TAIL ? &seg->spans[s->head] : s;
}
/* The first byte of the span (or run) `s`. */
MEM_INLINE char *mem__span_base(const mem__span_t *s)
{
    return (char *)mem__seghdr_of(s) + ((size_t)s->idx << MEM_SPAN_SHIFT);
}

/* Takes up to `k` free objects of class `cls` from the node's spans (carving a new span,
 * committing a clean one or mapping a segment as needed) into `out`. Returns how many (0 =
 * budget exhausted or mapping failed). Thread: any; takes the node lock. Alloc: system. */
unsigned mem__span_take(struct mem__node_s *n, unsigned cls, void **out, unsigned k);

/* Takes up to `k` never-carved objects of class `cls` from a span that was clean when carved,
 * so they are known to be zero and untouched (calloc of large classes). Returns how many (0
 * when the node has none at hand; the caller then clears an ordinary object). Thread: any. */
unsigned mem__span_take_fresh(struct mem__node_s *n, unsigned cls, void **out, unsigned k);

/* Takes one object of class `cls` from the node's sample-only spans (for a sampled
 * allocation). Returns NULL when nothing can be committed. Thread: any; node lock. */
void *mem__span_take_sampled(struct mem__node_s *n, unsigned cls);

/* Gives `cnt` objects of class `cls` (all homed on node `n`) back to their spans; wholly
 * free spans become DIRTY. Thread: any; takes the node lock. */
void mem__span_give(struct mem__node_s *n, unsigned cls, void *const *objs, unsigned cnt);

/* madvise()s at most `spans_max` DIRTY spans idle since before `before_ns` (UINT64_MAX: all)
 * and uncharges them; `*spans` (may be NULL) gets how many. The madvise calls are made
 * without the node lock. Returns the bytes released. Thread: any; takes the node lock. */
size_t mem__node_release(struct mem__node_s *n, uint64_t before_ns, size_t spans_max,
                         size_t *spans);

/* Page reset: gives back to the OS the whole pages inside partly used spans of class `cls`
 * that hold only free objects (or the span's unusable tail), in spans that have had no free
 * since before `before_ns` (UINT64_MAX: any). At most `spans_max` spans are examined; `*spans`
 * (may be NULL) gets how many. The objects stay free in their span (counted in free_in_segs
 * and committed, as a released span is not): a page reads back as zero when an allocation
 * next touches it. The madvise calls are made without the node lock. Returns the bytes
 * given back. Thread: any; takes the node lock. */
size_t mem__node_reset(struct mem__node_s *n, unsigned cls, uint64_t before_ns, size_t spans_max,
                       size_t *spans);

/* Initialises the node's span lists (mem_init, mem_fini). */
void mem__node_lists_init(struct mem__node_s *n);

/* Unmaps every segment of the node (mem_fini only). */
void mem__node_unmap_all(struct mem__node_s *n);

/* Maps `len` bytes aligned to MEM_SEG_SIZE (segments and large objects), fresh and zero.
 * NULL on failure (or an injected fault). Thread: any. Alloc: system. */
void *mem__map_aligned(size_t len);

/* mem/large.c: maps a dedicated, zeroed large object of `len` bytes aligned to `align` (<= 1 MiB)
 * homed on `node`. Returns the user pointer or NULL. Thread: any. Alloc: system. */
void *mem__large_alloc(size_t len, size_t align, unsigned node, bool sampled);
/* Unmaps a large object given its header and user pointer. */
void mem__large_free(mem__large_t *l, void *p);

/* mem/registry.c: debug registry of mem/'s 4 MiB-aligned mappings (MEM_DEBUG>=1, else no-ops/true).
 */
bool mem__registry_has(const void *base);
void mem__registry_set(const void *base, bool on);
/* Forgets which bitmap pages were charged as metadata (mem_fini). */
void mem__registry_meta_forget(void);

#endif /* MEM_SEGMENT_H */
