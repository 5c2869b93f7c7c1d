/*
 * tests/fuzz/fuzz_h2_session.c: fuzzes the connection of weir's HTTP/2 codec
 * (proxy/codec/endpoint.c) in each role, with the real mem/ (region, stream sub-arenas, thread
 * cache) under it and the layer above played by the harness.
 *
 * Input: byte 0 picks the role and the harness's behaviour (bit 0 client role; bit 1 the
 * layer above consumes DATA at once, else only every third call; bit 2 answers requests with a
 * body; bit 3 starts a graceful shutdown half-way; bit 4 lowers our initial window half-way;
 * bit 5 lets the transport fail every 7th call, as when memory is out; bits 6-7 pick the read
 * sizes; every fourth read the idle trim runs, dropping the encoder when idle). The rest is
 * what the peer sends: for the server role after the client preface and
 * an empty SETTINGS (unless it starts with the preface itself, as the preface cases of the
 * conformance tests do), for the client role after the server's empty SETTINGS, with three
 * requests of ours (one with a body) open. After every read the harness checks the
 * endpoint's invariants (px_h2_ep_check: windows at most 2^31-1 and below zero only after a
 * SETTINGS change, live-stream counts), that every stream's state moved only along RFC
 * 9113's diagram, and at the end that every stream's sub-arena is gone before the region,
 * every payload was released exactly once, and mem/ holds zero live bytes more than before.
 * Thread: one (the "worker"). Alloc: region, sub-arenas, tcache, as in weir.
 */
#include "mem/base.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"
#include "proxy/core/alloc.h"
#include "proxy/codec/endpoint.h"
#include "tests/fuzz/fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECKF(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

#define F_CLIENT   0x01u
#define F_CONSUME  0x02u
#define F_BODY     0x04u
#define F_SHUTDOWN 0x08u
#define F_SHRINK   0x10u
#define F_FAULTS   0x20u

#define TRACK 256 /* stream ids whose states are followed */

typedef struct sink_s {
    uint8_t *buf; /* owns (tcache) */
    size_t len, cap, res;
    unsigned calls;
    bool faults;
} sink_t;

typedef struct harness_s {
    sink_t out;
    px_h2_ep_t *ep;
    unsigned flags;
    uint64_t now;
    unsigned data_calls;
    long submitted; /* payloads handed to the endpoint */
    long released;
    int32_t ids[TRACK];
    uint8_t states[TRACK];
} harness_t;

static uint8_t body[40000];

static uint8_t *io_reserve(void *tr, size_t len)
{
    sink_t *k = tr;
    if (k->faults && ++k->calls % 7 == 0)
        return NULL;
    if (k->len + len > k->cap) {
        /* What a peer that reads everything leaves: the output is dropped as it goes. */
        k->len = 0;
        if (len > k->cap) {
            uint8_t *n = mem_realloc(k->buf, len + 4096);
            if (n == NULL)
                return NULL;
            k->buf = n;
            k->cap = len + 4096;
        }
    }
    k->res = len;
    return k->buf + k->len;
}

static void io_commit(void *tr, size_t len)
{
    sink_t *k = tr;
    CHECKF(len <= k->res);
    k->len += len;
    k->res = 0;
}

static int io_data(void *tr, const uint8_t *hd, const uint8_t *p, size_t len, px_h2_release_fn fn,
                   void *arg)
{
    sink_t *k = tr;
    if (k->faults && ++k->calls % 7 == 0)
        return -ENOMEM;
    CHECKF(hd != NULL);
    CHECKF(p != NULL || len == 0);
    /* The frame header must describe the payload it goes with. */
    CHECKF(((uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2]) == len);
    CHECKF(hd[3] == PX_H2_DATA);
    if (len > 0) {
        volatile uint8_t last = p[len - 1]; /* the payload is readable: ASan checks the borrow */
        (void)last;
    }
    if (fn != NULL)
        fn(arg);
    return 0;
}

static const px_h2_ep_out_t out_ops = {io_reserve, io_commit, io_data};

/* The RFC 9113 5.1 diagram, as weir uses it (no push): may a stream go from `a` to `b`? */
static bool edge(px_h2_state_t a, px_h2_state_t b)
{
    if (a == b)
        return true;
    switch (a) {
    case PX_H2_ST_IDLE:
        return b == PX_H2_ST_OPEN || b == PX_H2_ST_HALF_CLOSED_LOCAL ||
               b == PX_H2_ST_HALF_CLOSED_REMOTE || b == PX_H2_ST_CLOSED;
    case PX_H2_ST_OPEN:
        return b == PX_H2_ST_HALF_CLOSED_LOCAL || b == PX_H2_ST_HALF_CLOSED_REMOTE ||
               b == PX_H2_ST_CLOSED;
    case PX_H2_ST_HALF_CLOSED_LOCAL:
    case PX_H2_ST_HALF_CLOSED_REMOTE:
        return b == PX_H2_ST_CLOSED;
    default:
        return false; /* nothing leaves closed; reserved states are never used */
    }
}

