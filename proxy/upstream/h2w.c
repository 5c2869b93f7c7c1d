/*
 * proxy/upstream/h2w.c: h2c upstream connections on weir's own HTTP/2 codec: the client role
 * of proxy/codec/endpoint per pooled connection, exchanges multiplexed on it as streams (the
 * h2c and h2-over-TLS clusters' operations table, px__upstream_ops).
 *
 * Instances: the endpoint lives in its px_upconn_t's region (created with it, freed in its
 * last close callback); each stream lives in a sub-arena of that region, from
 * px_h2_ep_submit_request to on_stream_close. Thread: the worker's loop thread.
 *
 * Flow control: every stream's receive window is limits.stream_buffer_bytes, so the upstream
 * never has more unacknowledged response bytes in flight on a stream than the downstream may
 * buffer; px_upstream_consumed() opens it (px_h2_ep_consume, which covers the connection
 * window too). Bytes for a stream nobody reads any more are consumed at once, and bytes
 * delivered but not acknowledged when an exchange ends go back with its unbind, so cancelled
 * streams never shrink the connection window.
 *
 * Output: the codec writes through the transport below (reserve/commit, and DATA as a frame
 * header plus a borrowed payload) into c->h2w_obuf, at any time (a PING's ACK while a batch
 * is being written, for one); fill hands that buffer to upstream.c as the batch (c->wbuf),
 * so a connection holds no output buffer between batches. A request body goes to the codec
 * as slices of the exchange's ring, one slice per stream at a time, borrowed until the codec
 * writes or drops it (on_released), so the ring never moves bytes the codec still points at.
 *
 * Requests are opened at the next fill, not at submit: an exchange cancelled before then
 * (a client that opens and resets streams at once) never reaches the upstream.
 */
#include "mem/base.h"

#include <string.h>

#include "mem/malloc.h"
#include "proxy/codec/endpoint.h"
#include "proxy/core/worker-t.h"
#define PX_UPSTREAM_INTERNAL 1
#include "proxy/upstream/upstream.h"

/* The codec's cap on a window (RFC 9113 6.9.1). */
#define UP_H2W_WINDOW_MAX ((size_t)0x7fffffff)
/* The first output buffer: a preface and SETTINGS, a request's HEADERS, a few control frames. */
#define UP_H2W_OBUF_MIN ((size_t)4096)

#define REQ_OF(l) MEM_CONTAINER_OF(l, px_upstream_req_t, link)

/* ---- the transport below the codec --------------------------------------------------- */

static uint8_t *on_reserve(void *tr, size_t len)
{
    px_upconn_t *c = tr;
    MEM_ASSERT_HOT(c->h2w_olen <= c->h2w_ocap);
    if (len > c->h2w_ocap - c->h2w_olen) {
        size_t cap = MEM_MAX(MEM_MAX(c->h2w_ocap * 2, UP_H2W_OBUF_MIN), c->h2w_olen + len);
        uint8_t *b = mem_realloc(c->h2w_obuf, cap);
        if (b == NULL)
            return NULL;
        c->h2w_obuf = b;
        c->h2w_ocap = cap;
    }
    return c->h2w_obuf + c->h2w_olen;
}

static void on_commit(void *tr, size_t len)
{
    px_upconn_t *c = tr;
    MEM_ASSERT_HOT(len <= c->h2w_ocap - c->h2w_olen);
    c->h2w_olen += len;
}

/* A DATA frame of a request body: the payload is copied behind its header into the batch,
 * which is what the socket write needs anyway (one buffer per batch, as the other two
 * protocols), so the ring slice is released at once. */
static int on_data_out(void *tr, const uint8_t *hd, const uint8_t *p, size_t len,
                       px_h2_release_fn fn, void *arg)
{
    px_upconn_t *c = tr;
    uint8_t *b = on_reserve(c, PX_H2_FRAME_HD_LEN + len);
    if (b == NULL)
        return -ENOMEM;
    memcpy(b, hd, PX_H2_FRAME_HD_LEN);
    if (len > 0)
        memcpy(b + PX_H2_FRAME_HD_LEN, p, len);
    on_commit(c, PX_H2_FRAME_HD_LEN + len);
    if (fn != NULL)
        fn(arg);
    return 0;
}

