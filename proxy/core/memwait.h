/*
 * proxy/core/memwait.h: a worker's list of things waiting for memory: a connection whose
 * write batch could not be allocated parks here instead of retrying at once (which spun the
 * loop at 100% CPU for as long as memory stayed short), and is woken to try again.
 *
 * Today a timer wakes the whole list every `retry_ms` while it is not empty. The issue-15
 * design wakes it from frees instead (HAProxy's buf_wait); the API stays the same.
 *
 * Instances: one per worker, embedded in its px_wimpl_t; nodes are embedded in what waits.
 * Thread: the worker's loop thread only.
 */
#ifndef PX_MEMWAIT_H
#define PX_MEMWAIT_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#define PX_MEMWAIT_RETRY_MS 10u /* how soon a parked waiter tries again */

typedef struct px_memwait_node_s px_memwait_node_t;

/* Called when `n` is woken; `n` is off the list by then and may park again. */
typedef void (*px_memwait_wake_cb)(px_memwait_node_t *n);

struct px_memwait_node_s {
    px_memwait_node_t *prev, *next; /* NULL, NULL while not waiting */
    px_memwait_wake_cb on_wake;     /* borrows: set once by the owner */
};

typedef struct px_memwait_s {
    uv_timer_t timer;       /* its .data belongs to the owner (close accounting) */
    px_memwait_node_t head; /* sentinel of a circular list */
    uint32_t retry_ms;
} px_memwait_t;

/* Initializes `mw` on `loop` with an empty list and its timer (one handle the owner closes
 * with uv_close on `mw->timer`). Returns 0 or a libuv error. Alloc: none. */
int px_memwait_init(px_memwait_t *mw, uv_loop_t *loop, uint32_t retry_ms);

/* Parks `n` (no-op when it already waits) and arms the retry timer. Alloc: none. */
void px_memwait_add(px_memwait_t *mw, px_memwait_node_t *n);

/* Takes `n` off the list (no-op when it is not waiting); call before freeing what embeds it. */
void px_memwait_del(px_memwait_t *mw, px_memwait_node_t *n);

/* True while `n` is parked. */
static inline bool px_memwait_waiting(const px_memwait_node_t *n)
{
    return n->next != NULL;
}

#endif /* PX_MEMWAIT_H */
