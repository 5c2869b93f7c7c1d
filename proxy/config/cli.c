/*
 * proxy/config/cli.c: weir's command line and environment: px_config_from_args() turns argv and the
 * WEIR_* variables into the effective px_config_t on top of the file named by -c (or the
 * built-in default), and prints --help and --version.
 *
 * Precedence, lowest first: built-in defaults < YAML file < environment < flags. Flag errors
 * read "--flag: what is wrong", environment errors "WEIR_VAR: what is wrong"; file errors keep
 * the loader's "FILE:LINE:COL: FIELD: ..." form. Like the file, the command line is applied
 * whole or not at all. Thread: main, before any worker starts (getopt_long is not reentrant).
 */
#include "mem/base.h"
#include "proxy/config/config.h"
#include "proxy/config/internal.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <string.h>
#include <uv.h>
#include <yaml.h>

#include "mem/malloc.h"
#include "mem/mem.h"

#define CLI_LIST_MAX 64

enum {
    OPT_LISTEN = 256,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_UPSTREAM,
    OPT_ADMIN,
    OPT_ADMIN_TOKEN,
    OPT_ADMIN_PUBLIC,
    OPT_WORKERS,
    OPT_MEMORY_LIMIT,
    OPT_ACCESS_LOG,
    OPT_CHECK_CONFIG,
    OPT_VERSION,
    OPT_LIVE,
};

static const struct option cli_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"upstream", required_argument, NULL, OPT_UPSTREAM},
    {"admin", required_argument, NULL, OPT_ADMIN},
    {"admin-token", required_argument, NULL, OPT_ADMIN_TOKEN},
    {"admin-public", no_argument, NULL, OPT_ADMIN_PUBLIC},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"memory-limit", required_argument, NULL, OPT_MEMORY_LIMIT},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"check-config", required_argument, NULL, OPT_CHECK_CONFIG},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"live", no_argument, NULL, OPT_LIVE},
    {NULL, 0, NULL, 0},
};

static const char cli_usage[] =
    "usage: weir [OPTIONS]\n"
    "       weir --check-config FILE\n"
    "       weir health [--live] [HOST:PORT]\n"
    "\n"
    "weir is an HTTP/2 edge proxy that bounds, shows and explains every byte it holds.\n"
    "Without -c or flags it serves h2c on 127.0.0.1:8080 with a built-in answer, and the\n"
    "admin port on 127.0.0.1:9901.\n"
    "\n"
    "options (a flag overrides the environment, which overrides the file):\n"
    "  -c, --config FILE        load the YAML configuration FILE\n"
    "      --listen HOST:PORT   listen for h2c on HOST:PORT (repeatable; replaces the\n"
    "                           file's listeners; [::1]:8080 for IPv6; port 0 = any)\n"
    "      --tls-cert FILE      PEM certificate: makes the --listen listeners TLS (ALPN h2)\n"
    "      --tls-key FILE       PEM private key for --tls-cert\n"
    "      --upstream URL       h2c://HOST:PORT, http://HOST:PORT, h2://HOST:PORT (HTTP/2 over\n"
    "                           TLS) or https://HOST:PORT (repeatable, one scheme);\n"
    "                           builds the cluster \"upstream\" (round_robin) and one\n"
    "                           catch-all route to it, replacing the file's clusters/routes\n"
    "      --admin HOST:PORT    admin port address (default 127.0.0.1:9901)\n"
    "      --admin-token TOKEN  require \"Authorization: Bearer TOKEN\" on the admin port\n"
    "      --admin-public       allow a non-loopback admin address without a token\n"
    "      --workers N|auto     worker threads (auto: one per CPU in the affinity mask)\n"
    "      --memory-limit SIZE  memory budget: bytes or units (512MiB, 2GiB), N% of the\n"
    "                           cgroup limit, or off\n"
    "      --access-log PATH|-  write an access log to PATH, or stdout with -\n"
    "      --check-config FILE  check FILE (with the environment and flags) and exit:\n"
    "                           0 when valid, 2 with FILE:LINE:COL: FIELD: reason\n"
    "  -h, --help               print this help and exit\n"
    "      --version            print the versions of weir and its libraries and exit\n"
    "\n"
    "subcommands:\n"
    "  health [HOST:PORT]       probe /ready on the admin port (default: the configured\n"
    "                           admin address); exit 0 when ready\n"
    "  health --live [HOST:PORT]  probe /healthz instead: exit 0 while the process\n"
    "                           answers, also while it drains (a liveness probe)\n"
    "\n"
    "environment (overrides the file, loses to flags):\n"
    "  WEIR_LISTEN=HOST:PORT[,HOST:PORT...]  like --listen\n"
    "  WEIR_ADMIN=HOST:PORT                  like --admin\n"
    "  WEIR_ADMIN_TOKEN=TOKEN                like --admin-token\n"
    "  WEIR_ADMIN_PUBLIC=1                   like --admin-public\n"
    "  WEIR_MEMORY_LIMIT=SIZE                like --memory-limit\n"
    "  WEIR_WORKERS=N|auto                   like --workers\n";

