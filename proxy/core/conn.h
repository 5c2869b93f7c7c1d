/*
 * proxy/core/conn.h: one downstream connection (TCP or TLS transport, its region, its timer, its
 * write batch) and the per-worker state connections share (listeners, read buffer, flush
 * list, access log).
 *
 * A connection is allocated inside its own region (mem_region_new(limits.conn_bytes_max)),
 * created on accept, and the region dies in the uv_close callback of its last handle.
 * Everything here is touched only by the worker thread that accepted the connection.
 */
#ifndef PX_CONN_H
#define PX_CONN_H

#include "mem/base.h"

#include <stdbool.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "mem/region.h"
#include "proxy/core/accesslog.h"
#include "proxy/core/memwait.h"
#include "proxy/core/server.h"
#include "proxy/core/worker.h"
#include "proxy/h1/h1.h"
#include "proxy/h2/h2.h"

#define PX_CONN_BATCH_BYTES 32768u /* one write batch: two max-size frames */
#define PX_CONN_READ_BYTES  65536u /* per-worker read buffer */
#define PX_CONN_LINGER_MS   2000u  /* after an HTTP/1.1 close or rejection, drain input this long */

/* Worker-thread flags set by other threads (atomically) and read in the async callback. */
#define PX_WF_DRAIN    1u
#define PX_WF_FORCE    2u
#define PX_WF_COLLECT  4u
#define PX_WF_OVERLOAD 8u  /* the overload level changed or is CRITICAL (proxy/core/shed.c) */
#define PX_WF_RELEASE  16u /* return cached memory now (px_server_release) */
#define PX_WF_RELOAD   32u /* take the config in wi->reload (px_worker_reload) */

typedef struct px_wimpl_s px_wimpl_t;
typedef struct px_conn_s px_conn_t;

typedef struct px_lis_s {
    uv_tcp_t tcp;                 /* worker */
    px_wimpl_t *wi;               /* borrows */
    const px_listener_cfg_t *cfg; /* borrows: the worker's config (w->cfg) */
    SSL_CTX *tls;                 /* borrows: cfg->tls_ctx, NULL for h2c */
    int fd;                       /* adopted by tcp */
    bool open;
} px_lis_t;

typedef enum px_conn_mode_e {
    PX_CONN_PREFACE = 0, /* checking the client preface byte by byte */
    PX_CONN_H2,
    PX_CONN_H1,        /* HTTP/1.1 (proxy/h1/): no preface, or ALPN http/1.1 or none */
    PX_CONN_H1_REJECT, /* answering 505 (HTTP/1.1 after ALPN h2), or closing HTTP/1.1, and
                          lingering */
} px_conn_mode_t;

/* What an idle HTTP/1.1 keep-alive connection holds is this struct in its region's first chunk
 * and nothing else (issue 16: at most 1 KiB each): the HTTP/2 side is allocated only for
 * HTTP/2, the write and shutdown requests only while one is pending, the peer's "ip:port"
 * formatted when it is wanted. */
struct px_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;              /* header, idle and linger timeouts */
    px_worker_t *w;                /* borrows */
    px_wimpl_t *wi;                /* borrows */
    px_lis_t *lis;                 /* borrows */
    mem_region_t *region;          /* owns: this struct lives in it */
    struct px_conn_s *prev, *next; /* worker's live list */
    struct px_conn_s *dirty_next;  /* worker's flush list */
    bool dirty;
    bool closing;
    bool writing;
    bool shed_goaway; /* overload: GOAWAY sent because it was idle (proxy/core/shed.c) */
    bool tls_done;
    bool send_oom; /* this flush could not allocate a write batch: park, do not spin */
    px_conn_mode_t mode;
    uint8_t preface_pos;
    int handles_open;
    SSL *ssl;     /* owns, NULL for h2c; its rbio and wbio are memory BIOs */
    bool rpaused; /* HTTP/1.1 paused reading (input waits for a response or the upstream) */
    bool rpump;   /* TLS: plaintext may wait in OpenSSL since the pause: read it */
    /* owns (tcache): the HTTP/2 side (proxy/h2/h2.h), made when the client preface is complete;
     * NULL before and on HTTP/1.1. It reaches back through conn_io. */
    px_h2_conn_t *h2;
    px_h1_conn_t h1; /* the HTTP/1.1 side (proxy/h1/h1.h), in PX_CONN_H1 */
    uint8_t *obuf;   /* owns (tcache): bytes for the socket */
    size_t olen, ocap;
    uint8_t *pbuf; /* owns (tcache): TLS plaintext batch */
    size_t plen;
    px_memwait_node_t memwait; /* parked in wi->memwait until memory may be back */
    uint64_t created_ms;
    uint64_t out_progress_ms; /* loop time output last moved, or had nothing pending */
    size_t out_queued;        /* tcp.write_queue_size when last looked at */
    uint16_t peer_port;
    char peer_ip[46]; /* INET6_ADDRSTRLEN; "" when unknown */
};

