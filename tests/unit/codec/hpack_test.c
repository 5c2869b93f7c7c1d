/*
 * tests/unit/codec/hpack_test.c: HPACK for weir's codec (proxy/codec/hpack.c): the request examples
 * of RFC 7541 appendix C.4 (Huffman, dynamic table carried across three blocks) decoded whole
 * and one byte per fragment, the header list bound, corrupt blocks, encoding round trips, and
 * that the tables live in mem/ and are all freed.
 */
#include "mem/base.h"

#include <stdio.h>
#include <string.h>

#include "mem/mem.h"
#include "mem/stats.h"
#include "proxy/core/alloc.h"
#include "proxy/codec/hpack.h"
#include "tests/harness.h"

typedef struct got_s {
    char text[1024]; /* "name: value\n" per field */
    size_t len;
    int fields;
} got_t;

static int on_field(void *ud, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl)
{
    got_t *g = ud;
    int k = snprintf(g->text + g->len, sizeof(g->text) - g->len, "%.*s: %.*s\n", (int)nl,
                     (const char *)n, (int)vl, (const char *)v);
    if (k < 0 || (size_t)k >= sizeof(g->text) - g->len)
        return -E2BIG;
    g->len += (size_t)k;
    g->fields++;
    return 0;
}

static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = 0;
    for (; h[0] && h[1];) {
        if (h[0] == ' ') {
            h++;
            continue;
        }
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

/* RFC 7541 C.4.1-C.4.3. */
static const char *const c4[] = {
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
};
static const char *const c4_text[] = {
    ":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\n",
    ":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\ncache-control: no-cache\n",
    ":method: GET\n:scheme: https\n:path: /index.html\n:authority: www.example.com\n"
    "custom-key: custom-value\n",
};

static uint64_t live(void)
{
    mem_stats_t st;
    mem_thread_flush();
    if (mem_stats_snapshot(&st) != 0)
        return UINT64_MAX;
    return st.live;
}

TEST(rfc7541_c4_whole_and_bytewise)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        px_h2_hpack_dec_t d;
        REQUIRE(px_h2_hpack_dec_init(&d, px_alloc_nghttp2_mem(), 0) == 0);
        for (size_t i = 0; i < MEM_ARRAY_LEN(c4); i++) {
            uint8_t b[64];
            size_t n = unhex(c4[i], b);
            got_t g = {0};
            if (!bytewise) {
                CHECK_OK(px_h2_hpack_decode(&d, b, n, true, on_field, &g));
            } else {
                for (size_t k = 0; k < n; k++)
                    CHECK_OK(px_h2_hpack_decode(&d, b + k, 1, k + 1 == n, on_field, &g));
            }
            CHECK_STR(g.text, c4_text[i]);
        }
        px_h2_hpack_dec_fini(&d);
    }
}

TEST(list_bound_and_corrupt_blocks)
{
    px_h2_hpack_dec_t d;
    /* C.4.1 is 4 fields: 7+3+32, 7+4+32, 5+1+32, 10+15+32 = 180 bytes. */
    REQUIRE(px_h2_hpack_dec_init(&d, px_alloc_nghttp2_mem(), 120) == 0);
    uint8_t b[64];
    size_t n = unhex(c4[0], b);
    got_t g = {0};
    CHECK_OK(px_h2_hpack_decode(&d, b, n, true, on_field, &g));
    CHECK(px_h2_hpack_too_large(&d));
    CHECK_EQ(g.fields, 2);
    /* The table stayed in step: C.4.2 refers to the entry C.4.1 added. Its list is 223 bytes,
     * over the bound too, but the next block is judged on its own. */
    n = unhex(c4[1], b);
    g = (got_t){0};
    CHECK_OK(px_h2_hpack_decode(&d, b, n, true, on_field, &g));
    CHECK(px_h2_hpack_too_large(&d));
    CHECK(strstr(g.text, ":authority: www.example.com") == NULL);
    n = unhex("82", b);
    g = (got_t){0};
    CHECK_OK(px_h2_hpack_decode(&d, b, n, true, on_field, &g));
    CHECK(!px_h2_hpack_too_large(&d));
    CHECK_STR(g.text, ":method: GET\n");
    px_h2_hpack_dec_fini(&d);
    /* An index past the tables, a truncated literal, a table size update over the limit. */
    const char *bad[] = {"ff 80 80 80 08", "bf", "44 0a 2f", "3f e1 ff 03"};
    for (size_t i = 0; i < MEM_ARRAY_LEN(bad); i++) {
        REQUIRE(px_h2_hpack_dec_init(&d, px_alloc_nghttp2_mem(), 0) == 0);
        n = unhex(bad[i], b);
        g = (got_t){0};
        int rc = px_h2_hpack_decode(&d, b, n, true, on_field, &g);
        if (rc != -EPROTO)
            fprintf(stderr, "  block %s: rc %d\n", bad[i], rc);
        CHECK_EQ(rc, -EPROTO);
        px_h2_hpack_dec_fini(&d);
    }
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE         \
    }

