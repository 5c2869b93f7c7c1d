/*
 * proxy/core/overload.h: the overload manager: where the memory limit comes from (an explicit size
 * or a share of the cgroup limit), how pressure is measured, the level state machine with
 * hysteresis, and the monitor that publishes the level and asks workers to act.
 *
 * Limit: memory.limit (--memory-limit) as a size; else a share of the cgroup limit (default
 * 90%); with no cgroup limit, off: pressure is then 0 but committed bytes are still reported.
 *
 * Pressure rule (the one documented for operators):
 *   budget pressure = committed / limit, measured after idle cached memory has been returned:
 *       when the raw figure would raise the level (and at most once a second while the level
 *       is not normal) the monitor calls mem_release_now() first and re-reads, so cached free
 *       memory never triggers an action; only memory really held does
 *       (held = committed - what mem_release_now() can give back).
 *   cgroup pressure = (usage - inactive file cache) / cgroup limit, where the process's own
 *       cgroup (or an ancestor) has a memory limit: v2 memory.current and memory.stat
 *       "inactive_file", v1 memory.usage_in_bytes and memory.stat "total_inactive_file".
 *   pressure = max(budget pressure, cgroup pressure), 0 when there is neither limit.
 *
 * Levels: NORMAL -> ELEVATED at pressure >= elevated, -> CRITICAL at >= critical; a level is
 * left downwards only when pressure < its threshold - hysteresis (recovery is automatic).
 * Actions: NORMAL admits streams while the worker's streams could together hold no more than
 * its part of the budget up to elevated (the pool; px_overload__admit_stream), then only on
 * connections under their fair share; ELEVATED refuses new streams on the connections that
 * hold more than their fair share (RST_STREAM(REFUSED_STREAM)), closes the connections that
 * stopped reading (output blocked PX_OVERLOAD_STALL_MS), heaviest first, until they held the
 * excess over elevated - hysteresis, and stops upstream keep-alive on every worker; CRITICAL
 * refuses every new stream, closes every stalled connection, stops accepting
 * (proxy/core/conn.c), sends GOAWAY to idle connections and resets up to
 * PX_OVERLOAD_SHED_PER_TICK of each worker's streams holding the most memory with
 * RST_STREAM(ENHANCE_YOUR_CALM) (proxy/core/shed.c), every second tick: the ticks between have
 * each worker return its cached memory first (mem_release_now() on the worker: only a thread
 * can flush its own cache), and shedding happens only if pressure is still critical after
 * that. Above NORMAL workers act on every tick: stalled connections are closed and caches
 * released.
 *
 * The monitor samples every PX_OVERLOAD_TICK_MS. A burst that allocates faster than that
 * meets the budget's hard limit first (allocations return NULL and the affected stream or
 * upstream connection fails); the levels bound sustained load, the hard limit bounds bursts.
 *
 * One monitor per server, owned by it (px_server_t.overload), created and ticked on the main
 * thread's loop. Workers read the level with one atomic load (px_server_overload) and act in
 * their async callback; the snapshot may be read from any thread.
 */
#ifndef PX_OVERLOAD_H
#define PX_OVERLOAD_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "proxy/config/config.h"
#include "proxy/core/server.h"

#define PX_OVERLOAD_TICK_MS       100u  /* sampling period at every level */
#define PX_OVERLOAD_RELEASE_MS    1000u /* release-first at most this often while not normal */
#define PX_OVERLOAD_SHED_PER_TICK 8u    /* streams reset per worker per tick at CRITICAL */
#define PX_OVERLOAD_STALL_MS      1000u /* output blocked this long: shed under pressure */
#define PX_OVERLOAD_SHED_CONNS    64u   /* stalled connections closed per worker per tick */
#define PX_CGROUP_DIR_MAX         512u

