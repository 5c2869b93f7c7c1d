/*
 * proxy/upstream/tenant.c: the memory tenants' counters and admission (see tenant.h). Every
 * function runs on the worker that owns the row it writes; readers sum the rows.
 */
#include "proxy/upstream/tenant.h"
#include "mem/base.h"

#include <string.h>

void px_tenant_sum(const px_tenant_stats_t *table, unsigned rows, size_t cnt, unsigned t,
                   px_tenant_stats_t *out)
{
    MEM_ASSERT(out != NULL);
    MEM_ASSERT(t > 0 && t <= cnt);
    memset(out, 0, sizeof(*out));
    if (table == NULL)
        return;
    for (unsigned r = 0; r < rows; r++) {
        const px_tenant_stats_t *x = &table[(size_t)r * cnt + (t - 1)];
        out->bytes += __atomic_load_n(&x->bytes, __ATOMIC_RELAXED);
        out->streams += __atomic_load_n(&x->streams, __ATOMIC_RELAXED);
        out->admitted += __atomic_load_n(&x->admitted, __ATOMIC_RELAXED);
        out->refused += __atomic_load_n(&x->refused, __ATOMIC_RELAXED);
        out->shed += __atomic_load_n(&x->shed, __ATOMIC_RELAXED);
        out->shed_bytes += __atomic_load_n(&x->shed_bytes, __ATOMIC_RELAXED);
    }
}

size_t px_tenant_bytes(const px_worker_t *w, unsigned t)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(t > 0 && t <= w->cfg->tenants_cnt);
    size_t cnt = w->cfg->tenants_cnt;
    uint64_t sum = 0;
    for (unsigned r = 0; r < w->tenant_rows; r++)
        sum += __atomic_load_n(&w->tenant_table[(size_t)r * cnt + (t - 1)].bytes, __ATOMIC_RELAXED);
    return (size_t)sum;
}

bool px_tenant_admit(px_worker_t *w, unsigned t)
{
    MEM_ASSERT(w != NULL);
    if (t == 0 || w->tenants == NULL)
        return true;
    MEM_ASSERT(t <= w->cfg->tenants_cnt);
    px_tenant_stats_t *ts = &w->tenants[t - 1];
    px_tenant_stats_t sum;
    px_tenant_sum(w->tenant_table, w->tenant_rows, w->cfg->tenants_cnt, t, &sum);
    /* What its streams hold, or what they may come to hold (one stream buffer each: a client
     * that opens many streams and stops reading fills them all within one monitor tick, before
     * any shedding), whichever is more; and the new stream's buffer must fit too. */
    size_t per = w->cfg->limits.stream_buffer_bytes;
    size_t held = MEM_MAX((size_t)sum.bytes, (size_t)sum.streams * per);
    if (held + per > w->cfg->tenants[t - 1].limit_bytes) {
        MEM_STAT_ADD(ts->refused, 1);
        return false;
    }
    MEM_STAT_ADD(ts->admitted, 1);
    MEM_STAT_ADD(ts->streams, 1);
    return true;
}

void px_tenant_end(px_worker_t *w, unsigned t, size_t *counted)
{
    MEM_ASSERT(t > 0 && w->tenants != NULL);
    px_tenant_weigh(w, t, counted, 0);
    MEM_ASSERT(*counted == 0);
    MEM_STAT_SUB(w->tenants[t - 1].streams, 1);
}

void px_tenant_shed(px_worker_t *w, unsigned t, size_t bytes)
{
    MEM_ASSERT(t > 0 && w->tenants != NULL);
    MEM_ASSERT(t <= w->cfg->tenants_cnt);
    MEM_STAT_ADD(w->tenants[t - 1].shed, 1);
    MEM_STAT_ADD(w->tenants[t - 1].shed_bytes, bytes);
}
