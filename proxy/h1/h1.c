/*
 * proxy/h1/h1.c: the HTTP/1.1 server of a downstream connection (see h1.h): the request head
 * (found here, checked here line by line, parsed by http_parser), the framing decision of
 * RFC 9112 section 6, the body decoders, routing and the upstream exchange, and the response
 * written into the transport's batch.
 *
 * Request smuggling: the head is refused (400, the connection closes) for a bare CR or LF, an
 * obs-fold line, whitespace between a field name and its colon, content-length together with
 * transfer-encoding, more than one content-length (or a list), a transfer-encoding that is
 * not exactly "chunked" (501 when chunked is final after another coding), transfer-encoding
 * on HTTP/1.0 and an Upgrade to h2c; a request line over PX_H1_LINE_MAX is a 414, a head over
 * limits.max_header_list_bytes a 431. The chunked decoder is weir's own and strict: hex sizes
 * of at most 15 digits, extensions of visible characters only, CRLF everywhere, trailers read
 * and dropped. Any framing error ends the connection after its answer, so nothing that
 * follows is read as another request.
 *
 * Request forms besides origin- and absolute-form: CONNECT is a 501 (weir does not tunnel),
 * OPTIONS * is answered by weir itself (proxy/upstream/router.c), and an HTTP/1.0 request
 * without Host takes the connection's local address as its authority (RFC 9112 3.3).
 * New requests ask the transport's admit_request, HTTP/2's overload rule for a new stream.
 *
 * Thread: the connection's worker only.
 */
#include "proxy/h1/h1.h"
#include "mem/base.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <http_parser.h>

#include "mem/malloc.h"
#include "mem/subregion.h"
#include "proxy/config/config.h"
#include "proxy/upstream/dispatch.h"
#include "proxy/upstream/forward.h"
#include "proxy/upstream/http.h"
#include "proxy/upstream/tenant.h"
#include "proxy/upstream/upstream.h"

#define PX_H1_LINE_MAX  8192u      /* request line; nginx's large_client_header_buffers */
#define PX_H1_INPUT_MAX (1u << 20) /* input held while reading is paused: never reached */
#define PX_H1_EXT_MAX   4096u      /* one chunk line's extensions */

typedef struct h1_chunk_s {
    struct h1_chunk_s *next; /* owns */
    uint32_t off, len;
    uint8_t data[];
} h1_chunk_t;

typedef enum body_e { BODY_NONE = 0, BODY_LENGTH, BODY_CHUNKED } body_t;

typedef enum cstate_e {
    CS_SIZE = 0,
    CS_SIZE_WS,
    CS_EXT,
    CS_SIZE_LF,
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER_START,
    CS_TRAILER,
    CS_TRAILER_LF,
    CS_END_LF,
} cstate_t;

struct px_h1_req_s {
    px_h1_conn_t *conn;   /* borrows */
    mem_subregion_t *sub; /* owns: everything tagged subregion */
    /* request (subregion) */
    const char *method, *authority, *path;
    size_t method_len, authority_len, path_len;
    px_header_t *hdrs; /* subregion: regular headers in order, hop-by-hop ones dropped */
    size_t hdrs_cnt;
    bool http10;
    bool keepalive;       /* http_should_keep_alive */
    bool expect_continue; /* the client waits for 100 Continue */
    body_t body;
    uint64_t body_left; /* BODY_LENGTH: bytes still to read; BODY_CHUNKED: of this chunk */
    cstate_t cs;
    uint32_t cdigits, cext, ctrailer;
    bool req_ended; /* the whole request has been read */
    size_t up_out;  /* body bytes handed to the exchange and not yet drained */
    /* routing and upstream */
    const px_route_cfg_t *route; /* borrows: cfg */
    const px_config_t *cfg;      /* owns a reference from dispatch to req_end: the config
                                    the request was routed by (a reload does not change it) */
    px_upstream_req_t *up;       /* owns until on_response_end/on_error/cancel */
    uint8_t up_retries;          /* upstream retries, for the access log */
    bool up_done;
    unsigned tenant;       /* the route's memory tenant (1-based), 0 = none or ended */
    size_t tenant_counted; /* what it counts against the tenant (tenant_weigh) */
    /* response */
    int status; /* 0 until a head is built */
    bool close; /* Connection: close on this response */
    bool no_body;
    bool chunked; /* the response body is sent chunked */
    bool abort;   /* the response cannot be completed: close without ending it */
    bool resp_done;
    bool head_req;
    const char *cont; /* static "100 Continue" to send first, or NULL */
    size_t cont_off;
    char *hbuf; /* subregion: the response head */
    size_t hlen, hoff;
    const uint8_t *static_body; /* borrows: config, static or subregion */
    size_t static_len, static_off;
    h1_chunk_t *chunks, *chunks_tail; /* owns (tcache): upstream body not yet written */
    size_t buffered;
    char *info; /* subregion: informational heads (103) not yet written, or NULL */
    size_t info_len, info_off;
    uint8_t info_cnt;
    char *last; /* subregion: the last chunk with the upstream's trailers, or NULL */
    size_t last_len, last_off;
    uint64_t bytes_out;
    uint64_t started_ns;
};

static const char cont_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void pump(px_h1_conn_t *c);

static inline void mark_dirty(px_h1_conn_t *c)
{
    c->io->mark_dirty(c->tr);
}

/* ---- the last word before closing (no request, or no memory for one) ----------------------- */

/* Answers `status` with `why` and closes: the connection reads nothing more. The response
 * lives in the region (the connection ends soon); without memory the connection just closes. */
static void refuse(px_h1_conn_t *c, int status, const char *why, bool retry_after)
{
    MEM_ASSERT(why != NULL);
    MEM_ASSERT(c->tail == NULL);
    c->closing = true;
    px_http_count_status(&c->w->stats, status);
    size_t cap = strlen(why) + 256;
    char *b = mem_region_alloc(c->region, cap);
    if (b == NULL)
        return; /* want_close: nothing to write */
    int n = snprintf(b, cap,
                     "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\n%sconnection: close\r\n"
                     "content-length: %zu\r\n\r\nweir: %s\n",
                     status, px_http_reason(status), retry_after ? "retry-after: 1\r\n" : "",
                     strlen(why) + 7, why);
    MEM_ASSERT(n > 0 && (size_t)n < cap);
    c->tail = b;
    c->tail_len = (uint32_t)n;
    c->tail_off = 0;
    mark_dirty(c);
}

/* ---- the request's response -------------------------------------------------------------- */

static size_t hdr_line_len(size_t nl, size_t vl)
{
    return nl + 2 + vl + 2;
}

