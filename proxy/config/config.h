/*
 * proxy/config/config.h: weir's effective configuration (YAML file, command-line flags and
 * environment overrides merged), and its parser and checker.
 *
 * Built by the main thread (at start, and again at each reload), then read-only and shared by
 * every thread. Reference-counted (px_config_ref/px_config_unref): the server holds one
 * reference, each worker one for the config it serves new streams with, each stream one for
 * the config it was routed by, and each upstream pool one for the config its cluster belongs
 * to; the last unref frees it. All strings and arrays live in the config's own allocation
 * (mem_malloc). Precedence, lowest first: built-in defaults < YAML file < environment
 * (WEIR_LISTEN, WEIR_ADMIN, WEIR_MEMORY_LIMIT, WEIR_ADMIN_TOKEN, WEIR_WORKERS)
 * < command-line flags.
 */
#ifndef PX_CONFIG_H
#define PX_CONFIG_H

#include "mem/base.h"

#include <stdbool.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define PX_CONFIG_ERR_MAX 512

typedef struct px_addr_s {
    char host[256];             /* as written (name or literal), for logs and dumps */
    uint16_t port;              /* 0 = let the kernel pick (tests) */
    struct sockaddr_storage sa; /* resolved at load time */
    socklen_t sa_len;
} px_addr_t;

typedef enum px_proto_e { PX_PROTO_H2C = 0, PX_PROTO_HTTP1 = 1 } px_proto_t;
typedef enum px_lb_e { PX_LB_ROUND_ROBIN = 0, PX_LB_LEAST_REQUEST = 1 } px_lb_t;
/* What the upstream gets as x-forwarded-for (headers.x_forwarded_for). */
typedef enum px_xff_e {
    PX_XFF_APPEND = 0,  /* the client's list, then the peer address (nginx, Envoy) */
    PX_XFF_REPLACE = 1, /* the peer address only: nothing the client claims passes on */
    PX_XFF_OFF = 2,     /* no x-forwarded-for at all (the client's is dropped too) */
} px_xff_t;

/* Active health checks of a cluster's endpoints (`health_check:`), probed from one worker. */
typedef struct px_health_check_cfg_s {
    bool enabled;                 /* the block is present */
    char *path;                   /* owns; required, starts with '/' */
    uint32_t interval_ms;         /* default 5000 */
    uint32_t timeout_ms;          /* default 1000 */
    uint32_t healthy_threshold;   /* consecutive passes to turn healthy; default 2 */
    uint32_t unhealthy_threshold; /* consecutive failures to turn unhealthy; default 3 */
    uint32_t expected_status;     /* default 200 */
} px_health_check_cfg_t;

/* Passive outlier detection (`outlier_detection:`, Envoy's semantics). */
typedef struct px_outlier_cfg_s {
    bool enabled;                         /* the block is present */
    uint32_t consecutive_5xx;             /* 0 = off; default 5 */
    uint32_t consecutive_gateway_failure; /* 502/503/504 and local failures, 0 = off (default) */
    uint32_t base_ejection_ms;            /* default 30000; ejection = base x ejections */
    uint32_t max_ejection_ms;             /* cap of one ejection; default 300000 */
    uint32_t max_ejection_percent;        /* of the cluster's endpoints; default 10 */
    uint32_t interval_ms;                 /* sweep: unejection, multiplier decay; default 10000 */
} px_outlier_cfg_t;
/* A memory tenant (issue 18): a route or cluster that carries `memory: {limit: SIZE}`. What the
 * streams it serves hold (their sub-arenas, buffered bodies and their connection's share) is
 * counted against `limit_bytes` on top of the global budget (proxy/upstream/tenant.h). */
typedef struct px_tenant_cfg_s {
    char *name;         /* owns: the cluster's name, or "routes[N]" */
    size_t limit_bytes; /* 64KiB-1TiB */
} px_tenant_cfg_t;

#define PX_TENANT_LIMIT_MIN ((size_t)64 << 10)
#define PX_TENANT_LIMIT_MAX ((size_t)1 << 40)

