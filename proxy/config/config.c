/*
 * proxy/config/config.c: the configuration object: its built-in defaults, its lists, freeing it,
 * and dumping it as YAML (for --check-config and /config_dump).
 *
 * A px_config_t is built once by the main thread (config_yaml.c loads a file, cli.c applies
 * the environment and flags), then read-only and shared by every thread until
 * px_config_free(). Every string and array in it is its own mem_malloc allocation owned by
 * the config.
 *
 * The YAML schema (every key optional unless marked required; unknown keys are errors):
 *
 *   listeners:                  # default: one h2c listener on 127.0.0.1:8080
 *     - name: main              # optional, default "listener<N>"; [A-Za-z0-9_.-], unique
 *       address: 127.0.0.1:8080 # required; HOST:PORT or [V6]:PORT, port 0 = kernel's choice
 *       tls:                    # optional; makes the listener TLS with ALPN h2
 *         cert: /path/cert.pem  # required with tls, a readable PEM file; a relative path
 *         key: /path/key.pem    # is relative to the config file's folder
 *   clusters:
 *     - name: backend           # required, unique
 *       protocol: h2c           # h2c (default) | http1 | h2 (HTTP/2 over TLS: implies tls)
 *       lb: round_robin         # round_robin (default) | least_request
 *       endpoints: [127.0.0.1:9000, "backend.internal:9000"]  # required, 1-256, resolved now
 *       connect_timeout: 2s     # 1ms-5m, default 2s
 *       request_timeout: 30s    # 0 = none, at most 24h, default 30s
 *       idle_timeout: 60s       # pooled idle connection, at most 24h, default 60s
 *       max_streams_per_connection: 100     # 1-100000, default 100
 *       max_connections_per_endpoint: 64    # per worker, 1-100000, default 64
 *       retries:                # requests the upstream never processed, on another endpoint
 *         max: 2                # 0-16 per request, default 2 (connect_retries: N is the same)
 *         budget_percent: 20    # retries in flight, % of active requests; 0-100, default 20
 *         min_retry_concurrency: 3  # retries in flight always allowed; 0-10000, default 3
 *       health_check:           # optional: active probes from one worker
 *         path: /healthz        # required, starts with '/'
 *         interval: 5s          # 10ms-1h, default 5s
 *         timeout: 1s           # 1ms-5m, default 1s
 *         healthy_threshold: 2  # 1-1000, default 2
 *         unhealthy_threshold: 3  # 1-1000, default 3
 *         expected_status: 200  # 200-599 (a final status), default 200
 *       outlier_detection:      # optional: passive ejection (Envoy's semantics)
 *         consecutive_5xx: 5    # 0 = off, 0-1000, default 5
 *         consecutive_gateway_failure: 0  # 502/503/504 and local failures; default 0 = off
 *         base_ejection_time: 30s  # 1ms-1h; ejection = base x ejections, default 30s
 *         max_ejection_time: 300s  # 1ms-24h, default 300s
 *         max_ejection_percent: 10 # 0-100, default 10 (at least one endpoint unless 0)
 *         interval: 10s         # 10ms-1h, default 10s
 *       tls:                    # optional: TLS toward the endpoints (ALPN h2 or http/1.1
 *                               # after protocol; h2c with tls is an error, say h2)
 *         sni: api.internal     # default: the endpoint's host name (no SNI for an IP)
 *         verify: true          # default true: chain, and the host name (sni or endpoint)
 *         ca: /path/ca.pem      # default: the system bundle (ca-certificates)
 *         cert: /path/c.pem     # optional client certificate (mutual TLS), needs key
 *         key: /path/c.key      # relative paths are relative to the config file
 *       memory: {limit: 64MiB}  # optional tenant budget (64KiB-1TiB): what the streams this
 *                               # cluster serves hold, counted on top of the global budget;
 *                               # past it its new streams are refused and its heaviest shed
 *   routes:                     # first match wins; default: one direct_response route
 *     - match:                  # optional, default matches everything
 *         authority: api.example.com   # exact host or "*.example.com"; default any
 *         path_prefix: /v1/     # must start with '/', default "/"
 *       cluster: backend        # exactly one of cluster and direct_response
 *       direct_response: {status: 200, body: "hello\n", content_type: text/plain}
 *                               # status 200-599 (required), body up to 64KiB,
 *                               # content_type default text/plain
 *       memory: {limit: 16MiB}  # optional tenant budget of this route's streams (as for a
 *                               # cluster; a route's own limit wins over its cluster's)
 *   admin:
 *     address: 127.0.0.1:9901   # default 127.0.0.1:9901
 *     token: secret             # optional bearer token, redacted in dumps
 *     enabled: true             # default true
 *     allow_public: false       # a non-loopback address needs a token, or this set to true
 *   workers: auto               # auto (default: CPUs in the affinity mask) or 1-1024
 *   memory:
 *     limit: 512MiB             # a size (at least 16MiB), "N%" of the cgroup limit, or 0/off;
 *                               # default 90%
 *     elevated: 0.80            # pressure levels, 0 < elevated < critical <= 1
 *     critical: 0.95
 *     hysteresis: 0.05          # 0 <= hysteresis < elevated
 *     decay: 1s                 # idle pages go back to the OS after this, at most 1h
 *     sample_bytes: 512KiB      # heap sampling mean interval, 0 = off, at most 1GiB
 *   limits:
 *     max_concurrent_streams: 100       # 1-100000
 *     max_header_list_size: 64KiB       # 1KiB-16MiB
 *     stream_buffer: 64KiB              # 1KiB-16MiB (h2 windows are < 2GiB)
 *     connection_memory: 4MiB           # 16KiB-1GiB
 *     stream_memory: 1MiB               # 4KiB-connection_memory
 *     idle_timeout: 120s                # 0 = none, at most 24h
 *     header_timeout: 10s               # 1ms-1h
 *     stream_idle_timeout: 60s          # 0 = none, at most 24h
 *     send_timeout: 30s                 # output blocked this long closes; 0 = none, <= 24h
 *     max_connections: 10000            # per worker, 1-10000000
 *     max_continuations: 8              # 0-1000
 *     rst_per_second: 100               # 1-1000000
 *     control_frames_per_second: 100    # 1-1000000
 *   access_log: "-"             # a path, "-" for stdout; omitted = off
 *   drain_timeout: 30s          # at most 1h
 *   headers: {x_forwarded_for: append, via: true}   # x_forwarded_for: append|replace|off
 *   escaped_slashes: reject     # reject (400) | keep: %2F and %5C in a path
 *   server_name: weir           # 1-64 of [A-Za-z0-9_.-/]
 *   reload:                     # SIGHUP, POST /reload and the file watch (proxy/core/reload.c)
 *     watch: true               # reload when the config file changes (inotify on its folder,
 *                               # so a Kubernetes ConfigMap's ..data swap is seen); default true;
 *                               # false; or poll: stat polls only (NFS, FUSE: no inotify events)
 *     poll_interval: 2s         # the stat poll's interval (poll, or no inotify), 100ms-1h
 *
 * Sizes are bytes or a binary unit: 512k = 512KiB = 512KB = 524288. Durations need a unit:
 * 250ms, 2s, 1m, 1h (a bare 0 is allowed). Booleans: true/false/yes/no/on/off.
 */
