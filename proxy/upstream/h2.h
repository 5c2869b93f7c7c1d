/*
 * proxy/upstream/h2.h: the h2c half of the upstream module: one nghttp2 client session per
 * pooled connection, many exchanges multiplexed on it as streams.
 *
 * Internal to proxy/upstream*.c (and the upstream driver tests). Instances are owned by their
 * px_upconn_t; everything runs on the worker's loop thread.
 */
#ifndef PX_UPSTREAM_H2_H
#define PX_UPSTREAM_H2_H

#include "mem/base.h"

#ifndef PX_UPSTREAM_INTERNAL
#define PX_UPSTREAM_INTERNAL 1
#endif
#include "proxy/upstream/upstream.h"

/* Creates the nghttp2 client session of `c` and queues the SETTINGS. Alloc: tcache. */
/* The callbacks and options every h2c session of a worker shares (created once, with the pools).
 * `max_continuations` caps the CONTINUATION frames of one response header block (0: no cap).
 * Ownership: gives both. Returns 0 or -ENOMEM. Alloc: libc (nghttp2 calloc), once per worker. */
int px__uph2_callbacks_new(nghttp2_session_callbacks **cbs, nghttp2_option **opt,
                           uint32_t max_continuations);
int px__uph2_conn_init(px_upconn_t *c);
/* Deletes the session (from the connection's last close callback). */
void px__uph2_conn_fini(px_upconn_t *c);
/* True when one more stream fits (no GOAWAY, under both stream limits). Getter. */
bool px__uph2_has_room(const px_upconn_t *c);
/* Submits `r` as a new stream. Returns 0 or a negative errno. */
int px__uph2_submit(px_upconn_t *c, px_upstream_req_t *r);
/* Detaches `r` from its stream and resets the stream if it is still open. */
void px__uph2_cancel(px_upstream_req_t *r);
/* More request body (or its end) is buffered: resume the stream's DATA. */
void px__uph2_body(px_upstream_req_t *r);
/* The downstream took `len` response bytes: open the stream and connection windows. */
void px__uph2_consumed(px_upstream_req_t *r, size_t len);
/* Feeds bytes read from the socket to the session. */
void px__uph2_read(px_upconn_t *c, const uint8_t *data, size_t len);
/* The socket closed or failed; the caller closes the connection next. */
void px__uph2_eof(px_upconn_t *c);
/* Collects pending output into c->wbuf. Returns 0 or a negative errno (close it). */
int px__uph2_fill(px_upconn_t *c);
/* The previous batch reached the socket. */
void px__uph2_written(px_upconn_t *c);

#endif /* PX_UPSTREAM_H2_H */
