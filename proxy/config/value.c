/*
 * proxy/config/value.c: parsers for the scalar values of weir's configuration: sizes,
 * durations, fractions, booleans, counts, names and HOST:PORT addresses.
 *
 * Shared by the YAML loader (config_yaml.c) and the command line (cli.c), so a value means the
 * same thing wherever it is written. Pure functions except px__cfg_parse_addr, which resolves
 * names with getaddrinfo. Thread: main (config is built before workers start).
 */
#include "mem/base.h"
#include "proxy/config/internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

int px__cfg_errf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (buf && len > 0) {
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Reads the leading decimal digits of `s` into `*out`; returns the count of digits, or -1 on
 * overflow. */
static int read_digits(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        uint64_t d = (uint64_t)(s[n] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        n++;
    }
    *out = v;
    return n;
}

int px_parse_size(const char *s, size_t *out)
{
    /* Units are binary throughout: "64k", "64KB" and "64KiB" all mean 65536 bytes, as in
     * nginx and haproxy. A proxy's buffers are powers of two; decimal kilobytes only
     * surprise. */
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {
        {"", 0},     {"b", 0},  {"k", 10},  {"kb", 10},  {"kib", 10}, {"m", 20},  {"mb", 20},
        {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},   {"tb", 40}, {"tib", 40},
    };
    uint64_t v;
    int n;

    if (!s || !out)
        return -EINVAL;
    n = read_digits(s, &v);
    if (n <= 0)
        return -EINVAL;
    if (strcmp(s + n, "%") == 0) {
        if (v > 100)
            return -ERANGE;
        *out = (size_t)v;
        return 1;
    }
    for (size_t i = 0; i < MEM_ARRAY_LEN(units); i++) {
        if (strcasecmp(s + n, units[i].unit) != 0)
            continue;
        if (units[i].shift && v > (SIZE_MAX >> units[i].shift))
            return -ERANGE;
        *out = (size_t)(v << units[i].shift);
        return 0;
    }
    return -EINVAL;
}

int px__cfg_parse_size_range(const char *s, size_t min, size_t max, size_t *out, char *why,
                             size_t why_len)
{
    size_t v = 0;
    int rc = px_parse_size(s, &v);

    MEM_ASSERT(min <= max);
    MEM_ASSERT(out != NULL);
    if (rc == 1)
        return px__cfg_errf(why, why_len, "a percentage is not allowed here, give a size");
    if (rc == -ERANGE)
        return px__cfg_errf(why, why_len, "size '%s' is too large", s);
    if (rc < 0)
        return px__cfg_errf(why, why_len,
                            "'%s' is not a size (use bytes or a unit: 512KiB, 64MiB, 1GiB)", s);
    if (v < min || v > max)
        return px__cfg_errf(why, why_len, "size %zu is out of range (%zu-%zu)", v, min, max);
    *out = v;
    return 0;
}

int px__cfg_parse_duration(const char *s, uint64_t max_ms, uint64_t *out_ms, char *why,
                           size_t why_len)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t v;
    int n;

    MEM_ASSERT(s != NULL);
    MEM_ASSERT(out_ms != NULL);
    n = read_digits(s, &v);
    if (n <= 0 || n > 12)
        goto bad;
    if (s[n] == '\0') {
        /* A bare number is ambiguous (seconds? milliseconds?); only 0 is unambiguous. */
        if (v != 0)
            return px__cfg_errf(why, why_len,
                                "duration '%s' needs a unit (ms, s, m or h), e.g. %sms or %ss", s,
                                s, s);
        *out_ms = 0;
        return 0;
    }
    for (size_t i = 0; i < MEM_ARRAY_LEN(units); i++) {
        if (strcmp(s + n, units[i].unit) != 0)
            continue;
        if (v > max_ms / units[i].ms)
            return px__cfg_errf(why, why_len, "duration '%s' is too long (at most %llums)", s,
                                (unsigned long long)max_ms);
        *out_ms = v * units[i].ms;
        return 0;
    }
bad:
    return px__cfg_errf(why, why_len, "'%s' is not a duration (use 250ms, 2s, 1m or 1h)", s);
}