typedef struct cli_s {
    const char *config;
    const char *check;
    const char *listen[CLI_LIST_MAX];
    size_t listen_cnt;
    const char *upstream[CLI_LIST_MAX];
    size_t upstream_cnt;
    const char *tls_cert, *tls_key;
    const char *admin, *admin_token;
    const char *workers, *memory_limit, *access_log;
    const char *health_addr;
    bool health, live, help, version, admin_public;
} cli_t;

static void print_version(void)
{
    const nghttp2_info *h2 = nghttp2_version(0);
    printf("weir %s\n", WEIR_VERSION);
    printf("nghttp2 %s\n", h2 ? h2->version_str : "unknown");
    printf("libuv %s\n", uv_version_string());
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("libyaml %s\n", yaml_get_version_string());
}

/* Reads argv into `cli`; no config is touched. */
static int parse_argv(int argc, char **argv, cli_t *cli, char *err, size_t err_len)
{
    int ch, idx;

    MEM_ASSERT(argc >= 1);
    MEM_ASSERT(cli != NULL);
    /* optind = 0 makes glibc reinitialise getopt, so tests may parse several argv arrays. */
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:h", cli_opts, &idx)) != -1) {
        const char *flag = argv[optind - 1];
        switch (ch) {
        case 'c':
            cli->config = optarg;
            break;
        case OPT_LISTEN:
            if (cli->listen_cnt == CLI_LIST_MAX)
                return px__cfg_errf(err, err_len, "--listen: at most %d listeners", CLI_LIST_MAX);
            cli->listen[cli->listen_cnt++] = optarg;
            break;
        case OPT_UPSTREAM:
            if (cli->upstream_cnt == CLI_LIST_MAX)
                return px__cfg_errf(err, err_len, "--upstream: at most %d upstreams", CLI_LIST_MAX);
            cli->upstream[cli->upstream_cnt++] = optarg;
            break;
        case OPT_TLS_CERT:
            cli->tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            cli->tls_key = optarg;
            break;
        case OPT_ADMIN:
            cli->admin = optarg;
            break;
        case OPT_ADMIN_TOKEN:
            cli->admin_token = optarg;
            break;
        case OPT_ADMIN_PUBLIC:
            cli->admin_public = true;
            break;
        case OPT_WORKERS:
            cli->workers = optarg;
            break;
        case OPT_MEMORY_LIMIT:
            cli->memory_limit = optarg;
            break;
        case OPT_ACCESS_LOG:
            cli->access_log = optarg;
            break;
        case OPT_CHECK_CONFIG:
            cli->check = optarg;
            break;
        case 'h':
            cli->help = true;
            break;
        case OPT_VERSION:
            cli->version = true;
            break;
        case OPT_LIVE:
            cli->live = true;
            break;
        case ':':
            /* Strip "=..." so the message names the flag only. */
            return px__cfg_errf(err, err_len, "%.*s: needs a value (see weir --help)",
                                (int)strcspn(flag, "="), flag);
        default:
            if (strncmp(flag, "--", 2) == 0 && optopt && strchr(flag, '='))
                return px__cfg_errf(err, err_len, "%.*s: takes no value", (int)strcspn(flag, "="),
                                    flag);
            if (strncmp(flag, "--", 2) != 0 && optopt && optopt < 256)
                return px__cfg_errf(err, err_len, "-%c: unknown option (see weir --help)", optopt);
            return px__cfg_errf(err, err_len, "%.*s: unknown option (see weir --help)",
                                (int)strcspn(flag, "="), flag);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (cli->health && !cli->health_addr) {
            cli->health_addr = argv[i];
            continue;
        }
        return px__cfg_errf(err, err_len, "'%s': unexpected argument (see weir --help)", argv[i]);
    }
    return 0;
}

