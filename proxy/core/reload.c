/*
 * proxy/core/reload.c: configuration reload. SIGHUP, POST /reload (through
 * px_server_reload_request) and the config file watch (proxy/core/cfgwatch.h) all come here, on the
 * main thread: the file is read again with the same flags and environment, validated whole (the
 * parser's checks, the TLS files of listeners and clusters, the options that need a restart, the
 * new listeners' sockets), and only then handed to every worker (px_worker_reload), each of which
 * switches at a quiescent point of its loop. A file that fails changes nothing.
 *
 * The server owns one reference on the active config; each worker one on the config it routes
 * new streams by; each stream one on the config it was routed by; each upstream pool one on
 * the config of its cluster. The old config is freed when the last of them lets go, and its
 * endpoint health table with it (proxy/upstream/health.h: each config carries its own, which
 * shares the entries of the clusters a reload left unchanged).
 */
#include "proxy/core/server.h"
#include "mem/base.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mem/malloc.h"
#include "proxy/core/cfgwatch.h"
#include "proxy/core/internal.h"
#include "proxy/core/tls.h"
#include "proxy/core/worker.h"
#include "proxy/upstream/health.h"
#include "proxy/upstream/tls.h"

/* How long a reload waits for every worker to take the new config. */
#define PX_RELOAD_APPLY_MS 10000u
/* How long POST /reload waits for the main thread's answer. */
#define PX_RELOAD_REQUEST_MS 30000u

static int hash_write(void *ud, const char *buf, size_t len)
{
    uint64_t *h = ud;
    for (size_t i = 0; i < len; i++)
        *h = (*h ^ (unsigned char)buf[i]) * 0x100000001b3ull;
    return 0;
}

int px_server_config_prepare(px_config_t *cfg, char *err, size_t err_len)
{
    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(err != NULL);
    int rc = px_uptls_config_init(cfg, err, err_len);
    if (rc != 0)
        return rc;
    for (size_t l = 0; l < cfg->listeners_cnt; l++) {
        px_listener_cfg_t *li = &cfg->listeners[l];
        if (!li->tls || li->tls_ctx != NULL)
            continue;
        char why[PX_CONFIG_ERR_MAX];
        li->tls_ctx = px_tls_ctx_new(li->tls_cert, li->tls_key, why, sizeof(why));
        if (li->tls_ctx == NULL) {
            snprintf(err, err_len, "%s: listeners.%s.tls: %s", cfg->source ? cfg->source : "-",
                     li->name, why);
            return -EINVAL;
        }
    }
    cfg->hash = 0xcbf29ce484222325ull;
    return px_config_dump(cfg, hash_write, &cfg->hash);
}

/* Says which option that needs a restart differs between `a` (running) and `b` (new). */
static const char *restart_field(const px_config_t *a, const px_config_t *b)
{
    const px_admin_cfg_t *x = &a->admin, *y = &b->admin;
    if (a->workers != b->workers)
        return "workers";
    if (x->enabled != y->enabled || x->allow_public != y->allow_public)
        return "admin";
    if (strcmp(x->addr.host, y->addr.host) != 0 || x->addr.port != y->addr.port)
        return "admin.address";
    if ((x->token == NULL) != (y->token == NULL) ||
        (x->token != NULL && strcmp(x->token, y->token) != 0))
        return "admin.token";
    if (memcmp(&a->memory, &b->memory, sizeof(a->memory)) != 0)
        return "memory";
    if ((a->access_log == NULL) != (b->access_log == NULL) ||
        (a->access_log != NULL && strcmp(a->access_log, b->access_log) != 0))
        return "access_log";
    /* The tenants' table (proxy/upstream/tenant.h) is sized and numbered at start, and streams
     * in flight count into it by number: the set of tenants is fixed until a restart (their
     * limits may change). */
    if (a->tenants_cnt != b->tenants_cnt)
        return "the memory tenants (routes and clusters with memory: {limit})";
    for (size_t i = 0; i < a->tenants_cnt; i++)
        if (strcmp(a->tenants[i].name, b->tenants[i].name) != 0)
            return "the memory tenants (routes and clusters with memory: {limit})";
    return NULL;
}

static bool same_socket(const px_listener_cfg_t *o, const px_listener_cfg_t *n)
{
    return strcmp(o->addr.host, n->addr.host) == 0 && o->addr.port == n->addr.port &&
           o->tls == n->tls;
}

/* The running listener that listener `n` continues, or -1: the same name, address and protocol;
 * else, for a fixed port, the same address and protocol under another name (a rename keeps the
 * socket, so no connection waiting in its accept queue is lost). Each running listener is
 * continued at most once (`taken`). */