static const px_h2_ep_out_t g_out = {
    .reserve = on_reserve,
    .commit = on_commit,
    .data = on_data_out,
};

/* ---- exchanges and their streams ---------------------------------------------------- */

/* Forgets the stream of `r`: no more callbacks reach `r`, and response bytes it still held
 * go back to the windows. */
static void unbind(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    MEM_ASSERT(c != NULL);
    MEM_ASSERT(c->ops == &px__uph2w_ops);
    px_h2_ep_stream_t *st = r->h2w_st;
    if (st != NULL) {
        MEM_ASSERT(px_h2_ep_stream_ud(st) == r);
        px_h2_ep_stream_set_ud(st, NULL);
        if (r->resp_unacked > 0)
            px_h2_ep_consume(c->h2w, st, r->resp_unacked);
    }
    r->h2w_st = NULL;
    r->h2w_inflight = 0;
    r->resp_unacked = 0;
}

/* Resets `st`, whose exchange is unbound. Without memory for the RST_STREAM the stream
 * stays open to the connection's end: nobody reads it, so its DATA is consumed as it comes
 * (on_data) and the upstream's windows never close on it; nothing else is owed. */
static void reset_stream(px_upconn_t *c, px_h2_ep_stream_t *st, uint32_t code)
{
    MEM_ASSERT(px_h2_ep_stream_ud(st) == NULL);
    if (px_h2_ep_submit_rst(c->h2w, st, code) == 0)
        px__upstream_conn_dirty(c);
}

/* Resets the stream of `r` (if it is still live) and fails the exchange with `status`. */
static void abort_stream(px_upstream_req_t *r, uint32_t code, int status, const char *reason)
{
    px_upconn_t *c = r->conn;
    px_h2_ep_stream_t *st = r->h2w_st;
    unbind(r);
    if (st != NULL)
        reset_stream(c, st, code);
    px__upstream_fail(r, status, reason);
}

/* The response is complete: stop our half too if the request is still going, then end. */
static void finish(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    px_h2_ep_stream_t *st = r->h2w_st;
    bool req_going = !r->req_done;
    unbind(r);
    if (st != NULL && req_going && px_h2_ep_stream_state(st) != PX_H2_ST_CLOSED)
        reset_stream(c, st, PX_H2_NO_ERROR);
    px__upstream_end(r);
}

/* The final head of a HEAD exchange is the whole response (RFC 9110 9.3.2): the exchange ends
 * here, and the stream, if the upstream has not ended it, is reset with CANCEL, so whatever
 * the upstream sends after the head reaches nobody. */
static void finish_head(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    px_h2_ep_stream_t *st = r->h2w_st;
    MEM_ASSERT(r->is_head);
    MEM_ASSERT(r->headers_sent);
    unbind(r);
    if (st != NULL && px_h2_ep_stream_state(st) != PX_H2_ST_CLOSED)
        reset_stream(c, st, PX_H2_CANCEL);
    px__upstream_end(r);
}

static int parse_status(const uint8_t *v, size_t len)
{
    if (len != 3)
        return -1;
    int st = 0;
    for (size_t i = 0; i < 3; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        st = st * 10 + (v[i] - '0');
    }
    return st;
}

/* A response block (informational, final or trailers) of `st`. The codec already bounded it
 * by limits.max_header_list_size (`too_large`) and limits.max_continuations, and checked
 * every field against RFC 9113 8.2.1. */
