/*
 * tests/unit/admin/server_test.c: the admin server over real loopback sockets.
 *
 * Starts px_admin_start() for a px_server_t with the built-in default config (no workers) on
 * 127.0.0.1:0, talks HTTP/1.1 to it with plain sockets, and checks routing, status codes,
 * keep-alive and pipelining, the limits (oversized head, malformed requests, connection cap),
 * bearer-token auth, and that stopping it gives back every byte it took from mem/.
 */
#include "mem/base.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "proxy/admin/admin.h"
#include "proxy/config/config.h"
#include "proxy/core/server.h"
#include "tests/harness.h"

static px_server_t g_srv;
static px_config_t *g_cfg;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int connect_admin(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(g_srv.admin_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads until the peer closes or `out` is full, with a 5 s deadline. Returns bytes read. */
static size_t recv_until_close(int fd, char *out, size_t cap)
{
    size_t len = 0;
    uint64_t deadline = now_ms() + 5000;
    while (len + 1 < cap) {
        uint64_t now = now_ms();
        if (now >= deadline)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            break;
        ssize_t n = recv(fd, out + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    return len;
}

/* Sends one raw request on a fresh connection and reads the whole answer (the request must
 * end the connection: Connection: close, or be malformed). Returns the status code or -1. */
static int raw(const char *req, size_t req_len, char *out, size_t cap)
{
    int fd = connect_admin();
    if (fd < 0)
        return -1;
    if (send_all(fd, req, req_len) != 0) {
        close(fd);
        return -1;
    }
    size_t n = recv_until_close(fd, out, cap);
    close(fd);
    int status = -1;
    if (n > 12 && sscanf(out, "HTTP/1.1 %d", &status) != 1)
        status = -1;
    return status;
}

static int get(const char *method, const char *path, const char *extra, char *out, size_t cap)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n\r\n", method,
                     path, extra ? extra : "");
    return raw(req, (size_t)n, out, cap);
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static char g_buf[1 << 20];

TEST(probes)
{
    CHECK_EQ(get("GET", "/healthz", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK_STR(body_of(g_buf), "ok\n");
    CHECK_EQ(get("GET", "/ready", NULL, g_buf, sizeof(g_buf)), 200);
    __atomic_store_n(&g_srv.draining, 1, __ATOMIC_RELEASE);
    CHECK_EQ(get("GET", "/ready", NULL, g_buf, sizeof(g_buf)), 503);
    CHECK(strstr(body_of(g_buf), "draining") != NULL);
    __atomic_store_n(&g_srv.draining, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&g_srv.ready, 0, __ATOMIC_RELEASE);
    CHECK_EQ(get("GET", "/ready", NULL, g_buf, sizeof(g_buf)), 503);
    __atomic_store_n(&g_srv.ready, 1, __ATOMIC_RELEASE);
    CHECK_EQ(get("GET", "/healthz", NULL, g_buf, sizeof(g_buf)), 200);
}

TEST(memory_json_and_prometheus)
{
    CHECK_EQ(get("GET", "/memory", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(g_buf, "Content-Type: application/json") != NULL);
    const char *b = body_of(g_buf);
    CHECK(b[0] == '{');
    const char *keys[] = {"\"allocated\":",
                          "\"heap_size\":",
                          "\"pageheap_free\":",
                          "\"pageheap_unmapped\":",
                          "\"total_thread_cache\":",
                          "\"total_physical_bytes\":",
                          "\"committed\":",
                          "\"live\":",
                          "\"tcache\":",
                          "\"depot\":",
                          "\"free_in_segments\":",
                          "\"classes\":",
                          "\"threads\":",
                          "\"nodes\":",
                          "\"overload_level\":\"normal\""};
    for (size_t i = 0; i < MEM_ARRAY_LEN(keys); i++) {
        if (strstr(b, keys[i]) == NULL) {
            fprintf(stderr, "missing %s\n", keys[i]);
            CHECK(0);
        }
    }
    CHECK_EQ(get("GET", "/memory?format=prometheus", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(g_buf, "text/plain; version=0.0.4") != NULL);
    CHECK(strstr(g_buf, "# TYPE weir_memory_committed_bytes gauge\n") != NULL);
    CHECK(strstr(g_buf, "weir_requests_total") == NULL); /* memory families only */
    CHECK_EQ(get("GET", "/memory?format=xml", NULL, g_buf, sizeof(g_buf)), 400);
    CHECK_EQ(get("GET", "/metrics", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(g_buf, "# TYPE weir_requests_total counter\n") != NULL);
    CHECK(strstr(g_buf, "weir_responses_total{code=\"2xx\"} ") != NULL);
    CHECK(strstr(g_buf, "weir_upstream_errors_total{kind=\"connect_failed\"} ") != NULL);
    CHECK(strstr(g_buf, "weir_overload_actions_total{action=\"refuse_stream\"} ") != NULL);
    CHECK(strstr(g_buf, "weir_overload_level 0\n") != NULL);
    CHECK(strstr(g_buf, "weir_memory_committed_bytes ") != NULL);
}

TEST(other_endpoints)
{
    CHECK_EQ(get("GET", "/stats", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(body_of(g_buf), "\"requests_total\":") != NULL);
    CHECK_EQ(get("GET", "/overload", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(body_of(g_buf), "\"level\":\"normal\"") != NULL);
    CHECK(strstr(body_of(g_buf), "\"refuse_stream\":") != NULL);
    CHECK_EQ(get("GET", "/config_dump", NULL, g_buf, sizeof(g_buf)), 200);
    /* This px_server_t has no workers and no server internals (impl), so the server must not
     * ask workers: with ready = 0 the collector answers no rows at once and the release only
     * releases this thread's cache. The rows and the workers' release are checked end to end
     * by tests/e2e/34-admin-regions.sh and 44-idle-decay.sh. */
    __atomic_store_n(&g_srv.ready, 0, __ATOMIC_RELEASE);
    CHECK_EQ(get("GET", "/memory/regions?top=5", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(body_of(g_buf), "\"regions\":[") != NULL);
    CHECK_EQ(get("POST", "/memory/release", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(body_of(g_buf), "\"released_bytes\":") != NULL);
    __atomic_store_n(&g_srv.ready, 1, __ATOMIC_RELEASE);
    CHECK_EQ(get("GET", "/memory/regions?top=0", NULL, g_buf, sizeof(g_buf)), 400);
    CHECK_EQ(get("GET", "/memory/regions?top=1001", NULL, g_buf, sizeof(g_buf)), 400);
    CHECK_EQ(get("GET", "/memory/regions?top=abc", NULL, g_buf, sizeof(g_buf)), 400);
    CHECK_EQ(get("POST", "/heap_dump?sample_bytes=4096", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(body_of(g_buf), "\"sample_bytes\":4096") != NULL);
    CHECK_EQ(get("POST", "/heap_dump", NULL, g_buf, sizeof(g_buf)), 400);
    CHECK_EQ(get("GET", "/heap_dump", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(body_of(g_buf), "heap profile") != NULL);
    CHECK_EQ(get("GET", "/heap_dump/symbols", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK_EQ(get("GET", "/", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK(strstr(g_buf, "text/html") != NULL);
    CHECK(strstr(body_of(g_buf), "<canvas") != NULL);
    CHECK(strstr(body_of(g_buf), "data-samples") != NULL);
}

TEST(not_found_and_method)
{
    CHECK_EQ(get("GET", "/nope", NULL, g_buf, sizeof(g_buf)), 404);
    const char *b = body_of(g_buf);
    CHECK(strstr(b, "/memory/regions") != NULL);
    CHECK(strstr(b, "/heap_dump") != NULL);
    CHECK(strstr(b, "/metrics") != NULL);
    CHECK_EQ(get("GET", "/memory/release", NULL, g_buf, sizeof(g_buf)), 405);
    CHECK(strstr(g_buf, "\r\nAllow: POST\r\n") != NULL);
    CHECK_EQ(get("DELETE", "/memory", NULL, g_buf, sizeof(g_buf)), 405);
    CHECK(strstr(g_buf, "\r\nAllow: GET\r\n") != NULL);
    CHECK_EQ(get("PUT", "/heap_dump", NULL, g_buf, sizeof(g_buf)), 405);
    CHECK(strstr(g_buf, "\r\nAllow: GET, POST\r\n") != NULL);
}

TEST(keep_alive_pipelined)
{
    int fd = connect_admin();
    REQUIRE(fd >= 0);
    /* Ten pipelined requests in one write: more than the per-connection write queue, so the
     * server must pause parsing and resume as responses drain. The last one closes. */
    char req[4096];
    size_t len = 0;
    for (int i = 0; i < 9; i++)
        len += (size_t)snprintf(req + len, sizeof(req) - len, "GET /healthz HTTP/1.1\r\n\r\n");
    len += (size_t)snprintf(req + len, sizeof(req) - len,
                            "GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n");
    REQUIRE(send_all(fd, req, len) == 0);
    size_t n = recv_until_close(fd, g_buf, sizeof(g_buf));
    close(fd);
    CHECK(n > 0);
    int cnt = 0;
    for (const char *p = g_buf; (p = strstr(p, "HTTP/1.1 200 OK")) != NULL; p++)
        cnt++;
    CHECK_EQ(cnt, 10);
    CHECK(strstr(g_buf, "Connection: keep-alive") != NULL);
    CHECK(strstr(g_buf, "Connection: close") != NULL);
}

/* Reads one response (head + Content-Length body) from a keep-alive connection. Returns the
 * status, or -1. */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    uint64_t deadline = now_ms() + 5000;
    for (;;) {
        buf[len] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (end != NULL && cl != NULL && cl < end) {
            size_t body = strtoul(cl + 16, NULL, 10);
            size_t total = (size_t)(end + 4 - buf) + body;
            if (len >= total) {
                int status = -1;
                if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
                    return -1;
                return len == total ? status : -1; /* nothing may follow one response */
            }
        }
        uint64_t now = now_ms();
        if (now >= deadline || len + 1 >= cap)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            return -1;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
}

#define CLIENTS_CNT    8
#define CLIENT_REQ_CNT 50

static void *client_main(void *arg)
{
    int *failures = arg;
    static const char *const paths[] = {"/memory", "/metrics", "/healthz", "/stats", "/overload"};
    char *buf = malloc(1 << 18);
    int fd = connect_admin();
    if (buf == NULL || fd < 0) {
        (*failures)++;
        free(buf);
        return NULL;
    }
    for (int i = 0; i < CLIENT_REQ_CNT; i++) {
        char req[128];
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n",
                         paths[i % MEM_ARRAY_LEN(paths)]);
        if (send_all(fd, req, (size_t)n) != 0 || read_response(fd, buf, 1 << 18) != 200)
            (*failures)++;
    }
    close(fd);
    free(buf);
    return NULL;
}

/* Several clients at once, each many keep-alive requests on its own connection. */
TEST(concurrent_keep_alive_clients)
{
    pthread_t th[CLIENTS_CNT];
    int failures[CLIENTS_CNT] = {0};
    for (int i = 0; i < CLIENTS_CNT; i++)
        REQUIRE(pthread_create(&th[i], NULL, client_main, &failures[i]) == 0);
    int total = 0;
    for (int i = 0; i < CLIENTS_CNT; i++) {
        pthread_join(th[i], NULL);
        total += failures[i];
    }
    CHECK_EQ(total, 0);
}

TEST(malformed_and_oversized)
{
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "\x01\x02\x03\x04\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    };
    for (size_t i = 0; i < MEM_ARRAY_LEN(bad); i++) {
        int st = raw(bad[i], strlen(bad[i]), g_buf, sizeof(g_buf));
        if (st != 400)
            fprintf(stderr, "case %zu: status %d\n", i, st);
        CHECK_EQ(st, 400);
    }
    /* A head over 8 KiB: one long header. */
    static char big[16384];
    int n = snprintf(big, sizeof(big), "GET /healthz HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', 10000);
    n += 10000;
    n += snprintf(big + n, sizeof(big) - (size_t)n, "\r\n\r\n");
    CHECK_EQ(raw(big, (size_t)n, g_buf, sizeof(g_buf)), 400);
    CHECK(strstr(body_of(g_buf), "8192") != NULL);
    /* A body over the limit. */
    char hdr[256];
    n = snprintf(hdr, sizeof(hdr),
                 "POST /memory/release HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
    memcpy(big, hdr, (size_t)n);
    memset(big + n, 'b', 5000);
    int st = raw(big, (size_t)n + 5000, g_buf, sizeof(g_buf));
    CHECK_EQ(st, 413);
    /* A long request target. */
    n = snprintf(big, sizeof(big), "GET /");
    memset(big + n, 'p', 5000);
    n += 5000;
    n += snprintf(big + n, sizeof(big) - (size_t)n, " HTTP/1.1\r\n\r\n");
    CHECK_EQ(raw(big, (size_t)n, g_buf, sizeof(g_buf)), 400);
    /* The listener keeps serving. */
    CHECK_EQ(get("GET", "/healthz", NULL, g_buf, sizeof(g_buf)), 200);
}

TEST(connection_cap)
{
    int fds[PX_ADMIN_CONNS_MAX + 8];
    size_t open_cnt = 0;
    for (size_t i = 0; i < MEM_ARRAY_LEN(fds); i++) {
        fds[i] = connect_admin();
        if (fds[i] >= 0)
            open_cnt++;
    }
    CHECK_EQ(open_cnt, MEM_ARRAY_LEN(fds));
    /* Past the cap each newcomer evicts the connection that has waited longest for a request
     * (none of these sent one): the first 8 see EOF, the newest is still served. */
    for (size_t i = 0; i < 8; i++) {
        char c;
        struct pollfd pfd = {.fd = fds[i], .events = POLLIN};
        CHECK_EQ(poll(&pfd, 1, 5000), 1);
        CHECK_EQ(recv(fds[i], &c, 1, 0), 0);
    }
    int last = fds[MEM_ARRAY_LEN(fds) - 1];
    const char *req = "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
    CHECK_OK(send_all(last, req, strlen(req)));
    recv_until_close(last, g_buf, sizeof(g_buf));
    CHECK(strncmp(g_buf, "HTTP/1.1 200", 12) == 0);
    for (size_t i = 0; i < MEM_ARRAY_LEN(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    /* Once they are gone, new connections are served again (poll: closes are async). */
    uint64_t deadline = now_ms() + 5000;
    int st = -1;
    while (now_ms() < deadline && (st = get("GET", "/healthz", NULL, g_buf, sizeof(g_buf))) != 200)
        usleep(10000);
    CHECK_EQ(st, 200);
}

#if defined(MEM_FAULT_INJECT) && MEM_FAULT_INJECT
/* Memory runs out: every new mapping and budget charge fails. Each request to every endpoint
 * gets its answer, a 503, or its connection closed; nothing crashes or hangs, the listener
 * keeps accepting, and everything answers 200 again once memory is back. (Whether a given
 * request needs fresh memory depends on what the caches hold, so either outcome is allowed.)
 * The region collector is kept out: this server has no workers (see other_endpoints). */
TEST(out_of_memory)
{
    static const char *const paths[] = {"/memory",
                                        "/metrics",
                                        "/memory?format=prometheus",
                                        "/stats",
                                        "/overload",
                                        "/config_dump",
                                        "/heap_dump",
                                        "/",
                                        "/healthz",
                                        "/memory/regions?top=1000",
                                        "/nope"};
    __atomic_store_n(&g_srv.ready, 0, __ATOMIC_RELEASE);
    uint64_t injected = mem_fault_injected();
    mem_fault_set(0, 1);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < MEM_ARRAY_LEN(paths); i++) {
            int st = get("GET", paths[i], NULL, g_buf, sizeof(g_buf));
            bool ok = st == 200 || st == 404 || st == 503 || st == -1;
            if (!ok)
                fprintf(stderr, "OOM: %s -> %d\n", paths[i], st);
            CHECK(ok);
        }
    }
    mem_fault_set(0, 0);
    fprintf(stderr, "out_of_memory: %llu mappings failed\n",
            (unsigned long long)(mem_fault_injected() - injected));
    uint64_t deadline = now_ms() + 5000;
    int st = -1;
    while (now_ms() < deadline && (st = get("GET", "/healthz", NULL, g_buf, sizeof(g_buf))) != 200)
        usleep(10000);
    CHECK_EQ(st, 200);
    for (size_t i = 0; i < MEM_ARRAY_LEN(paths) - 1; i++) {
        /* /ready is 503 while ready = 0; every other endpoint here answers 200. */
        CHECK_EQ(get("GET", paths[i], NULL, g_buf, sizeof(g_buf)), 200);
    }
    __atomic_store_n(&g_srv.ready, 1, __ATOMIC_RELEASE);
}
#endif

TEST(token_auth)
{
    px_admin_stop(&g_srv);
    char *old = g_cfg->admin.token;
    g_cfg->admin.token = mem_strdup("s3cret-token");
    REQUIRE(g_cfg->admin.token != NULL);
    REQUIRE(px_admin_start(&g_srv) == 0);
    CHECK_EQ(get("GET", "/healthz", NULL, g_buf, sizeof(g_buf)), 401);
    CHECK(strstr(g_buf, "\r\nWWW-Authenticate: Bearer") != NULL);
    CHECK_EQ(get("GET", "/nope", NULL, g_buf, sizeof(g_buf)), 401);
    CHECK_EQ(get("GET", "/memory", NULL, g_buf, sizeof(g_buf)), 401);
    CHECK_EQ(get("GET", "/metrics", NULL, g_buf, sizeof(g_buf)), 401);
    /* The static page loads without the token (it reads the token from its #fragment). */
    CHECK_EQ(get("GET", "/", NULL, g_buf, sizeof(g_buf)), 200);
    CHECK_EQ(get("GET", "/healthz", "Authorization: Bearer wrong\r\n", g_buf, sizeof(g_buf)), 401);
    CHECK_EQ(
        get("GET", "/healthz", "Authorization: Bearer s3cret-token-\r\n", g_buf, sizeof(g_buf)),
        401);
    CHECK_EQ(get("GET", "/healthz", "Authorization: Bearer s3cret-toke\r\n", g_buf, sizeof(g_buf)),
             401);
    CHECK_EQ(get("GET", "/healthz", "Authorization: Bearer s3cret-token\r\n", g_buf, sizeof(g_buf)),
             200);
    CHECK_EQ(get("GET", "/memory", "Authorization: Bearer s3cret-token\r\n", g_buf, sizeof(g_buf)),
             200);
    /* Two Authorization headers are refused even if one is right. */
    CHECK_EQ(get("GET", "/healthz",
                 "Authorization: Bearer s3cret-token\r\nAuthorization: Bearer s3cret-token\r\n",
                 g_buf, sizeof(g_buf)),
             401);
    px_admin_stop(&g_srv);
    mem_free(g_cfg->admin.token);
    g_cfg->admin.token = old;
    REQUIRE(px_admin_start(&g_srv) == 0);
}

TEST(bind_error)
{
    /* A second admin on the same (now fixed) port must fail cleanly with -EADDRINUSE. */
    uint16_t port = g_srv.admin_port;
    px_admin_stop(&g_srv);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    REQUIRE(listen(fd, 1) == 0);
    struct sockaddr_in *cs = (struct sockaddr_in *)&g_cfg->admin.addr.sa;
    cs->sin_port = htons(port);
    CHECK_EQ(px_admin_start(&g_srv), -EADDRINUSE);
    close(fd);
    cs->sin_port = 0;
    REQUIRE(px_admin_start(&g_srv) == 0);
    CHECK(g_srv.admin_port != 0);
}

int main(void)
{
    if (px_config_default(&g_cfg) != 0 || g_cfg == NULL) {
        fprintf(stderr, "px_config_default failed\n");
        return 1;
    }
    /* Loopback, kernel-chosen port. */
    struct sockaddr_in *sa = (struct sockaddr_in *)&g_cfg->admin.addr.sa;
    memset(&g_cfg->admin.addr.sa, 0, sizeof(g_cfg->admin.addr.sa));
    sa->sin_family = AF_INET;
    sa->sin_port = 0;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_cfg->admin.addr.sa_len = sizeof(*sa);
    g_cfg->admin.addr.port = 0;
    g_cfg->admin.enabled = true;
    g_srv.cfg = g_cfg;
    g_srv.ready = 1;

    static mem_stats_t before, after;
    mem_stats_snapshot(&before);
    if (px_admin_start(&g_srv) != 0) {
        fprintf(stderr, "px_admin_start failed\n");
        return 1;
    }
    fprintf(stderr, "admin on 127.0.0.1:%u\n", g_srv.admin_port);
    RUN(probes);
    RUN(memory_json_and_prometheus);
    RUN(other_endpoints);
    RUN(not_found_and_method);
    RUN(keep_alive_pipelined);
    RUN(concurrent_keep_alive_clients);
    RUN(malformed_and_oversized);
    RUN(connection_cap);
#if defined(MEM_FAULT_INJECT) && MEM_FAULT_INJECT
    RUN(out_of_memory);
#endif
    RUN(token_auth);
    RUN(bind_error);
    px_admin_stop(&g_srv);
    px_admin_stop(&g_srv); /* a second stop is a no-op */

    /* Everything the admin server took from mem/ came back: the main thread's live bytes are
     * what they were before it started (the admin thread's own cache stays committed). */
    mem_stats_snapshot(&after);
    th_cur_failed = 0;
    if (after.live != before.live) {
        fprintf(stderr, "live bytes: before %llu, after %llu\n", (unsigned long long)before.live,
                (unsigned long long)after.live);
        th_failed_checks++;
        th_tests_failed++;
    }
    px_config_free(g_cfg);
    return TEST_SUMMARY();
}
