/*
 * tests/unit/mem/region_test.c: regions: bump allocation and alignment, the byte cap, large
 * allocations, cleanup order, per-thread attribution, stats counters and (under ASan) that
 * freed and unused region memory is poisoned.
 */
#include "mem/base.h"
#include "mem/region.h"
#include "mem/arena_internal.h"
#include "mem/sizeclass.h"

#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"
#include "tests/unit/mem/arena_check.h"

TEST(bump_and_alignment)
{
    begin();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    CHECK(mem_region_id(r) > 0);
    CHECK_EQ(mem_region_cap(r), 0);
    size_t held0 = mem_region_bytes(r);
    CHECK(held0 >= 1024);
    char *prev = NULL;
    size_t prev_len = 0;
    for (size_t len = 1; len <= 100; len++) {
        char *p = mem_region_alloc(r, len);
        REQUIRE(p != NULL);
        CHECK_EQ((uintptr_t)p % 16, 0);
        memset(p, (int)len, len);
        /* Bump: within a chunk, the next allocation follows the previous one, rounded. */
        if (prev && mem_region_bytes(r) == held0)
            CHECK(p == prev + ((prev_len + 15) & ~(size_t)15));
        if (mem_region_bytes(r) != held0)
            held0 = mem_region_bytes(r);
        prev = p;
        prev_len = len;
    }
    CHECK(mem_region_bytes_used(r) >= 5050);
    CHECK(mem_region_bytes(r) >= mem_region_bytes_used(r));
    /* Zero-length allocations still return usable, distinct-or-equal non-NULL pointers. */
    CHECK(mem_region_alloc(r, 0) != NULL);
    char *z = mem_region_calloc(r, 300);
    REQUIRE(z != NULL);
    size_t nz = 0;
    for (int i = 0; i < 300; i++)
        nz += z[i] != 0;
    CHECK_EQ(nz, 0);
    char *s = mem_region_strndup(r, "hello, world", 5);
    CHECK_STR(s, "hello");
    mem_region_free(r);
    mem_region_free(NULL);
    end_clean();
}

TEST(contents_survive_growth)
{
    begin();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    enum { N = 2000 };
    static uint32_t *ptrs[N];
    for (uint32_t i = 0; i < N; i++) {
        ptrs[i] = mem_region_alloc(r, 4 + (i % 200) * 4);
        REQUIRE(ptrs[i] != NULL);
        for (uint32_t k = 0; k < 1 + i % 200; k++)
            ptrs[i][k] = i * 7919u + k;
    }
    size_t bad = 0;
    for (uint32_t i = 0; i < N; i++) {
        for (uint32_t k = 0; k < 1 + i % 200; k++)
            bad += ptrs[i][k] != i * 7919u + k;
    }
    CHECK_EQ(bad, 0);
    /* ~400 KB in chunks capped at 32 KiB: many chunks, none above the largest size class. */
    CHECK(mem_region_bytes(r) >= mem_region_bytes_used(r));
    snap();
    CHECK_EQ(st.region_bytes, mem_region_bytes(r));
    mem_region_free(r);
    end_clean();
}

TEST(cap_returns_null)
{
    begin();
    mem_region_t *r = mem_region_new(4096);
    REQUIRE(r != NULL);
    CHECK_EQ(mem_region_cap(r), 4096);
    size_t got = 0;
    for (int i = 0; i < 1000; i++) {
        void *p = mem_region_alloc(r, 100);
        if (p == NULL)
            break;
        got++;
        CHECK(mem_region_bytes(r) <= 4096);
    }
    CHECK(got > 20);   /* most of the cap is usable */
    CHECK(got < 1000); /* and the cap stopped it */
    CHECK(mem_region_bytes(r) <= 4096);
    /* A large allocation over the cap fails as well, and leaves the region usable. */
    CHECK(mem_region_alloc(r, 100000) == NULL);
    CHECK(mem_region_alloc(r, SIZE_MAX) == NULL);
    CHECK(mem_region_alloc(r, SIZE_MAX - 8) == NULL);
    CHECK(mem_region_strndup(r, "x", SIZE_MAX) == NULL);
    CHECK(mem_region_bytes(r) <= 4096);
    mem_region_free(r);

    /* A cap too small for the region's own header refuses the region. */
    CHECK(mem_region_new(64) == NULL);
    end_clean();
}

