/*
 * proxy/upstream/upstream.h: one proxied exchange with a cluster (the "upstream request"), and the
 * per-worker connection pools behind it (h2c multiplexed, HTTP/1.1 keep-alive).
 *
 * The downstream stream creates the exchange and owns it until it ends: after on_response_end
 * or on_error the exchange frees itself and fires no more callbacks; px_upstream_cancel()
 * ends it early (downstream reset), also with no more callbacks. Everything runs on the
 * worker's loop thread.
 *
 * Flow control is end to end:
 *  - Request body: the downstream hands bytes to px_upstream_send_body(), which copies them
 *    into the exchange's bounded buffer (limits.stream_buffer_bytes). When bytes have left
 *    for the upstream, on_request_body_drained(len) fires and the downstream opens its
 *    receive window by that much (px_h2_ep_consume). The downstream never has more
 *    than one window's worth outstanding, so the buffer never overflows.
 *  - Response body: on_response_data() passes bytes the downstream must copy into its own
 *    bounded buffer; the exchange never delivers more than stream_buffer_bytes that have not
 *    been acknowledged with px_upstream_consumed(). The downstream calls that as it sends the
 *    bytes to the client, which opens the upstream window (h2c: WINDOW_UPDATE; HTTP/1.1:
 *    resumes reading the socket).
 */
#ifndef PX_UPSTREAM_H
#define PX_UPSTREAM_H

#include "mem/base.h"
#include "proxy/config/config.h"
#include "proxy/upstream/http.h"

#include <stdbool.h>

#include <nghttp2/nghttp2.h>

typedef struct px_worker_s px_worker_t;
typedef struct px_upstream_req_s px_upstream_req_t;

/* Informational (1xx) responses passed on per exchange; an upstream that sends more is not
 * allowed to make weir queue HEADERS frames without bound. */
#define PX_UPSTREAM_INFO_MAX 8

typedef struct px_upstream_cbs_s {
    /* The response head. `hdrs` (without pseudo-headers, without hop-by-hop headers) are
     * borrowed for the call. Fires once, or not at all if on_error fires first. */
    void (*on_response_headers)(void *ud, int status, const px_header_t *hdrs, size_t cnt);
    /* An informational (1xx) response head other than 101, such as 100 Continue or 103
     * Early Hints; same header rules as on_response_headers. Fires zero or more times before
     * on_response_headers, at most PX_UPSTREAM_INFO_MAX times (later ones are dropped).
     * Optional: NULL drops them. */
    void (*on_response_informational)(void *ud, int status, const px_header_t *hdrs, size_t cnt);
    /* Response body bytes, borrowed for the call (see flow control above). */
    void (*on_response_data)(void *ud, const uint8_t *data, size_t len);
    /* Response trailers, borrowed for the call. Fires at most once, before on_response_end. */
    void (*on_response_trailers)(void *ud, const px_header_t *hdrs, size_t cnt);
    /* The response is complete. The exchange is freed after this returns. */
    void (*on_response_end)(void *ud);
    /* The exchange failed: `status` is 502, 503 or 504 for the downstream to send if it has
     * not sent headers yet (else it resets the stream); `reason` is a short static text such
     * as "upstream connect timeout". The exchange is freed after this returns. */
    void (*on_error)(void *ud, int status, const char *reason);
    /* `len` request-body bytes left for the upstream; the downstream may accept as many more. */
    void (*on_request_body_drained)(void *ud, size_t len);
} px_upstream_cbs_t;

/* Starts an exchange to `cluster`. `hdrs` are the request's headers as the downstream
 * received them, pseudo-headers (:method, :scheme, :authority, :path) first, with
 * x-forwarded-for and via already added; they are copied before this returns. `end_stream`
 * says there is no request body. Picks an endpoint by the cluster's lb policy, reuses or opens
 * a pooled connection (retrying other endpoints on connect failure) and may queue the request
 * while a connection is being set up.
 * Returns 0 and sets `*out`, or a negative errno (nothing was started, no callback fires).
 * Ownership: `*out` belongs to the caller until on_response_end/on_error, or until
 * px_upstream_cancel. Thread: worker. Alloc: tcache. */