int px__cfg_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
                       size_t why_len)
{
    uint64_t v;
    int n;

    MEM_ASSERT(min <= max);
    MEM_ASSERT(out != NULL);
    n = read_digits(s, &v);
    if (n < 0)
        return px__cfg_errf(why, why_len, "number '%s' is out of range (%llu-%llu)", s,
                            (unsigned long long)min, (unsigned long long)max);
    if (n == 0 || s[n] != '\0')
        return px__cfg_errf(why, why_len, "'%s' is not a whole number", s);
    if (v < min || v > max)
        return px__cfg_errf(why, why_len, "%llu is out of range (%llu-%llu)", (unsigned long long)v,
                            (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

int px__cfg_parse_fraction(const char *s, double min, double max, double *out, char *why,
                           size_t why_len)
{
    char *end = NULL;
    double v;

    MEM_ASSERT(min <= max);
    MEM_ASSERT(out != NULL);
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v))
        return px__cfg_errf(why, why_len, "'%s' is not a number such as 0.8", s);
    if (v < min || v > max)
        return px__cfg_errf(why, why_len, "%g is out of range (%g-%g)", v, min, max);
    *out = v;
    return 0;
}

int px__cfg_parse_bool(const char *s, bool *out, char *why, size_t why_len)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};

    MEM_ASSERT(s != NULL);
    MEM_ASSERT(out != NULL);
    for (size_t i = 0; i < MEM_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return px__cfg_errf(why, why_len, "'%s' is not a boolean (use true or false)", s);
}

int px__cfg_parse_memory_limit(const char *s, px_memory_cfg_t *mem, char *why, size_t why_len)
{
    size_t v = 0;
    int rc;

    MEM_ASSERT(s != NULL);
    MEM_ASSERT(mem != NULL);
    if (strcasecmp(s, "off") == 0 || strcmp(s, "0") == 0) {
        mem->limit_bytes = 0;
        mem->limit_cgroup_fraction = 0.0;
        return 0;
    }
    rc = px_parse_size(s, &v);
    if (rc == 1) {
        if (v == 0)
            return px__cfg_errf(why, why_len, "0%% is not a limit (use off for none)");
        mem->limit_bytes = 0;
        mem->limit_cgroup_fraction = (double)v / 100.0;
        return 0;
    }
    if (rc == -ERANGE)
        return px__cfg_errf(why, why_len, "'%s' is too large", s);
    if (rc < 0)
        return px__cfg_errf(why, why_len,
                            "'%s' is not a memory limit (use a size such as 512MiB, a share of "
                            "the cgroup limit such as 90%%, or off)",
                            s);
    /* Less than a few MiB cannot even hold the workers' caches; say so now rather than fail
     * every request later. */
    if (v < (size_t)16 << 20)
        return px__cfg_errf(why, why_len, "memory limit %zu is too small (at least 16MiB)", v);
    mem->limit_bytes = v;
    mem->limit_cgroup_fraction = 0.0;
    return 0;
}

int px__cfg_parse_workers(const char *s, unsigned *out, char *why, size_t why_len)
{
    uint64_t v = 0;
    int rc;

    MEM_ASSERT(s != NULL);
    MEM_ASSERT(out != NULL);
    if (strcasecmp(s, "auto") == 0) {
        *out = 0;
        return 0;
    }
    if (!isdigit((unsigned char)s[0]))
        return px__cfg_errf(why, why_len, "'%s' is not a worker count (use auto or 1-%d)", s,
                            PX_CFG_WORKERS_MAX);
    rc = px__cfg_parse_uint(s, 1, PX_CFG_WORKERS_MAX, &v, why, why_len);
    if (rc < 0)
        return rc;
    *out = (unsigned)v;
    return 0;
}

