/*
 * proxy/codec/state.c: the stream state machine of RFC 9113 section 5.1 (proxy/codec/state.h).
 * Each case follows the paragraph of section 5.1 for its state; where section 6 adds a rule
 * for a frame type (6.1 DATA, 6.2 HEADERS) it is cited.
 */
#include "proxy/codec/state.h"
#include "mem/base.h"

static bool is_recv(px_h2_event_t ev)
{
    return ev >= PX_H2_EV_RECV_HEADERS;
}

/* The state after END_STREAM in direction `recv` from `s`. */
static px_h2_state_t half_close(px_h2_state_t s, bool recv)
{
    switch (s) {
    case PX_H2_ST_OPEN:
        return recv ? PX_H2_ST_HALF_CLOSED_REMOTE : PX_H2_ST_HALF_CLOSED_LOCAL;
    case PX_H2_ST_HALF_CLOSED_LOCAL:
        return recv ? PX_H2_ST_CLOSED : s;
    case PX_H2_ST_HALF_CLOSED_REMOTE:
        return recv ? s : PX_H2_ST_CLOSED;
    default:
        return s;
    }
}

px_h2_verdict_t px_h2_state_next(px_h2_state_t cur, px_h2_event_t ev, bool end_stream,
                                 px_h2_closed_t how, px_h2_state_t *next)
{
    MEM_ASSERT(cur < PX_H2_ST_CNT);
    MEM_ASSERT(ev < PX_H2_EV_CNT);
    *next = cur;
    bool recv = is_recv(ev);
    /* PRIORITY is allowed in every state and changes none (section 5.1, 5.3.2). */
    if (ev == PX_H2_EV_RECV_PRIORITY)
        return PX_H2_OK;
    /* RST_STREAM closes every state but idle. */
    if (ev == PX_H2_EV_SEND_RST || ev == PX_H2_EV_RECV_RST) {
        if (cur == PX_H2_ST_IDLE)
            return recv ? PX_H2_CONN_ERR_PROTOCOL : PX_H2_BUG;
        if (cur == PX_H2_ST_CLOSED) {
            /* We may answer a frame on a closed stream with RST_STREAM; a peer's RST_STREAM
             * may cross ours or follow our END_STREAM. */
            if (!recv || how != PX_H2_CLOSED_BY_PEER)
                return recv ? PX_H2_IGNORE : PX_H2_OK;
            return PX_H2_STREAM_ERR_CLOSED;
        }
        *next = PX_H2_ST_CLOSED;
        return PX_H2_OK;
    }
    switch (cur) {
    case PX_H2_ST_IDLE:
        if (ev == PX_H2_EV_SEND_HEADERS || ev == PX_H2_EV_RECV_HEADERS) {
            *next = end_stream ? half_close(PX_H2_ST_OPEN, recv) : PX_H2_ST_OPEN;
            return PX_H2_OK;
        }
        if (ev == PX_H2_EV_SEND_PUSH_PROMISE) {
            *next = PX_H2_ST_RESERVED_LOCAL;
            return PX_H2_OK;
        }
        if (ev == PX_H2_EV_RECV_PUSH_PROMISE) {
            *next = PX_H2_ST_RESERVED_REMOTE;
            return PX_H2_OK;
        }
        /* "Receiving any frame other than HEADERS or PRIORITY on a stream in this state
         * MUST be treated as a connection error of type PROTOCOL_ERROR." */
        return recv ? PX_H2_CONN_ERR_PROTOCOL : PX_H2_BUG;
    case PX_H2_ST_RESERVED_LOCAL:
        if (ev == PX_H2_EV_SEND_HEADERS) {
            *next = end_stream ? PX_H2_ST_CLOSED : PX_H2_ST_HALF_CLOSED_REMOTE;
            return PX_H2_OK;
        }
        if (ev == PX_H2_EV_RECV_WINDOW_UPDATE)
            return PX_H2_OK;
        return recv ? PX_H2_CONN_ERR_PROTOCOL : PX_H2_BUG;
    case PX_H2_ST_RESERVED_REMOTE:
        if (ev == PX_H2_EV_RECV_HEADERS) {
            *next = end_stream ? PX_H2_ST_CLOSED : PX_H2_ST_HALF_CLOSED_LOCAL;
            return PX_H2_OK;
        }
        return recv ? PX_H2_CONN_ERR_PROTOCOL : PX_H2_BUG;
    case PX_H2_ST_OPEN:
    case PX_H2_ST_HALF_CLOSED_LOCAL:
    case PX_H2_ST_HALF_CLOSED_REMOTE:
        if (ev == PX_H2_EV_SEND_PUSH_PROMISE)
            return PX_H2_BUG; /* the promised stream must be idle */
        if (ev == PX_H2_EV_RECV_PUSH_PROMISE)
            return PX_H2_CONN_ERR_PROTOCOL;
        if (ev == PX_H2_EV_RECV_WINDOW_UPDATE)
            return PX_H2_OK;
        if (recv && cur == PX_H2_ST_HALF_CLOSED_REMOTE)
            /* "other than WINDOW_UPDATE, PRIORITY, or RST_STREAM ... STREAM_CLOSED" (6.1) */
            return PX_H2_STREAM_ERR_CLOSED;
        if (!recv && cur == PX_H2_ST_HALF_CLOSED_LOCAL)
            return PX_H2_BUG; /* we already sent END_STREAM */
        if (end_stream)
            *next = half_close(cur, recv);
        return PX_H2_OK;
    case PX_H2_ST_CLOSED:
        if (!recv)
            return PX_H2_BUG; /* "An endpoint MUST NOT send frames other than PRIORITY" */
        if (how == PX_H2_CLOSED_BY_US)
            return PX_H2_IGNORE; /* frames in flight when our RST_STREAM left */
        if (how == PX_H2_CLOSED_BY_PEER)
            return ev == PX_H2_EV_RECV_PUSH_PROMISE ? PX_H2_CONN_ERR_PROTOCOL
                                                    : PX_H2_STREAM_ERR_CLOSED;
        switch (ev) {
        case PX_H2_EV_RECV_WINDOW_UPDATE:
            return PX_H2_IGNORE; /* may cross our END_STREAM */
        case PX_H2_EV_RECV_DATA:
            return PX_H2_STREAM_ERR_CLOSED; /* section 6.1 */
        case PX_H2_EV_RECV_HEADERS:
            return PX_H2_CONN_ERR_CLOSED; /* sections 5.1 and 5.4.1 */
        default:
            return PX_H2_CONN_ERR_PROTOCOL;
        }
    default:
        MEM_ASSERT(!"unknown stream state");
        return PX_H2_BUG;
    }
}

const char *px_h2_state_name(px_h2_state_t s)
{
    static const char *const names[PX_H2_ST_CNT] = {
        "idle",   "reserved_local",    "reserved_remote",
        "open",   "half_closed_local", "half_closed_remote",
        "closed",
    };
    return s < PX_H2_ST_CNT ? names[s] : "invalid";
}
