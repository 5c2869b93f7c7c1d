/*
 * mem/numa.c: NUMA node discovery and mbind() placement (libnuma when PX_NUMA).
 *
 * State: the node and CPU maps, written once before use; any thread reads them.
 */
#include "mem/base.h"
#include "mem/numa.h"
#include "mem/stats.h"

#include <sched.h>

#if defined(PX_NUMA)
#include <numa.h>
#include <numaif.h>
#endif

/* mem/ numbers nodes densely (0 .. count-1, the index of mem__node_t); the kernel's ids may
 * be sparse (nodes 0 and 2). Both maps are filled once by mem_numa_init() (or by the test
 * hook) before any reader: libnuma's own lookups initialise caches lazily and are not
 * thread-safe. */
#define CPUS_MAX 4096
static uint8_t cpu_node[CPUS_MAX];       /* CPU -> dense node index */
static int os_node[MEM_STATS_NODES_MAX]; /* dense node index -> kernel node id */
static unsigned nodes_cnt = 1;
static bool cpu_node_ready;

unsigned mem_numa_real_nodes(void)
{
    return nodes_cnt;
}

int mem_numa_os_node(unsigned idx)
{
    MEM_ASSERT(idx < MEM_STATS_NODES_MAX);
    return idx < nodes_cnt ? os_node[idx] : -1;
}

/* Fills the maps from the kernel ids of the nodes and the kernel node of each CPU. */
static void maps_set(const int *os_ids, unsigned cnt, const int *cpu_os, unsigned cpus)
{
    MEM_ASSERT(cnt >= 1);
    MEM_ASSERT(cnt <= MEM_STATS_NODES_MAX);
    for (unsigned i = 0; i < cnt; i++)
        os_node[i] = os_ids[i];
    nodes_cnt = cnt;
    for (unsigned cpu = 0; cpu < CPUS_MAX; cpu++) {
        uint8_t idx = 0;
        for (unsigned i = 0; cpu < cpus && i < cnt; i++)
            if (os_ids[i] == cpu_os[cpu])
                idx = (uint8_t)i;
        cpu_node[cpu] = idx;
    }
    __atomic_store_n(&cpu_node_ready, true, __ATOMIC_RELEASE);
}

void mem__numa_pretend(const int *os_ids, unsigned cnt, const int *cpu_os, unsigned cpus)
{
    maps_set(os_ids, cnt, cpu_os, cpus);
}

void mem_numa_init(void)
{
    if (__atomic_load_n(&cpu_node_ready, __ATOMIC_ACQUIRE))
        return;
#if defined(PX_NUMA)
    if (numa_available() < 0)
        return;
    int ids[MEM_STATS_NODES_MAX];
    unsigned cnt = 0;
    int max = numa_max_node();
    for (int id = 0; id <= max && cnt < MEM_STATS_NODES_MAX; id++)
        if (numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned)id))
            ids[cnt++] = id;
    if (cnt == 0)
        return;
    static int cpu_os[CPUS_MAX];
    int cpus = MEM_MIN(numa_num_configured_cpus(), CPUS_MAX);
    for (int cpu = 0; cpu < cpus; cpu++)
        cpu_os[cpu] = numa_node_of_cpu(cpu);
    maps_set(ids, cnt, cpu_os, cpus > 0 ? (unsigned)cpus : 0);
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
    int os = mem_numa_os_node(node);
    if (os < 0 || os >= (int)(sizeof(unsigned long) * 8))
        return -EINVAL;
    /* MPOL_PREFERRED rather than MPOL_BIND: a full node spills over instead of failing a
     * page fault with SIGBUS; the budget, not the kernel, is what limits memory. */
    unsigned long mask = 1ul << os;
    if (mbind(p, len, MPOL_PREFERRED, &mask, sizeof(mask) * 8, 0) != 0)
        return -errno;
    return 0;
#else
    (void)len;
    return -ENOSYS;
#endif
}
