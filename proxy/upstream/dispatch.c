/*
 * proxy/upstream/dispatch.c: the routing step of both downstream protocols (see dispatch.h).
 * Worker thread.
 */
#include "proxy/upstream/dispatch.h"
#include "mem/base.h"

#include <errno.h>
#include <string.h>

#include "proxy/upstream/router.h"
#include "proxy/upstream/tenant.h"

static const char body_404[] = "weir: no route matches this request\n";

px_dispatch_t px_dispatch_route(px_forward_req_t *fr, px_worker_t *w, const px_config_t *cfg,
                                mem_subregion_t *sub, px_dispatch_out_t *out)
{
    MEM_ASSERT(fr != NULL && out != NULL);
    MEM_ASSERT(cfg != NULL && sub != NULL);
    memset(out, 0, sizeof(*out));
    /* Routing sees the authority and the normalised path the upstream will get. */
    int rc = px_forward_check(fr, cfg, sub, &out->why);
    if (rc == -EINVAL)
        return PX_DISPATCH_BAD_REQUEST;
    if (rc != 0)
        goto oom;
    const px_route_cfg_t *r =
        px_router_match(cfg, fr->authority, fr->authority_len, fr->path, fr->path_len);
    out->route = r;
    if (r == NULL || r->cluster == NULL) {
        out->status = r ? r->direct_status : 404;
        out->ctype = r && r->direct_content_type ? r->direct_content_type : "text/plain";
        out->body = r ? (r->direct_body ? r->direct_body : "") : body_404;
        out->body_len = r ? r->direct_body_len : sizeof(body_404) - 1;
        return PX_DISPATCH_ANSWER;
    }
    /* The route's memory tenant past its limit: refused before anything is sent upstream.
     * Counted in the tenant's figures. */
    if (!px_tenant_admit(w, r->tenant)) {
        MEM_STAT_ADD(w->stats.overload_streams_refused, 1);
        return PX_DISPATCH_REFUSED;
    }
    out->tenant = r->tenant;
    out->hdrs = px_forward_headers(fr, cfg, sub, &out->hdrs_cnt);
    if (out->hdrs == NULL)
        goto oom;
    MEM_ASSERT(out->hdrs_cnt > 0);
    return PX_DISPATCH_UPSTREAM;
oom:
    MEM_STAT_ADD(w->stats.stream_cap_resets, 1);
    return PX_DISPATCH_NO_MEMORY;
}
