/*
 * tests/unit/upstream/dispatch_test.c: the routing step both downstream protocols share
 * (proxy/upstream/dispatch.c): each verdict from a real config (a 400 with its reason, weir's
 * 404, a direct route's answer, the head for a cluster with x-forwarded-for and via, a refusal
 * by a spent memory tenant, out of sub-arena room), and what each counts.
 */
#include "mem/base.h"

#include <stdbool.h>
#include <string.h>

#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"
#include "mem/subregion.h"
#include "proxy/upstream/dispatch.h"
#include "proxy/upstream/tenant.h"
#include "tests/harness.h"

#define H(n, v)                                                                                    \
    {                                                                                              \
        (n), sizeof(n) - 1, (v), sizeof(v) - 1                                                     \
    }

static px_cluster_cfg_t g_api = {.name = "api"};
static px_tenant_cfg_t g_tenants[1] = {{.name = "t", .limit_bytes = 128 * 1024}};
static px_route_cfg_t g_routes[] = {
    {.authority = "a.example", .path_prefix = "/api/", .cluster = &g_api, .tenant = 1},
    {.authority = "a.example", .path_prefix = "/ping", .direct_status = 204},
    {.authority = "a.example",
     .path_prefix = "/hello",
     .direct_status = 200,
     .direct_body = "hi\n",
     .direct_body_len = 3,
     .direct_content_type = "text/x-hi"},
};
static px_config_t g_cfg;
static px_tenant_stats_t g_table[1];
static px_worker_t g_w;

static void setup(void)
{
    memset(&g_cfg, 0, sizeof(g_cfg));
    memset(g_table, 0, sizeof(g_table));
    memset(&g_w, 0, sizeof(g_w));
    g_cfg.routes = g_routes;
    g_cfg.routes_cnt = MEM_ARRAY_LEN(g_routes);
    g_cfg.tenants = g_tenants;
    g_cfg.tenants_cnt = 1;
    g_cfg.limits.stream_buffer_bytes = 64 * 1024;
    g_cfg.add_via = true;
    g_cfg.server_name = "weir";
    g_cfg.x_forwarded_for = PX_XFF_APPEND;
    g_w.cfg = &g_cfg;
    g_w.tenants = g_table;
    g_w.tenant_table = g_table;
    g_w.tenant_rows = 1;
}

static px_forward_req_t req(const char *path, const px_header_t *hdrs, size_t cnt)
{
    return (px_forward_req_t){
        .method = "GET",
        .method_len = 3,
        .scheme = "http",
        .scheme_len = 4,
        .authority = "a.example",
        .authority_len = 9,
        .path = path,
        .path_len = strlen(path),
        .hdrs = hdrs,
        .hdrs_cnt = cnt,
        .peer_ip = "192.0.2.9",
    };
}

/* True when the head in `d` has `name` with the value `want` (a substring of it with
 * `part`). */
static bool has(const px_dispatch_out_t *d, const char *name, const char *want, bool part)
{
    for (size_t i = 0; i < d->hdrs_cnt; i++) {
        const px_header_t *h = &d->hdrs[i];
        if (h->name_len != strlen(name) || memcmp(h->name, name, h->name_len) != 0)
            continue;
        if (!part)
            return h->value_len == strlen(want) && memcmp(h->value, want, h->value_len) == 0;
        return memmem(h->value, h->value_len, want, strlen(want)) != NULL;
    }
    return false;
}

