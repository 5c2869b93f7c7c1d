/*
 * mem/budget.c: the global limit and committed-byte accounting (decay and release are in
 * mem/decay.c).
 *
 * Committed bytes are one process-wide atomic counter charged before any memory is
 * committed (segment header, span, large mapping) and uncharged when it goes back to the OS.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/internal.h"
#include "mem/tcache.h"

mem__budget_t mem__budget;

__thread unsigned mem__exempt_depth;
__thread uint64_t mem__refused_self;

int mem__budget_charge(size_t len)
{
    MEM_ASSERT(len > 0);
    if (MEM_UNLIKELY(mem__exempt_depth > 0)) {
        uint64_t was = __atomic_fetch_add(&mem__budget.committed, len, __ATOMIC_RELAXED);
        uint64_t limit = __atomic_load_n(&mem__budget.limit, __ATOMIC_RELAXED);
        if (limit && was + len > limit)
            __atomic_fetch_add(&mem__budget.exempt_over, 1, __ATOMIC_RELAXED);
        return 0;
    }
    if (mem__fault_hit())
        return -ENOMEM;
    uint64_t cur = __atomic_load_n(&mem__budget.committed, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t limit = __atomic_load_n(&mem__budget.limit, __ATOMIC_RELAXED);
        if (limit && (cur + len > limit || cur + len < cur)) {
            __atomic_fetch_add(&mem__budget.refused, 1, __ATOMIC_RELAXED);
            mem__refused_self++;
            return -ENOMEM;
        }
        if (__atomic_compare_exchange_n(&mem__budget.committed, &cur, cur + len, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return 0;
    }
}

void mem__budget_uncharge(size_t len)
{
    uint64_t was = __atomic_fetch_sub(&mem__budget.committed, len, __ATOMIC_RELAXED);
    MEM_ASSERT(was >= len);
}

void mem__meta_charge(size_t len)
{
    __atomic_fetch_add(&mem__budget.committed, len, __ATOMIC_RELAXED);
    __atomic_fetch_add(&mem__budget.metadata, len, __ATOMIC_RELAXED);
}

void mem__meta_uncharge(size_t len)
{
    uint64_t was = __atomic_fetch_sub(&mem__budget.metadata, len, __ATOMIC_RELAXED);
    MEM_ASSERT(was >= len);
    mem__budget_uncharge(len);
}

size_t mem__release_cached(mem__tcache_t *tc)
{
    MEM_ASSERT(tc != NULL);
    mem__tcache_flush(tc);
    size_t released = 0;
    for (unsigned i = 0; i < mem__g.nodes_cnt; i++) {
        mem__node_t *n = &mem__g.nodes[i];
        for (unsigned c = 0; c < MEM_SC_COUNT; c++)
            (void)mem__depot_drain(n, c);
        released += mem__node_release(n, UINT64_MAX, SIZE_MAX, NULL);
    }
    return released;
}

void mem_budget_set_limit(size_t bytes)
{
    __atomic_store_n(&mem__budget.limit, (uint64_t)bytes, __ATOMIC_RELAXED);
}

size_t mem_budget_limit(void)
{
    return (size_t)__atomic_load_n(&mem__budget.limit, __ATOMIC_RELAXED);
}

size_t mem_budget_committed(void)
{
    return (size_t)__atomic_load_n(&mem__budget.committed, __ATOMIC_RELAXED);
}

double mem_budget_pressure(void)
{
    uint64_t limit = __atomic_load_n(&mem__budget.limit, __ATOMIC_RELAXED);
    if (!limit)
        return 0.0;
    double p = (double)__atomic_load_n(&mem__budget.committed, __ATOMIC_RELAXED) / (double)limit;
    return p > 1.0 ? 1.0 : p;
}
