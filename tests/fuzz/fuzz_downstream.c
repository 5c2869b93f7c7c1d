/*
 * tests/fuzz/fuzz_downstream.c: fuzzes a downstream connection's HTTP/2 handling in-process:
 * the input is a client's byte stream (the harness prepends the preface when the input does not
 * start with it, so mutations reach frames), fed in chunks whose sizes come from the input into
 * weir's real server glue (proxy/h2/serve.c and h2.c: px_h2_session_new, px_h2_recv,
 * px_h2_send on weir's own codec), and the real mem/ (region, sub-arenas, tcache). No sockets: the
 * harness is the transport below the px_h2_io_t table (proxy/h2/h2.h), a 32 KiB write batch from
 * the thread cache that it drains after every send round, as a client that reads everything. The
 * route is the built-in direct response, so complete requests get real answers. After every
 * read and every send round the codec's invariants hold (px_h2_ep_check: windows at most
 * 2^31-1 and below zero only after a SETTINGS change, the live-stream counts). At the end the
 * streams and the session are torn down, every stream's sub-arena is gone before the region
 * is freed, and mem/ holds zero live bytes more than before the input; ASan/LSan catch the
 * rest.
 * Thread: one (it is the "worker"). Alloc: region + tcache, as in weir.
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
#include "proxy/codec/endpoint.h"
#include "tests/fuzz/fuzzcheck.h"
#include "proxy/core/alloc.h"
#include "proxy/core/server.h"
#include "proxy/h2/h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static px_server_t server;
static px_worker_t worker;
static bool ready;

#define BATCH_BYTES 32768u

/* The transport: one write batch, what weir's connection has (proxy/core/conn.c). */
typedef struct sink_s {
    uint8_t *buf; /* owns (tcache), allocated on first use as in weir */
    size_t len;
    bool dirty;
} sink_t;

static uint8_t *io_reserve(void *tr, size_t len)
{
    sink_t *k = tr;
    if (len > BATCH_BYTES - k->len)
        return NULL;
    if (k->buf == NULL && (k->buf = mem_malloc(BATCH_BYTES)) == NULL)
        return NULL;
    return k->buf + k->len;
}

static void io_commit(void *tr, size_t len)
{
    sink_t *k = tr;
    MEM_ASSERT(k->len + len <= BATCH_BYTES);
    k->len += len;
}

static size_t io_room(const void *tr)
{
    const sink_t *k = tr;
    return BATCH_BYTES - k->len;
}

static void io_mark_dirty(void *tr)
{
    ((sink_t *)tr)->dirty = true;
}

/* No overload here: every stream is admitted, as at NORMAL. */
static bool io_admit_stream(void *tr)
{
    (void)tr;
    return true;
}

static void io_streams_changed(void *tr)
{
    (void)tr;
}

static void io_stream_ended(void *tr, const px_stream_t *st)
{
    (void)tr;
    MEM_ASSERT(st->sub != NULL);
}

static const px_h2_io_t sink_io = {
    .reserve = io_reserve,
    .commit = io_commit,
    .room = io_room,
    .mark_dirty = io_mark_dirty,
    .admit_stream = io_admit_stream,
    .streams_changed = io_streams_changed,
    .stream_ended = io_stream_ended,
};

static void setup(void)
{
    if (ready)
        return;
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        abort();
    px_config_t *cfg = NULL;
    if (px_config_default(&cfg) != 0)
        abort();
    /* Timeouts never fire here (the loop does not run); limits stay at their defaults. */
    server.cfg = cfg;
    worker.cfg = cfg;
    worker.server = &server;
    worker.overload_level = &server.overload_level;
    if (uv_loop_init(&worker.loop) != 0)
        abort();
    ready = true;
}

/* The codec's invariants, after every read and every send round. */
static void check(const px_h2_conn_t *c)
{
    const char *bad = c->ep != NULL ? px_h2_ep_check(c->ep) : NULL;
    if (bad != NULL) {
        fprintf(stderr, "fuzz_downstream: %s\n", bad);
        abort();
    }
}

/* Drops what weir wrote, as a client that reads everything. Bounded rounds: a session that
 * always wants to write would otherwise spin. */
static int pump(px_h2_conn_t *c, sink_t *k)
{
    for (int i = 0; i < 64; i++) {
        int rc = px_h2_send(c);
        check(c);
        if (rc != 0)
            return -1;
        k->len = 0;
        k->dirty = false;
        if (!px_h2_want_write(c))
            break;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    uint64_t before = fuzzcheck_live();
    mem_region_t *r = mem_region_new(worker.cfg->limits.conn_bytes_max);
    if (r == NULL)
        return 0;
    px_h2_conn_t *c = mem_region_calloc(r, px_h2_conn_size()); /* with its endpoint after it */
    if (c == NULL) {
        mem_region_free(r);
        return 0;
    }
    sink_t sink = {0};
    c->w = &worker;
    c->region = r;
    c->peer_ip = "127.0.0.1";
    c->tr = &sink;
    c->io = &sink_io;
    if (px_h2_session_new(c, px_alloc_nghttp2_mem()) != 0)
        goto out;
    /* The first byte chooses the chunking (1..256 bytes per read) so that frame boundaries
     * fall anywhere; without the preface, it is added. */
    size_t chunk = size > 0 ? (size_t)data[0] + 1 : 1;
    const uint8_t *p = size > 0 ? data + 1 : data;
    size_t left = size > 0 ? size - 1 : 0;
    bool dead = false;
    if (left < sizeof(preface) - 1 || memcmp(p, preface, sizeof(preface) - 1) != 0)
        dead = px_h2_recv(c, preface, sizeof(preface) - 1) != 0;
    while (!dead && left > 0) {
        size_t n = MEM_MIN(chunk, left);
        int rc = px_h2_recv(c, p, n);
        check(c);
        if (rc != 0 || pump(c, &sink) != 0)
            dead = true;
        p += n;
        left -= n;
    }
    if (!dead)
        (void)pump(c, &sink);
    px_h2_streams_end(c);
out:
    px_h2_session_free(c);
    MEM_ASSERT(c->streams == NULL);
    mem_free(sink.buf);
    (void)uv_run(&worker.loop, UV_RUN_NOWAIT);
    /* Every stream's sub-arena is gone before its connection's region. */
    size_t subs = fuzzcheck_subregions(r);
    if (subs != 0)
        abort();
    mem_region_free(r);
    if (fuzzcheck_live() != before)
        abort(); /* bytes outlived the connection */
    return 0;
}