/* Replaces the listeners of `cfg` with h2c listeners on `addrs`. `what` names the source
 * (flag or variable) in errors. */
static int set_listeners(px_config_t *cfg, const char *const *addrs, size_t cnt, const char *what,
                         char *err, size_t err_len)
{
    char why[PX_CFG_WHY_MAX];
    px_listener_cfg_t *ls;
    int rc = 0;

    MEM_ASSERT(cnt > 0);
    MEM_ASSERT(cnt <= CLI_LIST_MAX);
    ls = mem_calloc(cnt, sizeof(*ls));
    if (!ls)
        return -ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        char name[32];
        if (px__cfg_parse_addr(addrs[i], true, &ls[i].addr, why, sizeof(why)) < 0) {
            rc = px__cfg_errf(err, err_len, "%s: %s", what, why);
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (ls[i].addr.port != 0 && ls[j].addr.port == ls[i].addr.port &&
                strcmp(ls[j].addr.host, ls[i].addr.host) == 0) {
                rc = px__cfg_errf(err, err_len, "%s: '%s' is given twice", what, addrs[i]);
                goto fail;
            }
        }
        snprintf(name, sizeof(name), "listener%zu", i);
        ls[i].name = mem_strdup(name);
        if (!ls[i].name) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    px__config_clear_listeners(cfg);
    cfg->listeners = ls;
    cfg->listeners_cnt = cnt;
    return 0;
fail:
    for (size_t i = 0; i < cnt; i++)
        px__listener_fini(&ls[i]);
    mem_free(ls);
    return rc;
}

/* Splits WEIR_LISTEN's comma-separated list into `buf` and `out`. */
static int split_list(const char *s, char *buf, size_t buf_len, const char **out, size_t *cnt,
                      char *err, size_t err_len)
{
    size_t len = strlen(s), n = 0;
    char *p;

    MEM_ASSERT(buf_len > 0);
    if (len >= buf_len)
        return px__cfg_errf(err, err_len, "WEIR_LISTEN: value is too long");
    memcpy(buf, s, len + 1);
    p = buf;
    while (p) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (*p == '\0')
            return px__cfg_errf(err, err_len, "WEIR_LISTEN: empty address in '%s'", s);
        if (n == CLI_LIST_MAX)
            return px__cfg_errf(err, err_len, "WEIR_LISTEN: at most %d addresses", CLI_LIST_MAX);
        out[n++] = p;
        p = comma ? comma + 1 : NULL;
    }
    *cnt = n;
    return 0;
}

static int check_token(const char *t, const char *what, char *err, size_t err_len)
{
    if (t[0] == '\0')
        return px__cfg_errf(err, err_len, "%s: the token is empty", what);
    for (const char *p = t; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
            return px__cfg_errf(err, err_len, "%s: token must not contain spaces or controls",
                                what);
    }
    return 0;
}

/* Applies the admin address, token, memory limit and worker count from one source. */
static int apply_scalars(px_config_t *cfg, const char *admin, const char *token,
                         const char *memory_limit, const char *workers, bool env, char *err,
                         size_t err_len)
{
    char why[PX_CFG_WHY_MAX];
    int rc;

    if (admin && px__cfg_parse_addr(admin, true, &cfg->admin.addr, why, sizeof(why)) < 0)
        return px__cfg_errf(err, err_len, "%s: %s", env ? "WEIR_ADMIN" : "--admin", why);
    if (token) {
        if ((rc = check_token(token, env ? "WEIR_ADMIN_TOKEN" : "--admin-token", err, err_len)) < 0)
            return rc;
        if ((rc = px__cfg_set_str(&cfg->admin.token, token)) < 0)
            return rc;
    }
    if (memory_limit &&
        px__cfg_parse_memory_limit(memory_limit, &cfg->memory, why, sizeof(why)) < 0)
        return px__cfg_errf(err, err_len, "%s: %s", env ? "WEIR_MEMORY_LIMIT" : "--memory-limit",
                            why);
    if (workers && px__cfg_parse_workers(workers, &cfg->workers, why, sizeof(why)) < 0)
        return px__cfg_errf(err, err_len, "%s: %s", env ? "WEIR_WORKERS" : "--workers", why);
    return 0;
}

