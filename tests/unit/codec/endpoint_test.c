/*
 * tests/unit/codec/endpoint_test.c: the connection of weir's HTTP/2 codec (proxy/codec/endpoint.c)
 * in both roles. A client-role and a server-role endpoint talk to each other in memory
 * (requests, responses, bodies larger than every window with consume(), GOAWAY drain, resets
 * both ways, a SETTINGS change of the initial window mid-stream that takes a window below
 * zero); then a hand-written client drives the server role into the errors of RFC 9113 that
 * issue 15 part 4 lists, checked on the bytes the server emits. Every test ends with the
 * endpoint's invariants, and the binary with zero live bytes in mem/.
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
#include "proxy/codec/hpack.h"
#include "tests/harness.h"

static uint64_t live(void)
{
    mem_stats_t st;
    mem_thread_flush();
    if (mem_stats_snapshot(&st) != 0)
        return UINT64_MAX;
    return st.live;
}

/* ---- the transport: output bytes gathered in one buffer ---------------------------- */

typedef struct sink_s {
    uint8_t *buf; /* owns (tcache) */
    size_t len, cap;
    size_t res; /* the last reservation's length */
    int releases;
    bool refuse; /* reserve and data fail, as when memory is out */
} sink_t;

static bool sink_grow(sink_t *k, size_t need)
{
    if (k->len + need <= k->cap)
        return true;
    size_t cap = k->cap == 0 ? 4096 : k->cap;
    while (cap < k->len + need)
        cap *= 2;
    uint8_t *n = mem_realloc(k->buf, cap);
    if (n == NULL)
        return false;
    k->buf = n;
    k->cap = cap;
    return true;
}

static uint8_t *io_reserve(void *tr, size_t len)
{
    sink_t *k = tr;
    if (k->refuse || !sink_grow(k, len))
        return NULL;
    k->res = len;
    return k->buf + k->len;
}

static void io_commit(void *tr, size_t len)
{
    sink_t *k = tr;
    MEM_ASSERT(len <= k->res);
    k->len += len;
    k->res = 0;
}

static int io_data(void *tr, const uint8_t *hd, const uint8_t *p, size_t len, px_h2_release_fn fn,
                   void *arg)
{
    sink_t *k = tr;
    if (k->refuse || !sink_grow(k, PX_H2_FRAME_HD_LEN + len))
        return -ENOMEM;
    memcpy(k->buf + k->len, hd, PX_H2_FRAME_HD_LEN);
    if (len > 0)
        memcpy(k->buf + k->len + PX_H2_FRAME_HD_LEN, p, len);
    k->len += PX_H2_FRAME_HD_LEN + len;
    /* "Written" at once: the payload is released. */
    if (fn != NULL)
        fn(arg);
    return 0;
}

static const px_h2_ep_out_t out_ops = {io_reserve, io_commit, io_data};

static void sink_fini(sink_t *k)
{
    mem_free(k->buf);
    memset(k, 0, sizeof(*k));
}

/* ---- a peer: one endpoint and what it heard -------------------------------------- */

#define SLOTS 64

typedef struct rec_s {
    int32_t id;
    int blocks;
    char first[256]; /* the first block, "name: value\n" per field */
    size_t body;     /* DATA bytes received */
    size_t unconsumed;
    bool end_seen;
    bool closed;
    uint32_t close_code;
    int rsts;
    uint32_t rst_code;
    px_h2_ep_stream_t *st;
} rec_t;

typedef struct peer_s {
    mem_region_t *region;
    px_h2_ep_t *ep;
    sink_t out;
    rec_t rec[SLOTS];
    bool auto_consume;   /* consume each DATA at once */
    bool respond;        /* server: answer each request */
    size_t respond_body; /* bytes of body in each response */
    uint8_t *body;       /* borrows: the response body's bytes */
    int releases_wanted;
    int goaways;
    int32_t goaway_last;
    uint32_t goaway_code;
    int fails;
    uint32_t fail_code;
    char fail_reason[128];
    int windows;
    uint64_t now;
} peer_t;

static rec_t *rec_of(peer_t *p, int32_t id)
{
    for (int i = 0; i < SLOTS; i++)
        if (p->rec[i].id == id)
            return &p->rec[i];
    for (int i = 0; i < SLOTS; i++)
        if (p->rec[i].id == 0) {
            p->rec[i].id = id;
            return &p->rec[i];
        }
    return &p->rec[SLOTS - 1];
}

static void on_release(void *arg)
{
    sink_t *k = arg;
    k->releases++;
}

static int on_headers(void *ud, px_h2_ep_stream_t *st, const px_h2_block_t *b)
{
    peer_t *p = ud;
    rec_t *r = rec_of(p, px_h2_ep_stream_id(st));
    r->st = st;
    if (r->blocks++ == 0) {
        size_t off = 0;
        for (size_t i = 0; i < b->cnt; i++) {
            int k = snprintf(r->first + off, sizeof(r->first) - off, "%.*s: %.*s\n",
                             (int)b->fields[i].namelen, (const char *)b->fields[i].name,
                             (int)b->fields[i].valuelen, (const char *)b->fields[i].value);
            if (k < 0 || (size_t)k >= sizeof(r->first) - off)
                break;
            off += (size_t)k;
        }
    }
    if (b->end_stream)
        r->end_seen = true;
    /* The field bytes live in the stream's sub-arena. */
    MEM_ASSERT(b->cnt == 0 || px_h2_ep_stream_sub(st) != NULL);
    if (p->respond && r->blocks == 1) {
        const nghttp2_nv nv[] = {
            {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
            {(uint8_t *)"server", (uint8_t *)"weir-test", 6, 9, 0},
        };
        bool bodyless = p->respond_body == 0;
        if (px_h2_ep_submit_headers(p->ep, st, nv, 2, bodyless) != 0)
            return -ENOMEM;
        if (!bodyless) {
            p->releases_wanted++;
            if (px_h2_ep_submit_data(p->ep, st, p->body, p->respond_body, true, on_release,
                                     &p->out) != 0)
                return -ENOMEM;
        }
    }
    return 0;
}

static int on_data(void *ud, px_h2_ep_stream_t *st, const uint8_t *d, size_t len, bool end)
{
    peer_t *p = ud;
    rec_t *r = rec_of(p, px_h2_ep_stream_id(st));
    r->st = st;
    for (size_t i = 0; i < len; i++)
        if (d[i] != (uint8_t)((r->body + i) * 7))
            return -EINVAL; /* the bytes arrive in order and unchanged */
    r->body += len;
    if (end)
        r->end_seen = true;
    if (p->auto_consume)
        px_h2_ep_consume(p->ep, st, len);
    else
        r->unconsumed += len;
    return 0;
}

static void on_rst(void *ud, px_h2_ep_stream_t *st, uint32_t code)
{
    peer_t *p = ud;
    rec_t *r = rec_of(p, px_h2_ep_stream_id(st));
    r->rsts++;
    r->rst_code = code;
}

static void on_stream_close(void *ud, px_h2_ep_stream_t *st, uint32_t code)
{
    peer_t *p = ud;
    rec_t *r = rec_of(p, px_h2_ep_stream_id(st));
    MEM_ASSERT(px_h2_ep_stream_state(st) == PX_H2_ST_CLOSED);
    r->closed = true;
    r->close_code = code;
    r->st = NULL;
}

static void on_goaway(void *ud, int32_t last, uint32_t code, const uint8_t *debug, size_t len)
{
    peer_t *p = ud;
    (void)debug;
    (void)len;
    p->goaways++;
    p->goaway_last = last;
    p->goaway_code = code;
}

static void on_window(void *ud, px_h2_ep_stream_t *st)
{
    peer_t *p = ud;
    (void)st;
    p->windows++;
}

static void on_fail(void *ud, uint32_t code, const char *reason)
{
    peer_t *p = ud;
    p->fails++;
    p->fail_code = code;
    snprintf(p->fail_reason, sizeof(p->fail_reason), "%s", reason);
}

static uint64_t clock_ms(void *ud)
{
    peer_t *p = ud;
    return p->now;
}

static const px_h2_ep_cbs_t cbs = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_rst = on_rst,
    .on_stream_close = on_stream_close,
    .on_goaway = on_goaway,
    .on_window = on_window,
    .on_fail = on_fail,
    .now_ms = clock_ms,
};

