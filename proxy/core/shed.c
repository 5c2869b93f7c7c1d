/*
 * proxy/core/shed.c: the worker's side of the overload policy: which new streams are admitted
 * (a pool, then per-connection accounting against a fair share of the budget), and what a
 * worker does while the level is above NORMAL: upstream keep-alive off (on again at NORMAL),
 * the heaviest connections that stopped reading closed, and at CRITICAL GOAWAY to idle
 * connections and the reset of the streams holding the most memory.
 *
 * Admission of a new HTTP/2 stream and of a new HTTP/1.1 request alike (px_h1_io_t's
 * admit_request asks this too; a refused request is a 503 with Retry-After), each counted at
 * what it may come to hold (`per`: two stream buffers):
 *   - CRITICAL: none.
 *   - NORMAL, the pool: any stream while this worker's streams together could hold no more
 *     than its part of the budget up to the elevated threshold. What streams may come to hold
 *     is counted, not what they hold yet: a peer that opens 100 streams and stops reading
 *     fills them all within one monitor tick, faster than any level can rise.
 *   - past the pool, and at ELEVATED: per-connection accounting. A stream is admitted when
 *     what its connection holds (px_conn_bytes) plus `per` for each of its streams, this one
 *     included, fits in the connection's fair share: the band between the elevated and the
 *     critical threshold, divided among the worker's connections (at least two streams'
 *     worth). A connection that holds little (a fresh one, one with a request or two) keeps
 *     being served; the ones that hold the memory are refused. HAProxy accounts buffers per
 *     connection the same way; Envoy's scaled triggers tighten limits as pressure rises.
 *
 * Stalled connections: one whose pending output the kernel has not taken a byte of for
 * PX_OVERLOAD_STALL_MS (the peer stopped reading) cannot free what it holds by sending it,
 * and an RST_STREAM queued behind its blocked write would never go out either. Above NORMAL
 * every tick closes such connections, heaviest first, until they held this worker's part of
 * the excess over (elevated - hysteresis) of the budget (at CRITICAL: all of them). Closing
 * frees everything at once (streams, buffers, region); limits.send_timeout does the same
 * without pressure, after longer.
 *
 * Memory tenants (a route or cluster with memory: {limit}, proxy/upstream/tenant.h): a tenant
 * past its limit has its new streams refused where they are routed (proxy/h2/h2.c,
 * proxy/h1/h1.c), and on every monitor tick while it is over, at any level, each worker resets
 * its heaviest streams of that tenant (by what they count against it) until they held this
 * worker's part of the excess, at most PX_OVERLOAD_SHED_PER_TICK a tick. A stream whose
 * connection stopped reading, and an HTTP/1.1 request (it has no reset), go with their
 * connection. Other tenants are left alone: only the global levels act on everyone.
 *
 * Runs only on the worker thread, from its async callback (PX_WF_OVERLOAD, sent by the
 * monitor in proxy/core/overload.c). It touches the worker's own connections and streams.
 */
#include "proxy/core/overload.h"
#include "mem/base.h"

#include <string.h>

#include "mem/budget.h"
#include "mem/subregion.h"
#include "proxy/core/conn.h"
#include "proxy/h1/h1.h"
#include "proxy/h2/stream.h"
#include "proxy/upstream/tenant.h"
#include "proxy/upstream/upstream.h"

/* Bytes a stream holds now: its sub-arena and its buffered response body. Its request-body
 * ring towards the upstream is opaque here (proxy/upstream/upstream.h) and bounded by
 * limits.stream_buffer_bytes like every stream's, so it does not change the order. */
static size_t stream_weight(const px_stream_t *st)
{
    return mem_subregion_bytes(st->sub) + st->buffered;
}

/* This worker's part of `fraction` of the budget (0 when there is no budget limit). */
static size_t worker_part(const px_wimpl_t *wi, double fraction)
{
    size_t limit = mem_budget_limit();
    size_t workers = MEM_MAX((size_t)wi->w->server->workers_cnt, (size_t)1);
    MEM_ASSERT(workers <= 4096);
    MEM_ASSERT(fraction >= 0.0 && fraction <= 1.0);
    return (size_t)((double)limit * fraction) / workers;
}

/* A connection's fair share: the band between the elevated and the critical threshold,
 * divided among this worker's connections, and at least room for one stream (see `per`). */
