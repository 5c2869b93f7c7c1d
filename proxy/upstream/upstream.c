/*
 * proxy/upstream/upstream.c: the upstream exchange and the per-worker pools behind it: endpoint
 * choice (round robin, least request), connection set-up with connect timeouts and retries on other
 * endpoints, queueing while connections are set up or full, request timeouts, the batched
 * write pass, and the error mapping shared by the protocols, which it reaches only through
 * their operations table (px_upproto_ops_t): HTTP/1.1 (h1.c) and h2c (or h2 over TLS) on
 * weir's own codec (h2w.c).
 *
 * Instances: one px_upstream_pools_t per worker (w->upstream), created by
 * px_upstream_worker_init; exchanges are created by the downstream stream that owns them.
 * Thread: everything here runs on the worker's loop thread only.
 *
 * Memory: an exchange, its request copy and room for a usual response head are one block
 * from the worker's thread cache (mem_malloc);
 * a connection lives in its own region (mem_region_new), freed in the close callback of its
 * last handle. An exchange's request timer is a uv handle, so the exchange itself is freed in
 * that timer's close callback: after px_upstream_cancel() or a final callback the caller must
 * forget it, and no callback fires again.
 */
#define PX_UPSTREAM_INTERNAL 1
#include "proxy/upstream/upstream.h"
#include "mem/base.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "mem/malloc.h"
#include "mem/region.h"
#include "proxy/upstream/h1.h"
#include "proxy/upstream/health.h"
#include "proxy/upstream/tls.h"
#include "proxy/upstream/tlsio.h"
#include "proxy/core/worker-t.h"

/* The read buffer of one connection; also the largest read delivered at once. */
#define UP_RBUF_LEN ((size_t)16384)
/* The batched write buffer: the output of one loop iteration, at most, per connection. It
 * must stay a size-class object (<= 32 KiB): anything larger is a dedicated mapping in mem/, which
 * would cost an mmap, a munmap and page faults on every batch (bench/run-peers showed 1.4 faults
 * per request before). */
#define UP_WBUF_LEN ((size_t)32768)
/* The plaintext batch of a TLS connection: its ciphertext (two 16 KiB records and their
 * headers, tags and padding, under 100 bytes each) must stay within UP_WBUF_LEN as well. */
#define UP_TLS_WBUF_LEN (UP_WBUF_LEN - 512)

static void on_flush_check(uv_check_t *h);
static void on_flush_idle(uv_idle_t *h);

/* ---- lists ---------------------------------------------------------------------------- */

static void link_init(px_uplink_t *h)
{
    h->prev = h->next = h;
}

static bool link_empty(const px_uplink_t *h)
{
    return h->next == h;
}

