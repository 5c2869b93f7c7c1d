/*
 * mem/budget.h: the global memory limit, committed-byte accounting, pressure and release.
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

/* Returns idle cached memory to the OS now: flushes the calling thread's cache, drains the
 * depots' free spans, and madvise()s every fully free span regardless of decay.
 * Returns the bytes released. Thread: any. Alloc: none. */
size_t mem_release_now(void);

/* Runs the decay in bounded steps: when a round is due (every decay_ms / 4, at least 1 ms),
 * depot batches idle for a whole period go back to their spans and spans wholly free for
 * decay_ms are released with madvise(MADV_DONTNEED), one node after the other. One call does
 * at most `work_max` units of work (one size class of one node trimmed, or one 64 KiB span
 * released) and continues where the last call stopped; the madvise calls are made without
 * any node lock. Meant for the workers' timers (e.g. mem_decay_tick(MEM_DECAY_TIMER_WORK)
 * every few ms); allocation slow paths also step it by MEM_DECAY_AUTO_WORK units. Returns the
 * bytes released. Thread: any (one steps at a time; the others return 0 at once).
 * Alloc: none. */
size_t mem_decay_tick(size_t work_max);
#define MEM_DECAY_AUTO_WORK  8  /* units per step from an allocation slow path */
#define MEM_DECAY_TIMER_WORK 64 /* a suggested step for a worker timer (about 4 MiB) */

/* The whole decay round at once, if due (mem_decay_tick(SIZE_MAX)). For a thread no request
 * waits on (the proxy's monitor timer). Returns the bytes released. Thread: any. */
size_t mem_release_tick(void);

/* Sets the decay delay after which idle pages go back to the OS on their own. */
void mem_budget_set_decay_ms(uint64_t ms);

#endif /* MEM_BUDGET_H */
