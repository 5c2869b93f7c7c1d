/*
 * tests/unit/upstream/forward_test.c: the request head weir forwards: which authority is
 * used and when a host header makes it a 400, the normalised path, the forwarded headers of
 * each x_forwarded_for mode, the listener's scheme, and that running out of sub-arena room at
 * any point gives -ENOMEM or NULL and never a partial head.
 */
#include "mem/base.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"
#include "mem/subregion.h"
#include "proxy/upstream/forward.h"
#include "tests/harness.h"

#define H(n, v)                                                                                    \
    {                                                                                              \
        (n), sizeof(n) - 1, (v), sizeof(v) - 1                                                     \
    }

static uint64_t live(void)
{
    mem_stats_t st;
    mem_thread_flush();
    if (mem_stats_snapshot(&st) != 0)
        return UINT64_MAX;
    return st.live;
}

static px_forward_req_t req(const char *authority, const char *path, const px_header_t *hdrs,
                            size_t cnt)
{
    return (px_forward_req_t){
        .method = "GET",
        .method_len = 3,
        .scheme = "https",
        .scheme_len = 5,
        .authority = authority,
        .authority_len = authority ? strlen(authority) : 0,
        .path = path,
        .path_len = strlen(path),
        .hdrs = hdrs,
        .hdrs_cnt = cnt,
        .peer_ip = "192.0.2.9",
        .tls = false,
    };
}

/* The value of `name` in `h[0..n)`, or NULL; fails the test when it appears twice. */
static const char *get(const px_header_t *h, size_t n, const char *name, size_t *len)
{
    const char *v = NULL;
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len == strlen(name) && memcmp(h[i].name, name, h[i].name_len) == 0) {
            CHECK(v == NULL);
            v = h[i].value;
            *len = h[i].value_len;
        }
    }
    return v;
}

static int has(const px_header_t *h, size_t n, const char *name, const char *want)
{
    size_t len = 0;
    const char *v = get(h, n, name, &len);
    if (want == NULL)
        return v == NULL;
    return v != NULL && len == strlen(want) && memcmp(v, want, len) == 0;
}

TEST(check_authority_and_path)
{
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    mem_subregion_t *s = mem_subregion_new(r, 0);
    REQUIRE(s != NULL);
    const char *why = NULL;
    px_config_t cfg = {0};

    px_header_t same[] = {H("host", "A.example:443")};
    px_forward_req_t f = req("a.example", "/v1/%2e%2e/admin?x=..", same, 1);
    CHECK_OK(px_forward_check(&f, &cfg, s, &why));
    CHECK(f.path_len == strlen("/admin?x=..") && memcmp(f.path, "/admin?x=..", f.path_len) == 0);

    px_header_t other[] = {H("host", "evil.example")};
    f = req("a.example", "/", other, 1);
    CHECK_EQ(px_forward_check(&f, &cfg, s, &why), -EINVAL);
    CHECK_STR(why, "host header differs from :authority");

    px_header_t two[] = {H("host", "a.example"), H("x", "y"), H("host", "a.example")};
    f = req(NULL, "/", two, 3);
    CHECK_EQ(px_forward_check(&f, &cfg, s, &why), -EINVAL);
    CHECK_STR(why, "more than one host header");

    /* A host header alone is the authority. */
    f = req(NULL, "/", same, 1);
    CHECK_OK(px_forward_check(&f, &cfg, s, &why));
    CHECK(f.authority == same[0].value);

    f = req(NULL, "/", NULL, 0);
    CHECK_EQ(px_forward_check(&f, &cfg, s, &why), -EINVAL);
    CHECK_STR(why, "no :authority or host");

    f = req("u@a.example", "/", NULL, 0);
    CHECK_EQ(px_forward_check(&f, &cfg, s, &why), -EINVAL);
    px_header_t comma[] = {H("host", "a.example,b.example")};
    f = req("a.example", "/", comma, 1);
    CHECK_EQ(px_forward_check(&f, &cfg, s, &why), -EINVAL);
    CHECK_STR(why, "comma in authority");

    f = req("a.example", "/a/..%2fb", NULL, 0);
    CHECK_EQ(px_forward_check(&f, &cfg, s, &why), -EINVAL);
    CHECK_STR(why, "encoded slash or backslash in path");
    cfg.keep_escaped_slashes = true;
    f = req("a.example", "/a/..%2fb", NULL, 0);
    CHECK_OK(px_forward_check(&f, &cfg, s, &why));
    CHECK(f.path_len == 9 && memcmp(f.path, "/a/..%2Fb", 9) == 0);
    mem_region_free(r);
}

static const px_header_t client[] = {
    H("host", "a.example"),
    H("x-forwarded-for", "203.0.113.7"),
    H("accept", "*/*"),
    H("x-forwarded-proto", "https"),
    H("x-forwarded-for", "198.51.100.2, 10.0.0.1"),
    H("forwarded", "for=192.0.2.60"),
};