typedef struct px_cluster_cfg_s {
    char *name;
    px_proto_t proto;
    px_lb_t lb;
    px_addr_t *endpoints;
    size_t endpoints_cnt;
    uint32_t connect_timeout_ms;     /* default 2000 */
    uint32_t request_timeout_ms;     /* whole response, 0 = none; default 30000 */
    uint32_t idle_timeout_ms;        /* pooled idle connection; default 60000 */
    uint32_t max_streams_per_conn;   /* h2c multiplexing; default 100 */
    uint32_t max_conns_per_endpoint; /* per worker; default 64 */
    /* Retries on another endpoint of requests the upstream never processed (`retries:`;
     * `connect_retries` is the older spelling of retries.max). */
    uint32_t retries_max;           /* per request; default 2 */
    uint32_t retry_budget_percent;  /* retries in flight, % of active requests; default 20 */
    uint32_t retry_min_concurrency; /* retries in flight always allowed; default 3 */
    px_health_check_cfg_t health_check;
    px_outlier_cfg_t outlier;
    /* TLS toward the upstream (`tls:`; `protocol: h2`, `--upstream https://` or h2://). ALPN
     * follows `proto`: "h2" for PX_PROTO_H2C framing, "http/1.1" for PX_PROTO_HTTP1. */
    bool tls;
    bool tls_verify; /* default true: chain and host name (sni, else the endpoint's host) */
    char *tls_sni;   /* owns; NULL = each endpoint's host name (none for an IP literal) */
    char *tls_ca;    /* owns; PEM file, NULL = the system bundle (ca-certificates) */
    char *tls_cert;  /* owns; client certificate (mutual TLS), with tls_key, or NULL */
    char *tls_key;   /* owns */
    /* The cluster's SSL_CTX (owns, SSL_CTX_free in px__cluster_fini): made by the main thread
     * with px_uptls_ctx_new before the workers start, then shared read-only by them. */
    struct ssl_ctx_st *tls_ctx;
    unsigned tenant; /* 1-based index into px_config_t.tenants (its memory: limit), 0 = none */
} px_cluster_cfg_t;

typedef struct px_route_cfg_s {
    char *authority;                 /* NULL = any; exact host ("a.example") or "*.example" */
    char *path_prefix;               /* default "/" */
    const px_cluster_cfg_t *cluster; /* NULL when this is a direct response */
    int direct_status;               /* direct_response status, 0 when routing to a cluster */
    char *direct_body;
    size_t direct_body_len;
    char *direct_content_type; /* default "text/plain" */
    /* 1-based index into px_config_t.tenants, 0 = none: the route's own memory: limit, else
     * its cluster's (resolved at load, so the request path reads one field). */
    unsigned tenant;
    bool own_tenant; /* the tenant is the route's own (not its cluster's) */
} px_route_cfg_t;

typedef struct px_listener_cfg_s {
    char *name;
    px_addr_t addr;
    bool tls;
    char *tls_cert; /* PEM file paths, required when tls */
    char *tls_key;
    /* The listener's SSL_CTX (owns, SSL_CTX_free in px__listener_fini): made by the main thread
     * (px_tls_config_init) before the config is handed to the workers, at start and at each
     * reload, so a reload serves the files' new certificate to new connections. */
    struct ssl_ctx_st *tls_ctx;
} px_listener_cfg_t;

typedef struct px_limits_cfg_s {
    uint32_t max_concurrent_streams; /* per connection; default 100 */
    uint32_t max_header_list_bytes;  /* default 65536 */
    uint32_t max_continuations;      /* CONTINUATION frames per header block; default 8 */
    size_t stream_buffer_bytes;      /* per-stream flow-control buffer; default 65536 */
    size_t conn_bytes_max;           /* region cap per connection; default 4 MiB */
    size_t stream_bytes_max;         /* sub-arena cap per stream; default 1 MiB */
    uint32_t idle_timeout_ms;        /* connection with no streams; default 120000 */
    uint32_t header_timeout_ms;      /* first complete request headers; default 10000 */
    uint32_t stream_idle_timeout_ms; /* no progress on a stream; default 60000 */
    uint32_t send_timeout_ms;        /* pending output with no progress; default 30000 */
    uint32_t max_connections;        /* per worker; default 10000 */
    uint32_t rst_per_sec;            /* client RST_STREAM rate limit; default 100 */
    uint32_t control_frames_per_sec; /* SETTINGS/PING/empty frames; default 100 */
} px_limits_cfg_t;

typedef struct px_memory_cfg_s {
    size_t limit_bytes;           /* explicit limit; 0 = derive */
    double limit_cgroup_fraction; /* share of the cgroup limit; default 0.9 */
    double elevated;              /* default 0.80 */
    double critical;              /* default 0.95 */
    double hysteresis;            /* default 0.05 */
    uint64_t decay_ms;            /* default 1000 */
    size_t sample_bytes;          /* heap sampling; default 524288, 0 = off */
} px_memory_cfg_t;

typedef struct px_admin_cfg_s {
    px_addr_t addr;    /* default 127.0.0.1:9901 */
    bool enabled;      /* default true */
    bool allow_public; /* bind beyond loopback without a token; default false */
    char *token;       /* bearer token; NULL = none (redacted in dumps) */
} px_admin_cfg_t;

/* Reload of the config file (`reload:`). */
typedef struct px_reload_cfg_s {
    bool watch;                /* watch the file and reload on change; default true */
    bool watch_poll;           /* `watch: poll`: stat polls only, never inotify (NFS, FUSE) */
    uint32_t poll_interval_ms; /* the stat poll's interval (poll, or no inotify); default 2000 */
} px_reload_cfg_t;

