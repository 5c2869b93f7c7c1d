/*
 * proxy/admin/admin.c: the admin server: its thread and uv loop, the listening socket, admin
 * connections (plain HTTP/1.1 with keep-alive, parsed with http_parser), bearer-token auth and
 * the routing of paths to the handlers in proxy/admin/memory.c, proxy/admin/ops.c and
 * proxy/admin/dashboard.c.
 *
 * One instance per process (`g_admin`), created and freed by the main thread in
 * px_admin_start/px_admin_stop. Between those calls only the admin thread touches it; the
 * main thread talks to it through the `stop` async handle alone.
 *
 * Limits: at most PX_ADMIN_CONNS_MAX connections; a request head of at most PX_ADMIN_HEAD_MAX
 * bytes and a body of at most PX_ADMIN_BODY_MAX; at most ADMIN_WRITES_MAX responses, or one past
 * ADMIN_PENDING_BYTES_MAX bytes, queued per connection (parsing and reading stop until they
 * drain), so a pipelining client cannot make us buffer without bound. Every byte comes from
 * mem_malloc.
 *
 * Hostile clients (see README, "Hardening"):
 * - Deadlines: a request head must arrive within PX_ADMIN_HEAD_TIMEOUT_MS of its first byte (of
 *   the accept, for a connection's first request) and its body within PX_ADMIN_BODY_TIMEOUT_MS
 *   of the end of the head; bytes arriving do not extend them, so dribbling a byte at a time
 *   buys nothing. Past a deadline the client gets 408 and the connection closes.
 * - Eviction: when all PX_ADMIN_CONNS_MAX slots are taken, a new connection closes the one that
 *   has waited longest for a request to complete (then the oldest idle keep-alive connection,
 *   then a response stalled for ADMIN_STALL_MS), so /ready keeps answering while slow clients
 *   hold every slot; only when every slot is busy sending is the new connection closed.
 * - DNS rebinding: without a token, a Host that is not a loopback name, an IP literal or the
 *   configured admin host gets 421 (host_allowed()).
 * - Cross-site requests: without a token, a POST that a browser page on another site could
 *   have sent (Sec-Fetch-Site, Origin or Referer of another origin, or a form content type)
 *   gets 403 (cross_site_why()).
 */
#include "mem/base.h"
#include "proxy/admin/admin.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <http_parser.h>
#include <uv.h>

#include "mem/malloc.h"
#include "proxy/admin/endpoints.h"

#define ADMIN_URL_MAX    4096u /* request target; longer is 400 */
#define ADMIN_FIELD_MAX  32u   /* header names we look at are shorter */
#define ADMIN_WRITES_MAX 4u    /* responses queued on one connection before reading pauses */
#define ADMIN_RBUF_LEN   8192u /* read buffer per connection */
/* Header values kept for the checks: longer ones overflow and never match (Authorization,
 * Host) or are refused (Origin); Referer and Content-Type are judged by their first bytes. */
#define ADMIN_HDR_VALUE_MAX 512u
/* After a 408 the answer gets this long to drain before the connection is closed. */
#define ADMIN_LINGER_MS 2000u
/* A response that has made no write progress this long may be evicted for a new connection. */
#define ADMIN_STALL_MS 1000u
/* Response bytes queued on one connection past which no further request is parsed until
 * they drain: a client pipelining heap dumps holds at most one big body at a time. */
#define ADMIN_PENDING_BYTES_MAX (1u << 20)

typedef struct admin_s admin_t;

/* Request headers the server looks at; each is kept in an admin_hdr_t. */
typedef enum admin_hdr_e {
    ADMIN_HDR_AUTH,
    ADMIN_HDR_HOST,
    ADMIN_HDR_ORIGIN,
    ADMIN_HDR_REFERER,
    ADMIN_HDR_CTYPE,
    ADMIN_HDR_FETCH_SITE,
    ADMIN_HDR_CNT,
} admin_hdr_id_t;

static const char *const g_hdr_names[ADMIN_HDR_CNT] = {
    "authorization", "host", "origin", "referer", "content-type", "sec-fetch-site",
};

typedef struct admin_hdr_s {
    unsigned cnt;  /* times the header appeared in this request */
    bool overflow; /* its value was longer than `value` */
    size_t len;
    char value[ADMIN_HDR_VALUE_MAX];
} admin_hdr_t;

/* Where a connection is, for its deadline and for eviction. */
typedef enum admin_phase_e {
    ADMIN_PHASE_HEAD, /* waiting for a request head: deadline PX_ADMIN_HEAD_TIMEOUT_MS */
    ADMIN_PHASE_BODY, /* head parsed, body arriving: deadline PX_ADMIN_BODY_TIMEOUT_MS */
    ADMIN_PHASE_IDLE, /* request answered: PX_ADMIN_IDLE_MS, renewed by write progress */
} admin_phase_t;

typedef struct admin_conn_s {
    uv_tcp_t tcp;     /* admin thread; its close is the first of two */
    uv_timer_t timer; /* admin thread; the deadline of `phase`; the connection dies when both
                       * handles are closed */
    uv_shutdown_t shutdown;
    admin_t *admin;            /* borrows: the admin outlives its connections */
    struct admin_conn_s *next; /* admin's list, for stop */
    struct admin_conn_s *prev;
    http_parser parser;
    int handles_open; /* 2 while open; freed when it reaches 0 */
    unsigned writes_pending;
    size_t bytes_pending; /* response bytes queued and not yet written */
    bool closing;         /* uv_close called */
    bool shutting;        /* no more requests: finish writes, then close */
    bool reading;
    admin_phase_t phase;
    uint64_t phase_since_ms; /* uv_now when `phase` (or its last renewal) began */
    uint64_t phase_seq;      /* admin's phase_seq then: orders entries within one loop tick */
    uint64_t progress_ms;    /* uv_now of the last completed request or response write */
    bool req_begun;          /* a request's first byte has been parsed and it is not complete */
    /* The request being parsed. */
    size_t head_bytes;
    size_t body_bytes;
    int err_status; /* set by a callback that rejects the request */
    const char *err_msg;
    int hdr_cur; /* admin_hdr_id_t of the header whose value is arriving, or -1 */
    bool in_value;
    size_t field_len;
    char field[ADMIN_FIELD_MAX];
    admin_hdr_t hdrs[ADMIN_HDR_CNT];
    size_t url_len;
    char url[ADMIN_URL_MAX + 1];
    /* Bytes read and not yet parsed: rbuf[rpos, rlen). */
    size_t rpos;
    size_t rlen;
    char rbuf[ADMIN_RBUF_LEN];
} admin_conn_t;

