/*
 * proxy/admin/ops.c: the admin endpoints for operations: /ready, /healthz, /stats,
 * /config_dump and /overload, and the table that names every proxy counter (px_stats_t) for
 * JSON and for Prometheus (/metrics).
 *
 * Handlers run on the admin thread only. They read worker counters through px_server_stats
 * (relaxed loads) and the overload state with one atomic load; they change nothing.
 */
#include "mem/base.h"
#include "proxy/admin/endpoints.h"

#include <stdbool.h>
#include <string.h>

#include "mem/budget.h"
#include "proxy/config/config.h"
#include "proxy/core/overload.h"
#include "proxy/core/server.h"

typedef enum stat_kind_e { STAT_COUNTER, STAT_GAUGE } stat_kind_t;

/* One px_stats_t field. Entries that share `prom` form one Prometheus family (distinguished
 * by the label) and must agree on kind and help. */
typedef struct stat_desc_s {
    size_t off;
    const char *json;  /* key in /stats */
    const char *prom;  /* Prometheus metric name */
    const char *label; /* label as `name="value"`, or NULL */
    stat_kind_t kind;
    const char *help;
} stat_desc_t;

#define F(field) offsetof(px_stats_t, field)

static const stat_desc_t g_stats[] = {
    {F(conn_accepted), "conn_accepted", "weir_connections_accepted_total", NULL, STAT_COUNTER,
     "Downstream connections accepted."},
    {F(conn_active), "conn_active", "weir_connections_active", NULL, STAT_GAUGE,
     "Downstream connections open now."},
    {F(conn_tls_accepted), "conn_tls_accepted", "weir_connections_tls_accepted_total", NULL,
     STAT_COUNTER, "Downstream TLS connections accepted."},
    {F(conn_rejected_h1), "conn_rejected_h1", "weir_connections_rejected_http1_total", NULL,
     STAT_COUNTER, "HTTP/1.1 bytes on a TLS connection that chose h2 by ALPN, answered 505."},
    {F(conn_closed_error), "conn_closed_error", "weir_connections_closed_error_total", NULL,
     STAT_COUNTER, "Connections closed on a protocol or TLS error."},
    {F(conn_refused_overload), "conn_refused_overload", "weir_connections_refused_total", NULL,
     STAT_COUNTER, "Connections not accepted: critical pressure or max_connections."},
    {F(streams_opened), "streams_opened", "weir_streams_opened_total", NULL, STAT_COUNTER,
     "Downstream streams opened."},
    {F(streams_active), "streams_active", "weir_streams_active", NULL, STAT_GAUGE,
     "Downstream streams open now."},
    {F(streams_reset_by_peer), "streams_reset_by_peer", "weir_streams_reset_total", "by=\"peer\"",
     STAT_COUNTER, "Streams reset, by who reset them."},
    {F(streams_reset_by_us), "streams_reset_by_us", "weir_streams_reset_total", "by=\"weir\"",
     STAT_COUNTER, "Streams reset, by who reset them."},
    {F(requests_total), "requests_total", "weir_requests_total", NULL, STAT_COUNTER,
     "Downstream requests received."},
    {F(requests_http1), "requests_http1", "weir_requests_protocol_total", "protocol=\"http1\"",
     STAT_COUNTER, "Downstream requests received, by protocol."},
    {F(requests_http2), "requests_http2", "weir_requests_protocol_total", "protocol=\"http2\"",
     STAT_COUNTER, "Downstream requests received, by protocol."},
    {F(responses_1xx), "responses_1xx", "weir_responses_total", "code=\"1xx\"", STAT_COUNTER,
     "Downstream responses by status class."},
    {F(responses_2xx), "responses_2xx", "weir_responses_total", "code=\"2xx\"", STAT_COUNTER,
     "Downstream responses by status class."},
    {F(responses_3xx), "responses_3xx", "weir_responses_total", "code=\"3xx\"", STAT_COUNTER,
     "Downstream responses by status class."},
    {F(responses_4xx), "responses_4xx", "weir_responses_total", "code=\"4xx\"", STAT_COUNTER,
     "Downstream responses by status class."},
    {F(responses_5xx), "responses_5xx", "weir_responses_total", "code=\"5xx\"", STAT_COUNTER,
     "Downstream responses by status class."},
    {F(bytes_in), "bytes_in", "weir_downstream_received_bytes_total", NULL, STAT_COUNTER,
     "Bytes read from downstream connections (frames and TLS records)."},
    {F(bytes_out), "bytes_out", "weir_downstream_sent_bytes_total", NULL, STAT_COUNTER,
     "Bytes written to downstream connections (frames and TLS records)."},
    {F(goaway_sent), "goaway_sent", "weir_goaway_sent_total", NULL, STAT_COUNTER,
     "GOAWAY frames sent downstream."},
    {F(upstream_conn_opened), "upstream_conn_opened", "weir_upstream_connections_opened_total",
     NULL, STAT_COUNTER, "Upstream connections opened."},
    {F(upstream_conn_active), "upstream_conn_active", "weir_upstream_connections_active", NULL,
     STAT_GAUGE, "Upstream connections open now."},
    {F(upstream_connect_failed), "upstream_connect_failed", "weir_upstream_errors_total",
     "kind=\"connect_failed\"", STAT_COUNTER, "Upstream errors by kind."},
    {F(upstream_connect_timeout), "upstream_connect_timeout", "weir_upstream_errors_total",
     "kind=\"connect_timeout\"", STAT_COUNTER, "Upstream errors by kind."},
    {F(upstream_request_timeout), "upstream_request_timeout", "weir_upstream_errors_total",
     "kind=\"request_timeout\"", STAT_COUNTER, "Upstream errors by kind."},
    {F(upstream_reset), "upstream_reset", "weir_upstream_errors_total", "kind=\"reset\"",
     STAT_COUNTER, "Upstream errors by kind."},
    {F(upstream_retries), "upstream_retries", "weir_upstream_retries_total", NULL, STAT_COUNTER,
     "Upstream requests retried on another endpoint (connect failure, refused, reset)."},
    {F(upstream_retry_budget_exhausted), "upstream_retry_budget_exhausted",
     "weir_upstream_retry_budget_exhausted_total", NULL, STAT_COUNTER,
     "Upstream retries refused by the cluster's retry budget."},
    {F(upstream_health_probes), "upstream_health_probes", "weir_upstream_health_probes_total", NULL,
     STAT_COUNTER, "Active health checks finished."},
    {F(upstream_requests), "upstream_requests", "weir_upstream_requests_total", NULL, STAT_COUNTER,
     "Requests sent upstream."},
    {F(upstream_tls_handshakes), "upstream_tls_handshakes", "weir_upstream_tls_handshakes_total",
     NULL, STAT_COUNTER, "Completed TLS handshakes toward upstreams."},
    {F(upstream_tls_resumed), "upstream_tls_resumed", "weir_upstream_tls_resumed_total", NULL,
     STAT_COUNTER, "Upstream TLS handshakes that resumed a session."},
    {F(upstream_tls_verify_failed), "upstream_tls_verify_failed", "weir_upstream_errors_total",
     "kind=\"tls_verify\"", STAT_COUNTER, "Upstream errors by kind."},
    {F(upstream_tls_failed), "upstream_tls_failed", "weir_upstream_errors_total",
     "kind=\"tls_handshake\"", STAT_COUNTER, "Upstream errors by kind."},
    {F(overload_streams_refused), "overload_streams_refused", "weir_overload_actions_total",
     "action=\"refuse_stream\"", STAT_COUNTER, "Overload manager actions taken."},
    {F(overload_conns_refused), "overload_conns_refused", "weir_overload_actions_total",
     "action=\"refuse_connection\"", STAT_COUNTER, "Overload manager actions taken."},
    {F(overload_goaway_idle), "overload_goaway_idle", "weir_overload_actions_total",
     "action=\"goaway_idle\"", STAT_COUNTER, "Overload manager actions taken."},
    {F(overload_streams_shed), "overload_streams_shed", "weir_overload_actions_total",
     "action=\"shed_stream\"", STAT_COUNTER, "Overload manager actions taken."},
    {F(overload_conns_shed), "overload_conns_shed", "weir_overload_actions_total",
     "action=\"shed_connection\"", STAT_COUNTER, "Overload manager actions taken."},
    {F(stream_cap_resets), "stream_cap_resets", "weir_cap_resets_total", "scope=\"stream\"",
     STAT_COUNTER, "Streams or connections reset for passing their byte cap."},
    {F(conn_cap_resets), "conn_cap_resets", "weir_cap_resets_total", "scope=\"connection\"",
     STAT_COUNTER, "Streams or connections reset for passing their byte cap."},
    {F(flood_goaway), "flood_goaway", "weir_flood_goaway_total", NULL, STAT_COUNTER,
     "Connections ended for rapid reset or control-frame floods."},
    {F(timeouts_idle), "timeouts_idle", "weir_timeouts_total", "kind=\"idle\"", STAT_COUNTER,
     "Connections timed out, by kind."},
    {F(timeouts_header), "timeouts_header", "weir_timeouts_total", "kind=\"header\"", STAT_COUNTER,
     "Connections timed out, by kind."},
    {F(timeouts_send), "timeouts_send", "weir_timeouts_total", "kind=\"send\"", STAT_COUNTER,
     "Connections timed out, by kind."},
    {F(memwait_woken_free), "memwait_woken_free", "weir_memory_wait_wakeups_total", "by=\"free\"",
     STAT_COUNTER, "Wake-ups of a worker's list of connections waiting for memory, by cause."},
    {F(memwait_woken_timer), "memwait_woken_timer", "weir_memory_wait_wakeups_total",
     "by=\"timer\"", STAT_COUNTER,
     "Wake-ups of a worker's list of connections waiting for memory, by cause."},
    {F(bytes_out_borrowed), "bytes_out_borrowed", "weir_bytes_out_borrowed_total", NULL,
     STAT_COUNTER, "DATA payload bytes written to clients from their own buffers, uncopied."},
};

