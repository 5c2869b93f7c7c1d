/*
 * tests/unit/config/config_test.c: weir's configuration: defaults, the full example file, every
 * kind of bad file (exact FILE:LINE:COL: FIELD: messages), value parsers, flags, environment,
 * --upstream, actions and the YAML dump.
 *
 * Bad files live in tests/e2e/configs/bad-*.yaml; each starts with "# expect: L:C: FIELD: ..."
 * and both this test and tests/e2e/10-config-errors.sh hold the loader to it. Every test ends
 * with zero live mem/ bytes after px_config_free(). Single-threaded.
 */
#include "mem/base.h"
#include "proxy/config/config.h"
#include "proxy/config/internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "tests/harness.h"

static char configs_dir[1024]; /* tests/e2e/configs, found from __FILE__ */
static char tmp_dir[256];
static mem_stats_t stats; /* large: not on the stack */
static char err[PX_CONFIG_ERR_MAX];

static uint64_t live_bytes(void)
{
    mem_stats_snapshot(&stats);
    return stats.live;
}

#define CHECK_NO_LEAK() CHECK_EQ(live_bytes(), 0)

/* Writes `text` to a file in the temp folder and returns its path (static buffer). */
static const char *write_tmp(const char *name, const char *text)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    f = fopen(path, "w");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads `text` as file `name`; returns the error text (empty on success). */
static int load_text(const char *name, const char *text, px_config_t **cfg)
{
    const char *p = write_tmp(name, text);
    if (!p)
        return -EIO;
    return px_config_load_file(p, cfg, err, sizeof(err));
}

/* Checks that loading `text` fails with exactly "PATH:" followed by `want` as a prefix. */
static void expect_err(const char *text, const char *want, int line)
{
    char full[1024];
    px_config_t *cfg = NULL;
    int rc = load_text("case.yaml", text, &cfg);

    snprintf(full, sizeof(full), "%s/case.yaml:%s", tmp_dir, want);
    if (rc >= 0 || cfg != NULL || strncmp(err, full, strlen(full)) != 0) {
        fprintf(stderr, "config_test.c:%d: want prefix \"%s\"\n  got rc=%d \"%s\"\n", line, full,
                rc, err);
        th_failed_checks++;
        th_cur_failed = 1;
    }
    px_config_free(cfg);
}
#define EXPECT_ERR(text, want) expect_err(text, want, __LINE__)

static const char *addr_ip(const px_addr_t *a, char *buf, size_t len)
{
    if (a->sa.ss_family == AF_INET)
        return inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, buf, len);
    return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, buf, len);
}