static int peer_init(peer_t *p, px_h2_role_t role, const px_h2_ep_config_t *cfg)
{
    memset(p, 0, sizeof(*p));
    p->region = mem_region_new(0);
    if (p->region == NULL)
        return -ENOMEM;
    px_h2_ep_config_t def;
    if (cfg == NULL) {
        px_h2_ep_config_default(&def, px_alloc_nghttp2_mem());
        cfg = &def;
    }
    p->ep = px_h2_ep_new(p->region, role, cfg, &out_ops, &p->out, &cbs, p);
    if (p->ep == NULL)
        return -ENOMEM;
    return px_h2_ep_start(p->ep);
}

static void peer_fini(peer_t *p)
{
    px_h2_ep_free(p->ep);
    sink_fini(&p->out);
    mem_region_free(p->region);
}

/* Moves the output of `from` into `to`. Returns what feed said. */
static int deliver(peer_t *from, peer_t *to)
{
    if (from->out.len == 0)
        return 0;
    /* Cut in two: the reader keeps the part frame, as a TCP read would leave it. */
    size_t half = from->out.len / 2;
    int rc = px_h2_ep_feed(to->ep, from->out.buf, half);
    if (rc == 0)
        rc = px_h2_ep_feed(to->ep, from->out.buf + half, from->out.len - half);
    from->out.len = 0;
    return rc;
}

/* Runs the two peers until neither has anything to say. */
static int pump(peer_t *c, peer_t *s)
{
    for (int round = 0; round < 10000; round++) {
        if (px_h2_ep_flush(c->ep) != 0 || px_h2_ep_flush(s->ep) != 0)
            return -ENOMEM;
        if (c->out.len == 0 && s->out.len == 0)
            return 0;
        int rc = deliver(c, s);
        if (rc != 0)
            return rc;
        rc = deliver(s, c);
        if (rc != 0)
            return rc;
        if (px_h2_ep_check(c->ep) != NULL || px_h2_ep_check(s->ep) != NULL) {
            fprintf(stderr, "invariant: %s / %s\n", px_h2_ep_check(c->ep) ?: "-",
                    px_h2_ep_check(s->ep) ?: "-");
            return -EFAULT;
        }
    }
    return -ELOOP;
}

static const nghttp2_nv get_nv[] = {
    {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
    {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
    {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
    {(uint8_t *)":authority", (uint8_t *)"weir.test", 10, 9, 0},
};
static const nghttp2_nv post_nv[] = {
    {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
    {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
    {(uint8_t *)":path", (uint8_t *)"/upload", 5, 7, 0},
    {(uint8_t *)":authority", (uint8_t *)"weir.test", 10, 9, 0},
};

static uint8_t *pattern(size_t len)
{
    uint8_t *b = mem_malloc(len);
    if (b != NULL)
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)(i * 7);
    return b;
}

/* ---- both roles in memory ---------------------------------------------------------- */

TEST(request_response_bodies_larger_than_windows)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    size_t body_len = 300000; /* over the 64 KiB stream window and the 65,535 default */
    uint8_t *body = pattern(body_len);
    REQUIRE(body != NULL);
    s.respond = true;
    s.respond_body = body_len;
    s.body = body;
    c.auto_consume = true;
    px_h2_ep_stream_t *st[3];
    for (int i = 0; i < 3; i++)
        CHECK_OK(px_h2_ep_submit_request(c.ep, get_nv, 4, true, NULL, &st[i]));
    CHECK_EQ(px_h2_ep_stream_id(st[0]), 1);
    CHECK_EQ(px_h2_ep_stream_id(st[2]), 5);
    CHECK_OK(pump(&c, &s));
    for (int i = 0; i < 3; i++) {
        rec_t *rs = rec_of(&s, 1 + 2 * i), *rc = rec_of(&c, 1 + 2 * i);
        CHECK(strstr(rs->first, ":method: GET\n") != NULL);
        CHECK(strstr(rs->first, ":authority: weir.test\n") != NULL);
        CHECK(strstr(rc->first, ":status: 200\n") != NULL);
        CHECK_EQ(rc->body, body_len);
        CHECK(rc->end_seen);
        CHECK(rc->closed && rs->closed);
        CHECK_EQ(rc->close_code, PX_H2_NO_ERROR);
        CHECK_EQ(rs->close_code, PX_H2_NO_ERROR);
    }
    /* Each payload was released exactly once, after it was written. */
    CHECK_EQ(s.out.releases, 3);
    CHECK(px_h2_ep_idle(s.ep) && px_h2_ep_idle(c.ep));
    CHECK_EQ(px_h2_ep_streams_cnt(s.ep), 0);
    CHECK(px_h2_ep_check(s.ep) == NULL);
    /* The connection window reopened as the client consumed. */
    CHECK(px_h2_ep_recv_window(c.ep) > (8 << 20)); /* the rest waits for half the window */
    peer_fini(&c);
    peer_fini(&s);
    mem_free(body);
}

TEST(upload_held_to_the_window_until_consumed)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    c.auto_consume = true;
    size_t len = 1 << 20;
    uint8_t *body = pattern(len);
    REQUIRE(body != NULL);
    px_h2_ep_stream_t *st;
    REQUIRE(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st) == 0);
    CHECK_OK(px_h2_ep_submit_data(c.ep, st, body, len, true, on_release, &c.out));
    CHECK_EQ(px_h2_ep_stream_queued(st), len);
    CHECK_OK(pump(&c, &s));
    /* The server consumed nothing: it holds exactly one stream window, no more. */
    rec_t *r = rec_of(&s, 1);
    CHECK_EQ(r->body, 65536);
    CHECK_EQ(px_h2_ep_stream_recv_window(r->st), 0);
    CHECK_EQ(px_h2_ep_stream_queued(st), len - 65536);
    CHECK_EQ(c.out.releases, 0);
    /* Consuming in pieces reopens it; the rest arrives. */
    int rounds = 0;
    while (!r->end_seen && rounds++ < 1000) {
        size_t n = r->unconsumed;
        r->unconsumed = 0;
        px_h2_ep_consume(s.ep, r->st, n);
        CHECK_OK(pump(&c, &s));
        CHECK(r->body - (len - px_h2_ep_stream_queued(st)) == 0);
    }
    CHECK_EQ(r->body, len);
    CHECK(r->end_seen);
    CHECK_EQ(c.out.releases, 1);
    /* The server answers; both sides close. */
    const nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"204", 7, 3, 0}};
    CHECK_OK(px_h2_ep_submit_headers(s.ep, r->st, nv, 1, true));
    CHECK_OK(pump(&c, &s));
    CHECK(rec_of(&c, 1)->closed && r->closed);
    CHECK_EQ(px_h2_ep_streams_cnt(s.ep), 0);
    peer_fini(&c);
    peer_fini(&s);
    mem_free(body);
}

