/*
 * proxy/h2/serve.c: a downstream connection on weir's own HTTP/2 codec
 * (proxy/codec/endpoint.h): how requests come out of the codec and how responses, resets and
 * window updates go in (internal.h's px__h2w_*), and the transport's entry points of h2.h
 * (px_h2_recv, px_h2_send, ...). The stream logic (request fields, routing, the upstream
 * exchange, the access log) is h2.c's.
 *
 * Output: the codec writes frames through the transport's reserve/commit (px_h2_io_t). A frame
 * written outside a flush (a SETTINGS ACK, a PING ACK, a RST_STREAM, response headers) when
 * the write batch is full goes to `ovf`, a buffer from the thread cache that the next send
 * empties into the batch first, so no frame is lost and their order stays; inside a flush a
 * full batch stops the flush instead (the codec keeps what it could not write). DATA payloads
 * are the stream buffer's own chunks, handed to the codec without a copy. The last (usually
 * only) frame of a chunk goes to the transport uncopied where it can take it (h2c,
 * io->data_zc): its header in the batch, the chunk written from where it is and freed once the
 * kernel has it, the stream credited (and the upstream told) at once; otherwise, and for the
 * earlier frames of a chunk longer than a frame, the payload is copied into the batch.
 *
 * Closing: a reset or an END_STREAM asked for outside the codec's own callbacks (from an
 * upstream callback, the idle sweep, shedding) is deferred to the next send, so that a stream
 * never ends (and cancels its upstream exchange) under the upstream callback that asked.
 *
 * Thread: the connection's worker only.
 */
#include "proxy/h2/internal.h"
#include "mem/base.h"

#include <string.h>

#include "mem/malloc.h"
#include "proxy/config/config.h"
#include "proxy/codec/endpoint.h"
#include "proxy/upstream/http.h"
#include "proxy/upstream/upstream.h"

/* Frames written outside a flush that may wait beyond the write batch: a read's worth of
 * control frames answered at once. Past it the codec sees -ENOMEM (the connection fails),
 * which the flood limits make unreachable for a well-configured listener. */
#define OVF_MAX ((size_t)1 << 20)

static void mark_dirty(px_h2_conn_t *c)
{
    c->io->mark_dirty(c->tr);
}

/* ---- the transport under the codec (px_h2_ep_out_t) --------------------------------- */

static uint8_t *out_reserve(void *tr, size_t len)
{
    px_h2_conn_t *c = tr;
    c->res_ovf = false;
    if (c->ovf_len == 0) {
        uint8_t *p = c->io->reserve(c->tr, len);
        if (p != NULL || c->in_flush)
            return p;
        /* Out of room, or of memory for the batch: the overflow (its own allocation) keeps
         * the frame; the send path waits for memory (px_memwait) before it drains it. */
    } else if (c->in_flush) {
        return NULL; /* the overflow goes out first */
    }
    size_t need = c->ovf_len + len;
    if (need > OVF_MAX)
        return NULL;
    if (need > c->ovf_cap) {
        size_t cap = MEM_MAX(need, MEM_MAX(2 * c->ovf_cap, (size_t)4096));
        uint8_t *b = mem_realloc(c->ovf, cap);
        if (b == NULL)
            return NULL;
        c->ovf = b;
        c->ovf_cap = cap;
    }
    c->res_ovf = true;
    return c->ovf + c->ovf_len;
}

static void out_commit(void *tr, size_t len)
{
    px_h2_conn_t *c = tr;
    if (c->res_ovf) {
        MEM_ASSERT(c->ovf_len + len <= c->ovf_cap);
        c->ovf_len += len;
        c->res_ovf = false;
        c->more = true;
        mark_dirty(c);
        return;
    }
    c->io->commit(c->tr, len);
}

static void on_chunk_done(void *arg);
static void chunk_credit(px_chunk_t *ch);

/* Frees a chunk whose bytes the transport wrote from where they were (io->data_zc). */
static void on_chunk_sent(void *arg)
{
    mem_free(arg);
}