#include "mem/base.h"
#include "proxy/config/config.h"
#include "proxy/config/internal.h"

#include <stdarg.h>
#include <string.h>

#include <openssl/ssl.h>

#include "mem/malloc.h"

int px__cfg_set_str(char **slot, const char *s)
{
    char *copy = NULL;

    MEM_ASSERT(slot != NULL);
    if (s) {
        copy = mem_strdup(s);
        if (!copy)
            return -ENOMEM;
    }
    mem_free(*slot);
    *slot = copy;
    return 0;
}

void px__listener_fini(px_listener_cfg_t *l)
{
    MEM_ASSERT(l != NULL);
    mem_free(l->name);
    mem_free(l->tls_cert);
    mem_free(l->tls_key);
    SSL_CTX_free(l->tls_ctx);
    memset(l, 0, sizeof(*l));
}

void px__cluster_fini(px_cluster_cfg_t *c)
{
    MEM_ASSERT(c != NULL);
    mem_free(c->name);
    mem_free(c->endpoints);
    mem_free(c->tls_sni);
    mem_free(c->tls_ca);
    mem_free(c->tls_cert);
    mem_free(c->tls_key);
    mem_free(c->health_check.path);
    SSL_CTX_free(c->tls_ctx);
    memset(c, 0, sizeof(*c));
}

