/*
 * tests/unit/mem/budget_test.c: the hard limit (allocations past it return NULL, committed
 * never passes it), pressure, mem_release_now(), decay that lowers committed bytes and RSS on
 * its own, and raising the limit at run time; a refused charge releases what is merely cached
 * and retries once; every refused allocation is counted; the exempt entry points never fail
 * at the limit and count their bytes; metadata is charged and reconciles.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mem/internal.h"

/* mem/ is linked statically, so this definition takes its madvise calls: each MADV_DONTNEED
 * is counted, and it checks that the calling thread holds no node lock (a trylock of a lock
 * it held would fail: the mutexes are not recursive). */
static uint64_t dontneed_calls, dontneed_locked;

int madvise(void *addr, size_t len, int advice)
{
    if (advice == MADV_DONTNEED && mem_is_initialised()) {
        __atomic_fetch_add(&dontneed_calls, 1, __ATOMIC_RELAXED);
        for (unsigned i = 0; i < mem__g.nodes_cnt; i++) {
            if (pthread_mutex_trylock(&mem__g.nodes[i].lock) != 0)
                __atomic_fetch_add(&dontneed_locked, 1, __ATOMIC_RELAXED);
            else
                pthread_mutex_unlock(&mem__g.nodes[i].lock);
        }
    }
    return (int)syscall(SYS_madvise, addr, len, advice);
}

static mem_stats_t st;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define MAXP 100000
static void *ps[MAXP];

TEST(limit_enforced)
{
    const size_t limit = 8u << 20;
    mem_budget_set_limit(limit);
    CHECK_EQ(mem_budget_limit(), limit);
    size_t n = 0, failed = 0;
    for (size_t i = 0; i < MAXP; i++) {
        size_t len = (i % 5 == 0) ? 50000 : 1000 + (i % 3000);
        void *p = mem_malloc(len);
        if (!p) {
            failed++;
            if (failed > 50)
                break;
            continue;
        }
        memset(p, 1, len); /* really commit */
        ps[n++] = p;
        CHECK(mem_budget_committed() <= limit);
    }
    CHECK(failed > 0);
    CHECK(mem_budget_committed() <= limit);
    CHECK(mem_budget_pressure() > 0.9);
    CHECK(mem_budget_pressure() <= 1.0);
    mem_stats_snapshot(&st);
    CHECK(st.alloc_failed >= failed);
    CHECK_EQ(st.budget_limit, limit);
    for (size_t i = 0; i < n; i++)
        mem_free(ps[i]);
    size_t rel = mem_release_now();
    CHECK(rel > 0);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.live, 0);
    CHECK(mem_budget_committed() < limit / 8);
    /* After release the memory is usable again. */
    void *p = mem_malloc(50000);
    CHECK(p != NULL);
    mem_free(p);
    mem_budget_set_limit(0);
    CHECK(mem_budget_pressure() == 0.0);
}

TEST(lower_limit_blocks_growth)
{
    void *keep = mem_malloc(1 << 20);
    REQUIRE(keep);
    mem_budget_set_limit(mem_budget_committed()); /* no room for any new mapping */
    CHECK(mem_malloc(2 << 20) == NULL);
    mem_budget_set_limit(0);
    void *p = mem_malloc(2 << 20);
    CHECK(p != NULL);
    mem_free(p);
    mem_free(keep);
}

/* Cached free memory (thread cache, depots, dirty spans) must not make an allocation fail:
 * the refused charge gives it back and the retry succeeds. */
TEST(refused_charge_releases_cache_and_retries)
{
    mem_release_now();
    /* 4 MiB of 4 KiB objects, all freed: they sit in the cache, the depot and dirty spans. */
    size_t n = 1024;
    for (size_t i = 0; i < n; i++)
        REQUIRE((ps[i] = mem_malloc(4096)) != NULL);
    for (size_t i = 0; i < n; i++)
        mem_free(ps[i]);
    mem_stats_snapshot(&st);
    CHECK(st.tcache + st.depot + st.free_in_segments >= (3u << 20));
    uint64_t failed0 = st.alloc_failed, refused0 = st.budget_refused;
    /* No room for anything new: only what is cached can make room. */
    mem_budget_set_limit(mem_budget_committed());
    void *p = mem_malloc(1 << 20); /* a class-less size: a new mapping */
    CHECK(p != NULL);
    void *q[16];
    for (int i = 0; i < 16; i++) {
        q[i] = mem_malloc(100000); /* a class carved from a run: new spans */
        CHECK(q[i] != NULL);
    }
    mem_stats_snapshot(&st);
    CHECK(st.budget_refused > refused0); /* refused first, then retried */
    CHECK_EQ(st.alloc_failed, failed0);
    CHECK(st.committed <= mem_budget_limit());
    mem_free(p);
    for (int i = 0; i < 16; i++)
        mem_free(q[i]);
    mem_budget_set_limit(0);
}

/* At a small budget, allocations of every kind fail cleanly (NULL, no abort); each NULL is
 * counted once in alloc_failed; the exempt entry points still succeed and count their bytes. */
