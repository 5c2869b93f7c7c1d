/*
 * proxy/upstream/tenant.h: memory tenants (issue 18 part 2): a route or cluster with
 * `memory: {limit: SIZE}` has what the streams it serves hold counted against that limit, on
 * top of the global budget; past it its new streams are refused and its heaviest streams shed
 * (proxy/core/shed.c).
 *
 * Counting: each stream of a tenant keeps `counted`, what it added to its worker's row the
 * last time it was weighed, and is weighed again at its accounting points (dispatch, a body
 * chunk buffered, a body chunk sent; proxy/h2/h2.c and proxy/h2/serve.c), which add the
 * difference; at its end it takes back all it added. A worker's row therefore never drifts,
 * and reading a tenant is a sum of one relaxed load per worker (no atomics on the hot path).
 *
 * The figures live in the server's table (px_server_t.tenant_table): one row per worker, one
 * px_tenant_stats_t per tenant; each worker writes its own row (px_worker_t.tenants). Tenants
 * are numbered from 1 as in the config (px_route_cfg_t.tenant); 0 is "no tenant".
 */
#ifndef PX_UPSTREAM_TENANT_H
#define PX_UPSTREAM_TENANT_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>

#include "proxy/config/config.h"
#include "proxy/core/stats-t.h"
#include "proxy/core/worker-t.h"

/* Adds the figures of tenant `t` (1-based) over the `rows` rows of `table` (each of `cnt`
 * tenants) into `out` (zeroed first). Thread: any (relaxed loads). Alloc: none. */
void px_tenant_sum(const px_tenant_stats_t *table, unsigned rows, size_t cnt, unsigned t,
                   px_tenant_stats_t *out);

/* What tenant `t` holds on every worker together, as counted. Thread: any. Alloc: none. */
size_t px_tenant_bytes(const px_worker_t *w, unsigned t);

/* Whether a new stream of tenant `t` is admitted (always for t == 0): yes while the larger of
 * what the tenant's streams hold and one stream buffer (limits.stream_buffer) for each of
 * them, plus one more stream buffer for the new stream, fits in its limit. Counts the stream as
 * admitted (and one more live stream) or as refused. A refused stream gets REFUSED_STREAM (HTTP/2)
 * or 503 with Retry-After (HTTP/1.1) from the caller. Thread: the worker `w`. Alloc: none. */
bool px_tenant_admit(px_worker_t *w, unsigned t);

/* Moves what a stream of tenant `t` has counted, `*counted`, to `weight`. Thread: the
 * stream's worker. Alloc: none. */
static inline void px_tenant_weigh(px_worker_t *w, unsigned t, size_t *counted, size_t weight)
{
    MEM_ASSERT_HOT(t > 0 && w->tenants != NULL);
    MEM_ASSERT_HOT(t <= w->cfg->tenants_cnt);
    px_tenant_stats_t *ts = &w->tenants[t - 1];
    if (weight >= *counted)
        MEM_STAT_ADD(ts->bytes, weight - *counted);
    else
        MEM_STAT_SUB(ts->bytes, *counted - weight);
    *counted = weight;
}

/* Ends a stream of tenant `t`: takes back what it counted and one live stream. */
void px_tenant_end(px_worker_t *w, unsigned t, size_t *counted);

/* Counts a shed of tenant `t` that freed `bytes`. Thread: the worker `w`. */
void px_tenant_shed(px_worker_t *w, unsigned t, size_t bytes);

#endif /* PX_UPSTREAM_TENANT_H */
