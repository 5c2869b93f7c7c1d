/*
 * tests/unit/upstream/tenant_test.c: the memory tenants' counters (proxy/upstream/tenant.c):
 * admission against the limit (what the streams hold or one stream buffer each, and room for
 * one more), weighing that moves a stream's count, ends that take it all back, and the sum
 * over the workers' rows.
 */
#include "mem/base.h"

#include <string.h>

#include "proxy/config/config.h"
#include "proxy/upstream/tenant.h"
#include "tests/harness.h"

#define KIB ((size_t)1024)

/* Two workers, two tenants ("a" 256 KiB, "b" 1 MiB), 64 KiB stream buffers. */
static px_tenant_cfg_t g_tenants[2] = {{.name = "a", .limit_bytes = 256 * KIB},
                                       {.name = "b", .limit_bytes = 1024 * KIB}};
static px_config_t g_cfg;
static px_tenant_stats_t g_table[2 * 2];
static px_worker_t g_w[2];

static void setup(void)
{
    memset(&g_cfg, 0, sizeof(g_cfg));
    memset(g_table, 0, sizeof(g_table));
    memset(g_w, 0, sizeof(g_w));
    g_cfg.tenants = g_tenants;
    g_cfg.tenants_cnt = 2;
    g_cfg.limits.stream_buffer_bytes = 64 * KIB;
    for (unsigned i = 0; i < 2; i++) {
        g_w[i].idx = i;
        g_w[i].cfg = &g_cfg;
        g_w[i].tenants = &g_table[i * 2];
        g_w[i].tenant_table = g_table;
        g_w[i].tenant_rows = 2;
    }
}

TEST(no_tenant_is_always_admitted)
{
    setup();
    for (int i = 0; i < 100; i++)
        CHECK(px_tenant_admit(&g_w[0], 0));
    px_worker_t bare = {.cfg = &g_cfg};
    CHECK(px_tenant_admit(&bare, 1)); /* a worker without a table (unit tests, no tenants) */
    CHECK_EQ(g_table[0].admitted, 0);
}

TEST(admission_reserves_a_stream_buffer_each)
{
    setup();
    /* 256 KiB: four streams of 64 KiB fit, across both workers. */
    CHECK(px_tenant_admit(&g_w[0], 1));
    CHECK(px_tenant_admit(&g_w[1], 1));
    CHECK(px_tenant_admit(&g_w[0], 1));
    CHECK(px_tenant_admit(&g_w[1], 1));
    CHECK(!px_tenant_admit(&g_w[0], 1));
    CHECK(!px_tenant_admit(&g_w[1], 1));
    px_tenant_stats_t s;
    px_tenant_sum(g_table, 2, 2, 1, &s);
    CHECK_EQ(s.admitted, 4);
    CHECK_EQ(s.streams, 4);
    CHECK_EQ(s.refused, 2);
    /* The other tenant is untouched. */
    px_tenant_sum(g_table, 2, 2, 2, &s);
    CHECK_EQ(s.admitted + s.refused + s.streams, 0);
    CHECK(px_tenant_admit(&g_w[0], 2));
}

TEST(weigh_and_end)
{
    setup();
    size_t c1 = 0, c2 = 0;
    REQUIRE(px_tenant_admit(&g_w[0], 2));
    REQUIRE(px_tenant_admit(&g_w[1], 2));
    px_tenant_weigh(&g_w[0], 2, &c1, 100 * KIB);
    px_tenant_weigh(&g_w[1], 2, &c2, 300 * KIB);
    CHECK_EQ(px_tenant_bytes(&g_w[0], 2), 400 * KIB);
    px_tenant_weigh(&g_w[0], 2, &c1, 40 * KIB); /* it sent some: the count goes down */
    CHECK_EQ(c1, 40 * KIB);
    CHECK_EQ(px_tenant_bytes(&g_w[1], 2), 340 * KIB);
    /* Past what the streams reserve, what they hold decides: 2 streams, 340 KiB held. */
    px_tenant_weigh(&g_w[1], 2, &c2, 1000 * KIB);
    CHECK(!px_tenant_admit(&g_w[0], 2));
    px_tenant_shed(&g_w[1], 2, 1000 * KIB);
    px_tenant_end(&g_w[1], 2, &c2);
    CHECK_EQ(c2, 0);
    CHECK(px_tenant_admit(&g_w[1], 2));
    px_tenant_end(&g_w[0], 2, &c1);
    px_tenant_stats_t s;
    px_tenant_sum(g_table, 2, 2, 2, &s);
    CHECK_EQ(s.bytes, 0);
    CHECK_EQ(s.streams, 1);
    CHECK_EQ(s.admitted, 3);
    CHECK_EQ(s.refused, 1);
    CHECK_EQ(s.shed, 1);
    CHECK_EQ(s.shed_bytes, 1000 * KIB);
}

int main(void)
{
    RUN(no_tenant_is_always_admitted);
    RUN(admission_reserves_a_stream_buffer_each);
    RUN(weigh_and_end);
    return TEST_SUMMARY();
}
