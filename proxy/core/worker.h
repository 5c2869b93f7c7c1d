/*
 * proxy/core/worker.h: one worker thread: its libuv loop, its SO_REUSEPORT listeners, its
 * connections, its upstream pools and its counters. Workers share nothing on the request
 * path; the main and admin threads talk to a worker only through its uv_async_t.
 *
 * Owned by the server (proxy/core/server.h), which creates N of them. Fields marked "worker" are
 * touched only by the worker thread; "any" fields are atomics or read-only after start.
 */
#ifndef PX_WORKER_H
#define PX_WORKER_H

#include "mem/base.h"
#include "proxy/config/config.h"
#include "proxy/core/stats-t.h"

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

typedef struct px_server_s px_server_t;
typedef struct px_upstream_pools_s px_upstream_pools_t;

typedef struct px_worker_s {
    uv_loop_t loop;                /* worker */
    unsigned idx;                  /* any: 0-based */
    int cpu;                       /* any: the CPU it is pinned to, -1 when not pinned */
    int node;                      /* any: its NUMA node */
    const px_config_t *cfg;        /* borrows: the server's config outlives the worker */
    px_server_t *server;           /* borrows */
    px_stats_t stats;              /* written by the worker only, read by any (relaxed) */
    px_upstream_pools_t *upstream; /* owns: created by px_upstream_worker_init */
    void *impl;                    /* owns: listeners, connections, async handles (worker.c) */
    pthread_t thread;
} px_worker_t;

/* Prepares `w` (no thread yet). `fds` are the worker's listening sockets, one per listener,
 * which it adopts; `tls` the listeners' TLS contexts (NULL entries for h2c).
 * Ownership: `fds` are taken on success; `tls` are borrowed (the server outlives workers).
 * Thread: main. Alloc: tcache. */
int px_worker_init(px_worker_t *w, px_server_t *s, unsigned idx, int cpu, const int *fds,
                   void *const *tls);

/* Starts the worker thread: pins it, attaches its thread cache, opens its loop and listens.
 * It reports success or failure to the server (px_server__worker_started). Thread: main. */
int px_worker_start(px_worker_t *w);

/* Asks the worker to do `flags` (PX_WF_* in proxy/core/conn.h: drain, force close, collect
 * regions). Safe from any thread at any time, also after the worker has stopped. */
void px_worker_signal(px_worker_t *w, unsigned flags);

/* Joins the thread and frees what init made. Thread: main. */
void px_worker_join(px_worker_t *w);

#endif /* PX_WORKER_H */