struct admin_s {
    px_server_t *server; /* borrows */
    uv_loop_t loop;      /* admin thread (initialized by main before the thread) */
    uv_tcp_t listener;
    uv_async_t stop;     /* any thread: the one cross-thread entry point */
    uv_tcp_t reject;     /* accepts and closes connections we cannot serve */
    bool reject_busy;    /* `reject` is closing */
    bool accept_pending; /* a connection waits for `reject` */
    bool stopping;
    pthread_t thread;
    bool thread_started;
    unsigned conns_cnt;  /* in `conns`, closing ones included */
    unsigned conns_open; /* in `conns` and not closing: what PX_ADMIN_CONNS_MAX bounds */
    uint64_t phase_seq;  /* counts phase entries; uv_now is the same for a whole tick */
    admin_conn_t *conns; /* owns: the live connections */
    char *expect_auth;   /* owns: "Bearer <token>", or NULL when no token is set */
    size_t expect_auth_len;
    char cfg_host[256]; /* admin.address host as configured (no brackets), for the Host check */
    http_parser_settings settings;
};

static admin_t *g_admin; /* main thread: set by start, cleared by stop */

typedef struct admin_write_s {
    uv_write_t req;
    admin_conn_t *conn; /* borrows: a connection is closed only after its writes */
    char *body;         /* owns: mem_malloc (px_jsonw_take) */
    size_t head_len;
    size_t body_len;
    char head[768];
} admin_write_t;

typedef struct admin_route_s {
    const char *path;
    unsigned methods; /* px_admin_method_t bits */
    px_admin_handler_fn fn;
    const char *help;
} admin_route_t;

/* Routing table. The 404 body lists it, so it is the endpoint documentation too. */
static const admin_route_t g_routes[] = {
    {"/", PX_ADMIN_GET, px__admin_dashboard, "live memory dashboard (HTML)"},
    {"/memory", PX_ADMIN_GET, px__admin_memory,
     "memory JSON (Envoy field names + weir's own); ?format=prometheus for text"},
    {"/memory/regions", PX_ADMIN_GET, px__admin_regions,
     "connections and streams holding the most memory; ?top=N (default 20, max 1000); "
     "?overload=N: as kept at an overload rise"},
    {"/memory/release", PX_ADMIN_POST, px__admin_release,
     "return idle cached memory to the OS now (POST)"},
    {"/metrics", PX_ADMIN_GET, px__admin_metrics, "all metrics, Prometheus text format 0.0.4"},
    {"/heap_dump", PX_ADMIN_GET | PX_ADMIN_POST, px__admin_heap_dump,
     "GET: pprof heap profile (?symbols=1 for symbols, ?format=proto for pprof's gzipped "
     "protobuf, ?peak=1 at the highest committed memory, ?overload=N at an overload rise); "
     "POST ?sample_bytes=N: sampling interval"},
    {"/heap_dump/peak/reset", PX_ADMIN_POST, px__admin_heap_peak_reset,
     "forget the peak heap snapshot; the next one starts from now (POST)"},
    {"/heap_dump/symbols", PX_ADMIN_GET, px__admin_heap_symbols,
     "symbols of the sampled program counters (pprof symbol format)"},
    {"/stats", PX_ADMIN_GET, px__admin_stats, "every proxy counter, JSON"},
    {"/clusters", PX_ADMIN_GET, px__admin_clusters,
     "every cluster endpoint: health, ejection, active requests, connections, failures (JSON)"},
    {"/overload", PX_ADMIN_GET, px__admin_overload,
     "overload level, pressure, thresholds, actions"},
    {"/config_dump", PX_ADMIN_GET, px__admin_config_dump,
     "active configuration (YAML), its version and hash"},
    {"/reload", PX_ADMIN_POST, px__admin_reload,
     "read the config file again, validate it whole and apply it (POST)"},
    {"/ready", PX_ADMIN_GET, px__admin_ready, "200 when serving, 503 while starting or draining"},
    {"/healthz", PX_ADMIN_GET, px__admin_healthz, "200 while the process runs"},
};

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 421:
        return "Misdirected Request";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* ---- shared helpers for the handler files ------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int px__admin_query_get(const char *query, const char *name, char *out, size_t out_len)
{
    MEM_ASSERT(query != NULL && name != NULL);
    MEM_ASSERT(out != NULL && out_len > 0);
    size_t nlen = strlen(name);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        if (end == NULL)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            size_t o = 0;
            for (const char *v = eq ? eq + 1 : end; v < end; v++) {
                char c = *v;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%' && end - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    c = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                }
                if (o + 1 >= out_len)
                    return -E2BIG;
                out[o++] = c;
            }
            out[o] = '\0';
            return (int)o;
        }
        p = *end ? end + 1 : end;
    }
    return -ENOENT;
}

