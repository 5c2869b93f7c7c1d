/*
 * mem/numa.h: NUMA node discovery and placement of segments.
 *
 * Without PX_NUMA, or where libnuma reports no NUMA support, there is one node. mem_config_t
 * can pretend more nodes than exist so that the multi-node paths run on one node; memory is
 * bound with mbind() only for nodes that really exist. Thread: any.
 */
#ifndef MEM_NUMA_H
#define MEM_NUMA_H

#include "mem/base.h"

#include <stdbool.h>

/* Reads the CPU -> node map once (mem_init, under its lock). Thread: main. */
void mem_numa_init(void);
/* Number of real nodes (>= 1, capped at MEM_STATS_NODES_MAX). mem/ numbers them densely
 * from 0 whatever the kernel's ids are (nodes 0 and 2 become indices 0 and 1). */
unsigned mem_numa_real_nodes(void);
/* The kernel's id of dense node `idx`, or -1 past the real nodes. */
int mem_numa_os_node(unsigned idx);
/* The dense index of the real node of the CPU the caller runs on (0 when unknown). */
unsigned mem_numa_cpu_node(void);
/* Binds [p, p+len) to dense node `node` (its kernel id) with mbind(MPOL_PREFERRED). Returns 0
 * or -errno; -ENOSYS without NUMA support. */
int mem_numa_bind(void *p, size_t len, unsigned node);

/* Tests: pretends the machine has the nodes `os_ids[0..cnt)` (kernel ids, possibly sparse)
 * and that CPU i is on kernel node `cpu_os[i]` (i < cpus; later CPUs on index 0). Call
 * before mem_init(). Thread: main. */
void mem__numa_pretend(const int *os_ids, unsigned cnt, const int *cpu_os, unsigned cpus);

#endif /* MEM_NUMA_H */