static void track(harness_t *h, px_h2_ep_stream_t *st)
{
    int32_t id = px_h2_ep_stream_id(st);
    px_h2_state_t s = px_h2_ep_stream_state(st);
    CHECKF(s < PX_H2_ST_CNT);
    for (int i = 0; i < TRACK; i++) {
        if (h->ids[i] == id) {
            CHECKF(edge((px_h2_state_t)h->states[i], s));
            h->states[i] = (uint8_t)s;
            return;
        }
        if (h->ids[i] == 0) {
            h->ids[i] = id;
            h->states[i] = (uint8_t)s;
            return;
        }
    }
}

static void on_release(void *arg)
{
    harness_t *h = arg;
    h->released++;
}

static int on_headers(void *ud, px_h2_ep_stream_t *st, const px_h2_block_t *b)
{
    harness_t *h = ud;
    track(h, st);
    for (size_t i = 0; i < b->cnt; i++) {
        CHECKF(b->fields[i].name != NULL && b->fields[i].value != NULL);
        CHECKF(b->fields[i].name[b->fields[i].namelen] == 0);
    }
    /* The layer above keeps its per-stream state in the stream's sub-arena. */
    if (px_h2_ep_stream_ud(st) == NULL)
        px_h2_ep_stream_set_ud(st, mem_subregion_alloc(px_h2_ep_stream_sub(st), 64));
    if (h->flags & F_CLIENT)
        return 0;
    px_h2_state_t s = px_h2_ep_stream_state(st);
    if (s != PX_H2_ST_HALF_CLOSED_REMOTE && s != PX_H2_ST_OPEN)
        return 0;
    static const nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0}};
    bool with_body = (h->flags & F_BODY) != 0;
    int rc = px_h2_ep_submit_headers(h->ep, st, nv, 1, !with_body);
    if (rc == 0 && with_body) {
        rc = px_h2_ep_submit_data(h->ep, st, body, sizeof(body), true, on_release, h);
        if (rc == 0)
            h->submitted++;
    }
    return rc == -EPIPE ? 0 : rc;
}

static int on_data(void *ud, px_h2_ep_stream_t *st, const uint8_t *p, size_t len, bool end)
{
    harness_t *h = ud;
    (void)end;
    track(h, st);
    if (len > 0) {
        volatile uint8_t last = p[len - 1];
        (void)last;
    }
    if ((h->flags & F_CONSUME) || ++h->data_calls % 3 == 0)
        px_h2_ep_consume(h->ep, st, len);
    /* Sometimes the layer above gives up on a stream. */
    if (len == 13)
        return px_h2_ep_submit_rst(h->ep, st, PX_H2_CANCEL) == 0 ? 0 : -ENOMEM;
    return 0;
}

static void on_stream_close(void *ud, px_h2_ep_stream_t *st, uint32_t code)
{
    harness_t *h = ud;
    (void)code;
    CHECKF(px_h2_ep_stream_state(st) == PX_H2_ST_CLOSED);
    track(h, st);
}

static void on_window(void *ud, px_h2_ep_stream_t *st)
{
    harness_t *h = ud;
    track(h, st);
    CHECKF(px_h2_ep_stream_send_window(st) > 0);
}

static uint64_t clock_ms(void *ud)
{
    harness_t *h = ud;
    return h->now;
}

/* The proxy's flood limits, as a per-connection budget. */
static const char *on_frame(void *ud, const px_h2_frame_hd_t *hd, const px_h2_ep_counters_t *c)
{
    (void)ud;
    CHECKF(hd->length <= PX_H2_MAX_FRAME_MAX);
    if (c->settings_in + c->ping_in + c->empty_in + c->rst_caused > 200)
        return "control frame flood";
    if (c->rst_recv > 100)
        return "reset flood";
    return NULL;
}

static const px_h2_ep_cbs_t cbs = {
    .on_frame = on_frame,
    .on_headers = on_headers,
    .on_data = on_data,
    .on_stream_close = on_stream_close,
    .on_window = on_window,
    .now_ms = clock_ms,
};

static void check(harness_t *h)
{
    const char *bad = px_h2_ep_check(h->ep);
    if (bad != NULL) {
        fprintf(stderr, "fuzz_h2_session: %s\n", bad);
        abort();
    }
}

