/*
 * proxy/core/conn.c: the downstream transport: accept, TLS through memory BIOs, the protocol
 * choice (h2c listeners: the client preface or an HTTP/1.1 request line; TLS: ALPN h2, else
 * HTTP/1.1), batched writes, timers and teardown.
 *
 * Writes are batched: HTTP/2 output collected during one loop iteration goes out in one
 * uv_try_write (or uv_write for the rest). The HTTP/2 side writes into the batch through
 * conn_io (reserve, then commit) and never sees its buffers. One write is in flight at most;
 * the codec is not asked for more until it completes, which is the transport's back-pressure.
 * A write that waits on the socket is watched: limits.send_timeout closes a connection whose
 * pending output the kernel has not taken a byte of for that long (px_conn_check_send), and
 * under memory pressure the overload manager closes the heaviest such connections first
 * (proxy/core/shed.c). Thread: the worker that accepted the connection, only.
 */
#include "proxy/core/conn.h"
#include "mem/base.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "mem/malloc.h"
#include "mem/subregion.h"
#include "proxy/core/alloc.h"
#include "proxy/core/overload.h"
#include "proxy/core/tls.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN 24

#define H1_BODY                                                                                    \
    "weir: this connection chose HTTP/2 by ALPN (h2) but sent HTTP/1.1.\n"                         \
    "Offer http/1.1 (or no ALPN) for HTTP/1.1, or speak HTTP/2.\n"

/* The length is computed by the compiler so the header can never disagree with the body. */
static const char h1_body[] = H1_BODY;
static const char h1_head[] = "HTTP/1.1 505 HTTP Version Not Supported\r\n"
                              "Content-Type: text/plain\r\n"
                              "Connection: close\r\n"
                              "Content-Length: ";

static void on_close(uv_handle_t *h);
static void h1_linger(px_conn_t *c);
static void tls_read(px_conn_t *c);
static void on_timer(uv_timer_t *t);
static void h1_progress(px_conn_t *c);

/* Only its being active matters: it makes the loop poll without blocking, so the check
 * handle flushes dirty connections in this iteration. */
static void on_idle(uv_idle_t *h)
{
    (void)h;
}

static uint64_t now_ms(px_conn_t *c)
{
    return uv_now(&c->wi->w->loop);
}

void px_conn_mark_dirty(px_conn_t *c)
{
    if (c->dirty || c->closing)
        return;
    c->dirty = true;
    c->dirty_next = c->wi->dirty;
    if (c->wi->dirty == NULL)
        uv_idle_start(&c->wi->idle, on_idle);
    c->wi->dirty = c;
}

/* ---- send-path fault injection (test knob) ----------------------------------------------- */

/* WEIR_FAULT_SEND_MS=T (MEM_FAULT_INJECT builds, not in --help): from the first allocation of a
 * downstream write batch on, every one fails for T ms, process-wide, so that a test can hold
 * the send path out of memory for a known time and watch what weir does meanwhile
 * (tests/e2e/84-downstream-transport.py). Read once by the main thread before the workers start. */
static uint64_t fault_send_ns;       /* 0: off */
static uint64_t fault_send_until_ns; /* any: set once by the first failure (atomic) */

int px_conn_faults_init(char *err, size_t err_len)
{
    const char *v = getenv("WEIR_FAULT_SEND_MS");
    if (v == NULL || v[0] == '\0')
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long ms = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || ms == 0 || ms > 3600000) {
        snprintf(err, err_len, "WEIR_FAULT_SEND_MS: want milliseconds 1-3600000, got \"%s\"", v);
        return -EINVAL;
    }
#if defined(MEM_FAULT_INJECT) && MEM_FAULT_INJECT
    fault_send_ns = (uint64_t)ms * 1000000u;
    fprintf(stderr,
            "weir: WEIR_FAULT_SEND_MS: downstream write batches fail for %llu ms from the first "
            "(test knob)\n",
            ms);
    return 0;
#else
    snprintf(err, err_len, "WEIR_FAULT_SEND_MS: this build has no fault injection");
    return -EINVAL;
#endif
}

