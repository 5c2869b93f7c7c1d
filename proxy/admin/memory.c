/*
 * proxy/admin/memory.c: the admin endpoints about memory: /memory (JSON and Prometheus),
 * /metrics, /memory/regions, /heap_dump (+ /heap_dump/symbols, the peak and overload
 * snapshots, pprof's protobuf) and /memory/release.
 *
 * Handlers run on the admin thread only. A mem/ snapshot (mem_stats_t, tens of KiB) is
 * allocated per request with mem_malloc rather than put on the admin thread's stack.
 *
 * /memory uses Envoy's field names first, so dashboards built for Envoy's /memory read it:
 *     allocated            = live               bytes handed out and not freed
 *     heap_size            = mapped             virtual bytes mapped by mem/
 *     pageheap_free        = free_in_segments + depot   free, still committed, outside caches
 *     pageheap_unmapped    = released_pending   mapped but returned to the OS (resident 0)
 *     total_thread_cache   = tcache             free in per-thread caches
 *     total_physical_bytes = RSS                /proc/self/statm, the whole process
 * and then weir's own fields (committed, live, tcache, depot, free_in_segments, budget,
 * pressure, overload level, per thread / size class / NUMA node, regions, samples).
 *
 * Prometheus: `/memory?format=prometheus` carries the memory families only (weir_memory_*,
 * weir_overload_level and the memory tenants' weir_tenant_*); `/metrics` carries those and every
 * proxy counter (px_stats_t), plus process-level gauges. Counters end in `_total`, byte values in
 * `_bytes`.
 */
#include "mem/base.h"
#include "proxy/admin/endpoints.h"
#include "proxy/admin/symbolize.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "mem/budget.h"
#include "mem/heapprof.h"
#include "mem/heapsnap.h"
#include "mem/malloc.h"
#include "mem/stats.h"
#include "proxy/admin/pprof_pb.h"
#include "proxy/core/overload.h"
#include "proxy/core/oversnap.h"
#include "proxy/core/server.h"

#define REGIONS_TOP_DEFAULT 20u
#define REGIONS_TOP_MAX     1000u
/* How long /memory/regions waits for the workers to answer (each answers on its own loop). */
#define REGIONS_TIMEOUT_MS 2000u
#define SAMPLE_BYTES_MAX   (1ull << 30)

/* Takes a snapshot into a fresh allocation (the caller mem_free()s it), or NULL on OOM. */
static mem_stats_t *snapshot_new(void)
{
    mem_stats_t *st = mem_malloc(sizeof(*st));
    if (st == NULL)
        return NULL;
    memset(st, 0, sizeof(*st));
    (void)mem_stats_snapshot(st);
    MEM_ASSERT(st->classes_cnt <= MEM_STATS_CLASSES_MAX);
    MEM_ASSERT(st->threads_cnt <= MEM_STATS_THREADS_MAX);
    if (st->nodes_cnt > MEM_STATS_NODES_MAX)
        st->nodes_cnt = MEM_STATS_NODES_MAX;
    return st;
}

/* ---- JSON ------------------------------------------------------------------------------ */

/* "heap_snapshots": the peak snapshot and the kept overload snapshots (their numbers serve
 * /heap_dump?overload=N and /memory/regions?overload=N), and the memory they hold (part of
 * "metadata"). */
static void heap_snapshots_json(px_jsonw_t *w)
{
    px_jsonw_key(w, "heap_snapshots");
    px_jsonw_obj_begin(w);
    px_jsonw_ku64(w, "bytes", mem_heapsnap_bytes());
    px_jsonw_ku64(w, "peak_committed", mem_heapsnap_peak_committed());
    mem_heapsnap_info_t hi;
    px_jsonw_key(w, "peak");
    if (mem_heapsnap_info(MEM_HEAPSNAP_PEAK, &hi) == 0) {
        px_jsonw_obj_begin(w);
        px_jsonw_ku64(w, "committed", hi.committed);
        px_jsonw_ku64(w, "timestamp_ms", hi.wall_ms);
        px_jsonw_ku64(w, "buckets", hi.buckets);
        px_jsonw_ku64(w, "sampled_live_bytes", hi.live_bytes);
        px_jsonw_obj_end(w);
    } else {
        px_jsonw_null(w);
    }
    px_jsonw_key(w, "overload");
    px_jsonw_arr_begin(w);
    long last = px_oversnap_last();
    for (long n = last > (long)PX_OVERSNAP_MAX ? last - (long)PX_OVERSNAP_MAX + 1 : 1;
         last > 0 && n <= last; n++) {
        px_oversnap_info_t oi;
        if (px_oversnap_get(n, &oi, NULL, 0) != 0)
            continue;
        px_jsonw_obj_begin(w);
        px_jsonw_ki64(w, "overload", oi.which);
        px_jsonw_kstr(w, "from", px_overload_level_name((px_overload_level_t)oi.from));
        px_jsonw_kstr(w, "to", px_overload_level_name((px_overload_level_t)oi.to));
        px_jsonw_kdbl(w, "pressure", oi.pressure);
        px_jsonw_ku64(w, "timestamp_ms", oi.wall_ms);
        px_jsonw_ku64(w, "committed", oi.committed);
        px_jsonw_ku64(w, "limit", oi.limit);
        px_jsonw_kbool(w, "heap", oi.heap_which > 0 && mem_heapsnap_info(oi.heap_which, &hi) == 0);
        px_jsonw_obj_end(w);
    }
    px_jsonw_arr_end(w);
    px_jsonw_obj_end(w);
}