static int on_headers(void *ud, px_h2_ep_stream_t *st, const px_h2_block_t *b)
{
    (void)ud;
    px_upstream_req_t *r = px_h2_ep_stream_ud(st);
    if (r == NULL)
        return 0; /* cancelled: decoded for HPACK's sake and dropped */
    MEM_ASSERT(r->h2w_st == st);
    r->resp_started = true;
    if (b->too_large) {
        abort_stream(r, PX_H2_ENHANCE_YOUR_CALM, 502, "upstream headers too large");
        return 0;
    }
    int status = 0;
    px__upstream_hdrs_reset(&r->rh);
    for (size_t i = 0; i < b->cnt; i++) {
        const nghttp2_nv *f = &b->fields[i];
        if (f->namelen == 7 && memcmp(f->name, ":status", 7) == 0) {
            status = parse_status(f->value, f->valuelen);
            continue;
        }
        if (px__upstream_hdrs_add(&r->rh, (const char *)f->name, f->namelen, (const char *)f->value,
                                  f->valuelen) < 0) {
            abort_stream(r, PX_H2_INTERNAL_ERROR, 502, "upstream out of memory");
            return 0;
        }
    }
    if (!r->headers_sent) {
        if (status >= 100 && status < 200 && status != 101 && !b->end_stream) {
            /* Informational: passed on; the final head follows in another block. */
            (void)px__upstream_deliver_informational(r, status);
            return 0; /* if it finished the exchange, r is done: nothing more here */
        }
        if (status < 200 || status > 999) {
            abort_stream(r, PX_H2_PROTOCOL_ERROR, 502, "upstream bad response");
            return 0;
        }
        r->status = status;
        r->head_only = b->end_stream; /* gRPC's trailers-only form: no DATA, no trailers */
        if (px__upstream_deliver_headers(r, false) < 0)
            return 0; /* failed or cancelled: r is done */
        if (r->is_head && !b->end_stream) {
            finish_head(r);
            return 0;
        }
    } else {
        if (!b->end_stream || status != 0) {
            abort_stream(r, PX_H2_PROTOCOL_ERROR, 502, "upstream bad response");
            return 0;
        }
        if (px__upstream_deliver_headers(r, true) < 0)
            return 0;
    }
    /* The downstream's callbacks may have cancelled `r`: ask the stream again. */
    if (b->end_stream && px_h2_ep_stream_ud(st) == r)
        finish(r);
    return 0;
}

static int on_data(void *ud, px_h2_ep_stream_t *st, const uint8_t *p, size_t len, bool end)
{
    px_upconn_t *c = ud;
    px_upstream_req_t *r = px_h2_ep_stream_ud(st);
    if (r == NULL) {
        /* Nobody reads this stream any more: give the window back at once. */
        px_h2_ep_consume(c->h2w, st, len);
        return 0;
    }
    if (!r->headers_sent) {
        px_h2_ep_consume(c->h2w, st, len);
        abort_stream(r, PX_H2_PROTOCOL_ERROR, 502, "upstream bad response");
        return 0;
    }
    if (len > 0)
        px__upstream_deliver_data(r, p, len);
    if (end && px_h2_ep_stream_ud(st) == r)
        finish(r);
    return 0;
}

static void on_stream_close(void *ud, px_h2_ep_stream_t *st, uint32_t code)
{
    px_upconn_t *c = ud;
    px_upstream_req_t *r = px_h2_ep_stream_ud(st);
    if (r != NULL) {
        /* Closed before the response ended: reset by the upstream, refused, past a GOAWAY,
         * or the connection failed. Its bytes go back with the stream. */
        MEM_ASSERT(r->h2w_st == st);
        px_h2_ep_stream_set_ud(st, NULL);
        r->h2w_st = NULL;
        r->h2w_inflight = 0;
        r->resp_unacked = 0;
        r->stream_id = -1;
        bool refused = code == PX_H2_REFUSED_STREAM;
        px__upstream_lost(r, refused, refused ? "upstream refused stream" : "upstream reset");
    }
    if (c->state == PX_UPCONN_READY) {
        px__upstream_conn_dirty(c);
        px__upstream_slot_freed(c);
    }
}

