/*
 * proxy/core/accesslog.c: per-worker buffered access log (see accesslog.h).
 *
 * The timestamp is computed from CLOCK_REALTIME by hand (days to civil date) and cached per
 * second: gmtime_r takes glibc's global tz lock, which has no place on the request path.
 */
#include "proxy/core/accesslog.h"
#include "mem/base.h"

#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mem/malloc.h"

struct px_accesslog_s {
    int fd;
    bool own_fd;
    size_t len;     /* bytes used in buf */
    int64_t ts_sec; /* second cached in ts */
    char ts[64];    /* "2026-11-22T04:00:00" */
    char buf[PX_ACCESSLOG_BUF_BYTES];
};

px_accesslog_t *px_accesslog_new(const char *path)
{
    MEM_ASSERT(path != NULL);
    px_accesslog_t *l = mem_malloc(sizeof(*l));
    if (l == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    l->len = 0;
    l->ts_sec = -1;
    if (strcmp(path, "-") == 0) {
        l->fd = STDOUT_FILENO;
        l->own_fd = false;
    } else {
        l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (l->fd < 0) {
            int e = errno;
            mem_free(l);
            errno = e;
            return NULL;
        }
        l->own_fd = true;
    }
    return l;
}

void px_accesslog_flush(px_accesslog_t *l)
{
    size_t off = 0;
    while (off < l->len) {
        ssize_t n = write(l->fd, l->buf + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a full disk loses log lines, never requests */
        off += (size_t)n;
    }
    l->len = 0;
}

/* Howard Hinnant's days_from_civil inverse: days since 1970-01-01 to y-m-d. */
static void civil(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static void stamp(px_accesslog_t *l, struct timespec *ts)
{
    if (ts->tv_sec == l->ts_sec)
        return;
    l->ts_sec = ts->tv_sec;
    int64_t days = ts->tv_sec / 86400, rem = ts->tv_sec % 86400;
    int y;
    unsigned m, d;
    civil(days, &y, &m, &d);
    /* The modulos bound every field so the compiler can prove the stamp fits. */
    snprintf(l->ts, sizeof(l->ts), "%04u-%02u-%02uT%02u:%02u:%02u", (unsigned)y % 10000u, m % 13u,
             d % 32u, (unsigned)(rem / 3600) % 24u, (unsigned)(rem / 60 % 60),
             (unsigned)(rem % 60));
}

/* Caps a logged field at `max` source bytes and keeps the line one unambiguous line: control
 * bytes, DEL, quotes, backslashes and bytes >= 0x80 become \xHH (nginx's escape=default), so
 * a path cannot forge a field or a line and the log stays ASCII whatever the client sent.
 * Writes at most `room` bytes and returns how many. */
static size_t put(char *dst, size_t room, const char *s, size_t len, size_t max)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = MEM_MIN(len, max), o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (o + 1 > room)
                break;
            dst[o++] = (char)c;
            continue;
        }
        if (o + 4 > room)
            break;
        dst[o++] = '\\';
        dst[o++] = 'x';
        dst[o++] = hex[c >> 4];
        dst[o++] = hex[c & 15];
    }
    MEM_ASSERT_HOT(o <= room);
    return o;
}

void px_accesslog_add(px_accesslog_t *l, const px_accesslog_entry_t *e)
{
    MEM_ASSERT_HOT(l != NULL);
    MEM_ASSERT_HOT(e != NULL);
    /* A line is at most ~5.4 KiB (fields are capped at 1,296 source bytes, each escaped to at
     * most 4), so 8 KiB of room always suffices. */
    if (PX_ACCESSLOG_BUF_BYTES - l->len < 8192)
        px_accesslog_flush(l);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    stamp(l, &ts);
    char *p = l->buf + l->len;
    char *end = l->buf + PX_ACCESSLOG_BUF_BYTES;
    int n = snprintf(p, (size_t)(end - p), "%s.%03dZ %s \"", l->ts, (int)(ts.tv_nsec / 1000000),
                     e->peer);
    p += n;
    p += put(p, (size_t)(end - p), e->method ? e->method : "-", e->method ? e->method_len : 1, 16);
    *p++ = ' ';
    p += put(p, (size_t)(end - p), e->authority ? e->authority : "-",
             e->authority ? e->authority_len : 1, 256);
    *p++ = ' ';
    p += put(p, (size_t)(end - p), e->path ? e->path : "-", e->path ? e->path_len : 1, 1024);
    n = snprintf(p, (size_t)(end - p), "\" %d %llu %llu.%01llums upstream=%s proto=%s", e->status,
                 (unsigned long long)e->bytes_out, (unsigned long long)(e->duration_us / 1000),
                 (unsigned long long)(e->duration_us / 100 % 10), e->upstream ? e->upstream : "-",
                 e->proto ? e->proto : "h2");
    p += n;
    /* Retried requests only: the line of a request that was not retried keeps its format. */
    n = e->retries > 0 ? snprintf(p, (size_t)(end - p), " retries=%u\n", e->retries)
                       : snprintf(p, (size_t)(end - p), "\n");
    p += n;
    MEM_ASSERT(p <= end);
    l->len = (size_t)(p - l->buf);
}

void px_accesslog_free(px_accesslog_t *l)
{
    if (l == NULL)
        return;
    px_accesslog_flush(l);
    if (l->own_fd)
        close(l->fd);
    mem_free(l);
}
