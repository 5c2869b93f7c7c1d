/*
 * tests/fuzz/fuzz_upstream_h1.c: fuzzes weir's HTTP/1.1 upstream response path (proxy/
 * upstream_h1.c: http_parser callbacks, header collection, keep-alive, chunked bodies and
 * trailers, informational responses, close-delimited bodies) through the real upstream module:
 * px_upstream_start on a real worker loop connects over loopback to a listener in this
 * harness, which reads the request and answers with the fuzz input as the response bytes
 * (written in pieces whose size the first input byte picks), then closes. The "downstream" is
 * the callback table, which acknowledges every body byte as h2.c would. Each input ends with
 * the pools closed and the loop drained; no region may stay live and mem/'s live bytes must
 * be back where they were.
 * Thread: one (the worker loop runs in it). Alloc: mem/ via the upstream module.
 */
#include "mem/base.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mem/mem.h"
#include "mem/stats.h"
#define PX_UPSTREAM_INTERNAL 1
#include "proxy/upstream/upstream.h"
#include "proxy/core/alloc.h"
#include "proxy/core/worker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_worker_t g_w;
static px_config_t g_cfg;
static px_cluster_cfg_t g_cl;
static px_addr_t g_ep;
static int g_lfd = -1;
static int g_done;
static px_upstream_req_t *g_r;

/* FUZZ_VERBOSE=1: one line per input saying how the exchange ended (for the smoke test). */
static int g_verbose = -1;

static void say(const char *what, int status)
{
    if (g_verbose < 0)
        g_verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (g_verbose)
        fprintf(stderr, "fuzz_upstream_h1: %s %d\n", what, status);
}

static void on_headers(void *ud, int status, const px_header_t *h, size_t cnt)
{
    (void)ud;
    say("headers", status);
    MEM_ASSERT(status >= 100 && status <= 999);
    for (size_t i = 0; i < cnt; i++)
        MEM_ASSERT(h[i].name != NULL && h[i].value != NULL);
}

static void on_data(void *ud, const uint8_t *data, size_t len)
{
    (void)ud;
    (void)data;
    if (g_r)
        px_upstream_consumed(g_r, len); /* a downstream that sends everything at once */
}

static void on_trailers(void *ud, const px_header_t *h, size_t cnt)
{
    (void)ud;
    (void)h;
    (void)cnt;
}

static void on_end(void *ud)
{
    (void)ud;
    say("end", 0);
    g_r = NULL;
    g_done = 1;
}

static void on_error(void *ud, int status, const char *reason)
{
    (void)ud;
    MEM_ASSERT(status >= 400 && status <= 599);
    MEM_ASSERT(reason != NULL);
    say(reason, status);
    g_r = NULL;
    g_done = 1;
}

static void on_drained(void *ud, size_t len)
{
    (void)ud;
    (void)len;
}

static const px_upstream_cbs_t cbs = {
    .on_response_headers = on_headers,
    .on_response_data = on_data,
    .on_response_trailers = on_trailers,
    .on_response_end = on_end,
    .on_error = on_error,
    .on_request_body_drained = on_drained,
};

static void setup(void)
{
    if (g_lfd >= 0)
        return;
    if (mem_init(NULL) != 0 || uv_loop_init(&g_w.loop) != 0)
        abort();
    g_cfg.limits.stream_buffer_bytes = 65536;
    g_cfg.limits.max_header_list_bytes = 65536;
    g_w.cfg = &g_cfg;
    g_lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);
    if (g_lfd < 0 || bind(g_lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(g_lfd, 16) != 0 || getsockname(g_lfd, (struct sockaddr *)&sin, &sl) != 0)
        abort();
    memset(&g_ep, 0, sizeof(g_ep));
    snprintf(g_ep.host, sizeof(g_ep.host), "127.0.0.1");
    g_ep.port = ntohs(sin.sin_port);
    memcpy(&g_ep.sa, &sin, sizeof(sin));
    g_ep.sa_len = sizeof(sin);
    g_cl.name = "fuzz";
    g_cl.proto = PX_PROTO_HTTP1;
    g_cl.lb = PX_LB_ROUND_ROBIN;
    g_cl.endpoints = &g_ep;
    g_cl.endpoints_cnt = 1;
    g_cl.connect_timeout_ms = 1000;
    g_cl.request_timeout_ms = 2000; /* an input that never completes ends here */
    g_cl.idle_timeout_ms = 60000;
    g_cl.max_streams_per_conn = 1;
    g_cl.max_conns_per_endpoint = 1;
    g_cl.retries_max = 0;
}

static void on_closed(px_worker_t *w)
{
    (void)w;
    g_done = 2;
}

static void turn(void)
{
    uv_update_time(&g_w.loop);
    uv_run(&g_w.loop, UV_RUN_NOWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    mem_stats_t st0, st1;
    mem_stats_snapshot(&st0);
    if (px_upstream_worker_init(&g_w, px_alloc_nghttp2_mem()) != 0)
        abort();
    px_header_t h[] = {{":method", 7, "GET", 3},
                       {":scheme", 7, "http", 4},
                       {":authority", 10, "fuzz", 4},
                       {":path", 5, "/", 1}};
    g_done = 0;
    g_r = NULL;
    if (px_upstream_start(&g_w, &g_cl, h, MEM_ARRAY_LEN(h), true, &cbs, NULL, &g_r) != 0)
        abort();
    size_t piece = size > 0 ? (size_t)data[0] + 1 : 1;
    const uint8_t *p = size > 0 ? data + 1 : data;
    size_t left = size > 0 ? size - 1 : 0;
    int fd = -1;
    uint64_t deadline = uv_now(&g_w.loop) + 5000;
    while (!g_done && uv_now(&g_w.loop) < deadline) {
        turn();
        if (fd < 0) {
            fd = accept4(g_lfd, NULL, NULL, SOCK_NONBLOCK);
            continue;
        }
        char sink[4096];
        while (read(fd, sink, sizeof(sink)) > 0)
            ; /* the request head: not checked here */
        if (left > 0) {
            ssize_t n = write(fd, p, MEM_MIN(piece, left));
            if (n > 0) {
                p += n;
                left -= (size_t)n;
            } else if (n < 0 && errno != EAGAIN) {
                left = 0;
            }
        } else {
            shutdown(fd, SHUT_WR); /* a close-delimited body ends here */
        }
    }
    if (!g_done && g_r)
        px_upstream_cancel(g_r); /* request_timeout bounds this; the deadline is a backstop */
    if (fd >= 0)
        close(fd);
    g_done = 0;
    px_upstream_worker_close(&g_w, on_closed);
    deadline = uv_now(&g_w.loop) + 5000;
    while (g_done != 2 && uv_now(&g_w.loop) < deadline)
        turn();
    if (g_done != 2)
        abort(); /* the pools never finished closing */
    mem_stats_snapshot(&st1);
    if (st1.regions_live != st0.regions_live || st1.live != st0.live)
        abort(); /* a connection region or bytes outlived the exchange */
    return 0;
}
