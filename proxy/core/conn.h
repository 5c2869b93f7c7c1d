/*
 * proxy/core/conn.h: one downstream connection (TCP or TLS transport, its region, its timer, its
 * write batch) and the per-worker state connections share (listeners, read buffer, flush
 * list, nghttp2 callbacks, access log).
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
#define PX_CONN_FIRST_BYTES 2048u  /* a connection region's first chunk (px_conn_s) */
#define PX_CONN_LINGER_MS   2000u  /* after an HTTP/1.1 close or rejection, drain input this long */

/* Worker-thread flags set by other threads (atomically) and read in the async callback. */
#define PX_WF_DRAIN    1u
#define PX_WF_FORCE    2u
#define PX_WF_COLLECT  4u
#define PX_WF_OVERLOAD 8u  /* the overload level changed or is CRITICAL (proxy/core/shed.c) */
#define PX_WF_RELEASE  16u /* return cached memory now (px_server_release) */

typedef struct px_wimpl_s px_wimpl_t;
typedef struct px_conn_s px_conn_t;

typedef struct px_lis_s {
    uv_tcp_t tcp;                 /* worker */
    px_wimpl_t *wi;               /* borrows */
    const px_listener_cfg_t *cfg; /* borrows: config */
    SSL_CTX *tls;                 /* borrows: the server's context, NULL for h2c */
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

/* The struct lives in the first chunk of its region (mem_region_new_ext), with the codec's
 * endpoint after it: one 2,048-byte object of the thread cache is what an idle HTTP/2
 * connection holds, besides its HPACK tables while it has them. Rarely needed parts are
 * allocated when needed: the uv_write_t of a write the kernel did not take at once (tcache,
 * freed by its callback) and the uv_shutdown_t (region). */
struct px_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;              /* header, idle and linger timeouts */
    px_wimpl_t *wi;                /* borrows: its w is the worker */
    mem_region_t *region;          /* owns: this struct lives in it */
    struct px_conn_s *prev, *next; /* worker's live list */
    struct px_conn_s *dirty_next;  /* worker's flush list */
    bool dirty;
    bool closing;
    bool writing;
    bool shed_goaway; /* overload: GOAWAY sent because it was idle (proxy/core/shed.c) */
    bool tls_done;
    bool send_oom; /* this flush could not allocate a write batch: park, do not spin */
    bool rpaused;  /* HTTP/1.1 paused reading (input waits for a response or the upstream) */
    bool rpump;    /* TLS: plaintext may wait in OpenSSL since the pause: read it */
    px_conn_mode_t mode;
    int handles_open;
    uint8_t preface_pos;
    uint16_t peer_port;  /* the peer's port (host order), 0 when unknown */
    uv_shutdown_t *sreq; /* region: made by the first half-close */
    SSL *ssl;            /* owns, NULL for h2c */
    BIO *rbio, *wbio;    /* borrows: owned by ssl */
    px_h2_conn_t h2;     /* the HTTP/2 side (proxy/h2/h2.h); reaches back through conn_io */
    px_h1_conn_t h1;     /* the HTTP/1.1 side (proxy/h1/h1.h), in PX_CONN_H1 */
    uint8_t *obuf;       /* owns (tcache): bytes for the socket */
    uint8_t *pbuf;       /* owns (tcache): TLS plaintext batch */
    uint32_t olen, ocap;
    uint32_t plen;
    uint32_t out_queued;       /* tcp.write_queue_size when last looked at (one batch at most) */
    px_memwait_node_t memwait; /* parked in wi->memwait until memory may be back */
    uint64_t out_progress_ms;  /* loop time output last moved, or had nothing pending */
    char peer_ip[48];          /* "" when unknown; "ip:port" is px_conn_peer's */
};

#define PX_CONN_PEER_LEN 64u /* "[v6 address]:port" and its NUL */

/* Writes "ip:port" (IPv6 in brackets), or "-" when unknown, into `buf`; returns `buf`.
 * Alloc: none. */
const char *px_conn_peer(const px_conn_t *c, char buf[PX_CONN_PEER_LEN]);

struct px_wimpl_s {
    px_worker_t *w; /* borrows */
    px_lis_t *lis;  /* owns (tcache) */
    size_t lis_cnt;
    px_conn_t *conns; /* live list */
    size_t conns_cnt; /* connections not yet fully closed */
    px_conn_t *dirty; /* flushed once per loop iteration */
    uv_check_t check;
    uv_idle_t idle; /* keeps poll from blocking while conns are dirty */
    uv_async_t async;
    uv_timer_t tick;                   /* 1 s: access log flush; drain's final GOAWAY */
    px_memwait_t memwait;              /* connections waiting for a write batch */
    unsigned flags;                    /* any: PX_WF_*, atomic */
    pthread_mutex_t async_lock;        /* any: guards async_live against late senders */
    bool async_live;                   /* async may be sent to (under async_lock) */
    nghttp2_session_callbacks *ng_cbs; /* owns */
    nghttp2_option *ng_opt;            /* owns */
    px_accesslog_t *log;               /* owns, NULL when off */
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

/* Writes what nghttp2 (or the rejection) has for the socket, batched. Thread: worker. */
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
