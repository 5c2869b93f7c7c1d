/*
 * proxy/core/worker.c: a worker thread: pinned to its CPU, its own thread cache, uv loop and
 * SO_REUSEPORT listeners; accepts connections, flushes their write batches once per loop
 * iteration, flushes the access log each second, drains on request.
 *
 * Other threads reach a worker only through px_worker_signal() (atomic flags plus its
 * uv_async_t). Everything else here runs on the worker thread.
 */
#include "proxy/core/worker.h"
#include "mem/base.h"

#include <sched.h>
#include <string.h>
#include <unistd.h>

#ifdef PX_NUMA
#include <numa.h>
#endif

#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "proxy/core/alloc.h"
#include "proxy/core/conn.h"
#include "proxy/core/overload.h"
#include "proxy/core/server.h"

#include "proxy/upstream/upstream.h"

#define PX_COLLECT_ROWS_MAX 4096u

static void on_handle_closed(uv_handle_t *h)
{
    px_wimpl_t *wi = h->data;
    MEM_ASSERT(wi->handles_open > 0);
    wi->handles_open--;
}

static void on_lis_closed(uv_handle_t *h)
{
    px_lis_t *l = h->data;
    MEM_ASSERT(l->wi->handles_open > 0);
    l->wi->handles_open--;
    mem_free(l);
}

/* Closes one listener and frees it (in the close callback once its handle was opened). Its
 * accepted connections do not need it: px_conn_accept is the only reader of c->lis. */
static void lis_close(px_lis_t *l)
{
    if (l->open) {
        l->open = false;
        uv_close((uv_handle_t *)&l->tcp, on_lis_closed);
        return;
    }
    if (l->fd >= 0)
        close(l->fd);
    mem_free(l);
}

static void close_listeners(px_wimpl_t *wi)
{
    for (size_t i = 0; i < wi->lis_cnt; i++)
        lis_close(wi->lis[i]);
    wi->lis_cnt = 0;
}

static void on_connection(uv_stream_t *server, int status);

/* Adopts l->fd and listens on it. */
static int lis_open(px_wimpl_t *wi, px_lis_t *l)
{
    MEM_ASSERT(!l->open);
    MEM_ASSERT(l->fd >= 0);
    int rc = uv_tcp_init(&wi->w->loop, &l->tcp);
    if (rc != 0)
        return rc;
    l->tcp.data = l;
    wi->handles_open++;
    l->open = true;
    rc = uv_tcp_open(&l->tcp, l->fd);
    if (rc != 0)
        return rc; /* the fd stays ours: lis_close's uv_close does not close it */
    l->fd = -1;    /* the handle has it */
    return uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
}

static void on_upstream_closed(px_worker_t *w)
{
    px_wimpl_t *wi = w->impl;
    /* Late signals must not touch the async handle once it is closing. */
    pthread_mutex_lock(&wi->async_lock);
    wi->async_live = false;
    pthread_mutex_unlock(&wi->async_lock);
    uv_close((uv_handle_t *)&wi->async, on_handle_closed);
    uv_close((uv_handle_t *)&wi->check, on_handle_closed);
    uv_close((uv_handle_t *)&wi->idle, on_handle_closed);
    uv_close((uv_handle_t *)&wi->tick, on_handle_closed);
    uv_close((uv_handle_t *)&wi->memwait.timer, on_handle_closed);
}

static void maybe_stop(px_wimpl_t *wi)
{
    if (!wi->draining || wi->stopping || wi->conns_cnt > 0)
        return;
    wi->stopping = true;
    px_upstream_worker_close(wi->w, on_upstream_closed);
}

static void on_check(uv_check_t *h)
{
    px_wimpl_t *wi = h->data;
    /* Detach the list first: flushing may dirty connections again (next iteration). */
    px_conn_t *c = wi->dirty;
    wi->dirty = NULL;
    uv_idle_stop(&wi->idle);
    while (c) {
        px_conn_t *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        px_conn_flush(c);
        c = next;
    }
    /* After the flushes, which free write batches: connections waiting for memory try again
     * when this thread freed anything since they parked (they flush next iteration). */
    px_memwait_poll(&wi->memwait);
}