void px__upstream_link_add(px_uplink_t *head, px_uplink_t *n)
{
    MEM_ASSERT_HOT(n->next == NULL || n->next == n);
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static void link_add_front(px_uplink_t *head, px_uplink_t *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

void px__upstream_link_del(px_uplink_t *n)
{
    MEM_ASSERT_HOT(n->next != NULL);
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static size_t link_cnt(const px_uplink_t *h)
{
    size_t n = 0;
    for (const px_uplink_t *p = h->next; p != h; p = p->next)
        n++;
    return n;
}

#define REQ_OF(l)  MEM_CONTAINER_OF(l, px_upstream_req_t, link)
#define CONN_OF(l) MEM_CONTAINER_OF(l, px_upconn_t, link)

/* ---- the request-body ring ------------------------------------------------------------- */

/* Copies `len` bytes in; the caller checked the room. */
static void ring_put(px_upring_t *b, const uint8_t *data, size_t len)
{
    MEM_ASSERT(b->len + len <= b->cap);
    size_t tail = (b->off + b->len) % b->cap;
    size_t first = MEM_MIN(len, b->cap - tail);
    memcpy(b->buf + tail, data, first);
    memcpy(b->buf, data + first, len - first);
    b->len += len;
}

/* The first contiguous run of buffered bytes: returns its length and sets `*p`. */
size_t px__upstream_ring_peek(const px_upring_t *b, const uint8_t **p)
{
    if (b->len == 0) {
        *p = NULL;
        return 0;
    }
    MEM_ASSERT_HOT(b->off < b->cap);
    *p = b->buf + b->off;
    return MEM_MIN(b->len, b->cap - b->off);
}

void px__upstream_ring_drop(px_upring_t *b, size_t len)
{
    MEM_ASSERT(len <= b->len);
    b->len -= len;
    b->off = b->len == 0 ? 0 : (b->off + len) % b->cap;
}

/* ---- collected header blocks ---------------------------------------------------------- */

/* True when `p` lies in the exchange's own block (`first`), which goes with the exchange. */
static bool hdrs_borrowed(const px_uphdrs_t *h, const void *p)
{
    const char *c = p;
    return h->first && c >= h->first && c < h->first + PX_UPHDRS_FIRST_BYTES;
}

/* Grows `old` (`len` bytes used) to `cap` bytes: a realloc, or a copy out of the exchange's
 * own block (`borrowed`), which is never freed alone. Returns NULL on OOM (`old` kept). */
static void *hdrs_grow(void *old, bool borrowed, size_t len, size_t cap)
{
    if (!borrowed)
        return mem_realloc(old, cap);
    void *p = mem_malloc(cap);
    if (p && len)
        memcpy(p, old, len);
    return p;
}

static int hdrs_reserve(px_uphdrs_t *h, size_t more)
{
    if (h->len + more > UINT32_MAX)
        return -E2BIG;
    if (h->len + more > h->cap) {
        size_t cap = MEM_MAX(h->cap * 2, MEM_MAX(h->len + more, (size_t)PX_UPHDRS_FIRST_BUF));
        char *first = h->first ? h->first + PX_UPHDRS_FIRST_ENTS * sizeof(px_uphdr_ent_t) : NULL;
        if (h->buf == NULL && first && cap == PX_UPHDRS_FIRST_BUF) {
            h->buf = first;
            h->cap = cap;
            return 0;
        }
        char *nb = hdrs_grow(h->buf, hdrs_borrowed(h, h->buf), h->len, cap);
        if (!nb)
            return -ENOMEM;
        h->buf = nb;
        h->cap = cap;
    }
    return 0;
}

static int hdrs_new_entry(px_uphdrs_t *h)
{
    if (h->cnt == h->ent_cap) {
        size_t cap = MEM_MAX(h->ent_cap * 2, (size_t)PX_UPHDRS_FIRST_ENTS);
        px_uphdr_ent_t *first = (px_uphdr_ent_t *)(void *)h->first;
        px_uphdr_ent_t *ne;
        if (h->ent == NULL && first && cap == PX_UPHDRS_FIRST_ENTS)
            ne = first;
        else
            ne = hdrs_grow(h->ent, hdrs_borrowed(h, h->ent), h->cnt * sizeof(*ne),
                           cap * sizeof(*ne));
        if (!ne)
            return -ENOMEM;
        h->ent = ne;
        h->ent_cap = cap;
    }
    px_uphdr_ent_t *e = &h->ent[h->cnt++];
    e->name_off = e->value_off = (uint32_t)h->len;
    e->name_len = e->value_len = 0;
    return 0;
}

/* Adds one whole header (names are lower-cased, as HTTP/2 wants them). */
int px__upstream_hdrs_add(px_uphdrs_t *h, const char *name, size_t name_len, const char *value,
                          size_t value_len)
{
    int rc = hdrs_new_entry(h);
    if (rc < 0)
        return rc;
    rc = px__upstream_hdrs_append(h, false, name, name_len);
    if (rc < 0)
        return rc;
    return px__upstream_hdrs_append(h, true, value, value_len);
}

/* Appends bytes to the name (`value` false) or the value of the last entry; with no entry or
 * when a name piece follows a value, a new entry starts (http_parser delivers pieces). */
int px__upstream_hdrs_append(px_uphdrs_t *h, bool value, const char *s, size_t len)
{
    int rc;
    if (h->cnt == 0 || (!value && h->ent[h->cnt - 1].value_len > 0)) {
        rc = hdrs_new_entry(h);
        if (rc < 0)
            return rc;
    }
    rc = hdrs_reserve(h, len);
    if (rc < 0)
        return rc;
    px_uphdr_ent_t *e = &h->ent[h->cnt - 1];
    if (value) {
        if (e->value_len == 0)
            e->value_off = (uint32_t)h->len;
        MEM_ASSERT_HOT(e->value_off + e->value_len == h->len);
        e->value_len += (uint32_t)len;
    } else {
        MEM_ASSERT_HOT(e->name_off + e->name_len == h->len);
        for (size_t i = 0; i < len; i++)
            h->buf[h->len + i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
        e->name_len += (uint32_t)len;
        e->value_off = (uint32_t)(h->len + len);
        h->len += len;
        return 0;
    }
    memcpy(h->buf + h->len, s, len);
    h->len += len;
    return 0;
}

void px__upstream_hdrs_reset(px_uphdrs_t *h)
{
    h->len = 0;
    h->cnt = 0;
}

static void hdrs_free(px_uphdrs_t *h)
{
    if (!hdrs_borrowed(h, h->buf))
        mem_free(h->buf);
    if (!hdrs_borrowed(h, h->ent))
        mem_free(h->ent);
    char *first = h->first;
    memset(h, 0, sizeof(*h));
    h->first = first;
}

/* ---- pools ------------------------------------------------------------------------------ */

static void cluster_free(px_upcluster_t *cl)
{
    for (size_t i = 0; i < cl->eps_cnt; i++)
        SSL_SESSION_free(cl->eps[i].tls_sess);
    px_hcluster_unref(cl->hc);
    px_config_unref(cl->owner);
    mem_free(cl->eps);
    mem_free(cl);
}

/* A retired cluster goes once its last exchange and connection are gone (their callbacks read
 * cl, its endpoints and its config up to their close). */
static void cluster_maybe_free(px_upcluster_t *cl)
{
    px_upstream_pools_t *p = cl->pools;
    if (!cl->retired || cl->live > 0 || p->closing)
        return;
    for (px_upcluster_t **pp = &p->clusters; *pp; pp = &(*pp)->next) {
        if (*pp == cl) {
            *pp = cl->next;
            cluster_free(cl);
            /* cl freed */
            return;
        }
    }
    MEM_ASSERT(!"retired cluster not in its pool's list");
}

void px__upstream_cluster_unlive(px_upcluster_t *cl)
{
    MEM_ASSERT(cl->live > 0);
    cl->live--;
    cluster_maybe_free(cl);
}

void px__upstream_handle_closed(px_upstream_pools_t *p)
{
    MEM_ASSERT(p->handles_open > 0);
    p->handles_open--;
    if (p->closing && p->handles_open == 0) {
        void (*done)(px_worker_t *) = p->done;
        px_worker_t *w = p->w;
        for (px_upcluster_t *cl = p->clusters, *next; cl; cl = next) {
            next = cl->next;
            cluster_free(cl);
        }
        w->upstream = NULL;
        MEM_ASSERT(!p->rbuf_busy);
        mem_free(p->rbuf);
        mem_free(p->tbuf);
        mem_free(p);
        /* p freed */
        if (done)
            done(w);
    }
}

px_upcluster_t *px__upstream_cluster_get(px_upstream_pools_t *p, const px_cluster_cfg_t *cfg)
{
    for (px_upcluster_t *cl = p->clusters; cl; cl = cl->next)
        if (cl->cfg == cfg)
            return cl;
    if (cfg->endpoints_cnt == 0)
        return NULL;
    /* A new pool belongs to the worker's config (routing runs on it and starts the exchange in
     * the same turn of the loop) and holds a reference on it. A cluster from elsewhere (the
     * driver tests' own) is borrowed: its caller keeps it alive. A config without clusters owns
     * none (and its NULL array takes no offset: UBSan). */
    const px_config_t *owner = p->w->cfg;
    if (owner != NULL && (owner->clusters_cnt == 0 || cfg < owner->clusters ||
                          cfg >= owner->clusters + owner->clusters_cnt))
        owner = NULL;
    px_upcluster_t *cl = mem_calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    cl->eps = mem_calloc(cfg->endpoints_cnt, sizeof(*cl->eps));
    /* The entry of the owner config's health table (shared by every worker), with a reference
     * of the pool's own: it stays the pool's when a reload moves the pool to a new config (that
     * config's table shares the entry of an unchanged cluster). A cluster from outside any
     * config (driver tests) gets an entry of its own. */
    cl->hc = owner != NULL ? px_health_cluster(px_health_of(owner), cfg) : NULL;
    if (cl->hc)
        __atomic_fetch_add(&cl->hc->refs, 1, __ATOMIC_RELAXED);
    else
        cl->hc = px_hcluster_new(cfg);
    if (!cl->eps || !cl->hc) {
        px_hcluster_unref(cl->hc);
        mem_free(cl->eps);
        mem_free(cl);
        return NULL;
    }
    MEM_ASSERT(cl->hc->eps_cnt == cfg->endpoints_cnt);
    cl->cfg = cfg;
    cl->owner = owner != NULL ? px_config_ref(owner) : NULL;
    cl->pools = p;
    cl->eps_cnt = cfg->endpoints_cnt;
    for (size_t i = 0; i < cl->eps_cnt; i++) {
        cl->eps[i].addr = &cfg->endpoints[i];
        cl->eps[i].idx = i;
        link_init(&cl->eps[i].conns);
        link_init(&cl->eps[i].waitq);
    }
    cl->next = p->clusters;
    p->clusters = cl;
    return cl;
}

/* True when a retry should pass over `ep`: it is the one the retry leaves, or (among the first
 * 64 endpoints) one the exchange tried already. */
static bool tried(const px_upep_t *ep, const px_upep_t *avoid, uint64_t tried_mask)
{
    return ep == avoid || (ep->idx < 64 && (tried_mask >> ep->idx & 1u));
}

/* Picks an endpoint by the cluster's lb policy among those that may take traffic (healthy by
 * the active check, not ejected), passing over `avoid` (the one a retry leaves; NULL: none)
 * and those in `tried_mask`. When none may, the first not tried (then any other than `avoid`,
 * then any) is taken: with every endpoint down a request still tries one rather than failing
 * at once (Envoy's panic mode, here only at 0 usable). */
static px_upep_t *pick_endpoint(px_upcluster_t *cl, const px_upep_t *avoid, uint64_t tried_mask)
{
    MEM_ASSERT(cl->eps_cnt > 0);
    MEM_ASSERT(cl->hc != NULL);
    size_t start = cl->rr_next++ % cl->eps_cnt;
    /* The clock only matters while an ejection runs (an endpoint ejected meanwhile reads as
     * still ejected at 0, which is right). */
    uint64_t now = __atomic_load_n(&cl->hc->ejected_cnt, __ATOMIC_RELAXED) ? px_health_now_ms() : 0;
    px_upep_t *best = NULL, *untried = NULL, *other = NULL;
    for (size_t i = 0; i < cl->eps_cnt; i++) {
        px_upep_t *ep = &cl->eps[(start + i) % cl->eps_cnt];
        if (ep != avoid && !other)
            other = ep;
        if (tried(ep, avoid, tried_mask))
            continue;
        if (!untried)
            untried = ep;
        if (!px_hep_usable(cl->hc, ep->idx, now))
            continue;
        if (cl->cfg->lb != PX_LB_LEAST_REQUEST)
            return ep;
        /* Fewest exchanges on this worker; ties go round robin from `start`. */
        if (!best || ep->active < best->active)
            best = ep;
    }
    if (best)
        return best;
    if (untried)
        return untried;
    return other ? other : &cl->eps[start];
}

/* Counts `r` on `ep` (this worker's count and, except for probes, the shared figures). */
static void ep_take(px_upstream_req_t *r, px_upep_t *ep)
{
    MEM_ASSERT(r->ep == NULL);
    ep->active++;
    r->ep = ep;
    if (ep->idx < 64)
        r->tried |= (uint64_t)1 << ep->idx;
    if (!r->probe)
        px_hep_rq_add(r->cl->hc, ep->idx, 1);
}

/* Reports one outcome on `ep` to outlier detection (never for probes). */
static void ep_report(px_upcluster_t *cl, const px_upep_t *ep, px_hresult_t res, int status)
{
    uint64_t now = cl->cfg->outlier.enabled ? px_health_now_ms() : 0;
    if (px_health_report(cl->hc, ep->idx, res, status, now))
        fprintf(stderr, "weir: cluster %s endpoint %s:%u ejected (%s)\n", cl->cfg->name,
                ep->addr->host, (unsigned)ep->addr->port,
                px_eject_reason_name((px_eject_reason_t)__atomic_load_n(
                    &cl->hc->eps[ep->idx].eject_reason, __ATOMIC_RELAXED)));
}

/* ---- exchange lifetime ---------------------------------------------------------------------- */

static void on_req_timer_closed(uv_handle_t *h)
{
    px_upstream_req_t *r = MEM_CONTAINER_OF((uv_timer_t *)h, px_upstream_req_t, timer);
    px_upcluster_t *cl = r->cl;
    px_upstream_pools_t *p = cl->pools;
    MEM_ASSERT(r->state == PX_UPREQ_DONE);
    mem_free(r);
    /* r freed */
    px__upstream_cluster_unlive(cl); /* cl may be freed */
    px__upstream_handle_closed(p);
}

/* Takes `r` off its queue or connection and off its endpoint's count. */
static void detach(px_upstream_req_t *r)
{
    px_upconn_t *c = r->conn;
    switch (r->state) {
    case PX_UPREQ_QUEUED:
    case PX_UPREQ_PENDING:
        px__upstream_link_del(&r->link);
        break;
    case PX_UPREQ_ACTIVE:
        px__upstream_link_del(&r->link);
        MEM_ASSERT(c != NULL);
        MEM_ASSERT(c->active_cnt > 0);
        c->active_cnt--;
        break;
    case PX_UPREQ_DONE:
        MEM_ASSERT(!"detach of a finished exchange");
    }
    if (r->ep) {
        MEM_ASSERT(r->ep->active > 0);
        r->ep->active--;
        if (!r->probe)
            px_hep_rq_add(r->cl->hc, r->ep->idx, -1);
        r->ep = NULL;
    }
    r->conn = NULL;
    if (c && r->state == PX_UPREQ_ACTIVE && c->ops->multiplexed && c->active_cnt == 0 &&
        c->state == PX_UPCONN_READY)
        px__upstream_conn_idle(c);
}

/* Frees what the exchange owns and closes its timer; the memory goes in the close callback. */
static void release(px_upstream_req_t *r)
{
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    MEM_ASSERT(r->conn == NULL);
    r->state = PX_UPREQ_DONE;
    if (r->retry_held)
        px_health_retry_end(r->cl->hc);
    r->retry_held = false;
    /* r->hdrs lives in r's own block (req_new). */
    mem_free(r->trailers);
    mem_free(r->body.buf);
    hdrs_free(&r->rh);
    r->hdrs = r->trailers = NULL;
    r->body.buf = NULL;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_req_timer_closed);
}

static void proto_cancel(px_upstream_req_t *r)
{
    if (r->state != PX_UPREQ_ACTIVE)
        return;
    r->conn->ops->cancel(r);
}

void px__upstream_fail(px_upstream_req_t *r, int status, const char *reason)
{
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    MEM_ASSERT(status >= 500 && status <= 599);
    detach(r);
    release(r);
    r->cbs.on_error(r->ud, status, reason);
}

void px__upstream_end(px_upstream_req_t *r)
{
    MEM_ASSERT(r->state == PX_UPREQ_ACTIVE);
    MEM_ASSERT(r->headers_sent);
    detach(r);
    release(r);
    r->cbs.on_response_end(r->ud);
}

/* Builds a px_header_t view of `h` (into `tmp`, tcache) and hands it to the downstream;
 * for response headers, drops hop-by-hop ones and takes :status. Returns 0, or a negative errno
 * after failing the exchange (502 on a bad head, or OOM). */
/* True when `name` is one of the comma-separated tokens of a Connection header value: such
 * headers are hop-by-hop too (RFC 9110 7.6.1). */
static bool listed_in_connection(const px_uphdrs_t *h, const char *name, size_t name_len)
{
    for (size_t i = 0; i < h->cnt; i++) {
        const px_uphdr_ent_t *e = &h->ent[i];
        if (!px_http_ieq(h->buf + e->name_off, e->name_len, "connection", 10))
            continue;
        const char *p = h->buf + e->value_off, *end = p + e->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *tok = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if (p > tok && px_http_ieq(tok, (size_t)(p - tok), name, name_len))
                return true;
        }
    }
    return false;
}

/* The collected head as borrowed headers for a callback: no pseudo-headers, no hop-by-hop
 * headers (and, for a head rather than trailers, no `trailer` and nothing listed in
 * `connection`). Returns the array (tcache, the caller frees it) or NULL on OOM. */
static px_header_t *head_view(const px_uphdrs_t *h, bool trailers, size_t *cnt)
{
    px_header_t *v = mem_malloc((h->cnt ? h->cnt : 1) * sizeof(*v));
    if (!v)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < h->cnt; i++) {
        const px_uphdr_ent_t *e = &h->ent[i];
        const char *name = h->buf + e->name_off;
        const char *value = h->buf + e->value_off;
        if (e->name_len > 0 && name[0] == ':')
            continue;
        if (px_http_is_hop_by_hop(name, e->name_len, value, e->value_len))
            continue;
        if (!trailers && px_http_ieq(name, e->name_len, "trailer", 7))
            continue;
        if (!trailers && listed_in_connection(h, name, e->name_len))
            continue;
        v[n++] = (px_header_t){name, e->name_len, value, e->value_len};
    }
    *cnt = n;
    return v;
}

int px__upstream_deliver_headers(px_upstream_req_t *r, bool trailers)
{
    MEM_ASSERT(r->state == PX_UPREQ_ACTIVE);
    px_uphdrs_t *h = &r->rh;
    size_t n;
    px_header_t *v = head_view(h, trailers, &n);
    if (!v) {
        proto_cancel(r);
        px__upstream_fail(r, 502, "upstream out of memory");
        return -ENOMEM;
    }
    if (trailers) {
        if (r->cbs.on_response_trailers)
            r->cbs.on_response_trailers(r->ud, v, n);
    } else {
        MEM_ASSERT(!r->headers_sent);
        MEM_ASSERT(r->status >= 200 && r->status <= 999);
        r->headers_sent = true;
        if (!r->probe && r->ep)
            ep_report(r->cl, r->ep, r->status >= 500 ? PX_HRES_5XX : PX_HRES_OK, r->status);
        r->cbs.on_response_headers(r->ud, r->status, v, n);
    }
    mem_free(v);
    if (r->state == PX_UPREQ_DONE)
        return -ECANCELED;
    px__upstream_hdrs_reset(h);
    return 0;
}

int px__upstream_deliver_informational(px_upstream_req_t *r, int status)
{
    MEM_ASSERT(r->state == PX_UPREQ_ACTIVE);
    MEM_ASSERT(!r->headers_sent);
    MEM_ASSERT(status >= 100 && status < 200 && status != 101);
    px_uphdrs_t *h = &r->rh;
    if (r->cbs.on_response_informational && r->info_cnt < PX_UPSTREAM_INFO_MAX) {
        size_t n;
        px_header_t *v = head_view(h, false, &n);
        /* Out of memory: an interim answer is advisory, so it is dropped, not fatal. */
        if (v) {
            r->info_cnt++;
            r->cbs.on_response_informational(r->ud, status, v, n);
            mem_free(v);
            if (r->state == PX_UPREQ_DONE)
                return -ECANCELED;
        }
    }
    px__upstream_hdrs_reset(h);
    return 0;
}

void px__upstream_deliver_data(px_upstream_req_t *r, const uint8_t *data, size_t len)
{
    MEM_ASSERT_HOT(r->state == PX_UPREQ_ACTIVE);
    MEM_ASSERT_HOT(r->headers_sent);
    r->resp_unacked += len;
    r->cbs.on_response_data(r->ud, data, len);
}

void px__upstream_drained(px_upstream_req_t *r, size_t len)
{
    MEM_ASSERT_HOT(r->state == PX_UPREQ_ACTIVE);
    r->body_sent += len;
    r->drained_pending += len;
}

static void place(px_upstream_req_t *r, px_upep_t *ep);

static void on_req_fail_later(uv_timer_t *t)
{
    px_upstream_req_t *r = MEM_CONTAINER_OF(t, px_upstream_req_t, timer);
    MEM_ASSERT(r->state == PX_UPREQ_QUEUED);
    MEM_ASSERT(r->fail_status != 0);
    px__upstream_fail(r, r->fail_status, r->fail_reason);
}

/* Fails `r` from the loop rather than from the current call stack (px_upstream_start must not
 * call back, and a failed submit may happen inside a protocol callback). */
static void fail_later(px_upstream_req_t *r, int status, const char *reason)
{
    if (r->state == PX_UPREQ_ACTIVE)
        proto_cancel(r);
    detach(r);
    r->state = PX_UPREQ_QUEUED; /* on no list: cancel and fail detach it harmlessly */
    r->fail_status = status;
    r->fail_reason = reason;
    uv_timer_stop(&r->timer);
    uv_timer_start(&r->timer, on_req_fail_later, 0, 0);
}

/* Sends `r` (off every list but its endpoint's count, or QUEUED on its endpoint) again, to
 * another endpoint than the one it leaves, when the cluster's retries allow: fewer than
 * retries.max made, and the retry budget (health.c) grants it one unit for its lifetime, except
 * with `drain`: streams above an upstream's GOAWAY are its orderly shutdown, not a failure to
 * contain, and all of them go again (a budget would fail most of a busy connection's streams
 * at every upstream restart). Returns false (nothing changed) when not. */
static bool retry(px_upstream_req_t *r, bool drain)
{
    px_upcluster_t *cl = r->cl;
    px_worker_t *w = cl->pools->w;
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    if (r->probe || cl->pools->closing || r->retries >= cl->cfg->retries_max)
        return false;
    if (!r->retry_held && !drain) {
        if (!px_health_retry_begin(cl->hc)) {
            MEM_STAT_ADD(w->stats.upstream_retry_budget_exhausted, 1);
            return false;
        }
        r->retry_held = true;
    }
    r->retries++;
    MEM_STAT_ADD(w->stats.upstream_retries, 1);
    px_upep_t *prev = r->ep;
    detach(r);
    px_upep_t *next = pick_endpoint(cl, prev, r->tried);
    ep_take(r, next);
    /* A fresh attempt: nothing of the last one reached the downstream (no response byte) and
     * no request-body byte left (the callers check both), so only the head goes again. */
    MEM_ASSERT(r->body_sent == 0);
    MEM_ASSERT(!r->headers_sent);
    r->stream_id = -1;
    r->req_done = false;
    r->status = 0;
    r->h2w_st = NULL;
    r->h2w_inflight = 0;
    px__upstream_hdrs_reset(&r->rh);
    r->state = PX_UPREQ_QUEUED; /* on no list until place() puts it somewhere */
    place(r, next);
    return true;
}

/* The connection that carried `r` died or refused it. A retry on another endpoint is made when
 * `retry_ok` (the upstream never processed it: GOAWAY above its stream, REFUSED_STREAM, or a
 * connection closed under an idempotent request before any response byte), no request-body
 * byte has left (weir keeps no copy to replay) and the cluster's retries allow; otherwise the
 * exchange fails with 502 and `reason`. */
static void lost(px_upstream_req_t *r, bool retry_ok, const char *reason)
{
    px_worker_t *w = r->cl->pools->w;
    bool drain = r->conn != NULL && r->conn->goaway;
    if (retry_ok && r->body_sent == 0 && !r->resp_started && !r->headers_sent && retry(r, drain))
        return;
    MEM_STAT_ADD(w->stats.upstream_reset, 1);
    px__upstream_fail(r, 502, reason);
}

void px__upstream_lost(px_upstream_req_t *r, bool retry_ok, const char *reason)
{
    /* A reset that the protocol does not call safe (not REFUSED_STREAM or GOAWAY) is a local
     * failure of the endpoint for outlier detection. */
    if (!retry_ok && !r->probe && r->ep)
        ep_report(r->cl, r->ep, PX_HRES_LOCAL_FAIL, 0);
    lost(r, retry_ok, reason);
}

/* ---- connections ------------------------------------------------------------------------ */

const px_upproto_ops_t *px__upstream_ops(const px_cluster_cfg_t *cl)
{
    MEM_ASSERT(cl != NULL);
    if (cl->proto == PX_PROTO_HTTP1)
        return &px__uph1_ops;
    MEM_ASSERT(cl->proto == PX_PROTO_H2C);
    return &px__uph2w_ops;
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    px_upconn_t *c = h->data;
    MEM_ASSERT(c->handles_open > 0);
    if (--c->handles_open > 0)
        return;
    px_upstream_pools_t *p = c->pools;
    px_upcluster_t *cl = c->cl;
    c->ops->conn_fini(c);
    SSL_free(c->ssl); /* its BIOs too; no session callback can come after this */
    mem_free(c->wbuf);
    mem_region_free(c->region);
    /* c freed */
    px__upstream_cluster_unlive(cl); /* cl may be freed */
    px__upstream_handle_closed(p);
}

static void kick_waitq(px_upep_t *ep);

/* An orderly TLS close: close_notify, sent with one try at the socket when no write is in
 * flight (never queued: the handle is closing). Besides telling the upstream, it keeps the
 * endpoint's session resumable: OpenSSL marks a session not resumable when its SSL is freed
 * without a shutdown (ssl_clear_bad_session). */
static void tls_close_notify(px_upconn_t *c)
{
    MEM_ASSERT(c->ssl != NULL);
    (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
    if (c->writing)
        return;
    uint8_t b[256];
    int n = BIO_read(c->wbio, b, (int)sizeof(b));
    if (n <= 0)
        return;
    uv_buf_t ub = uv_buf_init((char *)b, (unsigned)n);
    (void)uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
}

void px__upstream_conn_close(px_upconn_t *c)
{
    if (c->state == PX_UPCONN_CLOSING)
        return;
    px_worker_t *w = c->pools->w;
    bool was_ready = c->state == PX_UPCONN_READY;
    c->state = PX_UPCONN_CLOSING;
    px__upstream_link_del(&c->link);
    MEM_ASSERT(c->ep->conns_cnt > 0);
    c->ep->conns_cnt--;
    px_hep_cx_add(c->cl->hc, c->ep->idx, -1);
    if (c->flush_link.next != &c->flush_link)
        px__upstream_link_del(&c->flush_link);
    MEM_STAT_SUB(w->stats.upstream_conn_active, 1);
    uv_timer_stop(&c->timer);
    if (c->ssl && was_ready)
        tls_close_notify(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    /* Exchanges still waiting for the connect go back to their endpoint's queue: the connect
     * path (conn_connect_failed) already moved them when the connect itself failed. */
    while (!link_empty(&c->pending)) {
        px_upstream_req_t *r = REQ_OF(c->pending.next);
        px_upep_t *ep = r->ep;
        px__upstream_link_del(&r->link);
        r->state = PX_UPREQ_QUEUED;
        r->conn = NULL;
        px__upstream_link_add(&ep->waitq, &r->link);
    }
    /* Exchanges bound to the connection lost it. An HTTP/1.1 exchange being cancelled is
     * already unbound (c->cur cleared) and is detached by its caller. A callback may cancel
     * other exchanges here, so the walk restarts after each one. */
    for (;;) {
        px_upstream_req_t *r = NULL;
        for (px_uplink_t *l = c->active.next; l != &c->active; l = l->next) {
            if (c->ops->multiplexed || REQ_OF(l) == c->cur) {
                r = REQ_OF(l);
                break;
            }
        }
        if (!r)
            break;
        c->ops->forget(c, r);
        r->stream_id = -1;
        c->cur = NULL;
        /* Idempotent and no response byte yet (lost() checks the bytes): the upstream may or
         * may not have seen it, and may see it again harmlessly. */
        bool safe = was_ready && r->idempotent;
        if (!r->probe && r->ep)
            ep_report(r->cl, r->ep, PX_HRES_LOCAL_FAIL, 0);
        lost(r, safe, "upstream reset");
    }
    kick_waitq(c->ep);
}

static void on_conn_timer(uv_timer_t *t);

/* Starts the idle timer of a ready connection that carries nothing (HTTP/1.1: back in the
 * pool), or closes it when keep-alive is off. */
void px__upstream_conn_idle(px_upconn_t *c)
{
    MEM_ASSERT(c->state == PX_UPCONN_READY);
    MEM_ASSERT(c->active_cnt == 0);
    if (!c->pools->keepalive || c->pools->closing || c->goaway || c->cl->retired) {
        px__upstream_conn_close(c);
        return;
    }
    if (!c->ops->multiplexed) {
        c->h1_idle = true;
        kick_waitq(c->ep);
        if (!c->h1_idle || c->state != PX_UPCONN_READY)
            return;
    }
    uint32_t ms = c->cl->cfg->idle_timeout_ms;
    if (ms > 0)
        uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

void px__upstream_conn_dirty(px_upconn_t *c)
{
    if (c->state == PX_UPCONN_CLOSING)
        return;
    px_upstream_pools_t *p = c->pools;
    if (c->flush_link.next == &c->flush_link)
        px__upstream_link_add(&p->flushq, &c->flush_link);
    if (!uv_is_active((uv_handle_t *)&p->flush_idle)) {
        uv_check_start(&p->flush_check, on_flush_check);
        uv_idle_start(&p->flush_idle, on_flush_idle);
    }
}

static void tls_hs_send(px_upconn_t *c);

static void on_write(uv_write_t *req, int status)
{
    px_upconn_t *c = req->data;
    MEM_ASSERT(c->writing);
    c->writing = false;
    c->wlen = 0;
    mem_free(c->wbuf);
    c->wbuf = NULL;
    c->wcap = 0;
    if (c->state == PX_UPCONN_CLOSING)
        return;
    if (status < 0) {
        px__upstream_conn_close(c);
        return;
    }
    if (c->state == PX_UPCONN_CONNECTING) {
        MEM_ASSERT(c->ssl != NULL);
        tls_hs_send(c); /* the handshake's next flight, if OpenSSL made one meanwhile */
        return;
    }
    c->ops->written(c);
    px__upstream_conn_dirty(c);
}

/* Reports drained request-body bytes for every exchange on `c`; a report may start or cancel
 * exchanges, so the walk restarts after each one. */
static void report_drained(px_upconn_t *c)
{
    for (;;) {
        px_upstream_req_t *found = NULL;
        for (px_uplink_t *l = c->active.next; l != &c->active; l = l->next) {
            px_upstream_req_t *r = REQ_OF(l);
            if (r->drained_pending > 0) {
                found = r;
                break;
            }
        }
        if (!found)
            return;
        size_t n = found->drained_pending;
        found->drained_pending = 0;
        if (found->cbs.on_request_body_drained)
            found->cbs.on_request_body_drained(found->ud, n);
        if (c->state == PX_UPCONN_CLOSING)
            return;
    }
}

static void tls_drain(px_upconn_t *c);

/* TLS: replaces the plaintext batch in wbuf with its ciphertext (and anything OpenSSL queued
 * on its own: a KeyUpdate, a close_notify). Returns 0 or a negative errno. */
static int tls_seal_batch(px_upconn_t *c)
{
    MEM_ASSERT(c->ssl != NULL);
    MEM_ASSERT(!c->writing);
    if (c->wlen > 0 && px_tlsio_seal(c->ssl, c->wbuf, c->wlen) < 0)
        return -EPROTO;
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (px_tlsio_take(c->wbio, &out, &out_len) < 0)
        return -ENOMEM;
    mem_free(c->wbuf);
    c->wbuf = out;
    c->wlen = c->wcap = out_len;
    return 0;
}

static void flush_conn(px_upconn_t *c)
{
    if (c->ssl && c->tls_rpending && c->state == PX_UPCONN_READY)
        tls_drain(c); /* a reader made room: plaintext left in the SSL goes first */
    if (c->state != PX_UPCONN_READY || c->writing)
        return;
    MEM_ASSERT(c->wlen == 0);
    if (!c->wbuf && !c->ops->fill_gives_wbuf) {
        size_t cap = c->ssl ? UP_TLS_WBUF_LEN : UP_WBUF_LEN;
        c->wbuf = mem_malloc(cap);
        if (!c->wbuf) {
            px__upstream_conn_close(c);
            return;
        }
        c->wcap = cap;
    }
    int rc = c->ops->fill(c);
    if (rc == 0 && c->ssl)
        rc = tls_seal_batch(c);
    if (rc < 0) {
        px__upstream_conn_close(c);
        return;
    }
    if (c->wlen > 0) {
        uv_buf_t b = uv_buf_init((char *)c->wbuf, (unsigned)c->wlen);
        /* Most batches fit in the socket buffer: write them now and queue only the rest. A
         * queued uv_write costs an epoll_ctl when it completes (libuv 1.44 re-queues the
         * watcher in uv__drain even though POLLOUT was never armed): about one syscall per
         * request on an HTTP/1.1 upstream. */
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            c->wlen = 0;
            px__upstream_conn_close(c);
            return;
        }
        if (n == (int)c->wlen) {
            /* Same order as the queued path: drained bytes are reported while the batch
             * counts as in flight, then the completion runs (it may see a closing c, whose
             * memory lives until its uv_close callback). */
            c->writing = true;
            report_drained(c);
            c->write_req.data = c;
            on_write(&c->write_req, 0);
            return;
        }
        if (n > 0) {
            b.base += n;
            b.len -= (unsigned)n;
        }
        c->write_req.data = c;
        rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
        if (rc < 0) {
            c->wlen = 0;
            px__upstream_conn_close(c);
            return;
        }
        c->writing = true;
    } else {
        mem_free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
    report_drained(c);
}

static void on_flush_check(uv_check_t *h)
{
    px_upstream_pools_t *p = MEM_CONTAINER_OF(h, px_upstream_pools_t, flush_check);
    /* Bounded: a connection re-queued by a callback during this pass waits for the next. */
    px_uplink_t batch;
    link_init(&batch);
    while (!link_empty(&p->flushq)) {
        px_uplink_t *l = p->flushq.next;
        px__upstream_link_del(l);
        px__upstream_link_add(&batch, l);
    }
    while (!link_empty(&batch)) {
        px_uplink_t *l = batch.next;
        px__upstream_link_del(l);
        flush_conn(MEM_CONTAINER_OF(l, px_upconn_t, flush_link));
    }
    if (link_empty(&p->flushq)) {
        uv_check_stop(&p->flush_check);
        uv_idle_stop(&p->flush_idle);
    }
}

static void on_flush_idle(uv_idle_t *h)
{
    (void)h; /* only keeps the poll phase from blocking while writes are wanted */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    px_upconn_t *c = h->data;
    (void)suggested;
    size_t n = c->rcap;
    /* HTTP/1.1 flow control reads no more than the downstream has room for. Over TLS it
     * bounds the plaintext taken out of the SSL instead (tls_drain), since records do not
     * split at the room's edge. */
    if (c->ops->read_room && c->ssl == NULL)
        n = MEM_MIN(n, c->ops->read_room(c));
    /* Reads go into the worker's one buffer: libuv hands the bytes to on_read at once and
     * the parsers consume them there, so no connection holds a buffer between reads and no
     * read allocates. A second read before the first returned (never seen) gets its own. */
    px_upstream_pools_t *pools = c->pools;
    char *p = NULL;
    if (n > 0 && !pools->rbuf_busy) {
        if (pools->rbuf == NULL)
            pools->rbuf = mem_malloc(UP_RBUF_LEN);
        if (pools->rbuf != NULL) {
            pools->rbuf_busy = true;
            p = (char *)pools->rbuf;
        }
    } else if (n > 0) {
        p = mem_malloc(n);
    }
    MEM_ASSERT(n <= UP_RBUF_LEN);
    *buf = uv_buf_init(p, p ? (unsigned)n : 0);
}

/* Gives a read buffer back: the worker's shared one is unlent, any other freed. */
static void read_buf_release(px_upstream_pools_t *pools, char *base)
{
    if (base != NULL && base == (char *)pools->rbuf) {
        MEM_ASSERT(pools->rbuf_busy);
        pools->rbuf_busy = false;
        return;
    }
    mem_free(base);
}

static void tls_read(px_upconn_t *c, const uint8_t *data, size_t len);
static void tls_hs_failed(px_upconn_t *c, const char *reason);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    px_upconn_t *c = s->data;
    if (c->ssl && c->state == PX_UPCONN_CONNECTING && c->tls_connected && nread != 0) {
        if (nread > 0)
            tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
        else
            tls_hs_failed(c, "upstream TLS handshake failed: connection closed");
        read_buf_release(c->pools, buf->base);
        return;
    }
    if (c->state != PX_UPCONN_READY || nread == 0) {
        read_buf_release(c->pools, buf->base);
        return;
    }
    if (nread > 0) {
        if (c->ssl) {
            tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
            read_buf_release(c->pools, buf->base);
            px__upstream_conn_dirty(c);
            return;
        }
        c->ops->read(c, (const uint8_t *)buf->base, (size_t)nread);
        read_buf_release(c->pools, buf->base);
        px__upstream_conn_dirty(c);
        return;
    }
    read_buf_release(c->pools, buf->base);
    if (nread == UV_ENOBUFS) {
        if (c->ops->read_room && c->ssl == NULL && c->ops->read_room(c) == 0) {
            /* HTTP/1.1 flow control: the downstream holds a full buffer; consuming resumes
             * reading (px__uph1_consumed). */
            uv_read_stop(s);
            c->reading = false;
            return;
        }
        /* Out of memory for a read buffer: the connection cannot go on. */
        px__upstream_conn_close(c);
        return;
    }
    /* Only an orderly close (a FIN) may end a body delimited by the close: a reset or any
     * other read error cuts it short, and px__upstream_conn_close then reports the exchange
     * as lost, so the client sees its stream reset rather than a truncated body passed off
     * as complete. */
    if (nread == UV_EOF)
        c->ops->eof(c);
    px__upstream_conn_close(c);
}

void px__upstream_read_start(px_upconn_t *c)
{
    MEM_ASSERT(c->state == PX_UPCONN_READY);
    if (c->ssl && c->tls_rpending)
        px__upstream_conn_dirty(c); /* the flush pass reads what the SSL still holds */
    if (c->reading)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void attach_active(px_upconn_t *c, px_upstream_req_t *r)
{
    MEM_ASSERT(c->state == PX_UPCONN_READY);
    r->state = PX_UPREQ_ACTIVE;
    r->conn = c;
    px__upstream_link_add(&c->active, &r->link);
    c->active_cnt++;
    c->uses++;
    uv_timer_stop(&c->timer);
    int rc = c->ops->submit(c, r);
    if (rc < 0) {
        fail_later(r, 502, "upstream request not sent");
        return;
    }
    px__upstream_conn_dirty(c);
}

static void conn_connect_failed(px_upconn_t *c, int err, bool timed_out)
{
    px_worker_t *w = c->pools->w;
    if (timed_out)
        MEM_STAT_ADD(w->stats.upstream_connect_timeout, 1);
    else
        MEM_STAT_ADD(w->stats.upstream_connect_failed, 1);
    /* Move the waiting exchanges off the connection first: they retry elsewhere or fail. */
    px_uplink_t moved;
    link_init(&moved);
    while (!link_empty(&c->pending)) {
        px_uplink_t *l = c->pending.next;
        px__upstream_link_del(l);
        px__upstream_link_add(&moved, l);
        REQ_OF(l)->conn = NULL;
    }
    px_upep_t *ep = c->ep;
    /* One local failure per failed connect, however many exchanges waited for it (a probe's
     * own connect is the checker's business, not outlier detection's). */
    if (!c->for_probe)
        ep_report(c->cl, ep, PX_HRES_LOCAL_FAIL, 0);
    px__upstream_conn_close(c);
    while (!link_empty(&moved)) {
        px_upstream_req_t *r = REQ_OF(moved.next);
        px__upstream_link_del(&r->link);
        r->connect_timed_out = timed_out;
        if (!timed_out && err != UV_ECONNREFUSED)
            r->connect_other_err = true;
        /* Put it back on its endpoint's waitq state so fail/retry can detach it uniformly. */
        r->state = PX_UPREQ_QUEUED;
        px__upstream_link_add(&ep->waitq, &r->link);
        if (retry(r, false))
            continue;
        if (r->connect_timed_out)
            px__upstream_fail(r, 504, "upstream connect timeout");
        else if (r->connect_other_err)
            px__upstream_fail(r, 503, "upstream connect failed");
        else
            px__upstream_fail(r, 503, "upstream unavailable");
    }
}

/* The connection can carry exchanges (TCP up, and the TLS handshake done when there is one):
 * the exchanges waiting for it go on. */
static void conn_ready(px_upconn_t *c)
{
    MEM_ASSERT(c->state == PX_UPCONN_CONNECTING);
    MEM_ASSERT(c->reading);
    uv_timer_stop(&c->timer);
    c->state = PX_UPCONN_READY;
    px__upstream_conn_dirty(c); /* h2c: the preface and SETTINGS */
    while (!link_empty(&c->pending) && c->state == PX_UPCONN_READY) {
        px_upstream_req_t *r = REQ_OF(c->pending.next);
        px__upstream_link_del(&r->link);
        if (c->ops->multiplexed && !c->ops->has_room(c)) {
            r->state = PX_UPREQ_QUEUED;
            r->conn = NULL;
            link_add_front(&c->ep->waitq, &r->link);
            continue;
        }
        attach_active(c, r);
    }
    if (c->state == PX_UPCONN_READY && c->active_cnt == 0)
        px__upstream_conn_idle(c);
}

/* ---- TLS transport ------------------------------------------------------------------------ */

/* Writes what the handshake put in wbio (ClientHello, the client's Finished, its certificate
 * under mutual TLS). One write at a time: on_write calls again for what came meanwhile. */
static void tls_hs_send(px_upconn_t *c)
{
    MEM_ASSERT(c->ssl != NULL);
    MEM_ASSERT(c->state == PX_UPCONN_CONNECTING);
    if (c->writing)
        return;
    MEM_ASSERT(c->wbuf == NULL);
    uint8_t *out = NULL;
    size_t len = 0;
    if (px_tlsio_take(c->wbio, &out, &len) < 0) {
        tls_hs_failed(c, "upstream TLS handshake failed: out of memory");
        return;
    }
    if (len == 0)
        return;
    c->wbuf = out;
    c->wlen = c->wcap = len;
    uv_buf_t b = uv_buf_init((char *)out, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len) {
        mem_free(c->wbuf);
        c->wbuf = NULL;
        c->wlen = c->wcap = 0;
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        tls_hs_failed(c, "upstream TLS handshake failed: connection reset");
        return;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (unsigned)n;
    }
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        tls_hs_failed(c, "upstream TLS handshake failed: connection reset");
        return;
    }
    c->writing = true;
}

/* The handshake failed (certificate, alert, ALPN, reset, or no memory): the exchanges waiting
 * for this connection fail with 502 and `reason` (static) rather than retry another endpoint,
 * since a certificate or protocol mismatch is a configuration matter that a retry only
 * repeats; the reason goes to the log once per connection. */
static void tls_hs_failed(px_upconn_t *c, const char *reason)
{
    px_worker_t *w = c->pools->w;
    bool verify = false;
    const char *why = reason;
    if (why == NULL)
        why = px_uptls_fail_reason(c->ssl, &verify);
    if (verify) {
        MEM_STAT_ADD(w->stats.upstream_tls_verify_failed, 1);
        fprintf(stderr, "weir: upstream %s %s:%u: %s (%s)\n", c->cl->cfg->name, c->ep->addr->host,
                (unsigned)c->ep->addr->port, why,
                X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
    } else {
        MEM_STAT_ADD(w->stats.upstream_tls_failed, 1);
        unsigned long e = ERR_peek_last_error();
        fprintf(stderr, "weir: upstream %s %s:%u: %s%s%s\n", c->cl->cfg->name, c->ep->addr->host,
                (unsigned)c->ep->addr->port, why, e ? ": " : "",
                e ? ERR_reason_error_string(e) : "");
    }
    ERR_clear_error();
    px_uplink_t moved;
    link_init(&moved);
    while (!link_empty(&c->pending)) {
        px_uplink_t *l = c->pending.next;
        px__upstream_link_del(l);
        px__upstream_link_add(&moved, l);
        REQ_OF(l)->conn = NULL;
        REQ_OF(l)->state = PX_UPREQ_QUEUED; /* on `moved`: px__upstream_fail detaches it */
    }
    px__upstream_conn_close(c);
    while (!link_empty(&moved))
        px__upstream_fail(REQ_OF(moved.next), 502, why);
}

/* Plaintext out of the SSL to the protocol half, as long as the reader has room (HTTP/1.1
 * flow control; what stays in the SSL is read when px__upstream_read_start says there is
 * room again). */
static void tls_drain(px_upconn_t *c)
{
    px_upstream_pools_t *p = c->pools;
    MEM_ASSERT(c->ssl != NULL);
    MEM_ASSERT(c->state == PX_UPCONN_READY);
    if (p->tbuf == NULL) {
        p->tbuf = mem_malloc(UP_RBUF_LEN);
        if (p->tbuf == NULL) {
            px__upstream_conn_close(c);
            return;
        }
    }
    c->tls_rpending = false;
    while (c->state == PX_UPCONN_READY) {
        size_t room = UP_RBUF_LEN;
        if (c->ops->read_room)
            room = MEM_MIN(room, c->ops->read_room(c));
        if (room == 0) {
            c->tls_rpending = true;
            if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = false;
            }
            break;
        }
        int n = SSL_read(c->ssl, p->tbuf, (int)room);
        if (n > 0) {
            c->ops->read(c, p->tbuf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        ERR_clear_error();
        if (e == SSL_ERROR_ZERO_RETURN) {
            /* close_notify: the peer's orderly end, like a FIN. */
            c->ops->eof(c);
        }
        px__upstream_conn_close(c);
        return;
    }
    if (c->state == PX_UPCONN_READY && BIO_ctrl_pending(c->wbio) > 0)
        px__upstream_conn_dirty(c); /* OpenSSL answered something (a KeyUpdate) */
}

/* Ciphertext from the socket: into the SSL, then the handshake or the plaintext. */
static void tls_read(px_upconn_t *c, const uint8_t *data, size_t len)
{
    MEM_ASSERT(c->ssl != NULL);
    MEM_ASSERT(len <= INT_MAX);
    if (BIO_write(c->rbio, data, (int)len) != (int)len) {
        if (c->state == PX_UPCONN_CONNECTING)
            tls_hs_failed(c, "upstream TLS handshake failed: out of memory");
        else
            px__upstream_conn_close(c);
        return;
    }
    if (c->state == PX_UPCONN_READY) {
        tls_drain(c);
        return;
    }
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            tls_hs_send(c);
            return;
        }
        tls_hs_send(c); /* the alert, so the upstream learns why */
        if (c->state == PX_UPCONN_CONNECTING)
            tls_hs_failed(c, NULL);
        return;
    }
    tls_hs_send(c); /* the client's Finished */
    if (c->state != PX_UPCONN_CONNECTING)
        return;
    const char *bad = px_uptls_alpn_check(c->ssl, c->cl->cfg);
    if (bad != NULL) {
        tls_hs_failed(c, bad);
        return;
    }
    px_worker_t *w = c->pools->w;
    MEM_STAT_ADD(w->stats.upstream_tls_handshakes, 1);
    if (SSL_session_reused(c->ssl))
        MEM_STAT_ADD(w->stats.upstream_tls_resumed, 1);
    conn_ready(c);
    if (c->state == PX_UPCONN_READY)
        tls_drain(c); /* application data that came with the server's last flight */
}

static void on_connect(uv_connect_t *req, int status)
{
    px_upconn_t *c = req->data;
    if (c->state != PX_UPCONN_CONNECTING)
        return; /* closed (connect timeout or shutdown) before the connect finished */
    if (status < 0) {
        conn_connect_failed(c, status, false);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_connect_failed(c, rc, false);
        return;
    }
    c->reading = true;
    if (c->ssl == NULL) {
        conn_ready(c);
        return;
    }
    /* TLS: the connect timer keeps running over the handshake (connect_timeout bounds both). */
    c->tls_connected = true;
    int r = SSL_do_handshake(c->ssl); /* makes the ClientHello */
    if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            tls_hs_failed(c, NULL);
            return;
        }
    }
    tls_hs_send(c);
}

static void on_conn_timer(uv_timer_t *t)
{
    px_upconn_t *c = t->data;
    if (c->state == PX_UPCONN_CONNECTING) {
        if (c->connect_err < 0)
            conn_connect_failed(c, c->connect_err, false);
        else
            conn_connect_failed(c, UV_ETIMEDOUT, true);
        return;
    }
    if (c->state == PX_UPCONN_READY && c->active_cnt == 0)
        px__upstream_conn_close(c);
}

/* Opens a connection to `ep`. Returns it (CONNECTING) or NULL (nothing to undo). */
static px_upconn_t *conn_new(px_upcluster_t *cl, px_upep_t *ep)
{
    px_upstream_pools_t *p = cl->pools;
    px_worker_t *w = p->w;
    mem_region_t *reg = mem_region_new(0);
    if (!reg)
        return NULL;
    px_upconn_t *c = mem_region_calloc(reg, sizeof(*c));
    if (!c)
        goto fail_region;
    c->region = reg;
    mem_region_set_label(reg, "upstream");
    c->pools = p;
    c->cl = cl;
    c->ep = ep;
    c->proto = cl->cfg->proto;
    c->ops = px__upstream_ops(cl->cfg);
    c->state = PX_UPCONN_CONNECTING;
    link_init(&c->pending);
    link_init(&c->active);
    link_init(&c->flush_link);
    c->rcap = UP_RBUF_LEN;
    int rc = c->ops->conn_init(c);
    if (rc < 0)
        goto fail_region;
    if (cl->cfg->tls) {
        MEM_ASSERT(cl->cfg->tls_ctx != NULL);
        rc = px_tlsio_new(cl->cfg->tls_ctx, true, &c->ssl, &c->rbio, &c->wbio);
        if (rc == 0)
            rc = px_uptls_conn_setup(c->ssl, cl->cfg, ep->addr, &ep->tls_sess);
        if (rc < 0)
            goto fail_proto;
    }
    rc = uv_tcp_init(&w->loop, &c->tcp);
    if (rc < 0)
        goto fail_proto;
    c->tcp.data = c;
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    p->handles_open++;
    cl->live++;
    px__upstream_link_add(&ep->conns, &c->link);
    ep->conns_cnt++;
    px_hep_cx_add(cl->hc, ep->idx, 1);
    MEM_STAT_ADD(w->stats.upstream_conn_opened, 1);
    MEM_STAT_ADD(w->stats.upstream_conn_active, 1);
    c->connect_req.data = c;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&ep->addr->sa,
                        on_connect);
    if (rc < 0) {
        /* Report it like a failed connect, from the loop, so callers see one path. */
        c->connect_err = rc;
        uv_timer_start(&c->timer, on_conn_timer, 0, 0);
        return c;
    }
    uint32_t ms = cl->cfg->connect_timeout_ms;
    if (ms > 0)
        uv_timer_start(&c->timer, on_conn_timer, ms, 0);
    return c;

fail_proto:
    SSL_free(c->ssl);
    c->state = PX_UPCONN_CLOSING;
    c->ops->conn_fini(c);
fail_region:
    mem_region_free(reg);
    return NULL;
}

