/*
 * proxy/core/memwait.h: a worker's list of things waiting for memory: a connection whose
 * write batch (or write request) could not be allocated parks here instead of retrying at once
 * (which spun the loop at 100% CPU for as long as memory stayed short), and is woken to try
 * again when memory may be back.
 *
 * Woken by frees (HAProxy's buf_wait): the worker's check phase, once per loop iteration after
 * the poll, calls px_memwait_poll, which wakes the whole list when the worker's thread has freed
 * anything since the last waiter parked (mem_stats_thread_frees). A loop with nothing to do
 * sleeps in the poll; nothing runs for the waiters until an event frees something, so the list
 * never spins the loop. Memory that other threads free does not move this thread's count: a
 * fallback timer wakes the list every PX_MEMWAIT_FALLBACK_MS while it is not empty.
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

#include "proxy/core/stats-t.h"

/* How soon a parked waiter tries again when no free on its own thread woke it. */
#define PX_MEMWAIT_FALLBACK_MS 1000u

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
    uint64_t frees_seen;    /* mem_stats_thread_frees() when the last waiter parked */
    uint32_t fallback_ms;
    px_stats_t *stats; /* borrows: the worker's (memwait_woken_*) */
} px_memwait_t;

/* Initializes `mw` on `loop` with an empty list and its fallback timer (one handle the owner
 * closes with uv_close on `mw->timer`); wake-ups are counted in `stats` (borrowed, outlives
 * `mw`). Returns 0 or a libuv error. Alloc: none. */
MEM_MUST_CHECK int px_memwait_init(px_memwait_t *mw, uv_loop_t *loop, uint32_t fallback_ms,
                                   px_stats_t *stats);

/* Parks `n` (no-op when it already waits), notes the thread's frees so far and arms the
 * fallback timer. Alloc: none. */
void px_memwait_add(px_memwait_t *mw, px_memwait_node_t *n);

/* Takes `n` off the list (no-op when it is not waiting); call before freeing what embeds it. */
void px_memwait_del(px_memwait_t *mw, px_memwait_node_t *n);

/* Wakes every waiter when the thread freed something since the last one parked. For the
 * worker's check phase; costs one branch while the list is empty. Alloc: none. */
void px_memwait_poll(px_memwait_t *mw);

/* True while `n` is parked. */
static inline bool px_memwait_waiting(const px_memwait_node_t *n)
{
    return n->next != NULL;
}

#endif /* PX_MEMWAIT_H */
