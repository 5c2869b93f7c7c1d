/*
 * proxy/h2/h2.c: the stream logic of a downstream HTTP/2 connection, above weir's codec
 * (proxy/h2/serve.c drives proxy/codec/endpoint.h): stream lifecycle, request headers and
 * body, routing (through proxy/upstream/dispatch.h, which HTTP/1.1 shares), direct and error
 * responses, the upstream exchange and end-to-end flow control.
 *
 * Flow control: the codec opens no window by itself. Request DATA is consumed (window reopened)
 * only when the upstream has taken it (on_request_body_drained), or at once when nobody will
 * read it. Response DATA sits in the stream's bounded buffer until serve.c hands its chunks to
 * the codec, which writes them into the room the transport reserves in its write batch; then
 * px_upstream_consumed() lets the upstream send more. The transport is reached only through
 * the px_h2_io_t table (proxy/h2/h2.h). Thread: the connection's worker only.
 */
#include "proxy/h2/h2.h"
#include "mem/base.h"

#include <string.h>

#include "mem/subregion.h"
#include "proxy/config/config.h"
#include "proxy/h2/internal.h"
#include "proxy/h2/stream.h"
#include "proxy/upstream/dispatch.h"
#include "proxy/upstream/forward.h"
#include "proxy/upstream/http.h"
#include "proxy/upstream/tenant.h"
#include "proxy/upstream/upstream.h"

#define NV(n, v, vl)                                                                               \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl),                                       \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

static inline void mark_dirty(px_h2_conn_t *c)
{
    c->io->mark_dirty(c->tr);
}

static inline void streams_changed(px_h2_conn_t *c)
{
    c->io->streams_changed(c->tr);
}

void px__h2_reset(px_stream_t *st, uint32_t code)
{
    if (st->phase == PX_PHASE_RESET || st->phase == PX_PHASE_CLOSED)
        return;
    /* A head still queued never goes out: off the queue, which holds only queued heads. */
    if (st->phase == PX_PHASE_RESPONSE_QUEUED)
        px__h2w_unqueue(st);
    px_stream_set_phase(st, PX_PHASE_RESET);
    MEM_STAT_ADD(st->conn->w->stats.streams_reset_by_us, 1);
    px__h2w_reset(st, code); /* st may be freed (the codec's path) */
}

/* ---- response body: data provider ---------------------------------------------------- */

/* Submits response headers with a body from the stream buffer. `extra` are borrowed. */
static int submit_response(px_stream_t *st, int status, const nghttp2_nv *extra, size_t cnt,
                           bool body)
{
    px_h2_conn_t *c = st->conn;
    MEM_ASSERT(st->phase == PX_PHASE_WAITING_UPSTREAM);
    MEM_ASSERT(status >= 100 && status <= 999);
    nghttp2_nv *nva = mem_subregion_alloc(st->sub, sizeof(nghttp2_nv) * (cnt + 1));
    if (nva == NULL)
        return -ENOMEM;
    snprintf(st->status_str, sizeof(st->status_str), "%d", status);
    nva[0] = (nghttp2_nv)NV(":status", st->status_str, 3);
    if (cnt)
        memcpy(nva + 1, extra, cnt * sizeof(nghttp2_nv));
    if (st->head)
        body = false;
    /* The head is queued (phase RESPONSE_QUEUED) and written at the next send. */
    st->status = status;
    if (px__h2w_respond(st, nva, cnt + 1, body) != 0) {
        st->status = 0;
        return -ENOMEM;
    }
    px_http_count_status(&c->w->stats, status);
    mark_dirty(c);
    return 0;
}

/* Answers from memory: direct_response routes, 404 and upstream errors. `body` is borrowed
 * and must outlive the stream (config or static). */
