/*
 * proxy/core/shed.c: what a worker does when the overload level changes or stays CRITICAL:
 * upstream keep-alive off (ELEVATED and above) or on again (NORMAL), GOAWAY to idle
 * connections and the reset of the streams holding the most memory (CRITICAL).
 *
 * Runs only on the worker thread, from its async callback (PX_WF_OVERLOAD, sent by the
 * monitor in proxy/core/overload.c). It touches the worker's own connections and streams.
 */
#include "proxy/core/overload.h"
#include "mem/base.h"

#include <string.h>

#include "mem/budget.h"
#include "mem/subregion.h"
#include "proxy/core/conn.h"
#include "proxy/h2/stream.h"
#include "proxy/upstream/upstream.h"

/* Bytes a stream holds now: its sub-arena and its buffered response body. Its request-body
 * ring towards the upstream is opaque here (proxy/upstream/upstream.h) and bounded by
 * limits.stream_buffer_bytes like every stream's, so it does not change the order. */
static size_t stream_weight(const px_stream_t *st)
{
    return mem_subregion_bytes(st->sub) + st->buffered;
}

/* GOAWAY (NO_ERROR, last stream id processed) to every HTTP/2 connection without streams;
 * once sent and with no streams, nghttp2 wants no more I/O and the connection closes. Idle
 * HTTP/1.1 connections are closed. */
static void goaway_idle(px_wimpl_t *wi)
{
    for (px_conn_t *c = wi->conns, *next; c != NULL; c = next) {
        next = c->next;
        /* An idle HTTP/1.1 keep-alive connection has no GOAWAY: it is closed (between two
         * requests a client must expect that, RFC 9112 9.5). */
        if (!c->closing && c->mode == PX_CONN_H1 && px_h1_idle(&c->h1)) {
            px_conn_close(c);
            MEM_STAT_ADD(wi->w->stats.overload_goaway_idle, 1);
            continue;
        }
        if (c->closing || c->mode != PX_CONN_H2 || c->h2.streams_cnt > 0 || c->shed_goaway)
            continue;
        c->shed_goaway = true;
        px_h2_goaway(&c->h2);
        px_conn_mark_dirty(c);
        MEM_STAT_ADD(wi->w->stats.overload_goaway_idle, 1);
    }
}

/* Resets up to PX_OVERLOAD_SHED_PER_TICK of the heaviest live streams, heaviest first. */
static void shed_heaviest(px_wimpl_t *wi)
{
    px_stream_t *top[PX_OVERLOAD_SHED_PER_TICK];
    size_t wt[PX_OVERLOAD_SHED_PER_TICK];
    size_t n = 0;
    for (px_conn_t *c = wi->conns; c != NULL; c = c->next) {
        if (c->closing || c->mode != PX_CONN_H2)
            continue;
        for (px_stream_t *st = c->h2.streams; st != NULL; st = st->next) {
            if (st->failed)
                continue; /* already reset; its memory goes when the reset is sent */
            size_t x = stream_weight(st);
            if (n == PX_OVERLOAD_SHED_PER_TICK && x <= wt[n - 1])
                continue;
            /* Insertion into the small sorted array (heaviest first). */
            size_t i = n < PX_OVERLOAD_SHED_PER_TICK ? n++ : n - 1;
            while (i > 0 && wt[i - 1] < x) {
                top[i] = top[i - 1];
                wt[i] = wt[i - 1];
                i--;
            }
            top[i] = st;
            wt[i] = x;
        }
    }
    MEM_ASSERT(n <= PX_OVERLOAD_SHED_PER_TICK);
    for (size_t i = 0; i < n; i++) {
        MEM_ASSERT(i == 0 || wt[i - 1] >= wt[i]);
        px_h2_stream_shed(top[i]);
        MEM_STAT_ADD(wi->w->stats.overload_streams_shed, 1);
    }
}

void px_overload__worker_apply(px_worker_t *w)
{
    MEM_ASSERT(w != NULL);
    px_wimpl_t *wi = w->impl;
    MEM_ASSERT(wi != NULL && wi->w == w);
    if (wi->stopping)
        return; /* the upstream pools are closing or closed */
    px_overload_level_t lv = px_server_overload(w->server);
    px_upstream_set_keepalive(w, lv == PX_OVERLOAD_NORMAL);
    if (lv == PX_OVERLOAD_NORMAL)
        return;
    /* Release first: this worker's cache holds what its closed streams freed, and only this
     * thread can flush it. */
    (void)mem_release_now();
    if (lv != PX_OVERLOAD_CRITICAL || wi->draining)
        return;
    goaway_idle(wi);
    if (px_overload__shed_now(w->server))
        shed_heaviest(wi);
}
