/*
 * proxy/upstream/path.h: the request path that routing sees and the upstream receives:
 * an origin-form `:path` normalised as RFC 3986 6.2.2 and 5.2.4 describe, or refused.
 *
 * Pure functions over caller buffers; any thread, no allocation.
 */
#ifndef PX_PATH_H
#define PX_PATH_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>

/* Normalises the path part of `in` (`len` bytes: an origin-form path with an optional
 * "?query", or the asterisk form "*") into `out`, which has room for `len` bytes (the result
 * is never longer). In order, on the part before the first '?':
 *  - percent-encoded unreserved characters are decoded (%2e is ".", %41 is "A"), other
 *    percent-encodings get upper-case hex digits (RFC 3986 6.2.2.1 and 6.2.2.2);
 *  - runs of '/' become one (nginx's merge_slashes, Envoy's merge_slashes);
 *  - "." and ".." segments are removed (RFC 3986 5.2.4; ".." above the root stays at "/").
 * The query is copied as it came. The result is a fixed point: normalising it again
 * changes nothing, so an upstream that normalises too sees what routing saw.
 * Refused (-EINVAL, `*why` a static reason): a path that does not start with '/' (other than
 * "*"), a '%' not followed by two hex digits, an encoded NUL (%00), a raw '\', a '#' (a
 * fragment never belongs in a request target), and an encoded '/' (%2F) or '\' (%5C) unless
 * `keep_escaped_slashes`, which keeps them encoded (as data inside a segment, never a
 * separator). Returns 0 and sets `*out_len`, or -EINVAL. Alloc: none. */
int px_path_normalize(const char *in, size_t len, bool keep_escaped_slashes, char *out,
                      size_t *out_len, const char **why);

/* RFC 3986 5.2.4 remove_dot_segments, in place on `buf[0..len)`, for any path (relative
 * ones included). Returns the new length (never more than `len`). Alloc: none. */
size_t px_path_remove_dot_segments(char *buf, size_t len);

#endif /* PX_PATH_H */
