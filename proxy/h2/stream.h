/*
 * proxy/h2/stream.h: one downstream HTTP/2 stream (request in, response out) and its bounded
 * response-body buffer.
 *
 * A stream and everything it owns (header copies, route decision, status and length strings)
 * live in its sub-arena (the codec stream's, proxy/codec/endpoint.c), freed when the codec closes
 * the stream (or when the connection dies). The response body buffer is a list of chunks from the
 * thread cache (it frees as it drains, which a bump arena cannot), bounded by
 * limits.stream_buffer_bytes through end-to-end flow control. Owned by the connection's
 * worker thread.
 */
#ifndef PX_STREAM_H
#define PX_STREAM_H

#include "mem/base.h"

#include <stdbool.h>

#include "mem/subregion.h"
#include "proxy/config/config.h"
#include "proxy/h2/phase.h"
#include "proxy/upstream/http.h"
#include "proxy/upstream/upstream.h"

typedef struct px_h2_conn_s px_h2_conn_t;

/* Request header, copied into the stream's sub-arena. */
typedef struct px_hdr_node_s {
    struct px_hdr_node_s *next; /* subregion */
    px_header_t h;              /* bytes: subregion */
} px_hdr_node_t;

typedef struct px_chunk_s {
    struct px_chunk_s *next;   /* owns */
    struct px_stream_s *owner; /* borrows: set once the codec took it (proxy/h2/serve.c) */
    uint32_t off;              /* first unsent byte */
    uint32_t len;              /* bytes filled */
    uint32_t cap;
    uint8_t data[];
} px_chunk_t;

typedef struct px_stream_s {
    px_h2_conn_t *conn;              /* borrows: the connection outlives its streams */
    mem_subregion_t *sub;            /* borrows: the codec stream's sub-arena, which the codec
                                        frees after the stream's close; everything tagged
                                        subregion */
    void *es;                        /* borrows: the codec's stream (px_h2_ep_stream_t), or NULL */
    struct px_stream_s *rst_next;    /* the connection's deferred-reset queue */
    struct px_stream_s *resp_next;   /* the connection's response queue (codec) */
    struct px_stream_s *prev, *next; /* the connection's stream list */
    int32_t id;
    px_stream_phase_t phase; /* changed only by px_stream_set_phase */
    /* request (subregion) */
    const char *method, *scheme, *authority, *path;
    size_t method_len, scheme_len, authority_len, path_len;
    px_hdr_node_t *hdrs, *hdrs_tail; /* regular headers, in order, hop-by-hop ones dropped */
    size_t hdrs_cnt;
    size_t hdr_bytes;                        /* header list size as RFC 9113 counts it */
    bool hdr_too_large;                      /* answered 431 once the block ends */
    px_hdr_node_t *trailers, *trailers_tail; /* request trailers, in order */
    size_t trailers_cnt;
    /* Independent of the phase: the request's end was passed on (or nobody reads it), which
     * happens before, during or after the response in any phase. */
    bool req_ended;
    /* routing and upstream */
    const px_route_cfg_t *route; /* borrows: cfg */
    const px_config_t *cfg;      /* owns a reference from dispatch to the stream's end: the
                                    config it was routed by (a reload does not change it); not
                                    NULL exactly when the stream was dispatched, whatever its
                                    phase since (px_stream_dispatched) */
    px_upstream_req_t *up;       /* owns until on_response_end/on_error/cancel */
    uint8_t up_retries;          /* upstream retries, for the access log */
    bool up_done;    /* the exchange has ended (set by its last callback): the upstream's fact */
    unsigned tenant; /* the route's memory tenant (1-based), 0 = none or ended */
    size_t tenant_counted; /* what it counts against the tenant (px__h2_tenant_weigh) */
    size_t req_unacked;    /* request-body bytes the exchange holds that it has not yet reported
                              drained: their window is reopened when it does, or when it ends */
    /* response */
    int status;     /* 0 until headers are submitted */
    bool resp_done; /* no more body bytes will be added to the buffer (the upstream's side: the
                       body may still be going out, or the stream may be reset meanwhile) */
    bool head;      /* HEAD request: never send a body (a fact of the request) */
    const uint8_t *static_body; /* borrows: config or subregion; direct/error responses */
    size_t static_len, static_off;
    px_chunk_t *chunks, *chunks_tail; /* owns: upstream body not yet sent */
    size_t buffered;                  /* bytes in chunks not yet sent */
    void *resp_trailers;              /* subregion: nghttp2_nv array */
    size_t resp_trailers_cnt;
    uint64_t bytes_in, bytes_out;
    uint64_t started_ns;
    uint64_t progress_ms; /* loop time of the last byte moved either way */
    /* the codec's path */
    int64_t req_clen;  /* the request's content-length, -1 when none */
    uint64_t req_body; /* request DATA bytes so far (checked against req_clen) */
    uint32_t rst_code; /* the deferred reset's code */
    void *resp_nva;    /* subregion: nghttp2_nv array of the queued response head (codec) */
    size_t resp_nva_cnt;
    bool resp_body;  /* the queued head is followed by a body (else it ends the stream) */
    bool rst_queued; /* on the connection's rst_q: a reset waiting for the next send, in phase
                        RESET (a list's membership, beside the phase as HAProxy's flags are) */
    char status_str[4];
    char clen_str[24];
} px_stream_t;

/* True once the stream was routed (answered by weir or sent upstream), in every phase after. */
static inline bool px_stream_dispatched(const px_stream_t *st)
{
    return st->cfg != NULL;
}

/* Appends `len` body bytes (copied) to the stream's buffer. Returns 0 or -ENOMEM.
 * Thread: owner. Alloc: tcache. */
int px_stream_body_append(px_stream_t *st, const uint8_t *data, size_t len);

/* Frees every buffered chunk. */
void px_stream_body_free(px_stream_t *st);

/* Copies `len` bytes of `s` into the stream's sub-arena; NULL on OOM or past its cap. */
char *px_stream_strdup(px_stream_t *st, const char *s, size_t len);

#endif /* PX_STREAM_H */