/* A large object's record can take a new chunk, charged to the cap: the cap must still hold
 * afterwards. The current chunk is filled first, so the record needs a new one, and the
 * large object is the largest class that fits the room left before that chunk. */
TEST(cap_holds_when_record_grows_chunk)
{
    begin();
    for (size_t cap = 12288; cap <= 20480; cap += 1024) {
        mem_region_t *r = mem_region_new(cap);
        REQUIRE(r != NULL);
        mem__arena_t *a = &r->arena;
        while ((size_t)(a->chunk_end - a->bump.cur) >= 16 && mem_region_bytes(r) + 4096 < cap)
            REQUIRE(mem_region_alloc(r, 16) != NULL);
        if ((size_t)(a->chunk_end - a->bump.cur) >= 16) {
            mem_region_free(r);
            continue;
        }
        size_t room = cap - mem_region_bytes(r);
        unsigned c = mem_sc_of(room);
        if (c < MEM_SC_COUNT && mem_sc_size[c] > room)
            c--;
        REQUIRE(c < MEM_SC_COUNT && mem_sc_size[c] > MEM__ARENA_BIG);
        void *p = mem_region_alloc(r, mem_sc_size[c]);
        (void)p; /* may fail: the record took the room; it must not pass the cap */
        CHECK(mem_region_bytes(r) <= cap);
        mem_region_free(r);
    }
    end_clean();
}

TEST(large_allocations_tracked)
{
    begin();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    size_t held = mem_region_bytes(r);
    char *small = mem_region_alloc(r, 64);
    REQUIRE(small != NULL);
    CHECK_EQ(mem_region_bytes(r), held); /* from the first chunk */
    char *big = mem_region_alloc(r, 20000);
    REQUIRE(big != NULL);
    CHECK_EQ((uintptr_t)big % 16, 0);
    memset(big, 0xab, 20000);
    /* Charged what it holds: the 20 KiB size class, no header (its tracking record takes
     * 16 bytes of the current chunk). */
    CHECK_EQ(mem_region_bytes(r), held + 20480);
    char *big2 = mem_region_alloc(r, 100000); /* beyond the largest size class */
    REQUIRE(big2 != NULL);
    memset(big2, 0xcd, 100000);
    CHECK(mem_region_bytes(r) >= held + 120000);
    /* The first chunk is still the current one: large objects did not replace it, only
     * their two 16-byte records were bumped from it. */
    char *small2 = mem_region_alloc(r, 64);
    CHECK(small2 == small + 64 + 2 * 16);
    CHECK_EQ((unsigned char)big[19999], 0xab);
    snap();
    CHECK(st.live >= base_live + 120000);
    mem_region_free(r);
    end_clean();
}

static int order[8];
static int order_cnt;
static void on_cleanup(void *arg)
{
    order[order_cnt++] = (int)(intptr_t)arg;
}

