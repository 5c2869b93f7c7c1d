/*
 * proxy/main.c: weir's entry point: memory library and allocator hooks first, then the
 * command line, then one of: run the proxy, check a config, probe a running weir's /ready
 * (or /healthz).
 *
 * Exit codes: 0 success (and after a graceful drain), 1 health probe failed or run-time
 * failure, 2 bad command line or configuration.
 */
#include "mem/base.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "mem/budget.h"
#include "mem/heapprof.h"
#include "mem/mem.h"
#include "proxy/admin/admin.h"
#include "proxy/config/config.h"
#include "proxy/core/alloc.h"
#include "proxy/core/overload.h"
#include "proxy/core/server.h"

static void apply_memory(const px_memory_cfg_t *m)
{
    /* An explicit size, else a share of the process's own cgroup limit (v2 or v1, found
     * through /proc/self/cgroup), else off: proxy/core/overload.c. */
    (void)px_overload_apply_limit(m);
    if (m->decay_ms)
        mem_budget_set_decay_ms(m->decay_ms);
    mem_heapprof_set_interval(m->sample_bytes);
}

/* `weir health`: GET `path` (/ready, or /healthz with --live) on the admin address; 0 iff it
 * answers 200. /ready turns 503 while weir drains, /healthz does not: a liveness probe on /ready
 * would restart a pod in the middle of its drain. */
static int health(const px_config_t *cfg, const char *path)
{
    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(path != NULL && path[0] == '/');
    const px_addr_t *a = &cfg->admin.addr;
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "weir: health: socket: %s\n", strerror(errno));
        return 1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&a->sa, a->sa_len) != 0) {
        fprintf(stderr, "weir: health: cannot connect to %s:%u: %s\n", a->host, a->port,
                strerror(errno));
        close(fd);
        return 1;
    }
    char req[512];
    /* RFC 9110 7.2: an IPv6 literal in Host is bracketed. */
    bool v6 = strchr(a->host, ':') != NULL && a->host[0] != '[';
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\n%s%s%sConnection: close\r\n\r\n", path,
                     v6 ? "[" : "", a->host, v6 ? "]" : "", a->port,
                     cfg->admin.token ? "Authorization: Bearer " : "",
                     cfg->admin.token ? cfg->admin.token : "", cfg->admin.token ? "\r\n" : "");
    if (n <= 0 || n >= (int)sizeof(req) || write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "weir: health: cannot send the request\n");
        close(fd);
        return 1;
    }
    char resp[64];
    size_t got = 0;
    while (got < sizeof(resp) - 1) {
        ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "weir: health: no HTTP answer from %s:%u\n", a->host, a->port);
        return 1;
    }
    printf("weir: health: %s:%u %s -> %d\n", a->host, a->port, path, status);
    return status == 200 ? 0 : 1;
}

int main(int argc, char **argv)
{
    /* Unbuffered-by-line stderr: tests read the start-up lines as they appear. */
    setvbuf(stderr, NULL, _IOLBF, 0);
    mem_config_t mc;
    mem_config_default(&mc);
    int rc = mem_init(&mc);
    if (rc != 0) {
        fprintf(stderr, "weir: memory init failed: %s\n", strerror(-rc));
        return 1;
    }
    /* Before any libuv, nghttp2 or OpenSSL allocation. */
    rc = px_alloc_install();
    if (rc != 0) {
        fprintf(stderr, "weir: cannot install allocator hooks: %s\n", strerror(-rc));
        return 1;
    }
    char err[PX_CONFIG_ERR_MAX];
    err[0] = '\0';
    px_cli_action_t action = PX_CLI_RUN;
    px_config_t *cfg = NULL;
    rc = px_config_from_args(argc, argv, &action, &cfg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "weir: %s\n", err[0] ? err : strerror(-rc));
        return 2;
    }
    if (cfg != NULL && (action == PX_CLI_CHECK || action == PX_CLI_RUN) &&
        (rc = px_server_config_prepare(cfg, err, sizeof(err))) != 0) {
        /* A TLS listener's or cluster's certificate, key or CA that OpenSSL cannot load: the
         * same checks a reload makes. */
        fprintf(stderr, "weir: %s\n", err);
        px_config_free(cfg);
        return 2;
    }
    switch (action) {
    case PX_CLI_HELP:
    case PX_CLI_VERSION:
        px_config_free(cfg);
        return 0;
    case PX_CLI_CHECK:
        printf("weir: configuration OK: %s\n", cfg && cfg->source ? cfg->source : "(built-in)");
        px_config_free(cfg);
        return 0;
    case PX_CLI_HEALTH:
    case PX_CLI_HEALTH_LIVE:
        rc = health(cfg, action == PX_CLI_HEALTH_LIVE ? "/healthz" : "/ready");
        px_config_free(cfg);
        return rc;
    case PX_CLI_RUN:
        break;
    }
    MEM_ASSERT(cfg != NULL);
    apply_memory(&cfg->memory);
    signal(SIGPIPE, SIG_IGN);
    px_server_t *s = NULL;
    rc = px_server_new(cfg, &s);
    if (rc != 0) {
        fprintf(stderr, "weir: %s\n", strerror(-rc));
        px_config_free(cfg);
        return 1;
    }
    s->admin_start = px_admin_start;
    s->admin_stop = px_admin_stop;
    s->argc = argc; /* a reload parses them again */
    s->argv = argv;
    rc = px_server_run(s, err, sizeof(err));
    px_server_free(s); /* cfg freed */
    if (rc != 0) {
        fprintf(stderr, "weir: %s\n", err[0] ? err : strerror(-rc));
        return 1;
    }
    return 0;
}