void px__h2_respond_static(px_stream_t *st, int status, const char *ctype, const char *body,
                           size_t len)
{
    snprintf(st->clen_str, sizeof(st->clen_str), "%zu", len);
    nghttp2_nv nva[] = {
        NV("content-type", ctype, strlen(ctype)),
        NV("content-length", st->clen_str, strlen(st->clen_str)),
    };
    st->static_body = (const uint8_t *)body;
    st->static_len = len;
    st->static_off = 0;
    st->resp_done = true;
    if (submit_response(st, status, nva, MEM_ARRAY_LEN(nva), len > 0) != 0)
        px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
}

/* Answers `status` with the body "weir: <why>\n" (`why` static or outliving the stream). */
static void respond_reason(px_stream_t *st, int status, const char *why)
{
    MEM_ASSERT(why != NULL);
    size_t wl = strlen(why);
    char *body = mem_subregion_alloc(st->sub, wl + 8);
    if (body == NULL) {
        px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    int n = snprintf(body, wl + 8, "weir: %s\n", why);
    px__h2_respond_static(st, status, "text/plain", body, (size_t)n);
}

/* ---- upstream exchange callbacks ------------------------------------------------------ */

static void on_up_headers(void *ud, int status, const px_header_t *hdrs, size_t cnt)
{
    px_stream_t *st = ud;
    st->progress_ms = uv_now(&st->conn->w->loop);
    if (st->phase == PX_PHASE_RESET)
        return; /* reset (shed, over its buffer) before its head came: the reset goes out */
    nghttp2_nv *nva = mem_subregion_alloc(st->sub, sizeof(nghttp2_nv) * (cnt + 1));
    size_t n = 0;
    if (nva == NULL)
        goto fail;
    for (size_t i = 0; i < cnt; i++) {
        const px_header_t *h = &hdrs[i];
        if (px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len))
            continue;
        /* Borrowed for this call only: nghttp2 copies them (no NO_COPY flags). */
        nva[n++] = (nghttp2_nv){(uint8_t *)h->name, (uint8_t *)h->value, h->name_len, h->value_len,
                                NGHTTP2_NV_FLAG_NONE};
    }
    MEM_ASSERT(status >= 200 && status <= 999); /* 1xx come through on_up_info */
    /* A head that is the whole response (gRPC's trailers-only form, which carries every gRPC
     * error status) goes on as one HEADERS frame with END_STREAM: sent as HEADERS plus an
     * empty DATA frame, gRPC clients take grpc-status for an initial header and the stream for
     * one that ended without trailers ("Stream removed"). */
    bool body = st->up == NULL || !px_upstream_response_head_only(st->up);
    if (submit_response(st, status, nva, n, body) != 0)
        goto fail;
    return;
fail:
    MEM_STAT_ADD(st->conn->w->stats.stream_cap_resets, 1);
    px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
}

/* Header fields passed on with an informational response; one with more is dropped. */
#define INFO_HEADERS_MAX 32

/* An informational (1xx) head from the upstream (100 Continue, 103 Early Hints): passed to
 * the client as a HEADERS frame of its own, before the final response (RFC 9113 section 8.1).
 * nghttp2 copies the fields at submit, so the list is built on the stack. */
static void on_up_info(void *ud, int status, const px_header_t *hdrs, size_t cnt)
{
    px_stream_t *st = ud;
    st->progress_ms = uv_now(&st->conn->w->loop);
    if (st->phase != PX_PHASE_WAITING_UPSTREAM || cnt > INFO_HEADERS_MAX)
        return;
    char code[4];
    snprintf(code, sizeof(code), "%d", status);
    nghttp2_nv nva[INFO_HEADERS_MAX + 1];
    nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
    size_t n = 1;
    for (size_t i = 0; i < cnt; i++)
        nva[n++] = (nghttp2_nv){(uint8_t *)hdrs[i].name, (uint8_t *)hdrs[i].value, hdrs[i].name_len,
                                hdrs[i].value_len, NGHTTP2_NV_FLAG_NONE};
    if (px__h2w_info(st, nva, n) != 0)
        return; /* advisory: the final response still follows */
    px_http_count_status(&st->conn->w->stats, status);
    mark_dirty(st->conn);
}