TEST(small_budget_fails_cleanly_and_counts)
{
    mem_release_now();
    mem_stats_snapshot(&st);
    uint64_t failed0 = st.alloc_failed;
    mem_budget_set_limit(mem_budget_committed() + (2u << 20));
    size_t n = 0, nulls = 0;
    for (size_t i = 0; i < MAXP && nulls < 400; i++) {
        size_t len = (i % 4 == 0) ? 300000 : (i % 4 == 1) ? 40000 : 100 + (i * 37) % 9000;
        void *p = (i % 7 == 0)    ? mem_calloc(1, len)
                  : (i % 11 == 0) ? mem_aligned_alloc(4096, len)
                                  : mem_malloc(len);
        if (!p) {
            nulls++;
            continue;
        }
        memset(p, 1, len);
        ps[n++] = p;
    }
    CHECK(nulls >= 400);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.alloc_failed - failed0, nulls);
    CHECK(st.committed <= mem_budget_limit());
    /* Exempt: passes the limit, counted in its own fields, part of live. */
    void *e = mem_malloc_exempt(300000);
    REQUIRE(e != NULL);
    memset(e, 2, 300000);
    void *f = mem_calloc_exempt(10, 5000);
    REQUIRE(f != NULL);
    f = mem_realloc_exempt(f, 120000);
    REQUIRE(f != NULL);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.exempt_live, mem_usable_size(e) + mem_usable_size(f));
    CHECK(st.exempt_over >= 1);
    CHECK(st.committed > mem_budget_limit());
    CHECK_EQ(st.live + st.tcache + st.depot + st.free_in_segments + st.metadata, st.committed);
    CHECK_EQ(st.alloc_failed - failed0, nulls); /* the exempt calls failed nothing */
    mem_free_exempt(e);
    mem_free_exempt(f);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.exempt_live, 0);
    for (size_t i = 0; i < n; i++)
        mem_free(ps[i]);
    mem_budget_set_limit(0);
    mem_release_now();
}

/* Metadata (this thread's cache mapping, the shared cache) is charged and reported. */
TEST(metadata_counted)
{
    mem_stats_snapshot(&st);
    CHECK(st.metadata > 0);
    CHECK(st.metadata < st.committed);
    CHECK_EQ(st.live + st.tcache + st.depot + st.free_in_segments + st.metadata, st.committed);
}

/* mem_decay_tick(k) does at most k units per call (here: at most k spans released), goes on
 * where it stopped, eventually releases everything due, and never madvises under a lock. */
TEST(decay_tick_bounded)
{
    mem_release_now();
    size_t c0 = mem_budget_committed();
    size_t n = 0;
    for (size_t i = 0; i < 4000; i++) {
        REQUIRE((ps[n] = mem_malloc(4096)) != NULL);
        memset(ps[n++], 3, 4096);
    }
    for (size_t i = 0; i < n; i++)
        mem_free(ps[i]);
    mem_thread_flush();
    mem_budget_set_decay_ms(1);
    uint64_t locked0 = dontneed_locked;
    uint64_t deadline = now_ms() + 5000;
    unsigned steps = 0, released_steps = 0;
    while (now_ms() < deadline && mem_budget_committed() > c0 + (1u << 20)) {
        uint64_t calls0 = __atomic_load_n(&dontneed_calls, __ATOMIC_RELAXED);
        size_t r = mem_decay_tick(4);
        uint64_t calls = __atomic_load_n(&dontneed_calls, __ATOMIC_RELAXED) - calls0;
        CHECK(r <= 4 * MEM_SPAN_SIZE);
        CHECK(calls <= 4);
        steps++;
        released_steps += r > 0;
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(mem_budget_committed() <= c0 + (1u << 20));
    CHECK(released_steps > 8); /* 16 MiB took many bounded steps */
    CHECK_EQ(dontneed_locked, locked0);
    (void)steps;
    mem_release_now();
    CHECK_EQ(dontneed_locked, locked0);
    mem_budget_set_decay_ms(1000);
}

TEST(decay_returns_memory)
{
    mem_release_now();
    uint64_t rss0 = mem_stats_rss();
    size_t c0 = mem_budget_committed();
    /* A burst of small objects, touched, then freed: they end up in spans, not the cache. */
    size_t n = 0;
    for (size_t i = 0; i < 60000; i++) {
        ps[n] = mem_malloc(512);
        REQUIRE(ps[n]);
        memset(ps[n], 7, 512);
        n++;
    }
    uint64_t rss1 = mem_stats_rss();
    size_t c1 = mem_budget_committed();
    CHECK(c1 >= c0 + 25 * 1000 * 1000);
    CHECK(rss1 >= rss0 + 20 * 1000 * 1000);
    for (size_t i = 0; i < n; i++)
        mem_free(ps[i]);
    mem_budget_set_decay_ms(20);
    /* Decay runs on slow paths and from mem_release_tick(): poll it with a deadline. */
    uint64_t deadline = now_ms() + 5000;
    size_t released = 0;
    while (now_ms() < deadline && mem_budget_committed() > c0 + 2 * 1000 * 1000) {
        released += mem_release_tick();
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    size_t c2 = mem_budget_committed();
    uint64_t rss2 = mem_stats_rss();
    fprintf(stderr, "  committed %zu -> %zu -> %zu, rss %llu -> %llu -> %llu, released %zu\n", c0,
            c1, c2, (unsigned long long)rss0, (unsigned long long)rss1, (unsigned long long)rss2,
            released);
    CHECK(released > 0);
    CHECK(c2 <= c0 + 2 * 1000 * 1000); /* what stays is at most the thread cache and depots */
    CHECK(rss2 + 20 * 1000 * 1000 <= rss1);
    mem_budget_set_decay_ms(1000);
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
    RUN(limit_enforced);
    RUN(lower_limit_blocks_growth);
    RUN(refused_charge_releases_cache_and_retries);
    RUN(small_budget_fails_cleanly_and_counts);
    RUN(metadata_counted);
    RUN(decay_tick_bounded);
    RUN(decay_returns_memory);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
