/*
 * proxy/codec/endpoint.h: the connection of weir's own HTTP/2 codec: one HTTP/2 endpoint in
 * either role (the server toward clients, the client toward an h2c upstream), built from the
 * frame, reader, HPACK, state, flow-control and stream-table blocks of proxy/codec/.
 *
 * Input is `feed`: whole frames from the reader, the connection rules of RFC 9113 (preface
 * and first SETTINGS, SETTINGS with ACK tracking, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE,
 * stream ids, MAX_CONCURRENT_STREAMS, the section 5.1 rules for closed streams, header blocks
 * across CONTINUATION), and the layer above hears of streams through a callback table
 * (px_h2_ep_cbs_t): it never sees a frame. Output is `submit_*` and `flush`: control frames
 * and header blocks are written through the transport's reserve/commit (px_h2_ep_out_t);
 * DATA payloads are never copied: the transport gets the 9-byte frame header and a reference
 * to the payload's own buffer, released through its callback once written.
 *
 * Memory: the endpoint lives in the connection's region (mem/region.h); each stream lives in
 * its own sub-arena of it (mem/subregion.h), which the layer above allocates its per-stream
 * state from and which is freed when the stream closes. An idle endpoint holds its state and
 * its HPACK tables only: no read buffer (the reader keeps only a frame a read cut in two), no
 * output buffer, no stream table. Every allocation failure is reported (MEM_MUST_CHECK).
 *
 * Not wired into the proxy yet (issue 15, step 6). Only the connection's worker thread
 * touches an endpoint and its streams.
 */
#ifndef PX_CODEC_ENDPOINT_H
#define PX_CODEC_ENDPOINT_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "mem/region.h"
#include "mem/subregion.h"
#include "proxy/codec/frame.h"
#include "proxy/codec/state.h"

typedef struct px_h2_ep_s px_h2_ep_t;
typedef struct px_h2_ep_stream_s px_h2_ep_stream_t;

typedef enum px_h2_role_e {
    PX_H2_ROLE_SERVER = 0, /* toward clients: expects the client preface, odd peer streams */
    PX_H2_ROLE_CLIENT,     /* toward an h2c upstream: sends the preface, opens odd streams */
} px_h2_role_t;

/* Releases a DATA payload once the transport wrote it, or once the codec dropped it (its
 * stream closed first). Called exactly once per px_h2_ep_submit_data that succeeded. */
typedef void (*px_h2_release_fn)(void *arg);

/* The transport below (proxy/core's connection in weir; a byte sink in the tests). */
typedef struct px_h2_ep_out_s {
    /* Room for `len` bytes at the end of the connection's output, or NULL when memory is
     * out. Nothing is sent until commit; a reservation not committed is dropped. */
    uint8_t *(*reserve)(void *tr, size_t len);
    /* The first `len` bytes of the last reservation are output, in order. */
    void (*commit)(void *tr, size_t len);
    /* Appends a DATA frame: the 9 header bytes `hd` (copied) and `len` payload bytes at
     * `p`, borrowed until written; then `fn(arg)` if `fn` is not NULL. Returns 0, or -ENOMEM
     * with nothing appended. */
    int (*data)(void *tr, const uint8_t *hd, const uint8_t *p, size_t len, px_h2_release_fn fn,
                void *arg);
} px_h2_ep_out_t;

/* What the proxy's hardening limits read (README's hardening table): every counter only
 * grows. */
typedef struct px_h2_ep_counters_s {
    uint64_t frames_in;
    uint64_t streams_opened;  /* by the peer (server role) or by us (client role) */
    uint64_t streams_refused; /* peer streams refused: MAX_CONCURRENT_STREAMS, memory, GOAWAY */
    uint64_t rst_recv;        /* RST_STREAM the peer sent */
    uint64_t rst_caused;      /* RST_STREAM we sent for the peer's stream errors */
    uint64_t control_in;      /* SETTINGS, PING, PRIORITY, RST_STREAM, WINDOW_UPDATE, GOAWAY */
    uint64_t settings_in;     /* SETTINGS without ACK (each costs us an ACK) */
    uint64_t ping_in;         /* PING without ACK (each costs us an ACK) */
    uint64_t empty_in;        /* DATA without payload or END_STREAM, empty header fragments */
    uint64_t continuation_in; /* CONTINUATION frames */
    uint64_t headers_in;      /* HEADERS frames */
    uint64_t data_in_bytes;   /* DATA payload, padding included */
} px_h2_ep_counters_t;

