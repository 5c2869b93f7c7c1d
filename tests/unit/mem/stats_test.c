/*
 * tests/unit/mem/stats_test.c: the snapshot's totals reconcile exactly when quiescent
 * (live + tcache + depot + free_in_segments == committed) after a mixed, multi-thread,
 * multi-node workload and after mem_release_now(); per-thread, per-class and per-node views
 * agree with the totals; region counters are summed; RSS is read.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/heapprof.h"
#include "mem/internal.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"

#include <pthread.h>
#include <unistd.h>

static mem_stats_t st;

static void check_reconciles(const char *when)
{
    REQUIRE(mem_stats_snapshot(&st) == 0);
    uint64_t sum = st.live + st.tcache + st.depot + st.free_in_segments + st.metadata;
    if (sum != st.committed)
        fprintf(stderr, "%s: live %llu + tcache %llu + depot %llu + free %llu = %llu != %llu\n",
                when, (unsigned long long)st.live, (unsigned long long)st.tcache,
                (unsigned long long)st.depot, (unsigned long long)st.free_in_segments,
                (unsigned long long)sum, (unsigned long long)st.committed);
    CHECK_EQ(sum, st.committed);
    CHECK_EQ(st.committed, mem_budget_committed());
    uint64_t cl = 0, ct = 0, cd = 0, nc = 0, nl = 0, nd = 0;
    for (unsigned c = 0; c < st.classes_cnt; c++) {
        CHECK_EQ(st.classes[c].live_bytes, st.classes[c].live_cnt * st.classes[c].size);
        cl += st.classes[c].live_bytes;
        ct += st.classes[c].tcache_bytes;
        cd += st.classes[c].depot_bytes;
    }
    for (unsigned i = 0; i < st.nodes_cnt; i++) {
        nc += st.nodes[i].committed;
        nl += st.nodes[i].live;
        nd += st.nodes[i].depot;
    }
    CHECK_EQ(cl + st.large_live, st.live);
    CHECK_EQ(ct, st.tcache);
    CHECK_EQ(cd, st.depot);
    CHECK_EQ(nd, st.depot);
    CHECK_EQ(nc + st.metadata, st.committed); /* metadata belongs to no node */
    CHECK_EQ(nl, st.live);
    CHECK(st.mapped >= st.committed);
}

#define PER_THREAD 3000
static void *slots[4][PER_THREAD];

typedef struct {
    int id;
    int node;
} worker_arg_t;

static void *worker(void *arg)
{
    worker_arg_t *w = arg;
    if (mem_thread_attach(w->node) != 0)
        return (void *)1;
    for (int i = 0; i < PER_THREAD; i++) {
        size_t len = (size_t)((i * 7919 + w->id * 31) % 5000) + 1;
        if (i % 97 == 0)
            len = 300000 + (size_t)i; /* large (past the largest class) */
        else if (i % 89 == 0)
            len = 40000 + (size_t)i * 16; /* a class carved from a run of spans */
        slots[w->id][i] = mem_malloc(len);
        if (!slots[w->id][i])
            return (void *)1;
        memset(slots[w->id][i], w->id, MEM_MIN(len, (size_t)64));
        if (i % 3 == 0) { /* free some own objects at once */
            mem_free(slots[w->id][i]);
            slots[w->id][i] = NULL;
        }
    }
    /* Free half of the neighbour's objects: cross-thread and (with 2 nodes) cross-node. */
    return NULL;
}

static void *free_other(void *arg)
{
    worker_arg_t *w = arg;
    if (mem_thread_attach(w->node) != 0)
        return (void *)1;
    int other = (w->id + 1) % 4;
    for (int i = 0; i < PER_THREAD; i += 2) {
        mem_free(slots[other][i]);
        slots[other][i] = NULL;
    }
    return NULL;
}

