/*
 * mem/depot.c: batches of free objects on lock-free per node, per class stacks.
 *
 * A depot is part of its node (mem__node_t); any thread pushes and pops. The batch chain is
 * written before the push and read after the pop; Concurrency Kit's CAS is a full barrier on
 * x86-64 and orders them (ThreadSanitizer is told explicitly, see MEM_TSAN_*).
 * Objects in a depot are poisoned under ASan, except a batch head's first word: CK writes it
 * in C, and a stale popper may still read it (its CAS then fails) just after another thread
 * took the batch, so the head's first word stays unpoisoned until the object is handed out.
 */
#include "mem/base.h"
#include "mem/depot.h"
#include "mem/internal.h"

#define LINK_HEAD 1 /* the head object links the rest at offset 8 (0 is the ck entry) */

static void *link_get(void *o, unsigned slot)
{
    MEM_UNPOISON((void **)o + slot, sizeof(void *));
    void *v = ((void **)o)[slot];
    MEM_POISON((void **)o + slot, sizeof(void *));
    return v;
}

static void link_set(void *o, unsigned slot, void *v)
{
    MEM_UNPOISON((void **)o + slot, sizeof(void *));
    ((void **)o)[slot] = v;
    MEM_POISON((void **)o + slot, sizeof(void *));
}

void mem__depot_push(mem__node_t *n, unsigned cls, void *const *objs, unsigned cnt)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    MEM_ASSERT(cnt > 0 && cnt <= MEM_BATCH_MAX);
    mem__depot_t *d = &n->depot[cls];
    uint64_t had = __atomic_fetch_add(&d->batches, 1, __ATOMIC_RELAXED);
    if (had >= mem__g.depot_batches_max[cls]) {
        /* Full: the objects go back to their spans, where decay can release them. */
        __atomic_fetch_sub(&d->batches, 1, __ATOMIC_RELAXED);
        mem__span_give(n, cls, objs, cnt);
        return;
    }
    void *head = objs[0];
    link_set(head, LINK_HEAD, cnt > 1 ? objs[1] : NULL);
    for (unsigned i = 1; i < cnt; i++)
        link_set(objs[i], 0, i + 1 < cnt ? objs[i + 1] : NULL);
    __atomic_fetch_add(&d->bytes, (uint64_t)cnt * mem_sc_size[cls], __ATOMIC_RELAXED);
    /* CK writes the entry in C, so the head's entry word stays unpoisoned while it is in the
     * depot; CK's loads of it are inline assembly, which ASan does not check. */
    MEM_UNPOISON(head, sizeof(ck_stack_entry_t));
    MEM_TSAN_RELEASE(d);
    MEM_TSAN_IGNORE_BEGIN();
    ck_stack_push_mpmc(&d->stack, (ck_stack_entry_t *)head);
    MEM_TSAN_IGNORE_END();
}

/* Walks one batch into `out`; returns the count. */
static unsigned batch_walk(void *head, void **out, unsigned max)
{
    unsigned k = 0;
    out[k++] = head;
    void *o = link_get(head, LINK_HEAD);
    while (o) {
        MEM_ASSERT(k < max);
        out[k++] = o;
        o = link_get(o, 0);
    }
    return k;
}

unsigned mem__depot_pop(mem__node_t *n, unsigned cls, void **out, unsigned max)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    MEM_ASSERT(max > 0);
    mem__depot_t *d = &n->depot[cls];
    if (__atomic_load_n(&d->batches, __ATOMIC_RELAXED) == 0)
        return 0;
    MEM_TSAN_IGNORE_BEGIN();
    ck_stack_entry_t *e = ck_stack_pop_mpmc(&d->stack);
    MEM_TSAN_IGNORE_END();
    if (!e)
        return 0;
    MEM_TSAN_ACQUIRE(d);
    uint64_t left = __atomic_sub_fetch(&d->batches, 1, __ATOMIC_RELAXED);
    if (left < __atomic_load_n(&d->low_water, __ATOMIC_RELAXED))
        __atomic_store_n(&d->low_water, left, __ATOMIC_RELAXED);
    unsigned k = batch_walk(e, out, max);
    __atomic_fetch_sub(&d->bytes, (uint64_t)k * mem_sc_size[cls], __ATOMIC_RELAXED);
    return k;
}

/* Gives every batch of the list `e` (linked through the ck entries) back to the spans. */
static size_t give_list(mem__node_t *n, unsigned cls, ck_stack_entry_t *e, uint64_t limit)
{
    mem__depot_t *d = &n->depot[cls];
    void *objs[MEM_BATCH_MAX];
    size_t bytes = 0;
    uint64_t moved = 0;
    while (e && moved < limit) {
        ck_stack_entry_t *next = e->next;
        unsigned k = batch_walk(e, objs, MEM_BATCH_MAX);
        __atomic_fetch_sub(&d->batches, 1, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&d->bytes, (uint64_t)k * mem_sc_size[cls], __ATOMIC_RELAXED);
        mem__span_give(n, cls, objs, k);
        bytes += (size_t)k * mem_sc_size[cls];
        moved++;
        e = next;
    }
    MEM_ASSERT(e == NULL);
    return bytes;
}

size_t mem__depot_drain(mem__node_t *n, unsigned cls)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    void *objs[MEM_BATCH_MAX];
    size_t bytes = 0;
    unsigned k;
    /* One batch at a time with the generation-counted pop (see mem__depot_drain_quiescent
     * for why the batch pop is kept for quiescent points). */
    while ((k = mem__depot_pop(n, cls, objs, MEM_BATCH_MAX)) != 0) {
        mem__span_give(n, cls, objs, k);
        bytes += (size_t)k * mem_sc_size[cls];
    }
    return bytes;
}

size_t mem__depot_drain_quiescent(mem__node_t *n, unsigned cls)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    mem__depot_t *d = &n->depot[cls];
    if (__atomic_load_n(&d->batches, __ATOMIC_RELAXED) == 0)
        return 0;
    /* ck_stack_batch_pop_mpmc swaps the head for NULL without bumping the generation. If a
     * concurrent ck_stack_pop_mpmc had read (gen, A, A->next) and A were pushed back after
     * the batch pop, its CAS would succeed with a stale next (ABA). So it runs only where no
     * pop can be in flight (mem_fini). */
    MEM_TSAN_IGNORE_BEGIN();
    ck_stack_entry_t *e = ck_stack_batch_pop_mpmc(&d->stack);
    MEM_TSAN_IGNORE_END();
    if (!e)
        return 0;
    MEM_TSAN_ACQUIRE(d);
    size_t bytes = give_list(n, cls, e, UINT64_MAX);
    __atomic_store_n(&d->low_water, __atomic_load_n(&d->batches, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
    return bytes;
}

size_t mem__depot_trim(mem__node_t *n, unsigned cls)
{
    MEM_ASSERT(cls < MEM_SC_COUNT);
    mem__depot_t *d = &n->depot[cls];
    uint64_t idle = __atomic_load_n(&d->low_water, __ATOMIC_RELAXED);
    size_t bytes = 0;
    void *objs[MEM_BATCH_MAX];
    /* Batches that stayed below the low-water mark for a whole tick were not needed. */
    for (uint64_t i = 0; i < idle; i++) {
        unsigned k = mem__depot_pop(n, cls, objs, MEM_BATCH_MAX);
        if (k == 0)
            break;
        mem__span_give(n, cls, objs, k);
        bytes += (size_t)k * mem_sc_size[cls];
    }
    __atomic_store_n(&d->low_water, __atomic_load_n(&d->batches, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
    return bytes;
}