/* Memory figures of the cgroup whose limit binds this process. */
typedef struct px_cgroup_mem_s {
    int version;                  /* 0: no cgroup memory controller found; 1 or 2 */
    uint64_t limit_bytes;         /* the smallest limit on the way to the root; 0 = none */
    uint64_t usage_bytes;         /* v2 memory.current, v1 memory.usage_in_bytes */
    uint64_t inactive_file_bytes; /* from memory.stat; 0 when unavailable */
    char dir[PX_CGROUP_DIR_MAX];  /* folder whose limit binds ("" when none) */
} px_cgroup_mem_t;

/* Level thresholds, as in the config's memory section. */
typedef struct px_overload_thresholds_s {
    double elevated;
    double critical;
    double hysteresis;
} px_overload_thresholds_t;

/* What /overload shows: a consistent copy taken under the monitor's lock. */
typedef struct px_overload_info_s {
    px_overload_level_t level;
    double pressure;        /* max of the two below, last sample */
    double budget_pressure; /* committed / limit after release-first; 0 without a limit */
    double cgroup_pressure; /* 0 without a cgroup limit */
    uint64_t limit_bytes;   /* the memory budget's limit, 0 = off */
    uint64_t committed_bytes;
    int cgroup_version;          /* 0, 1 or 2 */
    uint64_t cgroup_limit_bytes; /* 0 = none */
    uint64_t cgroup_usage_bytes; /* usage minus inactive file cache */
    px_overload_thresholds_t thresholds;
    uint64_t last_transition_ms; /* wall clock (ms since the epoch), 0 = never */
    uint64_t level_since_ms;     /* how long the level has held, ms */
    uint64_t transitions;        /* level changes, either way */
    uint64_t entered_elevated;   /* times the level rose to ELEVATED */
    uint64_t entered_critical;   /* times the level rose to CRITICAL */
    uint64_t releases;           /* release-first calls to mem_release_now() */
    uint64_t released_bytes;     /* bytes they returned to the OS */
    uint64_t samples;            /* monitor ticks */
    uint64_t shed_requests;      /* CRITICAL ticks that asked workers to shed */
} px_overload_info_t;

/* ---- pure parts (unit tested) ----------------------------------------------------------- */

/* The next level from `cur` at `pressure` under `t` (see the rule above). Alloc: none. */
px_overload_level_t px_overload_next(px_overload_level_t cur, double pressure,
                                     const px_overload_thresholds_t *t);

/* Lower-case name of `level` ("normal", "elevated", "critical"). Getter. */
const char *px_overload_level_name(px_overload_level_t level);

/* The budget limit for `m` given the cgroup limit `cgroup_limit` (0 = none): limit_bytes when
 * set, else limit_cgroup_fraction of the cgroup limit, else 0 (off). Alloc: none. */
size_t px_overload_limit_for(const px_memory_cfg_t *m, uint64_t cgroup_limit);

/* Finds the memory cgroup of the process described by `proc_cgroup` (a /proc/PID/cgroup
 * file) under `root` (normally /sys/fs/cgroup): v2 ("0::/path", memory.max) first, then v1
 * (":memory:/path" under root/memory, memory.limit_in_bytes). Walks from the process's
 * cgroup up to the root and keeps the smallest limit; when the cgroup's folder is not visible
 * (a container without its own cgroup namespace) it reads root itself. Fills `out` (limit,
 * and usage via px_cgroup_mem_read_usage). Returns 0 (also when there is no limit:
 * limit_bytes 0), or -ENOENT when no memory controller is mounted there.
 * Thread: any. Alloc: none (stack buffers only). */
int px_cgroup_mem_probe(const char *root, const char *proc_cgroup, px_cgroup_mem_t *out);

/* The CPU quota of the process described by `proc_cgroup` under `root` (normally
 * /sys/fs/cgroup), in whole CPUs rounded up: the smallest on the way from its cgroup up to the
 * root, v2 cpu.max or v1 cpu.cfs_quota_us / cpu.cfs_period_us (under root/cpu or
 * root/cpu,cpuacct); the cgroup's folder not visible reads root itself, as for memory.
 * Returns 0 when there is no quota or no cpu controller. Thread: any. Alloc: none. */
