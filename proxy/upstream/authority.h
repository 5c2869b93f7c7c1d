/*
 * proxy/upstream/authority.h: the request's authority (`:authority`, or `host` without it):
 * what weir accepts as one, and when a `host` header names the same one (RFC 9113 8.3.1).
 *
 * Pure functions; any thread, no allocation.
 */
#ifndef PX_AUTHORITY_H
#define PX_AUTHORITY_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>

/* Checks that `a` (`len` bytes) is a host with an optional port, as RFC 9113 8.3.1 allows in
 * `:authority`: a reg-name or IPv4 address (letters, digits, "-._~!$&'()*+;=" and
 * percent-encodings) or a bracketed IP literal, then ":" and at most 5 digits. Refused with
 * a static reason in `*why`: empty, userinfo ('@'), a comma (a list of hosts), spaces or
 * other bytes outside that set, a bad port. Returns 0 or -EINVAL. Alloc: none. */
int px_authority_check(const char *a, size_t len, const char **why);

/* True when `a` and `b` name the same authority after scheme-based normalisation (RFC 3986
 * 6.2.3, which RFC 9113 8.3.1 asks of proxies): hosts compared case-insensitively, and an
 * empty port or the scheme's default port (443 when `https`, else 80) equal to no port.
 * Both have passed px_authority_check. Alloc: none. */
bool px_authority_same(const char *a, size_t a_len, const char *b, size_t b_len, bool https);

#endif /* PX_AUTHORITY_H */
