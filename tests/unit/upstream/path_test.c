/*
 * tests/unit/upstream/path_test.c: request path normalisation: RFC 3986 5.2.4's
 * remove_dot_segments examples, the percent-encoded dots, slashes and backslashes, merged
 * slashes, what is refused, and that every result is a fixed point.
 */
#include "mem/base.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "proxy/upstream/path.h"
#include "tests/harness.h"

/* remove_dot_segments on a copy of `in`, compared with `want`. */
static int dots(const char *in, const char *want)
{
    char buf[256];
    size_t len = strlen(in);
    memcpy(buf, in, len);
    size_t n = px_path_remove_dot_segments(buf, len);
    if (n != strlen(want) || memcmp(buf, want, n) != 0) {
        fprintf(stderr, "remove_dot_segments(%s) = %.*s, want %s\n", in, (int)n, buf, want);
        return 0;
    }
    return 1;
}

/* Whether %2F and %5C are kept (escaped_slashes: keep) in norm() and refused(). */
static bool keep;

/* px_path_normalize(`in`) must give `want`, and normalising that again must give it back. */
static int norm(const char *in, const char *want)
{
    char out[256], again[256];
    size_t n = 0, m = 0;
    const char *why = NULL;
    int rc = px_path_normalize(in, strlen(in), keep, out, &n, &why);
    if (rc != 0 || n != strlen(want) || memcmp(out, want, n) != 0) {
        fprintf(stderr, "normalize(%s) = %d %.*s (%s), want %s\n", in, rc, (int)n, out,
                why ? why : "-", want);
        return 0;
    }
    if (px_path_normalize(out, n, keep, again, &m, &why) != 0 || m != n ||
        memcmp(again, out, n) != 0) {
        fprintf(stderr, "normalize(%s) = %.*s is not a fixed point (%.*s)\n", in, (int)n, out,
                (int)m, again);
        return 0;
    }
    return 1;
}

static int refused(const char *in, const char *why_part)
{
    char out[256];
    size_t n = 0;
    const char *why = NULL;
    int rc = px_path_normalize(in, strlen(in), keep, out, &n, &why);
    if (rc != -EINVAL || why == NULL || strstr(why, why_part) == NULL) {
        fprintf(stderr, "normalize(%s) = %d (%s), want -EINVAL (%s)\n", in, rc, why ? why : "-",
                why_part);
        return 0;
    }
    return 1;
}

TEST(rfc3986_5_2_4_examples)
{
    /* The two worked examples of 5.2.4. */
    CHECK(dots("/a/b/c/./../../g", "/a/g"));
    CHECK(dots("mid/content=5/../6", "mid/6"));
    /* 5.4.2's abnormal examples, after merging with base "http://a/b/c/d;p?q". */
    CHECK(dots("/a/b/c/../../../g", "/g"));
    CHECK(dots("/a/b/c/../../../../g", "/g"));
    CHECK(dots("/./g", "/g"));
    CHECK(dots("/../g", "/g"));
    CHECK(dots("/b/c/g.", "/b/c/g."));
    CHECK(dots("/b/c/.g", "/b/c/.g"));
    CHECK(dots("/b/c/g..", "/b/c/g.."));
    CHECK(dots("/b/c/..g", "/b/c/..g"));
    CHECK(dots("/b/c/./../g", "/b/g"));
    CHECK(dots("/b/c/./g/.", "/b/c/g/"));
    CHECK(dots("/b/c/g/./h", "/b/c/g/h"));
    CHECK(dots("/b/c/g/../h", "/b/c/h"));
    /* 5.4.1's normal examples that have dot segments. */
    CHECK(dots("/b/c/.", "/b/c/"));
    CHECK(dots("/b/c/./", "/b/c/"));
    CHECK(dots("/b/c/..", "/b/"));
    CHECK(dots("/b/c/../", "/b/"));
    CHECK(dots("/b/c/../g", "/b/g"));
    CHECK(dots("/b/c/../..", "/"));
    CHECK(dots("/b/c/../../", "/"));
    CHECK(dots("/b/c/../../g", "/g"));
    /* Relative inputs: rules A and D. */
    CHECK(dots("../a", "a"));
    CHECK(dots("./a", "a"));
    CHECK(dots(".", ""));
    CHECK(dots("..", ""));
    CHECK(dots("", ""));
}

