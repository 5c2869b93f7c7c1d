/*
 * tests/unit/upstream/health_test.c: the shared endpoint health (proxy/upstream/health.c) with
 * Envoy's outlier semantics: consecutive_5xx and consecutive_gateway_failure thresholds, ejection
 * for base x ejections (capped by max_ejection_time), max_ejection_percent (at least one unless
 * 0), unejection when the time runs out, the sweep's multiplier decay; the active checker's
 * thresholds; the retry budget. Time is passed in, so nothing here sleeps.
 */
#include "mem/base.h"

#include <string.h>

#include "mem/malloc.h"
#include "mem/stats.h"
#include "proxy/upstream/health.h"
#include "tests/harness.h"

static px_addr_t g_eps[10];
static mem_stats_t g_stats; /* large: not on the stack */

/* Every table is freed: nothing stays live in mem/. */
static uint64_t live_bytes(void)
{
    mem_stats_snapshot(&g_stats);
    return g_stats.live;
}

static px_cluster_cfg_t cluster(size_t eps)
{
    px_cluster_cfg_t c;
    memset(&c, 0, sizeof(c));
    c.name = "t";
    c.endpoints = g_eps;
    c.endpoints_cnt = eps;
    c.retries_max = 2;
    c.retry_budget_percent = 20;
    c.retry_min_concurrency = 3;
    c.outlier.enabled = true;
    c.outlier.consecutive_5xx = 3;
    c.outlier.base_ejection_ms = 1000;
    c.outlier.max_ejection_ms = 2500;
    c.outlier.max_ejection_percent = 100;
    c.outlier.interval_ms = 500;
    c.health_check.enabled = true;
    c.health_check.healthy_threshold = 2;
    c.health_check.unhealthy_threshold = 3;
    return c;
}

TEST(consecutive_5xx_ejects_for_base_times_count)
{
    px_cluster_cfg_t c = cluster(3);
    px_hcluster_t *hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    uint64_t t = 10000;
    CHECK(!px_health_report(hc, 0, PX_HRES_5XX, 500, t));
    CHECK(!px_health_report(hc, 0, PX_HRES_5XX, 500, t));
    CHECK(!px_health_report(hc, 0, PX_HRES_OK, 200, t)); /* a success resets the count */
    CHECK(!px_health_report(hc, 0, PX_HRES_5XX, 500, t));
    CHECK(!px_health_report(hc, 0, PX_HRES_5XX, 500, t));
    CHECK(px_hep_usable(hc, 0, t));
    CHECK(px_health_report(hc, 0, PX_HRES_5XX, 500, t)); /* third in a row */
    CHECK_EQ(px_hep_state(hc, 0, t), PX_HEP_EJECTED);
    CHECK_EQ(hc->eps[0].eject_reason, PX_EJECT_5XX);
    CHECK(!px_hep_usable(hc, 0, t + 999));
    CHECK_EQ(hc->ejected_cnt, 1);
    CHECK(px_hep_usable(hc, 0, t + 1000)); /* base x 1 */
    CHECK_EQ(hc->ejected_cnt, 0);
    CHECK_EQ(px_hep_state(hc, 0, t + 1000), PX_HEP_HEALTHY);
    /* The second ejection lasts twice as long; the third is capped by max_ejection_time. */
    t += 1000;
    for (int i = 0; i < 3; i++)
        px_health_report(hc, 0, PX_HRES_LOCAL_FAIL, 0, t);
    CHECK(!px_hep_usable(hc, 0, t + 1999));
    CHECK(px_hep_usable(hc, 0, t + 2000));
    t += 2000;
    for (int i = 0; i < 3; i++)
        px_health_report(hc, 0, PX_HRES_5XX, 503, t);
    CHECK(!px_hep_usable(hc, 0, t + 2499));
    CHECK(px_hep_usable(hc, 0, t + 2500)); /* 3 x 1000 capped at 2500 */
    CHECK_EQ(hc->eps[0].ejections_total, 3);
    CHECK_EQ(hc->eps[0].rq_5xx, 8);
    CHECK_EQ(hc->eps[0].rq_local_fail, 3);
    px_hcluster_free(hc);
}

