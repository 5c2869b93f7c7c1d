/*
 * proxy/http.h: HTTP vocabulary shared by the downstream and upstream sides: header views,
 * hop-by-hop header detection, status reason phrases.
 */
#ifndef PX_HTTP_H
#define PX_HTTP_H

#include "mem/base.h"

#include <stdbool.h>

/* A header as a pair of byte views. Who owns the bytes is said where it is passed. */
typedef struct px_header_s {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} px_header_t;

#endif /* PX_HTTP_H */
