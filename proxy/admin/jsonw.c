/*
 * proxy/admin/jsonw.c: the growable buffer and JSON writer behind the admin endpoints.
 *
 * Instances are caller-owned (admin thread). Memory comes from mem_realloc; nothing here
 * touches libc's allocator.
 */
#include "mem/base.h"
#include "proxy/admin/jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mem/malloc.h"

/* The first allocation: most admin bodies (probes, small JSON) fit without regrowing. */
#define JSONW_CAP_MIN 1024u

void px_jsonw_init(px_jsonw_t *w, size_t cap_max)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(cap_max > 0);
    memset(w, 0, sizeof(*w));
    w->cap_max = cap_max;
    w->first[0] = true;
}

void px_jsonw_fini(px_jsonw_t *w)
{
    MEM_ASSERT(w != NULL);
    mem_free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

char *px_jsonw_take(px_jsonw_t *w, size_t *len)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(len != NULL);
    char *b = w->buf;
    *len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    return b;
}

int px_jsonw_error(const px_jsonw_t *w)
{
    MEM_ASSERT(w != NULL);
    if (w->err)
        return w->err;
    return w->depth == 0 ? 0 : -EINVAL;
}

/* Makes room for `need` more bytes plus the terminating NUL. Returns false (and sets the
 * sticky error) when it cannot. */
static bool reserve(px_jsonw_t *w, size_t need)
{
    if (w->err)
        return false;
    if (need > w->cap_max || w->len + need + 1 > w->cap_max) {
        w->err = -E2BIG;
        return false;
    }
    size_t want = w->len + need + 1;
    if (want <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : JSONW_CAP_MIN;
    while (cap < want)
        cap *= 2;
    if (cap > w->cap_max)
        cap = w->cap_max;
    char *nb = mem_realloc(w->buf, cap);
    if (nb == NULL) {
        w->err = -ENOMEM;
        return false;
    }
    w->buf = nb;
    w->cap = cap;
    MEM_ASSERT(w->cap >= want);
    return true;
}

void px_jsonw_raw(px_jsonw_t *w, const char *s, size_t len)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(s != NULL || len == 0);
    if (!reserve(w, len))
        return;
    memcpy(w->buf + w->len, s, len);
    w->len += len;
    w->buf[w->len] = '\0';
}

void px_jsonw_puts(px_jsonw_t *w, const char *s)
{
    px_jsonw_raw(w, s, strlen(s));
}

void px_jsonw_vprintf(px_jsonw_t *w, const char *fmt, va_list ap)
{
    MEM_ASSERT(w != NULL);
    MEM_ASSERT(fmt != NULL);
    char small[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        px_jsonw_raw(w, small, (size_t)n);
        return;
    }
    if (!reserve(w, (size_t)n))
        return;
    vsnprintf(w->buf + w->len, (size_t)n + 1, fmt, ap);
    w->len += (size_t)n;
}

void px_jsonw_printf(px_jsonw_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    px_jsonw_vprintf(w, fmt, ap);
    va_end(ap);
}

/* Writes the comma that separates this value from the previous one at the same depth. */
static void sep(px_jsonw_t *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        px_jsonw_raw(w, ",", 1);
    w->first[w->depth] = false;
}

static void nest_open(px_jsonw_t *w, char c)
{
    sep(w);
    if (w->depth >= PX_JSONW_DEPTH_MAX) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    px_jsonw_raw(w, &c, 1);
    w->depth++;
    w->first[w->depth] = true;
}

static void nest_close(px_jsonw_t *w, char c)
{
    if (w->depth <= 0) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    w->depth--;
    px_jsonw_raw(w, &c, 1);
}

void px_jsonw_obj_begin(px_jsonw_t *w)
{
    nest_open(w, '{');
}

void px_jsonw_obj_end(px_jsonw_t *w)
{
    nest_close(w, '}');
}

void px_jsonw_arr_begin(px_jsonw_t *w)
{
    nest_open(w, '[');
}

void px_jsonw_arr_end(px_jsonw_t *w)
{
    nest_close(w, ']');
}

/* Length of the valid UTF-8 sequence at `s` (at most `n` bytes), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    uint32_t cp = c & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void write_escaped(px_jsonw_t *w, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    px_jsonw_raw(w, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char ubuf[8];
        size_t adv = 1;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
            esc = ubuf;
        } else if (c >= 0x80) {
            adv = utf8_len(p + i, len - i);
            if (adv == 0) {
                /* Peer-supplied bytes (paths, authorities) may be anything; keep the JSON
                 * valid by writing the byte as a code point. */
                snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
                esc = ubuf;
                adv = 1;
            }
        }
        if (esc != NULL) {
            px_jsonw_raw(w, s + run, i - run);
            px_jsonw_puts(w, esc);
            run = i + adv;
        }
        i += adv;
    }
    px_jsonw_raw(w, s + run, len - run);
    px_jsonw_raw(w, "\"", 1);
}

void px_jsonw_key(px_jsonw_t *w, const char *key)
{
    MEM_ASSERT(key != NULL);
    MEM_ASSERT(!w->after_key);
    sep(w);
    write_escaped(w, key, strlen(key));
    px_jsonw_raw(w, ":", 1);
    w->after_key = true;
}

void px_jsonw_strn(px_jsonw_t *w, const char *s, size_t len)
{
    MEM_ASSERT(s != NULL || len == 0);
    sep(w);
    write_escaped(w, s ? s : "", len);
}

void px_jsonw_str(px_jsonw_t *w, const char *s)
{
    if (s == NULL) {
        px_jsonw_null(w);
        return;
    }
    px_jsonw_strn(w, s, strlen(s));
}

void px_jsonw_u64(px_jsonw_t *w, uint64_t v)
{
    sep(w);
    px_jsonw_printf(w, "%" PRIu64, v);
}

void px_jsonw_i64(px_jsonw_t *w, int64_t v)
{
    sep(w);
    px_jsonw_printf(w, "%" PRId64, v);
}

void px_jsonw_dbl(px_jsonw_t *w, double v)
{
    sep(w);
    if (!isfinite(v))
        px_jsonw_raw(w, "null", 4);
    else
        px_jsonw_printf(w, "%.6g", v);
}

void px_jsonw_bool(px_jsonw_t *w, bool v)
{
    sep(w);
    px_jsonw_puts(w, v ? "true" : "false");
}

void px_jsonw_null(px_jsonw_t *w)
{
    sep(w);
    px_jsonw_raw(w, "null", 4);
}

void px_jsonw_kstr(px_jsonw_t *w, const char *key, const char *v)
{
    px_jsonw_key(w, key);
    px_jsonw_str(w, v);
}

void px_jsonw_ku64(px_jsonw_t *w, const char *key, uint64_t v)
{
    px_jsonw_key(w, key);
    px_jsonw_u64(w, v);
}

void px_jsonw_ki64(px_jsonw_t *w, const char *key, int64_t v)
{
    px_jsonw_key(w, key);
    px_jsonw_i64(w, v);
}

void px_jsonw_kdbl(px_jsonw_t *w, const char *key, double v)
{
    px_jsonw_key(w, key);
    px_jsonw_dbl(w, v);
}

void px_jsonw_kbool(px_jsonw_t *w, const char *key, bool v)
{
    px_jsonw_key(w, key);
    px_jsonw_bool(w, v);
}
