/*
 * proxy/h2/phase.h: weir's phase of a downstream HTTP/2 stream (request in, response out), one
 * enum beside the RFC 9113 section 5.1 state that the codec keeps (proxy/codec/state.h), and the
 * table of the changes allowed between phases.
 *
 * The codec's state says which frames may still cross the stream; the phase says where weir is
 * with the exchange: routing, waiting for the upstream, the response head queued, the body going
 * out, the end sent, reset by weir, closed. A stream changes phase only through
 * px_stream_set_phase, which checks this table. The table and names are pure (any thread); the
 * setter runs on the stream's worker. No allocation.
 */
#ifndef PX_H2_PHASE_H
#define PX_H2_PHASE_H

#include "mem/base.h"

#include <stdbool.h>

typedef enum px_stream_phase_e {
    PX_PHASE_REQUEST_HEADERS = 0, /* opened by the request head, not yet routed */
    PX_PHASE_WAITING_UPSTREAM,    /* routed (sent upstream, or about to be answered by weir);
                                     no response head yet */
    PX_PHASE_RESPONSE_QUEUED,     /* the response head waits on the connection's response queue
                                     (serve.c's resp_q): on it exactly in this phase */
    PX_PHASE_RESPONSE_BODY,       /* the head is written; body bytes go out as they come */
    PX_PHASE_RESPONSE_SENT,       /* END_STREAM (or the trailers) handed to the codec */
    PX_PHASE_RESET,               /* refused or reset by weir: further input is ignored */
    PX_PHASE_CLOSED,              /* the codec closed the stream; its memory goes when the
                                     codec's callback returns */
    PX_PHASE_CNT,
} px_stream_phase_t;

typedef struct px_stream_s px_stream_t;

/* Moves `st` to phase `to`, which the table must allow from its present phase. An illegal
 * change is a bug of weir's, never the peer's doing: it asserts in debug builds (MEM_DEBUG>=1);
 * otherwise it is logged (once per process, naming both phases) and made anyway. Returns false
 * when it was illegal. Thread: the stream's owner. Alloc: none. */
bool px_stream_set_phase(px_stream_t *st, px_stream_phase_t to);

/* True when a stream may go from `from` to `to`. Getter. */
bool px_stream_phase_allowed(px_stream_phase_t from, px_stream_phase_t to);

/* "request_headers", "waiting_upstream", "response_queued", "response_body", "response_sent",
 * "reset", "closed" (/memory/regions and the logs); "?" out of range. Getter. */
const char *px_stream_phase_name(px_stream_phase_t p);

#endif /* PX_H2_PHASE_H */