static int out_data(void *tr, const uint8_t *hd, const uint8_t *p, size_t len, px_h2_release_fn fn,
                    void *arg)
{
    px_h2_conn_t *c = tr;
    if (fn == on_chunk_done && c->ovf_len == 0 && c->io->data_zc != NULL) {
        /* A chunk of the stream buffer: the transport writes it from where it is, together
         * with its frame header, and frees it once the kernel has it. The stream is done
         * with it now (it may end before the write does): credited as written here. */
        int rc = c->io->data_zc(c->tr, hd, p, len, on_chunk_sent, arg);
        if (rc == 0) {
            c->in_write = true;
            chunk_credit(arg);
            c->in_write = false;
            return 0;
        }
        if (rc != -ENOTSUP)
            return rc;
    }
    uint8_t *b = out_reserve(tr, PX_H2_FRAME_HD_LEN + len);
    if (b == NULL)
        return -ENOMEM;
    memcpy(b, hd, PX_H2_FRAME_HD_LEN);
    if (len > 0)
        memcpy(b + PX_H2_FRAME_HD_LEN, p, len);
    out_commit(tr, PX_H2_FRAME_HD_LEN + len);
    if (fn != NULL) {
        c->in_write = true;
        fn(arg);
        c->in_write = false;
    }
    return 0;
}

static const px_h2_ep_out_t ep_out = {
    .reserve = out_reserve,
    .commit = out_commit,
    .data = out_data,
};

/* ---- requests out of the codec ------------------------------------------------------ */

enum {
    PS_METHOD = 1,
    PS_SCHEME = 2,
    PS_AUTHORITY = 4,
    PS_PATH = 8,
};

static bool name_is(const nghttp2_nv *f, const char *s)
{
    return px_http_ieq((const char *)f->name, f->namelen, s, strlen(s));
}

/* RFC 9113 8.2.2, 8.3 and 8.3.1: a request head weir refuses as malformed (a stream error
 * PROTOCOL_ERROR), as nghttp2 did on this path before. Returns NULL, or why. `*clen` is the
 * content-length (-1 when none). */
static const char *check_request(const px_h2_block_t *b, int64_t *clen)
{
    unsigned seen = 0;
    bool regular = false;
    const nghttp2_nv *method = NULL, *path = NULL;
    *clen = -1;
    for (size_t i = 0; i < b->cnt; i++) {
        const nghttp2_nv *f = &b->fields[i];
        if (f->namelen > 0 && f->name[0] == ':') {
            unsigned bit = 0;
            if (regular)
                return "pseudo-header after a regular field";
            if (name_is(f, ":method"))
                bit = PS_METHOD, method = f;
            else if (name_is(f, ":scheme"))
                bit = PS_SCHEME;
            else if (name_is(f, ":authority"))
                bit = PS_AUTHORITY;
            else if (name_is(f, ":path"))
                bit = PS_PATH, path = f;
            else
                return "unknown pseudo-header";
            if (seen & bit)
                return "repeated pseudo-header";
            seen |= bit;
            continue;
        }
        regular = true;
        /* The codec checked the name's characters: lower case, so the helper applies. */
        if (px_http_is_hop_by_hop((const char *)f->name, f->namelen, (const char *)f->value,
                                  f->valuelen))
            return "connection-specific header field, or te other than trailers";
        if (name_is(f, "content-length")) {
            int64_t n = px_http_parse_content_length((const char *)f->value, f->valuelen);
            if (n < 0 || (*clen >= 0 && n != *clen))
                return "invalid content-length";
            *clen = n;
        }
    }
    if (method == NULL)
        return "no :method";
    if (px_http_ieq((const char *)method->value, method->valuelen, "CONNECT", 7)) {
        if (seen & (PS_SCHEME | PS_PATH))
            return "CONNECT with :scheme or :path";
        if (!(seen & PS_AUTHORITY))
            return "CONNECT without :authority";
        return NULL;
    }
    if (!(seen & PS_SCHEME) || path == NULL)
        return "no :scheme or :path";
    if (path->valuelen == 0)
        return "empty :path";
    if (path->value[0] != '/' &&
        !(path->valuelen == 1 && path->value[0] == '*' &&
          px_http_ieq((const char *)method->value, method->valuelen, "OPTIONS", 7)))
        return "invalid :path";
    if (b->end_stream && *clen > 0)
        return "content-length without a body";
    return NULL;
}

/* A malformed message: RST_STREAM(PROTOCOL_ERROR) now (inside the codec's callback). */
static void malformed(px_h2_conn_t *c, px_stream_t *st)
{
    MEM_ASSERT(c->in_cb);
    px__h2_reset(st, NGHTTP2_PROTOCOL_ERROR);
    /* The client's doing: it counts against the reset budget (proxy/h2/guard.h). */
    if (px_h2_guard_reset(&c->guard, uv_now(&c->w->loop), c->w->cfg->limits.rst_per_sec))
        (void)px_h2_ep_fail(c->ep, NGHTTP2_ENHANCE_YOUR_CALM, "stream resets caused");
}