/* A whole received header block. */
typedef struct px_h2_block_s {
    const nghttp2_nv *fields; /* borrows: the array for the callback only; the name and value
                                 bytes are in the stream's sub-arena (they live as long as it) */
    size_t cnt;
    bool end_stream;
    bool too_large; /* the list passed max_header_list_size: `fields` is what came before it */
} px_h2_block_t;

/* The layer above. Every stream callback may call back into the endpoint (submit a response,
 * reset the stream, consume, fail the connection). */
/* on_fail's reason when the peer's GOAWAY with an error code ends the connection. */
#define PX_H2_EP_PEER_GOAWAY "the peer's GOAWAY"

typedef struct px_h2_ep_cbs_s {
    /* A header block (request, response, 1xx, trailers) for `st`. A negative result resets
     * the stream: REFUSED_STREAM for -ENOMEM, INTERNAL_ERROR otherwise. */
    int (*on_headers)(void *ud, px_h2_ep_stream_t *st, const px_h2_block_t *b);
    /* DATA payload for `st` (padding removed), possibly empty with `end_stream`. The bytes are
     * borrowed for the call; they count against the windows until px_h2_ep_consume. A
     * negative result resets the stream with INTERNAL_ERROR. */
    int (*on_data)(void *ud, px_h2_ep_stream_t *st, const uint8_t *p, size_t len, bool end_stream);
    /* The peer reset `st` with `code`; on_stream_close follows. May be NULL. */
    void (*on_rst)(void *ud, px_h2_ep_stream_t *st, uint32_t code);
    /* `st` closed: NO_ERROR when both sides ended it, otherwise the reset's code (REFUSED_STREAM
     * for a stream the peer's GOAWAY did not process: safe to retry). Its sub-arena is freed
     * when the endpoint call that closed it returns: forget `st` here. */
    void (*on_stream_close)(void *ud, px_h2_ep_stream_t *st, uint32_t code);
    /* The peer's GOAWAY. May be NULL. */
    void (*on_goaway)(void *ud, int32_t last_stream_id, uint32_t code, const uint8_t *debug,
                      size_t debug_len);
    /* `st` may send again: its window opened and nothing it submitted waits. May be NULL. */
    void (*on_window)(void *ud, px_h2_ep_stream_t *st);
    /* The connection failed with `code` (ours or, for GOAWAY with an error, the peer's, with
     * the reason PX_H2_EP_PEER_GOAWAY: then no GOAWAY of ours follows): called once, for the
     * log and the counters above. May be NULL. */
    void (*on_fail)(void *ud, uint32_t code, const char *reason);
    /* Monotonic milliseconds, for the SETTINGS ACK timeout. May be NULL (no timeout). */
    uint64_t (*now_ms)(void *ud);
    /* Each received frame's header, before the codec acts on it (and after the counters of the
     * frames before it were updated): where the proxy applies its rate limits (floods of
     * SETTINGS, PING, empty frames, resets), frame by frame, so that no flood in one read is
     * answered in full. NULL to go on, or a static reason: the connection fails with
     * ENHANCE_YOUR_CALM and that reason. May be NULL. */
    const char *(*on_frame)(void *ud, const px_h2_frame_hd_t *hd, const px_h2_ep_counters_t *cnt);
} px_h2_ep_cbs_t;

