/*
 * proxy/h2/guard.c: the stream-reset budget declared in proxy/h2/guard.h. Embedded in
 * px_h2_conn_t; touched only by the connection's worker.
 */
#include "proxy/h2/guard.h"

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