TEST(encode_round_trip)
{
    px_h2_hpack_enc_t e;
    px_h2_hpack_dec_t d;
    REQUIRE(px_h2_hpack_enc_init(&e, px_alloc_nghttp2_mem(), 4096) == 0);
    REQUIRE(px_h2_hpack_dec_init(&d, px_alloc_nghttp2_mem(), 0) == 0);
    nghttp2_nv nva[] = {NV(":status", "200"), NV("content-type", "text/plain"),
                        NV("x-weir", "a value that repeats"), NV("content-length", "12345")};
    size_t sizes[3];
    for (int round = 0; round < 3; round++) {
        uint8_t out[256];
        size_t bound = px_h2_hpack_encode_bound(&e, nva, MEM_ARRAY_LEN(nva));
        REQUIRE(bound <= sizeof(out));
        ssize_t n = px_h2_hpack_encode(&e, out, sizeof(out), nva, MEM_ARRAY_LEN(nva));
        REQUIRE(n > 0);
        sizes[round] = (size_t)n;
        got_t g = {0};
        CHECK_OK(px_h2_hpack_decode(&d, out, (size_t)n, true, on_field, &g));
        CHECK_STR(g.text, ":status: 200\ncontent-type: text/plain\nx-weir: a value that "
                          "repeats\ncontent-length: 12345\n");
    }
    /* The dynamic table works: the second block is made of indices. */
    CHECK(sizes[1] < sizes[0] / 2);
    CHECK_EQ(sizes[1], sizes[2]);
    uint8_t tiny[4];
    CHECK_EQ(px_h2_hpack_encode(&e, tiny, sizeof(tiny), nva, MEM_ARRAY_LEN(nva)), -E2BIG);
    /* A new encoder that starts with size updates to 0 and back (what an endpoint does after
     * dropping its encoder while idle) empties the decoder's table in step: the next block
     * decodes, although the decoder still held the old encoder's entries. */
    px_h2_hpack_enc_fini(&e);
    REQUIRE(px_h2_hpack_enc_init(&e, px_alloc_nghttp2_mem(), 4096) == 0);
    CHECK_OK(px_h2_hpack_enc_table_size(&e, 0));
    CHECK_OK(px_h2_hpack_enc_table_size(&e, 4096));
    for (int round = 0; round < 2; round++) {
        uint8_t out[256];
        ssize_t n = px_h2_hpack_encode(&e, out, sizeof(out), nva, MEM_ARRAY_LEN(nva));
        REQUIRE(n > 0);
        if (round == 0)
            CHECK(out[0] == 0x20 && out[1] == 0x3f); /* size update 0, then 4096 */
        got_t g = {0};
        CHECK_OK(px_h2_hpack_decode(&d, out, (size_t)n, true, on_field, &g));
        CHECK_STR(g.text, ":status: 200\ncontent-type: text/plain\nx-weir: a value that "
                          "repeats\ncontent-length: 12345\n");
    }
    px_h2_hpack_enc_fini(&e);
    px_h2_hpack_dec_fini(&d);
    /* Finishing twice is harmless (nghttp2's own del would dereference NULL). */
    px_h2_hpack_enc_fini(&e);
    px_h2_hpack_dec_fini(&d);
}

TEST(field_validation)
{
#define V(n, v) px_h2_field_valid((const uint8_t *)(n), strlen(n), (const uint8_t *)(v), strlen(v))
    CHECK(V("content-type", "text/html"));
    CHECK(V(":path", "/a?b"));
    CHECK(!V("Content-Type", "x"));
    CHECK(!V("bad name", "x"));
    CHECK(!V("", "x"));
    CHECK(!V("x", "a\r\nb"));
    CHECK(!V("x", " leading"));
    CHECK(!V("x", "trailing\t"));
#undef V
}

int main(void)
{
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        return 1;
    uint64_t before = live();
    RUN(rfc7541_c4_whole_and_bytewise);
    RUN(list_bound_and_corrupt_blocks);
    RUN(encode_round_trip);
    RUN(field_validation);
    uint64_t after = live();
    if (after != before) {
        fprintf(stderr, "live bytes %llu before, %llu after\n", (unsigned long long)before,
                (unsigned long long)after);
        th_tests_failed++;
    }
    return TEST_SUMMARY();
}
