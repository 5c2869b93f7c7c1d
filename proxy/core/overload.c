/*
 * proxy/core/overload.c: the overload monitor: the memory limit's source (explicit or a share of
 * the cgroup limit), pressure sampling with release-first, the level state machine with
 * hysteresis, transition logs and counts, and the per-worker action requests.
 *
 * One monitor per server (px_server_t.overload), created, ticked and closed on the main
 * thread's loop. It publishes the level with one atomic store; workers act on PX_WF_OVERLOAD
 * in their async callback (proxy/core/shed.c). Its snapshot is guarded by a mutex, so the admin
 * thread can read it at any time.
 */
#include "proxy/core/overload.h"
#include "mem/base.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mem/budget.h"
#include "mem/malloc.h"
#include "proxy/core/conn.h"
#include "proxy/core/oversnap.h"

/* cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit value; treat anything
 * at or above 2^60 (an exabyte) as unlimited. */
#define CG_UNLIMITED (1ULL << 60)
#define CG_LINE_MAX  1024u

typedef struct px_overload_s {
    px_server_t *s;   /* borrows: the server owns the monitor */
    uv_timer_t timer; /* main thread */
    bool timer_open;
    px_cgroup_mem_t cg; /* probed once at start; usage re-read each tick */
    px_overload_thresholds_t th;
    uint64_t last_release_ms; /* monotonic */
    uint64_t level_since_ms;  /* monotonic */
    uint64_t critical_ticks;  /* consecutive ticks at CRITICAL */
    int shed;                 /* any: atomic bool, this CRITICAL tick sheds (workers read it) */
    pthread_mutex_t lock;     /* guards info */
    px_overload_info_t info;
} px_overload_t;

/* ---- levels ----------------------------------------------------------------------------- */

px_overload_level_t px_overload_next(px_overload_level_t cur, double pressure,
                                     const px_overload_thresholds_t *t)
{
    MEM_ASSERT(t != NULL);
    MEM_ASSERT(t->elevated <= t->critical);
    MEM_ASSERT(cur >= PX_OVERLOAD_NORMAL && cur <= PX_OVERLOAD_CRITICAL);
    if (pressure >= t->critical)
        return PX_OVERLOAD_CRITICAL;
    /* Below critical: CRITICAL holds until pressure has fallen past its hysteresis band. */
    if (cur == PX_OVERLOAD_CRITICAL && pressure >= t->critical - t->hysteresis)
        return PX_OVERLOAD_CRITICAL;
    if (pressure >= t->elevated)
        return PX_OVERLOAD_ELEVATED;
    /* Stepping down from CRITICAL or ELEVATED: ELEVATED holds inside its own band. */
    if (cur != PX_OVERLOAD_NORMAL && pressure >= t->elevated - t->hysteresis)
        return PX_OVERLOAD_ELEVATED;
    return PX_OVERLOAD_NORMAL;
}

const char *px_overload_level_name(px_overload_level_t level)
{
    switch (level) {
    case PX_OVERLOAD_NORMAL:
        return "normal";
    case PX_OVERLOAD_ELEVATED:
        return "elevated";
    case PX_OVERLOAD_CRITICAL:
        return "critical";
    }
    return "unknown";
}

size_t px_overload_limit_for(const px_memory_cfg_t *m, uint64_t cgroup_limit)
{
    MEM_ASSERT(m != NULL);
    MEM_ASSERT(m->limit_cgroup_fraction >= 0.0);
    if (m->limit_bytes > 0)
        return m->limit_bytes;
    if (m->limit_cgroup_fraction > 0.0 && cgroup_limit > 0)
        return (size_t)((double)cgroup_limit * m->limit_cgroup_fraction);
    return 0;
}

/* ---- cgroup files ----------------------------------------------------------------------- */

/* Reads up to `len - 1` bytes of a small file into `buf` and NUL-terminates it. The monitor
 * reads cgroup files on every tick: open/read/close keep that off libc's heap (fopen would
 * allocate a FILE and its buffer each time, and weir makes no libc allocations in steady
 * state). Returns the byte count or a negative errno. */