/* Tries to give `r` a slot on `ep` now. Returns false when it must wait (`r` untouched). */
static bool try_place(px_upstream_req_t *r, px_upep_t *ep)
{
    px_upcluster_t *cl = r->cl;
    const px_cluster_cfg_t *cfg = cl->cfg;
    uint32_t per_conn = MEM_MAX(cfg->max_streams_per_conn, 1u);
    for (px_uplink_t *l = ep->conns.next; l != &ep->conns; l = l->next) {
        px_upconn_t *c = CONN_OF(l);
        if (c->state != PX_UPCONN_READY)
            continue;
        if (c->ops->has_room(c)) {
            attach_active(c, r); /* HTTP/1.1: submit takes the connection out of the pool */
            return true;
        }
    }
    if (px__upstream_ops(cfg)->multiplexed) {
        for (px_uplink_t *l = ep->conns.next; l != &ep->conns; l = l->next) {
            px_upconn_t *c = CONN_OF(l);
            if (c->state == PX_UPCONN_CONNECTING && link_cnt(&c->pending) < per_conn) {
                r->connects++; /* this connect attempt counts for it too */
                r->state = PX_UPREQ_PENDING;
                r->conn = c;
                px__upstream_link_add(&c->pending, &r->link);
                return true;
            }
        }
    }
    if (ep->conns_cnt >= MEM_MAX(cfg->max_conns_per_endpoint, 1u))
        return false;
    px_upconn_t *c = conn_new(cl, ep);
    if (!c)
        return false;
    c->for_probe = r->probe;
    r->connects++;
    r->state = PX_UPREQ_PENDING;
    r->conn = c;
    px__upstream_link_add(&c->pending, &r->link);
    return true;
}

