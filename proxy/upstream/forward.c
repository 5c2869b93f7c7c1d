/*
 * proxy/upstream/forward.c: the request head weir forwards upstream (see forward.h).
 * Instances are the caller's; worker thread.
 */
#include "proxy/upstream/forward.h"
#include "mem/base.h"

#include <errno.h>
#include <string.h>

#include "proxy/upstream/authority.h"
#include "proxy/upstream/path.h"

#define IS(h, lit) px_http_ieq((h)->name, (h)->name_len, lit, sizeof(lit) - 1)

int px_forward_check(px_forward_req_t *r, const px_config_t *cfg, mem_subregion_t *sub,
                     const char **why)
{
    MEM_ASSERT(r != NULL && cfg != NULL && sub != NULL && why != NULL);
    MEM_ASSERT(r->path != NULL);
    *why = NULL;
    bool https = r->scheme && px_http_ieq(r->scheme, r->scheme_len, "https", 5);
    if (r->authority && px_authority_check(r->authority, r->authority_len, why) != 0)
        return -EINVAL;
    size_t hosts = 0;
    for (size_t i = 0; i < r->hdrs_cnt; i++) {
        const px_header_t *h = &r->hdrs[i];
        if (!IS(h, "host"))
            continue;
        if (++hosts > 1) {
            *why = "more than one host header";
            return -EINVAL;
        }
        if (px_authority_check(h->value, h->value_len, why) != 0)
            return -EINVAL;
        if (r->authority == NULL) {
            /* Without :authority the host header is the authority (RFC 9113 8.3.1). */
            r->authority = h->value;
            r->authority_len = h->value_len;
        } else if (!px_authority_same(r->authority, r->authority_len, h->value, h->value_len,
                                      https)) {
            *why = "host header differs from :authority";
            return -EINVAL;
        }
    }
    /* http and https URIs have a mandatory authority (RFC 9113 8.3.1). */
    if (r->authority == NULL) {
        *why = "no :authority or host";
        return -EINVAL;
    }
    char *p = mem_subregion_alloc(sub, r->path_len ? r->path_len : 1);
    if (p == NULL)
        return -ENOMEM;
    size_t n = 0;
    if (px_path_normalize(r->path, r->path_len, cfg->keep_escaped_slashes, p, &n, why) != 0)
        return -EINVAL;
    MEM_ASSERT(n <= r->path_len);
    r->path = p;
    r->path_len = n;
    return 0;
}

/* The client's x-forwarded-for values joined with ", " in order, then the peer address. */
static const char *xff_append(const px_forward_req_t *r, mem_subregion_t *sub, size_t *len)
{
    size_t il = strlen(r->peer_ip), need = il + 1;
    for (size_t i = 0; i < r->hdrs_cnt; i++)
        if (IS(&r->hdrs[i], "x-forwarded-for"))
            need += r->hdrs[i].value_len + 2;
    char *v = mem_subregion_alloc(sub, need);
    if (v == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < r->hdrs_cnt; i++) {
        const px_header_t *h = &r->hdrs[i];
        if (!IS(h, "x-forwarded-for") || h->value_len == 0)
            continue;
        memcpy(v + k, h->value, h->value_len);
        k += h->value_len;
        memcpy(v + k, ", ", 2);
        k += 2;
    }
    memcpy(v + k, r->peer_ip, il);
    k += il;
    MEM_ASSERT(k < need);
    v[k] = '\0';
    *len = k;
    return v;
}

px_header_t *px_forward_headers(const px_forward_req_t *r, const px_config_t *cfg,
                                mem_subregion_t *sub, size_t *cnt)
{
    MEM_ASSERT(r != NULL && cfg != NULL && sub != NULL && cnt != NULL);
    MEM_ASSERT(r->method != NULL && r->path != NULL && r->peer_ip != NULL);
    size_t max = 4 + r->hdrs_cnt + 3;
    px_header_t *h = mem_subregion_alloc(sub, sizeof(*h) * max);
    if (h == NULL)
        return NULL;
    const char *scheme = r->tls ? "https" : "http";
    size_t scheme_len = r->tls ? 5 : 4;
    size_t n = 0;
#define PUT(nm, v, vl) h[n++] = (px_header_t){nm, sizeof(nm) - 1, (v), (vl)}
    PUT(":method", r->method, r->method_len);
    PUT(":scheme", scheme, scheme_len);
    if (r->authority)
        PUT(":authority", r->authority, r->authority_len);
    PUT(":path", r->path, r->path_len);
    for (size_t i = 0; i < r->hdrs_cnt; i++) {
        const px_header_t *x = &r->hdrs[i];
        /* host: said by :authority (checked equal); the x-forwarded-* pair: weir's own. */
        if (IS(x, "host") || IS(x, "x-forwarded-for") || IS(x, "x-forwarded-proto"))
            continue;
        if (cfg->x_forwarded_for == PX_XFF_REPLACE && IS(x, "forwarded"))
            continue;
        h[n++] = *x;
    }
    if (cfg->x_forwarded_for == PX_XFF_APPEND) {
        size_t len = 0;
        const char *v = xff_append(r, sub, &len);
        if (v == NULL)
            return NULL;
        PUT("x-forwarded-for", v, len);
    } else if (cfg->x_forwarded_for == PX_XFF_REPLACE) {
        PUT("x-forwarded-for", r->peer_ip, strlen(r->peer_ip));
    }
    PUT("x-forwarded-proto", scheme, scheme_len);
    if (cfg->add_via) {
        const char *sn = cfg->server_name ? cfg->server_name : "weir";
        size_t sl = strlen(sn);
        char *v = mem_subregion_alloc(sub, sl + 3);
        if (v == NULL)
            return NULL;
        memcpy(v, "2 ", 2);
        memcpy(v + 2, sn, sl + 1);
        PUT("via", v, sl + 2);
    }
#undef PUT
    MEM_ASSERT(n <= max);
    *cnt = n;
    return h;
}
