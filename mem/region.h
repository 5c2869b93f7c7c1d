/*
 * mem/region.h: the per-connection arena: bump allocation from chunks drawn from the thread
 * cache, a byte cap, tracked large allocations and cleanup callbacks, all freed in one step.
 *
 * A region is owned by one thread (the one that created it); only that thread allocates from
 * or frees it. Sub-arenas (mem/subregion.h) are carved from it for each stream.
 * Freed region memory is poisoned under ASan.
 */
#ifndef MEM_REGION_H
#define MEM_REGION_H

#include "mem/base.h"
#include "mem/bump.h"

#include <stdbool.h>

typedef struct mem_region_s mem_region_t;
typedef void (*mem_cleanup_fn)(void *arg);

/* Live-region attribution, filled by mem_region_foreach_local(). */
typedef struct mem_region_info_s {
    const mem_region_t *region;
    const char *label;     /* borrows: the region's label (valid during the callback) */
    uint64_t id;           /* unique per process, never reused */
    size_t bytes;          /* bytes held: chunks + large allocations, sub-arenas included */
    size_t bytes_used;     /* bytes handed out */
    size_t cap_bytes;      /* 0 = no cap */
    size_t subregions_cnt; /* live sub-arenas */
    uint64_t created_ns;   /* CLOCK_MONOTONIC */
} mem_region_info_t;

/* Creates a region with a byte cap (`cap_bytes` 0 = none). Returns NULL on OOM.
 * Ownership: gives (release with mem_region_free). Thread: owner. Alloc: tcache. */
MEM_MUST_CHECK mem_region_t *mem_region_new(size_t cap_bytes);

/* Creates a region as mem_region_new does, whose first chunk holds at least `first_len` bytes
 * (its struct included; the chunk is that size class's whole object, the rest bump room) and
 * `ext_len` zeroed bytes right after the region's struct, aligned to 16 (mem_region_ext): a
 * connection keeps its own struct and what it always allocates in one object of the thread
 * cache instead of three, so what it frees while idle does not sit between live objects of
 * the same size class and pin their pages. Returns NULL on OOM or when the cap cannot hold the
 * first chunk. Ownership: gives (mem_region_free). Thread: owner. Alloc: tcache. */
MEM_MUST_CHECK mem_region_t *mem_region_new_ext(size_t cap_bytes, size_t first_len, size_t ext_len);

/* The `ext_len` bytes of mem_region_new_ext, which live and die with the region. Getter. */
void *mem_region_ext(mem_region_t *r);

/* Runs the cleanup callbacks (last added first), frees sub-arenas still open, large
 * allocations and chunks, and poisons them. NULL is ignored. Thread: owner. */
void mem_region_free(mem_region_t *r);

/* Bump-allocates `len` bytes aligned to 16. Returns NULL past the cap or on OOM. Inline: a
 * region starts with its bump window (mem/bump.h).
 * Ownership: region. Thread: owner. Alloc: region. */
MEM_MUST_CHECK MEM_INLINE void *mem_region_alloc(mem_region_t *r, size_t len)
{
    return mem__bump_alloc((mem__bump_t *)(void *)r, len);
}
/* mem_region_alloc, then zeroed. */
MEM_MUST_CHECK MEM_INLINE void *mem_region_calloc(mem_region_t *r, size_t len)
{
    return mem__bump_calloc((mem__bump_t *)(void *)r, len);
}
/* Copies `len` bytes of `s` and NUL-terminates. */
MEM_MUST_CHECK MEM_INLINE char *mem_region_strndup(mem_region_t *r, const char *s, size_t len)
{
    return mem__bump_strndup((mem__bump_t *)(void *)r, s, len);
}

/* Registers `fn(arg)` to run when the region is freed. Returns 0 or -ENOMEM. */
MEM_MUST_CHECK int mem_region_cleanup_add(mem_region_t *r, mem_cleanup_fn fn, void *arg);

/* Sets a short human label (for example the peer address) shown in attribution. Copied. */
void mem_region_set_label(mem_region_t *r, const char *label);

/* Getters: never allocate. */
size_t mem_region_bytes(const mem_region_t *r); /* held, as in mem_region_info_t.bytes */
size_t mem_region_bytes_used(const mem_region_t *r);
size_t mem_region_cap(const mem_region_t *r);
uint64_t mem_region_id(const mem_region_t *r);
uint64_t mem_region_created_ns(const mem_region_t *r); /* CLOCK_MONOTONIC, as uv_hrtime */

/* Calls `fn` for each live region created by the calling thread. Thread: owner. */
void mem_region_foreach_local(void (*fn)(const mem_region_info_t *info, void *arg), void *arg);

#endif /* MEM_REGION_H */