TEST(trailers_after_queued_data)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    c.auto_consume = s.auto_consume = true;
    uint8_t *body = pattern(100000);
    REQUIRE(body != NULL);
    px_h2_ep_stream_t *st;
    REQUIRE(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st) == 0);
    CHECK_OK(px_h2_ep_submit_data(c.ep, st, body, 100000, false, NULL, NULL));
    const nghttp2_nv tr[] = {{(uint8_t *)"x-checksum", (uint8_t *)"abc", 10, 3, 0}};
    CHECK_OK(px_h2_ep_submit_headers(c.ep, st, tr, 1, true));
    CHECK_EQ(px_h2_ep_submit_data(c.ep, st, body, 1, false, NULL, NULL), -EPIPE);
    CHECK_OK(pump(&c, &s));
    rec_t *r = rec_of(&s, 1);
    CHECK_EQ(r->body, 100000);
    CHECK_EQ(r->blocks, 2);
    CHECK(r->end_seen);
    CHECK_EQ(px_h2_ep_stream_state(r->st), PX_H2_ST_HALF_CLOSED_REMOTE);
    peer_fini(&c);
    peer_fini(&s);
    mem_free(body);
}

TEST(trailers_only_response_reaches_the_client)
{
    /* gRPC's "trailers-only" form: the whole response is one HEADERS with END_STREAM. */
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    px_h2_ep_stream_t *st;
    REQUIRE(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st) == 0);
    CHECK_OK(pump(&c, &s));
    const nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0},
        {(uint8_t *)"grpc-status", (uint8_t *)"5", 11, 1, 0},
        {(uint8_t *)"grpc-message", (uint8_t *)"not found", 12, 9, 0},
    };
    CHECK_OK(px_h2_ep_submit_headers(s.ep, rec_of(&s, 1)->st, nv, 4, true));
    CHECK_OK(pump(&c, &s));
    rec_t *r = rec_of(&c, 1);
    CHECK_EQ(r->blocks, 1);
    CHECK(r->end_seen);
    CHECK(strstr(r->first, "grpc-status: 5\ngrpc-message: not found\n") != NULL);
    CHECK_EQ(r->body, 0);
    /* The client's side is half closed (remote): it may still end its request. */
    CHECK_EQ(px_h2_ep_stream_state(st), PX_H2_ST_HALF_CLOSED_REMOTE);
    CHECK_OK(px_h2_ep_submit_data(c.ep, st, NULL, 0, true, NULL, NULL));
    CHECK_OK(pump(&c, &s));
    CHECK(r->closed);
    CHECK_EQ(r->close_code, PX_H2_NO_ERROR);
    CHECK_EQ(px_h2_ep_streams_cnt(s.ep), 0);
    peer_fini(&c);
    peer_fini(&s);
}

TEST(client_role_refuses_push_and_server_streams)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    px_h2_ep_stream_t *st;
    REQUIRE(px_h2_ep_submit_request(c.ep, get_nv, 4, true, NULL, &st) == 0);
    CHECK_OK(pump(&c, &s));
    /* We sent ENABLE_PUSH 0: a PUSH_PROMISE is a connection error. */
    uint8_t b[64];
    size_t n = px_h2_write_push_promise(b, 1, 2, (const uint8_t *)"\x82", 1);
    CHECK_EQ(px_h2_ep_feed(c.ep, b, n), -EPROTO);
    CHECK_EQ(px_h2_ep_error(c.ep), PX_H2_PROTOCOL_ERROR);
    CHECK_EQ(c.fails, 1);
    CHECK_STR(c.fail_reason, "PUSH_PROMISE");
    peer_fini(&c);
    peer_fini(&s);
    /* A server opening a stream of its own. */
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    CHECK_OK(pump(&c, &s));
    n = px_h2_write_block(b, 2, (const uint8_t *)"\x88", 1, PX_H2_MAX_FRAME_MIN, true);
    CHECK_EQ(px_h2_ep_feed(c.ep, b, n), -EPROTO);
    CHECK_EQ(px_h2_ep_error(c.ep), PX_H2_PROTOCOL_ERROR);
    /* DATA on a stream the client never opened. */
    peer_fini(&c);
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    n = px_h2_write_settings(b, NULL, 0, false);
    n += px_h2_write_data_hd(b + n, 1, 0, true);
    CHECK_EQ(px_h2_ep_feed(c.ep, b, n), -EPROTO);
    CHECK_STR(c.fail_reason, "DATA on an idle stream");
    peer_fini(&c);
    peer_fini(&s);
}

TEST(goaway_drain_two_steps)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    c.auto_consume = s.auto_consume = true;
    px_h2_ep_stream_t *st;
    REQUIRE(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st) == 0);
    CHECK_OK(pump(&c, &s));
    CHECK_OK(px_h2_ep_shutdown(s.ep));
    /* Step one: GOAWAY(2^31-1) and a PING; the client may not open more. */
    CHECK_OK(deliver(&s, &c));
    CHECK_EQ(c.goaways, 1);
    CHECK_EQ(c.goaway_last, PX_H2_STREAM_ID_MAX);
    px_h2_ep_stream_t *st2;
    CHECK_EQ(px_h2_ep_submit_request(c.ep, get_nv, 4, true, NULL, &st2), -ECONNREFUSED);
    /* Step two follows the PING's ACK: GOAWAY naming stream 1, which still runs. */
    CHECK_OK(pump(&c, &s));
    CHECK_EQ(c.goaways, 2);
    CHECK_EQ(c.goaway_last, 1);
    CHECK(!px_h2_ep_done(s.ep));
    CHECK_EQ(px_h2_ep_stream_state(st), PX_H2_ST_OPEN);
    uint8_t b[10] = {0, 7, 14, 21, 28, 35, 42, 49, 56, 63};
    CHECK_OK(px_h2_ep_submit_data(c.ep, st, b, 10, true, NULL, NULL));
    CHECK_OK(pump(&c, &s));
    rec_t *r = rec_of(&s, 1);
    CHECK_EQ(r->body, 10);
    const nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0}};
    CHECK_OK(px_h2_ep_submit_headers(s.ep, r->st, nv, 1, true));
    CHECK_OK(pump(&c, &s));
    CHECK(r->closed);
    CHECK_EQ(r->close_code, PX_H2_NO_ERROR);
    /* Drained: the server may close now. */
    CHECK(px_h2_ep_done(s.ep));
    CHECK(px_h2_ep_done(c.ep));
    CHECK_EQ(c.fails + s.fails, 0);
    peer_fini(&c);
    peer_fini(&s);
}

TEST(goaway_refuses_unprocessed_client_streams)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    px_h2_ep_stream_t *st[3];
    for (int i = 0; i < 3; i++)
        CHECK_OK(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st[i]));
    CHECK_OK(pump(&c, &s));
    /* A GOAWAY naming stream 1 (as an abrupt shutdown would): 3 and 5 are refused, safe to
     * retry elsewhere; 1 goes on. */
    uint8_t g[PX_H2_FRAME_HD_LEN + 8];
    size_t n = px_h2_write_goaway(g, 1, PX_H2_NO_ERROR, NULL, 0);
    CHECK_OK(px_h2_ep_feed(c.ep, g, n));
    CHECK(rec_of(&c, 3)->closed && rec_of(&c, 5)->closed);
    CHECK_EQ(rec_of(&c, 3)->close_code, PX_H2_REFUSED_STREAM);
    CHECK_EQ(rec_of(&c, 5)->close_code, PX_H2_REFUSED_STREAM);
    CHECK(!rec_of(&c, 1)->closed);
    CHECK_EQ(px_h2_ep_streams_cnt(c.ep), 1);
    CHECK(px_h2_ep_check(c.ep) == NULL);
    peer_fini(&c);
    peer_fini(&s);
}

