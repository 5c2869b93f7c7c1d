/*
 * tests/stress/mem_page_reset.c: page reset (whole free pages inside partly used spans given
 * back to the OS) while other threads allocate and free in the same spans (args: threads
 * iterations; defaults 4 200, small enough for TSan in seconds).
 *
 * Each worker keeps every 7th object alive across rounds, so spans stay partly used, and
 * frees the rest, some of them by handing them to the next worker (cross-thread frees).
 * Every object is filled with a pattern of its owner and index over its whole length and
 * checked before it is freed: a page given back under a live object, or a free list that
 * lost an object to a reset page, shows as a wrong byte, a double hand-out or a lost count.
 * One more thread runs mem_release_now() and the decay (decay_ms 1) all the while. At the
 * end nothing is live, the reconciliation identity holds, and page reset happened.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"

#include <pthread.h>
#include <string.h>

static int iters = 200;
static int nthreads_arg = 4;
static int bad;
static int stop;

enum { N = 600, KEEP_EVERY = 7, HANDOFF_MAX = 64 };

static const size_t sizes[] = {48, 200, 1024, 3000, 8192, 16384, 40000};

/* A one-slot mailbox per worker: a batch of objects the previous worker frees. */
typedef struct {
    pthread_mutex_t lock;
    void *objs[HANDOFF_MAX];
    size_t lens[HANDOFF_MAX];
    unsigned cnt;
} box_t;

static box_t boxes[64];

static unsigned char pat(uintptr_t id, size_t i)
{
    return (unsigned char)(0x11 + id * 31 + i * 7);
}

static void fill(void *p, size_t len, unsigned char v)
{
    memset(p, v, len);
}

static void check_and_free(void *p, size_t len, unsigned char v)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i += 61)
        if (b[i] != v)
            __atomic_store_n(&bad, 2, __ATOMIC_RELAXED);
    if (b[len - 1] != v)
        __atomic_store_n(&bad, 2, __ATOMIC_RELAXED);
    mem_free(p);
}

static void drain_box(box_t *bx)
{
    pthread_mutex_lock(&bx->lock);
    for (unsigned i = 0; i < bx->cnt; i++)
        check_and_free(bx->objs[i], bx->lens[i], 0x5A);
    bx->cnt = 0;
    pthread_mutex_unlock(&bx->lock);
}

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    void **ps = mem_malloc(N * sizeof(void *));
    size_t *ls = mem_malloc(N * sizeof(size_t));
    if (!ps || !ls) {
        __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    memset(ps, 0, N * sizeof(void *));
    box_t *next = &boxes[(id + 1) % (uintptr_t)nthreads_arg];
    for (int it = 0; it < iters; it++) {
        for (size_t i = 0; i < N; i++) {
            if (ps[i])
                continue; /* kept from an earlier round */
            size_t len = sizes[(i + (size_t)it) % (sizeof(sizes) / sizeof(sizes[0]))];
            ps[i] = mem_malloc(len);
            if (!ps[i]) {
                __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
                return NULL;
            }
            ls[i] = len;
            fill(ps[i], len, pat(id, i));
        }
        for (size_t i = 0; i < N; i++) {
            if ((i + (size_t)it / 16) % KEEP_EVERY == 0)
                continue; /* long-lived: keeps its span partly used for a while */
            const unsigned char *b = ps[i];
            if (b[0] != pat(id, i) || b[ls[i] - 1] != pat(id, i))
                __atomic_store_n(&bad, 2, __ATOMIC_RELAXED);
            if (i % 11 == 0) {
                /* Hand it to the next worker, which frees it on its thread. */
                pthread_mutex_lock(&next->lock);
                if (next->cnt < HANDOFF_MAX) {
                    fill(ps[i], ls[i], 0x5A);
                    next->objs[next->cnt] = ps[i];
                    next->lens[next->cnt++] = ls[i];
                    ps[i] = NULL;
                }
                pthread_mutex_unlock(&next->lock);
                if (!ps[i])
                    continue;
            }
            check_and_free(ps[i], ls[i], pat(id, i));
            ps[i] = NULL;
        }
        drain_box(&boxes[id]);
    }
    for (size_t i = 0; i < N; i++)
        if (ps[i])
            check_and_free(ps[i], ls[i], pat(id, i));
    mem_free(ps);
    mem_free(ls);
    return NULL;
}

static void *releaser(void *arg)
{
    (void)arg;
    unsigned k = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
        if (++k % 4 == 0)
            (void)mem_release_now();
        else
            (void)mem_decay_tick(MEM_DECAY_TIMER_WORK);
        sched_yield();
    }
    return NULL;
}

TEST(page_reset_under_load)
{
    static mem_stats_t st;
    pthread_t t[64], r;
    for (int i = 0; i < nthreads_arg; i++)
        pthread_mutex_init(&boxes[i].lock, NULL);
    REQUIRE(pthread_create(&r, NULL, releaser, NULL) == 0);
    for (int i = 0; i < nthreads_arg; i++)
        REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < nthreads_arg; i++)
        pthread_join(t[i], NULL);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    pthread_join(r, NULL);
    for (int i = 0; i < nthreads_arg; i++)
        drain_box(&boxes[i]);
    CHECK_EQ(bad, 0);
    (void)mem_release_now();
    mem_stats_snapshot(&st);
    fprintf(stderr, "  page reset %llu B, released %llu B in all\n",
            (unsigned long long)st.reset_total, (unsigned long long)st.released_total);
    CHECK(st.reset_total > 0);
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
    cfg.decay_ms = 1;
    if (mem_init(&cfg) != 0)
        return 1;
    RUN(page_reset_under_load);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
