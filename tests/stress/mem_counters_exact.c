/*
 * tests/stress/mem_counters_exact.c: counters stay exact under concurrency (args: threads
 * iterations; defaults 4 20000). Threads on two pretended nodes allocate small, run-class and
 * large (dedicated mapping) objects at once, hand their objects to the next thread at every
 * round, and keep regions; two of them run on the shared cache (as a thread past the
 * registry or past its exit destructor does). At every quiescent point (all threads parked
 * at a barrier) the main thread checks, per node, that `committed` equals what a walk of the
 * node's segments and large mappings finds, that the nodes and metadata add up to the global
 * counter, the global identity, and the region counters against what the threads hold; after
 * the run, that nothing drifted (only segment headers and metadata stay committed).
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/internal.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"
#include "mem/tcache.h"
#include "tests/harness.h"

#include <pthread.h>

#define ROUNDS  8
#define HELD    64 /* objects each thread holds between rounds */
#define REGIONS 2  /* regions each thread holds between rounds */

typedef struct {
    void *obj[HELD];
} ring_t;

static int nthreads = 4;
static int iters = 20000;
static ring_t *rings; /* ring i is used by one thread per round; passed on at the barrier */
static mem_region_t *regions[64][REGIONS];
static pthread_barrier_t park, resume;
static mem_stats_t st;

static size_t len_of(uint64_t x)
{
    switch (x % 8) {
    case 0:
        return 300000 + x % 200000; /* dedicated mapping: the node counters' other path */
    case 1:
    case 2:
        return 33000 + x % 200000; /* a run of spans */
    default:
        return 16 + x % 9000;
    }
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    if (id < 2) {
        /* These two behave as threads without a cache of their own: they share the locked
         * one, and its region counters, concurrently. */
        mem__tcache_detach_self(true);
    } else if (mem_thread_attach(id % 2) != 0) {
        return (void *)1;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
    for (int r = 0; r < ROUNDS; r++) {
        ring_t *ring = &rings[(id + r) % nthreads]; /* another thread's objects each round */
        for (int i = 0; i < iters / ROUNDS; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int k = (int)(x % HELD);
            mem_free(ring->obj[k]);
            size_t len = len_of(x >> 8);
            ring->obj[k] = mem_malloc(len);
            if (!ring->obj[k])
                return (void *)1;
            ((char *)ring->obj[k])[len - 1] = 1;
            if (i % 64 == 0) {
                int j = (int)((x >> 20) % REGIONS);
                mem_region_free(regions[id][j]);
                regions[id][j] = mem_region_new(64 * 1024);
                if (!regions[id][j] || !mem_region_alloc(regions[id][j], 3000))
                    return (void *)1;
            }
        }
        pthread_barrier_wait(&park);   /* quiescent: main checks */
        pthread_barrier_wait(&resume); /* main is done */
    }
    for (int j = 0; j < REGIONS; j++) {
        mem_region_free(regions[id][j]);
        regions[id][j] = NULL;
    }
    mem_thread_flush();
    return NULL;
}

/* Walks node `n`'s segments: header bytes plus every committed span, plus its large bytes. */
static uint64_t node_walk(mem__node_t *n)
{
    uint64_t sum = 0;
    pthread_mutex_lock(&n->lock);
    for (mem__segment_t *seg = n->segs; seg; seg = seg->next) {
        sum += seg->meta_bytes;
        for (unsigned i = 1; i < MEM_SPANS_PER_SEG; i++)
            if (seg->spans[i].state != MEM_SPAN_CLEAN)
                sum += MEM_SPAN_SIZE;
    }
    sum += n->large_bytes;
    pthread_mutex_unlock(&n->lock);
    return sum;
}

static void check_quiescent(const char *when, uint64_t regions_held)
{
    mem_stats_snapshot(&st);
    uint64_t nodes = 0;
    for (unsigned i = 0; i < st.nodes_cnt; i++) {
        uint64_t walked = node_walk(&mem__g.nodes[i]);
        if (walked != st.nodes[i].committed)
            fprintf(stderr, "%s: node %u committed %llu, walk finds %llu\n", when, i,
                    (unsigned long long)st.nodes[i].committed, (unsigned long long)walked);
        CHECK_EQ(st.nodes[i].committed, walked);
        nodes += st.nodes[i].committed;
    }
    CHECK_EQ(nodes + st.metadata, st.committed);
    CHECK_EQ(st.live + st.tcache + st.depot + st.free_in_segments + st.metadata, st.committed);
    CHECK_EQ(st.regions_live, regions_held);
    /* Metadata (thread-cache mappings, profiler tables, registry) is committed outside the
     * heap's mappings: a nearly full segment plus metadata can pass `mapped`. */
    CHECK(st.committed - st.metadata <= st.mapped);
}

TEST(counters_exact)
{
    rings = mem_calloc((size_t)nthreads, sizeof(ring_t));
    REQUIRE(rings != NULL);
    REQUIRE(pthread_barrier_init(&park, NULL, (unsigned)nthreads + 1) == 0);
    REQUIRE(pthread_barrier_init(&resume, NULL, (unsigned)nthreads + 1) == 0);
    pthread_t t[64];
    for (int i = 0; i < nthreads; i++)
        REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&park);
        check_quiescent("round", (uint64_t)nthreads * REGIONS);
        pthread_barrier_wait(&resume);
    }
    int failed = 0;
    for (int i = 0; i < nthreads; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        failed += rv != NULL;
    }
    CHECK_EQ(failed, 0);
    check_quiescent("joined", 0);
    for (int i = 0; i < nthreads; i++)
        for (int k = 0; k < HELD; k++)
            mem_free(rings[i].obj[k]);
    mem_free(rings);
    mem_release_now();
    check_quiescent("all freed", 0);
    /* No drift: only segment headers and metadata stay committed, nothing is live. */
    CHECK_EQ(st.live, 0);
    CHECK_EQ(st.region_bytes, 0);
    CHECK_EQ(st.committed, st.meta_bytes + st.metadata);
    for (unsigned i = 0; i < st.nodes_cnt; i++)
        CHECK_EQ(mem__g.nodes[i].large_bytes, 0);
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
    if (nthreads < 2 || nthreads > 64 || iters < ROUNDS) {
        fprintf(stderr, "usage: %s [threads 2..64] [iterations >= %d]\n", argv[0], ROUNDS);
        return 2;
    }
    mem_config_t cfg;
    mem_config_default(&cfg);
    cfg.numa_nodes = 2;
    cfg.sample_bytes = 256 * 1024; /* sampled objects take the slow paths too */
    if (mem_init(&cfg) != 0)
        return 1;
    RUN(counters_exact);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
