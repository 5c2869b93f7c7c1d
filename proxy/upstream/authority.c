/*
 * proxy/upstream/authority.c: authority checks and comparison (see authority.h).
 * No state; any thread.
 */
#include "proxy/upstream/authority.h"
#include "mem/base.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* RFC 3986 3.2.2 reg-name characters but '%' (unreserved and sub-delims; ',' is a sub-delim
 * that weir refuses, see px_authority_check). */
static bool host_char(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr("-._~!$&'()*+;=", ch) != NULL;
}

/* IP-literal inside the brackets: IPv6 (hex, ':', '.') or IPvFuture ("v" ...). */
static bool literal_char(unsigned char ch)
{
    return host_char(ch) || ch == ':';
}

/* Splits `a` into host and port (port_len 0 and port NULL when there is no ':'). */
static void split(const char *a, size_t len, size_t *host_len, const char **port, size_t *port_len)
{
    const char *colon = NULL;
    if (len > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', len);
        size_t hl = rb ? (size_t)(rb - a) + 1 : len;
        if (hl < len && a[hl] == ':')
            colon = a + hl;
    } else {
        colon = memchr(a, ':', len);
    }
    *host_len = colon ? (size_t)(colon - a) : len;
    *port = colon ? colon + 1 : NULL;
    *port_len = colon ? len - *host_len - 1 : 0;
}

int px_authority_check(const char *a, size_t len, const char **why)
{
    MEM_ASSERT(why != NULL);
    MEM_ASSERT(a != NULL || len == 0);
    *why = NULL;
    if (len == 0) {
        *why = "empty authority";
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)a[i];
        if (ch == '@') {
            *why = "userinfo ('@') in authority";
            return -EINVAL;
        }
        if (ch == ',') {
            *why = "comma in authority";
            return -EINVAL;
        }
        if (ch == ' ' || ch == '\t') {
            *why = "space in authority";
            return -EINVAL;
        }
    }
    size_t hl, pl;
    const char *port;
    split(a, len, &hl, &port, &pl);
    if (hl == 0) {
        *why = "empty host in authority";
        return -EINVAL;
    }
    if (a[0] == '[') {
        if (hl < 3 || a[hl - 1] != ']') {
            *why = "bad IP literal in authority";
            return -EINVAL;
        }
        for (size_t i = 1; i + 1 < hl; i++) {
            if (!literal_char((unsigned char)a[i])) {
                *why = "bad IP literal in authority";
                return -EINVAL;
            }
        }
    } else {
        for (size_t i = 0; i < hl; i++) {
            unsigned char ch = (unsigned char)a[i];
            if (ch == '%' && i + 2 < hl && isxdigit((unsigned char)a[i + 1]) &&
                isxdigit((unsigned char)a[i + 2])) {
                i += 2; /* a percent-encoded reg-name byte */
                continue;
            }
            if (!host_char(ch)) {
                *why = "invalid character in authority";
                return -EINVAL;
            }
        }
    }
    if (port) {
        if (pl > 5) {
            *why = "bad port in authority";
            return -EINVAL;
        }
        for (size_t i = 0; i < pl; i++) {
            if (port[i] < '0' || port[i] > '9') {
                *why = "bad port in authority";
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* The port as a number, -1 when absent or empty. */
static long port_num(const char *p, size_t len)
{
    if (p == NULL || len == 0)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

bool px_authority_same(const char *a, size_t a_len, const char *b, size_t b_len, bool https)
{
    MEM_ASSERT(a != NULL || a_len == 0);
    MEM_ASSERT(b != NULL || b_len == 0);
    size_t ah, bh, apl, bpl;
    const char *ap, *bp;
    split(a, a_len, &ah, &ap, &apl);
    split(b, b_len, &bh, &bp, &bpl);
    if (ah != bh || strncasecmp(a, b, ah) != 0)
        return false;
    long dflt = https ? 443 : 80;
    long an = port_num(ap, apl), bn = port_num(bp, bpl);
    if (an == dflt)
        an = -1;
    if (bn == dflt)
        bn = -1;
    return an == bn;
}