static size_t fair_share(const px_wimpl_t *wi)
{
    const px_memory_cfg_t *m = &wi->w->cfg->memory;
    size_t band = worker_part(wi, MEM_MAX(m->critical - m->elevated, 0.0));
    size_t conns = MEM_MAX(wi->conns_cnt, (size_t)1);
    return MEM_MAX(band / conns, 4 * wi->w->cfg->limits.stream_buffer_bytes);
}

bool px_overload__admit_stream(const px_conn_t *c)
{
    MEM_ASSERT(c != NULL);
    px_overload_level_t lv = px_worker_overload(c->wi->w);
    if (lv >= PX_OVERLOAD_CRITICAL)
        return false;
    size_t limit = mem_budget_limit();
    if (limit == 0)
        return lv == PX_OVERLOAD_NORMAL; /* cgroup pressure alone: no budget to share */
    /* What one stream may come to hold: its buffer can pass stream_buffer_bytes by what was in
     * flight (h2.c allows twice the window and a batch), and the upstream side holds its own. */
    size_t per = 2 * c->wi->w->cfg->limits.stream_buffer_bytes;
    /* The pool (see the top): at NORMAL, whoever opens it, while this worker's streams could
     * together hold no more than its part of the budget up to the elevated threshold. */
    size_t reserved = (MEM_STAT_LOAD(c->wi->w->stats.streams_active) + 1) * per;
    if (lv == PX_OVERLOAD_NORMAL && reserved <= worker_part(c->wi, c->wi->w->cfg->memory.elevated))
        return true;
    /* Past the pool, and at ELEVATED: only a connection that holds less than its fair share.
     * An HTTP/1.1 connection has at most one request in progress; the requests it pipelined
     * behind it wait in its input buffer, which px_conn_bytes counts. */
    size_t open = c->h2 != NULL ? c->h2->streams_cnt : px_h1_busy(&c->h1) ? 1u : 0u;
    size_t want = px_conn_bytes(c) + (open + 1) * per;
    MEM_ASSERT(want >= per);
    return want <= fair_share(c->wi);
}

/* What this worker should free at `lv`: at ELEVATED its part of what is committed above the
 * level's way out (elevated - hysteresis); at CRITICAL, or with no budget limit (the
 * pressure is the cgroup's), as much as it can. */
static size_t shed_need(const px_wimpl_t *wi, px_overload_level_t lv)
{
    const px_memory_cfg_t *m = &wi->w->cfg->memory;
    if (lv >= PX_OVERLOAD_CRITICAL || mem_budget_limit() == 0)
        return SIZE_MAX;
    size_t workers = MEM_MAX((size_t)wi->w->server->workers_cnt, (size_t)1);
    size_t committed = mem_budget_committed() / workers;
    size_t target = worker_part(wi, MEM_MAX(m->elevated - m->hysteresis, 0.0));
    return committed > target ? committed - target : 0;
}

/* Keeps the `cap` heaviest items seen so far in `top`/`wt` (`*n` of them, heaviest first):
 * inserts `item` of weight `x` when it is among them. */
static void keep_heaviest(void **top, size_t *wt, size_t *n, size_t cap, void *item, size_t x)
{
    MEM_ASSERT(*n <= cap);
    MEM_ASSERT(cap > 0);
    if (*n == cap && x <= wt[*n - 1])
        return;
    size_t i = *n < cap ? (*n)++ : *n - 1;
    while (i > 0 && wt[i - 1] < x) {
        top[i] = top[i - 1];
        wt[i] = wt[i - 1];
        i--;
    }
    top[i] = item;
    wt[i] = x;
}

/* Closes the connections whose output has been blocked for PX_OVERLOAD_STALL_MS, heaviest
 * first, until they held what this worker should free (at most PX_OVERLOAD_SHED_CONNS a
 * tick). Returns the bytes they held. */
