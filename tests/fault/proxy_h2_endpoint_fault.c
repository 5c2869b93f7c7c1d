/*
 * tests/fault/proxy_h2_endpoint_fault.c: allocation failure inside weir's HTTP/2 codec
 * (proxy/codec/endpoint.c) in both roles.
 *
 * The scenario is a whole exchange in memory: a client-role and a server-role endpoint, each
 * in its own region, three requests (one uploading 100,000 bytes), answered with 100,000
 * bytes each, through 64 KiB windows, then an idle trim and one more request. mem_fault_set
 * (n, 0) is swept over it until it runs with no fault injected, then random faults (1 in N)
 * are tried. Every failure must surface as -ENOMEM or -EPROTO from the codec (never a crash),
 * and after each run every region, sub-arena and byte is gone and every DATA payload handed
 * to the codec was released exactly once.
 */
#include "mem/base.h"

#include <inttypes.h>
#include <string.h>

#include "mem/heapprof.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"
#include "proxy/core/alloc.h"
#include "proxy/codec/endpoint.h"
#include "tests/harness.h"

#define BODY_LEN 100000u

static uint8_t body[BODY_LEN];
static long submitted, released;

typedef struct sink_s {
    uint8_t *buf; /* owns (tcache) */
    size_t len, cap;
} sink_t;

typedef struct side_s {
    mem_region_t *region;
    px_h2_ep_t *ep;
    sink_t out;
    bool server;
    int done; /* streams that ended with NO_ERROR */
} side_t;

static bool grow(sink_t *k, size_t need)
{
    if (k->len + need <= k->cap)
        return true;
    size_t cap = k->cap == 0 ? 8192 : k->cap;
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
    return grow(k, len) ? k->buf + k->len : NULL;
}

static void io_commit(void *tr, size_t len)
{
    sink_t *k = tr;
    k->len += len;
}

static int io_data(void *tr, const uint8_t *hd, const uint8_t *p, size_t len, px_h2_release_fn fn,
                   void *arg)
{
    sink_t *k = tr;
    if (!grow(k, PX_H2_FRAME_HD_LEN + len))
        return -ENOMEM;
    memcpy(k->buf + k->len, hd, PX_H2_FRAME_HD_LEN);
    if (len > 0)
        memcpy(k->buf + k->len + PX_H2_FRAME_HD_LEN, p, len);
    k->len += PX_H2_FRAME_HD_LEN + len;
    if (fn != NULL)
        fn(arg);
    return 0;
}

static const px_h2_ep_out_t out_ops = {io_reserve, io_commit, io_data};

static void on_release(void *arg)
{
    (void)arg;
    released++;
}

static int on_headers(void *ud, px_h2_ep_stream_t *st, const px_h2_block_t *b)
{
    side_t *s = ud;
    if (!s->server || b->cnt == 0)
        return 0;
    static const nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0}};
    int rc = px_h2_ep_submit_headers(s->ep, st, nv, 1, false);
    if (rc != 0)
        return rc;
    rc = px_h2_ep_submit_data(s->ep, st, body, BODY_LEN, true, on_release, NULL);
    if (rc == 0)
        submitted++;
    return rc;
}

static int on_data(void *ud, px_h2_ep_stream_t *st, const uint8_t *p, size_t len, bool end)
{
    side_t *s = ud;
    (void)p;
    (void)end;
    px_h2_ep_consume(s->ep, st, len);
    return 0;
}

static void on_stream_close(void *ud, px_h2_ep_stream_t *st, uint32_t code)
{
    side_t *s = ud;
    (void)st;
    s->done += code == PX_H2_NO_ERROR;
}

static const px_h2_ep_cbs_t cbs = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_stream_close = on_stream_close,
};

static int side_new(side_t *s, bool server)
{
    memset(s, 0, sizeof(*s));
    s->server = server;
    s->region = mem_region_new(1u << 22);
    if (s->region == NULL)
        return -ENOMEM;
    px_h2_ep_config_t cfg;
    px_h2_ep_config_default(&cfg, px_alloc_nghttp2_mem());
    s->ep = px_h2_ep_new(s->region, server ? PX_H2_ROLE_SERVER : PX_H2_ROLE_CLIENT, &cfg, &out_ops,
                         &s->out, &cbs, s);
    if (s->ep == NULL)
        return -ENOMEM;
    return px_h2_ep_start(s->ep);
}

static void side_free(side_t *s)
{
    px_h2_ep_free(s->ep);
    mem_free(s->out.buf);
    mem_region_free(s->region);
}

