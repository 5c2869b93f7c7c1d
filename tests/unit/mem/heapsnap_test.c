/*
 * tests/unit/mem/heapsnap_test.c: the kept heap snapshots: the peak snapshot keeps a burst's
 * samples after the burst is freed (the live heap no longer has them), a rising ramp copies
 * only past the margin, overload snapshots are numbered and kept in a ring of
 * MEM_HEAPSNAP_OVERLOAD_MAX, a reset forgets the peak, and the slots' memory is charged as
 * metadata.
 */
#include "mem/base.h"
#include "mem/heapsnap.h"

#include <string.h>
#include <unistd.h>

#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/sizeclass.h"
#include "mem/stats.h"
#include "tests/harness.h"
#include "tests/unit/mem/arena_check.h"

/* An object size whose class no other allocation of this test uses. */
#define BURST_LEN 3000u
#define BURST_CNT 3000u

typedef struct sum_s {
    uint32_t sc;
    uint64_t live_bytes, alloc_bytes, rows;
} sum_t;

static int on_row(void *ud, const mem_heapprof_row_t *r)
{
    sum_t *s = ud;
    s->rows++;
    if (r->sc_bytes == s->sc && strcmp(r->owner, "tcache") == 0) {
        s->live_bytes += r->live_bytes;
        s->alloc_bytes += r->alloc_bytes;
    }
    return 0;
}

static sum_t sum_of(long which, int *rc)
{
    sum_t s = {.sc = mem_sc_size[mem_sc_of(BURST_LEN)]};
    size_t interval = 0;
    *rc = mem_heapprof_each_row(which, on_row, &s, &interval);
    return s;
}

TEST(peak_outlives_the_burst)
{
    begin();
    size_t saved = mem_heapprof_interval();
    mem_heapprof_set_interval(4096);
    mem_heapsnap_peak_reset();
    CHECK_EQ(mem_heapsnap_peak_committed(), 0);
    mem_heapsnap_info_t info;
    CHECK_EQ(mem_heapsnap_info(MEM_HEAPSNAP_PEAK, &info), -ENOENT);
    static void *p[BURST_CNT];
    for (unsigned i = 0; i < BURST_CNT; i++) {
        p[i] = mem_malloc(BURST_LEN);
        CHECK(p[i] != NULL);
    }
    /* The burst took well under the gap: the monitor's poll after it copies the top. */
    usleep((MEM_HEAPSNAP_PEAK_GAP_MS + 20) * 1000);
    mem_heapsnap_peak_poll();
    uint64_t top = mem_budget_committed();
    CHECK_OK(mem_heapsnap_info(MEM_HEAPSNAP_PEAK, &info));
    fprintf(stderr, "peak: committed %llu (now %llu), %llu buckets, %llu bytes held\n",
            (unsigned long long)info.committed, (unsigned long long)top,
            (unsigned long long)info.buckets, (unsigned long long)info.charged_bytes);
    CHECK(info.committed >= top - top / 16);
    CHECK(info.buckets > 0);
    CHECK(info.charged_bytes >= info.buckets * sizeof(mem__heapprof_bucket_t));
    CHECK(mem_heapsnap_bytes() >= info.charged_bytes);
    mem_stats_t *st_now = mem_malloc(sizeof(*st_now));
    CHECK(st_now != NULL);
    mem_stats_snapshot(st_now);
    CHECK(st_now->metadata >= mem_heapsnap_bytes());
    mem_free(st_now);

    int rc;
    sum_t live = sum_of(MEM_HEAPSNAP_LIVE, &rc);
    CHECK_OK(rc);
    /* 9 MB at one sample per 4 KiB: about 1,560 samples of 3,000 bytes (P = 0.52 each). */
    CHECK(live.live_bytes > (uint64_t)BURST_LEN * BURST_CNT / 4);
    for (unsigned i = 0; i < BURST_CNT; i++)
        mem_free(p[i]);
    sum_t after = sum_of(MEM_HEAPSNAP_LIVE, &rc);
    CHECK_OK(rc);
    sum_t peak = sum_of(MEM_HEAPSNAP_PEAK, &rc);
    CHECK_OK(rc);
    fprintf(stderr, "burst class %u: live %llu while held, %llu after free; peak %llu\n", live.sc,
            (unsigned long long)live.live_bytes, (unsigned long long)after.live_bytes,
            (unsigned long long)peak.live_bytes);
    CHECK_EQ(after.live_bytes, 0);
    CHECK(peak.live_bytes >= live.live_bytes * 9 / 10);

    /* Freed memory does not lower the kept peak: the next check does not copy. */
    uint64_t kept = info.wall_ms;
    usleep((MEM_HEAPSNAP_PEAK_GAP_MS + 20) * 1000);
    mem_heapsnap_peak_poll();
    CHECK_OK(mem_heapsnap_info(MEM_HEAPSNAP_PEAK, &info));
    CHECK_EQ(info.wall_ms, kept);

    /* A reset forgets it; the next poll starts again from what is committed now. */
    mem_heapsnap_peak_reset();
    CHECK_EQ(mem_heapsnap_info(MEM_HEAPSNAP_PEAK, &info), -ENOENT);
    mem_heapsnap_peak_poll();
    CHECK_OK(mem_heapsnap_info(MEM_HEAPSNAP_PEAK, &info));
    peak = sum_of(MEM_HEAPSNAP_PEAK, &rc);
    CHECK_OK(rc);
    CHECK_EQ(peak.live_bytes, 0);
    mem_heapprof_set_interval(saved);
    end_clean();
}

TEST(overload_ring)
{
    begin();
    size_t saved = mem_heapprof_interval();
    long w = 0;
    mem_heapprof_set_interval(0);
    CHECK_EQ(mem_heapsnap_save(1, &w), -ENOENT);
    mem_heapprof_set_interval(4096);
    static void *p[BURST_CNT];
    for (unsigned i = 0; i < BURST_CNT; i++) {
        p[i] = mem_malloc(BURST_LEN);
        CHECK(p[i] != NULL);
    }
    long first = 0;
    CHECK_OK(mem_heapsnap_save(2, &first));
    CHECK(first >= 1);
    for (unsigned i = 0; i < BURST_CNT; i++)
        mem_free(p[i]);
    int rc;
    sum_t s = sum_of(first, &rc);
    CHECK_OK(rc);
    CHECK(s.live_bytes > (uint64_t)BURST_LEN * BURST_CNT / 4);
    mem_heapsnap_info_t info;
    CHECK_OK(mem_heapsnap_info(first, &info));
    CHECK_EQ(info.tag, 2);
    CHECK_EQ(info.which, first);
    /* The ring keeps the last MEM_HEAPSNAP_OVERLOAD_MAX. */
    for (unsigned i = 0; i < MEM_HEAPSNAP_OVERLOAD_MAX; i++) {
        CHECK_OK(mem_heapsnap_save(1, &w));
        CHECK_EQ(w, first + 1 + (long)i);
    }
    CHECK_EQ(mem_heapsnap_info(first, &info), -ENOENT);
    s = sum_of(first, &rc);
    CHECK_EQ(rc, -ENOENT);
    CHECK_OK(mem_heapsnap_info(w, &info));
    CHECK_EQ(mem_heapsnap_info(w + 1, &info), -ENOENT);
    CHECK_EQ(mem_heapsnap_info(0, &info), -ENOENT);
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
    RUN(peak_outlives_the_burst);
    RUN(overload_ring);
    return TEST_SUMMARY();
}