TEST(headers_per_mode)
{
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    mem_subregion_t *s = mem_subregion_new(r, 0);
    REQUIRE(s != NULL);
    px_config_t cfg = {.add_via = true, .server_name = "edge-1"};
    const char *why = NULL;
    size_t n = 0;

    cfg.x_forwarded_for = PX_XFF_APPEND;
    px_forward_req_t f = req("a.example", "/x/../y", client, MEM_ARRAY_LEN(client));
    REQUIRE(px_forward_check(&f, &cfg, s, &why) == 0);
    px_header_t *h = px_forward_headers(&f, &cfg, s, &n);
    REQUIRE(h != NULL);
    /* Pseudo-headers first, in order; :scheme is the listener's, not the client's https. */
    REQUIRE(n >= 4);
    CHECK(h[0].name_len == 7 && memcmp(h[0].name, ":method", 7) == 0);
    CHECK(h[1].name_len == 7 && memcmp(h[1].name, ":scheme", 7) == 0);
    CHECK(h[1].value_len == 4 && memcmp(h[1].value, "http", 4) == 0);
    CHECK(h[2].name_len == 10 && memcmp(h[2].name, ":authority", 10) == 0);
    CHECK(h[3].name_len == 5 && memcmp(h[3].name, ":path", 5) == 0);
    CHECK(has(h, n, ":path", "/y"));
    CHECK(has(h, n, "host", NULL));
    CHECK(has(h, n, "accept", "*/*"));
    CHECK(has(h, n, "x-forwarded-for", "203.0.113.7, 198.51.100.2, 10.0.0.1, 192.0.2.9"));
    CHECK(has(h, n, "x-forwarded-proto", "http"));
    CHECK(has(h, n, "forwarded", "for=192.0.2.60"));
    CHECK(has(h, n, "via", "2 edge-1"));
    CHECK_EQ(n, 9);

    cfg.x_forwarded_for = PX_XFF_REPLACE;
    f.tls = true;
    h = px_forward_headers(&f, &cfg, s, &n);
    REQUIRE(h != NULL);
    CHECK(has(h, n, ":scheme", "https"));
    CHECK(has(h, n, "x-forwarded-for", "192.0.2.9"));
    CHECK(has(h, n, "x-forwarded-proto", "https"));
    CHECK(has(h, n, "forwarded", NULL));

    cfg.x_forwarded_for = PX_XFF_OFF;
    cfg.add_via = false;
    h = px_forward_headers(&f, &cfg, s, &n);
    REQUIRE(h != NULL);
    CHECK(has(h, n, "x-forwarded-for", NULL));
    CHECK(has(h, n, "via", NULL));
    CHECK(has(h, n, "forwarded", "for=192.0.2.60"));
    CHECK_EQ(n, 7);
    mem_region_free(r);
}

/* With less and less room left in a capped region, each call either succeeds completely or
 * says it ran out: -ENOMEM from the check, NULL from the head. */
TEST(out_of_room)
{
    px_config_t cfg = {.add_via = true, .server_name = "weir", .x_forwarded_for = PX_XFF_APPEND};
    int ok = 0, nomem = 0, late = 0, early = 0;
    for (size_t fill = 0; fill < 400; fill++) {
        mem_region_t *r = mem_region_new(8192);
        REQUIRE(r != NULL);
        mem_subregion_t *s = mem_subregion_new(r, 0);
        REQUIRE(s != NULL);
        bool full = false;
        for (size_t i = 0; i < fill && !full; i++)
            full = mem_subregion_alloc(s, 32) == NULL;
        while (full && mem_subregion_alloc(s, 16) != NULL)
            ; /* no room at all: the check's path copy fails too */
        const char *why = NULL;
        size_t n = 0;
        px_forward_req_t f = req("a.example", "/a/./b/../c", client, MEM_ARRAY_LEN(client));
        int rc = px_forward_check(&f, &cfg, s, &why);
        CHECK(rc == 0 || rc == -ENOMEM);
        px_header_t *h = rc == 0 ? px_forward_headers(&f, &cfg, s, &n) : NULL;
        if (h != NULL) {
            ok++;
            CHECK_EQ(n, 9);
            CHECK(has(h, n, "x-forwarded-for", "203.0.113.7, 198.51.100.2, 10.0.0.1, 192.0.2.9"));
            CHECK(has(h, n, "via", "2 weir"));
            CHECK(has(h, n, ":path", "/a/c"));
        } else {
            nomem++;
            late += rc == 0; /* the check fitted, the head did not */
            early += rc == -ENOMEM;
        }
        mem_region_free(r);
    }
    CHECK(ok > 0);
    CHECK(nomem > 0);
    CHECK(late > 0);
    CHECK(early > 0);
    printf("out of room: %d complete heads, %d refused (%d by the check, %d by the head)\n", ok,
           nomem, early, late);
}

int main(void)
{
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        return 1;
    uint64_t before = live();
    RUN(check_authority_and_path);
    RUN(headers_per_mode);
    RUN(out_of_room);
    uint64_t after = live();
    if (after != before) {
        fprintf(stderr, "live bytes %llu before, %llu after\n", (unsigned long long)before,
                (unsigned long long)after);
        th_tests_failed++;
    }
    return TEST_SUMMARY();
}
