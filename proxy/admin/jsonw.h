/*
 * proxy/admin/jsonw.h: a growable text buffer with a small streaming JSON writer on top, used by
 * the admin endpoints to build response bodies (JSON, Prometheus text, plain text).
 *
 * A px_jsonw_t is caller-provided storage (init/fini); its bytes come from mem_malloc and
 * grow by doubling up to `cap_max`. The first failure (OOM or passing `cap_max`) is sticky:
 * later calls do nothing and px_jsonw_error() reports it once at the end, so writers do not
 * check every call. Commas between members and elements are inserted automatically.
 * Thread: the owner only (the admin thread).
 */
#ifndef PX_JSONW_H
#define PX_JSONW_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdarg.h>

#define PX_JSONW_DEPTH_MAX 16

typedef struct px_jsonw_s {
    char *buf; /* owns: mem_malloc; NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
    size_t cap_max; /* growth limit in bytes */
    int err;        /* 0, -ENOMEM or -E2BIG (sticky) */
    int depth;
    bool first[PX_JSONW_DEPTH_MAX + 1]; /* no member written yet at this depth */
    bool after_key;                     /* a key was just written: the next value takes no comma */
} px_jsonw_t;

/* Prepares `w` with no storage yet; `cap_max` bounds the buffer. Alloc: none. */
void px_jsonw_init(px_jsonw_t *w, size_t cap_max);
/* Frees the buffer. */
void px_jsonw_fini(px_jsonw_t *w);
/* Takes the buffer out of `w` (the caller mem_free()s it); `w` is left empty. Ownership: gives. */
char *px_jsonw_take(px_jsonw_t *w, size_t *len);
/* 0 or the first error (-ENOMEM, -E2BIG, -EINVAL for unbalanced nesting). */
int px_jsonw_error(const px_jsonw_t *w);

/* Raw text (no JSON framing). Alloc: tcache. */
void px_jsonw_raw(px_jsonw_t *w, const char *s, size_t len);
void px_jsonw_puts(px_jsonw_t *w, const char *s);
void px_jsonw_printf(px_jsonw_t *w, const char *fmt, ...) MEM_PRINTF(2, 3);
void px_jsonw_vprintf(px_jsonw_t *w, const char *fmt, va_list ap);

/* JSON structure. */
void px_jsonw_obj_begin(px_jsonw_t *w);
void px_jsonw_obj_end(px_jsonw_t *w);
void px_jsonw_arr_begin(px_jsonw_t *w);
void px_jsonw_arr_end(px_jsonw_t *w);
void px_jsonw_key(px_jsonw_t *w, const char *key);

/* JSON values (as array elements, or after px_jsonw_key). Strings are escaped (RFC 8259);
 * invalid UTF-8 bytes are written as \u00XX so the output always parses. Non-finite doubles
 * are written as null. */
void px_jsonw_str(px_jsonw_t *w, const char *s);
void px_jsonw_strn(px_jsonw_t *w, const char *s, size_t len);
void px_jsonw_u64(px_jsonw_t *w, uint64_t v);
void px_jsonw_i64(px_jsonw_t *w, int64_t v);
void px_jsonw_dbl(px_jsonw_t *w, double v);
void px_jsonw_bool(px_jsonw_t *w, bool v);
void px_jsonw_null(px_jsonw_t *w);

/* Key + value shorthands. */
void px_jsonw_kstr(px_jsonw_t *w, const char *key, const char *v);
void px_jsonw_ku64(px_jsonw_t *w, const char *key, uint64_t v);
void px_jsonw_ki64(px_jsonw_t *w, const char *key, int64_t v);
void px_jsonw_kdbl(px_jsonw_t *w, const char *key, double v);
void px_jsonw_kbool(px_jsonw_t *w, const char *key, bool v);

#endif /* PX_JSONW_H */
