/*
 * tests/fuzz/fuzz_upstream_h2w.c: fuzzes weir's h2c upstream on its own codec (proxy/upstream/
 * h2w.c on the client role of proxy/codec/endpoint: response header blocks across
 * CONTINUATION, informational heads, DATA and its flow control, trailers, RST_STREAM, GOAWAY,
 * SETTINGS, PING, WINDOW_UPDATE) through the real upstream module, as fuzz_upstream_h1 does for
 * HTTP/1.1: px_upstream_start on a real worker loop connects over
 * loopback to a listener in this harness, which reads weir's preface and requests and answers
 * with an empty SETTINGS frame and then the fuzz input as the server's bytes (written in pieces
 * whose size the first input byte picks), then closes. Two exchanges run at once (streams 1 and
 * 3); the "downstream" acknowledges every body byte as h2.c would. After every turn of the loop
 * the connection's endpoint must pass px_h2_ep_check (windows, stream counts and states); each
 * input ends with the pools closed and the loop drained, no region and no stream sub-arena
 * live and mem/'s live bytes back where they were. Seeds (corpus/fuzz_upstream_h2w/): well-formed
 * answers of each kind. Thread: one (the worker loop runs in it). Alloc: mem/ via the upstream
 * module.
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
static int g_done;    /* exchanges finished */
static bool g_closed; /* the pools closed */
#define N_EX 2
static px_upstream_req_t *g_r[N_EX];

/* FUZZ_VERBOSE=1: one line per input saying how the exchange ended (for the smoke test). */
static int g_verbose = -1;

static void say(const char *what, int status)
{
    if (g_verbose < 0)
        g_verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (g_verbose)
        fprintf(stderr, "fuzz_upstream_h2w: %s %d\n", what, status);
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
    size_t i = (size_t)(uintptr_t)ud;
    (void)data;
    if (g_r[i])
        px_upstream_consumed(g_r[i], len); /* a downstream that sends everything at once */
}

static void on_trailers(void *ud, const px_header_t *h, size_t cnt)
{
    (void)ud;
    (void)h;
    (void)cnt;
}

static void on_end(void *ud)
{
    say("end", 0);
    g_r[(size_t)(uintptr_t)ud] = NULL;
    g_done++;
}

static void on_error(void *ud, int status, const char *reason)
{
    MEM_ASSERT(status >= 400 && status <= 599);
    MEM_ASSERT(reason != NULL);
    say(reason, status);
    g_r[(size_t)(uintptr_t)ud] = NULL;
    g_done++;
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
    g_cfg.limits.max_continuations = 8;
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
    g_cl.proto = PX_PROTO_H2C;
    g_cl.lb = PX_LB_ROUND_ROBIN;
    g_cl.endpoints = &g_ep;
    g_cl.endpoints_cnt = 1;
    g_cl.connect_timeout_ms = 1000;
    g_cl.request_timeout_ms = 500; /* an input that never completes ends here */
    g_cl.idle_timeout_ms = 60000;
    g_cl.max_streams_per_conn = 4;
    g_cl.max_conns_per_endpoint = 1;
    g_cl.retries_max = 0;
}

static void on_closed(px_worker_t *w)
{
    (void)w;
    g_closed = true;
}

static void turn(void)
{
    uv_update_time(&g_w.loop);
    uv_run(&g_w.loop, UV_RUN_NOWAIT);
    /* The endpoint's invariants hold between any two turns. */
    px_upstream_pools_t *p = g_w.upstream;
    if (p == NULL || p->clusters == NULL)
        return;
    px_uplink_t *head = &p->clusters->eps[0].conns;
    for (px_uplink_t *l = head->next; l != head; l = l->next) {
        px_upconn_t *c = MEM_CONTAINER_OF(l, px_upconn_t, link);
        const char *bad = c->h2w ? px_h2_ep_check(c->h2w) : NULL;
        if (bad != NULL) {
            fprintf(stderr, "fuzz_upstream_h2w: %s\n", bad);
            abort();
        }
    }
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
    /* Connections a previous input's retries left in the backlog (weir closed them since)
     * must not stand in for this input's. */
    for (int x; (x = accept4(g_lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0;)
        close(x);
    g_done = 0;
    for (size_t i = 0; i < N_EX; i++) {
        g_r[i] = NULL;
        if (px_upstream_start(&g_w, &g_cl, h, MEM_ARRAY_LEN(h), true, &cbs, (void *)(uintptr_t)i,
                              &g_r[i]) != 0)
            abort();
    }
    /* The server's SETTINGS (empty) go first, so that the input starts with the answers. */
    static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    bool settings_sent = false;
    size_t piece = size > 0 ? (size_t)data[0] + 1 : 1;
    const uint8_t *p = size > 0 ? data + 1 : data;
    size_t left = size > 0 ? size - 1 : 0;
    int fd = -1;
    uint64_t deadline = uv_now(&g_w.loop) + 5000;
    while (g_done < N_EX && uv_now(&g_w.loop) < deadline) {
        turn();
        if (fd < 0) {
            fd = accept4(g_lfd, NULL, NULL, SOCK_NONBLOCK);
            continue;
        }
        char sink[4096];
        while (read(fd, sink, sizeof(sink)) > 0)
            ; /* the preface and requests: not checked here */
        if (!settings_sent) {
            settings_sent =
                send(fd, settings, sizeof(settings), MSG_NOSIGNAL) == (ssize_t)sizeof(settings);
            continue;
        }
        if (left > 0) {
            ssize_t n = send(fd, p, MEM_MIN(piece, left), MSG_NOSIGNAL); /* weir may have closed */
            if (n > 0) {
                p += n;
                left -= (size_t)n;
            } else if (n < 0 && errno != EAGAIN) {
                left = 0;
            }
        } else {
            shutdown(fd, SHUT_WR); /* the upstream goes away: what is open is lost */
        }
    }
    for (size_t i = 0; i < N_EX; i++)
        if (g_r[i])
            px_upstream_cancel(g_r[i]); /* request_timeout bounds this; a backstop */
    if (fd >= 0)
        close(fd);
    g_closed = false;
    px_upstream_worker_close(&g_w, on_closed);
    deadline = uv_now(&g_w.loop) + 5000;
    while (!g_closed && uv_now(&g_w.loop) < deadline)
        turn();
    if (!g_closed)
        abort(); /* the pools never finished closing */
    mem_stats_snapshot(&st1);
    if (st1.regions_live != st0.regions_live || st1.subregions_live != st0.subregions_live ||
        st1.live != st0.live)
        abort(); /* a connection region, a stream's sub-arena or bytes outlived the exchange */
    return 0;
}