static uint16_t addr_port(const px_addr_t *a)
{
    if (a->sa.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
}

TEST(defaults)
{
    px_config_t *cfg = NULL;
    char ip[64];

    REQUIRE(px_config_default(&cfg) == 0);
    CHECK(cfg->source == NULL);
    CHECK_EQ(cfg->listeners_cnt, 1);
    CHECK_STR(cfg->listeners[0].addr.host, "127.0.0.1");
    CHECK_EQ(cfg->listeners[0].addr.port, 8080);
    CHECK_EQ(addr_port(&cfg->listeners[0].addr), 8080);
    CHECK_STR(addr_ip(&cfg->listeners[0].addr, ip, sizeof(ip)), "127.0.0.1");
    CHECK(!cfg->listeners[0].tls);
    CHECK_EQ(cfg->admin.addr.port, 9901);
    CHECK(cfg->admin.enabled);
    CHECK(cfg->admin.token == NULL);
    CHECK_EQ(cfg->clusters_cnt, 0);
    REQUIRE(cfg->routes_cnt == 1);
    CHECK(cfg->routes[0].cluster == NULL);
    CHECK_EQ(cfg->routes[0].direct_status, 200);
    CHECK_STR(cfg->routes[0].path_prefix, "/");
    CHECK(cfg->routes[0].authority == NULL);
    CHECK(strstr(cfg->routes[0].direct_body, "--upstream h2c://127.0.0.1:9000") != NULL);
    CHECK(strstr(cfg->routes[0].direct_body, "weir -c") != NULL);
    CHECK_EQ(cfg->routes[0].direct_body_len, strlen(cfg->routes[0].direct_body));
    CHECK_STR(cfg->routes[0].direct_content_type, "text/plain");
    CHECK_EQ(cfg->limits.max_concurrent_streams, 100);
    CHECK_EQ(cfg->limits.max_header_list_bytes, 65536);
    CHECK_EQ(cfg->limits.max_continuations, 8);
    CHECK_EQ(cfg->limits.stream_buffer_bytes, 65536);
    CHECK_EQ(cfg->limits.conn_bytes_max, 4 << 20);
    CHECK_EQ(cfg->limits.stream_bytes_max, 1 << 20);
    CHECK_EQ(cfg->limits.idle_timeout_ms, 120000);
    CHECK_EQ(cfg->limits.header_timeout_ms, 10000);
    CHECK_EQ(cfg->limits.stream_idle_timeout_ms, 60000);
    CHECK_EQ(cfg->limits.send_timeout_ms, 30000);
    CHECK_EQ(cfg->limits.max_connections, 10000);
    CHECK_EQ(cfg->limits.rst_per_sec, 100);
    CHECK_EQ(cfg->limits.control_frames_per_sec, 100);
    CHECK_EQ(cfg->memory.limit_bytes, 0);
    CHECK(fabs(cfg->memory.limit_cgroup_fraction - 0.9) < 1e-9);
    CHECK(fabs(cfg->memory.elevated - 0.80) < 1e-9);
    CHECK(fabs(cfg->memory.critical - 0.95) < 1e-9);
    CHECK(fabs(cfg->memory.hysteresis - 0.05) < 1e-9);
    CHECK_EQ(cfg->memory.decay_ms, 1000);
    CHECK_EQ(cfg->memory.sample_bytes, 524288);
    CHECK_EQ(cfg->workers, 0);
    CHECK(cfg->access_log == NULL);
    CHECK_EQ(cfg->drain_timeout_ms, 30000);
    CHECK_EQ(cfg->x_forwarded_for, PX_XFF_APPEND);
    CHECK(cfg->add_via);
    CHECK_STR(cfg->server_name, "weir");
    px_config_free(cfg);
    CHECK_NO_LEAK();
}

TEST(full_example)
{
    char path[1100], cert[1100], ip[64];
    px_config_t *cfg = NULL;
    const px_cluster_cfg_t *b, *l;

    snprintf(path, sizeof(path), "%s/full.yaml", configs_dir);
    snprintf(cert, sizeof(cert), "%s/certs/test-cert.pem", configs_dir);
    if (px_config_load_file(path, &cfg, err, sizeof(err)) != 0)
        fprintf(stderr, "full.yaml: %s\n", err);
    REQUIRE(cfg != NULL);
    CHECK_STR(cfg->source, path);
    REQUIRE(cfg->listeners_cnt == 2);
    CHECK_STR(cfg->listeners[0].name, "main");
    CHECK_EQ(cfg->listeners[0].addr.port, 8080);
    CHECK(!cfg->listeners[0].tls);
    CHECK_STR(cfg->listeners[1].name, "secure");
    CHECK_STR(cfg->listeners[1].addr.host, "::1");
    CHECK_EQ(cfg->listeners[1].addr.sa.ss_family, AF_INET6);
    CHECK_EQ(addr_port(&cfg->listeners[1].addr), 8443);
    CHECK(cfg->listeners[1].tls);
    CHECK_STR(cfg->listeners[1].tls_cert, cert); /* relative to the file's folder */

    REQUIRE(cfg->clusters_cnt == 4);
    b = &cfg->clusters[0];
    l = &cfg->clusters[1];
    CHECK_STR(b->name, "backend");
    CHECK_EQ(b->proto, PX_PROTO_H2C);
    CHECK_EQ(b->lb, PX_LB_ROUND_ROBIN);
    REQUIRE(b->endpoints_cnt == 2);
    CHECK_STR(addr_ip(&b->endpoints[0], ip, sizeof(ip)), "127.0.0.1");
    CHECK_EQ(addr_port(&b->endpoints[0]), 9000);
    CHECK_STR(b->endpoints[1].host, "localhost");
    CHECK_EQ(addr_port(&b->endpoints[1]), 9001);
    CHECK_EQ(b->connect_timeout_ms, 2000);
    CHECK_EQ(b->request_timeout_ms, 30000);
    CHECK_EQ(b->idle_timeout_ms, 60000);
    CHECK_EQ(b->max_streams_per_conn, 100);
    CHECK_EQ(b->max_conns_per_endpoint, 64);
    CHECK_EQ(b->retries_max, 2);
    CHECK_EQ(b->retry_budget_percent, 20);
    CHECK_EQ(b->retry_min_concurrency, 3);
    CHECK(b->health_check.enabled);
    CHECK_STR(b->health_check.path, "/healthz");
    CHECK_EQ(b->health_check.interval_ms, 5000);
    CHECK_EQ(b->health_check.unhealthy_threshold, 3);
    CHECK(b->outlier.enabled);
    CHECK_EQ(b->outlier.consecutive_5xx, 5);
    CHECK_EQ(b->outlier.base_ejection_ms, 30000);
    CHECK_EQ(b->outlier.max_ejection_percent, 10);
    CHECK_STR(l->name, "legacy");
    CHECK(!l->health_check.enabled);
    CHECK(!l->outlier.enabled);
    CHECK_EQ(l->proto, PX_PROTO_HTTP1);
    CHECK_EQ(l->lb, PX_LB_LEAST_REQUEST);
    CHECK(!b->tls);
    CHECK(!l->tls);
    {
        const px_cluster_cfg_t *s2 = &cfg->clusters[2], *p2 = &cfg->clusters[3];
        CHECK_STR(s2->name, "secure-api");
        CHECK_EQ(s2->proto, PX_PROTO_H2C); /* h2 framing */
        CHECK(s2->tls);
        CHECK(s2->tls_verify);
        CHECK_STR(s2->tls_sni, "api.internal");
        CHECK_STR(s2->tls_ca, cert); /* relative to the file's folder */
        CHECK(s2->tls_cert == NULL);
        CHECK_STR(p2->name, "partner");
        CHECK_EQ(p2->proto, PX_PROTO_HTTP1);
        CHECK(p2->tls);
        CHECK(p2->tls_verify);
        CHECK(p2->tls_ca == NULL && p2->tls_sni == NULL);
        CHECK_STR(p2->tls_cert, cert);
        CHECK(p2->tls_key != NULL);
    }

    REQUIRE(cfg->routes_cnt == 4);
    CHECK_STR(cfg->routes[0].authority, "api.example.com");
    CHECK_STR(cfg->routes[0].path_prefix, "/v1/");
    CHECK(cfg->routes[0].cluster == b);
    CHECK_STR(cfg->routes[1].authority, "*.legacy.example.com");
    CHECK_STR(cfg->routes[1].path_prefix, "/");
    CHECK(cfg->routes[1].cluster == l);
    CHECK(cfg->routes[2].cluster == NULL);
    CHECK_EQ(cfg->routes[2].direct_status, 200);
    CHECK_STR(cfg->routes[2].direct_body, "ok\n");
    CHECK_EQ(cfg->routes[2].direct_body_len, 3);
    CHECK_STR(cfg->routes[2].direct_content_type, "text/plain");
    CHECK(cfg->routes[3].cluster == b);

    CHECK_EQ(cfg->admin.addr.port, 9901);
    CHECK_STR(cfg->admin.token, "change-me");
    CHECK(cfg->admin.enabled);
    CHECK_EQ(cfg->workers, 0);
    CHECK_EQ(cfg->memory.limit_bytes, 512u << 20);
    CHECK_EQ(cfg->memory.decay_ms, 1000);
    CHECK_EQ(cfg->memory.sample_bytes, 512 * 1024);
    CHECK_EQ(cfg->limits.max_header_list_bytes, 65536);
    CHECK_EQ(cfg->limits.conn_bytes_max, 4 << 20);
    CHECK_EQ(cfg->limits.idle_timeout_ms, 120000);
    CHECK_STR(cfg->access_log, "-");
    CHECK_EQ(cfg->drain_timeout_ms, 30000);
    CHECK_STR(cfg->server_name, "weir");
    px_config_free(cfg);
    CHECK_NO_LEAK();
}

TEST(small_files)
{
    px_config_t *cfg = NULL;

    /* An empty file is the defaults. */
    REQUIRE(load_text("empty.yaml", "", &cfg) == 0);
    CHECK_EQ(cfg->listeners_cnt, 1);
    CHECK_EQ(cfg->routes_cnt, 1);
    CHECK_EQ(cfg->routes[0].direct_status, 200);
    px_config_free(cfg);

    /* headers.x_forwarded_for: the three modes, and the old booleans. */
    {
        static const struct {
            const char *text;
            px_xff_t want;
        } xff[] = {
            {"headers: {x_forwarded_for: append}\n", PX_XFF_APPEND},
            {"headers: {x_forwarded_for: replace}\n", PX_XFF_REPLACE},
            {"headers: {x_forwarded_for: off}\n", PX_XFF_OFF},
            {"headers: {x_forwarded_for: true}\n", PX_XFF_APPEND},
            {"headers: {x_forwarded_for: false}\n", PX_XFF_OFF},
        };
        for (size_t i = 0; i < MEM_ARRAY_LEN(xff); i++) {
            REQUIRE(load_text("xff.yaml", xff[i].text, &cfg) == 0);
            CHECK_EQ(cfg->x_forwarded_for, xff[i].want);
            CHECK(!cfg->keep_escaped_slashes);
            px_config_free(cfg);
        }
        REQUIRE(load_text("slashes.yaml", "escaped_slashes: keep\n", &cfg) == 0);
        CHECK(cfg->keep_escaped_slashes);
        px_config_free(cfg);
    }

    REQUIRE(load_text("some.yaml",
                      "workers: 3\n"
                      "memory: {limit: 75%, sample_bytes: 0}\n"
                      "limits: {stream_memory: 64k, connection_memory: 1m, send_timeout: 0}\n"
                      "access_log: /tmp/weir-access.log\n"
                      "headers: {via: off}\n"
                      "server_name: edge-1\n"
                      "clusters: []\n"
                      "routes:\n"
                      "  - match: {authority: API.Example.COM}\n"
                      "    direct_response: {status: 503, body: \"a\\0b\"}\n",
                      &cfg) == 0);
    CHECK_EQ(cfg->workers, 3);
    CHECK_EQ(cfg->memory.limit_bytes, 0);
    CHECK(fabs(cfg->memory.limit_cgroup_fraction - 0.75) < 1e-9);
    CHECK_EQ(cfg->memory.sample_bytes, 0);
    CHECK_EQ(cfg->limits.stream_bytes_max, 65536);
    CHECK_EQ(cfg->limits.conn_bytes_max, 1 << 20);
    CHECK_EQ(cfg->limits.send_timeout_ms, 0); /* 0 = off */
    CHECK_STR(cfg->access_log, "/tmp/weir-access.log");
    CHECK_EQ(cfg->x_forwarded_for, PX_XFF_APPEND);
    CHECK(!cfg->add_via);
    CHECK_STR(cfg->server_name, "edge-1");
    CHECK_EQ(cfg->clusters_cnt, 0);
    REQUIRE(cfg->routes_cnt == 1);
    CHECK_STR(cfg->routes[0].authority, "api.example.com");
    CHECK_EQ(cfg->routes[0].direct_status, 503);
    CHECK_EQ(cfg->routes[0].direct_body_len, 3);
    CHECK(memcmp(cfg->routes[0].direct_body, "a\0b", 3) == 0);
    px_config_free(cfg);

    REQUIRE(load_text("off.yaml", "memory: {limit: off}\n", &cfg) == 0);
    CHECK_EQ(cfg->memory.limit_bytes, 0);
    CHECK(cfg->memory.limit_cgroup_fraction == 0.0);
    px_config_free(cfg);
    CHECK_NO_LEAK();
}

/* Every tests/e2e/configs/bad-*.yaml fails with the message its "# expect:" line states. */
TEST(bad_files)
{
    DIR *d = opendir(configs_dir);
    struct dirent *de;
    int seen = 0;

    REQUIRE(d != NULL);
    while ((de = readdir(d)) != NULL) {
        char path[1400], line[512], want[1600];
        px_config_t *cfg = NULL;
        FILE *f;
        int rc;

        if (strncmp(de->d_name, "bad-", 4) != 0 || !strstr(de->d_name, ".yaml"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", configs_dir, de->d_name);
        f = fopen(path, "r");
        REQUIRE(f != NULL);
        line[0] = '\0';
        if (!fgets(line, sizeof(line), f))
            line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\n")] = '\0';
        CHECK(strncmp(line, "# expect: ", 10) == 0);
        snprintf(want, sizeof(want), "%s:%s", path, line + 10);
        rc = px_config_load_file(path, &cfg, err, sizeof(err));
        CHECK(rc < 0);
        CHECK(cfg == NULL);
        if (strncmp(err, want, strlen(want)) != 0) {
            fprintf(stderr, "%s:\n  want prefix \"%s\"\n  got         \"%s\"\n", de->d_name, want,
                    err);
            th_failed_checks++;
            th_cur_failed = 1;
        }
        seen++;
    }
    closedir(d);
    CHECK(seen >= 10);
    CHECK_NO_LEAK();
}

TEST(error_positions)
{
    /* Line and column point at the offending value, 1-based. */
    EXPECT_ERR("clusters:\n"
               "  - name: a\n"
               "    endpoints: [\"127.0.0.1:9000\", 127.0.0.1:0]\n"
               "routes: [{cluster: a}]\n",
               "3:35: clusters[0].endpoints[1]: port 0 is out of range (1-65535)");
    EXPECT_ERR("listeners:\n  - address: 127.0.0.1:8080\n    name: main\n  - address: x:1\n"
               "    name: main\n",
               "4:14: listeners[1].address: cannot resolve 'x'");
    EXPECT_ERR("listeners:\n  - {address: 127.0.0.1:8080, name: main}\n"
               "  - {address: 127.0.0.1:8081, name: main}\n",
               "3:37: listeners[1].name: duplicate listener name 'main' (also listeners[0])");
    EXPECT_ERR("listeners:\n  - {address: 127.0.0.1:8080}\n  - {address: 127.0.0.1:8080}\n",
               "3:15: listeners[1].address: address '127.0.0.1:8080' is already used by "
               "listeners[0]");
    EXPECT_ERR("listeners:\n  - address: \"::1:80\"\n",
               "2:14: listeners[0].address: '::1:80': write IPv6 addresses in brackets");
    EXPECT_ERR("listeners:\n  - address: 127.0.0.1\n",
               "2:14: listeners[0].address: '127.0.0.1' has no port (use HOST:PORT)");
    EXPECT_ERR("listeners: []\n", "1:12: listeners: the list is empty (give at least one item)");
    EXPECT_ERR("workers: many\n", "1:10: workers: 'many' is not a worker count (use auto or");
    EXPECT_ERR("workers: 5000\n", "1:10: workers: 5000 is out of range (1-1024)");
    EXPECT_ERR("wrokers: 2\n",
               "1:1: wrokers: unknown key 'wrokers' (allowed: listeners, clusters, routes, "
               "admin, workers, memory, limits, access_log, drain_timeout, headers, "
               "escaped_slashes, server_name, reload)");
    EXPECT_ERR("workers: 2\nworkers: 3\n", "2:1: workers: duplicate key (first at line 1)");
    /* reload: (issue 17) */
    EXPECT_ERR("reload:\n  watch: maybe\n", "2:10: reload.watch: ");
    EXPECT_ERR("reload: {poll_interval: 5ms}\n",
               "1:25: reload.poll_interval: duration '5ms' is too short");
    EXPECT_ERR("reload: {wach: true}\n", "1:10: reload.wach: unknown key 'wach'");
    EXPECT_ERR("escaped_slashes: decode\n",
               "1:18: escaped_slashes: unknown escaped_slashes 'decode' (use reject or keep)");
    EXPECT_ERR("headers:\n  x_forwarded_for: prepend\n",
               "2:20: headers.x_forwarded_for: unknown x_forwarded_for 'prepend' (use append, "
               "replace or off)");
    EXPECT_ERR("- a\n- b\n", "1:1: (top level): expected a mapping, got a list");
    EXPECT_ERR("admin: 127.0.0.1:9901\n", "1:8: admin: expected a mapping, got a scalar");
    EXPECT_ERR("admin: {address: [1, 2]}\n", "1:18: admin.address: expected a value, got a list");
    EXPECT_ERR("admin: {enabled: maybe}\n",
               "1:18: admin.enabled: 'maybe' is not a boolean (use true or false)");
    EXPECT_ERR("admin: {token: }\n", "1:16: admin.token: value is missing");
    EXPECT_ERR("limits:\n  connection_memory: 64k\n  stream_memory: 128k\n",
               "3:18: limits.stream_memory: stream_memory (131072) must not exceed "
               "connection_memory (65536)");
    EXPECT_ERR("limits: {max_header_list_size: 512}\n",
               "1:32: limits.max_header_list_size: size 512 is out of range (1024-16777216)");
    EXPECT_ERR("limits: {stream_buffer: 10%}\n",
               "1:25: limits.stream_buffer: a percentage is not allowed here");
    EXPECT_ERR("limits: {idle_timeout: 2 days}\n",
               "1:24: limits.idle_timeout: '2 days' is not a duration (use 250ms, 2s, 1m or 1h)");
    EXPECT_ERR("limits: {send_timeout: 30}\n",
               "1:24: limits.send_timeout: duration '30' needs a unit (ms, s, m or h)");
    EXPECT_ERR("limits: {send_timeout: 25h}\n", "1:24: limits.send_timeout: ");
    EXPECT_ERR("memory: {limit: 1k}\n",
               "1:17: memory.limit: memory limit 1024 is too small (at least 16MiB)");
    EXPECT_ERR("memory: {limit: lots}\n", "1:17: memory.limit: 'lots' is not a memory limit");
    EXPECT_ERR("memory: {elevated: 1.5}\n", "1:20: memory.elevated: 1.5 is out of range (0-1)");
    EXPECT_ERR("memory: {hysteresis: 0.9}\n",
               "1:22: memory.hysteresis: hysteresis (0.9) must be below elevated (0.8)");
    EXPECT_ERR("routes:\n  - match: {path_prefix: v1}\n    direct_response: {status: 200}\n",
               "2:26: routes[0].match.path_prefix: path_prefix 'v1' must start with '/'");
    EXPECT_ERR("routes:\n  - direct_response: {status: 99}\n",
               "2:31: routes[0].direct_response.status: 99 is out of range (200-599)");
    EXPECT_ERR("routes:\n  - direct_response: {body: x}\n",
               "2:22: routes[0].direct_response: missing required key 'status'");
    EXPECT_ERR("routes:\n  - match: {path_prefix: /}\n",
               "2:5: routes[0]: missing required key 'cluster' or 'direct_response'");
    EXPECT_ERR("routes:\n  - cluster: nope\n",
               "2:14: routes[0].cluster: unknown cluster 'nope' (no clusters are defined)");
    EXPECT_ERR("clusters:\n  - name: a\n    protocol: h3\n    endpoints: [127.0.0.1:1]\n",
               "3:15: clusters[0].protocol: unknown protocol 'h3' (use h2c, h2 or http1)");
    /* Cluster tls: (issue 16 part 2). */
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n    tls: {}\n",
               "4:10: clusters[0].tls: tls needs 'protocol: h2' (HTTP/2 over TLS) or "
               "'protocol: http1'");
    EXPECT_ERR("clusters:\n  - name: a\n    protocol: h2c\n    endpoints: [127.0.0.1:1]\n"
               "    tls: {}\n",
               "5:10: clusters[0].tls: protocol h2c is cleartext HTTP/2; say 'protocol: h2'");
    EXPECT_ERR(
        "clusters:\n  - name: a\n    protocol: h2\n    endpoints: [127.0.0.1:1]\n"
        "    tls: {alpn: h2}\n",
        "5:11: clusters[0].tls.alpn: unknown key 'alpn' (allowed: sni, verify, ca, cert, key)");
    EXPECT_ERR("clusters:\n  - name: a\n    protocol: http1\n    endpoints: [127.0.0.1:1]\n"
               "    tls: {verify: maybe}\n",
               "5:19: clusters[0].tls.verify:");
    EXPECT_ERR("clusters:\n  - name: a\n    protocol: http1\n    endpoints: [127.0.0.1:1]\n"
               "    tls: {sni: 'a b'}\n",
               "5:16: clusters[0].tls.sni: sni 'a b' is not a DNS host name");
    EXPECT_ERR("clusters:\n  - name: a\n    protocol: http1\n    endpoints: [127.0.0.1:1]\n"
               "    tls: {ca: /nonexistent/ca.pem}\n",
               "5:15: clusters[0].tls.ca: ");
    EXPECT_ERR("clusters:\n  - name: a\n    protocol: http1\n    endpoints: [127.0.0.1:1]\n"
               "    tls: {ca: /etc/hostname}\n",
               "5:15: clusters[0].tls.ca: '/etc/hostname' holds no PEM certificate");
    EXPECT_ERR("clusters:\n  - name: a\n    protocol: http1\n    endpoints: [127.0.0.1:1]\n"
               "    tls: {key: /etc/hostname}\n",
               "5:16: clusters[0].tls.key: '/etc/hostname' holds no PEM private key");
    EXPECT_ERR("clusters:\n  - name: a\n    protocol: http1\n    endpoints: [127.0.0.1:1]\n"
               "    tls: {cert: /etc/hostname}\n",
               "5:17: clusters[0].tls.cert: '/etc/hostname' holds no PEM certificate");
    /* ca-certificates' bundle: a PEM certificate (the first of many) without its key. */
    EXPECT_ERR("clusters:\n  - name: a\n    protocol: http1\n    endpoints: [127.0.0.1:1]\n"
               "    tls: {cert: /etc/ssl/certs/ca-certificates.crt}\n",
               "5:17: clusters[0].tls: cert needs key");
    EXPECT_ERR("clusters:\n  - name: a b\n    endpoints: [127.0.0.1:1]\n",
               "2:11: clusters[0].name: name 'a b' may only contain");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
               "    connect_timeout: 10m\n",
               "4:22: clusters[0].connect_timeout: duration '10m' is too long (at most "
               "300000ms)");
    /* health_check, outlier_detection, retries (issue 17). */
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
               "    health_check: {interval: 1s}\n",
               "4:19: clusters[0].health_check: missing required key 'path'");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
               "    health_check: {path: healthz}\n",
               "4:26: clusters[0].health_check.path: path 'healthz' must start with '/'");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
               "    health_check: {path: /, expected_status: 101}\n",
               "4:46: clusters[0].health_check.expected_status: 101 is out of range (200-599)");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
               "    health_check: {path: /, timeout: 0}\n",
               "4:38: clusters[0].health_check.timeout: duration '0' is too short");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
               "    outlier_detection: {consecutive_5xx: 3, ejection: 1s}\n",
               "4:45: clusters[0].outlier_detection.ejection: unknown key 'ejection'");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
               "    outlier_detection: {base_ejection_time: 2h}\n",
               "4:45: clusters[0].outlier_detection.base_ejection_time: duration '2h' is too long");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
               "    retries: {max: 17}\n",
               "4:20: clusters[0].retries.max: 17 is out of range (0-16)");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n"
               "    connect_retries: 1\n    retries: {max: 2}\n",
               "5:14: clusters[0].retries: give either 'retries' or 'connect_retries'");
    EXPECT_ERR("server_name: \"we ir\"\n", "1:14: server_name: 'we ir' may only contain");
    EXPECT_ERR("workers: 2\n---\nworkers: 3\n",
               "3:1: (top level): only one YAML document is allowed");
    EXPECT_ERR("listeners:\n\t- address: 127.0.0.1:1\n", "2:1: syntax: found character that");
    EXPECT_ERR("a: [1, 2\n", "2:1: syntax: did not find expected ',' or ']' while parsing a flow "
                             "sequence (at 1:4)");
    CHECK_NO_LEAK();
}