TEST(cleanups_last_added_first)
{
    begin();
    order_cnt = 0;
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    for (intptr_t i = 1; i <= 5; i++)
        CHECK_OK(mem_region_cleanup_add(r, on_cleanup, (void *)i));
    CHECK_EQ(order_cnt, 0);
    mem_region_free(r);
    CHECK_EQ(order_cnt, 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(order[i], 5 - i);
    end_clean();
}

TEST(cleanup_add_fails_at_cap)
{
    begin();
    mem_region_t *r = mem_region_new(1024);
    REQUIRE(r != NULL);
    while (mem_region_alloc(r, 16) != NULL)
        ;
    CHECK_EQ(mem_region_cleanup_add(r, on_cleanup, NULL), -ENOMEM);
    mem_region_free(r);
    end_clean();
}

typedef struct seen_s {
    int cnt;
    uint64_t ids[8];
    char labels[8][64];
    size_t bytes[8];
    uint64_t created[8];
} seen_t;

static void on_region(const mem_region_info_t *info, void *arg)
{
    seen_t *s = arg;
    if (s->cnt < 8) {
        s->ids[s->cnt] = info->id;
        snprintf(s->labels[s->cnt], 64, "%s", info->label);
        s->bytes[s->cnt] = info->bytes;
        s->created[s->cnt] = info->created_ns;
        CHECK(info->bytes >= info->bytes_used);
        CHECK(info->bytes == mem_region_bytes(info->region));
    }
    s->cnt++;
}

static void *thread_region(void *arg)
{
    seen_t *s = arg;
    mem_region_t *r = mem_region_new(0);
    if (r == NULL)
        return (void *)1;
    mem_region_set_label(r, "other-thread");
    mem_region_foreach_local(on_region, s);
    mem_region_free(r);
    mem_thread_detach();
    return NULL;
}

TEST(foreach_local)
{
    begin();
    mem_region_t *a = mem_region_new(0), *b = mem_region_new(8192), *c = mem_region_new(0);
    REQUIRE(a && b && c);
    mem_region_set_label(a, "10.0.0.1:5000");
    mem_region_set_label(b, "a label that is much longer than the forty-eight bytes kept");
    CHECK(mem_region_alloc(b, 3000) != NULL);
    seen_t s = {0};
    mem_region_foreach_local(on_region, &s);
    CHECK_EQ(s.cnt, 3);
    int found = 0;
    for (int i = 0; i < s.cnt && i < 8; i++) {
        if (s.ids[i] == mem_region_id(a)) {
            CHECK_STR(s.labels[i], "10.0.0.1:5000");
            found++;
        } else if (s.ids[i] == mem_region_id(b)) {
            CHECK(strncmp(s.labels[i], "a label that is", 15) == 0);
            CHECK(strlen(s.labels[i]) < 48);
            CHECK(s.bytes[i] >= 3000);
            found++;
        } else if (s.ids[i] == mem_region_id(c)) {
            CHECK_STR(s.labels[i], "");
            found++;
        }
        CHECK(s.created[i] > 0);
    }
    CHECK_EQ(found, 3);
    CHECK(mem_region_id(a) != mem_region_id(b));

    /* Another thread sees only its own region, and ours are not its. */
    seen_t t = {0};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, thread_region, &t) == 0);
    void *ret;
    pthread_join(th, &ret);
    CHECK(ret == NULL);
    CHECK_EQ(t.cnt, 1);
    CHECK_STR(t.labels[0], "other-thread");

    mem_region_free(b);
    s.cnt = 0;
    mem_region_foreach_local(on_region, &s);
    CHECK_EQ(s.cnt, 2);
    mem_region_free(a);
    mem_region_free(c);
    s.cnt = 0;
    mem_region_foreach_local(on_region, &s);
    CHECK_EQ(s.cnt, 0);
    end_clean();
}

TEST(stats_counters)
{
    begin();
    snap();
    uint64_t created0 = st.regions_created;
    mem_region_t *r[4];
    size_t total = 0;
    for (int i = 0; i < 4; i++) {
        r[i] = mem_region_new(0);
        REQUIRE(r[i] != NULL);
        CHECK(mem_region_alloc(r[i], 1000 * (size_t)(i + 1)) != NULL);
        total += mem_region_bytes(r[i]);
    }
    snap();
    CHECK_EQ(st.regions_live, 4);
    CHECK_EQ(st.regions_created, created0 + 4);
    CHECK_EQ(st.region_bytes, total);
    CHECK(st.live >= base_live + total);
    for (int i = 0; i < 4; i++)
        mem_region_free(r[i]);
    snap();
    CHECK_EQ(st.regions_created, created0 + 4);
    end_clean();
}