static void memory_json(px_jsonw_t *w, const px_server_t *s, const mem_stats_t *st, uint64_t rss)
{
    int level = (int)px_server_overload(s);
    px_jsonw_obj_begin(w);
    /* Envoy's names (see the file header for the mapping). */
    px_jsonw_ku64(w, "allocated", st->live);
    px_jsonw_ku64(w, "heap_size", st->mapped);
    px_jsonw_ku64(w, "pageheap_free", st->free_in_segments + st->depot);
    px_jsonw_ku64(w, "pageheap_unmapped", st->released_pending);
    px_jsonw_ku64(w, "total_thread_cache", st->tcache);
    px_jsonw_ku64(w, "total_physical_bytes", rss);
    /* weir's own. */
    px_jsonw_ku64(w, "budget_limit", st->budget_limit);
    px_jsonw_kdbl(w, "pressure", st->pressure);
    px_jsonw_kstr(w, "overload_level", px_overload_level_name((px_overload_level_t)level));
    px_jsonw_ki64(w, "overload_level_value", level);
    px_jsonw_ku64(w, "committed", st->committed);
    px_jsonw_ku64(w, "mapped", st->mapped);
    px_jsonw_ku64(w, "live", st->live);
    px_jsonw_ku64(w, "tcache", st->tcache);
    px_jsonw_ku64(w, "depot", st->depot);
    px_jsonw_ku64(w, "free_in_segments", st->free_in_segments);
    px_jsonw_ku64(w, "metadata", st->metadata);
    /* committed - (live + tcache + depot + free_in_segments + metadata): 0 when quiescent, the
     * bytes in flight during the read otherwise. Shown so that a drift is visible. */
    px_jsonw_ki64(w, "unreconciled",
                  (int64_t)st->committed - (int64_t)(st->live + st->tcache + st->depot +
                                                     st->free_in_segments + st->metadata));
    px_jsonw_ku64(w, "exempt_live", st->exempt_live);
    px_jsonw_ku64(w, "exempt_over", st->exempt_over);
    px_jsonw_ku64(w, "budget_refused", st->budget_refused);
    px_jsonw_ku64(w, "large_live", st->large_live);
    px_jsonw_ku64(w, "large_cnt", st->large_cnt);
    px_jsonw_ku64(w, "released_total", st->released_total);
    px_jsonw_ku64(w, "reset_total", st->reset_total);
    px_jsonw_ku64(w, "released_pending", st->released_pending);
    px_jsonw_ku64(w, "alloc_cnt", st->alloc_cnt);
    px_jsonw_ku64(w, "free_cnt", st->free_cnt);
    px_jsonw_ku64(w, "alloc_failed", st->alloc_failed);
    px_jsonw_ku64(w, "segments", st->segments);
    px_jsonw_ku64(w, "segment_bytes", st->segment_bytes);
    px_jsonw_ku64(w, "regions_live", st->regions_live);
    px_jsonw_ku64(w, "regions_created", st->regions_created);
    px_jsonw_ku64(w, "region_bytes", st->region_bytes);
    px_jsonw_ku64(w, "subregions_live", st->subregions_live);
    px_jsonw_ku64(w, "subregions_created", st->subregions_created);
    px_jsonw_ku64(w, "sample_bytes", st->sample_bytes);
    px_jsonw_ku64(w, "samples_live", st->samples_live);
    px_jsonw_ku64(w, "timestamp_ms", (uint64_t)time(NULL) * 1000u);
    heap_snapshots_json(w);
    px__admin_tenants_json(w, s);

    px_jsonw_key(w, "workers");
    px_jsonw_arr_begin(w);
    for (unsigned i = 0; s->workers != NULL && i < s->workers_cnt; i++) {
        const px_worker_t *wk = &s->workers[i];
        px_jsonw_obj_begin(w);
        px_jsonw_ku64(w, "worker", wk->idx);
        px_jsonw_ki64(w, "cpu", wk->cpu);
        px_jsonw_ki64(w, "node", wk->node);
        px_jsonw_ku64(w, "conn_active", MEM_STAT_LOAD(wk->stats.conn_active));
        px_jsonw_ku64(w, "streams_active", MEM_STAT_LOAD(wk->stats.streams_active));
        px_jsonw_ku64(w, "requests_total", MEM_STAT_LOAD(wk->stats.requests_total));
        px_jsonw_obj_end(w);
    }
    px_jsonw_arr_end(w);

    px_jsonw_key(w, "threads");
    px_jsonw_arr_begin(w);
    for (unsigned i = 0; i < st->threads_cnt; i++) {
        const mem_thread_stats_t *t = &st->threads[i];
        px_jsonw_obj_begin(w);
        px_jsonw_ku64(w, "tid", t->tid);
        px_jsonw_key(w, "name");
        px_jsonw_strn(w, t->name, strnlen(t->name, sizeof(t->name)));
        px_jsonw_ki64(w, "node", t->node);
        px_jsonw_ki64(w, "live", t->live_signed);
        px_jsonw_ku64(w, "tcache", t->tcache);
        px_jsonw_ku64(w, "alloc_cnt", t->alloc_cnt);
        px_jsonw_ku64(w, "free_cnt", t->free_cnt);
        px_jsonw_ku64(w, "regions_live", t->regions_live);
        px_jsonw_ku64(w, "subregions_live", t->subregions_live);
        px_jsonw_ku64(w, "region_bytes", t->region_bytes);
        px_jsonw_obj_end(w);
    }
    px_jsonw_arr_end(w);

    px_jsonw_key(w, "classes");
    px_jsonw_arr_begin(w);
    for (unsigned i = 0; i < st->classes_cnt; i++) {
        const mem_class_stats_t *c = &st->classes[i];
        px_jsonw_obj_begin(w);
        px_jsonw_ku64(w, "size", c->size);
        px_jsonw_ku64(w, "live_cnt", c->live_cnt);
        px_jsonw_ku64(w, "live_bytes", c->live_bytes);
        px_jsonw_ku64(w, "tcache_bytes", c->tcache_bytes);
        px_jsonw_ku64(w, "depot_bytes", c->depot_bytes);
        px_jsonw_ku64(w, "alloc_cnt", c->alloc_cnt);
        px_jsonw_ku64(w, "free_cnt", c->free_cnt);
        px_jsonw_obj_end(w);
    }
    px_jsonw_arr_end(w);

    px_jsonw_key(w, "nodes");
    px_jsonw_arr_begin(w);
    for (unsigned i = 0; i < st->nodes_cnt; i++) {
        const mem_node_stats_t *n = &st->nodes[i];
        px_jsonw_obj_begin(w);
        px_jsonw_ku64(w, "node", i);
        px_jsonw_ku64(w, "committed", n->committed);
        px_jsonw_ku64(w, "live", n->live);
        px_jsonw_ku64(w, "depot", n->depot);
        px_jsonw_ku64(w, "segments", n->segments);
        px_jsonw_ku64(w, "remote_frees", n->remote_frees);
        px_jsonw_obj_end(w);
    }
    px_jsonw_arr_end(w);
    px_jsonw_obj_end(w);
    px_jsonw_puts(w, "\n");
}

