/*
 * tests/unit/h2/guard_test.c: the per-connection accounting of proxy/h2/guard.c: the
 * stream-reset budget that client resets and resets provoked by the client share (rapid reset,
 * "MadeYouReset"), which reset codes blame the client, and the memory of cleanly closed
 * streams.
 */
#include "mem/base.h"

#include "proxy/h2/guard.h"
#include "tests/harness.h"

TEST(reset_budget_per_second)
{
    px_h2_guard_t g;
    px_h2_guard_init(&g);
    /* 100 a second pass; the 101st in the same second is over. */
    for (int i = 0; i < 100; i++)
        CHECK(!px_h2_guard_reset(&g, 5000 + (uint64_t)i, 100));
    CHECK(px_h2_guard_reset(&g, 5500, 100));
    CHECK(px_h2_guard_reset(&g, 5999, 100));
    /* A new second starts a new budget. */
    CHECK(!px_h2_guard_reset(&g, 6000, 100));
    CHECK_EQ(g.rst_cnt, 1u);
    /* 0 means unlimited and counts nothing. */
    for (int i = 0; i < 1000; i++)
        CHECK(!px_h2_guard_reset(&g, 6000, 0));
    CHECK_EQ(g.rst_cnt, 1u);
}

TEST(reset_budget_of_one)
{
    px_h2_guard_t g;
    px_h2_guard_init(&g);
    CHECK(!px_h2_guard_reset(&g, 1000, 1));
    CHECK(px_h2_guard_reset(&g, 1001, 1));
    CHECK(!px_h2_guard_reset(&g, 2001, 1));
}

TEST(which_resets_blame_the_client)
{
    /* RFC 9113 7: errors in what the peer sent. */
    CHECK(px_h2_guard_reset_blames_peer(0x1)); /* PROTOCOL_ERROR: content-length mismatch */
    CHECK(px_h2_guard_reset_blames_peer(0x3)); /* FLOW_CONTROL_ERROR: window overflow */
    CHECK(px_h2_guard_reset_blames_peer(0x5)); /* STREAM_CLOSED: DATA after END_STREAM */
    CHECK(px_h2_guard_reset_blames_peer(0x6)); /* FRAME_SIZE_ERROR */
    /* weir's own reasons. */
    CHECK(!px_h2_guard_reset_blames_peer(0x0)); /* NO_ERROR */
    CHECK(!px_h2_guard_reset_blames_peer(0x2)); /* INTERNAL_ERROR: out of memory */
    CHECK(!px_h2_guard_reset_blames_peer(0x7)); /* REFUSED_STREAM: overload */
    CHECK(!px_h2_guard_reset_blames_peer(0x8)); /* CANCEL: idle timeout */
    CHECK(!px_h2_guard_reset_blames_peer(0xb)); /* ENHANCE_YOUR_CALM: shedding */
}

TEST(closed_clean_memory)
{
    px_h2_guard_t g;
    px_h2_guard_init(&g);
    px_h2_guard_stream_closed(&g, 1, 0, false);
    px_h2_guard_stream_closed(&g, 3, 0x8, false); /* reset: not remembered */
    px_h2_guard_stream_closed(&g, 5, 0, true);    /* we reset it: not remembered */
    CHECK(px_h2_guard_closed_clean(&g, 1));
    CHECK(!px_h2_guard_closed_clean(&g, 3));
    CHECK(!px_h2_guard_closed_clean(&g, 5));
    for (int32_t id = 7; id < 7 + 2 * PX_H2_GUARD_CLOSED_CNT; id += 2)
        px_h2_guard_stream_closed(&g, id, 0, false);
    CHECK(!px_h2_guard_closed_clean(&g, 1)); /* pushed out of the ring */
}

int main(void)
{
    RUN(reset_budget_per_second);
    RUN(reset_budget_of_one);
    RUN(which_resets_blame_the_client);
    RUN(closed_clean_memory);
    return TEST_SUMMARY();
}
