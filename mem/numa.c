/*
 * mem/numa.c: NUMA node discovery and mbind() placement (libnuma when PX_NUMA).
 *
 * Stateless apart from the cached node count; any thread.
 */
#include "mem/base.h"
#include "mem/numa.h"
#include "mem/stats.h"

#include <sched.h>

#if defined(PX_NUMA)
#include <numa.h>
#include <numaif.h>
#endif

unsigned mem_numa_real_nodes(void)
{
#if defined(PX_NUMA)
    if (numa_available() < 0)
        return 1;
    int n = numa_num_configured_nodes();
    if (n < 1)
        return 1;
    return (unsigned)MEM_MIN(n, MEM_STATS_NODES_MAX);
#else
    return 1;
#endif
}

unsigned mem_numa_cpu_node(void)
{
#if defined(PX_NUMA)
    int cpu = sched_getcpu();
    if (cpu < 0 || numa_available() < 0)
        return 0;
    int node = numa_node_of_cpu(cpu);
    return node < 0 ? 0u : (unsigned)node;
#else
    return 0;
#endif
}

int mem_numa_bind(void *p, size_t len, unsigned node)
{
    MEM_ASSERT(p != NULL);
    MEM_ASSERT(node < MEM_STATS_NODES_MAX);
#if defined(PX_NUMA)
    /* MPOL_PREFERRED rather than MPOL_BIND: a full node spills over instead of failing a
     * page fault with SIGBUS; the budget, not the kernel, is what limits memory. */
    unsigned long mask = 1ul << node;
    if (mbind(p, len, MPOL_PREFERRED, &mask, sizeof(mask) * 8, 0) != 0)
        return -errno;
    return 0;
#else
    (void)len;
    return -ENOSYS;
#endif
}
