/*
 * proxy/admin/admin.h: the admin port: a plain HTTP/1.1 server on its own thread and uv loop that
 * shows weir's memory (/memory JSON and Prometheus text, /metrics, /memory/regions,
 * /heap_dump), lets an operator act on it (/memory/release, heap sampling interval), answers
 * the ops probes (/ready, /healthz, /stats, /config_dump, /overload) and serves the live
 * dashboard page at /.
 *
 * Endpoints (the 404 body lists them too):
 *   GET  /                      dashboard (static page; served without the token, reads the
 *                               token from its #token=... fragment for its own requests)
 *   GET  /memory                JSON: Envoy's names (allocated, heap_size, pageheap_free,
 *                               pageheap_unmapped, total_thread_cache, total_physical_bytes;
 *                               mapping in proxy/admin/memory.c) then weir's own totals, per
 *                               thread / worker / size class / NUMA node, regions, samples
 *   GET  /memory?format=prometheus   the memory families only (weir_memory_*, overload level)
 *   GET  /metrics               memory families + every px_stats_t counter + process gauges
 *   GET  /memory/regions?top=N  largest connection/stream holders (default 20, max 1000)
 *   POST /memory/release        mem_release_now(): {"released_bytes":N,"committed_bytes":N}
 *   GET  /heap_dump[?symbols=1|format=proto][&peak=1|overload=N], GET /heap_dump/symbols,
 *   POST /heap_dump?sample_bytes=N, POST /heap_dump/peak/reset, GET /memory/regions?overload=N
 *   GET  /stats /overload /config_dump /ready /healthz
 * With admin.token set every endpoint but / needs `Authorization: Bearer <token>` (401 with
 * WWW-Authenticate otherwise; compared in constant time). Without a token, a Host other than
 * localhost, *.localhost, an IP literal or the admin.address host gets 421 (DNS rebinding),
 * and a POST with a cross-site Sec-Fetch-Site, Origin or Referer, or a form or text/plain
 * content type, gets 403 (cross-site requests). Unknown path 404, wrong method 405 with Allow,
 * malformed or oversized request 400/413 and close, a request not complete in time 408 and
 * close.
 *
 * One admin server per process, owned by the px_server_t it was started for (its state hangs
 * off a file-local pointer, freed by px_admin_stop). Only the admin thread touches its
 * connections; it reads worker counters with relaxed loads and asks workers for region rows
 * through px_server_collect_regions().
 */
#ifndef PX_ADMIN_H
#define PX_ADMIN_H

#include "mem/base.h"
#include "proxy/core/server.h"

#define PX_ADMIN_HEAD_MAX  8192u  /* request line + headers; more is 400 and close */
#define PX_ADMIN_BODY_MAX  4096u  /* request body (POST endpoints take none that matters) */
#define PX_ADMIN_CONNS_MAX 64u    /* concurrent admin connections; more are closed at accept */
#define PX_ADMIN_IDLE_MS   30000u /* a keep-alive connection idle this long is closed */
/* A request head must be complete this long after its first byte (after the accept, for a
 * connection's first request), and its body this long after the head; otherwise 408 and
 * close. Bytes arriving do not extend either (nginx client_header_timeout, Envoy
 * request_headers_timeout). When all PX_ADMIN_CONNS_MAX slots are taken, a new connection
 * evicts the one whose request has been incomplete longest, so slow clients cannot keep
 * /ready from answering even before their deadline. */
#define PX_ADMIN_HEAD_TIMEOUT_MS 10000u
#define PX_ADMIN_BODY_TIMEOUT_MS 10000u

/* Starts the admin thread and binds `s->cfg->admin.addr` (port 0 = kernel's choice; the bound
 * port is stored in `s->admin_port`). Returns 0 once the socket listens, or a negative errno
 * (-EADDRINUSE, -ENOMEM, ...) with nothing left running. Does nothing and returns 0 when
 * `s->cfg->admin.enabled` is false.
 * Ownership: borrows `s` until px_admin_stop(). Thread: main. Alloc: tcache (mem_malloc). */
int px_admin_start(px_server_t *s);

/* Stops the admin loop, closes every admin connection and joins the thread. Safe to call when
 * px_admin_start failed or was never called. Thread: main (the one that started it). */
void px_admin_stop(px_server_t *s);

#endif /* PX_ADMIN_H */