TEST(gateway_failures_count_only_502_503_504_and_local)
{
    px_cluster_cfg_t c = cluster(2);
    c.outlier.consecutive_5xx = 0; /* off */
    c.outlier.consecutive_gateway_failure = 2;
    px_hcluster_t *hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    CHECK(!px_health_report(hc, 1, PX_HRES_5XX, 502, 0));
    CHECK(!px_health_report(hc, 1, PX_HRES_5XX, 500, 0)); /* not a gateway error: resets */
    CHECK(!px_health_report(hc, 1, PX_HRES_5XX, 500, 0));
    CHECK(!px_health_report(hc, 1, PX_HRES_5XX, 504, 0));
    CHECK(px_health_report(hc, 1, PX_HRES_LOCAL_FAIL, 0, 0));
    CHECK_EQ(hc->eps[1].eject_reason, PX_EJECT_GATEWAY);
    CHECK_EQ(px_hep_state(hc, 1, 1), PX_HEP_EJECTED);
    px_hcluster_free(hc);
}

TEST(max_ejection_percent)
{
    /* 34% of 3 endpoints: one may be ejected, not two. */
    px_cluster_cfg_t c = cluster(3);
    c.outlier.max_ejection_percent = 34;
    px_hcluster_t *hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    for (int i = 0; i < 3; i++)
        px_health_report(hc, 0, PX_HRES_5XX, 500, 0);
    for (int i = 0; i < 3; i++)
        CHECK(!px_health_report(hc, 1, PX_HRES_5XX, 500, 0));
    CHECK_EQ(px_hep_state(hc, 0, 1), PX_HEP_EJECTED);
    CHECK_EQ(px_hep_state(hc, 1, 1), PX_HEP_HEALTHY);
    CHECK_EQ(hc->ejections_overflow, 1);
    /* Once the first is back, the second may go (its count is still at the threshold). */
    CHECK(px_hep_usable(hc, 0, 1000));
    CHECK(px_health_report(hc, 1, PX_HRES_5XX, 500, 1000));
    px_hcluster_free(hc);
    /* 10% of 3 is 0.3: still one (Envoy ejects at least one); 0% ejects none. */
    c.outlier.max_ejection_percent = 10;
    hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    for (int i = 0; i < 3; i++)
        px_health_report(hc, 2, PX_HRES_5XX, 500, 0);
    CHECK_EQ(px_hep_state(hc, 2, 1), PX_HEP_EJECTED);
    px_hcluster_free(hc);
    c.outlier.max_ejection_percent = 0;
    hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    for (int i = 0; i < 5; i++)
        CHECK(!px_health_report(hc, 2, PX_HRES_5XX, 500, 0));
    CHECK_EQ(px_hep_state(hc, 2, 1), PX_HEP_HEALTHY);
    px_hcluster_free(hc);
}

TEST(disabled_outlier_only_counts)
{
    px_cluster_cfg_t c = cluster(1);
    c.outlier.enabled = false;
    px_hcluster_t *hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    for (int i = 0; i < 10; i++)
        CHECK(!px_health_report(hc, 0, PX_HRES_5XX, 500, 0));
    CHECK_EQ(hc->eps[0].cons_5xx, 10);
    CHECK(px_hep_usable(hc, 0, 0));
    px_hcluster_free(hc);
}

TEST(sweep_unejects_and_decays_the_multiplier)
{
    px_cluster_cfg_t c = cluster(2);
    px_hcluster_t *hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    for (int i = 0; i < 3; i++)
        px_health_report(hc, 0, PX_HRES_5XX, 500, 0);
    CHECK_EQ(hc->eps[0].ejections, 1);
    px_health_sweep(hc, 500); /* still ejected: no decay */
    CHECK_EQ(hc->eps[0].ejections, 1);
    CHECK_EQ(hc->ejected_cnt, 1);
    px_health_sweep(hc, 1000); /* the time ran out: back in, the multiplier stays */
    CHECK_EQ(hc->ejected_cnt, 0);
    CHECK_EQ(hc->eps[0].ejected_until_ms, 0);
    CHECK_EQ(hc->eps[0].ejections, 1);
    px_health_sweep(hc, 1499); /* back for less than an interval (500) */
    CHECK_EQ(hc->eps[0].ejections, 1);
    px_health_sweep(hc, 1500);
    CHECK_EQ(hc->eps[0].ejections, 0);
    /* So the next ejection is base x 1 again. */
    for (int i = 0; i < 3; i++)
        px_health_report(hc, 0, PX_HRES_5XX, 500, 2000);
    CHECK(!px_hep_usable(hc, 0, 2999));
    CHECK(px_hep_usable(hc, 0, 3000));
    px_hcluster_free(hc);
}

