/*
 * tests/stress/mem_cross_thread_free.c: producers allocate and fill objects, consumers on
 * other threads check and free them (args: threads iterations; defaults 4 20000).
 * Every object arrives intact and goes back exactly once; the totals reconcile and nothing
 * is live at the end.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"

#include <pthread.h>
#include <sched.h>

#define RING 1024 /* power of two */

typedef struct {
    void *slot[RING];
    uint64_t head; /* written by the producer (atomic) */
    uint64_t tail; /* written by the consumer (atomic) */
} ring_t;

static int iters = 20000;
static int pairs = 2;
static ring_t *rings;
static int bad;

static size_t len_of(uint64_t i)
{
    static const size_t lens[] = {16, 24, 100, 256, 700, 1500, 4000, 9000, 20000, 40000};
    return lens[(i * 2654435761u >> 7) % MEM_ARRAY_LEN(lens)];
}

static void *producer(void *arg)
{
    ring_t *r = arg;
    for (uint64_t i = 0; i < (uint64_t)iters; i++) {
        size_t len = len_of(i);
        unsigned char *p = mem_malloc(len);
        if (!p) {
            __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
            break;
        }
        memset(p, (int)(i & 0xFF), len);
        while (__atomic_load_n(&r->head, __ATOMIC_RELAXED) -
                   __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) ==
               RING)
            sched_yield();
        uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
        r->slot[h % RING] = p;
        __atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
    }
    /* The consumer stops at a NULL. */
    while (__atomic_load_n(&r->head, __ATOMIC_RELAXED) -
               __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) ==
           RING)
        sched_yield();
    uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
    r->slot[h % RING] = NULL;
    __atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *consumer(void *arg)
{
    ring_t *r = arg;
    for (uint64_t i = 0;; i++) {
        while (__atomic_load_n(&r->tail, __ATOMIC_RELAXED) ==
               __atomic_load_n(&r->head, __ATOMIC_ACQUIRE))
            sched_yield();
        uint64_t t = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
        unsigned char *p = r->slot[t % RING];
        __atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
        if (!p)
            break;
        size_t len = len_of(i);
        if (p[0] != (unsigned char)(i & 0xFF) || p[len - 1] != (unsigned char)(i & 0xFF))
            __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
        mem_free(p);
    }
    return NULL;
}

TEST(cross_thread_free)
{
    static mem_stats_t st;
    rings = mem_calloc((size_t)pairs, sizeof(ring_t));
    REQUIRE(rings);
    pthread_t t[64];
    for (int i = 0; i < pairs; i++) {
        REQUIRE(pthread_create(&t[2 * i], NULL, producer, &rings[i]) == 0);
        REQUIRE(pthread_create(&t[2 * i + 1], NULL, consumer, &rings[i]) == 0);
    }
    for (int i = 0; i < 2 * pairs; i++)
        pthread_join(t[i], NULL);
    CHECK(!bad);
    mem_free(rings);
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
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2)
        iters = atoi(argv[2]);
    if (threads < 2 || threads > 64 || iters < 1) {
        fprintf(stderr, "usage: %s [threads 2..64] [iterations]\n", argv[0]);
        return 2;
    }
    pairs = threads / 2;
    if (mem_init(NULL) != 0)
        return 1;
    RUN(cross_thread_free);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
