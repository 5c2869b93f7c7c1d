/*
 * proxy/upstream/h2.c: h2c upstream connections: an nghttp2 client session per pooled
 * connection, exchanges multiplexed on it as streams (see upstream_h2.h).
 *
 * Instances: the session belongs to its px_upconn_t (created with it, deleted in its last
 * close callback). Thread: the worker's loop thread.
 *
 * Flow control: automatic WINDOW_UPDATE is off and every stream starts with a window of
 * limits.stream_buffer_bytes, so the upstream can never have more unacknowledged response
 * bytes in flight on a stream than the downstream may buffer; px_upstream_consumed() opens the
 * window (nghttp2_session_consume, which covers the connection window too). Bytes that arrive
 * for a stream nobody reads any more are consumed at once, and bytes delivered but not yet
 * acknowledged when an exchange ends are returned to the connection window, so cancelled
 * streams never shrink the connection window.
 *
 * Output goes through the send callback into the connection's batch buffer (c->wbuf), which
 * upstream.c writes with one uv_write per loop iteration.
 */
#include "proxy/upstream/h2.h"
#include "mem/base.h"

#include <string.h>

#include "mem/malloc.h"
#include "proxy/core/worker-t.h"

/* nghttp2's own cap on a window. */
#define UP_H2_WINDOW_MAX ((size_t)0x7fffffff)

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    px_upconn_t *c = ud;
    (void)s;
    (void)flags;
    MEM_ASSERT_HOT(c->wlen <= c->wcap);
    size_t room = c->wcap - c->wlen;
    if (room == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    size_t n = MEM_MIN(room, len);
    memcpy(c->wbuf + c->wlen, data, n);
    c->wlen += n;
    return (ssize_t)n;
}

/* Forgets the stream of `r`: no more callbacks reach `r`, and response bytes it still held
 * go back to the connection window. */
static void unbind(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    MEM_ASSERT(c != NULL);
    MEM_ASSERT(c->proto == PX_PROTO_H2C);
    if (r->stream_id > 0) {
        nghttp2_session_set_stream_user_data(c->h2, r->stream_id, NULL);
        if (r->resp_unacked > 0)
            nghttp2_session_consume_connection(c->h2, r->resp_unacked);
    }
    r->resp_unacked = 0;
}

static bool stream_open(px_upconn_t *c, int32_t sid)
{
    nghttp2_stream *st = nghttp2_session_find_stream(c->h2, sid);
    return st && nghttp2_stream_get_state(st) != NGHTTP2_STREAM_STATE_CLOSED;
}

/* Resets the stream of `r` and fails the exchange with `status`. */
static void abort_stream(px_upstream_req_t *r, uint32_t h2err, int status, const char *reason)
{
    px_upconn_t *c = r->conn;
    int32_t sid = r->stream_id;
    unbind(r);
    if (sid > 0 && stream_open(c, sid))
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, sid, h2err);
    px__upstream_conn_dirty(c);
    px__upstream_fail(r, status, reason);
}

/* The response is complete: stop our half too if the request is still going, then end. */
static void finish(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    int32_t sid = r->stream_id;
    unbind(r);
    if (!r->req_done && sid > 0 && stream_open(c, sid)) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, sid, NGHTTP2_NO_ERROR);
        px__upstream_conn_dirty(c);
    }
    px__upstream_end(r);
}

