/*
 * tests/fuzz/fuzz_h1_server.c: fuzzes the HTTP/1.1 server side of a downstream connection
 * in-process (proxy/h1/h1.c: the head scan and line checks, http_parser on the head, the
 * framing decision, the chunked decoder, pipelining, the response writer). The input is a
 * client's byte stream, fed in chunks whose size comes from its first byte (1..256 bytes per
 * read), so that heads, chunk lines and pipelined requests split anywhere. No sockets: the
 * harness is the transport below px_h1_io_t, a 32 KiB write batch from the thread cache that
 * it drains after every read, as a client that reads everything. The route is the built-in
 * direct response, so complete requests get real answers. At the end the request in progress
 * is ended and the region freed; ASan/LSan catch anything left.
 * Thread: one (it is the "worker"). Alloc: region + tcache, as in weir.
 */
#include "mem/base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "proxy/core/server.h"
#include "proxy/h1/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_server_t server;
static px_worker_t worker;
static bool ready;

#define BATCH_BYTES 32768u

typedef struct sink_s {
    uint8_t *buf; /* owns (tcache), allocated on first use as in weir */
    size_t len;
    bool paused;
    unsigned ended;
    unsigned asked; /* admit_request calls: every 8th is refused, so the 503 path runs too */
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
    (void)tr;
}

static void io_read_pause(void *tr, bool pause)
{
    sink_t *k = tr;
    MEM_ASSERT(k->paused != pause);
    k->paused = pause;
}

static bool io_admit_request(void *tr)
{
    sink_t *k = tr;
    return ++k->asked % 8 != 0;
}

static size_t io_local_authority(void *tr, char *buf, size_t cap)
{
    (void)tr;
    return (size_t)snprintf(buf, cap, "127.0.0.1:8080");
}

static void io_state_changed(void *tr)
{
    (void)tr;
}

static void io_request_ended(void *tr, const px_h1_done_t *d)
{
    sink_t *k = tr;
    MEM_ASSERT(d->status == 0 || (d->status >= 100 && d->status <= 999));
    k->ended++;
}

static const px_h1_io_t sink_io = {
    .reserve = io_reserve,
    .commit = io_commit,
    .room = io_room,
    .mark_dirty = io_mark_dirty,
    .read_pause = io_read_pause,
    .admit_request = io_admit_request,
    .local_authority = io_local_authority,
    .state_changed = io_state_changed,
    .request_ended = io_request_ended,
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
    server.cfg = cfg;
    worker.cfg = cfg;
    worker.server = &server;
    worker.overload_level = &server.overload_level;
    if (uv_loop_init(&worker.loop) != 0)
        abort();
    ready = true;
}

/* Drops what weir wrote, as a client that reads everything. Returns -1 once the connection
 * would close. Bounded rounds: a response always makes progress into an empty batch. */
static int pump(px_h1_conn_t *c, sink_t *k)
{
    for (int i = 0; i < 4096; i++) {
        if (px_h1_send(c) != 0)
            return -1;
        bool more = px_h1_want_write(c);
        k->len = 0;
        if (!more)
            break;
    }
    return px_h1_want_close(c) ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    mem_region_t *r = mem_region_new(worker.cfg->limits.conn_bytes_max);
    if (r == NULL)
        return 0;
    px_h1_conn_t *c = mem_region_calloc(r, sizeof(*c));
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
    size_t chunk = size > 0 ? (size_t)data[0] + 1 : 1;
    const uint8_t *p = size > 0 ? data + 1 : data;
    size_t left = size > 0 ? size - 1 : 0;
    px_h1_start(c, NULL, 0);
    bool dead = false;
    while (!dead && left > 0) {
        size_t n = MEM_MIN(chunk, left);
        if (px_h1_recv(c, p, n) != 0 || pump(c, &sink) != 0)
            dead = true;
        p += n;
        left -= n;
    }
    if (!dead)
        (void)pump(c, &sink);
    px_h1_fini(c);
    MEM_ASSERT(c->req == NULL);
    MEM_ASSERT(c->ibuf == NULL);
    mem_free(sink.buf);
    (void)uv_run(&worker.loop, UV_RUN_NOWAIT);
    mem_region_free(r);
    return 0;
}