int px__cfg_parse_addr(const char *s, bool port0_ok, px_addr_t *out, char *why, size_t why_len)
{
    char host[sizeof(out->host)];
    const char *colon, *port_s;
    size_t host_len;
    uint64_t port = 0;
    int n, rc;
    struct addrinfo hints, *res = NULL;

    MEM_ASSERT(s != NULL);
    MEM_ASSERT(out != NULL);
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb)
            return px__cfg_errf(why, why_len, "'%s': missing ']' after the IPv6 address", s);
        if (rb[1] != ':')
            return px__cfg_errf(why, why_len, "'%s' has no port (use [ADDR]:PORT)", s);
        host_len = (size_t)(rb - s - 1);
        if (host_len == 0)
            return px__cfg_errf(why, why_len, "'%s' has an empty address", s);
        if (host_len >= sizeof(host))
            return px__cfg_errf(why, why_len, "address '%s' is too long", s);
        memcpy(host, s + 1, host_len);
        host[host_len] = '\0';
        port_s = rb + 2;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return px__cfg_errf(why, why_len, "'%s' has no port (use HOST:PORT)", s);
        if (memchr(s, ':', (size_t)(colon - s)))
            return px__cfg_errf(why, why_len,
                                "'%s': write IPv6 addresses in brackets, e.g. [::1]:8080", s);
        host_len = (size_t)(colon - s);
        if (host_len == 0)
            return px__cfg_errf(why, why_len, "'%s' has no host (use HOST:PORT)", s);
        if (host_len >= sizeof(host))
            return px__cfg_errf(why, why_len, "host in '%s' is too long", s);
        memcpy(host, s, host_len);
        host[host_len] = '\0';
        port_s = colon + 1;
    }
    n = read_digits(port_s, &port);
    if (n <= 0 || port_s[n] != '\0')
        return px__cfg_errf(why, why_len, "'%s': port '%s' is not a number", s, port_s);
    if (n > 6 || port > 65535 || (port == 0 && !port0_ok))
        return px__cfg_errf(why, why_len, "port %s is out of range (%d-65535)", port_s,
                            port0_ok ? 0 : 1);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res)
        return px__cfg_errf(why, why_len, "cannot resolve '%s': %s", host,
                            rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    if (res->ai_addrlen > sizeof(out->sa)) {
        freeaddrinfo(res);
        return px__cfg_errf(why, why_len, "'%s' resolved to an unsupported address", host);
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->host, host, host_len + 1);
    out->port = (uint16_t)port;
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->sa_len = (socklen_t)res->ai_addrlen;
    if (out->sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&out->sa)->sin_port = htons((uint16_t)port);
    else if (out->sa.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&out->sa)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

int px__cfg_check_name(const char *s, char *why, size_t why_len)
{
    size_t len = strlen(s);

    MEM_ASSERT(s != NULL);
    if (len == 0 || len > PX_CFG_NAME_MAX)
        return px__cfg_errf(why, why_len, "name must be 1-%d characters", PX_CFG_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '_' && ch != '-' && ch != '.')
            return px__cfg_errf(why, why_len,
                                "name '%s' may only contain letters, digits, '_', '-' and '.'", s);
    }
    return 0;
}

int px__cfg_check_readable(const char *path, char *why, size_t why_len)
{
    struct stat st;
    int fd;

    MEM_ASSERT(path != NULL);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return px__cfg_errf(why, why_len, "cannot read '%s': %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return px__cfg_errf(why, why_len, "'%s' is not a regular file", path);
    }
    close(fd);
    return 0;
}

int px__cfg_check_pem(const char *path, bool key, char *why, size_t why_len)
{
    MEM_ASSERT(path != NULL);
    MEM_ASSERT(why != NULL);
    BIO *b = BIO_new_file(path, "r");
    if (b == NULL) {
        ERR_clear_error();
        return px__cfg_errf(why, why_len, "cannot read '%s'", path);
    }
    bool ok;
    if (key) {
        EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        ok = k != NULL;
        EVP_PKEY_free(k);
    } else {
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        ok = x != NULL;
        X509_free(x);
    }
    BIO_free(b);
    ERR_clear_error();
    if (!ok)
        return px__cfg_errf(why, why_len, "'%s' holds no PEM %s", path,
                            key ? "private key" : "certificate");
    return 0;
}

int px__cfg_check_pem_pair(const char *cert, const char *key, char *why, size_t why_len)
{
    MEM_ASSERT(cert != NULL);
    MEM_ASSERT(key != NULL);
    BIO *cb = BIO_new_file(cert, "r"), *kb = BIO_new_file(key, "r");
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    bool ok = x != NULL && k != NULL && X509_check_private_key(x, k) == 1;
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    ERR_clear_error();
    if (!ok)
        return px__cfg_errf(why, why_len, "key '%s' does not match cert '%s'", key, cert);
    return 0;
}

void px__cfg_addr_str(const px_addr_t *a, char *buf, size_t len)
{
    MEM_ASSERT(a != NULL);
    MEM_ASSERT(buf != NULL && len > 0);
    if (strchr(a->host, ':'))
        snprintf(buf, len, "[%s]:%u", a->host, (unsigned)a->port);
    else
        snprintf(buf, len, "%s:%u", a->host, (unsigned)a->port);
}
