/*
 * proxy/core/oversnap.h: overload snapshots: what held memory when the overload level rose to
 * elevated or critical, kept for reading after the incident: the sampled heap (a mem/heapsnap
 * overload slot) and the PX_OVERSNAP_REGIONS largest regions (/memory/regions?top=50).
 *
 * The last PX_OVERSNAP_MAX rises are kept, numbered from 1 (GET /heap_dump?overload=N and
 * /memory/regions?overload=N); the oldest is replaced. The rows live in static storage
 * (PX_OVERSNAP_MAX * PX_OVERSNAP_REGIONS * sizeof(px_region_row_t) = 98 KiB of .bss, touched
 * only when a snapshot is taken), so a snapshot taken at critical pressure allocates nothing
 * but the regions collection's scratch, and that past the budget's limit. One process-wide
 * ring behind a mutex.
 * Thread: the overload monitor (main) takes them; any thread reads.
 */
#ifndef PX_CORE_OVERSNAP_H
#define PX_CORE_OVERSNAP_H

#include "mem/base.h"

#include <stddef.h>
#include <stdint.h>

#include "mem/heapsnap.h"
#include "proxy/core/server.h"

#define PX_OVERSNAP_MAX     MEM_HEAPSNAP_OVERLOAD_MAX
#define PX_OVERSNAP_REGIONS 50u
/* How long the monitor waits for the workers' region rows (it blocks its own loop). */
#define PX_OVERSNAP_COLLECT_MS 500u

/* One kept snapshot's header. */
typedef struct px_oversnap_info_s {
    long which;         /* 1, 2, ...; 0 = none */
    int from, to;       /* px_overload_level_t before and after the rise */
    double pressure;    /* at the rise */
    uint64_t wall_ms;   /* CLOCK_REALTIME in ms */
    uint64_t committed; /* committed bytes at the rise */
    uint64_t limit;     /* the budget's limit */
    long heap_which;    /* its mem/heapsnap number; 0 when heap sampling was off */
    size_t regions_cnt; /* rows kept */
} px_oversnap_info_t;

/* Takes a snapshot for a rise `from` -> `to` at `pressure`: the sampled heap, then the top
 * regions (waits up to PX_OVERSNAP_COLLECT_MS for the workers), and logs one line naming the
 * endpoints that serve it. Returns its number. Thread: main (the overload monitor).
 * Alloc: mem_malloc_exempt (the collection's scratch), system (mem/heapsnap's slots, once). */
long px_oversnap_take(px_server_t *s, int from, int to, double pressure);

/* Copies snapshot `which`'s header into `info` and up to `max` of its rows into `rows`
 * (largest first). Returns 0, or -ENOENT when it was replaced or never taken.
 * Thread: any. Alloc: none. */
int px_oversnap_get(long which, px_oversnap_info_t *info, px_region_row_t *rows, size_t max);

/* The number of the newest snapshot, 0 when none. Thread: any. */
long px_oversnap_last(void);

#endif /* PX_CORE_OVERSNAP_H */
