/*
 * proxy/h2/h2.h: the HTTP/2 server side of one downstream connection: weir's own codec
 * (proxy/codec/endpoint.h, driven by serve.c), its streams, and the abuse and conformance
 * accounting around it (rapid reset, floods, CONTINUATION, header timeouts).
 *
 * The transport under it (proxy/core/conn.c: TCP or TLS, the write batch, the timers, the
 * access log) is reached only through px_h2_io_t, a callback table the transport fills in:
 * this code never sees the socket, the TLS object or the batch's buffers, and writes output
 * by reserving room in the batch and committing what it wrote. nghttp2 codes (its HPACK and
 * its error code names) stay in proxy/h2/ and proxy/codec/.
 *
 * A px_h2_conn_t is embedded in its transport's struct (storage in the connection's region);
 * only the connection's worker thread touches it.
 */
#ifndef PX_H2_H
#define PX_H2_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "mem/region.h"
#include "proxy/core/worker-t.h"
#include "proxy/h2/guard.h"
#include "proxy/h2/stream.h"

/* What the transport offers the HTTP/2 code. `tr` is the transport's own pointer. */
typedef struct px_h2_io_s {
    /* Room for `len` bytes at the end of the write batch: the caller writes them and then
     * calls commit. NULL when they do not fit now or the batch cannot be allocated. */
    uint8_t *(*reserve)(void *tr, size_t len);
    /* The first `len` reserved bytes are output. */
    void (*commit)(void *tr, size_t len);
    /* Free room in the write batch. Getter. */
    size_t (*room)(const void *tr);
    /* Appends a DATA frame without copying its payload: the 9 header bytes `hd` go into the
     * batch and the `len` bytes at `p` are written from where they are, in the same write
     * (one uv_write of several buffers). Takes `p` on success: `free_fn(arg)` runs once the
     * kernel has the bytes or the connection ends. Returns 0, -ENOMEM (no room or memory for
     * the header now: as reserve's NULL) or -ENOTSUP (copy it instead: TLS, or this batch
     * holds enough borrowed payload). NULL when the transport always copies. */
    int (*data_zc)(void *tr, const uint8_t *hd, const uint8_t *p, size_t len,
                   void (*free_fn)(void *arg), void *arg);
    /* Asks for a flush (px_h2_send) in this loop iteration. */
    void (*mark_dirty)(void *tr);
    /* Whether a new stream may open now (the overload policy: the transport's owner weighs
     * the memory this connection holds against the pressure). False: refuse it with
     * RST_STREAM(REFUSED_STREAM), which clients retry safely. Alloc: none. */
    bool (*admit_stream)(void *tr);
    /* The number of live streams changed (the transport re-arms its idle timer). */
    void (*streams_changed)(void *tr);
    /* `st` is about to end and be freed (the transport writes its access-log line). */
    void (*stream_ended)(void *tr, const px_stream_t *st);
} px_h2_io_t;

typedef struct px_h2_ep_s px_h2_ep_t;

struct px_h2_conn_s {
    px_h2_ep_t *ep;       /* owns (region): weir's codec; NULL before the session starts */
    px_worker_t *w;       /* borrows: the worker outlives its connections */
    mem_region_t *region; /* borrows: the connection's; every stream's sub-arena is cut from it */
    const char *peer_ip;  /* borrows: the transport's, NUL-terminated ("" when unknown) */
    bool tls;             /* the listener speaks TLS: the upstream is told https */
    void *tr;             /* borrows: the transport that embeds this struct */
    const px_h2_io_t *io; /* borrows: static */
    px_stream_t *streams; /* live streams (each owns its sub-arena) */
    size_t streams_cnt;
    bool had_request;  /* a request has been dispatched (idle vs header timeout) */
    bool drain_notice; /* the shutdown notice (or the idle GOAWAY) has been sent */
    uint32_t ctl_cnt;  /* SETTINGS, PING and empty DATA frames in the current second */
    uint64_t rate_start_ms;
    px_h2_guard_t guard; /* reset budget (zeroed = empty) */
    px_stream_t *rst_q;  /* streams whose reset waits for the next send (set outside the
                            codec, where closing a stream now could free it under the
                            upstream callback that asked) */
    px_stream_t *resp_q; /* streams whose response head waits for the next send, in order */
    px_stream_t *resp_q_tail;
    uint8_t *ovf; /* owns (tcache): frames that did not fit the write batch */
    size_t ovf_len, ovf_cap;
    uint64_t hb_start_ms;     /* when the header block being received began */
    uint64_t rst_caused_seen; /* the codec's rst_caused counted into the reset budget */
    bool in_cb;               /* inside the codec's on_headers or on_data: a stream may close at
                                 once, its memory stays until the codec's call returns */
    bool res_ovf;             /* the last reservation is in ovf, not in the batch */
    bool in_flush;            /* inside px_h2_ep_flush: a full batch stops it (no overflow) */
    bool in_write;            /* a DATA payload is being written (its release is a send) */
    bool more;                /* the codec has output that did not fit this batch */
    bool refused;             /* on_headers refused the stream it was called for (counted there) */
    bool started;             /* our SETTINGS went out (after the client's preface) */
    uint8_t preface_fed;      /* bytes of the client preface fed so far */
};

