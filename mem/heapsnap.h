/*
 * mem/heapsnap.h: heap snapshots kept past their moment: the sampled heap as it was at the
 * highest committed memory since start (or since the last reset), and at the last few rises
 * of the overload level, so that an operator can read them after the incident.
 *
 * A kept snapshot is a copy of the heap profiler's buckets (mem/heapprof.h): sampled
 * allocations only, one bucket per distinct stack and labels. Each of the
 * 1 + MEM_HEAPSNAP_OVERLOAD_MAX slots is a private mapping with room for
 * MEM_HEAPPROF_BUCKETS_MAX buckets (2.6 MiB), touched only as far as it is filled; the touched
 * pages are charged to the budget as metadata (the `metadata` field of /memory). The peak
 * slot is refreshed when a sampled allocation or mem_heapsnap_peak_poll() sees committed
 * memory pass the kept peak by a margin (1/32 of it, at least 256 KiB), at most once per
 * MEM_HEAPSNAP_PEAK_GAP_MS (25 ms), so a rising ramp does not copy on every sample:
 * the kept snapshot is within 1/32 of the peak, or within 25 ms of growth before it. A copy is
 * a memcpy of the buckets under the profiler's lock (a few hundred buckets: tens of KiB).
 * One process-wide instance behind one mutex. Thread: any.
 */
#ifndef MEM_HEAPSNAP_H
#define MEM_HEAPSNAP_H

#include "mem/base.h"
#include "mem/heapprof.h"

#include <stddef.h>
#include <stdint.h>

/* Overload snapshots kept (a ring: the oldest is replaced). */
#define MEM_HEAPSNAP_OVERLOAD_MAX 4u
/* The least time between two copies into the peak slot. */
#define MEM_HEAPSNAP_PEAK_GAP_MS 25u

/* Which heap a dump reads (mem_heapprof_dump_at and friends): the live one, the peak
 * snapshot, or overload snapshot number N (N >= 1, as mem_heapsnap_save() numbered it). */
#define MEM_HEAPSNAP_LIVE 0L
#define MEM_HEAPSNAP_PEAK (-1L)

/* What a kept snapshot is: for /memory and the logs. */
typedef struct mem_heapsnap_info_s {
    long which;             /* MEM_HEAPSNAP_PEAK or the overload snapshot's number */
    unsigned tag;           /* the caller's tag (the overload level); 0 for the peak */
    uint64_t wall_ms;       /* CLOCK_REALTIME in ms when it was taken; 0 = never */
    uint64_t committed;     /* committed bytes when it was taken */
    uint64_t live_bytes;    /* sampled live bytes in it (raw samples, not scaled) */
    uint64_t buckets;       /* buckets in it */
    uint64_t charged_bytes; /* memory the slot holds, charged as metadata */
} mem_heapsnap_info_t;

/* Copies the sampled heap into the next overload slot, tagged `tag`, and returns its number
 * (1, 2, ...) in `*which_out`. Returns 0, -ENOMEM when the slots cannot be mapped, or
 * -ENOENT when sampling is off (nothing to keep). Thread: any. Alloc: system (mmap, once). */
int mem_heapsnap_save(unsigned tag, long *which_out);

/* Refreshes the peak snapshot if committed memory is past the kept peak by the margin and
 * the gap has passed (the overload monitor calls it each tick, so the top of a ramp that
 * stopped allocating is still caught). Thread: any. Alloc: system (mmap, once). */
void mem_heapsnap_peak_poll(void);

/* Forgets the peak snapshot: the next sampled allocation or poll starts a new one.
 * Thread: any. */
void mem_heapsnap_peak_reset(void);

/* Describes the snapshot `which` into `out`. Returns 0, or -ENOENT when there is none (an
 * overload number that was replaced or never taken, or no peak yet). Thread: any. */
int mem_heapsnap_info(long which, mem_heapsnap_info_t *out);

/* The highest committed bytes a peak check has seen since start or the last reset. */
uint64_t mem_heapsnap_peak_committed(void);

/* Bytes all the slots hold (charged as metadata). Thread: any. */
size_t mem_heapsnap_bytes(void);

/* ---- mem/ only -------------------------------------------------------------------------- */

/* The peak check on the sampling path: one relaxed load and compare unless it fires. Called by
 * the profiler after it has released its lock. */
void mem__heapsnap_peak_check(void);

/* Takes a snapshot of heap `which` for a dump (a copy, released with
 * mem__heapprof_snap_release). Returns 0, -ENOENT or -ENOMEM. Alloc: system (mmap). */
int mem__heapsnap_take(mem__heapprof_snap_t *snap, long which);

/* Forgets the slots' metadata charge (mem_fini). Thread: main. */
void mem__heapsnap_meta_forget(void);

#endif /* MEM_HEAPSNAP_H */