#undef F

size_t px__admin_stats_desc_cnt(void)
{
    return MEM_ARRAY_LEN(g_stats);
}

static uint64_t stat_get(const px_stats_t *st, const stat_desc_t *d)
{
    MEM_ASSERT(d->off + sizeof(uint64_t) <= sizeof(*st));
    MEM_ASSERT(d->off % sizeof(uint64_t) == 0);
    return ((const uint64_t *)st)[d->off / sizeof(uint64_t)];
}

void px__admin_stats_json(px_jsonw_t *w, const px_stats_t *st)
{
    for (size_t i = 0; i < MEM_ARRAY_LEN(g_stats); i++)
        px_jsonw_ku64(w, g_stats[i].json, stat_get(st, &g_stats[i]));
}

void px__admin_stats_prom(px_jsonw_t *w, const px_stats_t *st)
{
    /* A family's samples must be contiguous and its HELP/TYPE written once: write each family
     * at its first entry and skip later entries of a family already written. */
    for (size_t i = 0; i < MEM_ARRAY_LEN(g_stats); i++) {
        const stat_desc_t *d = &g_stats[i];
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(g_stats[j].prom, d->prom) == 0;
        if (seen)
            continue;
        px_jsonw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", d->prom, d->help, d->prom,
                        d->kind == STAT_COUNTER ? "counter" : "gauge");
        for (size_t j = i; j < MEM_ARRAY_LEN(g_stats); j++) {
            const stat_desc_t *e = &g_stats[j];
            if (strcmp(e->prom, d->prom) != 0)
                continue;
            MEM_ASSERT(e->kind == d->kind);
            if (e->label)
                px_jsonw_printf(w, "%s{%s} %llu\n", e->prom, e->label,
                                (unsigned long long)stat_get(st, e));
            else
                px_jsonw_printf(w, "%s %llu\n", e->prom, (unsigned long long)stat_get(st, e));
        }
    }
}

