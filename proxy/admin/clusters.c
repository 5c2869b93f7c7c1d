/*
 * proxy/admin/clusters.c: GET /clusters (JSON) and the weir_cluster_* families of /metrics:
 * every cluster's endpoints with their health (healthy, unhealthy by the active check, or
 * ejected by outlier detection and why), active requests, connections and failures, read from
 * the active config's health table (proxy/upstream/health.h) with relaxed loads. The config is
 * held by a reference (px_server_config) while it is read: a reload may replace it meanwhile, and
 * the table and the cluster names live as long as the config does.
 *
 * Thread: admin. Alloc: the response body only.
 */
#include "mem/base.h"

#include <stdio.h>
#include <string.h>

#include "proxy/admin/endpoints.h"
#include "proxy/upstream/health.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

static void ep_name(const px_addr_t *a, char *buf, size_t len)
{
    bool v6 = strchr(a->host, ':') != NULL;
    snprintf(buf, len, "%s%s%s:%u", v6 ? "[" : "", a->host, v6 ? "]" : "", (unsigned)a->port);
}

void px__admin_clusters(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->server != NULL);
    MEM_ASSERT(resp != NULL);
    const px_config_t *c = px_server_config(req->server);
    const px_health_t *h = px_health_of(c);
    px_jsonw_t *w = &resp->body;
    uint64_t now = px_health_now_ms();
    px_jsonw_obj_begin(w);
    px_jsonw_key(w, "clusters");
    px_jsonw_arr_begin(w);
    for (size_t i = 0; h && i < h->clusters_cnt; i++) {
        const px_hcluster_t *hc = h->clusters[i];
        const px_cluster_cfg_t *cfg = &c->clusters[i];
        px_jsonw_obj_begin(w);
        px_jsonw_kstr(w, "name", cfg->name);
        px_jsonw_kbool(w, "health_check", cfg->health_check.enabled);
        px_jsonw_kbool(w, "outlier_detection", cfg->outlier.enabled);
        px_jsonw_ku64(w, "active_requests", LOAD(&hc->rq_active));
        px_jsonw_ku64(w, "ejected", LOAD(&hc->ejected_cnt));
        px_jsonw_ku64(w, "ejections_refused_max_percent", LOAD(&hc->ejections_overflow));
        px_jsonw_ku64(w, "retries_active", LOAD(&hc->retries_active));
        px_jsonw_ku64(w, "retries", LOAD(&hc->retries_total));
        px_jsonw_ku64(w, "retry_budget_exhausted", LOAD(&hc->retries_budget_exhausted));
        px_jsonw_key(w, "endpoints");
        px_jsonw_arr_begin(w);
        for (size_t j = 0; j < hc->eps_cnt; j++) {
            const px_hep_t *e = &hc->eps[j];
            char name[300];
            ep_name(&cfg->endpoints[j], name, sizeof(name));
            px_hep_state_t st = px_hep_state(hc, j, now);
            px_jsonw_obj_begin(w);
            px_jsonw_kstr(w, "address", name);
            px_jsonw_kstr(w, "health", px_hep_state_name(st));
            if (st == PX_HEP_EJECTED) {
                uint64_t until = LOAD(&e->ejected_until_ms);
                px_jsonw_kstr(w, "ejected_reason",
                              px_eject_reason_name((px_eject_reason_t)LOAD(&e->eject_reason)));
                px_jsonw_ku64(w, "ejected_for_ms", until > now ? until - now : 0);
            }
            if (st == PX_HEP_UNHEALTHY || LOAD(&e->hc_fail_run) > 0) {
                const char *why = LOAD(&e->hc_last_reason);
                px_jsonw_kstr(w, "health_check_failure", why ? why : "unknown");
            }
            px_jsonw_ku64(w, "active_requests", LOAD(&e->rq_active));
            px_jsonw_ku64(w, "connections", LOAD(&e->cx_active));
            px_jsonw_ku64(w, "requests", LOAD(&e->rq_total));
            px_jsonw_ku64(w, "responses_5xx", LOAD(&e->rq_5xx));
            px_jsonw_ku64(w, "local_failures", LOAD(&e->rq_local_fail));
            px_jsonw_ku64(w, "consecutive_5xx", LOAD(&e->cons_5xx));
            px_jsonw_ku64(w, "consecutive_gateway_failures", LOAD(&e->cons_gateway));
            px_jsonw_ku64(w, "ejections", LOAD(&e->ejections_total));
            px_jsonw_ku64(w, "ejection_multiplier", LOAD(&e->ejections));
            px_jsonw_ku64(w, "health_checks", LOAD(&e->hc_checks));
            px_jsonw_ku64(w, "health_check_failures", LOAD(&e->hc_failures));
            px_jsonw_ku64(w, "health_check_consecutive_failures", LOAD(&e->hc_fail_run));
            px_jsonw_ku64(w, "health_check_last_status", LOAD(&e->hc_last_status));
            px_jsonw_obj_end(w);
        }
        px_jsonw_arr_end(w);
        px_jsonw_obj_end(w);
    }
    px_jsonw_arr_end(w);
    px_jsonw_obj_end(w);
    px_config_unref(c);
}

/* One endpoint figure: its Prometheus family and how to read it. */
typedef struct ep_metric_s {
    const char *name;
    const char *type;
    const char *help;
    uint64_t (*get)(const px_hcluster_t *hc, size_t idx, uint64_t now);
} ep_metric_t;

