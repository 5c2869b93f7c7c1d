/*
 * tests/unit/mem/heapprof_test.c: the heap profiler: the geometric sampling distance has the
 * configured mean, record/forget/forget_owner keep the live set exact, region allocations are
 * sampled and dropped with their region, and the dump is what google-pprof reads (checked with
 * the real google-pprof when it is installed). The stacks' frames are checked by name in
 * tests/unit/admin/symbolize_test.c, beside the symbolizer.
 */
#include "mem/base.h"
#include "mem/heapprof.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"
#include "mem/subregion.h"
#include "tests/harness.h"
#include "tests/unit/mem/arena_check.h"

TEST(interval_statistics)
{
    begin();
    size_t saved = mem_heapprof_interval();
    const size_t mean = 100000;
    mem_heapprof_set_interval(mean);
    CHECK_EQ(mem_heapprof_interval(), mean);
    enum { N = 200000 };
    double sum = 0, sum2 = 0;
    size_t above = 0, minv = SIZE_MAX;
    for (int i = 0; i < N; i++) {
        size_t d = mem__sampling_next();
        sum += (double)d;
        sum2 += (double)d * (double)d;
        above += d > mean;
        minv = MEM_MIN(minv, d);
    }
    double avg = sum / N;
    double sd = 0;
    double var = sum2 / N - avg * avg;
    if (var > 0) {
        /* Newton's square root: no libm in the test either. */
        sd = var;
        for (int k = 0; k < 60; k++)
            sd = 0.5 * (sd + var / sd);
    }
    fprintf(stderr, "interval: mean %.1f (want %zu), sd %.1f, P(d > mean) %.4f, min %zu\n", avg,
            mean, sd, (double)above / N, minv);
    /* The standard error of the mean is mean/sqrt(N) ~ 0.22%: 2% is about 9 sigma. */
    CHECK(avg > mean * 0.98 && avg < mean * 1.02);
    /* Exponential: the standard deviation equals the mean, P(d > mean) = 1/e = 0.3679. */
    CHECK(sd > mean * 0.95 && sd < mean * 1.05);
    CHECK((double)above / N > 0.36 && (double)above / N < 0.376);
    CHECK(minv >= 1);

    /* Off: no sampling, only a re-check distance. */
    mem_heapprof_set_interval(0);
    CHECK_EQ(mem_heapprof_interval(), 0);
    CHECK(mem__sampling_next() >= ((size_t)1 << 20));
    mem_heapprof_set_interval(saved);
    end_clean();
}

TEST(record_and_forget)
{
    begin();
    size_t saved = mem_heapprof_interval();
    mem_heapprof_set_interval(4096);
    size_t live0 = mem_heapprof_samples_live();
    enum { N = 500 };
    void *p[N];
    int owner_a, owner_b;
    size_t cnt[3] = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        p[i] = mem_malloc(32 + (size_t)i);
        REQUIRE(p[i] != NULL);
        mem__heapprof_forget(p[i]); /* in case the facade sampled it itself */
    }
    size_t live1 = mem_heapprof_samples_live();
    CHECK_EQ(live1 <= live0, 1);
    for (int i = 0; i < N; i++) {
        const void *owner = i % 3 == 0 ? NULL : i % 3 == 1 ? (void *)&owner_a : (void *)&owner_b;
        CHECK_OK(mem__heapprof_record(p[i], 32 + (size_t)i, owner, MEM_HEAPPROF_OWNER_REGION));
        cnt[i % 3]++;
    }
    CHECK_EQ(mem_heapprof_samples_live(), live1 + N);
    /* Recording the same pointer again replaces its sample. */
    CHECK_OK(mem__heapprof_record(p[0], 32, NULL, MEM_HEAPPROF_OWNER_TCACHE));
    CHECK_EQ(mem_heapprof_samples_live(), live1 + N);
    /* Forgetting a pointer that was never sampled changes nothing. */
    int unrelated;
    mem__heapprof_forget(&unrelated);
    mem__heapprof_forget(NULL);
    CHECK_EQ(mem_heapprof_samples_live(), live1 + N);
    mem__heapprof_forget_owner(&owner_a);
    CHECK_EQ(mem_heapprof_samples_live(), live1 + N - cnt[1]);
    mem__heapprof_forget_owner(&owner_a);
    CHECK_EQ(mem_heapprof_samples_live(), live1 + N - cnt[1]);
    /* Forget every third one (owner NULL) directly, in an order that exercises swap-remove. */
    for (int i = N - 1; i >= 0; i--) {
        if (i % 3 == 0)
            mem__heapprof_forget(p[i]);
    }
    CHECK_EQ(mem_heapprof_samples_live(), live1 + cnt[2]);
    mem__heapprof_forget_owner(&owner_b);
    CHECK_EQ(mem_heapprof_samples_live(), live1);
    for (int i = 0; i < N; i++)
        mem_free(p[i]);
    /* Off: record is a no-op. */
    mem_heapprof_set_interval(0);
    void *q = mem_malloc(64);
    REQUIRE(q != NULL);
    CHECK_OK(mem__heapprof_record(q, 64, NULL, MEM_HEAPPROF_OWNER_TCACHE));
    CHECK_EQ(mem_heapprof_samples_live(), live1);
    mem_free(q);
    mem_heapprof_set_interval(saved);
    end_clean();
}