void px__route_fini(px_route_cfg_t *r)
{
    MEM_ASSERT(r != NULL);
    mem_free(r->authority);
    mem_free(r->path_prefix);
    mem_free(r->direct_body);
    mem_free(r->direct_content_type);
    memset(r, 0, sizeof(*r));
}

int px__config_add_tenant(px_config_t *cfg, const char *name, size_t limit_bytes, unsigned *id)
{
    MEM_ASSERT(cfg != NULL && name != NULL);
    MEM_ASSERT(limit_bytes >= PX_TENANT_LIMIT_MIN && limit_bytes <= PX_TENANT_LIMIT_MAX);
    char *copy = mem_strdup(name);
    px_tenant_cfg_t *t =
        copy ? mem_realloc(cfg->tenants, (cfg->tenants_cnt + 1) * sizeof(*t)) : NULL;
    if (t == NULL) {
        mem_free(copy);
        return -ENOMEM;
    }
    cfg->tenants = t;
    t[cfg->tenants_cnt] = (px_tenant_cfg_t){.name = copy, .limit_bytes = limit_bytes};
    *id = (unsigned)++cfg->tenants_cnt;
    return 0;
}

void px__config_clear_listeners(px_config_t *cfg)
{
    MEM_ASSERT(cfg != NULL);
    for (size_t i = 0; i < cfg->listeners_cnt; i++)
        px__listener_fini(&cfg->listeners[i]);
    mem_free(cfg->listeners);
    cfg->listeners = NULL;
    cfg->listeners_cnt = 0;
}

void px__config_clear_routes(px_config_t *cfg)
{
    MEM_ASSERT(cfg != NULL);
    for (size_t i = 0; i < cfg->routes_cnt; i++)
        px__route_fini(&cfg->routes[i]);
    mem_free(cfg->routes);
    cfg->routes = NULL;
    cfg->routes_cnt = 0;
}

void px__config_clear_clusters(px_config_t *cfg)
{
    MEM_ASSERT(cfg != NULL);
    /* Routes borrow cluster pointers: no route may still point into the array we free. */
    for (size_t i = 0; i < cfg->routes_cnt; i++)
        MEM_ASSERT(cfg->routes[i].cluster == NULL);
    for (size_t i = 0; i < cfg->clusters_cnt; i++)
        px__cluster_fini(&cfg->clusters[i]);
    mem_free(cfg->clusters);
    cfg->clusters = NULL;
    cfg->clusters_cnt = 0;
}

void px__config_clear_tenants(px_config_t *cfg)
{
    MEM_ASSERT(cfg != NULL);
    /* Routes and clusters name tenants by index: none may still name one. */
    MEM_ASSERT(cfg->routes_cnt == 0 && cfg->clusters_cnt == 0);
    for (size_t i = 0; i < cfg->tenants_cnt; i++)
        mem_free(cfg->tenants[i].name);
    mem_free(cfg->tenants);
    cfg->tenants = NULL;
    cfg->tenants_cnt = 0;
}

/* Configurations made and not yet freed (px_config_live). */
static size_t g_live;

size_t px_config_live(void)
{
    return __atomic_load_n(&g_live, __ATOMIC_RELAXED);
}

void px_config_free(px_config_t *cfg)
{
    if (!cfg)
        return;
    __atomic_fetch_sub(&g_live, 1, __ATOMIC_RELAXED);
    if (cfg->health_free != NULL)
        cfg->health_free(cfg->health);
    px__config_clear_routes(cfg);
    px__config_clear_clusters(cfg);
    px__config_clear_listeners(cfg);
    px__config_clear_tenants(cfg);
    mem_free(cfg->admin.token);
    mem_free(cfg->access_log);
    mem_free(cfg->server_name);
    mem_free(cfg->source);
    mem_free(cfg);
}

