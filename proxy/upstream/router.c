/*
 * proxy/upstream/router.c: first-match routing by authority and path prefix (see router.h).
 * Reads only the immutable config; no state of its own.
 */
#include "proxy/upstream/router.h"
#include "mem/base.h"

#include <string.h>
#include <strings.h>

/* Length of the host part of an authority: strips ":port", keeps "[v6]" brackets. */
static size_t host_len(const char *a, size_t len)
{
    if (len > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', len);
        return rb ? (size_t)(rb - a) + 1 : len;
    }
    const char *colon = memchr(a, ':', len);
    return colon ? (size_t)(colon - a) : len;
}

bool px_router_authority_match(const char *pattern, const char *authority, size_t len)
{
    if (pattern == NULL || pattern[0] == '\0' || strcmp(pattern, "*") == 0)
        return true;
    if (authority == NULL)
        return false;
    size_t hl = host_len(authority, len);
    /* A trailing dot names the same host ("a.example." is "a.example"). */
    if (hl > 0 && authority[hl - 1] == '.')
        hl--;
    size_t pl = strlen(pattern);
    if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
        /* "*.example" matches "a.example" and "b.a.example", never "example" itself. */
        size_t sl = pl - 1; /* ".example" */
        return hl > sl && strncasecmp(authority + hl - sl, pattern + 1, sl) == 0;
    }
    return hl == pl && strncasecmp(authority, pattern, pl) == 0;
}

static bool path_match(const char *prefix, const char *path, size_t path_len)
{
    if (prefix == NULL || prefix[0] == '\0')
        return true;
    size_t pl = strlen(prefix);
    return path_len >= pl && memcmp(path, prefix, pl) == 0;
}

/* OPTIONS * asks about the server in general, not a resource (RFC 9110 9.3.7): weir is that
 * server and answers it itself, 200 with an empty body, on HTTP/1.1 and HTTP/2 alike; no route
 * is consulted and nothing goes upstream. Both fronts accept the path "*" only with OPTIONS. */
static const px_route_cfg_t options_route = {
    .direct_status = 200,
};

const px_route_cfg_t *px_router_match(const px_config_t *cfg, const char *authority,
                                      size_t authority_len, const char *path, size_t path_len)
{
    MEM_ASSERT_HOT(cfg != NULL);
    MEM_ASSERT_HOT(path != NULL || path_len == 0);
    if (path_len == 1 && path[0] == '*')
        return &options_route;
    for (size_t i = 0; i < cfg->routes_cnt; i++) {
        const px_route_cfg_t *r = &cfg->routes[i];
        if (px_router_authority_match(r->authority, authority, authority_len) &&
            path_match(r->path_prefix, path, path_len))
            return r;
    }
    return NULL;
}
