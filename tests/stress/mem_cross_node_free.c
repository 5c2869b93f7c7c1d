/*
 * tests/stress/mem_cross_node_free.c: threads attached to 4 pretended NUMA nodes exchange
 * objects around a ring, so every free is remote (args: threads iterations; defaults 4
 * 20000). Objects must go home: no thread's own cache ever holds a foreign node's object,
 * remote frees are counted per home node, and nothing is live at the end.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "mem/tcache.h"
#include "tests/harness.h"

#include <pthread.h>
#include <sched.h>

#define NODES 4
#define RING  512

typedef struct {
    void *slot[RING];
    uint64_t head, tail;
} ring_t;

static int iters = 20000;
static int nthreads = 4;
static ring_t rings[64];
static int bad;

static void ring_put(ring_t *r, void *p)
{
    while (__atomic_load_n(&r->head, __ATOMIC_RELAXED) -
               __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) ==
           RING)
        sched_yield();
    uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
    r->slot[h % RING] = p;
    __atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
}

static void *ring_get(ring_t *r, bool *got)
{
    uint64_t t = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
    if (t == __atomic_load_n(&r->head, __ATOMIC_ACQUIRE)) {
        *got = false;
        return NULL;
    }
    void *p = r->slot[t % RING];
    __atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
    *got = true;
    return p;
}

/* The home node of an object (sampled objects live in their own large mapping). */
static unsigned home_of(const void *p)
{
    mem__seghdr_t *h = mem__seghdr_of(p);
    if (h->tag[mem__span_idx(p)] == MEM_TAG_LARGE)
        return ((const mem__large_t *)h)->node;
    return h->node;
}

static void check_own_cache(unsigned node)
{
    mem__tcache_t *tc = mem__tc_self;
    for (unsigned c = 0; c < MEM_SC_COUNT; c++)
        for (uint32_t i = 0; i < tc->cnt[c]; i++)
            if (mem__seghdr_of(tc->slots[c][i])->node != node)
                __atomic_store_n(&bad, 2, __ATOMIC_RELAXED);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned node = (unsigned)id % NODES;
    if (mem_thread_attach((int)node) != 0) {
        __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    ring_t *out = &rings[(id + 1) % nthreads], *in = &rings[id];
    int done_in = 0;
    for (int i = 0; i < iters; i++) {
        size_t len = 16 + (size_t)((i * 37 + id) % 3000);
        unsigned char *p = mem_malloc(len);
        if (!p || home_of(p) != node) {
            __atomic_store_n(&bad, 3, __ATOMIC_RELAXED);
            break;
        }
        p[0] = (unsigned char)node;
        ring_put(out, p);
        bool got;
        unsigned char *q;
        while ((q = ring_get(in, &got)) != NULL || got) {
            if (!q) {
                done_in = 1;
                continue;
            }
            if (q[0] != home_of(q))
                __atomic_store_n(&bad, 4, __ATOMIC_RELAXED);
            mem_free(q);
        }
        if (i % 1024 == 0)
            check_own_cache(node);
    }
    ring_put(out, NULL);
    while (!done_in) {
        bool got;
        unsigned char *q = ring_get(in, &got);
        if (!got) {
            sched_yield();
            continue;
        }
        if (!q)
            done_in = 1;
        else
            mem_free(q);
    }
    check_own_cache(node);
    return NULL;
}

TEST(cross_node_free)
{
    static mem_stats_t st;
    pthread_t t[64];
    for (int i = 0; i < nthreads; i++)
        REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(bad, 0);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.live, 0);
    CHECK_EQ(st.live + st.tcache + st.depot + st.free_in_segments + st.metadata, st.committed);
    uint64_t remote = 0;
    for (unsigned i = 0; i < NODES; i++) {
        remote += st.nodes[i].remote_frees;
        CHECK(st.nodes[i].segments >= 1);
    }
    fprintf(stderr, "  %d threads x %d objects, %llu remote frees sent home\n", nthreads, iters,
            (unsigned long long)remote);
    CHECK(remote >= (uint64_t)nthreads * (uint64_t)iters / 2);
    mem_release_now();
    mem_stats_snapshot(&st);
    CHECK_EQ(st.committed, st.meta_bytes + st.metadata);
}

/* Every test ends with zero live bytes: mem_fini() reports what is still live. */
TEST(fini_nothing_live)
{
    CHECK_EQ(mem_fini(), 0);
}

int main(int argc, char **argv)
{
    nthreads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2)
        iters = atoi(argv[2]);
    if (nthreads < 2 || nthreads > 64 || iters < 1) {
        fprintf(stderr, "usage: %s [threads 2..64] [iterations]\n", argv[0]);
        return 2;
    }
    mem_config_t cfg;
    mem_config_default(&cfg);
    cfg.numa_nodes = NODES;
    if (mem_init(&cfg) != 0)
        return 1;
    RUN(cross_node_free);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
