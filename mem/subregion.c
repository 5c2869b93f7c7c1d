/*
 * mem/subregion.c: the per-stream sub-arena, carved from a connection's region.
 *
 * A sub-arena is an arena (mem/arena_internal.h) of its own: its struct sits at the start of
 * its first chunk, its chunks come from the thread cache, and its bytes are charged to its own
 * cap and to the parent region's. It lives on the parent's list of open sub-arenas until it is
 * freed, either by mem_subregion_free() (the stream closed) or by the parent's free (the
 * connection died first); unlinking on free is what prevents a second free through the parent.
 * Owned by the region's thread, like the region.
 *
 * Recycling: a closed sub-arena whose first chunk is the usual MEM__ARENA_CHUNK_SUB keeps it,
 * stripped of everything else (mem__arena_strip), in the thread cache's keep stash, and the
 * next mem_subregion_new() takes it back with its header already in place: a proxied request
 * opens two sub-arenas, and taking and giving back their chunks through the cache's slots
 * (with the refills, spills and span churn of 320 streams opening and closing in bursts) cost
 * about 400 instructions a request. The stash is the cache's: its chunks count as cached and
 * go back with every flush (idle worker, release, detach). The sampling distance a kept
 * sub-arena had left stays with it; by the memorylessness of the exponential that is a fresh
 * draw, so heap sampling stays exact.
 */
#include "mem/base.h"
#include "mem/subregion.h"
#include "mem/arena_internal.h"

#include <string.h>

#include "mem/internal.h"
#include "mem/tcache.h"

MEM_STATIC_ASSERT(MEM__ARENA_CHUNK_SUB == MEM_TC_KEEP_SIZE, "the keep stash holds first chunks");

mem_subregion_t *mem_subregion_new(mem_region_t *parent, size_t cap_bytes)
{
    MEM_ASSERT(parent != NULL);
    MEM_ASSERT(parent->home != NULL);
    mem_subregion_t *s = NULL;
    mem__block_t *kept = mem__tcache_keep_take(mem__tc_self);
    if (kept != NULL) {
        s = mem__arena_renew((mem__arena_t *)(kept + 1), sizeof(*s), cap_bytes, &parent->arena);
        if (s == NULL) /* caps that want a smaller chunk: back to the cache, as a free */
            mem__arena_drop((mem__arena_t *)(kept + 1));
    }
    if (s == NULL)
        s = mem__arena_new(sizeof(*s), 0, cap_bytes, &parent->arena);
    if (s == NULL)
        return NULL;
    MEM_ASSERT(&s->arena == (mem__arena_t *)s);
    s->parent = parent;
    s->prev = NULL;
    s->next = parent->subs;
    if (parent->subs)
        parent->subs->prev = s;
    parent->subs = s;
    parent->subs_cnt++;
    mem__tstats_t *ts = mem__arena_tstats();
    MEM_TSTAT_ADD(ts, subregions_live, 1);
    MEM_TSTAT_ADD(ts, subregions_created, 1);
    return s;
}

void mem_subregion_free(mem_subregion_t *s)
{
    if (s == NULL)
        return;
    /* A cleanup of `s` may free `s` itself (a stream object whose destructor closes its own
     * sub-arena): the outer call finishes the job, the nested one must not touch `s` after. */
    if (s->arena.closing)
        return;
    s->arena.closing = true;
    mem_region_t *r = s->parent;
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->subs_cnt > 0);
    mem__arena_run_cleanups(&s->arena);
    if (s->prev)
        s->prev->next = s->next;
    else
        r->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    r->subs_cnt--;
    MEM_TSTAT_SUB(mem__arena_tstats(), subregions_live, 1);
    mem__arena_strip(&s->arena);
    mem__block_t *first = s->arena.chunks;
    if (first->size != MEM__ARENA_CHUNK_SUB || !mem__tcache_keep_put(mem__tc_self, first))
        mem__arena_drop(&s->arena);
    /* s freed or kept */
}

void mem__region_free_subs(mem_region_t *r)
{
    MEM_ASSERT(r != NULL);
    /* Newest first, as streams would close; each free unlinks itself from r->subs. */
    while (r->subs)
        mem_subregion_free(r->subs);
    MEM_ASSERT(r->subs_cnt == 0);
}

int mem_subregion_cleanup_add(mem_subregion_t *s, mem_cleanup_fn fn, void *arg)
{
    MEM_ASSERT(s != NULL);
    return mem__arena_cleanup_add(&s->arena, fn, arg);
}

size_t mem_subregion_bytes(const mem_subregion_t *s)
{
    return s->arena.bytes;
}

size_t mem_subregion_cap(const mem_subregion_t *s)
{
    return s->arena.cap_bytes;
}

mem_region_t *mem_subregion_parent(const mem_subregion_t *s)
{
    return s->parent;
}
