/*
 * tests/unit/mem/subregion_test.c: sub-arenas: LIFO reuse of chunks by the next sub-arena,
 * their own cap and the parent's, cleanups, freeing with the parent (and no double free
 * after an explicit free), stats and (under ASan) poisoning after free; the keep stash (a
 * closed sub-arena's first chunk stays in the thread, ready, through a burst of closes) and
 * heap sampling at the configured rate across recycled sub-arenas.
 */
#include "mem/base.h"
#include "mem/subregion.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mem/heapprof.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/sizeclass.h"
#include "mem/stats.h"
#include "mem/tcache.h"
#include "tests/harness.h"
#include "tests/unit/mem/arena_check.h"

/* One stream's worth of allocations: headers, a route, a few buffers across three chunks. The
 * addresses it got are written to `out`. */
enum { PATTERN_CNT = 40 };
static void stream_pattern(mem_subregion_t *s, void **out)
{
    for (int i = 0; i < PATTERN_CNT; i++) {
        size_t len = 40 + (size_t)(i * 37) % 400;
        out[i] = mem_subregion_alloc(s, len);
        if (out[i])
            memset(out[i], i, len);
    }
}

/* begin(), then heap sampling at `interval` (the old one saved in `saved`) and a fresh
 * uncapped region. */
static mem_region_t *begin_sampling(size_t interval, size_t *saved)
{
    begin();
    *saved = mem_heapprof_interval();
    mem_heapprof_set_interval(interval);
    return mem_region_new(0);
}

TEST(lifo_reuse)
{
    /* A sampled facade allocation gets its own mapping instead of a cache slot, which would
     * make a chunk address differ at random: LIFO reuse is checked with sampling off. */
    size_t saved;
    mem_region_t *r = begin_sampling(0, &saved);
    REQUIRE(r != NULL);
    void *a[PATTERN_CNT], *b[PATTERN_CNT];
    mem_subregion_t *s1 = mem_subregion_new(r, 0);
    REQUIRE(s1 != NULL);
    CHECK(mem_subregion_parent(s1) == r);
    stream_pattern(s1, a);
    size_t held = mem_subregion_bytes(s1);
    CHECK(held > 2048); /* the pattern needs more than the first chunk */
    mem_subregion_free(s1);
    /* s1 freed */
    mem_subregion_t *s2 = mem_subregion_new(r, 0);
    REQUIRE(s2 != NULL);
    CHECK(s2 == s1); /* the first chunk came back first */
    stream_pattern(s2, b);
    size_t same = 0;
    for (int i = 0; i < PATTERN_CNT; i++)
        same += a[i] == b[i];
    CHECK_EQ(same, PATTERN_CNT);
    CHECK_EQ(mem_subregion_bytes(s2), held);
    mem_subregion_free(s2);
    mem_region_free(r);
    mem_heapprof_set_interval(saved);
    end_clean();
}

TEST(own_cap)
{
    begin();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    mem_subregion_t *s = mem_subregion_new(r, 3000);
    REQUIRE(s != NULL);
    CHECK_EQ(mem_subregion_cap(s), 3000);
    int got = 0;
    while (mem_subregion_alloc(s, 64) != NULL)
        got++;
    CHECK(got > 30);
    CHECK(mem_subregion_bytes(s) <= 3000);
    CHECK(mem_subregion_alloc(s, 20000) == NULL);
    /* The region is not capped, and its own allocations still work. */
    CHECK(mem_region_alloc(r, 5000) != NULL);
    CHECK(mem_region_bytes(r) >= mem_subregion_bytes(s) + 5000);
    mem_region_free(r); /* frees s too */
    end_clean();
}

TEST(parent_cap)
{
    begin();
    mem_region_t *r = mem_region_new(16384);
    REQUIRE(r != NULL);
    mem_subregion_t *s1 = mem_subregion_new(r, 0), *s2 = mem_subregion_new(r, 0);
    REQUIRE(s1 && s2);
    int got = 0;
    for (int i = 0; i < 10000; i++) {
        void *p = mem_subregion_alloc(i % 2 ? s1 : s2, 200);
        if (p == NULL)
            break;
        got++;
        CHECK(mem_region_bytes(r) <= 16384);
    }
    CHECK(got > 40);
    CHECK(got < 10000);
    CHECK(mem_region_bytes(r) <= 16384);
    CHECK_EQ(mem_region_bytes(r) >= mem_subregion_bytes(s1) + mem_subregion_bytes(s2), 1);
    CHECK(mem_region_bytes_used(r) > (size_t)got * 200);
    /* The region at its cap refuses a new sub-arena once there is no room for its header. */
    while (mem_region_alloc(r, 16) != NULL)
        ;
    mem_subregion_t *s3 = mem_subregion_new(r, 0);
    CHECK(s3 == NULL);
    /* Freeing a sub-arena gives its bytes back to the parent's cap. */
    size_t before = mem_region_bytes(r);
    size_t s1_bytes = mem_subregion_bytes(s1);
    mem_subregion_free(s1);
    CHECK_EQ(mem_region_bytes(r), before - s1_bytes);
    s3 = mem_subregion_new(r, 0);
    CHECK(s3 != NULL);
    CHECK(mem_subregion_alloc(s3, 200) != NULL);
    mem_region_free(r);
    end_clean();
}

