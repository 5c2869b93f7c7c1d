/*
 * tests/fault/proxy_pprof_pb_fault.c: the protobuf heap profile (proxy/admin/pprof_pb.c)
 * under allocation failure, and its encoding.
 *
 * A heap with samples from a few distinct sites is written with px_pprof_pb_write while
 * mem_fault_set(n, 0) fails the nth allocation slow path, n swept until a run injects none;
 * then random faults. Every run must end in 0 or -ENOMEM (never a crash or a partial success
 * reported as one) and leave the live bytes where they were. The run without faults is
 * inflated with zlib and walked field by field: every top-level field of the Profile must be
 * one profile.proto defines, with its wire type, ending exactly at the end of the message, and
 * the string table must hold the sample types and labels.
 */
#include "mem/base.h"

#include <string.h>

#include <zlib.h>

#include "mem/heapprof.h"
#include "mem/heapsnap.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "proxy/admin/pprof_pb.h"
#include "tests/harness.h"

#define OUT_MAX (4u << 20)

static unsigned char out[OUT_MAX];
static size_t out_len;

static int on_write(void *ud, const char *buf, size_t len)
{
    (void)ud;
    if (len > OUT_MAX - out_len)
        return -E2BIG;
    memcpy(out + out_len, buf, len);
    out_len += len;
    return 0;
}

static uint64_t live_now(void)
{
    mem_stats_t *st = mem_malloc(sizeof(*st));
    if (st == NULL)
        return 0;
    mem_thread_flush();
    mem_stats_snapshot(st);
    uint64_t v = st->live - sizeof(*st);
    mem_free(st);
    return v;
}

/* Distinct allocation sites, so the profile has several stacks. */
static MEM_NOINLINE void *site_a(size_t n)
{
    return mem_malloc(n);
}
static MEM_NOINLINE void *site_b(size_t n)
{
    return mem_calloc(1, n);
}

static void *held[3000];

static int run_once(void)
{
    out_len = 0;
    return px_pprof_pb_write(MEM_HEAPSNAP_LIVE, on_write, NULL);
}

static bool varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (unsigned sh = 0; sh < 64 && *p < end; sh += 7) {
        unsigned char b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

TEST(faults_then_encoding)
{
    size_t saved = mem_heapprof_interval();
    mem_heapprof_set_interval(512);
    for (unsigned i = 0; i < 3000; i++)
        held[i] = i % 2 ? site_a(64 + i % 700) : site_b(3000 + i);
    mem_heapprof_set_interval(0); /* no new samples while the sweep runs */
    uint64_t base_live = live_now();
    int failures = 0, runs = 0;
    bool done = false;
    for (uint64_t n = 1; n <= 5000 && !done; n++) {
        mem_thread_flush();
        uint64_t before = mem_fault_injected();
        mem_fault_set(n, 0);
        int rc = run_once();
        mem_fault_set(0, 0);
        uint64_t injected = mem_fault_injected() - before;
        runs++;
        if (rc != 0) {
            failures++;
            CHECK(injected > 0);
            CHECK_EQ(rc, -ENOMEM);
        } else if (injected == 0) {
            done = true;
        }
        CHECK_EQ(live_now(), base_live);
    }
    fprintf(stderr, "sweep: %d runs, %d failed with an injected fault\n", runs, failures);
    CHECK(done);

    int random_failures = 0;
    for (int i = 0; i < 100; i++) {
        mem_thread_flush();
        mem_fault_set(0, 5);
        int rc = run_once();
        mem_fault_set(0, 0);
        CHECK(rc == 0 || rc == -ENOMEM);
        random_failures += rc != 0;
        CHECK_EQ(live_now(), base_live);
    }
    fprintf(stderr, "random: %d of 100 runs failed\n", random_failures);
    /* The encoder's allocations mostly hit the thread cache's fast path, which the nth-event
     * sweep rarely reaches; the random faults (1 in 5 slow-path and refill events) do. */
    CHECK(failures + random_failures > 0);

    /* The fault-free output: gzip of a well-formed Profile. */
    CHECK_OK(run_once());
    CHECK(out_len > 18);
    CHECK(out[0] == 0x1f && out[1] == 0x8b);
    static unsigned char pb[16u << 20];
    z_stream z;
    memset(&z, 0, sizeof(z));
    CHECK(inflateInit2(&z, 15 + 16) == Z_OK);
    z.next_in = out;
    z.avail_in = (uInt)out_len;
    z.next_out = pb;
    z.avail_out = sizeof(pb);
    CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
    size_t pb_len = sizeof(pb) - z.avail_out;
    inflateEnd(&z);
    const unsigned char *p = pb, *end = pb + pb_len;
    unsigned cnt[16] = {0};
    bool has_inuse = false, has_worker = false, has_owner = false, first_empty = false;
    while (p < end) {
        uint64_t key, v;
        CHECK(varint(&p, end, &key));
        unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
        CHECK(field >= 1 && field <= 14);
        /* Length-delimited: sample_type, sample, location, function, string_table,
         * period_type; varints: time_nanos, period, comment, default_sample_type. */
        bool ld = field == 1 || field == 2 || field == 4 || field == 5 || field == 6 || field == 11;
        CHECK_EQ(wt, ld ? 2u : 0u);
        CHECK(varint(&p, end, &v));
        if (ld) {
            CHECK(v <= (uint64_t)(end - p));
            if (field == 6) {
                if (cnt[6] == 0)
                    first_empty = v == 0;
                has_inuse |= v == 11 && memcmp(p, "inuse_space", 11) == 0;
                has_worker |= v == 6 && memcmp(p, "worker", 6) == 0;
                has_owner |= v == 5 && memcmp(p, "owner", 5) == 0;
            }
            p += v;
        }
        if (field < 16)
            cnt[field]++;
    }
    CHECK(p == end);
    fprintf(stderr,
            "profile: %zu bytes gzipped, %zu inflated; %u sample types, %u samples, %u "
            "locations, %u functions, %u strings\n",
            out_len, pb_len, cnt[1], cnt[2], cnt[4], cnt[5], cnt[6]);
    CHECK_EQ(cnt[1], 4u);
    CHECK(cnt[2] >= 2);
    CHECK(cnt[4] >= 2);
    CHECK(cnt[5] >= 2);
    CHECK_EQ(cnt[12], 1u);
    CHECK_EQ(cnt[14], 1u);
    CHECK(first_empty);
    CHECK(has_inuse && has_worker && has_owner);

    for (unsigned i = 0; i < 3000; i++)
        mem_free(held[i]);
    mem_heapprof_set_interval(saved);
}

int main(void)
{
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        return 1;
    RUN(faults_then_encoding);
    return TEST_SUMMARY();
}
