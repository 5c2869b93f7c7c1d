/*
 * tests/unit/mem/numa_test.c: node discovery, pretended nodes (segments homed on the node of
 * the allocating thread), remote frees that go home as batches, re-attaching to another node.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/internal.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/numa.h"
#include "mem/stats.h"
#include "mem/tcache.h"
#include "tests/harness.h"

#include <pthread.h>

static mem_stats_t st;

TEST(discovery)
{
    unsigned real = mem_numa_real_nodes();
    CHECK(real >= 1);
    CHECK(real <= MEM_STATS_NODES_MAX);
    CHECK(mem_numa_cpu_node() < 64);
}

static unsigned node_of(void *p)
{
    return mem__seghdr_of(p)->node;
}

#define N 2000
static void *objs[N];

static void *alloc_on(void *arg)
{
    int node = (int)(intptr_t)arg;
    if (mem_thread_attach(node) != 0)
        return (void *)1;
    for (int i = 0; i < N; i++) {
        objs[i] = mem_malloc(64 + (size_t)(i % 7) * 16);
        if (!objs[i] || node_of(objs[i]) != (unsigned)node)
            return (void *)1;
    }
    return NULL;
}

TEST(pretend_nodes_placement_and_remote_free)
{
    CHECK_EQ(mem__g.nodes_cnt, 4);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, alloc_on, (void *)(intptr_t)3) == 0);
    void *rv;
    pthread_join(t, &rv);
    REQUIRE(rv == NULL);
    mem_stats_snapshot(&st);
    CHECK(st.nodes[3].segments >= 1);
    CHECK(st.nodes[3].live >= N * 64);
    uint64_t remote0 = st.nodes[3].remote_frees;
    /* This thread lives on node 1: every free is remote and goes home in batches. */
    REQUIRE(mem_thread_attach(1) == 0);
    for (int i = 0; i < N; i++)
        mem_free(objs[i]);
    mem_stats_snapshot(&st);
    CHECK(st.nodes[3].remote_frees > remote0);
    CHECK(st.nodes[3].depot > 0);
    CHECK_EQ(st.nodes[1].depot, 0);
    CHECK_EQ(st.live, 0);
    /* Nothing of node 3 ever entered this thread's own cache. */
    for (unsigned c = 0; c < MEM_SC_COUNT; c++)
        for (uint32_t i = 0; i < mem__tc_self->cnt[c]; i++)
            CHECK_EQ(node_of(mem__tc_self->slots[c][i]), 1);
    mem_release_now();
    mem_stats_snapshot(&st);
    CHECK_EQ(st.nodes[3].depot, 0);
    CHECK_EQ(st.nodes[3].committed, st.meta_bytes / st.segments * st.nodes[3].segments);
}

TEST(reattach_moves_node)
{
    REQUIRE(mem_thread_attach(2) == 0);
    void *p = mem_malloc(100);
    REQUIRE(p);
    CHECK_EQ(node_of(p), 2);
    REQUIRE(mem_thread_attach(0) == 0);
    void *q = mem_malloc(100);
    REQUIRE(q);
    CHECK_EQ(node_of(q), 0);
    mem_free(p); /* remote now */
    mem_free(q);
    void *big = mem_malloc(100000);
    REQUIRE(big);
    mem_stats_snapshot(&st);
    CHECK(st.nodes[0].committed >= 100000);
    mem_free(big);
}

/* Every test ends with zero live bytes: mem_fini() reports what is still live. */
TEST(fini_nothing_live)
{
    CHECK_EQ(mem_fini(), 0);
}

/* Partial remote batches for many (node, class) pairs stay within a quarter of the cache
 * bound: each node's thread allocates batch-1 objects of every class; node 0 frees them. */
static void *held[3][MEM_SC_COUNT][MEM_BATCH_MAX];

static void *alloc_partial(void *arg)
{
    int node = (int)(intptr_t)arg;
    if (mem_thread_attach(node) != 0)
        return (void *)1;
    for (unsigned c = 0; c < MEM_SC_COUNT; c++)
        for (uint32_t i = 0; i + 1 < mem__g.batch[c]; i++)
            if (!(held[node - 1][c][i] = mem_malloc(mem_sc_size[c])))
                return (void *)1;
    return NULL;
}