/* Gives `r` (counted on `ep`, on no list) a slot, or queues it on `ep`. */
static void place(px_upstream_req_t *r, px_upep_t *ep)
{
    MEM_ASSERT(r->ep == ep);
    MEM_ASSERT(r->conn == NULL);
    if (!link_empty(&ep->waitq) || !try_place(r, ep)) {
        r->state = PX_UPREQ_QUEUED;
        px__upstream_link_add(&ep->waitq, &r->link);
        if (ep->conns_cnt == 0) {
            /* Nothing will free a slot: the connection could not even be created. */
            fail_later(r, 503, "upstream connect failed");
        }
    }
}

static void kick_waitq(px_upep_t *ep)
{
    if (link_empty(&ep->waitq))
        return;
    px_upcluster_t *cl = REQ_OF(ep->waitq.next)->cl;
    if (cl->pools->closing)
        return; /* px_upstream_worker_close cancels what waits; open nothing new */
    while (!link_empty(&ep->waitq)) {
        px_upstream_req_t *r = REQ_OF(ep->waitq.next);
        px__upstream_link_del(&r->link);
        if (!try_place(r, ep)) {
            link_add_front(&ep->waitq, &r->link);
            return;
        }
    }
}

void px__upstream_slot_freed(px_upconn_t *c)
{
    kick_waitq(c->ep);
}

