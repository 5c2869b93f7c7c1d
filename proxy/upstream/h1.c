/*
 * proxy/upstream/h1.c: HTTP/1.1 upstream connections: one exchange at a time on a pooled
 * keep-alive connection (see upstream_h1.h).
 *
 * Instances: the parser state lives in its px_upconn_t. Thread: the worker's loop thread.
 *
 * Requests are serialized by hand into the connection's batch buffer: the request line from
 * :method and :path, Host from :authority (RFC 9113 8.3.1; a host header that came along is
 * not written: px_forward_check has refused one that differs), the other headers minus
 * HTTP/2-only and hop-by-hop ones, then the body, with the downstream's
 * content-length when it gave one and chunked otherwise (so request trailers can follow).
 * Responses are parsed with http_parser 2.9, which hands trailers of a chunked body through
 * the same header callbacks with F_TRAILING set. Flow control: the socket is read only while
 * the exchange has fewer than limits.stream_buffer_bytes delivered and not yet consumed, and a
 * read never takes more than what is left of that bound.
 */
#include "proxy/upstream/h1.h"
#include "mem/base.h"

#include <stdio.h>
#include <string.h>

#include "mem/malloc.h"
#include "proxy/core/worker-t.h"

/* A chunk header ("%zx\r\n") plus the CRLF after the chunk. */
#define UP_H1_CHUNK_OVERHEAD 20

static size_t stream_buffer_bytes(const px_upconn_t *c)
{
    const px_config_t *cfg = c->pools->w->cfg;
    return MEM_MAX(cfg ? cfg->limits.stream_buffer_bytes : 65536, (size_t)16384);
}

size_t px__uph1_read_room(const px_upconn_t *c)
{
    MEM_ASSERT_HOT(c->proto == PX_PROTO_HTTP1);
    if (!c->cur)
        return c->rcap;
    size_t cap = stream_buffer_bytes(c);
    size_t held = c->cur->resp_unacked;
    return held >= cap ? 0 : cap - held;
}

static bool has_crlf(const char *s, size_t len)
{
    return memchr(s, '\r', len) != NULL || memchr(s, '\n', len) != NULL ||
           memchr(s, '\0', len) != NULL;
}

static bool skip_request_header(const px_header_t *h)
{
    if (h->name_len == 0 || h->name[0] == ':')
        return true;
    if (px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len))
        return true;
    /* "te: trailers" is end-to-end on HTTP/2 only; HTTP/1.1 would need Connection: te. Host
     * is written from :authority. */
    return px_http_ieq(h->name, h->name_len, "te", 2) ||
           px_http_ieq(h->name, h->name_len, "http2-settings", 14) ||
           px_http_ieq(h->name, h->name_len, "host", 4);
}

static int wbuf_reserve(px_upconn_t *c, size_t more)
{
    if (c->wlen + more <= c->wcap)
        return 0;
    size_t cap = MEM_MAX(c->wcap * 2, c->wlen + more);
    uint8_t *nb = mem_realloc(c->wbuf, cap);
    if (!nb)
        return -ENOMEM;
    c->wbuf = nb;
    c->wcap = cap;
    return 0;
}

static void wput(px_upconn_t *c, const void *p, size_t len)
{
    MEM_ASSERT_HOT(c->wlen + len <= c->wcap);
    memcpy(c->wbuf + c->wlen, p, len);
    c->wlen += len;
}

