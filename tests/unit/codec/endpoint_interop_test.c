/*
 * tests/unit/codec/endpoint_interop_test.c: weir's codec (proxy/codec/endpoint.c) against another
 * implementation, nghttp2's own session, in memory, in both roles: our server endpoint
 * serves an nghttp2 client (GETs, an upload larger than every window, a graceful shutdown),
 * and our client endpoint talks to an nghttp2 server (bodies larger than the windows, a
 * response with trailers, a reset). endpoint_test.c pairs our two roles with each other, so
 * a mistake made the same way on both sides would pass there; nghttp2 is strict about what it
 * receives and ends the connection with GOAWAY on anything it does not accept, so here every
 * exchange must also end with no GOAWAY but the shutdown's and no stream error.
 */
#include "mem/base.h"

#include <stdio.h>
#include <string.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"
#include "proxy/core/alloc.h"
#include "proxy/codec/endpoint.h"
#include "tests/harness.h"

#define BODY_LEN 200000u

static uint8_t body[BODY_LEN];

static uint64_t live(void)
{
    mem_stats_t st;
    mem_thread_flush();
    if (mem_stats_snapshot(&st) != 0)
        return UINT64_MAX;
    return st.live;
}

/* ---- our side ------------------------------------------------------------------------ */

typedef struct ours_s {
    mem_region_t *region;
    px_h2_ep_t *ep;
    uint8_t *buf; /* owns (tcache): our output */
    size_t len, cap;
    bool server;
    size_t got[16]; /* DATA bytes per stream id / 2 */
    int closed[16]; /* close count per stream */
    uint32_t code[16];
    int blocks[16];
    bool trailer_seen;
} ours_t;

static bool grow(ours_t *o, size_t need)
{
    if (o->len + need <= o->cap)
        return true;
    size_t cap = o->cap == 0 ? 65536 : o->cap;
    while (cap < o->len + need)
        cap *= 2;
    uint8_t *n = mem_realloc(o->buf, cap);
    if (n == NULL)
        return false;
    o->buf = n;
    o->cap = cap;
    return true;
}

static uint8_t *io_reserve(void *tr, size_t len)
{
    ours_t *o = tr;
    return grow(o, len) ? o->buf + o->len : NULL;
}

static void io_commit(void *tr, size_t len)
{
    ours_t *o = tr;
    o->len += len;
}

static int io_data(void *tr, const uint8_t *hd, const uint8_t *p, size_t len, px_h2_release_fn fn,
                   void *arg)
{
    ours_t *o = tr;
    if (!grow(o, PX_H2_FRAME_HD_LEN + len))
        return -ENOMEM;
    memcpy(o->buf + o->len, hd, PX_H2_FRAME_HD_LEN);
    if (len > 0)
        memcpy(o->buf + o->len + PX_H2_FRAME_HD_LEN, p, len);
    o->len += PX_H2_FRAME_HD_LEN + len;
    if (fn != NULL)
        fn(arg);
    return 0;
}

static const px_h2_ep_out_t out_ops = {io_reserve, io_commit, io_data};

static int on_headers(void *ud, px_h2_ep_stream_t *st, const px_h2_block_t *b)
{
    ours_t *o = ud;
    int32_t id = px_h2_ep_stream_id(st);
    o->blocks[id / 2]++;
    for (size_t i = 0; i < b->cnt; i++)
        if (b->fields[i].namelen == 9 && memcmp(b->fields[i].name, "x-trailer", 9) == 0)
            o->trailer_seen = true;
    if (!o->server || o->blocks[id / 2] > 1)
        return 0;
    const nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
        {(uint8_t *)"content-type", (uint8_t *)"application/octet-stream", 12, 24, 0},
    };
    int rc = px_h2_ep_submit_headers(o->ep, st, nv, 2, false);
    if (rc == 0)
        rc = px_h2_ep_submit_data(o->ep, st, body, 100000, true, NULL, NULL);
    return rc;
}

static int on_data(void *ud, px_h2_ep_stream_t *st, const uint8_t *p, size_t len, bool end)
{
    ours_t *o = ud;
    int32_t id = px_h2_ep_stream_id(st);
    (void)end;
    if (len > 0 && memcmp(p, body + o->got[id / 2], len) != 0)
        return -EINVAL;
    o->got[id / 2] += len;
    px_h2_ep_consume(o->ep, st, len);
    return 0;
}

static void on_stream_close(void *ud, px_h2_ep_stream_t *st, uint32_t code)
{
    ours_t *o = ud;
    int32_t id = px_h2_ep_stream_id(st);
    o->closed[id / 2]++;
    o->code[id / 2] = code;
}

static const px_h2_ep_cbs_t cbs = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_stream_close = on_stream_close,
};

static int ours_init(ours_t *o, bool server)
{
    memset(o, 0, sizeof(*o));
    o->server = server;
    o->region = mem_region_new(0);
    if (o->region == NULL)
        return -ENOMEM;
    px_h2_ep_config_t cfg;
    px_h2_ep_config_default(&cfg, px_alloc_nghttp2_mem());
    o->ep = px_h2_ep_new(o->region, server ? PX_H2_ROLE_SERVER : PX_H2_ROLE_CLIENT, &cfg, &out_ops,
                         o, &cbs, o);
    if (o->ep == NULL)
        return -ENOMEM;
    return px_h2_ep_start(o->ep);
}

