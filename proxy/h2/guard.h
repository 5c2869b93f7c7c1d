/*
 * proxy/h2/guard.h: per-connection HTTP/2 abuse and conformance accounting that nghttp2 1.52
 * leaves to the application. Policy lives here; proxy/h2/h2.c calls the hooks from its nghttp2
 * callbacks and acts on the verdicts (RST_STREAM, GOAWAY).
 *
 * What it tracks today: the client stream ids that closed cleanly (END_STREAM both ways, no
 * RST_STREAM), so that DATA arriving on one of them later gets the RST_STREAM(STREAM_CLOSED)
 * RFC 9113 6.1 requires; nghttp2 (with no_closed_streams) forgets closed streams and drops such
 * frames silently. Streams closed by a RST_STREAM are not remembered: frames after our
 * RST_STREAM must be ignored (RFC 9113 5.1).
 *
 * It also keeps the stream-reset budget (limits.rst_per_second): every stream reset the client
 * caused counts, whether the client sent the RST_STREAM (rapid reset, CVE-2023-44487) or
 * provoked weir into sending one for its protocol error ("MadeYouReset", CVE-2025-8671:
 * HEADERS with END_STREAM and then a WINDOW_UPDATE that overflows the stream window, or
 * content-length: 0 and then a DATA byte). Both kinds cost weir a dispatched request, so
 * they share one budget; the caller ends the connection past it. The codec under way in
 * proxy/h2/ (frame.c, state.c) is meant to call px_h2_guard_reset and
 * px_h2_guard_reset_blames_peer too, so both paths keep one reset policy.
 *
 * The other rate limits (SETTINGS/PING/empty-frame floods) and the CONTINUATION count
 * predate this file and are in proxy/h2/h2.c (on_begin_frame, scan_frames); timers in
 * proxy/core/conn.c (idle, header) and px_h2_sweep_idle (stream idle).
 *
 * Instances are embedded in px_conn_t (storage owned by the connection's region); only the
 * connection's worker thread touches them. No allocation.
 */
#ifndef PX_H2_GUARD_H
#define PX_H2_GUARD_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

/* How many cleanly closed stream ids are remembered: a late DATA for an older one is dropped
 * silently (as before). 32 ids cover far more than the streams a client keeps in flight. */
#define PX_H2_GUARD_CLOSED_CNT 32

typedef struct px_h2_guard_s {
    int32_t closed[PX_H2_GUARD_CLOSED_CNT]; /* ring of client ids closed cleanly; 0 = empty */
    uint32_t closed_next;                   /* next slot to overwrite */
    uint32_t rst_cnt;                       /* client-caused resets in the current second */
    uint64_t rst_start_ms;                  /* start of that second (loop time) */
} px_h2_guard_t;

/* Resets `g` to "nothing remembered". Thread: owner. Alloc: none. */
void px_h2_guard_init(px_h2_guard_t *g);

/* Records that stream `id` closed with `code`; `reset` is true when we sent RST_STREAM for
 * it. Only clean closes (NO_ERROR, no RST from us) are remembered. Thread: owner. Alloc: none. */
void px_h2_guard_stream_closed(px_h2_guard_t *g, int32_t id, uint32_t code, bool reset);

/* True when `id` is a recently, cleanly closed client stream: a DATA frame on it is a stream
 * error STREAM_CLOSED (RFC 9113 6.1). Thread: owner. Alloc: none. */
bool px_h2_guard_closed_clean(const px_h2_guard_t *g, int32_t id);

/* Counts one stream reset the client caused at `now_ms` (loop time) against `per_sec` resets
 * a second (0 = unlimited). Returns true once the count in the current second passes
 * `per_sec`: the caller ends the connection with GOAWAY(ENHANCE_YOUR_CALM).
 * Thread: owner. Alloc: none. */
bool px_h2_guard_reset(px_h2_guard_t *g, uint64_t now_ms, uint32_t per_sec);

/* True when a RST_STREAM that weir sends with `code` (RFC 9113 7) blames the client: its
 * frames broke the protocol on that stream (PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED,
 * FRAME_SIZE_ERROR). Resets weir sends for its own reasons (INTERNAL_ERROR, REFUSED_STREAM
 * under overload, CANCEL on a timeout, ENHANCE_YOUR_CALM when shedding) are not the client's
 * doing and do not count. Thread: any. Alloc: none. */
bool px_h2_guard_reset_blames_peer(uint32_t code);

#endif