static int kept_listener(const px_config_t *old, const px_listener_cfg_t *n, const bool *taken)
{
    for (size_t i = 0; i < old->listeners_cnt; i++)
        if (!taken[i] && strcmp(old->listeners[i].name, n->name) == 0 &&
            same_socket(&old->listeners[i], n))
            return (int)i;
    for (size_t i = 0; n->addr.port != 0 && i < old->listeners_cnt; i++)
        if (!taken[i] && same_socket(&old->listeners[i], n))
            return (int)i;
    return -1;
}

static void host_port(char *buf, size_t len, const px_addr_t *a, uint16_t port)
{
    bool v6 = strchr(a->host, ':') != NULL;
    snprintf(buf, len, v6 ? "[%s]:%u" : "%s:%u", a->host, port);
}

/* Waits until every worker took the config (or the deadline passed). */
static bool wait_applied(px_srv_impl_t *im)
{
    struct timespec dl = px__srv_deadline_after(PX_RELOAD_APPLY_MS);
    pthread_mutex_lock(&im->lock);
    while (im->reload_pending > 0)
        if (pthread_cond_timedwait(&im->cond, &im->lock, &dl) != 0)
            break;
    bool all = im->reload_pending == 0;
    pthread_mutex_unlock(&im->lock);
    return all;
}

void px_server__reload_applied(px_server_t *s)
{
    px_srv_impl_t *im = s->impl;
    px__srv_count_down(im, &im->reload_pending);
}

/* Checks and builds everything the new config needs, then hands it over. Nothing is changed
 * before the hand-over; nothing can fail after it. */