/* True when the knob says this batch allocation fails. Only on the allocation path. */
static bool fault_send_hit(void)
{
    if (MEM_LIKELY(fault_send_ns == 0))
        return false;
    uint64_t now = uv_hrtime();
    uint64_t until = __atomic_load_n(&fault_send_until_ns, __ATOMIC_RELAXED);
    if (until == 0) {
        uint64_t want = now + fault_send_ns;
        if (__atomic_compare_exchange_n(&fault_send_until_ns, &until, want, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            until = want;
    }
    return now < until;
}

/* ---- DATA payloads written from their own buffers (h2c) ---------------------------------- */

/* An h2c batch may borrow DATA payloads (io_data_zc): the frame header goes into the batch,
 * the payload stays in the stream buffer's chunk, and write_out sends the batch and the
 * payloads in one uv_write of several buffers. The table of borrowed payloads lives at the
 * tail of the batch's own allocation, so it costs no memory while the connection is idle. */
#define CONN_SEGS_MAX      32u     /* payloads one batch borrows */
#define CONN_SEG_BYTES_MAX 262144u /* and their bytes, after which payloads are copied */
#define CONN_ZC_MIN        1024u   /* below this a copy costs less than another buffer */
#define CONN_FRAME_HD_LEN  9u      /* RFC 9113 4.1 */

typedef struct conn_seg_s {
    const uint8_t *p;   /* takes: released through fn */
    void (*fn)(void *); /* releases p */
    void *arg;
    uint32_t at;  /* the batch offset the payload follows (its frame header ends there) */
    uint32_t len; /* > 0 */
} conn_seg_t;

typedef struct conn_segs_s {
    uint32_t cnt;
    uint32_t bytes; /* sum of the payloads' len */
    conn_seg_t seg[CONN_SEGS_MAX];
} conn_segs_t;

/* An h2c batch's bytes: its allocation less the table. */
#define CONN_BATCH_DATA (PX_CONN_BATCH_BYTES - sizeof(conn_segs_t))
MEM_STATIC_ASSERT(CONN_BATCH_DATA % 8 == 0, "the table after the batch bytes is aligned");

/* The table of an h2c connection's batch (which must exist). */
static conn_segs_t *conn_segs(const px_conn_t *c)
{
    MEM_ASSERT_HOT(c->ssl == NULL);
    MEM_ASSERT_HOT(c->obuf != NULL);
    return (conn_segs_t *)(void *)(c->obuf + CONN_BATCH_DATA);
}

/* Payload bytes the batch borrows (0 under TLS or without a batch). Getter. */
static size_t conn_seg_bytes(const px_conn_t *c)
{
    return c->ssl == NULL && c->obuf != NULL ? conn_segs(c)->bytes : 0;
}

/* Releases every borrowed payload: written, or the connection ends. */
static void segs_release(px_conn_t *c)
{
    if (c->ssl != NULL || c->obuf == NULL)
        return;
    conn_segs_t *s = conn_segs(c);
    for (uint32_t i = 0; i < s->cnt; i++)
        s->seg[i].fn(s->seg[i].arg);
    s->cnt = 0;
    s->bytes = 0;
}

static size_t conn_cap(const px_conn_t *c)
{
    return c->ssl ? PX_CONN_BATCH_BYTES : CONN_BATCH_DATA;
}

/* Over h2c the batch is what a write in flight is sending (after_write empties it): nothing may
 * be added until it completes. Under TLS the plaintext batch is apart from the records being
 * written, and takes more at any time. */
static bool conn_batch_busy(const px_conn_t *c)
{
    return c->writing && c->ssl == NULL;
}

static size_t conn_room(const px_conn_t *c)
{
    if (conn_batch_busy(c))
        return 0;
    return conn_cap(c) - (c->ssl ? c->plen : c->olen);
}

/* Room for `len` bytes at the end of the batch (plaintext under TLS), allocated on first use
 * (an idle connection holds no batch). NULL when they do not fit now (also while an h2c batch
 * is being written: a frame the codec writes from a timer then waits in its overflow) or on
 * OOM. */
static uint8_t *conn_reserve(px_conn_t *c, size_t len)
{
    if (conn_batch_busy(c))
        return NULL;
    uint8_t **buf = c->ssl ? &c->pbuf : &c->obuf;
    size_t used = c->ssl ? c->plen : c->olen;
    if (len > conn_cap(c) - used)
        return NULL;
    if (*buf == NULL) {
        *buf = fault_send_hit() ? NULL : mem_malloc(PX_CONN_BATCH_BYTES);
        if (*buf == NULL) {
            /* Out of memory, not out of room: px_conn_flush parks the connection. */
            c->send_oom = true;
            return NULL;
        }
        if (!c->ssl) {
            c->ocap = PX_CONN_BATCH_BYTES;
            conn_segs(c)->cnt = 0;
            conn_segs(c)->bytes = 0;
        }
    }
    return *buf + used;
}

static void conn_commit(px_conn_t *c, size_t len)
{
    size_t *used = c->ssl ? &c->plen : &c->olen;
    MEM_ASSERT_HOT(*used + len <= PX_CONN_BATCH_BYTES);
    *used += len;
}

/* Appends all of `data` or nothing; returns false when it does not fit. */
static bool conn_append(px_conn_t *c, const uint8_t *data, size_t len)
{
    uint8_t *p = conn_reserve(c, len);
    if (p == NULL)
        return false;
    memcpy(p, data, len);
    conn_commit(c, len);
    return true;
}

/* ---- what the HTTP/2 side may ask of the transport (px_h2_io_t) ------------------------- */

static uint8_t *io_reserve(void *tr, size_t len)
{
    return conn_reserve(tr, len);
}

static void io_commit(void *tr, size_t len)
{
    conn_commit(tr, len);
}

static size_t io_room(const void *tr)
{
    return conn_room(tr);
}

static int io_data_zc(void *tr, const uint8_t *hd, const uint8_t *p, size_t len,
                      void (*fn)(void *arg), void *arg)
{
    px_conn_t *c = tr;
    MEM_ASSERT(fn != NULL);
    MEM_ASSERT(p != NULL);
    /* Under TLS the payload goes through SSL_write anyway: one copy is the least there. */
    if (c->ssl != NULL || len < CONN_ZC_MIN || len > CONN_SEG_BYTES_MAX || conn_batch_busy(c))
        return -ENOTSUP;
    if (c->obuf != NULL) {
        const conn_segs_t *s = conn_segs(c);
        if (s->cnt == CONN_SEGS_MAX || s->bytes + len > CONN_SEG_BYTES_MAX)
            return -ENOTSUP;
    }
    uint8_t *b = conn_reserve(c, CONN_FRAME_HD_LEN);
    if (b == NULL)
        return -ENOMEM;
    memcpy(b, hd, CONN_FRAME_HD_LEN);
    conn_commit(c, CONN_FRAME_HD_LEN);
    conn_segs_t *s = conn_segs(c);
    s->seg[s->cnt++] =
        (conn_seg_t){.p = p, .fn = fn, .arg = arg, .at = c->olen, .len = (uint32_t)len};
    s->bytes += (uint32_t)len;
    return 0;
}

static void io_mark_dirty(void *tr)
{
    px_conn_mark_dirty(tr);
}

/* The overload manager decides (proxy/core/shed.c): the codec only asks. */
static bool io_admit_stream(void *tr)
{
    return px_overload__admit_stream(tr);
}

static void io_streams_changed(void *tr)
{
    px_conn_update_timer(tr);
}

/* One access-log line per dispatched stream. */
static void io_stream_ended(void *tr, const px_stream_t *st)
{
    px_conn_t *c = tr;
    px_accesslog_t *l = c->wi->log;
    if (l == NULL || !px_stream_dispatched(st))
        return;
    const char *up = "-";
    if (st->route)
        up = st->route->cluster ? st->route->cluster->name : "direct";
    char peer[PX_CONN_PEER_MAX];
    px_accesslog_entry_t e = {
        .peer = px_conn_peer(c, peer),
        .method = st->method,
        .method_len = st->method_len,
        .authority = st->authority,
        .authority_len = st->authority_len,
        .path = st->path,
        .path_len = st->path_len,
        .status = st->status,
        .bytes_out = st->bytes_out,
        .duration_us = (uv_hrtime() - st->started_ns) / 1000u,
        .upstream = up,
        .retries = st->up_retries,
    };
    px_accesslog_add(l, &e);
}

static const px_h2_io_t conn_io = {
    .reserve = io_reserve,
    .commit = io_commit,
    .room = io_room,
    .data_zc = io_data_zc,
    .mark_dirty = io_mark_dirty,
    .admit_stream = io_admit_stream,
    .streams_changed = io_streams_changed,
    .stream_ended = io_stream_ended,
};

/* ---- what the HTTP/1.1 side may ask of the transport (px_h1_io_t) ----------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* Pausing stops the socket; resuming restarts it and, under TLS, reads the plaintext OpenSSL
 * may already hold (in the next flush: this runs inside the HTTP/1.1 code). */
static void io_read_pause(void *tr, bool pause)
{
    px_conn_t *c = tr;
    if (c->closing || c->rpaused == pause)
        return;
    c->rpaused = pause;
    if (pause) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        px_conn_close(c);
        return;
    }
    if (c->ssl) {
        c->rpump = true;
        px_conn_mark_dirty(c);
    }
}

/* The local end of the socket, as an authority: asked only for an HTTP/1.0 request without
 * Host (a syscall then; the connection keeps no copy). */
static size_t io_local_authority(void *tr, char *buf, size_t cap)
{
    px_conn_t *c = tr;
    MEM_ASSERT(buf != NULL && cap >= PX_CONN_PEER_MAX);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN];
    buf[0] = '\0';
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    int n = 0;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip)) != NULL)
            n = snprintf(buf, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip)) != NULL)
            n = snprintf(buf, cap, "%s:%u", ip, ntohs(a->sin_port));
    }
    MEM_ASSERT(n >= 0 && (size_t)n < cap);
    return (size_t)n;
}

