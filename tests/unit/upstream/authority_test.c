/*
 * tests/unit/upstream/authority_test.c: what weir accepts as a request's authority, and when
 * a host header names the same one as :authority (scheme-based normalisation).
 */
#include "mem/base.h"

#include <errno.h>
#include <string.h>

#include "proxy/upstream/authority.h"
#include "tests/harness.h"

#define S(x) (x), strlen(x)

static int ok(const char *a)
{
    const char *why = NULL;
    int rc = px_authority_check(S(a), &why);
    if (rc != 0)
        fprintf(stderr, "check(%s) = %d (%s), want 0\n", a, rc, why ? why : "-");
    return rc == 0;
}

static int bad(const char *a, const char *why_part)
{
    const char *why = NULL;
    int rc = px_authority_check(S(a), &why);
    if (rc != -EINVAL || why == NULL || strstr(why, why_part) == NULL) {
        fprintf(stderr, "check(%s) = %d (%s), want -EINVAL (%s)\n", a, rc, why ? why : "-",
                why_part);
        return 0;
    }
    return 1;
}

TEST(accepted)
{
    CHECK(ok("a.example"));
    CHECK(ok("a.example:8443"));
    CHECK(ok("A-b_c~d.example."));
    CHECK(ok("127.0.0.1:80"));
    CHECK(ok("[::1]"));
    CHECK(ok("[::1]:8080"));
    CHECK(ok("[fe80::1:2.3.4.5]"));
    CHECK(ok("xn--bcher-kva.example"));
    CHECK(ok("caf%C3%A9.example"));
    CHECK(ok("a.example:")); /* empty port: RFC 3986 3.2.3 allows it */
}

TEST(refused)
{
    CHECK(bad("", "empty"));
    CHECK(bad("user@a.example", "userinfo"));
    CHECK(bad("user:pw@a.example:80", "userinfo"));
    CHECK(bad("a.example,b.example", "comma"));
    CHECK(bad("a.example b", "space"));
    CHECK(bad(" a.example", "space"));
    CHECK(bad("a.example\t", "space"));
    CHECK(bad("a/b", "invalid character"));
    CHECK(bad("a\"b", "invalid character"));
    CHECK(bad("a%zzb", "invalid character"));
    CHECK(bad(":80", "empty host"));
    CHECK(bad("a.example:80x", "port"));
    CHECK(bad("a.example:123456", "port"));
    CHECK(bad("a.example:80:81", "port"));
    CHECK(bad("[::1", "IP literal"));
    CHECK(bad("[]", "IP literal"));
    CHECK(bad("[::1]x", "IP literal"));
}

TEST(same)
{
    CHECK(px_authority_same(S("a.example"), S("a.example"), false));
    CHECK(px_authority_same(S("A.Example"), S("a.example"), false));
    CHECK(px_authority_same(S("a.example"), S("a.example:80"), false));
    CHECK(px_authority_same(S("a.example:"), S("a.example"), false));
    CHECK(px_authority_same(S("a.example:443"), S("a.example"), true));
    CHECK(px_authority_same(S("a.example:8080"), S("A.EXAMPLE:8080"), false));
    CHECK(px_authority_same(S("[::1]:80"), S("[::1]"), false));
    CHECK(!px_authority_same(S("a.example"), S("a.example:443"), false));
    CHECK(!px_authority_same(S("a.example"), S("a.example:80"), true));
    CHECK(!px_authority_same(S("a.example"), S("b.example"), false));
    CHECK(!px_authority_same(S("a.example"), S("a.example.org"), false));
    CHECK(!px_authority_same(S("a.example:8080"), S("a.example:8081"), false));
    CHECK(!px_authority_same(S("a.example:8080"), S("a.example"), false));
    CHECK(!px_authority_same(S("[::1]"), S("[::2]"), false));
}

int main(void)
{
    RUN(accepted);
    RUN(refused);
    RUN(same);
    return TEST_SUMMARY();
}
