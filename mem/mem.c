/*
 * mem/mem.c: library set-up: configuration, init/fini, thread attach/detach, fault injection.
 *
 * mem__g is the single instance of the library's global state; mem_init() fills it on the
 * main thread before other threads allocate (or the first allocation does, with defaults),
 * and mem_fini() clears it when every thread has detached (tests).
 */
#include "mem/base.h"
#include "mem/mem.h"
#include "mem/internal.h"
#include "mem/tcache.h"
#include "mem/numa.h"
#include "mem/heapprof.h"
#include "mem/decay.h"
#include "mem/heapsnap.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

mem__global_t mem__g;
mem__fault_t mem__fault;

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

void mem_config_default(mem_config_t *cfg)
{
    MEM_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    cfg->budget_bytes = 0;
    cfg->numa_nodes = 0;
    cfg->decay_ms = 1000;
    cfg->sample_bytes = 512 * 1024;
    cfg->tcache_bytes_max = 1024 * 1024;
}

/* Batches and capacities are sized in bytes: a batch is about MEM_TC_BATCH_BYTES (at least
 * one object, at most MEM_BATCH_MAX), a class caches two batches, and no class may hold more
 * than half the cache's byte bound (its share of the bound is enforced as a whole at run
 * time, see tcache.h). A class whose single object passes half the bound is not cached: it
 * goes straight to the depot. A node's depot keeps at most ~256 KiB per class (at least 4
 * batches). */
static void size_caches(size_t tcache_bytes_max)
{
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        size_t sz = mem_sc_size[c];
        size_t batch = MEM_MIN((MEM_TC_BATCH_BYTES + sz - 1) / sz, (size_t)MEM_BATCH_MAX);
        size_t cap = MEM_MIN(2 * batch, (size_t)MEM_TC_CAP_MAX);
        while (cap > 0 && cap * sz > tcache_bytes_max / 2)
            cap--;
        if (cap > 0 && cap < 2 * batch)
            batch = MEM_MAX(cap / 2, (size_t)1);
        mem__g.cap[c] = (uint32_t)cap;
        mem__g.batch[c] = (uint32_t)batch;
        MEM_ASSERT(mem__g.batch[c] <= MEM_BATCH_MAX);
        MEM_ASSERT(cap == 0 || batch <= cap);
        size_t batch_bytes = batch * sz;
        mem__g.depot_batches_max[c] = (uint32_t)MEM_MAX((256u * 1024u) / batch_bytes, (size_t)4);
    }
}

static int init_locked(const mem_config_t *cfg_in)
{
    mem_config_t cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        mem_config_default(&cfg);
    if (cfg.numa_nodes > MEM_STATS_NODES_MAX)
        return -EINVAL;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !MEM_IS_POW2((size_t)page))
        return -EINVAL;

    memset(mem__g.nodes, 0, sizeof(mem__g.nodes));
    mem__g.cfg = cfg;
    mem__g.page = (size_t)page;
    mem_numa_init();
    mem__g.real_nodes = mem_numa_real_nodes();
    mem__g.nodes_cnt = cfg.numa_nodes ? cfg.numa_nodes : mem__g.real_nodes;
    /* Bind only when every (pretended) node is real and there is more than one. */
    mem__g.bind = mem__g.real_nodes > 1 && mem__g.nodes_cnt <= mem__g.real_nodes;
    size_caches(cfg.tcache_bytes_max);
    for (unsigned i = 0; i < MEM_STATS_NODES_MAX; i++) {
        mem__node_t *n = &mem__g.nodes[i];
        n->id = i;
        pthread_mutex_init(&n->lock, NULL);
        for (unsigned c = 0; c < MEM_SC_COUNT; c++)
            ck_stack_init(&n->depot[c].stack);
        mem__node_lists_init(n);
    }
    pthread_mutex_init(&mem__threads.reg_lock, NULL);
    pthread_mutex_init(&mem__threads.shared_lock, NULL);
    __atomic_store_n(&mem__budget.limit, (uint64_t)cfg.budget_bytes, __ATOMIC_RELAXED);
    mem_budget_set_decay_ms(cfg.decay_ms);
    mem_heapprof_set_interval(cfg.sample_bytes);
    int rc = mem__tcache_global_init();
    if (rc != 0)
        return rc;
    __atomic_store_n(&mem__g.initialised, true, __ATOMIC_RELEASE);
    return 0;
}