static char *put(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

/* Writes one field line, "name: value\r\n" (hdr_line_len bytes). */
static char *put_field(char *p, const px_header_t *h)
{
    p = put(p, h->name, h->name_len);
    p = put(p, ": ", 2);
    p = put(p, h->value, h->value_len);
    return put(p, "\r\n", 2);
}

/* Builds the response head in the sub-arena: the status line, `hdrs` (hop-by-hop ones
 * dropped), the framing header weir chooses and the connection header. `clen` >= 0 is a
 * length weir sets itself. Returns 0 or -ENOMEM. */
static int build_head(px_h1_req_t *r, int status, const px_header_t *hdrs, size_t cnt, int64_t clen,
                      const char *ctype)
{
    px_h1_conn_t *c = r->conn;
    MEM_ASSERT(r->status == 0);
    MEM_ASSERT(status >= 200 && status <= 999);
    bool has_cl = clen >= 0;
    size_t len = 64 + strlen(px_http_reason(status));
    for (size_t i = 0; i < cnt; i++) {
        const px_header_t *h = &hdrs[i];
        if (px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len))
            continue;
        if (px_http_ieq(h->name, h->name_len, "content-length", 14))
            has_cl = true;
        len += hdr_line_len(h->name_len, h->value_len);
    }
    if (ctype)
        len += hdr_line_len(12, strlen(ctype));
    r->no_body = r->head_req || status == 204 || status == 304;
    r->chunked = false;
    if (!r->no_body && !has_cl) {
        if (r->http10)
            r->close = true; /* the end of the body is the end of the connection */
        else
            r->chunked = true;
    }
    if (c->closing || (!r->req_ended && r->up == NULL && !r->up_done))
        r->close = true;
    len += 64; /* content-length or transfer-encoding, connection, the blank line */
    char *b = mem_subregion_alloc(r->sub, len);
    if (b == NULL)
        return -ENOMEM;
    char *p = b;
    p += snprintf(p, 64 + strlen(px_http_reason(status)), "HTTP/1.1 %d %s\r\n", status,
                  px_http_reason(status));
    for (size_t i = 0; i < cnt; i++) {
        const px_header_t *h = &hdrs[i];
        if (px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len))
            continue;
        p = put_field(p, h);
    }
    if (ctype) {
        p = put(p, "content-type: ", 14);
        p = put(p, ctype, strlen(ctype));
        p = put(p, "\r\n", 2);
    }
    if (clen >= 0)
        p += snprintf(p, 40, "content-length: %lld\r\n", (long long)clen);
    if (r->chunked)
        p = put(p, "transfer-encoding: chunked\r\n", 28);
    if (r->close)
        p = put(p, "connection: close\r\n", 19);
    else if (r->http10)
        p = put(p, "connection: keep-alive\r\n", 24);
    p = put(p, "\r\n", 2);
    MEM_ASSERT((size_t)(p - b) <= len);
    r->hbuf = b;
    r->hlen = (size_t)(p - b);
    r->hoff = 0;
    r->status = status;
    px_http_count_status(&c->w->stats, status);
    mark_dirty(c);
    return 0;
}

/* Answers from memory (direct routes, 404, errors). `body` outlives the request. */
static void respond_static(px_h1_req_t *r, int status, const char *ctype, const char *body,
                           size_t len)
{
    r->static_body = (const uint8_t *)body;
    r->static_len = len;
    r->static_off = 0;
    r->resp_done = true;
    if (build_head(r, status, NULL, 0, (int64_t)len, ctype) != 0) {
        MEM_STAT_ADD(r->conn->w->stats.stream_cap_resets, 1);
        r->abort = true;
        mark_dirty(r->conn);
    }
}

/* Answers `status` with "weir: <why>\n" (`why` static or outliving the request). */
static void respond_reason(px_h1_req_t *r, int status, const char *why)
{
    size_t wl = strlen(why);
    char *body = mem_subregion_alloc(r->sub, wl + 8);
    if (body == NULL) {
        r->abort = true;
        mark_dirty(r->conn);
        return;
    }
    int n = snprintf(body, wl + 8, "weir: %s\n", why);
    respond_static(r, status, "text/plain", body, (size_t)n);
}

/* Weighs `r` again for its memory tenant (proxy/upstream/tenant.h): its buffered body and its
 * connection's region (its sub-arena included: one request at a time holds the connection). */
static void tenant_weigh(px_h1_req_t *r)
{
    if (r->tenant == 0)
        return;
    size_t weight = mem_region_bytes(r->conn->region) + r->buffered;
    px_tenant_weigh(r->conn->w, r->tenant, &r->tenant_counted, weight);
}

static void chunks_free(px_h1_req_t *r)
{
    while (r->chunks) {
        h1_chunk_t *k = r->chunks;
        r->chunks = k->next;
        mem_free(k);
    }
    r->chunks_tail = NULL;
    r->buffered = 0;
}

/* ---- upstream exchange callbacks ----------------------------------------------------------- */

static void on_up_headers(void *ud, int status, const px_header_t *hdrs, size_t cnt)
{
    px_h1_req_t *r = ud;
    if (r->abort || r->status != 0)
        return;
    if (build_head(r, status, hdrs, cnt, -1, NULL) != 0) {
        MEM_STAT_ADD(r->conn->w->stats.stream_cap_resets, 1);
        r->abort = true;
        mark_dirty(r->conn);
    }
}

static void on_up_data(void *ud, const uint8_t *data, size_t len)
{
    px_h1_req_t *r = ud;
    if (r->abort || r->no_body || len == 0) {
        if (r->up)
            px_upstream_consumed(r->up, len); /* nobody will send them */
        return;
    }
    h1_chunk_t *k = mem_malloc(sizeof(*k) + len);
    if (k == NULL) {
        MEM_STAT_ADD(r->conn->w->stats.stream_cap_resets, 1);
        r->abort = true;
        mark_dirty(r->conn);
        return;
    }
    k->next = NULL;
    k->off = 0;
    k->len = (uint32_t)len;
    memcpy(k->data, data, len);
    if (r->chunks_tail)
        r->chunks_tail->next = k;
    else
        r->chunks = k;
    r->chunks_tail = k;
    r->buffered += len;
    tenant_weigh(r);
    mark_dirty(r->conn);
}

/* Informational heads passed to the client */
#define INFO_MAX 8

/* An informational (1xx) head from the upstream, such as 103 Early Hints: passed to an
 * HTTP/1.1 client before the final response (RFC 9110 15.2), at most INFO_MAX per request.
 * 100 Continue is weir's own to send (it answers Expect itself) and HTTP/1.0 clients get
 * none (RFC 9110 15.2: a server must not send 1xx to an HTTP/1.0 client). */
