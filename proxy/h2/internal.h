/*
 * proxy/h2/internal.h: what the two HTTP/2 server paths of proxy/h2/ share while weir's own
 * codec is wired in beside nghttp2's session (issue 15, step 7): the wire table each path fills
 * (the few things that differ: how a response, a reset or a window update reaches the client)
 * and the stream logic both drive (request fields, routing, the upstream exchange, stream end),
 * which lives in h2.c. serve.c is the codec's wire; h2.c holds nghttp2's.
 *
 * Only the connection's worker thread touches any of it. Not for use outside proxy/h2/.
 */
#ifndef PX_H2_INTERNAL_H
#define PX_H2_INTERNAL_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "mem/subregion.h"
#include "proxy/h2/h2.h"
#include "proxy/h2/stream.h"

/* The protocol side of one downstream connection. Every stream function may be called from an
 * upstream callback: none of them frees `st` before it returns, except `reset`, after which the
 * caller forgets `st`. */
typedef struct px__h2_wire_s {
    /* Submits the response head `nva` (`:status` first, borrowed for the call); with `body`,
     * DATA follows from the stream's body buffer as `resume` is called, else the head ends
     * the stream. Returns 0 or -ENOMEM. */
    int (*respond)(px_stream_t *st, const nghttp2_nv *nva, size_t cnt, bool body);
    /* An informational (1xx) head before the final one. Returns 0 or -ENOMEM (advisory). */
    int (*info)(px_stream_t *st, const nghttp2_nv *nva, size_t cnt);
    /* Resets `st` with `code` (st->failed is already set by the caller). */
    void (*reset)(px_stream_t *st, uint32_t code);
    /* Body bytes or the end (resp_done, trailers) were added to the stream's buffer. */
    void (*resume)(px_stream_t *st);
    /* The upstream took `len` request body bytes: reopen the client's windows by as much. */
    void (*consume)(px_stream_t *st, size_t len);
    /* Ends the connection: GOAWAY(`code`) with `why` as its reason, then close. */
    void (*terminate)(px_h2_conn_t *c, uint32_t code, const char *why);
    int (*recv)(px_h2_conn_t *c, const uint8_t *data, size_t len);
    int (*send)(px_h2_conn_t *c);
    bool (*want_io)(px_h2_conn_t *c);
    bool (*want_write)(px_h2_conn_t *c);
    void (*shutdown_notice)(px_h2_conn_t *c);
    void (*goaway)(px_h2_conn_t *c);
    /* Timers other than the stream idle sweep (the codec's SETTINGS and drain timeouts, a
     * header block open too long). May be NULL. */
    void (*tick)(px_h2_conn_t *c, uint64_t now_ms);
    void (*streams_end)(px_h2_conn_t *c);
    void (*session_free)(px_h2_conn_t *c);
} px__h2_wire_t;

/* Starts the codec's server side on `c` (serve.c): the endpoint and its SETTINGS. Returns 0 or
 * -ENOMEM. Alloc: region (the endpoint), `mem` (HPACK tables). */
MEM_MUST_CHECK int px__h2w_session_new(px_h2_conn_t *c, nghttp2_mem *mem);

/* ---- the stream logic both paths share (h2.c) ------------------------------------------ */

/* A new client stream `id` whose state lives in `sub` (`owns_sub`: freed when the stream ends;
 * otherwise it is the codec stream's sub-arena, freed by the codec). Linked into the
 * connection's list and counted. Returns NULL on OOM (`sub` left to the caller).
 * Alloc: subregion. */
px_stream_t *px__h2_stream_open(px_h2_conn_t *c, int32_t id, mem_subregion_t *sub, bool owns_sub);
/* True when overload refuses new streams now (counted as refused). */
bool px__h2_refuse_new(px_h2_conn_t *c);
/* One request header (`trailer`: a trailer field), copied into the stream. Returns 0 or
 * -ENOMEM (the stream was reset with REFUSED_STREAM). */
int px__h2_field(px_stream_t *st, const char *n, size_t nl, const char *v, size_t vl, bool trailer);
/* The request head is complete: route it and answer or start the upstream exchange. */
void px__h2_dispatch(px_stream_t *st, bool end_stream);
/* `len` request body bytes: to the upstream, or consumed at once when nobody reads them. */
void px__h2_request_data(px_stream_t *st, const uint8_t *data, size_t len);
/* The client ended its request (END_STREAM, with or without trailers). */
void px__h2_request_ended(px_stream_t *st);
/* Weighs `st` again for its memory tenant (proxy/upstream/tenant.h), when it has one: its
 * buffered body and an equal share of its connection's region (the streams' sub-arenas are
 * carved from it). Called where those change. Alloc: none. */
void px__h2_tenant_weigh(px_stream_t *st);
/* Ends `st`: cancels its exchange, logs it, frees what it owns. */
void px__h2_stream_end(px_h2_conn_t *c, px_stream_t *st);
/* Resets `st` with `code` once (counted), through the wire. `st` may be freed. */
void px__h2_reset(px_stream_t *st, uint32_t code);
/* Counts one event against a per-second budget (0 = unlimited); true when past it. */
bool px__h2_over_rate(px_h2_conn_t *c, uint32_t *cnt, uint32_t per_sec);
/* Answers `st` from memory (`body` outlives the stream). */
void px__h2_respond_static(px_stream_t *st, int status, const char *ctype, const char *body,
                           size_t len);

#endif /* PX_H2_INTERNAL_H */
