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
/* Number of real nodes (>= 1, capped at MEM_STATS_NODES_MAX). */
unsigned mem_numa_real_nodes(void);
/* The real node of the CPU the caller runs on (0 when unknown). */
unsigned mem_numa_cpu_node(void);
/* Binds [p, p+len) to real node `node` with mbind(MPOL_PREFERRED). Returns 0 or -errno;
 * -ENOSYS without NUMA support. */
int mem_numa_bind(void *p, size_t len, unsigned node);

#endif /* MEM_NUMA_H */