int px__admin_query_u64(const char *query, const char *name, uint64_t max, uint64_t *out)
{
    MEM_ASSERT(out != NULL);
    char v[32];
    int n = px__admin_query_get(query, name, v, sizeof(v));
    if (n == -ENOENT)
        return -ENOENT;
    if (n <= 0)
        return -EINVAL;
    uint64_t x = 0;
    for (int i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EINVAL;
        if (x > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x > max)
        return -EINVAL;
    *out = x;
    return 0;
}

void px__admin_error(px_admin_resp_t *resp, int status, const char *msg)
{
    MEM_ASSERT(resp != NULL);
    MEM_ASSERT(status >= 400 && status < 600);
    /* Drop whatever the handler had written: the error replaces it. */
    size_t cap_max = resp->body.cap_max;
    px_jsonw_fini(&resp->body);
    px_jsonw_init(&resp->body, cap_max);
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    px_jsonw_puts(&resp->body, msg);
    px_jsonw_puts(&resp->body, "\n");
}

/* ---- connections ---------------------------------------------------------------------- */

static void conn_process(admin_conn_t *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_conn_handle_closed(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    MEM_ASSERT(c->handles_open > 0);
    if (--c->handles_open > 0)
        return;
    admin_t *a = c->admin;
    MEM_ASSERT(a->conns_cnt > 0);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->conns_cnt--;
    mem_free(c);
    /* c freed */
}

static void conn_close(admin_conn_t *c)
{
    if (c->closing)
        return;
    admin_t *a = c->admin;
    MEM_ASSERT(a->conns_open > 0);
    MEM_ASSERT(a->conns_open <= a->conns_cnt);
    c->closing = true;
    a->conns_open--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_timer(uv_timer_t *t);

/* Enters `phase` and arms its deadline `ms` from now (a one-shot: reads never extend it). */
static void conn_phase(admin_conn_t *c, admin_phase_t phase, uint64_t ms)
{
    MEM_ASSERT(ms > 0);
    if (c->closing)
        return;
    c->phase = phase;
    c->phase_since_ms = uv_now(&c->admin->loop);
    c->phase_seq = ++c->admin->phase_seq;
    (void)uv_timer_start(&c->timer, on_timer, ms, 0); /* cannot fail on an open handle */
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    admin_conn_t *c = req->data;
    conn_close(c);
}

/* No more requests on `c`: stop reading and close once every queued response is written
 * (uv_shutdown runs after the pending writes, so the peer gets them before the FIN). */
static void conn_finish(admin_conn_t *c)
{
    if (c->shutting || c->closing)
        return;
    c->shutting = true;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

/* Too many responses, or too many response bytes, are queued: parse and read no more. */
static bool conn_backlogged(const admin_conn_t *c)
{
    return c->writes_pending >= ADMIN_WRITES_MAX || c->bytes_pending > ADMIN_PENDING_BYTES_MAX;
}

static void on_write(uv_write_t *req, int status)
{
    admin_write_t *wr = MEM_CONTAINER_OF(req, admin_write_t, req);
    admin_conn_t *c = wr->conn;
    MEM_ASSERT(c->writes_pending > 0);
    MEM_ASSERT(c->bytes_pending >= wr->head_len + wr->body_len);
    c->writes_pending--;
    c->bytes_pending -= wr->head_len + wr->body_len;
    c->progress_ms = uv_now(&c->admin->loop);
    mem_free(wr->body);
    mem_free(wr);
    /* wr freed */
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* Write progress renews the idle deadline: a big answer to a slow reader is not cut, and a
     * client that stops reading is closed PX_ADMIN_IDLE_MS after the last progress. */
    if (!c->closing && !c->shutting && c->phase == ADMIN_PHASE_IDLE)
        conn_phase(c, ADMIN_PHASE_IDLE, PX_ADMIN_IDLE_MS);
    if (!c->closing && !c->shutting && !conn_backlogged(c))
        conn_process(c);
}

/* Sends `resp` (head + body) on `c`; takes the body. Returns 0 or a negative errno (the
 * connection is then closed by the caller). */
static int conn_send(admin_conn_t *c, px_admin_resp_t *resp, bool keep_alive, bool head_only)
{
    MEM_ASSERT(!c->closing);
    MEM_ASSERT(resp->status >= 100 && resp->status < 600);
    admin_write_t *wr = mem_malloc(sizeof(*wr));
    if (wr == NULL)
        return -ENOMEM;
    size_t body_len = 0;
    wr->body = px_jsonw_take(&resp->body, &body_len);
    wr->conn = c;
    int n = snprintf(wr->head, sizeof(wr->head),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "%s"
                     "Connection: %s\r\n"
                     "\r\n",
                     resp->status, status_text(resp->status),
                     resp->content_type ? resp->content_type : "application/json", body_len,
                     resp->extra_headers, keep_alive ? "keep-alive" : "close");
    MEM_ASSERT(n > 0 && (size_t)n < sizeof(wr->head));
    wr->head_len = (size_t)n;
    wr->body_len = (head_only || body_len == 0) ? 0 : body_len;
    uv_buf_t bufs[2] = {uv_buf_init(wr->head, (unsigned)wr->head_len),
                        uv_buf_init(wr->body ? wr->body : wr->head, (unsigned)body_len)};
    unsigned nbufs = (head_only || body_len == 0) ? 1 : 2;
    int rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write);
    if (rc != 0) {
        mem_free(wr->body);
        mem_free(wr);
        return rc;
    }
    c->writes_pending++;
    c->bytes_pending += wr->head_len + wr->body_len;
    return 0;
}

/* Sends an error and ends the connection (malformed input: we cannot trust its framing). */
static void conn_reject(admin_conn_t *c, int status, const char *msg)
{
    px_admin_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    px_jsonw_init(&resp.body, 4096);
    px__admin_error(&resp, status, msg);
    if (conn_send(c, &resp, false, false) != 0) {
        px_jsonw_fini(&resp.body);
        conn_close(c);
        return;
    }
    px_jsonw_fini(&resp.body);
    conn_finish(c);
}

/* Constant-time comparison of the Authorization value with "Bearer <token>": the time taken
 * depends on the expected length only, never on where the first difference is. */
static bool auth_ok(const admin_t *a, const admin_conn_t *c)
{
    if (a->expect_auth == NULL)
        return true;
    /* A repeated Authorization header is ambiguous: refuse rather than pick one. */
    const admin_hdr_t *h = &c->hdrs[ADMIN_HDR_AUTH];
    if (h->cnt != 1 || h->overflow)
        return false;
    unsigned diff = (unsigned)(h->len ^ a->expect_auth_len);
    for (size_t i = 0; i < a->expect_auth_len; i++) {
        unsigned char got = i < h->len ? (unsigned char)h->value[i] : 0;
        diff |= (unsigned)(got ^ (unsigned char)a->expect_auth[i]);
    }
    return diff == 0;
}

/* ---- Host, Origin, Referer checks ------------------------------------------------------- */

/* Value of header `id` without surrounding blanks, or NULL when absent or overflowed. */
static const char *hdr_value(const admin_conn_t *c, admin_hdr_id_t id, size_t *len)
{
    const admin_hdr_t *h = &c->hdrs[id];
    if (h->cnt == 0 || h->overflow)
        return NULL;
    const char *v = h->value;
    size_t n = h->len;
    while (n > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *len = n;
    return v;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n <= 5;
}

static bool is_ip(int af, const char *s, size_t n)
{
    char buf[64];
    unsigned char addr[sizeof(struct in6_addr)];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(af, buf, addr) == 1;
}

/* Whether a request with this Host may be answered without a token. DNS rebinding makes a
 * browser send a name the attacker controls (Host: evil.example:9901) to our loopback address,
 * so every name is refused except the loopback ones (`localhost`, `*.localhost`, which
 * browsers resolve to loopback themselves, RFC 6761) and the configured admin host. An IP
 * literal cannot come from rebinding (the page's origin would be that address, that is us),
 * so any IPv4 or IPv6 literal is answered: that keeps 127.0.0.1, [::1] and a published
 * address (0.0.0.0 with admin.allow_public, behind a port mapping) working. The port is not
 * compared. A request without Host cannot come from a browser (they always send one), so it
 * is answered (an HTTP/1.0 `printf | nc` probe); an empty or oversized one is refused. */
static bool host_allowed(const admin_t *a, const admin_conn_t *c)
{
    if (c->hdrs[ADMIN_HDR_HOST].cnt == 0)
        return true;
    size_t n;
    const char *v = hdr_value(c, ADMIN_HDR_HOST, &n);
    if (v == NULL || n == 0)
        return false;
    if (v[0] == '[') {
        const char *rb = memchr(v, ']', n);
        if (rb == NULL || !is_ip(AF_INET6, v + 1, (size_t)(rb - v - 1)))
            return false;
        size_t rest = n - (size_t)(rb + 1 - v);
        return rest == 0 || (rb[1] == ':' && all_digits(rb + 2, rest - 1));
    }
    const char *colon = memchr(v, ':', n);
    if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon + 1 - v)) != NULL) {
        /* Two colons without brackets: not valid Host syntax, but what `weir health` writes
         * for an IPv6 admin address ("::1:9901"); any reading of it is an IP literal. */
        if (is_ip(AF_INET6, v, n))
            return true;
        const char *last = v + n;
        while (last > v && last[-1] != ':')
            last--;
        return last > v + 1 && all_digits(last, (size_t)(v + n - last)) &&
               is_ip(AF_INET6, v, (size_t)(last - 1 - v));
    }
    size_t name_len = colon ? (size_t)(colon - v) : n;
    if (colon != NULL && !all_digits(colon + 1, n - name_len - 1))
        return false;
    if (name_len > 0 && v[name_len - 1] == '.')
        name_len--; /* "localhost." is the same name */
    if (name_len == 0)
        return false;
    if (is_ip(AF_INET, v, name_len))
        return true;
    if (name_len == 9 && strncasecmp(v, "localhost", 9) == 0)
        return true;
    if (name_len > 10 && strncasecmp(v + name_len - 10, ".localhost", 10) == 0)
        return true;
    size_t cl = strlen(a->cfg_host);
    return cl > 0 && cl == name_len && strncasecmp(v, a->cfg_host, cl) == 0;
}

/* Whether authority `s` (from an Origin or Referer with scheme default port `defport`) names
 * the same host and port as the Host value `h`; an explicit default port is the same origin. */
static bool same_authority(const char *s, size_t n, const char *h, size_t hn, const char *defport)
{
    size_t dl = strlen(defport);
    if (n > dl + 1 && s[n - dl - 1] == ':' && memcmp(s + n - dl, defport, dl) == 0)
        n -= dl + 1;
    if (hn > dl + 1 && h[hn - dl - 1] == ':' && memcmp(h + hn - dl, defport, dl) == 0)
        hn -= dl + 1;
    return n == hn && n > 0 && strncasecmp(s, h, n) == 0;
}

/* Whether the URL prefix `u` (an Origin, or a Referer cut at ADMIN_HDR_VALUE_MAX) is on the
 * origin the request was sent to (its Host). http and https both count: this port speaks
 * plain HTTP, so an https page on the same host and port can only be a TLS front end for it. */
static bool same_origin(const admin_conn_t *c, const char *u, size_t n)
{
    size_t hn;
    const char *h = hdr_value(c, ADMIN_HDR_HOST, &hn);
    if (h == NULL)
        return false;
    const char *defport;
    size_t skip;
    if (n >= 7 && strncasecmp(u, "http://", 7) == 0) {
        defport = "80";
        skip = 7;
    } else if (n >= 8 && strncasecmp(u, "https://", 8) == 0) {
        defport = "443";
        skip = 8;
    } else {
        return false; /* "null" (sandboxed or file: pages) and every other scheme */
    }
    const char *s = u + skip;
    size_t an = 0;
    while (skip + an < n && s[an] != '/' && s[an] != '?' && s[an] != '#')
        an++;
    if (memchr(s, '@', an) != NULL)
        return false; /* user info has no place in an origin */
    return same_authority(s, an, h, hn, defport);
}

/* Why a POST looks like one a browser page of another site could have sent, or NULL. A browser
 * sends a cross-origin "simple" POST without asking (no CORS preflight) when its content type
 * is a form or text/plain, and marks where a request comes from with Sec-Fetch-Site and Origin
 * (or at least Referer). curl, Prometheus and `weir health` send none of these. The same checks
 * as Go's net/http CrossOriginProtection, plus the content types. */
static const char *cross_site_why(const admin_conn_t *c)
{
    size_t n;
    const char *v;
    if ((v = hdr_value(c, ADMIN_HDR_FETCH_SITE, &n)) != NULL &&
        !(n == 11 && strncasecmp(v, "same-origin", 11) == 0) &&
        !(n == 4 && strncasecmp(v, "none", 4) == 0))
        return "Sec-Fetch-Site is not same-origin";
    const admin_hdr_t *o = &c->hdrs[ADMIN_HDR_ORIGIN];
    if (o->cnt > 0) {
        v = hdr_value(c, ADMIN_HDR_ORIGIN, &n);
        if (o->cnt > 1 || v == NULL || !same_origin(c, v, n))
            return "Origin is another site";
    } else if (c->hdrs[ADMIN_HDR_REFERER].cnt > 0) {
        const admin_hdr_t *r = &c->hdrs[ADMIN_HDR_REFERER];
        /* An overflowed Referer still holds its first bytes, which is where the origin is. */
        v = r->value;
        n = r->len;
        while (n > 0 && (v[0] == ' ' || v[0] == '\t')) {
            v++;
            n--;
        }
        if (r->cnt > 1 || !same_origin(c, v, n))
            return "Referer is another site";
    }
    const admin_hdr_t *t = &c->hdrs[ADMIN_HDR_CTYPE];
    if (t->cnt > 0) {
        v = t->value;
        n = t->len;
        while (n > 0 && (v[0] == ' ' || v[0] == '\t')) {
            v++;
            n--;
        }
        const char *semi = memchr(v, ';', n);
        if (semi != NULL)
            n = (size_t)(semi - v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        static const char *const simple[] = {"application/x-www-form-urlencoded",
                                             "multipart/form-data", "text/plain"};
        for (size_t i = 0; i < MEM_ARRAY_LEN(simple); i++)
            if (n == strlen(simple[i]) && strncasecmp(v, simple[i], n) == 0)
                return "a form or text/plain content type";
    }
    return NULL;
}

static void list_endpoints(px_jsonw_t *w)
{
    for (size_t i = 0; i < MEM_ARRAY_LEN(g_routes); i++) {
        const admin_route_t *r = &g_routes[i];
        px_jsonw_printf(w, "  %-5s%-5s %-18s %s\n", (r->methods & PX_ADMIN_GET) ? "GET" : "",
                        (r->methods & PX_ADMIN_POST) ? "POST" : "", r->path, r->help);
    }
}

static void allow_header(char *out, size_t out_len, unsigned methods)
{
    snprintf(out, out_len, "Allow: %s%s%s\r\n", (methods & PX_ADMIN_GET) ? "GET" : "",
             (methods & PX_ADMIN_GET) && (methods & PX_ADMIN_POST) ? ", " : "",
             (methods & PX_ADMIN_POST) ? "POST" : "");
}

/* Routes one complete request and queues its response. */
static void conn_dispatch(admin_conn_t *c)
{
    admin_t *a = c->admin;
    http_parser *p = &c->parser;
    bool keep_alive = http_should_keep_alive(p) != 0;
    px_admin_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    resp.content_type = "application/json";
    px_jsonw_init(&resp.body, PX_ADMIN_BODY_OUT_MAX);

    /* Split the target into path and query, in place (url is ours and NUL-terminated). */
    c->url[c->url_len] = '\0';
    char *query = strchr(c->url, '?');
    if (query != NULL)
        *query++ = '\0';
    else
        query = c->url + c->url_len;
    const char *path = c->url;
    bool head_only = p->method == HTTP_HEAD;
    unsigned method = p->method == HTTP_GET || p->method == HTTP_HEAD ? PX_ADMIN_GET
                      : p->method == HTTP_POST                        ? PX_ADMIN_POST
                                                                      : 0;

    /* The dashboard page itself is static and holds no data, and a browser cannot send a
     * bearer header for a page load: it is served without the token. Every endpoint it reads
     * (and every other one) needs the token; the page takes it from its URL fragment
     * (#token=...), which browsers never send to the server. */
    bool is_page = strcmp(path, "/") == 0;
    if (c->hdrs[ADMIN_HDR_HOST].cnt > 1) {
        px__admin_error(&resp, 400, "400 bad request: more than one Host header");
        keep_alive = false;
        goto send;
    }
    /* With a token every request proves itself; without one the Host check stands in for it
     * against DNS rebinding, for the page too (a rebound page could read what it fetches). */
    if (a->expect_auth == NULL && !host_allowed(a, c)) {
        px__admin_error(&resp, 421,
                        "421 misdirected request: without admin.token this port answers only "
                        "Host: localhost, *.localhost, an IP address or the admin.address host");
        goto send;
    }
    if (!is_page && !auth_ok(a, c)) {
        px__admin_error(&resp, 401, "401 unauthorized: send Authorization: Bearer <token>");
        snprintf(resp.extra_headers, sizeof(resp.extra_headers),
                 "WWW-Authenticate: Bearer realm=\"weir-admin\"\r\n");
        goto send;
    }
    const admin_route_t *route = NULL;
    for (size_t i = 0; i < MEM_ARRAY_LEN(g_routes); i++) {
        if (strcmp(g_routes[i].path, path) == 0) {
            route = &g_routes[i];
            break;
        }
    }
    if (route == NULL) {
        resp.status = 404;
        resp.content_type = "text/plain; charset=utf-8";
        px_jsonw_puts(&resp.body, "404 not found. weir admin endpoints:\n");
        list_endpoints(&resp.body);
        goto send;
    }
    if ((route->methods & method) == 0) {
        px__admin_error(&resp, 405, "405 method not allowed");
        allow_header(resp.extra_headers, sizeof(resp.extra_headers), route->methods);
        goto send;
    }
    /* A POST acts (releases memory, changes sampling). With a token it carries the bearer,
     * which no cross-site page can attach; without one, refuse what such a page could send. */
    const char *why = NULL;
    if (method == PX_ADMIN_POST && a->expect_auth == NULL && (why = cross_site_why(c)) != NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "403 forbidden: cross-site POST refused (%s); send it with "
                 "no Origin, Referer or form content type, or set admin.token",
                 why);
        px__admin_error(&resp, 403, msg);
        goto send;
    }
    px_admin_req_t req = {
        .server = a->server,
        .method = (px_admin_method_t)method,
        .path = path,
        .query = query,
    };
    route->fn(&req, &resp);
    int err = px_jsonw_error(&resp.body);
    if (err == -E2BIG)
        px__admin_error(&resp, 500, "500 response too large");
    else if (err != 0)
        px__admin_error(&resp, 503, "503 out of memory building the response");

send:
    if (px_jsonw_error(&resp.body) != 0) {
        /* Even the error text could not be built: nothing sensible to say. */
        px_jsonw_fini(&resp.body);
        conn_close(c);
        return;
    }
    if (conn_send(c, &resp, keep_alive, head_only) != 0) {
        px_jsonw_fini(&resp.body);
        conn_close(c);
        return;
    }
    px_jsonw_fini(&resp.body);
    if (!keep_alive)
        conn_finish(c);
}

/* Parses what has been read. Each complete request pauses the parser so that the number of
 * queued responses can be checked before the next one is parsed. */
static void conn_process(admin_conn_t *c)
{
    while (!c->closing && !c->shutting && c->rpos < c->rlen) {
        if (conn_backlogged(c))
            break;
        size_t n = http_parser_execute(&c->parser, &c->admin->settings, c->rbuf + c->rpos,
                                       c->rlen - c->rpos);
        MEM_ASSERT(n <= c->rlen - c->rpos);
        c->rpos += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            continue;
        }
        if (e != HPE_OK) {
            if (c->err_status != 0) {
                conn_reject(c, c->err_status, c->err_msg);
            } else {
                char msg[160];
                snprintf(msg, sizeof(msg), "400 bad request: %s", http_errno_description(e));
                conn_reject(c, 400, msg);
            }
            return;
        }
        if (c->parser.upgrade) {
            conn_reject(c, 400, "400 bad request: protocol upgrade is not supported");
            return;
        }
    }
    if (c->closing || c->shutting)
        return;
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    /* Read only while there is room and the responses are draining. */
    bool want_read = !conn_backlogged(c) && c->rlen < sizeof(c->rbuf);
    if (want_read && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            conn_close(c);
            return;
        }
        c->reading = true;
    } else if (!want_read && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    admin_conn_t *c = h->data;
    /* Keep the unparsed tail at the front so the free space is contiguous. */
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    MEM_ASSERT(c->rlen <= sizeof(c->rbuf));
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(sizeof(c->rbuf) - c->rlen));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    admin_conn_t *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error: answer what is queued, then close. */
        if (nread == UV_EOF && c->writes_pending > 0)
            conn_finish(c);
        else
            conn_close(c);
        return;
    }
    MEM_ASSERT(c->rlen + (size_t)nread <= sizeof(c->rbuf));
    c->rlen += (size_t)nread;
    /* No deadline moves here: only a complete request (or write progress) does. */
    conn_process(c);
}

