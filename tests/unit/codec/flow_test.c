/*
 * tests/unit/codec/flow_test.c: flow-control windows (proxy/codec/flow.c): the overflow rules of
 * RFC 9113 section 6.9, negative windows after a SETTINGS change (6.9.2), WINDOW_UPDATE
 * batching, and a simulated peer and reader that show the bytes held never pass the window
 * and the peer is never left stalled once the reader has consumed everything.
 */
#include "mem/base.h"

#include <string.h>

#include "proxy/codec/flow.h"
#include "tests/harness.h"

TEST(send_side)
{
    int64_t w = PX_H2_WINDOW_DEFAULT;
    CHECK_OK(px_h2_window_grow(&w, 1000));
    CHECK_EQ(w, 66535);
    px_h2_window_spend(&w, 66535);
    CHECK_EQ(w, 0);
    CHECK_OK(px_h2_window_grow(&w, PX_H2_WINDOW_MAX));
    CHECK_EQ(px_h2_window_grow(&w, 1), -EOVERFLOW);
    CHECK_EQ(w, PX_H2_WINDOW_MAX);
    /* 6.9.2: lowering SETTINGS_INITIAL_WINDOW_SIZE may leave a window below zero. */
    w = 100;
    CHECK_OK(px_h2_window_resize(&w, 65535, 0));
    CHECK_EQ(w, 100 - 65535);
    CHECK_OK(px_h2_window_resize(&w, 0, 65535));
    CHECK_EQ(w, 100);
    w = PX_H2_WINDOW_MAX - 10;
    CHECK_EQ(px_h2_window_resize(&w, 65535, 65546), -EOVERFLOW);
}

TEST(recv_side_batching)
{
    px_h2_recv_window_t r;
    px_h2_recv_window_init(&r, 65536);
    CHECK_OK(px_h2_recv_window_take(&r, 65536));
    CHECK_EQ(px_h2_recv_window_take(&r, 1), -EOVERFLOW);
    /* The window is spent: even a small consumption is given back at once. */
    CHECK_EQ(px_h2_recv_window_consumed(&r, 100), 100u);
    px_h2_recv_window_init(&r, 65536);
    CHECK_OK(px_h2_recv_window_take(&r, 20000));
    CHECK_EQ(px_h2_recv_window_consumed(&r, 10000), 0u);
    CHECK_EQ(px_h2_recv_window_consumed(&r, 10000), 0u);
    CHECK_OK(px_h2_recv_window_take(&r, 20000));
    CHECK_EQ(px_h2_recv_window_consumed(&r, 13000), 33000u); /* half the window pending */
    CHECK_EQ(r.window, 65536 - 40000 + 33000);
    /* Growing opens the difference at once; shrinking withholds the excess. */
    px_h2_recv_window_init(&r, 65535);
    CHECK_EQ(px_h2_recv_window_resize(&r, 1u << 20), (1u << 20) - 65535);
    CHECK_EQ(r.window, 1 << 20);
    CHECK_EQ(px_h2_recv_window_resize(&r, 65536), 0u);
    CHECK_OK(px_h2_recv_window_take(&r, 1 << 20));
    /* The first 983,040 consumed bytes pay the debt; then updates resume. */
    CHECK_EQ(px_h2_recv_window_consumed(&r, (1u << 20) - 65536), 0u);
    CHECK_EQ(px_h2_recv_window_consumed(&r, 65536), 65536u);
    CHECK_EQ(r.window, 65536);
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

TEST(slow_reader_is_bounded_and_never_stalls)
{
    static const uint32_t sizes[] = {65535, 16384, 1u << 20, 3};
    for (size_t k = 0; k < MEM_ARRAY_LEN(sizes); k++) {
        uint64_t x = 0x9e3779b97f4a7c15ull + k;
        px_h2_recv_window_t r;
        px_h2_recv_window_init(&r, sizes[k]);
        int64_t peer = sizes[k]; /* the peer's view of its window */
        uint64_t held = 0, max_held = 0, sent = 0;
        for (int i = 0; i < 200000; i++) {
            if (rnd(&x) % 2 && peer > 0) {
                uint32_t n = (uint32_t)(1 + rnd(&x) % (uint64_t)MEM_MIN(peer, 20000));
                CHECK_OK(px_h2_recv_window_take(&r, n));
                peer -= n;
                held += n;
                sent += n;
            } else if (held > 0) {
                uint32_t n = (uint32_t)(1 + rnd(&x) % held);
                held -= n;
                peer += px_h2_recv_window_consumed(&r, n);
            }
            max_held = MEM_MAX(max_held, held);
            CHECK(peer == r.window);
            if (held == 0)
                CHECK(peer > 0); /* everything consumed: the peer may send again */
            if (held > sizes[k] || peer < 0)
                break;
        }
        CHECK(max_held <= sizes[k]);
        CHECK(sent > 1000);
    }
}

/* Our own SETTINGS_INITIAL_WINDOW_SIZE change: the peer's view and ours move together. */
TEST(recv_side_settings_change)
{
    px_h2_recv_window_t r;
    px_h2_recv_window_init(&r, 65536);
    CHECK_OK(px_h2_recv_window_take(&r, 65536)); /* all of it arrived, none consumed */
    px_h2_recv_window_settings(&r, 1000);
    CHECK_EQ(r.window, 1000 - 65536);
    /* Nothing more may arrive until the overdraft is consumed away. */
    CHECK_EQ(px_h2_recv_window_take(&r, 1), -EOVERFLOW);
    /* Consuming everything gives back all of it at once (the window is not positive), and the
     * peer's window ends at the new size. */
    CHECK_EQ(px_h2_recv_window_consumed(&r, 65536), 65536);
    CHECK_EQ(r.window, 1000);
    CHECK_OK(px_h2_recv_window_take(&r, 1000));
    CHECK_EQ(px_h2_recv_window_take(&r, 1), -EOVERFLOW);
    /* Raising it opens the difference with no WINDOW_UPDATE: the peer adds it itself. */
    px_h2_recv_window_settings(&r, 5000);
    CHECK_EQ(r.window, 4000);
    CHECK_EQ(r.size, 5000);
}

int main(void)
{
    RUN(recv_side_settings_change);
    RUN(send_side);
    RUN(recv_side_batching);
    RUN(slow_reader_is_bounded_and_never_stalls);
    return TEST_SUMMARY();
}