TEST(missing_file)
{
    px_config_t *cfg = NULL;
    int rc = px_config_load_file("/nonexistent/weir.yaml", &cfg, err, sizeof(err));

    CHECK_EQ(rc, -ENOENT);
    CHECK(cfg == NULL);
    CHECK_STR(err, "/nonexistent/weir.yaml: cannot open: No such file or directory");
    CHECK_NO_LEAK();
}

TEST(value_parsers)
{
    char why[PX_CFG_WHY_MAX];
    size_t sz = 0;
    uint64_t ms = 0;
    double fr = 0;
    px_addr_t a;

    CHECK_EQ(px_parse_size("1048576", &sz), 0);
    CHECK_EQ(sz, 1048576);
    CHECK_EQ(px_parse_size("64MiB", &sz), 0);
    CHECK_EQ(sz, 64u << 20);
    CHECK_EQ(px_parse_size("512k", &sz), 0);
    CHECK_EQ(sz, 512u << 10);
    CHECK_EQ(px_parse_size("512KB", &sz), 0);
    CHECK_EQ(sz, 512u << 10);
    CHECK_EQ(px_parse_size("1g", &sz), 0);
    CHECK_EQ(sz, 1u << 30);
    CHECK_EQ(px_parse_size("2GiB", &sz), 0);
    CHECK_EQ(sz, (size_t)2 << 30);
    CHECK_EQ(px_parse_size("100b", &sz), 0);
    CHECK_EQ(sz, 100);
    CHECK_EQ(px_parse_size("90%", &sz), 1);
    CHECK_EQ(sz, 90);
    CHECK_EQ(px_parse_size("101%", &sz), -ERANGE);
    CHECK_EQ(px_parse_size("", &sz), -EINVAL);
    CHECK_EQ(px_parse_size("k", &sz), -EINVAL);
    CHECK_EQ(px_parse_size("-1", &sz), -EINVAL);
    CHECK_EQ(px_parse_size("1.5m", &sz), -EINVAL);
    CHECK_EQ(px_parse_size("12 MiB", &sz), -EINVAL);
    CHECK_EQ(px_parse_size("64XB", &sz), -EINVAL);
    CHECK_EQ(px_parse_size("99999999999999999999", &sz), -EINVAL);
    CHECK_EQ(px_parse_size("99999999999T", &sz), -ERANGE);

    CHECK_EQ(px__cfg_parse_duration("250ms", 1000000, &ms, why, sizeof(why)), 0);
    CHECK_EQ(ms, 250);
    CHECK_EQ(px__cfg_parse_duration("2s", 1000000, &ms, why, sizeof(why)), 0);
    CHECK_EQ(ms, 2000);
    CHECK_EQ(px__cfg_parse_duration("1m", 1000000, &ms, why, sizeof(why)), 0);
    CHECK_EQ(ms, 60000);
    CHECK_EQ(px__cfg_parse_duration("1h", 86400000, &ms, why, sizeof(why)), 0);
    CHECK_EQ(ms, 3600000);
    CHECK_EQ(px__cfg_parse_duration("0", 10, &ms, why, sizeof(why)), 0);
    CHECK_EQ(ms, 0);
    CHECK_EQ(px__cfg_parse_duration("5", 1000000, &ms, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "needs a unit") != NULL);
    CHECK_EQ(px__cfg_parse_duration("2h", 3600000, &ms, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "too long") != NULL);
    CHECK_EQ(px__cfg_parse_duration("1d", 1u << 31, &ms, why, sizeof(why)), -EINVAL);
    CHECK_EQ(px__cfg_parse_duration("s", 1000, &ms, why, sizeof(why)), -EINVAL);
    CHECK_EQ(px__cfg_parse_duration("1.5s", 10000, &ms, why, sizeof(why)), -EINVAL);

    CHECK_EQ(px__cfg_parse_fraction("0.8", 0, 1, &fr, why, sizeof(why)), 0);
    CHECK(fabs(fr - 0.8) < 1e-12);
    CHECK_EQ(px__cfg_parse_fraction("nan", 0, 1, &fr, why, sizeof(why)), -EINVAL);
    CHECK_EQ(px__cfg_parse_fraction("0.8x", 0, 1, &fr, why, sizeof(why)), -EINVAL);

    CHECK_EQ(px__cfg_parse_addr("[::1]:8080", false, &a, why, sizeof(why)), 0);
    CHECK_STR(a.host, "::1");
    CHECK_EQ(a.port, 8080);
    CHECK_EQ(a.sa.ss_family, AF_INET6);
    CHECK_EQ(a.sa_len, sizeof(struct sockaddr_in6));
    CHECK_EQ(px__cfg_parse_addr("localhost:80", false, &a, why, sizeof(why)), 0);
    CHECK_EQ(addr_port(&a), 80);
    CHECK_EQ(px__cfg_parse_addr("127.0.0.1:0", true, &a, why, sizeof(why)), 0);
    CHECK_EQ(px__cfg_parse_addr("127.0.0.1:0", false, &a, why, sizeof(why)), -EINVAL);
    CHECK_STR(why, "port 0 is out of range (1-65535)");
    CHECK_EQ(px__cfg_parse_addr("127.0.0.1:65536", true, &a, why, sizeof(why)), -EINVAL);
    CHECK_STR(why, "port 65536 is out of range (0-65535)");
    CHECK_EQ(px__cfg_parse_addr("127.0.0.1:http", true, &a, why, sizeof(why)), -EINVAL);
    CHECK_EQ(px__cfg_parse_addr("[::1:80", true, &a, why, sizeof(why)), -EINVAL);
    CHECK_EQ(px__cfg_parse_addr(":80", true, &a, why, sizeof(why)), -EINVAL);
    CHECK_NO_LEAK();
}