/* ---- public API ------------------------------------------------------------------------ */

static void on_req_timeout(uv_timer_t *t)
{
    px_upstream_req_t *r = MEM_CONTAINER_OF(t, px_upstream_req_t, timer);
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    MEM_STAT_ADD(r->cl->pools->w->stats.upstream_request_timeout, 1);
    if (!r->probe && r->ep && !r->headers_sent)
        ep_report(r->cl, r->ep, PX_HRES_LOCAL_FAIL, 0);
    proto_cancel(r);
    px__upstream_fail(r, 504, "upstream request timeout");
}

/* Bytes that hdrs_copy_to() writes for `hdrs`: the array, then the bytes. SIZE_MAX when a
 * length is absurd. */
static size_t hdrs_copy_len(const px_header_t *hdrs, size_t cnt)
{
    size_t bytes = cnt * sizeof(px_header_t);
    for (size_t i = 0; i < cnt; i++) {
        if (hdrs[i].name_len > SIZE_MAX / 4 || hdrs[i].value_len > SIZE_MAX / 4)
            return SIZE_MAX;
        bytes += hdrs[i].name_len + hdrs[i].value_len;
    }
    return bytes;
}

/* Copies `hdrs` to `v` (hdrs_copy_len(hdrs, cnt) bytes): the array, then the bytes. */
static px_header_t *hdrs_copy_to(px_header_t *v, const px_header_t *hdrs, size_t cnt)
{
    char *s = (char *)(v + cnt);
    for (size_t i = 0; i < cnt; i++) {
        memcpy(s, hdrs[i].name, hdrs[i].name_len);
        v[i].name = s;
        v[i].name_len = hdrs[i].name_len;
        s += hdrs[i].name_len;
        memcpy(s, hdrs[i].value, hdrs[i].value_len);
        v[i].value = s;
        v[i].value_len = hdrs[i].value_len;
        s += hdrs[i].value_len;
    }
    return v;
}

