/*
 * tests/unit/mem/malloc_test.c: the malloc facade: semantics of every call, any-thread
 * frees, large objects, alignment, calloc zeroing, and the debug-build death checks.
 */
#include "mem/base.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "mem/budget.h"
#include "mem/heapprof.h"
#include "mem/internal.h"
#include "tests/harness.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static mem_stats_t st;

static uint64_t live_now(void)
{
    mem_stats_snapshot(&st);
    return st.live;
}

TEST(malloc_free_sizes)
{
    uint64_t before = live_now();
    static void *ps[4096];
    size_t n = 0;
    for (size_t len = 0; len <= 70000; len += (len < 512 ? 1 : len / 7)) {
        void *p = mem_malloc(len);
        REQUIRE(p != NULL);
        CHECK(((uintptr_t)p & 15) == 0);
        CHECK(mem_usable_size(p) >= len);
        memset(p, 0xAB, len);
        ps[n++] = p;
    }
    CHECK(live_now() > before);
    for (size_t i = 0; i < n; i++)
        mem_free(ps[i]);
    CHECK_EQ(live_now(), before);
}

TEST(malloc_zero_unique)
{
    void *a = mem_malloc(0), *b = mem_malloc(0);
    REQUIRE(a && b);
    CHECK(a != b);
    mem_free(a);
    mem_free(b);
    mem_free(NULL);
}

TEST(calloc_zero_and_overflow)
{
    for (int round = 0; round < 3; round++) {
        unsigned char *p = mem_malloc(200);
        REQUIRE(p);
        memset(p, 0xFF, 200);
        mem_free(p);
        unsigned char *q = mem_calloc(10, 20); /* likely the same object, dirty */
        REQUIRE(q);
        for (int i = 0; i < 200; i++)
            CHECK(q[i] == 0);
        mem_free(q);
    }
    unsigned char *big = mem_calloc(1, 1 << 20);
    REQUIRE(big);
    CHECK(big[0] == 0 && big[(1 << 20) - 1] == 0);
    mem_free(big);
    CHECK(mem_calloc(SIZE_MAX / 2, 3) == NULL);
}

TEST(realloc_semantics)
{
    char *p = mem_realloc(NULL, 10);
    REQUIRE(p);
    memcpy(p, "0123456789", 10);
    p = mem_realloc(p, 12); /* same class */
    REQUIRE(p);
    p = mem_realloc(p, 5000);
    REQUIRE(p);
    CHECK(memcmp(p, "0123456789", 10) == 0);
    p = mem_realloc(p, 100000);
    REQUIRE(p);
    CHECK(memcmp(p, "0123456789", 10) == 0);
    p = mem_realloc(p, 20);
    REQUIRE(p);
    CHECK(memcmp(p, "0123456789", 10) == 0);
    CHECK(mem_realloc(p, 0) == NULL);
}

TEST(impossible_sizes_fail_cleanly)
{
    mem_stats_snapshot(&st);
    uint64_t failed0 = st.alloc_failed;
    CHECK(mem_malloc(SIZE_MAX) == NULL);
    CHECK(mem_malloc(SIZE_MAX / 2) == NULL);
    CHECK(mem_aligned_alloc(4096, SIZE_MAX - 100) == NULL);
    CHECK(mem_aligned_alloc(0, 10) == NULL);
    char *p = mem_malloc(100);
    REQUIRE(p);
    memset(p, 'x', 100);
    CHECK(mem_realloc(p, SIZE_MAX) == NULL);
    CHECK(p[99] == 'x'); /* still ours */
    mem_free(p);
    mem_stats_snapshot(&st);
    CHECK(st.alloc_failed >= failed0 + 3);
}

TEST(aligned)
{
    size_t aligns[] = {16, 32, 64, 128, 256, 4096, 65536, 1 << 20};
    for (size_t i = 0; i < MEM_ARRAY_LEN(aligns); i++) {
        for (size_t len = 1; len < 200000; len *= 7) {
            void *p = mem_aligned_alloc(aligns[i], len);
            REQUIRE(p);
            CHECK(((uintptr_t)p & (aligns[i] - 1)) == 0);
            CHECK(mem_usable_size(p) >= len);
            memset(p, 1, len);
            mem_free(p);
        }
    }
    CHECK(mem_aligned_alloc(24, 10) == NULL);
}