static void on_goaway(void *ud, int32_t last_stream_id, uint32_t code, const uint8_t *debug,
                      size_t debug_len)
{
    px_upconn_t *c = ud;
    (void)last_stream_id;
    (void)code;
    (void)debug;
    (void)debug_len;
    /* No new streams here; streams above last_stream_id are closed by the codec with
     * REFUSED_STREAM (on_stream_close), and fail over. Exchanges not opened yet go back to
     * their endpoint at the next fill. */
    c->goaway = true;
    px__upstream_conn_dirty(c);
}

static void on_window(void *ud, px_h2_ep_stream_t *st)
{
    px_upconn_t *c = ud;
    (void)st;
    px__upstream_conn_dirty(c);
}

static uint64_t on_now_ms(void *ud)
{
    px_upconn_t *c = ud;
    return uv_now(&c->pools->w->loop);
}

static const px_h2_ep_cbs_t g_cbs = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_rst = NULL,
    .on_stream_close = on_stream_close,
    .on_goaway = on_goaway,
    .on_window = on_window,
    .on_fail = NULL,
    .now_ms = on_now_ms,
    .on_frame = NULL,
};

/* The codec wrote (or dropped) the body slice it borrowed from the exchange's ring. */
static void on_released(void *arg)
{
    px_h2_ep_stream_t *st = arg;
    px_upstream_req_t *r = px_h2_ep_stream_ud(st);
    if (r == NULL || r->h2w_inflight == 0)
        return; /* unbound: the ring goes with the exchange */
    size_t n = r->h2w_inflight;
    r->h2w_inflight = 0;
    px__upstream_ring_drop(&r->body, n);
    px__upstream_drained(r, n);
    px__upstream_conn_dirty(r->conn);
}

/* Builds the request's header list (pseudo-headers first, without hop-by-hop fields, Host or
 * HTTP2-Settings) in a tcache array. Returns it (gives: mem_free) or NULL. */
static nghttp2_nv *request_fields(const px_header_t *h, size_t cnt, size_t *out_cnt, bool trailers)
{
    nghttp2_nv *nva = mem_malloc((cnt ? cnt : 1) * sizeof(*nva));
    if (nva == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (h[i].name_len == 0 || (trailers && h[i].name[0] == ':'))
            continue;
        if (px_http_is_hop_by_hop(h[i].name, h[i].name_len, h[i].value, h[i].value_len) ||
            px_http_ieq(h[i].name, h[i].name_len, "host", 4) ||
            px_http_ieq(h[i].name, h[i].name_len, "http2-settings", 14))
            continue;
        nva[n++] = (nghttp2_nv){(uint8_t *)h[i].name, (uint8_t *)h[i].value, h[i].name_len,
                                h[i].value_len, NGHTTP2_NV_FLAG_NONE};
    }
    *out_cnt = n;
    return nva;
}

/* Opens the stream of `r`. Returns 0; -EAGAIN (no stream free now: try at the next fill);
 * or another negative errno, with `r` failed or sent elsewhere (finished here). */
MEM_MUST_CHECK static int open_stream(px_upconn_t *c, px_upstream_req_t *r)
{
    MEM_ASSERT(r->stream_id == 0);
    MEM_ASSERT(r->h2w_st == NULL);
    MEM_ASSERT(c->h2w_unopened > 0);
    size_t n = 0;
    nghttp2_nv *nva = request_fields(r->hdrs, r->hdrs_cnt, &n, false);
    if (nva == NULL) {
        c->h2w_unopened--;
        r->stream_id = -1;
        px__upstream_fail(r, 502, "upstream out of memory");
        return -ENOMEM;
    }
    bool body = !(r->req_end && r->body.len == 0 && r->trailers_cnt == 0);
    px_h2_ep_stream_t *st = NULL;
    int rc = px_h2_ep_submit_request(c->h2w, nva, n, !body, r, &st);
    mem_free(nva);
    if (rc == -EAGAIN)
        return rc;
    c->h2w_unopened--;
    if (rc == -ENOMEM) {
        r->stream_id = -1;
        px__upstream_fail(r, 502, "upstream out of memory");
        return rc;
    }
    if (rc != 0) {
        /* GOAWAY either way or stream ids spent: nothing was sent, so another connection
         * may take it. */
        c->goaway = true;
        r->stream_id = -1;
        px__upstream_lost(r, true, "upstream connection going away");
        return rc;
    }
    r->h2w_st = st;
    r->stream_id = px_h2_ep_stream_id(st);
    if (!body)
        r->req_done = true;
    return 0;
}