TEST(resets_both_ways)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    px_h2_ep_stream_t *a, *b;
    REQUIRE(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &a) == 0);
    REQUIRE(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &b) == 0);
    CHECK_OK(pump(&c, &s));
    /* The client cancels stream 1. */
    CHECK_OK(px_h2_ep_submit_rst(c.ep, a, PX_H2_CANCEL));
    CHECK(rec_of(&c, 1)->closed);
    CHECK_EQ(rec_of(&c, 1)->close_code, PX_H2_CANCEL);
    CHECK_OK(pump(&c, &s));
    CHECK_EQ(rec_of(&s, 1)->rsts, 1);
    CHECK_EQ(rec_of(&s, 1)->rst_code, PX_H2_CANCEL);
    CHECK(rec_of(&s, 1)->closed);
    CHECK_EQ(px_h2_ep_counters(s.ep)->rst_recv, 1);
    /* The server refuses stream 3. */
    CHECK_OK(px_h2_ep_submit_rst(s.ep, rec_of(&s, 3)->st, PX_H2_REFUSED_STREAM));
    CHECK_OK(pump(&c, &s));
    CHECK_EQ(rec_of(&c, 3)->rst_code, PX_H2_REFUSED_STREAM);
    CHECK(rec_of(&c, 3)->closed);
    CHECK_EQ(px_h2_ep_streams_cnt(s.ep), 0);
    CHECK_EQ(px_h2_ep_streams_cnt(c.ep), 0);
    /* Late data on the stream the client reset is ignored by the client, no reply. */
    CHECK_EQ(c.fails + s.fails, 0);
    peer_fini(&c);
    peer_fini(&s);
}

TEST(initial_window_lowered_mid_stream_goes_negative)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    c.auto_consume = true;
    size_t len = 200000;
    uint8_t *body = pattern(len);
    REQUIRE(body != NULL);
    px_h2_ep_stream_t *st;
    REQUIRE(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st) == 0);
    CHECK_OK(px_h2_ep_submit_data(c.ep, st, body, len, true, NULL, NULL));
    CHECK_OK(pump(&c, &s));
    CHECK_EQ(px_h2_ep_stream_send_window(st), 0);
    /* The server lowers its stream window to 1,000 while 65,536 bytes sit unconsumed: the
     * client's window becomes 0 + 1,000 - 65,536 (section 6.9.2). */
    px_h2_setting_entry_t e = {PX_H2_SETTINGS_INITIAL_WINDOW_SIZE, 1000};
    CHECK_OK(px_h2_ep_submit_settings(s.ep, &e, 1));
    CHECK_OK(pump(&c, &s));
    CHECK_EQ(px_h2_ep_stream_send_window(st), 1000 - 65536);
    CHECK(px_h2_ep_check(c.ep) == NULL); /* allowed: SETTINGS lowered it */
    rec_t *r = rec_of(&s, 1);
    /* Consuming pays the overdraft off first; the rest then comes 1,000 at a time at most. */
    int rounds = 0;
    size_t max_held = 0;
    while (!r->end_seen && rounds++ < 5000) {
        size_t n = r->unconsumed;
        r->unconsumed = 0;
        px_h2_ep_consume(s.ep, r->st, n);
        CHECK_OK(pump(&c, &s));
        max_held = MEM_MAX(max_held, r->unconsumed);
    }
    CHECK_EQ(r->body, len);
    CHECK(max_held <= 1000);
    CHECK(px_h2_ep_stream_send_window(st) >= 0);
    printf("window 1000 - 65536 = %d after SETTINGS; rest of %zu bytes in %d rounds, at most "
           "%zu held\n",
           1000 - 65536, len, rounds, max_held);
    peer_fini(&c);
    peer_fini(&s);
    mem_free(body);
}

TEST(max_concurrent_streams_both_roles)
{
    px_h2_ep_config_t cfg;
    px_h2_ep_config_default(&cfg, px_alloc_nghttp2_mem());
    cfg.max_concurrent_streams = 2;
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, &cfg) == 0);
    CHECK_OK(pump(&c, &s));
    /* The client honours the server's limit. */
    px_h2_ep_stream_t *st;
    CHECK_OK(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st));
    CHECK_OK(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st));
    CHECK_EQ(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st), -EAGAIN);
    CHECK_OK(pump(&c, &s));
    CHECK_EQ(px_h2_ep_streams_cnt(s.ep), 2);
    peer_fini(&c);
    peer_fini(&s);
}

/* ---- a hand-written client against the server role ------------------------------- */

typedef struct raw_s {
    peer_t s;
    px_h2_hpack_enc_t enc;
    uint8_t buf[1 << 18];
    size_t len;
    size_t data_off; /* DATA bytes sent so far: the payload continues the pattern */
} raw_t;

typedef struct seen_s {
    int frames;
    int rst_cnt;
    int32_t rst_id;
    uint32_t rst_code;
    int goaway_cnt;
    uint32_t goaway_code;
    int32_t goaway_last;
    char goaway_debug[128];
    int settings, settings_acks, ping_acks, headers, data, window_updates;
} seen_t;

/* Parses what the server wrote since the last call. */
static seen_t seen(raw_t *r)
{
    seen_t v;
    memset(&v, 0, sizeof(v));
    const uint8_t *p = r->s.out.buf;
    size_t len = r->s.out.len;
    while (len >= PX_H2_FRAME_HD_LEN) {
        px_h2_frame_hd_t hd;
        px_h2_frame_hd_parse(p, &hd);
        const uint8_t *pay = p + PX_H2_FRAME_HD_LEN;
        MEM_ASSERT(len >= PX_H2_FRAME_HD_LEN + hd.length);
        v.frames++;
        uint32_t code = hd.length >= 8 ? (uint32_t)pay[4] << 24 | (uint32_t)pay[5] << 16 |
                                             (uint32_t)pay[6] << 8 | pay[7]
                                       : 0;
        switch (hd.type) {
        case PX_H2_RST_STREAM:
            v.rst_cnt++;
            v.rst_id = hd.stream_id;
            v.rst_code =
                (uint32_t)pay[0] << 24 | (uint32_t)pay[1] << 16 | (uint32_t)pay[2] << 8 | pay[3];
            break;
        case PX_H2_GOAWAY:
            v.goaway_cnt++;
            v.goaway_code = code;
            v.goaway_last = (int32_t)(((uint32_t)pay[0] & 0x7f) << 24 | (uint32_t)pay[1] << 16 |
                                      (uint32_t)pay[2] << 8 | pay[3]);
            snprintf(v.goaway_debug, sizeof(v.goaway_debug), "%.*s", (int)(hd.length - 8),
                     (const char *)pay + 8);
            break;
        case PX_H2_SETTINGS:
            if (hd.flags & PX_H2_FLAG_ACK)
                v.settings_acks++;
            else
                v.settings++;
            break;
        case PX_H2_PING:
            v.ping_acks += (hd.flags & PX_H2_FLAG_ACK) != 0;
            break;
        case PX_H2_HEADERS:
            v.headers++;
            break;
        case PX_H2_DATA:
            v.data++;
            break;
        case PX_H2_WINDOW_UPDATE:
            v.window_updates++;
            break;
        }
        p += PX_H2_FRAME_HD_LEN + hd.length;
        len -= PX_H2_FRAME_HD_LEN + hd.length;
    }
    r->s.out.len = 0;
    return v;
}

static int raw_init(raw_t *r, const px_h2_ep_config_t *cfg)
{
    memset(r, 0, sizeof(*r));
    int rc = peer_init(&r->s, PX_H2_ROLE_SERVER, cfg);
    if (rc != 0)
        return rc;
    rc = px_h2_hpack_enc_init(&r->enc, px_alloc_nghttp2_mem(), 4096);
    if (rc != 0)
        return rc;
    memcpy(r->buf, PX_H2_PREFACE, PX_H2_PREFACE_LEN);
    r->len = PX_H2_PREFACE_LEN;
    r->len += px_h2_write_settings(r->buf + r->len, NULL, 0, false);
    return 0;
}