static int reload_apply(px_server_t *s, px_config_t *n, char *err, size_t err_len)
{
    px_srv_impl_t *im = s->impl;
    const px_config_t *old = s->cfg;
    unsigned nw = s->workers_cnt;
    size_t nl = n->listeners_cnt;
    int rc = -ENOMEM;
    const char *field = restart_field(old, n);
    if (field != NULL) {
        snprintf(err, err_len,
                 "%s: %s changed: it needs a restart (the running value is kept; revert it to "
                 "reload the rest)",
                 n->source ? n->source : "-", field);
        return -EINVAL;
    }
    /* The new config's endpoint health, built before anyone can see the config: a cluster that
     * px_config_cluster_same as a running one shares its entry, so a reload brings no dead or
     * ejected endpoint back; freed with `n` if the reload fails below. */
    if (px_health_attach(n, old) < 0) {
        snprintf(err, err_len, "out of memory preparing the reload");
        return -ENOMEM;
    }
    int *keep = mem_calloc(nl + 1, sizeof(int));
    int *fds = mem_malloc((nl * nw + 1) * sizeof(int));
    int *wfds = mem_malloc((nl + 1) * sizeof(int));
    uint16_t *ports = mem_calloc(nl + 1, sizeof(uint16_t));
    px_worker_reload_t **msgs = mem_calloc(nw + 1, sizeof(*msgs));
    bool *taken = mem_calloc(old->listeners_cnt + 1, sizeof(bool));
    if (keep == NULL || fds == NULL || wfds == NULL || ports == NULL || msgs == NULL ||
        taken == NULL) {
        snprintf(err, err_len, "out of memory preparing the reload");
        goto out;
    }
    for (size_t i = 0; i < nl * nw; i++)
        fds[i] = -1;
    for (size_t j = 0; j < nl; j++) {
        keep[j] = kept_listener(old, &n->listeners[j], taken);
        if (keep[j] >= 0) {
            taken[keep[j]] = true;
            ports[j] = s->listener_ports[keep[j]];
            continue;
        }
        rc = px_server__listen(&n->listeners[j], nw, fds + j * nw, &ports[j], err, err_len);
        if (rc != 0)
            goto out;
    }
    for (unsigned i = 0; i < nw; i++) {
        for (size_t j = 0; j < nl; j++)
            wfds[j] = fds[j * nw + i];
        msgs[i] = px_worker_reload_new(n, keep, wfds);
        if (msgs[i] == NULL) {
            snprintf(err, err_len, "out of memory preparing the reload");
            rc = -ENOMEM;
            goto out;
        }
        for (size_t j = 0; j < nl; j++)
            fds[j * nw + i] = -1; /* the message has it */
    }
    /* The hand-over. */
    n->version = old->version + 1;
    pthread_mutex_lock(&im->lock);
    s->cfg = n;
    im->reload_pending = nw;
    pthread_mutex_unlock(&im->lock);
    uint16_t *old_ports = s->listener_ports;
    s->listener_ports = ports;
    ports = NULL;
    for (unsigned i = 0; i < nw; i++) {
        px_worker_reload(&s->workers[i], msgs[i]);
        msgs[i] = NULL;
    }
    char hp[300];
    for (size_t j = 0; j < nl; j++) {
        if (keep[j] >= 0 && strcmp(old->listeners[keep[j]].name, n->listeners[j].name) != 0)
            fprintf(stderr, "weir: listener %s is now %s (same socket)\n",
                    old->listeners[keep[j]].name, n->listeners[j].name);
        if (keep[j] >= 0)
            continue;
        host_port(hp, sizeof(hp), &n->listeners[j].addr, s->listener_ports[j]);
        fprintf(stderr, "weir: listener %s %s %s\n", n->listeners[j].name,
                n->listeners[j].tls ? "tls" : "h2c", hp);
    }
    for (size_t i = 0; i < old->listeners_cnt; i++)
        if (!taken[i])
            fprintf(stderr, "weir: listener %s closed\n", old->listeners[i].name);
    mem_free(old_ports);
    if (!wait_applied(im))
        fprintf(stderr, "weir: reload: a worker has not taken the new config after %u ms\n",
                PX_RELOAD_APPLY_MS);
    px_config_unref(old); /* the server's reference; streams and pools may hold theirs */
    rc = 0;
out:
    for (unsigned i = 0; msgs != NULL && i < nw; i++)
        px_worker_reload_free(msgs[i]);
    for (size_t i = 0; fds != NULL && i < nl * nw; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    mem_free(taken);
    mem_free(msgs);
    mem_free(ports);
    mem_free(wfds);
    mem_free(fds);
    mem_free(keep);
    return rc;
}

static void watch_update(px_server_t *s);

int px_server_reload(px_server_t *s, const char *trigger, char *err, size_t err_len)
{
    MEM_ASSERT(s != NULL && trigger != NULL);
    MEM_ASSERT(err != NULL && err_len > 0);
    px_srv_impl_t *im = s->impl;
    px_config_t *n = NULL;
    int rc;
    err[0] = '\0';
    pthread_mutex_lock(&im->lock);
    unsigned pending = im->reload_pending;
    pthread_mutex_unlock(&im->lock);
    if (__atomic_load_n(&s->draining, __ATOMIC_ACQUIRE)) {
        snprintf(err, err_len, "draining: no reload");
        rc = -ESHUTDOWN;
    } else if (pending > 0) {
        snprintf(err, err_len, "the last reload is still being applied by %u workers", pending);
        rc = -EBUSY;
    } else if (s->argc == 0 || s->cfg->source == NULL) {
        snprintf(err, err_len, "no configuration file to reload (weir was started without -c)");
        rc = -EINVAL;
    } else {
        px_cli_action_t action = PX_CLI_RUN;
        uint64_t fh = 0;
        (void)px_cfgwatch_file_hash(s->cfg->source, &fh);
        rc = px_config_from_args(s->argc, s->argv, &action, &n, err, err_len);
        if (rc == 0)
            rc = px_server_config_prepare(n, err, err_len);
        if (rc == 0)
            rc = reload_apply(s, n, err, err_len);
        if (rc == 0) {
            n = NULL; /* the server's now */
            im->file_hash = fh;
        }
        if (rc == -ENOMEM && err[0] == '\0')
            snprintf(err, err_len, "out of memory while reloading");
    }
    px_config_free(n);
    if (rc != 0) {
        __atomic_fetch_add(&s->reloads_failed, 1, __ATOMIC_RELAXED);
        fprintf(stderr, "weir: reload (%s) failed, configuration unchanged: %s\n", trigger, err);
        return rc;
    }
    __atomic_fetch_add(&s->reloads_ok, 1, __ATOMIC_RELAXED);
    const px_config_t *c = s->cfg;
    fprintf(stderr,
            "weir: reload (%s): version %llu hash %016llx: %zu listeners, %zu clusters, %zu "
            "routes\n",
            trigger, (unsigned long long)c->version, (unsigned long long)c->hash, c->listeners_cnt,
            c->clusters_cnt, c->routes_cnt);
    watch_update(s);
    return 0;
}

/* ---- triggers ------------------------------------------------------------------------------ */

static void on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    char err[PX_CONFIG_ERR_MAX];
    (void)px_server_reload(h->data, "SIGHUP", err, sizeof(err));
}

static void on_file_changed(void *ud)
{
    char err[PX_CONFIG_ERR_MAX];
    (void)px_server_reload(ud, "file changed", err, sizeof(err));
}

