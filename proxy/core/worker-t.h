/*
 * proxy/core/worker-t.h: the type of one worker thread (its loop, its counters, its config, its
 * upstream pools), apart from the functions that run it (proxy/core/worker.h).
 *
 * Types only: the protocol folders (h2/, upstream/) run on a worker's loop and count into its
 * block, so they see this struct, never the core's functions. Fields marked "worker" are
 * touched only by the worker thread; "any" fields are atomics or read-only after start.
 */
#ifndef PX_WORKER_T_H
#define PX_WORKER_T_H

#include "mem/base.h"

#include <pthread.h>
#include <uv.h>

#include "proxy/core/overload-t.h"
#include "proxy/core/stats-t.h"

typedef struct px_config_s px_config_t;
typedef struct px_server_s px_server_t;
typedef struct px_upstream_pools_s px_upstream_pools_t;

typedef struct px_worker_s {
    uv_loop_t loop;            /* worker */
    unsigned idx;              /* any: 0-based */
    int cpu;                   /* any: the CPU it is pinned to, -1 when not pinned */
    int node;                  /* any: its NUMA node */
    const px_config_t *cfg;    /* worker: owns a reference; the config new streams take
                                  (a reload swaps it at a quiescent point of the loop) */
    px_server_t *server;       /* borrows */
    const int *overload_level; /* borrows: the server's published px_overload_level_t */
    px_stats_t stats;          /* written by the worker only, read by any (relaxed) */
    /* Memory tenants (proxy/upstream/tenant.h): this worker's row of the server's table
     * (cfg->tenants_cnt entries, written by this worker only), and the whole table
     * (tenant_rows rows, read by any with relaxed loads). NULL when no tenant is configured. */
    px_tenant_stats_t *tenants;            /* borrows: the server's table outlives the worker */
    const px_tenant_stats_t *tenant_table; /* borrows */
    unsigned tenant_rows;
    px_upstream_pools_t *upstream; /* owns: created by px_upstream_worker_init */
    void *impl;                    /* owns: listeners, connections, async handles (worker.c) */
    pthread_t thread;
} px_worker_t;

/* The overload level the worker's server publishes (one atomic load). Thread: any. */
static inline px_overload_level_t px_worker_overload(const px_worker_t *w)
{
    return px_overload_level_load(w->overload_level);
}

#endif /* PX_WORKER_T_H */