/* Our side's limits and settings. */
typedef struct px_h2_ep_config_s {
    uint32_t max_concurrent_streams; /* streams the peer may open (server role) */
    uint32_t initial_window;         /* each stream's receive window */
    uint32_t conn_window;            /* the connection's receive window (>= 65,535) */
    uint32_t max_frame_size;         /* largest frame we accept */
    uint32_t max_header_list_size;   /* RFC 9113 6.5.2 bound, 0 = none */
    uint32_t max_continuations;      /* CONTINUATION frames per header block, 0 = none */
    uint32_t settings_timeout_ms;    /* for the peer's SETTINGS ACK and the drain PING */
    size_t stream_cap_bytes;         /* each stream's sub-arena cap, 0 = only the region's */
    nghttp2_mem *mem;                /* borrows: HPACK's allocator (the thread cache) */
} px_h2_ep_config_t;

/* Fills `cfg` with weir's defaults: 100 streams, 64 KiB stream windows, a 16 MiB connection
 * window (so one stalled upload cannot stall the others), 16 KiB frames, a 64 KiB header
 * list, 8 CONTINUATION frames (README limits), 10 s SETTINGS timeout, the given allocator. */
void px_h2_ep_config_default(px_h2_ep_config_t *cfg, nghttp2_mem *mem);

/* Creates an endpoint in `region` for `role`. `cfg` is copied; `out`/`tr` and `cbs`/`ud` are
 * borrowed for the endpoint's life. Nothing is written until px_h2_ep_start.
 * Returns NULL on OOM. Ownership: region (release with px_h2_ep_free before the region
 * dies). Thread: owner. Alloc: region, `cfg->mem` (HPACK tables). */
MEM_MUST_CHECK px_h2_ep_t *px_h2_ep_new(mem_region_t *region, px_h2_role_t role,
                                        const px_h2_ep_config_t *cfg, const px_h2_ep_out_t *out,
                                        void *tr, const px_h2_ep_cbs_t *cbs, void *ud);

/* px_h2_ep_new with the endpoint's struct at `at` (px_h2_ep_size() bytes, 16-aligned, the
 * caller's: it frees them after px_h2_ep_free) instead of in `region`, so that an owner can keep
 * it in one object with its own struct. Alloc: `cfg->mem` (HPACK tables). */
MEM_MUST_CHECK px_h2_ep_t *px_h2_ep_new_at(void *at, mem_region_t *region, px_h2_role_t role,
                                           const px_h2_ep_config_t *cfg, const px_h2_ep_out_t *out,
                                           void *tr, const px_h2_ep_cbs_t *cbs, void *ud);
/* Bytes of an endpoint's struct (px_h2_ep_new_at). Getter. */
size_t px_h2_ep_size(void);

/* Writes our connection preface: the client preface (client role), our SETTINGS and the
 * connection window's first WINDOW_UPDATE. Returns 0 or -ENOMEM. */
MEM_MUST_CHECK int px_h2_ep_start(px_h2_ep_t *ep);

/* Closes every live stream (on_stream_close with the connection's error code, or CANCEL),
 * releases queued DATA and frees what the endpoint holds outside its region. NULL ignored. */
void px_h2_ep_free(px_h2_ep_t *ep);

/* Feeds `len` received bytes. Returns 0; -EPROTO when the connection failed (ours: GOAWAY
 * with the reason is in the output, flush the transport, then close; or the peer's GOAWAY
 * with an error code; see px_h2_ep_error); or
 * -ENOMEM (the connection cannot go on). After an error, feed nothing more.
 * Alloc: tcache (a cut frame, the header block being assembled, the stream table), the
 * region (stream sub-arenas), HPACK's allocator. */
MEM_MUST_CHECK int px_h2_ep_feed(px_h2_ep_t *ep, const uint8_t *data, size_t len);

/* Writes what waits: WINDOW_UPDATEs owed for consumed bytes, then DATA (and trailers after
 * it) as the windows and the peer's MAX_FRAME_SIZE allow, round robin across streams. Call it
 * once per loop iteration. Returns 0 or -ENOMEM (nothing lost: call again). */
MEM_MUST_CHECK int px_h2_ep_flush(px_h2_ep_t *ep);