/* A burst of closes (h2load -c 16 -m 10 closes up to 320 streams' sub-arenas at once): their
 * first chunks stay in the thread, ready, instead of spilling from the cache's slots (which
 * hold 32 of the 4 KiB class) to the depot, and the next burst of opens takes them back. */
enum { BURST = 48 };
TEST(kept_burst)
{
    unsigned c = mem_sc_of(4096);
    REQUIRE(c < MEM_SC_COUNT);
    REQUIRE(mem_sc_size[c] == 4096);
    mem_thread_flush(); /* an empty stash to start with */
    size_t saved;       /* sampling off: a sampled chunk would be an object of its own */
    mem_region_t *r = begin_sampling(0, &saved);
    REQUIRE(r != NULL);
    mem_subregion_t *s[BURST];
    void *first[BURST];
    for (int i = 0; i < BURST; i++) {
        s[i] = mem_subregion_new(r, 0);
        REQUIRE(s[i] != NULL);
        CHECK_EQ(mem_subregion_bytes(s[i]), 4096);
        first[i] = s[i];
        CHECK(mem_subregion_alloc(s[i], 100) != NULL);
    }
    snap();
    uint64_t depot0 = st.classes[c].depot_bytes;
    for (int i = 0; i < BURST; i++)
        mem_subregion_free(s[i]);
    snap();
    CHECK_EQ(st.classes[c].depot_bytes, depot0);                 /* nothing spilled */
    CHECK(st.classes[c].tcache_bytes >= (uint64_t)BURST * 4096); /* cached, not live */
    CHECK_EQ(st.subregions_live, 0);
    /* Reopened: the same chunks, clean (nothing used, nothing left of the old stream). */
    size_t found = 0;
    for (int i = 0; i < BURST; i++) {
        s[i] = mem_subregion_new(r, 0);
        REQUIRE(s[i] != NULL);
        CHECK_EQ(mem_subregion_bytes(s[i]), 4096);
        CHECK(mem_subregion_parent(s[i]) == r);
        for (int j = 0; j < BURST; j++)
            found += (void *)s[i] == first[j];
    }
    CHECK_EQ(found, BURST);
    for (int i = 0; i < BURST; i++)
        mem_subregion_free(s[i]);
    /* A quiet worker's tick (mem_thread_trim) gives the kept chunks to the cache as frees. */
    CHECK_EQ(mem__tc_self->keep_cnt, BURST);
    mem_thread_trim();
    CHECK_EQ(mem__tc_self->keep_cnt, 0);
    /* A cap below the first chunk's size does not take a kept chunk (it gets a smaller one). */
    mem_subregion_t *small = mem_subregion_new(r, 2048);
    REQUIRE(small != NULL);
    CHECK(mem_subregion_bytes(small) <= 2048);
    mem_subregion_free(small);
    mem_region_free(r);
    /* The stash goes back with the cache. */
    mem_thread_flush();
    snap();
    CHECK_EQ(st.classes[c].tcache_bytes, 0);
    mem_heapprof_set_interval(saved);
    end_clean();
}

/* Heap sampling stays at the configured rate when sub-arenas are recycled: each keeps the
 * distance it had left (a fresh exponential draw, by memorylessness). 3,000 streams of
 * 10 x 96 B at a 1 KiB mean. The allocation that reaches the sample point is the sample and
 * the next distance starts after it, so a period is the draw plus half an allocation on
 * average: 2,880,000 / (1,024 + 48) = 2,687 samples expected (sd 52; 10% is over 5 sd). The
 * same figure before recycling: 2,695 here, and 26,692 against 26,679 over 30,000 streams. */
TEST(kept_sampling_rate)
{
    size_t saved;
    mem_region_t *r = begin_sampling(1024, &saved);
    REQUIRE(r != NULL);
    uint64_t samples = 0;
    for (int i = 0; i < 3000; i++) {
        snap();
        uint64_t before = st.samples_live;
        mem_subregion_t *s = mem_subregion_new(r, 0);
        REQUIRE(s != NULL);
        for (int k = 0; k < 10; k++)
            CHECK(mem_subregion_alloc(s, 96) != NULL);
        snap();
        samples += st.samples_live - before;
        mem_subregion_free(s);
    }
    printf("kept_sampling_rate: %llu samples for 2687 expected\n", (unsigned long long)samples);
    CHECK(samples > 2687 - 269);
    CHECK(samples < 2687 + 269);
    mem_region_free(r);
    mem_heapprof_set_interval(saved);
    end_clean();
}

static int cleanups_run;
static void on_cleanup(void *arg)
{
    (void)arg;
    cleanups_run++;
}