int px_upstream_start(px_worker_t *w, const px_cluster_cfg_t *cluster, const px_header_t *hdrs,
                      size_t cnt, bool end_stream, const px_upstream_cbs_t *cbs, void *ud,
                      px_upstream_req_t **out);

/* Queues request-body bytes (copied) and, with `end`, ends the request body.
 * Returns 0, or -ENOBUFS if this would pass the bounded buffer (a downstream bug or a peer
 * violating flow control). */
int px_upstream_send_body(px_upstream_req_t *r, const uint8_t *data, size_t len, bool end);

/* Sends request trailers; ends the request body. `hdrs` are copied. */
int px_upstream_send_trailers(px_upstream_req_t *r, const px_header_t *hdrs, size_t cnt);

/* The downstream has sent `len` response-body bytes on; open the upstream window. */
void px_upstream_consumed(px_upstream_req_t *r, size_t len);

/* Aborts the exchange (downstream stream reset or closed). No callback fires afterwards.
 * r freed */
void px_upstream_cancel(px_upstream_req_t *r);

/* True when the response head is the whole response: an h2c HEADERS frame with END_STREAM,
 * such as gRPC's "trailers-only" form that carries every gRPC error status. Read it in
 * on_response_headers, to send the head on as one HEADERS frame with END_STREAM (no body and
 * no trailers follow; on_response_end comes next). Getter. Thread: worker. */
bool px_upstream_response_head_only(const px_upstream_req_t *r);

/* Bytes the exchange holds now: its request copy, its request-body buffer (allocated on the
 * first body byte, limits.stream_buffer_bytes) and its response-header scratch. For the
 * overload manager's "heaviest streams" choice. Getter: never allocates. Thread: worker. */
size_t px_upstream_bytes(const px_upstream_req_t *r);

/* Retries made for `r` so far (for the access log). Getter; also valid inside the exchange's
 * final callbacks (on_response_end, on_error). Thread: worker. */
unsigned px_upstream_retries(const px_upstream_req_t *r);

/* Per-worker pools: created when the worker starts, closed when it stops. `ng_mem` is the
 * allocator of the worker's HPACK tables (borrowed; it outlives the pools). */
int px_upstream_worker_init(px_worker_t *w, nghttp2_mem *ng_mem);
/* Closes every pooled connection; `done` is called on the worker thread once all handles have
 * closed (so the worker can finish its loop). */
void px_upstream_worker_close(px_worker_t *w, void (*done)(px_worker_t *w));

/* The worker has switched to a new config (w->cfg, after a reload). A cluster of the old config
 * that the new one has unchanged (px_config_cluster_same) keeps its pool: its connections and
 * TLS sessions carry on. Any other cluster is retired: its idle connections close now, the
 * others when their last exchange ends, and the pool (with its reference on the old config)
 * is freed when nothing of it is left. Thread: worker. Alloc: none. */
void px_upstream_reconfigure(px_worker_t *w);

/* Overload: while false, responses on HTTP/1.1 upstream connections close the connection
 * instead of returning it to the pool, and idle pooled connections are closed. */
void px_upstream_set_keepalive(px_worker_t *w, bool on);

/* ---- Internal to proxy/upstream/upstream.c, h1.c and h2w.c ---------------------------------
 * The exchange, connection and pool types are shared by the files of the upstream module and
 * by its driver tests and fuzzers; everyone else treats them as opaque. */
#ifdef PX_UPSTREAM_INTERNAL

#include <http_parser.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "mem/region.h"
#include "proxy/codec/endpoint.h"

/* An intrusive doubly linked list node; a list head is a node that points at itself. */
typedef struct px_uplink_s {
    struct px_uplink_s *prev, *next;
} px_uplink_t;

/* A bounded byte ring (the request-body buffer). Alloc: tcache, on first use. */
typedef struct px_upring_s {
    uint8_t *buf; /* owns */
    size_t cap, off, len;
} px_upring_t;

/* Header block being collected from a peer: names and values are appended to `buf`, entries
 * keep offsets (so `buf` may grow); px__upstream_hdrs_view() builds the px_header_t array. */