/* True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
static bool addr_is_loopback(const px_addr_t *a)
{
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

/* The admin port serves heap dumps, the configuration and release controls: it leaves
 * loopback only with a token, or when the operator says so explicitly. */
static int check_admin_exposure(const px_config_t *cfg, char *err, size_t err_len)
{
    if (!cfg->admin.enabled || cfg->admin.token || cfg->admin.allow_public ||
        addr_is_loopback(&cfg->admin.addr))
        return 0;
    return px__cfg_errf(err, err_len,
                        "admin.address: %s:%u is not a loopback address; set a token "
                        "(admin.token, WEIR_ADMIN_TOKEN, --admin-token) or allow it explicitly "
                        "(admin.allow_public: true, WEIR_ADMIN_PUBLIC=1, --admin-public)",
                        cfg->admin.addr.host, (unsigned)cfg->admin.addr.port);
}

/* An environment variable that is unset or empty does not apply. */
static const char *env_get(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* Builds the cluster "upstream" from the --upstream URLs and one catch-all route to it,
 * replacing the clusters and routes of `cfg`. */
static int set_upstream(px_config_t *cfg, const cli_t *cli, char *err, size_t err_len)
{
    char why[PX_CFG_WHY_MAX], hostport[300];
    px_cluster_cfg_t *cl = NULL;
    px_route_cfg_t *r = NULL;
    px_proto_t proto = PX_PROTO_H2C;
    bool tls = false;
    int rc;

    MEM_ASSERT(cli->upstream_cnt > 0);
    cl = mem_calloc(1, sizeof(*cl));
    r = mem_calloc(1, sizeof(*r));
    if (!cl || !r) {
        rc = -ENOMEM;
        goto fail;
    }
    cl->endpoints = mem_calloc(cli->upstream_cnt, sizeof(px_addr_t));
    cl->name = mem_strdup("upstream");
    r->path_prefix = mem_strdup("/");
    if (!cl->endpoints || !cl->name || !r->path_prefix) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < cli->upstream_cnt; i++) {
        const char *u = cli->upstream[i], *rest;
        px_proto_t p;
        size_t len;

        bool t = false;
        if (strncmp(u, "h2c://", 6) == 0) {
            p = PX_PROTO_H2C;
            rest = u + 6;
        } else if (strncmp(u, "http://", 7) == 0) {
            p = PX_PROTO_HTTP1;
            rest = u + 7;
        } else if (strncmp(u, "h2://", 5) == 0) {
            p = PX_PROTO_H2C; /* HTTP/2 framing over TLS */
            t = true;
            rest = u + 5;
        } else if (strncmp(u, "https://", 8) == 0) {
            p = PX_PROTO_HTTP1;
            t = true;
            rest = u + 8;
        } else {
            rc = px__cfg_errf(err, err_len,
                              "--upstream: '%s' must start with h2c://, http://, h2:// or "
                              "https:// (e.g. h2c://127.0.0.1:9000)",
                              u);
            goto fail;
        }
        if (i > 0 && (p != proto || t != tls)) {
            size_t first_len = (size_t)(strstr(cli->upstream[0], "://") - cli->upstream[0]);
            rc = px__cfg_errf(err, err_len,
                              "--upstream: '%s' mixes %.*s:// and %.*s:// (one cluster speaks "
                              "one protocol)",
                              u, (int)first_len, cli->upstream[0], (int)(rest - 3 - u), u);
            goto fail;
        }
        proto = p;
        tls = t;
        len = strlen(rest);
        if (len > 0 && rest[len - 1] == '/')
            len--; /* "h2c://host:port/" is the same upstream */
        if (len >= sizeof(hostport) || memchr(rest, '/', len)) {
            rc = px__cfg_errf(err, err_len, "--upstream: '%s' must be SCHEME://HOST:PORT", u);
            goto fail;
        }
        memcpy(hostport, rest, len);
        hostport[len] = '\0';
        if (px__cfg_parse_addr(hostport, false, &cl->endpoints[i], why, sizeof(why)) < 0) {
            rc = px__cfg_errf(err, err_len, "--upstream: %s", why);
            goto fail;
        }
    }
    cl->endpoints_cnt = cli->upstream_cnt;
    px__cfg_cluster_defaults(cl);
    cl->proto = proto;
    cl->tls = tls; /* verify on, system bundle, SNI = each endpoint's host name */

    px__config_clear_routes(cfg);
    px__config_clear_clusters(cfg);
    px__config_clear_tenants(cfg);
    cfg->clusters = cl;
    cfg->clusters_cnt = 1;
    r->cluster = &cfg->clusters[0];
    cfg->routes = r;
    cfg->routes_cnt = 1;
    return 0;
fail:
    if (cl) {
        px__cluster_fini(cl);
        mem_free(cl);
    }
    if (r) {
        px__route_fini(r);
        mem_free(r);
    }
    return rc;
}

