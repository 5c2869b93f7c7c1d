/*
 * proxy/upstream/probe.c: the active health checker and the outlier sweep of every cluster that
 * has them, run by one worker (worker 0) for all, so that N workers do not multiply the probe
 * rate; the verdicts go to the shared table (health.h) that every worker's endpoint choice reads.
 *
 * A probe is an ordinary exchange on the probing worker's pools, pinned to one endpoint: GET
 * health_check.path over the cluster's own protocol and transport (HTTP/1.1, h2c, h2 or
 * HTTP/1.1 over TLS), with health_check.timeout for the whole exchange, never retried and never
 * reported to outlier detection. It passes when the response head carries expected_status; a
 * connect failure, a timeout, a reset or another status fails it. One probe per endpoint at a
 * time: an endpoint whose probe is still running at the next tick is skipped.
 *
 * Instances: one timer per such cluster, in its px_upcluster_t on worker 0. The checker follows
 * worker 0's config: after a reload the pools of unchanged clusters keep their timers (their
 * health entries are shared with the new config), the retired ones' timers close, and the new
 * clusters' start. A probe in flight holds its cluster (cl->live) until it ends.
 * Thread: worker 0.
 */
#define PX_UPSTREAM_INTERNAL 1
#include "proxy/upstream/upstream.h"
#include "mem/base.h"

#include <stdio.h>
#include <string.h>

#include "proxy/core/worker-t.h"
#include "proxy/upstream/health.h"

/* Ends the probe of `r`: its verdict (unless recorded already) and its endpoint's slot. */
static void probe_done(px_upstream_req_t *r, bool pass, int status, const char *reason)
{
    px_upcluster_t *cl = r->cl;
    MEM_ASSERT(r->probe);
    MEM_ASSERT(r->probe_idx < cl->eps_cnt);
    px_upep_t *ep = &cl->eps[r->probe_idx];
    if (!r->probe_recorded) {
        r->probe_recorded = true;
        MEM_STAT_ADD(cl->pools->w->stats.upstream_health_probes, 1);
        if (px_health_probe_result(cl->hc, ep->idx, pass, status, reason)) {
            bool up = __atomic_load_n(&cl->hc->eps[ep->idx].hc_unhealthy, __ATOMIC_RELAXED) == 0;
            fprintf(stderr, "weir: cluster %s endpoint %s:%u %s by health check%s%s\n",
                    cl->cfg->name, ep->addr->host, (unsigned)ep->addr->port,
                    up ? "healthy" : "unhealthy", up ? "" : ": ", up ? "" : reason);
        }
    }
}

static void on_probe_headers(void *ud, int status, const px_header_t *hdrs, size_t cnt)
{
    px_upstream_req_t *r = ud;
    (void)hdrs;
    (void)cnt;
    bool pass = (uint32_t)status == r->cl->cfg->health_check.expected_status;
    probe_done(r, pass, status, pass ? NULL : "unexpected status");
}

static void on_probe_data(void *ud, const uint8_t *data, size_t len)
{
    (void)data;
    px_upstream_consumed(ud, len); /* nobody reads a probe's body: open the window at once */
}

static void on_probe_end(void *ud)
{
    px_upstream_req_t *r = ud;
    MEM_ASSERT(r->probe_recorded);
    r->cl->eps[r->probe_idx].probe = NULL;
}

static void on_probe_error(void *ud, int status, const char *reason)
{
    px_upstream_req_t *r = ud;
    (void)status;
    probe_done(r, false, 0, reason);
    r->cl->eps[r->probe_idx].probe = NULL;
}

static const px_upstream_cbs_t g_probe_cbs = {
    .on_response_headers = on_probe_headers,
    .on_response_data = on_probe_data,
    .on_response_end = on_probe_end,
    .on_error = on_probe_error,
};

