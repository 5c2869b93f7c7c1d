/*
 * mem/budget.h: the global memory limit, committed-byte accounting, pressure and release.
 *
 * "Committed" means bytes mapped by mem/ and not returned to the OS (segments, minus spans
 * released with madvise, plus large mappings). Every mapping is charged against the limit
 * before it is made; a charge that would pass the limit fails and the allocation returns NULL.
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

/* Returns idle cached memory to the OS now: flushes the calling thread's cache, drains the
 * depots' free spans, and madvise()s every fully free span regardless of decay.
 * Returns the bytes released. Thread: any. Alloc: none. */
size_t mem_release_now(void);

/* Runs one decay step if its period (decay_ms / 4, at least 1 ms) has passed: depot batches
 * idle for a whole period go back to their spans, and spans wholly free for decay_ms are
 * released with madvise(MADV_DONTNEED). Slow paths call it; an idle process can call it
 * from a timer. Returns the bytes released. Thread: any. Alloc: none. */
size_t mem_release_tick(void);

/* Sets the decay delay after which idle pages go back to the OS on their own. */
void mem_budget_set_decay_ms(uint64_t ms);

#endif /* MEM_BUDGET_H */
