/*
 * tests/unit/codec/stab_test.c: the codec's stream table (proxy/codec/stab.c): random puts and
 * deletes checked against a plain array (backward-shift deletion must never lose an entry),
 * the ring of closed streams and how each closed, and that the slot array goes back to the
 * thread cache when the last stream closes.
 */
#include "mem/base.h"

#include <stdio.h>
#include <stdlib.h>

#include "mem/mem.h"
#include "mem/stats.h"
#include "proxy/codec/stab.h"
#include "tests/harness.h"

static uint64_t live(void)
{
    mem_stats_t st;
    mem_thread_flush();
    if (mem_stats_snapshot(&st) != 0)
        return UINT64_MAX;
    return st.live;
}

#define IDS 4096

TEST(random_against_reference)
{
    static bool in[IDS + 1]; /* ids 1..IDS */
    static int tag[IDS + 1];
    px_h2_stab_t t;
    px_h2_stab_init(&t);
    srand(7);
    uint32_t cnt = 0, max_cnt = 0;
    for (int step = 0; step < 200000; step++) {
        int32_t id = 1 + 2 * (rand() % (IDS / 2)); /* odd, as a client's */
        if (rand() % 3 == 0)
            id++; /* and even, as ours */
        if (in[id]) {
            CHECK(px_h2_stab_get(&t, id) == &tag[id]);
            px_h2_stab_del(&t, id, (px_h2_closed_t)(id % 3));
            in[id] = false;
            cnt--;
            px_h2_closed_t how;
            CHECK(px_h2_stab_closed_find(&t, id, &how));
            CHECK_EQ(how, id % 3);
        } else {
            CHECK(px_h2_stab_get(&t, id) == NULL);
            if (cnt < 300 && px_h2_stab_put(&t, id, &tag[id]) == 0) {
                in[id] = true;
                cnt++;
            }
        }
        CHECK_EQ(t.cnt, cnt);
        max_cnt = MEM_MAX(max_cnt, cnt);
        if (step % 5000 == 0)
            for (int32_t i = 1; i <= IDS; i++)
                CHECK((px_h2_stab_get(&t, i) != NULL) == in[i]);
    }
    CHECK(max_cnt >= 100);
    for (int32_t i = 1; i <= IDS; i++)
        if (in[i]) {
            px_h2_stab_del(&t, i, PX_H2_CLOSED_NORMAL);
            in[i] = false;
        }
    CHECK_EQ(t.cnt, 0);
    CHECK(t.slots == NULL); /* no live stream, no slot array */
    px_h2_stab_fini(&t);
}

TEST(closed_ring_forgets_the_oldest)
{
    px_h2_stab_t t;
    px_h2_stab_init(&t);
    int x;
    for (int32_t id = 1; id < 1 + 2 * 40; id += 2) {
        REQUIRE(px_h2_stab_put(&t, id, &x) == 0);
        px_h2_stab_del(&t, id, id < 20 ? PX_H2_CLOSED_BY_PEER : PX_H2_CLOSED_BY_US);
    }
    px_h2_closed_t how;
    CHECK(!px_h2_stab_closed_find(&t, 1, &how)); /* 40 closed, 32 remembered */
    CHECK(!px_h2_stab_closed_find(&t, 15, &how));
    CHECK(px_h2_stab_closed_find(&t, 17, &how));
    CHECK_EQ(how, PX_H2_CLOSED_BY_PEER);
    CHECK(px_h2_stab_closed_find(&t, 79, &how));
    CHECK_EQ(how, PX_H2_CLOSED_BY_US);
    /* A stream refused before it was live is remembered as ours; drop forgets. */
    px_h2_stab_remember(&t, 81, PX_H2_CLOSED_BY_US);
    CHECK(px_h2_stab_closed_find(&t, 81, &how));
    REQUIRE(px_h2_stab_put(&t, 83, &x) == 0);
    px_h2_stab_drop(&t, 83);
    CHECK(!px_h2_stab_closed_find(&t, 83, &how));
    CHECK(px_h2_stab_get(&t, 83) == NULL);
    px_h2_stab_fini(&t);
}

int main(void)
{
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        return 1;
    uint64_t before = live();
    RUN(random_against_reference);
    RUN(closed_ring_forgets_the_oldest);
    uint64_t after = live();
    if (after != before) {
        fprintf(stderr, "live bytes %llu before, %llu after\n", (unsigned long long)before,
                (unsigned long long)after);
        th_tests_failed++;
    }
    return TEST_SUMMARY();
}