int mem_init(const mem_config_t *cfg)
{
    pthread_mutex_lock(&init_lock);
    int rc = mem_is_initialised() ? -EALREADY : init_locked(cfg);
    pthread_mutex_unlock(&init_lock);
    return rc;
}

int mem__ensure_init(void)
{
    if (MEM_LIKELY(mem_is_initialised()))
        return 0;
    int rc = mem_init(NULL);
    return rc == -EALREADY ? 0 : rc;
}

bool mem_is_initialised(void)
{
    return __atomic_load_n(&mem__g.initialised, __ATOMIC_ACQUIRE);
}

int mem_thread_attach(int node)
{
    int rc = mem__ensure_init();
    if (rc != 0)
        return rc;
    if (node >= (int)mem__g.nodes_cnt || node < -1)
        return -EINVAL;
    unsigned nd = node < 0 ? mem_numa_cpu_node() % mem__g.nodes_cnt : (unsigned)node;
    mem__tcache_t *tc = mem__tc_self;
    if (tc->reg_idx >= 0) {
        if (tc->node == nd)
            return 0;
        /* Cached objects belong to the old node: give them back before moving. */
        mem__tcache_flush(tc);
        MEM_STAT_STORE(tc->node, nd);
        return 0;
    }
    return mem__tcache_create(nd) ? 0 : -ENOMEM;
}

void mem_thread_detach(void)
{
    mem__tcache_detach_self(false);
}

void mem_thread_flush(void)
{
    if (!mem_is_initialised())
        return;
    mem__tcache_t *tc = mem__tc_self;
    if (tc->reg_idx >= 0)
        mem__tcache_flush(tc);
}

void mem_thread_trim(void)
{
    if (!mem_is_initialised())
        return;
    mem__tcache_t *tc = mem__tc_self;
    if (tc->reg_idx >= 0)
        mem__tcache_keep_drain(tc);
}

size_t mem__live_bytes(void)
{
    int64_t live = 0;
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        int64_t cnt = (int64_t)(__atomic_load_n(&mem__threads.retired_alloc[c], __ATOMIC_RELAXED) -
                                __atomic_load_n(&mem__threads.retired_free[c], __ATOMIC_RELAXED));
        for (int i = 0; i < MEM_REG_MAX; i++) {
            mem__tcache_t *tc = __atomic_load_n(&mem__threads.reg[i], __ATOMIC_ACQUIRE);
            if (tc)
                cnt += (int64_t)(MEM_STAT_LOAD(tc->alloc_cnt[c]) - MEM_STAT_LOAD(tc->free_cnt[c]));
        }
        if (mem__threads.shared)
            cnt += (int64_t)(MEM_STAT_LOAD(mem__threads.shared->alloc_cnt[c]) -
                             MEM_STAT_LOAD(mem__threads.shared->free_cnt[c]));
        live += cnt * (int64_t)mem_sc_size[c];
    }
    live += (int64_t)__atomic_load_n(&mem__large_totals.live, __ATOMIC_RELAXED);
    return live > 0 ? (size_t)live : 0;
}

