/*
 * proxy/admin/tenants.c: the memory tenants' figures (issue 18 part 2) for /memory (JSON and
 * Prometheus) and /metrics: per tenant (a route or cluster with memory: {limit}), what its
 * streams hold as counted, its limit, its live streams, and the streams admitted, refused past
 * the limit and shed to bring it under (proxy/upstream/tenant.h, proxy/core/shed.c).
 *
 * Runs on the admin thread: it sums the workers' rows of the server's table with relaxed
 * loads, so a figure may be one accounting point behind the workers.
 */
#include "mem/base.h"
#include "proxy/admin/endpoints.h"

#include <stddef.h>

#include "proxy/upstream/tenant.h"

/* Tenant `t`'s figures summed over the workers. */
static void tenant_get(const px_server_t *s, const px_config_t *cfg, unsigned t,
                       px_tenant_stats_t *out)
{
    MEM_ASSERT(s->tenant_table != NULL);
    MEM_ASSERT(t > 0 && t <= cfg->tenants_cnt);
    unsigned rows = __atomic_load_n(&s->workers_cnt, __ATOMIC_ACQUIRE);
    px_tenant_sum(s->tenant_table, rows, cfg->tenants_cnt, t, out);
}

void px__admin_tenants_json(px_jsonw_t *w, const px_server_t *s)
{
    MEM_ASSERT(w != NULL && s != NULL);
    /* A reference: a reload on the main thread may replace s->cfg meanwhile (the tenants
     * themselves cannot change without a restart: proxy/core/reload.c). */
    const px_config_t *cfg = px_server_config((px_server_t *)s);
    px_jsonw_key(w, "tenants");
    px_jsonw_arr_begin(w);
    for (unsigned t = 1; s->tenant_table != NULL && t <= cfg->tenants_cnt; t++) {
        px_tenant_stats_t x;
        tenant_get(s, cfg, t, &x);
        px_jsonw_obj_begin(w);
        px_jsonw_kstr(w, "name", cfg->tenants[t - 1].name);
        px_jsonw_ku64(w, "limit", cfg->tenants[t - 1].limit_bytes);
        px_jsonw_ku64(w, "bytes", x.bytes);
        px_jsonw_ku64(w, "streams", x.streams);
        px_jsonw_ku64(w, "admitted", x.admitted);
        px_jsonw_ku64(w, "refused", x.refused);
        px_jsonw_ku64(w, "shed", x.shed);
        px_jsonw_ku64(w, "shed_bytes", x.shed_bytes);
        px_jsonw_obj_end(w);
    }
    px_jsonw_arr_end(w);
    px_config_unref(cfg);
}

/* One family: a sample per tenant, labelled tenant="<name>" (cluster names and "routes[N]"
 * need no escaping: the config allows [A-Za-z0-9_.-] and brackets only). */
static void prom_family(px_jsonw_t *w, const px_server_t *s, const px_config_t *cfg,
                        const char *name, const char *type, const char *help, size_t field)
{
    MEM_ASSERT(field == SIZE_MAX || field < sizeof(px_tenant_stats_t) / sizeof(uint64_t));
    px_jsonw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (unsigned t = 1; t <= cfg->tenants_cnt; t++) {
        px_tenant_stats_t x;
        tenant_get(s, cfg, t, &x);
        uint64_t v = field == SIZE_MAX ? cfg->tenants[t - 1].limit_bytes
                                       : ((const uint64_t *)(const void *)&x)[field];
        px_jsonw_printf(w, "%s{tenant=\"%s\"} %llu\n", name, cfg->tenants[t - 1].name,
                        (unsigned long long)v);
    }
}

#define FIELD(f) (offsetof(px_tenant_stats_t, f) / sizeof(uint64_t))

void px__admin_tenants_prom(px_jsonw_t *w, const px_server_t *s)
{
    MEM_ASSERT(w != NULL && s != NULL);
    const px_config_t *cfg = px_server_config((px_server_t *)s);
    if (s->tenant_table == NULL || cfg->tenants_cnt == 0) {
        px_config_unref(cfg);
        return;
    }
    prom_family(w, s, cfg, "weir_tenant_memory_bytes", "gauge",
                "Bytes the tenant's streams hold (sub-arenas, buffered bodies, connection share).",
                FIELD(bytes));
    prom_family(w, s, cfg, "weir_tenant_memory_limit_bytes", "gauge",
                "The tenant's memory: limit (a route or cluster).", SIZE_MAX);
    prom_family(w, s, cfg, "weir_tenant_streams", "gauge", "The tenant's live streams.",
                FIELD(streams));
    prom_family(w, s, cfg, "weir_tenant_streams_admitted_total", "counter",
                "Streams admitted for the tenant.", FIELD(admitted));
    prom_family(w, s, cfg, "weir_tenant_streams_refused_total", "counter",
                "New streams refused past the tenant's limit (REFUSED_STREAM or 503).",
                FIELD(refused));
    prom_family(
        w, s, cfg, "weir_tenant_streams_shed_total", "counter",
        "Streams reset (or stalled connections closed) to bring the tenant under its limit.",
        FIELD(shed));
    prom_family(w, s, cfg, "weir_tenant_shed_bytes_total", "counter",
                "Bytes the shed streams held when shed.", FIELD(shed_bytes));
    px_config_unref(cfg);
}