/* Makes every listener from --listen (or WEIR_LISTEN) TLS with the given PEM files. */
static int set_tls(px_config_t *cfg, const cli_t *cli, bool listen_given, char *err, size_t err_len)
{
    char why[PX_CFG_WHY_MAX];
    int rc;

    if (!cli->tls_cert && !cli->tls_key)
        return 0;
    if (!cli->tls_cert)
        return px__cfg_errf(err, err_len, "--tls-key: needs --tls-cert too");
    if (!cli->tls_key)
        return px__cfg_errf(err, err_len, "--tls-cert: needs --tls-key too");
    if (!listen_given)
        return px__cfg_errf(err, err_len,
                            "--tls-cert: applies to the --listen listeners; give --listen too");
    if (px__cfg_check_readable(cli->tls_cert, why, sizeof(why)) < 0)
        return px__cfg_errf(err, err_len, "--tls-cert: %s", why);
    if (px__cfg_check_readable(cli->tls_key, why, sizeof(why)) < 0)
        return px__cfg_errf(err, err_len, "--tls-key: %s", why);
    for (size_t i = 0; i < cfg->listeners_cnt; i++) {
        px_listener_cfg_t *l = &cfg->listeners[i];
        if ((rc = px__cfg_set_str(&l->tls_cert, cli->tls_cert)) < 0 ||
            (rc = px__cfg_set_str(&l->tls_key, cli->tls_key)) < 0)
            return rc;
        l->tls = true;
    }
    return 0;
}

/* Test knob, not in --help: WEIR_FAULT_ALLOC=N makes mem/ fail about 1 in N allocation slow
 * paths (tcache refills, region chunks, large allocations, segment mappings) in
 * MEM_FAULT_INJECT builds, so e2e tests can show every failure is handled
 * (tests/e2e/70-fault-injection.sh). Global and immediate: it calls mem_fault_set(0, N). */
static int set_fault_alloc(char *err, size_t err_len)
{
    const char *v = env_get("WEIR_FAULT_ALLOC");
    if (v == NULL || v[0] == '\0')
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n == 0)
        return px__cfg_errf(err, err_len,
                            "WEIR_FAULT_ALLOC: want a positive integer N (fail 1 in N "
                            "allocation slow paths), got \"%s\"",
                            v);
#if defined(MEM_FAULT_INJECT) && MEM_FAULT_INJECT
    mem_fault_set(0, (uint64_t)n);
    fprintf(stderr,
            "weir: WEIR_FAULT_ALLOC: failing about 1 in %llu allocation slow paths (test "
            "knob)\n",
            n);
    return 0;
#else
    return px__cfg_errf(err, err_len,
                        "WEIR_FAULT_ALLOC: this build has no fault injection (MEM_FAULT_INJECT=0)");
#endif
}

