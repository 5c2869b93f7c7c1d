/*
 * mem/budget.h: the global memory limit, committed-byte accounting and pressure.
 *
 * "Committed" means bytes mapped by mem/ and not returned to the OS (segments, minus spans
 * released with madvise, plus large mappings, plus mem/'s own metadata). Every mapping is
 * charged against the limit before it is made; a charge that would pass the limit first gives
 * back what is merely cached and is retried once, then fails and the allocation returns NULL
 * (metadata and the *_exempt entry points of mem/malloc.h are never refused, only counted).
 * Thread: any (atomics); the limit may change at run time.
 */
#ifndef MEM_BUDGET_H
#define MEM_BUDGET_H

#include "mem/base.h"

/* Sets the hard limit in bytes (0 = none). Lowering it below committed does not unmap
 * anything; it makes further charges fail until usage falls. Thread: any. */
void mem_budget_set_limit(size_t bytes);
size_t mem_budget_limit(void);

/* Bytes committed now (see above). Getter. */
size_t mem_budget_committed(void);

/* Pressure = committed / limit, clamped to [0, 1]; 0 when there is no limit.
 * Committed includes cached free memory; callers that act on pressure first call
 * mem_release_now() so that only memory really held counts (see README "Overload").
 * Thread: any. Alloc: none. */
double mem_budget_pressure(void);

/* Returning memory to the OS (release now, decay in bounded steps) is mem/decay.h. */
#include "mem/decay.h"

#endif /* MEM_BUDGET_H */
