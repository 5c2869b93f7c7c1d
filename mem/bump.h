/*
 * mem/bump.h: the bump window every region and sub-arena starts with, and the inline fast
 * path that mem_region_alloc() and mem_subregion_alloc() share.
 *
 * `cur`..`end` is the part of the arena's current chunk that the inline path may hand out:
 * the chunk's unused rest, cut short at the heap profiler's next sample point. So the fast
 * path is a compare and a store, with no sampling arithmetic: the allocation that crosses the
 * sample point misses the window and the slow path samples it. Each arena draws its own
 * exponential distance to the next sample (per byte allocated in it); by the memorylessness of
 * the exponential, the thread's allocations are still sampled as one Poisson process at the
 * configured rate. Everything else (a new chunk, a block of its own for a large request, a
 * sample, a cap, OOM) is mem__bump_alloc_slow() in mem/region.c. Only mem/region.c and
 * mem/subregion.c write these fields, and only the arena's owner thread calls any of this.
 */
#ifndef MEM_BUMP_H
#define MEM_BUMP_H

#include "mem/base.h"

#include <string.h>

typedef struct mem__bump_s {
    char *cur; /* next free byte, 16-aligned */
    char *end; /* end of what the inline path may take: chunk end or sample point */
} mem__bump_t;

/* Alignment of every arena allocation: what malloc guarantees on x86-64. */
#define MEM_BUMP_ALIGN 16u
/* Requests above this take a block of their own from the facade (exact size class), so a
 * 16 KiB buffer neither wastes most of a chunk nor lands in the next class up. */
#define MEM_BUMP_BIG 1024u

/* Everything the inline path does not do. Returns NULL past a cap or on OOM. */
void *mem__bump_alloc_slow(mem__bump_t *b, size_t len);

/* Bump-allocates `len` bytes from the arena whose first member is `b`. */
MEM_INLINE void *mem__bump_alloc(mem__bump_t *b, size_t len)
{
    MEM_ASSERT_HOT(b != NULL);
    char *p = b->cur;
    size_t need = (len + (MEM_BUMP_ALIGN - 1)) & ~(size_t)(MEM_BUMP_ALIGN - 1);
    /* len <= MEM_BUMP_BIG also rules out the wrap-around of a huge len. */
    if (MEM_UNLIKELY(len > MEM_BUMP_BIG || need > (size_t)(b->end - p)))
        return mem__bump_alloc_slow(b, len);
    b->cur = p + need;
    MEM_UNPOISON(p, len);
    return p;
}

/* mem__bump_alloc, then zeroed. Inline, like the allocation: a call would cost more than
 * the bump itself (3 sub-arena callocs a request). */
MEM_INLINE void *mem__bump_calloc(mem__bump_t *b, size_t len)
{
    void *p = mem__bump_alloc(b, len);
    if (p)
        memset(p, 0, len);
    return p;
}

/* mem__bump_strndup's path for a copy that does not go in a chunk (above MEM_BUMP_BIG, or an
 * absurd length), and the whole copy in unoptimised builds: out of line. */
char *mem__bump_strndup_big(mem__bump_t *b, const char *s, size_t len);

/* Copies `len` bytes of `s` into the arena and NUL-terminates. Inline: header copies (about
 * 6 a request) are the arena's most frequent caller. */
MEM_INLINE char *mem__bump_strndup(mem__bump_t *b, const char *s, size_t len)
{
    MEM_ASSERT_HOT(s != NULL || len == 0);
#ifndef __OPTIMIZE__
    /* Without optimisation the branch below stays in the code even for a constant absurd
     * length, and GCC flags the memcpy it would reach (-Wstringop-overflow). */
    return mem__bump_strndup_big(b, s, len);
#endif
    if (MEM_UNLIKELY(len >= MEM_BUMP_BIG))
        return mem__bump_strndup_big(b, s, len);
    char *p = mem__bump_alloc(b, len + 1);
    if (MEM_UNLIKELY(p == NULL))
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

#endif /* MEM_BUMP_H */
