/*
 * tests/fault/mem_fault_sweep.c: fail the Nth segment mapping or budget charge for
 * N = 1, 2, ... until a whole workload runs without a fault. Every failure must reach the
 * caller as NULL (realloc keeps the old block), nothing crashes, and after freeing
 * everything no byte is live and the totals reconcile.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"

#define KEEP 1500

static mem_stats_t st;

/* Runs the workload; returns how many calls reported failure. */
static unsigned workload(void)
{
    static void *keep[KEEP];
    unsigned nulls = 0, n = 0;
    for (unsigned i = 0; i < KEEP; i++) {
        void *p;
        switch (i % 6) {
        case 0:
            p = mem_malloc(16 + (i * 131) % 30000);
            break;
        case 1:
            p = mem_calloc(1 + i % 50, 24);
            break;
        case 2:
            /* Now and then a large object (its own mapping), else a mid-size one. */
            p = mem_malloc(i % 60 == 2 ? 40000 + (size_t)i * 10 : 3000 + i);
            break;
        case 3:
            p = mem_aligned_alloc(4096, 100 + i);
            break;
        case 4:
            p = mem_strdup("a string to copy");
            break;
        default: {
            p = mem_malloc(64);
            if (p) {
                memset(p, 0x5A, 64);
                void *q = mem_realloc(p, 9000 + i);
                if (!q) {
                    nulls++;
                    /* The old block survives a failed realloc. */
                    CHECK(((unsigned char *)p)[63] == 0x5A);
                } else {
                    CHECK(((unsigned char *)q)[63] == 0x5A);
                    p = q;
                }
            }
        }
        }
        if (!p) {
            nulls++;
            continue;
        }
        keep[n++] = p;
        if (i % 4 == 3) { /* some churn so frees and refills interleave */
            mem_free(keep[--n]);
        }
    }
    for (unsigned i = 0; i < n; i++)
        mem_free(keep[i]);
    return nulls;
}

TEST(sweep_nth)
{
    unsigned total_nulls = 0;
    uint64_t n;
    for (n = 1; n < 100000; n++) {
        mem_config_t cfg;
        mem_config_default(&cfg);
        cfg.sample_bytes = 0;
        REQUIRE(mem_init(&cfg) == 0);
        uint64_t before = mem_fault_injected();
        mem_fault_set(n, 0);
        unsigned nulls = workload();
        mem_fault_set(0, 0);
        uint64_t injected = mem_fault_injected() - before;
        total_nulls += nulls;
        CHECK(nulls <= injected * 2); /* a failed realloc also counts its own NULL */
        mem_stats_snapshot(&st);
        CHECK_EQ(st.live, 0);
        CHECK_EQ(st.live + st.tcache + st.depot + st.free_in_segments + st.metadata, st.committed);
        mem_release_now();
        CHECK_EQ(mem_fini(), 0);
        if (injected == 0)
            break; /* the fault point lies past the workload: every point was covered */
    }
    fprintf(stderr, "  swept %llu fault points, %u NULLs reported\n", (unsigned long long)n - 1,
            total_nulls);
    CHECK(n > 10);
    CHECK(total_nulls > 0);
}

TEST(random_one_in)
{
    mem_config_t cfg;
    mem_config_default(&cfg);
    REQUIRE(mem_init(&cfg) == 0);
    uint64_t before = mem_fault_injected();
    mem_fault_set(0, 7);
    unsigned nulls = 0;
    for (int r = 0; r < 5; r++)
        nulls += workload();
    mem_fault_set(0, 0);
    CHECK(mem_fault_injected() > before);
    CHECK(nulls > 0);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.live, 0);
    CHECK(st.alloc_failed > 0);
    CHECK_EQ(mem_fini(), 0);
}

int main(void)
{
    RUN(sweep_nth);
    RUN(random_one_in);
    return TEST_SUMMARY();
}