/* Hands the codec the next slice of the request body of `r` (or its end, or its trailers).
 * Returns 0, or -ENOMEM (`r` failed). */
MEM_MUST_CHECK static int feed_body(px_upconn_t *c, px_upstream_req_t *r)
{
    px_h2_ep_stream_t *st = r->h2w_st;
    MEM_ASSERT(st != NULL);
    if (r->req_done || r->h2w_inflight > 0)
        return 0;
    const uint8_t *p = NULL;
    size_t k = px__upstream_ring_peek(&r->body, &p);
    bool last = r->req_end && k == r->body.len;
    bool end = last && r->trailers_cnt == 0;
    if (k == 0 && !r->req_end)
        return 0;
    int rc = 0;
    if (k > 0 || end) {
        r->h2w_inflight = k;
        rc = px_h2_ep_submit_data(c->h2w, st, p, k, end, k > 0 ? on_released : NULL, st);
        if (rc != 0)
            r->h2w_inflight = 0;
    }
    if (rc == 0 && last && r->trailers_cnt > 0) {
        size_t n = 0;
        nghttp2_nv *nva = request_fields(r->trailers, r->trailers_cnt, &n, true);
        if (nva == NULL)
            rc = -ENOMEM;
        else if (n > 0)
            rc = px_h2_ep_submit_headers(c->h2w, st, nva, n, true);
        else
            rc = px_h2_ep_submit_data(c->h2w, st, NULL, 0, true, NULL, NULL);
        mem_free(nva);
    }
    if (rc == 0 && last)
        r->req_done = true;
    if (rc == -ENOMEM) {
        abort_stream(r, PX_H2_INTERNAL_ERROR, 502, "upstream out of memory");
        return rc;
    }
    if (rc != 0) {
        /* -EPIPE: the stream cannot send (the upstream closed its half, answered early):
         * the rest of the body is not wanted. */
        r->req_done = true;
    }
    return 0;
}

/* ---- the operations ------------------------------------------------------------------ */

static int conn_init(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_H2C);
    MEM_ASSERT(c->h2w == NULL);
    const px_config_t *cfg = c->pools->w->cfg;
    px_h2_ep_config_t ecfg;
    px_h2_ep_config_default(&ecfg, c->pools->ng_mem);
    size_t win = cfg ? cfg->limits.stream_buffer_bytes : 65536;
    win = MEM_MIN(MEM_MAX(win, (size_t)16384), UP_H2W_WINDOW_MAX);
    /* The connection window covers every stream's window at once, so streams never starve
     * each other; each stream stays bounded by its own window. */
    size_t streams = MEM_MAX(c->cl->cfg->max_streams_per_conn, 1u);
    size_t conn_win = streams > UP_H2W_WINDOW_MAX / win ? UP_H2W_WINDOW_MAX : win * streams;
    ecfg.initial_window = (uint32_t)win;
    ecfg.conn_window = (uint32_t)MEM_MAX(conn_win, (size_t)65535);
    ecfg.max_header_list_size = cfg ? cfg->limits.max_header_list_bytes : 65536;
    ecfg.max_continuations = cfg ? cfg->limits.max_continuations : 8;
    ecfg.max_concurrent_streams = 0; /* no push: the upstream opens none */
    c->h2w = px_h2_ep_new(c->region, PX_H2_ROLE_CLIENT, &ecfg, &g_out, c, &g_cbs, c);
    if (c->h2w == NULL)
        return -ENOMEM;
    /* The preface waits in the output buffer until the connect completes. */
    int rc = px_h2_ep_start(c->h2w);
    if (rc != 0) {
        px_h2_ep_free(c->h2w);
        c->h2w = NULL;
        mem_free(c->h2w_obuf);
        c->h2w_obuf = NULL;
        c->h2w_olen = c->h2w_ocap = 0;
        return rc;
    }
    return 0;
}

