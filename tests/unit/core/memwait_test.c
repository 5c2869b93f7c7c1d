/*
 * tests/unit/core/memwait_test.c: the worker's memory wait list (proxy/core/memwait.c) on a real
 * libuv loop: a free on the thread wakes the parked nodes at the next poll, and nothing else
 * does (a poll with no free since the last park wakes none; a node that parks again from its
 * wake callback waits for the next free); without frees the fallback timer wakes them once
 * each, in order, after its delay and not before; a deleted node is never woken; an empty list
 * leaves no timer running. The worker's counters say which cause woke the list.
 */
#include "mem/base.h"

#include <string.h>

#include <uv.h>

#include "mem/malloc.h"
#include "proxy/core/memwait.h"
#include "tests/harness.h"

typedef struct waiter_s {
    px_memwait_node_t node;
    px_memwait_t *mw;
    int woken;
    int repark; /* park again this many times */
    int order;
} waiter_t;

static int wake_seq;
static px_stats_t stats;

static void on_wake(px_memwait_node_t *n)
{
    waiter_t *w = MEM_CONTAINER_OF(n, waiter_t, node);
    CHECK(!px_memwait_waiting(n));
    w->woken++;
    w->order = ++wake_seq;
    if (w->repark > 0) {
        w->repark--;
        px_memwait_add(w->mw, n);
        CHECK(px_memwait_waiting(n));
    }
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

TEST(fallback_wakes_each_once_in_order_after_the_delay)
{
    uv_loop_t loop;
    px_memwait_t mw;
    CHECK_OK(uv_loop_init(&loop));
    CHECK_OK(px_memwait_init(&mw, &loop, 20, &stats));
    waiter_t a = {.node.on_wake = on_wake, .mw = &mw};
    waiter_t b = {.node.on_wake = on_wake, .mw = &mw};
    waiter_t c = {.node.on_wake = on_wake, .mw = &mw};
    wake_seq = 0;
    px_memwait_add(&mw, &a.node);
    px_memwait_add(&mw, &b.node);
    px_memwait_add(&mw, &a.node); /* already waiting: no-op */
    px_memwait_add(&mw, &c.node);
    px_memwait_del(&mw, &b.node); /* b is never woken */
    CHECK(!px_memwait_waiting(&b.node));
    uint64_t t0 = uv_hrtime();
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0); /* returns once the one-shot timer is idle */
    CHECK(uv_hrtime() - t0 >= 15u * 1000000u);
    CHECK_EQ(a.woken, 1);
    CHECK_EQ(b.woken, 0);
    CHECK_EQ(c.woken, 1);
    CHECK_EQ(a.order, 1);
    CHECK_EQ(c.order, 2);
    CHECK(stats.memwait_woken_timer >= 1);
    CHECK(!uv_is_active((uv_handle_t *)&mw.timer));
    uv_close((uv_handle_t *)&mw.timer, on_closed);
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

TEST(reparking_waits_for_the_next_fallback)
{
    uv_loop_t loop;
    px_memwait_t mw;
    CHECK_OK(uv_loop_init(&loop));
    CHECK_OK(px_memwait_init(&mw, &loop, 10, &stats));
    waiter_t a = {.node.on_wake = on_wake, .mw = &mw, .repark = 3};
    wake_seq = 0;
    px_memwait_add(&mw, &a.node);
    uint64_t t0 = uv_hrtime();
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    /* Woken 4 times, each a tick apart: at least 3 further delays after the first. */
    CHECK_EQ(a.woken, 4);
    CHECK(uv_hrtime() - t0 >= 35u * 1000000u);
    CHECK(!px_memwait_waiting(&a.node));
    uv_close((uv_handle_t *)&mw.timer, on_closed);
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

TEST(deleting_the_last_stops_the_timer)
{
    uv_loop_t loop;
    px_memwait_t mw;
    CHECK_OK(uv_loop_init(&loop));
    CHECK_OK(px_memwait_init(&mw, &loop, 1000, &stats));
    waiter_t a = {.node.on_wake = on_wake, .mw = &mw};
    px_memwait_add(&mw, &a.node);
    CHECK(uv_is_active((uv_handle_t *)&mw.timer));
    px_memwait_del(&mw, &a.node);
    px_memwait_del(&mw, &a.node); /* not waiting: no-op */
    CHECK(!uv_is_active((uv_handle_t *)&mw.timer));
    CHECK_EQ(uv_run(&loop, UV_RUN_NOWAIT), 0);
    CHECK_EQ(a.woken, 0);
    uv_close((uv_handle_t *)&mw.timer, on_closed);
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

TEST(a_free_on_the_thread_wakes_at_the_next_poll)
{
    uv_loop_t loop;
    px_memwait_t mw;
    CHECK_OK(uv_loop_init(&loop));
    memset(&stats, 0, sizeof(stats));
    void *p = mem_malloc(32768);
    REQUIRE(p != NULL);
    CHECK_OK(px_memwait_init(&mw, &loop, 60000, &stats));
    waiter_t a = {.node.on_wake = on_wake, .mw = &mw, .repark = 1};
    waiter_t b = {.node.on_wake = on_wake, .mw = &mw};
    wake_seq = 0;
    px_memwait_poll(&mw); /* empty list: nothing */
    px_memwait_add(&mw, &a.node);
    px_memwait_add(&mw, &b.node);
    px_memwait_poll(&mw); /* no free since they parked: they go on waiting */
    CHECK_EQ(a.woken + b.woken, 0);
    mem_free(p); /* a batch comes back */
    px_memwait_poll(&mw);
    CHECK_EQ(a.woken, 1);
    CHECK_EQ(b.woken, 1);
    CHECK_EQ(stats.memwait_woken_free, 1);
    /* a parked again from its callback: the same free does not wake it a second time. */
    CHECK(px_memwait_waiting(&a.node));
    px_memwait_poll(&mw);
    CHECK_EQ(a.woken, 1);
    mem_free(mem_malloc(64));
    px_memwait_poll(&mw);
    CHECK_EQ(a.woken, 2);
    CHECK_EQ(stats.memwait_woken_free, 2);
    CHECK_EQ(stats.memwait_woken_timer, 0);
    CHECK(!uv_is_active((uv_handle_t *)&mw.timer)); /* the list is empty: no fallback */
    uv_close((uv_handle_t *)&mw.timer, on_closed);
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

int main(void)
{
    RUN(fallback_wakes_each_once_in_order_after_the_delay);
    RUN(reparking_waits_for_the_next_fallback);
    RUN(deleting_the_last_stops_the_timer);
    RUN(a_free_on_the_thread_wakes_at_the_next_poll);
    return TEST_SUMMARY();
}
