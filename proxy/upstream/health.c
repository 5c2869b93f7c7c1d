/*
 * proxy/upstream/health.c: the shared health of a cluster's endpoints: the active checker's
 * verdict, outlier ejection with Envoy's semantics, and the retry budget.
 *
 * Outlier detection (Envoy's outlier_detection, its default mode where local failures count as
 * 5xx): every exchange reports its outcome; consecutive_5xx counts 5xx heads, connect failures,
 * timeouts and resets, consecutive_gateway_failure counts 502/503/504 and the same local
 * failures; any head below 500 resets both (a non-gateway 5xx resets the gateway count). When a
 * count reaches its threshold the endpoint is ejected for base_ejection_time x its ejection
 * count (capped by max_ejection_time), unless max_ejection_percent of the cluster is ejected
 * already (at least one endpoint may always be, unless the percent is 0, as in Envoy). The
 * interval sweep ends ejections that ran out (so does the first endpoint choice that sees one)
 * and decays the multiplier by one per interval once an endpoint has been back for an interval.
 *
 * Instances: see health.h. Thread: any; every shared field goes through __atomic builtins.
 */
#include "proxy/upstream/health.h"
#include "mem/base.h"

#include <string.h>
#include <time.h>

#include "mem/malloc.h"

#define LOAD(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ADD(p, v)   __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)

uint64_t px_health_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

px_hcluster_t *px_hcluster_new(const px_cluster_cfg_t *cfg)
{
    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(cfg->endpoints_cnt <= 4096);
    px_hcluster_t *hc = mem_calloc(1, sizeof(*hc) + cfg->endpoints_cnt * sizeof(px_hep_t));
    if (!hc)
        return NULL;
    hc->refs = 1;
    hc->check = cfg->health_check;
    hc->check.path = NULL;
    hc->outlier = cfg->outlier;
    hc->retry_budget_percent = cfg->retry_budget_percent;
    hc->retry_min_concurrency = cfg->retry_min_concurrency;
    hc->eps_cnt = cfg->endpoints_cnt;
    return hc;
}

void px_hcluster_unref(px_hcluster_t *hc)
{
    if (!hc)
        return;
    int was = __atomic_fetch_sub(&hc->refs, 1, __ATOMIC_ACQ_REL);
    MEM_ASSERT(was > 0);
    if (was == 1)
        mem_free(hc);
}

/* The entry of `prev` for a cluster that behaves as `c` does, with a new reference, or NULL. */
static px_hcluster_t *carried(const px_health_t *prev, const px_cluster_cfg_t *c)
{
    for (size_t i = 0; prev != NULL && i < prev->clusters_cnt; i++) {
        if (!px_config_cluster_same(&prev->cfg->clusters[i], c))
            continue;
        px_hcluster_t *hc = prev->clusters[i];
        MEM_ASSERT(hc->eps_cnt == c->endpoints_cnt);
        __atomic_fetch_add(&hc->refs, 1, __ATOMIC_RELAXED);
        return hc;
    }
    return NULL;
}

int px_health_new(const px_config_t *cfg, const px_health_t *prev, px_health_t **out)
{
    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(out != NULL);
    px_health_t *h = mem_calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->cfg = cfg;
    if (cfg->clusters_cnt > 0) {
        h->clusters = mem_calloc(cfg->clusters_cnt, sizeof(*h->clusters));
        if (!h->clusters)
            goto fail;
    }
    for (size_t i = 0; i < cfg->clusters_cnt; i++) {
        h->clusters[i] = carried(prev, &cfg->clusters[i]);
        if (!h->clusters[i])
            h->clusters[i] = px_hcluster_new(&cfg->clusters[i]);
        if (!h->clusters[i])
            goto fail;
        h->clusters_cnt = i + 1;
    }
    *out = h;
    return 0;
fail:
    px_health_free(h);
    return -ENOMEM;
}

void px_health_free(px_health_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->clusters_cnt; i++)
        px_hcluster_unref(h->clusters[i]);
    mem_free(h->clusters);
    mem_free(h);
}

static void on_config_free(void *health)
{
    px_health_free(health);
}

int px_health_attach(px_config_t *cfg, const px_config_t *prev)
{
    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(cfg->health == NULL);
    px_health_t *h = NULL;
    int rc = px_health_new(cfg, px_health_of(prev), &h);
    if (rc < 0)
        return rc;
    cfg->health = h;
    cfg->health_free = on_config_free;
    return 0;
}

