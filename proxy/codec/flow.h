/*
 * proxy/codec/flow.h: HTTP/2 flow-control windows (RFC 9113 section 6.9) for weir's codec: the
 * arithmetic with its overflow rules, and the receive-side policy that reopens a window only
 * as the reader consumes, one WINDOW_UPDATE per half window rather than one per frame.
 *
 * A window is an int64_t so the negative values that a SETTINGS_INITIAL_WINDOW_SIZE change
 * may produce (section 6.9.2) and the overflow tests need no care. Every function is pure
 * over the caller's struct: any thread, no allocation.
 */
#ifndef PX_CODEC_FLOW_H
#define PX_CODEC_FLOW_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

#include "proxy/codec/frame.h"

#define PX_H2_WINDOW_DEFAULT 65535 /* before SETTINGS say otherwise (section 6.9.2) */

/* Send side: what the peer lets us send. Returns 0, or -EOVERFLOW when the WINDOW_UPDATE
 * takes it past 2^31-1 (FLOW_CONTROL_ERROR: a stream error on a stream, else connection). */
MEM_MUST_CHECK static inline int px_h2_window_grow(int64_t *w, uint32_t increment)
{
    MEM_ASSERT_HOT(increment >= 1 && increment <= (uint32_t)PX_H2_WINDOW_MAX);
    if (*w + (int64_t)increment > PX_H2_WINDOW_MAX)
        return -EOVERFLOW;
    *w += increment;
    return 0;
}

/* Send side: `len` bytes (DATA payload and padding) leave; the caller sent no more than
 * the window allowed. */
static inline void px_h2_window_spend(int64_t *w, uint32_t len)
{
    MEM_ASSERT_HOT((int64_t)len <= *w);
    *w -= len;
}

/* Send side: SETTINGS_INITIAL_WINDOW_SIZE moved from `old` to `now`: every stream window
 * moves by the difference and may go below zero. Returns 0, or -EOVERFLOW past 2^31-1
 * (a connection error FLOW_CONTROL_ERROR, section 6.9.2). */
MEM_MUST_CHECK static inline int px_h2_window_resize(int64_t *w, uint32_t old, uint32_t now)
{
    int64_t v = *w + (int64_t)now - (int64_t)old;
    if (v > PX_H2_WINDOW_MAX)
        return -EOVERFLOW;
    *w = v;
    return 0;
}

/* Receive side of one window (a stream's or the connection's). */
typedef struct px_h2_recv_window_s {
    int64_t window;   /* what the peer may still send */
    uint32_t size;    /* the window we want it to have once everything is consumed */
    uint32_t pending; /* consumed bytes not yet given back in a WINDOW_UPDATE */
    uint32_t debt;    /* after a shrink: consumed bytes never to be given back */
} px_h2_recv_window_t;

/* A window of `size` bytes, all of it open (the initial window). */
static inline void px_h2_recv_window_init(px_h2_recv_window_t *r, uint32_t size)
{
    MEM_ASSERT(size <= (uint32_t)PX_H2_WINDOW_MAX);
    r->window = size;
    r->size = size;
    r->pending = 0;
    r->debt = 0;
}

/* `len` bytes arrived (DATA payload and padding). Returns 0, or -EOVERFLOW when the peer
 * sent more than the window allowed (FLOW_CONTROL_ERROR). */
MEM_MUST_CHECK int px_h2_recv_window_take(px_h2_recv_window_t *r, uint32_t len);

/* The reader consumed `len` of the bytes that arrived. Returns the WINDOW_UPDATE increment to
 * send now (0: not yet; the update waits until half the window is pending, so a stream that
 * reads in small pieces does not cost a frame per piece). */
uint32_t px_h2_recv_window_consumed(px_h2_recv_window_t *r, uint32_t len);

/* Changes the window we want (our SETTINGS for a stream, or a connection window raised with
 * WINDOW_UPDATE). Returns the increment to send at once, 0 if none; a smaller size takes
 * effect as the peer spends the excess. */
uint32_t px_h2_recv_window_resize(px_h2_recv_window_t *r, uint32_t size);

/* Our SETTINGS_INITIAL_WINDOW_SIZE moved a stream's window to `size`: unlike a resize, the
 * peer moves its own view of the window by the difference when it reads the SETTINGS (RFC
 * 9113 6.9.2), so the window moves by the difference here too, below zero if the peer had
 * already sent more than the new size, and no WINDOW_UPDATE is due. */
static inline void px_h2_recv_window_settings(px_h2_recv_window_t *r, uint32_t size)
{
    MEM_ASSERT(size <= (uint32_t)PX_H2_WINDOW_MAX);
    r->window += (int64_t)size - (int64_t)r->size;
    r->size = size;
    MEM_ASSERT(r->window <= PX_H2_WINDOW_MAX);
}

#endif /* PX_CODEC_FLOW_H */