/* Client role: opens a stream with request headers `nva` (pseudo-headers first);
 * `*out` is the stream, whose user data is `st_ud`. Returns 0; -EAGAIN at the peer's
 * MAX_CONCURRENT_STREAMS; -ECONNREFUSED after GOAWAY (either way) or failure; -ERANGE when
 * the stream ids ran out; -ENOMEM. */
MEM_MUST_CHECK int px_h2_ep_submit_request(px_h2_ep_t *ep, const nghttp2_nv *nva, size_t cnt,
                                           bool end_stream, void *st_ud, px_h2_ep_stream_t **out);

/* A header block on `st`: the response (server role), or trailers (`end_stream`). Trailers
 * submitted while DATA waits go out after it. Returns 0; -EPIPE when `st` cannot send;
 * -ENOMEM. */
MEM_MUST_CHECK int px_h2_ep_submit_headers(px_h2_ep_t *ep, px_h2_ep_stream_t *st,
                                           const nghttp2_nv *nva, size_t cnt, bool end_stream);

/* Queues `len` payload bytes at `p` for DATA on `st` (`len` may be 0 with `end_stream`),
 * sent by px_h2_ep_flush without a copy. On success `fn(arg)` (may be NULL) is called
 * exactly once, when the bytes are written or dropped. Returns 0; -EPIPE when `st` cannot
 * send (nothing taken); -ENOMEM (nothing taken). Alloc: tcache (a queue entry). */
MEM_MUST_CHECK int px_h2_ep_submit_data(px_h2_ep_t *ep, px_h2_ep_stream_t *st, const uint8_t *p,
                                        size_t len, bool end_stream, px_h2_release_fn fn,
                                        void *arg);

/* Resets `st` with `code`; on_stream_close follows at once. A closed stream is left alone.
 * Returns 0 or -ENOMEM (the stream stays as it was). */
MEM_MUST_CHECK int px_h2_ep_submit_rst(px_h2_ep_t *ep, px_h2_ep_stream_t *st, uint32_t code);

/* PING with `opaque`. Returns 0 or -ENOMEM. */
MEM_MUST_CHECK int px_h2_ep_submit_ping(px_h2_ep_t *ep, const uint8_t opaque[8]);

/* Our SETTINGS (INITIAL_WINDOW_SIZE, MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE; the rest
 * are sent as given). Larger windows apply at once, smaller ones when the peer ACKs, since the
 * peer may send by the old values until then. Returns 0; -EBUSY with 4 SETTINGS unacked;
 * -EINVAL for a value the RFC forbids; -ENOMEM. */
MEM_MUST_CHECK int px_h2_ep_submit_settings(px_h2_ep_t *ep, const px_h2_setting_entry_t *e,
                                            size_t cnt);

/* Graceful shutdown (RFC 9113 6.8). Server role: GOAWAY(2^31-1, NO_ERROR) and a PING; the
 * final GOAWAY with the last stream processed goes when the PING's ACK comes back (or at
 * px_h2_ep_tick after the SETTINGS timeout). Streams open by then run to their end; newer
 * ones are ignored. Client role: GOAWAY(0, NO_ERROR) at once. Returns 0 or -ENOMEM. */
MEM_MUST_CHECK int px_h2_ep_shutdown(px_h2_ep_t *ep);

/* Ends the connection for an error or an abuse, the one way every check does it: counted in
 * the endpoint, reported once through on_fail (the log), GOAWAY(last stream, `code`) with
 * `reason` (a static string) as debug data. Later calls change nothing. Returns -EPROTO. */
int px_h2_ep_fail(px_h2_ep_t *ep, uint32_t code, const char *reason);

/* The layer above consumed `len` bytes of the DATA it received on `st` (no more than it
 * received and had not consumed): the stream's and the connection's windows reopen by as much,
 * with WINDOW_UPDATEs written at the next flush. Alloc: none. */
void px_h2_ep_consume(px_h2_ep_t *ep, px_h2_ep_stream_t *st, size_t len);