static void io_h1_ended(void *tr, const px_h1_done_t *d)
{
    px_conn_t *c = tr;
    px_accesslog_t *l = c->wi->log;
    if (l == NULL)
        return;
    char peer[PX_CONN_PEER_MAX];
    px_accesslog_entry_t e = {
        .peer = px_conn_peer(c, peer),
        .method = d->method,
        .method_len = d->method_len,
        .authority = d->authority,
        .authority_len = d->authority_len,
        .path = d->path,
        .path_len = d->path_len,
        .status = d->status,
        .bytes_out = d->bytes_out,
        .duration_us = (uv_hrtime() - d->started_ns) / 1000u,
        .upstream = d->upstream,
        .proto = "http/1.1",
        .retries = d->retries,
    };
    px_accesslog_add(l, &e);
}

static const px_h1_io_t conn_h1_io = {
    .reserve = io_reserve,
    .commit = io_commit,
    .room = io_room,
    .mark_dirty = io_mark_dirty,
    .read_pause = io_read_pause,
    .admit_request = io_admit_stream,
    .local_authority = io_local_authority,
    .state_changed = io_streams_changed,
    .request_ended = io_h1_ended,
};

/* Moves the TLS plaintext batch through SSL_write and the ciphertext into obuf. */
static int tls_seal(px_conn_t *c)
{
    size_t off = 0;
    while (off < c->plen) {
        int n = SSL_write(c->ssl, c->pbuf + off, (int)(c->plen - off));
        if (n <= 0) {
            ERR_clear_error();
            return -EPROTO;
        }
        off += (size_t)n;
    }
    c->plen = 0;
    size_t pending = BIO_ctrl_pending(SSL_get_wbio(c->ssl));
    if (pending == 0)
        return 0;
    if (c->olen + pending > c->ocap) {
        uint8_t *nb = mem_realloc(c->obuf, c->olen + pending);
        if (nb == NULL)
            return -ENOMEM;
        c->obuf = nb;
        c->ocap = (uint32_t)(c->olen + pending);
    }
    int n = BIO_read(SSL_get_wbio(c->ssl), c->obuf + c->olen, (int)pending);
    if (n > 0)
        c->olen += (uint32_t)n;
    return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    mem_free_exempt(req); /* also called, UV_ECANCELED, when the handle closes first */
}

/* Half-closes the socket (the FIN goes after the pending writes). The request is allocated
 * only now: an open connection holds none. Like the write request it is exempt from the
 * budget: ending a connection must not wait for memory. Returns 0, -ENOMEM (the kernel refused
 * a mapping) or libuv's error. */
static int conn_shutdown(px_conn_t *c)
{
    MEM_ASSERT(!c->closing);
    uv_shutdown_t *req = mem_malloc_exempt(sizeof(*req));
    if (req == NULL)
        return -ENOMEM;
    int rc = uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rc != 0)
        mem_free_exempt(req);
    return rc;
}

static void after_write(px_conn_t *c)
{
    /* /stats bytes_out: what went to the socket (frames, TLS records), once it all went. */
    MEM_STAT_ADD(c->wi->w->stats.bytes_out, c->olen + conn_seg_bytes(c));
    MEM_STAT_ADD(c->wi->w->stats.bytes_out_borrowed, conn_seg_bytes(c));
    segs_release(c); /* the kernel has every borrowed payload */
    c->olen = 0;
    if (c->mode == PX_CONN_H1 && !c->closing && px_h1_busy(&c->h1))
        h1_progress(c);
    if (c->mode == PX_CONN_H1_REJECT) {
        /* Half-close and keep reading until the client closes, so the kernel does not turn
         * unread request bytes into a RST that destroys our answer. */
        if (conn_shutdown(c) != 0)
            px_conn_close(c);
        return;
    }
}

static void on_write(uv_write_t *req, int status)
{
    px_conn_t *c = req->data;
    mem_free_exempt(req); /* also called, UV_ECANCELED, when the handle closes first */
    c->writing = false;
    if (c->closing)
        return;
    if (status < 0) {
        px_conn_close(c);
        return;
    }
    c->out_progress_ms = now_ms(c);
    after_write(c);
    px_conn_mark_dirty(c);
}

/* Queues `bufs` (what uv_try_write left) with `req`, which it takes: freed on failure, else
 * by on_write. Returns 0 or a libuv error. */
static int write_queue(px_conn_t *c, uv_write_t *req, const uv_buf_t *bufs, unsigned nb)
{
    MEM_ASSERT(req != NULL);
    MEM_ASSERT(nb > 0);
    req->data = c;
    int rc = uv_write(req, (uv_stream_t *)&c->tcp, bufs, nb, on_write);
    if (rc != 0) {
        mem_free_exempt(req);
        return rc;
    }
    c->writing = true;
    /* The send timeout counts from here: before, nothing was pending. */
    c->out_progress_ms = now_ms(c);
    c->out_queued = (uint32_t)c->tcp.write_queue_size;
    return 0;
}

/* Sends an h2c batch with borrowed payloads: the batch's bytes and the payloads in their
 * order, uv_try_write first and one uv_write of the buffers left. The write request is made
 * first, so that no memory for it never leaves a batch half written. */