size_t mem_fini(void)
{
    pthread_mutex_lock(&init_lock);
    if (!mem_is_initialised()) {
        pthread_mutex_unlock(&init_lock);
        return 0;
    }
    mem__tcache_detach_self(false);
    pthread_mutex_lock(&mem__threads.shared_lock);
    mem__tcache_flush(mem__threads.shared);
    pthread_mutex_unlock(&mem__threads.shared_lock);
    for (unsigned i = 0; i < mem__g.nodes_cnt; i++)
        for (unsigned c = 0; c < MEM_SC_COUNT; c++)
            (void)mem__depot_drain_quiescent(&mem__g.nodes[i], c);
    size_t live = mem__live_bytes();
    __atomic_store_n(&mem__g.initialised, false, __ATOMIC_RELEASE);
    mem__tcache_global_fini();
    for (unsigned i = 0; i < MEM_STATS_NODES_MAX; i++) {
        mem__node_unmap_all(&mem__g.nodes[i]);
        pthread_mutex_destroy(&mem__g.nodes[i].lock);
    }
    /* Large objects still live stay mapped (their owners may still use them); their
     * mappings leak deliberately and are reported in the return value. */
    memset(mem__threads.retired_alloc, 0, sizeof(mem__threads.retired_alloc));
    memset(mem__threads.retired_free, 0, sizeof(mem__threads.retired_free));
    memset(&mem__threads.retired_tstats, 0, sizeof(mem__threads.retired_tstats));
    memset(mem__threads.reg_used, 0, sizeof(mem__threads.reg_used));
    memset(mem__threads.reg_claimed, 0, sizeof(mem__threads.reg_claimed));
    mem__budget.committed = 0;
    mem__budget.mapped = 0;
    mem__budget.released_total = 0;
    mem__budget.reset_total = 0;
    mem__large_totals.live = 0;
    mem__large_totals.cnt = 0;
    mem__large_totals.alloc_cnt = 0;
    mem__large_totals.free_cnt = 0;
    mem__budget.alloc_failed = 0;
    mem__budget.refused = 0;
    mem__budget.metadata = 0;
    mem__heapprof_meta_forget();
    mem__heapsnap_meta_forget();
    mem__decay_reset();
    mem__registry_meta_forget();
    mem__budget.exempt_live = 0;
    mem__budget.exempt_over = 0;
    mem_heapprof_set_interval(0);
    pthread_mutex_unlock(&init_lock);
    return live;
}

/* ---- fault injection ---------------------------------------------------------------- */

void mem_fault_set(uint64_t nth, uint64_t one_in)
{
    __atomic_store_n(&mem__fault.nth, nth, __ATOMIC_RELAXED);
    __atomic_store_n(&mem__fault.one_in, one_in, __ATOMIC_RELAXED);
}

uint64_t mem_fault_injected(void)
{
    return __atomic_load_n(&mem__fault.count, __ATOMIC_RELAXED);
}

bool mem__fault_hit(void)
{
#if defined(MEM_FAULT_INJECT) && MEM_FAULT_INJECT
    if (mem__exempt_depth > 0)
        return false; /* the exempt entry points must not fail */
    uint64_t nth = __atomic_load_n(&mem__fault.nth, __ATOMIC_RELAXED);
    while (nth) {
        if (__atomic_compare_exchange_n(&mem__fault.nth, &nth, nth - 1, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            if (nth == 1) {
                __atomic_fetch_add(&mem__fault.count, 1, __ATOMIC_RELAXED);
                return true;
            }
            break;
        }
    }
    return mem__fault_alloc_hit(); /* then the random faults */
#else
    return false;
#endif
}

bool mem__fault_alloc_hit(void)
{
#if defined(MEM_FAULT_INJECT) && MEM_FAULT_INJECT
    uint64_t one_in = __atomic_load_n(&mem__fault.one_in, __ATOMIC_RELAXED);
    if (one_in == 0 || mem__exempt_depth > 0)
        return false;
    /* splitmix64 over a shared sequence: cheap, thread-safe, reproducible per run (also the
     * random part of mem__fault_hit). */
    uint64_t z = mem__splitmix64(__atomic_fetch_add(&mem__fault.seq, 1, __ATOMIC_RELAXED));
    if (z % one_in == 0) {
        __atomic_fetch_add(&mem__fault.count, 1, __ATOMIC_RELAXED);
        return true;
    }
#endif
    return false;
}

void mem__die(const char *fmt, ...)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "weir: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (size_t)MEM_MIN(MEM_MAX(m, 0), (int)sizeof(buf) - n - 2);
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
    abort();
}
