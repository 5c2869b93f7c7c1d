/*
 * tests/stress/proxy_health_concurrent.c: the shared endpoint health (proxy/upstream/health.c)
 * under concurrent workers (args: threads iterations; defaults 4 200000). Every thread plays a
 * worker: it counts exchanges on random endpoints, reports random outcomes (mostly 5xx, so
 * endpoints are ejected and come back all the time), asks the retry budget and gives back what
 * it got, and picks endpoints as the choice does (px_hep_usable, which ends ejections that ran
 * out); thread 0 also plays the probing worker (probe verdicts, the sweep) and moves the shared
 * clock. Checked all along: never more endpoints ejected than max_ejection_percent allows.
 * Checked after: every count is back to zero and the totals add up (each retry and exchange
 * counted once, and the run did eject). CI runs it under TSan, which checks that every shared
 * field goes through atomics.
 */
#include "mem/base.h"

#include <pthread.h>
#include <string.h>

#include "mem/malloc.h"
#include "proxy/upstream/health.h"
#include "tests/harness.h"

#define EPS 8

static int nthreads = 4;
static int iters = 200000;
static px_cluster_cfg_t g_cfg;
static px_addr_t g_eps[EPS];
static px_hcluster_t *g_hc;
static uint64_t g_now = 1000; /* the shared clock, ms (atomic) */
static uint64_t g_adds;       /* exchanges counted (atomic) */
static uint64_t g_granted;    /* retries the budget granted (atomic) */
static int g_bad;             /* an invariant failed (atomic) */

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
    uint32_t held_retries = 0;
    for (int i = 0; i < iters; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t now = __atomic_load_n(&g_now, __ATOMIC_RELAXED);
        size_t idx = (size_t)(x % EPS);
        (void)px_hep_usable(g_hc, idx, now);
        px_hep_rq_add(g_hc, idx, 1);
        __atomic_add_fetch(&g_adds, 1, __ATOMIC_RELAXED);
        unsigned k = (unsigned)(x >> 16) % 10;
        if (k < 6)
            px_health_report(g_hc, idx, PX_HRES_5XX, k < 3 ? 503 : 500, now);
        else if (k < 8)
            px_health_report(g_hc, idx, PX_HRES_LOCAL_FAIL, 0, now);
        else
            px_health_report(g_hc, idx, PX_HRES_OK, 200, now);
        if ((x >> 24) % 4 == 0 && px_health_retry_begin(g_hc)) {
            held_retries++;
            __atomic_add_fetch(&g_granted, 1, __ATOMIC_RELAXED);
        }
        if (held_retries > 0 && (x >> 28) % 2 == 0) {
            px_health_retry_end(g_hc);
            held_retries--;
        }
        if (__atomic_load_n(&g_hc->ejected_cnt, __ATOMIC_RELAXED) > 2) /* 25% of 8 */
            __atomic_store_n(&g_bad, 1, __ATOMIC_RELAXED);
        px_hep_rq_add(g_hc, idx, -1);
        if (id == 0) {
            if (i % 16 == 0)
                __atomic_add_fetch(&g_now, 1, __ATOMIC_RELAXED);
            if (i % 256 == 0)
                px_health_sweep(g_hc, now);
            if (i % 64 == 0)
                px_health_probe_result(g_hc, (size_t)(x >> 40) % EPS, (x >> 44) % 3 != 0, 200,
                                       "probe");
        }
    }
    while (held_retries-- > 0)
        px_health_retry_end(g_hc);
    return NULL;
}

TEST(concurrent_workers)
{
    memset(&g_cfg, 0, sizeof(g_cfg));
    g_cfg.name = "stress";
    g_cfg.endpoints = g_eps;
    g_cfg.endpoints_cnt = EPS;
    g_cfg.retry_budget_percent = 20;
    g_cfg.retry_min_concurrency = 2;
    g_cfg.outlier.enabled = true;
    g_cfg.outlier.consecutive_5xx = 3;
    g_cfg.outlier.consecutive_gateway_failure = 2;
    g_cfg.outlier.base_ejection_ms = 5;
    g_cfg.outlier.max_ejection_ms = 40;
    g_cfg.outlier.max_ejection_percent = 25;
    g_cfg.outlier.interval_ms = 10;
    g_cfg.health_check.enabled = true;
    g_cfg.health_check.healthy_threshold = 2;
    g_cfg.health_check.unhealthy_threshold = 2;
    g_hc = px_hcluster_new(&g_cfg);
    REQUIRE(g_hc != NULL);
    pthread_t t[64];
    int n = nthreads < 64 ? nthreads : 64;
    for (int i = 0; i < n; i++)
        REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(g_bad, 0); /* never more than max_ejection_percent out */
    /* Every ejection runs out by this time: all come back, and the counts are zero. */
    px_health_sweep(g_hc, g_now + 1000000);
    CHECK_EQ(g_hc->ejected_cnt, 0);
    CHECK_EQ(g_hc->rq_active, 0);
    CHECK_EQ(g_hc->retries_active, 0);
    CHECK_EQ(g_hc->retries_total, g_granted);
    uint64_t total = 0, ejections = 0;
    for (size_t i = 0; i < EPS; i++) {
        CHECK_EQ(g_hc->eps[i].rq_active, 0);
        CHECK_EQ(g_hc->eps[i].ejected_until_ms, 0);
        total += g_hc->eps[i].rq_total;
        ejections += g_hc->eps[i].ejections_total;
    }
    CHECK_EQ(total, g_adds);
    CHECK(ejections > 0); /* the run did eject and bring back */
    printf("%d threads x %d: %llu ejections, %llu refused by max_ejection_percent, %llu retries "
           "granted, %llu refused by the budget\n",
           n, iters, (unsigned long long)ejections, (unsigned long long)g_hc->ejections_overflow,
           (unsigned long long)g_granted, (unsigned long long)g_hc->retries_budget_exhausted);
    px_hcluster_unref(g_hc);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nthreads = atoi(argv[1]);
    if (argc > 2)
        iters = atoi(argv[2]);
    RUN(concurrent_workers);
    return TEST_SUMMARY();
}