/* The cap on one response header block: limits.max_header_list_size. */
static size_t header_list_max(const px_upconn_t *c)
{
    const px_config_t *cfg = c->pools->w->cfg;
    return cfg ? cfg->limits.max_header_list_bytes : 65536;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *ud)
{
    (void)flags;
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    px_upstream_req_t *r = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (!r)
        return 0;
    r->resp_started = true;
    if (name_len == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < value_len && i < 4; i++)
            st = value[i] >= '0' && value[i] <= '9' ? st * 10 + (value[i] - '0') : -1000;
        r->status = value_len == 3 ? st : -1;
        return 0;
    }
    /* The downstream's limits.max_header_list_size holds for every header block an upstream
     * sends (head, informational, trailers), counted as RFC 9113 6.5.2 does: name, value and
     * 32 bytes per field. Past it nothing more is kept: the stream is reset and the client
     * gets a 502. nghttp2 still decodes the rest of the block (HPACK state is per
     * connection) but hands it to no exchange. */
    size_t listed = r->rh.len + 32 * r->rh.cnt + name_len + value_len + 32;
    if (listed > header_list_max(r->conn)) {
        abort_stream(r, NGHTTP2_ENHANCE_YOUR_CALM, 502, "upstream headers too large");
        return 0;
    }
    if (px__upstream_hdrs_add(&r->rh, (const char *)name, name_len, (const char *)value,
                              value_len) < 0) {
        abort_stream(r, NGHTTP2_INTERNAL_ERROR, 502, "upstream out of memory");
        return 0;
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    px_upconn_t *c = ud;
    px_upstream_req_t *r;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        r = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
        if (!r)
            return 0;
        if (!r->headers_sent) {
            if (r->status >= 100 && r->status < 200 && r->status != 101 && !end) {
                /* Informational: passed on; the final head follows in another HEADERS
                 * frame. */
                int st = r->status;
                r->status = 0;
                (void)px__upstream_deliver_informational(r, st);
                return 0; /* if it finished the exchange, r is done: nothing more here */
            }
            if (r->status < 200 || r->status > 999) {
                abort_stream(r, NGHTTP2_PROTOCOL_ERROR, 502, "upstream bad response");
                return 0;
            }
            r->head_only = end; /* gRPC's trailers-only form: no DATA, no trailers */
            if (px__upstream_deliver_headers(r, false) < 0)
                return 0; /* failed or cancelled: r is done */
        } else {
            if (!end) {
                abort_stream(r, NGHTTP2_PROTOCOL_ERROR, 502, "upstream bad response");
                return 0;
            }
            if (px__upstream_deliver_headers(r, true) < 0)
                return 0;
        }
        if (end)
            finish(r);
        return 0;
    case NGHTTP2_DATA:
        if (!end)
            return 0;
        r = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
        if (!r)
            return 0;
        if (!r->headers_sent) {
            abort_stream(r, NGHTTP2_PROTOCOL_ERROR, 502, "upstream bad response");
            return 0;
        }
        finish(r);
        return 0;
    case NGHTTP2_GOAWAY:
        /* No new streams here; streams above last_stream_id are closed by nghttp2 with
         * REFUSED_STREAM (on_stream_close), and fail over. */
        c->goaway = true;
        if (c->active_cnt == 0 && c->state == PX_UPCONN_READY)
            px__upstream_conn_close(c);
        return 0;
    case NGHTTP2_SETTINGS:
        /* A larger MAX_CONCURRENT_STREAMS may let queued exchanges in. */
        if (c->state == PX_UPCONN_READY)
            px__upstream_slot_freed(c);
        return 0;
    default:
        return 0;
    }
}

static int on_data_chunk_recv(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                              size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    px_upstream_req_t *r = nghttp2_session_get_stream_user_data(s, sid);
    if (!r) {
        /* Nobody reads this stream any more: give the window back at once. */
        nghttp2_session_consume(s, sid, len);
        return 0;
    }
    if (!r->headers_sent) {
        nghttp2_session_consume(s, sid, len);
        abort_stream(r, NGHTTP2_PROTOCOL_ERROR, 502, "upstream bad response");
        return 0;
    }
    px__upstream_deliver_data(r, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud)
{
    px_upconn_t *c = ud;
    MEM_ASSERT(c->h2_streams > 0);
    c->h2_streams--;
    px_upstream_req_t *r = nghttp2_session_get_stream_user_data(s, sid);
    if (r) {
        /* Closed before the response ended: reset by the upstream, refused, or past a GOAWAY. */
        unbind(r);
        r->stream_id = -1;
        bool refused = error_code == NGHTTP2_REFUSED_STREAM;
        px__upstream_lost(r, refused, refused ? "upstream refused stream" : "upstream reset");
    }
    if (c->state == PX_UPCONN_READY)
        px__upstream_slot_freed(c);
    return 0;
}

static ssize_t on_data_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
    (void)source;
    (void)ud;
    px_upstream_req_t *r = nghttp2_session_get_stream_user_data(s, sid);
    if (!r)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    MEM_ASSERT_HOT(r->stream_id == sid);
    size_t n = 0;
    while (n < length && r->body.len > 0) {
        const uint8_t *p;
        size_t k = MEM_MIN(px__upstream_ring_peek(&r->body, &p), length - n);
        memcpy(buf + n, p, k);
        px__upstream_ring_drop(&r->body, k);
        n += k;
    }
    if (n > 0)
        px__upstream_drained(r, n);
    if (r->req_end && r->body.len == 0) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        r->req_done = true;
        if (r->trailers_cnt > 0) {
            nghttp2_nv *nva = mem_malloc(r->trailers_cnt * sizeof(*nva));
            if (!nva)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            size_t m = 0;
            for (size_t i = 0; i < r->trailers_cnt; i++) {
                const px_header_t *h = &r->trailers[i];
                if (h->name_len == 0 || h->name[0] == ':' ||
                    px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len))
                    continue;
                nva[m++] = (nghttp2_nv){(uint8_t *)h->name, (uint8_t *)h->value, h->name_len,
                                        h->value_len, NGHTTP2_NV_FLAG_NONE};
            }
            int rv = m > 0 ? nghttp2_submit_trailer(s, sid, nva, m) : 0;
            mem_free(nva);
            if (m > 0 && rv == 0)
                *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
        return (ssize_t)n;
    }
    if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    return (ssize_t)n;
}