static size_t shed_stalled(px_wimpl_t *wi, px_overload_level_t lv)
{
    size_t need = shed_need(wi, lv);
    if (need == 0)
        return 0;
    uint64_t now = uv_now(&wi->w->loop);
    void *top[PX_OVERLOAD_SHED_CONNS]; /* px_conn_t */
    size_t wt[PX_OVERLOAD_SHED_CONNS];
    size_t n = 0;
    for (px_conn_t *c = wi->conns; c != NULL; c = c->next) {
        if (c->closing || px_conn_stalled_ms(c, now) < PX_OVERLOAD_STALL_MS)
            continue;
        keep_heaviest(top, wt, &n, PX_OVERLOAD_SHED_CONNS, c, px_conn_bytes(c));
    }
    MEM_ASSERT(n <= PX_OVERLOAD_SHED_CONNS);
    size_t freed = 0;
    for (size_t i = 0; i < n && freed < need; i++) {
        MEM_ASSERT(i == 0 || wt[i - 1] >= wt[i]);
        freed += wt[i];
        MEM_STAT_ADD(wi->w->stats.overload_conns_shed, 1);
        px_conn_close(top[i]); /* streams and buffers freed now, the region in its close cb */
    }
    return freed;
}

/* GOAWAY (NO_ERROR, last stream id processed) to every HTTP/2 connection without streams;
 * once sent and with no streams, the codec wants no more I/O and the connection closes. Idle
 * HTTP/1.1 connections are closed. */
static void goaway_idle(px_wimpl_t *wi)
{
    for (px_conn_t *c = wi->conns, *next; c != NULL; c = next) {
        next = c->next;
        /* An idle HTTP/1.1 keep-alive connection has no GOAWAY: it is closed (between two
         * requests a client must expect that, RFC 9112 9.5). */
        if (!c->closing && c->mode == PX_CONN_H1 && px_h1_idle(&c->h1)) {
            px_conn_close(c);
            MEM_STAT_ADD(wi->w->stats.overload_goaway_idle, 1);
            continue;
        }
        if (c->closing || c->mode != PX_CONN_H2 || c->h2->streams_cnt > 0 || c->shed_goaway)
            continue;
        c->shed_goaway = true;
        px_h2_goaway(c->h2);
        px_conn_mark_dirty(c);
        MEM_STAT_ADD(wi->w->stats.overload_goaway_idle, 1);
    }
}

/* The heaviest few of a walk: up to PX_OVERLOAD_SHED_PER_TICK streams (or HTTP/1.1
 * connections: st NULL), heaviest first. */
typedef struct heaviest_s {
    px_conn_t *c[PX_OVERLOAD_SHED_PER_TICK];
    px_stream_t *st[PX_OVERLOAD_SHED_PER_TICK];
    size_t wt[PX_OVERLOAD_SHED_PER_TICK];
    size_t n;
} heaviest_t;

/* Offers (c, st) weighing `x`: insertion into the small sorted array. */
static void heaviest_put(heaviest_t *h, px_conn_t *c, px_stream_t *st, size_t x)
{
    if (h->n == PX_OVERLOAD_SHED_PER_TICK && x <= h->wt[h->n - 1])
        return;
    size_t i = h->n < PX_OVERLOAD_SHED_PER_TICK ? h->n++ : h->n - 1;
    while (i > 0 && h->wt[i - 1] < x) {
        h->c[i] = h->c[i - 1];
        h->st[i] = h->st[i - 1];
        h->wt[i] = h->wt[i - 1];
        i--;
    }
    h->c[i] = c;
    h->st[i] = st;
    h->wt[i] = x;
    MEM_ASSERT(h->n <= PX_OVERLOAD_SHED_PER_TICK);
}

/* Resets up to PX_OVERLOAD_SHED_PER_TICK of the heaviest live streams, heaviest first. */
static void shed_heaviest(px_wimpl_t *wi)
{
    heaviest_t h = {.n = 0};
    for (px_conn_t *c = wi->conns; c != NULL; c = c->next) {
        if (c->closing || c->mode != PX_CONN_H2)
            continue;
        for (px_stream_t *st = c->h2->streams; st != NULL; st = st->next) {
            if (st->phase != PX_PHASE_RESET) /* a reset one's memory goes when the reset is sent */
                heaviest_put(&h, c, st, stream_weight(st));
        }
    }
    for (size_t i = 0; i < h.n; i++) {
        MEM_ASSERT(i == 0 || h.wt[i - 1] >= h.wt[i]);
        px_h2_stream_shed(h.st[i]);
        MEM_STAT_ADD(wi->w->stats.overload_streams_shed, 1);
    }
}

/* Sheds this worker's part of what tenant `t` (1-based) holds past its limit, if it is past
 * it: its heaviest streams first (see the top). */
