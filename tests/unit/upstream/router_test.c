/*
 * tests/unit/upstream/router_test.c: first-match routing by authority (exact, "*.suffix",
 * case-insensitive, port stripped) and path prefix; hop-by-hop header detection.
 */
#include "mem/base.h"

#include <string.h>

#include "proxy/upstream/http.h"
#include "proxy/upstream/router.h"
#include "tests/harness.h"

#define S(x) (x), strlen(x)

TEST(authority_exact_and_wildcard)
{
    CHECK(px_router_authority_match(NULL, S("anything")));
    CHECK(px_router_authority_match("*", S("anything")));
    CHECK(px_router_authority_match("a.example", S("a.example")));
    CHECK(px_router_authority_match("a.example", S("A.Example")));
    CHECK(px_router_authority_match("a.example", S("a.example:8443")));
    CHECK(px_router_authority_match("a.example", S("a.example.")));
    CHECK(!px_router_authority_match("a.example", S("b.example")));
    CHECK(!px_router_authority_match("a.example", S("a.example.org")));
    CHECK(!px_router_authority_match("a.example", S("xa.example")));
    CHECK(!px_router_authority_match("a.example", NULL, 0));
    CHECK(px_router_authority_match("*.example", S("a.example")));
    CHECK(px_router_authority_match("*.example", S("b.a.EXAMPLE:80")));
    CHECK(!px_router_authority_match("*.example", S("example")));
    CHECK(!px_router_authority_match("*.example", S("aexample")));
    CHECK(!px_router_authority_match("*.example", S("a.example.org")));
    CHECK(px_router_authority_match("[::1]", S("[::1]:8080")));
    CHECK(!px_router_authority_match("[::1]", S("[::2]:8080")));
}

TEST(first_match_wins)
{
    px_cluster_cfg_t api = {.name = "api"};
    px_route_cfg_t routes[] = {
        {.authority = "a.example", .path_prefix = "/api/", .cluster = &api},
        {.authority = "*.example", .path_prefix = "/", .direct_status = 204},
        {.authority = NULL, .path_prefix = "/health", .direct_status = 200},
    };
    px_config_t cfg = {.routes = routes, .routes_cnt = MEM_ARRAY_LEN(routes)};
    CHECK(px_router_match(&cfg, S("a.example"), S("/api/x")) == &routes[0]);
    CHECK(px_router_match(&cfg, S("a.example:443"), S("/api/")) == &routes[0]);
    CHECK(px_router_match(&cfg, S("a.example"), S("/ap")) == &routes[1]);
    CHECK(px_router_match(&cfg, S("b.example"), S("/api/x")) == &routes[1]);
    CHECK(px_router_match(&cfg, S("other.org"), S("/health/live")) == &routes[2]);
    CHECK(px_router_match(&cfg, S("other.org"), S("/")) == NULL);
    CHECK(px_router_match(&cfg, NULL, 0, S("/health")) == &routes[2]);
    CHECK(px_router_match(&cfg, NULL, 0, S("/x")) == NULL);
    px_config_t empty = {0};
    CHECK(px_router_match(&empty, S("a"), S("/")) == NULL);
}

TEST(hop_by_hop)
{
    CHECK(px_http_is_hop_by_hop(S("connection"), S("close")));
    CHECK(px_http_is_hop_by_hop(S("Keep-Alive"), S("5")));
    CHECK(px_http_is_hop_by_hop(S("transfer-encoding"), S("chunked")));
    CHECK(px_http_is_hop_by_hop(S("upgrade"), S("h2c")));
    CHECK(px_http_is_hop_by_hop(S("proxy-connection"), S("x")));
    CHECK(px_http_is_hop_by_hop(S("te"), S("gzip")));
    CHECK(!px_http_is_hop_by_hop(S("te"), S("trailers")));
    CHECK(!px_http_is_hop_by_hop(S("content-type"), S("text/plain")));
    CHECK(!px_http_is_hop_by_hop(S("x-connection"), S("a")));
    CHECK_STR(px_http_reason(404), "Not Found");
    CHECK_STR(px_http_reason(505), "HTTP Version Not Supported");
    CHECK_STR(px_http_reason(799), "Unknown");
}

int main(void)
{
    RUN(authority_exact_and_wildcard);
    RUN(first_match_wins);
    RUN(hop_by_hop);
    return TEST_SUMMARY();
}
