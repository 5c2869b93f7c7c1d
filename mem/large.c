/*
 * mem/large.c: objects too large for any size class (over 256 KiB), each in a mapping of its
 * own aligned to a segment, with a header that free() finds by masking the pointer.
 *
 * Owned by no thread: any thread maps and unmaps them; their bytes count on their node under
 * the node lock, like the segments' (one discipline per counter, mem/internal.h).
 */
#include "mem/base.h"
#include "mem/internal.h"
#include "mem/heapprof.h"
#include "mem/numa.h"
#include "mem/segment.h"

#include <string.h>
#include <sys/mman.h>

mem__large_totals_t mem__large_totals;

void *mem__large_alloc(size_t len, size_t align, unsigned node, bool sampled)
{
    MEM_ASSERT(MEM_IS_POW2(align));
    MEM_ASSERT(node < mem__g.nodes_cnt);
    if (align < MEM_SC_ALIGN)
        align = MEM_SC_ALIGN;
    if (align > MEM_SEG_SIZE / 4)
        return NULL;
    size_t off = MEM_ALIGN_UP(sizeof(mem__large_t), align);
    if (len > SIZE_MAX / 2 - off - mem__g.page)
        return NULL;
    size_t map_len = MEM_ALIGN_UP(off + len, mem__g.page);
    if (mem__budget_charge(map_len) != 0)
        return NULL;
    mem__large_t *l = mem__map_aligned(map_len);
    if (!l) {
        mem__budget_uncharge(map_len);
        return NULL;
    }
    if (mem__g.bind)
        (void)mem_numa_bind(l, map_len, node);
    memset(l->hdr.tag, MEM_TAG_LARGE, sizeof(l->hdr.tag));
    l->hdr.node = UINT32_MAX;
    l->hdr.magic = MEM_LARGE_MAGIC;
    l->map_len = map_len;
    l->off = off;
    l->user_len = len;
    l->node = node;
    l->sampled = sampled;
    mem__registry_set(l, true);
    mem__node_t *n = &mem__g.nodes[node];
    /* Node counters have one discipline: written under the node lock (see internal.h). */
    pthread_mutex_lock(&n->lock);
    MEM_STAT_ADD(n->committed, map_len);
    MEM_STAT_ADD(n->large_bytes, map_len);
    pthread_mutex_unlock(&n->lock);
    __atomic_fetch_add(&mem__large_totals.live, map_len, __ATOMIC_RELAXED);
    __atomic_fetch_add(&mem__large_totals.cnt, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&mem__large_totals.alloc_cnt, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&mem__budget.mapped, map_len, __ATOMIC_RELAXED);
    return (char *)l + off;
}

void mem__large_free(mem__large_t *l, void *p)
{
    if (l->hdr.magic != MEM_LARGE_MAGIC || (char *)l + l->off != (char *)p)
        mem__die("mem_free(%p): not the start of an allocation made by mem/", p);
    MEM_ASSERT(l->node < mem__g.nodes_cnt);
    if (l->sampled)
        mem__heapprof_forget(p);
    size_t map_len = l->map_len;
    mem__node_t *n = &mem__g.nodes[l->node];
    mem__registry_set(l, false);
    munmap(l, map_len);
    /* l freed */
    mem__budget_uncharge(map_len);
    pthread_mutex_lock(&n->lock);
    MEM_STAT_SUB(n->committed, map_len);
    MEM_STAT_SUB(n->large_bytes, map_len);
    pthread_mutex_unlock(&n->lock);
    __atomic_fetch_sub(&mem__large_totals.live, map_len, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&mem__large_totals.cnt, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&mem__large_totals.free_cnt, 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&mem__budget.mapped, map_len, __ATOMIC_RELAXED);
    __atomic_fetch_add(&mem__budget.released_total, map_len, __ATOMIC_RELAXED);
}