/* Copies `hdrs` into one tcache block (hdrs_copy_to). */
static px_header_t *hdrs_copy(const px_header_t *hdrs, size_t cnt)
{
    size_t bytes = hdrs_copy_len(hdrs, cnt);
    if (bytes == SIZE_MAX)
        return NULL;
    px_header_t *v = mem_malloc(bytes ? bytes : 1);
    return v ? hdrs_copy_to(v, hdrs, cnt) : NULL;
}

/* Makes an exchange of `cl` (no endpoint yet, on no list, its timer initialised and counted).
 * Returns it or NULL (nothing to undo). */
static px_upstream_req_t *req_new(px_upcluster_t *cl, const px_header_t *hdrs, size_t cnt,
                                  bool end_stream, const px_upstream_cbs_t *cbs, void *ud)
{
    px_upstream_pools_t *p = cl->pools;
    px_worker_t *w = p->w;
    /* One block: the exchange, its request copy and room for the response head (the
     * allocations of a request were 17 on the codec's h2c path; this was 4 of them). */
    size_t hdrs_len = hdrs_copy_len(hdrs, cnt);
    size_t hdrs_off = MEM_ALIGN_UP(sizeof(px_upstream_req_t), (size_t)16);
    if (hdrs_len > SIZE_MAX / 2)
        return NULL;
    size_t first_off = MEM_ALIGN_UP(hdrs_off + hdrs_len, (size_t)16);
    char *blk = mem_malloc(first_off + PX_UPHDRS_FIRST_BYTES);
    if (!blk)
        return NULL;
    px_upstream_req_t *r = (px_upstream_req_t *)(void *)blk;
    memset(r, 0, sizeof(*r));
    r->hdrs = hdrs_copy_to((px_header_t *)(void *)(blk + hdrs_off), hdrs, cnt);
    r->rh.first = blk + first_off;
    r->hdrs_cnt = cnt;
    r->cl = cl;
    cl->live++;
    r->cbs = *cbs;
    r->ud = ud;
    r->stream_id = -1;
    r->content_length = -1;
    r->req_end = end_stream;
    r->body.cap = MEM_MAX(w->cfg ? w->cfg->limits.stream_buffer_bytes : 65536, (size_t)16384);
    link_init(&r->link);
    for (size_t i = 0; i < cnt; i++) {
        const px_header_t *h = &r->hdrs[i];
        if (px_http_ieq(h->name, h->name_len, "content-length", 14))
            r->content_length = px_http_parse_content_length(h->value, h->value_len);
        else if (px_http_ieq(h->name, h->name_len, ":method", 7)) {
            r->is_head = px_http_ieq(h->value, h->value_len, "HEAD", 4);
            r->idempotent = r->is_head || px_http_ieq(h->value, h->value_len, "GET", 3);
        }
    }
    uv_timer_init(&w->loop, &r->timer);
    p->handles_open++;
    return r;
}