/* Serializes the request line and headers of `r` into wbuf. */
static int write_head(px_upconn_t *c, px_upstream_req_t *r)
{
    const px_header_t *method = NULL, *path = NULL, *authority = NULL, *host = NULL;
    size_t need = 64;
    for (size_t i = 0; i < r->hdrs_cnt; i++) {
        const px_header_t *h = &r->hdrs[i];
        if (has_crlf(h->name, h->name_len) || has_crlf(h->value, h->value_len))
            return -EINVAL;
        if (px_http_ieq(h->name, h->name_len, ":method", 7))
            method = h;
        else if (px_http_ieq(h->name, h->name_len, ":path", 5))
            path = h;
        else if (px_http_ieq(h->name, h->name_len, ":authority", 10))
            authority = h;
        else if (px_http_ieq(h->name, h->name_len, "host", 4) && host == NULL)
            host = h;
        need += h->name_len + h->value_len + 4;
    }
    if (!method || !path || method->value_len == 0 || path->value_len == 0)
        return -EINVAL;
    need += 64; /* Host:, Transfer-Encoding: chunked, Connection: close */
    int rc = wbuf_reserve(c, need);
    if (rc < 0)
        return rc;
    wput(c, method->value, method->value_len);
    wput(c, " ", 1);
    wput(c, path->value, path->value_len);
    wput(c, " HTTP/1.1\r\n", 11);
    /* HTTP/1.1 needs a Host (RFC 9112 3.2); only a request without :authority takes the
     * host header (the downstream always gives :authority when there is either). */
    if (authority == NULL)
        authority = host;
    if (authority) {
        wput(c, "Host: ", 6);
        wput(c, authority->value, authority->value_len);
        wput(c, "\r\n", 2);
    }
    for (size_t i = 0; i < r->hdrs_cnt; i++) {
        const px_header_t *h = &r->hdrs[i];
        if (skip_request_header(h))
            continue;
        if (c->h1_chunked && px_http_ieq(h->name, h->name_len, "content-length", 14))
            continue;
        wput(c, h->name, h->name_len);
        wput(c, ": ", 2);
        wput(c, h->value, h->value_len);
        wput(c, "\r\n", 2);
    }
    if (c->h1_chunked)
        wput(c, "Transfer-Encoding: chunked\r\n", 28);
    if (!c->pools->keepalive)
        wput(c, "Connection: close\r\n", 19);
    wput(c, "\r\n", 2);
    MEM_ASSERT(c->wlen <= c->wcap);
    return 0;
}

/* Writes the last chunk and the request trailers. Returns 0, or -EAGAIN when they wait for
 * room in the next batch. */
static int write_last_chunk(px_upconn_t *c, px_upstream_req_t *r)
{
    size_t need = 5;
    for (size_t i = 0; i < r->trailers_cnt; i++)
        need += r->trailers[i].name_len + r->trailers[i].value_len + 4;
    if (c->wlen > 0 && c->wlen + need > c->wcap)
        return -EAGAIN;
    int rc = wbuf_reserve(c, need);
    if (rc < 0)
        return rc;
    wput(c, "0\r\n", 3);
    for (size_t i = 0; i < r->trailers_cnt; i++) {
        const px_header_t *h = &r->trailers[i];
        if (h->name_len == 0 || h->name[0] == ':' || has_crlf(h->name, h->name_len) ||
            has_crlf(h->value, h->value_len) ||
            px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len) ||
            px_http_ieq(h->name, h->name_len, "content-length", 14))
            continue;
        wput(c, h->name, h->name_len);
        wput(c, ": ", 2);
        wput(c, h->value, h->value_len);
        wput(c, "\r\n", 2);
    }
    wput(c, "\r\n", 2);
    return 0;
}

int px__uph1_fill(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_HTTP1);
    MEM_ASSERT(c->wlen == 0);
    px_upstream_req_t *r = c->cur;
    if (!r || r->req_done)
        return 0;
    int rc;
    if (!c->h1_head_sent) {
        rc = write_head(c, r);
        if (rc < 0)
            return rc;
        c->h1_head_sent = true;
    }
    size_t sent = 0;
    while (r->body.len > 0) {
        size_t room = c->wcap - c->wlen;
        if (c->h1_chunked)
            room = room > UP_H1_CHUNK_OVERHEAD ? room - UP_H1_CHUNK_OVERHEAD : 0;
        if (room == 0)
            break;
        const uint8_t *p;
        size_t k = MEM_MIN(px__upstream_ring_peek(&r->body, &p), room);
        if (c->h1_chunked) {
            char hdr[24];
            int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", k);
            MEM_ASSERT(n > 0 && (size_t)n < sizeof(hdr));
            wput(c, hdr, (size_t)n);
            wput(c, p, k);
            wput(c, "\r\n", 2);
        } else {
            wput(c, p, k);
        }
        px__upstream_ring_drop(&r->body, k);
        sent += k;
    }
    if (sent > 0)
        px__upstream_drained(r, sent);
    if (r->req_end && r->body.len == 0) {
        if (c->h1_chunked) {
            rc = write_last_chunk(c, r);
            if (rc == -EAGAIN)
                return 0;
            if (rc < 0)
                return rc;
        }
        r->req_done = true;
    }
    return 0;
}

