/*
 * proxy/config/yaml.c: the YAML loader behind px_config_load_file(): reads one file with
 * libyaml's document API and turns it into a px_config_t, checking every key, type and range.
 *
 * The schema is documented at the top of proxy/config/config.c. Every error is one line,
 * "FILE:LINE:COL: FIELD: what is wrong", with LINE and COL 1-based from libyaml's marks and
 * FIELD a path such as clusters[0].endpoints[1]. A file is applied whole or not at all: the
 * loader fills a fresh config and frees it on the first error. Thread: main.
 * Alloc: tcache (mem_malloc) for the config; libyaml's own parser state uses libc.
 */
#include "mem/base.h"
#include "proxy/config/config.h"
#include "proxy/config/internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "mem/malloc.h"

#define PATH_MAX_LEN 192

typedef struct yctx_s {
    const char *file;     /* borrows: the caller's path */
    yaml_document_t *doc; /* borrows: lives for the whole load */
    px_config_t *cfg;     /* owns until the load succeeds */
    char *err;
    size_t err_len;
} yctx_t;

MEM_PRINTF(4, 5)
static int yerr(yctx_t *c, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
    char msg[PX_CONFIG_ERR_MAX];
    va_list ap;

    MEM_ASSERT(c != NULL);
    MEM_ASSERT(n != NULL);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return px__cfg_errf(c->err, c->err_len, "%s:%zu:%zu: %s: %s", c->file,
                        (size_t)n->start_mark.line + 1, (size_t)n->start_mark.column + 1,
                        path[0] ? path : "(top level)", msg);
}

static void path_key(char *buf, const char *path, const char *key)
{
    if (path[0])
        snprintf(buf, PATH_MAX_LEN, "%s.%s", path, key);
    else
        snprintf(buf, PATH_MAX_LEN, "%s", key);
}

static void path_idx(char *buf, const char *path, size_t idx)
{
    snprintf(buf, PATH_MAX_LEN, "%s[%zu]", path, idx);
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        return "a scalar";
    default:
        return "nothing";
    }
}

static bool is_null(const yaml_node_t *n)
{
    const char *v;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    v = (const char *)n->data.scalar.value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static yaml_node_t *node_at(yctx_t *c, int idx)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, idx);
    MEM_ASSERT(n != NULL);
    return n;
}

/* Gets the text of scalar `n` for `path`; rejects lists, mappings, null and embedded NULs. */
static int scalar(yctx_t *c, const yaml_node_t *n, const char *path, const char **out)
{
    MEM_ASSERT(out != NULL);
    if (n->type != YAML_SCALAR_NODE)
        return yerr(c, n, path, "expected a value, got %s", kind_name(n));
    if (is_null(n))
        return yerr(c, n, path, "value is missing");
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return yerr(c, n, path, "value contains a NUL byte");
    *out = (const char *)n->data.scalar.value;
    return 0;
}

/* Checks that `n` is a mapping whose keys are unique scalars from `allowed`. */
static int check_map(yctx_t *c, const yaml_node_t *n, const char *path, const char *const *allowed,
                     size_t allowed_cnt)
{
    char fp[PATH_MAX_LEN];

    MEM_ASSERT(allowed_cnt > 0);
    if (n->type != YAML_MAPPING_NODE)
        return yerr(c, n, path, "expected a mapping, got %s", kind_name(n));
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = node_at(c, p->key);
        const char *key;
        bool ok = false;

        if (k->type != YAML_SCALAR_NODE)
            return yerr(c, k, path, "keys must be plain names, got %s", kind_name(k));
        key = (const char *)k->data.scalar.value;
        for (size_t i = 0; i < allowed_cnt && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        path_key(fp, path, key);
        if (!ok) {
            char list[256];
            size_t off = 0;
            list[0] = '\0';
            for (size_t i = 0; i < allowed_cnt && off < sizeof(list); i++)
                off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                                        allowed[i]);
            return yerr(c, k, fp, "unknown key '%s' (allowed: %s)", key, list);
        }
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *k2 = node_at(c, q->key);
            if (k2->type == YAML_SCALAR_NODE &&
                strcmp((const char *)k2->data.scalar.value, key) == 0)
                return yerr(c, k, fp, "duplicate key (first at line %zu)",
                            (size_t)k2->start_mark.line + 1);
        }
    }
    return 0;
}

/* The value for `key` in mapping `n` (already checked), or NULL when absent. */
static yaml_node_t *map_get(yctx_t *c, const yaml_node_t *n, const char *key)
{
    MEM_ASSERT(n->type == YAML_MAPPING_NODE);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = node_at(c, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return node_at(c, p->value);
    }
    return NULL;
}

/* Checks that `n` is a list of 1..max items; `*cnt` gets the count. */
static int check_seq(yctx_t *c, const yaml_node_t *n, const char *path, size_t max, size_t *cnt)
{
    size_t len;

    if (n->type != YAML_SEQUENCE_NODE)
        return yerr(c, n, path, "expected a list, got %s", kind_name(n));
    len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len == 0)
        return yerr(c, n, path, "the list is empty (give at least one item)");
    if (len > max)
        return yerr(c, n, path, "too many items (%zu, at most %zu)", len, max);
    *cnt = len;
    return 0;
}

static yaml_node_t *seq_item(yctx_t *c, const yaml_node_t *n, size_t i)
{
    MEM_ASSERT(n->type == YAML_SEQUENCE_NODE);
    return node_at(c, n->data.sequence.items.start[i]);
}

/* ---- typed optional fields: absent keys leave `*dst` at its default ---------------------- */

static int opt_str(yctx_t *c, const yaml_node_t *m, const char *path, const char *key,
                   const char **dst, yaml_node_t **node)
{
    char fp[PATH_MAX_LEN];
    yaml_node_t *v = map_get(c, m, key);

    *dst = NULL;
    if (node)
        *node = v;
    if (!v)
        return 0;
    path_key(fp, path, key);
    return scalar(c, v, fp, dst);
}

static int opt_u32(yctx_t *c, const yaml_node_t *m, const char *path, const char *key, uint64_t min,
                   uint64_t max, uint32_t *dst)
{
    char fp[PATH_MAX_LEN], why[PX_CFG_WHY_MAX];
    yaml_node_t *v;
    const char *s;
    uint64_t val;
    int rc = opt_str(c, m, path, key, &s, &v);

    MEM_ASSERT(max <= UINT32_MAX);
    if (rc < 0 || !s)
        return rc;
    path_key(fp, path, key);
    if (px__cfg_parse_uint(s, min, max, &val, why, sizeof(why)) < 0)
        return yerr(c, v, fp, "%s", why);
    *dst = (uint32_t)val;
    return 0;
}