int px__upstream_start_probe(px_upcluster_t *cl, px_upep_t *ep, const px_header_t *hdrs, size_t cnt,
                             uint32_t timeout_ms, const px_upstream_cbs_t *cbs,
                             px_upstream_req_t **out)
{
    MEM_ASSERT(cl != NULL && ep != NULL);
    MEM_ASSERT(timeout_ms > 0);
    if (cl->pools->closing)
        return -ESHUTDOWN;
    px_upstream_req_t *r = req_new(cl, hdrs, cnt, true, cbs, NULL);
    if (!r)
        return -ENOMEM;
    r->ud = r;
    r->probe = true;
    r->probe_idx = (uint32_t)ep->idx;
    uv_timer_start(&r->timer, on_req_timeout, timeout_ms, 0);
    ep_take(r, ep);
    *out = r;
    r->state = PX_UPREQ_QUEUED;
    place(r, ep);
    return 0;
}

int px_upstream_start(px_worker_t *w, const px_cluster_cfg_t *cluster, const px_header_t *hdrs,
                      size_t cnt, bool end_stream, const px_upstream_cbs_t *cbs, void *ud,
                      px_upstream_req_t **out)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(cluster != NULL && cbs != NULL && out != NULL);
    MEM_ASSERT(cbs->on_response_headers && cbs->on_response_data && cbs->on_response_end &&
               cbs->on_error);
    px_upstream_pools_t *p = w->upstream;
    if (!p || p->closing)
        return -ESHUTDOWN;
    if (cluster->endpoints_cnt == 0)
        return -EINVAL;
    px_upcluster_t *cl = px__upstream_cluster_get(p, cluster);
    if (!cl)
        return -ENOMEM;
    px_upstream_req_t *r = req_new(cl, hdrs, cnt, end_stream, cbs, ud);
    if (!r)
        return -ENOMEM;
    MEM_STAT_ADD(w->stats.upstream_requests, 1);
    if (cluster->request_timeout_ms > 0)
        uv_timer_start(&r->timer, on_req_timeout, cluster->request_timeout_ms, 0);
    px_upep_t *ep = pick_endpoint(cl, NULL, 0);
    ep_take(r, ep);
    *out = r;
    /* A failure to even create a connection is reported through on_error from here on, so
     * the caller sees one error path; the state is consistent before place() runs. */
    r->state = PX_UPREQ_QUEUED;
    place(r, ep);
    return 0;
}