/* Timers: fails the connection with SETTINGS_TIMEOUT when our SETTINGS waits for its ACK past
 * the timeout, and sends the final GOAWAY of a shutdown whose PING was not answered. Returns
 * 0 or -EPROTO (failed). */
int px_h2_ep_tick(px_h2_ep_t *ep);

/* Drops what an idle connection need not hold: the HPACK encoder and its table (about 2.3 KB
 * of the 4.9 KB an idle server endpoint holds after a request), and then the decoder and its
 * table in the server role (about 1.4 KB: nghttp2's inflater, its 1,024-byte ring, entries). The
 * next header block makes a new encoder that starts with table size updates to 0 and back (RFC 7541
 * sections 4.2, 6.3), so the peer's decoder drops the old entries too. For the decoder, a SETTINGS
 * frame holds the peer's encoder to a 0-byte table, and its ACK drops ours; the next block the peer
 * sends makes a new one, and a SETTINGS frame grants 4,096 bytes again. Both cost the next blocks
 * the compression the old tables gave. For the proxy's idle timer, not for every idle moment (a
 * client that sends one request at a time would pay it per request). Returns true when something
 * was dropped or asked for; false when the endpoint is not idle or already trimmed. Alloc: the
 * SETTINGS frame's room in the output. */
bool px_h2_ep_trim(px_h2_ep_t *ep);

/* ---- getters: never allocate -------------------------------------------------------- */

/* True when the connection has nothing left to do: it failed, or a GOAWAY went either way
 * and no stream is live. The transport flushes, then closes. */
bool px_h2_ep_done(const px_h2_ep_t *ep);
/* True when no stream is live, no frame or header block is half received. */
bool px_h2_ep_idle(const px_h2_ep_t *ep);
/* True while a header block is half received (HEADERS without END_HEADERS, CONTINUATION to
 * come): what the proxy's header_timeout watches, since nothing else may come meanwhile. */
bool px_h2_ep_block_open(const px_h2_ep_t *ep);
/* The error code the connection failed with; NO_ERROR while it has not. */
uint32_t px_h2_ep_error(const px_h2_ep_t *ep);
const px_h2_ep_counters_t *px_h2_ep_counters(const px_h2_ep_t *ep);
uint32_t px_h2_ep_streams_cnt(const px_h2_ep_t *ep);
/* The peer's SETTINGS_MAX_CONCURRENT_STREAMS (UINT32_MAX until it says, RFC 9113 6.5.2): how
 * many streams we may open at once in the client role. */
uint32_t px_h2_ep_peer_max_streams(const px_h2_ep_t *ep);
int64_t px_h2_ep_send_window(const px_h2_ep_t *ep); /* the connection's */
int64_t px_h2_ep_recv_window(const px_h2_ep_t *ep);

int32_t px_h2_ep_stream_id(const px_h2_ep_stream_t *st);
px_h2_state_t px_h2_ep_stream_state(const px_h2_ep_stream_t *st);
void *px_h2_ep_stream_ud(const px_h2_ep_stream_t *st);
void px_h2_ep_stream_set_ud(px_h2_ep_stream_t *st, void *ud);
/* The stream's sub-arena: allocate per-stream state here; it dies with the stream. */
mem_subregion_t *px_h2_ep_stream_sub(const px_h2_ep_stream_t *st);
int64_t px_h2_ep_stream_send_window(const px_h2_ep_stream_t *st);
int64_t px_h2_ep_stream_recv_window(const px_h2_ep_stream_t *st);
/* Payload bytes submitted and not yet written. */
size_t px_h2_ep_stream_queued(const px_h2_ep_stream_t *st);

/* Checks the endpoint's invariants (for the tests and the fuzzer): every window at most
 * 2^31-1; a send window below zero only after the peer lowered SETTINGS_INITIAL_WINDOW_SIZE
 * (RFC 9113 6.9.2), a receive window below zero only after we lowered ours; live streams
 * counted right and in states that are live. Returns NULL, or what is wrong. Getter. */
const char *px_h2_ep_check(const px_h2_ep_t *ep);

#endif /* PX_CODEC_ENDPOINT_H */
