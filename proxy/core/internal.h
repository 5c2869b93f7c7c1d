/*
 * proxy/core/internal.h: the server's main-thread state, shared by the files that run on the
 * main loop (server.c: start, signals, drain, cross-thread requests; reload.c: reload and the
 * config file watch). Not for use outside proxy/core/.
 */
#ifndef PX_CORE_INTERNAL_H
#define PX_CORE_INTERNAL_H

#include "mem/base.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include <uv.h>

#include "proxy/config/config.h"
#include "proxy/core/server.h"

/* A request for a reload from another thread (POST /reload) and its answer. */
typedef struct px_reload_req_s {
    bool busy;    /* a request is posted or running */
    bool done;    /* the answer is in rc and err */
    uint64_t gen; /* which request the answer belongs to */
    int rc;
    char err[PX_CONFIG_ERR_MAX];
} px_reload_req_t;

typedef struct px_cfgwatch_s px_cfgwatch_t;

typedef struct px_srv_impl_s {
    uv_loop_t loop; /* main thread */
    uv_signal_t sigterm, sigint, sighup;
    uv_async_t wake;   /* a worker exited */
    uv_async_t reload; /* another thread asks for a reload (reload_req) */
    uv_timer_t drain_timer;
    bool loop_live;       /* under lock: reload may be sent to */
    pthread_mutex_t lock; /* guards everything below, and the server's cfg pointer */
    pthread_cond_t cond;
    unsigned started, start_failed, exited;
    int start_rc;
    uint64_t collect_gen; /* request now running, 0 = none */
    uint64_t collect_next;
    unsigned collect_pending;
    px_region_row_t *collect_rows; /* borrows: the admin caller's scratch */
    size_t collect_cnt, collect_max;
    unsigned release_pending; /* workers yet to return their caches (px_server_release) */
    unsigned reload_pending;  /* workers yet to take the last reload's config */
    px_reload_req_t reload_req;
    uint64_t reload_gen;
    px_cfgwatch_t *watch; /* main: owns, NULL when the file is not watched */
    uint64_t file_hash;   /* main: FNV-1a 64 of the file's bytes at the last load */
    bool admin_started;
} px_srv_impl_t;

/* Counts one answer off `*pending` (a request to every worker) and wakes the waiter.
 * Thread: any (takes im->lock). */
void px__srv_count_down(px_srv_impl_t *im, unsigned *pending);

/* The CLOCK_REALTIME instant `timeout_ms` from now, for pthread_cond_timedwait on im->cond. */
struct timespec px__srv_deadline_after(uint32_t timeout_ms);

/* Sets up the reload handles on the main loop (SIGHUP, the cross-thread async, the watch when
 * the config asks for it). Thread: main, after the workers started. */
int px__reload_start(px_server_t *s);
/* Closes them (before the main loop closes). Thread: main. */
void px__reload_stop(px_server_t *s);

#endif /* PX_CORE_INTERNAL_H */
