/*
 * tests/fuzz/fuzzcheck.h: the end-of-input checks the codec harnesses share
 * (fuzz_h2_session.c, fuzz_downstream.c): how many stream sub-arenas a connection's region
 * still holds, and mem/'s live bytes with this thread's cache flushed.
 * Thread: the harness's one thread. Alloc: none.
 */
#ifndef PX_FUZZCHECK_H
#define PX_FUZZCHECK_H

#include "mem/base.h"

#include <stdint.h>
#include <stdlib.h>

#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"

typedef struct fuzzcheck_subs_s {
    const mem_region_t *region;
    size_t cnt; /* SIZE_MAX while the region is not found */
} fuzzcheck_subs_t;

static void fuzzcheck_on_region(const mem_region_info_t *info, void *arg)
{
    fuzzcheck_subs_t *q = arg;
    if (info->region == q->region)
        q->cnt = info->subregions_cnt;
}

/* The sub-arenas `r` holds (SIZE_MAX when this thread has no such region). */
static inline size_t fuzzcheck_subregions(const mem_region_t *r)
{
    fuzzcheck_subs_t q = {r, SIZE_MAX};
    mem_region_foreach_local(fuzzcheck_on_region, &q);
    return q.cnt;
}

/* mem/'s live bytes, this thread's cache flushed first. */
static inline uint64_t fuzzcheck_live(void)
{
    mem_stats_t st;
    mem_thread_flush();
    if (mem_stats_snapshot(&st) != 0)
        abort();
    return st.live;
}

#endif