/* A worker that has had no connection for memory.decay gives its thread cache back once, so
 * that the decay can return what its closed connections freed to the OS; otherwise the cache
 * would hold it (up to tcache_bytes_max) until the next connection. */
static void release_when_idle(px_wimpl_t *wi)
{
    uint64_t now = uv_now(&wi->w->loop);
    if (wi->conns != NULL || wi->busy_ms == 0) {
        wi->busy_ms = now;
        wi->cache_flushed = false;
        return;
    }
    if (!wi->cache_flushed && now - wi->busy_ms >= wi->w->cfg->memory.decay_ms) {
        mem_thread_flush();
        wi->cache_flushed = true;
    }
}

/* No request began on this worker since the last tick: the sub-arena chunks mem/ keeps ready
 * for new streams go back to the cache (a burst leaves up to 2 MiB of them), where the cache's
 * bound and the decay apply. */
static void trim_when_quiet(px_wimpl_t *wi)
{
    uint64_t opened = MEM_STAT_LOAD(wi->w->stats.requests_total);
    if (opened == wi->requests_seen)
        mem_thread_trim();
    wi->requests_seen = opened;
}

static void on_tick(uv_timer_t *t)
{
    px_wimpl_t *wi = t->data;
    if (wi->log)
        px_accesslog_flush(wi->log);
    /* mem/'s decay, in a bounded step here rather than inside some allocation's slow path. */
    (void)mem_decay_tick(MEM_DECAY_TIMER_WORK);
    release_when_idle(wi);
    trim_when_quiet(wi);
    /* Stream idle and header timeouts: one sweep a second is coarse but costs nothing per
     * request. Either limit alone runs it: a header block is held to header_timeout also
     * when there is no stream idle timeout. */
    if (wi->w->cfg->limits.stream_idle_timeout_ms || wi->w->cfg->limits.header_timeout_ms) {
        uint64_t now = uv_now(&wi->w->loop);
        for (px_conn_t *c = wi->conns; c; c = c->next)
            if (c->mode == PX_CONN_H2 && px_h2_want_sweep(c->h2))
                px_h2_sweep_idle(c->h2, now);
    }
    /* TLS connections give back the buffers their memory BIOs kept (px_conn_trim). */
    for (px_conn_t *c = wi->conns; c; c = c->next)
        if (c->ssl != NULL)
            px_conn_trim(c);
    /* Send timeout: the same coarse sweep, over connections whose write waits on the socket. */
    if (wi->w->cfg->limits.send_timeout_ms) {
        uint64_t now = uv_now(&wi->w->loop);
        for (px_conn_t *c = wi->conns, *n; c; c = n) {
            n = c->next; /* closing unlinks c */
            if (c->writing)
                (void)px_conn_check_send(c, now);
        }
    }
    if (wi->draining && wi->drain_ticks++ == 0) {
        /* One tick after the shutdown notice: clients have seen it, now the final GOAWAY
         * with the last stream id we took. */
        for (px_conn_t *c = wi->conns, *n; c; c = n) {
            n = c->next;
            px_conn_drain(c, true);
        }
    }
}

static void collect(px_wimpl_t *wi)
{
    px_server_t *s = wi->w->server;
    uint64_t gen = px_server__collect_gen(s);
    if (gen == 0)
        return;
    /* One row per connection and one per stream or HTTP/1.1 request in progress
     * (px_conn_collect), so the scratch is sized by what this worker holds, at most
     * PX_COLLECT_ROWS_MAX rows (about 1.9 MiB). It is
     * allocated past the budget's limit (bounded, freed below): at critical a plain allocation
     * failed, and /memory/regions and the overload snapshot came back empty. */
    size_t max = 0, n = 0;
    for (px_conn_t *c = wi->conns; c && max < PX_COLLECT_ROWS_MAX; c = c->next)
        max += 2 + (c->h2 ? c->h2->streams_cnt
                          : 0); /* an HTTP/1.1 connection's request takes the 2nd */
    max = MEM_MIN(max, (size_t)PX_COLLECT_ROWS_MAX);
    px_region_row_t *rows = max ? mem_malloc_exempt(sizeof(*rows) * max) : NULL;
    if (rows != NULL)
        for (px_conn_t *c = wi->conns; c && n < max; c = c->next)
            n += px_conn_collect(c, rows + n, max - n);
    px_server__collect_put(s, gen, rows, n);
    mem_free_exempt(rows);
}