void px__uph1_written(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_HTTP1);
    (void)c; /* the connection is marked dirty again; the next fill sends what is left */
}

/* ---- response parsing ------------------------------------------------------------------ */

static int on_message_begin(http_parser *p)
{
    px_upconn_t *c = p->data;
    if (!c->cur)
        return -1;
    px__upstream_hdrs_reset(&c->cur->rh);
    c->h1_field_open = false;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    px_upconn_t *c = p->data;
    px_upstream_req_t *r = c->cur;
    if (!r)
        return -1;
    int rc = c->h1_field_open ? px__upstream_hdrs_append(&r->rh, false, at, len)
                              : px__upstream_hdrs_add(&r->rh, at, len, "", 0);
    c->h1_field_open = true;
    return rc < 0 ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    px_upconn_t *c = p->data;
    px_upstream_req_t *r = c->cur;
    if (!r)
        return -1;
    c->h1_field_open = false;
    return px__upstream_hdrs_append(&r->rh, true, at, len) < 0 ? -1 : 0;
}

static int on_headers_complete(http_parser *p)
{
    px_upconn_t *c = p->data;
    px_upstream_req_t *r = c->cur;
    if (!r)
        return -1;
    c->h1_field_open = false;
    int st = (int)p->status_code;
    if (st >= 100 && st < 200) {
        if (st == 101)
            return -1; /* no upgrades through the pool */
        /* Informational: passed on (100 Continue, 103 Early Hints). It has no body whatever
         * its headers say (RFC 9112 6.3), so 1 tells http_parser to skip one: otherwise a
         * Content-Length or chunked header would make it read the final head as a body. The
         * final head follows as the next message (on_message_complete skips this one). */
        r->status = 0;
        return px__upstream_deliver_informational(r, st) < 0 ? -1 : 1;
    }
    /* http_parser takes any number of up to three digits: a status below 100 (or past 999)
     * is a bad response from the upstream, answered with a 502 like the h2c side does. */
    if (st < 200 || st > 999)
        return -1;
    r->status = st;
    if (px__upstream_deliver_headers(r, false) < 0)
        return -1; /* failed or cancelled: stop parsing */
    /* No body after a HEAD, a 204 or a 304, whatever Content-Length or Transfer-Encoding say
     * (RFC 9112 6.3): http_parser 2.9 would otherwise wait for (or swallow) those bytes. */
    return r->is_head || st == 204 || st == 304 ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    px_upconn_t *c = p->data;
    px_upstream_req_t *r = c->cur;
    if (!r || c->state != PX_UPCONN_READY)
        return -1;
    px__upstream_deliver_data(r, (const uint8_t *)at, len);
    return c->cur == r && c->state == PX_UPCONN_READY ? 0 : -1;
}

static int on_message_complete(http_parser *p)
{
    px_upconn_t *c = p->data;
    px_upstream_req_t *r = c->cur;
    if (!r)
        return -1;
    if (!r->headers_sent)
        return 0; /* the end of an informational response */
    c->h1_keepalive = http_should_keep_alive(p) != 0;
    c->h1_msg_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The response of c->cur is complete: hand over trailers and the end, then pool or close. */
static void complete(px_upconn_t *c, bool clean)
{
    px_upstream_req_t *r = c->cur;
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(c->h1_msg_done);
    if (r->rh.cnt > 0 && px__upstream_deliver_headers(r, true) < 0)
        return; /* cancelled in the trailers callback: the connection is already closing */
    bool reuse = clean && c->h1_keepalive && r->req_done && c->pools->keepalive;
    c->cur = NULL;
    c->h1_msg_done = false;
    px__upstream_end(r);
    /* r freed */
    if (c->state != PX_UPCONN_READY)
        return;
    px__upstream_read_start(c);
    if (reuse && c->reading)
        px__upstream_conn_idle(c);
    else
        px__upstream_conn_close(c);
}

int px__uph1_conn_init(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_HTTP1);
    MEM_ASSERT(c->cur == NULL);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    return 0;
}

int px__uph1_submit(px_upconn_t *c, px_upstream_req_t *r)
{
    MEM_ASSERT(c->proto == PX_PROTO_HTTP1);
    MEM_ASSERT(c->cur == NULL);
    c->cur = r;
    c->h1_idle = false;
    c->h1_head_sent = false;
    c->h1_msg_done = false;
    c->h1_field_open = false;
    c->h1_keepalive = false;
    /* A known length goes as is; an open-ended body (or one that ends in trailers) is
     * chunked. A request that ended with its headers has no body at all. */
    c->h1_chunked = !(r->req_end && r->body.len == 0 && r->trailers_cnt == 0) &&
                    (r->content_length < 0 || r->trailers_cnt > 0);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    return 0;
}

