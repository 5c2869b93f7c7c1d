/*
 * tests/unit/mem/depot_test.c: depot batches: push/pop keep a batch whole (LIFO of batches),
 * a full depot hands objects back to their spans, drain and trim empty it, and concurrent
 * pushers and poppers lose or duplicate nothing.
 */
#include "mem/base.h"
#include "mem/depot.h"
#include "mem/internal.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"

#include <pthread.h>

static mem_stats_t st;

static uint64_t free_in_segs(void)
{
    mem_stats_snapshot(&st);
    return st.free_in_segments;
}

TEST(push_pop_whole_batches)
{
    mem__node_t *n = &mem__g.nodes[0];
    unsigned c = mem_sc_of(96);
    void *a[8], *b[5], *out[MEM_BATCH_MAX];
    REQUIRE(mem__span_take(n, c, a, 8) == 8);
    REQUIRE(mem__span_take(n, c, b, 5) == 5);
    mem__depot_push(n, c, a, 8);
    mem__depot_push(n, c, b, 5);
    CHECK_EQ(n->depot[c].batches, 2);
    CHECK_EQ(n->depot[c].bytes, 13 * 96);
    unsigned k = mem__depot_pop(n, c, out, MEM_BATCH_MAX);
    REQUIRE(k == 5);
    for (unsigned i = 0; i < 5; i++)
        CHECK(out[i] == b[i]);
    k = mem__depot_pop(n, c, out, MEM_BATCH_MAX);
    REQUIRE(k == 8);
    for (unsigned i = 0; i < 8; i++)
        CHECK(out[i] == a[i]);
    CHECK_EQ(mem__depot_pop(n, c, out, MEM_BATCH_MAX), 0);
    CHECK_EQ(n->depot[c].bytes, 0);
    mem__span_give(n, c, a, 8);
    mem__span_give(n, c, b, 5);
}

TEST(full_depot_gives_to_spans)
{
    mem__node_t *n = &mem__g.nodes[0];
    unsigned c = mem_sc_of(2000);
    uint32_t max = mem__g.depot_batches_max[c];
    static void *objs[64][4];
    REQUIRE(max + 2 <= 64);
    for (uint32_t i = 0; i < max + 2; i++)
        REQUIRE(mem__span_take(n, c, objs[i], 4) == 4);
    uint64_t f0 = free_in_segs();
    for (uint32_t i = 0; i < max + 2; i++)
        mem__depot_push(n, c, objs[i], 4);
    CHECK_EQ(n->depot[c].batches, max);
    /* The two batches that did not fit went back to their spans. */
    CHECK_EQ(free_in_segs() - f0, 2 * 4 * (uint64_t)mem_sc_size[c]);
    size_t moved = mem__depot_drain(n, c);
    CHECK_EQ(moved, (size_t)max * 4 * mem_sc_size[c]);
    CHECK_EQ(n->depot[c].batches, 0);
}

TEST(trim_low_water)
{
    mem__node_t *n = &mem__g.nodes[0];
    unsigned c = mem_sc_of(300);
    void *objs[3][2], *out[MEM_BATCH_MAX];
    for (int i = 0; i < 3; i++) {
        REQUIRE(mem__span_take(n, c, objs[i], 2) == 2);
        mem__depot_push(n, c, objs[i], 2);
    }
    CHECK_EQ(mem__depot_trim(n, c), 0);                     /* first tick: sets the mark to 3 */
    REQUIRE(mem__depot_pop(n, c, out, MEM_BATCH_MAX) == 2); /* mark falls to 2 */
    mem__span_give(n, c, out, 2);
    CHECK_EQ(mem__depot_trim(n, c), 2 * 2 * (size_t)mem_sc_size[c]); /* 2 idle batches */
    CHECK_EQ(n->depot[c].batches, 0);
}

/* Threads pop batches and push them back; every object must survive exactly once. */
#define OBJS 512
static void *pool[OBJS];
static volatile int go;

static void *churn(void *arg)
{
    (void)arg;
    mem__node_t *n = &mem__g.nodes[0];
    unsigned c = mem_sc_of(32);
    void *out[MEM_BATCH_MAX];
    while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
        ;
    for (int i = 0; i < 20000; i++) {
        unsigned k = mem__depot_pop(n, c, out, MEM_BATCH_MAX);
        if (k)
            mem__depot_push(n, c, out, k);
    }
    return NULL;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

TEST(concurrent_push_pop)
{
    mem__node_t *n = &mem__g.nodes[0];
    unsigned c = mem_sc_of(32);
    REQUIRE(mem__span_take(n, c, pool, OBJS) == OBJS);
    /* Exactly as many batches as the depot holds, so none is diverted to the spans. */
    REQUIRE(OBJS / 16 <= mem__g.depot_batches_max[c]);
    for (int i = 0; i < OBJS; i += 16)
        mem__depot_push(n, c, pool + i, 16);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        REQUIRE(pthread_create(&t[i], NULL, churn, NULL) == 0);
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    static void *back[OBJS];
    unsigned got = 0;
    void *out[MEM_BATCH_MAX];
    unsigned k;
    while ((k = mem__depot_pop(n, c, out, MEM_BATCH_MAX)) != 0) {
        REQUIRE(got + k <= OBJS);
        memcpy(back + got, out, k * sizeof(void *));
        got += k;
    }
    CHECK_EQ(got, OBJS);
    qsort(pool, OBJS, sizeof(void *), cmp_ptr);
    qsort(back, OBJS, sizeof(void *), cmp_ptr);
    CHECK(memcmp(pool, back, sizeof(pool)) == 0);
    mem__span_give(n, c, back, OBJS);
    CHECK_EQ(n->depot[c].bytes, 0);
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
    RUN(push_pop_whole_batches);
    RUN(full_depot_gives_to_spans);
    RUN(trim_low_water);
    RUN(concurrent_push_pop);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.live + st.tcache + st.depot + st.free_in_segments + st.metadata, st.committed);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