TEST(probe_thresholds)
{
    px_cluster_cfg_t c = cluster(1);
    px_hcluster_t *hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    CHECK(!px_health_probe_result(hc, 0, false, 0, "upstream unavailable"));
    CHECK(!px_health_probe_result(hc, 0, false, 503, "unexpected status"));
    CHECK(px_hep_usable(hc, 0, 0));
    CHECK(px_health_probe_result(hc, 0, false, 0, "upstream unavailable")); /* third */
    CHECK_EQ(px_hep_state(hc, 0, 0), PX_HEP_UNHEALTHY);
    CHECK(!px_hep_usable(hc, 0, 0));
    CHECK_STR(hc->eps[0].hc_last_reason, "upstream unavailable");
    CHECK(!px_health_probe_result(hc, 0, true, 200, NULL));
    CHECK(!px_health_probe_result(hc, 0, false, 0, "x")); /* a failure restarts the passes */
    CHECK(!px_health_probe_result(hc, 0, true, 200, NULL));
    CHECK(px_health_probe_result(hc, 0, true, 200, NULL)); /* two in a row */
    CHECK(px_hep_usable(hc, 0, 0));
    CHECK_EQ(hc->eps[0].hc_checks, 7);
    CHECK_EQ(hc->eps[0].hc_failures, 4);
    px_hcluster_free(hc);
}

TEST(retry_budget)
{
    px_cluster_cfg_t c = cluster(1);
    px_hcluster_t *hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    /* Few requests: min_retry_concurrency (3) retries at once. */
    px_hep_rq_add(hc, 0, 5);
    CHECK(px_health_retry_begin(hc));
    CHECK(px_health_retry_begin(hc));
    CHECK(px_health_retry_begin(hc));
    CHECK(!px_health_retry_begin(hc));
    CHECK_EQ(hc->retries_budget_exhausted, 1);
    /* 50 active: 20% is 10 retries in flight. */
    px_hep_rq_add(hc, 0, 45);
    for (int i = 0; i < 7; i++)
        CHECK(px_health_retry_begin(hc));
    CHECK(!px_health_retry_begin(hc));
    px_health_retry_end(hc);
    CHECK(px_health_retry_begin(hc));
    CHECK_EQ(hc->retries_active, 10);
    CHECK_EQ(hc->retries_total, 11);
    for (int i = 0; i < 10; i++)
        px_health_retry_end(hc);
    px_hep_rq_add(hc, 0, -50);
    CHECK_EQ(hc->rq_active, 0);
    CHECK_EQ(hc->eps[0].rq_total, 2);
    px_hcluster_free(hc);
}

TEST(table_of_a_config)
{
    px_cluster_cfg_t cls[2] = {cluster(2), cluster(3)};
    px_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.clusters = cls;
    cfg.clusters_cnt = 2;
    px_health_t *h = NULL;
    CHECK_OK(px_health_new(&cfg, &h));
    REQUIRE(h != NULL);
    CHECK(px_health_cluster(h, &cls[1]) == h->clusters[1]);
    CHECK_EQ(px_health_cluster(h, &cls[1])->eps_cnt, 3);
    px_cluster_cfg_t other = cluster(1);
    CHECK(px_health_cluster(h, &other) == NULL);
    px_health_free(h);
}

int main(void)
{
    RUN(consecutive_5xx_ejects_for_base_times_count);
    RUN(gateway_failures_count_only_502_503_504_and_local);
    RUN(max_ejection_percent);
    RUN(disabled_outlier_only_counts);
    RUN(sweep_unejects_and_decays_the_multiplier);
    RUN(probe_thresholds);
    RUN(retry_budget);
    RUN(table_of_a_config);
    CHECK_EQ(live_bytes(), 0);
    return TEST_SUMMARY();
}