TEST(strdup)
{
    char *s = mem_strdup("hello");
    REQUIRE(s);
    CHECK_STR(s, "hello");
    char *t = mem_strndup("hello world", 5);
    REQUIRE(t);
    CHECK_STR(t, "hello");
    char *u = mem_strndup("ab", 10);
    REQUIRE(u);
    CHECK_STR(u, "ab");
    mem_free(s);
    mem_free(t);
    mem_free(u);
}

/* Large-class calloc takes never-touched objects from clean spans: zero, and no RSS until
 * written. */
TEST(calloc_fresh_costs_no_rss)
{
    enum { N = 200 };
    static unsigned char *ps[N];
    mem_release_now();
    uint64_t rss0 = mem_stats_rss();
    for (int i = 0; i < N; i++) {
        ps[i] = mem_calloc(1, 16394); /* nghttp2's outbound frame buffer */
        REQUIRE(ps[i]);
    }
    uint64_t rss1 = mem_stats_rss();
    fprintf(stderr, "  %d x 16394 B calloc: RSS +%llu KiB\n", N,
            (unsigned long long)(rss1 > rss0 ? (rss1 - rss0) / 1024 : 0));
    CHECK(rss1 < rss0 + (uint64_t)N * 16394 / 4);
    for (int i = 0; i < N; i++) {
        CHECK(ps[i][0] == 0 && ps[i][8191] == 0 && ps[i][16393] == 0);
        memset(ps[i], 0xEE, 16394); /* dirty them: the next calloc must still see zero */
    }
    for (int i = 0; i < N; i++)
        mem_free(ps[i]);
    for (int i = 0; i < N; i++) {
        ps[i] = mem_calloc(16394, 1);
        REQUIRE(ps[i]);
        for (int j = 0; j < 16394; j += 512)
            CHECK(ps[i][j] == 0);
    }
    for (int i = 0; i < N; i++)
        mem_free(ps[i]);
}

/* Sampled allocations are recorded with the profiler and forgotten when freed. */
TEST(heap_sampling_hook)
{
    mem_heapprof_set_interval(4096);
    static void *ps[1000];
    for (int i = 0; i < 1000; i++) {
        ps[i] = mem_malloc(100 + (size_t)i);
        REQUIRE(ps[i]);
        memset(ps[i], 3, 100 + (size_t)i);
    }
    size_t live = mem_heapprof_samples_live();
    mem_stats_snapshot(&st);
    fprintf(stderr, "  %zu samples live for 1000 objects\n", live);
    CHECK(live >= 5);
    CHECK(live <= 400);
    CHECK(st.samples_live == live);
    for (int i = 0; i < 1000; i++)
        mem_free(ps[i]);
    CHECK_EQ(mem_heapprof_samples_live(), 0);
    mem_heapprof_set_interval(0);
}

/* Objects allocated on one thread and freed on another. */
static void *ptrs[10000];

static void *freer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++)
        mem_free(ptrs[i]);
    return NULL;
}

TEST(cross_thread_free)
{
    uint64_t before = live_now();
    for (int i = 0; i < 10000; i++) {
        ptrs[i] = mem_malloc((size_t)(i % 3000) + 1);
        REQUIRE(ptrs[i]);
    }
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, freer, NULL) == 0);
    pthread_join(t, NULL);
    CHECK_EQ(live_now(), before);
}

/* Runs `fn` in a child and checks it dies (SIGABRT, or ASan's failing exit) with `msg` on
 * stderr. */
MEM_UNUSED static void expect_death(void (*fn)(void), const char *msg)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    char buf[2048];
    size_t len = 0;
    ssize_t r;
    char sink[512];
    /* Keep reading past a full buffer: the child must not die of SIGPIPE mid-report. */
    while ((r = len < sizeof(buf) - 1 ? read(fds[0], buf + len, sizeof(buf) - 1 - len)
                                      : read(fds[0], sink, sizeof(sink))) > 0)
        if (len < sizeof(buf) - 1)
            len += (size_t)r;
    buf[len] = '\0';
    close(fds[0]);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    /* mem/ aborts; ASan reports and exits with status 1. */
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ||
          (WIFEXITED(status) && WEXITSTATUS(status) != 0));
    CHECK(strstr(buf, msg) != NULL);
    if (!strstr(buf, msg))
        fprintf(stderr, "child said: %s\n", buf);
}