int px_upstream_send_body(px_upstream_req_t *r, const uint8_t *data, size_t len, bool end)
{
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    if (r->req_end)
        return len == 0 ? 0 : -EINVAL;
    if (len > 0) {
        if (!r->body.buf) {
            r->body.buf = mem_malloc(r->body.cap);
            if (!r->body.buf)
                return -ENOMEM;
        }
        if (len > r->body.cap - r->body.len)
            return -ENOBUFS;
        ring_put(&r->body, data, len);
    }
    if (end)
        r->req_end = true;
    if (r->state == PX_UPREQ_ACTIVE)
        r->conn->ops->body(r);
    return 0;
}

int px_upstream_send_trailers(px_upstream_req_t *r, const px_header_t *hdrs, size_t cnt)
{
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    if (r->req_end)
        return -EINVAL;
    if (cnt > 0) {
        r->trailers = hdrs_copy(hdrs, cnt);
        if (!r->trailers)
            return -ENOMEM;
        r->trailers_cnt = cnt;
    }
    return px_upstream_send_body(r, NULL, 0, true);
}

void px_upstream_consumed(px_upstream_req_t *r, size_t len)
{
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    len = MEM_MIN(len, r->resp_unacked);
    if (len == 0)
        return;
    r->resp_unacked -= len;
    if (r->state != PX_UPREQ_ACTIVE)
        return;
    r->conn->ops->consumed(r, len);
}

unsigned px_upstream_retries(const px_upstream_req_t *r)
{
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->retries <= 16);
    return r->retries;
}

bool px_upstream_response_head_only(const px_upstream_req_t *r)
{
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    return r->head_only;
}

size_t px_upstream_bytes(const px_upstream_req_t *r)
{
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    size_t n = mem_usable_size(r); /* the request copy and the head's first block included */
    if (r->trailers)
        n += mem_usable_size(r->trailers);
    if (r->body.buf)
        n += r->body.cap;
    if (r->rh.buf && !hdrs_borrowed(&r->rh, r->rh.buf))
        n += r->rh.cap;
    if (r->rh.ent && !hdrs_borrowed(&r->rh, r->rh.ent))
        n += r->rh.ent_cap * sizeof(px_uphdr_ent_t);
    return n;
}

void px_upstream_cancel(px_upstream_req_t *r)
{
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(r->state != PX_UPREQ_DONE);
    proto_cancel(r);
    detach(r);
    release(r);
    /* r freed (in its timer's close callback) */
}

int px_upstream_worker_init(px_worker_t *w, nghttp2_mem *ng_mem)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(ng_mem != NULL);
    MEM_ASSERT(w->upstream == NULL);
    px_upstream_pools_t *p = mem_calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->w = w;
    p->ng_mem = ng_mem;
    p->keepalive = true;
    link_init(&p->flushq);
    /* Before the handles: once they are in the loop, p can only go through their close. */
    int rc = uv_check_init(&w->loop, &p->flush_check);
    if (rc < 0)
        goto fail;
    rc = uv_idle_init(&w->loop, &p->flush_idle);
    if (rc < 0)
        goto fail;
    p->flush_check.data = p;
    p->flush_idle.data = p;
    w->upstream = p;
    /* Worker 0 probes and sweeps for every worker (health.h); a failure to set the checks up
     * leaves the endpoints healthy rather than the worker down. */
    if (w->idx == 0 && w->cfg && px__upprobe_start(p) < 0)
        fprintf(stderr, "weir: health checks not started: out of memory\n");
    return 0;
fail:
    mem_free(p);
    return rc;
}

static void on_flush_handle_closed(uv_handle_t *h)
{
    px__upstream_handle_closed(h->data);
}

void px_upstream_worker_close(px_worker_t *w, void (*done)(px_worker_t *w))
{
    MEM_ASSERT(w != NULL);
    px_upstream_pools_t *p = w->upstream;
    if (!p) {
        if (done)
            done(w);
        return;
    }
    MEM_ASSERT(!p->closing);
    p->closing = true;
    p->done = done;
    px__upprobe_stop(p);
    /* Exchanges still alive get no more callbacks: their downstream is going away too. */
    for (px_upcluster_t *cl = p->clusters; cl; cl = cl->next) {
        for (size_t i = 0; i < cl->eps_cnt; i++) {
            px_upep_t *ep = &cl->eps[i];
            while (!link_empty(&ep->waitq))
                px_upstream_cancel(REQ_OF(ep->waitq.next));
            while (!link_empty(&ep->conns)) {
                px_upconn_t *c = CONN_OF(ep->conns.next);
                while (!link_empty(&c->pending))
                    px_upstream_cancel(REQ_OF(c->pending.next));
                while (!link_empty(&c->active))
                    px_upstream_cancel(REQ_OF(c->active.next));
                px__upstream_conn_close(c);
            }
        }
    }
    p->handles_open += 2;
    uv_close((uv_handle_t *)&p->flush_check, on_flush_handle_closed);
    uv_close((uv_handle_t *)&p->flush_idle, on_flush_handle_closed);
}

/* Closes the connections of `cl` that carry no exchange (HTTP/1.1 ones idle in the pool, h2
 * ones with no stream). */
static void close_idle_conns(px_upcluster_t *cl)
{
    for (size_t i = 0; i < cl->eps_cnt; i++) {
        px_upep_t *ep = &cl->eps[i];
        for (px_uplink_t *l = ep->conns.next, *next; l != &ep->conns; l = next) {
            next = l->next;
            px_upconn_t *c = CONN_OF(l);
            if (c->state == PX_UPCONN_READY && c->active_cnt == 0)
                px__upstream_conn_close(c);
        }
    }
}

/* The cluster of `cfg` that behaves as `cl` does and has no pool yet, or NULL. */
static const px_cluster_cfg_t *same_cluster(const px_upstream_pools_t *p, const px_config_t *cfg,
                                            const px_upcluster_t *cl)
{
    for (size_t i = 0; i < cfg->clusters_cnt; i++) {
        const px_cluster_cfg_t *n = &cfg->clusters[i];
        if (!px_config_cluster_same(cl->cfg, n))
            continue;
        for (const px_upcluster_t *o = p->clusters; o; o = o->next)
            if (o->cfg == n)
                return NULL;
        return n;
    }
    return NULL;
}

void px_upstream_reconfigure(px_worker_t *w)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(w->cfg != NULL);
    px_upstream_pools_t *p = w->upstream;
    if (p == NULL || p->closing)
        return;
    const px_config_t *cfg = w->cfg;
    for (px_upcluster_t *cl = p->clusters, *next; cl; cl = next) {
        next = cl->next;
        if (cl->owner == cfg || cl->owner == NULL || cl->retired)
            continue;
        const px_cluster_cfg_t *n = same_cluster(p, cfg, cl);
        if (n != NULL) {
            /* Unchanged: the pool moves to the new config. The endpoints are equal one for one
             * (px_config_cluster_same), so each keeps its connections and TLS session. */
            MEM_ASSERT(n->endpoints_cnt == cl->eps_cnt);
            /* The new config's table shares this pool's health entry (px_health_attach ran
             * px_config_cluster_same on the same pair), so the in-flight counts stay whole. */
            MEM_ASSERT(px_health_of(cfg) == NULL ||
                       px_health_cluster(px_health_of(cfg), n) == cl->hc);
            cl->cfg = n;
            for (size_t i = 0; i < cl->eps_cnt; i++)
                cl->eps[i].addr = &n->endpoints[i];
            const px_config_t *old = cl->owner;
            cl->owner = px_config_ref(cfg);
            px_config_unref(old);
            continue;
        }
        cl->retired = true;
        px__upprobe_stop_cluster(cl); /* its timer's close holds cl until it runs */
        close_idle_conns(cl);
        cluster_maybe_free(cl); /* cl may be freed */
    }
    /* The probing worker probes the clusters of the config it routes by: the moved pools keep
     * their timers, the new clusters get theirs. */
    if (w->idx == 0 && px__upprobe_start(p) < 0)
        fprintf(stderr, "weir: health checks of the reloaded config not all started: out of "
                        "memory\n");
}

void px_upstream_set_keepalive(px_worker_t *w, bool on)
{
    px_upstream_pools_t *p = w->upstream;
    if (!p || p->keepalive == on)
        return;
    p->keepalive = on;
    if (on)
        return;
    for (px_upcluster_t *cl = p->clusters; cl; cl = cl->next)
        close_idle_conns(cl);
}