static void conn_fini(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_H2C);
    MEM_ASSERT(c->state == PX_UPCONN_CLOSING);
    /* Every exchange was unbound by px__upstream_conn_close (forget): the streams close
     * without reaching one. */
    px_h2_ep_free(c->h2w);
    c->h2w = NULL;
    mem_free(c->h2w_obuf);
    c->h2w_obuf = NULL;
    c->h2w_olen = c->h2w_ocap = 0;
}

/* Exchanges on the connection whose stream is not open yet, counted the slow way: what
 * c->h2w_unopened must say (MEM_ASSERT_SLOW). */
MEM_UNUSED static uint32_t unopened_walk(const px_upconn_t *c)
{
    uint32_t n = 0;
    for (const px_uplink_t *l = c->active.next; l != &c->active; l = l->next)
        n += REQ_OF(l)->stream_id == 0;
    return n;
}

static bool has_room(const px_upconn_t *c)
{
    MEM_ASSERT_HOT(c->ops == &px__uph2w_ops);
    if (c->goaway || c->state == PX_UPCONN_CLOSING || px_h2_ep_done(c->h2w))
        return false;
    uint32_t max = MEM_MAX(c->cl->cfg->max_streams_per_conn, 1u);
    uint32_t peer = px_h2_ep_peer_max_streams(c->h2w);
    MEM_ASSERT_SLOW(c->h2w_unopened == unopened_walk(c));
    return px_h2_ep_streams_cnt(c->h2w) + c->h2w_unopened < MEM_MIN(max, peer);
}

static int submit(px_upconn_t *c, px_upstream_req_t *r)
{
    MEM_ASSERT(c->ops == &px__uph2w_ops);
    MEM_ASSERT(r->stream_id <= 0);
    /* Opened by the next fill (see the top of the file). */
    r->stream_id = 0;
    c->h2w_unopened++;
    r->h2w_st = NULL;
    r->h2w_inflight = 0;
    return 0;
}

static void cancel(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    MEM_ASSERT(c != NULL);
    MEM_ASSERT(r->state == PX_UPREQ_ACTIVE);
    px_h2_ep_stream_t *st = r->h2w_st;
    if (r->stream_id == 0) {
        /* Never opened: nothing was sent, nothing to reset. */
        MEM_ASSERT(c->h2w_unopened > 0);
        c->h2w_unopened--;
    }
    unbind(r);
    if (st != NULL && c->state != PX_UPCONN_CLOSING)
        reset_stream(c, st, PX_H2_CANCEL);
    r->stream_id = -1;
}

static void forget(px_upconn_t *c, px_upstream_req_t *r)
{
    MEM_ASSERT(c->ops == &px__uph2w_ops);
    MEM_ASSERT(c->state == PX_UPCONN_CLOSING);
    if (r->stream_id == 0) {
        MEM_ASSERT(c->h2w_unopened > 0);
        c->h2w_unopened--;
    }
    if (r->h2w_st != NULL)
        px_h2_ep_stream_set_ud(r->h2w_st, NULL);
    r->h2w_st = NULL;
    r->h2w_inflight = 0;
}

static void body(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    MEM_ASSERT(c != NULL);
    if (!r->req_done)
        px__upstream_conn_dirty(c);
}

static void consumed(px_upstream_req_t *r, size_t len)
{
    px_upconn_t *c = r->conn;
    MEM_ASSERT(c != NULL);
    if (r->h2w_st != NULL && c->state == PX_UPCONN_READY) {
        px_h2_ep_consume(c->h2w, r->h2w_st, len);
        px__upstream_conn_dirty(c);
    }
}

