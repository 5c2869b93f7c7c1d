/*
 * proxy/config/internal.h: what the three files behind proxy/config/config.h share (config.c: the
 * config object, its defaults, free and dump; config_value.c: scalar parsers for sizes,
 * durations, addresses and names; config_yaml.c: the YAML loader; cli.c: flags and
 * environment). Not for use outside those files.
 *
 * Value parsers take the text and write a reason without any file/field prefix into `why`
 * (the caller adds "FILE:LINE:COL: FIELD: " or "--flag: "). Thread: main. Alloc: none unless
 * the name says so.
 */
#ifndef PX_CONFIG_INTERNAL_H
#define PX_CONFIG_INTERNAL_H

#include "mem/base.h"
#include "proxy/config/config.h"

#include <stdarg.h>
#include <stdbool.h>

/* Hard caps on what one config may hold (STYLE.md: everything has a limit). */
#define PX_CFG_LISTENERS_MAX 64
#define PX_CFG_CLUSTERS_MAX  256
#define PX_CFG_ENDPOINTS_MAX 256
#define PX_CFG_ROUTES_MAX    1024
#define PX_CFG_NAME_MAX      64
#define PX_CFG_BODY_MAX      65536
#define PX_CFG_FILE_MAX      (1024 * 1024)
#define PX_CFG_WORKERS_MAX   1024

/* Defaults documented in proxy/config/config.h and in the schema at the top of config.c. */
#define PX_CFG_DEFAULT_LISTEN "127.0.0.1:8080"
#define PX_CFG_DEFAULT_ADMIN  "127.0.0.1:9901"
#define PX_CFG_DEFAULT_BODY                                                                        \
    "This is weir's built-in default answer: no upstream is configured.\n"                         \
    "Point weir at an upstream with\n"                                                             \
    "    weir --listen 127.0.0.1:8080 --upstream h2c://127.0.0.1:9000\n"                           \
    "or with a configuration file: weir -c weir.yaml (see weir --help).\n"

/* A reason buffer for value parsers. */
#define PX_CFG_WHY_MAX 256

/* Formats into `buf` without overflowing; returns `-EINVAL` so that errors are one-liners. */
int px__cfg_errf(char *buf, size_t len, const char *fmt, ...) MEM_PRINTF(3, 4);

/* Parses "250ms", "2s", "1m", "1h" or "0" into milliseconds, at most `max_ms`. */
int px__cfg_parse_duration(const char *s, uint64_t max_ms, uint64_t *out_ms, char *why,
                           size_t why_len);
/* Parses a decimal integer in [min, max]. */
int px__cfg_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
                       size_t why_len);
/* Parses a size with px_parse_size() (no percentage) in [min, max]. */
int px__cfg_parse_size_range(const char *s, size_t min, size_t max, size_t *out, char *why,
                             size_t why_len);
/* Parses a decimal fraction such as 0.8 in [min, max]. */
int px__cfg_parse_fraction(const char *s, double min, double max, double *out, char *why,
                           size_t why_len);
/* Parses true/false/yes/no/on/off. */
int px__cfg_parse_bool(const char *s, bool *out, char *why, size_t why_len);
/* Parses a memory limit: a size, "N%" of the cgroup limit, or 0/off. */
int px__cfg_parse_memory_limit(const char *s, px_memory_cfg_t *mem, char *why, size_t why_len);
/* Parses "auto" or a worker count. */
int px__cfg_parse_workers(const char *s, unsigned *out, char *why, size_t why_len);
/* Parses HOST:PORT or [V6]:PORT and resolves it with getaddrinfo. Port 0 is accepted only
 * when `port0_ok` (listeners and admin in tests). Alloc: system (getaddrinfo). */
int px__cfg_parse_addr(const char *s, bool port0_ok, px_addr_t *out, char *why, size_t why_len);
/* Checks a listener or cluster name: 1..PX_CFG_NAME_MAX of [A-Za-z0-9_.-]. */
/* Sets the documented defaults of a cluster's protocol, balancing, timeouts and pool sizes
 * (config.h); name and endpoints are left alone. */
void px__cfg_cluster_defaults(px_cluster_cfg_t *cl);
int px__cfg_check_name(const char *s, char *why, size_t why_len);
/* Checks that `path` names a readable regular file. */
int px__cfg_check_readable(const char *path, char *why, size_t why_len);
/* Checks that the PEM file `path` holds a certificate (the first of a chain or bundle), or a
 * private key when `key`. Returns 0 or -EINVAL with the reason in `why`. Alloc: OpenSSL. */
int px__cfg_check_pem(const char *path, bool key, char *why, size_t why_len);
/* Checks that the private key in `key` belongs to the certificate in `cert`. */
int px__cfg_check_pem_pair(const char *cert, const char *key, char *why, size_t why_len);
/* Writes "host:port" (brackets around IPv6 hosts) into `buf`. */
void px__cfg_addr_str(const px_addr_t *a, char *buf, size_t len);

/* A config with every scalar at its default, the default admin address, and no listeners,
 * clusters or routes. Gives: px_config_free(). Alloc: tcache. */
int px__config_new_empty(px_config_t **out);
/* Appends the default listener (127.0.0.1:8080, h2c) / the default direct-response route. */
int px__config_add_default_listener(px_config_t *cfg);
int px__config_add_default_route(px_config_t *cfg);
/* Frees and clears one list of `cfg` (routes before clusters: routes point into clusters). */
void px__config_clear_listeners(px_config_t *cfg);
void px__config_clear_clusters(px_config_t *cfg);
void px__config_clear_routes(px_config_t *cfg);
/* Frees the memory tenants (after the routes and clusters that name them). */
void px__config_clear_tenants(px_config_t *cfg);
/* Appends a memory tenant named `name` (copied) with `limit_bytes`; sets `*id` to its 1-based
 * index. Returns 0 or -ENOMEM (nothing appended). Alloc: tcache. */
int px__config_add_tenant(px_config_t *cfg, const char *name, size_t limit_bytes, unsigned *id);
/* Frees what a listener / cluster / route owns (not the element itself). */
void px__listener_fini(px_listener_cfg_t *l);
void px__cluster_fini(px_cluster_cfg_t *c);
void px__route_fini(px_route_cfg_t *r);
/* Replaces `*slot` with a copy of `s` (NULL allowed). Returns 0 or -ENOMEM; on failure the old
 * value stays. Alloc: tcache. */
int px__cfg_set_str(char **slot, const char *s);

#endif /* PX_CONFIG_INTERNAL_H */