static void raw_fini(raw_t *r)
{
    px_h2_hpack_enc_fini(&r->enc);
    peer_fini(&r->s);
}

static void raw_headers(raw_t *r, int32_t id, bool end_stream)
{
    uint8_t block[256];
    ssize_t n = px_h2_hpack_encode(&r->enc, block, sizeof(block), post_nv, 4);
    MEM_ASSERT(n > 0);
    r->len +=
        px_h2_write_block(r->buf + r->len, id, block, (size_t)n, PX_H2_MAX_FRAME_MIN, end_stream);
}

static void raw_data(raw_t *r, int32_t id, size_t len, bool end_stream)
{
    r->len += px_h2_write_data_hd(r->buf + r->len, id, (uint32_t)len, end_stream);
    for (size_t i = 0; i < len; i++)
        r->buf[r->len + i] = (uint8_t)((r->data_off + i) * 7);
    r->data_off += len;
    r->len += len;
}

static void raw_rst(raw_t *r, int32_t id, uint32_t code)
{
    r->len += px_h2_write_rst_stream(r->buf + r->len, id, code);
}

/* Feeds what was written since the last call; returns feed's result. */
static int raw_send(raw_t *r)
{
    int rc = px_h2_ep_feed(r->s.ep, r->buf, r->len);
    r->len = 0;
    if (rc == 0 && px_h2_ep_flush(r->s.ep) != 0)
        rc = -ENOMEM;
    return rc;
}

