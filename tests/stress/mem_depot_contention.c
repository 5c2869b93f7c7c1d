/*
 * tests/stress/mem_depot_contention.c: many threads allocate and free more than their
 * caches hold, in the same few classes, so refills and spills hammer the same depots
 * (args: threads iterations; defaults 4 300, small enough for TSan in seconds).
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"

#include <pthread.h>

static int iters = 300;
static int nthreads_arg = 4;
static int bad;

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    enum { N = 1500 };
    void **ps = mem_malloc(N * sizeof(void *));
    if (!ps) {
        __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    for (int it = 0; it < iters; it++) {
        size_t len = (it % 3 == 0) ? 32 : (it % 3 == 1) ? 256 : 2048;
        for (int i = 0; i < N; i++) {
            ps[i] = mem_malloc(len);
            if (!ps[i]) {
                __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
                return NULL;
            }
            *(uintptr_t *)ps[i] = id;
        }
        for (int i = 0; i < N; i++) {
            if (*(uintptr_t *)ps[i] != id)
                __atomic_store_n(&bad, 2, __ATOMIC_RELAXED);
            mem_free(ps[i]);
        }
        if (id == 0 && it % 50 == 0)
            mem_release_tick();
    }
    mem_free(ps);
    return NULL;
}

TEST(depot_contention)
{
    static mem_stats_t st;
    pthread_t t[64];
    for (int i = 0; i < nthreads_arg; i++)
        REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < nthreads_arg; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(bad, 0);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.live, 0);
    CHECK_EQ(st.live + st.tcache + st.depot + st.free_in_segments + st.metadata, st.committed);
    CHECK_EQ(st.alloc_cnt, st.free_cnt);
}

/* Every test ends with zero live bytes: mem_fini() reports what is still live. */
TEST(fini_nothing_live)
{
    CHECK_EQ(mem_fini(), 0);
}

int main(int argc, char **argv)
{
    nthreads_arg = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2)
        iters = atoi(argv[2]);
    if (nthreads_arg < 1 || nthreads_arg > 64 || iters < 1) {
        fprintf(stderr, "usage: %s [threads 1..64] [iterations]\n", argv[0]);
        return 2;
    }
    mem_config_t cfg;
    mem_config_default(&cfg);
    cfg.decay_ms = 5;
    if (mem_init(&cfg) != 0)
        return 1;
    RUN(depot_contention);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
