/*
 * proxy/core/worker.h: one worker thread: its libuv loop, its SO_REUSEPORT listeners, its
 * connections, its upstream pools and its counters. Workers share nothing on the request
 * path; the main and admin threads talk to a worker only through its uv_async_t.
 *
 * Owned by the server (proxy/core/server.h), which creates N of them. The struct itself is in
 * proxy/core/worker-t.h.
 */
#ifndef PX_WORKER_H
#define PX_WORKER_H

#include "mem/base.h"

#include <stdbool.h>

#include "proxy/config/config.h"
#include "proxy/core/worker-t.h"

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

/* Adds every field of `src` into `dst` reading `src` with relaxed loads. Thread: any. */
static inline void px_stats_sum(px_stats_t *dst, const px_stats_t *src)
{
    const uint64_t *s = (const uint64_t *)src;
    uint64_t *d = (uint64_t *)dst;
    for (size_t i = 0; i < PX_STATS_FIELDS_CNT; i++)
        d[i] += __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

#endif /* PX_WORKER_H */