/* calloc of 8 KiB and more (served from fresh spans) and aligned_alloc (small and large) are
 * sampled like malloc: at a 4 KiB interval nearly every such allocation is a sample. */
TEST(calloc_and_aligned_sampled)
{
    size_t iv0 = mem_heapprof_interval();
    mem_heapprof_set_interval(4096);
    size_t s0 = mem_heapprof_samples_live();
    enum { N = 64 };
    static void *c[N], *a[N], *b[4];
    for (int i = 0; i < N; i++) {
        c[i] = mem_calloc(1, 16384);
        REQUIRE(c[i] != NULL);
        for (int k = 0; k < 16384; k += 512)
            CHECK(((char *)c[i])[k] == 0); /* a sample is cleared too */
        a[i] = mem_aligned_alloc(4096, 8192);
        REQUIRE(a[i] != NULL);
        CHECK(((uintptr_t)a[i] & 4095) == 0);
    }
    for (int i = 0; i < 4; i++) {
        b[i] = mem_aligned_alloc(1 << 20, 300000);
        REQUIRE(b[i] != NULL);
        CHECK(((uintptr_t)b[i] & ((1 << 20) - 1)) == 0);
    }
    size_t got = mem_heapprof_samples_live() - s0;
    CHECK(got >= N); /* about 2 * N + 4 with a 4 KiB mean */
    for (int i = 0; i < N; i++) {
        mem_free(c[i]);
        mem_free(a[i]);
    }
    for (int i = 0; i < 4; i++)
        mem_free(b[i]);
    CHECK_EQ(mem_heapprof_samples_live(), s0);
    mem_heapprof_set_interval(iv0);
}

TEST(region_allocations_sampled)
{
    begin();
    size_t saved = mem_heapprof_interval();
    mem_heapprof_set_interval(256);
    size_t live0 = mem_heapprof_samples_live();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    mem_subregion_t *s = mem_subregion_new(r, 0);
    REQUIRE(s != NULL);
    for (int i = 0; i < 400; i++) {
        CHECK(mem_region_alloc(r, 64) != NULL);
        CHECK(mem_subregion_alloc(s, 64) != NULL);
    }
    /* 51200 bytes at a mean distance of 256: about 200 samples. */
    size_t mid = mem_heapprof_samples_live();
    fprintf(stderr, "region samples: %zu\n", mid - live0);
    CHECK(mid > live0 + 100);
    CHECK(mid < live0 + 400);
    mem_subregion_free(s);
    size_t after_sub = mem_heapprof_samples_live();
    CHECK(after_sub < mid);
    CHECK(after_sub > live0);
    mem_region_free(r);
    CHECK_EQ(mem_heapprof_samples_live(), live0);
    mem_heapprof_set_interval(saved);
    end_clean();
}

/* Streams come and go: each sub-arena starts from the sampling distance a freed one left
 * (mem/region.c), which must keep the rate exact, and a new interval must apply at once. */
