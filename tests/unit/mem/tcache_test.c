/*
 * tests/unit/mem/tcache_test.c: thread caches: the byte bound, LIFO reuse, refill and spill
 * as whole batches, flush at thread exit and on detach, lazy creation, the shared cache.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "mem/tcache.h"
#include "tests/harness.h"

#include <pthread.h>

static mem_stats_t st;

TEST(capacity_bound)
{
    size_t max = mem__g.cfg.tcache_bytes_max;
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        size_t sz = mem_sc_size[c];
        CHECK(mem__g.batch[c] >= 1);
        CHECK(mem__g.batch[c] <= MEM_BATCH_MAX);
        CHECK(mem__g.cap[c] == 0 || mem__g.batch[c] <= mem__g.cap[c]);
        /* One class holds at most half the bound; the whole cache is bounded at run time. */
        CHECK((size_t)mem__g.cap[c] * sz <= max / 2);
        /* Batches are sized in bytes: from 8 KiB on, a whole batch is at least 64 KiB or one
         * object, and every class of the default configuration is cached. */
        if (sz >= 8192)
            CHECK((size_t)mem__g.batch[c] * sz >= MEM_MIN((size_t)64 * 1024, sz));
        CHECK(mem__g.cap[c] >= 2);
    }
    for (unsigned c = MEM_SC_COUNT; c < MEM_TC_IDX; c++)
        CHECK_EQ(mem__tc_self->cap[c], 0);
}

/* Frees of every class fill the cache: its bytes never pass tcache_bytes_max, and the fast
 * paths' running sum stays equal to the objects it holds. */
TEST(byte_bound_holds_under_frees)
{
    static void *ps[MEM_SC_COUNT][8];
    for (unsigned c = 0; c < MEM_SC_COUNT; c++)
        for (unsigned i = 0; i < 8; i++)
            REQUIRE((ps[c][i] = mem_malloc(mem_sc_size[c])) != NULL);
    mem__tcache_t *tc = mem__tc_self;
    REQUIRE(tc->reg_idx >= 0);
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        for (unsigned i = 0; i < 8; i++) {
            mem_free(ps[c][i]);
            CHECK(tc->bytes <= tc->bytes_max);
        }
    }
    uint64_t sum = 0;
    for (unsigned c = 0; c < MEM_SC_COUNT; c++)
        sum += (uint64_t)tc->cnt[c] * mem_sc_size[c];
    CHECK_EQ(sum, tc->bytes);
    CHECK(tc->bytes >= tc->bytes_max / 2); /* the bound is used, not just respected */
}

TEST(lifo_reuse)
{
    void *a = mem_malloc(100);
    REQUIRE(a);
    mem_free(a);
    void *b = mem_malloc(100);
    CHECK(a == b); /* the warmest object comes back first */
    mem_free(b);
}

TEST(refill_and_spill_batches)
{
    unsigned c = mem_sc_of(64);
    uint32_t cap = mem__tc_self->cap[c];
    REQUIRE(cap >= 4);
    mem_release_now();
    static void *ps[4096];
    unsigned n = cap * 3;
    REQUIRE(n <= 4096);
    for (unsigned i = 0; i < n; i++)
        REQUIRE((ps[i] = mem_malloc(64)) != NULL);
    CHECK(mem__tc_self->cnt[c] < cap);
    for (unsigned i = 0; i < n; i++) {
        mem_free(ps[i]);
        CHECK(mem__tc_self->cnt[c] <= cap);
    }
    mem_stats_snapshot(&st);
    /* Spilled halves went to the depot as whole batches. */
    CHECK(st.classes[c].depot_bytes >= (uint64_t)mem__g.batch[c] * 64);
    CHECK_EQ(st.classes[c].depot_bytes % ((uint64_t)mem__g.batch[c] * 64), 0);
    CHECK(st.classes[c].tcache_bytes <= (uint64_t)cap * 64);
}

static unsigned thread_cls;
static void *exiting(void *arg)
{
    (void)arg;
    static void *ps[256];
    for (int i = 0; i < 256; i++)
        ps[i] = mem_malloc(200);
    for (int i = 0; i < 256; i++)
        mem_free(ps[i]);
    return NULL;
}

TEST(flush_at_thread_exit)
{
    mem_release_now();
    thread_cls = mem_sc_of(200);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, exiting, NULL) == 0);
    pthread_join(t, NULL);
    mem_stats_snapshot(&st);
    /* The exited thread's cache was flushed to the depot: nothing is left in caches of
     * threads that are gone, and its counts live on in the totals. */
    CHECK_EQ(st.classes[thread_cls].tcache_bytes,
             (uint64_t)mem__tc_self->cnt[thread_cls] * mem_sc_size[thread_cls]);
    CHECK(st.classes[thread_cls].depot_bytes > 0);
    CHECK(st.classes[thread_cls].alloc_cnt >= 256);
    CHECK_EQ(st.classes[thread_cls].live_cnt, 0);
}

TEST(detach_and_reattach)
{
    void *p = mem_malloc(32);
    REQUIRE(p);
    mem_free(p);
    CHECK(mem__tc_self->reg_idx >= 0);
    mem_thread_detach();
    CHECK(mem__tc_self->reg_idx < 0);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.tcache, 0);
    p = mem_malloc(32); /* re-attaches lazily */
    REQUIRE(p);
    CHECK(mem__tc_self->reg_idx >= 0);
    mem_free(p);
    CHECK_OK(mem_thread_attach(0));
    CHECK(mem_thread_attach(5) == -EINVAL);
}

/* 300 threads at once: more than the registry holds, so some share the locked cache. */
static pthread_barrier_t bar;
static void *crowd(void *arg)
{
    (void)arg;
    void *p = mem_malloc(48);
    pthread_barrier_wait(&bar);
    mem_free(p);
    return p ? NULL : (void *)1;
}

TEST(more_threads_than_registry)
{
    enum { N = MEM_REG_MAX + 44 };
    static pthread_t t[N];
    REQUIRE(pthread_barrier_init(&bar, NULL, N) == 0);
    int started = 0;
    for (int i = 0; i < N; i++) {
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 64 * 1024);
        if (pthread_create(&t[i], &a, crowd, NULL) != 0)
            break;
        started++;
    }
    REQUIRE(started == N);
    for (int i = 0; i < N; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        CHECK(rv == NULL);
    }
    pthread_barrier_destroy(&bar);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.live, 0);
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
    void *warm = mem_malloc(1);
    mem_free(warm);
    RUN(capacity_bound);
    RUN(byte_bound_holds_under_frees);
    RUN(lifo_reuse);
    RUN(refill_and_spill_batches);
    RUN(flush_at_thread_exit);
    RUN(detach_and_reattach);
    RUN(more_threads_than_registry);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