/* ---- Prometheus ------------------------------------------------------------------------ */

/* Writes a label value with the escapes the text format requires (\\, \", \n). */
static void prom_label_value(px_jsonw_t *w, const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (c == '\\')
            px_jsonw_raw(w, "\\\\", 2);
        else if (c == '"')
            px_jsonw_raw(w, "\\\"", 2);
        else if (c == '\n')
            px_jsonw_raw(w, "\\n", 2);
        else
            px_jsonw_raw(w, &c, 1);
    }
}

static void prom_family(px_jsonw_t *w, const char *name, const char *type, const char *help)
{
    px_jsonw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_u64(px_jsonw_t *w, const char *name, const char *type, const char *help,
                     uint64_t v)
{
    prom_family(w, name, type, help);
    px_jsonw_printf(w, "%s %llu\n", name, (unsigned long long)v);
}

static void prom_dbl(px_jsonw_t *w, const char *name, const char *help, double v)
{
    prom_family(w, name, "gauge", help);
    px_jsonw_printf(w, "%s %.6g\n", name, v);
}

/* The per-thread label set: thread="<pthread name>",tid="<kernel tid>". */
static void prom_thread_labels(px_jsonw_t *w, const mem_thread_stats_t *t)
{
    px_jsonw_puts(w, "{thread=\"");
    prom_label_value(w, t->name, strnlen(t->name, sizeof(t->name)));
    px_jsonw_printf(w, "\",tid=\"%llu\"}", (unsigned long long)t->tid);
}

typedef enum thread_field_e { TF_LIVE, TF_TCACHE, TF_REGION_BYTES, TF_ALLOCS } thread_field_t;

static void prom_threads(px_jsonw_t *w, const mem_stats_t *st, const char *name, const char *type,
                         const char *help, thread_field_t f)
{
    prom_family(w, name, type, help);
    for (unsigned i = 0; i < st->threads_cnt; i++) {
        const mem_thread_stats_t *t = &st->threads[i];
        px_jsonw_puts(w, name);
        prom_thread_labels(w, t);
        switch (f) {
        case TF_LIVE:
            px_jsonw_printf(w, " %lld\n", (long long)t->live_signed);
            break;
        case TF_TCACHE:
            px_jsonw_printf(w, " %llu\n", (unsigned long long)t->tcache);
            break;
        case TF_REGION_BYTES:
            px_jsonw_printf(w, " %llu\n", (unsigned long long)t->region_bytes);
            break;
        case TF_ALLOCS:
            px_jsonw_printf(w, " %llu\n", (unsigned long long)t->alloc_cnt);
            break;
        }
    }
}

typedef enum class_field_e { CF_LIVE, CF_LIVE_CNT, CF_TCACHE, CF_DEPOT, CF_ALLOCS } class_field_t;

static void prom_classes(px_jsonw_t *w, const mem_stats_t *st, const char *name, const char *type,
                         const char *help, class_field_t f)
{
    prom_family(w, name, type, help);
    for (unsigned i = 0; i < st->classes_cnt; i++) {
        const mem_class_stats_t *c = &st->classes[i];
        uint64_t v = f == CF_LIVE       ? c->live_bytes
                     : f == CF_LIVE_CNT ? c->live_cnt
                     : f == CF_TCACHE   ? c->tcache_bytes
                     : f == CF_DEPOT    ? c->depot_bytes
                                        : c->alloc_cnt;
        px_jsonw_printf(w, "%s{class=\"%u\"} %llu\n", name, (unsigned)c->size,
                        (unsigned long long)v);
    }
}

typedef enum node_field_e { NF_COMMITTED, NF_LIVE, NF_DEPOT, NF_SEGMENTS, NF_REMOTE } node_field_t;

static void prom_nodes(px_jsonw_t *w, const mem_stats_t *st, const char *name, const char *type,
                       const char *help, node_field_t f)
{
    prom_family(w, name, type, help);
    for (unsigned i = 0; i < st->nodes_cnt; i++) {
        const mem_node_stats_t *n = &st->nodes[i];
        uint64_t v = f == NF_COMMITTED  ? n->committed
                     : f == NF_LIVE     ? n->live
                     : f == NF_DEPOT    ? n->depot
                     : f == NF_SEGMENTS ? n->segments
                                        : n->remote_frees;
        px_jsonw_printf(w, "%s{node=\"%u\"} %llu\n", name, i, (unsigned long long)v);
    }
}

static void memory_prom(px_jsonw_t *w, const px_server_t *s, const mem_stats_t *st, uint64_t rss)
{
    prom_u64(w, "weir_memory_committed_bytes", "gauge",
             "Bytes mapped by mem/ and not returned to the OS.", st->committed);
    prom_u64(w, "weir_memory_mapped_bytes", "gauge", "Virtual bytes mapped by mem/.", st->mapped);
    prom_u64(w, "weir_memory_live_bytes", "gauge", "Bytes handed out and not freed.", st->live);
    prom_u64(w, "weir_memory_tcache_bytes", "gauge", "Free bytes in thread caches.", st->tcache);
    prom_u64(w, "weir_memory_depot_bytes", "gauge", "Free bytes in depot batches.", st->depot);
    prom_u64(w, "weir_memory_free_in_segments_bytes", "gauge",
             "Free spans inside segments, not yet returned to the OS.", st->free_in_segments);
    prom_u64(w, "weir_memory_released_pending_bytes", "gauge",
             "Mapped bytes returned to the OS and reusable.", st->released_pending);
    prom_u64(w, "weir_memory_released_bytes_total", "counter",
             "Bytes returned to the OS with madvise or munmap.", st->released_total);
    prom_u64(w, "weir_memory_page_reset_bytes_total", "counter",
             "Free pages inside partly used spans returned to the OS.", st->reset_total);
    prom_u64(w, "weir_memory_large_live_bytes", "gauge", "Live bytes in dedicated large mappings.",
             st->large_live);
    prom_u64(w, "weir_memory_resident_bytes", "gauge", "Resident set size of the process.", rss);
    prom_u64(w, "weir_memory_limit_bytes", "gauge", "Memory budget limit (0 = none).",
             st->budget_limit);
    prom_dbl(w, "weir_memory_pressure", "Committed bytes over the limit, 0 to 1.", st->pressure);
    prom_u64(w, "weir_memory_allocations_total", "counter", "Allocations made.", st->alloc_cnt);
    prom_u64(w, "weir_memory_frees_total", "counter", "Frees made.", st->free_cnt);
    prom_u64(w, "weir_memory_allocation_failures_total", "counter",
             "Allocations that returned NULL (budget or mapping failure).", st->alloc_failed);
    prom_u64(w, "weir_memory_budget_refused_total", "counter",
             "Charges refused at the budget's limit (before the release-and-retry).",
             st->budget_refused);
    prom_u64(w, "weir_memory_metadata_bytes", "gauge",
             "mem/'s own bookkeeping: thread-cache mappings, heap-profiler tables, registry.",
             st->metadata);
    prom_u64(w, "weir_memory_exempt_live_bytes", "gauge",
             "Bytes libuv holds through the allocations that never fail at the budget.",
             st->exempt_live);
    prom_u64(w, "weir_memory_exempt_over_total", "counter",
             "libuv allocations that passed the budget's limit instead of failing.",
             st->exempt_over);
    prom_u64(w, "weir_memory_segments", "gauge", "Segments mapped now.", st->segments);
    prom_u64(w, "weir_memory_regions_live", "gauge", "Connection regions alive.", st->regions_live);
    prom_u64(w, "weir_memory_regions_created_total", "counter", "Connection regions created.",
             st->regions_created);
    prom_u64(w, "weir_memory_region_bytes", "gauge", "Bytes held by regions.", st->region_bytes);
    prom_u64(w, "weir_memory_subregions_live", "gauge", "Stream sub-arenas alive.",
             st->subregions_live);
    prom_u64(w, "weir_memory_subregions_created_total", "counter", "Stream sub-arenas created.",
             st->subregions_created);
    prom_u64(w, "weir_memory_heap_sample_interval_bytes", "gauge",
             "Mean heap sampling interval (0 = off).", st->sample_bytes);
    prom_u64(w, "weir_memory_heap_samples_live", "gauge", "Sampled allocations still live.",
             st->samples_live);
    prom_threads(w, st, "weir_memory_thread_live_bytes", "gauge",
                 "Bytes allocated by the thread not yet freed (may be negative per thread).",
                 TF_LIVE);
    prom_threads(w, st, "weir_memory_thread_cache_bytes", "gauge",
                 "Free bytes in the thread's cache.", TF_TCACHE);
    prom_threads(w, st, "weir_memory_thread_region_bytes", "gauge",
                 "Bytes held by the thread's regions.", TF_REGION_BYTES);
    prom_threads(w, st, "weir_memory_thread_allocations_total", "counter",
                 "Allocations made by the thread.", TF_ALLOCS);
    prom_classes(w, st, "weir_memory_class_live_bytes", "gauge", "Live bytes per size class.",
                 CF_LIVE);
    prom_classes(w, st, "weir_memory_class_live_objects", "gauge", "Live objects per size class.",
                 CF_LIVE_CNT);
    prom_classes(w, st, "weir_memory_class_tcache_bytes", "gauge",
                 "Free bytes in thread caches per size class.", CF_TCACHE);
    prom_classes(w, st, "weir_memory_class_depot_bytes", "gauge",
                 "Free bytes in depots per size class.", CF_DEPOT);
    prom_classes(w, st, "weir_memory_class_allocations_total", "counter",
                 "Allocations per size class.", CF_ALLOCS);
    prom_nodes(w, st, "weir_memory_node_committed_bytes", "gauge", "Committed bytes per NUMA node.",
               NF_COMMITTED);
    prom_nodes(w, st, "weir_memory_node_live_bytes", "gauge", "Live bytes per NUMA node.", NF_LIVE);
    prom_nodes(w, st, "weir_memory_node_depot_bytes", "gauge", "Depot bytes per NUMA node.",
               NF_DEPOT);
    prom_nodes(w, st, "weir_memory_node_segments", "gauge", "Segments per NUMA node.", NF_SEGMENTS);
    prom_nodes(w, st, "weir_memory_node_remote_frees_total", "counter",
               "Objects freed on another node and sent home.", NF_REMOTE);
    prom_u64(w, "weir_overload_level", "gauge", "Overload level: 0 normal, 1 elevated, 2 critical.",
             (uint64_t)px_server_overload(s));
    px__admin_tenants_prom(w, s);
}

/* ---- handlers -------------------------------------------------------------------------- */

static bool want_prometheus(const px_admin_req_t *req, px_admin_resp_t *resp, bool *bad)
{
    char fmt[32];
    *bad = false;
    int n = px__admin_query_get(req->query, "format", fmt, sizeof(fmt));
    if (n == -ENOENT)
        return false;
    if (n >= 0 && strcmp(fmt, "prometheus") == 0)
        return true;
    if (n >= 0 && strcmp(fmt, "json") == 0)
        return false;
    *bad = true;
    px__admin_error(resp, 400, "400 format must be json or prometheus");
    return false;
}

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

void px__admin_memory(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->server != NULL);
    bool bad;
    bool prom = want_prometheus(req, resp, &bad);
    if (bad)
        return;
    mem_stats_t *st = snapshot_new();
    if (st == NULL) {
        px__admin_error(resp, 503, "503 out of memory taking the snapshot");
        return;
    }
    uint64_t rss = mem_stats_rss();
    if (prom) {
        resp->content_type = PROM_CONTENT_TYPE;
        memory_prom(&resp->body, req->server, st, rss);
    } else {
        memory_json(&resp->body, req->server, st, rss);
    }
    mem_free(st);
}