static int write_out_segs(px_conn_t *c)
{
    const conn_segs_t *s = conn_segs(c);
    MEM_ASSERT(s->cnt > 0);
    uv_buf_t bufs[2 * CONN_SEGS_MAX + 1];
    unsigned nb = 0;
    size_t off = 0, total = c->olen + s->bytes;
    for (uint32_t i = 0; i < s->cnt; i++) {
        const conn_seg_t *g = &s->seg[i];
        MEM_ASSERT(g->at >= off && g->at <= c->olen);
        if (g->at > off)
            bufs[nb++] = uv_buf_init((char *)c->obuf + off, (unsigned)(g->at - off));
        off = g->at;
        bufs[nb++] = uv_buf_init((char *)(uintptr_t)g->p, g->len);
    }
    if (c->olen > off)
        bufs[nb++] = uv_buf_init((char *)c->obuf + off, (unsigned)(c->olen - off));
    MEM_ASSERT(nb <= MEM_ARRAY_LEN(bufs));
    uv_write_t *req = fault_send_hit() ? NULL : mem_malloc_exempt(sizeof(*req));
    if (req == NULL)
        return -ENOMEM; /* nothing written: the flush parks the connection */
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nb);
    if (n >= 0 && (size_t)n == total) {
        mem_free_exempt(req);
        after_write(c);
        return 0;
    }
    if (n < 0 && n != UV_EAGAIN) {
        mem_free_exempt(req);
        return n;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    unsigned k = 0;
    while (k < nb && done >= bufs[k].len) {
        done -= bufs[k].len;
        k++;
    }
    MEM_ASSERT(k < nb);
    bufs[k].base += done;
    bufs[k].len -= done;
    return write_queue(c, req, &bufs[k], nb - k);
}

/* Sends obuf: uv_try_write first, uv_write for what the kernel did not take (its request is
 * allocated only then, exempt from the budget: at the limit, writing out is what frees memory,
 * so it must not wait for memory). Returns 0, -ENOMEM when the kernel refused even that
 * allocation (obuf keeps the rest, the connection is parked: px_conn_flush), or a libuv error. */
static int write_out(px_conn_t *c)
{
    MEM_ASSERT(!c->writing);
    MEM_ASSERT(c->olen > 0);
    if (c->ssl == NULL && conn_segs(c)->cnt > 0)
        return write_out_segs(c);
    uv_buf_t b = uv_buf_init((char *)c->obuf, (unsigned)c->olen);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->olen) {
        after_write(c);
        return 0;
    }
    if (n < 0 && n != UV_EAGAIN)
        return n;
    size_t done = n > 0 ? (size_t)n : 0;
    /* Most writes end in uv_try_write; only the rest needs a request, exempt from the budget
     * until its callback, so an idle connection holds none (192 bytes). */
    uv_write_t *req = fault_send_hit() ? NULL : mem_malloc_exempt(sizeof(*req));
    if (req == NULL) {
        /* Keep what the kernel did not take at the front of the batch; the flush parks the
         * connection on the worker's memory wait list and tries again when it is woken. */
        MEM_STAT_ADD(c->wi->w->stats.bytes_out, done);
        memmove(c->obuf, c->obuf + done, c->olen - done);
        c->olen -= (uint32_t)done;
        return -ENOMEM;
    }
    b = uv_buf_init((char *)c->obuf + done, (unsigned)(c->olen - done));
    return write_queue(c, req, &b, 1);
}

void px_conn_flush(px_conn_t *c)
{
    MEM_ASSERT(c != NULL);
    if (c->closing || c->writing)
        return;
    c->send_oom = false;
    if (c->rpump && !c->rpaused) {
        c->rpump = false;
        tls_read(c);
        if (c->closing)
            return;
    }
    /* A few rounds at most: fairness between connections of one worker. */
    for (int round = 0; round < 4 && !c->writing; round++) {
        if (c->mode == PX_CONN_H2 && px_h2_send(c->h2) != 0)
            goto fail;
        if (c->mode == PX_CONN_H1 && px_h1_send(&c->h1) != 0)
            goto fail;
        if (c->ssl && c->plen > 0 && tls_seal(c) != 0)
            goto fail;
        if (c->ssl && c->olen == 0 && BIO_ctrl_pending(SSL_get_wbio(c->ssl)) > 0 &&
            tls_seal(c) != 0)
            goto fail;
        if (c->olen == 0)
            break;
        int rc = write_out(c);
        if (rc == -ENOMEM) {
            /* No write request: the batch keeps the rest until memory comes back. */
            c->send_oom = true;
            px_memwait_add(&c->wi->memwait, &c->memwait);
            return;
        }
        if (rc != 0)
            goto fail;
        if (c->mode == PX_CONN_H1_REJECT)
            break;
    }
    if (!c->writing && c->olen == 0) {
        /* Idle between batches: give the buffers back so an idle connection holds none. */
        mem_free(c->obuf);
        mem_free(c->pbuf);
        c->obuf = c->pbuf = NULL;
        c->ocap = 0;
        if (c->mode == PX_CONN_H2 && !px_h2_want_io(c->h2))
            px_conn_close(c);
        else if (c->mode == PX_CONN_H2 && px_h2_want_write(c->h2) && c->send_oom)
            /* No memory for a batch: marking it dirty again would retry on every loop turn, a
             * busy loop for as long as memory stays short. It waits for memory instead;
             * the codec keeps what it could not send. */
            px_memwait_add(&c->wi->memwait, &c->memwait);
        else if (c->mode == PX_CONN_H2 && px_h2_want_write(c->h2))
            px_conn_mark_dirty(c); /* rounds ran out: continue next iteration */
        else if (c->mode == PX_CONN_H1 && px_h1_want_close(&c->h1))
            h1_linger(c);
        else if (c->mode == PX_CONN_H1 && px_h1_want_write(&c->h1) && c->send_oom)
            px_memwait_add(&c->wi->memwait, &c->memwait);
        else if (c->mode == PX_CONN_H1 && px_h1_want_write(&c->h1))
            px_conn_mark_dirty(c);
    }
    return;
fail:
    MEM_STAT_ADD(c->wi->w->stats.conn_closed_error, 1);
    px_conn_close(c);
}

static void on_timer(uv_timer_t *t)
{
    px_conn_t *c = t->data;
    if (c->closing)
        return;
    if (c->mode == PX_CONN_H2 && c->h2->streams_cnt > 0)
        return;
    if (c->mode == PX_CONN_H1 && px_h1_busy(&c->h1)) {
        /* limits.stream_idle_timeout: no byte moved either way on the request in progress
         * (a body trickled or stalled, a response nobody reads); as HTTP/2 resets the stream,
         * the connection ends. */
        MEM_STAT_ADD(c->wi->w->stats.timeouts_idle, 1);
        px_conn_close(c);
        return;
    }
    if (c->mode == PX_CONN_H1) {
        if (c->h1.had_request)
            MEM_STAT_ADD(c->wi->w->stats.timeouts_idle, 1);
        else
            MEM_STAT_ADD(c->wi->w->stats.timeouts_header, 1);
        px_conn_close(c);
        return;
    }
    if (c->mode == PX_CONN_H2) {
        if (c->h2->had_request)
            MEM_STAT_ADD(c->w->stats.timeouts_idle, 1);
        else
            MEM_STAT_ADD(c->wi->w->stats.timeouts_header, 1);
        /* Polite close: GOAWAY, and the connection closes once it is written. */
        px_h2_goaway(c->h2);
        px_conn_mark_dirty(c);
        uv_timer_start(&c->timer, on_timer, 1000, 0);
        if (c->h2->drain_notice)
            px_conn_close(c);
        c->h2->drain_notice = true;
        return;
    }
    if (c->mode == PX_CONN_PREFACE)
        MEM_STAT_ADD(c->wi->w->stats.timeouts_header, 1);
    px_conn_close(c);
}

