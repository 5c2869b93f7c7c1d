/*
 * proxy/upstream/forward.h: what the upstream is told: the request head weir forwards,
 * checked and rewritten from the one the client sent (RFC 9113 8.3.1, RFC 3986 5.2.4).
 *
 * The downstream protocol code fills a px_forward_req_t from the request it received, calls
 * px_forward_check() before routing (routing then uses `authority` and `path`, both as the
 * upstream will see them) and px_forward_headers() to build the head px_upstream_start()
 * takes. Worker thread; everything it allocates lives in the stream's sub-arena.
 */
#ifndef PX_FORWARD_H
#define PX_FORWARD_H

#include "mem/base.h"

#include <stdbool.h>

#include "mem/subregion.h"
#include "proxy/config/config.h"
#include "proxy/upstream/http.h"

typedef struct px_forward_req_s {
    /* Filled by the caller; all bytes borrowed from the stream's sub-arena. */
    const char *method;
    size_t method_len;
    const char *scheme; /* the client's :scheme, or NULL; only picks the default port */
    size_t scheme_len;
    const char *authority; /* :authority, else the host header, else NULL */
    size_t authority_len;
    const char *path; /* :path as received; px_forward_check() replaces it */
    size_t path_len;
    const px_header_t *hdrs; /* the client's regular headers in order, hop-by-hop ones dropped
                                (host and x-forwarded-for included) */
    size_t hdrs_cnt;
    const char *peer_ip; /* NUL-terminated, "" when unknown */
    bool tls;            /* the listener speaks TLS: :scheme and x-forwarded-proto are https */
} px_forward_req_t;

/* Checks `r` and normalises its path: `r->path` then points at the normalised copy (see
 * px_path_normalize) in `sub`, and `r->authority` is the host header's value when there was
 * no :authority. Refuses, with a static reason in `*why` for a 400: no authority at all, an
 * authority px_authority_check refuses, more than one host header, or a host header that
 * names another authority than :authority (RFC 9113 8.3.1, scheme-based comparison), and a
 * path px_path_normalize refuses (%2F and %5C only without `cfg->keep_escaped_slashes`).
 * Returns 0, -EINVAL (answer 400 with `*why`) or -ENOMEM. Alloc: subregion. */
int px_forward_check(px_forward_req_t *r, const px_config_t *cfg, mem_subregion_t *sub,
                     const char **why);

/* Builds the upstream request head: :method, :scheme (from the listener), :authority (when
 * there is one), :path (normalised), the client's headers minus host, x-forwarded-proto,
 * x-forwarded-for (and forwarded with `replace`), then x-forwarded-for as
 * `cfg->x_forwarded_for` says (append: the client's values joined in order, then the peer
 * address; replace: the peer address; off: none), x-forwarded-proto from the listener, and
 * via when `cfg->add_via`. The HTTP/1.1 upstream writes Host from :authority.
 * Returns the array (its count in `*cnt`) or NULL when `sub` is out of memory.
 * Ownership: the array and the new values live in `sub`; the rest is borrowed from `r`.
 * Alloc: subregion. */
px_header_t *px_forward_headers(const px_forward_req_t *r, const px_config_t *cfg,
                                mem_subregion_t *sub, size_t *cnt);

#endif /* PX_FORWARD_H */