void px__admin_metrics(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    const px_server_t *s = req->server;
    MEM_ASSERT(s != NULL);
    mem_stats_t *st = snapshot_new();
    if (st == NULL) {
        px__admin_error(resp, 503, "503 out of memory taking the snapshot");
        return;
    }
    px_stats_t ps;
    memset(&ps, 0, sizeof(ps));
    px_server_stats(s, &ps);
    px_jsonw_t *w = &resp->body;
    resp->content_type = PROM_CONTENT_TYPE;
    memory_prom(w, s, st, mem_stats_rss());
    mem_free(st);
    px__admin_stats_prom(w, &ps);
    px__admin_clusters_prom(w, s);
    px__admin_reload_prom(w, (px_server_t *)s);
    prom_u64(w, "weir_ready", "gauge", "1 when every worker listens and weir is not draining.",
             __atomic_load_n(&s->ready, __ATOMIC_ACQUIRE) &&
                 !__atomic_load_n(&s->draining, __ATOMIC_ACQUIRE));
    prom_u64(w, "weir_draining", "gauge", "1 while draining after SIGTERM.",
             __atomic_load_n(&s->draining, __ATOMIC_ACQUIRE) != 0);
    prom_u64(w, "weir_workers", "gauge", "Worker threads.", s->workers_cnt);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    prom_dbl(w, "weir_uptime_seconds", "Seconds since weir started.",
             s->started_ns && now_ns > s->started_ns ? (double)(now_ns - s->started_ns) / 1e9
                                                     : 0.0);
}

