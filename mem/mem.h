/*
 * mem/mem.h: process-wide set-up of the memory library (configuration, init, per-thread
 * attach/detach).
 *
 * mem/ has no HTTP knowledge. One process has one mem instance: segments, per-node depots,
 * the budget and the heap sampler are global; thread caches are per thread. The main thread
 * calls mem_init() once before any other thread allocates through mem/.
 */
#ifndef MEM_MEM_H
#define MEM_MEM_H

#include "mem/base.h"

#include <stdbool.h>

typedef struct mem_config_s {
    size_t budget_bytes;     /* hard limit on committed bytes; 0 = no limit (still measured) */
    unsigned numa_nodes;     /* pretend this many nodes; 0 = the real count (1 without NUMA) */
    uint64_t decay_ms;       /* idle free pages go back to the OS after this long (default 1000) */
    size_t sample_bytes;     /* heap sampling mean interval; 0 = off (default 512 KiB) */
    size_t tcache_bytes_max; /* upper bound on one thread cache's bytes (default 1 MiB) */
} mem_config_t;

/* Fills `cfg` with the documented defaults. Thread: any. Alloc: none. */
void mem_config_default(mem_config_t *cfg);

/* Initialises the library with `cfg` (NULL = defaults). Idempotent only in the sense that a
 * second call returns -EALREADY. Returns 0 or a negative errno. Thread: main, before other
 * threads allocate. Alloc: system (mmap). */
int mem_init(const mem_config_t *cfg);

/* Returns true once mem_init() has succeeded. Thread: any. */
bool mem_is_initialised(void);

/* Attaches the calling thread to NUMA node `node` (-1 = the node of the CPU it runs on) and
 * creates its thread cache. `node` is mem/'s dense index (0 .. nodes - 1), not the kernel's id:
 * on a machine with nodes 0 and 2, node 2 is index 1 (mem_numa_os_node()); a thread pinned to
 * a CPU passes -1. Threads that never call it get a cache lazily on their first
 * allocation. Returns 0 or a negative errno. Thread: the calling thread. */
int mem_thread_attach(int node);

/* Flushes the calling thread's cache to the depots and detaches it; later allocations on this
 * thread re-attach lazily. Called automatically at thread exit. Thread: the calling thread. */
void mem_thread_detach(void);

/* Gives every free object in the calling thread's cache back to the depots, where the
 * decay returns them to their spans and idle spans to the OS (memory.decay). For a thread
 * that has gone idle: its cache would otherwise hold up to tcache_bytes_max until it next
 * allocates. Thread: the calling thread. Alloc: none. */
void mem_thread_flush(void);

/* Gives the sub-arena chunks the calling thread keeps ready for its next streams (the keep
 * stash, up to 2 MiB) back to its cache as ordinary frees, so that the cache's bound and the
 * decay apply to them. For a thread whose streams have stopped opening: a burst's worth of
 * kept chunks would otherwise stay until the cache is next flushed. Thread: the calling thread.
 * Alloc: none. */
void mem_thread_trim(void);

/* Tears the library down (tests and fuzzers only): every region must be gone and every
 * thread detached. Returns the number of bytes still live (0 when clean). Thread: main. */
size_t mem_fini(void);

/* Fault injection (MEM_FAULT_INJECT builds): fail the `nth` next segment mapping or budget
 * charge (1 = the very next), or each with probability 1/`one_in` when `one_in` > 0.
 * mem_fault_set(0, 0) turns it off. Returns how many faults were injected so far. */
void mem_fault_set(uint64_t nth, uint64_t one_in);
uint64_t mem_fault_injected(void);

#endif /* MEM_MEM_H */
