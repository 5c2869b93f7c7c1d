/*
 * proxy/core/server.h: the whole proxy process: config, workers, admin thread, signals, drain,
 * and the overload state that workers read.
 *
 * Created and run by main(). The main thread owns signals and the overload monitor timer;
 * the admin server runs on its own thread; each worker on its own.
 */
#ifndef PX_SERVER_H
#define PX_SERVER_H

#include "mem/base.h"
#include "proxy/config/config.h"
#include "proxy/core/overload-t.h"
#include "proxy/core/worker.h"

#include <stdbool.h>

/* Live connection or stream attribution, for /memory/regions. */
typedef struct px_region_row_s {
    unsigned worker;
    uint64_t region_id;
    char peer[64];     /* "ip:port" */
    int32_t stream_id; /* 0 for the connection row */
    char authority[128];
    char path[256];
    size_t bytes;
    uint64_t age_ms;
    const char *state; /* borrows (static): a stream's RFC 9113 5.1 state ("open", ...), a
                          connection's protocol ("h2", "http/1.1", "preface", "closing") */
    const char *phase; /* borrows (static): weir's phase of a stream ("request_headers",
                          "waiting_upstream", "response_body", ...); "" for a connection */
} px_region_row_t;

typedef struct px_server_s {
    px_config_t *cfg;     /* owns a reference; main swaps it on reload (under impl's lock):
                             other threads read it through px_server_config */
    px_worker_t *workers; /* owns: workers_cnt entries */
    /* owns: the memory tenants' figures, one row of cfg->tenants_cnt per worker (NULL when
     * there is no tenant); each worker writes its own row (proxy/upstream/tenant.h) */
    px_tenant_stats_t *tenant_table;
    unsigned workers_cnt;
    int overload_level; /* any: px_overload_level_t, atomic */
    int draining;       /* any: atomic bool, set on SIGTERM */
    int ready;          /* any: atomic bool, set once every worker listens */
    uint64_t started_ns;
    /* Bound ports (after resolving port 0), one per listener, for logs and tests. */
    uint16_t *listener_ports;
    uint16_t admin_port;
    void *impl; /* owns: main-loop handles (server.c) */
    struct px_overload_s
        *overload; /* owns: the overload monitor (proxy/core/overload.c), or NULL */
    /* The admin server (proxy/admin/admin.h), set by main() before px_server_run: the admin
     * folder sits above the core, which reaches it only through these. NULL: no admin. */
    int (*admin_start)(struct px_server_s *s);
    void (*admin_stop)(struct px_server_s *s);
    /* The command line the config came from (borrows main's argv), read again on reload so
     * flags and environment keep overriding the file. argc 0: reload refused. */
    int argc;
    char **argv;
    uint64_t reloads_ok;     /* any: atomic */
    uint64_t reloads_failed; /* any: atomic; the file did not validate or could not apply */
} px_server_t;

/* Reads the overload level (one relaxed-acquire load). Thread: any. */
static inline px_overload_level_t px_server_overload(const px_server_t *s)
{
    return px_overload_level_load(&s->overload_level);
}

/* Sums every worker's counters into `out`. Thread: any. */
void px_server_stats(const px_server_t *s, px_stats_t *out);

/* Collects up to `max` rows (connections and their streams) from every worker, largest first,
 * by asking each worker over its async handle and waiting up to `timeout_ms`.
 * Returns the rows written. The scratch (here 1,024 rows or `max`, 480 KiB; in each worker
 * one row per connection and stream it holds, at most 4,096; freed before the answer) is
 * allocated past the budget's limit (mem_malloc_exempt): the rows are wanted most when the
 * budget is nearly spent, and one collection runs at a time. Thread: admin, or main (the overload
 * snapshot). */
size_t px_server_collect_regions(px_server_t *s, px_region_row_t *rows, size_t max,
                                 uint32_t timeout_ms);

/* Has every worker return its cached memory (each flushes its own thread cache: only that
 * thread can), waiting up to `timeout_ms` for them, then drains the depots and releases
 * every wholly free span to the OS. Returns the bytes released. Thread: admin. */
size_t px_server_release(px_server_t *s, uint32_t timeout_ms);

/* Builds a server for `cfg`. Ownership: takes `cfg` on success (freed by px_server_free).
 * Returns 0 or a negative errno. Thread: main. Alloc: tcache. */
int px_server_new(px_config_t *cfg, px_server_t **out);

/* Starts the workers (and the admin server through s->admin_start when set), prints the start-up
 * lines, runs the main loop until SIGTERM/SIGINT have drained everything, and stops. Returns 0, or
 * a negative errno with a message in `err` when start-up failed. Thread: main. */
int px_server_run(px_server_t *s, char *err, size_t err_len);

/* Returns the active config with a reference the caller drops with px_config_unref.
 * Thread: any. Alloc: none. */
const px_config_t *px_server_config(px_server_t *s);

/* Makes what a config needs beyond parsing, so a file is validated whole before it is used:
 * the TLS contexts of its listeners (certificate and key) and of its TLS clusters, and its
 * hash. Returns 0, or -EINVAL with a one-line reason naming the listener or cluster in `err`.
 * Thread: main. Alloc: OpenSSL. */
int px_server_config_prepare(px_config_t *cfg, char *err, size_t err_len);

/* Reads the config file again (with the same flags and environment), validates it whole and
 * hands it to every worker, waiting until each has switched (proxy/core/reload.c). Options that
 * need a restart (workers, admin, memory, access_log) must be unchanged, else the reload is
 * refused. On failure nothing changes, the reason (FILE:LINE:COL: FIELD: ...) is in `err` and
 * in the log, and reloads_failed counts it. `trigger` names the cause for the log ("SIGHUP").
 * Returns 0, -EINVAL (the file), -EBUSY (a reload still applying), -ESHUTDOWN (draining) or
 * another negative errno. Thread: main. Alloc: tcache. */
int px_server_reload(px_server_t *s, const char *trigger, char *err, size_t err_len);

/* Asks the main thread to reload and waits for its answer (up to 30 s): the admin's
 * POST /reload. Same returns as px_server_reload (-ETIMEDOUT when no answer came).
 * Thread: any but main. */
int px_server_reload_request(px_server_t *s, char *err, size_t err_len);

/* Frees the server and its config. NULL is ignored. Thread: main. */
void px_server_free(px_server_t *s);

/* Worker-to-server notes (internal to proxy/). */
void px_server__worker_started(px_server_t *s, int rc);
void px_server__worker_exited(px_server_t *s);
/* The generation of the collect request now running (0 = none). */
uint64_t px_server__collect_gen(px_server_t *s);
/* A worker has switched to the config px_server_reload handed it. */
void px_server__reload_applied(px_server_t *s);
/* Opens `n` SO_REUSEPORT sockets for listener `l` into fds[0..n) (closing them all on failure)
 * and sets `*port` to the bound port. Returns 0 or a negative errno with `err` set. */
int px_server__listen(const px_listener_cfg_t *l, unsigned n, int *fds, uint16_t *port, char *err,
                      size_t err_len);
/* A worker has returned its cached memory (px_server_release). */
void px_server__released(px_server_t *s);
/* A worker's answer to collect request `gen`. Rows are copied. */
void px_server__collect_put(px_server_t *s, uint64_t gen, const px_region_row_t *rows, size_t cnt);

#endif /* PX_SERVER_H */
