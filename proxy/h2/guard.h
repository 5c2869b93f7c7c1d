/*
 * proxy/h2/guard.h: the stream-reset budget of a downstream HTTP/2 connection
 * (limits.rst_per_second): every stream reset the client caused counts, whether the client sent
 * the RST_STREAM (rapid reset, CVE-2023-44487) or provoked weir into sending one for its
 * protocol error ("MadeYouReset", CVE-2025-8671: HEADERS with END_STREAM and then a
 * WINDOW_UPDATE that overflows the stream window, or content-length: 0 and then a DATA byte).
 * Both kinds cost weir a dispatched request, so they share one budget; the caller
 * (proxy/h2/serve.c: the codec's RST_STREAM frames and its rst_caused count) ends the
 * connection past it.
 *
 * The other rate limits (SETTINGS/PING/empty-frame floods) are counted in serve.c's on_frame,
 * the CONTINUATION count, closed-stream and stream-id rules in the codec itself
 * (proxy/codec/endpoint.c), the timers in proxy/core/conn.c (idle, header) and
 * px_h2_sweep_idle (stream idle).
 *
 * Instances are embedded in px_h2_conn_t (storage owned by the connection's region); only the
 * connection's worker thread touches them. No allocation.
 */
#ifndef PX_H2_GUARD_H
#define PX_H2_GUARD_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct px_h2_guard_s {
    uint32_t rst_cnt;      /* client-caused resets in the current second */
    uint64_t rst_start_ms; /* start of that second (loop time); zeroed = empty */
} px_h2_guard_t;

/* Counts one stream reset the client caused at `now_ms` (loop time) against `per_sec` resets
 * a second (0 = unlimited). Returns true once the count in the current second passes
 * `per_sec`: the caller ends the connection with GOAWAY(ENHANCE_YOUR_CALM).
 * Thread: owner. Alloc: none. */
bool px_h2_guard_reset(px_h2_guard_t *g, uint64_t now_ms, uint32_t per_sec);

#endif
