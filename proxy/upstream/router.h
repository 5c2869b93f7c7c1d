/*
 * proxy/upstream/router.h: picks the route for a request: the first route whose authority (exact or
 * "*.suffix", case-insensitive, port stripped) and path prefix match.
 *
 * Pure lookups over the read-only config; any thread, no allocation.
 */
#ifndef PX_ROUTER_H
#define PX_ROUTER_H

#include "mem/base.h"
#include "proxy/config/config.h"

#include <stdbool.h>

/* True when `pattern` (NULL = any, "host" or "*.suffix") matches `authority` (port stripped
 * here; may be NULL/empty). Alloc: none. */
bool px_router_authority_match(const char *pattern, const char *authority, size_t len);

/* Returns the first matching route of `cfg`, or NULL (the caller answers 404). The path "*"
 * (OPTIONS *) gets weir's own answer: a static direct route, 200 with an empty body.
 * Ownership: borrows (the caller holds a reference on `cfg` for as long as it uses the route).
 * Alloc: none. */
const px_route_cfg_t *px_router_match(const px_config_t *cfg, const char *authority,
                                      size_t authority_len, const char *path, size_t path_len);

#endif /* PX_ROUTER_H */