/* Starts one probe of `ep` unless one runs. */
static void probe_ep(px_upcluster_t *cl, px_upep_t *ep)
{
    const px_cluster_cfg_t *cfg = cl->cfg;
    if (ep->probe)
        return;
    char authority[300];
    int n =
        snprintf(authority, sizeof(authority), "%s:%u", ep->addr->host, (unsigned)ep->addr->port);
    MEM_ASSERT(n > 0 && (size_t)n < sizeof(authority));
    const char *path = cfg->health_check.path;
    const char *scheme = cfg->tls ? "https" : "http";
    px_header_t h[] = {
        {":method", 7, "GET", 3},
        {":scheme", 7, scheme, strlen(scheme)},
        {":authority", 10, authority, (size_t)n},
        {":path", 5, path, strlen(path)},
        {"user-agent", 10, "weir-health-check", 17},
    };
    px_upstream_req_t *r = NULL;
    if (px__upstream_start_probe(cl, ep, h, MEM_ARRAY_LEN(h), cfg->health_check.timeout_ms,
                                 &g_probe_cbs, &r) < 0)
        return; /* out of memory: the next tick tries again; the verdict stands */
    ep->probe = r;
}

static void on_tick(uv_timer_t *t)
{
    px_upcluster_t *cl = t->data;
    const px_cluster_cfg_t *cfg = cl->cfg;
    uint64_t now = px_health_now_ms();
    if (cfg->outlier.enabled && now >= cl->hc_next_sweep_ms) {
        cl->hc_next_sweep_ms = now + cfg->outlier.interval_ms;
        px_health_sweep(cl->hc, now);
    }
    if (cfg->health_check.enabled && now >= cl->hc_next_check_ms) {
        cl->hc_next_check_ms = now + cfg->health_check.interval_ms;
        for (size_t i = 0; i < cl->eps_cnt && !cl->pools->closing; i++)
            probe_ep(cl, &cl->eps[i]);
    }
}

int px__upprobe_start(px_upstream_pools_t *p)
{
    MEM_ASSERT(p != NULL);
    const px_config_t *cfg = p->w->cfg;
    MEM_ASSERT(cfg != NULL);
    for (size_t i = 0; i < cfg->clusters_cnt; i++) {
        const px_cluster_cfg_t *c = &cfg->clusters[i];
        if (!c->health_check.enabled && !c->outlier.enabled)
            continue;
        px_upcluster_t *cl = px__upstream_cluster_get(p, c);
        if (!cl)
            return -ENOMEM;
        if (cl->hc_timer_on)
            continue; /* a pool a reload moved to this config: its timer goes on */
        uint32_t tick = UINT32_MAX;
        if (c->health_check.enabled)
            tick = MEM_MIN(tick, c->health_check.interval_ms);
        if (c->outlier.enabled)
            tick = MEM_MIN(tick, c->outlier.interval_ms);
        /* Ticks at the shorter interval; each job runs when its own is due. */
        MEM_ASSERT(tick > 0 && tick != UINT32_MAX);
        uv_timer_init(&p->w->loop, &cl->hc_timer);
        cl->hc_timer.data = cl;
        cl->hc_timer_on = true;
        cl->live++; /* a reload may retire cl while its timer runs (px__upprobe_stop_cluster) */
        p->handles_open++;
        uint64_t now = px_health_now_ms();
        cl->hc_next_check_ms = now;
        cl->hc_next_sweep_ms = now + c->outlier.interval_ms;
        uv_timer_start(&cl->hc_timer, on_tick, 0, tick);
    }
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    px_upcluster_t *cl = h->data;
    px_upstream_pools_t *p = cl->pools;
    px__upstream_cluster_unlive(cl); /* cl may be freed */
    px__upstream_handle_closed(p);
}

void px__upprobe_stop_cluster(px_upcluster_t *cl)
{
    MEM_ASSERT(cl != NULL);
    if (!cl->hc_timer_on)
        return;
    MEM_ASSERT(cl->live > 0);
    cl->hc_timer_on = false;
    uv_timer_stop(&cl->hc_timer);
    uv_close((uv_handle_t *)&cl->hc_timer, on_timer_closed);
}

void px__upprobe_stop(px_upstream_pools_t *p)
{
    MEM_ASSERT(p != NULL);
    for (px_upcluster_t *cl = p->clusters; cl; cl = cl->next)
        px__upprobe_stop_cluster(cl);
}
