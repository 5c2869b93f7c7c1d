/*
 * proxy/h2/guard.c: the per-connection abuse and conformance accounting declared in
 * proxy/h2/guard.h. Embedded in px_h2_conn_t; touched only by the connection's worker.
 */
#include "proxy/h2/guard.h"

#include <string.h>

void px_h2_guard_init(px_h2_guard_t *g)
{
    MEM_ASSERT(g != NULL);
    memset(g, 0, sizeof(*g));
    MEM_ASSERT(g->closed_next == 0);
}

void px_h2_guard_stream_closed(px_h2_guard_t *g, int32_t id, uint32_t code, bool reset)
{
    MEM_ASSERT(g != NULL);
    MEM_ASSERT(g->closed_next < PX_H2_GUARD_CLOSED_CNT);
    /* Only client streams (odd ids) closed by END_STREAM both ways; after a RST_STREAM either
     * side may still see late frames, which must be ignored. */
    if (id <= 0 || (id & 1) == 0 || code != 0 || reset)
        return;
    g->closed[g->closed_next] = id;
    g->closed_next = (g->closed_next + 1) % PX_H2_GUARD_CLOSED_CNT;
}

bool px_h2_guard_closed_clean(const px_h2_guard_t *g, int32_t id)
{
    MEM_ASSERT(g != NULL);
    if (id <= 0)
        return false;
    /* A linear scan of 32 ids, only for frames on streams nghttp2 no longer knows. */
    for (uint32_t i = 0; i < PX_H2_GUARD_CLOSED_CNT; i++)
        if (g->closed[i] == id)
            return true;
    return false;
}

bool px_h2_guard_reset(px_h2_guard_t *g, uint64_t now_ms, uint32_t per_sec)
{
    MEM_ASSERT(g != NULL);
    if (per_sec == 0)
        return false;
    /* A fixed one-second window, as the other frame budgets: a burst that straddles two
     * windows gets at most twice the budget through, and the attack is a sustained rate. */
    if (now_ms - g->rst_start_ms >= 1000) {
        g->rst_start_ms = now_ms;
        g->rst_cnt = 0;
    }
    MEM_ASSERT(now_ms >= g->rst_start_ms); /* loop time never goes back */
    if (g->rst_cnt < UINT32_MAX)
        g->rst_cnt++;
    return g->rst_cnt > per_sec;
}

bool px_h2_guard_reset_blames_peer(uint32_t code)
{
    /* RFC 9113 7: the codes that name an error in what the peer sent. */
    switch (code) {
    case 0x1: /* PROTOCOL_ERROR */
    case 0x3: /* FLOW_CONTROL_ERROR */
    case 0x5: /* STREAM_CLOSED */
    case 0x6: /* FRAME_SIZE_ERROR */
        return true;
    default:
        return false;
    }
}