typedef struct px_uphdr_ent_s {
    uint32_t name_off, name_len, value_off, value_len;
} px_uphdr_ent_t;

typedef struct px_uphdrs_s {
    char *buf; /* owns (tcache), or borrows `first` */
    size_t len, cap;
    px_uphdr_ent_t *ent; /* owns (tcache), or borrows `first` */
    size_t cnt, ent_cap;
    /* borrows (the exchange's own block, PX_UPHDRS_FIRST_BYTES): the first entries and bytes
     * of a head go there, so a usual response head costs no allocation; NULL = none */
    char *first;
} px_uphdrs_t;

/* The part of `first` for entries, and for bytes (what a usual response head needs). */
#define PX_UPHDRS_FIRST_ENTS  16
#define PX_UPHDRS_FIRST_BUF   512
#define PX_UPHDRS_FIRST_BYTES (PX_UPHDRS_FIRST_ENTS * sizeof(px_uphdr_ent_t) + PX_UPHDRS_FIRST_BUF)

typedef struct px_upstream_pools_s px_upstream_pools_t;
typedef struct px_upconn_s px_upconn_t;
typedef struct px_upproto_ops_s px_upproto_ops_t;
typedef struct px_upep_s px_upep_t;
typedef struct px_upcluster_s px_upcluster_t;
typedef struct px_hcluster_s px_hcluster_t;

typedef enum px_upreq_state_e {
    PX_UPREQ_QUEUED = 0, /* in ep->waitq: no connection slot yet */
    PX_UPREQ_PENDING,    /* in conn->pending: its connection is still connecting */
    PX_UPREQ_ACTIVE,     /* in conn->active: sent (or being sent) on the connection */
    PX_UPREQ_DONE,       /* finished or cancelled; its timer is closing, then it is freed */
} px_upreq_state_t;

struct px_upstream_req_s {
    px_uplink_t link;      /* in ep->waitq, conn->pending or conn->active */
    px_upcluster_t *cl;    /* borrows: the pool outlives its exchanges */
    px_upep_t *ep;         /* borrows: the endpoint it is counted on, or NULL */
    px_upconn_t *conn;     /* borrows: set while PENDING or ACTIVE */
    px_upstream_cbs_t cbs; /* copied */
    void *ud;
    px_upreq_state_t state;
    uv_timer_t timer; /* request timeout; closing it frees the exchange */
    /* request */
    px_header_t *hdrs; /* owns (tcache): one block with the header bytes */
    size_t hdrs_cnt;
    px_header_t *trailers; /* owns (tcache), or NULL */
    size_t trailers_cnt;
    px_upring_t body;       /* bytes accepted from the downstream, not yet sent upstream */
    int64_t content_length; /* from the request headers, -1 when absent */
    uint64_t body_sent;     /* bytes that left for the upstream */
    size_t drained_pending; /* drained bytes not yet reported with on_request_body_drained */
    bool req_end;           /* the request body is complete (end_stream, end or trailers) */
    bool req_done;          /* everything, end of body included, has been handed to the wire */
    bool is_head;
    bool idempotent;        /* GET or HEAD: may be replayed on a fresh connection */
    bool probe;             /* an active health check (health.c): no retry, no outlier report */
    bool retry_held;        /* holds one unit of the cluster's retry budget until it ends */
    uint8_t retries;        /* retries made (cluster retries.max bounds them) */
    uint64_t tried;         /* endpoints it was sent to (bit = index, the first 64) */
    uint32_t probe_idx;     /* probe: the endpoint it checks */
    bool probe_recorded;    /* probe: its verdict went to health.c */
    unsigned connects;      /* connect attempts made for this exchange */
    bool connect_timed_out; /* the last connect attempt timed out */
    bool connect_other_err; /* some connect attempt failed with other than ECONNREFUSED */
    /* response */
    bool resp_started; /* any response byte seen (a retry is no longer safe) */
    bool headers_sent; /* on_response_headers fired */
    bool head_only;    /* the head ended the response (h2c HEADERS with END_STREAM) */
    uint8_t info_cnt;  /* informational heads seen (passed on up to PX_UPSTREAM_INFO_MAX) */
    int status;
    px_uphdrs_t rh;      /* response headers or trailers being collected */
    size_t resp_unacked; /* delivered body bytes not yet px_upstream_consumed */
    int32_t stream_id;   /* h2c, -1 before submit (codec: 0 while its HEADERS wait) */
    /* h2c on weir's codec (h2w.c) */
    px_h2_ep_stream_t *h2w_st; /* borrows: the stream while it is live and bound to us */
    size_t h2w_inflight;       /* body bytes lent to the codec (one ring slice at a time) */
    int fail_status;           /* set with fail_reason while a deferred failure is pending */
    const char *fail_reason;
};