/* The exchange has ended or is cancelled: request-body bytes it still held will never be
 * reported drained, so reopen the client's windows for them here. Without this an upstream that
 * answers before it has read the upload (RFC 9113 8.1: an early 200, 401 or 413) left up to a
 * stream window of the connection window spent for good: the upload hung, and every later
 * upload on the connection sent nothing. When the stream is already gone the codec took its
 * bytes back itself. */
static void req_body_dropped(px_stream_t *st)
{
    size_t n = st->req_unacked;
    MEM_ASSERT(st->up == NULL);
    st->req_unacked = 0;
    if (n == 0)
        return;
    px__h2w_consume(st, n);
}

static void on_up_data(void *ud, const uint8_t *data, size_t len)
{
    px_stream_t *st = ud;
    st->progress_ms = uv_now(&st->conn->w->loop);
    if (st->phase == PX_PHASE_RESET || st->head) {
        /* Nobody will send these bytes: acknowledge them so the upstream is not stuck. */
        if (st->up)
            px_upstream_consumed(st->up, len);
        return;
    }
    /* The exchange promises never to pass stream_buffer_bytes unacknowledged; a slack of a
     * second window covers bytes already in the batch. Past that the buffering would no
     * longer be bounded, so the stream is reset rather than let a slow client pin memory. */
    size_t cap = 2 * st->conn->w->cfg->limits.stream_buffer_bytes + 65536;
    if (MEM_UNLIKELY(st->buffered + len > cap)) {
        static int warned;
        if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
            fprintf(stderr,
                    "weir: upstream passed the stream buffer (%zu bytes held); "
                    "stream reset (reported once)\n",
                    st->buffered + len);
        MEM_STAT_ADD(st->conn->w->stats.stream_cap_resets, 1);
        px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (px_stream_body_append(st, data, len) != 0) {
        MEM_STAT_ADD(st->conn->w->stats.stream_cap_resets, 1);
        px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    px__h2_tenant_weigh(st);
    px__h2w_resume(st);
}

static void on_up_trailers(void *ud, const px_header_t *hdrs, size_t cnt)
{
    px_stream_t *st = ud;
    nghttp2_nv *nva = mem_subregion_alloc(st->sub, sizeof(nghttp2_nv) * (cnt ? cnt : 1));
    if (nva == NULL)
        goto fail;
    size_t n = 0;
    for (size_t i = 0; i < cnt; i++) {
        char *name = px_stream_strdup(st, hdrs[i].name, hdrs[i].name_len);
        char *value = px_stream_strdup(st, hdrs[i].value, hdrs[i].value_len);
        if (name == NULL || value == NULL)
            goto fail;
        nva[n++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, hdrs[i].name_len,
                                hdrs[i].value_len, NGHTTP2_NV_FLAG_NONE};
    }
    st->resp_trailers = nva;
    st->resp_trailers_cnt = n;
    return;
fail:
    MEM_STAT_ADD(st->conn->w->stats.stream_cap_resets, 1);
    px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
}

static void on_up_end(void *ud)
{
    px_stream_t *st = ud;
    if (st->up)
        st->up_retries = (uint8_t)px_upstream_retries(st->up);
    st->up = NULL; /* the exchange frees itself after this returns */
    st->up_done = true;
    st->resp_done = true;
    /* The response may be complete before the upload is (an early answer). The rest of the
     * request body is read and dropped (on_data_chunk_recv: nobody reads it), so the client
     * finishes its upload and the stream closes cleanly. RFC 9113 8.1 also allows ending the
     * upload with RST_STREAM(NO_ERROR), as nghttpx does, but curl 7.88 (Debian 12) reports
     * that as a stream error even after a complete response, and a small POST answered before
     * its DATA arrived then failed. */
    req_body_dropped(st);
    if (st->phase == PX_PHASE_WAITING_UPSTREAM) {
        px__h2_respond_static(st, 502, "text/plain", "weir: upstream sent no response\n", 32);
        return;
    }
    px__h2w_resume(st);
}

static void on_up_error(void *ud, int status, const char *reason)
{
    px_stream_t *st = ud;
    if (st->up)
        st->up_retries = (uint8_t)px_upstream_retries(st->up);
    st->up = NULL;
    st->up_done = true;
    req_body_dropped(st);
    if (st->phase == PX_PHASE_RESET)
        return;
    /* The answer to HEAD is complete with its head (RFC 9110 9.3.2), which ended the stream:
     * what the upstream does after it (a body nobody asked for, as nghttpd sends on its 404
     * page, then an error) does not concern the client. */
    if (st->head && st->phase != PX_PHASE_WAITING_UPSTREAM)
        return;
    if (st->phase == PX_PHASE_WAITING_UPSTREAM) {
        respond_reason(st, status >= 500 && status <= 599 ? status : 502,
                       reason ? reason : "upstream error");
        return;
    }
    px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
}

static void on_up_drained(void *ud, size_t len)
{
    px_stream_t *st = ud;
    MEM_ASSERT(len <= st->req_unacked);
    st->req_unacked -= len;
    px__h2w_consume(st, len);
}

static const px_upstream_cbs_t up_cbs = {
    .on_response_headers = on_up_headers,
    .on_response_informational = on_up_info,
    .on_response_data = on_up_data,
    .on_response_trailers = on_up_trailers,
    .on_response_end = on_up_end,
    .on_error = on_up_error,
    .on_request_body_drained = on_up_drained,
};

/* Describes the request for proxy/upstream/forward.h: the client's headers as an array in
 * the stream's sub-arena. Returns 0 or -ENOMEM. */
static int forward_req(px_stream_t *st, px_forward_req_t *fr)
{
    px_header_t *h = NULL;
    if (st->hdrs_cnt > 0) {
        h = mem_subregion_alloc(st->sub, sizeof(*h) * st->hdrs_cnt);
        if (h == NULL)
            return -ENOMEM;
    }
    size_t n = 0;
    for (px_hdr_node_t *x = st->hdrs; x; x = x->next)
        h[n++] = x->h;
    MEM_ASSERT(n == st->hdrs_cnt);
    *fr = (px_forward_req_t){
        .method = st->method,
        .method_len = st->method_len,
        .scheme = st->scheme,
        .scheme_len = st->scheme_len,
        .authority = st->authority,
        .authority_len = st->authority_len,
        .path = st->path,
        .path_len = st->path_len,
        .hdrs = h,
        .hdrs_cnt = n,
        .peer_ip = st->conn->peer_ip,
        .tls = st->conn->tls,
    };
    return 0;
}

void px__h2_dispatch(px_stream_t *st, bool end_stream)
{
    px_h2_conn_t *c = st->conn;
    const px_config_t *cfg = c->w->cfg;
    MEM_ASSERT(!px_stream_dispatched(st));
    px_stream_set_phase(st, PX_PHASE_WAITING_UPSTREAM);
    /* The stream keeps the config it is routed by until it ends: its route, cluster and
     * direct body stay valid however many reloads happen meanwhile. */
    st->cfg = px_config_ref(cfg);
    c->had_request = true;
    MEM_STAT_ADD(c->w->stats.requests_total, 1);
    MEM_STAT_ADD(c->w->stats.requests_http2, 1);
    if (st->hdr_too_large) {
        static const char body[] = "weir: request header list too large\n";
        px__h2_respond_static(st, 431, "text/plain", body, sizeof(body) - 1);
        return;
    }
    /* CONNECT (RFC 9113 8.5: :method and :authority only) is a 501, as on HTTP/1.1
     * (proxy/h1/h1.c): weir does not tunnel. DATA the client sends into the tunnel it expected
     * is read and dropped (nobody reads it), and the answer ends the stream. */
    if (st->method != NULL && px_http_ieq(st->method, st->method_len, "CONNECT", 7)) {
        respond_reason(st, 501, PX_HTTP_CONNECT_REFUSAL);
        return;
    }
    if (st->method == NULL || st->path == NULL) {
        /* serve.c's check_request already refuses requests without them. */
        px__h2_respond_static(st, 400, "text/plain", "weir: bad request\n", 18);
        return;
    }
    st->head = px_http_ieq(st->method, st->method_len, "HEAD", 4);
    px_forward_req_t fr;
    px_dispatch_out_t d = {0};
    px_dispatch_t v = PX_DISPATCH_NO_MEMORY;
    if (forward_req(st, &fr) == 0)
        v = px_dispatch_route(&fr, c->w, cfg, st->sub, &d);
    else
        MEM_STAT_ADD(c->w->stats.stream_cap_resets, 1);
    st->route = d.route;
    st->tenant = d.tenant; /* ended with the stream, whatever the verdict */
    px__h2_tenant_weigh(st);
    switch (v) {
    case PX_DISPATCH_BAD_REQUEST:
        respond_reason(st, 400, d.why);
        return;
    case PX_DISPATCH_ANSWER:
        px__h2_respond_static(st, d.status, d.ctype, d.body, d.body_len);
        return;
    case PX_DISPATCH_REFUSED:   /* the client may retry it (RFC 9113 8.7) */
    case PX_DISPATCH_NO_MEMORY: /* counted in px_dispatch_route or above */
        px__h2_reset(st, NGHTTP2_REFUSED_STREAM);
        return;
    case PX_DISPATCH_UPSTREAM:
        break;
    }
    px_upstream_req_t *up = NULL;
    int rc = px_upstream_start(c->w, st->route->cluster, d.hdrs, d.hdrs_cnt, end_stream, &up_cbs,
                               st, &up);
    if (rc != 0) {
        static const char body[] = PX_DISPATCH_BODY_503;
        px__h2_respond_static(st, 503, "text/plain", body, sizeof(body) - 1);
        return;
    }
    /* A callback may already have ended the exchange inside px_upstream_start. */
    st->up = st->up_done ? NULL : up;
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------ */

bool px__h2_over_rate(px_h2_conn_t *c, uint32_t *cnt, uint32_t per_sec)
{
    if (per_sec == 0)
        return false;
    uint64_t now = uv_now(&c->w->loop);
    if (now - c->rate_start_ms >= 1000) {
        c->rate_start_ms = now;
        c->ctl_cnt = 0;
    }
    return ++*cnt > per_sec;
}

bool px__h2_refuse_new(px_h2_conn_t *c)
{
    px_worker_t *w = c->w;
    /* Overload policy for new streams: the transport's owner decides (proxy/core/shed.c). */
    if (c->io->admit_stream(c->tr))
        return false;
    MEM_STAT_ADD(w->stats.overload_streams_refused, 1);
    MEM_STAT_ADD(w->stats.streams_reset_by_us, 1);
    return true;
}

px_stream_t *px__h2_stream_open(px_h2_conn_t *c, int32_t id, mem_subregion_t *sub)
{
    px_worker_t *w = c->w;
    MEM_ASSERT(sub != NULL);
    MEM_ASSERT(id > 0);
    px_stream_t *st = mem_subregion_calloc(sub, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->conn = c;
    st->sub = sub;
    st->id = id;
    st->req_clen = -1;
    st->started_ns = uv_hrtime();
    st->progress_ms = uv_now(&w->loop);
    st->next = c->streams;
    if (c->streams)
        c->streams->prev = st;
    c->streams = st;
    c->streams_cnt++;
    MEM_STAT_ADD(w->stats.streams_opened, 1);
    MEM_STAT_ADD(w->stats.streams_active, 1);
    streams_changed(c);
    return st;
}

int px__h2_field(px_stream_t *st, const char *n, size_t namelen, const char *v, size_t valuelen,
                 bool trailer)
{
    /* The limit we advertised (SETTINGS_MAX_HEADER_LIST_SIZE); nghttp2 does not enforce it
     * on input. Past it nothing more is copied and the request gets a 431. */
    st->hdr_bytes += namelen + valuelen + 32;
    if (st->hdr_bytes > st->conn->w->cfg->limits.max_header_list_bytes) {
        st->hdr_too_large = true;
        return 0;
    }
    if (!trailer && namelen > 0 && n[0] == ':') {
        char *copy = px_stream_strdup(st, v, valuelen);
        if (copy == NULL)
            goto oom;
        if (px_http_ieq(n, namelen, ":method", 7))
            st->method = copy, st->method_len = valuelen;
        else if (px_http_ieq(n, namelen, ":scheme", 7))
            st->scheme = copy, st->scheme_len = valuelen;
        else if (px_http_ieq(n, namelen, ":authority", 10))
            st->authority = copy, st->authority_len = valuelen;
        else if (px_http_ieq(n, namelen, ":path", 5))
            st->path = copy, st->path_len = valuelen;
        return 0;
    }
    if (px_http_is_hop_by_hop(n, namelen, v, valuelen))
        return 0;
    px_hdr_node_t *x = mem_subregion_alloc(st->sub, sizeof(*x));
    char *nc = px_stream_strdup(st, n, namelen);
    char *vc = px_stream_strdup(st, v, valuelen);
    if (x == NULL || nc == NULL || vc == NULL)
        goto oom;
    x->h = (px_header_t){nc, namelen, vc, valuelen};
    x->next = NULL;
    if (trailer) {
        /* Appended, as the headers are: field order is kept (RFC 9110 5.3). */
        if (st->trailers_tail)
            st->trailers_tail->next = x;
        else
            st->trailers = x;
        st->trailers_tail = x;
        st->trailers_cnt++;
        return 0;
    }
    if (px_http_ieq(n, namelen, "host", 4) && st->authority == NULL) {
        st->authority = vc;
        st->authority_len = valuelen;
    }
    if (st->hdrs_tail)
        st->hdrs_tail->next = x;
    else
        st->hdrs = x;
    st->hdrs_tail = x;
    st->hdrs_cnt++;
    return 0;
oom:
    MEM_STAT_ADD(st->conn->w->stats.stream_cap_resets, 1);
    px__h2_reset(st, NGHTTP2_REFUSED_STREAM);
    return -ENOMEM;
}

void px__h2_request_ended(px_stream_t *st)
{
    st->req_ended = true;
    if (st->up && st->phase != PX_PHASE_RESET) {
        if (st->trailers_cnt > 0) {
            px_header_t *h = mem_subregion_alloc(st->sub, sizeof(*h) * st->trailers_cnt);
            size_t n = 0;
            for (px_hdr_node_t *x = st->trailers; h && x; x = x->next)
                h[n++] = x->h;
            if (h == NULL || px_upstream_send_trailers(st->up, h, n) != 0)
                px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
        } else if (px_upstream_send_body(st->up, NULL, 0, true) != 0) {
            px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
        }
    }
}

void px__h2_request_data(px_stream_t *st, const uint8_t *data, size_t len)
{
    px_h2_conn_t *c = st->conn;
    st->bytes_in += len;
    st->progress_ms = uv_now(&c->w->loop);
    if (st->up && st->phase != PX_PHASE_RESET) {
        if (px_upstream_send_body(st->up, data, len, false) == 0) {
            st->req_unacked += len;
            return; /* consumed when on_request_body_drained says so */
        }
        px__h2_reset(st, NGHTTP2_FLOW_CONTROL_ERROR);
    }
    /* Nobody reads this body: reopen the window now. */
    px__h2w_consume(st, len);
}

void px__h2_tenant_weigh(px_stream_t *st)
{
    if (st->tenant == 0)
        return;
    px_h2_conn_t *c = st->conn;
    MEM_ASSERT_HOT(c->streams_cnt > 0);
    size_t share = mem_region_bytes(c->region) / c->streams_cnt;
    px_tenant_weigh(c->w, st->tenant, &st->tenant_counted, st->buffered + share);
}

/* Ends a stream: cancels its exchange, logs it and frees its body buffer (the codec frees its
 * sub-arena). */
void px__h2_stream_end(px_h2_conn_t *c, px_stream_t *st)
{
    MEM_ASSERT(c->streams_cnt > 0);
    MEM_ASSERT(st->conn == c);
    if (st->tenant != 0) {
        px_tenant_end(c->w, st->tenant, &st->tenant_counted);
        st->tenant = 0; /* a chunk the codec drops later weighs nothing */
    }
    if (st->up) {
        px_upstream_cancel(st->up); /* st->up freed */
        st->up = NULL;
    }
    req_body_dropped(st);
    c->io->stream_ended(c->tr, st);
    px_stream_body_free(st);
    if (st->prev)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    c->streams_cnt--;
    MEM_STAT_SUB(c->w->stats.streams_active, 1);
    px_config_unref(st->cfg); /* after the log line, which names the route's cluster */
    st->cfg = NULL;
    /* st stays until the codec frees its sub-arena, after this returns. */
}

/* ---- session lifecycle ------------------------------------------------------------------ */

const char *px_h2_stream_phase(const px_stream_t *st)
{
    MEM_ASSERT(st != NULL);
    /* Routed in every phase but the first (a reset one may have been either). */
    MEM_ASSERT(px_stream_dispatched(st) || st->phase == PX_PHASE_REQUEST_HEADERS ||
               st->phase == PX_PHASE_RESET || st->phase == PX_PHASE_CLOSED);
    return px_stream_phase_name(st->phase);
}

void px_h2_stream_shed(px_stream_t *st)
{
    MEM_ASSERT(st != NULL && st->conn != NULL);
    px__h2_reset(st, NGHTTP2_ENHANCE_YOUR_CALM);
}

size_t px_h2_sweep_idle(px_h2_conn_t *c, uint64_t now_ms)
{
    uint64_t limit = c->w->cfg->limits.stream_idle_timeout_ms;
    uint64_t hlimit = c->w->cfg->limits.header_timeout_ms;
    size_t n = 0;
    MEM_ASSERT(limit > 0 || hlimit > 0);
    px__h2w_tick(c, now_ms);
    /* The next is taken first: a reset may end (and free) a stream at once on the codec's
     * path. */
    for (px_stream_t *st = c->streams, *next; st; st = next) {
        next = st->next;
        /* Slowloris: a header block still open header_timeout after it began. The frames of
         * one block must be contiguous, so the whole connection is stuck behind it: end it
         * (GOAWAY, then close once written). progress_ms moves only once headers are done. */
        if (st->phase == PX_PHASE_REQUEST_HEADERS && hlimit > 0 &&
            now_ms - st->progress_ms >= hlimit) {
            MEM_STAT_ADD(c->w->stats.timeouts_header, 1);
            px__h2w_terminate(c, NGHTTP2_NO_ERROR, "header timeout");
            return n + 1;
        }
        if (st->phase == PX_PHASE_RESET || limit == 0 || now_ms - st->progress_ms < limit)
            continue;
        /* Headers not sent yet: the client gets a 504 that says why; else the stream is
         * cancelled. Either way the upstream exchange ends when the stream closes. */
        if (st->phase == PX_PHASE_WAITING_UPSTREAM) {
            static const char body[] = "weir: stream idle timeout\n";
            if (st->up) {
                px_upstream_cancel(st->up); /* st->up freed */
                st->up = NULL;
                req_body_dropped(st);
            }
            st->progress_ms = now_ms;
            px__h2_respond_static(st, 504, "text/plain", body, sizeof(body) - 1);
        } else {
            px__h2_reset(st, NGHTTP2_CANCEL);
        }
        n++;
    }
    if (n > 0)
        mark_dirty(c);
    return n;
}

bool px_h2_want_sweep(const px_h2_conn_t *c)
{
    return c->streams_cnt > 0 || c->ep != NULL;
}