/* Results the harness does not act on: a failure is part of what is fuzzed (gcc's
 * warn_unused_result is not silenced by a cast). */
static void ignore(int rc)
{
    (void)rc;
}

static bool inited;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!inited) {
        CHECKF(mem_init(NULL) == 0 && mem_thread_attach(0) == 0);
        for (size_t i = 0; i < sizeof(body); i++)
            body[i] = (uint8_t)i;
        inited = true;
    }
    if (size < 1)
        return 0;
    uint64_t before = fuzzcheck_live();
    harness_t h;
    memset(&h, 0, sizeof(h));
    h.flags = data[0];
    data++;
    size--;
    bool client = (h.flags & F_CLIENT) != 0;
    mem_region_t *region = mem_region_new(1u << 20);
    CHECKF(region != NULL);
    h.out.cap = 1u << 16;
    h.out.buf = mem_malloc(h.out.cap);
    CHECKF(h.out.buf != NULL);
    px_h2_ep_config_t cfg;
    px_h2_ep_config_default(&cfg, px_alloc_nghttp2_mem());
    cfg.max_concurrent_streams = 8;
    cfg.initial_window = 16384;
    cfg.conn_window = 1u << 20;
    h.ep = px_h2_ep_new(region, client ? PX_H2_ROLE_CLIENT : PX_H2_ROLE_SERVER, &cfg, &out_ops,
                        &h.out, &cbs, &h);
    CHECKF(h.ep != NULL);
    CHECKF(px_h2_ep_start(h.ep) == 0);
    h.out.faults = (h.flags & F_FAULTS) != 0;

    /* What comes before the fuzzed bytes. */
    static const uint8_t empty_settings[9] = {0, 0, 0, PX_H2_SETTINGS, 0, 0, 0, 0, 0};
    int rc = 0;
    if (client) {
        rc = px_h2_ep_feed(h.ep, empty_settings, sizeof(empty_settings));
        static const nghttp2_nv req[] = {
            {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
            {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
            {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
            {(uint8_t *)":authority", (uint8_t *)"f", 10, 1, 0},
        };
        for (int i = 0; i < 3 && rc == 0; i++) {
            px_h2_ep_stream_t *st;
            if (px_h2_ep_submit_request(h.ep, req, 4, i != 1, NULL, &st) != 0)
                continue;
            track(&h, st);
            if (i == 1 &&
                px_h2_ep_submit_data(h.ep, st, body, sizeof(body), true, on_release, &h) == 0)
                h.submitted++;
        }
    } else if (size < PX_H2_PREFACE_LEN || memcmp(data, PX_H2_PREFACE, PX_H2_PREFACE_LEN) != 0) {
        rc = px_h2_ep_feed(h.ep, (const uint8_t *)PX_H2_PREFACE, PX_H2_PREFACE_LEN);
        if (rc == 0)
            rc = px_h2_ep_feed(h.ep, empty_settings, sizeof(empty_settings));
    }
    static const size_t reads[4][4] = {
        {1u << 20, 1u << 20, 1u << 20, 1u << 20}, /* whole */
        {1, 2, 3, 5},
        {9, 7, 100, 17},
        {4096, 13, 16393, 1},
    };
    const size_t *rs = reads[h.flags >> 6];
    size_t off = 0;
    for (unsigned k = 0; rc == 0 && off < size; k++) {
        size_t n = MEM_MIN(rs[k % 4], size - off);
        rc = px_h2_ep_feed(h.ep, data + off, n);
        off += n;
        check(&h);
        if (rc == 0 || rc == -EPROTO)
            ignore(px_h2_ep_flush(h.ep));
        check(&h);
        h.now += 1000;
        (void)px_h2_ep_tick(h.ep);
        if (k % 4 == 1)
            (void)px_h2_ep_trim(h.ep); /* as the proxy's idle timer would */
        if (k == 3 && (h.flags & F_SHUTDOWN))
            ignore(px_h2_ep_shutdown(h.ep));
        if (k == 2 && (h.flags & F_SHRINK)) {
            px_h2_setting_entry_t e = {PX_H2_SETTINGS_INITIAL_WINDOW_SIZE, 100};
            ignore(px_h2_ep_submit_settings(h.ep, &e, 1));
        }
        check(&h);
    }
    ignore(px_h2_ep_flush(h.ep));
    check(&h);

    /* The end: every stream closes, its sub-arena goes, every payload was released once. */
    px_h2_ep_free(h.ep);
    size_t subs = fuzzcheck_subregions(region);
    CHECKF(subs == 0);
    CHECKF(h.released == h.submitted);
    mem_region_free(region);
    mem_free(h.out.buf);
    CHECKF(fuzzcheck_live() == before);
    return 0;
}
