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

/* A new config for one worker (px_worker_reload), built whole by the main thread so that the
 * worker only moves pointers. For listener j of `cfg`: keep[j] is the index of the worker's
 * listener that stays (same name, address and protocol: its socket and its connections go on),
 * or -1, and then fresh[j] is a new listener on its own SO_REUSEPORT socket. */
typedef struct px_worker_reload_s {
    const px_config_t *cfg;  /* owns a reference */
    size_t lis_cnt;          /* cfg->listeners_cnt */
    int *keep;               /* owns (tcache): lis_cnt entries */
    struct px_lis_s **fresh; /* owns (tcache): lis_cnt entries, NULL where kept */
    struct px_lis_s **lis;   /* owns (tcache): the worker's next listener array */
} px_worker_reload_t;

/* Makes the reload message of one worker for `cfg` (a reference is taken), listener j keeping
 * the worker's listener keep[j] or adopting fds[j]. Returns NULL on allocation failure.
 * Ownership: `fds` are taken on success. Thread: main. Alloc: tcache. */
px_worker_reload_t *px_worker_reload_new(const px_config_t *cfg, const int *keep, const int *fds);

/* Frees a message that was never handed over (closing its sockets). NULL is ignored. */
void px_worker_reload_free(px_worker_reload_t *m);

/* Hands `m` to the worker, which switches to its config at its next loop iteration: new streams
 * take the new config, streams in flight keep theirs; listeners that left close, new ones
 * accept. It calls px_server__reload_applied when done. Ownership: takes `m`. Thread: main. */
void px_worker_reload(px_worker_t *w, px_worker_reload_t *m);

/* Prepares `w` (no thread yet) with a reference on the server's config. `fds` are the
 * worker's listening sockets, one per listener, which it adopts (TLS listeners use the
 * config's contexts). Ownership: `fds` are taken on success. Thread: main. Alloc: tcache. */
int px_worker_init(px_worker_t *w, px_server_t *s, unsigned idx, int cpu, const int *fds);

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
