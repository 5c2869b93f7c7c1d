/*
 * proxy/core/oversnap.c: the ring of overload snapshots (proxy/core/oversnap.h): the heap
 * snapshot's number from mem/heapsnap and a copy of the largest regions, per rise of the
 * overload level.
 *
 * One process-wide ring in static storage behind `os_lock`; the monitor writes a slot, the
 * admin thread reads it. The regions are collected before the lock is taken, so a reader
 * never waits for the workers.
 */
#include "proxy/core/oversnap.h"
#include "mem/base.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mem/budget.h"
#include "proxy/core/overload.h"

typedef struct os_slot_s {
    px_oversnap_info_t info;
    px_region_row_t rows[PX_OVERSNAP_REGIONS];
} os_slot_t;

static pthread_mutex_t os_lock = PTHREAD_MUTEX_INITIALIZER;
static os_slot_t os_ring[PX_OVERSNAP_MAX];
static long os_next = 1; /* under os_lock */
static long os_last;     /* atomic */
/* The collection's destination: only the monitor (main thread) takes snapshots, so one
 * scratch suffices, and nothing is allocated from a nearly spent budget for it. */
static px_region_row_t os_scratch[PX_OVERSNAP_REGIONS];

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

long px_oversnap_take(px_server_t *s, int from, int to, double pressure)
{
    MEM_ASSERT(s != NULL);
    MEM_ASSERT(to > from);
    px_oversnap_info_t info;
    memset(&info, 0, sizeof(info));
    info.from = from;
    info.to = to;
    info.pressure = pressure;
    info.wall_ms = wall_ms();
    info.committed = mem_budget_committed();
    info.limit = mem_budget_limit();
    /* The heap first: it is the moment's, the regions take up to PX_OVERSNAP_COLLECT_MS. */
    int hrc = mem_heapsnap_save((unsigned)to, &info.heap_which);
    /* The collection's scratch passes the budget's limit (px_server_collect_regions): at
     * critical a plain allocation of it fails, and the snapshot is wanted most then. */
    px_region_row_t *rows = os_scratch;
    size_t n = px_server_collect_regions(s, rows, PX_OVERSNAP_REGIONS, PX_OVERSNAP_COLLECT_MS);
    MEM_ASSERT(n <= PX_OVERSNAP_REGIONS);
    info.regions_cnt = n;
    pthread_mutex_lock(&os_lock);
    info.which = os_next++;
    os_slot_t *slot = &os_ring[(size_t)(info.which - 1) % PX_OVERSNAP_MAX];
    slot->info = info;
    if (n > 0)
        memcpy(slot->rows, rows, n * sizeof(*rows));
    __atomic_store_n(&os_last, info.which, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&os_lock);
    fprintf(stderr,
            "weir: overload: snapshot %ld kept (%s -> %s): heap %s, %zu regions "
            "(GET /heap_dump?overload=%ld, /memory/regions?overload=%ld)\n",
            info.which, px_overload_level_name((px_overload_level_t)from),
            px_overload_level_name((px_overload_level_t)to),
            hrc == 0         ? "sampled"
            : hrc == -ENOENT ? "not sampled (sampling off)"
                             : "not kept",
            n, info.which, info.which);
    return info.which;
}

int px_oversnap_get(long which, px_oversnap_info_t *info, px_region_row_t *rows, size_t max)
{
    MEM_ASSERT(info != NULL);
    MEM_ASSERT(rows != NULL || max == 0);
    memset(info, 0, sizeof(*info));
    if (which < 1)
        return -ENOENT;
    pthread_mutex_lock(&os_lock);
    const os_slot_t *slot = &os_ring[(size_t)(which - 1) % PX_OVERSNAP_MAX];
    int rc = -ENOENT;
    if (slot->info.which == which) {
        *info = slot->info;
        size_t k = MEM_MIN(max, slot->info.regions_cnt);
        if (k > 0)
            memcpy(rows, slot->rows, k * sizeof(*rows));
        info->regions_cnt = k;
        rc = 0;
    }
    pthread_mutex_unlock(&os_lock);
    return rc;
}

long px_oversnap_last(void)
{
    return __atomic_load_n(&os_last, __ATOMIC_ACQUIRE);
}
