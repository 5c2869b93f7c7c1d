/*
 * proxy/config/config.h: weir's effective configuration (YAML file, command-line flags and
 * environment overrides merged), and its parser and checker.
 *
 * Built once by the main thread before workers start, then read-only and shared by every
 * thread. All strings and arrays live in the config's own allocation (mem_malloc), freed by
 * px_config_free(). Precedence, lowest first: built-in defaults < YAML file < environment
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
    uint32_t connect_retries;        /* other endpoints tried after a failed connect; default 2 */
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
} px_cluster_cfg_t;

typedef struct px_route_cfg_s {
    char *authority;                 /* NULL = any; exact host ("a.example") or "*.example" */
    char *path_prefix;               /* default "/" */
    const px_cluster_cfg_t *cluster; /* NULL when this is a direct response */
    int direct_status;               /* direct_response status, 0 when routing to a cluster */
    char *direct_body;
    size_t direct_body_len;
    char *direct_content_type; /* default "text/plain" */
} px_route_cfg_t;

typedef struct px_listener_cfg_s {
    char *name;
    px_addr_t addr;
    bool tls;
    char *tls_cert; /* PEM file paths, required when tls */
    char *tls_key;
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

typedef struct px_config_s {
    char *source; /* the file it came from, or NULL for built-in */
    px_listener_cfg_t *listeners;
    size_t listeners_cnt;
    px_cluster_cfg_t *clusters;
    size_t clusters_cnt;
    px_route_cfg_t *routes; /* first match wins */
    size_t routes_cnt;
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
} px_config_t;

/* Result of parsing the command line. */
typedef enum px_cli_action_e {
    PX_CLI_RUN = 0, /* run the proxy with the config */
    PX_CLI_CHECK,   /* --check-config FILE: validate and exit */
    PX_CLI_HELP,    /* --help printed */
    PX_CLI_VERSION, /* --version printed */
    PX_CLI_HEALTH,  /* `weir health [ADDR]`: probe /ready on the admin port */
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

void px_config_free(px_config_t *cfg);

/* Writes the effective configuration as YAML with secrets redacted (for /config_dump). */
int px_config_dump(const px_config_t *cfg, int (*write)(void *ud, const char *buf, size_t len),
                   void *ud);

/* Parses sizes such as "64MiB", "512k", "1g", "1048576" and fractions like "90%".
 * Units are binary (k = KB = KiB = 1024). Returns 0 with `*out` in bytes, 1 for a percentage
 * with `*out` = the percent (0-100), -EINVAL for text that is not a size, -ERANGE on overflow
 * or a percentage above 100. Alloc: none. */
int px_parse_size(const char *s, size_t *out);

#endif /* PX_CONFIG_H */