void px_config_unref(const px_config_t *cfg)
{
    if (cfg == NULL)
        return;
    px_config_t *c = (px_config_t *)cfg;
    int was = __atomic_fetch_sub(&c->refs, 1, __ATOMIC_ACQ_REL);
    MEM_ASSERT(was > 0);
    if (was == 1)
        px_config_free(c);
}

static bool str_same(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

/* Field by field: the struct's path is a pointer, and its padding is not compared. */
static bool health_check_same(const px_health_check_cfg_t *a, const px_health_check_cfg_t *b)
{
    return a->enabled == b->enabled && str_same(a->path, b->path) &&
           a->interval_ms == b->interval_ms && a->timeout_ms == b->timeout_ms &&
           a->healthy_threshold == b->healthy_threshold &&
           a->unhealthy_threshold == b->unhealthy_threshold &&
           a->expected_status == b->expected_status;
}

static bool outlier_same(const px_outlier_cfg_t *a, const px_outlier_cfg_t *b)
{
    return a->enabled == b->enabled && a->consecutive_5xx == b->consecutive_5xx &&
           a->consecutive_gateway_failure == b->consecutive_gateway_failure &&
           a->base_ejection_ms == b->base_ejection_ms && a->max_ejection_ms == b->max_ejection_ms &&
           a->max_ejection_percent == b->max_ejection_percent && a->interval_ms == b->interval_ms;
}

bool px_config_cluster_same(const px_cluster_cfg_t *a, const px_cluster_cfg_t *b)
{
    MEM_ASSERT(a != NULL);
    MEM_ASSERT(b != NULL);
    if (!str_same(a->name, b->name) || a->proto != b->proto || a->lb != b->lb ||
        a->endpoints_cnt != b->endpoints_cnt || a->connect_timeout_ms != b->connect_timeout_ms ||
        a->request_timeout_ms != b->request_timeout_ms ||
        a->idle_timeout_ms != b->idle_timeout_ms ||
        a->max_streams_per_conn != b->max_streams_per_conn ||
        a->max_conns_per_endpoint != b->max_conns_per_endpoint ||
        a->retries_max != b->retries_max || a->retry_budget_percent != b->retry_budget_percent ||
        a->retry_min_concurrency != b->retry_min_concurrency ||
        !health_check_same(&a->health_check, &b->health_check) ||
        !outlier_same(&a->outlier, &b->outlier) || a->tls != b->tls ||
        a->tls_verify != b->tls_verify || !str_same(a->tls_sni, b->tls_sni) ||
        !str_same(a->tls_ca, b->tls_ca) || !str_same(a->tls_cert, b->tls_cert) ||
        !str_same(a->tls_key, b->tls_key))
        return false;
    for (size_t i = 0; i < a->endpoints_cnt; i++) {
        const px_addr_t *x = &a->endpoints[i], *y = &b->endpoints[i];
        if (strcmp(x->host, y->host) != 0 || x->port != y->port || x->sa_len != y->sa_len ||
            memcmp(&x->sa, &y->sa, x->sa_len) != 0)
            return false;
    }
    return true;
}

int px__config_new_empty(px_config_t **out)
{
    char why[PX_CFG_WHY_MAX];
    px_config_t *cfg;
    int rc;

    MEM_ASSERT(out != NULL);
    *out = NULL;
    cfg = mem_calloc(1, sizeof(*cfg));
    if (!cfg)
        return -ENOMEM;
    __atomic_fetch_add(&g_live, 1, __ATOMIC_RELAXED);
    cfg->refs = 1;
    cfg->version = 1;
    cfg->reload.watch = true;
    cfg->reload.poll_interval_ms = 2000;
    rc = px__cfg_parse_addr(PX_CFG_DEFAULT_ADMIN, true, &cfg->admin.addr, why, sizeof(why));
    MEM_ASSERT(rc == 0); /* a numeric literal always resolves */
    cfg->admin.enabled = true;

    cfg->limits.max_concurrent_streams = 100;
    cfg->limits.max_header_list_bytes = 65536;
    cfg->limits.max_continuations = 8;
    cfg->limits.stream_buffer_bytes = 65536;
    cfg->limits.conn_bytes_max = (size_t)4 << 20;
    cfg->limits.stream_bytes_max = (size_t)1 << 20;
    cfg->limits.idle_timeout_ms = 120000;
    cfg->limits.header_timeout_ms = 10000;
    cfg->limits.stream_idle_timeout_ms = 60000;
    cfg->limits.send_timeout_ms = 30000;
    cfg->limits.max_connections = 10000;
    cfg->limits.rst_per_sec = 100;
    cfg->limits.control_frames_per_sec = 100;

    cfg->memory.limit_bytes = 0;
    cfg->memory.limit_cgroup_fraction = 0.9;
    cfg->memory.elevated = 0.80;
    cfg->memory.critical = 0.95;
    cfg->memory.hysteresis = 0.05;
    cfg->memory.decay_ms = 1000;
    cfg->memory.sample_bytes = 524288;

    cfg->workers = 0;
    cfg->access_log = NULL;
    cfg->drain_timeout_ms = 30000;
    cfg->x_forwarded_for = PX_XFF_APPEND;
    cfg->add_via = true;
    cfg->server_name = mem_strdup("weir");
    if (!cfg->server_name)
        goto fail;
    *out = cfg;
    return 0;
fail:
    px_config_free(cfg);
    return -ENOMEM;
}

int px__config_add_default_listener(px_config_t *cfg)
{
    char why[PX_CFG_WHY_MAX];
    px_listener_cfg_t *l;
    int rc;

    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(cfg->listeners_cnt == 0);
    l = mem_calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    rc = px__cfg_parse_addr(PX_CFG_DEFAULT_LISTEN, true, &l->addr, why, sizeof(why));
    MEM_ASSERT(rc == 0);
    l->name = mem_strdup("main");
    if (!l->name) {
        mem_free(l);
        return -ENOMEM;
    }
    cfg->listeners = l;
    cfg->listeners_cnt = 1;
    return 0;
}

int px__config_add_default_route(px_config_t *cfg)
{
    px_route_cfg_t *r;

    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(cfg->routes_cnt == 0);
    r = mem_calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->path_prefix = mem_strdup("/");
    r->direct_body = mem_strdup(PX_CFG_DEFAULT_BODY);
    r->direct_content_type = mem_strdup("text/plain");
    if (!r->path_prefix || !r->direct_body || !r->direct_content_type) {
        px__route_fini(r);
        mem_free(r);
        return -ENOMEM;
    }
    r->direct_status = 200;
    r->direct_body_len = strlen(PX_CFG_DEFAULT_BODY);
    cfg->routes = r;
    cfg->routes_cnt = 1;
    return 0;
}

void px__cfg_cluster_defaults(px_cluster_cfg_t *cl)
{
    MEM_ASSERT(cl != NULL);
    cl->proto = PX_PROTO_H2C;
    cl->lb = PX_LB_ROUND_ROBIN;
    cl->connect_timeout_ms = 2000;
    cl->request_timeout_ms = 30000;
    cl->idle_timeout_ms = 60000;
    cl->max_streams_per_conn = 100;
    cl->max_conns_per_endpoint = 64;
    cl->retries_max = 2;
    cl->retry_budget_percent = 20;
    cl->retry_min_concurrency = 3;
    cl->health_check.interval_ms = 5000;
    cl->health_check.timeout_ms = 1000;
    cl->health_check.healthy_threshold = 2;
    cl->health_check.unhealthy_threshold = 3;
    cl->health_check.expected_status = 200;
    cl->outlier.consecutive_5xx = 5;
    cl->outlier.base_ejection_ms = 30000;
    cl->outlier.max_ejection_ms = 300000;
    cl->outlier.max_ejection_percent = 10;
    cl->outlier.interval_ms = 10000;
    cl->tls_verify = true;
}

int px_config_default(px_config_t **out)
{
    px_config_t *cfg = NULL;
    int rc;

    MEM_ASSERT(out != NULL);
    *out = NULL;
    rc = px__config_new_empty(&cfg);
    if (rc < 0)
        return rc;
    rc = px__config_add_default_listener(cfg);
    if (rc < 0)
        goto fail;
    rc = px__config_add_default_route(cfg);
    if (rc < 0)
        goto fail;
    MEM_ASSERT(cfg->listeners_cnt == 1 && cfg->routes_cnt == 1);
    *out = cfg;
    return 0;
fail:
    px_config_free(cfg);
    return rc;
}

/* ---- dump ------------------------------------------------------------------------------- */

/* A small buffered writer: the dump is a few KiB, written through the caller's callback in
 * chunks so that no allocation is needed. The first failing write sticks. */
typedef struct dump_s {
    int (*write)(void *ud, const char *buf, size_t len);
    void *ud;
    int rc;
    size_t len;
    char buf[2048];
} dump_t;

static void dump_flush(dump_t *d)
{
    if (d->rc == 0 && d->len > 0)
        d->rc = d->write(d->ud, d->buf, d->len);
    d->len = 0;
}

static void dump_put(dump_t *d, const char *s, size_t len)
{
    while (len > 0) {
        size_t room = sizeof(d->buf) - d->len;
        size_t n = MEM_MIN(room, len);
        memcpy(d->buf + d->len, s, n);
        d->len += n;
        s += n;
        len -= n;
        if (d->len == sizeof(d->buf))
            dump_flush(d);
    }
}

MEM_PRINTF(2, 3) static void dump_f(dump_t *d, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    MEM_ASSERT(n >= 0);
    MEM_ASSERT((size_t)n < sizeof(line)); /* callers print bounded fields only */
    dump_put(d, line, (size_t)n);
}

/* Writes `s` as a YAML double-quoted scalar, escaping what YAML requires. */
static void dump_q(dump_t *d, const char *s, size_t len)
{
    dump_put(d, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            dump_put(d, esc, 2);
        } else if (ch == '\n') {
            dump_put(d, "\\n", 2);
        } else if (ch == '\t') {
            dump_put(d, "\\t", 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", ch);
            dump_put(d, esc, 4);
        } else {
            dump_put(d, (const char *)&ch, 1);
        }
    }
    dump_put(d, "\"", 1);
}

static void dump_qs(dump_t *d, const char *s)
{
    dump_q(d, s, strlen(s));
}

static void dump_addr(dump_t *d, const px_addr_t *a)
{
    char buf[300];
    px__cfg_addr_str(a, buf, sizeof(buf));
    dump_qs(d, buf);
}

int px_config_dump(const px_config_t *cfg, int (*write)(void *ud, const char *buf, size_t len),
                   void *ud)
{
    dump_t d = {.write = write, .ud = ud, .rc = 0, .len = 0};
    const px_memory_cfg_t *m = &cfg->memory;
    const px_limits_cfg_t *lim = &cfg->limits;

    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(write != NULL);
    /* The source path is unbounded: it goes through dump_qs, never through dump_f's line. */
    dump_f(&d, "# weir effective configuration, source: ");
    dump_qs(&d, cfg->source ? cfg->source : "built-in defaults and flags");
    dump_f(&d, "\n");

    dump_f(&d, "listeners:\n");
    for (size_t i = 0; i < cfg->listeners_cnt; i++) {
        const px_listener_cfg_t *l = &cfg->listeners[i];
        dump_f(&d, "  - name: ");
        dump_qs(&d, l->name ? l->name : "");
        dump_f(&d, "\n    address: ");
        dump_addr(&d, &l->addr);
        dump_f(&d, "\n");
        if (l->tls) {
            dump_f(&d, "    tls: {cert: ");
            dump_qs(&d, l->tls_cert ? l->tls_cert : "");
            dump_f(&d, ", key: ");
            dump_qs(&d, l->tls_key ? l->tls_key : "");
            dump_f(&d, "}\n");
        }
    }

    dump_f(&d, "clusters:%s\n", cfg->clusters_cnt ? "" : " []");
    for (size_t i = 0; i < cfg->clusters_cnt; i++) {
        const px_cluster_cfg_t *c = &cfg->clusters[i];
        dump_f(&d, "  - name: ");
        dump_qs(&d, c->name);
        dump_f(&d, "\n    protocol: %s\n",
               c->proto == PX_PROTO_H2C ? (c->tls ? "h2" : "h2c") : "http1");
        dump_f(&d, "    lb: %s\n", c->lb == PX_LB_ROUND_ROBIN ? "round_robin" : "least_request");
        dump_f(&d, "    endpoints: [");
        for (size_t j = 0; j < c->endpoints_cnt; j++) {
            if (j)
                dump_f(&d, ", ");
            dump_addr(&d, &c->endpoints[j]);
        }
        dump_f(&d, "]\n");
        dump_f(&d, "    connect_timeout: %ums\n", (unsigned)c->connect_timeout_ms);
        dump_f(&d, "    request_timeout: %ums\n", (unsigned)c->request_timeout_ms);
        dump_f(&d, "    idle_timeout: %ums\n", (unsigned)c->idle_timeout_ms);
        dump_f(&d, "    max_streams_per_connection: %u\n", (unsigned)c->max_streams_per_conn);
        dump_f(&d, "    max_connections_per_endpoint: %u\n", (unsigned)c->max_conns_per_endpoint);
        dump_f(&d,
               "    retries:\n      max: %u\n      budget_percent: %u\n"
               "      min_retry_concurrency: %u\n",
               (unsigned)c->retries_max, (unsigned)c->retry_budget_percent,
               (unsigned)c->retry_min_concurrency);
        if (c->health_check.enabled) {
            const px_health_check_cfg_t *h = &c->health_check;
            dump_f(&d, "    health_check:\n      path: ");
            dump_qs(&d, h->path);
            dump_f(&d,
                   "\n      interval: %ums\n      timeout: %ums\n      healthy_threshold: %u\n"
                   "      unhealthy_threshold: %u\n      expected_status: %u\n",
                   (unsigned)h->interval_ms, (unsigned)h->timeout_ms,
                   (unsigned)h->healthy_threshold, (unsigned)h->unhealthy_threshold,
                   (unsigned)h->expected_status);
        }
        if (c->outlier.enabled) {
            const px_outlier_cfg_t *o = &c->outlier;
            dump_f(&d,
                   "    outlier_detection:\n      consecutive_5xx: %u\n"
                   "      consecutive_gateway_failure: %u\n      base_ejection_time: %ums\n"
                   "      max_ejection_time: %ums\n      max_ejection_percent: %u\n"
                   "      interval: %ums\n",
                   (unsigned)o->consecutive_5xx, (unsigned)o->consecutive_gateway_failure,
                   (unsigned)o->base_ejection_ms, (unsigned)o->max_ejection_ms,
                   (unsigned)o->max_ejection_percent, (unsigned)o->interval_ms);
        }
        if (c->tenant)
            dump_f(&d, "    memory: {limit: %zu}\n", cfg->tenants[c->tenant - 1].limit_bytes);
        if (c->tls) {
            dump_f(&d, "    tls:\n      verify: %s\n", c->tls_verify ? "true" : "false");
            const char *const keys[] = {"sni", "ca", "cert", "key"};
            const char *const vals[] = {c->tls_sni, c->tls_ca, c->tls_cert, c->tls_key};
            for (size_t k = 0; k < MEM_ARRAY_LEN(keys); k++) {
                if (!vals[k])
                    continue;
                dump_f(&d, "      %s: ", keys[k]);
                dump_qs(&d, vals[k]);
                dump_f(&d, "\n");
            }
        }
    }

    dump_f(&d, "routes:\n");
    for (size_t i = 0; i < cfg->routes_cnt; i++) {
        const px_route_cfg_t *r = &cfg->routes[i];
        dump_f(&d, "  - match: {");
        if (r->authority) {
            dump_f(&d, "authority: ");
            dump_qs(&d, r->authority);
            dump_f(&d, ", ");
        }
        dump_f(&d, "path_prefix: ");
        dump_qs(&d, r->path_prefix ? r->path_prefix : "/");
        dump_f(&d, "}\n");
        if (r->cluster) {
            dump_f(&d, "    cluster: ");
            dump_qs(&d, r->cluster->name);
            dump_f(&d, "\n");
        } else {
            dump_f(&d, "    direct_response: {status: %d, body: ", r->direct_status);
            dump_q(&d, r->direct_body ? r->direct_body : "", r->direct_body_len);
            dump_f(&d, ", content_type: ");
            dump_qs(&d, r->direct_content_type ? r->direct_content_type : "text/plain");
            dump_f(&d, "}\n");
        }
        if (r->own_tenant)
            dump_f(&d, "    memory: {limit: %zu}\n", cfg->tenants[r->tenant - 1].limit_bytes);
    }

    dump_f(&d, "admin: {address: ");
    dump_addr(&d, &cfg->admin.addr);
    dump_f(&d, ", enabled: %s", cfg->admin.enabled ? "true" : "false");
    if (cfg->admin.allow_public)
        dump_f(&d, ", allow_public: true");
    if (cfg->admin.token)
        dump_f(&d, ", token: \"<redacted>\"");
    dump_f(&d, "}\n");

    if (cfg->workers)
        dump_f(&d, "workers: %u\n", cfg->workers);
    else
        dump_f(&d, "workers: auto\n");

    dump_f(&d, "memory:\n");
    if (m->limit_bytes)
        dump_f(&d, "  limit: %zu\n", m->limit_bytes);
    else if (m->limit_cgroup_fraction > 0.0)
        dump_f(&d, "  limit: \"%.0f%%\"\n", m->limit_cgroup_fraction * 100.0);
    else
        dump_f(&d, "  limit: \"off\"\n");
    dump_f(&d, "  elevated: %g\n  critical: %g\n  hysteresis: %g\n", m->elevated, m->critical,
           m->hysteresis);
    dump_f(&d, "  decay: %llums\n", (unsigned long long)m->decay_ms);
    dump_f(&d, "  sample_bytes: %zu\n", m->sample_bytes);

    dump_f(&d, "limits:\n");
    dump_f(&d, "  max_concurrent_streams: %u\n", (unsigned)lim->max_concurrent_streams);
    dump_f(&d, "  max_header_list_size: %u\n", (unsigned)lim->max_header_list_bytes);
    dump_f(&d, "  stream_buffer: %zu\n", lim->stream_buffer_bytes);
    dump_f(&d, "  connection_memory: %zu\n", lim->conn_bytes_max);
    dump_f(&d, "  stream_memory: %zu\n", lim->stream_bytes_max);
    dump_f(&d, "  idle_timeout: %ums\n", (unsigned)lim->idle_timeout_ms);
    dump_f(&d, "  header_timeout: %ums\n", (unsigned)lim->header_timeout_ms);
    dump_f(&d, "  stream_idle_timeout: %ums\n", (unsigned)lim->stream_idle_timeout_ms);
    dump_f(&d, "  send_timeout: %ums\n", (unsigned)lim->send_timeout_ms);
    dump_f(&d, "  max_connections: %u\n", (unsigned)lim->max_connections);
    dump_f(&d, "  max_continuations: %u\n", (unsigned)lim->max_continuations);
    dump_f(&d, "  rst_per_second: %u\n", (unsigned)lim->rst_per_sec);
    dump_f(&d, "  control_frames_per_second: %u\n", (unsigned)lim->control_frames_per_sec);

    if (cfg->access_log) {
        dump_f(&d, "access_log: ");
        dump_qs(&d, cfg->access_log);
        dump_f(&d, "\n");
    } else {
        dump_f(&d, "# access_log: off\n");
    }
    dump_f(&d, "drain_timeout: %ums\n", (unsigned)cfg->drain_timeout_ms);
    dump_f(&d, "headers: {x_forwarded_for: %s, via: %s}\n",
           cfg->x_forwarded_for == PX_XFF_APPEND    ? "append"
           : cfg->x_forwarded_for == PX_XFF_REPLACE ? "replace"
                                                    : "off",
           cfg->add_via ? "true" : "false");
    dump_f(&d, "escaped_slashes: %s\n", cfg->keep_escaped_slashes ? "keep" : "reject");
    dump_f(&d, "server_name: ");
    dump_qs(&d, cfg->server_name ? cfg->server_name : "weir");
    dump_f(&d, "\n");
    dump_f(&d, "reload: {watch: %s, poll_interval: %ums}\n",
           !cfg->reload.watch       ? "false"
           : cfg->reload.watch_poll ? "poll"
                                    : "true",
           (unsigned)cfg->reload.poll_interval_ms);
    dump_flush(&d);
    return d.rc;
}