static int opt_ms(yctx_t *c, const yaml_node_t *m, const char *path, const char *key,
                  uint64_t min_ms, uint64_t max_ms, uint64_t *dst)
{
    char fp[PATH_MAX_LEN], why[PX_CFG_WHY_MAX];
    yaml_node_t *v;
    const char *s;
    uint64_t val;
    int rc = opt_str(c, m, path, key, &s, &v);

    if (rc < 0 || !s)
        return rc;
    path_key(fp, path, key);
    if (px__cfg_parse_duration(s, max_ms, &val, why, sizeof(why)) < 0)
        return yerr(c, v, fp, "%s", why);
    if (val < min_ms)
        return yerr(c, v, fp, "duration '%s' is too short (at least %llums)", s,
                    (unsigned long long)min_ms);
    *dst = val;
    return 0;
}

static int opt_ms32(yctx_t *c, const yaml_node_t *m, const char *path, const char *key,
                    uint64_t min_ms, uint64_t max_ms, uint32_t *dst)
{
    uint64_t v = *dst;
    int rc;

    MEM_ASSERT(max_ms <= UINT32_MAX);
    rc = opt_ms(c, m, path, key, min_ms, max_ms, &v);
    if (rc == 0)
        *dst = (uint32_t)v;
    return rc;
}

static int opt_size(yctx_t *c, const yaml_node_t *m, const char *path, const char *key, size_t min,
                    size_t max, size_t *dst)
{
    char fp[PATH_MAX_LEN], why[PX_CFG_WHY_MAX];
    yaml_node_t *v;
    const char *s;
    int rc = opt_str(c, m, path, key, &s, &v);

    if (rc < 0 || !s)
        return rc;
    path_key(fp, path, key);
    if (px__cfg_parse_size_range(s, min, max, dst, why, sizeof(why)) < 0)
        return yerr(c, v, fp, "%s", why);
    return 0;
}

static int opt_bool(yctx_t *c, const yaml_node_t *m, const char *path, const char *key, bool *dst)
{
    char fp[PATH_MAX_LEN], why[PX_CFG_WHY_MAX];
    yaml_node_t *v;
    const char *s;
    int rc = opt_str(c, m, path, key, &s, &v);

    if (rc < 0 || !s)
        return rc;
    path_key(fp, path, key);
    if (px__cfg_parse_bool(s, dst, why, sizeof(why)) < 0)
        return yerr(c, v, fp, "%s", why);
    return 0;
}

static int opt_frac(yctx_t *c, const yaml_node_t *m, const char *path, const char *key, double *dst,
                    yaml_node_t **node)
{
    char fp[PATH_MAX_LEN], why[PX_CFG_WHY_MAX];
    const char *s;
    int rc = opt_str(c, m, path, key, &s, node);

    if (rc < 0 || !s)
        return rc;
    path_key(fp, path, key);
    if (px__cfg_parse_fraction(s, 0.0, 1.0, dst, why, sizeof(why)) < 0)
        return yerr(c, *node, fp, "%s", why);
    return 0;
}

static int need(yctx_t *c, const yaml_node_t *m, const char *path, const char *key,
                yaml_node_t **out)
{
    *out = map_get(c, m, key);
    if (!*out)
        return yerr(c, m, path, "missing required key '%s'", key);
    return 0;
}

/* ---- sections ----------------------------------------------------------------------------- */

/* Resolves a relative file name against the directory of the config file, so that a config
 * and its certificates can move together. */