/* Takes the config that px_worker_reload left: at this point of the loop no callback of a
 * connection or an exchange is running, so swapping w->cfg cannot change anything under one.
 * Streams routed before keep their own reference to the old config. */
static void apply_reload(px_wimpl_t *wi)
{
    px_worker_t *w = wi->w;
    pthread_mutex_lock(&wi->async_lock);
    px_worker_reload_t *m = wi->reload;
    wi->reload = NULL;
    pthread_mutex_unlock(&wi->async_lock);
    if (m == NULL)
        return;
    MEM_ASSERT(m->cfg != NULL);
    MEM_ASSERT(m->lis_cnt == m->cfg->listeners_cnt);
    if (!wi->draining) {
        /* Kept listeners move to the new array (their handles never move in memory); those
         * not kept close; new ones open. */
        for (size_t j = 0; j < m->lis_cnt; j++) {
            px_lis_t *l;
            if (m->keep[j] >= 0) {
                MEM_ASSERT((size_t)m->keep[j] < wi->lis_cnt);
                l = wi->lis[m->keep[j]];
                wi->lis[m->keep[j]] = NULL;
            } else {
                l = m->fresh[j];
                m->fresh[j] = NULL;
                l->wi = wi;
            }
            l->cfg = &m->cfg->listeners[j];
            l->tls = m->cfg->listeners[j].tls_ctx;
            m->lis[j] = l;
        }
        for (size_t i = 0; i < wi->lis_cnt; i++)
            if (wi->lis[i] != NULL)
                lis_close(wi->lis[i]);
        mem_free(wi->lis);
        wi->lis = m->lis;
        wi->lis_cnt = m->lis_cnt;
        m->lis = NULL;
        for (size_t j = 0; j < wi->lis_cnt; j++) {
            px_lis_t *l = wi->lis[j];
            if (l->open)
                continue;
            int rc = lis_open(wi, l);
            if (rc != 0)
                fprintf(stderr, "weir: worker %u: listener %s: %s\n", w->idx, l->cfg->name,
                        uv_strerror(rc));
        }
    }
    const px_config_t *old = w->cfg;
    w->cfg = m->cfg;
    m->cfg = NULL;
    px_upstream_reconfigure(w);
    px_config_unref(old);
    px_worker_reload_free(m);
    px_server__reload_applied(w->server);
}

static void on_async(uv_async_t *h)
{
    px_wimpl_t *wi = h->data;
    unsigned f = __atomic_exchange_n(&wi->flags, 0, __ATOMIC_ACQ_REL);
    if (f & PX_WF_COLLECT)
        collect(wi);
    if (f & PX_WF_OVERLOAD)
        px_overload__worker_apply(wi->w);
    if (f & PX_WF_RELEASE) {
        (void)mem_release_now();
        px_server__released(wi->w->server);
    }
    if (f & PX_WF_RELOAD)
        apply_reload(wi);
    if ((f & (PX_WF_DRAIN | PX_WF_FORCE)) && !wi->draining) {
        wi->draining = true;
        close_listeners(wi);
        for (px_conn_t *c = wi->conns, *n; c; c = n) {
            n = c->next;
            px_conn_drain(c, false);
        }
        uv_timer_start(&wi->tick, on_tick, 200, 1000);
    }
    if ((f & PX_WF_FORCE) && !wi->forced) {
        wi->forced = true;
        while (wi->conns)
            px_conn_close(wi->conns);
    }
    maybe_stop(wi);
}

static void on_connection(uv_stream_t *server, int status)
{
    px_lis_t *lis = server->data;
    if (status < 0)
        return;
    px_conn_accept(lis);
}