/* HTTP/1.1 with a request in progress: bytes moved, so the stream idle timeout starts over. */
static void h1_progress(px_conn_t *c)
{
    uint32_t ms = c->wi->w->cfg->limits.stream_idle_timeout_ms;
    if (ms == 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

void px_conn_update_timer(px_conn_t *c)
{
    if (c->closing || c->mode == PX_CONN_H1_REJECT)
        return;
    bool h1 = c->mode == PX_CONN_H1;
    const px_limits_cfg_t *lim = &c->wi->w->cfg->limits;
    if (h1 && px_h1_busy(&c->h1)) {
        h1_progress(c);
        return;
    }
    if (c->h2 != NULL && c->h2->streams_cnt > 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    bool had = h1 ? c->h1.had_request : c->h2 != NULL && c->h2->had_request;
    uint32_t ms = had ? lim->idle_timeout_ms : lim->header_timeout_ms;
    if (ms > 0)
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void h1_reject(px_conn_t *c)
{
    MEM_STAT_ADD(c->wi->w->stats.conn_rejected_h1, 1);
    c->mode = PX_CONN_H1_REJECT;
    char msg[sizeof(h1_head) + sizeof(h1_body) + 32];
    int n = snprintf(msg, sizeof(msg), "%s%zu\r\n\r\n%s", h1_head, sizeof(h1_body) - 1, h1_body);
    MEM_ASSERT(n > 0 && (size_t)n < sizeof(msg));
    if (c->ssl)
        c->plen = 0;
    if (!conn_append(c, (const uint8_t *)msg, (size_t)n))
        goto fail;
    if (c->ssl) {
        if (tls_seal(c) != 0)
            goto fail;
        (void)SSL_shutdown(c->ssl);
        if (tls_seal(c) != 0)
            goto fail;
    }
    uv_timer_start(&c->timer, on_timer, PX_CONN_LINGER_MS, 0);
    px_conn_mark_dirty(c);
    return;
fail:
    px_conn_close(c);
}

/* HTTP/1.1 is done with the connection (Connection: close, an error answered, a drain): the
 * output is out; half-close (close_notify under TLS) and drain the input a while, so the
 * kernel does not turn unread bytes into a RST that destroys the answer. */
static void h1_linger(px_conn_t *c)
{
    MEM_ASSERT(c->mode == PX_CONN_H1);
    MEM_ASSERT(!c->writing && c->olen == 0);
    px_h1_fini(&c->h1);
    c->mode = PX_CONN_H1_REJECT;
    if (c->rpaused) {
        c->rpaused = false;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
            goto fail;
    }
    uv_timer_start(&c->timer, on_timer, PX_CONN_LINGER_MS, 0);
    if (c->ssl) {
        (void)SSL_shutdown(c->ssl);
        if (tls_seal(c) != 0)
            goto fail;
        if (c->olen > 0) {
            if (write_out(c) != 0)
                goto fail;
            return; /* after_write half-closes */
        }
    }
    if (conn_shutdown(c) != 0)
        goto fail;
    return;
fail:
    px_conn_close(c);
}

/* The connection speaks HTTP/1.1 (it never had an HTTP/2 side): proxy/h1/ gets the bytes read so
 * far, `pre` (the preface bytes that matched) and `data`. */
static void start_h1(px_conn_t *c, const uint8_t *pre, size_t pre_len, const uint8_t *data,
                     size_t len)
{
    MEM_ASSERT(c->mode == PX_CONN_PREFACE);
    MEM_ASSERT(c->h2 == NULL);
    c->mode = PX_CONN_H1;
    c->h1.w = c->wi->w;
    c->h1.region = c->region;
    c->h1.peer_ip = c->peer_ip;
    c->h1.tls = c->ssl != NULL;
    c->h1.tr = c;
    c->h1.io = &conn_h1_io;
    px_h1_start(&c->h1, pre, pre_len);
    if (!c->closing && len > 0 && px_h1_recv(&c->h1, data, len) != 0) {
        MEM_STAT_ADD(c->wi->w->stats.conn_closed_error, 1);
        px_conn_close(c);
        return;
    }
    if (!c->closing)
        px_conn_mark_dirty(c);
}

/* The HTTP/2 side is made once the first bytes call for it (an HTTP/1.1 connection never pays
 * for it): the codec's endpoint in the connection's region. Returns 0 or -ENOMEM (the close
 * frees what was made). */
static int h2_new(px_conn_t *c)
{
    MEM_ASSERT(c->mode == PX_CONN_PREFACE);
    MEM_ASSERT(c->h2 == NULL);
    px_h2_conn_t *h = mem_calloc(1, px_h2_conn_size()); /* with the codec's endpoint */
    if (h == NULL)
        return -ENOMEM;
    h->w = c->w;
    h->region = c->region;
    h->peer_ip = c->peer_ip;
    h->tls = c->ssl != NULL;
    h->tr = c;
    h->io = &conn_io;
    c->h2 = h;
    c->mode = PX_CONN_H2;
    return px_h2_session_new(h, px_alloc_nghttp2_mem());
}

/* The client preface is complete: the HTTP/2 side is made, sends its SETTINGS and reads the
 * preface. Returns 0 or -ENOMEM. */
static int start_h2(px_conn_t *c)
{
    if (h2_new(c) != 0)
        return -ENOMEM;
    return px_h2_recv(c->h2, (const uint8_t *)preface, PREFACE_LEN);
}

/* True when `b` may begin an HTTP/1.1 request: a method's tchar (RFC 9110 5.6.2), or the empty
 * line RFC 9112 2.2 lets precede the request line. */
static bool may_start_h1(uint8_t b)
{
    if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9'))
        return true;
    return b != 0 && strchr("!#$%&'*+-.^_`|~\r\n", b) != NULL;
}

/* The first bytes differ from the HTTP/2 preface at `data`: true when they may still be an
 * HTTP/1.1 request. Not when they claim HTTP/2 ("PRI " is the preface's own start; RFC 9113
 * 3.4 makes a broken preface a connection error), nor when the first byte cannot begin a
 * request line (frames sent without the preface, a TLS ClientHello on a cleartext port). */
static bool preface_may_be_h1(const px_conn_t *c, const uint8_t *data, size_t len)
{
    size_t m = 0;
    while (m < len && c->preface_pos + m < PREFACE_LEN && data[m] == preface[c->preface_pos + m])
        m++;
    MEM_ASSERT(m < len); /* the caller saw a difference */
    if (c->preface_pos + m >= 4)
        return false;
    return may_start_h1(c->preface_pos > 0 ? (uint8_t)preface[0] : data[0]);
}

/* Neither HTTP/2 nor HTTP/1.1: our SETTINGS, then GOAWAY(PROTOCOL_ERROR) with the reason, and
 * the close once they are written (RFC 9113 3.4), instead of a bare close or an HTTP/1.1 400
 * the peer cannot read. */
static void reject_preface(px_conn_t *c)
{
    if (h2_new(c) != 0 || px_h2_reject_preface(c->h2) != 0) {
        MEM_STAT_ADD(c->w->stats.conn_closed_error, 1);
        px_conn_close(c); /* no memory for the frames: the bare close */
        return;
    }
    px_conn_mark_dirty(c);
}

/* Plaintext from the peer: preface check, then proxy/h2/ or proxy/h1/. */
static void feed(px_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->closing || c->mode == PX_CONN_H1_REJECT)
        return;
    if (c->mode == PX_CONN_H1) {
        if (px_h1_busy(&c->h1))
            h1_progress(c);
        if (px_h1_recv(&c->h1, data, len) != 0)
            goto fail;
        return;
    }
    if (c->mode == PX_CONN_PREFACE) {
        size_t k = MEM_MIN(len, (size_t)(PREFACE_LEN - c->preface_pos));
        if (memcmp(data, preface + c->preface_pos, k) != 0) {
            /* Under TLS, ALPN chose h2 and HTTP/1.1 bytes are a mistake (505); on h2c the
             * first bytes choose, and these are not the preface. Bytes that are not HTTP/1.1
             * either get HTTP/2's answer. */
            if (!preface_may_be_h1(c, data, len))
                reject_preface(c);
            else if (c->ssl)
                h1_reject(c);
            else
                start_h1(c, (const uint8_t *)preface, c->preface_pos, data, len);
            return;
        }
        c->preface_pos += (uint8_t)k;
        if (c->preface_pos < PREFACE_LEN)
            return; /* the matched bytes are the constant preface: nothing to keep */
        if (start_h2(c) != 0)
            goto fail;
        data += k;
        len -= k;
        if (len == 0)
            return;
    }
    if (px_h2_recv(c->h2, data, len) != 0)
        goto fail;
    return;
fail:
    MEM_STAT_ADD(c->wi->w->stats.conn_closed_error, 1);
    px_conn_close(c);
}

/* Sends what OpenSSL left in wbio (an alert, a close_notify) with one try at the socket, before
 * the connection closes: the peer then learns why (no_application_protocol,
 * handshake_failure) instead of seeing a bare close. Best effort; never queues. */
static void tls_send_last(px_conn_t *c)
{
    uint8_t b[512];
    int n = BIO_read(SSL_get_wbio(c->ssl), b, (int)sizeof(b));
    if (n <= 0)
        return;
    uv_buf_t ub = uv_buf_init((char *)b, (unsigned)n);
    (void)uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
}

static void tls_feed(px_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->mode == PX_CONN_H1_REJECT)
        return; /* rejected and shut down: nothing reads rbio any more, so nothing goes in */
    if (BIO_write(SSL_get_rbio(c->ssl), data, (int)len) != (int)len)
        goto fail;
    if (!c->tls_done) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                px_conn_mark_dirty(c); /* the handshake flight sits in wbio */
                return;
            }
            tls_send_last(c);
            goto fail;
        }
        c->tls_done = true;
        MEM_STAT_ADD(c->wi->w->stats.conn_tls_accepted, 1);
        /* RFC 9113 3.2: HTTP/2 over TLS is chosen by ALPN; http/1.1 or no ALPN at all is
         * HTTP/1.1 (a client offering only other protocols failed the handshake). */
        if (px_tls_alpn(c->ssl) != PX_TLS_ALPN_H2)
            start_h1(c, NULL, 0, NULL, 0);
        if (c->closing)
            return;
        px_conn_mark_dirty(c);
    }
    tls_read(c);
    return;