static void on_up_info(void *ud, int status, const px_header_t *hdrs, size_t cnt)
{
    px_h1_req_t *r = ud;
    if (r->abort || r->status != 0 || r->http10 || status == 100 || r->info_cnt >= INFO_MAX)
        return;
    size_t left = r->info ? r->info_len - r->info_off : 0;
    size_t len = left + 64 + strlen(px_http_reason(status));
    for (size_t i = 0; i < cnt; i++)
        len += hdr_line_len(hdrs[i].name_len, hdrs[i].value_len);
    char *b = mem_subregion_alloc(r->sub, len);
    if (b == NULL)
        return; /* advisory: the final response still follows */
    char *p = b;
    if (left > 0)
        p = put(p, r->info + r->info_off, left);
    p += snprintf(p, 64 + strlen(px_http_reason(status)), "HTTP/1.1 %d %s\r\n", status,
                  px_http_reason(status));
    for (size_t i = 0; i < cnt; i++) {
        const px_header_t *h = &hdrs[i];
        if (px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len))
            continue;
        p = put_field(p, h);
    }
    p = put(p, "\r\n", 2);
    MEM_ASSERT((size_t)(p - b) <= len);
    r->info = b;
    r->info_len = (size_t)(p - b);
    r->info_off = 0;
    r->info_cnt++;
    px_http_count_status(&r->conn->w->stats, status);
    mark_dirty(r->conn);
}

/* Response trailers: sent in the last chunk of a chunked response (RFC 9112 7.1.2); a
 * response with a length has nowhere to put them and drops them. Hop-by-hop fields and the
 * framing ones are never trailers. */
static void on_up_trailers(void *ud, const px_header_t *hdrs, size_t cnt)
{
    px_h1_req_t *r = ud;
    if (r->abort || !r->chunked || r->no_body || r->last != NULL)
        return;
    size_t len = 5;
    for (size_t i = 0; i < cnt; i++)
        len += hdr_line_len(hdrs[i].name_len, hdrs[i].value_len);
    char *b = mem_subregion_alloc(r->sub, len);
    if (b == NULL)
        return; /* advisory: the body is complete without them */
    char *p = put(b, "0\r\n", 3);
    for (size_t i = 0; i < cnt; i++) {
        const px_header_t *h = &hdrs[i];
        if (px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len) ||
            px_http_ieq(h->name, h->name_len, "content-length", 14) ||
            px_http_ieq(h->name, h->name_len, "host", 4))
            continue;
        p = put_field(p, h);
    }
    p = put(p, "\r\n", 2);
    MEM_ASSERT((size_t)(p - b) <= len);
    r->last = b;
    r->last_len = (size_t)(p - b);
    r->last_off = 0;
}

static void on_up_end(void *ud)
{
    px_h1_req_t *r = ud;
    if (r->up)
        r->up_retries = (uint8_t)px_upstream_retries(r->up);
    r->up = NULL; /* the exchange frees itself after this returns */
    r->up_done = true;
    r->resp_done = true;
    if (r->status == 0 && !r->abort) {
        respond_reason(r, 502, "upstream sent no response");
        return;
    }
    mark_dirty(r->conn);
}

static void on_up_error(void *ud, int status, const char *reason)
{
    px_h1_req_t *r = ud;
    if (r->up)
        r->up_retries = (uint8_t)px_upstream_retries(r->up);
    r->up = NULL;
    r->up_done = true;
    if (r->status == 0 && !r->abort) {
        r->close = !r->req_ended; /* the rest of the body has nowhere to go */
        respond_reason(r, status >= 500 && status <= 599 ? status : 502,
                       reason ? reason : "upstream error");
        return;
    }
    r->abort = true; /* the head is out: only closing tells the client */
    mark_dirty(r->conn);
}

static void on_up_drained(void *ud, size_t len)
{
    px_h1_req_t *r = ud;
    MEM_ASSERT(r->up_out >= len);
    r->up_out -= len;
    pump(r->conn);
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

/* ---- the request head ------------------------------------------------------------------------ */

static bool is_ws(uint8_t ch)
{
    return ch == ' ' || ch == '\t';
}

/* Checks the head's lines (RFC 9112 2.2, 5.1, 5.2): CRLF only, no obs-fold, no whitespace
 * between a field name and its colon, no control characters. Returns NULL or the reason. */
static const char *head_lines_check(const uint8_t *p, size_t len, size_t *lines)
{
    size_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = p[i];
        if (ch == '\r' && (i + 1 >= len || p[i + 1] != '\n'))
            return "bare CR in the request head";
        if (ch == '\n' && (i == 0 || p[i - 1] != '\r'))
            return "bare LF in the request head";
        if (ch == 0)
            return "NUL in the request head";
        if (ch != '\n')
            continue;
        size_t end = i - 1; /* the CR */
        if (n > 0 && end > start) {
            if (is_ws(p[start]))
                return "obs-fold line in the request head";
            const uint8_t *colon = memchr(p + start, ':', end - start);
            if (colon == NULL)
                return "header line without a colon";
            if (colon == p + start)
                return "empty header name";
            if (is_ws(colon[-1]))
                return "whitespace before the colon of a header";
        }
        n++;
        start = i + 1;
    }
    *lines = n;
    return NULL;
}

typedef struct head_parse_s {
    px_h1_req_t *r;
    char *url;
    size_t url_len;
    px_header_t *hdrs;
    size_t cnt, cap;
    bool in_value;
} head_parse_t;

static int on_url(http_parser *p, const char *at, size_t len)
{
    head_parse_t *hp = p->data;
    if (hp->url == NULL)
        hp->url = (char *)at;
    hp->url_len = (size_t)(at + len - hp->url);
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    head_parse_t *hp = p->data;
    if (hp->cnt > 0 && !hp->in_value) {
        px_header_t *h = &hp->hdrs[hp->cnt - 1];
        h->name_len = (size_t)(at + len - h->name);
        return 0;
    }
    if (hp->cnt == hp->cap)
        return 1;
    hp->hdrs[hp->cnt++] = (px_header_t){at, len, "", 0};
    hp->in_value = false;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    head_parse_t *hp = p->data;
    MEM_ASSERT(hp->cnt > 0);
    px_header_t *h = &hp->hdrs[hp->cnt - 1];
    if (!hp->in_value)
        h->value = at;
    h->value_len = (size_t)(at + len - h->value);
    hp->in_value = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    (void)p;
    return 1; /* the body is weir's to read (the decoders below), never the parser's */
}

static const http_parser_settings head_settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
};

#define IS(h, lit) px_http_ieq((h)->name, (h)->name_len, lit, sizeof(lit) - 1)

