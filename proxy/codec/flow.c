/*
 * proxy/codec/flow.c: the receive-side window policy (proxy/codec/flow.h).
 *
 * Invariant: window + pending + (bytes arrived and not yet consumed) == size + debt; a
 * WINDOW_UPDATE gives back only what was consumed, so however slow the reader, the bytes held
 * for it never pass the window (end-to-end flow control). After a shrink the excess already
 * granted is paid off from consumed bytes (debt) before any is given back.
 */
#include "proxy/codec/flow.h"
#include "mem/base.h"

int px_h2_recv_window_take(px_h2_recv_window_t *r, uint32_t len)
{
    MEM_ASSERT(r->size <= (uint32_t)PX_H2_WINDOW_MAX);
    if ((int64_t)len > r->window)
        return -EOVERFLOW;
    r->window -= len;
    return 0;
}

/* The update to send: everything pending once it is half the window, or when the window
 * has run out entirely (a reader that consumes everything must never stall the peer). */
static uint32_t due(px_h2_recv_window_t *r)
{
    if (r->pending == 0)
        return 0;
    if (r->pending < r->size / 2 && r->window > 0)
        return 0;
    int64_t room = PX_H2_WINDOW_MAX - r->window;
    uint32_t inc = (uint32_t)MEM_MIN((int64_t)r->pending, room);
    r->window += inc;
    r->pending -= inc;
    return inc;
}

uint32_t px_h2_recv_window_consumed(px_h2_recv_window_t *r, uint32_t len)
{
    MEM_ASSERT(len <= (uint32_t)PX_H2_WINDOW_MAX);
    MEM_ASSERT((uint64_t)r->pending + len <= (uint64_t)PX_H2_WINDOW_MAX);
    uint32_t pay = MEM_MIN(len, r->debt);
    r->debt -= pay;
    r->pending += len - pay;
    return due(r);
}

uint32_t px_h2_recv_window_resize(px_h2_recv_window_t *r, uint32_t size)
{
    MEM_ASSERT(size <= (uint32_t)PX_H2_WINDOW_MAX);
    if (size >= r->size) {
        /* The difference opens at once (less any debt), with what is pending. */
        uint32_t grow = size - r->size;
        uint32_t pay = MEM_MIN(grow, r->debt);
        r->debt -= pay;
        r->size = size;
        r->pending += grow - pay;
        uint32_t inc = (uint32_t)MEM_MIN((int64_t)r->pending, PX_H2_WINDOW_MAX - r->window);
        r->window += inc;
        r->pending -= inc;
        return inc;
    }
    /* Shrinking: what is already granted stays granted. The excess comes first out of what
     * is pending, the rest out of bytes consumed later. */
    uint32_t shrink = r->size - size;
    r->size = size;
    uint32_t drop = MEM_MIN(shrink, r->pending);
    r->pending -= drop;
    r->debt += shrink - drop;
    return 0;
}
