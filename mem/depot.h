/*
 * mem/depot.h: per node, per class lock-free stacks of object batches ("magazines").
 *
 * A batch is a chain of free objects of one class and node: the head object starts with the
 * ck_stack entry (offset 0) and links the next object at offset 8; the other objects link at
 * offset 0. One CAS moves a whole batch, so contention is per batch, not per object. Only
 * ck_stack_push_mpmc, ck_stack_pop_mpmc (ABA-safe double-width CAS) and
 * ck_stack_batch_pop_mpmc (at quiescent points only) are used. Objects stay in mapped, type-stable
 * segments, so a popper reading a stale head is safe. A depot holds at most
 * `depot_batches_max[cls]` batches; a push beyond that hands the objects back to their spans
 * instead. Thread: any.
 */
#ifndef MEM_DEPOT_H
#define MEM_DEPOT_H

#include "mem/base.h"

#include <ck_stack.h>

typedef struct mem__depot_s {
    ck_stack_t stack;   /* batches (16-byte aligned for the double-width CAS) */
    uint64_t batches;   /* batches in the stack (atomic) */
    uint64_t bytes;     /* bytes in the stack (atomic, stats) */
    uint64_t low_water; /* fewest batches seen since the last decay tick (atomic) */
} MEM_ALIGNED(MEM_CACHELINE) mem__depot_t;

struct mem__node_s;

/* Builds a batch from `objs[0..cnt)` and pushes it on node `n`'s depot for `cls` (or gives the
 * objects back to their spans when the depot is full). Thread: any. Alloc: none. */
void mem__depot_push(struct mem__node_s *n, unsigned cls, void *const *objs, unsigned cnt);

/* Pops one batch into `out` (capacity `max`). Returns the objects popped (0 = empty). */
unsigned mem__depot_pop(struct mem__node_s *n, unsigned cls, void **out, unsigned max);

/* Pops every batch (one ck_stack_pop_mpmc at a time) and gives the objects back to their
 * spans. Returns the bytes moved. Thread: any. */
size_t mem__depot_drain(struct mem__node_s *n, unsigned cls);
/* The same with one ck_stack_batch_pop_mpmc; only where no other thread can pop (it does not
 * bump the ABA generation). Thread: main, quiescent (mem_fini). */
size_t mem__depot_drain_quiescent(struct mem__node_s *n, unsigned cls);

/* Decay: gives back to spans the batches that stayed in the depot for a whole tick (its low
 * water mark) and restarts the mark. Returns the bytes moved. */
size_t mem__depot_trim(struct mem__node_s *n, unsigned cls);

#endif /* MEM_DEPOT_H */
