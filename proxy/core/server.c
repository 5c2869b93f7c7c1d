/*
 * proxy/core/server.c: the process: worker count and placement, listening sockets, TLS contexts,
 * start-up lines, signals, drain with a deadline, and the cross-thread requests (stats and
 * region attribution) the admin thread makes.
 *
 * One server per process, created and run by main(). The main thread owns its uv loop
 * (signals, drain timer, worker-exit wake-ups); workers and the admin thread call only the
 * px_server__* notes and the collect/stats functions.
 */
#include "proxy/core/server.h"
#include "mem/base.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "mem/budget.h"
#include "mem/malloc.h"
#include "proxy/core/conn.h"
#include "proxy/core/internal.h"
#include "proxy/core/listener.h"
#include "proxy/core/overload.h"
#include "proxy/core/tls.h"
#include "proxy/upstream/health.h"

typedef px_srv_impl_t srv_impl_t;

int px_server_new(px_config_t *cfg, px_server_t **out)
{
    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(out != NULL);
    px_server_t *s = mem_calloc(1, sizeof(*s));
    srv_impl_t *im = mem_calloc(1, sizeof(*im));
    uint16_t *ports = mem_calloc(cfg->listeners_cnt + 1, sizeof(uint16_t));
    if (s == NULL || im == NULL || ports == NULL)
        goto fail;
    pthread_mutex_init(&im->lock, NULL);
    pthread_cond_init(&im->cond, NULL);
    s->impl = im;
    /* The health table lives with the config (reload.c attaches each new config's). */
    if (cfg->health == NULL && px_health_attach(cfg, NULL) < 0)
        goto fail;
    s->cfg = cfg;
    s->listener_ports = ports;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s->started_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    *out = s;
    return 0;
fail:
    mem_free(ports);
    mem_free(im);
    mem_free(s);
    return -ENOMEM;
}

/* The CPUs this process may run on (its affinity mask); the caller caps them by the quota. */
static unsigned pick_cpus(int *cpus, unsigned max)
{
    cpu_set_t set;
    unsigned n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE && n < max; i++)
            if (CPU_ISSET(i, &set))
                cpus[n++] = i;
    }
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        for (long i = 0; i < c && n < max; i++)
            cpus[n++] = (int)i;
    }
    return n ? n : 1;
}

void px_server__worker_started(px_server_t *s, int rc)
{
    srv_impl_t *im = s->impl;
    pthread_mutex_lock(&im->lock);
    im->started++;
    if (rc != 0) {
        im->start_failed++;
        im->start_rc = rc;
    }
    pthread_cond_broadcast(&im->cond);
    pthread_mutex_unlock(&im->lock);
}

void px_server__worker_exited(px_server_t *s)
{
    srv_impl_t *im = s->impl;
    pthread_mutex_lock(&im->lock);
    im->exited++;
    pthread_mutex_unlock(&im->lock);
    uv_async_send(&im->wake);
}

static void on_wake(uv_async_t *h)
{
    px_server_t *s = h->data;
    srv_impl_t *im = s->impl;
    pthread_mutex_lock(&im->lock);
    bool all = im->exited == s->workers_cnt;
    pthread_mutex_unlock(&im->lock);
    if (all)
        uv_stop(&im->loop);
}

static void on_drain_timeout(uv_timer_t *t)
{
    px_server_t *s = t->data;
    fprintf(stderr, "weir: drain deadline passed, closing remaining connections\n");
    for (unsigned i = 0; i < s->workers_cnt; i++)
        px_worker_signal(&s->workers[i], PX_WF_FORCE);
}

static void on_signal(uv_signal_t *h, int signum)
{
    px_server_t *s = h->data;
    srv_impl_t *im = s->impl;
    if (__atomic_exchange_n(&s->draining, 1, __ATOMIC_ACQ_REL)) {
        /* A second signal: stop waiting. */
        on_drain_timeout(&im->drain_timer);
        return;
    }
    fprintf(stderr, "weir: %s: draining (deadline %u ms)\n",
            signum == SIGINT ? "SIGINT" : "SIGTERM", s->cfg->drain_timeout_ms);
    for (unsigned i = 0; i < s->workers_cnt; i++)
        px_worker_signal(&s->workers[i], PX_WF_DRAIN);
    uv_timer_start(&im->drain_timer, on_drain_timeout, s->cfg->drain_timeout_ms, 0);
}

static const char *proto_name(const px_listener_cfg_t *l)
{
    return l->tls ? "tls" : "h2c";
}

static void host_print(char *buf, size_t len, const px_addr_t *a, uint16_t port)
{
    bool v6 = strchr(a->host, ':') != NULL;
    snprintf(buf, len, v6 ? "[%s]:%u" : "%s:%u", a->host, port);
}