TEST(bad_preface_gets_goaway)
{
    raw_t r;
    REQUIRE(raw_init(&r, NULL) == 0);
    (void)seen(&r); /* our SETTINGS */
    /* Neither HTTP/2 nor HTTP/1.1 (the proxy sniffs HTTP/1.1 before the codec). */
    const char junk[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not a preface at all";
    CHECK_EQ(px_h2_ep_feed(r.s.ep, (const uint8_t *)junk, sizeof(junk) - 1), -EPROTO);
    seen_t v = seen(&r);
    CHECK_EQ(v.goaway_cnt, 1);
    CHECK_EQ(v.goaway_code, PX_H2_PROTOCOL_ERROR);
    CHECK_STR(v.goaway_debug, "invalid connection preface");
    CHECK_EQ(r.s.fails, 1);
    CHECK(px_h2_ep_done(r.s.ep));
    raw_fini(&r);
}

TEST(first_frame_must_be_settings)
{
    raw_t r;
    REQUIRE(raw_init(&r, NULL) == 0);
    (void)seen(&r);
    r.len = PX_H2_PREFACE_LEN; /* the preface without its SETTINGS */
    uint8_t ping[8] = {0};
    r.len += px_h2_write_ping(r.buf + r.len, ping, false);
    CHECK_EQ(raw_send(&r), -EPROTO);
    seen_t v = seen(&r);
    CHECK_EQ(v.goaway_code, PX_H2_PROTOCOL_ERROR);
    raw_fini(&r);
}

TEST(frames_after_client_rst_are_stream_closed)
{
    raw_t r;
    REQUIRE(raw_init(&r, NULL) == 0);
    (void)seen(&r);
    raw_headers(&r, 1, false);
    raw_rst(&r, 1, PX_H2_CANCEL);
    CHECK_OK(raw_send(&r));
    seen_t v = seen(&r);
    CHECK_EQ(v.rst_cnt, 0); /* never answer a RST_STREAM with one */
    CHECK(rec_of(&r.s, 1)->closed);
    /* DATA after the client's RST_STREAM: stream error STREAM_CLOSED (section 5.1). */
    raw_data(&r, 1, 10, false);
    CHECK_OK(raw_send(&r));
    v = seen(&r);
    CHECK_EQ(v.rst_cnt, 1);
    CHECK_EQ(v.rst_id, 1);
    CHECK_EQ(v.rst_code, PX_H2_STREAM_CLOSED);
    CHECK_EQ(v.goaway_cnt, 0);
    /* So is WINDOW_UPDATE; PRIORITY is not. */
    r.len += px_h2_write_window_update(r.buf + r.len, 1, 100);
    CHECK_OK(raw_send(&r));
    v = seen(&r);
    CHECK_EQ(v.rst_cnt, 1);
    CHECK_EQ(v.rst_code, PX_H2_STREAM_CLOSED);
    px_h2_priority_t pri = {.depends_on = 0, .weight = 15};
    r.len += px_h2_write_priority(r.buf + r.len, 1, &pri);
    CHECK_OK(raw_send(&r));
    v = seen(&r);
    CHECK_EQ(v.frames, 0);
    /* HEADERS too (trailers after the reset): decoded, so the HPACK table stays in step,
     * and answered RST_STREAM(STREAM_CLOSED); the next stream is served. */
    raw_headers(&r, 1, true);
    CHECK_OK(raw_send(&r));
    v = seen(&r);
    CHECK_EQ(v.rst_cnt, 1);
    CHECK_EQ(v.rst_code, PX_H2_STREAM_CLOSED);
    raw_headers(&r, 3, true);
    CHECK_OK(raw_send(&r));
    CHECK(strstr(rec_of(&r.s, 3)->first, ":path: /upload\n") != NULL);
    (void)seen(&r);
    /* A second RST_STREAM is not answered either. */
    raw_rst(&r, 1, PX_H2_CANCEL);
    CHECK_OK(raw_send(&r));
    CHECK_EQ(seen(&r).frames, 0);
    CHECK_EQ(px_h2_ep_counters(r.s.ep)->rst_recv, 2);
    CHECK_EQ(px_h2_ep_counters(r.s.ep)->rst_caused, 3);
    CHECK_EQ(r.s.fails, 0);
    raw_fini(&r);
}

TEST(headers_on_a_normally_closed_stream_is_stream_closed)
{
    raw_t r;
    REQUIRE(raw_init(&r, NULL) == 0);
    r.s.respond = true; /* 200 with END_STREAM: stream 1 closes normally */
    (void)seen(&r);
    raw_headers(&r, 1, true);
    CHECK_OK(raw_send(&r));
    seen_t v = seen(&r);
    CHECK_EQ(v.headers, 1);
    CHECK(rec_of(&r.s, 1)->closed);
    CHECK_EQ(rec_of(&r.s, 1)->close_code, PX_H2_NO_ERROR);
    /* DATA on it: stream error STREAM_CLOSED (section 6.1), the connection goes on. */
    raw_data(&r, 1, 5, false);
    CHECK_OK(raw_send(&r));
    v = seen(&r);
    CHECK_EQ(v.rst_cnt, 1);
    CHECK_EQ(v.rst_code, PX_H2_STREAM_CLOSED);
    /* HEADERS on it: connection error STREAM_CLOSED (sections 5.1, 5.4.1). */
    raw_headers(&r, 1, true);
    CHECK_EQ(raw_send(&r), -EPROTO);
    v = seen(&r);
    CHECK_EQ(v.goaway_cnt, 1);
    CHECK_EQ(v.goaway_code, PX_H2_STREAM_CLOSED);
    CHECK_EQ(v.goaway_last, 1);
    CHECK_STR(v.goaway_debug, "HEADERS on a closed stream");
    raw_fini(&r);
}

TEST(headers_on_a_lower_stream_id)
{
    raw_t r;
    REQUIRE(raw_init(&r, NULL) == 0);
    (void)seen(&r);
    raw_headers(&r, 5, false);
    raw_headers(&r, 3, false);
    CHECK_EQ(raw_send(&r), -EPROTO);
    seen_t v = seen(&r);
    CHECK_EQ(v.goaway_code, PX_H2_PROTOCOL_ERROR);
    CHECK_EQ(v.goaway_last, 5);
    CHECK_STR(v.goaway_debug, "HEADERS on an unexpected stream id");
    raw_fini(&r);
    /* Even ids are the server's. */
    REQUIRE(raw_init(&r, NULL) == 0);
    (void)seen(&r);
    raw_headers(&r, 2, false);
    CHECK_EQ(raw_send(&r), -EPROTO);
    CHECK_EQ(seen(&r).goaway_code, PX_H2_PROTOCOL_ERROR);
    raw_fini(&r);
}

TEST(data_on_idle_stream_and_beyond_windows)
{
    raw_t r;
    REQUIRE(raw_init(&r, NULL) == 0);
    (void)seen(&r);
    raw_data(&r, 7, 1, false);
    CHECK_EQ(raw_send(&r), -EPROTO);
    CHECK_EQ(seen(&r).goaway_code, PX_H2_PROTOCOL_ERROR);
    raw_fini(&r);
    /* Beyond the stream window (65,535 before our SETTINGS' ACK): FLOW_CONTROL_ERROR on the
     * stream. */
    REQUIRE(raw_init(&r, NULL) == 0);
    (void)seen(&r);
    raw_headers(&r, 1, false);
    for (int i = 0; i < 4; i++)
        raw_data(&r, 1, 16384, false);
    raw_data(&r, 1, 1, false);
    CHECK_OK(raw_send(&r));
    seen_t v = seen(&r);
    CHECK_EQ(v.rst_cnt, 1);
    CHECK_EQ(v.rst_code, PX_H2_FLOW_CONTROL_ERROR);
    CHECK(rec_of(&r.s, 1)->closed);
    raw_fini(&r);
}

TEST(continuation_rules)
{
    px_h2_ep_config_t cfg;
    px_h2_ep_config_default(&cfg, px_alloc_nghttp2_mem());
    cfg.max_continuations = 4;
    raw_t r;
    REQUIRE(raw_init(&r, &cfg) == 0);
    (void)seen(&r);
    /* A header block split into HEADERS + 3 CONTINUATION is fine. */
    uint8_t block[256];
    ssize_t n = px_h2_hpack_encode(&r.enc, block, sizeof(block), get_nv, 4);
    REQUIRE(n >= 4);
    r.len += px_h2_write_block(r.buf + r.len, 1, block, 0, PX_H2_MAX_FRAME_MIN, true);
    r.buf[r.len - 9 + 4] &= (uint8_t)~PX_H2_FLAG_END_HEADERS;
    for (int i = 0; i < 4; i++) {
        size_t a = (size_t)n * (size_t)i / 4, b = (size_t)n * (size_t)(i + 1) / 4;
        px_h2_frame_hd_write(r.buf + r.len, (uint32_t)(b - a), PX_H2_CONTINUATION,
                             i == 3 ? PX_H2_FLAG_END_HEADERS : 0, 1);
        memcpy(r.buf + r.len + 9, block + a, b - a);
        r.len += 9 + (b - a);
    }
    /* Cut before the last CONTINUATION: the block is open, as header_timeout sees it. */
    size_t last = 9 + (size_t)n - (size_t)n * 3 / 4;
    CHECK_OK(px_h2_ep_feed(r.s.ep, r.buf, r.len - last));
    CHECK(px_h2_ep_block_open(r.s.ep));
    CHECK(!px_h2_ep_idle(r.s.ep));
    memmove(r.buf, r.buf + r.len - last, last);
    r.len = last;
    CHECK_OK(raw_send(&r));
    CHECK(!px_h2_ep_block_open(r.s.ep));
    CHECK(strstr(rec_of(&r.s, 1)->first, ":path: /\n") != NULL);
    CHECK_EQ(px_h2_ep_counters(r.s.ep)->continuation_in, 4);
    CHECK_EQ(px_h2_ep_counters(r.s.ep)->empty_in, 1);
    (void)seen(&r);
    /* Five CONTINUATION frames pass max_continuations: ENHANCE_YOUR_CALM. */
    r.len += px_h2_write_block(r.buf + r.len, 3, block, 0, PX_H2_MAX_FRAME_MIN, true);
    r.buf[r.len - 9 + 4] &= (uint8_t)~PX_H2_FLAG_END_HEADERS;
    for (int i = 0; i < 5; i++) {
        px_h2_frame_hd_write(r.buf + r.len, 0, PX_H2_CONTINUATION, 0, 3);
        r.len += 9;
    }
    CHECK_EQ(raw_send(&r), -EPROTO);
    seen_t v = seen(&r);
    CHECK_EQ(v.goaway_code, PX_H2_ENHANCE_YOUR_CALM);
    CHECK_STR(v.goaway_debug, "too many CONTINUATION frames");
    raw_fini(&r);
    /* Another frame inside a header block: PROTOCOL_ERROR. */
    REQUIRE(raw_init(&r, NULL) == 0);
    (void)seen(&r);
    r.len += px_h2_write_block(r.buf + r.len, 1, block, 0, PX_H2_MAX_FRAME_MIN, false);
    r.buf[r.len - 9 + 4] &= (uint8_t)~PX_H2_FLAG_END_HEADERS;
    uint8_t ping[8] = {0};
    r.len += px_h2_write_ping(r.buf + r.len, ping, false);
    CHECK_EQ(raw_send(&r), -EPROTO);
    v = seen(&r);
    CHECK_EQ(v.goaway_code, PX_H2_PROTOCOL_ERROR);
    CHECK_STR(v.goaway_debug, "a header block was interrupted");
    raw_fini(&r);
}

TEST(refused_over_the_limit_and_after_goaway)
{
    px_h2_ep_config_t cfg;
    px_h2_ep_config_default(&cfg, px_alloc_nghttp2_mem());
    cfg.max_concurrent_streams = 2;
    raw_t r;
    REQUIRE(raw_init(&r, &cfg) == 0);
    (void)seen(&r);
    raw_headers(&r, 1, false);
    raw_headers(&r, 3, false);
    raw_headers(&r, 5, false);
    CHECK_OK(raw_send(&r));
    seen_t v = seen(&r);
    CHECK_EQ(v.rst_cnt, 1);
    CHECK_EQ(v.rst_id, 5);
    CHECK_EQ(v.rst_code, PX_H2_REFUSED_STREAM);
    CHECK_EQ(px_h2_ep_counters(r.s.ep)->streams_refused, 1);
    CHECK_EQ(px_h2_ep_counters(r.s.ep)->rst_caused, 0); /* a refusal is not the client's error */
    CHECK_EQ(rec_of(&r.s, 5)->blocks, 0);
    /* The HPACK table stayed in step: the next stream decodes. */
    raw_rst(&r, 1, PX_H2_CANCEL);
    raw_headers(&r, 7, true);
    CHECK_OK(raw_send(&r));
    CHECK(strstr(rec_of(&r.s, 7)->first, ":path: /upload\n") != NULL);
    (void)seen(&r);
    /* Shutdown: after the final GOAWAY (last 7), stream 9 is ignored. */
    CHECK_OK(px_h2_ep_shutdown(r.s.ep));
    uint8_t ack[8];
    memcpy(ack, "weirdrn!", 8);
    r.len += px_h2_write_ping(r.buf + r.len, ack, true);
    CHECK_OK(raw_send(&r));
    v = seen(&r);
    CHECK_EQ(v.goaway_cnt, 2);
    CHECK_EQ(v.goaway_last, 7);
    raw_headers(&r, 9, true);
    CHECK_OK(raw_send(&r));
    CHECK_EQ(seen(&r).frames, 0);
    CHECK_EQ(rec_of(&r.s, 9)->blocks, 0);
    raw_fini(&r);
}

TEST(settings_ping_unknown_priority)
{
    raw_t r;
    REQUIRE(raw_init(&r, NULL) == 0);
    seen_t v = seen(&r);
    CHECK_EQ(v.settings, 1);
    CHECK_EQ(v.window_updates, 1); /* the connection window raised to 16 MiB */
    uint8_t ping[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    r.len += px_h2_write_ping(r.buf + r.len, ping, false);
    px_h2_frame_hd_write(r.buf + r.len, 3, 0xfa, 0xff, 0); /* unknown type: ignored */
    r.len += 12;
    px_h2_priority_t pri = {.depends_on = 0, .weight = 15};
    r.len += px_h2_write_priority(r.buf + r.len, 11, &pri);
    CHECK_OK(raw_send(&r));
    v = seen(&r);
    CHECK_EQ(v.settings_acks, 1);
    CHECK_EQ(v.ping_acks, 1);
    CHECK_EQ(v.frames, 2);
    /* PRIORITY on itself is a stream error (section 5.3.1) on an open stream; on an idle
     * one, where no RST_STREAM may go (section 6.4), a connection error, tested below. */
    raw_headers(&r, 13, false);
    pri.depends_on = 13;
    r.len += px_h2_write_priority(r.buf + r.len, 13, &pri);
    CHECK_OK(raw_send(&r));
    v = seen(&r);
    CHECK_EQ(v.rst_cnt, 1);
    CHECK_EQ(v.rst_id, 13);
    CHECK_EQ(v.rst_code, PX_H2_PROTOCOL_ERROR);
    /* Our SETTINGS never acknowledged: SETTINGS_TIMEOUT at the tick past 10 s. */
    r.s.now = 9000;
    CHECK_OK(px_h2_ep_tick(r.s.ep));
    r.s.now = 10001;
    CHECK_EQ(px_h2_ep_tick(r.s.ep), -EPROTO);
    v = seen(&r);
    CHECK_EQ(v.goaway_code, PX_H2_SETTINGS_TIMEOUT);
    raw_fini(&r);
    REQUIRE(raw_init(&r, NULL) == 0);
    (void)seen(&r);
    pri.depends_on = 15;
    r.len += px_h2_write_priority(r.buf + r.len, 15, &pri);
    CHECK_EQ(raw_send(&r), -EPROTO);
    v = seen(&r);
    CHECK_EQ(v.rst_cnt, 0);
    CHECK_EQ(v.goaway_code, PX_H2_PROTOCOL_ERROR);
    raw_fini(&r);
}

static const char *ping_limit(void *ud, const px_h2_frame_hd_t *hd, const px_h2_ep_counters_t *c)
{
    (void)ud;
    /* What the proxy's control_frames_per_second does, here per connection: 10 allowed. */
    if (hd->type == PX_H2_PING && c->ping_in >= 10)
        return "PING flood";
    return NULL;
}

TEST(on_frame_hook_stops_a_flood_frame_by_frame)
{
    px_h2_ep_cbs_t limited = cbs;
    limited.on_frame = ping_limit;
    raw_t r;
    REQUIRE(raw_init(&r, NULL) == 0);
    px_h2_ep_free(r.s.ep); /* again, with the hook */
    r.s.out.len = 0;
    px_h2_ep_config_t cfg;
    px_h2_ep_config_default(&cfg, px_alloc_nghttp2_mem());
    r.s.ep = px_h2_ep_new(r.s.region, PX_H2_ROLE_SERVER, &cfg, &out_ops, &r.s.out, &limited, &r.s);
    REQUIRE(r.s.ep != NULL);
    REQUIRE(px_h2_ep_start(r.s.ep) == 0);
    (void)seen(&r);
    /* 1,000 PINGs in one read: 10 answered, then GOAWAY, nothing after it. */
    uint8_t ping[8] = {0};
    for (int i = 0; i < 1000; i++)
        r.len += px_h2_write_ping(r.buf + r.len, ping, false);
    CHECK_EQ(raw_send(&r), -EPROTO);
    seen_t v = seen(&r);
    CHECK_EQ(v.ping_acks, 10);
    CHECK_EQ(v.goaway_cnt, 1);
    CHECK_EQ(v.goaway_code, PX_H2_ENHANCE_YOUR_CALM);
    CHECK_STR(v.goaway_debug, "PING flood");
    CHECK_EQ(px_h2_ep_counters(r.s.ep)->ping_in, 10);
    CHECK_EQ(px_h2_ep_counters(r.s.ep)->settings_in, 1);
    raw_fini(&r);
}

TEST(idle_endpoint_holds_only_its_state)
{
    uint64_t before = live();
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    s.respond = true;
    uint8_t body[100];
    s.body = body;
    s.respond_body = 0;
    px_h2_ep_stream_t *st;
    CHECK_OK(px_h2_ep_submit_request(c.ep, get_nv, 4, true, NULL, &st));
    CHECK_OK(pump(&c, &s));
    CHECK(rec_of(&c, 1)->closed);
    CHECK(px_h2_ep_idle(s.ep));
    /* For scale: a fresh pair of HPACK contexts (decoder and encoder) alone. */
    uint64_t h0 = live();
    px_h2_hpack_dec_t d;
    px_h2_hpack_enc_t e;
    REQUIRE(px_h2_hpack_dec_init(&d, px_alloc_nghttp2_mem(), 0) == 0);
    REQUIRE(px_h2_hpack_enc_init(&e, px_alloc_nghttp2_mem(), 4096) == 0);
    uint64_t hpack = live() - h0;
    px_h2_hpack_dec_fini(&d);
    px_h2_hpack_enc_fini(&e);
    printf("a fresh HPACK decoder + encoder: %llu bytes live in mem/\n", (unsigned long long)hpack);
    /* After one GET, with the client and both sinks gone: what the idle server endpoint
     * holds (its region's chunk and HPACK's two tables, which hold this request's fields). */
    sink_fini(&s.out);
    peer_fini(&c);
    uint64_t held = live() - before;
    printf("idle server endpoint after one GET: %llu bytes live in mem/ (region %zu, of it "
           "used %zu)\n",
           (unsigned long long)held, mem_region_bytes(s.region), mem_region_bytes_used(s.region));
    CHECK(mem_region_bytes_used(s.region) <= 1024);
    CHECK(px_h2_ep_idle(s.ep));
    peer_fini(&s);
}

/* The decoder goes too, once the peer acknowledges the SETTINGS that holds its encoder to a
 * 0-byte table; the next request makes it again and grants the 4,096-byte table again. Twice,
 * so the second trim finds a state the first left whole. */
TEST(trim_drops_the_decoder_after_the_ack)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    s.respond = true;
    c.auto_consume = true;
    uint8_t *body = pattern(100);
    REQUIRE(body != NULL);
    s.body = body;
    s.respond_body = 100;
    int32_t id = 1;
    for (int round = 0; round < 2; round++) {
        px_h2_ep_stream_t *st;
        CHECK_OK(px_h2_ep_submit_request(c.ep, get_nv, 4, true, NULL, &st));
        CHECK_OK(pump(&c, &s));
        CHECK(rec_of(&c, id)->closed);
        id += 2;
        CHECK(px_h2_ep_idle(s.ep));
        /* The sinks' buffers stay as they are: they are the test's, not the endpoint's. */
        uint64_t before = live();
        CHECK(px_h2_ep_trim(s.ep));
        uint64_t after_trim = live();
        CHECK(!px_h2_ep_trim(s.ep)); /* the SETTINGS waits for its ACK: nothing more to do */
        CHECK_OK(pump(&c, &s));      /* SETTINGS to the client, its ACK back */
        uint64_t after_ack = live();
        printf("round %d: trim gave back %llu bytes (encoder), the ACK %llu more (decoder)\n",
               round, (unsigned long long)(before - after_trim),
               (unsigned long long)(after_trim - after_ack));
        CHECK(before > after_trim);
        CHECK(after_trim > after_ack);
        CHECK(after_trim - after_ack >= 1024 + 128); /* nghttp2's inflater and its ring */
        CHECK(!px_h2_ep_trim(s.ep));                 /* both tables are gone */
        CHECK_EQ(c.fails + s.fails, 0);
        /* Two requests: the first after the trim, the second with the table granted again. */
        for (int i = 0; i < 2; i++) {
            CHECK_OK(px_h2_ep_submit_request(c.ep, get_nv, 4, true, NULL, &st));
            CHECK_OK(pump(&c, &s));
            rec_t *r = rec_of(&c, id);
            id += 2;
            REQUIRE(r != NULL);
            CHECK_STR(r->first, ":status: 200\nserver: weir-test\n");
            CHECK_EQ(r->body, 100);
            CHECK(r->closed);
            CHECK_EQ(c.fails + s.fails, 0);
        }
    }
    peer_fini(&c);
    peer_fini(&s);
    mem_free(body);
}

TEST(memory_per_open_stream)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    CHECK_OK(pump(&c, &s));
    /* 50 requests open on both sides (headers received, bodies to come). */
    uint64_t before = live();
    size_t caps = c.out.cap + s.out.cap;
    for (int i = 0; i < 50; i++) {
        px_h2_ep_stream_t *st;
        CHECK_OK(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st));
    }
    CHECK_OK(pump(&c, &s));
    CHECK_EQ(px_h2_ep_streams_cnt(s.ep), 50);
    /* Both endpoints' streams, less what the sinks grew by. */
    uint64_t held = live() - before - (c.out.cap + s.out.cap - caps);
    printf("50 open streams on both endpoints: %llu bytes, %llu per stream per side (sub-arena, "
           "stream state, the server's decoded fields, table slots)\n",
           (unsigned long long)held, (unsigned long long)(held / 100));
    CHECK(held / 100 <= 5000); /* issue 15: no worse than today's 5.0 KB per h2c stream */
    peer_fini(&c);
    peer_fini(&s);
}