TEST(reconcile_mixed_workload)
{
    worker_arg_t args[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg_t){.id = i, .node = i % 2};
        REQUIRE(pthread_create(&t[i], NULL, worker, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        CHECK(rv == NULL);
    }
    check_reconciles("after allocation");
    CHECK(st.live > 0);
    CHECK(st.large_cnt > 0);
    for (int i = 0; i < 4; i++)
        REQUIRE(pthread_create(&t[i], NULL, free_other, &args[i]) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    check_reconciles("after cross-thread frees");
    CHECK(st.nodes[0].remote_frees + st.nodes[1].remote_frees > 0);
    /* The main thread frees the rest and keeps some of its own. */
    void *mine[100];
    for (int i = 0; i < 100; i++)
        mine[i] = mem_malloc((size_t)i * 10 + 1);
    for (int w = 0; w < 4; w++)
        for (int i = 0; i < PER_THREAD; i++)
            mem_free(slots[w][i]);
    check_reconciles("main holds 100");
    size_t rel = mem_release_now();
    CHECK(rel > 0);
    check_reconciles("after release_now");
    CHECK_EQ(st.tcache, 0);
    CHECK_EQ(st.depot, 0);
    for (int i = 0; i < 100; i++)
        mem_free(mine[i]);
    mem_release_now();
    check_reconciles("all freed");
    CHECK_EQ(st.live, 0);
    CHECK_EQ(st.free_in_segments, st.meta_bytes); /* only headers stay committed */
    CHECK_EQ(st.alloc_cnt, st.free_cnt);
}

static const mem_thread_stats_t *find_self(void)
{
    uint64_t tid = (uint64_t)gettid();
    for (unsigned i = 0; i < st.threads_cnt; i++)
        if (st.threads[i].tid == tid)
            return &st.threads[i];
    return NULL;
}

TEST(thread_view)
{
    mem_heapprof_set_interval(0); /* a sampled object would count as large, not per thread */
    mem_stats_snapshot(&st);
    const mem_thread_stats_t *me = find_self();
    REQUIRE(me != NULL);
    int64_t live0 = me->live_signed;
    uint64_t allocs0 = me->alloc_cnt;
    void *p = mem_malloc(1000);
    REQUIRE(p);
    mem_stats_snapshot(&st);
    me = find_self();
    REQUIRE(me != NULL);
    CHECK_EQ(me->live_signed - live0, 1024);
    CHECK_EQ(me->alloc_cnt - allocs0, 1);
    CHECK_EQ(me->node, 0);
    CHECK_STR(me->name, "stats-main"); /* renamed after its cache was created */
    mem_free(p);
    mem_heapprof_set_interval(64 * 1024);
}

TEST(region_counters_summed)
{
    mem__tstats_t *t = mem__tstats_self();
    REQUIRE(t != NULL);
    mem_stats_snapshot(&st);
    uint64_t before = st.regions_created;
    MEM_STAT_ADD(t->regions_created, 2);
    MEM_STAT_ADD(t->regions_live, 1);
    MEM_STAT_ADD(t->region_bytes, 4096);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.regions_created, before + 2);
    CHECK_EQ(st.regions_live, 1);
    CHECK_EQ(st.region_bytes, 4096);
    MEM_STAT_SUB(t->regions_live, 1);
    MEM_STAT_SUB(t->region_bytes, 4096);
}

TEST(rss)
{
    uint64_t rss = mem_stats_rss();
    CHECK(rss > 100 * 1024);
    CHECK(rss < (uint64_t)64 << 30);
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
    cfg.numa_nodes = 2;
    cfg.sample_bytes = 64 * 1024; /* sampled objects must reconcile too */
    if (mem_init(&cfg) != 0)
        return 1;
    void *first = mem_malloc(8);
    mem_free(first);
    pthread_setname_np(pthread_self(), "stats-main");
    RUN(reconcile_mixed_workload);
    RUN(thread_view);
    RUN(region_counters_summed);
    RUN(rss);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