int px__uph2_callbacks_new(nghttp2_session_callbacks **cbs_out, nghttp2_option **opt_out,
                           uint32_t max_continuations)
{
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        goto fail;
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
    /* CVE-2024-28182 class: the downstream's limits.max_continuations caps the CONTINUATION
     * frames after a response HEADERS too; one more is a connection error in nghttp2
     * (NGHTTP2_ERR_TOO_MANY_CONTINUATIONS), so the connection closes and its exchanges get a
     * 502. 0 turns the count off, as downstream; the header list size still bounds memory. */
    nghttp2_option_set_max_continuations(opt, max_continuations ? max_continuations : SIZE_MAX);
    *cbs_out = cbs;
    *opt_out = opt;
    return 0;
fail:
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    return -ENOMEM;
}

int px__uph2_conn_init(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_H2C);
    MEM_ASSERT(c->h2 == NULL);
    MEM_ASSERT(c->pools->ng_cbs != NULL && c->pools->ng_opt != NULL);
    int rc = -ENOMEM;
    /* The callbacks and options are the worker's (px_upstream_worker_init): nghttp2 makes
     * them with libc calloc, which must not run per connection. */
    if (nghttp2_session_client_new3(&c->h2, c->pools->ng_cbs, c, c->pools->ng_opt,
                                    c->pools->ng_mem) != 0)
        return rc;
    const px_config_t *cfg = c->pools->w->cfg;
    size_t win = cfg ? cfg->limits.stream_buffer_bytes : 65536;
    win = MEM_MIN(MEM_MAX(win, (size_t)16384), UP_H2_WINDOW_MAX);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)win},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)header_list_max(c)},
    };
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, MEM_ARRAY_LEN(iv)) != 0)
        goto fail_session;
    /* The connection window covers every stream's window at once, so streams never starve
     * each other; each stream stays bounded by its own window. */
    size_t streams = MEM_MAX(c->cl->cfg->max_streams_per_conn, 1u);
    size_t conn_win = streams > UP_H2_WINDOW_MAX / win ? UP_H2_WINDOW_MAX : win * streams;
    if (nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, (int32_t)conn_win) != 0)
        goto fail_session;
    return 0;

fail_session:
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    return rc;
}

void px__uph2_conn_fini(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_H2C);
    MEM_ASSERT(c->state == PX_UPCONN_CLOSING);
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
}