#if MEM_HAVE_ASAN
/* Runs `fn` in a child and returns true when the child died with an ASan report naming one of
 * the expected bug kinds. */
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
        _exit(0); /* not reached when ASan caught it */
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
    bool named = strstr(out, "use-after-poison") || strstr(out, "heap-use-after-free") ||
                 strstr(out, "heap-buffer-overflow");
    if (!died || !named)
        fprintf(stderr, "child status %d, stderr:\n%.2000s\n", status, out);
    return died && named;
}

static void touch_after_free(void)
{
    mem_region_t *r = mem_region_new(0);
    volatile char *p = mem_region_alloc(r, 64);
    p[0] = 1;
    mem_region_free(r);
    p[0] = 2;
}

static void touch_large_after_free(void)
{
    mem_region_t *r = mem_region_new(0);
    volatile char *p = mem_region_alloc(r, 20000);
    p[0] = 1;
    mem_region_free(r);
    p[100] = 2;
}

static void overrun_into_tail(void)
{
    mem_region_t *r = mem_region_new(0);
    volatile char *p = mem_region_alloc(r, 24);
    p[24] = 1; /* one past the end, inside the chunk's unused tail */
}

TEST(asan_poisoning)
{
    begin();
    CHECK(child_dies_with_asan(touch_after_free));
    CHECK(child_dies_with_asan(touch_large_after_free));
    CHECK(child_dies_with_asan(overrun_into_tail));
    end_clean(); /* the children allocated, not us */
}
#endif

/* mem_region_new_ext: the owner's struct right after the region's, zeroed and aligned, and the
 * first chunk one whole size class (the rounding is bump room): a connection's struct and its
 * codec endpoint in one 2,048-byte object (proxy/core/conn.c). */
TEST(ext_first_chunk)
{
    begin();
    mem_region_t *r = mem_region_new_ext(0, 2048, 1096);
    REQUIRE(r != NULL);
    CHECK_EQ(mem_region_bytes(r), 2048);
    unsigned char *ext = mem_region_ext(r);
    REQUIRE(ext != NULL);
    CHECK_EQ((uintptr_t)ext % 16, 0);
    CHECK(ext >= (unsigned char *)r + sizeof(mem_region_t));
    size_t nz = 0;
    for (size_t i = 0; i < 1096; i++)
        nz += ext[i] != 0;
    CHECK_EQ(nz, 0);
    memset(ext, 0xab, 1096);
    /* What is left of the chunk is bump room: 688 bytes (the codec's endpoint) still fit. */
    unsigned char *p = mem_region_calloc(r, 688);
    REQUIRE(p != NULL);
    CHECK(p >= ext + 1096);
    CHECK_EQ(mem_region_bytes(r), 2048);
    CHECK_EQ(ext[1095], 0xab);
    /* The next allocation that does not fit takes a new chunk. */
    CHECK(mem_region_alloc(r, 64) != NULL);
    CHECK(mem_region_bytes(r) > 2048);
    mem_region_free(r);
    /* A first length that is not a class is rounded up to one; ext alone sizes it too. */
    r = mem_region_new_ext(0, 1100, 0);
    REQUIRE(r != NULL);
    CHECK_EQ(mem_region_bytes(r), mem_sc_size[mem_sc_of(1100)]);
    mem_region_free(r);
    r = mem_region_new_ext(0, 0, 3000);
    REQUIRE(r != NULL);
    CHECK(mem_region_bytes(r) >= 3000 + sizeof(mem_region_t));
    mem_region_free(r);
    /* A cap below the first chunk refuses the region. */
    CHECK(mem_region_new_ext(1024, 2048, 1096) == NULL);
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
    RUN(bump_and_alignment);
    RUN(ext_first_chunk);
    RUN(contents_survive_growth);
    RUN(cap_returns_null);
    RUN(cap_holds_when_record_grows_chunk);
    RUN(large_allocations_tracked);
    RUN(cleanups_last_added_first);
    RUN(cleanup_add_fails_at_cap);
    RUN(foreach_local);
    RUN(stats_counters);
#if MEM_HAVE_ASAN
    RUN(asan_poisoning);
#endif
    return TEST_SUMMARY();
}
