/*
 * mem/stats.c: snapshots of mem/'s counters, summed from per-thread blocks, per-node counters
 * and the global atomics.
 *
 * Readers take no lock on the hot structures: every counter is read with a relaxed load, so
 * a snapshot under load is exact only to within the bytes in flight. The registry slots'
 * mappings stay valid until mem_fini(), so reading a thread that is exiting is safe.
 */
#include "mem/base.h"
#include "mem/stats.h"
#include "mem/tcache.h"
#include "mem/budget.h"
#include "mem/heapprof.h"

#include <string.h>
#include <fcntl.h>
#include <unistd.h>

/* Refreshes a thread's name from /proc (threads often name themselves after their first
 * allocation); keeps `name` when the thread is gone. No stdio: it would allocate. */
static void read_comm(uint64_t tid, char name[16])
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%llu/comm", (unsigned long long)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
        n--;
    memcpy(name, buf, (size_t)n);
    name[n] = '\0';
}

uint64_t mem_stats_thread_frees(void)
{
    const mem__tcache_t *tc = mem__tc_self;
    uint64_t frees = 0;
    for (unsigned c = 0; c < MEM_SC_COUNT; c++)
        frees += MEM_STAT_LOAD(tc->free_cnt[c]);
    return frees;
}

/* Adds one cache's counters into the snapshot; fills `ts` when non-NULL. */
static void add_cache(mem_stats_t *out, const mem__tcache_t *tc, mem_thread_stats_t *ts,
                      uint64_t *node_cached)
{
    int64_t live = 0;
    uint64_t cached = 0, allocs = 0, frees = 0;
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        uint64_t a = MEM_STAT_LOAD(tc->alloc_cnt[c]);
        uint64_t f = MEM_STAT_LOAD(tc->free_cnt[c]);
        uint64_t sz = mem_sc_size[c];
        uint64_t in_slots = (uint64_t)MEM_STAT_LOAD(tc->cnt[c]) * sz;
        if (c >= MEM_TC_FRESH_FIRST)
            in_slots += (uint64_t)MEM_STAT_LOAD(tc->fresh_cnt[c - MEM_TC_FRESH_FIRST]) * sz;
        if (c == mem_sc_of(MEM_TC_KEEP_SIZE))
            in_slots += (uint64_t)MEM_STAT_LOAD(tc->keep_cnt) * sz;
        uint64_t remote = 0;
        for (unsigned nd = 0; nd < mem__g.nodes_cnt; nd++) {
            uint64_t r = (uint64_t)MEM_STAT_LOAD(tc->remote[nd][c].cnt) * sz;
            remote += r;
            node_cached[nd] += r;
        }
        uint32_t home = MEM_STAT_LOAD(tc->node);
        if (home < mem__g.nodes_cnt)
            node_cached[home] += in_slots;
        mem_class_stats_t *cs = &out->classes[c];
        cs->alloc_cnt += a;
        cs->free_cnt += f;
        cs->tcache_bytes += in_slots + remote;
        live += ((int64_t)a - (int64_t)f) * (int64_t)sz;
        cached += in_slots + remote;
        allocs += a;
        frees += f;
    }
    out->tcache += cached;
    const mem__tstats_t *t = &tc->tstats;
    uint64_t rl = MEM_STAT_LOAD(t->regions_live), sl = MEM_STAT_LOAD(t->subregions_live);
    uint64_t rb = MEM_STAT_LOAD(t->region_bytes);
    out->regions_live += rl;
    out->subregions_live += sl;
    out->region_bytes += rb;
    out->regions_created += MEM_STAT_LOAD(t->regions_created);
    out->subregions_created += MEM_STAT_LOAD(t->subregions_created);
    if (!ts)
        return;
    ts->tid = tc->tid;
    memcpy(ts->name, tc->name, sizeof(ts->name));
    ts->name[sizeof(ts->name) - 1] = '\0';
    read_comm(ts->tid, ts->name);
    ts->node = (int)MEM_STAT_LOAD(tc->node);
    ts->live_signed = live;
    ts->live = live > 0 ? (uint64_t)live : 0;
    ts->tcache = cached;
    ts->alloc_cnt = allocs;
    ts->free_cnt = frees;
    ts->regions_live = rl;
    ts->subregions_live = sl;
    ts->region_bytes = rb;
}