static void ours_fini(ours_t *o)
{
    px_h2_ep_free(o->ep);
    mem_free(o->buf);
    mem_region_free(o->region);
}

/* ---- nghttp2's side ------------------------------------------------------------------ */

typedef struct theirs_s {
    nghttp2_session *s;
    bool server;
    size_t got[16];
    int closed[16];
    uint32_t code[16];
    size_t sent[16]; /* body offset of each stream's data provider */
    int goaways;
    int32_t goaway_last;
    uint32_t goaway_code;
    bool trailers; /* server: send trailers after the body of stream 3 */
} theirs_t;

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    theirs_t *t = ud;
    size_t total = (size_t)src->ptr == 0 ? 100000 : (size_t)src->ptr;
    size_t *off = &t->sent[id / 2];
    size_t n = MEM_MIN(len, total - *off);
    memcpy(buf, body + *off, n);
    *off += n;
    if (*off == total) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (t->server && t->trailers && id == 3) {
            const nghttp2_nv tr[] = {{(uint8_t *)"x-trailer", (uint8_t *)"yes", 9, 3, 0}};
            if (nghttp2_submit_trailer(s, id, tr, 1) == 0)
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
    }
    return (ssize_t)n;
}

static int t_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    theirs_t *t = ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        t->goaways++;
        t->goaway_last = f->goaway.last_stream_id;
        t->goaway_code = f->goaway.error_code;
    }
    if (t->server && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        const nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0}};
        nghttp2_data_provider dp = {.source.ptr = NULL, .read_callback = read_body};
        if (f->hd.stream_id == 5)
            return nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, 5, NGHTTP2_REFUSED_STREAM);
        return nghttp2_submit_response(s, f->hd.stream_id, nv, 1, &dp);
    }
    return 0;
}

static int t_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                  void *ud)
{
    theirs_t *t = ud;
    (void)s;
    (void)flags;
    if (memcmp(d, body + t->got[id / 2], len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    t->got[id / 2] += len;
    return 0;
}

static int t_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    theirs_t *t = ud;
    (void)s;
    t->closed[id / 2]++;
    t->code[id / 2] = code;
    return 0;
}

static int theirs_init(theirs_t *t, bool server)
{
    memset(t, 0, sizeof(*t));
    t->server = server;
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -ENOMEM;
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, t_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, t_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, t_close);
    int rc = server ? nghttp2_session_server_new3(&t->s, cb, t, NULL, px_alloc_nghttp2_mem())
                    : nghttp2_session_client_new3(&t->s, cb, t, NULL, px_alloc_nghttp2_mem());
    nghttp2_session_callbacks_del(cb);
    if (rc != 0)
        return -ENOMEM;
    return nghttp2_submit_settings(t->s, NGHTTP2_FLAG_NONE, NULL, 0) == 0 ? 0 : -ENOMEM;
}

/* Runs both sides until neither has anything to say. Returns 0, or the first error. */
static int pump(ours_t *o, theirs_t *t)
{
    for (int round = 0; round < 10000; round++) {
        if (px_h2_ep_flush(o->ep) != 0)
            return -ENOMEM;
        bool quiet = o->len == 0;
        if (o->len > 0) {
            ssize_t n = nghttp2_session_mem_recv(t->s, o->buf, o->len);
            if (n != (ssize_t)o->len)
                return -EPROTO;
            o->len = 0;
        }
        for (;;) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(t->s, &p);
            if (n < 0)
                return -EPROTO;
            if (n == 0)
                break;
            quiet = false;
            int rc = px_h2_ep_feed(o->ep, p, (size_t)n);
            if (rc != 0)
                return rc;
        }
        if (quiet)
            return 0;
        const char *bad = px_h2_ep_check(o->ep);
        if (bad != NULL) {
            fprintf(stderr, "invariant: %s\n", bad);
            return -EFAULT;
        }
    }
    return -ELOOP;
}