fail:
    ERR_clear_error();
    MEM_STAT_ADD(c->wi->w->stats.conn_closed_error, 1);
    px_conn_close(c);
}

/* Plaintext out of OpenSSL, until it has none or HTTP/1.1 pauses reading. */
static void tls_read(px_conn_t *c)
{
    while (!c->closing && c->mode != PX_CONN_H1_REJECT && !c->rpaused) {
        int n = SSL_read(c->ssl, c->wi->tbuf, (int)sizeof(c->wi->tbuf));
        if (n > 0) {
            feed(c, c->wi->tbuf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            px_conn_close(c);
            return;
        }
        goto fail;
    }
    return;
fail:
    ERR_clear_error();
    MEM_STAT_ADD(c->wi->w->stats.conn_closed_error, 1);
    px_conn_close(c);
}

/* True when `b`, a memory BIO, holds a buffer but no bytes: a memory BIO keeps the largest
 * buffer it ever held (a 64 KiB read of ciphertext, a 32 KiB batch sealed) for as long as it
 * lives, and OpenSSL has no call that shrinks it. */
static bool bio_idle_buffer(BIO *b)
{
    BUF_MEM *bm = NULL;
    if (BIO_ctrl_pending(b) != 0 || BIO_get_mem_ptr(b, &bm) != 1 || bm == NULL)
        return false;
    return bm->max > 0;
}

static BIO *bio_new_empty(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL)
        BIO_set_mem_eof_return(b, -1); /* empty means "retry", as in px_tlsio_new */
    return b;
}

