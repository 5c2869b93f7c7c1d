/*
 * proxy/codec/state.h: the stream state machine of RFC 9113 section 5.1 for weir's codec, in
 * both roles: one enum, and one function that moves a stream along the RFC's diagram when a
 * frame is sent or received, or says which error the frame is.
 *
 * Replaces the booleans that stand for a stream's state in today's glue (issue 15 section
 * 5): the codec changes a stream's state only through px_h2_state_next, so every state a
 * stream is ever in lies on the diagram, and /memory/regions and the logs name it with
 * px_h2_state_name. Pure functions: any thread, no allocation.
 */
#ifndef PX_CODEC_STATE_H
#define PX_CODEC_STATE_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum px_h2_state_e {
    PX_H2_ST_IDLE = 0,
    PX_H2_ST_RESERVED_LOCAL,
    PX_H2_ST_RESERVED_REMOTE,
    PX_H2_ST_OPEN,
    PX_H2_ST_HALF_CLOSED_LOCAL,  /* we sent END_STREAM */
    PX_H2_ST_HALF_CLOSED_REMOTE, /* the peer sent END_STREAM */
    PX_H2_ST_CLOSED,
    PX_H2_ST_CNT,
} px_h2_state_t;

/* What happens to a stream: a frame sent or received, with or without END_STREAM. */
typedef enum px_h2_event_e {
    PX_H2_EV_SEND_HEADERS = 0, /* HEADERS (with its CONTINUATIONs) */
    PX_H2_EV_SEND_DATA,
    PX_H2_EV_SEND_PUSH_PROMISE, /* on the promised stream */
    PX_H2_EV_SEND_RST,
    PX_H2_EV_RECV_HEADERS,
    PX_H2_EV_RECV_DATA,
    PX_H2_EV_RECV_PUSH_PROMISE, /* on the promised stream */
    PX_H2_EV_RECV_RST,
    PX_H2_EV_RECV_WINDOW_UPDATE,
    PX_H2_EV_RECV_PRIORITY,
    PX_H2_EV_CNT,
} px_h2_event_t;

/* The verdict on a received frame in a state that does not allow it (section 5.1). */
typedef enum px_h2_verdict_e {
    PX_H2_OK = 0,            /* allowed; *next is the new state */
    PX_H2_STREAM_ERR_CLOSED, /* stream error STREAM_CLOSED (RST_STREAM) */
    PX_H2_CONN_ERR_PROTOCOL, /* connection error PROTOCOL_ERROR */
    PX_H2_CONN_ERR_CLOSED,   /* connection error STREAM_CLOSED */
    PX_H2_IGNORE,            /* allowed to arrive, and ignored (e.g. after our RST_STREAM) */
    PX_H2_BUG,               /* we tried to send what the state forbids: a bug of ours */
} px_h2_verdict_t;

/* How a closed stream closed: what may still arrive on it differs (section 5.1, "closed"). */
typedef enum px_h2_closed_e {
    PX_H2_CLOSED_NORMAL = 0, /* END_STREAM both ways */
    PX_H2_CLOSED_BY_US,      /* we sent RST_STREAM: frames in flight are ignored */
    PX_H2_CLOSED_BY_PEER,    /* the peer sent RST_STREAM: frames after it are errors */
} px_h2_closed_t;

/* Moves a stream in state `cur` on `ev` (`end_stream` when the frame carries END_STREAM).
 * `how` matters only when `cur` is CLOSED. On PX_H2_OK `*next` is the new state (CLOSED when
 * the event closes it: px_h2_closed_by tells how); otherwise `*next` is `cur`. Alloc: none. */
px_h2_verdict_t px_h2_state_next(px_h2_state_t cur, px_h2_event_t ev, bool end_stream,
                                 px_h2_closed_t how, px_h2_state_t *next);

/* How a stream that `ev` moved to CLOSED closed. Getter. */
static inline px_h2_closed_t px_h2_closed_by(px_h2_event_t ev)
{
    return ev == PX_H2_EV_SEND_RST   ? PX_H2_CLOSED_BY_US
           : ev == PX_H2_EV_RECV_RST ? PX_H2_CLOSED_BY_PEER
                                     : PX_H2_CLOSED_NORMAL;
}

/* "idle", "open", "half_closed_remote", ... for logs and /memory/regions. Getter. */
const char *px_h2_state_name(px_h2_state_t s);

/* True in the states that count against SETTINGS_MAX_CONCURRENT_STREAMS (section 5.1.2). */
static inline bool px_h2_state_counts(px_h2_state_t s)
{
    return s == PX_H2_ST_OPEN || s == PX_H2_ST_HALF_CLOSED_LOCAL ||
           s == PX_H2_ST_HALF_CLOSED_REMOTE;
}

#endif /* PX_CODEC_STATE_H */
