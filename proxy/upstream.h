/*
 * proxy/upstream.h: one proxied exchange with a cluster (the "upstream request"), and the
 * per-worker connection pools behind it (h2c multiplexed, HTTP/1.1 keep-alive).
 *
 * The downstream stream creates the exchange and owns it until it ends: after on_response_end
 * or on_error the exchange frees itself and fires no more callbacks; px_upstream_cancel()
 * ends it early (downstream reset), also with no more callbacks. Everything runs on the
 * worker's loop thread.
 *
 * Flow control is end to end:
 *  - Request body: the downstream hands bytes to px_upstream_send_body(), which copies them
 *    into the exchange's bounded buffer (limits.stream_buffer_bytes). When bytes have left
 *    for the upstream, on_request_body_drained(len) fires and the downstream opens its
 *    receive window by that much (nghttp2_session_consume). The downstream never has more
 *    than one window's worth outstanding, so the buffer never overflows.
 *  - Response body: on_response_data() passes bytes the downstream must copy into its own
 *    bounded buffer; the exchange never delivers more than stream_buffer_bytes that have not
 *    been acknowledged with px_upstream_consumed(). The downstream calls that as it sends the
 *    bytes to the client, which opens the upstream window (h2c: WINDOW_UPDATE; HTTP/1.1:
 *    resumes reading the socket).
 */
#ifndef PX_UPSTREAM_H
#define PX_UPSTREAM_H

#include "mem/base.h"
#include "proxy/config.h"
#include "proxy/http.h"

#include <stdbool.h>

typedef struct px_worker_s px_worker_t;
typedef struct px_upstream_req_s px_upstream_req_t;

typedef struct px_upstream_cbs_s {
    /* The response head. `hdrs` (without pseudo-headers, without hop-by-hop headers) are
     * borrowed for the call. Fires once, or not at all if on_error fires first. */
    void (*on_response_headers)(void *ud, int status, const px_header_t *hdrs, size_t cnt);
    /* Response body bytes, borrowed for the call (see flow control above). */
    void (*on_response_data)(void *ud, const uint8_t *data, size_t len);
    /* Response trailers, borrowed for the call. Fires at most once, before on_response_end. */
    void (*on_response_trailers)(void *ud, const px_header_t *hdrs, size_t cnt);
    /* The response is complete. The exchange is freed after this returns. */
    void (*on_response_end)(void *ud);
    /* The exchange failed: `status` is 502, 503 or 504 for the downstream to send if it has
     * not sent headers yet (else it resets the stream); `reason` is a short static text such
     * as "upstream connect timeout". The exchange is freed after this returns. */
    void (*on_error)(void *ud, int status, const char *reason);
    /* `len` request-body bytes left for the upstream; the downstream may accept as many more. */
    void (*on_request_body_drained)(void *ud, size_t len);
} px_upstream_cbs_t;

/* Starts an exchange to `cluster`. `hdrs` are the request's headers as the downstream
 * received them, pseudo-headers (:method, :scheme, :authority, :path) first, with
 * x-forwarded-for and via already added; they are copied before this returns. `end_stream`
 * says there is no request body. Picks an endpoint by the cluster's lb policy, reuses or opens
 * a pooled connection (retrying other endpoints on connect failure) and may queue the request
 * while a connection is being set up.
 * Returns 0 and sets `*out`, or a negative errno (nothing was started, no callback fires).
 * Ownership: `*out` belongs to the caller until on_response_end/on_error, or until
 * px_upstream_cancel. Thread: worker. Alloc: tcache. */
int px_upstream_start(px_worker_t *w, const px_cluster_cfg_t *cluster, const px_header_t *hdrs,
                      size_t cnt, bool end_stream, const px_upstream_cbs_t *cbs, void *ud,
                      px_upstream_req_t **out);

/* Queues request-body bytes (copied) and, with `end`, ends the request body.
 * Returns 0, or -ENOBUFS if this would pass the bounded buffer (a downstream bug or a peer
 * violating flow control). */
int px_upstream_send_body(px_upstream_req_t *r, const uint8_t *data, size_t len, bool end);

/* Sends request trailers; ends the request body. `hdrs` are copied. */
int px_upstream_send_trailers(px_upstream_req_t *r, const px_header_t *hdrs, size_t cnt);

/* The downstream has sent `len` response-body bytes on; open the upstream window. */
void px_upstream_consumed(px_upstream_req_t *r, size_t len);

/* Aborts the exchange (downstream stream reset or closed). No callback fires afterwards.
 * r freed */
void px_upstream_cancel(px_upstream_req_t *r);

/* Per-worker pools: created when the worker starts, closed when it stops. */
int px_upstream_worker_init(px_worker_t *w);
/* Closes every pooled connection; `done` is called on the worker thread once all handles have
 * closed (so the worker can finish its loop). */
void px_upstream_worker_close(px_worker_t *w, void (*done)(px_worker_t *w));

/* Overload: while false, responses on HTTP/1.1 upstream connections close the connection
 * instead of returning it to the pool, and idle pooled connections are closed. */
void px_upstream_set_keepalive(px_worker_t *w, bool on);

#endif /* PX_UPSTREAM_H */