TEST(subarena_churn_sampling_rate)
{
    begin();
    size_t saved = mem_heapprof_interval();
    size_t live0 = mem_heapprof_samples_live();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    /* A huge interval first, so that freed sub-arenas leave huge distances behind. */
    mem_heapprof_set_interval((size_t)1 << 30);
    for (int i = 0; i < 50; i++) {
        mem_subregion_t *s = mem_subregion_new(r, 0);
        REQUIRE(s != NULL);
        CHECK(mem_subregion_alloc(s, 100) != NULL);
        mem_subregion_free(s);
    }
    /* The next sub-arena must not inherit a distance drawn for the old interval. */
    mem_heapprof_set_interval(256);
    mem_subregion_t *first = mem_subregion_new(r, 0);
    REQUIRE(first != NULL);
    for (int k = 0; k < 400; k++)
        CHECK(mem_subregion_alloc(first, 64) != NULL);
    size_t first_samples = mem_heapprof_samples_live() - live0; /* about 100 */
    fprintf(stderr, "samples after the interval change: %zu (expected about 100)\n", first_samples);
    CHECK(first_samples > 40);
    CHECK(first_samples < 200);
    mem_subregion_free(first);
    CHECK_EQ(mem_heapprof_samples_live(), live0);
    mem_heapprof_set_interval(4096);
    enum { STREAMS = 1000, OBJS = 40, LEN = 48 };
    static mem_subregion_t *kept[STREAMS / 2];
    for (int i = 0; i < STREAMS; i++) {
        mem_subregion_t *s = mem_subregion_new(r, 0);
        REQUIRE(s != NULL);
        for (int k = 0; k < OBJS; k++)
            CHECK(mem_subregion_alloc(s, LEN) != NULL);
        if (i % 2)
            mem_subregion_free(s); /* leaves its distance to the next one */
        else
            kept[i / 2] = s;
    }
    /* The kept half holds 500 * 40 * 48 = 960,000 bytes: about 234 samples (sd about 15). */
    size_t got = mem_heapprof_samples_live() - live0;
    fprintf(stderr, "samples held by the kept sub-arenas: %zu (expected about 234)\n", got);
    CHECK(got > 150);
    CHECK(got < 320);
    for (int i = 0; i < STREAMS / 2; i++)
        mem_subregion_free(kept[i]);
    mem_region_free(r);
    CHECK_EQ(mem_heapprof_samples_live(), live0);
    mem_heapprof_set_interval(saved);
    end_clean();
}

/* ---- dump ---------------------------------------------------------------------------- */