#define EP_GET(fn, expr)                                                                           \
    static uint64_t fn(const px_hcluster_t *hc, size_t idx, uint64_t now)                          \
    {                                                                                              \
        const px_hep_t *e = &hc->eps[idx];                                                         \
        (void)e;                                                                                   \
        (void)now;                                                                                 \
        return (uint64_t)(expr);                                                                   \
    }

EP_GET(get_healthy, px_hep_state(hc, idx, now) == PX_HEP_HEALTHY)
EP_GET(get_unhealthy, px_hep_state(hc, idx, now) == PX_HEP_UNHEALTHY)
EP_GET(get_ejected, px_hep_state(hc, idx, now) == PX_HEP_EJECTED)
EP_GET(get_rq_active, LOAD(&e->rq_active))
EP_GET(get_cx_active, LOAD(&e->cx_active))
EP_GET(get_rq_total, LOAD(&e->rq_total))
EP_GET(get_5xx, LOAD(&e->rq_5xx))
EP_GET(get_local, LOAD(&e->rq_local_fail))
EP_GET(get_cons_5xx, LOAD(&e->cons_5xx))
EP_GET(get_ejections, LOAD(&e->ejections_total))
EP_GET(get_hc, LOAD(&e->hc_checks))
EP_GET(get_hc_fail, LOAD(&e->hc_failures))

static const ep_metric_t g_ep_metrics[] = {
    {"weir_cluster_endpoint_healthy", "gauge", "1 when the endpoint takes traffic.", get_healthy},
    {"weir_cluster_endpoint_unhealthy", "gauge", "1 while the active health check fails it.",
     get_unhealthy},
    {"weir_cluster_endpoint_ejected", "gauge", "1 while outlier detection ejects it.", get_ejected},
    {"weir_cluster_endpoint_active_requests", "gauge", "Exchanges on the endpoint now.",
     get_rq_active},
    {"weir_cluster_endpoint_connections", "gauge", "Connections open to the endpoint now.",
     get_cx_active},
    {"weir_cluster_endpoint_requests_total", "counter",
     "Exchanges sent to the endpoint, retries included.", get_rq_total},
    {"weir_cluster_endpoint_responses_5xx_total", "counter", "5xx responses from the endpoint.",
     get_5xx},
    {"weir_cluster_endpoint_local_failures_total", "counter",
     "Connect failures, timeouts and resets on the endpoint.", get_local},
    {"weir_cluster_endpoint_consecutive_5xx", "gauge",
     "Consecutive 5xx and local failures (outlier detection's count).", get_cons_5xx},
    {"weir_cluster_endpoint_ejections_total", "counter", "Outlier ejections of the endpoint.",
     get_ejections},
    {"weir_cluster_endpoint_health_checks_total", "counter", "Active health checks finished.",
     get_hc},
    {"weir_cluster_endpoint_health_check_failures_total", "counter", "Active health checks failed.",
     get_hc_fail},
};

void px__admin_clusters_prom(px_jsonw_t *w, const px_server_t *s)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(s != NULL);
    const px_config_t *c = px_server_config((px_server_t *)s);
    const px_health_t *h = px_health_of(c);
    if (!h || h->clusters_cnt == 0) {
        px_config_unref(c);
        return;
    }
    uint64_t now = px_health_now_ms();
    for (size_t m = 0; m < MEM_ARRAY_LEN(g_ep_metrics); m++) {
        const ep_metric_t *d = &g_ep_metrics[m];
        px_jsonw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, d->type);
        for (size_t i = 0; i < h->clusters_cnt; i++) {
            const px_hcluster_t *hc = h->clusters[i];
            for (size_t j = 0; j < hc->eps_cnt; j++) {
                char name[300];
                ep_name(&c->clusters[i].endpoints[j], name, sizeof(name));
                /* Cluster names are [A-Za-z0-9_.-] and addresses hold no quote or backslash:
                 * the label values need no escaping. */
                px_jsonw_printf(w, "%s{cluster=\"%s\",endpoint=\"%s\"} %llu\n", d->name,
                                c->clusters[i].name, name, (unsigned long long)d->get(hc, j, now));
            }
        }
    }
    static const char *const cl_names[] = {"weir_cluster_retries_total",
                                           "weir_cluster_retry_budget_exhausted_total",
                                           "weir_cluster_active_requests"};
    static const char *const cl_help[] = {"Requests retried on another endpoint.",
                                          "Retries refused by the retry budget.",
                                          "Exchanges in flight to the cluster."};
    for (size_t m = 0; m < MEM_ARRAY_LEN(cl_names); m++) {
        px_jsonw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", cl_names[m], cl_help[m], cl_names[m],
                        m == 2 ? "gauge" : "counter");
        for (size_t i = 0; i < h->clusters_cnt; i++) {
            const px_hcluster_t *hc = h->clusters[i];
            uint64_t v = m == 0   ? LOAD(&hc->retries_total)
                         : m == 1 ? LOAD(&hc->retries_budget_exhausted)
                                  : LOAD(&hc->rq_active);
            px_jsonw_printf(w, "%s{cluster=\"%s\"} %llu\n", cl_names[m], c->clusters[i].name,
                            (unsigned long long)v);
        }
    }
    px_config_unref(c);
}
