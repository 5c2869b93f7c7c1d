/*
 * mem/heapsnap.c: the kept heap snapshots (mem/heapsnap.h): the peak slot, refreshed as
 * committed memory reaches new highs, and a ring of overload slots, each a copy of the heap
 * profiler's buckets at its moment.
 *
 * One process-wide instance (`hs`). Any thread saves, checks and reads; one mutex guards the
 * slots. Lock order: hs_lock, then the profiler's lock (mem__heapprof_copy). The peak check
 * on the sampling path only trylocks, so an allocating thread never waits for another's copy.
 * The slots are mapped directly (mmap), never through the facade, so a copy cannot recurse
 * into the allocator.
 */
#include "mem/base.h"
#include "mem/heapsnap.h"
#include "mem/budget.h"
#include "mem/internal.h"

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define HS_SLOTS      (1u + MEM_HEAPSNAP_OVERLOAD_MAX)
#define HS_PEAK_SLOT  0u
#define HS_MARGIN_MIN (256ull << 10)
#define HS_PAGE       4096u

MEM_STATIC_ASSERT(MEM_HEAPSNAP_OVERLOAD_MAX >= 1, "at least one overload slot");

typedef mem__heapprof_bucket_t hs_bucket_t;

typedef struct hs_slot_s {
    hs_bucket_t *b;   /* owns: part of hs.map, room for MEM_HEAPPROF_BUCKETS_MAX */
    size_t cnt;       /* buckets copied; 0 = empty */
    size_t interval;  /* the sampling interval at the copy */
    size_t hwm_bytes; /* touched pages, charged as metadata */
    long which;       /* the overload number; MEM_HEAPSNAP_PEAK for the peak slot */
    unsigned tag;
    uint64_t wall_ms;
    uint64_t committed;
} hs_slot_t;

typedef struct hs_state_s {
    void *map; /* owns: HS_SLOTS slots, MAP_NORESERVE */
    size_t map_len;
    hs_slot_t slot[HS_SLOTS];
    long next_which; /* the number the next overload snapshot gets */
    uint64_t last_peak_ns;
} hs_state_t;

static pthread_mutex_t hs_lock = PTHREAD_MUTEX_INITIALIZER;
static hs_state_t hs = {.next_which = 1};
/* Committed bytes at which the peak check copies (0: at the next check). Relaxed atomics. */
static uint64_t hs_peak_next;
static uint64_t hs_peak_seen;
static size_t hs_charged; /* atomic mirror of the slots' hwm_bytes sum */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Maps the slots on first use (caller holds hs_lock). MAP_NORESERVE: a slot costs RSS only as
 * far as a copy fills it. */
static int map_slots(void)
{
    if (hs.map != NULL)
        return 0;
    size_t per = sizeof(hs_bucket_t) * MEM_HEAPPROF_BUCKETS_MAX;
    size_t len = per * HS_SLOTS;
    void *m =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -ENOMEM;
    hs.map = m;
    hs.map_len = len;
    for (unsigned i = 0; i < HS_SLOTS; i++)
        hs.slot[i].b = (hs_bucket_t *)((char *)m + per * i);
    return 0;
}

/* Copies the profiler's buckets into slot `s` and charges its newly touched pages (caller
 * holds hs_lock). */
static void slot_fill(hs_slot_t *s, long which, unsigned tag, uint64_t committed)
{
    MEM_ASSERT(s->b != NULL);
    s->cnt = mem__heapprof_copy(s->b);
    MEM_ASSERT(s->cnt <= MEM_HEAPPROF_BUCKETS_MAX);
    s->interval = mem_heapprof_interval();
    s->which = which;
    s->tag = tag;
    s->wall_ms = wall_ms();
    s->committed = committed;
    size_t touched = MEM_ALIGN_UP(s->cnt * sizeof(hs_bucket_t), (size_t)HS_PAGE);
    if (touched > s->hwm_bytes) {
        if (mem_is_initialised())
            mem__meta_charge(touched - s->hwm_bytes);
        __atomic_fetch_add(&hs_charged, touched - s->hwm_bytes, __ATOMIC_RELAXED);
        s->hwm_bytes = touched;
    }
}

int mem_heapsnap_save(unsigned tag, long *which_out)
{
    MEM_ASSERT(which_out != NULL);
    *which_out = 0;
    if (mem_heapprof_interval() == 0)
        return -ENOENT;
    pthread_mutex_lock(&hs_lock);
    int err = map_slots();
    if (err == 0) {
        long which = hs.next_which++;
        hs_slot_t *s = &hs.slot[1 + (unsigned)((which - 1) % MEM_HEAPSNAP_OVERLOAD_MAX)];
        slot_fill(s, which, tag, mem_budget_committed());
        MEM_ASSERT(s->which == which);
        *which_out = which;
    }
    pthread_mutex_unlock(&hs_lock);
    return err;
}

/* Copies into the peak slot when committed is past the threshold and the gap has passed.
 * `wait`: take the lock (the monitor's poll) rather than trylock (the sampling path). */
