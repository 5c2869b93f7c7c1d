/*
 * mem/subregion.h: the per-stream sub-arena, carved from a connection's region.
 *
 * Its chunks come from the thread cache and go back LIFO in one step when it is freed, so
 * the next stream reuses warm memory. Its bytes count against its own cap and the parent
 * region's cap. Owned by the region's thread. Freed memory is poisoned under ASan.
 */
#ifndef MEM_SUBREGION_H
#define MEM_SUBREGION_H

#include "mem/base.h"
#include "mem/region.h"

typedef struct mem_subregion_s mem_subregion_t;

/* Creates a sub-arena in `parent` with its own cap (`cap_bytes` 0 = only the parent's cap).
 * Returns NULL on OOM or when the parent's cap is reached.
 * Ownership: gives (mem_subregion_free, or implicitly with the parent). Thread: owner. */
MEM_MUST_CHECK mem_subregion_t *mem_subregion_new(mem_region_t *parent, size_t cap_bytes);

/* Runs its cleanups, gives its chunks back LIFO and poisons them. NULL is ignored. */
void mem_subregion_free(mem_subregion_t *s);

/* Bump allocation aligned to 16; NULL past either cap. Inline: a sub-arena starts with its
 * bump window (mem/bump.h). Ownership: subregion. */
MEM_MUST_CHECK MEM_INLINE void *mem_subregion_alloc(mem_subregion_t *s, size_t len)
{
    return mem__bump_alloc((mem__bump_t *)(void *)s, len);
}
/* mem_subregion_alloc, then zeroed. */
MEM_MUST_CHECK MEM_INLINE void *mem_subregion_calloc(mem_subregion_t *s, size_t len)
{
    return mem__bump_calloc((mem__bump_t *)(void *)s, len);
}
/* Copies `len` bytes of `str` and NUL-terminates. */
MEM_INLINE char *mem_subregion_strndup(mem_subregion_t *s, const char *str, size_t len)
{
    return mem__bump_strndup((mem__bump_t *)(void *)s, str, len);
}
int mem_subregion_cleanup_add(mem_subregion_t *s, mem_cleanup_fn fn, void *arg);

/* Getters: never allocate. */
size_t mem_subregion_bytes(const mem_subregion_t *s);
size_t mem_subregion_cap(const mem_subregion_t *s);
mem_region_t *mem_subregion_parent(const mem_subregion_t *s);

#endif /* MEM_SUBREGION_H */
