/*
 * proxy/h2/internal.h: what the two halves of proxy/h2/ share: serve.c, where a downstream
 * connection meets weir's codec (how requests come out of it and how responses, resets and
 * window updates go in), and h2.c, the stream logic above it (request fields, routing, the
 * upstream exchange, stream end).
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

/* ---- into the codec (serve.c) ----------------------------------------------------------- */
/* Every one may be called from an upstream callback: none of them frees `st` before it
 * returns, except px__h2w_reset, after which the caller forgets `st`. */

/* Submits the response head `nva` (`:status` first, borrowed for the call); with `body`, DATA
 * follows from the stream's body buffer as px__h2w_resume is called, else the head ends the
 * stream. Returns 0, -EPIPE (the stream is gone) or -ENOMEM. */
int px__h2w_respond(px_stream_t *st, const nghttp2_nv *nva, size_t cnt, bool body);
/* An informational (1xx) head before the final one. Returns 0 or -ENOMEM (advisory). */
int px__h2w_info(px_stream_t *st, const nghttp2_nv *nva, size_t cnt);
/* Takes `st`'s queued response head off the connection's queue (phase RESPONSE_QUEUED, about
 * to be reset): it will never be written. */
void px__h2w_unqueue(px_stream_t *st);
/* Resets `st` with `code` (the caller moved it to phase RESET). `st` may be freed. */
void px__h2w_reset(px_stream_t *st, uint32_t code);
/* Body bytes or the end (resp_done, trailers) were added to the stream's buffer. */
void px__h2w_resume(px_stream_t *st);
/* The upstream took `len` request body bytes: reopen the client's windows by as much. */
void px__h2w_consume(px_stream_t *st, size_t len);
/* Ends the connection: GOAWAY(`code`) with `why` as its debug data, then close. */
void px__h2w_terminate(px_h2_conn_t *c, uint32_t code, const char *why);
/* The codec's own timers (SETTINGS ACK, drain, header block open too long) and the idle trim
 * of its HPACK encoder, at `now_ms` (loop time). */
void px__h2w_tick(px_h2_conn_t *c, uint64_t now_ms);

/* ---- the stream logic (h2.c) ------------------------------------------------------------ */

/* A new client stream `id` whose state lives in `sub`, the codec stream's sub-arena (freed by
 * the codec after the stream's close). Linked into
 * the connection's list and counted. Returns NULL on OOM (`sub` left to the caller). Alloc:
 * subregion. */
px_stream_t *px__h2_stream_open(px_h2_conn_t *c, int32_t id, mem_subregion_t *sub);
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
/* Resets `st` with `code` once (counted), through the codec. `st` may be freed. */
void px__h2_reset(px_stream_t *st, uint32_t code);
/* Counts one event against a per-second budget (0 = unlimited); true when past it. */
bool px__h2_over_rate(px_h2_conn_t *c, uint32_t *cnt, uint32_t per_sec);
/* Answers `st` from memory (`body` outlives the stream). */
void px__h2_respond_static(px_stream_t *st, int status, const char *ctype, const char *body,
                           size_t len);

#endif /* PX_H2_INTERNAL_H */
