/*
 * proxy/core/memwait.c: a worker's list of things waiting for memory (see memwait.h).
 */
#include "proxy/core/memwait.h"
#include "mem/base.h"

#include "mem/stats.h"

/* Wakes every waiter. The whole list is detached first: a waiter that fails again parks again
 * and waits for the next free (or the fallback), not for this walk (no spinning inside it). */
static void wake_all(px_memwait_t *mw)
{
    px_memwait_node_t batch = {.prev = &batch, .next = &batch};
    if (mw->head.next == &mw->head)
        return;
    batch.next = mw->head.next;
    batch.prev = mw->head.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    mw->head.next = mw->head.prev = &mw->head;
    uv_timer_stop(&mw->timer);
    while (batch.next != &batch) {
        px_memwait_node_t *n = batch.next;
        batch.next = n->next;
        n->next->prev = &batch;
        n->prev = n->next = NULL;
        MEM_ASSERT(n->on_wake != NULL);
        n->on_wake(n);
    }
}

static void on_fallback(uv_timer_t *t)
{
    px_memwait_t *mw = MEM_CONTAINER_OF(t, px_memwait_t, timer);
    if (mw->head.next != &mw->head)
        MEM_STAT_ADD(mw->stats->memwait_woken_timer, 1);
    wake_all(mw);
}

int px_memwait_init(px_memwait_t *mw, uv_loop_t *loop, uint32_t fallback_ms, px_stats_t *stats)
{
    MEM_ASSERT(mw != NULL);
    MEM_ASSERT(stats != NULL);
    MEM_ASSERT(fallback_ms > 0);
    mw->head.prev = mw->head.next = &mw->head;
    mw->head.on_wake = NULL;
    mw->fallback_ms = fallback_ms;
    mw->frees_seen = 0;
    mw->stats = stats;
    return uv_timer_init(loop, &mw->timer);
}

void px_memwait_add(px_memwait_t *mw, px_memwait_node_t *n)
{
    MEM_ASSERT(n != NULL);
    MEM_ASSERT(n->on_wake != NULL);
    if (px_memwait_waiting(n))
        return;
    n->prev = mw->head.prev;
    n->next = &mw->head;
    mw->head.prev->next = n;
    mw->head.prev = n;
    /* From now on: what it just failed to get may come back with the next free. */
    mw->frees_seen = mem_stats_thread_frees();
    if (!uv_is_active((uv_handle_t *)&mw->timer) && !uv_is_closing((uv_handle_t *)&mw->timer))
        uv_timer_start(&mw->timer, on_fallback, mw->fallback_ms, 0);
}

void px_memwait_del(px_memwait_t *mw, px_memwait_node_t *n)
{
    MEM_ASSERT(n != NULL);
    if (!px_memwait_waiting(n))
        return;
    MEM_ASSERT(n != &mw->head);
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
    if (mw->head.next == &mw->head)
        uv_timer_stop(&mw->timer);
}

void px_memwait_poll(px_memwait_t *mw)
{
    MEM_ASSERT(mw != NULL);
    if (MEM_LIKELY(mw->head.next == &mw->head))
        return;
    if (mem_stats_thread_frees() == mw->frees_seen)
        return;
    MEM_STAT_ADD(mw->stats->memwait_woken_free, 1);
    wake_all(mw);
}