typedef enum px_upconn_state_e {
    PX_UPCONN_CONNECTING = 0,
    PX_UPCONN_READY,
    PX_UPCONN_CLOSING,
} px_upconn_state_t;

struct px_upconn_s {
    px_uplink_t link;           /* in ep->conns */
    px_uplink_t flush_link;     /* in pools->flushq while a write is wanted */
    mem_region_t *region;       /* owns: this struct and its buffers live in it */
    px_upstream_pools_t *pools; /* borrows */
    px_upcluster_t *cl;         /* borrows */
    px_upep_t *ep;              /* borrows */
    px_proto_t proto;
    const px_upproto_ops_t *ops; /* borrows (static): the protocol implementation */
    px_upconn_state_t state;
    int connect_err;  /* uv_tcp_connect failed at once: reported from the timer */
    int handles_open; /* tcp + timer; the region is freed when both have closed */
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout, then idle timeout */
    uv_connect_t connect_req;
    uv_write_t write_req;
    bool writing; /* write_req in flight (wbuf is borrowed by libuv) */
    bool reading;
    uint8_t *wbuf; /* owns (tcache): the batched output, only while a batch is built or
                      written (an idle connection holds none); grows for big heads */
    size_t wlen, wcap;
    size_t rcap;         /* the largest read; read buffers come from the tcache per read */
    px_uplink_t pending; /* exchanges waiting for the connect */
    px_uplink_t active;  /* exchanges on the connection */
    size_t active_cnt;
    unsigned uses;  /* exchanges started on it (1 = fresh) */
    bool for_probe; /* opened for a health probe: its connect failure is no outlier report */
    /* h2c */
    bool goaway;
    /* h2c on weir's codec (h2w.c) */
    px_h2_ep_t *h2w;   /* region (its HPACK tables: tcache), freed in conn_fini */
    uint8_t *h2w_obuf; /* owns (tcache): the codec's output since the last fill, or NULL */
    size_t h2w_olen, h2w_ocap;
    uint64_t h2w_settings; /* the peer's SETTINGS counted at the last read */
    uint32_t h2w_unopened; /* exchanges submitted whose stream the next fill opens */
    /* HTTP/1.1 */
    http_parser parser;
    px_upstream_req_t *cur; /* borrows: the exchange the connection serves */
    bool h1_idle;           /* in the pool, waiting for the next request */
    bool h1_head_sent;      /* the current request line and headers are in wbuf */
    bool h1_chunked;        /* the current request body is sent chunked */
    bool h1_trailing;       /* the parser is in the response trailers */
    bool h1_field_open;     /* a header name is being collected */
    bool h1_msg_done;       /* the response is complete */
    bool h1_keepalive;      /* the response allows reuse */
    size_t h1_wsent;        /* body bytes in the write in flight */
    /* TLS (cluster tls): the transport under both protocols, on memory BIOs (tlsio.h). The
     * connection stays CONNECTING until the handshake is done, under the connect timer. */
    SSL *ssl;           /* owns (SSL_free when the last handle closed), or NULL */
    BIO *rbio, *wbio;   /* borrows: owned by ssl */
    bool tls_connected; /* TCP is up, the handshake runs */
    bool tls_rpending;  /* plaintext may wait in ssl for a reader that had no room */
};