static int worker_setup(px_worker_t *w)
{
    px_wimpl_t *wi = w->impl;
    int rc = uv_loop_init(&w->loop);
    if (rc != 0)
        return rc;
    if (w->cfg->access_log) {
        wi->log = px_accesslog_new(w->cfg->access_log);
        if (wi->log == NULL)
            return -errno;
    }
    rc = px_upstream_worker_init(w, px_alloc_nghttp2_mem());
    if (rc != 0)
        return rc;
    /* First of the handles: a failure here leaves none of them to close. */
    rc = px_memwait_init(&wi->memwait, &w->loop, PX_MEMWAIT_FALLBACK_MS, &w->stats);
    if (rc != 0)
        return rc;
    uv_check_init(&w->loop, &wi->check);
    uv_idle_init(&w->loop, &wi->idle);
    uv_timer_init(&w->loop, &wi->tick);
    uv_async_init(&w->loop, &wi->async, on_async);
    wi->check.data = wi->idle.data = wi->tick.data = wi->async.data = wi;
    wi->memwait.timer.data = wi;
    wi->handles_open = 5;
    uv_check_start(&wi->check, on_check);
    uv_timer_start(&wi->tick, on_tick, 1000, 1000);
    for (size_t i = 0; i < wi->lis_cnt; i++) {
        rc = lis_open(wi, wi->lis[i]);
        if (rc != 0)
            return rc;
    }
    pthread_mutex_lock(&wi->async_lock);
    wi->async_live = true;
    pthread_mutex_unlock(&wi->async_lock);
    return 0;
}

static void *worker_main(void *arg)
{
    px_worker_t *w = arg;
    px_wimpl_t *wi = w->impl;
    char name[16];
    snprintf(name, sizeof(name), "weir-w%u", w->idx);
    pthread_setname_np(pthread_self(), name);
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    /* -1: the node of the CPU just pinned, as mem/ numbers nodes (densely: w->node is the
     * kernel's id, which is no index of mem/'s when the ids are sparse). Failing is not fatal:
     * the first allocation tries again, and a thread without a cache of its own uses the
     * shared one (slower, not wrong); say so. */
    int arc = mem_thread_attach(-1);
    if (arc != 0)
        fprintf(stderr,
                "weir: worker %u: mem_thread_attach: %s (it gets a cache later or shares one)\n",
                w->idx, strerror(-arc));
    int rc = worker_setup(w);
    px_server__worker_started(w->server, rc);
    if (rc != 0) {
        /* The server stops the others; give back what setup took. */
        wi->draining = true;
        while (wi->conns)
            px_conn_close(wi->conns);
        if (!wi->stopping && wi->handles_open > 0) {
            close_listeners(wi);
            wi->stopping = true;
            on_upstream_closed(w);
        }
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Unclosed handles mean a bug in the close paths above. */
    MEM_ASSERT(wi->handles_open == 0 || rc != 0);
    if (uv_loop_close(&w->loop) != 0) {
        uv_run(&w->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&w->loop);
    }
    px_accesslog_free(wi->log);
    wi->log = NULL;
    px_server__worker_exited(w->server);
    mem_thread_detach();
    return NULL;
}

int px_worker_init(px_worker_t *w, px_server_t *s, unsigned idx, int cpu, const int *fds)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(s != NULL && s->cfg != NULL);
    memset(w, 0, sizeof(*w));
    w->idx = idx;
    w->cpu = cpu;
    w->node = -1;
#ifdef PX_NUMA
    if (cpu >= 0 && numa_available() >= 0)
        w->node = numa_node_of_cpu(cpu);
#endif
    w->server = s;
    w->overload_level = &s->overload_level;
    px_wimpl_t *wi = mem_calloc(1, sizeof(*wi));
    if (wi == NULL)
        return -ENOMEM;
    size_t n = s->cfg->listeners_cnt;
    wi->lis = mem_calloc(n ? n : 1, sizeof(*wi->lis));
    for (size_t i = 0; wi->lis != NULL && i < n; i++) {
        wi->lis[i] = mem_calloc(1, sizeof(px_lis_t));
        if (wi->lis[i] == NULL) {
            while (i-- > 0)
                mem_free(wi->lis[i]);
            mem_free(wi->lis);
            wi->lis = NULL;
        }
    }
    if (wi->lis == NULL) {
        mem_free(wi);
        return -ENOMEM;
    }
    wi->w = w;
    wi->lis_cnt = n;
    pthread_mutex_init(&wi->async_lock, NULL);
    for (size_t i = 0; i < n; i++) {
        wi->lis[i]->wi = wi;
        wi->lis[i]->cfg = &s->cfg->listeners[i];
        wi->lis[i]->tls = s->cfg->listeners[i].tls_ctx;
        wi->lis[i]->fd = fds[i];
    }
    w->cfg = px_config_ref(s->cfg);
    w->impl = wi;
    return 0;
}