static int rel_path(yctx_t *c, const char *s, char *buf, size_t len)
{
    const char *slash = strrchr(c->file, '/');
    int n;

    MEM_ASSERT(len > 0);
    if (s[0] == '/' || !slash)
        n = snprintf(buf, len, "%s", s);
    else
        n = snprintf(buf, len, "%.*s/%s", (int)(slash - c->file), c->file, s);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int load_listener(yctx_t *c, const yaml_node_t *n, const char *path, size_t idx)
{
    static const char *const keys[] = {"name", "address", "tls"};
    static const char *const tls_keys[] = {"cert", "key"};
    char fp[PATH_MAX_LEN], why[PX_CFG_WHY_MAX], full[4096];
    px_listener_cfg_t *l = &c->cfg->listeners[idx];
    yaml_node_t *v, *tls;
    const char *s;
    int rc;

    if ((rc = check_map(c, n, path, keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = need(c, n, path, "address", &v)) < 0)
        return rc;
    path_key(fp, path, "address");
    if ((rc = scalar(c, v, fp, &s)) < 0)
        return rc;
    if (px__cfg_parse_addr(s, true, &l->addr, why, sizeof(why)) < 0)
        return yerr(c, v, fp, "%s", why);
    for (size_t j = 0; j < idx; j++) {
        const px_addr_t *o = &c->cfg->listeners[j].addr;
        if (o->port != 0 && o->port == l->addr.port && strcmp(o->host, l->addr.host) == 0)
            return yerr(c, v, fp, "address '%s' is already used by listeners[%zu]", s, j);
    }

    if ((rc = opt_str(c, n, path, "name", &s, &v)) < 0)
        return rc;
    path_key(fp, path, "name");
    if (s) {
        if (px__cfg_check_name(s, why, sizeof(why)) < 0)
            return yerr(c, v, fp, "%s", why);
        if ((rc = px__cfg_set_str(&l->name, s)) < 0)
            return rc;
    } else {
        char def[32];
        snprintf(def, sizeof(def), "listener%zu", idx);
        if ((rc = px__cfg_set_str(&l->name, def)) < 0)
            return rc;
    }
    for (size_t j = 0; j < idx; j++) {
        if (strcmp(c->cfg->listeners[j].name, l->name) == 0)
            return yerr(c, v ? v : n, fp, "duplicate listener name '%s' (also listeners[%zu])",
                        l->name, j);
    }

    tls = map_get(c, n, "tls");
    if (!tls)
        return 0;
    path_key(fp, path, "tls");
    if ((rc = check_map(c, tls, fp, tls_keys, MEM_ARRAY_LEN(tls_keys))) < 0)
        return rc;
    for (size_t k = 0; k < 2; k++) {
        char kp[PATH_MAX_LEN];
        yaml_node_t *f;
        if ((rc = need(c, tls, fp, tls_keys[k], &f)) < 0)
            return rc;
        path_key(kp, fp, tls_keys[k]);
        if ((rc = scalar(c, f, kp, &s)) < 0)
            return rc;
        if ((rc = rel_path(c, s, full, sizeof(full))) < 0)
            return yerr(c, f, kp, "path '%s' is too long", s);
        if (px__cfg_check_readable(full, why, sizeof(why)) < 0)
            return yerr(c, f, kp, "%s", why);
        if ((rc = px__cfg_set_str(k == 0 ? &l->tls_cert : &l->tls_key, full)) < 0)
            return rc;
    }
    l->tls = true;
    return 0;
}

static int load_listeners(yctx_t *c, const yaml_node_t *n)
{
    char fp[PATH_MAX_LEN];
    size_t cnt;
    int rc;

    if ((rc = check_seq(c, n, "listeners", PX_CFG_LISTENERS_MAX, &cnt)) < 0)
        return rc;
    c->cfg->listeners = mem_calloc(cnt, sizeof(px_listener_cfg_t));
    if (!c->cfg->listeners)
        return -ENOMEM;
    /* Zeroed elements are safe to finalise, so the count is set before they are filled. */
    c->cfg->listeners_cnt = cnt;
    for (size_t i = 0; i < cnt; i++) {
        path_idx(fp, "listeners", i);
        if ((rc = load_listener(c, seq_item(c, n, i), fp, i)) < 0)
            return rc;
    }
    return 0;
}

/* A cluster's `tls:` block (see config.c's schema). `cl->tls` is already set for protocol h2,
 * which needs no block; h2c (cleartext by name) with a block is refused. */
static int load_cluster_tls(yctx_t *c, const yaml_node_t *n, const char *path, px_cluster_cfg_t *cl)
{
    static const char *const keys[] = {"sni", "verify", "ca", "cert", "key"};
    char fp[PATH_MAX_LEN], kp[PATH_MAX_LEN], why[PX_CFG_WHY_MAX], full[4096];
    yaml_node_t *tls = map_get(c, n, "tls"), *v, *cert_v = NULL, *key_v = NULL;
    const char *s;
    int rc;

    MEM_ASSERT(cl != NULL);
    if (!tls)
        return 0;
    path_key(fp, path, "tls");
    if (!cl->tls && cl->proto == PX_PROTO_H2C && map_get(c, n, "protocol"))
        return yerr(c, tls, fp,
                    "protocol h2c is cleartext HTTP/2; say 'protocol: h2' for HTTP/2 over TLS");
    if (!cl->tls && cl->proto == PX_PROTO_H2C)
        return yerr(c, tls, fp,
                    "tls needs 'protocol: h2' (HTTP/2 over TLS) or 'protocol: http1' "
                    "(HTTP/1.1 over TLS); the default protocol h2c is cleartext");
    if ((rc = check_map(c, tls, fp, keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    cl->tls = true;
    if ((rc = opt_bool(c, tls, fp, "verify", &cl->tls_verify)) < 0)
        return rc;
    if ((rc = opt_str(c, tls, fp, "sni", &s, &v)) < 0)
        return rc;
    if (s) {
        path_key(kp, fp, "sni");
        /* A DNS name as SNI carries it (RFC 6066 3: no IP literal, no trailing dot). */
        size_t len = strlen(s);
        if (len == 0 || len > 253 ||
            strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789.-") != len ||
            s[len - 1] == '.')
            return yerr(c, v, kp, "sni '%s' is not a DNS host name", s);
        if ((rc = px__cfg_set_str(&cl->tls_sni, s)) < 0)
            return rc;
    }
    for (size_t k = 2; k < MEM_ARRAY_LEN(keys); k++) {
        char **dst = k == 2 ? &cl->tls_ca : k == 3 ? &cl->tls_cert : &cl->tls_key;
        if ((rc = opt_str(c, tls, fp, keys[k], &s, &v)) < 0)
            return rc;
        if (!s)
            continue;
        path_key(kp, fp, keys[k]);
        if ((rc = rel_path(c, s, full, sizeof(full))) < 0)
            return yerr(c, v, kp, "path '%s' is too long", s);
        if (px__cfg_check_readable(full, why, sizeof(why)) < 0 ||
            px__cfg_check_pem(full, k == 4, why, sizeof(why)) < 0)
            return yerr(c, v, kp, "%s", why);
        if ((rc = px__cfg_set_str(dst, full)) < 0)
            return rc;
        if (k == 3)
            cert_v = v;
        if (k == 4)
            key_v = v;
    }
    if (cert_v && !key_v)
        return yerr(c, cert_v, fp, "cert needs key (the client certificate's private key)");
    if (key_v && !cert_v)
        return yerr(c, key_v, fp, "key needs cert (the client certificate)");
    if (key_v && px__cfg_check_pem_pair(cl->tls_cert, cl->tls_key, why, sizeof(why)) < 0) {
        path_key(kp, fp, "key");
        return yerr(c, key_v, kp, "%s", why);
    }
    return 0;
}

static bool is_header_safe(const char *s);

/* A cluster's `retries:` block; `connect_retries` is its max's older spelling, not both. */
static int load_cluster_retries(yctx_t *c, const yaml_node_t *n, const char *path,
                                px_cluster_cfg_t *cl)
{
    static const char *const keys[] = {"max", "budget_percent", "min_retry_concurrency"};
    char fp[PATH_MAX_LEN];
    yaml_node_t *v = map_get(c, n, "retries");
    int rc;

    MEM_ASSERT(cl != NULL);
    if (!v)
        return 0;
    path_key(fp, path, "retries");
    if (map_get(c, n, "connect_retries"))
        return yerr(c, v, fp, "give either 'retries' or 'connect_retries' (its older spelling)");
    if ((rc = check_map(c, v, fp, keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = opt_u32(c, v, fp, "max", 0, 16, &cl->retries_max)) < 0 ||
        (rc = opt_u32(c, v, fp, "budget_percent", 0, 100, &cl->retry_budget_percent)) < 0 ||
        (rc = opt_u32(c, v, fp, "min_retry_concurrency", 0, 10000, &cl->retry_min_concurrency)) < 0)
        return rc;
    return 0;
}

/* A cluster's `health_check:` block. */
static int load_cluster_health_check(yctx_t *c, const yaml_node_t *n, const char *path,
                                     px_cluster_cfg_t *cl)
{
    static const char *const keys[] = {
        "path",           "interval", "timeout", "healthy_threshold", "unhealthy_threshold",
        "expected_status"};
    char fp[PATH_MAX_LEN], kp[PATH_MAX_LEN];
    px_health_check_cfg_t *h = &cl->health_check;
    yaml_node_t *v = map_get(c, n, "health_check"), *pv;
    const char *s;
    int rc;

    MEM_ASSERT(cl != NULL);
    if (!v)
        return 0;
    path_key(fp, path, "health_check");
    if ((rc = check_map(c, v, fp, keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = need(c, v, fp, "path", &pv)) < 0)
        return rc;
    path_key(kp, fp, "path");
    if ((rc = scalar(c, pv, kp, &s)) < 0)
        return rc;
    if (s[0] != '/' || strlen(s) > 1024 || !is_header_safe(s) || strchr(s, ' '))
        return yerr(c, pv, kp,
                    "path '%s' must start with '/' and hold no space or control "
                    "byte (at most 1024 bytes)",
                    s);
    if ((rc = px__cfg_set_str(&h->path, s)) < 0)
        return rc;
    if ((rc = opt_ms32(c, v, fp, "interval", 10, 3600000, &h->interval_ms)) < 0 ||
        (rc = opt_ms32(c, v, fp, "timeout", 1, 300000, &h->timeout_ms)) < 0 ||
        (rc = opt_u32(c, v, fp, "healthy_threshold", 1, 1000, &h->healthy_threshold)) < 0 ||
        (rc = opt_u32(c, v, fp, "unhealthy_threshold", 1, 1000, &h->unhealthy_threshold)) < 0 ||
        (rc = opt_u32(c, v, fp, "expected_status", 200, 599, &h->expected_status)) < 0)
        return rc;
    h->enabled = true;
    return 0;
}

/* A cluster's `outlier_detection:` block. */
static int load_cluster_outlier(yctx_t *c, const yaml_node_t *n, const char *path,
                                px_cluster_cfg_t *cl)
{
    static const char *const keys[] = {"consecutive_5xx",      "consecutive_gateway_failure",
                                       "base_ejection_time",   "max_ejection_time",
                                       "max_ejection_percent", "interval"};
    char fp[PATH_MAX_LEN];
    px_outlier_cfg_t *o = &cl->outlier;
    yaml_node_t *v = map_get(c, n, "outlier_detection");
    int rc;

    MEM_ASSERT(cl != NULL);
    if (!v)
        return 0;
    path_key(fp, path, "outlier_detection");
    if ((rc = check_map(c, v, fp, keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = opt_u32(c, v, fp, "consecutive_5xx", 0, 1000, &o->consecutive_5xx)) < 0 ||
        (rc = opt_u32(c, v, fp, "consecutive_gateway_failure", 0, 1000,
                      &o->consecutive_gateway_failure)) < 0 ||
        (rc = opt_ms32(c, v, fp, "base_ejection_time", 1, 3600000, &o->base_ejection_ms)) < 0 ||
        (rc = opt_ms32(c, v, fp, "max_ejection_time", 1, 86400000, &o->max_ejection_ms)) < 0 ||
        (rc = opt_u32(c, v, fp, "max_ejection_percent", 0, 100, &o->max_ejection_percent)) < 0 ||
        (rc = opt_ms32(c, v, fp, "interval", 10, 3600000, &o->interval_ms)) < 0)
        return rc;
    o->enabled = true;
    return 0;
}

/* A cluster's or route's `memory: {limit: SIZE}` (a memory tenant named `name`, see config.c's
 * schema): appends the tenant and sets `*id`, or leaves `*id` alone when there is no key. */
static int load_tenant(yctx_t *c, const yaml_node_t *n, const char *path, const char *name,
                       unsigned *id)
{
    static const char *const keys[] = {"limit"};
    char fp[PATH_MAX_LEN];
    yaml_node_t *m = map_get(c, n, "memory"), *v;
    size_t limit = 0;
    int rc;

    if (m == NULL)
        return 0;
    path_key(fp, path, "memory");
    if ((rc = check_map(c, m, fp, keys, MEM_ARRAY_LEN(keys))) < 0 ||
        (rc = need(c, m, fp, "limit", &v)) < 0 ||
        (rc = opt_size(c, m, fp, "limit", PX_TENANT_LIMIT_MIN, PX_TENANT_LIMIT_MAX, &limit)) < 0)
        return rc;
    MEM_ASSERT(limit >= PX_TENANT_LIMIT_MIN);
    return px__config_add_tenant(c->cfg, name, limit, id);
}

static int load_cluster(yctx_t *c, const yaml_node_t *n, const char *path, size_t idx)
{
    static const char *const keys[] = {"name",
                                       "protocol",
                                       "lb",
                                       "endpoints",
                                       "connect_timeout",
                                       "request_timeout",
                                       "idle_timeout",
                                       "max_streams_per_connection",
                                       "max_connections_per_endpoint",
                                       "connect_retries",
                                       "retries",
                                       "health_check",
                                       "outlier_detection",
                                       "tls",
                                       "memory"};
    char fp[PATH_MAX_LEN], ep[PATH_MAX_LEN], why[PX_CFG_WHY_MAX];
    px_cluster_cfg_t *cl = &c->cfg->clusters[idx];
    yaml_node_t *v;
    const char *s;
    size_t cnt;
    int rc;

    if ((rc = check_map(c, n, path, keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = need(c, n, path, "name", &v)) < 0)
        return rc;
    path_key(fp, path, "name");
    if ((rc = scalar(c, v, fp, &s)) < 0)
        return rc;
    if (px__cfg_check_name(s, why, sizeof(why)) < 0)
        return yerr(c, v, fp, "%s", why);
    for (size_t j = 0; j < idx; j++) {
        if (strcmp(c->cfg->clusters[j].name, s) == 0)
            return yerr(c, v, fp, "duplicate cluster name '%s' (also clusters[%zu])", s, j);
    }
    if ((rc = px__cfg_set_str(&cl->name, s)) < 0)
        return rc;

    px__cfg_cluster_defaults(cl);

    if ((rc = opt_str(c, n, path, "protocol", &s, &v)) < 0)
        return rc;
    if (s) {
        if (strcmp(s, "h2c") == 0) {
            cl->proto = PX_PROTO_H2C;
        } else if (strcmp(s, "http1") == 0) {
            cl->proto = PX_PROTO_HTTP1;
        } else if (strcmp(s, "h2") == 0) {
            cl->proto = PX_PROTO_H2C; /* HTTP/2 framing, over TLS (below) */
            cl->tls = true;
        } else {
            path_key(fp, path, "protocol");
            return yerr(c, v, fp, "unknown protocol '%s' (use h2c, h2 or http1)", s);
        }
    }
    if ((rc = load_cluster_tls(c, n, path, cl)) < 0)
        return rc;
    if ((rc = opt_str(c, n, path, "lb", &s, &v)) < 0)
        return rc;
    if (s) {
        if (strcmp(s, "round_robin") == 0) {
            cl->lb = PX_LB_ROUND_ROBIN;
        } else if (strcmp(s, "least_request") == 0) {
            cl->lb = PX_LB_LEAST_REQUEST;
        } else {
            path_key(fp, path, "lb");
            return yerr(c, v, fp, "unknown lb '%s' (use round_robin or least_request)", s);
        }
    }

    if ((rc = need(c, n, path, "endpoints", &v)) < 0)
        return rc;
    path_key(fp, path, "endpoints");
    if ((rc = check_seq(c, v, fp, PX_CFG_ENDPOINTS_MAX, &cnt)) < 0)
        return rc;
    cl->endpoints = mem_calloc(cnt, sizeof(px_addr_t));
    if (!cl->endpoints)
        return -ENOMEM;
    cl->endpoints_cnt = cnt;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = seq_item(c, v, i);
        path_idx(ep, fp, i);
        if ((rc = scalar(c, e, ep, &s)) < 0)
            return rc;
        if (px__cfg_parse_addr(s, false, &cl->endpoints[i], why, sizeof(why)) < 0)
            return yerr(c, e, ep, "%s", why);
    }

    if ((rc = opt_ms32(c, n, path, "connect_timeout", 1, 300000, &cl->connect_timeout_ms)) < 0 ||
        (rc = opt_ms32(c, n, path, "request_timeout", 0, 86400000, &cl->request_timeout_ms)) < 0 ||
        (rc = opt_ms32(c, n, path, "idle_timeout", 0, 86400000, &cl->idle_timeout_ms)) < 0 ||
        (rc = opt_u32(c, n, path, "max_streams_per_connection", 1, 100000,
                      &cl->max_streams_per_conn)) < 0 ||
        (rc = opt_u32(c, n, path, "max_connections_per_endpoint", 1, 100000,
                      &cl->max_conns_per_endpoint)) < 0 ||
        (rc = opt_u32(c, n, path, "connect_retries", 0, 16, &cl->retries_max)) < 0)
        return rc;
    if ((rc = load_cluster_retries(c, n, path, cl)) < 0 ||
        (rc = load_cluster_health_check(c, n, path, cl)) < 0 ||
        (rc = load_cluster_outlier(c, n, path, cl)) < 0)
        return rc;
    return load_tenant(c, n, path, cl->name, &cl->tenant);
}

static int load_clusters(yctx_t *c, const yaml_node_t *n)
{
    char fp[PATH_MAX_LEN];
    size_t cnt;
    int rc;

    /* An empty cluster list is allowed: a config of direct responses needs none. */
    if (n->type == YAML_SEQUENCE_NODE && n->data.sequence.items.top == n->data.sequence.items.start)
        return 0;
    if ((rc = check_seq(c, n, "clusters", PX_CFG_CLUSTERS_MAX, &cnt)) < 0)
        return rc;
    c->cfg->clusters = mem_calloc(cnt, sizeof(px_cluster_cfg_t));
    if (!c->cfg->clusters)
        return -ENOMEM;
    c->cfg->clusters_cnt = cnt;
    for (size_t i = 0; i < cnt; i++) {
        path_idx(fp, "clusters", i);
        if ((rc = load_cluster(c, seq_item(c, n, i), fp, i)) < 0)
            return rc;
    }
    return 0;
}

/* Header values must not smuggle a line break or control byte into a response. */
static bool is_header_safe(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

static int load_match(yctx_t *c, const yaml_node_t *n, const char *path, px_route_cfg_t *r)
{
    static const char *const keys[] = {"authority", "path_prefix"};
    char fp[PATH_MAX_LEN];
    yaml_node_t *v;
    const char *s;
    int rc;

    if ((rc = check_map(c, n, path, keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = opt_str(c, n, path, "authority", &s, &v)) < 0)
        return rc;
    if (s) {
        size_t len = strlen(s);
        path_key(fp, path, "authority");
        if (len == 0 || len > 255)
            return yerr(c, v, fp, "authority must be 1-255 characters");
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)s[i];
            bool ok = isalnum(ch) || ch == '-' || ch == '.' || ch == ':' || ch == '[' ||
                      ch == ']' || (ch == '*' && i == 0 && s[1] == '.');
            if (!ok)
                return yerr(c, v, fp,
                            "'%s' is not a host name (use a.example.com or *.example.com)", s);
        }
        if ((rc = px__cfg_set_str(&r->authority, s)) < 0)
            return rc;
        /* Host names compare case-insensitively; store them folded once. */
        for (char *p = r->authority; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    if ((rc = opt_str(c, n, path, "path_prefix", &s, &v)) < 0)
        return rc;
    if (s) {
        path_key(fp, path, "path_prefix");
        if (s[0] != '/')
            return yerr(c, v, fp, "path_prefix '%s' must start with '/'", s);
        if (!is_header_safe(s) || strchr(s, ' '))
            return yerr(c, v, fp, "path_prefix contains a space or control character");
        if ((rc = px__cfg_set_str(&r->path_prefix, s)) < 0)
            return rc;
    }
    return 0;
}

static int load_direct(yctx_t *c, const yaml_node_t *n, const char *path, px_route_cfg_t *r)
{
    static const char *const keys[] = {"status", "body", "content_type"};
    char fp[PATH_MAX_LEN];
    yaml_node_t *v;
    uint32_t status = 0;
    const char *s;
    int rc;

    if ((rc = check_map(c, n, path, keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = need(c, n, path, "status", &v)) < 0)
        return rc;
    if ((rc = opt_u32(c, n, path, "status", 200, 599, &status)) < 0)
        return rc;
    r->direct_status = (int)status;

    v = map_get(c, n, "body");
    if (v) {
        path_key(fp, path, "body");
        if (v->type != YAML_SCALAR_NODE)
            return yerr(c, v, fp, "expected a string, got %s", kind_name(v));
        if (v->data.scalar.length > PX_CFG_BODY_MAX)
            return yerr(c, v, fp, "body is too long (%zu bytes, at most %d)", v->data.scalar.length,
                        PX_CFG_BODY_MAX);
        /* The body is bytes: embedded NULs from "\0" escapes are kept. */
        r->direct_body = mem_malloc(v->data.scalar.length + 1);
        if (!r->direct_body)
            return -ENOMEM;
        memcpy(r->direct_body, v->data.scalar.value, v->data.scalar.length);
        r->direct_body[v->data.scalar.length] = '\0';
        r->direct_body_len = v->data.scalar.length;
    } else {
        r->direct_body = mem_strdup("");
        if (!r->direct_body)
            return -ENOMEM;
    }

    if ((rc = opt_str(c, n, path, "content_type", &s, &v)) < 0)
        return rc;
    if (s && (!is_header_safe(s) || s[0] == '\0')) {
        path_key(fp, path, "content_type");
        return yerr(c, v, fp, "content_type must be a non-empty header value");
    }
    return px__cfg_set_str(&r->direct_content_type, s ? s : "text/plain");
}

static int load_route(yctx_t *c, const yaml_node_t *n, const char *path, px_route_cfg_t *r)
{
    static const char *const keys[] = {"match", "cluster", "direct_response", "memory"};
    char fp[PATH_MAX_LEN];
    yaml_node_t *m, *cl, *dr;
    const char *s;
    int rc;

    if ((rc = check_map(c, n, path, keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    m = map_get(c, n, "match");
    if (m) {
        path_key(fp, path, "match");
        if ((rc = load_match(c, m, fp, r)) < 0)
            return rc;
    }
    if (!r->path_prefix && (rc = px__cfg_set_str(&r->path_prefix, "/")) < 0)
        return rc;
    if ((rc = load_tenant(c, n, path, path, &r->tenant)) < 0)
        return rc;
    r->own_tenant = r->tenant != 0;

    cl = map_get(c, n, "cluster");
    dr = map_get(c, n, "direct_response");
    if (cl && dr)
        return yerr(c, n, path, "give either 'cluster' or 'direct_response', not both");
    if (!cl && !dr)
        return yerr(c, n, path, "missing required key 'cluster' or 'direct_response'");
    if (dr) {
        path_key(fp, path, "direct_response");
        return load_direct(c, dr, fp, r);
    }
    path_key(fp, path, "cluster");
    if ((rc = scalar(c, cl, fp, &s)) < 0)
        return rc;
    for (size_t i = 0; i < c->cfg->clusters_cnt; i++) {
        if (strcmp(c->cfg->clusters[i].name, s) == 0) {
            r->cluster = &c->cfg->clusters[i];
            if (!r->own_tenant)
                r->tenant = r->cluster->tenant;
            return 0;
        }
    }
    {
        char list[256];
        size_t off = 0;
        list[0] = '\0';
        for (size_t i = 0; i < c->cfg->clusters_cnt && off < sizeof(list); i++)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                                    c->cfg->clusters[i].name);
        if (c->cfg->clusters_cnt == 0)
            return yerr(c, cl, fp, "unknown cluster '%s' (no clusters are defined)", s);
        return yerr(c, cl, fp, "unknown cluster '%s' (defined: %s)", s, list);
    }
}

static int load_routes(yctx_t *c, const yaml_node_t *n)
{
    char fp[PATH_MAX_LEN];
    size_t cnt;
    int rc;

    if ((rc = check_seq(c, n, "routes", PX_CFG_ROUTES_MAX, &cnt)) < 0)
        return rc;
    c->cfg->routes = mem_calloc(cnt, sizeof(px_route_cfg_t));
    if (!c->cfg->routes)
        return -ENOMEM;
    c->cfg->routes_cnt = cnt;
    for (size_t i = 0; i < cnt; i++) {
        path_idx(fp, "routes", i);
        if ((rc = load_route(c, seq_item(c, n, i), fp, &c->cfg->routes[i])) < 0)
            return rc;
    }
    return 0;
}

static int load_admin(yctx_t *c, const yaml_node_t *n)
{
    static const char *const keys[] = {"address", "token", "enabled", "allow_public"};
    char why[PX_CFG_WHY_MAX];
    yaml_node_t *v;
    const char *s;
    int rc;

    if ((rc = check_map(c, n, "admin", keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = opt_str(c, n, "admin", "address", &s, &v)) < 0)
        return rc;
    if (s && px__cfg_parse_addr(s, true, &c->cfg->admin.addr, why, sizeof(why)) < 0)
        return yerr(c, v, "admin.address", "%s", why);
    if ((rc = opt_str(c, n, "admin", "token", &s, &v)) < 0)
        return rc;
    if (s) {
        for (const char *p = s; *p; p++) {
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
                return yerr(c, v, "admin.token", "token must not contain spaces or controls");
        }
        if ((rc = px__cfg_set_str(&c->cfg->admin.token, s)) < 0)
            return rc;
    }
    if ((rc = opt_bool(c, n, "admin", "allow_public", &c->cfg->admin.allow_public)) < 0)
        return rc;
    return opt_bool(c, n, "admin", "enabled", &c->cfg->admin.enabled);
}

static int load_memory(yctx_t *c, const yaml_node_t *n)
{
    static const char *const keys[] = {"limit",      "elevated", "critical",
                                       "hysteresis", "decay",    "sample_bytes"};
    char why[PX_CFG_WHY_MAX];
    px_memory_cfg_t *m = &c->cfg->memory;
    yaml_node_t *v, *ve = NULL, *vc = NULL, *vh = NULL;
    const char *s;
    int rc;

    if ((rc = check_map(c, n, "memory", keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = opt_str(c, n, "memory", "limit", &s, &v)) < 0)
        return rc;
    if (s && px__cfg_parse_memory_limit(s, m, why, sizeof(why)) < 0)
        return yerr(c, v, "memory.limit", "%s", why);
    if ((rc = opt_frac(c, n, "memory", "elevated", &m->elevated, &ve)) < 0 ||
        (rc = opt_frac(c, n, "memory", "critical", &m->critical, &vc)) < 0 ||
        (rc = opt_frac(c, n, "memory", "hysteresis", &m->hysteresis, &vh)) < 0)
        return rc;
    if (m->elevated <= 0.0)
        return yerr(c, ve, "memory.elevated", "elevated must be above 0");
    if (m->critical <= m->elevated)
        return yerr(c, vc ? vc : ve, vc ? "memory.critical" : "memory.elevated",
                    "critical (%g) must be above elevated (%g)", m->critical, m->elevated);
    if (m->hysteresis >= m->elevated)
        return yerr(c, vh ? vh : ve, vh ? "memory.hysteresis" : "memory.elevated",
                    "hysteresis (%g) must be below elevated (%g)", m->hysteresis, m->elevated);
    if ((rc = opt_ms(c, n, "memory", "decay", 0, 3600000, &m->decay_ms)) < 0 ||
        (rc = opt_size(c, n, "memory", "sample_bytes", 0, (size_t)1 << 30, &m->sample_bytes)) < 0)
        return rc;
    return 0;
}

static int load_limits(yctx_t *c, const yaml_node_t *n)
{
    static const char *const keys[] = {"max_concurrent_streams",
                                       "max_header_list_size",
                                       "stream_buffer",
                                       "connection_memory",
                                       "stream_memory",
                                       "idle_timeout",
                                       "header_timeout",
                                       "stream_idle_timeout",
                                       "max_connections",
                                       "max_continuations",
                                       "rst_per_second",
                                       "control_frames_per_second",
                                       "send_timeout"};
    px_limits_cfg_t *l = &c->cfg->limits;
    size_t hdr = l->max_header_list_bytes;
    int rc;

    if ((rc = check_map(c, n, "limits", keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = opt_u32(c, n, "limits", "max_concurrent_streams", 1, 100000,
                      &l->max_concurrent_streams)) < 0 ||
        (rc = opt_size(c, n, "limits", "max_header_list_size", 1024, (size_t)16 << 20, &hdr)) < 0 ||
        (rc = opt_size(c, n, "limits", "stream_buffer", 1024, (size_t)16 << 20,
                       &l->stream_buffer_bytes)) < 0 ||
        (rc = opt_size(c, n, "limits", "connection_memory", (size_t)16 << 10, (size_t)1 << 30,
                       &l->conn_bytes_max)) < 0 ||
        (rc = opt_size(c, n, "limits", "stream_memory", (size_t)4 << 10, (size_t)1 << 30,
                       &l->stream_bytes_max)) < 0 ||
        (rc = opt_ms32(c, n, "limits", "idle_timeout", 0, 86400000, &l->idle_timeout_ms)) < 0 ||
        (rc = opt_ms32(c, n, "limits", "header_timeout", 1, 3600000, &l->header_timeout_ms)) < 0 ||
        (rc = opt_ms32(c, n, "limits", "stream_idle_timeout", 0, 86400000,
                       &l->stream_idle_timeout_ms)) < 0 ||
        (rc = opt_ms32(c, n, "limits", "send_timeout", 0, 86400000, &l->send_timeout_ms)) < 0 ||
        (rc = opt_u32(c, n, "limits", "max_connections", 1, 10000000, &l->max_connections)) < 0 ||
        (rc = opt_u32(c, n, "limits", "max_continuations", 0, 1000, &l->max_continuations)) < 0 ||
        (rc = opt_u32(c, n, "limits", "rst_per_second", 1, 1000000, &l->rst_per_sec)) < 0 ||
        (rc = opt_u32(c, n, "limits", "control_frames_per_second", 1, 1000000,
                      &l->control_frames_per_sec)) < 0)
        return rc;
    l->max_header_list_bytes = (uint32_t)hdr;
    if (l->stream_bytes_max > l->conn_bytes_max) {
        yaml_node_t *v = map_get(c, n, "stream_memory");
        return yerr(c, v ? v : map_get(c, n, "connection_memory"),
                    v ? "limits.stream_memory" : "limits.connection_memory",
                    "stream_memory (%zu) must not exceed connection_memory (%zu)",
                    l->stream_bytes_max, l->conn_bytes_max);
    }
    return 0;
}

/* headers.x_forwarded_for: append | replace | off; true and false (the old boolean) mean
 * append and off. */
static int load_xff(yctx_t *c, const yaml_node_t *headers)
{
    yaml_node_t *v;
    const char *s;
    bool on;
    char why[PX_CFG_WHY_MAX];
    int rc = opt_str(c, headers, "headers", "x_forwarded_for", &s, &v);

    if (rc < 0 || !s)
        return rc;
    if (strcmp(s, "append") == 0)
        c->cfg->x_forwarded_for = PX_XFF_APPEND;
    else if (strcmp(s, "replace") == 0)
        c->cfg->x_forwarded_for = PX_XFF_REPLACE;
    else if (px__cfg_parse_bool(s, &on, why, sizeof(why)) == 0)
        c->cfg->x_forwarded_for = on ? PX_XFF_APPEND : PX_XFF_OFF;
    else
        return yerr(c, v, "headers.x_forwarded_for",
                    "unknown x_forwarded_for '%s' (use append, replace or off)", s);
    return 0;
}

static int load_reload(yctx_t *c, const yaml_node_t *n)
{
    static const char *const keys[] = {"watch", "poll_interval"};
    int rc;

    char why[PX_CFG_WHY_MAX];
    yaml_node_t *v;
    const char *s;

    if ((rc = check_map(c, n, "reload", keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;
    if ((rc = opt_str(c, n, "reload", "watch", &s, &v)) < 0)
        return rc;
    if (s && strcmp(s, "poll") == 0) {
        c->cfg->reload.watch = true;
        c->cfg->reload.watch_poll = true;
    } else if (s && px__cfg_parse_bool(s, &c->cfg->reload.watch, why, sizeof(why)) < 0) {
        return yerr(c, v, "reload.watch", "'%s' is not true, false or poll", s);
    }
    return opt_ms32(c, n, "reload", "poll_interval", 100, 3600000,
                    &c->cfg->reload.poll_interval_ms);
}

static int load_root(yctx_t *c, const yaml_node_t *root)
{
    static const char *const keys[] = {
        "listeners",       "clusters",    "routes",     "admin",         "workers",
        "memory",          "limits",      "access_log", "drain_timeout", "headers",
        "escaped_slashes", "server_name", "reload"};
    static const char *const hdr_keys[] = {"x_forwarded_for", "via"};
    char why[PX_CFG_WHY_MAX];
    px_config_t *cfg = c->cfg;
    yaml_node_t *v;
    const char *s;
    int rc;

    if ((rc = check_map(c, root, "", keys, MEM_ARRAY_LEN(keys))) < 0)
        return rc;

    v = map_get(c, root, "listeners");
    rc = v ? load_listeners(c, v) : px__config_add_default_listener(cfg);
    if (rc < 0)
        return rc;
    v = map_get(c, root, "clusters");
    if (v && (rc = load_clusters(c, v)) < 0)
        return rc;
    v = map_get(c, root, "routes");
    rc = v ? load_routes(c, v) : px__config_add_default_route(cfg);
    if (rc < 0)
        return rc;
    v = map_get(c, root, "admin");
    if (v && (rc = load_admin(c, v)) < 0)
        return rc;

    if ((rc = opt_str(c, root, "", "workers", &s, &v)) < 0)
        return rc;
    if (s && px__cfg_parse_workers(s, &cfg->workers, why, sizeof(why)) < 0)
        return yerr(c, v, "workers", "%s", why);

    v = map_get(c, root, "memory");
    if (v && (rc = load_memory(c, v)) < 0)
        return rc;
    v = map_get(c, root, "limits");
    if (v && (rc = load_limits(c, v)) < 0)
        return rc;
    v = map_get(c, root, "reload");
    if (v && (rc = load_reload(c, v)) < 0)
        return rc;

    v = map_get(c, root, "access_log");
    if (v && !is_null(v)) {
        if ((rc = scalar(c, v, "access_log", &s)) < 0)
            return rc;
        if ((rc = px__cfg_set_str(&cfg->access_log, s)) < 0)
            return rc;
    }
    if ((rc = opt_ms32(c, root, "", "drain_timeout", 0, 3600000, &cfg->drain_timeout_ms)) < 0)
        return rc;

    v = map_get(c, root, "headers");
    if (v) {
        if ((rc = check_map(c, v, "headers", hdr_keys, MEM_ARRAY_LEN(hdr_keys))) < 0 ||
            (rc = load_xff(c, v)) < 0 || (rc = opt_bool(c, v, "headers", "via", &cfg->add_via)) < 0)
            return rc;
    }

    if ((rc = opt_str(c, root, "", "escaped_slashes", &s, &v)) < 0)
        return rc;
    if (s && strcmp(s, "keep") == 0)
        cfg->keep_escaped_slashes = true;
    else if (s && strcmp(s, "reject") == 0)
        cfg->keep_escaped_slashes = false;
    else if (s)
        return yerr(c, v, "escaped_slashes", "unknown escaped_slashes '%s' (use reject or keep)",
                    s);

    if ((rc = opt_str(c, root, "", "server_name", &s, &v)) < 0)
        return rc;
    if (s) {
        size_t len = strlen(s);
        if (len == 0 || len > PX_CFG_NAME_MAX)
            return yerr(c, v, "server_name", "must be 1-%d characters", PX_CFG_NAME_MAX);
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (!isalnum(ch) && !strchr("_.-/", ch))
                return yerr(c, v, "server_name",
                            "'%s' may only contain letters, digits, '_', '.', '-' and '/'", s);
        }
        if ((rc = px__cfg_set_str(&cfg->server_name, s)) < 0)
            return rc;
    }
    return 0;
}

static int syntax_error(yctx_t *c, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return -ENOMEM;
    if (p->context)
        return px__cfg_errf(c->err, c->err_len, "%s:%zu:%zu: syntax: %s %s (at %zu:%zu)", c->file,
                            (size_t)p->problem_mark.line + 1, (size_t)p->problem_mark.column + 1,
                            p->problem ? p->problem : "invalid YAML", p->context,
                            (size_t)p->context_mark.line + 1, (size_t)p->context_mark.column + 1);
    return px__cfg_errf(c->err, c->err_len, "%s:%zu:%zu: syntax: %s", c->file,
                        (size_t)p->problem_mark.line + 1, (size_t)p->problem_mark.column + 1,
                        p->problem ? p->problem : "invalid YAML");
}

int px_config_load_file(const char *path, px_config_t **out, char *err, size_t err_len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool parser_ok = false, doc_ok = false;
    yctx_t c = {.file = path, .doc = &doc, .cfg = NULL, .err = err, .err_len = err_len};
    struct stat st;
    FILE *f = NULL;
    yaml_node_t *root;
    int rc;

    MEM_ASSERT(path != NULL);
    MEM_ASSERT(out != NULL);
    *out = NULL;
    if (err && err_len)
        err[0] = '\0';
    f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        px__cfg_errf(err, err_len, "%s: cannot open: %s", path, strerror(e));
        return e ? -e : -EINVAL;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = px__cfg_errf(err, err_len, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size > PX_CFG_FILE_MAX) {
        rc = px__cfg_errf(err, err_len, "%s: file is too large (%lld bytes, at most %d)", path,
                          (long long)st.st_size, PX_CFG_FILE_MAX);
        goto fail;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = -ENOMEM;
        goto fail;
    }
    parser_ok = true;
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&c, &parser);
        goto fail;
    }
    doc_ok = true;

    rc = px__config_new_empty(&c.cfg);
    if (rc < 0)
        goto fail;
    root = yaml_document_get_root_node(&doc);
    if (!root || is_null(root)) {
        /* An empty file is the defaults. */
        if ((rc = px__config_add_default_listener(c.cfg)) < 0 ||
            (rc = px__config_add_default_route(c.cfg)) < 0)
            goto fail;
    } else if ((rc = load_root(&c, root)) < 0) {
        goto fail;
    }

    /* A second document would be silently ignored; say so instead. */
    if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(&c, &parser);
        goto fail;
    }
    root = yaml_document_get_root_node(&extra);
    if (root) {
        rc = px__cfg_errf(err, err_len,
                          "%s:%zu:%zu: (top level): only one YAML document is "
                          "allowed",
                          path, (size_t)root->start_mark.line + 1,
                          (size_t)root->start_mark.column + 1);
        yaml_document_delete(&extra);
        goto fail;
    }
    yaml_document_delete(&extra);

    rc = px__cfg_set_str(&c.cfg->source, path);
    if (rc < 0)
        goto fail;
    MEM_ASSERT(c.cfg->listeners_cnt > 0);
    MEM_ASSERT(c.cfg->routes_cnt > 0);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    *out = c.cfg;
    return 0;

fail:
    if (rc == -ENOMEM && err && err_len && err[0] == '\0')
        px__cfg_errf(err, err_len, "%s: out of memory while loading the configuration", path);
    px_config_free(c.cfg);
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    if (f)
        fclose(f);
    return rc;
}