TEST(free_with_parent)
{
    begin();
    cleanups_run = 0;
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    mem_subregion_t *s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = mem_subregion_new(r, 0);
        REQUIRE(s[i] != NULL);
        CHECK(mem_subregion_alloc(s[i], 3000) != NULL);
        CHECK(mem_subregion_strndup(s[i], "abc", 3) != NULL);
        char *z = mem_subregion_calloc(s[i], 100);
        CHECK(z != NULL && z[0] == 0 && z[99] == 0);
        CHECK_OK(mem_subregion_cleanup_add(s[i], on_cleanup, NULL));
    }
    snap();
    CHECK_EQ(st.subregions_live, 4);
    mem_subregion_free(s[1]); /* explicit free first: the parent must not free it again */
    CHECK_EQ(cleanups_run, 1);
    snap();
    CHECK_EQ(st.subregions_live, 3);
    mem_region_free(r);
    CHECK_EQ(cleanups_run, 4);
    end_clean();
}

/* A region cleanup that frees a sub-arena (as closing an h2 session closes its streams). */
static mem_subregion_t *victim;
static void on_region_cleanup(void *arg)
{
    (void)arg;
    mem_subregion_free(victim);
    victim = NULL;
}

TEST(region_cleanup_frees_sub)
{
    begin();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    victim = mem_subregion_new(r, 0);
    REQUIRE(victim != NULL);
    CHECK_OK(mem_region_cleanup_add(r, on_region_cleanup, NULL));
    mem_region_free(r);
    CHECK(victim == NULL);
    end_clean();
}

/* A sub-arena whose own cleanup frees it (a stream object whose destructor closes its own
 * sub-arena): the nested free does nothing, the outer one frees it once. */
static mem_subregion_t *self_sub;
static int self_cleanups;
static void on_self_cleanup(void *arg)
{
    (void)arg;
    self_cleanups++;
    mem_subregion_free(self_sub);
}

TEST(free_from_own_cleanup)
{
    begin();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    self_sub = mem_subregion_new(r, 0);
    REQUIRE(self_sub != NULL);
    REQUIRE(mem_subregion_alloc(self_sub, 3000) != NULL);
    CHECK_OK(mem_subregion_cleanup_add(self_sub, on_self_cleanup, NULL));
    mem_subregion_t *other = mem_subregion_new(r, 0);
    REQUIRE(other != NULL);
    mem_subregion_free(self_sub);
    CHECK_EQ(self_cleanups, 1);
    snap();
    CHECK_EQ(st.subregions_live, 1);
    mem_subregion_free(other);
    /* Also when the parent frees it: the region's free walks its open sub-arenas. */
    self_sub = mem_subregion_new(r, 0);
    REQUIRE(self_sub != NULL);
    CHECK_OK(mem_subregion_cleanup_add(self_sub, on_self_cleanup, NULL));
    mem_region_free(r);
    CHECK_EQ(self_cleanups, 2);
    end_clean();
}

#if MEM_HAVE_ASAN
static bool child_dies_with_asan(void (*fn)(void))
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        fn();
        _exit(0);
    }
    close(pfd[1]);
    static char out[65536];
    size_t len = 0;
    ssize_t n;
    while ((n = read(pfd[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(pfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool died = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    bool named = strstr(out, "use-after-poison") || strstr(out, "heap-use-after-free");
    if (!died || !named)
        fprintf(stderr, "child status %d, stderr:\n%.2000s\n", status, out);
    return died && named;
}

static void touch_after_sub_free(void)
{
    mem_region_t *r = mem_region_new(0);
    mem_subregion_t *s = mem_subregion_new(r, 0);
    volatile char *p = mem_subregion_alloc(s, 100);
    p[0] = 1;
    mem_subregion_free(s);
    p[0] = 2;
}

static void touch_after_parent_free(void)
{
    mem_region_t *r = mem_region_new(0);
    mem_subregion_t *s = mem_subregion_new(r, 0);
    volatile char *p = mem_subregion_alloc(s, 5000);
    p[0] = 1;
    mem_region_free(r);
    p[10] = 2;
}

TEST(asan_poisoning)
{
    begin();
    CHECK(child_dies_with_asan(touch_after_sub_free));
    CHECK(child_dies_with_asan(touch_after_parent_free));
    end_clean(); /* the children allocated, not us */
}
#endif

int main(void)
{
    mem_config_t cfg;
    mem_config_default(&cfg);
    int rc = mem_init(&cfg);
    if (rc != 0) {
        fprintf(stderr, "mem_init: %d\n", rc);
        return 1;
    }
    RUN(lifo_reuse);
    RUN(own_cap);
    RUN(parent_cap);
    RUN(free_with_parent);
    RUN(region_cleanup_frees_sub);
    RUN(free_from_own_cleanup);
    RUN(kept_burst);
    RUN(kept_sampling_rate);
#if MEM_HAVE_ASAN
    RUN(asan_poisoning);
#endif
    return TEST_SUMMARY();
}