unsigned px_cgroup_cpu_quota(const char *root, const char *proc_cgroup);

/* Re-reads usage and inactive file cache in `cg->dir`. Returns 0 or -errno. Thread: any. */
int px_cgroup_mem_read_usage(px_cgroup_mem_t *cg);

/* Parses one "key value" line file (memory.stat) for `key`; returns 0 and sets `*out`,
 * -ENOENT when the key is absent, or -errno when the file cannot be read. */
int px_cgroup_stat_get(const char *path, const char *key, uint64_t *out);

/* Reads one decimal number (or "max" = 0, no limit; v1's huge "no limit" value = 0) from
 * `path`. Returns 0 or -errno (-EINVAL when it is not a number). */
int px_cgroup_read_u64(const char *path, uint64_t *out);

/* ---- the process's limit and the monitor ---------------------------------------------- */

/* Derives the limit for `m` from /sys/fs/cgroup and /proc/self/cgroup and sets it with
 * mem_budget_set_limit(). Returns the limit set (0 = off). Thread: main, before workers. */
size_t px_overload_apply_limit(const px_memory_cfg_t *m);

/* Creates the monitor for `s` on `loop` and starts its timer (one sample now).
 * Returns 0 or -ENOMEM. Ownership: the monitor lives in s->overload until
 * px_overload_free. Thread: main. Alloc: tcache. */
int px_overload_start(px_server_t *s, uv_loop_t *loop);

/* Stops the timer and closes its handle (the loop must run once more to finish the close).
 * Safe when never started. Thread: main. */
void px_overload_stop(px_server_t *s);

/* Frees the monitor (after px_overload_stop and the loop's last run). NULL-safe. */
void px_overload_free(px_server_t *s);

/* Copies the monitor's state into `out`. Before start (or without a monitor) it reports
 * the current level and live pressure with zero counts. Thread: any. Alloc: none. */
void px_overload_snapshot(const px_server_t *s, px_overload_info_t *out);

/* One monitor step outside the timer: samples, moves the level, signals workers.
 * The timer calls it; tests and the admin port may too. Thread: main. */
void px_overload_tick(px_server_t *s);

/* ---- worker side (proxy/core/shed.c) -------------------------------------------------------- */

/* Applies the published level on the calling worker: upstream keep-alive off at ELEVATED and
 * above (on again at NORMAL) and, above NORMAL, the heaviest connections whose output has been
 * blocked PX_OVERLOAD_STALL_MS closed, then mem_release_now() for this thread's cache; at
 * CRITICAL also GOAWAY to idle connections and, on shedding ticks, the reset of up to
 * PX_OVERLOAD_SHED_PER_TICK heaviest streams. Called from the worker's async callback
 * on PX_WF_OVERLOAD. Thread: worker. Alloc: none. */
void px_overload__worker_apply(px_worker_t *w);

/* Whether a new stream on `c` is admitted at the published level (proxy/core/shed.c): never
 * at CRITICAL; at NORMAL while this worker's streams could together hold no more than its part
 * of the budget up to the elevated threshold (two stream buffers each); past that, and at
 * ELEVATED, when what `c` holds plus two stream buffers per stream (the new one included)
 * fits in its fair share: the band between the elevated and critical thresholds divided
 * among the worker's connections. With no budget limit: at NORMAL only. Thread: the
 * connection's worker. Alloc: none. */
typedef struct px_conn_s px_conn_t;
bool px_overload__admit_stream(const px_conn_t *c);

/* True when a memory tenant holds more than its limit (summed over the workers); the monitor
 * then signals the workers, which shed that tenant's heaviest streams. Thread: any. */
bool px_overload__tenants_over(const px_server_t *s);

/* True when this CRITICAL tick sheds (the ticks between only release). Thread: any. */
bool px_overload__shed_now(const px_server_t *s);

#endif /* PX_OVERLOAD_H */