int px_config_from_args(int argc, char **argv, px_cli_action_t *action, px_config_t **out,
                        char *err, size_t err_len)
{
    char why[PX_CFG_WHY_MAX], listen_buf[4096];
    const char *env_listen[CLI_LIST_MAX];
    size_t env_listen_cnt = 0;
    cli_t cli;
    px_config_t *cfg = NULL;
    const char *env_v;
    int rc;

    MEM_ASSERT(action != NULL);
    MEM_ASSERT(out != NULL);
    *out = NULL;
    *action = PX_CLI_RUN;
    if (err && err_len)
        err[0] = '\0';
    memset(&cli, 0, sizeof(cli));
    if (argc < 1 || !argv)
        return px__cfg_errf(err, err_len, "no arguments");

    if (argc >= 2 && strcmp(argv[1], "health") == 0) {
        cli.health = true;
        argc--;
        argv++;
    }
    if ((rc = parse_argv(argc, argv, &cli, err, err_len)) < 0)
        return rc;

    if (cli.help || cli.version) {
        if (cli.help)
            fputs(cli_usage, stdout);
        else
            print_version();
        fflush(stdout);
        *action = cli.help ? PX_CLI_HELP : PX_CLI_VERSION;
        /* Callers get a config in every successful case, so they never special-case NULL. */
        return px_config_default(out);
    }
    if (cli.check) {
        if (cli.health)
            return px__cfg_errf(err, err_len, "--check-config: not valid with 'health'");
        if (cli.config && strcmp(cli.config, cli.check) != 0)
            return px__cfg_errf(err, err_len,
                                "--check-config: names '%s' but -c names '%s'; give one file",
                                cli.check, cli.config);
        cli.config = cli.check;
        *action = PX_CLI_CHECK;
    }

    if (cli.config)
        rc = px_config_load_file(cli.config, &cfg, err, err_len);
    else
        rc = px_config_default(&cfg);
    if (rc < 0)
        goto fail;

    /* Environment: above the file, below the flags. */
    env_v = env_get("WEIR_LISTEN");
    if (env_v) {
        if ((rc = split_list(env_v, listen_buf, sizeof(listen_buf), env_listen, &env_listen_cnt,
                             err, err_len)) < 0 ||
            (rc = set_listeners(cfg, env_listen, env_listen_cnt, "WEIR_LISTEN", err, err_len)) < 0)
            goto fail;
    }
    rc = apply_scalars(cfg, env_get("WEIR_ADMIN"), env_get("WEIR_ADMIN_TOKEN"),
                       env_get("WEIR_MEMORY_LIMIT"), env_get("WEIR_WORKERS"), true, err, err_len);
    if (rc < 0)
        goto fail;

    /* Flags. */
    if (cli.listen_cnt &&
        (rc = set_listeners(cfg, cli.listen, cli.listen_cnt, "--listen", err, err_len)) < 0)
        goto fail;
    if ((rc = set_tls(cfg, &cli, cli.listen_cnt > 0 || env_listen_cnt > 0, err, err_len)) < 0)
        goto fail;
    if (cli.upstream_cnt && (rc = set_upstream(cfg, &cli, err, err_len)) < 0)
        goto fail;
    rc = apply_scalars(cfg, cli.admin, cli.admin_token, cli.memory_limit, cli.workers, false, err,
                       err_len);
    if (rc < 0)
        goto fail;
    if (cli.admin_public ||
        (env_get("WEIR_ADMIN_PUBLIC") && strcmp(env_get("WEIR_ADMIN_PUBLIC"), "0")))
        cfg->admin.allow_public = true;
    if (!cli.health && (rc = check_admin_exposure(cfg, err, err_len)) < 0)
        goto fail;
    if (cli.access_log) {
        if (cli.access_log[0] == '\0') {
            rc = px__cfg_errf(err, err_len, "--access-log: give a path or - for stdout");
            goto fail;
        }
        if ((rc = px__cfg_set_str(&cfg->access_log, cli.access_log)) < 0)
            goto fail;
    }
    if (cli.live && !cli.health) {
        rc = px__cfg_errf(err, err_len, "--live: only with 'health' (weir health --live)");
        goto fail;
    }
    if (cli.health) {
        *action = cli.live ? PX_CLI_HEALTH_LIVE : PX_CLI_HEALTH;
        if (cli.health_addr &&
            px__cfg_parse_addr(cli.health_addr, false, &cfg->admin.addr, why, sizeof(why)) < 0) {
            rc = px__cfg_errf(err, err_len, "health: %s", why);
            goto fail;
        }
    }
    if (*action == PX_CLI_RUN && (rc = set_fault_alloc(err, err_len)) < 0)
        goto fail;
    MEM_ASSERT(cfg->listeners_cnt > 0);
    MEM_ASSERT(cfg->routes_cnt > 0);
    *out = cfg;
    return 0;
fail:
    if (rc == -ENOMEM && err && err_len && err[0] == '\0')
        px__cfg_errf(err, err_len, "out of memory while building the configuration");
    px_config_free(cfg);
    if (*action != PX_CLI_CHECK)
        *action = PX_CLI_RUN;
    return rc;
}
