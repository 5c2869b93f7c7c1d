/*
 * mem/decay.h: giving memory back to the OS: at once (mem_release_now) or after the decay
 * delay, in bounded steps that the proxy's timers drive (mem_decay_tick), so that no
 * allocation stalls behind a whole round and no node lock is held across an madvise.
 * Thread: any (one thread steps the decay at a time).
 */
#ifndef MEM_DECAY_H
#define MEM_DECAY_H

#include "mem/base.h"

#include <stddef.h>
#include <stdint.h>

/* Returns idle cached memory to the OS now: flushes the calling thread's cache, drains the
 * depots' free spans, and madvise()s every fully free span and every whole free page inside
 * partly used spans, regardless of decay.
 * Returns the bytes released. Thread: any. Alloc: none. */
size_t mem_release_now(void);

/* Runs the decay in bounded steps: when a round is due (every decay_ms / 4, at least 1 ms),
 * depot batches idle for a whole period go back to their spans, spans wholly free for
 * decay_ms are released with madvise(MADV_DONTNEED), and so are the whole free pages inside
 * partly used spans that have had no free for decay_ms (page reset, as mimalloc's), one node
 * after the other. One call does at most `work_max` units of work (one size class of one
 * node trimmed, one partly used span examined, or one 64 KiB span released) and continues where the
 * last call stopped; the madvise calls are made without any node lock. Meant for the workers'
 * timers (e.g. mem_decay_tick(MEM_DECAY_TIMER_WORK) every few ms); allocation slow paths also step
 * it by MEM_DECAY_AUTO_WORK units. Returns the bytes released. Thread: any (one steps at a time;
 * the others return 0 at once). Alloc: none. */
size_t mem_decay_tick(size_t work_max);
#define MEM_DECAY_AUTO_WORK  8  /* units per step from an allocation slow path */
#define MEM_DECAY_TIMER_WORK 64 /* a suggested step for a worker timer (about 4 MiB) */

/* The whole decay round at once, if due (mem_decay_tick(SIZE_MAX)). For a thread no request
 * waits on (the proxy's monitor timer). Returns the bytes released. Thread: any. */
size_t mem_release_tick(void);

/* Sets the decay delay after which idle pages go back to the OS on their own. */
void mem_budget_set_decay_ms(uint64_t ms);

#endif /* MEM_DECAY_H */