/* Parses ?overload=N: 0 and sets *which (0 when absent), or answers 400 and returns -EINVAL. */
static int overload_param(const px_admin_req_t *req, px_admin_resp_t *resp, long *which)
{
    uint64_t v = 0;
    *which = 0;
    int rc = px__admin_query_u64(req->query, "overload", (uint64_t)INT32_MAX, &v);
    if (rc == -EINVAL || (rc == 0 && v == 0)) {
        px__admin_error(resp, 400,
                        "400 overload must be the number of a kept overload snapshot "
                        "(see heap_snapshots in /memory)");
        return -EINVAL;
    }
    *which = (long)v;
    return 0;
}

static void not_kept(px_admin_resp_t *resp, long which)
{
    char msg[160];
    snprintf(msg, sizeof(msg),
             "404 overload snapshot %ld is not kept (the last %u are; see heap_snapshots in "
             "/memory)",
             which, PX_OVERSNAP_MAX);
    px__admin_error(resp, 404, msg);
}

void px__admin_regions(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->server != NULL);
    long which;
    if (overload_param(req, resp, &which) != 0)
        return;
    uint64_t top = which ? PX_OVERSNAP_REGIONS : REGIONS_TOP_DEFAULT;
    int rc = px__admin_query_u64(req->query, "top", REGIONS_TOP_MAX, &top);
    if (rc == -EINVAL || (rc == 0 && top == 0)) {
        px__admin_error(resp, 400, "400 top must be a number from 1 to 1000");
        return;
    }
    px_region_row_t *rows = mem_malloc(sizeof(*rows) * (size_t)top);
    if (rows == NULL) {
        px__admin_error(resp, 503, "503 out of memory");
        return;
    }
    size_t n;
    px_oversnap_info_t oi;
    if (which) {
        if (px_oversnap_get(which, &oi, rows, (size_t)top) != 0) {
            mem_free(rows);
            not_kept(resp, which);
            return;
        }
        n = oi.regions_cnt;
    } else {
        n = px_server_collect_regions(req->server, rows, (size_t)top, REGIONS_TIMEOUT_MS);
    }
    MEM_ASSERT(n <= top);
    px_jsonw_t *w = &resp->body;
    px_jsonw_obj_begin(w);
    if (which) {
        px_jsonw_ki64(w, "overload", oi.which);
        px_jsonw_kstr(w, "from", px_overload_level_name((px_overload_level_t)oi.from));
        px_jsonw_kstr(w, "to", px_overload_level_name((px_overload_level_t)oi.to));
        px_jsonw_ku64(w, "timestamp_ms", oi.wall_ms);
        px_jsonw_ku64(w, "committed", oi.committed);
    }
    px_jsonw_ku64(w, "top", top);
    px_jsonw_ku64(w, "count", n);
    px_jsonw_key(w, "regions");
    px_jsonw_arr_begin(w);
    for (size_t i = 0; i < n; i++) {
        const px_region_row_t *r = &rows[i];
        px_jsonw_obj_begin(w);
        px_jsonw_ku64(w, "worker", r->worker);
        px_jsonw_ku64(w, "region_id", r->region_id);
        px_jsonw_kstr(w, "kind", r->stream_id == 0 ? "connection" : "stream");
        px_jsonw_key(w, "peer");
        px_jsonw_strn(w, r->peer, strnlen(r->peer, sizeof(r->peer)));
        px_jsonw_ki64(w, "stream_id", r->stream_id);
        px_jsonw_key(w, "authority");
        px_jsonw_strn(w, r->authority, strnlen(r->authority, sizeof(r->authority)));
        px_jsonw_key(w, "path");
        px_jsonw_strn(w, r->path, strnlen(r->path, sizeof(r->path)));
        px_jsonw_ku64(w, "bytes", r->bytes);
        px_jsonw_ku64(w, "age_ms", r->age_ms);
        px_jsonw_kstr(w, "state", r->state ? r->state : "");
        px_jsonw_kstr(w, "phase", r->phase ? r->phase : "");
        px_jsonw_obj_end(w);
    }
    px_jsonw_arr_end(w);
    px_jsonw_obj_end(w);
    px_jsonw_puts(w, "\n");
    mem_free(rows);
}