static void read_bytes(px_upconn_t *c, const uint8_t *data, size_t len)
{
    MEM_ASSERT(c->state == PX_UPCONN_READY);
    MEM_ASSERT(c->h2w != NULL);
    int rc = px_h2_ep_feed(c->h2w, data, len);
    if (rc == -EPROTO && c->h2w_olen > 0 && !c->writing && c->ssl == NULL) {
        /* Our GOAWAY with the reason: one try to send it before the close (over TLS it
         * would need sealing, and the close follows at once: it is left out). */
        uv_buf_t b = uv_buf_init((char *)c->h2w_obuf, (unsigned)c->h2w_olen);
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    if (rc != 0) {
        px__upstream_conn_close(c);
        return;
    }
    if (c->state != PX_UPCONN_READY)
        return;
    /* A SETTINGS may have raised MAX_CONCURRENT_STREAMS: queued exchanges may fit now. */
    uint64_t settings = px_h2_ep_counters(c->h2w)->settings_in;
    if (settings != c->h2w_settings) {
        c->h2w_settings = settings;
        px__upstream_slot_freed(c);
    }
    /* After a GOAWAY a connection that carries nothing has nothing more to do. */
    if (c->state == PX_UPCONN_READY && c->active_cnt == 0 &&
        (c->goaway || (px_h2_ep_done(c->h2w) && c->h2w_olen == 0)))
        px__upstream_conn_close(c);
}

static void eof(px_upconn_t *c)
{
    MEM_ASSERT(c->ops == &px__uph2w_ops);
    /* Nothing to complete: HTTP/2 frames say where each response ends, so every exchange
     * still on the connection is lost (px__upstream_conn_close reports them). */
}

static int fill(px_upconn_t *c)
{
    MEM_ASSERT(c->state == PX_UPCONN_READY);
    MEM_ASSERT(c->wlen == 0);
    if (px_h2_ep_tick(c->h2w) != 0)
        return -EPROTO; /* SETTINGS not acknowledged in time */
    /* Open the streams of new exchanges and feed request bodies. A failure finishes an
     * exchange, which may cancel others: the walk starts again after each one. */
    bool again = true;
    while (again && c->state == PX_UPCONN_READY) {
        again = false;
        for (px_uplink_t *l = c->active.next; l != &c->active; l = l->next) {
            px_upstream_req_t *r = REQ_OF(l);
            if (r->stream_id == 0) {
                int rc = open_stream(c, r);
                if (rc == -EAGAIN)
                    continue;
                if (rc != 0) {
                    again = true;
                    break;
                }
            }
            if (r->h2w_st != NULL && feed_body(c, r) != 0) {
                again = true;
                break;
            }
        }
    }
    if (c->state != PX_UPCONN_READY)
        return 0;
    int rc = px_h2_ep_flush(c->h2w);
    if (rc != 0)
        return rc;
    if (c->h2w_olen > 0) {
        /* The codec's output becomes the batch; upstream.c frees it once written. */
        MEM_ASSERT(c->wbuf == NULL);
        c->wbuf = c->h2w_obuf;
        c->wlen = c->h2w_olen;
        c->wcap = c->h2w_ocap;
        c->h2w_obuf = NULL;
        c->h2w_olen = c->h2w_ocap = 0;
    }
    return 0;
}

static void written(px_upconn_t *c)
{
    MEM_ASSERT(c->ops == &px__uph2w_ops);
    if (c->state == PX_UPCONN_READY && px_h2_ep_done(c->h2w) && c->h2w_olen == 0)
        px__upstream_conn_close(c);
}

const px_upproto_ops_t px__uph2w_ops = {
    .name = "h2c-weir",
    .multiplexed = true,
    .conn_init = conn_init,
    .conn_fini = conn_fini,
    .has_room = has_room,
    .submit = submit,
    .cancel = cancel,
    .forget = forget,
    .body = body,
    .consumed = consumed,
    .read = read_bytes,
    .read_room = NULL,
    .eof = eof,
    .fill = fill,
    .fill_gives_wbuf = true,
    .written = written,
};