void px_conn_trim(px_conn_t *c)
{
    MEM_ASSERT(c != NULL);
    /* Not during the handshake: OpenSSL stacks its buffering BIO on wbio then. */
    if (c->closing || c->ssl == NULL || c->writing || !SSL_is_init_finished(c->ssl))
        return;
    /* Replaced, not reset: BIO_reset keeps the buffer. SSL_set0_* frees the old BIO. A BIO
     * that cannot be made now is tried again at the next tick. */
    if (bio_idle_buffer(SSL_get_rbio(c->ssl))) {
        BIO *b = bio_new_empty();
        if (b != NULL)
            SSL_set0_rbio(c->ssl, b);
    }
    if (bio_idle_buffer(SSL_get_wbio(c->ssl))) {
        BIO *b = bio_new_empty();
        if (b != NULL)
            SSL_set0_wbio(c->ssl, b);
    }
    ERR_clear_error();
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    px_conn_t *c = h->data;
    *buf = uv_buf_init((char *)c->wi->rbuf, sizeof(c->wi->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    px_conn_t *c = s->data;
    if (n < 0) {
        px_conn_close(c);
        return;
    }
    if (n == 0 || c->closing)
        return;
    MEM_STAT_ADD(c->wi->w->stats.bytes_in, (uint64_t)n); /* as read from the socket */
    if (c->ssl)
        tls_feed(c, (const uint8_t *)buf->base, (size_t)n);
    else
        feed(c, (const uint8_t *)buf->base, (size_t)n);
    if (!c->closing)
        px_conn_mark_dirty(c);
}

static void peer_name(px_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    c->peer_ip[0] = '\0';
    c->peer_port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, c->peer_ip, sizeof(c->peer_ip)) == NULL)
            c->peer_ip[0] = '\0';
        c->peer_port = ntohs(a->sin6_port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &a->sin_addr, c->peer_ip, sizeof(c->peer_ip)) == NULL)
            c->peer_ip[0] = '\0';
        c->peer_port = ntohs(a->sin_port);
    }
}

const char *px_conn_peer(const px_conn_t *c, char *buf)
{
    MEM_STATIC_ASSERT(PX_CONN_PEER_MAX >= sizeof(c->peer_ip) + 9, "brackets, colon, port, NUL");
    MEM_ASSERT(buf != NULL);
    if (c->peer_ip[0] == '\0')
        snprintf(buf, PX_CONN_PEER_MAX, "-");
    else if (strchr(c->peer_ip, ':') != NULL)
        snprintf(buf, PX_CONN_PEER_MAX, "[%s]:%u", c->peer_ip, c->peer_port);
    else
        snprintf(buf, PX_CONN_PEER_MAX, "%s:%u", c->peer_ip, c->peer_port);
    return buf;
}

/* Woken from the worker's memory wait list: try the flush again. */
static void on_memory(px_memwait_node_t *n)
{
    px_conn_t *c = MEM_CONTAINER_OF(n, px_conn_t, memwait);
    MEM_ASSERT(!c->closing);
    px_conn_mark_dirty(c);
}

static void on_refused_close(uv_handle_t *h)
{
    mem_free_exempt(h);
}

/* Accept and close at once: the kernel queue must not fill with connections we will not
 * serve, and the client learns immediately. This must not fail for want of memory: libuv
 * stops watching a listener whose accepted descriptor was not taken with uv_accept, so one
 * refusal that could not allocate would stop the worker accepting for good. The handle is
 * therefore exempt from the budget (it lives until its close callback, a loop turn). */
static void refuse(px_lis_t *lis)
{
    uv_tcp_t *t = mem_malloc_exempt(sizeof(*t));
    if (t == NULL || uv_tcp_init(&lis->wi->w->loop, t) != 0) {
        mem_free_exempt(t);
        return;
    }
    (void)uv_accept((uv_stream_t *)&lis->tcp, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_refused_close);
}

/* An idle HTTP/1.1 connection's region is its first chunk alone (issue 16: at most 1 KiB):
 * MEM__ARENA_CHUNK_MIN, 1,024 bytes, less the block and region headers (256), holds px_conn_t.
 * e2e 88 measures it. */
MEM_STATIC_ASSERT(sizeof(px_conn_t) <= 768, "px_conn_t fits the region's first chunk");

void px_conn_accept(px_lis_t *lis)
{
    px_wimpl_t *wi = lis->wi;
    px_worker_t *w = wi->w;
    const px_config_t *cfg = w->cfg;
    if (px_worker_overload(w) >= PX_OVERLOAD_CRITICAL ||
        (cfg->limits.max_connections && wi->conns_cnt >= cfg->limits.max_connections)) {
        MEM_STAT_ADD(w->stats.conn_refused_overload, 1);
        if (px_worker_overload(w) >= PX_OVERLOAD_CRITICAL)
            MEM_STAT_ADD(w->stats.overload_conns_refused, 1);
        refuse(lis);
        return;
    }
    mem_region_t *r = mem_region_new(cfg->limits.conn_bytes_max);
    if (r == NULL) {
        MEM_STAT_ADD(w->stats.conn_refused_overload, 1);
        refuse(lis);
        return;
    }
    px_conn_t *c = mem_region_calloc(r, sizeof(*c));
    if (c == NULL) {
        mem_region_free(r);
        MEM_STAT_ADD(w->stats.conn_refused_overload, 1);
        refuse(lis);
        return;
    }
    c->region = r;
    c->w = w;
    c->wi = wi;
    c->lis = lis;
    c->created_ms = uv_now(&w->loop);
    c->memwait.on_wake = on_memory;
    if (uv_tcp_init(&w->loop, &c->tcp) != 0) {
        mem_region_free(r);
        refuse(lis); /* the accepted descriptor must be taken, or the listener stops */
        return;
    }
    c->tcp.data = c;
    c->handles_open = 1;
    wi->conns_cnt++;
    MEM_STAT_ADD(w->stats.conn_active, 1);
    if (uv_accept((uv_stream_t *)&lis->tcp, (uv_stream_t *)&c->tcp) != 0)
        goto fail_early;
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    c->next = wi->conns;
    if (wi->conns)
        wi->conns->prev = c;
    wi->conns = c;
    MEM_STAT_ADD(w->stats.conn_accepted, 1);
    (void)uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    char peer[PX_CONN_PEER_MAX];
    mem_region_set_label(r, px_conn_peer(c, peer));
    BIO *rbio, *wbio; /* owned by the SSL; reached again with SSL_get_rbio/wbio */
    if (lis->tls && px_tls_conn_new(lis->tls, &c->ssl, &rbio, &wbio) != 0)
        goto fail;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        goto fail;
    px_conn_update_timer(c);
    if (wi->draining)
        px_conn_drain(c, false);
    return;
fail_early:
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_close);
    return;
fail:
    px_conn_close(c);
}