/* True when the comma-separated list `v` holds the token `tok` (case-insensitive). */
static bool list_has(const char *v, size_t vl, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < vl) {
        while (i < vl && (is_ws((uint8_t)v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < vl && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && is_ws((uint8_t)v[e - 1]))
            e--;
        if (px_http_ieq(v + s, e - s, tok, tl))
            return true;
    }
    return false;
}

/* Is header `h` named in a connection header (RFC 9110 7.6.1)? */
static bool named_by_connection(const px_header_t *hdrs, size_t cnt, const px_header_t *h)
{
    char name[64];
    if (h->name_len >= sizeof(name))
        return false;
    memcpy(name, h->name, h->name_len);
    name[h->name_len] = '\0';
    for (size_t i = 0; i < cnt; i++)
        if (IS(&hdrs[i], "connection") && list_has(hdrs[i].value, hdrs[i].value_len, name))
            return true;
    return false;
}

/* Framing of the request body (RFC 9112 6.1-6.3). Returns 0, or the status to refuse it
 * with (400, 501) and the reason in `*why`. */
static int body_framing(px_h1_req_t *r, const px_header_t *hdrs, size_t cnt, const char **why)
{
    size_t cl_cnt = 0, te_cnt = 0;
    const px_header_t *cl = NULL, *te = NULL;
    for (size_t i = 0; i < cnt; i++) {
        if (IS(&hdrs[i], "content-length"))
            cl_cnt++, cl = &hdrs[i];
        else if (IS(&hdrs[i], "transfer-encoding"))
            te_cnt++, te = &hdrs[i];
    }
    r->body = BODY_NONE;
    if (te_cnt > 0 && cl_cnt > 0)
        return *why = "content-length together with transfer-encoding", 400;
    if (cl_cnt > 1)
        return *why = "more than one content-length", 400;
    if (te_cnt > 1)
        return *why = "more than one transfer-encoding header", 400;
    if (te != NULL) {
        if (r->http10)
            return *why = "transfer-encoding in an HTTP/1.0 request", 400;
        if (px_http_ieq(te->value, te->value_len, "chunked", 7)) {
            r->body = BODY_CHUNKED;
            r->cs = CS_SIZE;
            return 0;
        }
        /* Only a final chunked frames a request; other codings weir does not decode. */
        const char *v = te->value;
        size_t e = te->value_len;
        size_t s = e;
        while (s > 0 && v[s - 1] != ',')
            s--;
        while (s < e && is_ws((uint8_t)v[s]))
            s++;
        if (s > 0 && px_http_ieq(v + s, e - s, "chunked", 7) && !list_has(v, s, "chunked"))
            return *why = "transfer coding other than chunked", 501;
        return *why = "transfer-encoding is not a final chunked", 400;
    }
    if (cl != NULL) {
        uint64_t n = 0;
        if (cl->value_len == 0 || cl->value_len > 15)
            return *why = "invalid content-length", 400;
        for (size_t i = 0; i < cl->value_len; i++) {
            char ch = cl->value[i];
            if (ch < '0' || ch > '9')
                return *why = "invalid content-length", 400;
            n = n * 10 + (uint64_t)(ch - '0');
        }
        if (n > 0) {
            r->body = BODY_LENGTH;
            r->body_left = n;
        }
    }
    return 0;
}

/* Describes the request for proxy/upstream/dispatch.h, and answers or sends it on as it says. */
static void dispatch(px_h1_req_t *r)
{
    px_h1_conn_t *c = r->conn;
    const px_config_t *cfg = c->w->cfg;
    MEM_ASSERT(r->cfg == NULL);
    r->cfg = px_config_ref(cfg); /* route, cluster and direct body outlive a reload */
    px_forward_req_t fr = {
        .method = r->method,
        .method_len = r->method_len,
        .scheme = c->tls ? "https" : "http",
        .scheme_len = c->tls ? 5 : 4,
        .authority = r->authority,
        .authority_len = r->authority_len,
        .path = r->path,
        .path_len = r->path_len,
        .hdrs = r->hdrs,
        .hdrs_cnt = r->hdrs_cnt,
        .peer_ip = c->peer_ip,
        .tls = c->tls,
    };
    px_dispatch_out_t d;
    px_dispatch_t v = px_dispatch_route(&fr, c->w, cfg, r->sub, &d);
    r->authority = fr.authority;
    r->authority_len = fr.authority_len;
    r->path = fr.path;
    r->path_len = fr.path_len;
    r->route = d.route;
    r->tenant = d.tenant; /* ended with the request, whatever the verdict */
    tenant_weigh(r);
    switch (v) {
    case PX_DISPATCH_BAD_REQUEST:
        r->close = true;
        respond_reason(r, 400, d.why);
        return;
    case PX_DISPATCH_ANSWER:
        respond_static(r, d.status, d.ctype, d.body, d.body_len);
        return;
    case PX_DISPATCH_REFUSED: {
        /* The route's memory tenant past its limit: 503 with Retry-After, as for overload. */
        static const char body_spent[] = "weir: this route's memory budget is spent, retry later\n";
        static const px_header_t retry = {"retry-after", 11, "1", 1};
        r->static_body = (const uint8_t *)body_spent;
        r->static_len = sizeof(body_spent) - 1;
        r->resp_done = true;
        if (build_head(r, 503, &retry, 1, (int64_t)r->static_len, "text/plain") != 0) {
            r->abort = true;
            mark_dirty(c);
        }
        return;
    }
    case PX_DISPATCH_NO_MEMORY:
        goto oom;
    case PX_DISPATCH_UPSTREAM:
        break;
    }
    px_upstream_req_t *up = NULL;
    int rc = px_upstream_start(c->w, d.route->cluster, d.hdrs, d.hdrs_cnt, r->body == BODY_NONE,
                               &up_cbs, r, &up);
    if (rc != 0) {
        static const char body_503[] = PX_DISPATCH_BODY_503;
        respond_static(r, 503, "text/plain", body_503, sizeof(body_503) - 1);
        return;
    }
    r->up = r->up_done ? NULL : up;
    if (r->expect_continue && r->up != NULL)
        r->cont = cont_100;
    return;
oom: /* counted in px_dispatch_route */
    r->close = true;
    static const char body_oom[] = "weir: out of memory for this request, retry later\n";
    respond_static(r, 503, "text/plain", body_oom, sizeof(body_oom) - 1);
}

/* Lower-cases a field name in place (the forwarded head and HTTP/2 upstreams want it so). */
static void lower(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

/* An HTTP/1.0 request may come without Host (and without an absolute-form target): its
 * authority is then the local address and port the client connected to (RFC 9112 3.3, when
 * no default name is configured), so it takes the routes that match any authority, and the
 * upstream gets that as its host. Returns false on OOM. */
static bool local_authority(px_h1_req_t *r)
{
    px_h1_conn_t *c = r->conn;
    MEM_ASSERT(r->http10);
    MEM_ASSERT(r->authority == NULL);
    char *b = mem_subregion_alloc(r->sub, 64);
    if (b == NULL)
        return false;
    size_t n = c->io->local_authority(c->tr, b, 64);
    MEM_ASSERT(n < 64);
    if (n > 0) {
        r->authority = b;
        r->authority_len = n;
    }
    return true;
}

/* Reads one request head of `hl` bytes at `p` and starts it. Returns false when the
 * connection ends (an answer and close are queued). */
static bool start_request(px_h1_conn_t *c, const uint8_t *p, size_t hl)
{
    px_worker_t *w = c->w;
    const px_limits_cfg_t *lim = &w->cfg->limits;
    c->had_request = true;
    MEM_STAT_ADD(w->stats.requests_total, 1);
    MEM_STAT_ADD(w->stats.requests_http1, 1);
    size_t lines = 0;
    const char *why = head_lines_check(p, hl, &lines);
    if (why != NULL) {
        refuse(c, 400, why, false);
        return false;
    }
    /* Overload policy for new requests: the transport asks the rule HTTP/2 asks for a new
     * stream (its REFUSED_STREAM is this 503). */
    if (!c->io->admit_request(c->tr)) {
        MEM_STAT_ADD(w->stats.overload_streams_refused, 1);
        refuse(c, 503, "overloaded, retry later", true);
        return false;
    }
    mem_subregion_t *sub = mem_subregion_new(c->region, lim->stream_bytes_max);
    px_h1_req_t *r = sub ? mem_subregion_calloc(sub, sizeof(*r)) : NULL;
    char *copy = r ? mem_subregion_alloc(sub, hl) : NULL;
    px_header_t *hdrs = copy ? mem_subregion_alloc(sub, sizeof(*hdrs) * (lines + 1)) : NULL;
    if (hdrs == NULL) {
        mem_subregion_free(sub);
        MEM_STAT_ADD(w->stats.conn_cap_resets, 1);
        refuse(c, 503, "out of memory for this request, retry later", true);
        return false;
    }
    r->conn = c;
    r->sub = sub;
    r->started_ns = uv_hrtime();
    c->req = r;
    /* The admission pool (proxy/core/shed.c) counts HTTP/1.1 requests in progress beside
     * HTTP/2 streams: both hold a request's worth of buffers. */
    MEM_STAT_ADD(w->stats.streams_active, 1);
    memcpy(copy, p, hl);
    head_parse_t hp = {.r = r, .hdrs = hdrs, .cap = lines + 1};
    http_parser parser;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = &hp;
    size_t n = http_parser_execute(&parser, &head_settings, copy, hl);
    enum http_errno err = HTTP_PARSER_ERRNO(&parser);
    if (err != HPE_OK && err != HPE_CB_headers_complete) {
        r->close = true;
        c->closing = true;
        respond_reason(r, 400, http_errno_description(err));
        return false;
    }
    (void)n;
    if (parser.http_major != 1) {
        r->close = true;
        c->closing = true;
        respond_reason(r, 505, "HTTP/1.x only on this connection");
        return false;
    }
    r->http10 = parser.http_minor == 0;
    r->keepalive = http_should_keep_alive(&parser) != 0;
    r->method = http_method_str((enum http_method)parser.method);
    r->method_len = strlen(r->method);
    r->head_req = parser.method == HTTP_HEAD;
    /* Headers: trailing whitespace trimmed, names lower-cased, hop-by-hop ones kept aside. */
    size_t hosts = 0;
    for (size_t i = 0; i < hp.cnt; i++) {
        px_header_t *h = &hp.hdrs[i];
        while (h->value_len > 0 && is_ws((uint8_t)h->value[h->value_len - 1]))
            h->value_len--;
        lower((char *)h->name, h->name_len);
        if (IS(h, "host"))
            hosts++;
    }
    int st = body_framing(r, hp.hdrs, hp.cnt, &why);
    if (st == 0 && !r->http10 && hosts == 0)
        st = 400, why = "HTTP/1.1 request without a host header";
    for (size_t i = 0; st == 0 && i < hp.cnt; i++) {
        px_header_t *h = &hp.hdrs[i];
        if (IS(h, "upgrade") && list_has(h->value, h->value_len, "h2c"))
            st = 400, why = "cleartext upgrade to HTTP/2 (h2c) is not supported: use prior "
                            "knowledge";
        else if (IS(h, "expect") && px_http_ieq(h->value, h->value_len, "100-continue", 12))
            r->expect_continue = !r->http10 && r->body != BODY_NONE;
        else if (IS(h, "expect"))
            st = 417, why = "only 100-continue is expected";
    }
    if (st != 0) {
        r->close = true;
        c->closing = true;
        r->req_ended = true;
        respond_reason(r, st, why);
        return false;
    }
    size_t k = 0;
    for (size_t i = 0; i < hp.cnt; i++) {
        px_header_t *h = &hp.hdrs[i];
        if (px_http_is_hop_by_hop(h->name, h->name_len, h->value, h->value_len) ||
            IS(h, "expect") || IS(h, "http2-settings") || IS(h, "content-length") ||
            named_by_connection(hp.hdrs, hp.cnt, h))
            continue;
        hp.hdrs[k++] = *h;
    }
    r->hdrs = hp.hdrs;
    r->hdrs_cnt = k;
    /* The body's length goes on as one content-length weir writes (the client's was checked
     * above); a chunked body is framed again by the exchange. */
    if (r->body == BODY_LENGTH) {
        char *v = mem_subregion_alloc(sub, 24);
        if (v == NULL) {
            r->close = true;
            c->closing = true;
            respond_reason(r, 503, "out of memory for this request");
            return false;
        }
        int vl = snprintf(v, 24, "%llu", (unsigned long long)r->body_left);
        r->hdrs[r->hdrs_cnt++] = (px_header_t){"content-length", 14, v, (size_t)vl};
    }
    /* The request target: origin-form, absolute-form whose authority wins (RFC 9112 3.2.2), or
     * the asterisk-form of OPTIONS *, which weir answers itself (proxy/upstream/router.c).
     * CONNECT is a 501: weir is a reverse proxy and does not tunnel; the connection closes, so
     * bytes a client sends into the tunnel it expected are never read as a request. */
    r->path = hp.url;
    r->path_len = hp.url_len;
    bool asterisk = hp.url_len == 1 && hp.url[0] == '*';
    if (parser.method == HTTP_CONNECT || (asterisk && parser.method != HTTP_OPTIONS)) {
        r->close = true;
        c->closing = true;
        r->req_ended = true;
        respond_reason(r, asterisk ? 400 : 501,
                       asterisk ? "the target * is for OPTIONS only" : PX_HTTP_CONNECT_REFUSAL);
        return false;
    }
    if (hp.url_len > 0 && hp.url[0] != '/' && !asterisk) {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(hp.url, hp.url_len, 0, &u) != 0 ||
            !(u.field_set & (1u << UF_HOST))) {
            r->close = true;
            c->closing = true;
            r->req_ended = true;
            respond_reason(r, 400, "unsupported request target");
            return false;
        }
        size_t hs = u.field_data[UF_HOST].off;
        size_t he = hs + u.field_data[UF_HOST].len;
        if (u.field_set & (1u << UF_PORT))
            he = u.field_data[UF_PORT].off + u.field_data[UF_PORT].len;
        r->authority = hp.url + hs;
        r->authority_len = he - hs;
        if (u.field_set & (1u << UF_PATH)) {
            r->path = hp.url + u.field_data[UF_PATH].off;
            r->path_len = hp.url_len - u.field_data[UF_PATH].off;
        } else {
            r->path = "/";
            r->path_len = 1;
        }
        /* The target's authority replaces the host header (RFC 9112 3.2.2). */
        size_t j = 0;
        for (size_t i = 0; i < r->hdrs_cnt; i++)
            if (!IS(&r->hdrs[i], "host"))
                r->hdrs[j++] = r->hdrs[i];
        r->hdrs_cnt = j;
    }
    if (r->http10 && hosts == 0 && r->authority == NULL && !local_authority(r)) {
        r->close = true;
        c->closing = true;
        respond_reason(r, 503, "out of memory for this request");
        return false;
    }
    if (!r->keepalive)
        r->close = true;
    if (r->body == BODY_NONE)
        r->req_ended = true;
    c->io->state_changed(c->tr);
    dispatch(r);
    return true;
}

/* ---- the request body ---------------------------------------------------------------------- */

static int hexval(uint8_t ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Passes body bytes on (or drops them when nobody reads them). Returns 0 or -1. */
static int body_out(px_h1_req_t *r, const uint8_t *p, size_t n, bool end)
{
    if (r->up == NULL)
        return 0;
    if (px_upstream_send_body(r->up, p, n, end) != 0)
        return -1;
    r->up_out += n;
    return 0;
}

/* Decodes chunked input (strict, see the file comment). Returns the bytes consumed, or -1
 * with `*why` set. Sets req_ended at the end of the trailers. */
static ssize_t chunked_decode(px_h1_req_t *r, const uint8_t *p, size_t n, const char **why)
{
    size_t i = 0;
    const size_t tmax = r->conn->w->cfg->limits.max_header_list_bytes;
    while (i < n && !r->req_ended) {
        uint8_t ch = p[i];
        switch (r->cs) {
        case CS_SIZE: {
            int d = hexval(ch);
            if (d >= 0) {
                if (++r->cdigits > 15)
                    return *why = "chunk size too long", -1;
                r->body_left = r->body_left * 16 + (uint64_t)d;
            } else if (r->cdigits == 0) {
                return *why = "invalid chunk size", -1;
            } else if (ch == ';') {
                r->cs = CS_EXT;
            } else if (is_ws(ch)) {
                r->cs = CS_SIZE_WS;
            } else if (ch == '\r') {
                r->cs = CS_SIZE_LF;
            } else {
                return *why = "invalid chunk size", -1;
            }
            i++;
            break;
        }
        case CS_SIZE_WS:
            if (ch == ';')
                r->cs = CS_EXT;
            else if (!is_ws(ch))
                return *why = "invalid chunk size", -1;
            i++;
            break;
        case CS_EXT:
            if (ch == '\r')
                r->cs = CS_SIZE_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return *why = "invalid chunk extension", -1;
            else if (++r->cext > PX_H1_EXT_MAX)
                return *why = "chunk extension too long", -1;
            i++;
            break;
        case CS_SIZE_LF:
            if (ch != '\n')
                return *why = "bare CR in a chunk line", -1;
            r->cs = r->body_left == 0 ? CS_TRAILER_START : CS_DATA;
            r->cdigits = r->cext = 0;
            i++;
            break;
        case CS_DATA: {
            size_t k = (size_t)MEM_MIN((uint64_t)(n - i), r->body_left);
            if (body_out(r, p + i, k, false) != 0)
                return *why = "request body refused by the exchange", -1;
            r->body_left -= k;
            i += k;
            if (r->body_left == 0)
                r->cs = CS_DATA_CR;
            break;
        }
        case CS_DATA_CR:
            if (ch != '\r')
                return *why = "chunk data longer than its size", -1;
            r->cs = CS_DATA_LF;
            i++;
            break;
        case CS_DATA_LF:
            if (ch != '\n')
                return *why = "bare CR after chunk data", -1;
            r->cs = CS_SIZE;
            i++;
            break;
        case CS_TRAILER_START:
            if (ch == '\r')
                r->cs = CS_END_LF;
            else if (is_ws(ch))
                return *why = "obs-fold line in the trailers", -1;
            else
                r->cs = CS_TRAILER;
            if (ch != '\r' && (ch < 0x20 || ch == 0x7f))
                return *why = "control character in the trailers", -1;
            r->ctrailer++;
            i++;
            break;
        case CS_TRAILER:
            if (ch == '\r')
                r->cs = CS_TRAILER_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return *why = "control character in the trailers", -1;
            if (++r->ctrailer > tmax)
                return *why = "trailers too large", -1;
            i++;
            break;
        case CS_TRAILER_LF:
            if (ch != '\n')
                return *why = "bare CR in the trailers", -1;
            r->cs = CS_TRAILER_START;
            i++;
            break;
        case CS_END_LF:
            if (ch != '\n')
                return *why = "bare CR at the end of the body", -1;
            i++;
            r->req_ended = true;
            if (body_out(r, NULL, 0, true) != 0)
                return *why = "request body refused by the exchange", -1;
            break;
        }
    }
    return (ssize_t)i;
}

/* A framing error in the body: the request is refused (or, once its answer has begun, the
 * connection just ends) and nothing after it is read. */
static void body_error(px_h1_req_t *r, const char *why)
{
    px_h1_conn_t *c = r->conn;
    r->req_ended = true;
    r->close = true;
    c->closing = true;
    if (r->up) {
        px_upstream_cancel(r->up); /* r->up freed */
        r->up = NULL;
        r->up_done = true;
    }
    if (r->status == 0 && !r->abort) {
        chunks_free(r);
        respond_reason(r, 400, why);
    } else {
        r->abort = true;
    }
    mark_dirty(c);
}

/* Body bytes from `p`: as many as the exchange's buffer has room for. Returns the bytes
 * consumed. */
static size_t body_step(px_h1_req_t *r, const uint8_t *p, size_t n)
{
    size_t room = n;
    if (r->up != NULL) {
        size_t cap = r->conn->w->cfg->limits.stream_buffer_bytes;
        room = r->up_out >= cap ? 0 : cap - r->up_out;
    }
    n = MEM_MIN(n, room);
    if (n == 0)
        return 0;
    if (r->body == BODY_LENGTH) {
        size_t k = (size_t)MEM_MIN((uint64_t)n, r->body_left);
        r->body_left -= k;
        bool end = r->body_left == 0;
        if (end)
            r->req_ended = true;
        if (body_out(r, p, k, end) != 0) {
            body_error(r, "request body refused by the exchange");
            return k;
        }
        return k;
    }
    MEM_ASSERT(r->body == BODY_CHUNKED);
    const char *why = NULL;
    ssize_t k = chunked_decode(r, p, n, &why);
    if (k < 0) {
        body_error(r, why);
        return n;
    }
    return (size_t)k;
}

/* ---- input ----------------------------------------------------------------------------------- */

/* Finds the end of a request head in `p` (searching on from c->scan). Returns its length, 0
 * when it is not complete, or (size_t)-1 after refusing an oversized one. */
static size_t head_end(px_h1_conn_t *c, const uint8_t *p, size_t n)
{
    const size_t hmax = c->w->cfg->limits.max_header_list_bytes;
    size_t i = c->scan, end = 0;
    for (; i < n && end == 0; i++) {
        if (p[i] != '\n')
            continue;
        if (i >= 1 && p[i - 1] == '\n')
            end = i + 1; /* bare LF blank line: the checks refuse it */
        else if (i >= 3 && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
            end = i + 1;
    }
    size_t seen = end ? end : n;
    c->scan = end ? 0 : n;
    const uint8_t *lf = memchr(p, '\n', MEM_MIN(seen, (size_t)PX_H1_LINE_MAX + 1));
    if ((lf == NULL && seen > PX_H1_LINE_MAX) || (lf != NULL && lf - p > PX_H1_LINE_MAX)) {
        refuse(c, 414, "request line too long", false);
        return (size_t)-1;
    }
    if (end != 0 && end <= hmax)
        return end;
    if (seen > hmax) {
        refuse(c, 431, "request head too large", false);
        return (size_t)-1;
    }
    return 0;
}

/* Runs requests over `p`: heads, bodies, as far as the state allows. Returns the bytes used. */
static size_t consume(px_h1_conn_t *c, const uint8_t *p, size_t n)
{
    size_t used = 0;
    while (used < n) {
        px_h1_req_t *r = c->req;
        if (r == NULL) {
            if (c->closing || c->tail != NULL)
                return n; /* nothing after the last request is read */
            /* RFC 9112 2.2: empty lines before a request line are ignored. */
            if (c->scan == 0) {
                while (used < n && (p[used] == '\r' || p[used] == '\n') &&
                       (p[used] == '\n' || used + 1 >= n || p[used + 1] == '\n'))
                    used++;
                if (used == n)
                    break;
            }
            size_t hl = head_end(c, p + used, n - used);
            if (hl == (size_t)-1)
                return n;
            if (hl == 0)
                break;
            c->scan = 0;
            bool ok = start_request(c, p + used, hl);
            used += hl;
            if (!ok)
                return n;
            continue;
        }
        if (r->req_ended)
            break; /* pipelined: waits for this response */
        size_t k = body_step(r, p + used, n - used);
        if (c->closing && r->req_ended && (r->abort || r->status != 0) && k == 0)
            return n;
        if (k == 0)
            break;
        used += k;
        if (c->closing && r->req_ended && r->close && r->abort)
            return n;
    }
    return used;
}

/* Keeps the unused bytes (copied; the caller's buffer is reused for the next read). */
static int keep(px_h1_conn_t *c, const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    if (c->ioff > 0) {
        memmove(c->ibuf, c->ibuf + c->ioff, c->ilen - c->ioff);
        c->ilen -= c->ioff;
        c->ioff = 0;
    }
    if (c->ilen + n > PX_H1_INPUT_MAX)
        return -ENOMEM;
    if (c->ilen + n > c->icap) {
        size_t cap = MEM_MAX(c->ilen + n, (size_t)4096);
        uint8_t *b = mem_realloc(c->ibuf, cap);
        if (b == NULL)
            return -ENOMEM;
        c->ibuf = b;
        c->icap = cap;
    }
    memcpy(c->ibuf + c->ilen, p, n);
    c->ilen += n;
    return 0;
}

/* After input was used: an idle connection holds no buffer; reading pauses while input waits. */
static void settle(px_h1_conn_t *c)
{
    if (c->ioff == c->ilen) {
        mem_free(c->ibuf);
        c->ibuf = NULL;
        c->ioff = c->ilen = c->icap = 0;
    }
    bool waiting = c->ilen > c->ioff && c->req != NULL;
    if (waiting != c->paused) {
        c->paused = waiting;
        c->io->read_pause(c->tr, waiting);
    }
}

/* Runs what is buffered again (the exchange took body bytes, or a response ended). */
static void pump(px_h1_conn_t *c)
{
    if (c->ilen > c->ioff) {
        size_t k = consume(c, c->ibuf + c->ioff, c->ilen - c->ioff);
        c->ioff += k;
    }
    settle(c);
}

int px_h1_recv(px_h1_conn_t *c, const uint8_t *data, size_t len)
{
    MEM_ASSERT(c != NULL);
    MEM_ASSERT(data != NULL || len == 0);
    if (c->ilen == c->ioff) {
        size_t k = consume(c, data, len);
        if (keep(c, data + k, len - k) != 0)
            return -ENOMEM;
    } else {
        if (keep(c, data, len) != 0)
            return -ENOMEM;
        size_t k = consume(c, c->ibuf + c->ioff, c->ilen - c->ioff);
        c->ioff += k;
    }
    settle(c);
    return 0;
}

void px_h1_start(px_h1_conn_t *c, const uint8_t *data, size_t len)
{
    MEM_ASSERT(c->io != NULL);
    MEM_ASSERT(c->req == NULL);
    c->io->state_changed(c->tr);
    if (len > 0 && px_h1_recv(c, data, len) != 0)
        c->closing = true;
}

/* ---- output ---------------------------------------------------------------------------------- */

/* Writes what fits of `s[*off..len)`. Returns true once all of it is out. */
static bool write_bytes(px_h1_conn_t *c, const void *s, size_t len, size_t *off)
{
    while (*off < len) {
        size_t n = MEM_MIN(len - *off, c->io->room(c->tr));
        uint8_t *p = n > 0 ? c->io->reserve(c->tr, n) : NULL;
        if (p == NULL)
            return false;
        memcpy(p, (const uint8_t *)s + *off, n);
        c->io->commit(c->tr, n);
        *off += n;
    }
    return true;
}

/* Writes body bytes `p[0..n)` (framed when chunked) as far as they fit. Returns bytes taken. */
static size_t write_body(px_h1_req_t *r, const uint8_t *p, size_t n)
{
    px_h1_conn_t *c = r->conn;
    size_t room = c->io->room(c->tr);
    size_t frame = r->chunked ? 20 : 0;
    if (room <= frame)
        return 0;
    size_t k = MEM_MIN(n, room - frame);
    uint8_t *o = c->io->reserve(c->tr, k + frame);
    if (o == NULL)
        return 0;
    size_t w = 0;
    if (r->chunked)
        w += (size_t)snprintf((char *)o, 20, "%zx\r\n", k);
    memcpy(o + w, p, k);
    w += k;
    if (r->chunked) {
        o[w++] = '\r';
        o[w++] = '\n';
    }
    c->io->commit(c->tr, w);
    r->bytes_out += k;
    return k;
}

/* Logs, cancels and frees the request in progress. */
static void req_end(px_h1_conn_t *c)
{
    px_h1_req_t *r = c->req;
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->conn == c);
    if (r->up) {
        px_upstream_cancel(r->up); /* r->up freed */
        r->up = NULL;
    }
    const char *up = "-";
    if (r->route)
        up = r->route->cluster ? r->route->cluster->name : "direct";
    px_h1_done_t d = {
        .method = r->method,
        .method_len = r->method_len,
        .authority = r->authority,
        .authority_len = r->authority_len,
        .path = r->path,
        .path_len = r->path_len,
        .status = r->abort ? 0 : r->status,
        .bytes_out = r->bytes_out,
        .started_ns = r->started_ns,
        .upstream = up,
        .retries = r->up_retries,
    };
    c->io->request_ended(c->tr, &d);
    if (r->tenant != 0)
        px_tenant_end(c->w, r->tenant, &r->tenant_counted);
    chunks_free(r);
    c->req = NULL;
    MEM_STAT_SUB(c->w->stats.streams_active, 1);
    px_config_unref(r->cfg);
    r->cfg = NULL;
    mem_subregion_free(r->sub); /* r freed */
    c->served++;
}

/* Writes as much of the current response as fits. Returns 1 when it is complete, 0 when it
 * waits (for room or the upstream), -1 when the connection must end now. */
static int send_response(px_h1_conn_t *c, px_h1_req_t *r)
{
    if (r->abort)
        return -1;
    if (r->cont && !write_bytes(c, r->cont, sizeof(cont_100) - 1, &r->cont_off))
        return 0;
    if (r->info && !write_bytes(c, r->info, r->info_len, &r->info_off))
        return 0;
    if (r->cont && r->status == 0)
        return 0;
    if (r->hbuf == NULL)
        return 0;
    if (r->cont) {
        r->cont = NULL; /* the 100 Continue is out */
    }
    if (!write_bytes(c, r->hbuf, r->hlen, &r->hoff))
        return 0;
    if (!r->no_body) {
        while (r->static_off < r->static_len) {
            size_t k = write_body(r, r->static_body + r->static_off, r->static_len - r->static_off);
            if (k == 0)
                return 0;
            r->static_off += k;
        }
        while (r->chunks) {
            h1_chunk_t *k = r->chunks;
            size_t n = write_body(r, k->data + k->off, k->len - k->off);
            if (n == 0)
                return 0;
            k->off += (uint32_t)n;
            r->buffered -= n;
            tenant_weigh(r);
            if (r->up)
                px_upstream_consumed(r->up, n);
            if (k->off == k->len) {
                r->chunks = k->next;
                if (r->chunks == NULL)
                    r->chunks_tail = NULL;
                mem_free(k);
            }
        }
    }
    if (!r->resp_done)
        return 0;
    if (r->chunked && !r->no_body) {
        static const char last_plain[] = "0\r\n\r\n";
        const char *last = r->last ? r->last : last_plain;
        size_t len = r->last ? r->last_len : sizeof(last_plain) - 1;
        if (!write_bytes(c, last, len, &r->last_off))
            return 0;
        r->chunked = false;
    }
    return 1;
}

int px_h1_send(px_h1_conn_t *c)
{
    MEM_ASSERT(c != NULL);
    while (c->req != NULL) {
        px_h1_req_t *r = c->req;
        int rc = send_response(c, r);
        if (rc < 0) {
            req_end(c);
            return -EPROTO;
        }
        if (rc == 0)
            break;
        if (r->close || !r->req_ended)
            c->closing = true;
        req_end(c); /* r freed */
        c->io->state_changed(c->tr);
        if (!c->closing)
            pump(c); /* a pipelined request may be waiting */
        else
            settle(c);
    }
    if (c->tail != NULL) {
        size_t off = c->tail_off;
        (void)write_bytes(c, c->tail, c->tail_len, &off);
        c->tail_off = (uint32_t)off;
    }
    return 0;
}

bool px_h1_want_write(const px_h1_conn_t *c)
{
    if (c->tail != NULL && c->tail_off < c->tail_len)
        return true;
    const px_h1_req_t *r = c->req;
    if (r == NULL)
        return false;
    if (r->abort)
        return true;
    if (r->info != NULL && r->info_off < r->info_len)
        return true;
    if (r->hbuf == NULL)
        return r->cont != NULL && r->cont_off < sizeof(cont_100) - 1;
    return r->hoff < r->hlen || r->static_off < r->static_len || r->chunks != NULL || r->resp_done;
}

bool px_h1_want_close(const px_h1_conn_t *c)
{
    if (!c->closing || c->req != NULL)
        return false;
    return c->tail == NULL || c->tail_off == c->tail_len;
}

bool px_h1_busy(const px_h1_conn_t *c)
{
    return c->req != NULL;
}

bool px_h1_idle(const px_h1_conn_t *c)
{
    return c->req == NULL && c->ilen == c->ioff && c->tail == NULL;
}

void px_h1_stop(px_h1_conn_t *c)
{
    c->closing = true;
    if (c->req != NULL && c->req->status == 0)
        c->req->close = true;
    mark_dirty(c);
}

bool px_h1_req_view(const px_h1_conn_t *c, px_h1_done_t *out)
{
    const px_h1_req_t *r = c->req;
    if (r == NULL)
        return false;
    MEM_ASSERT(out != NULL);
    *out = (px_h1_done_t){
        .method = r->method,
        .method_len = r->method_len,
        .authority = r->authority,
        .authority_len = r->authority_len,
        .path = r->path,
        .path_len = r->path_len,
        .status = r->status,
        .bytes_out = r->bytes_out,
        .started_ns = r->started_ns,
    };
    return true;
}

size_t px_h1_held(const px_h1_conn_t *c)
{
    size_t n = c->icap;
    if (c->req != NULL)
        n += c->req->buffered;
    MEM_ASSERT(n >= c->icap);
    return n;
}

size_t px_h1_bytes(const px_h1_conn_t *c)
{
    if (c->req == NULL)
        return 0;
    return mem_subregion_bytes(c->req->sub) + c->req->buffered;
}

unsigned px_h1_tenant(const px_h1_conn_t *c, size_t *counted)
{
    MEM_ASSERT(counted != NULL);
    *counted = c->req != NULL ? c->req->tenant_counted : 0;
    return c->req != NULL ? c->req->tenant : 0;
}

void px_h1_fini(px_h1_conn_t *c)
{
    if (c->req != NULL) {
        c->req->abort = true;
        req_end(c);
    }
    mem_free(c->ibuf);
    c->ibuf = NULL;
    c->ioff = c->ilen = c->icap = 0;
}