/* Starts the server side of `c` (an object of px_h2_conn_size() bytes), whose w, region,
 * peer_ip, tr and io the transport has set (the rest zeroed): weir's codec
 * (proxy/h2/serve.c), its endpoint placed after c; our SETTINGS follow the client's preface.
 * `mem` is the allocator of the HPACK tables, borrowed; it outlives the session.
 * Returns 0 or -ENOMEM. Thread: worker. Alloc: `mem`. */
MEM_MUST_CHECK int px_h2_session_new(px_h2_conn_t *c, nghttp2_mem *mem);
/* Bytes to allocate for a px_h2_conn_t: the struct and, after it, its codec endpoint, which
 * px_h2_session_new places there. Getter. */
size_t px_h2_conn_size(void);
/* The client's first bytes are neither HTTP/2's preface nor HTTP/1.1 (the transport decides):
 * queues our SETTINGS and GOAWAY(PROTOCOL_ERROR, "invalid connection preface"), after which
 * px_h2_want_io turns false once they are written (RFC 9113 3.4). Counted as a connection
 * error. Returns 0 or -ENOMEM (nothing queued: close at once). Thread: worker. Alloc: batch. */
MEM_MUST_CHECK int px_h2_reject_preface(px_h2_conn_t *c);
/* Feeds received plaintext. Returns 0 or -EPROTO (the connection must close). */
int px_h2_recv(px_h2_conn_t *c, const uint8_t *data, size_t len);
/* Moves what the codec has to send into the write batch. Returns 0 or -EPROTO. */
int px_h2_send(px_h2_conn_t *c);
/* False once the session neither reads nor writes: the connection may close. Getter. */
bool px_h2_want_io(px_h2_conn_t *c);
/* True when the codec has frames queued, or DATA it can send now. Getter. */
bool px_h2_want_write(px_h2_conn_t *c);
/* Drain, first step: the GOAWAY with the last stream id 2^31-1 (RFC 9113 6.8). Once. */
void px_h2_shutdown_notice(px_h2_conn_t *c);
/* GOAWAY(NO_ERROR) with the last stream id processed. */
void px_h2_goaway(px_h2_conn_t *c);
/* Overload shedding: resets `st` with RST_STREAM(ENHANCE_YOUR_CALM); its sub-arena and
 * buffers go when the codec closes the stream. Thread: worker. */
void px_h2_stream_shed(px_stream_t *st);
/* Ends every stream (cancels upstream exchanges, logs, frees sub-arenas). */
void px_h2_streams_end(px_h2_conn_t *c);
/* Resets streams that moved no byte for limits.stream_idle_timeout_ms (at `now_ms`, loop
 * time; 0 = never), and ends the connection when a header block has been open for
 * limits.header_timeout_ms. Returns how many were reset. */
size_t px_h2_sweep_idle(px_h2_conn_t *c, uint64_t now_ms);
/* True when px_h2_sweep_idle has work: live streams, or the codec's own timers. Getter. */
bool px_h2_want_sweep(const px_h2_conn_t *c);
/* The RFC 9113 5.1 state of `st` as the codec has it ("open", "half_closed_remote", ...;
 * "closed" once the codec let go of it). Static string. Getter. */
const char *px_h2_stream_state(const px_stream_t *st);
/* weir's phase of `st`, for /memory/regions and the logs: "request_headers" (not yet routed),
 * "waiting_upstream" (routed, no response head yet), "response_queued" (the head waits for the
 * next send), "response_body" (head sent, body flowing), "response_sent" (END_STREAM handed to
 * the codec), "reset" (refused or reset by weir), "closed" (the codec closed it). Static string
 * (px_stream_phase_name). Getter. */
const char *px_h2_stream_phase(const px_stream_t *st);
/* Frees the session (after px_h2_streams_end). */
void px_h2_session_free(px_h2_conn_t *c);

#endif /* PX_H2_H */