void px__admin_ready(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->server != NULL);
    MEM_ASSERT(resp != NULL);
    const px_server_t *s = req->server;
    bool ready = __atomic_load_n(&s->ready, __ATOMIC_ACQUIRE) != 0;
    bool draining = __atomic_load_n(&s->draining, __ATOMIC_ACQUIRE) != 0;
    resp->content_type = "text/plain; charset=utf-8";
    if (draining) {
        resp->status = 503;
        px_jsonw_puts(&resp->body, "draining\n");
    } else if (!ready) {
        resp->status = 503;
        px_jsonw_puts(&resp->body, "starting\n");
    } else {
        px_jsonw_puts(&resp->body, "ready\n");
    }
}

void px__admin_healthz(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req != NULL);
    MEM_ASSERT(resp != NULL);
    resp->content_type = "text/plain; charset=utf-8";
    px_jsonw_puts(&resp->body, "ok\n");
}

void px__admin_stats(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->server != NULL);
    px_stats_t st;
    memset(&st, 0, sizeof(st));
    px_server_stats(req->server, &st);
    px_jsonw_t *w = &resp->body;
    px_jsonw_obj_begin(w);
    px__admin_stats_json(w, &st);
    const px_config_t *cfg = px_server_config(req->server);
    px_jsonw_ku64(w, "config_version", cfg->version);
    px_config_unref(cfg);
    px_jsonw_ku64(w, "reloads_ok", __atomic_load_n(&req->server->reloads_ok, __ATOMIC_RELAXED));
    px_jsonw_ku64(w, "reloads_failed",
                  __atomic_load_n(&req->server->reloads_failed, __ATOMIC_RELAXED));
    px_jsonw_ku64(w, "configs_live", px_config_live());
    px_jsonw_key(w, "workers");
    px_jsonw_arr_begin(w);
    for (unsigned i = 0; req->server->workers != NULL && i < req->server->workers_cnt; i++) {
        px_stats_t one;
        memset(&one, 0, sizeof(one));
        px_stats_sum(&one, &req->server->workers[i].stats);
        px_jsonw_obj_begin(w);
        px_jsonw_ku64(w, "worker", i);
        px__admin_stats_json(w, &one);
        px_jsonw_obj_end(w);
    }
    px_jsonw_arr_end(w);
    px_jsonw_obj_end(w);
    px_jsonw_puts(w, "\n");
}