int px_server__listen(const px_listener_cfg_t *l, unsigned n, int *fds, uint16_t *port_out,
                      char *err, size_t err_len)
{
    MEM_ASSERT(l != NULL);
    MEM_ASSERT(n > 0);
    const px_addr_t *a = &l->addr;
    uint16_t port = a->port;
    for (unsigned i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        px_listener_set_port(&ss, (const struct sockaddr *)&a->sa, a->sa_len, port);
        int fd = px_listener_socket((const struct sockaddr *)&ss, a->sa_len, &port);
        if (fd < 0) {
            snprintf(err, err_len, "listener %s: cannot listen on %s:%u: %s", l->name, a->host,
                     port, strerror(-fd));
            while (i-- > 0) {
                close(fds[i]);
                fds[i] = -1;
            }
            return fd;
        }
        fds[i] = fd;
    }
    *port_out = port;
    return 0;
}

/* Creates every listening socket: the first per listener resolves port 0, the others bind
 * the same port with SO_REUSEPORT. fds[l * n + i] for listener l, worker i. */
static int open_sockets(px_server_t *s, int *fds, unsigned n, char *err, size_t err_len)
{
    const px_config_t *cfg = s->cfg;
    for (size_t l = 0; l < cfg->listeners_cnt; l++) {
        int rc = px_server__listen(&cfg->listeners[l], n, fds + l * n, &s->listener_ports[l], err,
                                   err_len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void close_main_loop(px_server_t *s)
{
    srv_impl_t *im = s->impl;
    uv_close((uv_handle_t *)&im->sigterm, NULL);
    uv_close((uv_handle_t *)&im->sigint, NULL);
    uv_close((uv_handle_t *)&im->drain_timer, NULL);
    uv_close((uv_handle_t *)&im->wake, NULL);
    pthread_mutex_lock(&im->lock);
    im->loop_live = false;
    pthread_mutex_unlock(&im->lock);
    px__reload_stop(s);
    uv_run(&im->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&im->loop);
}

int px_server_run(px_server_t *s, char *err, size_t err_len)
{
    srv_impl_t *im = s->impl;
    /* The start config: valid until the main loop runs, where a reload may free it (after the
     * loop only `nfds` is read). */
    const px_config_t *cfg = s->cfg;
    int rc = 0;
    int *fds = NULL;
    int cpus[1024];
    unsigned ncpu = pick_cpus(cpus, MEM_ARRAY_LEN(cpus));
    /* The quota of our own cgroup or an ancestor (a pod, a systemd unit's CPUQuota=). */
    unsigned quota = px_cgroup_cpu_quota("/sys/fs/cgroup", "/proc/self/cgroup");
    unsigned n = cfg->workers ? cfg->workers : ncpu;
    if (!cfg->workers && quota > 0 && quota < n)
        n = quota;
    MEM_ASSERT(n > 0);

    rc = px_conn_faults_init(err, err_len);
    if (rc != 0)
        return rc;
    for (size_t l = 0; l < cfg->listeners_cnt; l++)
        MEM_ASSERT(!cfg->listeners[l].tls || cfg->listeners[l].tls_ctx != NULL);
    size_t nfds = cfg->listeners_cnt * n;
    fds = mem_malloc(sizeof(int) * (nfds + 1));
    s->workers = mem_calloc(n, sizeof(px_worker_t));
    if (cfg->tenants_cnt > 0)
        s->tenant_table = mem_calloc((size_t)n * cfg->tenants_cnt, sizeof(px_tenant_stats_t));
    if (fds == NULL || s->workers == NULL || (cfg->tenants_cnt > 0 && s->tenant_table == NULL)) {
        snprintf(err, err_len, "out of memory starting %u workers", n);
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nfds; i++)
        fds[i] = -1;
    rc = open_sockets(s, fds, n, err, err_len);
    if (rc != 0)
        goto out_fds;

    uv_loop_init(&im->loop);
    uv_signal_init(&im->loop, &im->sigterm);
    uv_signal_init(&im->loop, &im->sigint);
    uv_timer_init(&im->loop, &im->drain_timer);
    uv_async_init(&im->loop, &im->wake, on_wake);
    im->sigterm.data = im->sigint.data = im->drain_timer.data = im->wake.data = s;

    int wfds[64];
    size_t nl = MEM_MIN(cfg->listeners_cnt, MEM_ARRAY_LEN(wfds));
    for (unsigned i = 0; i < n; i++) {
        for (size_t l = 0; l < nl; l++) {
            wfds[l] = fds[l * n + i];
            fds[l * n + i] = -1; /* the worker owns it now */
        }
        int cpu = (cfg->workers && cfg->workers > ncpu) ? -1 : cpus[i % ncpu];
        rc = px_worker_init(&s->workers[i], s, i, cpu, wfds);
        if (rc == 0 && s->tenant_table != NULL) {
            s->workers[i].tenants = s->tenant_table + (size_t)i * cfg->tenants_cnt;
            s->workers[i].tenant_table = s->tenant_table;
            s->workers[i].tenant_rows = n;
        }
        if (rc == 0)
            rc = px_worker_start(&s->workers[i]);
        if (rc != 0) {
            snprintf(err, err_len, "cannot start worker %u: %s", i, strerror(-rc));
            px_worker_join(&s->workers[i]);
            break;
        }
        s->workers_cnt++;
    }
    pthread_mutex_lock(&im->lock);
    while (im->started < s->workers_cnt)
        pthread_cond_wait(&im->cond, &im->lock);
    if (rc == 0 && im->start_failed) {
        rc = im->start_rc;
        snprintf(err, err_len, "a worker failed to start: %s", strerror(-rc));
    }
    pthread_mutex_unlock(&im->lock);
    if (rc == 0 && cfg->admin.enabled && s->admin_start != NULL) {
        rc = s->admin_start(s);
        if (rc != 0)
            snprintf(err, err_len, "admin: cannot listen on %s:%u: %s", cfg->admin.addr.host,
                     cfg->admin.addr.port, strerror(-rc));
        else
            im->admin_started = true;
    }
    if (rc == 0 && (rc = px_overload_start(s, &im->loop)) != 0)
        snprintf(err, err_len, "overload monitor: %s", strerror(-rc));
    if (rc != 0) {
        __atomic_store_n(&s->draining, 1, __ATOMIC_RELEASE);
        for (unsigned i = 0; i < s->workers_cnt; i++)
            px_worker_signal(&s->workers[i], PX_WF_FORCE);
    } else {
        char hp[300];
        for (size_t l = 0; l < cfg->listeners_cnt; l++) {
            host_print(hp, sizeof(hp), &cfg->listeners[l].addr, s->listener_ports[l]);
            fprintf(stderr, "weir: listener %s %s %s\n", cfg->listeners[l].name,
                    proto_name(&cfg->listeners[l]), hp);
        }
        if (im->admin_started) {
            host_print(hp, sizeof(hp), &cfg->admin.addr, s->admin_port);
            fprintf(stderr, "weir: admin %s\n", hp);
        }
        fprintf(stderr, "weir: %u workers\n", s->workers_cnt);
        __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
        fprintf(stderr, "weir: ready\n");
        fflush(stderr);
        uv_signal_start(&im->sigterm, on_signal, SIGTERM);
        uv_signal_start(&im->sigint, on_signal, SIGINT);
        pthread_mutex_lock(&im->lock);
        im->loop_live = true;
        pthread_mutex_unlock(&im->lock);
        int wrc = px__reload_start(s);
        if (wrc != 0)
            fprintf(stderr, "weir: reload: %s (SIGHUP and POST /reload may not work)\n",
                    strerror(-wrc));
    }
    /* Runs until every worker has exited (after a drain, or at once after a failed start). */
    pthread_mutex_lock(&im->lock);
    bool all = im->exited == s->workers_cnt;
    pthread_mutex_unlock(&im->lock);
    if (!all)
        uv_run(&im->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&im->drain_timer);
    px_overload_stop(s);
    for (unsigned i = 0; i < s->workers_cnt; i++)
        px_worker_join(&s->workers[i]);
    if (im->admin_started)
        s->admin_stop(s);
    im->admin_started = false;
    close_main_loop(s);
    if (rc == 0)
        fprintf(stderr, "weir: stopped\n");
out_fds:
    for (size_t i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
out:
    mem_free(fds);
    return rc;
}

void px_server_free(px_server_t *s)
{
    if (s == NULL)
        return;
    srv_impl_t *im = s->impl;
    if (im) {
        pthread_mutex_destroy(&im->lock);
        pthread_cond_destroy(&im->cond);
    }
    mem_free(im);
    px_overload_free(s);
    mem_free(s->workers);
    mem_free(s->tenant_table);
    mem_free(s->listener_ports);
    px_config_unref(s->cfg); /* the last reference: workers and streams are gone */
    mem_free(s);
}

const px_config_t *px_server_config(px_server_t *s)
{
    srv_impl_t *im = s->impl;
    if (im == NULL) /* a server that never ran (the admin's unit test): nothing swaps cfg */
        return px_config_ref(s->cfg);
    pthread_mutex_lock(&im->lock);
    const px_config_t *cfg = px_config_ref(s->cfg);
    pthread_mutex_unlock(&im->lock);
    return cfg;
}

void px_server_stats(const px_server_t *s, px_stats_t *out)
{
    MEM_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    unsigned n = __atomic_load_n(&s->workers_cnt, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++)
        px_stats_sum(out, &s->workers[i].stats);
}

uint64_t px_server__collect_gen(px_server_t *s)
{
    srv_impl_t *im = s->impl;
    pthread_mutex_lock(&im->lock);
    uint64_t g = im->collect_gen;
    pthread_mutex_unlock(&im->lock);
    return g;
}

void px_server__collect_put(px_server_t *s, uint64_t gen, const px_region_row_t *rows, size_t cnt)
{
    srv_impl_t *im = s->impl;
    pthread_mutex_lock(&im->lock);
    if (gen == im->collect_gen && gen != 0) {
        size_t k = MEM_MIN(cnt, im->collect_max - im->collect_cnt);
        if (k)
            memcpy(im->collect_rows + im->collect_cnt, rows, k * sizeof(*rows));
        im->collect_cnt += k;
        if (im->collect_pending > 0)
            im->collect_pending--;
        pthread_cond_broadcast(&im->cond);
    }
    pthread_mutex_unlock(&im->lock);
}

static int by_bytes_desc(const void *a, const void *b)
{
    const px_region_row_t *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

/* The CLOCK_REALTIME instant `timeout_ms` from now, for pthread_cond_timedwait. */
struct timespec px__srv_deadline_after(uint32_t timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    return dl;
}

size_t px_server_release(px_server_t *s, uint32_t timeout_ms)
{
    srv_impl_t *im = s->impl;
    if (__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE)) {
        struct timespec dl = px__srv_deadline_after(timeout_ms);
        pthread_mutex_lock(&im->lock);
        im->release_pending = s->workers_cnt;
        pthread_mutex_unlock(&im->lock);
        for (unsigned i = 0; i < s->workers_cnt; i++)
            px_worker_signal(&s->workers[i], PX_WF_RELEASE);
        pthread_mutex_lock(&im->lock);
        while (im->release_pending > 0)
            if (pthread_cond_timedwait(&im->cond, &im->lock, &dl) != 0)
                break;
        pthread_mutex_unlock(&im->lock);
    }
    /* What the workers flushed is in the depots now: drain them and release. */
    return mem_release_now();
}

void px__srv_count_down(srv_impl_t *im, unsigned *pending)
{
    pthread_mutex_lock(&im->lock);
    if (*pending > 0)
        (*pending)--;
    pthread_cond_broadcast(&im->cond);
    pthread_mutex_unlock(&im->lock);
}

void px_server__released(px_server_t *s)
{
    srv_impl_t *im = s->impl;
    px__srv_count_down(im, &im->release_pending);
}

size_t px_server_collect_regions(px_server_t *s, px_region_row_t *rows, size_t max,
                                 uint32_t timeout_ms)
{
    srv_impl_t *im = s->impl;
    MEM_ASSERT(rows != NULL || max == 0);
    if (max == 0 || !__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE))
        return 0;
    /* Gather more than asked, so "largest first" is true across workers. */
    size_t cap = MEM_MAX(max, (size_t)1024);
    px_region_row_t *all = mem_malloc_exempt(cap * sizeof(*all));
    if (all == NULL)
        return 0;
    struct timespec dl = px__srv_deadline_after(timeout_ms);
    pthread_mutex_lock(&im->lock);
    while (im->collect_gen != 0) /* one request at a time */
        if (pthread_cond_timedwait(&im->cond, &im->lock, &dl) != 0)
            break;
    if (im->collect_gen != 0) {
        pthread_mutex_unlock(&im->lock);
        mem_free_exempt(all);
        return 0;
    }
    im->collect_gen = ++im->collect_next;
    im->collect_rows = all;
    im->collect_cnt = 0;
    im->collect_max = cap;
    im->collect_pending = s->workers_cnt;
    pthread_mutex_unlock(&im->lock);
    for (unsigned i = 0; i < s->workers_cnt; i++)
        px_worker_signal(&s->workers[i], PX_WF_COLLECT);
    pthread_mutex_lock(&im->lock);
    while (im->collect_pending > 0)
        if (pthread_cond_timedwait(&im->cond, &im->lock, &dl) != 0)
            break;
    size_t got = im->collect_cnt;
    im->collect_gen = 0; /* late answers are dropped */
    im->collect_rows = NULL;
    pthread_cond_broadcast(&im->cond);
    pthread_mutex_unlock(&im->lock);
    qsort(all, got, sizeof(*all), by_bytes_desc);
    size_t k = MEM_MIN(got, max);
    memcpy(rows, all, k * sizeof(*rows));
    mem_free_exempt(all);
    return k;
}