void px__uph1_cancel(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    MEM_ASSERT(c != NULL);
    MEM_ASSERT(c->proto == PX_PROTO_HTTP1);
    if (c->cur == r)
        c->cur = NULL;
    /* The exchange stops mid-way: the connection's state is unknown, so it cannot be reused. */
    px__upstream_conn_close(c);
}

void px__uph1_body(px_upstream_req_t *r)
{
    MEM_ASSERT(r->conn != NULL);
    px__upstream_conn_dirty(r->conn);
}

void px__uph1_consumed(px_upstream_req_t *r, size_t len)
{
    px_upconn_t *c = r->conn;
    (void)len;
    MEM_ASSERT(c != NULL);
    if (c->state != PX_UPCONN_READY || c->reading || px__uph1_read_room(c) == 0)
        return;
    px__upstream_read_start(c);
}

void px__uph1_read(px_upconn_t *c, const uint8_t *data, size_t len)
{
    MEM_ASSERT(c->state == PX_UPCONN_READY);
    px_upstream_req_t *r = c->cur;
    if (!r) {
        /* Bytes on an idle connection: nothing asked for them. */
        px__upstream_conn_close(c);
        return;
    }
    if (!c->h1_head_sent) {
        /* Bytes before any of the request was written cannot answer it: they are left over
         * from the previous exchange on this pooled connection, which therefore cannot be
         * reused. Closing it hands r back for a retry on another connection. */
        px__upstream_conn_close(c);
        return;
    }
    r->resp_started = true;
    size_t n = http_parser_execute(&c->parser, &parser_settings, (const char *)data, len);
    if (c->state != PX_UPCONN_READY)
        return; /* cancelled or failed in a callback */
    if (c->h1_msg_done) {
        http_parser_pause(&c->parser, 0);
        complete(c, n == len);
        return;
    }
    if (c->cur != r)
        return;
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || n != len) {
        c->cur = NULL;
        px__upstream_lost(r, false, "upstream bad response");
        px__upstream_conn_close(c);
        return;
    }
    if (px__uph1_read_room(c) == 0 && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

void px__uph1_eof(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_HTTP1);
    px_upstream_req_t *r = c->cur;
    if (!r || !r->headers_sent)
        return; /* px__upstream_conn_close reports (or retries) the exchange */
    /* A body delimited by the close ends here; any other body is cut short. */
    http_parser_execute(&c->parser, &parser_settings, NULL, 0);
    if (c->state == PX_UPCONN_READY && c->h1_msg_done) {
        c->h1_keepalive = false;
        http_parser_pause(&c->parser, 0);
        complete(c, false);
    }
}

static void conn_fini(px_upconn_t *c)
{
    MEM_ASSERT(c->proto == PX_PROTO_HTTP1);
    MEM_ASSERT(c->state == PX_UPCONN_CLOSING);
    /* The parser lives in the connection: nothing of its own to free. */
}

static bool has_room(const px_upconn_t *c)
{
    MEM_ASSERT_HOT(c->proto == PX_PROTO_HTTP1);
    return c->h1_idle && c->state == PX_UPCONN_READY;
}

static void forget(px_upconn_t *c, px_upstream_req_t *r)
{
    MEM_ASSERT(c->proto == PX_PROTO_HTTP1);
    MEM_ASSERT(c->cur == r || c->cur == NULL);
    (void)r; /* the caller clears c->cur */
}

const px_upproto_ops_t px__uph1_ops = {
    .name = "http1",
    .multiplexed = false,
    .conn_init = px__uph1_conn_init,
    .conn_fini = conn_fini,
    .has_room = has_room,
    .submit = px__uph1_submit,
    .cancel = px__uph1_cancel,
    .forget = forget,
    .body = px__uph1_body,
    .consumed = px__uph1_consumed,
    .read = px__uph1_read,
    .read_room = px__uph1_read_room,
    .eof = px__uph1_eof,
    .fill = px__uph1_fill,
    .written = px__uph1_written,
};