struct px_upep_s {
    const px_addr_t *addr;    /* borrows: from the cluster's owner config (its reference) */
    size_t idx;               /* in the cluster's endpoints (and in its px_hcluster_t) */
    px_upstream_req_t *probe; /* borrows: the health probe in flight (probing worker), or NULL */
    px_uplink_t conns;        /* every connection to this endpoint */
    size_t conns_cnt;
    px_uplink_t waitq;     /* exchanges waiting for a slot */
    size_t active;         /* exchanges counted on this endpoint (least_request) */
    SSL_SESSION *tls_sess; /* owns: the latest TLS session, offered by the next connect */
};

struct px_upcluster_s {
    px_upcluster_t *next;
    const px_cluster_cfg_t *cfg; /* borrows: from owner */
    const px_config_t *owner;    /* owns a reference: the config cfg belongs to (NULL: cfg
                                    is borrowed from outside any config, in driver tests) */
    size_t live;                 /* exchanges and connections not yet freed */
    bool retired;                /* a reload dropped or changed it: no new exchanges */
    px_upstream_pools_t *pools;
    px_upep_t *eps; /* owns (tcache) */
    size_t eps_cnt;
    size_t rr_next;
    px_hcluster_t *hc; /* owns a reference: the owner config's health entry of this cluster
                          (shared by every worker), or one of its own (no owner) */
    /* The probing worker (worker 0) only: health checks and the outlier sweep. */
    uv_timer_t hc_timer;
    bool hc_timer_on;
    uint64_t hc_next_check_ms, hc_next_sweep_ms;
};

struct px_upstream_pools_s {
    px_worker_t *w;           /* borrows */
    nghttp2_mem *ng_mem;      /* borrows: what h2c HPACK tables allocate through */
    px_upcluster_t *clusters; /* owns */
    px_uplink_t flushq;       /* connections that want a write this loop iteration */
    uv_check_t flush_check;   /* runs the batched writes after each poll */
    uv_idle_t flush_idle;     /* keeps poll from blocking while writes are wanted */
    size_t handles_open;      /* exchange timers and connection handles not yet closed */
    uint8_t *rbuf;            /* owns: the read buffer every connection of this worker reads
                                 into (data is consumed inside on_read), UP_RBUF_LEN bytes */
    bool rbuf_busy;           /* rbuf is lent to a read in progress */
    uint8_t *tbuf; /* owns: TLS plaintext read out of a connection's SSL, UP_RBUF_LEN bytes,
                      consumed at once like rbuf */
    bool keepalive;
    bool closing;
    void (*done)(px_worker_t *w);
};

/* One upstream protocol: what upstream.c calls for a connection and its exchanges, so that
 * it never branches on the protocol. Two implementations: HTTP/1.1 (h1.c) and h2c (or h2 over
 * TLS) on weir's own codec (h2w.c). */
struct px_upproto_ops_s {
    const char *name;
    /* Many exchanges at once per connection (h2c); else one at a time, kept alive between. */
    bool multiplexed;
    /* Sets up the protocol state of a new (connecting) connection. Returns 0 or -ENOMEM. */
    int (*conn_init)(px_upconn_t *c);
    /* Frees it: from the connection's last close callback, or after conn_init failed later. */
    void (*conn_fini)(px_upconn_t *c);
    /* A READY connection takes one more exchange now. Getter. */
    bool (*has_room)(const px_upconn_t *c);
    /* Starts `r` on `c` (sent by the next fill). Returns 0 or a negative errno. */
    int (*submit)(px_upconn_t *c, px_upstream_req_t *r);
    /* Detaches ACTIVE `r` from its connection before it is freed (downstream cancel). */
    void (*cancel)(px_upstream_req_t *r);
    /* The connection is closing under `r`: drop any reference from the protocol to `r`. */
    void (*forget)(px_upconn_t *c, px_upstream_req_t *r);
    /* More request body (or its end) is buffered in r->body. */
    void (*body)(px_upstream_req_t *r);
    /* The downstream took `len` response bytes: open the upstream's window by as much. */
    void (*consumed)(px_upstream_req_t *r, size_t len);
    /* Bytes read from the socket. */
    void (*read)(px_upconn_t *c, const uint8_t *data, size_t len);
    /* How many bytes the next read may take (flow control by not reading); NULL: any. */
    size_t (*read_room)(const px_upconn_t *c);
    /* The peer closed its side (FIN); the caller closes the connection next. */
    void (*eof)(px_upconn_t *c);
    /* Puts what waits to be sent into c->wbuf. Returns 0 or a negative errno (close it). */
    int (*fill)(px_upconn_t *c);
    /* fill brings its own batch (sets c->wbuf, wlen, wcap; gives: mem_free) instead of
     * filling the UP_WBUF_LEN buffer upstream.c allocates before it. */
    bool fill_gives_wbuf;
    /* The previous batch reached the socket. */
    void (*written)(px_upconn_t *c);
};