static void on_close(uv_handle_t *h)
{
    px_conn_t *c = h->data;
    MEM_ASSERT(c->handles_open > 0);
    if (--c->handles_open > 0)
        return;
    px_wimpl_t *wi = c->wi;
    px_worker_t *w = c->wi->w;
    /* A connection marked dirty and then closed in the same turn (its own flush can do both:
     * a frame queued, then the connection ended) still waits on the worker's flush list for
     * the next check phase, which runs after these close callbacks: take it off, or that walk
     * reads the freed region. The list being walked is detached first, so only this one can
     * hold it now. */
    if (c->dirty) {
        px_conn_t **pp = &wi->dirty;
        while (*pp != NULL && *pp != c)
            pp = &(*pp)->dirty_next;
        if (*pp == c)
            *pp = c->dirty_next;
        c->dirty = false;
    }
    if (c->h2 != NULL) {
        /* Before the region: the codec's endpoint lives in it. */
        px_h2_session_free(c->h2);
        MEM_ASSERT(c->h2->streams == NULL);
        mem_free(c->h2);
        c->h2 = NULL;
    }
    segs_release(c); /* libuv took its last look at them when the handle began closing */
    if (c->ssl)
        SSL_free(c->ssl);
    mem_free(c->obuf);
    mem_free(c->pbuf);
    mem_region_free(c->region); /* c freed */
    MEM_ASSERT(wi->conns_cnt > 0);
    wi->conns_cnt--;
    MEM_STAT_SUB(w->stats.conn_active, 1);
    /* The worker may be waiting for its last connection to finish draining. */
    if (wi->draining && wi->conns_cnt == 0)
        uv_async_send(&wi->async);
}

void px_conn_close(px_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    px_wimpl_t *wi = c->wi;
    /* Unlink from the live list now: no drain, flush or collect may see it again. The flush
     * list skips closing connections. */
    if (c->prev)
        c->prev->next = c->next;
    else
        wi->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    px_memwait_del(&wi->memwait, &c->memwait);
    if (c->h2 != NULL)
        px_h2_streams_end(c->h2);
    px_h1_fini(&c->h1);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
}

void px_conn_drain(px_conn_t *c, bool final)
{
    if (c->closing)
        return;
    if (c->mode == PX_CONN_H1) {
        /* Between requests: close now; otherwise the response in progress says close and
         * completes (the final step too: it is HTTP/2's last GOAWAY, which lets streams in
         * flight finish; the forced stop at the deadline ends what is left). */
        if (px_h1_idle(&c->h1))
            px_conn_close(c);
        else
            px_h1_stop(&c->h1);
        return;
    }
    if (c->mode != PX_CONN_H2) {
        /* Still in the preface or rejecting: nothing in flight worth waiting for. */
        if (c->mode == PX_CONN_PREFACE && c->preface_pos == 0)
            px_conn_close(c);
        else if (final)
            px_conn_close(c);
        return;
    }
    if (final)
        px_h2_goaway(c->h2);
    else
        px_h2_shutdown_notice(c->h2);
    px_conn_mark_dirty(c);
}

uint64_t px_conn_stalled_ms(px_conn_t *c, uint64_t now)
{
    MEM_ASSERT(c != NULL);
    if (!c->writing || c->closing)
        return 0;
    /* libuv reports no partial progress of a uv_write; the bytes it still queues do. */
    size_t q = c->tcp.write_queue_size;
    if (q < c->out_queued)
        c->out_progress_ms = now;
    c->out_queued = (uint32_t)q;
    MEM_ASSERT(now >= c->out_progress_ms);
    return now - c->out_progress_ms;
}

size_t px_conn_bytes(const px_conn_t *c)
{
    MEM_ASSERT(c != NULL);
    size_t n = mem_region_bytes(c->region) + c->ocap + conn_seg_bytes(c);
    if (c->pbuf != NULL)
        n += PX_CONN_BATCH_BYTES;
    if (c->h2 != NULL) {
        n += px_h2_conn_size();
        for (const px_stream_t *st = c->h2->streams; st != NULL; st = st->next)
            n += st->buffered;
    }
    if (c->mode == PX_CONN_H1)
        n += px_h1_held(&c->h1);
    MEM_ASSERT(n >= c->ocap);
    return n;
}

bool px_conn_check_send(px_conn_t *c, uint64_t now)
{
    uint32_t limit = c->wi->w->cfg->limits.send_timeout_ms;
    if (limit == 0 || c->closing || px_conn_stalled_ms(c, now) < limit)
        return false;
    MEM_STAT_ADD(c->wi->w->stats.timeouts_send, 1);
    /* Nothing polite is possible: the peer reads nothing, so a GOAWAY would only queue. */
    px_conn_close(c); /* streams ended now, the region in the close callback */
    return true;
}

size_t px_conn_collect(px_conn_t *c, px_region_row_t *rows, size_t max)
{
    if (max == 0)
        return 0;
    size_t n = 0;
    px_region_row_t *row = &rows[n++];
    memset(row, 0, sizeof(*row));
    row->worker = c->wi->w->idx;
    row->region_id = mem_region_id(c->region);
    px_conn_peer(c, row->peer);
    row->bytes = mem_region_bytes(c->region);
    row->age_ms = now_ms(c) - c->created_ms;
    row->state = c->closing                     ? "closing"
                 : c->mode == PX_CONN_H2        ? "h2"
                 : c->mode == PX_CONN_H1        ? "http/1.1"
                 : c->mode == PX_CONN_H1_REJECT ? "closing"
                                                : "preface";
    row->phase = "";
    px_h1_done_t q;
    if (c->mode == PX_CONN_H1 && n < max && px_h1_req_view(&c->h1, &q)) {
        /* The HTTP/1.1 request in progress, listed as stream 1 of its connection. */
        row = &rows[n++];
        memset(row, 0, sizeof(*row));
        row->worker = c->wi->w->idx;
        row->region_id = mem_region_id(c->region);
        px_conn_peer(c, row->peer);
        row->stream_id = 1;
        snprintf(row->authority, sizeof(row->authority), "%.*s", (int)q.authority_len,
                 q.authority ? q.authority : "");
        snprintf(row->path, sizeof(row->path), "%.*s", (int)q.path_len, q.path ? q.path : "");
        row->bytes = px_h1_bytes(&c->h1);
        row->age_ms = (uv_hrtime() - q.started_ns) / 1000000u;
        row->state = "http/1.1";
        row->phase = "request";
    }
    for (px_stream_t *st = c->h2 ? c->h2->streams : NULL; st && n < max; st = st->next) {
        row = &rows[n++];
        memset(row, 0, sizeof(*row));
        row->worker = c->wi->w->idx;
        row->region_id = mem_region_id(c->region);
        px_conn_peer(c, row->peer);
        row->stream_id = st->id;
        snprintf(row->authority, sizeof(row->authority), "%.*s", (int)st->authority_len,
                 st->authority ? st->authority : "");
        snprintf(row->path, sizeof(row->path), "%.*s", (int)st->path_len, st->path ? st->path : "");
        row->bytes = mem_subregion_bytes(st->sub) + st->buffered;
        row->age_ms = (uv_hrtime() - st->started_ns) / 1000000u;
        row->state = px_h2_stream_state(st);
        row->phase = px_h2_stream_phase(st);
    }
    return n;
}