#define PX_CONN_PEER_MAX 56 /* "[" INET6_ADDRSTRLEN "]:65535" */

/* Writes the peer's "ip:port" ("[ip]:port" for IPv6, "-" when unknown) into `buf`
 * (PX_CONN_PEER_MAX bytes) and returns it. Thread: worker. Alloc: none. */
const char *px_conn_peer(const px_conn_t *c, char *buf);

struct px_wimpl_s {
    px_worker_t *w; /* borrows */
    px_lis_t **lis; /* owns (tcache): the array and each listener (freed when closed) */
    size_t lis_cnt; /* one per listener of w->cfg, in its order */
    struct px_worker_reload_s *reload; /* owns, under async_lock: the config to take next */
    px_conn_t *conns;                  /* live list */
    uint64_t requests_seen;            /* w->stats.requests_total at the last tick */
    size_t conns_cnt;                  /* connections not yet fully closed */
    px_conn_t *dirty;                  /* flushed once per loop iteration */
    uv_check_t check;
    uv_idle_t idle; /* keeps poll from blocking while conns are dirty */
    uv_async_t async;
    uv_timer_t tick;            /* 1 s: access log flush; drain's final GOAWAY */
    px_memwait_t memwait;       /* connections waiting for a write batch */
    unsigned flags;             /* any: PX_WF_*, atomic */
    pthread_mutex_t async_lock; /* any: guards async_live against late senders */
    bool async_live;            /* async may be sent to (under async_lock) */
    px_accesslog_t *log;        /* owns, NULL when off */
    bool draining;
    bool forced;
    bool stopping;
    int drain_ticks;
    int handles_open;
    uint64_t busy_ms;                 /* the last tick that saw a connection (uv_now) */
    uint64_t released_ms;             /* overload: the last mem_release_now() (uv_now) */
    int applied_level;                /* overload: the px_overload_level_t last applied */
    bool cache_flushed;               /* its mem/ cache went back since (see on_tick) */
    uint8_t rbuf[PX_CONN_READ_BYTES]; /* reads land here and are consumed synchronously */
    uint8_t tbuf[16384];              /* TLS plaintext out of SSL_read */
};

/* Accepts one connection on `lis` (or refuses it under overload). Thread: worker. */
void px_conn_accept(px_lis_t *lis);

/* Queues `c` for the once-per-iteration flush. */
void px_conn_mark_dirty(px_conn_t *c);

/* Writes what the HTTP/2 or HTTP/1.1 side (or the rejection) has for the socket, batched.
 * Thread: worker. */
void px_conn_flush(px_conn_t *c);

/* Starts closing: streams are ended now, the region dies in the last close callback. */
void px_conn_close(px_conn_t *c);

/* Drain: first call sends the shutdown notice, `final` the last GOAWAY. Idle non-h2
 * connections are closed. */
void px_conn_drain(px_conn_t *c, bool final);

/* Reads the send-path fault knob (WEIR_FAULT_SEND_MS, MEM_FAULT_INJECT builds) once, before
 * the workers start. Returns 0, or -EINVAL with a reason in `err`. Thread: main. */
int px_conn_faults_init(char *err, size_t err_len);

/* Re-arms the idle timer when the connection has no streams. */
void px_conn_update_timer(px_conn_t *c);

/* How long (ms, loop time `now_ms`) the pending output of `c` has made no progress: 0 while
 * no write is waiting on the socket, else the time since the kernel last took a byte of it.
 * A write waits when the peer's receive window is full: it stopped reading. Thread: worker.
 * Alloc: none. */
uint64_t px_conn_stalled_ms(px_conn_t *c, uint64_t now_ms);

/* Bytes `c` holds now: its region (streams' sub-arenas included), the response bodies its
 * streams buffer and its write batches. Thread: worker. Alloc: none (walks the streams). */
size_t px_conn_bytes(const px_conn_t *c);

/* limits.send_timeout: closes `c` (streams ended, everything it holds freed) when its pending
 * output has made no progress for that long at `now_ms`. Returns true when it closed it.
 * Thread: worker (the 1 s tick). */
bool px_conn_check_send(px_conn_t *c, uint64_t now_ms);

/* Gives back what an idle TLS connection's memory BIOs hold: each BIO that holds a buffer but
 * no bytes is replaced by an empty one. For the worker's one-second tick. Thread: worker.
 * Alloc: OpenSSL (the new BIOs, from mem/ through CRYPTO_set_mem_functions). */
void px_conn_trim(px_conn_t *c);

/* Appends rows (connection first, then its streams) to `rows`; returns the rows written. */
size_t px_conn_collect(px_conn_t *c, px_region_row_t *rows, size_t max);

#endif /* PX_CONN_H */
