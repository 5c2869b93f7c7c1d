/*
 * tests/fuzz/fuzz_downstream.c: fuzzes a downstream connection's HTTP/2 handling in-process:
 * the input is a client's byte stream (the harness prepends the preface when the input does not
 * start with it, so mutations reach frames), fed in chunks whose sizes come from the input into
 * weir's real nghttp2 server glue (proxy/h2/h2.c: px_h2_session_new, px_h2_recv, px_h2_send) and
 * the real mem/ (region, sub-arenas, tcache). No sockets: the connection is a px_conn_t in its
 * own region whose write batch is drained after every send round. The route is the built-in
 * direct response, so complete requests get real answers. At the end the streams and the
 * session are torn down and the region freed; ASan/LSan catch anything left.
 * Thread: one (it is the "worker"). Alloc: region + tcache, as in weir.
 */
#include "mem/base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "proxy/core/conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static px_server_t server;
static px_worker_t worker;
static px_wimpl_t *wimpl;

static void setup(void)
{
    if (wimpl != NULL)
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
    if (uv_loop_init(&worker.loop) != 0)
        abort();
    wimpl = calloc(1, sizeof(*wimpl));
    if (wimpl == NULL)
        abort();
    wimpl->w = &worker;
    worker.impl = wimpl;
    if (uv_idle_init(&worker.loop, &wimpl->idle) != 0 ||
        px_h2_callbacks_new(&wimpl->ng_cbs, &wimpl->ng_opt) != 0)
        abort();
}

/* Drops what weir wrote, as a client that reads everything. Bounded rounds: a session that
 * always wants to write would otherwise spin. */
static int pump(px_conn_t *c)
{
    for (int i = 0; i < 64; i++) {
        if (px_h2_send(c) != 0)
            return -1;
        c->olen = 0;
        c->dirty = false;
        wimpl->dirty = NULL;
        if (!px_h2_want_write(c))
            break;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    mem_region_t *r = mem_region_new(worker.cfg->limits.conn_bytes_max);
    if (r == NULL)
        return 0;
    px_conn_t *c = mem_region_calloc(r, sizeof(*c));
    if (c == NULL) {
        mem_region_free(r);
        return 0;
    }
    c->w = &worker;
    c->wi = wimpl;
    c->region = r;
    c->mode = PX_CONN_H2;
    snprintf(c->peer, sizeof(c->peer), "127.0.0.1:1");
    snprintf(c->peer_ip, sizeof(c->peer_ip), "127.0.0.1");
    if (uv_timer_init(&worker.loop, &c->timer) != 0)
        abort();
    if (px_h2_session_new(c) != 0)
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
        if (px_h2_recv(c, p, n) != 0 || pump(c) != 0)
            dead = true;
        p += n;
        left -= n;
    }
    if (!dead)
        (void)pump(c);
    px_h2_streams_end(c);
    px_h2_session_free(c);
out:
    MEM_ASSERT(c->streams == NULL);
    mem_free(c->obuf);
    c->obuf = NULL;
    uv_close((uv_handle_t *)&c->timer, NULL);
    (void)uv_run(&worker.loop, UV_RUN_NOWAIT); /* completes the close */
    mem_region_free(r);
    return 0;
}
