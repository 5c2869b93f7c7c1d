/*
 * proxy/codec/stab.c: the codec's stream table (proxy/codec/stab.h).
 *
 * Linear probing with backward-shift deletion: no tombstones, so a connection that opens and
 * closes millions of streams never degrades. Stream ids of one peer grow by two, so the hash
 * drops the low bit and the slots of consecutive streams are consecutive.
 */
#include "proxy/codec/stab.h"
#include "mem/base.h"

#include <string.h>

#include "mem/malloc.h"

#define STAB_CAP_MIN 8u

static uint32_t slot_of(int32_t id, uint32_t cap)
{
    /* Fibonacci hashing of id / 2 spreads the ids of both peers evenly. */
    return (uint32_t)(((uint32_t)id >> 1) * 2654435761u) & (cap - 1);
}

void px_h2_stab_init(px_h2_stab_t *t)
{
    MEM_ASSERT(t != NULL);
    memset(t, 0, sizeof(*t));
}

void px_h2_stab_fini(px_h2_stab_t *t)
{
    mem_free(t->slots);
    t->slots = NULL;
    t->cap = 0;
    t->cnt = 0;
}

void *px_h2_stab_get(const px_h2_stab_t *t, int32_t id)
{
    MEM_ASSERT_HOT(id > 0);
    if (t->cnt == 0)
        return NULL;
    for (uint32_t i = slot_of(id, t->cap);; i = (i + 1) & (t->cap - 1)) {
        if (t->slots[i].id == id)
            return t->slots[i].p;
        if (t->slots[i].id == 0)
            return NULL;
    }
}

static void insert(px_h2_stab_slot_t *slots, uint32_t cap, int32_t id, void *p)
{
    uint32_t i = slot_of(id, cap);
    while (slots[i].id != 0)
        i = (i + 1) & (cap - 1);
    slots[i].id = id;
    slots[i].p = p;
}

int px_h2_stab_put(px_h2_stab_t *t, int32_t id, void *p)
{
    MEM_ASSERT(id > 0);
    MEM_ASSERT(px_h2_stab_get(t, id) == NULL);
    /* Load at most 3/4, so probes stay short. */
    if ((t->cnt + 1) * 4 > t->cap * 3) {
        uint32_t cap = t->cap == 0 ? STAB_CAP_MIN : t->cap * 2;
        px_h2_stab_slot_t *n = mem_calloc(cap, sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < t->cap; i++)
            if (t->slots[i].id != 0)
                insert(n, cap, t->slots[i].id, t->slots[i].p);
        mem_free(t->slots);
        t->slots = n;
        t->cap = cap;
    }
    insert(t->slots, t->cap, id, p);
    t->cnt++;
    return 0;
}

void px_h2_stab_remember(px_h2_stab_t *t, int32_t id, px_h2_closed_t how)
{
    MEM_ASSERT(id > 0);
    t->closed_id[t->closed_next] = id;
    t->closed_how[t->closed_next] = (uint8_t)how;
    t->closed_next = (uint8_t)((t->closed_next + 1) % PX_H2_STAB_CLOSED_CNT);
}

void px_h2_stab_drop(px_h2_stab_t *t, int32_t id)
{
    MEM_ASSERT(t->cnt > 0);
    uint32_t mask = t->cap - 1;
    uint32_t i = slot_of(id, t->cap);
    while (t->slots[i].id != id) {
        MEM_ASSERT(t->slots[i].id != 0);
        i = (i + 1) & mask;
    }
    /* Backward shift: move each later entry of the run into the hole if its home slot
     * lies at or before the hole (cyclically). */
    for (uint32_t j = (i + 1) & mask; t->slots[j].id != 0; j = (j + 1) & mask) {
        uint32_t home = slot_of(t->slots[j].id, t->cap);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].id = 0;
    t->slots[i].p = NULL;
    t->cnt--;
    if (t->cnt == 0)
        px_h2_stab_fini(t);
}

void px_h2_stab_del(px_h2_stab_t *t, int32_t id, px_h2_closed_t how)
{
    px_h2_stab_drop(t, id);
    px_h2_stab_remember(t, id, how);
}

bool px_h2_stab_closed_find(const px_h2_stab_t *t, int32_t id, px_h2_closed_t *how)
{
    MEM_ASSERT(id > 0);
    /* Newest first: an id is remembered once, but be exact if it were not. */
    for (uint32_t k = 0; k < PX_H2_STAB_CLOSED_CNT; k++) {
        uint32_t i = (t->closed_next + PX_H2_STAB_CLOSED_CNT - 1 - k) % PX_H2_STAB_CLOSED_CNT;
        if (t->closed_id[i] == id) {
            *how = (px_h2_closed_t)t->closed_how[i];
            return true;
        }
    }
    return false;
}

void px_h2_stab_each(const px_h2_stab_t *t, void (*fn)(void *p, void *arg), void *arg)
{
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i].id != 0)
            fn(t->slots[i].p, arg);
}
