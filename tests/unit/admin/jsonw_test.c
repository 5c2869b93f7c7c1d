/*
 * tests/unit/admin/jsonw_test.c: the admin JSON writer (proxy/admin/jsonw.c) and the admin's
 * query-string helpers: escaping, nesting and commas, the size cap, and that the counter table
 * names every px_stats_t field.
 */
#include "mem/base.h"

#include <string.h>

#include "mem/malloc.h"
#include "proxy/admin/endpoints.h"
#include "proxy/admin/jsonw.h"
#include "proxy/core/stats-t.h"
#include "tests/harness.h"

TEST(structure_and_commas)
{
    px_jsonw_t w;
    px_jsonw_init(&w, 1 << 20);
    px_jsonw_obj_begin(&w);
    px_jsonw_ku64(&w, "a", 1);
    px_jsonw_key(&w, "b");
    px_jsonw_arr_begin(&w);
    px_jsonw_i64(&w, -2);
    px_jsonw_bool(&w, true);
    px_jsonw_null(&w);
    px_jsonw_obj_begin(&w);
    px_jsonw_obj_end(&w);
    px_jsonw_arr_end(&w);
    px_jsonw_kdbl(&w, "c", 0.5);
    px_jsonw_kdbl(&w, "d", 1.0 / 0.0);
    px_jsonw_obj_end(&w);
    CHECK_OK(px_jsonw_error(&w));
    CHECK_STR(w.buf, "{\"a\":1,\"b\":[-2,true,null,{}],\"c\":0.5,\"d\":null}");
    px_jsonw_fini(&w);
}

TEST(escaping)
{
    px_jsonw_t w;
    px_jsonw_init(&w, 1 << 20);
    px_jsonw_str(&w, "q\"b\\n\n\t\x01 \xc3\xa9 \xff\xfe end");
    CHECK_OK(px_jsonw_error(&w));
    CHECK_STR(w.buf, "\"q\\\"b\\\\n\\n\\t\\u0001 \xc3\xa9 \\u00ff\\u00fe end\"");
    px_jsonw_fini(&w);
    /* Overlong and surrogate encodings are not valid UTF-8 either. */
    px_jsonw_init(&w, 1 << 20);
    px_jsonw_str(&w, "\xc0\xaf\xed\xa0\x80");
    CHECK_STR(w.buf, "\"\\u00c0\\u00af\\u00ed\\u00a0\\u0080\"");
    px_jsonw_fini(&w);
}

TEST(cap_and_unbalanced)
{
    px_jsonw_t w;
    px_jsonw_init(&w, 64);
    for (int i = 0; i < 100; i++)
        px_jsonw_puts(&w, "0123456789");
    CHECK_EQ(px_jsonw_error(&w), -E2BIG);
    CHECK(w.len < 64);
    px_jsonw_fini(&w);
    px_jsonw_init(&w, 64);
    px_jsonw_obj_begin(&w);
    CHECK_EQ(px_jsonw_error(&w), -EINVAL);
    px_jsonw_obj_end(&w);
    CHECK_OK(px_jsonw_error(&w));
    px_jsonw_obj_end(&w);
    CHECK_EQ(px_jsonw_error(&w), -EINVAL);
    px_jsonw_fini(&w);
    /* Large printf output goes through the slow path. */
    px_jsonw_init(&w, 1 << 20);
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    px_jsonw_printf(&w, "<%s>", big);
    CHECK_EQ(w.len, 1001);
    size_t len;
    char *b = px_jsonw_take(&w, &len);
    CHECK_EQ(len, 1001);
    CHECK(b != NULL && b[0] == '<' && b[1000] == '>' && b[1001] == '\0');
    mem_free(b);
    px_jsonw_fini(&w);
}

TEST(query)
{
    char v[16];
    CHECK_EQ(px__admin_query_get("a=1&top=20&format=prometheus", "top", v, sizeof(v)), 2);
    CHECK_STR(v, "20");
    CHECK_EQ(px__admin_query_get("a=1&top=20", "to", v, sizeof(v)), -ENOENT);
    CHECK_EQ(px__admin_query_get("x=a%2Fb+c", "x", v, sizeof(v)), 5);
    CHECK_STR(v, "a/b c");
    CHECK_EQ(px__admin_query_get("flag&y=2", "flag", v, sizeof(v)), 0);
    CHECK_EQ(px__admin_query_get("x=0123456789abcdefgh", "x", v, sizeof(v)), -E2BIG);
    CHECK_EQ(px__admin_query_get("", "x", v, sizeof(v)), -ENOENT);
    uint64_t n = 7;
    CHECK_OK(px__admin_query_u64("top=1000", "top", 1000, &n));
    CHECK_EQ(n, 1000);
    CHECK_EQ(px__admin_query_u64("top=1001", "top", 1000, &n), -EINVAL);
    CHECK_EQ(px__admin_query_u64("top=-1", "top", 1000, &n), -EINVAL);
    CHECK_EQ(px__admin_query_u64("top=", "top", 1000, &n), -EINVAL);
    CHECK_EQ(px__admin_query_u64("top=99999999999999999999999", "top", UINT64_MAX, &n), -EINVAL);
    CHECK_EQ(px__admin_query_u64("x=1", "top", 1000, &n), -ENOENT);
}

TEST(stats_table_complete)
{
    /* /stats and /metrics name every counter: a field added to px_stats_t must be added to
     * the table in proxy/admin/ops.c. */
    CHECK_EQ(px__admin_stats_desc_cnt(), PX_STATS_FIELDS_CNT);
    px_stats_t st;
    uint64_t *f = (uint64_t *)&st;
    for (size_t i = 0; i < PX_STATS_FIELDS_CNT; i++)
        f[i] = 1000 + i; /* distinct values: each must appear exactly once */
    px_jsonw_t w;
    px_jsonw_init(&w, 1 << 20);
    px__admin_stats_prom(&w, &st);
    CHECK_OK(px_jsonw_error(&w));
    for (size_t i = 0; i < PX_STATS_FIELDS_CNT; i++) {
        char needle[32];
        snprintf(needle, sizeof(needle), " %zu\n", 1000 + i);
        const char *p = strstr(w.buf, needle);
        CHECK(p != NULL);
        CHECK(p == NULL || strstr(p + 1, needle) == NULL);
    }
    CHECK(strstr(w.buf, "weir_responses_total{code=\"2xx\"}") != NULL);
    /* One HELP per family. */
    const char *h = strstr(w.buf, "# HELP weir_responses_total ");
    CHECK(h != NULL && strstr(h + 1, "# HELP weir_responses_total ") == NULL);
    px_jsonw_fini(&w);
}

int main(void)
{
    RUN(structure_and_commas);
    RUN(escaping);
    RUN(cap_and_unbalanced);
    RUN(query);
    RUN(stats_table_complete);
    return TEST_SUMMARY();
}