TEST(our_server_and_an_nghttp2_client)
{
    ours_t o;
    theirs_t t;
    REQUIRE(ours_init(&o, true) == 0);
    REQUIRE(theirs_init(&t, false) == 0);
    const nghttp2_nv get[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
        {(uint8_t *)":authority", (uint8_t *)"weir.test", 10, 9, 0},
    };
    nghttp2_nv post[4];
    memcpy(post, get, sizeof(post));
    post[0].value = (uint8_t *)"POST";
    post[0].valuelen = 4;
    for (int i = 0; i < 5; i++)
        CHECK(nghttp2_submit_request(t.s, NULL, get, 4, NULL, NULL) == 1 + 2 * i);
    nghttp2_data_provider dp = {.source.ptr = (void *)(size_t)BODY_LEN, .read_callback = read_body};
    CHECK_EQ(nghttp2_submit_request(t.s, NULL, post, 4, &dp, NULL), 11);
    CHECK_OK(pump(&o, &t));
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(t.got[i], 100000);
        CHECK_EQ(t.closed[i], 1);
        CHECK_EQ(t.code[i], NGHTTP2_NO_ERROR);
    }
    /* The upload went through our 64 KiB stream window as we consumed it. */
    CHECK_EQ(o.got[5], BODY_LEN);
    CHECK_EQ(t.got[5], 100000);
    CHECK_EQ(o.code[5], PX_H2_NO_ERROR);
    CHECK_EQ(t.goaways, 0);
    /* Graceful shutdown with an upload in flight (stream 13, its body still to come):
     * nghttp2 sees GOAWAY(2^31-1) and answers the PING, then gets the final GOAWAY naming
     * 13, and 13 runs to its end. */
    int32_t open = nghttp2_submit_headers(t.s, NGHTTP2_FLAG_NONE, -1, NULL, post, 4, NULL);
    CHECK_EQ(open, 13);
    CHECK_OK(pump(&o, &t));
    CHECK_OK(px_h2_ep_shutdown(o.ep));
    CHECK_OK(pump(&o, &t));
    CHECK_EQ(t.goaways, 2);
    CHECK_EQ(t.goaway_last, 13);
    CHECK_EQ(t.goaway_code, NGHTTP2_NO_ERROR);
    CHECK(!px_h2_ep_done(o.ep));
    dp.source.ptr = (void *)(size_t)1000;
    CHECK_OK(nghttp2_submit_data(t.s, NGHTTP2_FLAG_END_STREAM, 13, &dp));
    CHECK_OK(pump(&o, &t));
    CHECK_EQ(o.got[6], 1000);
    CHECK_EQ(t.got[6], 100000);
    CHECK_EQ(t.code[6], NGHTTP2_NO_ERROR);
    CHECK(px_h2_ep_done(o.ep));
    CHECK_EQ(px_h2_ep_error(o.ep), PX_H2_NO_ERROR);
    nghttp2_session_del(t.s);
    ours_fini(&o);
}

TEST(our_client_and_an_nghttp2_server)
{
    ours_t o;
    theirs_t t;
    REQUIRE(ours_init(&o, false) == 0);
    REQUIRE(theirs_init(&t, true) == 0);
    t.trailers = true;
    const nghttp2_nv get[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
        {(uint8_t *)":authority", (uint8_t *)"weir.test", 10, 9, 0},
    };
    nghttp2_nv post[4];
    memcpy(post, get, sizeof(post));
    post[0].value = (uint8_t *)"POST";
    post[0].valuelen = 4;
    px_h2_ep_stream_t *st;
    CHECK_OK(px_h2_ep_submit_request(o.ep, get, 4, true, NULL, &st));   /* 1 */
    CHECK_OK(px_h2_ep_submit_request(o.ep, get, 4, true, NULL, &st));   /* 3: trailers */
    CHECK_OK(px_h2_ep_submit_request(o.ep, get, 4, true, NULL, &st));   /* 5: refused */
    CHECK_OK(px_h2_ep_submit_request(o.ep, post, 4, false, NULL, &st)); /* 7: upload */
    CHECK_OK(px_h2_ep_submit_data(o.ep, st, body, BODY_LEN, true, NULL, NULL));
    CHECK_OK(pump(&o, &t));
    CHECK_EQ(o.got[0], 100000);
    CHECK_EQ(o.got[1], 100000);
    CHECK(o.trailer_seen);
    CHECK_EQ(o.blocks[1], 2);
    CHECK_EQ(o.code[0], PX_H2_NO_ERROR);
    CHECK_EQ(o.code[1], PX_H2_NO_ERROR);
    CHECK_EQ(o.code[2], PX_H2_REFUSED_STREAM);
    CHECK_EQ(t.got[3], BODY_LEN);
    CHECK_EQ(o.got[3], 100000);
    CHECK_EQ(o.code[3], PX_H2_NO_ERROR);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(o.closed[i], 1);
    CHECK_EQ(t.goaways, 0);
    CHECK_EQ(px_h2_ep_streams_cnt(o.ep), 0);
    /* Our GOAWAY: nghttp2 takes it as the end. */
    CHECK_OK(px_h2_ep_shutdown(o.ep));
    CHECK_OK(pump(&o, &t));
    CHECK_EQ(t.goaways, 1);
    CHECK_EQ(t.goaway_code, NGHTTP2_NO_ERROR);
    nghttp2_session_del(t.s);
    ours_fini(&o);
}

int main(void)
{
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        return 1;
    for (size_t i = 0; i < BODY_LEN; i++)
        body[i] = (uint8_t)(i * 13 + (i >> 8));
    uint64_t before = live();
    RUN(our_server_and_an_nghttp2_client);
    RUN(our_client_and_an_nghttp2_server);
    uint64_t after = live();
    if (after != before) {
        fprintf(stderr, "live bytes %llu before, %llu after\n", (unsigned long long)before,
                (unsigned long long)after);
        th_tests_failed++;
    }
    return TEST_SUMMARY();
}