static int dump_write(void *ud, const char *buf, size_t len)
{
    px_jsonw_t *w = ud;
    px_jsonw_raw(w, buf, len);
    return w->err; /* sticky: stops the dump at the first failure */
}

void px__admin_config_dump(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->server != NULL);
    /* A reference: a reload on the main thread may replace the config meanwhile (so s->cfg is
     * read only under the server's lock, in px_server_config). */
    const px_config_t *cfg = px_server_config(req->server);
    MEM_ASSERT(cfg != NULL);
    resp->content_type = "application/yaml; charset=utf-8";
    snprintf(resp->extra_headers, sizeof(resp->extra_headers),
             "X-Weir-Config-Version: %llu\r\nX-Weir-Config-Hash: %016llx\r\n",
             (unsigned long long)cfg->version, (unsigned long long)cfg->hash);
    px_jsonw_printf(&resp->body, "# version: %llu\n# hash: %016llx\n",
                    (unsigned long long)cfg->version, (unsigned long long)cfg->hash);
    int rc = px_config_dump(cfg, dump_write, &resp->body);
    px_config_unref(cfg);
    if (rc != 0 && px_jsonw_error(&resp->body) == 0)
        px__admin_error(resp, 500, "500 config dump failed");
}

void px__admin_reload(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->server != NULL);
    MEM_ASSERT(req->method == PX_ADMIN_POST);
    char err[PX_CONFIG_ERR_MAX];
    int rc = px_server_reload_request(req->server, err, sizeof(err));
    if (rc != 0) {
        char msg[PX_CONFIG_ERR_MAX + 64];
        int status = rc == -EINVAL ? 400 : rc == -ENOMEM ? 500 : 503;
        snprintf(msg, sizeof(msg), "%d reload failed, configuration unchanged: %s", status, err);
        px__admin_error(resp, status, msg);
        return;
    }
    const px_config_t *cfg = px_server_config(req->server);
    resp->content_type = "text/plain; charset=utf-8";
    px_jsonw_printf(&resp->body, "reloaded: version %llu hash %016llx\n",
                    (unsigned long long)cfg->version, (unsigned long long)cfg->hash);
    px_config_unref(cfg);
}