static int dump_write(void *ud, const char *buf, size_t len)
{
    px_jsonw_t *w = ud;
    px_jsonw_raw(w, buf, len);
    return w->err; /* sticky: stops the dump at the first failure */
}

typedef enum heap_fmt_e { HEAP_TEXT, HEAP_SYMBOLS, HEAP_PROTO } heap_fmt_t;

static void heap_dump_get(px_admin_resp_t *resp, heap_fmt_t fmt, long which)
{
    resp->content_type = "text/plain; charset=utf-8";
    int rc;
    if (fmt == HEAP_PROTO) {
        resp->content_type = "application/octet-stream";
        rc = px_pprof_pb_write(which, dump_write, &resp->body);
    } else if (fmt == HEAP_SYMBOLS) {
        rc = px_symbolize_dump_at(which, dump_write, &resp->body);
    } else {
        rc = mem_heapprof_dump_at(which, dump_write, &resp->body);
    }
    if (rc == -ENOENT && px_jsonw_error(&resp->body) == 0) {
        resp->content_type = "text/plain; charset=utf-8";
        px__admin_error(resp, 404,
                        which == MEM_HEAPSNAP_PEAK
                            ? "404 no peak snapshot yet (heap sampling off, or reset since)"
                            : "404 no such heap snapshot");
        return;
    }
    if (rc != 0 && px_jsonw_error(&resp->body) == 0) {
        resp->content_type = "text/plain; charset=utf-8";
        char msg[96];
        snprintf(msg, sizeof(msg), "500 heap dump failed: %s", strerror(-rc));
        px__admin_error(resp, 500, msg);
    }
}

