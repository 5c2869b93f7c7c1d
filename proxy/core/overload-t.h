/*
 * proxy/core/overload-t.h: the overload levels that the monitor (proxy/core/overload.h)
 * publishes and every worker reads, and the one load that reads them.
 *
 * Types only, so the protocol folders (h2/, upstream/) can apply the level's policy without
 * including the core's headers. The level itself lives in px_server_t.overload_level; a
 * worker borrows a pointer to it (px_worker_t.overload_level).
 */
#ifndef PX_OVERLOAD_T_H
#define PX_OVERLOAD_T_H

#include "mem/base.h"

/* Overload levels, published by the monitor and read by workers with one atomic load. */
typedef enum px_overload_level_e {
    PX_OVERLOAD_NORMAL = 0,
    PX_OVERLOAD_ELEVATED = 1,
    PX_OVERLOAD_CRITICAL = 2,
} px_overload_level_t;

/* Reads a published level (one acquire load). Thread: any. */
static inline px_overload_level_t px_overload_level_load(const int *level)
{
    return (px_overload_level_t)__atomic_load_n(level, __ATOMIC_ACQUIRE);
}

#endif /* PX_OVERLOAD_T_H */
