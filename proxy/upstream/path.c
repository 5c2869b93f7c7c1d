/*
 * proxy/upstream/path.c: request path normalisation for routing and forwarding (see path.h).
 * No state; any thread.
 */
#include "proxy/upstream/path.h"
#include "mem/base.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* RFC 3986 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~". */
static bool unreserved(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* True when buf[i..len) starts with `lit` followed by the end or a '/' (a whole segment). */
static bool seg_is(const char *buf, size_t i, size_t len, const char *lit, size_t lit_len)
{
    return len - i >= lit_len && memcmp(buf + i, lit, lit_len) == 0 &&
           (len - i == lit_len || buf[i + lit_len] == '/');
}

size_t px_path_remove_dot_segments(char *buf, size_t len)
{
    MEM_ASSERT(buf != NULL || len == 0);
    /* The input is buf[i..len), the output buf[0..w). The output only ever receives bytes
     * already consumed from the input, so w <= i throughout and one buffer serves both. The
     * letters are the steps of RFC 3986 5.2.4. */
    size_t i = 0, w = 0;
    while (i < len) {
        size_t left = len - i;
        if (left >= 3 && memcmp(buf + i, "../", 3) == 0) {
            i += 3; /* A */
        } else if (left >= 2 && memcmp(buf + i, "./", 2) == 0) {
            i += 2; /* A */
        } else if (left >= 3 && memcmp(buf + i, "/./", 3) == 0) {
            i += 2; /* B: "/./" becomes the "/" that follows */
        } else if (left == 2 && memcmp(buf + i, "/.", 2) == 0) {
            buf[i + 1] = '/'; /* B: a final "/." becomes "/" */
            i += 1;
        } else if (buf[i] == '/' && seg_is(buf, i + 1, len, "..", 2)) {
            /* C: "/../" or a final "/.." becomes "/", and the last output segment goes. */
            if (left == 3) {
                buf[i + 2] = '/';
                i += 2;
            } else {
                i += 3;
            }
            while (w > 0 && buf[w - 1] != '/')
                w--;
            if (w > 0)
                w--;
        } else if ((left == 1 && buf[i] == '.') || (left == 2 && memcmp(buf + i, "..", 2) == 0)) {
            i = len; /* D */
        } else {
            /* E: the first segment, with its leading '/' if any, moves to the output. */
            size_t j = i + (buf[i] == '/' ? 1 : 0);
            while (j < len && buf[j] != '/')
                j++;
            memmove(buf + w, buf + i, j - i);
            w += j - i;
            i = j;
        }
        MEM_ASSERT_HOT(w <= i);
    }
    MEM_ASSERT(w <= len);
    return w;
}

int px_path_normalize(const char *in, size_t len, bool keep_escaped_slashes, char *out,
                      size_t *out_len, const char **why)
{
    MEM_ASSERT(in != NULL || len == 0);
    MEM_ASSERT(out != NULL && out_len != NULL && why != NULL);
    static const char hex[] = "0123456789ABCDEF";
    *why = NULL;
    if (len == 1 && in[0] == '*') {
        out[0] = '*'; /* OPTIONS * (RFC 9110 7.1) */
        *out_len = 1;
        return 0;
    }
    if (len == 0 || in[0] != '/') {
        *why = "path must start with '/'";
        return -EINVAL;
    }
    const char *q = memchr(in, '?', len);
    size_t plen = q ? (size_t)(q - in) : len;
    if (memchr(in, '#', len) != NULL) {
        *why = "fragment ('#') in path";
        return -EINVAL;
    }
    size_t w = 0;
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch == '\\') {
            *why = "backslash in path";
            return -EINVAL;
        }
        if (ch == '/') {
            if (w == 0 || out[w - 1] != '/')
                out[w++] = '/';
            continue;
        }
        if (ch != '%') {
            out[w++] = (char)ch;
            continue;
        }
        int hi = i + 2 < plen ? hexval(in[i + 1]) : -1;
        int lo = hi >= 0 ? hexval(in[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            *why = "bad percent-encoding in path";
            return -EINVAL;
        }
        unsigned char v = (unsigned char)(hi * 16 + lo);
        i += 2;
        if ((v == '/' || v == '\\') && !keep_escaped_slashes) {
            *why = "encoded slash or backslash in path";
            return -EINVAL;
        }
        if (v == 0) {
            *why = "encoded NUL in path";
            return -EINVAL;
        }
        if (unreserved(v)) {
            out[w++] = (char)v;
        } else {
            out[w++] = '%';
            out[w++] = hex[v >> 4];
            out[w++] = hex[v & 15];
        }
    }
    MEM_ASSERT(w <= plen);
    MEM_ASSERT(w > 0 && out[0] == '/');
    w = px_path_remove_dot_segments(out, w);
    if (w == 0)
        out[w++] = '/'; /* cannot happen for an absolute path; kept for the invariant */
    if (q) {
        memcpy(out + w, q, len - plen);
        w += len - plen;
    }
    MEM_ASSERT(w <= len);
    *out_len = w;
    return 0;
}