static void shed_tenant(px_wimpl_t *wi, unsigned t)
{
    px_worker_t *w = wi->w;
    size_t limit = w->cfg->tenants[t - 1].limit_bytes;
    size_t total = px_tenant_bytes(w, t);
    size_t mine = (size_t)MEM_STAT_LOAD(w->tenants[t - 1].bytes);
    if (total <= limit || mine == 0)
        return;
    /* This worker's part of the excess, less what its streams already reset still hold (it
     * goes when their resets are sent): otherwise the next tick would shed it twice. */
    size_t need = (size_t)((double)(total - limit) * ((double)mine / (double)total)) + 1;
    size_t pending = 0;
    heaviest_t h = {.n = 0};
    uint64_t now = uv_now(&w->loop);
    for (px_conn_t *c = wi->conns; c != NULL; c = c->next) {
        if (c->closing)
            continue;
        if (c->mode == PX_CONN_H1) {
            size_t counted = 0;
            if (px_h1_tenant(&c->h1, &counted) == t)
                heaviest_put(&h, c, NULL, counted);
            continue;
        }
        if (c->mode != PX_CONN_H2)
            continue;
        for (px_stream_t *st = c->h2->streams; st != NULL; st = st->next) {
            if (st->tenant != t)
                continue;
            if (st->phase == PX_PHASE_RESET)
                pending += st->tenant_counted;
            else
                heaviest_put(&h, c, st, st->tenant_counted);
        }
    }
    size_t freed = pending;
    for (size_t i = 0; i < h.n && freed < need; i++) {
        MEM_ASSERT(i == 0 || h.wt[i - 1] >= h.wt[i]);
        px_conn_t *c = h.c[i];
        if (c->closing)
            continue; /* closed for an earlier stream of the same connection */
        freed += h.wt[i];
        px_tenant_shed(w, t, h.wt[i]);
        /* HTTP/1.1 has no reset, and a reset queued behind a blocked write never leaves. */
        if (h.st[i] == NULL || px_conn_stalled_ms(c, now) >= PX_OVERLOAD_STALL_MS)
            px_conn_close(c); /* its streams and buffers freed now */
        else
            px_h2_stream_shed(h.st[i]);
    }
}

bool px_overload__tenants_over(const px_server_t *s)
{
    const px_config_t *cfg = s->cfg;
    if (s->tenant_table == NULL)
        return false;
    unsigned rows = __atomic_load_n(&s->workers_cnt, __ATOMIC_ACQUIRE);
    for (unsigned t = 1; t <= cfg->tenants_cnt; t++) {
        px_tenant_stats_t x;
        px_tenant_sum(s->tenant_table, rows, cfg->tenants_cnt, t, &x);
        if (x.bytes > cfg->tenants[t - 1].limit_bytes)
            return true;
    }
    return false;
}

void px_overload__worker_apply(px_worker_t *w)
{
    MEM_ASSERT(w != NULL);
    px_wimpl_t *wi = w->impl;
    MEM_ASSERT(wi != NULL && wi->w == w);
    if (wi->stopping)
        return; /* the upstream pools are closing or closed */
    /* Tenants past their limit, at any level (see the top). */
    for (unsigned t = 1; w->tenants != NULL && t <= w->cfg->tenants_cnt; t++)
        shed_tenant(wi, t);
    px_overload_level_t lv = px_server_overload(w->server);
    bool changed = (int)lv != wi->applied_level;
    wi->applied_level = (int)lv;
    px_upstream_set_keepalive(w, lv == PX_OVERLOAD_NORMAL);
    if (lv == PX_OVERLOAD_NORMAL)
        return;
    /* Connections that stopped reading go first: what they hold can leave no other way. */
    size_t freed = shed_stalled(wi, lv);
    /* Release first: this worker's cache holds what its closed streams freed, and only this
     * thread can flush it. The monitor asks every tick above NORMAL; a flush costs the refills
     * after it, so it runs when something was freed, on a change, every tick at CRITICAL (its
     * shedding ticks need it) and otherwise once per PX_OVERLOAD_RELEASE_MS. */
    uint64_t now = uv_now(&w->loop);
    if (freed > 0 || changed || lv == PX_OVERLOAD_CRITICAL ||
        now - wi->released_ms >= PX_OVERLOAD_RELEASE_MS) {
        (void)mem_release_now();
        wi->released_ms = now;
    }
    if (lv != PX_OVERLOAD_CRITICAL || wi->draining)
        return;
    goaway_idle(wi);
    if (px_overload__shed_now(w->server))
        shed_heaviest(wi);
}
