/*
 * proxy/h1/h1.h: the HTTP/1.1 server side of one downstream connection: request heads parsed
 * with http_parser, request bodies (content-length and chunked, decoded here, strictly),
 * pipelined requests answered in order, keep-alive, Expect: 100-continue, and the request
 * smuggling refusals of RFC 9112 (section 6.3 and 7.1).
 *
 * Routing, forwarded headers and the upstream exchange are the ones HTTP/2 uses
 * (proxy/upstream/forward.h, router.h, upstream.h); only the codec differs. Each request lives
 * in a sub-arena of the connection's region, created when its head is complete and freed when
 * its response has been written; an idle keep-alive connection holds no sub-arena and no
 * buffer. The transport (proxy/core/conn.c) is reached only through px_h1_io_t.
 *
 * A px_h1_conn_t is embedded in its transport's struct; only the connection's worker thread
 * touches it.
 */
#ifndef PX_H1_H
#define PX_H1_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

#include "mem/region.h"
#include "proxy/core/worker-t.h"

typedef struct px_h1_req_s px_h1_req_t;

/* One finished request, for the access log. Strings borrowed for the call, not NUL-terminated. */
typedef struct px_h1_done_s {
    const char *method, *authority, *path;
    size_t method_len, authority_len, path_len;
    int status; /* 0 = no response */
    uint64_t bytes_out;
    uint64_t started_ns;
    const char *upstream; /* cluster name, "direct" or "-" */
} px_h1_done_t;

/* What the transport offers the HTTP/1.1 code. `tr` is the transport's own pointer. */
typedef struct px_h1_io_s {
    /* Room for `len` bytes at the end of the write batch (NULL when they do not fit now or
     * the batch cannot be allocated); the caller writes them, then commits. */
    uint8_t *(*reserve)(void *tr, size_t len);
    void (*commit)(void *tr, size_t len);
    size_t (*room)(const void *tr);
    /* Asks for a flush (px_h1_send) in this loop iteration. */
    void (*mark_dirty)(void *tr);
    /* Stop (true) or resume (false) reading the socket: input waits for the response in
     * progress (pipelining) or for the upstream to take the request body. */
    void (*read_pause)(void *tr, bool pause);
    /* A request began or ended (the transport re-arms its timers). */
    void (*state_changed)(void *tr);
    /* A request ended (the transport writes its access-log line). */
    void (*request_ended)(void *tr, const px_h1_done_t *d);
} px_h1_io_t;

typedef struct px_h1_conn_s {
    px_worker_t *w;       /* borrows: the worker outlives its connections */
    mem_region_t *region; /* borrows: the connection's; each request's sub-arena is cut from it */
    const char *peer_ip;  /* borrows: the transport's, NUL-terminated */
    bool tls;             /* the listener speaks TLS */
    void *tr;             /* borrows: the transport that embeds this struct */
    const px_h1_io_t *io; /* borrows: static */
    px_h1_req_t *req;     /* the request being served (its own sub-arena), or NULL */
    uint8_t *ibuf;        /* owns (tcache): input not yet consumed, NULL when there is none */
    size_t ioff, ilen, icap;
    size_t scan;      /* head-end search: bytes of ibuf[ioff..] already searched */
    const char *tail; /* borrows (static): a last response written before closing */
    size_t tail_len, tail_off;
    uint32_t served;  /* requests answered on this connection */
    bool had_request; /* a request head has been read (idle vs header timeout) */
    bool closing;     /* no further request is read: close once the output is out */
    bool paused;      /* reading is paused */
} px_h1_conn_t;

/* Starts the HTTP/1.1 side of `c`, whose w, region, peer_ip, tls, tr and io the transport has
 * set (the rest zeroed), and feeds it the first `len` bytes the client sent. Thread: worker. */
void px_h1_start(px_h1_conn_t *c, const uint8_t *data, size_t len);
/* Feeds received bytes. Returns 0 or -ENOMEM (the connection must close at once). */
int px_h1_recv(px_h1_conn_t *c, const uint8_t *data, size_t len);
/* Moves response bytes into the write batch. Returns 0 or -EPROTO (close at once). */
int px_h1_send(px_h1_conn_t *c);
/* True when response bytes are waiting for room in the batch. Getter. */
bool px_h1_want_write(const px_h1_conn_t *c);
/* True when the connection should close once the batch is written (Connection: close, an
 * HTTP/1.0 client, an error answered, a drain). Getter. */
bool px_h1_want_close(const px_h1_conn_t *c);
/* True while a request is being served (no idle timeout). Getter. */
bool px_h1_busy(const px_h1_conn_t *c);
/* True when the connection is between requests with no input buffered. Getter. */
bool px_h1_idle(const px_h1_conn_t *c);
/* Drain or shed: the request in progress is answered with Connection: close; no other is
 * read. */
void px_h1_stop(px_h1_conn_t *c);
/* Describes the request in progress for /memory/regions (strings borrowed until it ends).
 * Returns false when there is none. Getter. */
bool px_h1_req_view(const px_h1_conn_t *c, px_h1_done_t *out);
/* Bytes the request in progress holds (its sub-arena and buffered response). Getter. */
size_t px_h1_bytes(const px_h1_conn_t *c);
/* The memory tenant (1-based, 0 = none) of the request in progress, and in `*counted` what it
 * counts against it (proxy/upstream/tenant.h). Getter. */
unsigned px_h1_tenant(const px_h1_conn_t *c, size_t *counted);
/* Ends the request in progress (cancels its exchange, frees its sub-arena) and the input
 * buffer. Idempotent. */
void px_h1_fini(px_h1_conn_t *c);

#endif /* PX_H1_H */
