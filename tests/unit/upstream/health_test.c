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
    px_hcluster_unref(hc);
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
    px_hcluster_unref(hc);
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
    px_hcluster_unref(hc);
    /* 10% of 3 is 0.3: still one (Envoy ejects at least one); 0% ejects none. */
    c.outlier.max_ejection_percent = 10;
    hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    for (int i = 0; i < 3; i++)
        px_health_report(hc, 2, PX_HRES_5XX, 500, 0);
    CHECK_EQ(px_hep_state(hc, 2, 1), PX_HEP_EJECTED);
    px_hcluster_unref(hc);
    c.outlier.max_ejection_percent = 0;
    hc = px_hcluster_new(&c);
    REQUIRE(hc != NULL);
    for (int i = 0; i < 5; i++)
        CHECK(!px_health_report(hc, 2, PX_HRES_5XX, 500, 0));
    CHECK_EQ(px_hep_state(hc, 2, 1), PX_HEP_HEALTHY);
    px_hcluster_unref(hc);
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
    px_hcluster_unref(hc);
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
    px_hcluster_unref(hc);
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
    px_hcluster_unref(hc);
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
    px_hcluster_unref(hc);
}

/* Makes `cfg` a config of the 2 clusters `cls` (nothing else set), and its health table
 * (carried over from `prev`) in `*h`. */
static void config_of(px_config_t *cfg, px_cluster_cfg_t *cls, const px_health_t *prev,
                      px_health_t **h)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->clusters = cls;
    cfg->clusters_cnt = 2;
    *h = NULL;
    CHECK_OK(px_health_new(cfg, prev, h));
}

TEST(table_of_a_config)
{
    px_cluster_cfg_t cls[2] = {cluster(2), cluster(3)};
    px_health_t *h = NULL;
    px_config_t cfg;
    config_of(&cfg, cls, NULL, &h);
    REQUIRE(h != NULL);
    CHECK(px_health_cluster(h, &cls[1]) == h->clusters[1]);
    CHECK_EQ(px_health_cluster(h, &cls[1])->eps_cnt, 3);
    px_cluster_cfg_t other = cluster(1);
    CHECK(px_health_cluster(h, &other) == NULL);
    px_health_free(h);
}

/* A reload's table (px_health_new with the running table) shares the entry of each cluster
 * that px_config_cluster_same as a running one, with its state (an ejection and its end time, a
 * failed check, exchanges in flight), and starts a changed cluster afresh; each table holds its
 * own reference, so the old table can go first. */
TEST(table_carries_unchanged_clusters_over)
{
    px_cluster_cfg_t a[2] = {cluster(2), cluster(3)};
    a[1].name = "u";
    px_health_t *h0 = NULL;
    px_config_t old;
    config_of(&old, a, NULL, &h0);
    REQUIRE(h0 != NULL);
    for (int i = 0; i < 3; i++)
        (void)px_health_report(h0->clusters[0], 1, PX_HRES_5XX, 503, 10000);
    CHECK_EQ(px_hep_state(h0->clusters[0], 1, 10000), PX_HEP_EJECTED);
    px_hep_rq_add(h0->clusters[0], 0, 1);
    for (int i = 0; i < 3; i++)
        (void)px_health_probe_result(h0->clusters[1], 2, false, 0, "connect failed");
    CHECK_EQ(px_hep_state(h0->clusters[1], 2, 10000), PX_HEP_UNHEALTHY);
    /* The new config: "t" unchanged but listed second, "u" with another threshold. */
    px_cluster_cfg_t b[2] = {a[1], a[0]};
    b[0].health_check.unhealthy_threshold = 5;
    px_health_t *h1 = NULL;
    px_config_t neu;
    config_of(&neu, b, h0, &h1);
    REQUIRE(h1 != NULL);
    CHECK(px_health_cluster(h1, &b[1]) == h0->clusters[0]);
    CHECK(px_health_cluster(h1, &b[0]) != h0->clusters[1]);
    CHECK_EQ(px_hep_state(h1->clusters[0], 2, 10000), PX_HEP_HEALTHY);
    CHECK_EQ(h1->clusters[0]->check.unhealthy_threshold, 5);
    px_health_free(h0);
    /* The carried entry outlives the old table, its ejection time and its count intact. */
    px_hcluster_t *t = px_health_cluster(h1, &b[1]);
    CHECK_EQ(px_hep_state(t, 1, 10999), PX_HEP_EJECTED);
    CHECK_EQ(px_hep_state(t, 1, 11000), PX_HEP_HEALTHY);
    CHECK_EQ(t->eps[1].ejections_total, 1);
    CHECK_EQ(t->rq_active, 1);
    px_hep_rq_add(t, 0, -1);
    CHECK_EQ(t->rq_active, 0);
    px_health_free(h1);
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
    RUN(table_carries_unchanged_clusters_over);
    CHECK_EQ(live_bytes(), 0);
    return TEST_SUMMARY();
}