TEST(trim_drops_the_encoder_while_idle)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    s.respond = true;
    c.auto_consume = true;
    uint8_t *body = pattern(1000);
    REQUIRE(body != NULL);
    s.body = body;
    s.respond_body = 1000;
    px_h2_ep_stream_t *st;
    CHECK_OK(px_h2_ep_submit_request(c.ep, get_nv, 4, false, NULL, &st));
    CHECK_OK(pump(&c, &s));
    CHECK(!px_h2_ep_trim(s.ep)); /* a stream is live: nothing to drop */
    CHECK_OK(px_h2_ep_submit_data(c.ep, st, NULL, 0, true, NULL, NULL));
    CHECK_OK(pump(&c, &s));
    CHECK(rec_of(&c, 1)->closed);
    /* Idle: the encoder goes, with its table holding this response's fields. */
    uint64_t before = live();
    CHECK(px_h2_ep_trim(s.ep));
    uint64_t freed = before - live();
    CHECK(!px_h2_ep_trim(s.ep));
    printf("trim of an idle server endpoint after one response: %llu bytes back\n",
           (unsigned long long)freed);
    CHECK(freed >= 2048);
    /* The next responses come from a new encoder whose first block empties the client's
     * table: both decode whole, with the fields the first response indexed. */
    for (int i = 0; i < 2; i++) {
        CHECK_OK(px_h2_ep_submit_request(c.ep, get_nv, 4, true, NULL, &st));
        CHECK_OK(pump(&c, &s));
        rec_t *r = rec_of(&c, 3 + 2 * i);
        CHECK_STR(r->first, ":status: 200\nserver: weir-test\n");
        CHECK_EQ(r->body, 1000);
        CHECK(r->closed);
        CHECK_EQ(c.fails + s.fails, 0);
    }
    peer_fini(&c);
    peer_fini(&s);
    mem_free(body);
}