bool px__uph2_has_room(const px_upconn_t *c)
{
    MEM_ASSERT_HOT(c->proto == PX_PROTO_H2C);
    if (c->goaway || c->state == PX_UPCONN_CLOSING)
        return false;
    uint32_t max = MEM_MAX(c->cl->cfg->max_streams_per_conn, 1u);
    uint32_t peer =
        nghttp2_session_get_remote_settings(c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return c->h2_streams < MEM_MIN(max, peer);
}

int px__uph2_submit(px_upconn_t *c, px_upstream_req_t *r)
{
    MEM_ASSERT(c->proto == PX_PROTO_H2C);
    MEM_ASSERT(r->stream_id <= 0);
    nghttp2_nv *nva = mem_malloc((r->hdrs_cnt ? r->hdrs_cnt : 1) * sizeof(*nva));
    if (!nva)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < r->hdrs_cnt; i++) {
        const px_header_t *h = &r->hdrs[i];
        if (h->name_len == 0)
            continue;
        if (px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len) ||
            px_http_ieq(h->name, h->name_len, "host", 4) ||
            px_http_ieq(h->name, h->name_len, "http2-settings", 14))
            continue;
        nva[n++] = (nghttp2_nv){(uint8_t *)h->name, (uint8_t *)h->value, h->name_len, h->value_len,
                                NGHTTP2_NV_FLAG_NONE};
    }
    bool body = !(r->req_end && r->body.len == 0 && r->trailers_cnt == 0);
    nghttp2_data_provider prd = {.source = {.ptr = r}, .read_callback = on_data_read};
    int32_t sid = nghttp2_submit_request(c->h2, NULL, nva, n, body ? &prd : NULL, r);
    mem_free(nva);
    if (sid < 0) {
        c->goaway = true; /* stream IDs exhausted or session going away: no more here */
        return -EIO;
    }
    r->stream_id = sid;
    c->h2_streams++;
    if (!body)
        r->req_done = true;
    return 0;
}

void px__uph2_cancel(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    MEM_ASSERT(c != NULL);
    MEM_ASSERT(r->state == PX_UPREQ_ACTIVE);
    int32_t sid = r->stream_id;
    unbind(r);
    /* A stream whose HEADERS frame still waits in nghttp2's queue is not open yet (no stream
     * object; a closed one would have unbound `r` in on_stream_close). RST_STREAM then
     * cancels the queued HEADERS: the request never reaches the upstream, nghttp2 sends no
     * frame for it and closes the stream (on_stream_close, which frees its slot). A client
     * that opens and resets streams at once so costs the upstream nothing. */
    bool queued = sid > 0 && nghttp2_session_find_stream(c->h2, sid) == NULL;
    if (sid > 0 && c->state != PX_UPCONN_CLOSING && (queued || stream_open(c, sid))) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
        px__upstream_conn_dirty(c);
    }
    r->stream_id = -1;
}

void px__uph2_body(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    MEM_ASSERT(c != NULL);
    if (r->stream_id > 0 && !r->req_done) {
        nghttp2_session_resume_data(c->h2, r->stream_id);
        px__upstream_conn_dirty(c);
    }
}

void px__uph2_consumed(px_upstream_req_t *r, size_t len)
{
    px_upconn_t *c = r->conn;
    MEM_ASSERT(c != NULL);
    if (r->stream_id > 0 && c->state == PX_UPCONN_READY) {
        nghttp2_session_consume(c->h2, r->stream_id, len);
        px__upstream_conn_dirty(c);
    }
}

void px__uph2_read(px_upconn_t *c, const uint8_t *data, size_t len)
{
    MEM_ASSERT(c->state == PX_UPCONN_READY);
    ssize_t rv = nghttp2_session_mem_recv(c->h2, data, len);
    if (rv < 0) {
        px__upstream_conn_close(c);
        return;
    }
    if (c->state == PX_UPCONN_READY && !nghttp2_session_want_read(c->h2) &&
        !nghttp2_session_want_write(c->h2))
        px__upstream_conn_close(c);
}

void px__uph2_eof(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_H2C);
    /* Nothing to complete: HTTP/2 frames say where each response ends, so every exchange
     * still on the connection is lost (px__upstream_conn_close reports them). */
}

int px__uph2_fill(px_upconn_t *c)
{
    MEM_ASSERT(c->state == PX_UPCONN_READY);
    MEM_ASSERT(c->wlen == 0);
    int rv = nghttp2_session_send(c->h2);
    if (rv != 0)
        return -EIO;
    return 0;
}

void px__uph2_written(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_H2C);
    if (c->state == PX_UPCONN_READY && !nghttp2_session_want_read(c->h2) &&
        !nghttp2_session_want_write(c->h2))
        px__upstream_conn_close(c);
}