static int move(side_t *from, side_t *to)
{
    if (from->out.len == 0)
        return 0;
    int rc = px_h2_ep_feed(to->ep, from->out.buf, from->out.len);
    from->out.len = 0;
    return rc;
}

static int pump(side_t *c, side_t *s)
{
    for (int round = 0; round < 1000; round++) {
        int rc = px_h2_ep_flush(c->ep);
        if (rc == 0)
            rc = px_h2_ep_flush(s->ep);
        if (rc != 0)
            return rc;
        if (c->out.len == 0 && s->out.len == 0)
            return 0;
        if ((rc = move(c, s)) != 0 || (rc = move(s, c)) != 0)
            return rc;
    }
    return -ELOOP;
}

static const nghttp2_nv req[] = {
    {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
    {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
    {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
    {(uint8_t *)":authority", (uint8_t *)"weir.test", 10, 9, 0},
};

/* Returns 0 when the whole exchange completed, else the first error. */
static int scenario(void)
{
    side_t c, s;
    int rc = side_new(&c, false);
    int rs = side_new(&s, true);
    if (rc == 0)
        rc = rs;
    for (int i = 0; i < 3 && rc == 0; i++) {
        px_h2_ep_stream_t *st;
        rc = px_h2_ep_submit_request(c.ep, req, 4, i != 1, NULL, &st);
        if (rc == 0 && i == 1) {
            rc = px_h2_ep_submit_data(c.ep, st, body, BODY_LEN, true, on_release, NULL);
            if (rc == 0)
                submitted++;
        }
    }
    if (rc == 0)
        rc = pump(&c, &s);
    if (rc == 0 && c.done != 3)
        rc = -EIO; /* a stream ended without an error code from us: a lost response */
    if (rc == 0) {
        (void)px_h2_ep_trim(s.ep);
        px_h2_ep_stream_t *st;
        rc = px_h2_ep_submit_request(c.ep, req, 4, true, NULL, &st);
        if (rc == 0)
            rc = pump(&c, &s);
        if (rc == 0 && c.done != 4)
            rc = -EIO;
    }
    if (c.region != NULL)
        side_free(&c);
    if (s.region != NULL)
        side_free(&s);
    return rc;
}

static bool clean(uint64_t base_live)
{
    mem_stats_t st;
    mem_thread_flush();
    mem_stats_snapshot(&st);
    bool ok = st.regions_live == 0 && st.subregions_live == 0 && st.live == base_live &&
              submitted == released;
    if (!ok)
        fprintf(stderr,
                "not clean: regions %" PRIu64 " subregions %" PRIu64 " live %" PRIu64
                " (base %" PRIu64 ") payloads %ld submitted, %ld released\n",
                st.regions_live, st.subregions_live, st.live, base_live, submitted, released);
    return ok;
}

static uint64_t base(void)
{
    mem_stats_t st;
    mem_thread_flush();
    mem_stats_snapshot(&st);
    return st.live;
}

TEST(sweep_nth)
{
    uint64_t base_live = base();
    int failures = 0, runs = 0;
    bool done = false;
    size_t saved = mem_heapprof_interval();
    mem_heapprof_set_interval(0);
    for (uint64_t n = 1; n <= 5000 && !done; n++) {
        /* An empty cache, so the scenario's allocations take the slow paths that fail. */
        mem_thread_flush();
        uint64_t before = mem_fault_injected();
        mem_fault_set(n, 0);
        int rc = scenario();
        mem_fault_set(0, 0);
        uint64_t injected = mem_fault_injected() - before;
        runs++;
        if (rc != 0) {
            failures++;
            CHECK(injected > 0); /* a failure without an injected fault is a real bug */
            CHECK(rc == -ENOMEM || rc == -EPROTO || rc == -EIO);
        } else if (injected == 0) {
            done = true;
        }
        CHECK(clean(base_live));
    }
    mem_heapprof_set_interval(saved);
    fprintf(stderr, "sweep: %d runs, %d failed with an injected fault\n", runs, failures);
    CHECK(done);
    CHECK(failures > 0);
}

TEST(random_faults)
{
    uint64_t base_live = base();
    int failures = 0;
    for (int i = 0; i < 200; i++) {
        mem_thread_flush();
        mem_fault_set(0, 20);
        int rc = scenario();
        mem_fault_set(0, 0);
        failures += rc != 0;
        CHECK(clean(base_live));
    }
    fprintf(stderr, "random: %d of 200 runs failed\n", failures);
    CHECK_OK(scenario());
    CHECK(clean(base_live));
}

int main(void)
{
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        return 1;
    RUN(sweep_nth);
    RUN(random_faults);
    return TEST_SUMMARY();
}
