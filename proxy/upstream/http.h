/*
 * proxy/upstream/http.h: HTTP vocabulary shared by the downstream and upstream sides: header views,
 * hop-by-hop header detection, status reason phrases.
 */
#ifndef PX_HTTP_H
#define PX_HTTP_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

#include "proxy/core/stats-t.h"

/* A header as a pair of byte views. Who owns the bytes is said where it is passed. */
typedef struct px_header_s {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} px_header_t;

/* True for connection-specific headers that HTTP/2 forbids and a proxy never forwards
 * (connection, keep-alive, proxy-connection, transfer-encoding, upgrade, and te unless its
 * value is "trailers"). `name` is lower case, not NUL-terminated. Alloc: none. */
bool px_http_is_hop_by_hop(const char *name, size_t name_len, const char *value, size_t value_len);

/* The reason phrase for `status` ("Not Found"), or "Unknown". Static storage. */
const char *px_http_reason(int status);

/* A content-length value: decimal digits only, at most 18 of them (RFC 9110 8.6). Returns it,
 * or -1 when it is not one. Alloc: none. */
int64_t px_http_parse_content_length(const char *s, size_t len);

/* Counts a response sent to a client in `s` by its status class (responses_1xx .. _5xx), the
 * same for every downstream protocol. Alloc: none. */
void px_http_count_status(px_stats_t *s, int status);

/* The reason every downstream protocol gives with its 501 to CONNECT: weir is a reverse proxy
 * and tunnels nothing (RFC 9110 9.3.6 lets a server refuse the method). */
#define PX_HTTP_CONNECT_REFUSAL                                                                    \
    "CONNECT is not supported: weir is a reverse proxy and does not tunnel"

/* Case-insensitive comparison of two byte views. */
bool px_http_ieq(const char *a, size_t a_len, const char *b, size_t b_len);

#endif /* PX_HTTP_H */