MEM_UNUSED static void do_double_free(void)
{
    void *p = mem_malloc(40);
    mem_free(p);
    mem_free(p);
}

MEM_UNUSED static void do_foreign_free(void)
{
    void *p = malloc(64); /* libc's: never mem/'s */
    mem_free(p);
}

MEM_UNUSED static void do_interior_free(void)
{
    char *p = mem_malloc(64);
    mem_free(p + 16);
}

TEST(debug_checks)
{
#if MEM_DEBUG >= 1
    expect_death(do_double_free, "double free");
    expect_death(do_foreign_free, "not allocated by mem/");
    expect_death(do_interior_free, "middle of");
#else
    fprintf(stderr, "  (MEM_DEBUG=0: debug checks not compiled)\n");
#endif
}

#if MEM_HAVE_ASAN
static void do_use_after_free(void)
{
    volatile char *p = mem_malloc(48);
    mem_free((void *)p);
    p[3] = 1;
}
#endif

TEST(asan_use_after_free)
{
#if MEM_HAVE_ASAN
    expect_death(do_use_after_free, "use-after-poison");
#endif
}

/* Every test ends with zero live bytes: mem_fini() reports what is still live. */
TEST(fini_nothing_live)
{
    CHECK_EQ(mem_fini(), 0);
}

/* calloc of 8 KiB and more has a fast path: after a first call, the next ones take stashed
 * fresh objects without the node lock. A helper thread callocs while this one holds the
 * lock of its node; it must finish anyway. */
static int stash_phase; /* atomic: 1 = warmed up, 2 = lock held, 3 = done */
static int stash_bad;
static void *stash_user(void *arg)
{
    (void)arg;
    if (mem_thread_attach(0) != 0)
        return (void *)1;
    void *a = mem_calloc(1, 16384);
    if (!a)
        return (void *)1;
    __atomic_store_n(&stash_phase, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n(&stash_phase, __ATOMIC_ACQUIRE) != 2)
        sched_yield();
    void *b = mem_calloc(1, 16384), *c = mem_calloc(2, 8192);
    for (size_t i = 0; b && c && i < 16384; i += 64)
        stash_bad |= ((char *)b)[i] | ((char *)c)[i];
    __atomic_store_n(&stash_phase, 3, __ATOMIC_RELEASE);
    mem_free(a);
    mem_free(b);
    mem_free(c);
    return b && c ? NULL : (void *)1;
}

TEST(calloc_fast_path_without_lock)
{
    size_t iv = mem_heapprof_interval();
    mem_heapprof_set_interval(0); /* a sample would take the slow path */
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, stash_user, NULL) == 0);
    while (__atomic_load_n(&stash_phase, __ATOMIC_ACQUIRE) != 1)
        sched_yield();
    pthread_mutex_lock(&mem__g.nodes[0].lock);
    __atomic_store_n(&stash_phase, 2, __ATOMIC_RELEASE);
    for (int i = 0; i < 2000 && __atomic_load_n(&stash_phase, __ATOMIC_ACQUIRE) != 3; i++)
        usleep(1000);
    int done = __atomic_load_n(&stash_phase, __ATOMIC_ACQUIRE) == 3;
    pthread_mutex_unlock(&mem__g.nodes[0].lock);
    void *rv;
    pthread_join(t, &rv);
    CHECK(done);
    CHECK(rv == NULL);
    CHECK_EQ(stash_bad, 0);
    mem_heapprof_set_interval(iv);
}

int main(void)
{
    mem_config_t cfg;
    mem_config_default(&cfg);
    cfg.sample_bytes = 0;
    if (mem_init(&cfg) != 0)
        return 1;
    RUN(malloc_free_sizes);
    RUN(malloc_zero_unique);
    RUN(calloc_zero_and_overflow);
    RUN(realloc_semantics);
    RUN(impossible_sizes_fail_cleanly);
    RUN(aligned);
    RUN(strdup);
    RUN(calloc_fresh_costs_no_rss);
    RUN(calloc_fast_path_without_lock);
    RUN(heap_sampling_hook);
    RUN(cross_thread_free);
    RUN(debug_checks);
    RUN(asan_use_after_free);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
