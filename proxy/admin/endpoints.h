/*
 * proxy/admin/endpoints.h: the interface between the admin server (proxy/admin/admin.c: sockets,
 * parsing, auth, routing) and the files that answer its endpoints (proxy/admin/memory.c,
 * proxy/admin/ops.c, proxy/admin/dashboard.c). Internal to the admin files.
 *
 * A handler runs on the admin thread, reads the request and fills the response; it never
 * touches sockets. Its body is a px_jsonw_t that the server sends and frees.
 */
#ifndef PX_ADMIN_ENDPOINTS_H
#define PX_ADMIN_ENDPOINTS_H

#include "mem/base.h"
#include "proxy/admin/jsonw.h"
#include "proxy/core/server.h"

/* Largest response body (a heap dump with its maps section can be a few MiB). */
#define PX_ADMIN_BODY_OUT_MAX (64u << 20)

typedef enum px_admin_method_e {
    PX_ADMIN_GET = 1u << 0,
    PX_ADMIN_POST = 1u << 1,
} px_admin_method_t;

typedef struct px_admin_req_s {
    px_server_t *server; /* borrows: outlives the admin thread */
    px_admin_method_t method;
    const char *path;  /* borrows (connection): NUL-terminated, no query */
    const char *query; /* borrows (connection): NUL-terminated, "" when none */
} px_admin_req_t;

typedef struct px_admin_resp_s {
    int status;               /* default 200 */
    const char *content_type; /* static string; default "application/json" */
    char extra_headers[256];  /* complete "Name: value\r\n" lines, or "" */
    px_jsonw_t body;          /* owns */
} px_admin_resp_t;

typedef void (*px_admin_handler_fn)(const px_admin_req_t *req, px_admin_resp_t *resp);

/* Finds `name` in a query string ("a=1&b=2"), copies its percent-decoded value into `out`
 * (NUL-terminated) and returns its length; -ENOENT when absent, -E2BIG when it does not fit.
 * Alloc: none. */
int px__admin_query_get(const char *query, const char *name, char *out, size_t out_len);

/* Parses an unsigned decimal query parameter. Returns 0 (and sets *out), -ENOENT when
 * absent, -EINVAL when it is not a number in [0, max]. */
int px__admin_query_u64(const char *query, const char *name, uint64_t max, uint64_t *out);

/* Sets a plain-text error response with `status` and `msg` (a trailing newline is added). */
void px__admin_error(px_admin_resp_t *resp, int status, const char *msg);

/* Memory (proxy/admin/memory.c). */
void px__admin_memory(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_metrics(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_regions(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_heap_dump(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_heap_peak_reset(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_heap_symbols(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_release(const px_admin_req_t *req, px_admin_resp_t *resp);

/* Operations (proxy/admin/ops.c). */
void px__admin_ready(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_healthz(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_stats(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_config_dump(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_overload(const px_admin_req_t *req, px_admin_resp_t *resp);
/* POST /reload: px_server_reload_request; 200 with the new version, 400 with the file's error
 * (FILE:LINE:COL: FIELD: ...), 503 while draining or busy. */
void px__admin_reload(const px_admin_req_t *req, px_admin_resp_t *resp);
/* Writes the reload counters and the config version as Prometheus families. */
void px__admin_reload_prom(px_jsonw_t *w, px_server_t *s);
/* Writes every px_stats_t counter as JSON members of the object being written. */
void px__admin_stats_json(px_jsonw_t *w, const px_stats_t *st);
/* Writes every px_stats_t counter as Prometheus families (HELP, TYPE, samples). */
void px__admin_stats_prom(px_jsonw_t *w, const px_stats_t *st);
/* Entries in the counter table (tests check it names every px_stats_t field). */
size_t px__admin_stats_desc_cnt(void);

/* Clusters (proxy/admin/clusters.c): GET /clusters, and the weir_cluster_* families of
 * /metrics written into `w`. */
void px__admin_clusters(const px_admin_req_t *req, px_admin_resp_t *resp);
void px__admin_clusters_prom(px_jsonw_t *w, const px_server_t *s);
/* Memory tenants (proxy/admin/tenants.c): the "tenants" member of /memory's JSON object, and
 * the weir_tenant_* families (nothing when no tenant is configured). */
void px__admin_tenants_json(px_jsonw_t *w, const px_server_t *s);
void px__admin_tenants_prom(px_jsonw_t *w, const px_server_t *s);

/* Dashboard (proxy/admin/dashboard.c). */
void px__admin_dashboard(const px_admin_req_t *req, px_admin_resp_t *resp);

#endif /* PX_ADMIN_ENDPOINTS_H */