int mem_stats_snapshot(mem_stats_t *out)
{
    MEM_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    MEM_STATIC_ASSERT(MEM_SC_COUNT <= MEM_STATS_CLASSES_MAX, "classes fit the snapshot");
    out->classes_cnt = MEM_SC_COUNT;
    out->segment_bytes = MEM_SEG_SIZE;
    out->budget_limit = mem_budget_limit();
    out->pressure = mem_budget_pressure();
    out->sample_bytes = mem_heapprof_interval();
    out->samples_live = mem_heapprof_samples_live();
    if (!mem_is_initialised())
        return 0;
    uint64_t node_cached[MEM_STATS_NODES_MAX] = {0};
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        out->classes[c].size = mem_sc_size[c];
        out->classes[c].alloc_cnt =
            __atomic_load_n(&mem__threads.retired_alloc[c], __ATOMIC_RELAXED);
        out->classes[c].free_cnt = __atomic_load_n(&mem__threads.retired_free[c], __ATOMIC_RELAXED);
    }
    const mem__tstats_t *r = &mem__threads.retired_tstats;
    out->regions_live = __atomic_load_n(&r->regions_live, __ATOMIC_RELAXED);
    out->subregions_live = __atomic_load_n(&r->subregions_live, __ATOMIC_RELAXED);
    out->region_bytes = __atomic_load_n(&r->region_bytes, __ATOMIC_RELAXED);
    out->regions_created = __atomic_load_n(&r->regions_created, __ATOMIC_RELAXED);
    out->subregions_created = __atomic_load_n(&r->subregions_created, __ATOMIC_RELAXED);
    for (int i = 0; i < MEM_REG_MAX; i++) {
        mem__tcache_t *tc = __atomic_load_n(&mem__threads.reg[i], __ATOMIC_ACQUIRE);
        if (!tc)
            continue;
        bool used = __atomic_load_n(&mem__threads.reg_used[i], __ATOMIC_ACQUIRE);
        mem_thread_stats_t *ts = NULL;
        if (used && out->threads_cnt < MEM_STATS_THREADS_MAX)
            ts = &out->threads[out->threads_cnt++];
        add_cache(out, tc, ts, node_cached);
    }
    if (mem__threads.shared)
        add_cache(out, mem__threads.shared, NULL, node_cached);

    uint64_t class_live = 0;
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        mem_class_stats_t *cs = &out->classes[c];
        uint64_t cnt = cs->alloc_cnt - cs->free_cnt;
        if ((int64_t)cnt < 0)
            cnt = 0; /* a free counted before its allocation during a racy read */
        cs->live_cnt = cnt;
        cs->live_bytes = cnt * cs->size;
        class_live += cs->live_bytes;
        out->alloc_cnt += cs->alloc_cnt;
        out->free_cnt += cs->free_cnt;
    }
    out->nodes_cnt = mem__g.nodes_cnt;
    for (unsigned i = 0; i < mem__g.nodes_cnt; i++) {
        mem__node_t *n = &mem__g.nodes[i];
        mem_node_stats_t *ns = &out->nodes[i];
        for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
            uint64_t b = __atomic_load_n(&n->depot[c].bytes, __ATOMIC_RELAXED);
            out->classes[c].depot_bytes += b;
            ns->depot += b;
        }
        ns->committed = MEM_STAT_LOAD(n->committed);
        ns->segments = MEM_STAT_LOAD(n->segments);
        ns->remote_frees = __atomic_load_n(&n->remote_frees, __ATOMIC_RELAXED);
        uint64_t fis = MEM_STAT_LOAD(n->free_in_segs);
        uint64_t held = ns->depot + fis + node_cached[i];
        ns->live = ns->committed > held ? ns->committed - held : 0;
        out->depot += ns->depot;
        out->free_in_segments += fis;
        out->meta_bytes += MEM_STAT_LOAD(n->meta_bytes);
        out->segments += ns->segments;
    }
    out->large_live = __atomic_load_n(&mem__large_totals.live, __ATOMIC_RELAXED);
    out->large_cnt = __atomic_load_n(&mem__large_totals.cnt, __ATOMIC_RELAXED);
    out->alloc_cnt += __atomic_load_n(&mem__large_totals.alloc_cnt, __ATOMIC_RELAXED);
    out->free_cnt += __atomic_load_n(&mem__large_totals.free_cnt, __ATOMIC_RELAXED);
    out->live = class_live + out->large_live;
    out->alloc_failed = __atomic_load_n(&mem__budget.alloc_failed, __ATOMIC_RELAXED);
    out->budget_refused = __atomic_load_n(&mem__budget.refused, __ATOMIC_RELAXED);
    out->metadata = __atomic_load_n(&mem__budget.metadata, __ATOMIC_RELAXED);
    out->exempt_live = __atomic_load_n(&mem__budget.exempt_live, __ATOMIC_RELAXED);
    out->exempt_over = __atomic_load_n(&mem__budget.exempt_over, __ATOMIC_RELAXED);
    out->committed = mem_budget_committed();
    out->mapped = __atomic_load_n(&mem__budget.mapped, __ATOMIC_RELAXED);
    out->released_total = __atomic_load_n(&mem__budget.released_total, __ATOMIC_RELAXED);
    out->reset_total = __atomic_load_n(&mem__budget.reset_total, __ATOMIC_RELAXED);
    /* Metadata is committed in mappings of its own, outside `mapped`: compare heap with heap. */
    uint64_t heap = out->committed - MEM_MIN(out->metadata, out->committed);
    out->released_pending = out->mapped > heap ? out->mapped - heap : 0;
    return 0;
}

uint64_t mem_stats_rss(void)
{
    /* /proc/self/statm: "size resident shared text lib data dt", in pages. No stdio (it
     * would allocate through libc). */
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *s = buf;
    while (*s && *s != ' ')
        s++;
    uint64_t pages = 0;
    if (*s == ' ')
        pages = strtoull(s + 1, NULL, 10);
    long page = sysconf(_SC_PAGESIZE);
    return pages * (uint64_t)(page > 0 ? page : 4096);
}