static ssize_t read_small_file(const char *path, char *buf, size_t len)
{
    MEM_ASSERT(len > 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len - 1) {
        ssize_t n = read(fd, buf + off, len - 1 - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    buf[off] = '\0';
    return (ssize_t)off;
}

int px_cgroup_read_u64(const char *path, uint64_t *out)
{
    MEM_ASSERT(path != NULL);
    MEM_ASSERT(out != NULL);
    char buf[64];
    ssize_t got = read_small_file(path, buf, sizeof(buf));
    if (got < 0)
        return (int)got;
    if (got == 0)
        return -EINVAL;
    if (strncmp(buf, "max", 3) == 0) {
        *out = 0;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || errno != 0 || (*end != '\n' && *end != '\0'))
        return -EINVAL;
    *out = v >= CG_UNLIMITED ? 0 : (uint64_t)v;
    return 0;
}

int px_cgroup_stat_get(const char *path, const char *key, uint64_t *out)
{
    MEM_ASSERT(path != NULL && key != NULL);
    MEM_ASSERT(out != NULL);
    /* memory.stat is a few KiB (v2 lists about 40 keys); keys past the buffer read as
     * missing, which the caller treats as 0 (no inactive file cache subtracted). */
    char buf[8192];
    ssize_t got = read_small_file(path, buf, sizeof(buf));
    if (got < 0)
        return (int)got;
    size_t klen = strlen(key);
    for (const char *line = buf; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            char *end = NULL;
            unsigned long long v = strtoull(line + klen + 1, &end, 10);
            if (end == line + klen + 1)
                return -EINVAL;
            *out = (uint64_t)v;
            return 0;
        }
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    return -ENOENT;
}

static bool is_dir_file(const char *dir, const char *name)
{
    char p[PX_CGROUP_DIR_MAX + 64];
    int n = snprintf(p, sizeof(p), "%s/%s", dir, name);
    return n > 0 && (size_t)n < sizeof(p) && access(p, F_OK) == 0;
}

/* Finds the cgroup path for v2 ("0::PATH") or v1 (a controller list naming `ctl`, "memory"
 * or "cpu") in `proc_cgroup`. Returns 0 and copies PATH, or -ENOENT. */
static int own_path(const char *proc_cgroup, int version, const char *ctl_name, char *path,
                    size_t len)
{
    MEM_ASSERT(ctl_name != NULL && ctl_name[0] != '\0');
    size_t ctl_len = strlen(ctl_name);
    FILE *f = fopen(proc_cgroup, "re");
    if (f == NULL)
        return -errno;
    char line[CG_LINE_MAX];
    int rc = -ENOENT;
    while (rc != 0 && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        const char *ctl = c1 + 1, *p = c2 + 1;
        bool match = false;
        if (version == 2) {
            match = strncmp(line, "0:", 2) == 0 && ctl[0] == '\0';
        } else {
            /* The controller list is comma separated ("memory" or e.g. "cpu,cpuacct"). */
            const char *t = ctl;
            while (!match && *t != '\0') {
                size_t tl = strcspn(t, ",");
                match = tl == ctl_len && strncmp(t, ctl_name, tl) == 0;
                t += tl + (t[tl] == ',');
            }
        }
        if (match && strlen(p) < len && p[0] == '/') {
            snprintf(path, len, "%s", p);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

/* Calls `visit(dir, ctx)` for base+path and each folder above it up to base, deepest first
 * (a limit anywhere on the way binds). When base+path is not visible (a container without its
 * own cgroup namespace), our view's root is our cgroup: base alone is visited. */
static void walk_up(const char *base, const char *path, void (*visit)(const char *, void *),
                    void *ctx)
{
    char dir[PX_CGROUP_DIR_MAX];
    int n = snprintf(dir, sizeof(dir), "%s%s", base, strcmp(path, "/") == 0 ? "" : path);
    if (n <= 0 || (size_t)n >= sizeof(dir) || access(dir, F_OK) != 0)
        snprintf(dir, sizeof(dir), "%s", base);
    size_t base_len = strlen(base);
    for (;;) {
        visit(dir, ctx);
        size_t len = strlen(dir);
        if (len <= base_len)
            break;
        char *slash = strrchr(dir, '/');
        if (slash == NULL || (size_t)(slash - dir) < base_len)
            break;
        *slash = '\0';
    }
}

typedef struct mem_walk_s {
    const char *limit_file;
    px_cgroup_mem_t *out;
    bool usage_dir_set;
} mem_walk_t;

/* Keeps the smallest memory limit on the way up, and the folder where it binds. */
static void on_mem_dir(const char *dir, void *ctx)
{
    mem_walk_t *w = ctx;
    char p[PX_CGROUP_DIR_MAX + 64];
    uint64_t v = 0;
    snprintf(p, sizeof(p), "%s/%s", dir, w->limit_file);
    if (px_cgroup_read_u64(p, &v) != 0)
        return;
    if (!w->usage_dir_set) {
        /* Usage is read where the limit binds; until one is found, the deepest. */
        snprintf(w->out->dir, sizeof(w->out->dir), "%s", dir);
        w->usage_dir_set = true;
    }
    if (v > 0 && (w->out->limit_bytes == 0 || v < w->out->limit_bytes)) {
        w->out->limit_bytes = v;
        snprintf(w->out->dir, sizeof(w->out->dir), "%s", dir);
    }
}

/* Walks from base+path up to base reading `limit_file`; keeps the smallest limit. */
static void walk_limits(const char *base, const char *path, const char *limit_file,
                        px_cgroup_mem_t *out)
{
    mem_walk_t w = {.limit_file = limit_file, .out = out};
    walk_up(base, path, on_mem_dir, &w);
}

int px_cgroup_mem_probe(const char *root, const char *proc_cgroup, px_cgroup_mem_t *out)
{
    MEM_ASSERT(root != NULL && proc_cgroup != NULL);
    MEM_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    char path[PX_CGROUP_DIR_MAX / 2] = "/";
    char base[PX_CGROUP_DIR_MAX / 2];
    /* v2: the unified hierarchy is mounted at root itself and offers the memory controller. */
    if (is_dir_file(root, "cgroup.controllers")) {
        if (own_path(proc_cgroup, 2, "memory", path, sizeof(path)) != 0)
            snprintf(path, sizeof(path), "/");
        out->version = 2;
        walk_limits(root, path, "memory.max", out);
        if (out->dir[0] == '\0' && is_dir_file(root, "memory.stat"))
            snprintf(out->dir, sizeof(out->dir), "%s", root); /* the root cgroup: no limit */
        if (out->dir[0] == '\0') {
            out->version = 0;
            return -ENOENT;
        }
        (void)px_cgroup_mem_read_usage(out);
        return 0;
    }
    /* v1: the memory controller has its own hierarchy under root/memory. */
    int n = snprintf(base, sizeof(base), "%s/memory", root);
    if (n <= 0 || (size_t)n >= sizeof(base) || !is_dir_file(base, "memory.limit_in_bytes"))
        return -ENOENT;
    if (own_path(proc_cgroup, 1, "memory", path, sizeof(path)) != 0)
        snprintf(path, sizeof(path), "/");
    out->version = 1;
    walk_limits(base, path, "memory.limit_in_bytes", out);
    if (out->dir[0] == '\0')
        snprintf(out->dir, sizeof(out->dir), "%s", base);
    (void)px_cgroup_mem_read_usage(out);
    return 0;
}

typedef struct cpu_walk_s {
    int version;
    unsigned cpus; /* the smallest quota so far, in whole CPUs; 0 = none */
} cpu_walk_t;

/* Keeps the smallest CPU quota on the way up: v2 cpu.max "QUOTA PERIOD" ("max PERIOD" when
 * unlimited), v1 cpu.cfs_quota_us (-1 when unlimited) over cpu.cfs_period_us. */
static void on_cpu_dir(const char *dir, void *ctx)
{
    cpu_walk_t *w = ctx;
    char p[PX_CGROUP_DIR_MAX + 64];
    unsigned long long quota = 0, period = 0;
    if (w->version == 2) {
        char buf[64];
        snprintf(p, sizeof(p), "%s/cpu.max", dir);
        if (read_small_file(p, buf, sizeof(buf)) <= 0 ||
            sscanf(buf, "%llu %llu", &quota, &period) != 2)
            return; /* absent, or "max": no quota here */
    } else {
        uint64_t q = 0, per = 0;
        snprintf(p, sizeof(p), "%s/cpu.cfs_quota_us", dir);
        if (px_cgroup_read_u64(p, &q) != 0)
            return; /* -1 reads as 0: no quota */
        snprintf(p, sizeof(p), "%s/cpu.cfs_period_us", dir);
        if (px_cgroup_read_u64(p, &per) != 0)
            return;
        quota = q;
        period = per;
    }
    if (quota == 0 || period == 0)
        return;
    /* Rounded up: a quota of 1.5 CPUs keeps two workers busy, each below a full CPU. */
    unsigned long long cpus = (quota + period - 1) / period;
    MEM_ASSERT(cpus > 0);
    if (cpus > UINT_MAX)
        cpus = UINT_MAX;
    if (w->cpus == 0 || cpus < w->cpus)
        w->cpus = (unsigned)cpus;
}

unsigned px_cgroup_cpu_quota(const char *root, const char *proc_cgroup)
{
    MEM_ASSERT(root != NULL && proc_cgroup != NULL);
    char path[PX_CGROUP_DIR_MAX / 2] = "/";
    char base[PX_CGROUP_DIR_MAX / 2];
    cpu_walk_t w = {.version = 2};
    if (is_dir_file(root, "cgroup.controllers")) {
        snprintf(base, sizeof(base), "%s", root);
    } else {
        /* v1: the cpu controller's hierarchy, alone or joint with cpuacct. */
        static const char *const names[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};
        size_t i = 0;
        for (; i < MEM_ARRAY_LEN(names); i++) {
            int n = snprintf(base, sizeof(base), "%s/%s", root, names[i]);
            if (n > 0 && (size_t)n < sizeof(base) && is_dir_file(base, "cpu.cfs_quota_us"))
                break;
        }
        if (i == MEM_ARRAY_LEN(names))
            return 0;
        w.version = 1;
    }
    if (own_path(proc_cgroup, w.version, "cpu", path, sizeof(path)) != 0)
        snprintf(path, sizeof(path), "/");
    walk_up(base, path, on_cpu_dir, &w);
    return w.cpus;
}

int px_cgroup_mem_read_usage(px_cgroup_mem_t *cg)
{
    MEM_ASSERT(cg != NULL);
    MEM_ASSERT(cg->version == 1 || cg->version == 2);
    char p[PX_CGROUP_DIR_MAX + 64];
    uint64_t v = 0;
    snprintf(p, sizeof(p), "%s/%s", cg->dir,
             cg->version == 2 ? "memory.current" : "memory.usage_in_bytes");
    int rc = px_cgroup_read_u64(p, &v);
    if (rc != 0)
        return rc;
    cg->usage_bytes = v;
    /* Inactive file cache is reclaimable without harm; v1's total_ figure covers children. */
    snprintf(p, sizeof(p), "%s/memory.stat", cg->dir);
    uint64_t inact = 0;
    if (cg->version == 1 && px_cgroup_stat_get(p, "total_inactive_file", &inact) == 0)
        cg->inactive_file_bytes = inact;
    else if (px_cgroup_stat_get(p, "inactive_file", &inact) == 0)
        cg->inactive_file_bytes = inact;
    else
        cg->inactive_file_bytes = 0;
    return 0;
}

size_t px_overload_apply_limit(const px_memory_cfg_t *m)
{
    MEM_ASSERT(m != NULL);
    px_cgroup_mem_t cg;
    uint64_t cg_limit = 0;
    if (m->limit_bytes == 0 && m->limit_cgroup_fraction > 0.0 &&
        px_cgroup_mem_probe("/sys/fs/cgroup", "/proc/self/cgroup", &cg) == 0)
        cg_limit = cg.limit_bytes;
    size_t limit = px_overload_limit_for(m, cg_limit);
    mem_budget_set_limit(limit);
    return limit;
}

/* ---- the monitor ------------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Samples both pressures into `info` (no lock: the caller publishes under it). */
static double sample(px_overload_t *o, px_overload_info_t *info)
{
    info->limit_bytes = mem_budget_limit();
    info->committed_bytes = mem_budget_committed();
    info->budget_pressure = mem_budget_pressure();
    info->cgroup_pressure = 0.0;
    info->cgroup_version = o->cg.version;
    info->cgroup_limit_bytes = o->cg.limit_bytes;
    if (o->cg.version != 0 && px_cgroup_mem_read_usage(&o->cg) == 0) {
        uint64_t held = o->cg.usage_bytes > o->cg.inactive_file_bytes
                            ? o->cg.usage_bytes - o->cg.inactive_file_bytes
                            : 0;
        info->cgroup_usage_bytes = held;
        if (o->cg.limit_bytes > 0)
            info->cgroup_pressure = MEM_MIN(1.0, (double)held / (double)o->cg.limit_bytes);
    }
    info->pressure = MEM_MAX(info->budget_pressure, info->cgroup_pressure);
    return info->pressure;
}

static void signal_workers(px_server_t *s)
{
    unsigned n = __atomic_load_n(&s->workers_cnt, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++)
        px_worker_signal(&s->workers[i], PX_WF_OVERLOAD);
}

void px_overload_tick(px_server_t *s)
{
    px_overload_t *o = s->overload;
    MEM_ASSERT(o != NULL);
    MEM_ASSERT(o->s == s);
    px_overload_info_t now;
    pthread_mutex_lock(&o->lock);
    now = o->info;
    pthread_mutex_unlock(&o->lock);
    uint64_t t = mono_ms();
    px_overload_level_t cur = px_server_overload(s);
    double p = sample(o, &now);
    px_overload_level_t next = px_overload_next(cur, p, &o->th);
    /* Release first: cached free memory must not raise the level, and while under pressure
     * giving it back is what lets the level come down. */
    bool measured = now.limit_bytes > 0 || now.cgroup_limit_bytes > 0;
    if (measured && (next > cur || (cur != PX_OVERLOAD_NORMAL &&
                                    t - o->last_release_ms >= PX_OVERLOAD_RELEASE_MS))) {
        now.released_bytes += mem_release_now();
        now.releases++;
        o->last_release_ms = t;
        p = sample(o, &now);
        next = px_overload_next(cur, p, &o->th);
    }
    now.samples++;
    now.level = next;
    if (next != cur) {
        __atomic_store_n(&s->overload_level, (int)next, __ATOMIC_RELEASE);
        now.transitions++;
        if (next == PX_OVERLOAD_ELEVATED && cur == PX_OVERLOAD_NORMAL)
            now.entered_elevated++;
        if (next == PX_OVERLOAD_CRITICAL)
            now.entered_critical++;
        now.last_transition_ms = wall_ms();
        o->level_since_ms = t;
        fprintf(stderr, "weir: overload: %s -> %s (pressure %.2f, committed %llu of %llu bytes%s",
                px_overload_level_name(cur), px_overload_level_name(next), p,
                (unsigned long long)now.committed_bytes, (unsigned long long)now.limit_bytes,
                now.cgroup_limit_bytes ? "" : ")\n");
        if (now.cgroup_limit_bytes)
            fprintf(stderr, ", cgroup v%d %.2f: %llu of %llu bytes)\n", now.cgroup_version,
                    now.cgroup_pressure, (unsigned long long)now.cgroup_usage_bytes,
                    (unsigned long long)now.cgroup_limit_bytes);
    }
    /* The peak heap snapshot: the sampling path copies at new highs, at most every 25 ms;
     * this catches the top of a burst that stopped allocating within that gap. */
    mem_heapsnap_peak_poll();
    now.level_since_ms = t - o->level_since_ms;
    /* At CRITICAL, ticks alternate: the first (and every odd one) only has the workers return
     * their cached memory (mem_release_now() flushes the calling thread's cache only, so the
     * monitor cannot do it for them); the next sheds only if pressure is still critical once
     * that memory is gone. Memory freed by a shed reaches the budget a tick later, so
     * shedding every tick would reset more streams than the pressure calls for. */
    o->critical_ticks = next == PX_OVERLOAD_CRITICAL ? o->critical_ticks + 1 : 0;
    bool shed = o->critical_ticks > 0 && o->critical_ticks % 2 == 0;
    __atomic_store_n(&o->shed, shed ? 1 : 0, __ATOMIC_RELEASE);
    if (shed)
        now.shed_requests++;
    pthread_mutex_lock(&o->lock);
    o->info = now;
    pthread_mutex_unlock(&o->lock);
    /* Workers act on a change (keep-alive off or on again) and on every tick above NORMAL:
     * each tick they close the connections that stopped reading and hold more than their
     * share, and return their cached memory. A memory tenant past its limit has them shed its
     * heaviest streams at any level (proxy/core/shed.c). */
    if (next != cur || next != PX_OVERLOAD_NORMAL || px_overload__tenants_over(s))
        signal_workers(s);
    /* A rise keeps what held memory at that moment (heap samples, top regions), for reading
     * after the incident. After the workers were told, so their actions do not wait for it;
     * the first tick at a level sheds nothing (see above), so the regions are still those of
     * the moment. It blocks this loop at most PX_OVERSNAP_COLLECT_MS. */
    if (next > cur)
        (void)px_oversnap_take(s, (int)cur, (int)next, p);
}

bool px_overload__shed_now(const px_server_t *s)
{
    const px_overload_t *o = __atomic_load_n(&s->overload, __ATOMIC_ACQUIRE);
    return o != NULL && __atomic_load_n(&o->shed, __ATOMIC_ACQUIRE) != 0;
}

static void on_tick(uv_timer_t *t)
{
    px_overload_t *o = t->data;
    /* mem/ returns idle pages after the decay delay only from its slow paths; an idle proxy
     * takes none, so this tick is what gives its memory back (a clock read when not due). */
    (void)mem_release_tick();
    px_overload_tick(o->s);
}

int px_overload_start(px_server_t *s, uv_loop_t *loop)
{
    MEM_ASSERT(s != NULL && s->cfg != NULL);
    MEM_ASSERT(s->overload == NULL);
    const px_memory_cfg_t *m = &s->cfg->memory;
    px_overload_t *o = mem_calloc(1, sizeof(*o));
    if (o == NULL)
        return -ENOMEM;
    o->s = s;
    o->th = (px_overload_thresholds_t){m->elevated, m->critical, m->hysteresis};
    if (px_cgroup_mem_probe("/sys/fs/cgroup", "/proc/self/cgroup", &o->cg) != 0)
        memset(&o->cg, 0, sizeof(o->cg));
    pthread_mutex_init(&o->lock, NULL);
    o->info.thresholds = o->th;
    o->info.level = px_server_overload(s);
    o->level_since_ms = mono_ms();
    o->last_release_ms = o->level_since_ms;
    int rc = uv_timer_init(loop, &o->timer);
    if (rc != 0) {
        pthread_mutex_destroy(&o->lock);
        mem_free(o);
        return rc;
    }
    o->timer.data = o;
    o->timer_open = true;
    /* Published for the admin and worker threads, which may already be running. */
    __atomic_store_n(&s->overload, o, __ATOMIC_RELEASE);
    size_t limit = mem_budget_limit();
    if (o->cg.version != 0 && o->cg.limit_bytes > 0)
        fprintf(stderr, "weir: memory limit %zu bytes (cgroup v%d limit %llu bytes in %s)\n", limit,
                o->cg.version, (unsigned long long)o->cg.limit_bytes, o->cg.dir);
    else
        fprintf(stderr, "weir: memory limit %zu bytes%s\n", limit,
                limit ? "" : " (off: pressure is reported as 0)");
    px_overload_tick(s);
    uv_timer_start(&o->timer, on_tick, PX_OVERLOAD_TICK_MS, PX_OVERLOAD_TICK_MS);
    return 0;
}

void px_overload_stop(px_server_t *s)
{
    px_overload_t *o = s->overload;
    if (o == NULL || !o->timer_open)
        return;
    o->timer_open = false;
    uv_timer_stop(&o->timer);
    uv_close((uv_handle_t *)&o->timer, NULL);
}

void px_overload_free(px_server_t *s)
{
    if (s == NULL || s->overload == NULL)
        return;
    px_overload_t *o = s->overload;
    MEM_ASSERT(!o->timer_open);
    pthread_mutex_destroy(&o->lock);
    mem_free(o);
    __atomic_store_n(&s->overload, NULL, __ATOMIC_RELEASE);
}

void px_overload_snapshot(const px_server_t *s, px_overload_info_t *out)
{
    MEM_ASSERT(s != NULL);
    MEM_ASSERT(out != NULL);
    px_overload_t *o = __atomic_load_n(&s->overload, __ATOMIC_ACQUIRE);
    if (o == NULL) {
        memset(out, 0, sizeof(*out));
        out->level = px_server_overload(s);
        out->limit_bytes = mem_budget_limit();
        out->committed_bytes = mem_budget_committed();
        out->budget_pressure = out->pressure = mem_budget_pressure();
        if (s->cfg)
            out->thresholds = (px_overload_thresholds_t){
                s->cfg->memory.elevated, s->cfg->memory.critical, s->cfg->memory.hysteresis};
        return;
    }
    pthread_mutex_lock(&o->lock);
    *out = o->info;
    pthread_mutex_unlock(&o->lock);
}