static void peak_try(uint64_t c, bool wait)
{
    if (wait)
        pthread_mutex_lock(&hs_lock);
    else if (pthread_mutex_trylock(&hs_lock) != 0)
        return;
    uint64_t now = mem__now_ns();
    /* Re-check under the lock: another thread may have copied meanwhile. */
    if (c >= __atomic_load_n(&hs_peak_next, __ATOMIC_RELAXED) &&
        now - hs.last_peak_ns >= (uint64_t)MEM_HEAPSNAP_PEAK_GAP_MS * 1000000u &&
        map_slots() == 0) {
        slot_fill(&hs.slot[HS_PEAK_SLOT], MEM_HEAPSNAP_PEAK, 0, c);
        hs.last_peak_ns = now;
        uint64_t margin = MEM_MAX(c / 32, (uint64_t)HS_MARGIN_MIN);
        __atomic_store_n(&hs_peak_next, c + margin, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&hs_lock);
}

static uint64_t peak_seen_update(void)
{
    uint64_t c = mem_budget_committed();
    uint64_t seen = __atomic_load_n(&hs_peak_seen, __ATOMIC_RELAXED);
    while (c > seen && !__atomic_compare_exchange_n(&hs_peak_seen, &seen, c, true, __ATOMIC_RELAXED,
                                                    __ATOMIC_RELAXED))
        ;
    return c;
}

void mem__heapsnap_peak_check(void)
{
    uint64_t c = peak_seen_update();
    if (MEM_LIKELY(c < __atomic_load_n(&hs_peak_next, __ATOMIC_RELAXED)))
        return;
    peak_try(c, false);
}

void mem_heapsnap_peak_poll(void)
{
    if (mem_heapprof_interval() == 0)
        return;
    uint64_t c = peak_seen_update();
    if (c < __atomic_load_n(&hs_peak_next, __ATOMIC_RELAXED))
        return;
    peak_try(c, true);
}

void mem_heapsnap_peak_reset(void)
{
    pthread_mutex_lock(&hs_lock);
    hs.slot[HS_PEAK_SLOT].cnt = 0;
    hs.slot[HS_PEAK_SLOT].wall_ms = 0;
    hs.last_peak_ns = 0;
    __atomic_store_n(&hs_peak_next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hs_peak_seen, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&hs_lock);
}

uint64_t mem_heapsnap_peak_committed(void)
{
    return __atomic_load_n(&hs_peak_seen, __ATOMIC_RELAXED);
}

size_t mem_heapsnap_bytes(void)
{
    return __atomic_load_n(&hs_charged, __ATOMIC_RELAXED);
}

/* The slot holding `which`, or NULL (caller holds hs_lock). */
static hs_slot_t *slot_of(long which)
{
    if (which == MEM_HEAPSNAP_PEAK) {
        hs_slot_t *s = &hs.slot[HS_PEAK_SLOT];
        return s->wall_ms != 0 ? s : NULL;
    }
    if (which < 1)
        return NULL;
    hs_slot_t *s = &hs.slot[1 + (unsigned)((which - 1) % MEM_HEAPSNAP_OVERLOAD_MAX)];
    return s->wall_ms != 0 && s->which == which ? s : NULL;
}

int mem_heapsnap_info(long which, mem_heapsnap_info_t *out)
{
    MEM_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&hs_lock);
    const hs_slot_t *s = slot_of(which);
    if (s != NULL) {
        out->which = s->which;
        out->tag = s->tag;
        out->wall_ms = s->wall_ms;
        out->committed = s->committed;
        out->buckets = s->cnt;
        out->charged_bytes = s->hwm_bytes;
        for (size_t i = 0; i < s->cnt; i++)
            out->live_bytes += s->b[i].live_bytes;
    }
    pthread_mutex_unlock(&hs_lock);
    return s != NULL ? 0 : -ENOENT;
}

int mem__heapsnap_take(mem__heapprof_snap_t *snap, long which)
{
    MEM_ASSERT(snap != NULL);
    if (which == MEM_HEAPSNAP_LIVE)
        return mem__heapprof_snap_take(snap);
    memset(snap, 0, sizeof(*snap));
    pthread_mutex_lock(&hs_lock);
    const hs_slot_t *s = slot_of(which);
    if (s == NULL) {
        pthread_mutex_unlock(&hs_lock);
        return -ENOENT;
    }
    size_t len = MEM_MAX(s->cnt, (size_t)1) * sizeof(hs_bucket_t);
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        pthread_mutex_unlock(&hs_lock);
        return -ENOMEM;
    }
    memcpy(m, s->b, s->cnt * sizeof(hs_bucket_t));
    snap->b = m;
    snap->cnt = s->cnt;
    snap->map_len = len;
    snap->interval = s->interval;
    pthread_mutex_unlock(&hs_lock);
    return 0;
}

void mem__heapsnap_meta_forget(void)
{
    pthread_mutex_lock(&hs_lock);
    for (unsigned i = 0; i < HS_SLOTS; i++) {
        hs.slot[i].hwm_bytes = 0;
        hs.slot[i].cnt = 0;
        hs.slot[i].wall_ms = 0;
    }
    hs.last_peak_ns = 0;
    __atomic_store_n(&hs_charged, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hs_peak_next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hs_peak_seen, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&hs_lock);
}
