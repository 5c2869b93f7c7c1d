/*
 * tests/fault/mem_region_fault.c: allocation failure inside regions and sub-arenas.
 *
 * Sweeps mem_fault_set(n, 0) over a connection-shaped scenario (region, streams with sub-arenas,
 * small, chunk-sized and large allocations, cleanups) until it runs with no fault injected.
 * Every failure must surface as NULL or -ENOMEM, and after each run every byte, region and
 * sub-arena is gone. Then the same scenario under random faults (1 in N).
 */
#include "mem/base.h"
#include "mem/region.h"

#include <string.h>

#include "mem/heapprof.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "mem/subregion.h"
#include "tests/harness.h"

static mem_stats_t st;
static int cleanups_added, cleanups_run;

static void on_cleanup(void *arg)
{
    (void)arg;
    cleanups_run++;
}

/* The scenario: returns 0 when every step succeeded, -ENOMEM at the first failure (after
 * freeing everything, as a connection would on OOM). */
static int scenario(void)
{
    static const size_t sizes[] = {24, 100, 700, 3000, 9000, 40000, 200000, 16, 5000, 120};
    mem_region_t *r = mem_region_new(1 << 24);
    if (r == NULL)
        return -ENOMEM;
    int rc = -ENOMEM;
    if (mem_region_cleanup_add(r, on_cleanup, NULL) != 0)
        goto fail;
    cleanups_added++;
    for (int i = 0; i < 64; i++) {
        void *p = mem_region_alloc(r, sizes[i % MEM_ARRAY_LEN(sizes)]);
        if (p == NULL)
            goto fail;
        memset(p, 0x5a, sizes[i % MEM_ARRAY_LEN(sizes)]);
    }
    mem_subregion_t *keep = NULL;
    for (int stream = 0; stream < 12; stream++) {
        mem_subregion_t *s = mem_subregion_new(r, 1 << 21);
        if (s == NULL)
            goto fail;
        if (mem_subregion_cleanup_add(s, on_cleanup, NULL) != 0)
            goto fail; /* the region frees s */
        cleanups_added++;
        for (int i = 0; i < 20; i++) {
            size_t len = sizes[(i + stream) % MEM_ARRAY_LEN(sizes)];
            char *p = mem_subregion_alloc(s, len);
            if (p == NULL)
                goto fail;
            p[0] = 1;
            p[len - 1] = 2;
        }
        if (mem_subregion_strndup(s, "x-request-id", 12) == NULL)
            goto fail;
        /* Most streams close on their own; every third stays open for the region to free. */
        if (stream % 3 != 0)
            mem_subregion_free(s);
        else
            keep = s;
    }
    (void)keep;
    rc = 0;
fail:
    mem_region_free(r);
    return rc;
}

static bool clean(uint64_t base_live)
{
    mem_stats_snapshot(&st);
    bool ok = st.regions_live == 0 && st.subregions_live == 0 && st.region_bytes == 0 &&
              st.live == base_live && cleanups_run == cleanups_added;
    if (!ok)
        fprintf(stderr,
                "not clean: regions %" PRIu64 " subregions %" PRIu64 " region_bytes %" PRIu64
                " live %" PRIu64 " (base %" PRIu64 ") cleanups %d/%d\n",
                st.regions_live, st.subregions_live, st.region_bytes, st.live, base_live,
                cleanups_run, cleanups_added);
    return ok;
}

TEST(sweep_nth)
{
    mem_stats_snapshot(&st);
    uint64_t base_live = st.live;
    int failures = 0, runs = 0;
    bool done = false;
    /* Sampled facade allocations fall back to the plain path when their mapping fails, which
     * would absorb the injected fault: sweep with sampling off, so each fault reaches us. */
    size_t saved = mem_heapprof_interval();
    mem_heapprof_set_interval(0);
    for (uint64_t n = 1; n <= 5000 && !done; n++) {
        uint64_t before = mem_fault_injected();
        mem_fault_set(n, 0);
        int rc = scenario();
        mem_fault_set(0, 0);
        uint64_t injected = mem_fault_injected() - before;
        runs++;
        if (rc != 0) {
            failures++;
            CHECK(injected > 0); /* a failure without an injected fault is a real bug */
        } else if (injected == 0) {
            done = true; /* n is past the last failure point of the scenario */
        }
        CHECK(clean(base_live));
    }
    mem_heapprof_set_interval(saved);
    fprintf(stderr, "sweep: %d runs, %d failed with an injected fault\n", runs, failures);
    CHECK(done);
    CHECK(failures > 0); /* the sweep reached allocation paths that can fail */
}

TEST(random_faults)
{
    mem_stats_snapshot(&st);
    uint64_t base_live = st.live;
    int failures = 0;
    for (int i = 0; i < 200; i++) {
        mem_fault_set(0, 100);
        int rc = scenario();
        mem_fault_set(0, 0);
        failures += rc != 0;
        CHECK(clean(base_live));
    }
    fprintf(stderr, "random: %d of 200 runs failed\n", failures);
    CHECK(failures > 0);
    CHECK(failures < 200);
    CHECK_OK(scenario());
    CHECK(clean(base_live));
}

int main(void)
{
    mem_config_t cfg;
    mem_config_default(&cfg);
    /* A small interval: sampled region allocations must be forgotten on every failure path. */
    cfg.sample_bytes = 4096;
    int rc = mem_init(&cfg);
    if (rc != 0) {
        fprintf(stderr, "mem_init: %d\n", rc);
        return 1;
    }
    RUN(sweep_nth);
    RUN(random_faults);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.regions_live, 0);
    CHECK_EQ(mem_heapprof_samples_live(), 0);
    return TEST_SUMMARY();
}
