/*
 * tests/unit/mem/budget_test.c: the hard limit (allocations past it return NULL, committed
 * never passes it), pressure, mem_release_now(), decay that lowers committed bytes and RSS on
 * its own, and raising the limit at run time.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"

#include <time.h>

static mem_stats_t st;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define MAXP 100000
static void *ps[MAXP];

TEST(limit_enforced)
{
    const size_t limit = 8u << 20;
    mem_budget_set_limit(limit);
    CHECK_EQ(mem_budget_limit(), limit);
    size_t n = 0, failed = 0;
    for (size_t i = 0; i < MAXP; i++) {
        size_t len = (i % 5 == 0) ? 50000 : 1000 + (i % 3000);
        void *p = mem_malloc(len);
        if (!p) {
            failed++;
            if (failed > 50)
                break;
            continue;
        }
        memset(p, 1, len); /* really commit */
        ps[n++] = p;
        CHECK(mem_budget_committed() <= limit);
    }
    CHECK(failed > 0);
    CHECK(mem_budget_committed() <= limit);
    CHECK(mem_budget_pressure() > 0.9);
    CHECK(mem_budget_pressure() <= 1.0);
    mem_stats_snapshot(&st);
    CHECK(st.alloc_failed >= failed);
    CHECK_EQ(st.budget_limit, limit);
    for (size_t i = 0; i < n; i++)
        mem_free(ps[i]);
    size_t rel = mem_release_now();
    CHECK(rel > 0);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.live, 0);
    CHECK(mem_budget_committed() < limit / 8);
    /* After release the memory is usable again. */
    void *p = mem_malloc(50000);
    CHECK(p != NULL);
    mem_free(p);
    mem_budget_set_limit(0);
    CHECK(mem_budget_pressure() == 0.0);
}

TEST(lower_limit_blocks_growth)
{
    void *keep = mem_malloc(1 << 20);
    REQUIRE(keep);
    mem_budget_set_limit(mem_budget_committed()); /* no room for any new mapping */
    CHECK(mem_malloc(2 << 20) == NULL);
    mem_budget_set_limit(0);
    void *p = mem_malloc(2 << 20);
    CHECK(p != NULL);
    mem_free(p);
    mem_free(keep);
}

TEST(decay_returns_memory)
{
    mem_release_now();
    uint64_t rss0 = mem_stats_rss();
    size_t c0 = mem_budget_committed();
    /* A burst of small objects, touched, then freed: they end up in spans, not the cache. */
    size_t n = 0;
    for (size_t i = 0; i < 60000; i++) {
        ps[n] = mem_malloc(512);
        REQUIRE(ps[n]);
        memset(ps[n], 7, 512);
        n++;
    }
    uint64_t rss1 = mem_stats_rss();
    size_t c1 = mem_budget_committed();
    CHECK(c1 >= c0 + 25 * 1000 * 1000);
    CHECK(rss1 >= rss0 + 20 * 1000 * 1000);
    for (size_t i = 0; i < n; i++)
        mem_free(ps[i]);
    mem_budget_set_decay_ms(20);
    /* Decay runs on slow paths and from mem_release_tick(): poll it with a deadline. */
    uint64_t deadline = now_ms() + 5000;
    size_t released = 0;
    while (now_ms() < deadline && mem_budget_committed() > c0 + 2 * 1000 * 1000) {
        released += mem_release_tick();
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    size_t c2 = mem_budget_committed();
    uint64_t rss2 = mem_stats_rss();
    fprintf(stderr, "  committed %zu -> %zu -> %zu, rss %llu -> %llu -> %llu, released %zu\n", c0,
            c1, c2, (unsigned long long)rss0, (unsigned long long)rss1, (unsigned long long)rss2,
            released);
    CHECK(released > 0);
    CHECK(c2 <= c0 + 2 * 1000 * 1000); /* what stays is at most the thread cache and depots */
    CHECK(rss2 + 20 * 1000 * 1000 <= rss1);
    mem_budget_set_decay_ms(1000);
}

/* Every test ends with zero live bytes: mem_fini() reports what is still live. */
TEST(fini_nothing_live)
{
    CHECK_EQ(mem_fini(), 0);
}

int main(void)
{
    mem_config_t cfg;
    mem_config_default(&cfg);
    cfg.sample_bytes = 0;
    if (mem_init(&cfg) != 0)
        return 1;
    RUN(limit_enforced);
    RUN(lower_limit_blocks_growth);
    RUN(decay_returns_memory);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