static int write_fd(void *ud, const char *buf, size_t len)
{
    int fd = *(int *)ud;
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

typedef struct membuf_s {
    char *buf;
    size_t len, cap;
} membuf_t;

static int write_mem(void *ud, const char *buf, size_t len)
{
    membuf_t *m = ud;
    if (m->len + len + 1 > m->cap) {
        size_t cap = MEM_MAX(m->cap * 2, m->len + len + 1);
        char *nb = realloc(m->buf, cap);
        if (nb == NULL)
            return -ENOMEM;
        m->buf = nb;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
    m->buf[m->len] = '\0';
    return 0;
}

static int write_fail(void *ud, const char *buf, size_t len)
{
    (void)ud, (void)buf, (void)len;
    return -EPIPE;
}

/* The allocation site the profile must name. noinline keeps its frame in the stack. */
MEM_NOINLINE void heapprof_test_alloc_site(mem_region_t *r, int n);
MEM_NOINLINE void heapprof_test_alloc_site(mem_region_t *r, int n)
{
    for (int i = 0; i < n; i++) {
        void *p = mem_region_alloc(r, 1000);
        if (p)
            memset(p, 0, 1000);
    }
    __asm__ volatile("" ::: "memory"); /* no tail call */
}

TEST(dump_format_and_pprof)
{
    begin();
    size_t saved = mem_heapprof_interval();
    mem_heapprof_set_interval(8192);
    size_t live0 = mem_heapprof_samples_live();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    heapprof_test_alloc_site(r, 400); /* 400 KB: ~50 samples */
    CHECK(mem_heapprof_samples_live() > 10);

    membuf_t m = {0};
    CHECK_OK(mem_heapprof_dump(write_mem, &m));
    REQUIRE(m.buf != NULL);
    unsigned long long io, ib, ao, ab, iv;
    CHECK_EQ(sscanf(m.buf, "heap profile: %llu: %llu [%llu: %llu] @ heap_v2/%llu", &io, &ib, &ao,
                    &ab, &iv),
             5);
    CHECK_EQ(iv, 8192);
    CHECK(io >= 10);
    CHECK(ib >= io * 1000);
    CHECK(ao >= io);
    CHECK(strstr(m.buf, "\nMAPPED_LIBRARIES:\n") != NULL);
    CHECK(strstr(m.buf, "[stack]") != NULL); /* /proc/self/maps verbatim */
    /* Every stack line: "N: N [N: N] @ 0x..". */
    char *line = strchr(m.buf, '\n') + 1;
    int stacks = 0;
    while (line && *line && *line != '\n') {
        unsigned long long a, b, c, d;
        CHECK_EQ(sscanf(line, "%llu: %llu [%llu: %llu] @ 0x", &a, &b, &c, &d), 4);
        CHECK(strstr(line, "@ 0x") != NULL);
        stacks++;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    CHECK(stacks >= 1);
    CHECK_EQ(mem_heapprof_dump(write_fail, NULL), -EPIPE);

    /* The real google-pprof reads it and names the allocation site. */
    if (access("/usr/bin/google-pprof", X_OK) != 0) {
        fprintf(stderr, "SKIP pprof check: google-pprof not installed "
                        "(apt-get install google-perftools)\n");
    } else {
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        REQUIRE(n > 0);
        exe[n] = '\0';
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        char path[4200];
        snprintf(path, sizeof(path), "%s/weir-heapprof-%d.heap", tmp, (int)getpid());
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        REQUIRE(fd >= 0);
        CHECK_OK(mem_heapprof_dump(write_fd, &fd));
        close(fd);
        char cmd[8600];
        snprintf(cmd, sizeof(cmd), "/usr/bin/google-pprof --text '%s' '%s' 2>&1", exe, path);
        FILE *f = popen(cmd, "r");
        REQUIRE(f != NULL);
        static char out[1 << 16];
        size_t len = fread(out, 1, sizeof(out) - 1, f);
        out[len] = '\0';
        int rc = pclose(f);
        CHECK_EQ(rc, 0);
        bool named = strstr(out, "heapprof_test_alloc_site") != NULL;
        /* The stack starts at the site: the allocator's own frames are not in it. */
        bool region = strstr(out, "mem__bump_alloc_slow") == NULL;
        CHECK(named);
        CHECK(region);
        if (!named || !region || rc != 0)
            fprintf(stderr, "google-pprof said:\n%.3000s\n", out);
        else
            fprintf(stderr, "google-pprof --text:\n%.600s\n", out);
        unlink(path);
    }
    free(m.buf);
    mem_region_free(r);
    CHECK_EQ(mem_heapprof_samples_live(), live0);
    mem_heapprof_set_interval(saved);
    end_clean();
}

/* ---- which samples take the DWARF unwinder ------------------------------------------- */

/* mem/ is linked statically, so this definition takes its backtrace() calls: each is counted
 * and passed on to libc's. */
static int backtrace_calls;

int backtrace(void **buf, int size)
{
    static int (*real)(void **, int);
    if (real == NULL)
        real = (int (*)(void **, int))dlsym(RTLD_NEXT, "backtrace");
    __atomic_fetch_add(&backtrace_calls, 1, __ATOMIC_RELAXED);
    return real ? real(buf, size) : 0;
}

enum { CMP_OBJS_MAX = 4096 };
static void *cmp_objs[CMP_OBJS_MAX];
static int cmp_objs_cnt;

/* A weir callback that a library (libc's qsort) runs, and that allocates for itself: the
 * frame-pointer walk names it, and that is enough. */
static int cmp_alloc(const void *a, const void *b)
{
    if (cmp_objs_cnt < CMP_OBJS_MAX)
        cmp_objs[cmp_objs_cnt++] = mem_malloc(200);
    return *(const int *)a - *(const int *)b;
}

/* An allocator hook (as nghttp2's and OpenSSL's are): what it allocates is the library's,
 * whose frames only the DWARF unwinder names. */
MEM_LIB_HOOK static int cmp_alloc_hook(const void *a, const void *b)
{
    if (cmp_objs_cnt < CMP_OBJS_MAX)
        cmp_objs[cmp_objs_cnt++] = mem_malloc(200);
    return *(const int *)a - *(const int *)b;
}

TEST(library_callback_unwound_by_frame_pointers)
{
    begin();
    size_t saved = mem_heapprof_interval();
    size_t live0 = mem_heapprof_samples_live();
    mem_heapprof_set_interval(64); /* about every 200 B allocation is a sample */
    static int keys[64];
    for (int i = 0; i < 64; i++)
        keys[i] = (i * 37) % 64;
    backtrace_calls = 0;
    qsort(keys, 64, sizeof(int), cmp_alloc);
    int plain_bt = backtrace_calls;
    size_t plain_samples = mem_heapprof_samples_live() - live0;
    int plain_cnt = cmp_objs_cnt;
    for (int i = 0; i < 64; i++)
        keys[i] = (i * 37) % 64;
    backtrace_calls = 0;
    qsort(keys, 64, sizeof(int), cmp_alloc_hook);
    int hook_bt = backtrace_calls;
    size_t hook_samples = mem_heapprof_samples_live() - live0 - plain_samples;
    fprintf(stderr,
            "callback run by qsort: %zu samples, %d backtrace() calls; allocator hook run by "
            "qsort: %zu samples, %d backtrace() calls\n",
            plain_samples, plain_bt, hook_samples, hook_bt);
    CHECK(plain_cnt > 100);
    CHECK(plain_samples > 50);
    CHECK_EQ(plain_bt, 0); /* weir's own: frame pointers only */
    CHECK(hook_samples > 50);
    CHECK(hook_bt >= (int)hook_samples); /* the library's: the DWARF unwinder */
    for (int i = 0; i < cmp_objs_cnt; i++)
        mem_free(cmp_objs[i]);
    cmp_objs_cnt = 0;
    CHECK_EQ(mem_heapprof_samples_live(), live0);
    mem_heapprof_set_interval(saved);
    end_clean();
}

/* ---- threads: sampling from several threads while another dumps ----------------------- */

static int threads_done;

static void *thread_regions(void *arg)
{
    (void)arg;
    for (int round = 0; round < 30; round++) {
        mem_region_t *r = mem_region_new(0);
        if (r == NULL)
            return (void *)1;
        for (int k = 0; k < 4; k++) {
            mem_subregion_t *s = mem_subregion_new(r, 0);
            if (s == NULL)
                return (void *)1;
            for (int i = 0; i < 50; i++) {
                if (mem_subregion_alloc(s, 48 + (size_t)i * 8) == NULL)
                    return (void *)1;
            }
            void *p = mem_malloc(700);
            if (p == NULL)
                return (void *)1;
            mem_free(p);
            mem_subregion_free(s);
        }
        heapprof_test_alloc_site(r, 20);
        mem_region_free(r);
    }
    mem_thread_detach();
    __atomic_fetch_add(&threads_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int write_discard(void *ud, const char *buf, size_t len)
{
    (void)buf;
    *(size_t *)ud += len;
    return 0;
}

TEST(concurrent_sampling_and_dump)
{
    begin();
    size_t saved = mem_heapprof_interval();
    size_t live0 = mem_heapprof_samples_live();
    mem_heapprof_set_interval(2048);
    enum { T = 4 };
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        REQUIRE(pthread_create(&th[i], NULL, thread_regions, NULL) == 0);
    /* Dump for as long as the threads sample (bounded), so the two really overlap. */
    int dumps = 0;
    while (__atomic_load_n(&threads_done, __ATOMIC_ACQUIRE) < T && dumps < 100000) {
        size_t bytes = 0;
        CHECK_OK(mem_heapprof_dump(write_discard, &bytes));
        CHECK(bytes > 100);
        dumps++;
    }
    fprintf(stderr, "dumps while sampling: %d\n", dumps);
    int bad = 0;
    for (int i = 0; i < T; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        bad += ret != NULL;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(mem_heapprof_samples_live(), live0);
    mem_heapprof_set_interval(saved);
    end_clean();
}

int main(void)
{
    mem_config_t cfg;
    mem_config_default(&cfg);
    int rc = mem_init(&cfg);
    if (rc != 0) {
        fprintf(stderr, "mem_init: %d\n", rc);
        return 1;
    }
    RUN(interval_statistics);
    RUN(record_and_forget);
    RUN(calloc_and_aligned_sampled);
    RUN(region_allocations_sampled);
    RUN(subarena_churn_sampling_rate);
    RUN(dump_format_and_pprof);
    RUN(concurrent_sampling_and_dump);
    RUN(library_callback_unwound_by_frame_pointers);
    return TEST_SUMMARY();
}