px_worker_reload_t *px_worker_reload_new(const px_config_t *cfg, const int *keep, const int *fds)
{
    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(keep != NULL || cfg->listeners_cnt == 0);
    size_t n = cfg->listeners_cnt;
    px_worker_reload_t *m = mem_calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->keep = mem_calloc(n ? n : 1, sizeof(int));
    m->fresh = mem_calloc(n ? n : 1, sizeof(px_lis_t *));
    m->lis = mem_calloc(n ? n : 1, sizeof(px_lis_t *));
    if (m->keep == NULL || m->fresh == NULL || m->lis == NULL)
        goto fail;
    m->lis_cnt = n;
    for (size_t j = 0; j < n; j++) {
        m->keep[j] = keep[j];
        if (keep[j] >= 0)
            continue;
        m->fresh[j] = mem_calloc(1, sizeof(px_lis_t));
        if (m->fresh[j] == NULL)
            goto fail;
        m->fresh[j]->fd = -1;
    }
    /* Nothing can fail from here: the sockets change hands. */
    for (size_t j = 0; j < n; j++)
        if (m->fresh[j] != NULL)
            m->fresh[j]->fd = fds[j];
    m->cfg = px_config_ref(cfg);
    return m;
fail:
    px_worker_reload_free(m);
    return NULL;
}

void px_worker_reload_free(px_worker_reload_t *m)
{
    if (m == NULL)
        return;
    for (size_t j = 0; m->fresh != NULL && j < m->lis_cnt; j++) {
        if (m->fresh[j] == NULL)
            continue;
        if (m->fresh[j]->fd >= 0)
            close(m->fresh[j]->fd);
        mem_free(m->fresh[j]);
    }
    mem_free(m->fresh);
    mem_free(m->keep);
    mem_free(m->lis);
    px_config_unref(m->cfg);
    mem_free(m);
}

void px_worker_reload(px_worker_t *w, px_worker_reload_t *m)
{
    px_wimpl_t *wi = w->impl;
    MEM_ASSERT(wi != NULL);
    MEM_ASSERT(m != NULL);
    pthread_mutex_lock(&wi->async_lock);
    px_worker_reload_t *prev = wi->reload;
    wi->reload = m;
    pthread_mutex_unlock(&wi->async_lock);
    /* The server hands one reload at a time (it waits for every worker to apply the last). */
    MEM_ASSERT(prev == NULL);
    px_worker_reload_free(prev);
    px_worker_signal(w, PX_WF_RELOAD);
}

int px_worker_start(px_worker_t *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    return rc == 0 ? 0 : -rc;
}

void px_worker_signal(px_worker_t *w, unsigned flags)
{
    px_wimpl_t *wi = w->impl;
    if (wi == NULL)
        return;
    __atomic_fetch_or(&wi->flags, flags, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&wi->async_lock);
    if (wi->async_live)
        uv_async_send(&wi->async);
    pthread_mutex_unlock(&wi->async_lock);
}

void px_worker_join(px_worker_t *w)
{
    px_wimpl_t *wi = w->impl;
    if (wi == NULL)
        return;
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&wi->async_lock);
    /* Listeners the loop never opened (a failed start): their sockets close here. */
    for (size_t i = 0; i < wi->lis_cnt; i++) {
        MEM_ASSERT(!wi->lis[i]->open);
        lis_close(wi->lis[i]);
    }
    mem_free(wi->lis);
    px_worker_reload_free(wi->reload); /* one that came after the loop stopped */
    px_config_unref(w->cfg);
    w->cfg = NULL;
    mem_free(wi);
    w->impl = NULL;
}