TEST(out_of_memory_in_the_transport)
{
    peer_t c, s;
    REQUIRE(peer_init(&c, PX_H2_ROLE_CLIENT, NULL) == 0);
    REQUIRE(peer_init(&s, PX_H2_ROLE_SERVER, NULL) == 0);
    CHECK_OK(pump(&c, &s));
    /* A request that cannot be written leaves nothing behind and the id unused. */
    c.out.refuse = true;
    px_h2_ep_stream_t *st;
    CHECK_EQ(px_h2_ep_submit_request(c.ep, get_nv, 4, true, NULL, &st), -ENOMEM);
    CHECK_EQ(px_h2_ep_streams_cnt(c.ep), 0);
    c.out.refuse = false;
    CHECK_OK(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st));
    CHECK_EQ(px_h2_ep_stream_id(st), 1);
    /* DATA that cannot be written stays queued; the next flush sends it. */
    uint8_t *body = pattern(1000);
    REQUIRE(body != NULL);
    CHECK_OK(px_h2_ep_submit_data(c.ep, st, body, 1000, true, on_release, &c.out));
    c.out.refuse = true;
    CHECK_EQ(px_h2_ep_flush(c.ep), -ENOMEM);
    CHECK_EQ(px_h2_ep_stream_queued(st), 1000);
    c.out.refuse = false;
    s.auto_consume = true;
    CHECK_OK(pump(&c, &s));
    CHECK_EQ(rec_of(&s, 1)->body, 1000);
    CHECK_EQ(c.out.releases, 1);
    /* A stream closed with DATA queued releases it. */
    CHECK_OK(px_h2_ep_submit_request(c.ep, post_nv, 4, false, NULL, &st));
    CHECK_OK(px_h2_ep_submit_data(c.ep, st, body, 1000, false, on_release, &c.out));
    CHECK_OK(px_h2_ep_submit_rst(c.ep, st, PX_H2_CANCEL));
    CHECK_EQ(c.out.releases, 2);
    peer_fini(&c);
    peer_fini(&s);
    mem_free(body);
}

int main(void)
{
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        return 1;
    uint64_t before = live();
    RUN(request_response_bodies_larger_than_windows);
    RUN(upload_held_to_the_window_until_consumed);
    RUN(trailers_after_queued_data);
    RUN(trailers_only_response_reaches_the_client);
    RUN(client_role_refuses_push_and_server_streams);
    RUN(goaway_drain_two_steps);
    RUN(goaway_refuses_unprocessed_client_streams);
    RUN(resets_both_ways);
    RUN(initial_window_lowered_mid_stream_goes_negative);
    RUN(max_concurrent_streams_both_roles);
    RUN(bad_preface_gets_goaway);
    RUN(first_frame_must_be_settings);
    RUN(frames_after_client_rst_are_stream_closed);
    RUN(headers_on_a_normally_closed_stream_is_stream_closed);
    RUN(headers_on_a_lower_stream_id);
    RUN(data_on_idle_stream_and_beyond_windows);
    RUN(continuation_rules);
    RUN(refused_over_the_limit_and_after_goaway);
    RUN(settings_ping_unknown_priority);
    RUN(on_frame_hook_stops_a_flood_frame_by_frame);
    RUN(idle_endpoint_holds_only_its_state);
    RUN(memory_per_open_stream);
    RUN(trim_drops_the_encoder_while_idle);
    RUN(trim_drops_the_decoder_after_the_ack);
    RUN(out_of_memory_in_the_transport);
    uint64_t after = live();
    if (after != before) {
        fprintf(stderr, "live bytes %llu before, %llu after\n", (unsigned long long)before,
                (unsigned long long)after);
        th_tests_failed++;
    }
    return TEST_SUMMARY();
}
