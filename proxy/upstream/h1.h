/*
 * proxy/upstream/h1.h: the HTTP/1.1 half of the upstream module: one exchange at a time per
 * pooled keep-alive connection, requests serialized by hand, responses parsed with
 * http_parser.
 *
 * Internal to proxy/upstream*.c (and the upstream driver tests). Instances are owned by their
 * px_upconn_t; everything runs on the worker's loop thread.
 */
#ifndef PX_UPSTREAM_H1_H
#define PX_UPSTREAM_H1_H

#include "mem/base.h"

#ifndef PX_UPSTREAM_INTERNAL
#define PX_UPSTREAM_INTERNAL 1
#endif
#include "proxy/upstream/upstream.h"

/* Sets up the response parser of `c`. */
int px__uph1_conn_init(px_upconn_t *c);
/* Makes `r` the connection's exchange (its head is written by the next fill). */
int px__uph1_submit(px_upconn_t *c, px_upstream_req_t *r);
/* Detaches `r`; the connection cannot be reused mid-exchange, so it is closed. */
void px__uph1_cancel(px_upstream_req_t *r);
/* More request body (or its end) is buffered. */
void px__uph1_body(px_upstream_req_t *r);
/* The downstream took `len` response bytes: resume reading if it was stopped. */
void px__uph1_consumed(px_upstream_req_t *r, size_t len);
/* Feeds bytes read from the socket to the parser. */
void px__uph1_read(px_upconn_t *c, const uint8_t *data, size_t len);
/* The socket closed: completes a response delimited by the close, else the caller fails it. */
void px__uph1_eof(px_upconn_t *c);
/* Collects the request head and body bytes into c->wbuf. Returns 0 or a negative errno. */
int px__uph1_fill(px_upconn_t *c);
/* The previous batch reached the socket. */
void px__uph1_written(px_upconn_t *c);
/* How many bytes the next read may take without passing the response flow-control bound. */
size_t px__uph1_read_room(const px_upconn_t *c);

#endif /* PX_UPSTREAM_H1_H */
