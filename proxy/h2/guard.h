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
 * The rate limits (rapid reset, SETTINGS/PING/empty-frame floods) and the CONTINUATION count
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
} px_h2_guard_t;

/* Resets `g` to "nothing remembered". Thread: owner. Alloc: none. */
void px_h2_guard_init(px_h2_guard_t *g);

/* Records that stream `id` closed with `code`; `reset` is true when we sent RST_STREAM for
 * it. Only clean closes (NO_ERROR, no RST from us) are remembered. Thread: owner. Alloc: none. */
void px_h2_guard_stream_closed(px_h2_guard_t *g, int32_t id, uint32_t code, bool reset);

/* True when `id` is a recently, cleanly closed client stream: a DATA frame on it is a stream
 * error STREAM_CLOSED (RFC 9113 6.1). Thread: owner. Alloc: none. */
bool px_h2_guard_closed_clean(const px_h2_guard_t *g, int32_t id);

#endif
