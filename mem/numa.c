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

/* CPU -> node, filled once by mem_numa_init(): libnuma's own lookup initialises caches lazily
 * and is not thread-safe. */
#define CPUS_MAX 4096
static uint8_t cpu_node[CPUS_MAX];
static bool cpu_node_ready;

void mem_numa_init(void)
{
#if defined(PX_NUMA)
    if (__atomic_load_n(&cpu_node_ready, __ATOMIC_ACQUIRE) || numa_available() < 0)
        return;
    int cpus = numa_num_configured_cpus();
    for (int cpu = 0; cpu < cpus && cpu < CPUS_MAX; cpu++) {
        int node = numa_node_of_cpu(cpu);
        cpu_node[cpu] = (uint8_t)(node < 0 ? 0 : MEM_MIN(node, 255));
    }
    __atomic_store_n(&cpu_node_ready, true, __ATOMIC_RELEASE);
#endif
}

unsigned mem_numa_cpu_node(void)
{
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPUS_MAX || !__atomic_load_n(&cpu_node_ready, __ATOMIC_ACQUIRE))
        return 0;
    return cpu_node[cpu];
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