TEST(dot_segments_before_routing)
{
    CHECK(norm("/v1/../admin", "/admin"));
    CHECK(norm("/v1/./x", "/v1/x"));
    CHECK(norm("/v1/..", "/"));
    CHECK(norm("/..", "/"));
    CHECK(norm("/../../etc/passwd", "/etc/passwd"));
    CHECK(norm("/", "/"));
    CHECK(norm("*", "*"));
    CHECK(norm("/a/b/", "/a/b/"));
    CHECK(norm("/a.b/..c/c..", "/a.b/..c/c.."));
}

TEST(percent_encoded_dots_are_dots)
{
    CHECK(norm("/v1/%2e%2e/admin", "/admin"));
    CHECK(norm("/v1/%2E%2E/admin", "/admin"));
    CHECK(norm("/v1/.%2e/admin", "/admin"));
    CHECK(norm("/v1/%2e/x", "/v1/x"));
    CHECK(norm("/v1/%2e%2e", "/"));
    /* Other unreserved characters are decoded too: /%61dmin is /admin for any backend. */
    CHECK(norm("/%61dmin", "/admin"));
    CHECK(norm("/%7Euser/%2D%5F", "/~user/-_"));
    /* Reserved and other bytes stay encoded, with upper-case hex (6.2.2.1). */
    CHECK(norm("/a%3fb", "/a%3Fb"));
    CHECK(norm("/a%20b%c3%a9", "/a%20b%C3%A9"));
    CHECK(norm("/%25%32%65", "/%252e"));
}

TEST(slashes_merge)
{
    CHECK(norm("//admin", "/admin"));
    CHECK(norm("/v1//..//admin", "/admin"));
    CHECK(norm("/a///b//", "/a/b/"));
}

TEST(escaped_slashes_kept_when_asked)
{
    keep = true;
    /* Kept encoded (hex upper-cased), never a separator: "..%2F" is no dot-segment. */
    CHECK(norm("/v1/..%2fadmin", "/v1/..%2Fadmin"));
    CHECK(norm("/v1/@scope%2fname", "/v1/@scope%2Fname"));
    CHECK(norm("/a%5cb/../c", "/c"));
    CHECK(norm("/a/%2e%2e/%2F", "/%2F"));
    /* The rest of the refusals stay. */
    CHECK(refused("/a\\b", "backslash"));
    CHECK(refused("/a%00b", "NUL"));
    CHECK(refused("/a#b", "fragment"));
    keep = false;
}

TEST(query_kept_as_it_came)
{
    CHECK(norm("/v1/../x?a=/../b&c=%2f", "/x?a=/../b&c=%2f"));
    CHECK(norm("/?", "/?"));
    CHECK(norm("/a/.?q", "/a/?q"));
    CHECK(norm("/a/%2e%2e?x=%2e%2e", "/?x=%2e%2e"));
}

TEST(refused)
{
    CHECK(refused("/v1/..%2fadmin", "encoded slash"));
    CHECK(refused("/v1/..%2Fadmin", "encoded slash"));
    CHECK(refused("/v1/..%5cadmin", "encoded slash or backslash"));
    CHECK(refused("/v1/..%5Cadmin", "encoded slash or backslash"));
    CHECK(refused("/v1/..\\admin", "backslash"));
    CHECK(refused("/a%00b", "NUL"));
    CHECK(refused("/a%2", "percent"));
    CHECK(refused("/a%", "percent"));
    CHECK(refused("/a%zz", "percent"));
    CHECK(refused("/a%2?x", "percent"));
    CHECK(refused("/a#frag", "fragment"));
    CHECK(refused("/a?q#frag", "fragment"));
    CHECK(refused("a/b", "start with '/'"));
    CHECK(refused("", "start with '/'"));
    CHECK(refused("http://x/", "start with '/'"));
}

int main(void)
{
    RUN(rfc3986_5_2_4_examples);
    RUN(dot_segments_before_routing);
    RUN(percent_encoded_dots_are_dots);
    RUN(slashes_merge);
    RUN(escaped_slashes_kept_when_asked);
    RUN(query_kept_as_it_came);
    RUN(refused);
    return TEST_SUMMARY();
}