/* Which heap a GET reads: ?peak=1, ?overload=N (a kept overload snapshot's number), or the
 * live one. Answers 400/404 itself and returns -1 when the request names none it can serve. */
static int heap_which(const px_admin_req_t *req, px_admin_resp_t *resp, long *which)
{
    long ov;
    if (overload_param(req, resp, &ov) != 0)
        return -1;
    uint64_t peak = 0;
    int rc = px__admin_query_u64(req->query, "peak", 1, &peak);
    if (rc == -EINVAL || (peak && ov)) {
        px__admin_error(resp, 400, "400 peak must be 0 or 1, and not with overload=N");
        return -1;
    }
    *which = peak ? MEM_HEAPSNAP_PEAK : MEM_HEAPSNAP_LIVE;
    if (ov) {
        px_oversnap_info_t oi;
        if (px_oversnap_get(ov, &oi, NULL, 0) != 0) {
            not_kept(resp, ov);
            return -1;
        }
        if (oi.heap_which <= 0) {
            px__admin_error(resp, 404,
                            "404 that overload snapshot has no heap (heap sampling was off)");
            return -1;
        }
        *which = oi.heap_which;
    }
    return 0;
}

void px__admin_heap_dump(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    if (req->method == PX_ADMIN_POST) {
        uint64_t v = 0;
        int rc = px__admin_query_u64(req->query, "sample_bytes", SAMPLE_BYTES_MAX, &v);
        if (rc != 0) {
            px__admin_error(resp, 400,
                            "400 POST /heap_dump needs ?sample_bytes=N (0 = off, at most 2^30)");
            return;
        }
        mem_heapprof_set_interval((size_t)v);
        px_jsonw_obj_begin(&resp->body);
        px_jsonw_ku64(&resp->body, "sample_bytes", mem_heapprof_interval());
        px_jsonw_obj_end(&resp->body);
        px_jsonw_puts(&resp->body, "\n");
        return;
    }
    long which;
    if (heap_which(req, resp, &which) != 0)
        return;
    char v[16];
    int n = px__admin_query_get(req->query, "symbols", v, sizeof(v));
    heap_fmt_t fmt = n > 0 && strcmp(v, "0") != 0 ? HEAP_SYMBOLS : HEAP_TEXT;
    n = px__admin_query_get(req->query, "format", v, sizeof(v));
    if (n > 0 && strcmp(v, "proto") == 0 && fmt == HEAP_TEXT) {
        fmt = HEAP_PROTO;
    } else if (n != -ENOENT && !(n > 0 && strcmp(v, "text") == 0)) {
        px__admin_error(resp, 400, "400 format must be text or proto (not with symbols=1)");
        return;
    }
    heap_dump_get(resp, fmt, which);
}

void px__admin_heap_symbols(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->method == PX_ADMIN_GET);
    long which;
    if (heap_which(req, resp, &which) != 0)
        return;
    heap_dump_get(resp, HEAP_SYMBOLS, which);
}

void px__admin_heap_peak_reset(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->method == PX_ADMIN_POST);
    uint64_t was = mem_heapsnap_peak_committed();
    mem_heapsnap_peak_reset();
    px_jsonw_obj_begin(&resp->body);
    px_jsonw_ku64(&resp->body, "peak_committed_was", was);
    px_jsonw_ku64(&resp->body, "committed", mem_budget_committed());
    px_jsonw_obj_end(&resp->body);
    px_jsonw_puts(&resp->body, "\n");
}

void px__admin_release(const px_admin_req_t *req, px_admin_resp_t *resp)
{
    MEM_ASSERT(req->method == PX_ADMIN_POST);
    size_t released = px_server_release(req->server, 1000);
    px_jsonw_obj_begin(&resp->body);
    px_jsonw_ku64(&resp->body, "released_bytes", released);
    px_jsonw_ku64(&resp->body, "committed_bytes", mem_budget_committed());
    px_jsonw_obj_end(&resp->body);
    px_jsonw_puts(&resp->body, "\n");
}