TEST(remote_batches_bounded)
{
    for (int node = 1; node <= 3; node++) {
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, alloc_partial, (void *)(intptr_t)node) == 0);
        void *rv;
        pthread_join(t, &rv);
        REQUIRE(rv == NULL);
    }
    REQUIRE(mem_thread_attach(0) == 0);
    mem_release_now(); /* start from an empty cache */
    uint64_t peak = 0;
    for (int node = 0; node < 3; node++)
        for (unsigned c = 0; c < MEM_SC_COUNT; c++)
            for (uint32_t i = 0; i + 1 < mem__g.batch[c]; i++) {
                mem_free(held[node][c][i]);
                peak = MEM_MAX(peak, mem__tc_self->remote_bytes);
            }
    fprintf(stderr, "  peak remote bytes %llu (bound %zu)\n", (unsigned long long)peak,
            mem__g.cfg.tcache_bytes_max / 4);
    CHECK(peak <= mem__g.cfg.tcache_bytes_max / 4 + MEM_SC_MAX);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.live, 0);
}

/* Sparse kernel node ids (0 and 2): mem/ counts two nodes, numbers them 0 and 1, and a
 * thread on a CPU of kernel node 2 gets a cache (and objects) homed on index 1. */
static void *lazy_alloc(void *arg)
{
    (void)arg;
    void *p = mem_malloc(100);
    unsigned home = p ? node_of(p) : UINT32_MAX;
    mem_free(p);
    return (void *)(uintptr_t)home;
}

static void *attach_as_worker(void *arg)
{
    (void)arg;
    if (mem_thread_attach(2) != -EINVAL)
        return (void *)(uintptr_t)100;
    if (mem_thread_attach(-1) != 0)
        return (void *)(uintptr_t)101;
    void *rv = lazy_alloc(NULL);
    mem_thread_detach();
    return rv;
}

TEST(sparse_node_ids)
{
    static int cpu_os[4096];
    for (int i = 0; i < 4096; i++)
        cpu_os[i] = 2; /* every CPU on kernel node 2 */
    const int ids[2] = {0, 2};
    mem__numa_pretend(ids, 2, cpu_os, 4096);
    mem_config_t cfg;
    mem_config_default(&cfg);
    cfg.sample_bytes = 0;
    REQUIRE(mem_init(&cfg) == 0);
    CHECK_EQ(mem_numa_real_nodes(), 2);
    CHECK_EQ(mem__g.nodes_cnt, 2);
    CHECK_EQ(mem_numa_os_node(0), 0);
    CHECK_EQ(mem_numa_os_node(1), 2);
    CHECK_EQ(mem_numa_os_node(2), -1);
    CHECK_EQ(mem_numa_cpu_node(), 1);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, lazy_alloc, NULL) == 0);
    void *rv;
    pthread_join(t, &rv);
    CHECK_EQ((uintptr_t)rv, 1);
    /* A worker attaches with -1 (the node of the CPU it is pinned to), never with the
     * kernel's id: 2 is no index here. */
    REQUIRE(pthread_create(&t, NULL, attach_as_worker, NULL) == 0);
    pthread_join(t, &rv);
    CHECK_EQ((uintptr_t)rv, 1);
    CHECK_EQ(mem_fini(), 0);
}

int main(void)
{
    mem_config_t cfg;
    mem_config_default(&cfg);
    cfg.numa_nodes = 4;
    cfg.sample_bytes = 0;
    RUN(discovery);
    cfg.numa_nodes = MEM_STATS_NODES_MAX + 1;
    CHECK(mem_init(&cfg) == -EINVAL);
    cfg.numa_nodes = 4;
    if (mem_init(&cfg) != 0)
        return 1;
    CHECK(mem_init(&cfg) == -EALREADY);
    RUN(pretend_nodes_placement_and_remote_free);
    RUN(reattach_moves_node);
    RUN(remote_batches_bounded);
    RUN(fini_nothing_live);
    RUN(sparse_node_ids);
    return TEST_SUMMARY();
}
