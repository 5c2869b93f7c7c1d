/*
 * mem/sampling.h: when the heap profiler samples: geometric distances in bytes between
 * samples, with a configured mean (as tcmalloc does), drawn from a per-thread generator.
 *
 * One process-wide interval (atomic); each thread draws its own distances. The counting down
 * is the callers' (the thread cache and the arenas); this file only says how far.
 * Thread: any.
 */
#ifndef MEM_SAMPLING_H
#define MEM_SAMPLING_H

#include "mem/base.h"

#include <stddef.h>

/* Sets the mean sampling interval in bytes (0 = off). Thread: any. */
void mem_heapprof_set_interval(size_t sample_bytes);
/* The mean sampling interval in bytes (0 = off). Thread: any. */
size_t mem_heapprof_interval(void);

/* Draws the next geometric sampling distance in bytes (mean = interval, at least 1). While
 * sampling is off it returns a re-check distance of a few MiB, so a caller that counts down
 * and then calls mem__heapprof_record notices within that distance that sampling was
 * turned on. Thread: any (the generator is per thread). Alloc: none. */
size_t mem__sampling_next(void);

#endif /* MEM_SAMPLING_H */
