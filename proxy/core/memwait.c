/*
 * proxy/core/memwait.c: a worker's list of things waiting for memory (see memwait.h).
 */
#include "proxy/core/memwait.h"
#include "mem/base.h"

static void on_retry(uv_timer_t *t)
{
    px_memwait_t *mw = MEM_CONTAINER_OF(t, px_memwait_t, timer);
    /* Detach the whole list first: a waiter that fails again parks again, and is tried on the
     * next tick, not in this one (no spinning inside the callback either). */
    px_memwait_node_t batch = {.prev = &batch, .next = &batch};
    if (mw->head.next == &mw->head)
        return;
    batch.next = mw->head.next;
    batch.prev = mw->head.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    mw->head.next = mw->head.prev = &mw->head;
    while (batch.next != &batch) {
        px_memwait_node_t *n = batch.next;
        batch.next = n->next;
        n->next->prev = &batch;
        n->prev = n->next = NULL;
        MEM_ASSERT(n->on_wake != NULL);
        n->on_wake(n);
    }
}

int px_memwait_init(px_memwait_t *mw, uv_loop_t *loop, uint32_t retry_ms)
{
    MEM_ASSERT(mw != NULL);
    MEM_ASSERT(retry_ms > 0);
    mw->head.prev = mw->head.next = &mw->head;
    mw->head.on_wake = NULL;
    mw->retry_ms = retry_ms;
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
    if (!uv_is_active((uv_handle_t *)&mw->timer) && !uv_is_closing((uv_handle_t *)&mw->timer))
        uv_timer_start(&mw->timer, on_retry, mw->retry_ms, 0);
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