/* Runs px_config_from_args on a NULL-terminated list. */
static int run_args(px_cli_action_t *action, px_config_t **cfg, char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return px_config_from_args(argc, argv, action, cfg, err, sizeof(err));
}

static void clear_env(void)
{
    unsetenv("WEIR_LISTEN");
    unsetenv("WEIR_ADMIN");
    unsetenv("WEIR_ADMIN_TOKEN");
    unsetenv("WEIR_MEMORY_LIMIT");
    unsetenv("WEIR_WORKERS");
    unsetenv("WEIR_ADMIN_PUBLIC");
}

TEST(flags_override_file)
{
    const char *p = write_tmp("flags.yaml", "listeners: [{address: 127.0.0.1:7001}]\n"
                                            "admin: {address: 127.0.0.1:7002, token: filetok}\n"
                                            "workers: 2\n"
                                            "memory: {limit: 1GiB}\n");
    char path[512];
    px_cli_action_t act;
    px_config_t *cfg = NULL;

    REQUIRE(p != NULL);
    snprintf(path, sizeof(path), "%s", p);
    clear_env();
    {
        char *argv[] = {"weir", "-c", path, NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(act, PX_CLI_RUN);
        CHECK_EQ(cfg->workers, 2);
        CHECK_EQ(cfg->listeners[0].addr.port, 7001);
        CHECK_STR(cfg->admin.token, "filetok");
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir",
                        "--config",
                        path,
                        "--listen",
                        "127.0.0.1:0",
                        "--listen",
                        "[::1]:7005",
                        "--workers=3",
                        "--admin",
                        "127.0.0.1:0",
                        "--admin-token",
                        "flagtok",
                        "--memory-limit",
                        "50%",
                        "--access-log",
                        "-",
                        NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(act, PX_CLI_RUN);
        CHECK_EQ(cfg->workers, 3);
        REQUIRE(cfg->listeners_cnt == 2);
        CHECK_EQ(cfg->listeners[0].addr.port, 0);
        CHECK_STR(cfg->listeners[1].addr.host, "::1");
        CHECK_STR(cfg->listeners[1].name, "listener1");
        CHECK_EQ(cfg->admin.addr.port, 0);
        CHECK_STR(cfg->admin.token, "flagtok");
        CHECK_EQ(cfg->memory.limit_bytes, 0);
        CHECK(fabs(cfg->memory.limit_cgroup_fraction - 0.5) < 1e-9);
        CHECK_STR(cfg->access_log, "-");
        CHECK_STR(cfg->source, path);
        px_config_free(cfg);
    }
    CHECK_NO_LEAK();
}

TEST(env_between_file_and_flags)
{
    const char *p = write_tmp("env.yaml", "listeners: [{address: 127.0.0.1:7001}]\n"
                                          "workers: 2\n");
    char path[512];
    px_cli_action_t act;
    px_config_t *cfg = NULL;

    REQUIRE(p != NULL);
    snprintf(path, sizeof(path), "%s", p);
    clear_env();
    setenv("WEIR_WORKERS", "5", 1);
    setenv("WEIR_LISTEN", "127.0.0.1:7010,127.0.0.1:7011", 1);
    setenv("WEIR_ADMIN", "127.0.0.1:7012", 1);
    setenv("WEIR_ADMIN_TOKEN", "envtok", 1);
    setenv("WEIR_MEMORY_LIMIT", "256MiB", 1);
    {
        char *argv[] = {"weir", "-c", path, NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(cfg->workers, 5);
        REQUIRE(cfg->listeners_cnt == 2);
        CHECK_EQ(cfg->listeners[0].addr.port, 7010);
        CHECK_EQ(cfg->listeners[1].addr.port, 7011);
        CHECK_EQ(cfg->admin.addr.port, 7012);
        CHECK_STR(cfg->admin.token, "envtok");
        CHECK_EQ(cfg->memory.limit_bytes, 256u << 20);
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir",    "-c",       path,          "--workers",
                        "7",       "--listen", "127.0.0.1:0", "--admin-token",
                        "flagtok", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(cfg->workers, 7);
        REQUIRE(cfg->listeners_cnt == 1);
        CHECK_EQ(cfg->listeners[0].addr.port, 0);
        CHECK_EQ(cfg->admin.addr.port, 7012); /* no flag: env still wins over the file */
        CHECK_STR(cfg->admin.token, "flagtok");
        px_config_free(cfg);
    }
    setenv("WEIR_WORKERS", "lots", 1);
    {
        char *argv[] = {"weir", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK(cfg == NULL);
        CHECK_STR(err, "WEIR_WORKERS: 'lots' is not a worker count (use auto or 1-1024)");
    }
    clear_env();
    setenv("WEIR_LISTEN", "127.0.0.1:1,,127.0.0.1:2", 1);
    {
        char *argv[] = {"weir", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK(strncmp(err, "WEIR_LISTEN: empty address", 26) == 0);
    }
    setenv("WEIR_LISTEN", "", 1); /* empty = unset */
    {
        char *argv[] = {"weir", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(cfg->listeners[0].addr.port, 8080);
        px_config_free(cfg);
    }
    clear_env();
    CHECK_NO_LEAK();
}

TEST(upstream_flag)
{
    char path[1100];
    px_cli_action_t act;
    px_config_t *cfg = NULL;

    clear_env();
    snprintf(path, sizeof(path), "%s/full.yaml", configs_dir);
    {
        char *argv[] = {"weir",
                        "-c",
                        path,
                        "--upstream",
                        "h2c://127.0.0.1:9000",
                        "--upstream",
                        "h2c://localhost:9001/",
                        NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        REQUIRE(cfg->clusters_cnt == 1);
        CHECK_STR(cfg->clusters[0].name, "upstream");
        CHECK_EQ(cfg->clusters[0].proto, PX_PROTO_H2C);
        CHECK_EQ(cfg->clusters[0].lb, PX_LB_ROUND_ROBIN);
        REQUIRE(cfg->clusters[0].endpoints_cnt == 2);
        CHECK_EQ(addr_port(&cfg->clusters[0].endpoints[0]), 9000);
        CHECK_STR(cfg->clusters[0].endpoints[1].host, "localhost");
        CHECK_EQ(cfg->clusters[0].connect_timeout_ms, 2000);
        REQUIRE(cfg->routes_cnt == 1);
        CHECK(cfg->routes[0].cluster == &cfg->clusters[0]);
        CHECK_STR(cfg->routes[0].path_prefix, "/");
        CHECK(cfg->routes[0].authority == NULL);
        CHECK_EQ(cfg->listeners_cnt, 2); /* the file's listeners stay */
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir", "--upstream", "http://127.0.0.1:8000", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(cfg->clusters[0].proto, PX_PROTO_HTTP1);
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir",       "--upstream",         "h2c://127.0.0.1:1",
                        "--upstream", "http://127.0.0.1:2", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK(cfg == NULL);
        CHECK(strncmp(err, "--upstream: 'http://127.0.0.1:2' mixes h2c:// and http://", 55) == 0);
    }
    {
        char *argv[] = {"weir", "--upstream", "ftp://127.0.0.1:1", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK(strncmp(err, "--upstream: 'ftp://127.0.0.1:1' must start with h2c://,", 54) == 0);
    }
    {
        /* TLS schemes: https:// is HTTP/1.1 over TLS, h2:// HTTP/2 over TLS; verification is on
         * with the system bundle and SNI from each endpoint by default. */
        char *argv[] = {"weir", "--upstream", "https://127.0.0.1:8443", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(cfg->clusters[0].proto, PX_PROTO_HTTP1);
        CHECK(cfg->clusters[0].tls);
        CHECK(cfg->clusters[0].tls_verify);
        CHECK(cfg->clusters[0].tls_ca == NULL);
        px_config_free(cfg);
        char *argv2[] = {"weir", "--upstream", "h2://127.0.0.1:8443", NULL};
        REQUIRE(run_args(&act, &cfg, argv2) == 0);
        CHECK_EQ(cfg->clusters[0].proto, PX_PROTO_H2C);
        CHECK(cfg->clusters[0].tls);
        px_config_free(cfg);
        char *argv3[] = {"weir",       "--upstream",        "h2://127.0.0.1:1",
                         "--upstream", "h2c://127.0.0.1:2", NULL};
        CHECK(run_args(&act, &cfg, argv3) < 0);
        CHECK_STR(err, "--upstream: 'h2c://127.0.0.1:2' mixes h2:// and h2c:// (one cluster "
                       "speaks one protocol)");
    }
    {
        char *argv[] = {"weir", "--upstream", "h2c://127.0.0.1:99999", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--upstream: port 99999 is out of range (1-65535)");
    }
    CHECK_NO_LEAK();
}

TEST(flag_errors)
{
    px_cli_action_t act;
    px_config_t *cfg = NULL;
    char cert[1100], key[1100];

    clear_env();
    snprintf(cert, sizeof(cert), "%s/certs/test-cert.pem", configs_dir);
    snprintf(key, sizeof(key), "%s/certs/test-key.pem", configs_dir);
    {
        char *argv[] = {"weir", "--listen", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--listen: needs a value (see weir --help)");
    }
    {
        char *argv[] = {"weir", "--lisen", "127.0.0.1:1", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--lisen: unknown option (see weir --help)");
    }
    {
        char *argv[] = {"weir", "--help=yes", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--help: takes no value");
    }
    {
        char *argv[] = {"weir", "-x", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "-x: unknown option (see weir --help)");
    }
    {
        char *argv[] = {"weir", "stray", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "'stray': unexpected argument (see weir --help)");
    }
    {
        char *argv[] = {"weir", "--listen", "127.0.0.1", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--listen: '127.0.0.1' has no port (use HOST:PORT)");
    }
    {
        char *argv[] = {"weir", "--workers", "0", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--workers: 0 is out of range (1-1024)");
    }
    {
        char *argv[] = {"weir", "--memory-limit", "12parsecs", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK(strncmp(err, "--memory-limit: '12parsecs' is not a memory limit", 48) == 0);
    }
    {
        char *argv[] = {"weir", "--admin-token", "a b", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--admin-token: token must not contain spaces or controls");
    }
    {
        char *argv[] = {"weir", "--tls-cert", cert, "--tls-key", key, NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--tls-cert: applies to the --listen listeners; give --listen too");
    }
    {
        char *argv[] = {"weir", "--listen", "127.0.0.1:0", "--tls-cert", cert, NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--tls-cert: needs --tls-key too");
    }
    {
        char *argv[] = {"weir", "--listen",  "127.0.0.1:0",          "--tls-cert",
                        cert,   "--tls-key", "/nonexistent/key.pem", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--tls-key: cannot read '/nonexistent/key.pem': No such file or "
                       "directory");
    }
    {
        char *argv[] = {"weir", "--listen",  "127.0.0.1:0", "--tls-cert",
                        cert,   "--tls-key", key,           NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK(cfg->listeners[0].tls);
        CHECK_STR(cfg->listeners[0].tls_cert, cert);
        CHECK_STR(cfg->listeners[0].tls_key, key);
        px_config_free(cfg);
    }
    {
        char bad[1100];
        char *argv[] = {"weir", "-c", bad, "--listen", "127.0.0.1:0", NULL};
        snprintf(bad, sizeof(bad), "%s/bad-port.yaml", configs_dir);
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK(cfg == NULL);
        CHECK(strncmp(err, bad, strlen(bad)) == 0);
        CHECK(strstr(err, ":8:9: clusters[0].endpoints[1]: port 70000") != NULL);
    }
    CHECK_NO_LEAK();
}

TEST(actions)
{
    char good[1100], bad[1100];
    px_cli_action_t act;
    px_config_t *cfg = NULL;

    clear_env();
    snprintf(good, sizeof(good), "%s/minimal.yaml", configs_dir);
    snprintf(bad, sizeof(bad), "%s/bad-syntax.yaml", configs_dir);
    {
        char *argv[] = {"weir", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(act, PX_CLI_RUN);
        CHECK(cfg->source == NULL);
        CHECK_EQ(cfg->routes[0].direct_status, 200);
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir", "--check-config", good, NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(act, PX_CLI_CHECK);
        CHECK_STR(cfg->source, good);
        CHECK_EQ(cfg->listeners[0].addr.port, 0);
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir", "--check-config", bad, NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_EQ(act, PX_CLI_CHECK);
        CHECK(cfg == NULL);
        CHECK(strstr(err, ":5:15: syntax: mapping values are not allowed") != NULL);
    }
    {
        char *argv[] = {"weir", "--check-config", good, "-c", bad, NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK(strncmp(err, "--check-config: names", 21) == 0);
    }
    {
        char *argv[] = {"weir", "health", "127.0.0.1:9911", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(act, PX_CLI_HEALTH);
        CHECK_EQ(cfg->admin.addr.port, 9911);
        px_config_free(cfg);
    }
    setenv("WEIR_ADMIN", "127.0.0.1:9922", 1);
    {
        char *argv[] = {"weir", "health", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(act, PX_CLI_HEALTH);
        CHECK_EQ(cfg->admin.addr.port, 9922);
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir", "health", "--live", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(act, PX_CLI_HEALTH_LIVE);
        CHECK_EQ(cfg->admin.addr.port, 9922);
        px_config_free(cfg);
    }
    clear_env();
    {
        char *argv[] = {"weir", "--live", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "--live: only with 'health' (weir health --live)");
    }
    {
        char *argv[] = {"weir", "health", "a:1", "b:2", NULL};
        CHECK(run_args(&act, &cfg, argv) < 0);
        CHECK_STR(err, "'b:2': unexpected argument (see weir --help)");
    }
    {
        char *argv[] = {"weir", "--help", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(act, PX_CLI_HELP);
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir", "--version", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_EQ(act, PX_CLI_VERSION);
        px_config_free(cfg);
    }
    CHECK_NO_LEAK();
}

typedef struct sbuf_s {
    char data[16384];
    size_t len;
} sbuf_t;

static int on_write(void *ud, const char *buf, size_t len)
{
    sbuf_t *b = ud;
    if (b->len + len >= sizeof(b->data))
        return -ENOSPC;
    memcpy(b->data + b->len, buf, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

/* A non-loopback admin address needs a token or an explicit opt-in, whichever source set it. */
TEST(admin_exposure)
{
    px_cli_action_t act;
    px_config_t *cfg = NULL;

    clear_env();
    {
        char *argv[] = {"weir", "--admin", "0.0.0.0:9901", NULL};
        CHECK_EQ(run_args(&act, &cfg, argv), -EINVAL);
        CHECK(strstr(err, "admin.address: 0.0.0.0:9901 is not a loopback address") != NULL);
    }
    {
        char *argv[] = {"weir", "--admin", "0.0.0.0:0", "--admin-token", "t0k", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK_STR(cfg->admin.token, "t0k");
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir", "--admin", "0.0.0.0:0", "--admin-public", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK(cfg->admin.allow_public);
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir", NULL};
        setenv("WEIR_ADMIN", "0.0.0.0:0", 1);
        CHECK_EQ(run_args(&act, &cfg, argv), -EINVAL);
        setenv("WEIR_ADMIN_PUBLIC", "1", 1);
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        px_config_free(cfg);
        clear_env();
    }
    {
        const char *p =
            write_tmp("public.yaml", "admin: {address: 0.0.0.0:0, allow_public: true}\n");
        char path[512];
        REQUIRE(p != NULL);
        snprintf(path, sizeof(path), "%s", p);
        char *argv[] = {"weir", "-c", path, NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        CHECK(cfg->admin.allow_public);
        px_config_free(cfg);
    }
    {
        char *argv[] = {"weir", "--admin", "[::1]:0", NULL};
        REQUIRE(run_args(&act, &cfg, argv) == 0);
        px_config_free(cfg);
    }
    CHECK_NO_LEAK();
}

TEST(dump_round_trip)
{
    static sbuf_t a, b;
    char path[1100];
    const char *p;
    px_config_t *cfg = NULL, *cfg2 = NULL;

    snprintf(path, sizeof(path), "%s/full.yaml", configs_dir);
    REQUIRE(px_config_load_file(path, &cfg, err, sizeof(err)) == 0);
    a.len = 0;
    REQUIRE(px_config_dump(cfg, on_write, &a) == 0);
    CHECK(strstr(a.data, "change-me") == NULL);
    CHECK(strstr(a.data, "token: \"<redacted>\"") != NULL);
    CHECK(strstr(a.data, "address: \"[::1]:8443\"") != NULL);
    CHECK(strstr(a.data, "limit: 536870912") != NULL);
    CHECK(strstr(a.data, "body: \"ok\\n\"") != NULL);

    /* The dump is itself a valid config that dumps to the same text (source line aside). The
     * certificate paths in it are absolute by now, so the temp folder can load it. */
    p = write_tmp("dump.yaml", a.data);
    REQUIRE(p != NULL);
    if (px_config_load_file(p, &cfg2, err, sizeof(err)) != 0)
        fprintf(stderr, "reload: %s\n", err);
    REQUIRE(cfg2 != NULL);
    b.len = 0;
    REQUIRE(px_config_dump(cfg2, on_write, &b) == 0);
    CHECK_STR(strchr(a.data, '\n'), strchr(b.data, '\n'));
    px_config_free(cfg2);
    px_config_free(cfg);

    /* A failing writer's error comes back. */
    {
        static sbuf_t small;
        small.len = sizeof(small.data) - 10;
        REQUIRE(px_config_default(&cfg) == 0);
        CHECK_EQ(px_config_dump(cfg, on_write, &small), -ENOSPC);
        px_config_free(cfg);
    }
    CHECK_NO_LEAK();
}

static int g_attach_freed;
static void on_attach_free(void *p)
{
    CHECK(p == &g_attach_freed);
    g_attach_freed++;
}

/* A cluster whose retries, health_check or outlier_detection differ is not the same: a reload
 * shares an unchanged cluster's health entry (proxy/upstream/health.h), which keeps copies of
 * these settings. The health attachment is freed with the config, at its last unref. */
TEST(cluster_same_health_settings_and_attachment)
{
    px_config_t *x = NULL;
    CHECK_OK(load_text("hc.yaml",
                       "clusters:\n  - name: a\n    endpoints: [127.0.0.1:9000]\n"
                       "    health_check: {path: /hc}\n    outlier_detection: {}\n"
                       "routes:\n  - cluster: a\n",
                       &x));
    REQUIRE(x != NULL);
    const px_cluster_cfg_t *a = &x->clusters[0];
    px_cluster_cfg_t b = *a;
    CHECK(px_config_cluster_same(a, &b));
    uint32_t *fields[] = {&b.retries_max,
                          &b.retry_budget_percent,
                          &b.retry_min_concurrency,
                          &b.health_check.interval_ms,
                          &b.health_check.timeout_ms,
                          &b.health_check.healthy_threshold,
                          &b.health_check.unhealthy_threshold,
                          &b.health_check.expected_status,
                          &b.outlier.consecutive_5xx,
                          &b.outlier.consecutive_gateway_failure,
                          &b.outlier.base_ejection_ms,
                          &b.outlier.max_ejection_ms,
                          &b.outlier.max_ejection_percent,
                          &b.outlier.interval_ms};
    for (size_t i = 0; i < MEM_ARRAY_LEN(fields); i++) {
        (*fields[i])++;
        CHECK(!px_config_cluster_same(a, &b));
        (*fields[i])--;
        CHECK(px_config_cluster_same(a, &b));
    }
    b.health_check.path = "/other";
    CHECK(!px_config_cluster_same(a, &b));
    b.health_check.path = a->health_check.path;
    b.outlier.enabled = false;
    CHECK(!px_config_cluster_same(a, &b));
    x->health = &g_attach_freed;
    x->health_free = on_attach_free;
    px_config_ref(x);
    px_config_unref(x);
    CHECK_EQ(g_attach_freed, 0);
    px_config_unref(x);
    CHECK_EQ(g_attach_freed, 1);
    CHECK_NO_LEAK();
}

/* Reload (issue 17): reference counting frees at the last unref; px_config_cluster_same tells
 * which clusters keep their pools; the reload keys load and default. */
TEST(refs_and_cluster_same)
{
    static const char base[] = "clusters:\n"
                               "  - name: a\n"
                               "    endpoints: [127.0.0.1:9000, 127.0.0.1:9001]\n"
                               "routes:\n"
                               "  - cluster: a\n";
    px_config_t *x = NULL, *y = NULL, *z = NULL;
    size_t live0 = px_config_live();
    CHECK_OK(load_text("same1.yaml", base, &x));
    CHECK_OK(load_text("same2.yaml", base, &y));
    CHECK_OK(load_text("other.yaml",
                       "clusters:\n  - name: a\n    endpoints: [127.0.0.1:9000, 127.0.0.1:9002]\n"
                       "routes:\n  - cluster: a\n",
                       &z));
    CHECK_EQ(px_config_live(), live0 + 3);
    CHECK(px_config_cluster_same(&x->clusters[0], &y->clusters[0]));
    CHECK(!px_config_cluster_same(&x->clusters[0], &z->clusters[0]));
    y->clusters[0].connect_timeout_ms++;
    CHECK(!px_config_cluster_same(&x->clusters[0], &y->clusters[0]));
    CHECK_EQ(x->version, 1u);
    CHECK(x->reload.watch);
    CHECK_EQ(x->reload.poll_interval_ms, 2000u);
    /* Two more references: freed at the third unref, not before. */
    CHECK(px_config_ref(x) == x);
    px_config_ref(x);
    px_config_unref(x);
    px_config_unref(x);
    CHECK_EQ(px_config_live(), live0 + 3);
    px_config_unref(x);
    CHECK_EQ(px_config_live(), live0 + 2);
    px_config_unref(NULL);
    px_config_free(y);
    px_config_free(z);
    CHECK_EQ(px_config_live(), live0);
    px_config_t *w = NULL;
    CHECK_OK(load_text("watch.yaml", "reload: {watch: off, poll_interval: 250ms}\n", &w));
    CHECK(!w->reload.watch);
    CHECK_EQ(w->reload.poll_interval_ms, 250u);
    px_config_free(w);
    CHECK_OK(load_text("poll.yaml", "reload: {watch: poll}\n", &w));
    CHECK(w->reload.watch);
    CHECK(w->reload.watch_poll);
    px_config_free(w);
}

/* Memory tenants (issue 18 part 2): a cluster's or route's memory: {limit: SIZE}. */
TEST(tenants)
{
    static sbuf_t d;
    px_config_t *cfg = NULL;

    REQUIRE(load_text("tenants.yaml",
                      "clusters:\n"
                      "  - {name: slow, endpoints: [127.0.0.1:1], memory: {limit: 1MiB}}\n"
                      "  - {name: fast, endpoints: [127.0.0.1:2]}\n"
                      "routes:\n"
                      "  - {match: {path_prefix: /slow/}, cluster: slow}\n"
                      "  - {match: {path_prefix: /own/}, cluster: slow, memory: {limit: 64k}}\n"
                      "  - {cluster: fast}\n",
                      &cfg) == 0);
    REQUIRE(cfg->tenants_cnt == 2);
    CHECK_STR(cfg->tenants[0].name, "slow");
    CHECK_EQ(cfg->tenants[0].limit_bytes, (size_t)1 << 20);
    CHECK_STR(cfg->tenants[1].name, "routes[1]");
    CHECK_EQ(cfg->tenants[1].limit_bytes, (size_t)64 << 10);
    CHECK_EQ(cfg->clusters[0].tenant, 1u);
    CHECK_EQ(cfg->clusters[1].tenant, 0u);
    CHECK_EQ(cfg->routes[0].tenant, 1u); /* the cluster's */
    CHECK(!cfg->routes[0].own_tenant);
    CHECK_EQ(cfg->routes[1].tenant, 2u); /* its own wins */
    CHECK(cfg->routes[1].own_tenant);
    CHECK_EQ(cfg->routes[2].tenant, 0u);
    d.len = 0;
    REQUIRE(px_config_dump(cfg, on_write, &d) == 0);
    CHECK(strstr(d.data, "    memory: {limit: 1048576}\n") != NULL);
    CHECK(strstr(d.data, "    memory: {limit: 65536}\n") != NULL);
    px_config_free(cfg);

    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n    memory: {limit: 1k}\n",
               "4:21: clusters[0].memory.limit: ");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n    memory: {max: 1M}\n",
               "4:14: clusters[0].memory.max: unknown key 'max' (allowed: limit)");
    EXPECT_ERR("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n    memory: {}\n",
               "4:13: clusters[0].memory: missing required key 'limit'");
    EXPECT_ERR("routes:\n  - direct_response: {status: 200}\n    memory: 5MiB\n",
               "3:13: routes[0].memory: expected a mapping, got a scalar");
    EXPECT_ERR("routes:\n  - direct_response: {status: 200}\n    memory: {limit: lots}\n",
               "3:21: routes[0].memory.limit: ");
    CHECK_NO_LEAK();
}

int main(void)
{
    const char *slash;
    int rc;

    slash = strrchr(__FILE__, '/');
    /* __FILE__ is .../tests/unit/config/config_test.c; the configs are in .../tests/e2e/. */
    snprintf(configs_dir, sizeof(configs_dir), "%.*s/../../e2e/configs",
             (int)(slash ? slash - __FILE__ : 1), slash ? __FILE__ : ".");
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/weir-config-test.XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    rc = mem_init(NULL);
    if (rc != 0 && rc != -EALREADY) {
        fprintf(stderr, "mem_init: %d\n", rc);
        return 1;
    }
    RUN(defaults);
    RUN(full_example);
    RUN(small_files);
    RUN(bad_files);
    RUN(tenants);
    RUN(error_positions);
    RUN(missing_file);
    RUN(value_parsers);
    RUN(flags_override_file);
    RUN(env_between_file_and_flags);
    RUN(upstream_flag);
    RUN(flag_errors);
    RUN(actions);
    RUN(admin_exposure);
    RUN(dump_round_trip);
    RUN(refs_and_cluster_same);
    RUN(cluster_same_health_settings_and_attachment);
    {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp_dir);
    }
    return TEST_SUMMARY();
}
