/*
 * tests/unit/h2/guard_test.c: proxy/h2/guard.c, the stream-reset budget that client resets
 * and resets provoked by the client share (rapid reset, "MadeYouReset").
 */
#include "mem/base.h"

#include "proxy/h2/guard.h"
#include "tests/harness.h"

TEST(reset_budget_per_second)
{
    px_h2_guard_t g = {0};
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
    px_h2_guard_t g = {0};
    CHECK(!px_h2_guard_reset(&g, 1000, 1));
    CHECK(px_h2_guard_reset(&g, 1001, 1));
    CHECK(!px_h2_guard_reset(&g, 2001, 1));
}

int main(void)
{
    RUN(reset_budget_per_second);
    RUN(reset_budget_of_one);
    return TEST_SUMMARY();
}