static void on_reload_async(uv_async_t *h)
{
    px_server_t *s = h->data;
    px_srv_impl_t *im = s->impl;
    pthread_mutex_lock(&im->lock);
    bool want = im->reload_req.busy && !im->reload_req.done;
    uint64_t gen = im->reload_req.gen;
    pthread_mutex_unlock(&im->lock);
    if (!want)
        return;
    char err[PX_CONFIG_ERR_MAX];
    int rc = px_server_reload(s, "POST /reload", err, sizeof(err));
    pthread_mutex_lock(&im->lock);
    if (im->reload_req.gen == gen) {
        im->reload_req.rc = rc;
        snprintf(im->reload_req.err, sizeof(im->reload_req.err), "%s", err);
        im->reload_req.done = true;
        pthread_cond_broadcast(&im->cond);
    }
    pthread_mutex_unlock(&im->lock);
}

int px_server_reload_request(px_server_t *s, char *err, size_t err_len)
{
    MEM_ASSERT(s != NULL);
    MEM_ASSERT(err != NULL && err_len > 0);
    px_srv_impl_t *im = s->impl;
    struct timespec dl = px__srv_deadline_after(PX_RELOAD_REQUEST_MS);
    pthread_mutex_lock(&im->lock);
    /* One request at a time: a second waits for the first (its answer is its own). */
    while (im->reload_req.busy)
        if (pthread_cond_timedwait(&im->cond, &im->lock, &dl) != 0)
            break;
    if (im->reload_req.busy || !im->loop_live) {
        pthread_mutex_unlock(&im->lock);
        snprintf(err, err_len, "%s", im->loop_live ? "a reload is running" : "not running");
        return im->loop_live ? -EBUSY : -ESHUTDOWN;
    }
    im->reload_req.busy = true;
    im->reload_req.done = false;
    im->reload_req.gen = ++im->reload_gen;
    uv_async_send(&im->reload);
    while (!im->reload_req.done && im->loop_live)
        if (pthread_cond_timedwait(&im->cond, &im->lock, &dl) != 0)
            break;
    int rc = -ETIMEDOUT;
    snprintf(err, err_len, "no answer from the main thread");
    if (im->reload_req.done) {
        rc = im->reload_req.rc;
        snprintf(err, err_len, "%s", im->reload_req.err);
    }
    im->reload_req.busy = false;
    im->reload_req.gen = ++im->reload_gen; /* a late answer is dropped */
    pthread_cond_broadcast(&im->cond);
    pthread_mutex_unlock(&im->lock);
    return rc;
}

/* Starts or stops the file watch to match the active config's reload.watch. */
static void watch_update(px_server_t *s)
{
    px_srv_impl_t *im = s->impl;
    const px_config_t *c = s->cfg;
    bool want = c->source != NULL && c->reload.watch && s->argc > 0;
    if (!want && im->watch != NULL) {
        px_cfgwatch_stop(im->watch);
        im->watch = NULL;
        fprintf(stderr, "weir: config watch off\n");
    } else if (want && im->watch == NULL) {
        bool inotify = false;
        int rc = px_cfgwatch_start(&im->loop, c->source, im->file_hash, c->reload.poll_interval_ms,
                                   c->reload.watch_poll, on_file_changed, s, &im->watch, &inotify);
        if (rc != 0)
            fprintf(stderr, "weir: config watch: %s: %s (reload with SIGHUP or POST /reload)\n",
                    c->source, uv_strerror(rc));
        else if (inotify)
            fprintf(stderr, "weir: config watch %s (inotify on its folder)\n", c->source);
        else
            fprintf(stderr, "weir: config watch %s (stat poll every %u ms)\n", c->source,
                    (unsigned)c->reload.poll_interval_ms);
    } else if (im->watch != NULL) {
        px_cfgwatch_set_hash(im->watch, im->file_hash);
    }
}

int px__reload_start(px_server_t *s)
{
    px_srv_impl_t *im = s->impl;
    int rc = uv_signal_init(&im->loop, &im->sighup);
    if (rc != 0)
        return rc;
    im->sighup.data = s;
    rc = uv_async_init(&im->loop, &im->reload, on_reload_async);
    if (rc != 0) {
        uv_close((uv_handle_t *)&im->sighup, NULL);
        return rc;
    }
    im->reload.data = s;
    rc = uv_signal_start(&im->sighup, on_sighup, SIGHUP);
    if (s->cfg->source != NULL)
        (void)px_cfgwatch_file_hash(s->cfg->source, &im->file_hash);
    watch_update(s);
    return rc;
}

void px__reload_stop(px_server_t *s)
{
    px_srv_impl_t *im = s->impl;
    if (im->sighup.data == s) {
        uv_close((uv_handle_t *)&im->sighup, NULL);
        uv_close((uv_handle_t *)&im->reload, NULL);
        im->sighup.data = NULL;
    }
    px_cfgwatch_stop(im->watch);
    im->watch = NULL;
}
