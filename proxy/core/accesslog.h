/*
 * proxy/core/accesslog.h: one line per stream, buffered per worker and written in 32 KiB blocks
 * (when full, on the worker's 1 s timer and at exit), so logging costs no syscall per request.
 *
 * Each worker owns one logger; nothing is shared except the file (opened O_APPEND, so whole
 * blocks of complete lines from different workers do not interleave inside a line).
 */
#ifndef PX_ACCESSLOG_H
#define PX_ACCESSLOG_H

#include "mem/base.h"

#define PX_ACCESSLOG_BUF_BYTES 32768

typedef struct px_accesslog_s px_accesslog_t;

/* One finished stream. All strings are borrowed for the call and need no NUL. */
typedef struct px_accesslog_entry_s {
    const char *peer; /* "ip:port", NUL-terminated */
    const char *method;
    size_t method_len;
    const char *authority;
    size_t authority_len;
    const char *path;
    size_t path_len;
    int status; /* 0 = no response (reset) */
    uint64_t bytes_out;
    uint64_t duration_us;
    const char *upstream; /* cluster name, or "direct", or "-" */
    const char *proto;    /* "h2" or "http/1.1" (ALPN names), NULL = "h2" */
    unsigned retries;     /* upstream retries; written as " retries=N" only when N > 0 */
} px_accesslog_entry_t;

/* Opens `path` ("-" = stdout) for appending. Returns NULL with errno set.
 * Ownership: gives (px_accesslog_free). Thread: worker. Alloc: tcache. */
px_accesslog_t *px_accesslog_new(const char *path);

/* Formats `e` into the buffer; writes the buffer first if the line would not fit.
 * Thread: owner. Alloc: none. */
void px_accesslog_add(px_accesslog_t *l, const px_accesslog_entry_t *e);

/* Writes what is buffered. Thread: owner. */
void px_accesslog_flush(px_accesslog_t *l);

/* Flushes, closes the file (unless stdout) and frees. NULL is ignored. */
void px_accesslog_free(px_accesslog_t *l);

#endif /* PX_ACCESSLOG_H */