void px__admin_reload_prom(px_jsonw_t *w, px_server_t *s)
{
    const px_config_t *cfg = px_server_config(s);
    px_jsonw_printf(w,
                    "# HELP weir_config_reloads_total Configuration reloads (SIGHUP, POST /reload, "
                    "file watch) by result.\n# TYPE weir_config_reloads_total counter\n"
                    "weir_config_reloads_total{result=\"ok\"} %llu\n"
                    "weir_config_reloads_total{result=\"failed\"} %llu\n",
                    (unsigned long long)__atomic_load_n(&s->reloads_ok, __ATOMIC_RELAXED),
                    (unsigned long long)__atomic_load_n(&s->reloads_failed, __ATOMIC_RELAXED));
    px_jsonw_printf(w,
                    "# HELP weir_config_version The active configuration's version (1 at start, "
                    "+1 per applied reload).\n# TYPE weir_config_version gauge\n"
                    "weir_config_version %llu\n"
                    "# HELP weir_configs_live Configurations alive: the active one, and older "
                    "ones that streams or upstream pools still use.\n"
                    "# TYPE weir_configs_live gauge\nweir_configs_live %llu\n",
                    (unsigned long long)cfg->version, (unsigned long long)px_config_live());
    px_config_unref(cfg);
}

void px__admin_overload(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    const px_server_t *s = req->server;
    MEM_ASSERT(s != NULL); /* s->cfg is the main thread's to swap: not read here */
    px_stats_t st;
    memset(&st, 0, sizeof(st));
    px_server_stats(s, &st);
    /* The monitor's last sample (pressure after release-first, both sources), not a fresh
     * reading of the budget, so /overload says what the level was decided on. */
    px_overload_info_t oi;
    px_overload_snapshot(s, &oi);
    int level = (int)px_server_overload(s);
    px_jsonw_t *w = &resp->body;
    px_jsonw_obj_begin(w);
    px_jsonw_kstr(w, "level", px_overload_level_name((px_overload_level_t)level));
    px_jsonw_ki64(w, "level_value", level);
    px_jsonw_kdbl(w, "pressure", oi.pressure);
    px_jsonw_kdbl(w, "budget_pressure", oi.budget_pressure);
    px_jsonw_kdbl(w, "cgroup_pressure", oi.cgroup_pressure);
    px_jsonw_ku64(w, "limit_bytes", oi.limit_bytes);
    px_jsonw_ku64(w, "committed_bytes", oi.committed_bytes);
    px_jsonw_ki64(w, "cgroup_version", oi.cgroup_version);
    px_jsonw_ku64(w, "cgroup_limit_bytes", oi.cgroup_limit_bytes);
    px_jsonw_ku64(w, "cgroup_usage_bytes", oi.cgroup_usage_bytes);
    px_jsonw_kbool(w, "draining", __atomic_load_n(&s->draining, __ATOMIC_ACQUIRE) != 0);
    px_jsonw_ku64(w, "level_since_ms", oi.level_since_ms);
    px_jsonw_ku64(w, "last_transition_ms", oi.last_transition_ms);
    px_jsonw_ku64(w, "transitions", oi.transitions);
    px_jsonw_ku64(w, "entered_elevated", oi.entered_elevated);
    px_jsonw_ku64(w, "entered_critical", oi.entered_critical);
    px_jsonw_ku64(w, "releases", oi.releases);
    px_jsonw_ku64(w, "released_bytes", oi.released_bytes);
    px_jsonw_ku64(w, "samples", oi.samples);
    px_jsonw_key(w, "thresholds");
    px_jsonw_obj_begin(w);
    px_jsonw_kdbl(w, "elevated", oi.thresholds.elevated);
    px_jsonw_kdbl(w, "critical", oi.thresholds.critical);
    px_jsonw_kdbl(w, "hysteresis", oi.thresholds.hysteresis);
    px_jsonw_obj_end(w);
    px_jsonw_key(w, "actions");
    px_jsonw_obj_begin(w);
    px_jsonw_ku64(w, "refuse_stream", st.overload_streams_refused);
    px_jsonw_ku64(w, "refuse_connection", st.overload_conns_refused);
    px_jsonw_ku64(w, "goaway_idle", st.overload_goaway_idle);
    px_jsonw_ku64(w, "shed_stream", st.overload_streams_shed);
    px_jsonw_ku64(w, "shed_connection", st.overload_conns_shed);
    px_jsonw_ku64(w, "stream_cap_reset", st.stream_cap_resets);
    px_jsonw_ku64(w, "connection_cap_reset", st.conn_cap_resets);
    px_jsonw_obj_end(w);
    px_jsonw_obj_end(w);
    px_jsonw_puts(w, "\n");
}