extern const px_upproto_ops_t px__uph1_ops;
extern const px_upproto_ops_t px__uph2w_ops;

/* The implementation a connection of `cl` gets, by protocol. Getter. */
const px_upproto_ops_t *px__upstream_ops(const px_cluster_cfg_t *cl);

/* upstream.c, for probe.c: the pools' entry for cluster `cfg` (made on first use; NULL on
 * OOM); a pools handle closed; one holder of `cl` (cl->live) gone, which frees a retired
 * cluster with none left; an active health check of `ep` (GET, end of stream, no retry,
 * no outlier report, `timeout_ms` for the whole exchange, the callbacks' `ud` is the exchange
 * itself). */
px_upcluster_t *px__upstream_cluster_get(px_upstream_pools_t *p, const px_cluster_cfg_t *cfg);
void px__upstream_handle_closed(px_upstream_pools_t *p);
void px__upstream_cluster_unlive(px_upcluster_t *cl);
int px__upstream_start_probe(px_upcluster_t *cl, px_upep_t *ep, const px_header_t *hdrs, size_t cnt,
                             uint32_t timeout_ms, const px_upstream_cbs_t *cbs,
                             px_upstream_req_t **out);
/* probe.c: starts the health checks and outlier sweeps of every cluster of the worker's config
 * that has them and has no timer yet (worker 0: at start and after each reload), and stops them,
 * all or one cluster's (a timer holds its cluster, cl->live, until its close callback, which
 * goes through px__upstream_handle_closed). */
int px__upprobe_start(px_upstream_pools_t *p);
void px__upprobe_stop(px_upstream_pools_t *p);
void px__upprobe_stop_cluster(px_upcluster_t *cl);

/* upstream.c, for h1.c and h2w.c */
void px__upstream_fail(px_upstream_req_t *r, int status, const char *reason);
void px__upstream_end(px_upstream_req_t *r);
int px__upstream_deliver_headers(px_upstream_req_t *r, bool trailers);
/* Passes the informational head held in r->rh (status `status`, 100..199 but not 101) to
 * on_response_informational and clears it. Returns 0, or -ECANCELED when the callback
 * finished the exchange. */
int px__upstream_deliver_informational(px_upstream_req_t *r, int status);
void px__upstream_deliver_data(px_upstream_req_t *r, const uint8_t *data, size_t len);
void px__upstream_lost(px_upstream_req_t *r, bool retry_ok, const char *reason);
void px__upstream_conn_close(px_upconn_t *c);
void px__upstream_conn_dirty(px_upconn_t *c);
void px__upstream_read_start(px_upconn_t *c);
void px__upstream_conn_idle(px_upconn_t *c);
void px__upstream_slot_freed(px_upconn_t *c);
void px__upstream_drained(px_upstream_req_t *r, size_t len);
int px__upstream_hdrs_add(px_uphdrs_t *h, const char *name, size_t name_len, const char *value,
                          size_t value_len);
int px__upstream_hdrs_append(px_uphdrs_t *h, bool value, const char *s, size_t len);
void px__upstream_hdrs_reset(px_uphdrs_t *h);
size_t px__upstream_ring_peek(const px_upring_t *b, const uint8_t **p);
void px__upstream_ring_drop(px_upring_t *b, size_t len);
void px__upstream_link_del(px_uplink_t *n);
void px__upstream_link_add(px_uplink_t *head, px_uplink_t *n);

#endif /* PX_UPSTREAM_INTERNAL */

#endif /* PX_UPSTREAM_H */