typedef struct px_config_s {
    int refs; /* any: atomic; 1 when made, freed by the last px_config_unref */
    /* owns (through health_free, called by px_config_free): the endpoint health table of this
     * config (proxy/upstream/health.h), attached by the server before the config is published;
     * opaque here, as the config sits below the upstream layer. NULL: none. */
    void *health;
    void (*health_free)(void *health);
    uint64_t version; /* 1 for the config weir started with, +1 for each applied reload */
    uint64_t hash;    /* FNV-1a 64 of px_config_dump's text (set by the server) */
    char *source;     /* the file it came from, or NULL for built-in */
    px_listener_cfg_t *listeners;
    size_t listeners_cnt;
    px_cluster_cfg_t *clusters;
    size_t clusters_cnt;
    px_route_cfg_t *routes; /* first match wins */
    size_t routes_cnt;
    px_tenant_cfg_t *tenants; /* memory tenants, in the order the file names them */
    size_t tenants_cnt;       /* at most PX_CFG_CLUSTERS_MAX + PX_CFG_ROUTES_MAX */
    px_admin_cfg_t admin;
    px_limits_cfg_t limits;
    px_memory_cfg_t memory;
    unsigned workers;          /* 0 = auto: the CPUs in the affinity mask (or cgroup quota) */
    char *access_log;          /* NULL = off, "-" = stdout, else a path */
    uint32_t drain_timeout_ms; /* SIGTERM deadline; default 30000 */
    px_xff_t x_forwarded_for;  /* default PX_XFF_APPEND */
    bool keep_escaped_slashes; /* escaped_slashes: keep (%2F, %5C pass encoded); default
                                  false = reject (400) */
    bool add_via;              /* default true */
    char *server_name;         /* used in via and errors; default "weir" */
    px_reload_cfg_t reload;
} px_config_t;

/* Result of parsing the command line. */
typedef enum px_cli_action_e {
    PX_CLI_RUN = 0, /* run the proxy with the config */
    PX_CLI_CHECK,   /* --check-config FILE: validate and exit */
    PX_CLI_HELP,    /* --help printed */
    PX_CLI_VERSION, /* --version printed */
    PX_CLI_HEALTH,  /* `weir health [ADDR]`: probe /ready on the admin port */
    /* `weir health --live [ADDR]`: probe /healthz, which stays 200 while weir drains */
    PX_CLI_HEALTH_LIVE,
} px_cli_action_t;

/* Builds the effective config from `argv`, the environment and the file named by -c (if any).
 * On error returns a negative errno and writes a one-line message naming the file, line,
 * column and field (or the flag) into `err`. `*out` gets a config the caller frees with
 * px_config_free(); on success it is never NULL, also for HELP and VERSION (which have
 * already printed to stdout and get the built-in default). On error `*out` is NULL and
 * `*action` is PX_CLI_CHECK when --check-config was given, else PX_CLI_RUN.
 * Thread: main (uses getopt_long). Alloc: tcache (mem_malloc). */
int px_config_from_args(int argc, char **argv, px_cli_action_t *action, px_config_t **out,
                        char *err, size_t err_len);

/* Loads `path` on top of the defaults (no flags, no environment). Same error contract. */
int px_config_load_file(const char *path, px_config_t **out, char *err, size_t err_len);

/* The built-in default: h2c on 127.0.0.1:8080, admin on 127.0.0.1:9901, one direct_response
 * route that explains how to point weir at an upstream. */
int px_config_default(px_config_t **out);

/* Frees `cfg` at once, whatever its reference count (for a config never shared). */
void px_config_free(px_config_t *cfg);

/* Takes a reference on `cfg` and returns it. Thread: any. Alloc: none. */
static inline const px_config_t *px_config_ref(const px_config_t *cfg)
{
    MEM_ASSERT(cfg != NULL);
    int was = __atomic_fetch_add(&((px_config_t *)cfg)->refs, 1, __ATOMIC_RELAXED);
    MEM_ASSERT(was > 0);
    return cfg;
}

/* Drops a reference; the last one frees the config (and its TLS contexts). NULL is ignored.
 * Thread: any. */
void px_config_unref(const px_config_t *cfg);

/* Configurations alive in the process now (made and not yet freed): 1 while no reload is
 * pending, more while streams or upstream pools still hold an older one. Thread: any. */
size_t px_config_live(void);

/* True when two clusters would behave the same (name, protocol, balancing, endpoints, timeouts,
 * limits and TLS settings; not the SSL_CTX object): a reload keeps such a cluster's pooled
 * connections. Alloc: none. */
bool px_config_cluster_same(const px_cluster_cfg_t *a, const px_cluster_cfg_t *b);

/* Writes the effective configuration as YAML with secrets redacted (for /config_dump). */
int px_config_dump(const px_config_t *cfg, int (*write)(void *ud, const char *buf, size_t len),
                   void *ud);

/* Parses sizes such as "64MiB", "512k", "1g", "1048576" and fractions like "90%".
 * Units are binary (k = KB = KiB = 1024). Returns 0 with `*out` in bytes, 1 for a percentage
 * with `*out` = the percent (0-100), -EINVAL for text that is not a size, -ERANGE on overflow
 * or a percentage above 100. Alloc: none. */
int px_parse_size(const char *s, size_t *out);

#endif /* PX_CONFIG_H */