/* The deadline of the connection's phase passed. */
static void on_timer(uv_timer_t *t)
{
    admin_conn_t *c = t->data;
    MEM_ASSERT(t == &c->timer);
    if (c->closing)
        return;
    if (c->shutting) {
        conn_close(c); /* its last answer did not drain in time */
        return;
    }
    bool partial = c->phase == ADMIN_PHASE_BODY || (c->phase == ADMIN_PHASE_HEAD && c->req_begun);
    if (!partial) {
        /* Idle keep-alive, or a connection that never sent a byte: close without a word (an
         * answer nobody asked for confuses a client that is about to reuse the connection). */
        conn_close(c);
        return;
    }
    conn_reject(c, 408,
                c->phase == ADMIN_PHASE_HEAD
                    ? "408 request timeout: the request head did not arrive within 10 s"
                    : "408 request timeout: the request body did not arrive within 10 s");
    if (!c->closing)
        (void)uv_timer_start(&c->timer, on_timer, ADMIN_LINGER_MS, 0);
}

/* ---- http_parser callbacks -------------------------------------------------------------- */

static bool is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int head_add(admin_conn_t *c, size_t len)
{
    c->head_bytes += len;
    if (c->head_bytes > PX_ADMIN_HEAD_MAX) {
        c->err_status = 400;
        c->err_msg = "400 bad request: request head over 8192 bytes";
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    admin_conn_t *c = p->data;
    c->head_bytes = 0;
    c->body_bytes = 0;
    c->err_status = 0;
    c->err_msg = NULL;
    c->hdr_cur = -1;
    c->in_value = false;
    c->field_len = 0;
    for (size_t i = 0; i < ADMIN_HDR_CNT; i++) {
        c->hdrs[i].cnt = 0;
        c->hdrs[i].overflow = false;
        c->hdrs[i].len = 0;
    }
    c->url_len = 0;
    /* The head deadline runs from the request's first byte (a keep-alive connection's idle
     * time before it is PX_ADMIN_IDLE_MS, not part of it). A connection's first request keeps
     * the deadline armed at accept, so a client cannot wait 10 s and then start dribbling. */
    if (c->phase != ADMIN_PHASE_HEAD)
        conn_phase(c, ADMIN_PHASE_HEAD, PX_ADMIN_HEAD_TIMEOUT_MS);
    c->req_begun = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    admin_conn_t *c = p->data;
    if (head_add(c, len) != 0)
        return -1;
    if (c->url_len + len > ADMIN_URL_MAX) {
        c->err_status = 400;
        c->err_msg = "400 bad request: request target over 4096 bytes";
        return -1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    admin_conn_t *c = p->data;
    if (head_add(c, len) != 0)
        return -1;
    if (c->in_value) {
        c->in_value = false;
        c->field_len = 0;
    }
    /* Only names we match are kept; a longer name just never matches. The parser library
     * lets some invalid names through (spaces), so check RFC 9110 token characters here. */
    for (size_t i = 0; i < len; i++) {
        if (!is_tchar((unsigned char)at[i])) {
            c->err_status = 400;
            c->err_msg = "400 bad request: invalid character in a header name";
            return -1;
        }
        if (c->field_len < sizeof(c->field))
            c->field[c->field_len] = at[i];
        c->field_len++;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    admin_conn_t *c = p->data;
    if (head_add(c, len) != 0)
        return -1;
    if (!c->in_value) {
        c->in_value = true;
        c->hdr_cur = -1;
        for (int i = 0; i < ADMIN_HDR_CNT; i++) {
            size_t nl = strlen(g_hdr_names[i]);
            if (c->field_len == nl && strncasecmp(c->field, g_hdr_names[i], nl) == 0) {
                c->hdr_cur = i;
                break;
            }
        }
        if (c->hdr_cur >= 0) {
            /* A repeat keeps the first value; `cnt` tells the checks it was repeated. */
            admin_hdr_t *h = &c->hdrs[c->hdr_cur];
            if (h->cnt++ > 0)
                c->hdr_cur = -1;
        }
    }
    if (c->hdr_cur >= 0) {
        admin_hdr_t *h = &c->hdrs[c->hdr_cur];
        MEM_ASSERT(h->len <= sizeof(h->value));
        size_t room = sizeof(h->value) - h->len;
        if (len > room)
            h->overflow = true;
        memcpy(h->value + h->len, at, MEM_MIN(len, room));
        h->len += MEM_MIN(len, room);
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    admin_conn_t *c = p->data;
    if (p->http_major != 1) {
        c->err_status = 400;
        c->err_msg = "400 bad request: only HTTP/1.0 and HTTP/1.1 are served here";
        return -1;
    }
    if (p->upgrade) {
        c->err_status = 400;
        c->err_msg = "400 bad request: protocol upgrade is not supported";
        return -1;
    }
    conn_phase(c, ADMIN_PHASE_BODY, PX_ADMIN_BODY_TIMEOUT_MS);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    (void)at;
    admin_conn_t *c = p->data;
    c->body_bytes += len;
    if (c->body_bytes > PX_ADMIN_BODY_MAX) {
        c->err_status = 413;
        c->err_msg = "413 request body over 4096 bytes";
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    admin_conn_t *c = p->data;
    MEM_ASSERT(c->req_begun);
    c->req_begun = false;
    c->progress_ms = uv_now(&c->admin->loop);
    conn_phase(c, ADMIN_PHASE_IDLE, PX_ADMIN_IDLE_MS);
    conn_dispatch(c);
    /* Stop after each request: conn_process decides whether to parse the next one. */
    http_parser_pause(p, 1);
    return 0;
}

/* ---- listener, thread, start and stop ----------------------------------------------------- */

static void reject_pending(admin_t *a);

static void on_reject_closed(uv_handle_t *h)
{
    admin_t *a = h->data;
    MEM_ASSERT(a->reject_busy);
    a->reject_busy = false;
    /* A connection left waiting while the handle was busy: take it now (uv_accept also
     * resumes polling the listener, which libuv paused while a connection was pending). */
    if (a->accept_pending && !a->stopping)
        reject_pending(a);
}

/* Accepts the pending connection on the preallocated `reject` handle and closes it at once.
 * It needs no allocation, so the listener keeps draining its backlog at the connection cap
 * and when memory is short; a connection we do not accept would stop libuv polling the
 * listener for good. */
static void reject_pending(admin_t *a)
{
    if (a->reject_busy) {
        a->accept_pending = true; /* taken in on_reject_closed */
        return;
    }
    a->accept_pending = false;
    MEM_ASSERT(!a->stopping);
    if (uv_tcp_init(&a->loop, &a->reject) != 0)
        return;
    a->reject.data = a;
    a->reject_busy = true;
    (void)uv_accept((uv_stream_t *)&a->listener, (uv_stream_t *)&a->reject);
    uv_close((uv_handle_t *)&a->reject, on_reject_closed);
}

/* The connection to close so that a new one can be served when every slot is taken, or NULL.
 * First the one whose request has been incomplete longest (slow clients holding slots is what
 * the deadlines bound, and this makes them harmless before they pass), then the oldest idle
 * keep-alive connection (a client may always lose one, RFC 9112 9.6), then the response
 * stalled longest (past ADMIN_STALL_MS without write progress). One answering at its own pace
 * is never cut. */
static admin_conn_t *evict_victim(admin_t *a)
{
    uint64_t now = uv_now(&a->loop);
    admin_conn_t *best = NULL;
    int best_tier = 3;
    for (admin_conn_t *c = a->conns; c != NULL; c = c->next) {
        if (c->closing)
            continue;
        /* A shutting connection is ranked like the others: one that sent its last answer and
         * waits for the client's FIN is idle, one whose answer the client does not read is
         * stalled. */
        int tier;
        if (c->phase != ADMIN_PHASE_IDLE)
            tier = 0;
        else if (c->writes_pending == 0 && c->rpos == c->rlen)
            tier = 1;
        else if (now - c->progress_ms >= ADMIN_STALL_MS)
            tier = 2;
        else
            continue;
        if (tier < best_tier || (tier == best_tier && c->phase_seq < best->phase_seq)) {
            best = c;
            best_tier = tier;
        }
    }
    MEM_ASSERT(best == NULL || !best->closing);
    return best;
}

static void on_connection(uv_stream_t *server, int status)
{
    admin_t *a = server->data;
    MEM_ASSERT(server == (uv_stream_t *)&a->listener);
    if (status < 0)
        return;
    if (a->conns_open >= PX_ADMIN_CONNS_MAX) {
        admin_conn_t *victim = evict_victim(a);
        if (victim == NULL) {
            reject_pending(a);
            return;
        }
        conn_close(victim); /* its slot is free now; its memory goes in the close callback */
    }
    admin_conn_t *c = mem_malloc(sizeof(*c));
    if (c == NULL) {
        reject_pending(a);
        return;
    }
    memset(c, 0, offsetof(admin_conn_t, rbuf));
    c->admin = a;
    if (uv_tcp_init(&a->loop, &c->tcp) != 0) {
        mem_free(c);
        reject_pending(a);
        return;
    }
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    (void)uv_timer_init(&a->loop, &c->timer); /* cannot fail on an initialized loop */
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->conns_cnt++;
    a->conns_open++;
    MEM_ASSERT(a->conns_open <= PX_ADMIN_CONNS_MAX);
    MEM_ASSERT(a->conns_open <= a->conns_cnt);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    conn_phase(c, ADMIN_PHASE_HEAD, PX_ADMIN_HEAD_TIMEOUT_MS);
    conn_process(c); /* starts reading */
}

static void on_stop(uv_async_t *h)
{
    admin_t *a = h->data;
    a->stopping = true;
    uv_close((uv_handle_t *)&a->listener, NULL);
    uv_close((uv_handle_t *)&a->stop, NULL);
    for (admin_conn_t *c = a->conns; c != NULL; c = c->next)
        conn_close(c);
}

static void *admin_thread(void *arg)
{
    admin_t *a = arg;
    pthread_setname_np(pthread_self(), "weir-admin");
    uv_run(&a->loop, UV_RUN_DEFAULT);
    MEM_ASSERT(a->conns_cnt == 0);
    return NULL;
}

static void admin_free(admin_t *a)
{
    mem_free(a->expect_auth);
    mem_free(a);
}

static void on_close_noop(uv_handle_t *h)
{
    (void)h;
}

int px_admin_start(px_server_t *s)
{
    MEM_ASSERT(s != NULL && s->cfg != NULL);
    MEM_ASSERT(g_admin == NULL);
    const px_admin_cfg_t *cfg = &s->cfg->admin;
    if (!cfg->enabled)
        return 0;
    int rc;
    admin_t *a = mem_calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->server = s;
    snprintf(a->cfg_host, sizeof(a->cfg_host), "%s", cfg->addr.host);
    if (cfg->token != NULL && cfg->token[0] != '\0') {
        size_t tl = strlen(cfg->token);
        a->expect_auth = mem_malloc(tl + 8);
        if (a->expect_auth == NULL) {
            rc = -ENOMEM;
            goto fail_alloc;
        }
        memcpy(a->expect_auth, "Bearer ", 7);
        memcpy(a->expect_auth + 7, cfg->token, tl + 1);
        a->expect_auth_len = tl + 7;
    }
    a->settings.on_message_begin = on_message_begin;
    a->settings.on_url = on_url;
    a->settings.on_header_field = on_header_field;
    a->settings.on_header_value = on_header_value;
    a->settings.on_headers_complete = on_headers_complete;
    a->settings.on_body = on_body;
    a->settings.on_message_complete = on_message_complete;

    rc = uv_loop_init(&a->loop);
    if (rc != 0)
        goto fail_alloc;
    rc = uv_tcp_init(&a->loop, &a->listener);
    if (rc != 0)
        goto fail_loop;
    a->listener.data = a;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (cfg->addr.sa_len > 0) {
        memcpy(&ss, &cfg->addr.sa, cfg->addr.sa_len);
    } else {
        /* Not resolved by the config loader: accept a literal address. */
        const char *host = cfg->addr.host[0] ? cfg->addr.host : "127.0.0.1";
        if (uv_ip4_addr(host, cfg->addr.port, (struct sockaddr_in *)&ss) != 0 &&
            uv_ip6_addr(host, cfg->addr.port, (struct sockaddr_in6 *)&ss) != 0) {
            rc = -EINVAL;
            goto fail_listener;
        }
    }
    rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 64, on_connection);
    if (rc != 0)
        goto fail_listener;
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    rc = uv_tcp_getsockname(&a->listener, (struct sockaddr *)&bound, &blen);
    if (rc != 0)
        goto fail_listener;
    s->admin_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port);

    rc = uv_async_init(&a->loop, &a->stop, on_stop);
    if (rc != 0)
        goto fail_listener;
    a->stop.data = a;
    rc = -pthread_create(&a->thread, NULL, admin_thread, a);
    if (rc != 0)
        goto fail_async;
    a->thread_started = true;
    g_admin = a;
    return 0;

fail_async:
    uv_close((uv_handle_t *)&a->stop, on_close_noop);
fail_listener:
    uv_close((uv_handle_t *)&a->listener, on_close_noop);
    uv_run(&a->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
fail_loop:
    (void)uv_loop_close(&a->loop);
fail_alloc:
    admin_free(a);
    return rc;
}

void px_admin_stop(px_server_t *s)
{
    MEM_ASSERT(s != NULL);
    admin_t *a = g_admin;
    if (a == NULL)
        return;
    MEM_ASSERT(a->server == s);
    MEM_ASSERT(a->thread_started);
    uv_async_send(&a->stop);
    pthread_join(a->thread, NULL);
    int rc = uv_loop_close(&a->loop);
    MEM_ASSERT(rc == 0);
    g_admin = NULL;
    admin_free(a);
}