/* Hands the block's fields to the shared request logic (h2.c), as nghttp2's path does field by
 * field. Returns 0 or -ENOMEM (the stream was reset). */
static int take_fields(px_stream_t *st, const px_h2_block_t *b, bool trailer)
{
    for (size_t i = 0; i < b->cnt; i++) {
        const nghttp2_nv *f = &b->fields[i];
        int rc = px__h2_field(st, (const char *)f->name, f->namelen, (const char *)f->value,
                              f->valuelen, trailer);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int on_request(px_h2_conn_t *c, px_h2_ep_stream_t *es, const px_h2_block_t *b)
{
    px_worker_t *w = c->w;
    c->refused = true; /* counted here, not again in on_stream_close */
    if (px__h2_refuse_new(c))
        return -ENOMEM; /* the codec answers REFUSED_STREAM */
    px_stream_t *st = px__h2_stream_open(c, px_h2_ep_stream_id(es), px_h2_ep_stream_sub(es));
    if (st == NULL) {
        MEM_STAT_ADD(w->stats.conn_cap_resets, 1);
        MEM_STAT_ADD(w->stats.streams_reset_by_us, 1);
        return -ENOMEM;
    }
    c->refused = false;
    st->es = es;
    px_h2_ep_stream_set_ud(es, st);
    if (check_request(b, &st->req_clen) != NULL) {
        malformed(c, st);
        return 0;
    }
    if (take_fields(st, b, false) != 0)
        return 0; /* reset with REFUSED_STREAM */
    if (b->too_large)
        st->hdr_too_large = true;
    px__h2_dispatch(st, b->end_stream);
    if (b->end_stream)
        st->req_ended = true;
    return 0;
}

static int on_trailers(px_h2_conn_t *c, px_stream_t *st, const px_h2_block_t *b)
{
    if (st->phase == PX_PHASE_RESET)
        return 0;
    for (size_t i = 0; i < b->cnt; i++) {
        if (b->fields[i].namelen > 0 && b->fields[i].name[0] == ':') {
            malformed(c, st);
            return 0;
        }
    }
    if (st->req_clen >= 0 && st->req_body != (uint64_t)st->req_clen) {
        malformed(c, st);
        return 0;
    }
    if (take_fields(st, b, true) != 0)
        return 0; /* reset with REFUSED_STREAM */
    if (!st->req_ended)
        px__h2_request_ended(st);
    return 0;
}

static int on_headers(void *ud, px_h2_ep_stream_t *es, const px_h2_block_t *b)
{
    px_h2_conn_t *c = ud;
    px_stream_t *st = px_h2_ep_stream_ud(es);
    MEM_ASSERT(!c->in_cb);
    c->in_cb = true;
    int rc = st == NULL ? on_request(c, es, b) : on_trailers(c, st, b);
    c->in_cb = false;
    return rc;
}

static int on_data(void *ud, px_h2_ep_stream_t *es, const uint8_t *p, size_t len, bool end_stream)
{
    px_h2_conn_t *c = ud;
    px_stream_t *st = px_h2_ep_stream_ud(es);
    if (st == NULL) {
        px_h2_ep_consume(c->ep, es, len);
        return 0;
    }
    c->in_cb = true;
    st->req_body += len;
    if (st->phase != PX_PHASE_RESET && st->req_clen >= 0 &&
        (st->req_body > (uint64_t)st->req_clen ||
         (end_stream && st->req_body != (uint64_t)st->req_clen))) {
        px_h2_ep_consume(c->ep, es, len);
        malformed(c, st);
        goto done;
    }
    if (len > 0)
        px__h2_request_data(st, p, len); /* may reset st: its memory stays for this call */
    if (end_stream && st->phase != PX_PHASE_RESET && !st->req_ended)
        px__h2_request_ended(st);
done:
    c->in_cb = false;
    return 0;
}

static void rst_q_del(px_h2_conn_t *c, px_stream_t *st)
{
    px_stream_t **pp = &c->rst_q;
    while (*pp != st)
        pp = &(*pp)->rst_next;
    *pp = st->rst_next;
    st->rst_next = NULL;
    st->rst_queued = false;
}

static void resp_q_del(px_h2_conn_t *c, px_stream_t *st)
{
    px_stream_t **pp = &c->resp_q, *prev = NULL;
    while (*pp != st) {
        prev = *pp;
        pp = &(*pp)->resp_next;
    }
    *pp = st->resp_next;
    if (c->resp_q_tail == st)
        c->resp_q_tail = prev;
    st->resp_next = NULL;
}

void px__h2w_unqueue(px_stream_t *st)
{
    MEM_ASSERT(st->phase == PX_PHASE_RESPONSE_QUEUED);
    resp_q_del(st->conn, st);
}

static void on_stream_close(void *ud, px_h2_ep_stream_t *es, uint32_t code)
{
    px_h2_conn_t *c = ud;
    px_stream_t *st = px_h2_ep_stream_ud(es);
    if (st == NULL) {
        /* A stream the codec refused before it reached us: its header copies passed the
         * stream's sub-arena cap (limits.stream_memory). Counted as h2.c counts its own. */
        if (code == NGHTTP2_REFUSED_STREAM && !c->refused) {
            MEM_STAT_ADD(c->w->stats.stream_cap_resets, 1);
            MEM_STAT_ADD(c->w->stats.streams_reset_by_us, 1);
        }
        c->refused = false;
        return;
    }
    px_h2_ep_stream_set_ud(es, NULL);
    if (st->rst_queued)
        rst_q_del(c, st);
    if (st->phase == PX_PHASE_RESPONSE_QUEUED)
        resp_q_del(c, st);
    st->es = NULL;
    if (code != NGHTTP2_NO_ERROR && st->phase != PX_PHASE_RESET)
        MEM_STAT_ADD(c->w->stats.streams_reset_by_peer, 1);
    px__h2_stream_end(c, st); /* the codec frees the sub-arena when its call returns */
    px_stream_set_phase(st, PX_PHASE_CLOSED);
    c->io->streams_changed(c->tr);
}

/* The normal end of an idle or draining connection (px_h2_goaway): not an error, not logged. */
static const char reason_closing[] = "closing";

/* The reasons this worker has logged a connection's end for. Each is logged the first time,
 * with the peer; later ends for it are only counted (/stats), so that a client repeating an
 * abuse cannot flood the log. The reasons are the codec's and this folder's static strings, a
 * few dozen at most; past the table's size nothing more is logged. */
#define FAIL_LOGGED_MAX 64
static __thread const char *fail_logged[FAIL_LOGGED_MAX];
static __thread size_t fail_logged_cnt;

static bool fail_first(const char *reason)
{
    for (size_t i = 0; i < fail_logged_cnt; i++) {
        if (strcmp(fail_logged[i], reason) == 0)
            return false;
    }
    if (fail_logged_cnt == FAIL_LOGGED_MAX)
        return false;
    fail_logged[fail_logged_cnt++] = reason;
    return true;
}

/* Every end of a connection for an error or an abuse comes here, once, from px_h2_ep_fail
 * (which then writes GOAWAY with `reason` as its debug data): the flood and rate limits
 * (on_frame), the CONTINUATION and header-list limits and every protocol error (the codec),
 * the resets a client causes (caused_over, malformed), the header timeout, a bad preface. */
static void on_fail(void *ud, uint32_t code, const char *reason)
{
    px_h2_conn_t *c = ud;
    MEM_ASSERT(reason != NULL);
    /* The client's GOAWAY with an error ended it: weir sends no GOAWAY of its own then. */
    bool peers = strcmp(reason, PX_H2_EP_PEER_GOAWAY) == 0;
    if (reason != reason_closing && fail_first(reason))
        fprintf(stderr,
                "weir: worker %u: HTTP/2 connection from %s ended: %s(%s, \"%s\") (the first "
                "for this reason; later ones are counted in /stats)\n",
                c->w->idx, c->peer_ip[0] ? c->peer_ip : "?", peers ? "its GOAWAY" : "GOAWAY",
                nghttp2_http2_strerror(code), reason);
    if (code == NGHTTP2_ENHANCE_YOUR_CALM && !peers)
        MEM_STAT_ADD(c->w->stats.flood_goaway, 1);
    else if (code != NGHTTP2_NO_ERROR)
        MEM_STAT_ADD(c->w->stats.conn_closed_error, 1);
    if (!peers)
        MEM_STAT_ADD(c->w->stats.goaway_sent, 1);
    mark_dirty(c);
}

static uint64_t on_now_ms(void *ud)
{
    px_h2_conn_t *c = ud;
    return uv_now(&c->w->loop);
}

/* "MadeYouReset" (CVE-2025-8671): the resets the codec sent for the client's stream errors
 * since the last look share limits.rst_per_second with the ones the client sends (proxy/h2/
 * guard.h). True once past it. */
static bool caused_over(px_h2_conn_t *c, const px_h2_ep_counters_t *cnt)
{
    bool over = false;
    while (c->rst_caused_seen < cnt->rst_caused) {
        c->rst_caused_seen++;
        if (px_h2_guard_reset(&c->guard, uv_now(&c->w->loop), c->w->cfg->limits.rst_per_sec))
            over = true;
    }
    return over;
}

/* The README's rate limits, frame by frame, before the codec acts on the frame. */
static const char *on_frame(void *ud, const px_h2_frame_hd_t *hd, const px_h2_ep_counters_t *cnt)
{
    px_h2_conn_t *c = ud;
    const px_limits_cfg_t *lim = &c->w->cfg->limits;
    if (caused_over(c, cnt))
        return "stream resets caused";
    switch (hd->type) {
    case PX_H2_RST_STREAM:
        /* Rapid reset: streams opened and cancelled at once cost us, not the client. */
        if (px_h2_guard_reset(&c->guard, uv_now(&c->w->loop), lim->rst_per_sec))
            return "RST_STREAM rate";
        break;
    case PX_H2_SETTINGS:
    case PX_H2_PING:
        if (px__h2_over_rate(c, &c->ctl_cnt, lim->control_frames_per_sec))
            return "control frame rate";
        break;
    case PX_H2_DATA:
        if (hd->length == 0 && !(hd->flags & PX_H2_FLAG_END_STREAM) &&
            px__h2_over_rate(c, &c->ctl_cnt, lim->control_frames_per_sec))
            return "empty frame rate";
        break;
    case PX_H2_HEADERS:
        if (!(hd->flags & PX_H2_FLAG_END_HEADERS))
            c->hb_start_ms = uv_now(&c->w->loop);
        break;
    default:
        break;
    }
    return NULL;
}

static const px_h2_ep_cbs_t ep_cbs = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_stream_close = on_stream_close,
    .on_fail = on_fail,
    .now_ms = on_now_ms,
    .on_frame = on_frame,
};

/* ---- responses into the codec ------------------------------------------------------- */

static void resp_q_del(px_h2_conn_t *c, px_stream_t *st);

/* The response head is queued and written at the next send (px_h2_send), as nghttp2 did: a
 * request found malformed later in the same read (its trailers, its content-length, a
 * connection error) is answered with its error alone, and a head that ends the stream ends it
 * there, never under the upstream callback that submitted it. */
int px__h2w_respond(px_stream_t *st, const nghttp2_nv *nva, size_t cnt, bool body)
{
    px_h2_conn_t *c = st->conn;
    MEM_ASSERT(st->phase == PX_PHASE_WAITING_UPSTREAM);
    if (st->es == NULL)
        return -EPIPE;
    nghttp2_nv *copy = mem_subregion_alloc(st->sub, cnt * sizeof(*copy));
    if (copy == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        uint8_t *b = mem_subregion_alloc(st->sub, nva[i].namelen + nva[i].valuelen + 1);
        if (b == NULL)
            return -ENOMEM;
        memcpy(b, nva[i].name, nva[i].namelen);
        memcpy(b + nva[i].namelen, nva[i].value, nva[i].valuelen);
        copy[i] = (nghttp2_nv){b, b + nva[i].namelen, nva[i].namelen, nva[i].valuelen, 0};
    }
    st->resp_nva = copy;
    st->resp_nva_cnt = cnt;
    st->resp_body = body;
    px_stream_set_phase(st, PX_PHASE_RESPONSE_QUEUED);
    st->resp_next = NULL;
    if (c->resp_q_tail != NULL)
        c->resp_q_tail->resp_next = st;
    else
        c->resp_q = st;
    c->resp_q_tail = st;
    mark_dirty(c);
    return 0;
}

int px__h2w_info(px_stream_t *st, const nghttp2_nv *nva, size_t cnt)
{
    if (st->es == NULL)
        return -EPIPE;
    int rc = px_h2_ep_submit_headers(st->conn->ep, st->es, nva, cnt, false);
    mark_dirty(st->conn);
    return rc;
}

void px__h2w_reset(px_stream_t *st, uint32_t code)
{
    px_h2_conn_t *c = st->conn;
    if (st->es == NULL || st->rst_queued)
        return;
    if (c->in_cb && px_h2_ep_submit_rst(c->ep, st->es, code) == 0) {
        mark_dirty(c);
        return; /* st ended; its memory stays until the codec's call returns */
    }
    st->rst_code = code;
    st->rst_queued = true;
    st->rst_next = c->rst_q;
    c->rst_q = st;
    mark_dirty(c);
}

/* A body chunk the codec wrote (or dropped, its stream closing, or handed to the transport):
 * the stream no longer holds it, and the upstream may send as much again. */
static void chunk_credit(px_chunk_t *ch)
{
    px_stream_t *st = ch->owner;
    size_t n = ch->len - ch->off;
    MEM_ASSERT(st != NULL);
    MEM_ASSERT(st->buffered >= n);
    ch->owner = NULL;  /* the stream may end before the chunk is freed (on_chunk_sent) */
    st->buffered -= n; /* held until now: the overload manager weighs streams by it */
    px__h2_tenant_weigh(st);
    if (st->conn->in_write) {
        st->bytes_out += n;
        st->progress_ms = uv_now(&st->conn->w->loop);
    }
    if (st->up != NULL && n > 0)
        px_upstream_consumed(st->up, n);
}

/* A body chunk the codec wrote into the batch or dropped: credited and freed. */
static void on_chunk_done(void *arg)
{
    chunk_credit(arg);
    mem_free(arg);
}

void px__h2w_resume(px_stream_t *st)
{
    px_h2_conn_t *c = st->conn;
    px_h2_ep_stream_t *es = st->es;
    if (es == NULL || st->phase != PX_PHASE_RESPONSE_BODY)
        return;
    int rc = 0;
    size_t k = st->static_len - st->static_off;
    if (k > 0) {
        /* Config or sub-arena bytes: they outlive the stream's queue. */
        rc =
            px_h2_ep_submit_data(c->ep, es, st->static_body + st->static_off, k, false, NULL, NULL);
        if (rc != 0)
            goto fail;
        st->static_off += k;
        st->bytes_out += k;
    }
    while (st->chunks != NULL) {
        px_chunk_t *ch = st->chunks;
        size_t n = ch->len - ch->off;
        st->chunks = ch->next;
        if (st->chunks == NULL)
            st->chunks_tail = NULL;
        /* st->buffered still counts it (and the on_up_data cap with it) until it is written
         * or dropped: on_chunk_done. */
        ch->next = NULL;
        ch->owner = st;
        if (n == 0) {
            mem_free(ch);
            continue;
        }
        rc = px_h2_ep_submit_data(c->ep, es, ch->data + ch->off, n, false, on_chunk_done, ch);
        if (rc != 0) {
            ch->next = st->chunks;
            st->chunks = ch;
            if (st->chunks_tail == NULL)
                st->chunks_tail = ch;
            goto fail;
        }
    }
    if (st->resp_done) {
        /* Set first: a submit that ends a stream whose request has ended too closes it at
         * once, and its close frees `st` (ASan: use-after-poison here on e2ecodec_95). On
         * failure nothing was submitted: the stream is still ours, and reset from there. */
        px_stream_set_phase(st, PX_PHASE_RESPONSE_SENT);
        if (st->resp_trailers_cnt > 0)
            rc = px_h2_ep_submit_headers(c->ep, es, st->resp_trailers, st->resp_trailers_cnt, true);
        else
            rc = px_h2_ep_submit_data(c->ep, es, NULL, 0, true, NULL, NULL);
        if (rc != 0)
            goto fail;
        /* st may be freed */
    }
    mark_dirty(c);
    return;
fail:
    MEM_STAT_ADD(c->w->stats.stream_cap_resets, 1);
    px__h2_reset(st, NGHTTP2_INTERNAL_ERROR);
}

void px__h2w_consume(px_stream_t *st, size_t len)
{
    if (st->es == NULL)
        return; /* closed: the codec took its bytes back */
    px_h2_ep_consume(st->conn->ep, st->es, len);
    mark_dirty(st->conn);
}

void px__h2w_terminate(px_h2_conn_t *c, uint32_t code, const char *why)
{
    (void)px_h2_ep_fail(c->ep, code, why);
    mark_dirty(c);
}

const char *px_h2_stream_state(const px_stream_t *st)
{
    MEM_ASSERT(st != NULL);
    if (st->es == NULL)
        return "closed";
    return px_h2_state_name(px_h2_ep_stream_state(st->es));
}

int px_h2_reject_preface(px_h2_conn_t *c)
{
    MEM_ASSERT(c->ep != NULL);
    MEM_ASSERT(!c->started);
    /* Our SETTINGS first: the server's preface is the first frame it sends (RFC 9113 3.4). */
    if (px_h2_ep_start(c->ep) != 0)
        return -ENOMEM;
    c->started = true;
    (void)px_h2_ep_fail(c->ep, NGHTTP2_PROTOCOL_ERROR, "invalid connection preface");
    MEM_ASSERT(px_h2_ep_done(c->ep));
    mark_dirty(c);
    return 0;
}

int px_h2_recv(px_h2_conn_t *c, const uint8_t *data, size_t len)
{
    MEM_ASSERT(c->ep != NULL);
    if (px_h2_ep_done(c->ep) && px_h2_ep_error(c->ep) != NGHTTP2_NO_ERROR)
        return 0; /* failed: the GOAWAY goes out, then the connection closes */
    int rc = 0;
    if (!c->started) {
        /* Our SETTINGS goes out once the client's preface is whole: before it, the transport
         * may still turn out to speak HTTP/1.1 (or be in the TLS handshake). */
        size_t k = MEM_MIN(len, (size_t)(PX_H2_PREFACE_LEN - c->preface_fed));
        rc = px_h2_ep_feed(c->ep, data, k);
        c->preface_fed += (uint8_t)k;
        data += k;
        len -= k;
        if (rc == 0 && c->preface_fed == PX_H2_PREFACE_LEN) {
            if (px_h2_ep_start(c->ep) != 0)
                return -EPROTO;
            c->started = true;
        }
    }
    if (rc == 0 && len > 0)
        rc = px_h2_ep_feed(c->ep, data, len);
    /* Resets caused by the read's last frames, which no later frame's on_frame saw. */
    if (rc == 0 && caused_over(c, px_h2_ep_counters(c->ep)))
        rc = px_h2_ep_fail(c->ep, NGHTTP2_ENHANCE_YOUR_CALM, "stream resets caused");
    mark_dirty(c);
    /* -EPROTO: the GOAWAY is in the output; px_h2_want_io says close once it is written. */
    return rc == -ENOMEM ? -EPROTO : 0;
}

/* Writes the queued response head of `st` (first on resp_q), then what its body buffer holds.
 * Returns false when memory ran out (it stays queued). */
static bool w_write_head(px_h2_conn_t *c, px_stream_t *st)
{
    MEM_ASSERT(c->resp_q == st);
    MEM_ASSERT(st->es != NULL);
    bool body = st->resp_body;
    resp_q_del(c, st);
    /* Set first: a head that ends a stream whose request has ended closes it inside the
     * submit, and its close must not look for it on the queue. */
    px_stream_set_phase(st, body ? PX_PHASE_RESPONSE_BODY : PX_PHASE_RESPONSE_SENT);
    int rc = px_h2_ep_submit_headers(c->ep, st->es, st->resp_nva, st->resp_nva_cnt, !body);
    if (rc == -ENOMEM) {
        /* Nothing was written: the head waits again, first in line. */
        px_stream_set_phase(st, PX_PHASE_RESPONSE_QUEUED);
        st->resp_next = c->resp_q;
        c->resp_q = st;
        if (c->resp_q_tail == NULL)
            c->resp_q_tail = st;
        return false;
    }
    /* Without a body the head may have ended the stream: st is not touched again. */
    if (rc == 0 && body)
        px__h2w_resume(st);
    return true;
}

int px_h2_send(px_h2_conn_t *c)
{
    MEM_ASSERT(c->ep != NULL);
    /* What overflowed the batch goes first, so frames keep their order. */
    while (c->ovf_len > 0) {
        size_t k = MEM_MIN(c->ovf_len, c->io->room(c->tr));
        uint8_t *p = k > 0 ? c->io->reserve(c->tr, k) : NULL;
        if (p == NULL) {
            c->more = true;
            return 0;
        }
        memcpy(p, c->ovf, k);
        c->io->commit(c->tr, k);
        memmove(c->ovf, c->ovf + k, c->ovf_len - k);
        c->ovf_len -= k;
    }
    mem_free(c->ovf); /* an idle connection holds none */
    c->ovf = NULL;
    c->ovf_cap = 0;
    while (c->rst_q != NULL) {
        px_stream_t *st = c->rst_q;
        /* Closing it takes it off the queue (on_stream_close). */
        if (px_h2_ep_submit_rst(c->ep, st->es, st->rst_code) != 0) {
            c->more = true;
            return 0;
        }
        MEM_ASSERT(c->rst_q != st);
    }
    while (c->resp_q != NULL) {
        if (!w_write_head(c, c->resp_q)) {
            c->more = true;
            return 0;
        }
    }
    if (c->ovf_len > 0) {
        c->more = true;
        return 0;
    }
    c->in_flush = true;
    int rc = px_h2_ep_flush(c->ep);
    c->in_flush = false;
    c->more = rc != 0;
    return 0;
}

bool px_h2_want_write(px_h2_conn_t *c)
{
    return c->more || c->ovf_len > 0 || c->rst_q != NULL || c->resp_q != NULL;
}

bool px_h2_want_io(px_h2_conn_t *c)
{
    return !px_h2_ep_done(c->ep) || px_h2_want_write(c);
}

void px_h2_shutdown_notice(px_h2_conn_t *c)
{
    if (c->drain_notice)
        return;
    c->drain_notice = true;
    if (px_h2_ep_shutdown(c->ep) == 0)
        MEM_STAT_ADD(c->w->stats.goaway_sent, 1);
    mark_dirty(c);
}

/* The final GOAWAY (idle timeout, shedding, the drain's second step): with no stream live the
 * connection ends now; otherwise the two-step shutdown lets the live ones finish. */
void px_h2_goaway(px_h2_conn_t *c)
{
    if (px_h2_ep_streams_cnt(c->ep) == 0)
        (void)px_h2_ep_fail(c->ep, NGHTTP2_NO_ERROR, reason_closing);
    else if (px_h2_ep_shutdown(c->ep) == 0)
        MEM_STAT_ADD(c->w->stats.goaway_sent, 1);
    mark_dirty(c);
}

void px__h2w_tick(px_h2_conn_t *c, uint64_t now_ms)
{
    bool was_done = px_h2_ep_done(c->ep);
    (void)px_h2_ep_tick(c->ep);
    uint32_t hlimit = c->w->cfg->limits.header_timeout_ms;
    /* Slowloris: a header block open header_timeout after it began. Nothing else may come on
     * the connection meanwhile (RFC 9113 6.10), so the whole connection ends. */
    if (hlimit > 0 && px_h2_ep_block_open(c->ep) && now_ms - c->hb_start_ms >= hlimit) {
        MEM_STAT_ADD(c->w->stats.timeouts_header, 1);
        (void)px_h2_ep_fail(c->ep, NGHTTP2_NO_ERROR, "header timeout");
    }
    if (px_h2_ep_done(c->ep) != was_done)
        mark_dirty(c);
    /* Idle at a tick (one a second): the HPACK encoder and its table go until the next
     * response, and the decoder's once the peer acknowledges the SETTINGS that holds its
     * table to 0 (px_h2_ep_trim); a connection busy between ticks keeps them. */
    else if (px_h2_ep_idle(c->ep) && c->streams_cnt == 0 && px_h2_ep_trim(c->ep))
        mark_dirty(c); /* the SETTINGS frame */
}

void px_h2_streams_end(px_h2_conn_t *c)
{
    if (c->ep == NULL)
        return;
    px_h2_ep_free(c->ep); /* every stream closes through on_stream_close */
    c->ep = NULL;
    MEM_ASSERT(c->streams == NULL);
    MEM_ASSERT(c->rst_q == NULL);
}

void px_h2_session_free(px_h2_conn_t *c)
{
    px_h2_streams_end(c);
    mem_free(c->ovf);
    c->ovf = NULL;
    c->ovf_len = c->ovf_cap = 0;
}

size_t px_h2_conn_size(void)
{
    return MEM_ALIGN_UP(sizeof(px_h2_conn_t), (size_t)16) + px_h2_ep_size();
}

int px_h2_session_new(px_h2_conn_t *c, nghttp2_mem *mem)
{
    const px_limits_cfg_t *lim = &c->w->cfg->limits;
    MEM_ASSERT(c->ep == NULL);
    MEM_ASSERT(c->io != NULL);
    px_h2_ep_config_t cfg;
    px_h2_ep_config_default(&cfg, mem);
    size_t win = lim->stream_buffer_bytes ? lim->stream_buffer_bytes : 65535;
    if (win > 0x7fffffff)
        win = 0x7fffffff;
    cfg.max_concurrent_streams = lim->max_concurrent_streams;
    cfg.initial_window = (uint32_t)win;
    cfg.max_header_list_size = lim->max_header_list_bytes;
    cfg.max_continuations = lim->max_continuations;
    cfg.stream_cap_bytes = lim->stream_bytes_max;
    /* The endpoint's struct follows c in its object (px_h2_conn_size): an idle connection's
     * HTTP/2 side is one 896-byte object of the thread cache, not a region chunk. */
    void *at = (char *)c + MEM_ALIGN_UP(sizeof(*c), (size_t)16);
    c->ep = px_h2_ep_new_at(at, c->region, PX_H2_ROLE_SERVER, &cfg, &ep_out, c, &ep_cbs, c);
    if (c->ep == NULL)
        return -ENOMEM;
    return 0; /* px_h2_ep_start follows the client's preface (px_h2_recv) */
}