TEST(verdicts)
{
    setup();
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    mem_subregion_t *s = mem_subregion_new(r, 0);
    REQUIRE(s != NULL);
    px_dispatch_out_t d;

    px_header_t other[] = {H("host", "evil.example")};
    px_forward_req_t f = req("/api/x", other, 1);
    CHECK_EQ(px_dispatch_route(&f, &g_w, &g_cfg, s, &d), PX_DISPATCH_BAD_REQUEST);
    CHECK_STR(d.why, "host header differs from :authority");
    CHECK(d.route == NULL && d.tenant == 0);

    f = req("/nowhere", NULL, 0);
    CHECK_EQ(px_dispatch_route(&f, &g_w, &g_cfg, s, &d), PX_DISPATCH_ANSWER);
    CHECK_EQ(d.status, 404);
    CHECK_STR(d.body, "weir: no route matches this request\n");
    CHECK_EQ(d.body_len, strlen(d.body));
    CHECK(d.route == NULL);

    f = req("/ping", NULL, 0);
    CHECK_EQ(px_dispatch_route(&f, &g_w, &g_cfg, s, &d), PX_DISPATCH_ANSWER);
    CHECK_EQ(d.status, 204);
    CHECK_STR(d.ctype, "text/plain");
    CHECK(d.body != NULL && d.body_len == 0);
    CHECK(d.route == &g_routes[1]);

    f = req("/hello", NULL, 0);
    CHECK_EQ(px_dispatch_route(&f, &g_w, &g_cfg, s, &d), PX_DISPATCH_ANSWER);
    CHECK_EQ(d.status, 200);
    CHECK_STR(d.ctype, "text/x-hi");
    CHECK(d.body_len == 3 && memcmp(d.body, "hi\n", 3) == 0);

    /* Routed on the normalised path; the head carries x-forwarded-for and via. */
    px_header_t xff[] = {H("x-forwarded-for", "198.51.100.1"), H("accept", "*/*")};
    f = req("/x/../api/v1", xff, 2);
    CHECK_EQ(px_dispatch_route(&f, &g_w, &g_cfg, s, &d), PX_DISPATCH_UPSTREAM);
    CHECK(d.route == &g_routes[0]);
    CHECK_EQ(d.tenant, 1u);
    CHECK(f.path_len == 7 && memcmp(f.path, "/api/v1", 7) == 0);
    CHECK(has(&d, ":path", "/api/v1", false));
    CHECK(has(&d, "x-forwarded-for", "198.51.100.1, 192.0.2.9", false));
    CHECK(has(&d, "via", "weir", true));
    CHECK(has(&d, "accept", "*/*", false));

    /* The tenant holds two stream buffers of 64 KiB: the second admitted fills it. */
    f = req("/api/v2", NULL, 0);
    CHECK_EQ(px_dispatch_route(&f, &g_w, &g_cfg, s, &d), PX_DISPATCH_UPSTREAM);
    f = req("/api/v3", NULL, 0);
    CHECK_EQ(px_dispatch_route(&f, &g_w, &g_cfg, s, &d), PX_DISPATCH_REFUSED);
    CHECK(d.route == &g_routes[0]);
    CHECK_EQ(d.tenant, 0u); /* not admitted: nothing to end */
    CHECK_EQ(g_w.stats.overload_streams_refused, 1u);
    CHECK_EQ(g_w.stats.stream_cap_resets, 0u);
    mem_region_free(r);
}

TEST(out_of_room)
{
    /* Every sub-arena cap from nothing up: NO_MEMORY (counted once each) until the head fits,
     * never another verdict. */
    setup();
    g_cfg.tenants_cnt = 0;
    g_routes[0].tenant = 0;
    int nomem = 0, ok = 0;
    for (size_t cap = 1; cap <= 4096 && ok == 0; cap += 16) {
        mem_region_t *r = mem_region_new(0);
        REQUIRE(r != NULL);
        mem_subregion_t *s = mem_subregion_new(r, cap);
        if (s != NULL) {
            px_header_t xff[] = {H("x-forwarded-for", "198.51.100.1")};
            px_forward_req_t f = req("/x/../api/v1", xff, 1);
            px_dispatch_out_t d;
            px_dispatch_t v = px_dispatch_route(&f, &g_w, &g_cfg, s, &d);
            CHECK(v == PX_DISPATCH_NO_MEMORY || v == PX_DISPATCH_UPSTREAM);
            nomem += v == PX_DISPATCH_NO_MEMORY;
            ok += v == PX_DISPATCH_UPSTREAM;
        }
        mem_region_free(r);
    }
    g_routes[0].tenant = 1;
    CHECK(nomem > 0);
    CHECK_EQ(ok, 1);
    CHECK_EQ(g_w.stats.stream_cap_resets, (uint64_t)nomem);
    printf("out of room: %d refusals before the head fit\n", nomem);
    fflush(stdout);
}

static uint64_t live(void)
{
    mem_stats_t st;
    mem_thread_flush();
    if (mem_stats_snapshot(&st) != 0)
        return UINT64_MAX;
    return st.live;
}

int main(void)
{
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        return 1;
    uint64_t before = live();
    RUN(verdicts);
    RUN(out_of_room);
    if (live() != before)
        th_tests_failed++;
    return TEST_SUMMARY();
}
