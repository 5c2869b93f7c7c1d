/*
 * proxy/upstream/dispatch.h: the routing step both downstream protocols (proxy/h2/h2.c,
 * proxy/h1/h1.c) take once a request head is complete: check and normalise it (forward.h),
 * match a route (router.h), admit it to the route's memory tenant (tenant.h) and build the head
 * the upstream gets, with x-forwarded-for, x-forwarded-proto and via (forward.h). The protocol
 * code then answers the verdict in its own framing (a 400, a 404 or a direct response, a
 * refusal the client may retry: REFUSED_STREAM on HTTP/2, 503 with Retry-After on HTTP/1.1) or
 * starts the upstream exchange. Worker thread; what it allocates lives in the request's
 * sub-arena.
 */
#ifndef PX_DISPATCH_H
#define PX_DISPATCH_H

#include "mem/base.h"

#include <stddef.h>

#include "mem/subregion.h"
#include "proxy/config/config.h"
#include "proxy/core/worker-t.h"
#include "proxy/upstream/forward.h"
#include "proxy/upstream/http.h"

/* The body of weir's 503 when no connection to the route's cluster can be had. */
#define PX_DISPATCH_BODY_503 "weir: upstream unavailable\n"

typedef enum px_dispatch_e {
    PX_DISPATCH_UPSTREAM = 0, /* send `hdrs` to `route->cluster` (px_upstream_start) */
    PX_DISPATCH_ANSWER,       /* answer `status` with `body` (a direct route, OPTIONS *, 404) */
    PX_DISPATCH_BAD_REQUEST,  /* answer 400 with the reason `why` */
    PX_DISPATCH_REFUSED,      /* the route's memory tenant is past its limit: refuse so that
                                 the client may retry (counted in overload_streams_refused) */
    PX_DISPATCH_NO_MEMORY,    /* the sub-arena is out of memory (counted in stream_cap_resets) */
} px_dispatch_t;

typedef struct px_dispatch_out_s {
    const px_route_cfg_t *route; /* borrows `cfg`: the route matched, NULL before or without */
    unsigned tenant;             /* the tenant the request was admitted to (1-based), 0 = none: the
                                    caller ends it (px_tenant_end) whatever the verdict */
    const char *why;             /* BAD_REQUEST: a static reason */
    int status;                  /* ANSWER */
    const char *ctype;           /* ANSWER: borrows `cfg` or static */
    const char *body;            /* ANSWER: borrows `cfg` or static */
    size_t body_len;
    px_header_t *hdrs; /* UPSTREAM: the head for the upstream (subregion) */
    size_t hdrs_cnt;
} px_dispatch_out_t;

/* Routes the request `fr` (filled by the caller; px_forward_check normalises its authority and
 * path in place, as the upstream will see them) by `cfg`, on worker `w`, and says what to do
 * with it in `*out`. Returns the verdict. Ownership: `out`'s pointers borrow `cfg` (the caller
 * holds a reference for the request's life) or live in `sub`. Thread: `w`'s. Alloc:
 * subregion. */
px_dispatch_t px_dispatch_route(px_forward_req_t *fr, px_worker_t *w, const px_config_t *cfg,
                                mem_subregion_t *sub, px_dispatch_out_t *out);

#endif /* PX_DISPATCH_H */