px_hcluster_t *px_health_cluster(const px_health_t *h, const px_cluster_cfg_t *cfg)
{
    if (!h || cfg < h->cfg->clusters || cfg >= h->cfg->clusters + h->clusters_cnt)
        return NULL;
    MEM_ASSERT(h->clusters_cnt == h->cfg->clusters_cnt);
    return h->clusters[cfg - h->cfg->clusters];
}

px_hep_state_t px_hep_state(const px_hcluster_t *hc, size_t idx, uint64_t now_ms)
{
    MEM_ASSERT(idx < hc->eps_cnt);
    const px_hep_t *e = &hc->eps[idx];
    uint64_t until = LOAD(&e->ejected_until_ms);
    if (until != 0 && until > now_ms)
        return PX_HEP_EJECTED;
    if (LOAD(&e->hc_unhealthy))
        return PX_HEP_UNHEALTHY;
    return PX_HEP_HEALTHY;
}

/* Ends the ejection of `e` if it ran out; only the caller whose exchange wins decrements the
 * cluster's count. */
static void uneject_expired(px_hcluster_t *hc, px_hep_t *e, uint64_t now_ms)
{
    uint64_t until = LOAD(&e->ejected_until_ms);
    if (until == 0 || until > now_ms)
        return;
    if (__atomic_compare_exchange_n(&e->ejected_until_ms, &until, 0, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
        MEM_ASSERT(LOAD(&hc->ejected_cnt) > 0);
        __atomic_sub_fetch(&hc->ejected_cnt, 1, __ATOMIC_RELAXED);
    }
}

bool px_hep_usable(px_hcluster_t *hc, size_t idx, uint64_t now_ms)
{
    MEM_ASSERT_HOT(idx < hc->eps_cnt);
    px_hep_t *e = &hc->eps[idx];
    if (LOAD(&e->hc_unhealthy))
        return false;
    uint64_t until = LOAD(&e->ejected_until_ms);
    if (until == 0)
        return true;
    if (until > now_ms)
        return false;
    uneject_expired(hc, e, now_ms);
    return true;
}

/* The most endpoints of `hc` that may be ejected at once. */
static uint32_t eject_cap(const px_hcluster_t *hc)
{
    uint32_t pct = hc->outlier.max_ejection_percent;
    if (pct == 0)
        return 0;
    uint64_t n = (uint64_t)hc->eps_cnt * pct / 100u;
    return n == 0 ? 1u : (uint32_t)n;
}

/* Ejects endpoint `e` for `reason` if the cluster's share allows. */
static bool eject(px_hcluster_t *hc, px_hep_t *e, px_eject_reason_t reason, uint64_t now_ms)
{
    const px_outlier_cfg_t *o = &hc->outlier;
    uint32_t cap = eject_cap(hc);
    uint32_t cnt = LOAD(&hc->ejected_cnt);
    do {
        if (cnt >= cap) {
            ADD(&hc->ejections_overflow, 1);
            return false;
        }
    } while (!__atomic_compare_exchange_n(&hc->ejected_cnt, &cnt, cnt + 1, false, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    uint32_t mult = ADD(&e->ejections, 1);
    uint64_t ms = (uint64_t)o->base_ejection_ms * mult;
    if (ms > o->max_ejection_ms)
        ms = MEM_MAX(o->max_ejection_ms, o->base_ejection_ms);
    uint64_t zero = 0;
    if (!__atomic_compare_exchange_n(&e->ejected_until_ms, &zero, now_ms + MEM_MAX(ms, 1u), false,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        /* Another worker ejected it meanwhile: give the slot and the multiplier step back. */
        __atomic_sub_fetch(&hc->ejected_cnt, 1, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&e->ejections, 1, __ATOMIC_RELAXED);
        return false;
    }
    STORE(&e->last_until_ms, now_ms + MEM_MAX(ms, 1u));
    STORE(&e->eject_reason, (uint32_t)reason);
    ADD(&e->ejections_total, 1);
    STORE(&e->cons_5xx, 0);
    STORE(&e->cons_gateway, 0);
    return true;
}

bool px_health_report(px_hcluster_t *hc, size_t idx, px_hresult_t res, int status, uint64_t now_ms)
{
    MEM_ASSERT_HOT(idx < hc->eps_cnt);
    px_hep_t *e = &hc->eps[idx];
    if (res == PX_HRES_OK) {
        /* Plain loads first: a healthy endpoint's line is not written on every response. */
        if (LOAD(&e->cons_5xx) != 0)
            STORE(&e->cons_5xx, 0);
        if (LOAD(&e->cons_gateway) != 0)
            STORE(&e->cons_gateway, 0);
        return false;
    }
    bool gateway = res == PX_HRES_LOCAL_FAIL || status == 502 || status == 503 || status == 504;
    ADD(res == PX_HRES_5XX ? &e->rq_5xx : &e->rq_local_fail, 1);
    uint32_t n5 = ADD(&e->cons_5xx, 1);
    uint32_t ng = 0;
    if (gateway)
        ng = ADD(&e->cons_gateway, 1);
    else if (LOAD(&e->cons_gateway) != 0)
        STORE(&e->cons_gateway, 0);
    const px_outlier_cfg_t *o = &hc->outlier;
    if (!o->enabled || LOAD(&e->ejected_until_ms) > now_ms)
        return false;
    if (o->consecutive_5xx > 0 && n5 >= o->consecutive_5xx)
        return eject(hc, e, PX_EJECT_5XX, now_ms);
    if (o->consecutive_gateway_failure > 0 && ng >= o->consecutive_gateway_failure)
        return eject(hc, e, PX_EJECT_GATEWAY, now_ms);
    return false;
}

void px_health_sweep(px_hcluster_t *hc, uint64_t now_ms)
{
    MEM_ASSERT(hc != NULL);
    for (size_t i = 0; i < hc->eps_cnt; i++) {
        px_hep_t *e = &hc->eps[i];
        uneject_expired(hc, e, now_ms);
        /* One step per sweep, once the endpoint has been back for a whole interval. */
        if (LOAD(&e->ejected_until_ms) != 0 ||
            now_ms < LOAD(&e->last_until_ms) + hc->outlier.interval_ms)
            continue;
        uint32_t m = LOAD(&e->ejections);
        while (m > 0 && !__atomic_compare_exchange_n(&e->ejections, &m, m - 1, false,
                                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ;
    }
}

bool px_health_probe_result(px_hcluster_t *hc, size_t idx, bool pass, int status,
                            const char *reason)
{
    MEM_ASSERT(idx < hc->eps_cnt);
    const px_health_check_cfg_t *c = &hc->check;
    MEM_ASSERT(c->healthy_threshold > 0 && c->unhealthy_threshold > 0);
    px_hep_t *e = &hc->eps[idx];
    ADD(&e->hc_checks, 1);
    STORE(&e->hc_last_status, (uint32_t)(status > 0 ? status : 0));
    bool unhealthy = LOAD(&e->hc_unhealthy) != 0;
    if (pass) {
        STORE(&e->hc_fail_run, 0);
        STORE(&e->hc_last_reason, (const char *)NULL);
        uint32_t run = ADD(&e->hc_pass_run, 1);
        if (unhealthy && run >= c->healthy_threshold) {
            STORE(&e->hc_unhealthy, 0);
            return true;
        }
        return false;
    }
    ADD(&e->hc_failures, 1);
    STORE(&e->hc_pass_run, 0);
    STORE(&e->hc_last_reason, reason);
    uint32_t run = ADD(&e->hc_fail_run, 1);
    if (!unhealthy && run >= c->unhealthy_threshold) {
        STORE(&e->hc_unhealthy, 1);
        return true;
    }
    return false;
}

bool px_health_retry_begin(px_hcluster_t *hc)
{
    MEM_ASSERT(hc != NULL);
    uint64_t active = LOAD(&hc->rq_active);
    uint64_t cap = active * hc->retry_budget_percent / 100u;
    if (cap < hc->retry_min_concurrency)
        cap = hc->retry_min_concurrency;
    uint32_t cur = LOAD(&hc->retries_active);
    do {
        if (cur >= cap) {
            ADD(&hc->retries_budget_exhausted, 1);
            return false;
        }
    } while (!__atomic_compare_exchange_n(&hc->retries_active, &cur, cur + 1, false,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    ADD(&hc->retries_total, 1);
    return true;
}

void px_health_retry_end(px_hcluster_t *hc)
{
    MEM_ASSERT(LOAD(&hc->retries_active) > 0);
    __atomic_sub_fetch(&hc->retries_active, 1, __ATOMIC_RELAXED);
}

const char *px_hep_state_name(px_hep_state_t s)
{
    switch (s) {
    case PX_HEP_HEALTHY:
        return "healthy";
    case PX_HEP_UNHEALTHY:
        return "unhealthy";
    case PX_HEP_EJECTED:
        return "ejected";
    }
    return "?";
}

const char *px_eject_reason_name(px_eject_reason_t r)
{
    switch (r) {
    case PX_EJECT_NONE:
        return "none";
    case PX_EJECT_5XX:
        return "consecutive_5xx";
    case PX_EJECT_GATEWAY:
        return "consecutive_gateway_failure";
    }
    return "?";
}
