/*
 * proxy/codec/endpoint.c: the connection of weir's HTTP/2 codec (proxy/codec/endpoint.h).
 *
 * Every public entry point counts itself in `depth`; a stream that closes goes on the dead
 * list and its sub-arena is freed only when the outermost call returns, so a callback that
 * resets or closes a stream never pulls memory from under the code that called it.
 * A stream's state changes only in set_state, through px_h2_state_next, which asserts the
 * move is an edge of RFC 9113's diagram.
 */
#include "proxy/codec/endpoint.h"
#include "mem/base.h"

#include <string.h>

#include "mem/malloc.h"
#include "proxy/codec/flow.h"
#include "proxy/codec/hpack.h"
#include "proxy/codec/reader.h"
#include "proxy/codec/stab.h"

#define EP_SETTINGS_PENDING_MAX 4u
#define PX_H2_EP_ENC_TABLE      4096u      /* our encoder's table: nghttp2's default */
#define PX_H2_EP_DEC_TABLE      4096u      /* our decoder's table: RFC 9113 6.5.2's default */
#define EP_DRAIN_PING           "weirdrn!" /* the opaque of the shutdown's PING */

/* A DATA payload waiting for window. */
typedef struct out_chunk_s {
    struct out_chunk_s *next;
    const uint8_t *p; /* borrows until written: released through fn */
    size_t len;
    size_t off; /* bytes already written */
    px_h2_release_fn fn;
    void *arg;
} out_chunk_t;

/* Our SETTINGS that wait for the peer's ACK (section 6.5.3). */
typedef struct local_settings_s {
    uint32_t initial_window;
    uint32_t max_concurrent;
} local_settings_t;

struct px_h2_ep_stream_s {
    px_h2_ep_t *ep;        /* borrows: the endpoint outlives its streams */
    mem_subregion_t *sub;  /* owns: this struct lives in it */
    void *ud;              /* borrows: the layer above's */
    out_chunk_t *out_head; /* owns (tcache) */
    out_chunk_t *out_tail;
    px_h2_ep_stream_t *send_next; /* on the send list */
    px_h2_ep_stream_t *wu_next;   /* on the WINDOW_UPDATE list */
    px_h2_ep_stream_t *dead_next; /* on the dead list */
    px_h2_ep_stream_t *wake_next; /* on wake_streams' or on_goaway's list */
    nghttp2_nv *trailers;         /* subregion: trailers waiting for the queued DATA */
    size_t trailers_cnt;
    size_t queued; /* payload bytes in out_* not yet written */
    int64_t send_window;
    px_h2_recv_window_t recv;
    uint32_t unconsumed; /* DATA bytes received, not yet consumed */
    uint32_t wu_owed;    /* WINDOW_UPDATE increment to write at flush */
    int32_t id;
    px_h2_state_t state;
    bool out_end;   /* END_STREAM follows the queue (on its last DATA or the trailers) */
    bool sending;   /* on the send list */
    bool on_wu;     /* on the WINDOW_UPDATE list */
    bool counted;   /* counts against MAX_CONCURRENT_STREAMS */
    bool got_block; /* a header block was received (the next must end the stream) */
    bool peer_init; /* opened by the peer */
};

struct px_h2_ep_s {
    /* Hot: every frame. */
    px_h2_reader_t reader;
    px_h2_stab_t streams;
    px_h2_recv_window_t conn_recv;
    int64_t conn_send;
    const px_h2_ep_out_t *out; /* borrows */
    void *tr;
    const px_h2_ep_cbs_t *cbs; /* borrows */
    void *ud;
    mem_region_t *region; /* borrows: the connection's, where the endpoint lives */
    px_h2_hpack_dec_t dec;
    px_h2_hpack_enc_t enc;
    /* The header block being received. */
    int32_t hb_id;             /* 0 when none */
    uint32_t hb_continuations; /* CONTINUATION frames of it so far */
    px_h2_ep_stream_t *hb_st;  /* the stream it is for, or NULL to decode and drop */
    uint32_t hb_rst;           /* stream error to answer it with once decoded, or 0 */
    bool hb_rst_set;           /* hb_rst is set (NO_ERROR is code 0) */
    bool hb_end_stream;        /* its HEADERS carried END_STREAM */
    bool hb_refuse;            /* a new stream we refuse: REFUSED_STREAM once decoded */
    nghttp2_nv *hb_fields;     /* subregion (hb_st's): the block's field vector */
    size_t hb_cnt, hb_cap;
    /* Streams. */
    px_h2_ep_stream_t *send_head; /* streams with DATA or trailers to write */
    px_h2_ep_stream_t *send_tail;
    px_h2_ep_stream_t *wu_head; /* streams owing a WINDOW_UPDATE */
    px_h2_ep_stream_t *dead;    /* closed, freed when the outermost call returns */
    int32_t last_peer_id;       /* the highest id the peer opened */
    int32_t next_local_id;      /* the next id we open */
    int32_t goaway_sent_last;   /* after our final GOAWAY: the last stream we process */
    int32_t goaway_recv_last;   /* after the peer's GOAWAY: the last of ours it processes */
    uint32_t streams_peer;      /* live peer streams that count against our limit */
    uint32_t streams_local;     /* live streams of ours that count against the peer's */
    uint32_t wu_conn_owed;      /* connection WINDOW_UPDATE increment to write at flush */
    uint32_t depth;             /* public calls in progress */
    /* Settings. */
    px_h2_ep_config_t cfg;
    uint32_t local_initial; /* our stream receive window in force */
    uint32_t local_max_concurrent;
    local_settings_t pending[EP_SETTINGS_PENDING_MAX]; /* unacked, oldest first */
    uint32_t pending_cnt;
    uint64_t settings_sent_ms; /* when the oldest unacked SETTINGS left */
    uint64_t drain_sent_ms;    /* when the shutdown's first GOAWAY left */
    uint32_t peer_initial;     /* SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t peer_table_size;  /* SETTINGS_HEADER_TABLE_SIZE */
    uint32_t peer_max_frame;
    uint32_t peer_max_concurrent;
    uint32_t fail_code;
    px_h2_role_t role;
    uint8_t goaway_step; /* ours: 0 none, 1 the first of two sent, 2 final sent */
    bool goaway_recv;
    bool got_settings; /* the peer's first SETTINGS came (section 3.4) */
    bool failed;
    bool send_shrunk; /* the peer lowered SETTINGS_INITIAL_WINDOW_SIZE (6.9.2) */
    bool recv_shrunk; /* we lowered ours */
    bool dec_zeroing; /* our SETTINGS_HEADER_TABLE_SIZE 0 waits for the ACK: it is the oldest
                         in `pending` (px_h2_ep_trim sends it with nothing else unacked) */
    bool dec_zero;    /* the peer's encoder was held to a 0-byte table: the next block
                         grants 4,096 again */
    px_h2_ep_counters_t cnt;
};

/* ---- small helpers ------------------------------------------------------------------ */

static bool peer_parity(const px_h2_ep_t *ep, int32_t id)
{
    /* Clients open odd streams, servers even ones (section 5.1.1). */
    bool odd = (id & 1) != 0;
    return ep->role == PX_H2_ROLE_SERVER ? odd : !odd;
}

static uint64_t now_ms(const px_h2_ep_t *ep)
{
    return ep->cbs->now_ms != NULL ? ep->cbs->now_ms(ep->ud) : 0;
}

static void enter(px_h2_ep_t *ep)
{
    ep->depth++;
}

/* Frees the streams that closed during the call, once the outermost call ends. */
static void leave(px_h2_ep_t *ep)
{
    MEM_ASSERT(ep->depth > 0);
    if (--ep->depth > 0)
        return;
    while (ep->dead != NULL) {
        px_h2_ep_stream_t *st = ep->dead;
        ep->dead = st->dead_next;
        MEM_ASSERT(st->state == PX_H2_ST_CLOSED);
        MEM_ASSERT(st->out_head == NULL);
        mem_subregion_free(st->sub); /* st freed */
    }
}

/* Writes a frame of at most `max` bytes built by the caller into the reservation. */
static uint8_t *reserve(px_h2_ep_t *ep, size_t len)
{
    return ep->out->reserve(ep->tr, len);
}

static int write_rst(px_h2_ep_t *ep, int32_t id, uint32_t code)
{
    uint8_t *b = reserve(ep, PX_H2_FRAME_HD_LEN + 4);
    if (b == NULL)
        return -ENOMEM;
    ep->out->commit(ep->tr, px_h2_write_rst_stream(b, id, code));
    return 0;
}

static int write_goaway(px_h2_ep_t *ep, int32_t last, uint32_t code, const char *why)
{
    size_t dl = why != NULL ? strlen(why) : 0;
    /* The debug data fits any peer's frames: 16,384 is every endpoint's minimum. */
    dl = MEM_MIN(dl, (size_t)PX_H2_MAX_FRAME_MIN - 8);
    uint8_t *b = reserve(ep, PX_H2_FRAME_HD_LEN + 8 + dl);
    if (b == NULL)
        return -ENOMEM;
    ep->out->commit(ep->tr, px_h2_write_goaway(b, last, code, why, dl));
    return 0;
}

static int write_ping(px_h2_ep_t *ep, const uint8_t opaque[8], bool ack)
{
    uint8_t *b = reserve(ep, PX_H2_FRAME_HD_LEN + 8);
    if (b == NULL)
        return -ENOMEM;
    ep->out->commit(ep->tr, px_h2_write_ping(b, opaque, ack));
    return 0;
}

/* ---- stream lifecycle -------------------------------------------------------------- */

/* Moves `st` on `ev`, which must be allowed (a received frame was judged before). */
static void set_state(px_h2_ep_t *ep, px_h2_ep_stream_t *st, px_h2_event_t ev, bool end_stream)
{
    px_h2_state_t next;
    px_h2_verdict_t v = px_h2_state_next(st->state, ev, end_stream, PX_H2_CLOSED_NORMAL, &next);
    MEM_ASSERT(v == PX_H2_OK);
    (void)v;
    st->state = next;
    bool counts = px_h2_state_counts(next);
    if (counts && !st->counted) {
        st->counted = true;
        if (st->peer_init)
            ep->streams_peer++;
        else
            ep->streams_local++;
    } else if (!counts && st->counted) {
        st->counted = false;
        if (st->peer_init) {
            MEM_ASSERT(ep->streams_peer > 0);
            ep->streams_peer--;
        } else {
            MEM_ASSERT(ep->streams_local > 0);
            ep->streams_local--;
        }
    }
}

/* Moves `st` to CLOSED on a reset, ours or the peer's, or on the end of the connection: the
 * one move that skips px_h2_state_next, for a stream still idle (its header block was being
 * received), which the RFC's diagram has no reset from. */
static void set_closed(px_h2_ep_t *ep, px_h2_ep_stream_t *st)
{
    MEM_ASSERT(st->state != PX_H2_ST_CLOSED);
    if (st->state != PX_H2_ST_IDLE) {
        set_state(ep, st, PX_H2_EV_SEND_RST, false);
        return;
    }
    MEM_ASSERT(!st->counted);
    st->state = PX_H2_ST_CLOSED;
}

static px_h2_ep_stream_t *stream_new(px_h2_ep_t *ep, int32_t id, bool peer_init)
{
    MEM_ASSERT(id > 0);
    MEM_ASSERT(px_h2_stab_get(&ep->streams, id) == NULL);
    mem_subregion_t *sub = mem_subregion_new(ep->region, ep->cfg.stream_cap_bytes);
    if (sub == NULL)
        return NULL;
    px_h2_ep_stream_t *st = mem_subregion_calloc(sub, sizeof(*st));
    if (st == NULL || px_h2_stab_put(&ep->streams, id, st) != 0) {
        mem_subregion_free(sub);
        return NULL;
    }
    st->ep = ep;
    st->sub = sub;
    st->id = id;
    st->state = PX_H2_ST_IDLE;
    st->peer_init = peer_init;
    st->send_window = ep->peer_initial;
    px_h2_recv_window_init(&st->recv, ep->local_initial);
    ep->cnt.streams_opened++;
    return st;
}

static void send_list_add(px_h2_ep_t *ep, px_h2_ep_stream_t *st)
{
    if (st->sending)
        return;
    st->sending = true;
    st->send_next = NULL;
    if (ep->send_tail != NULL)
        ep->send_tail->send_next = st;
    else
        ep->send_head = st;
    ep->send_tail = st;
}

static void send_list_del(px_h2_ep_t *ep, px_h2_ep_stream_t *st)
{
    if (!st->sending)
        return;
    px_h2_ep_stream_t **pp = &ep->send_head, *prev = NULL;
    while (*pp != st) {
        prev = *pp;
        pp = &(*pp)->send_next;
    }
    *pp = st->send_next;
    if (ep->send_tail == st)
        ep->send_tail = prev;
    st->sending = false;
    st->send_next = NULL;
}

static void wu_list_del(px_h2_ep_t *ep, px_h2_ep_stream_t *st)
{
    if (!st->on_wu)
        return;
    px_h2_ep_stream_t **pp = &ep->wu_head;
    while (*pp != st)
        pp = &(*pp)->wu_next;
    *pp = st->wu_next;
    st->on_wu = false;
    st->wu_owed = 0;
}

static void owe_conn(px_h2_ep_t *ep, uint32_t len)
{
    if (len == 0)
        return;
    uint32_t inc = px_h2_recv_window_consumed(&ep->conn_recv, len);
    ep->wu_conn_owed += inc;
}

static void owe_stream(px_h2_ep_t *ep, px_h2_ep_stream_t *st, uint32_t inc)
{
    if (inc == 0)
        return;
    /* A stream that will receive nothing more needs no window (section 6.9). */
    if (st->state != PX_H2_ST_OPEN && st->state != PX_H2_ST_HALF_CLOSED_LOCAL)
        return;
    st->wu_owed += inc;
    if (!st->on_wu) {
        st->on_wu = true;
        st->wu_next = ep->wu_head;
        ep->wu_head = st;
    }
}

/* Closes `st` (its state is already CLOSED or is made so here by `ev`): the layer above hears
 * of it, its queue is released, the bytes it never consumed go back to the connection. */
static void stream_close(px_h2_ep_t *ep, px_h2_ep_stream_t *st, px_h2_closed_t how, uint32_t code)
{
    MEM_ASSERT(st->state == PX_H2_ST_CLOSED);
    MEM_ASSERT(!st->counted);
    send_list_del(ep, st);
    wu_list_del(ep, st);
    for (out_chunk_t *c = st->out_head, *next; c != NULL; c = next) {
        next = c->next;
        if (c->fn != NULL)
            c->fn(c->arg);
        mem_free(c);
    }
    st->out_head = st->out_tail = NULL;
    st->queued = 0;
    st->trailers = NULL;
    owe_conn(ep, st->unconsumed);
    st->unconsumed = 0;
    if (ep->hb_st == st) {
        ep->hb_st = NULL;     /* the rest of its block is decoded and dropped */
        ep->hb_fields = NULL; /* it lived in the stream's sub-arena */
        ep->hb_cnt = ep->hb_cap = 0;
    }
    px_h2_stab_del(&ep->streams, st->id, how);
    ep->cbs->on_stream_close(ep->ud, st, code);
    st->dead_next = ep->dead;
    ep->dead = st;
}

/* We reset `st` (live): RST_STREAM, then closed. */
static int stream_reset(px_h2_ep_t *ep, px_h2_ep_stream_t *st, uint32_t code)
{
    if (st->state == PX_H2_ST_CLOSED)
        return 0;
    int rc = write_rst(ep, st->id, code);
    if (rc != 0)
        return rc;
    set_closed(ep, st);
    stream_close(ep, st, PX_H2_CLOSED_BY_US, code);
    return 0;
}

/* A stream error (section 5.4.2) on `id`, live or not: RST_STREAM, counted. */
static int stream_error(px_h2_ep_t *ep, int32_t id, uint32_t code)
{
    ep->cnt.rst_caused++;
    px_h2_ep_stream_t *st = px_h2_stab_get(&ep->streams, id);
    if (st != NULL)
        return stream_reset(ep, st, code);
    int rc = write_rst(ep, id, code);
    /* A stream closed before keeps how it closed: our RST_STREAM answers a frame on it. */
    px_h2_closed_t how;
    if (rc == 0 && !px_h2_stab_closed_find(&ep->streams, id, &how))
        px_h2_stab_remember(&ep->streams, id, PX_H2_CLOSED_BY_US);
    return rc;
}

/* ---- header blocks ----------------------------------------------------------------- */

static int on_field(void *ud, const uint8_t *name, size_t name_len, const uint8_t *value,
                    size_t value_len)
{
    px_h2_ep_t *ep = ud;
    px_h2_ep_stream_t *st = ep->hb_st;
    if (st == NULL || ep->hb_rst_set)
        return 0; /* decoded for the table's sake only */
    /* Section 8.2.1: a field HTTP/2 does not allow makes the message malformed. */
    if (!px_h2_field_valid(name, name_len, value, value_len)) {
        ep->hb_rst = PX_H2_PROTOCOL_ERROR;
        ep->hb_rst_set = true;
        return 0;
    }
    if (ep->hb_cnt == ep->hb_cap) {
        /* The vector lives in the stream's sub-arena too, like the bytes: no malloc, realloc
         * and free a header block (two a proxied request); a grown vector leaves the old one
         * behind, at most as many bytes as the final one. */
        size_t cap = ep->hb_cap == 0 ? 16 : ep->hb_cap * 2;
        nghttp2_nv *n = mem_subregion_alloc(st->sub, cap * sizeof(*n));
        if (n == NULL)
            goto oom;
        if (ep->hb_cnt)
            memcpy(n, ep->hb_fields, ep->hb_cnt * sizeof(*n));
        ep->hb_fields = n;
        ep->hb_cap = cap;
    }
    /* The bytes go where the stream's other state lives: the layer above keeps pointers to
     * them for the stream's life, no copy of its own. */
    uint8_t *b = mem_subregion_alloc(st->sub, name_len + value_len + 2);
    if (b == NULL)
        goto oom;
    memcpy(b, name, name_len);
    b[name_len] = 0;
    memcpy(b + name_len + 1, value, value_len);
    b[name_len + 1 + value_len] = 0;
    ep->hb_fields[ep->hb_cnt++] = (nghttp2_nv){
        .name = b,
        .value = b + name_len + 1,
        .namelen = name_len,
        .valuelen = value_len,
    };
    return 0;
oom:
    /* Per-stream memory: the stream is refused, the connection goes on. */
    ep->hb_rst = PX_H2_REFUSED_STREAM;
    ep->hb_rst_set = true;
    return 0;
}

static void hb_reset(px_h2_ep_t *ep)
{
    ep->hb_id = 0;
    ep->hb_st = NULL;
    ep->hb_rst = 0;
    ep->hb_rst_set = false;
    ep->hb_refuse = false;
    ep->hb_continuations = 0;
    ep->hb_cnt = 0;
    /* The vector stays in the stream's sub-arena until the stream ends; the next block
     * starts a new one. */
    ep->hb_fields = NULL;
    ep->hb_cap = 0;
}

/* The block is complete: deliver it, or answer it with its stream error or refusal. */
static int hb_finish(px_h2_ep_t *ep)
{
    int32_t id = ep->hb_id;
    px_h2_ep_stream_t *st = ep->hb_st;
    bool end = ep->hb_end_stream;
    if (st != NULL && st->state == PX_H2_ST_IDLE && ep->hb_rst_set &&
        ep->hb_rst == PX_H2_REFUSED_STREAM) {
        /* No memory for the new stream's fields: refused as if over the limit. */
        ep->cnt.streams_refused++;
        set_closed(ep, st);
        stream_close(ep, st, PX_H2_CLOSED_BY_US, PX_H2_REFUSED_STREAM);
        hb_reset(ep);
        return write_rst(ep, id, PX_H2_REFUSED_STREAM);
    }
    if (ep->hb_refuse) {
        hb_reset(ep);
        px_h2_stab_remember(&ep->streams, id, PX_H2_CLOSED_BY_US);
        return write_rst(ep, id, PX_H2_REFUSED_STREAM);
    }
    if (ep->hb_rst_set) {
        uint32_t code = ep->hb_rst;
        hb_reset(ep);
        /* A malformed request opens its stream, which the reset closes at once. */
        if (st != NULL && st->state == PX_H2_ST_IDLE)
            set_state(ep, st, PX_H2_EV_RECV_HEADERS, end);
        return stream_error(ep, id, code);
    }
    if (st == NULL) {
        hb_reset(ep); /* decoded to keep the HPACK table in step, and dropped */
        return 0;
    }
    px_h2_block_t b = {
        .fields = ep->hb_fields,
        .cnt = ep->hb_cnt,
        .end_stream = end,
        .too_large = px_h2_hpack_too_large(&ep->dec),
    };
    set_state(ep, st, PX_H2_EV_RECV_HEADERS, end);
    st->got_block = true;
    int cb = ep->cbs->on_headers(ep->ud, st, &b);
    hb_reset(ep);
    if (st->state == PX_H2_ST_CLOSED && px_h2_stab_get(&ep->streams, id) == st) {
        /* Both sides ended it (a response without a body to a request without one). */
        stream_close(ep, st, PX_H2_CLOSED_NORMAL, PX_H2_NO_ERROR);
        return 0;
    }
    if (cb < 0 && st->state != PX_H2_ST_CLOSED)
        return stream_reset(ep, st, cb == -ENOMEM ? PX_H2_REFUSED_STREAM : PX_H2_INTERNAL_ERROR);
    return 0;
}

static int hb_fragment(px_h2_ep_t *ep, const uint8_t *p, size_t len, bool last)
{
    int rc = px_h2_hpack_decode(&ep->dec, p, len, last, on_field, ep);
    if (rc == -ENOMEM) {
        px_h2_ep_fail(ep, PX_H2_INTERNAL_ERROR, "out of memory for the HPACK table");
        return -ENOMEM;
    }
    if (rc != 0)
        return px_h2_ep_fail(ep, PX_H2_COMPRESSION_ERROR, "HPACK decoding failed");
    return last ? hb_finish(ep) : 0;
}

/* ---- received frames --------------------------------------------------------------- */

/* The verdict for a frame on stream `id`, which is not live: idle (never opened) or closed.
 * A closed stream we no longer remember is treated as if we had reset it (frames on it are
 * ignored: we may have, and section 5.1 then requires it), except that HEADERS on it reuses
 * an id below the last, a connection error PROTOCOL_ERROR (section 5.1.1). */
static px_h2_verdict_t verdict_gone(px_h2_ep_t *ep, int32_t id, px_h2_event_t ev, bool end)
{
    bool idle = peer_parity(ep, id) ? id > ep->last_peer_id : id >= ep->next_local_id;
    px_h2_state_t next;
    if (idle)
        return px_h2_state_next(PX_H2_ST_IDLE, ev, end, PX_H2_CLOSED_NORMAL, &next);
    px_h2_closed_t how;
    if (!px_h2_stab_closed_find(&ep->streams, id, &how)) {
        if (ev == PX_H2_EV_RECV_HEADERS)
            return PX_H2_CONN_ERR_PROTOCOL;
        how = PX_H2_CLOSED_BY_US;
    }
    return px_h2_state_next(PX_H2_ST_CLOSED, ev, end, how, &next);
}

/* Writes our SETTINGS frame of `cnt` entries and queues it for the ACK as `s`. Returns 0 or
 * -ENOMEM (nothing written). */
static int settings_send(px_h2_ep_t *ep, const px_h2_setting_entry_t *e, size_t cnt,
                         local_settings_t s)
{
    MEM_ASSERT(ep->pending_cnt < EP_SETTINGS_PENDING_MAX);
    uint8_t *b = reserve(ep, PX_H2_FRAME_HD_LEN + cnt * PX_H2_SETTINGS_ENTRY_LEN);
    if (b == NULL)
        return -ENOMEM;
    ep->out->commit(ep->tr, px_h2_write_settings(b, e, cnt, false));
    if (ep->pending_cnt == 0)
        ep->settings_sent_ms = now_ms(ep);
    ep->pending[ep->pending_cnt++] = s;
    return 0;
}

/* The settings the next SETTINGS frame starts from: the newest unacked, or those in force. */
static local_settings_t settings_last(const px_h2_ep_t *ep)
{
    if (ep->pending_cnt > 0)
        return (local_settings_t){
            .initial_window = ep->pending[ep->pending_cnt - 1].initial_window,
            .max_concurrent = ep->pending[ep->pending_cnt - 1].max_concurrent,
        };
    return (local_settings_t){.initial_window = ep->local_initial,
                              .max_concurrent = ep->local_max_concurrent};
}

/* Makes the decoder again after an idle trim dropped it, for the block that begins. A fresh
 * nghttp2 inflater takes the size update to 0 that the peer's first block after our ACK
 * starts with, and any later one up to 4,096. The peer is granted 4,096 bytes again with a
 * SETTINGS frame; should that frame find no memory or no room in `pending`, the next block
 * tries again, and the peer meanwhile encodes without a table. Returns 0 or -ENOMEM (the
 * block cannot be decoded: the connection must end). */
static int dec_revive(px_h2_ep_t *ep)
{
    MEM_ASSERT(ep->dec.inf == NULL);
    MEM_ASSERT(ep->hb_id == 0);
    if (px_h2_hpack_dec_init(&ep->dec, ep->cfg.mem, ep->cfg.max_header_list_size) != 0)
        return -ENOMEM;
    if (ep->dec_zero && ep->pending_cnt < EP_SETTINGS_PENDING_MAX) {
        px_h2_setting_entry_t e = {PX_H2_SETTINGS_HEADER_TABLE_SIZE, PX_H2_EP_DEC_TABLE};
        if (settings_send(ep, &e, 1, settings_last(ep)) == 0)
            ep->dec_zero = false;
    }
    return 0;
}

static int on_headers_frame(px_h2_ep_t *ep, const px_h2_frame_t *f)
{
    int32_t id = f->hd.stream_id;
    bool end = (f->hd.flags & PX_H2_FLAG_END_STREAM) != 0;
    ep->cnt.headers_in++;
    if (f->u.headers.len == 0 && !(f->hd.flags & PX_H2_FLAG_END_HEADERS))
        ep->cnt.empty_in++;
    MEM_ASSERT(ep->hb_id == 0);
    px_h2_ep_stream_t *st = px_h2_stab_get(&ep->streams, id);
    if (st != NULL) {
        px_h2_state_t next;
        px_h2_verdict_t v =
            px_h2_state_next(st->state, PX_H2_EV_RECV_HEADERS, end, PX_H2_CLOSED_NORMAL, &next);
        if (v == PX_H2_CONN_ERR_PROTOCOL)
            return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "HEADERS on a stream in this state");
        if (v == PX_H2_STREAM_ERR_CLOSED) {
            ep->hb_rst = PX_H2_STREAM_CLOSED;
            ep->hb_rst_set = true;
        } else if (ep->role == PX_H2_ROLE_SERVER && st->got_block && !end) {
            /* Section 8.1: after the request's header block only trailers, which end it. */
            ep->hb_rst = PX_H2_PROTOCOL_ERROR;
            ep->hb_rst_set = true;
        } else {
            ep->hb_st = st;
        }
    } else if (peer_parity(ep, id) && id > ep->last_peer_id) {
        if (ep->role == PX_H2_ROLE_CLIENT)
            return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "HEADERS on a stream never promised");
        ep->last_peer_id = id;
        if (ep->goaway_step == 2 && id > ep->goaway_sent_last) {
            /* Section 6.8: streams after our final GOAWAY are ignored (decoded, dropped). */
            ep->cnt.streams_refused++;
        } else if (ep->streams_peer >= ep->local_max_concurrent ||
                   (st = stream_new(ep, id, true)) == NULL) {
            /* Section 5.1.2: over the limit (or out of memory), REFUSED_STREAM says the
             * request may be retried; the block is decoded first for the table's sake. */
            ep->cnt.streams_refused++;
            ep->hb_refuse = true;
        } else {
            ep->hb_st = st;
        }
    } else {
        px_h2_verdict_t v = verdict_gone(ep, id, PX_H2_EV_RECV_HEADERS, end);
        if (v == PX_H2_CONN_ERR_CLOSED)
            return px_h2_ep_fail(ep, PX_H2_STREAM_CLOSED, "HEADERS on a closed stream");
        if (v == PX_H2_STREAM_ERR_CLOSED) {
            ep->hb_rst = PX_H2_STREAM_CLOSED;
            ep->hb_rst_set = true;
        } else if (v != PX_H2_IGNORE) {
            /* Section 5.1.1: an id below one already used, or one never opened. */
            return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "HEADERS on an unexpected stream id");
        }
    }
    if (ep->dec.inf == NULL && dec_revive(ep) != 0)
        return px_h2_ep_fail(ep, PX_H2_INTERNAL_ERROR, "out of memory for the HPACK decoder");
    ep->hb_id = id;
    ep->hb_end_stream = end;
    ep->hb_continuations = 0;
    return hb_fragment(ep, f->u.headers.block, f->u.headers.len,
                       (f->hd.flags & PX_H2_FLAG_END_HEADERS) != 0);
}

static int on_continuation(px_h2_ep_t *ep, const px_h2_frame_t *f)
{
    ep->cnt.continuation_in++;
    if (ep->hb_id == 0)
        return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "CONTINUATION without a header block");
    if (f->u.continuation.len == 0 && !(f->hd.flags & PX_H2_FLAG_END_HEADERS))
        ep->cnt.empty_in++;
    if (ep->cfg.max_continuations > 0 && ++ep->hb_continuations > ep->cfg.max_continuations)
        return px_h2_ep_fail(ep, PX_H2_ENHANCE_YOUR_CALM, "too many CONTINUATION frames");
    return hb_fragment(ep, f->u.continuation.block, f->u.continuation.len,
                       (f->hd.flags & PX_H2_FLAG_END_HEADERS) != 0);
}

static int on_data_frame(px_h2_ep_t *ep, const px_h2_frame_t *f)
{
    int32_t id = f->hd.stream_id;
    bool end = (f->hd.flags & PX_H2_FLAG_END_STREAM) != 0;
    uint32_t flow = f->hd.length; /* payload and padding (section 6.9.1) */
    ep->cnt.data_in_bytes += flow;
    if (f->u.data.len == 0 && !end)
        ep->cnt.empty_in++;
    if (px_h2_recv_window_take(&ep->conn_recv, flow) != 0)
        return px_h2_ep_fail(ep, PX_H2_FLOW_CONTROL_ERROR, "DATA beyond the connection window");
    px_h2_ep_stream_t *st = px_h2_stab_get(&ep->streams, id);
    px_h2_verdict_t v;
    px_h2_state_t next = PX_H2_ST_IDLE;
    if (st != NULL)
        v = px_h2_state_next(st->state, PX_H2_EV_RECV_DATA, end, PX_H2_CLOSED_NORMAL, &next);
    else
        v = verdict_gone(ep, id, PX_H2_EV_RECV_DATA, end);
    if (v != PX_H2_OK) {
        /* Section 6.9: what reached no stream still counted against the connection. */
        owe_conn(ep, flow);
        if (v == PX_H2_IGNORE || (st == NULL && peer_parity(ep, id) && ep->goaway_step == 2 &&
                                  id > ep->goaway_sent_last))
            return 0;
        if (v == PX_H2_STREAM_ERR_CLOSED)
            return stream_error(ep, id, PX_H2_STREAM_CLOSED);
        if (v == PX_H2_CONN_ERR_CLOSED)
            return px_h2_ep_fail(ep, PX_H2_STREAM_CLOSED, "DATA on a closed stream");
        return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "DATA on an idle stream");
    }
    if (px_h2_recv_window_take(&st->recv, flow) != 0) {
        owe_conn(ep, flow);
        return stream_error(ep, id, PX_H2_FLOW_CONTROL_ERROR);
    }
    /* Padding is consumed at once: the layer above never sees it. */
    if (f->u.data.padded > 0) {
        owe_conn(ep, f->u.data.padded);
        owe_stream(ep, st, px_h2_recv_window_consumed(&st->recv, f->u.data.padded));
    }
    st->unconsumed += (uint32_t)f->u.data.len;
    set_state(ep, st, PX_H2_EV_RECV_DATA, end);
    if (f->u.data.len > 0 || end) {
        int cb = ep->cbs->on_data(ep->ud, st, f->u.data.data, f->u.data.len, end);
        if (cb < 0 && st->state != PX_H2_ST_CLOSED)
            return stream_reset(ep, st, PX_H2_INTERNAL_ERROR);
    }
    if (st->state == PX_H2_ST_CLOSED && px_h2_stab_get(&ep->streams, id) == st)
        stream_close(ep, st, PX_H2_CLOSED_NORMAL, PX_H2_NO_ERROR);
    return 0;
}

static int on_rst_frame(px_h2_ep_t *ep, const px_h2_frame_t *f)
{
    int32_t id = f->hd.stream_id;
    uint32_t code = f->u.rst_stream.code;
    ep->cnt.rst_recv++;
    px_h2_ep_stream_t *st = px_h2_stab_get(&ep->streams, id);
    if (st == NULL) {
        px_h2_verdict_t v = verdict_gone(ep, id, PX_H2_EV_RECV_RST, false);
        if (v == PX_H2_CONN_ERR_PROTOCOL)
            return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "RST_STREAM on an idle stream");
        /* Section 5.4.2: never answer a RST_STREAM with one. */
        return 0;
    }
    if (ep->cbs->on_rst != NULL)
        ep->cbs->on_rst(ep->ud, st, code);
    if (st->state == PX_H2_ST_CLOSED)
        return 0; /* the callback reset it */
    set_closed(ep, st);
    stream_close(ep, st, PX_H2_CLOSED_BY_PEER, code);
    return 0;
}

/* Phase one of wake_streams: under px_h2_stab_each nothing may change the table, so a
 * stream with queued output joins the send list and one without is only linked for phase
 * two, where the layer above hears of it. */
static void wake_mark(void *p, void *arg)
{
    px_h2_ep_stream_t *st = p;
    px_h2_ep_stream_t **head = arg;
    if (st->state == PX_H2_ST_CLOSED || st->send_window <= 0)
        return;
    if (st->out_head != NULL || st->out_end) {
        send_list_add(st->ep, st);
    } else if (st->state == PX_H2_ST_OPEN || st->state == PX_H2_ST_HALF_CLOSED_REMOTE) {
        st->wake_next = *head;
        *head = st;
    }
}

/* Streams that can send again after a window opened; `only` limits it to one stream. */
static void wake_streams(px_h2_ep_t *ep, px_h2_ep_stream_t *only)
{
    if (ep->conn_send <= 0)
        return;
    px_h2_ep_stream_t *head = NULL;
    if (only != NULL)
        wake_mark(only, &head);
    else
        px_h2_stab_each(&ep->streams, wake_mark, &head);
    /* A callback may close streams; their memory stays until the outermost call returns. */
    while (head != NULL) {
        px_h2_ep_stream_t *st = head;
        head = st->wake_next;
        st->wake_next = NULL;
        if (st->state != PX_H2_ST_CLOSED && ep->cbs->on_window != NULL && !ep->failed)
            ep->cbs->on_window(ep->ud, st);
    }
}

static int on_window_update(px_h2_ep_t *ep, const px_h2_frame_t *f)
{
    int32_t id = f->hd.stream_id;
    uint32_t inc = f->u.window_update.increment;
    if (id == 0) {
        bool was_blocked = ep->conn_send <= 0;
        if (px_h2_window_grow(&ep->conn_send, inc) != 0)
            return px_h2_ep_fail(ep, PX_H2_FLOW_CONTROL_ERROR,
                                 "WINDOW_UPDATE past 2^31-1 on the connection");
        if (was_blocked && ep->conn_send > 0)
            wake_streams(ep, NULL);
        return 0;
    }
    px_h2_ep_stream_t *st = px_h2_stab_get(&ep->streams, id);
    if (st == NULL) {
        px_h2_verdict_t v = verdict_gone(ep, id, PX_H2_EV_RECV_WINDOW_UPDATE, false);
        if (v == PX_H2_STREAM_ERR_CLOSED)
            return stream_error(ep, id, PX_H2_STREAM_CLOSED);
        if (v == PX_H2_IGNORE || v == PX_H2_OK)
            return 0;
        return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
    }
    bool was_blocked = st->send_window <= 0;
    if (px_h2_window_grow(&st->send_window, inc) != 0)
        return stream_error(ep, id, PX_H2_FLOW_CONTROL_ERROR);
    if (was_blocked && st->send_window > 0)
        wake_streams(ep, st);
    return 0;
}

typedef struct send_resize_s {
    uint32_t old, now;
    int rc;
} send_resize_t;

/* The peer's SETTINGS_INITIAL_WINDOW_SIZE moved every stream's send window (6.9.2). */
static void send_resize(void *p, void *arg)
{
    px_h2_ep_stream_t *st = p;
    send_resize_t *r = arg;
    if (px_h2_window_resize(&st->send_window, r->old, r->now) != 0)
        r->rc = -EOVERFLOW;
}

/* Our SETTINGS_INITIAL_WINDOW_SIZE moved every stream's receive window. */
static void recv_resize(void *p, void *arg)
{
    px_h2_ep_stream_t *st = p;
    /* The peer moves its view of the window when it reads the SETTINGS. */
    px_h2_recv_window_settings(&st->recv, *(const uint32_t *)arg);
}

static int apply_peer_settings(px_h2_ep_t *ep, const px_h2_frame_t *f)
{
    for (size_t i = 0; i < f->u.settings.cnt; i++) {
        px_h2_setting_entry_t e = px_h2_settings_get(f, i);
        switch (e.id) {
        case PX_H2_SETTINGS_HEADER_TABLE_SIZE:
            ep->peer_table_size = e.value;
            if (ep->enc.def == NULL)
                break; /* applied when the encoder is made again */
            if (px_h2_hpack_enc_table_size(&ep->enc, e.value) != 0) {
                px_h2_ep_fail(ep, PX_H2_INTERNAL_ERROR, "out of memory for the HPACK table");
                return -ENOMEM;
            }
            break;
        case PX_H2_SETTINGS_ENABLE_PUSH:
            /* Section 6.5.2: a server MUST NOT send 1. */
            if (ep->role == PX_H2_ROLE_CLIENT && e.value != 0)
                return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "server sent ENABLE_PUSH 1");
            break;
        case PX_H2_SETTINGS_MAX_CONCURRENT_STREAMS:
            ep->peer_max_concurrent = e.value;
            break;
        case PX_H2_SETTINGS_INITIAL_WINDOW_SIZE: {
            uint32_t old = ep->peer_initial;
            if (e.value < old)
                ep->send_shrunk = true;
            send_resize_t r = {.old = old, .now = e.value};
            px_h2_stab_each(&ep->streams, send_resize, &r);
            int rc = r.rc;
            if (rc != 0)
                return px_h2_ep_fail(ep, PX_H2_FLOW_CONTROL_ERROR,
                                     "SETTINGS_INITIAL_WINDOW_SIZE takes a window past 2^31-1");
            ep->peer_initial = e.value;
            if (e.value > old)
                wake_streams(ep, NULL);
            break;
        }
        case PX_H2_SETTINGS_MAX_FRAME_SIZE:
            ep->peer_max_frame = e.value;
            break;
        default:
            break; /* MAX_HEADER_LIST_SIZE is advisory; unknown ones are ignored */
        }
    }
    return 0;
}

/* Our oldest unacked SETTINGS is acknowledged: what it lowered takes effect now. */
static void settings_acked(px_h2_ep_t *ep)
{
    local_settings_t s = ep->pending[0];
    bool table_zero = ep->dec_zeroing;
    memmove(&ep->pending[0], &ep->pending[1], (EP_SETTINGS_PENDING_MAX - 1) * sizeof(s));
    ep->pending_cnt--;
    ep->settings_sent_ms = now_ms(ep);
    ep->local_max_concurrent = s.max_concurrent;
    if (table_zero) {
        /* From here on the peer's next block starts with a size update to 0 (RFC 7541 4.2),
         * so nothing in our decoder's table can be referenced again: it goes, with nghttp2's
         * 1,024-byte ring of entry pointers, until the next block (dec_revive). No block can
         * be open here: CONTINUATION frames allow nothing between them (RFC 9113 6.10). */
        MEM_ASSERT(ep->hb_id == 0);
        ep->dec_zeroing = false;
        ep->dec_zero = true;
        px_h2_hpack_dec_fini(&ep->dec);
    }
    if (s.initial_window < ep->local_initial) {
        ep->recv_shrunk = true;
        ep->local_initial = s.initial_window;
        px_h2_stab_each(&ep->streams, recv_resize, &s.initial_window);
    }
}

static int on_settings(px_h2_ep_t *ep, const px_h2_frame_t *f)
{
    if (!(f->hd.flags & PX_H2_FLAG_ACK))
        ep->cnt.settings_in++;
    if (f->hd.flags & PX_H2_FLAG_ACK) {
        /* An ACK for nothing we sent is ignored. */
        if (ep->pending_cnt > 0)
            settings_acked(ep);
        return 0;
    }
    int rc = apply_peer_settings(ep, f);
    if (rc != 0)
        return rc;
    uint8_t *b = reserve(ep, PX_H2_FRAME_HD_LEN);
    if (b == NULL)
        return -ENOMEM;
    ep->out->commit(ep->tr, px_h2_write_settings(b, NULL, 0, true));
    return 0;
}

static int on_ping(px_h2_ep_t *ep, const px_h2_frame_t *f)
{
    if (!(f->hd.flags & PX_H2_FLAG_ACK)) {
        ep->cnt.ping_in++;
        return write_ping(ep, f->u.ping.opaque, true);
    }
    if (ep->goaway_step == 1 && memcmp(f->u.ping.opaque, EP_DRAIN_PING, 8) == 0) {
        /* Section 6.8: a round trip after the first GOAWAY, every stream the peer opened
         * has reached us; the final GOAWAY names the last. */
        ep->goaway_step = 2;
        ep->goaway_sent_last = ep->last_peer_id;
        return write_goaway(ep, ep->last_peer_id, PX_H2_NO_ERROR, "shutdown");
    }
    return 0;
}

static void goaway_mark(void *p, void *arg)
{
    px_h2_ep_stream_t *st = p;
    px_h2_ep_stream_t **head = arg;
    if (!st->peer_init && st->id > st->ep->goaway_recv_last && st->state != PX_H2_ST_CLOSED) {
        st->wake_next = *head;
        *head = st;
    }
}

static int on_goaway(px_h2_ep_t *ep, const px_h2_frame_t *f)
{
    int32_t last = f->u.goaway.last_stream_id;
    ep->goaway_recv = true;
    if (last < ep->goaway_recv_last)
        ep->goaway_recv_last = last;
    if (ep->cbs->on_goaway != NULL)
        ep->cbs->on_goaway(ep->ud, last, f->u.goaway.code, f->u.goaway.debug,
                           f->u.goaway.debug_len);
    /* Streams of ours above `last` were never processed: closed, safe to retry. Listed
     * first, since closing changes the table; a callback that closes one of them first is
     * seen (its memory stays until the outermost call returns). */
    px_h2_ep_stream_t *head = NULL;
    px_h2_stab_each(&ep->streams, goaway_mark, &head);
    while (head != NULL) {
        px_h2_ep_stream_t *st = head;
        head = st->wake_next;
        st->wake_next = NULL;
        if (st->state == PX_H2_ST_CLOSED)
            continue;
        set_closed(ep, st);
        stream_close(ep, st, PX_H2_CLOSED_BY_PEER, PX_H2_REFUSED_STREAM);
    }
    if (f->u.goaway.code != PX_H2_NO_ERROR && !ep->failed) {
        ep->failed = true;
        ep->fail_code = f->u.goaway.code;
        if (ep->cbs->on_fail != NULL)
            ep->cbs->on_fail(ep->ud, f->u.goaway.code, PX_H2_EP_PEER_GOAWAY);
    }
    return 0;
}

static int on_frame(void *ud, const px_h2_frame_hd_t *hd, const uint8_t *payload)
{
    px_h2_ep_t *ep = ud;
    if (ep->failed)
        return -EPROTO;
    if (ep->cbs->on_frame != NULL) {
        const char *why = ep->cbs->on_frame(ep->ud, hd, &ep->cnt);
        if (why != NULL)
            return px_h2_ep_fail(ep, PX_H2_ENHANCE_YOUR_CALM, why);
    }
    ep->cnt.frames_in++;
    /* Section 6.10: nothing may come between a header block's frames. */
    if (ep->hb_id != 0 && (hd->type != PX_H2_CONTINUATION || hd->stream_id != ep->hb_id))
        return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "a header block was interrupted");
    /* Section 3.4: the preface's SETTINGS comes first. */
    if (!ep->got_settings) {
        if (hd->type != PX_H2_SETTINGS || (hd->flags & PX_H2_FLAG_ACK))
            return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "the preface's SETTINGS is missing");
        ep->got_settings = true;
    }
    px_h2_frame_t f;
    px_h2_frame_err_t err;
    if (px_h2_frame_decode(hd, payload, ep->cfg.max_frame_size, &f, &err) != 0) {
        /* A stream error on HEADERS would leave its block undecoded and the HPACK tables out
         * of step: that one ends the connection (section 5.4.1 allows it for any). */
        bool idle = hd->stream_id != 0 && px_h2_stab_get(&ep->streams, hd->stream_id) == NULL &&
                    (peer_parity(ep, hd->stream_id) ? hd->stream_id > ep->last_peer_id
                                                    : hd->stream_id >= ep->next_local_id);
        /* Nor may a RST_STREAM go to an idle stream (section 6.4): that too ends it all. */
        if (err.stream && hd->type != PX_H2_HEADERS && !idle) {
            ep->cnt.control_in++;
            return stream_error(ep, hd->stream_id, err.code);
        }
        return px_h2_ep_fail(ep, err.code, err.reason);
    }
    switch (hd->type) {
    case PX_H2_DATA:
        return on_data_frame(ep, &f);
    case PX_H2_HEADERS:
        return on_headers_frame(ep, &f);
    case PX_H2_CONTINUATION:
        return on_continuation(ep, &f);
    case PX_H2_PRIORITY:
        ep->cnt.control_in++;
        return 0; /* section 5.3.2: validated, otherwise ignored */
    case PX_H2_RST_STREAM:
        ep->cnt.control_in++;
        return on_rst_frame(ep, &f);
    case PX_H2_SETTINGS:
        ep->cnt.control_in++;
        return on_settings(ep, &f);
    case PX_H2_PUSH_PROMISE:
        /* We never allow push: a server gets none, a client sends ENABLE_PUSH 0. */
        return px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "PUSH_PROMISE");
    case PX_H2_PING:
        ep->cnt.control_in++;
        return on_ping(ep, &f);
    case PX_H2_GOAWAY:
        ep->cnt.control_in++;
        return on_goaway(ep, &f);
    case PX_H2_WINDOW_UPDATE:
        ep->cnt.control_in++;
        return on_window_update(ep, &f);
    default:
        return 0; /* section 4.1: unknown types are ignored */
    }
}

/* ---- public: lifecycle ------------------------------------------------------------- */

void px_h2_ep_config_default(px_h2_ep_config_t *cfg, nghttp2_mem *mem)
{
    MEM_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_concurrent_streams = 100;
    cfg->initial_window = 65536;
    cfg->conn_window = 16u << 20;
    cfg->max_frame_size = PX_H2_MAX_FRAME_MIN;
    cfg->max_header_list_size = 65536;
    cfg->max_continuations = 8;
    cfg->settings_timeout_ms = 10000;
    cfg->mem = mem;
}

size_t px_h2_ep_size(void)
{
    return sizeof(px_h2_ep_t);
}

px_h2_ep_t *px_h2_ep_new(mem_region_t *region, px_h2_role_t role, const px_h2_ep_config_t *cfg,
                         const px_h2_ep_out_t *out, void *tr, const px_h2_ep_cbs_t *cbs, void *ud)
{
    MEM_ASSERT(region != NULL);
    void *at = mem_region_alloc(region, sizeof(px_h2_ep_t));
    if (at == NULL)
        return NULL;
    return px_h2_ep_new_at(at, region, role, cfg, out, tr, cbs, ud);
}

px_h2_ep_t *px_h2_ep_new_at(void *at, mem_region_t *region, px_h2_role_t role,
                            const px_h2_ep_config_t *cfg, const px_h2_ep_out_t *out, void *tr,
                            const px_h2_ep_cbs_t *cbs, void *ud)
{
    MEM_ASSERT(at != NULL && ((uintptr_t)at & 15u) == 0);
    MEM_ASSERT(region != NULL && cfg != NULL && out != NULL && cbs != NULL);
    MEM_ASSERT(cbs->on_headers != NULL && cbs->on_data != NULL && cbs->on_stream_close != NULL);
    MEM_ASSERT(cfg->conn_window >= PX_H2_WINDOW_DEFAULT &&
               cfg->conn_window <= (uint32_t)PX_H2_WINDOW_MAX);
    MEM_ASSERT(cfg->initial_window <= (uint32_t)PX_H2_WINDOW_MAX);
    px_h2_ep_t *ep = memset(at, 0, sizeof(px_h2_ep_t));
    ep->region = region;
    ep->cfg = *cfg;
    ep->role = role;
    ep->out = out;
    ep->tr = tr;
    ep->cbs = cbs;
    ep->ud = ud;
    px_h2_reader_init(&ep->reader, role == PX_H2_ROLE_SERVER, cfg->max_frame_size);
    px_h2_stab_init(&ep->streams);
    if (px_h2_hpack_dec_init(&ep->dec, cfg->mem, cfg->max_header_list_size) != 0)
        goto fail;
    if (px_h2_hpack_enc_init(&ep->enc, cfg->mem, PX_H2_EP_ENC_TABLE) != 0)
        goto fail_dec;
    /* The connection window starts at 65,535 (section 6.9.2); start raises it. */
    px_h2_recv_window_init(&ep->conn_recv, PX_H2_WINDOW_DEFAULT);
    ep->conn_send = PX_H2_WINDOW_DEFAULT;
    /* Until our SETTINGS is acknowledged the peer may use the defaults. */
    ep->local_initial = PX_H2_WINDOW_DEFAULT;
    ep->local_max_concurrent = cfg->max_concurrent_streams;
    ep->peer_initial = PX_H2_WINDOW_DEFAULT;
    ep->peer_table_size = 4096; /* section 6.5.2's default */
    ep->peer_max_frame = PX_H2_MAX_FRAME_MIN;
    ep->peer_max_concurrent = UINT32_MAX; /* section 6.5.2: unlimited until it says */
    ep->next_local_id = role == PX_H2_ROLE_CLIENT ? 1 : 2;
    ep->goaway_sent_last = PX_H2_STREAM_ID_MAX;
    ep->goaway_recv_last = PX_H2_STREAM_ID_MAX;
    return ep;
fail_dec:
    px_h2_hpack_dec_fini(&ep->dec);
fail:
    return NULL;
}

int px_h2_ep_start(px_h2_ep_t *ep)
{
    MEM_ASSERT(ep->pending_cnt == 0);
    px_h2_setting_entry_t e[5];
    size_t n = 0;
    if (ep->role == PX_H2_ROLE_CLIENT)
        e[n++] = (px_h2_setting_entry_t){PX_H2_SETTINGS_ENABLE_PUSH, 0};
    else
        e[n++] = (px_h2_setting_entry_t){PX_H2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                         ep->cfg.max_concurrent_streams};
    e[n++] = (px_h2_setting_entry_t){PX_H2_SETTINGS_INITIAL_WINDOW_SIZE, ep->cfg.initial_window};
    if (ep->cfg.max_frame_size != PX_H2_MAX_FRAME_MIN)
        e[n++] = (px_h2_setting_entry_t){PX_H2_SETTINGS_MAX_FRAME_SIZE, ep->cfg.max_frame_size};
    if (ep->cfg.max_header_list_size > 0)
        e[n++] = (px_h2_setting_entry_t){PX_H2_SETTINGS_MAX_HEADER_LIST_SIZE,
                                         ep->cfg.max_header_list_size};
    size_t pre = ep->role == PX_H2_ROLE_CLIENT ? PX_H2_PREFACE_LEN : 0;
    uint32_t conn_inc = ep->cfg.conn_window - PX_H2_WINDOW_DEFAULT;
    size_t len = pre + PX_H2_FRAME_HD_LEN + n * PX_H2_SETTINGS_ENTRY_LEN +
                 (conn_inc > 0 ? PX_H2_FRAME_HD_LEN + 4 : 0);
    uint8_t *b = reserve(ep, len);
    if (b == NULL)
        return -ENOMEM;
    size_t off = 0;
    memcpy(b, PX_H2_PREFACE, pre);
    off += pre;
    off += px_h2_write_settings(b + off, e, n, false);
    if (conn_inc > 0) {
        off += px_h2_write_window_update(b + off, 0, conn_inc);
        (void)px_h2_recv_window_resize(&ep->conn_recv, ep->cfg.conn_window);
    }
    MEM_ASSERT(off == len);
    ep->out->commit(ep->tr, off);
    ep->pending[ep->pending_cnt++] = (local_settings_t){
        .initial_window = ep->cfg.initial_window,
        .max_concurrent = ep->cfg.max_concurrent_streams,
    };
    /* A larger window counts from now (the peer may use it before it ACKs). */
    if (ep->cfg.initial_window > ep->local_initial)
        ep->local_initial = ep->cfg.initial_window;
    ep->settings_sent_ms = now_ms(ep);
    return 0;
}

void px_h2_ep_free(px_h2_ep_t *ep)
{
    if (ep == NULL)
        return;
    enter(ep);
    uint32_t code = ep->failed ? ep->fail_code : PX_H2_CANCEL;
    /* One at a time: on_stream_close may touch other streams. */
    while (ep->streams.cnt > 0) {
        px_h2_ep_stream_t *st = NULL;
        for (uint32_t i = 0; st == NULL; i++)
            st = ep->streams.slots[i].p;
        if (st->state != PX_H2_ST_CLOSED)
            set_closed(ep, st);
        stream_close(ep, st, PX_H2_CLOSED_BY_US, code);
    }
    hb_reset(ep);
    leave(ep);
    px_h2_stab_fini(&ep->streams);
    px_h2_reader_fini(&ep->reader);
    px_h2_hpack_dec_fini(&ep->dec);
    px_h2_hpack_enc_fini(&ep->enc);
}

int px_h2_ep_feed(px_h2_ep_t *ep, const uint8_t *data, size_t len)
{
    MEM_ASSERT(ep != NULL);
    if (ep->failed)
        return -EPROTO;
    enter(ep);
    int rc = px_h2_reader_feed(&ep->reader, data, len, on_frame, ep);
    if (rc == -EPROTO && !ep->failed)
        /* Section 3.4: a preface that is not HTTP/2's is a connection error. */
        rc = px_h2_ep_fail(ep, PX_H2_PROTOCOL_ERROR, "invalid connection preface");
    else if (rc == -EMSGSIZE)
        rc = px_h2_ep_fail(ep, PX_H2_FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE");
    else if (rc == -ENOMEM && !ep->failed)
        px_h2_ep_fail(ep, PX_H2_INTERNAL_ERROR, "out of memory");
    if (rc == 0 && ep->failed)
        rc = -EPROTO;
    leave(ep);
    return rc;
}

/* ---- output ------------------------------------------------------------------------ */

/* Makes the encoder again after px_h2_ep_trim dropped it. Its table starts empty while the
 * peer's decoder still holds the old entries; two size updates, to 0 and back (RFC 7541
 * sections 4.2 and 6.3), start the next block, so the peer drops them too and both tables
 * hold the same entries from then on. Returns 0 or -ENOMEM (nothing changed). */
static int enc_revive(px_h2_ep_t *ep)
{
    MEM_ASSERT(ep->enc.def == NULL);
    if (px_h2_hpack_enc_init(&ep->enc, ep->cfg.mem, PX_H2_EP_ENC_TABLE) != 0)
        return -ENOMEM;
    if (px_h2_hpack_enc_table_size(&ep->enc, 0) != 0 ||
        px_h2_hpack_enc_table_size(&ep->enc, ep->peer_table_size) != 0) {
        px_h2_hpack_enc_fini(&ep->enc);
        return -ENOMEM;
    }
    return 0;
}

/* Encodes `nva` and writes it as HEADERS + CONTINUATION on `id`. */
/* A header block whose encoding bound is at most this is encoded on the stack. */
#define WRITE_HEADERS_STACK 2048

static int write_headers(px_h2_ep_t *ep, int32_t id, const nghttp2_nv *nva, size_t cnt, bool end)
{
    if (ep->enc.def == NULL && enc_revive(ep) != 0)
        return -ENOMEM;
    size_t bound = px_h2_hpack_encode_bound(&ep->enc, nva, cnt);
    /* The block is encoded here, then cut into frames: on the stack when its bound fits (a
     * usual head: no malloc and free per header block, two a proxied request). */
    uint8_t stack[WRITE_HEADERS_STACK];
    uint8_t *tmp = bound <= sizeof(stack) ? stack : mem_malloc(bound);
    if (tmp == NULL)
        return -ENOMEM;
    uint8_t *b = reserve(ep, px_h2_block_frames_len(bound, ep->peer_max_frame));
    ssize_t n = b != NULL ? px_h2_hpack_encode(&ep->enc, tmp, bound, nva, cnt) : -1;
    size_t len = n >= 0 ? px_h2_write_block(b, id, tmp, (size_t)n, ep->peer_max_frame, end) : 0;
    if (tmp != stack)
        mem_free(tmp);
    if (b == NULL)
        return -ENOMEM;
    if (n < 0) {
        /* The encoder's table may have moved without the peer's: nothing can follow. */
        px_h2_ep_fail(ep, PX_H2_INTERNAL_ERROR, "HPACK encoding failed");
        return -ENOMEM;
    }
    ep->out->commit(ep->tr, len);
    return 0;
}

static bool can_send(const px_h2_ep_stream_t *st)
{
    return (st->state == PX_H2_ST_OPEN || st->state == PX_H2_ST_HALF_CLOSED_REMOTE) && !st->out_end;
}

/* Writes one frame of `st`'s queue (taken off the send list by the caller). Returns 1 when
 * it wrote one, 0 when the stream is blocked by a window, -ENOMEM. */
static int send_one(px_h2_ep_t *ep, px_h2_ep_stream_t *st)
{
    MEM_ASSERT(st->state == PX_H2_ST_OPEN || st->state == PX_H2_ST_HALF_CLOSED_REMOTE);
    out_chunk_t *c = st->out_head;
    if (c == NULL) {
        /* Only the end is left: trailers, or an empty DATA with END_STREAM. */
        MEM_ASSERT(st->out_end);
        if (st->trailers != NULL) {
            int rc = write_headers(ep, st->id, st->trailers, st->trailers_cnt, true);
            if (rc != 0)
                return rc;
            st->trailers = NULL;
            st->out_end = false;
            set_state(ep, st, PX_H2_EV_SEND_HEADERS, true);
        } else {
            uint8_t hd[PX_H2_FRAME_HD_LEN];
            px_h2_write_data_hd(hd, st->id, 0, true);
            int rc = ep->out->data(ep->tr, hd, NULL, 0, NULL, NULL);
            if (rc != 0)
                return rc;
            st->out_end = false;
            set_state(ep, st, PX_H2_EV_SEND_DATA, true);
        }
        if (st->state == PX_H2_ST_CLOSED)
            stream_close(ep, st, PX_H2_CLOSED_NORMAL, PX_H2_NO_ERROR);
        return 1;
    }
    int64_t room = MEM_MIN(st->send_window, ep->conn_send);
    room = MEM_MIN(room, (int64_t)ep->peer_max_frame);
    if (room <= 0)
        return 0;
    size_t left = c->len - c->off;
    MEM_ASSERT(left > 0);
    size_t n = MEM_MIN(left, (size_t)room);
    bool last_of_chunk = n == left;
    bool end = last_of_chunk && c->next == NULL && st->out_end && st->trailers == NULL;
    uint8_t hd[PX_H2_FRAME_HD_LEN];
    px_h2_write_data_hd(hd, st->id, (uint32_t)n, end);
    /* The payload goes out from its own buffer; the release rides on its last slice, which
     * the transport writes after the earlier ones. */
    int rc = ep->out->data(ep->tr, hd, c->p + c->off, n, last_of_chunk ? c->fn : NULL, c->arg);
    if (rc != 0)
        return rc;
    px_h2_window_spend(&st->send_window, (uint32_t)n);
    px_h2_window_spend(&ep->conn_send, (uint32_t)n);
    c->off += n;
    st->queued -= n;
    if (last_of_chunk) {
        st->out_head = c->next;
        if (st->out_head == NULL)
            st->out_tail = NULL;
        mem_free(c);
    }
    if (end)
        st->out_end = false;
    set_state(ep, st, PX_H2_EV_SEND_DATA, end);
    if (st->state == PX_H2_ST_CLOSED) {
        stream_close(ep, st, PX_H2_CLOSED_NORMAL, PX_H2_NO_ERROR);
    } else if (st->out_head == NULL && !st->out_end && ep->cbs->on_window != NULL &&
               st->send_window > 0 && ep->conn_send > 0) {
        /* Its queue ran dry with window to spare: the layer above may send more. */
        ep->cbs->on_window(ep->ud, st);
    }
    return 1;
}

static int flush_window_updates(px_h2_ep_t *ep)
{
    if (ep->wu_conn_owed > 0) {
        uint8_t *b = reserve(ep, PX_H2_FRAME_HD_LEN + 4);
        if (b == NULL)
            return -ENOMEM;
        ep->out->commit(ep->tr, px_h2_write_window_update(b, 0, ep->wu_conn_owed));
        ep->wu_conn_owed = 0;
    }
    while (ep->wu_head != NULL) {
        px_h2_ep_stream_t *st = ep->wu_head;
        uint8_t *b = reserve(ep, PX_H2_FRAME_HD_LEN + 4);
        if (b == NULL)
            return -ENOMEM;
        ep->out->commit(ep->tr, px_h2_write_window_update(b, st->id, st->wu_owed));
        ep->wu_head = st->wu_next;
        st->on_wu = false;
        st->wu_owed = 0;
    }
    return 0;
}

int px_h2_ep_flush(px_h2_ep_t *ep)
{
    MEM_ASSERT(ep != NULL);
    if (ep->failed)
        return 0;
    enter(ep);
    int rc = flush_window_updates(ep);
    /* Round robin: the stream at the head writes one frame and goes to the back, so one large
     * response cannot hold back the others. A stream blocked by a window leaves the list
     * until a WINDOW_UPDATE or SETTINGS brings it back (wake_streams). */
    while (rc == 0 && ep->send_head != NULL) {
        px_h2_ep_stream_t *st = ep->send_head;
        ep->send_head = st->send_next;
        if (ep->send_head == NULL)
            ep->send_tail = NULL;
        st->sending = false;
        st->send_next = NULL;
        int r = send_one(ep, st);
        if (r < 0) {
            send_list_add(ep, st); /* nothing was written: it stays queued */
            rc = r;
        } else if (r > 0 && st->state != PX_H2_ST_CLOSED && (st->out_head != NULL || st->out_end)) {
            send_list_add(ep, st);
        }
    }
    leave(ep);
    return rc;
}

int px_h2_ep_submit_request(px_h2_ep_t *ep, const nghttp2_nv *nva, size_t cnt, bool end_stream,
                            void *st_ud, px_h2_ep_stream_t **out)
{
    MEM_ASSERT(ep->role == PX_H2_ROLE_CLIENT);
    MEM_ASSERT(out != NULL);
    *out = NULL;
    if (ep->failed || ep->goaway_recv || ep->goaway_step > 0)
        return -ECONNREFUSED;
    if (ep->streams_local >= ep->peer_max_concurrent)
        return -EAGAIN;
    if (ep->next_local_id > PX_H2_STREAM_ID_MAX - 2)
        return -ERANGE;
    enter(ep);
    int rc = 0;
    px_h2_ep_stream_t *st = stream_new(ep, ep->next_local_id, false);
    if (st == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    rc = write_headers(ep, st->id, nva, cnt, end_stream);
    if (rc != 0) {
        /* Never sent: its id is used by the next request. */
        ep->cnt.streams_opened--;
        px_h2_stab_drop(&ep->streams, st->id);
        mem_subregion_free(st->sub); /* st freed */
        goto done;
    }
    ep->next_local_id += 2;
    st->ud = st_ud;
    set_state(ep, st, PX_H2_EV_SEND_HEADERS, end_stream);
    *out = st;
done:
    leave(ep);
    return rc;
}

int px_h2_ep_submit_headers(px_h2_ep_t *ep, px_h2_ep_stream_t *st, const nghttp2_nv *nva,
                            size_t cnt, bool end_stream)
{
    MEM_ASSERT(st != NULL && st->ep == ep);
    if (ep->failed || !can_send(st))
        return -EPIPE;
    if (st->out_head != NULL) {
        /* Trailers after queued DATA: encoded when their turn comes, since HPACK's table
         * must change in the order the blocks go out. */
        if (!end_stream)
            return -EPIPE;
        nghttp2_nv *t = mem_subregion_alloc(st->sub, cnt * sizeof(*t));
        if (t == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < cnt; i++) {
            uint8_t *b = mem_subregion_alloc(st->sub, nva[i].namelen + nva[i].valuelen + 2);
            if (b == NULL)
                return -ENOMEM;
            memcpy(b, nva[i].name, nva[i].namelen);
            b[nva[i].namelen] = 0;
            memcpy(b + nva[i].namelen + 1, nva[i].value, nva[i].valuelen);
            b[nva[i].namelen + 1 + nva[i].valuelen] = 0;
            t[i] = (nghttp2_nv){b, b + nva[i].namelen + 1, nva[i].namelen, nva[i].valuelen, 0};
        }
        st->trailers = t;
        st->trailers_cnt = cnt;
        st->out_end = true;
        return 0;
    }
    enter(ep);
    int rc = write_headers(ep, st->id, nva, cnt, end_stream);
    if (rc == 0) {
        set_state(ep, st, PX_H2_EV_SEND_HEADERS, end_stream);
        if (st->state == PX_H2_ST_CLOSED)
            stream_close(ep, st, PX_H2_CLOSED_NORMAL, PX_H2_NO_ERROR);
    }
    leave(ep);
    return rc;
}

int px_h2_ep_submit_data(px_h2_ep_t *ep, px_h2_ep_stream_t *st, const uint8_t *p, size_t len,
                         bool end_stream, px_h2_release_fn fn, void *arg)
{
    MEM_ASSERT(st != NULL && st->ep == ep);
    MEM_ASSERT(p != NULL || len == 0);
    if (ep->failed || !can_send(st))
        return -EPIPE;
    if (len > 0) {
        out_chunk_t *c = mem_malloc(sizeof(*c));
        if (c == NULL)
            return -ENOMEM;
        *c = (out_chunk_t){.p = p, .len = len, .fn = fn, .arg = arg};
        if (st->out_tail != NULL)
            st->out_tail->next = c;
        else
            st->out_head = c;
        st->out_tail = c;
        st->queued += len;
    } else if (fn != NULL) {
        fn(arg); /* nothing to write: released at once */
    }
    if (end_stream)
        st->out_end = true;
    if (st->out_head != NULL || st->out_end)
        send_list_add(ep, st);
    return 0;
}

int px_h2_ep_submit_rst(px_h2_ep_t *ep, px_h2_ep_stream_t *st, uint32_t code)
{
    MEM_ASSERT(st != NULL && st->ep == ep);
    if (st->state == PX_H2_ST_CLOSED)
        return 0;
    enter(ep);
    int rc = stream_reset(ep, st, code);
    leave(ep);
    return rc;
}

int px_h2_ep_submit_ping(px_h2_ep_t *ep, const uint8_t opaque[8])
{
    return write_ping(ep, opaque, false);
}

int px_h2_ep_submit_settings(px_h2_ep_t *ep, const px_h2_setting_entry_t *e, size_t cnt)
{
    MEM_ASSERT(e != NULL || cnt == 0);
    if (ep->pending_cnt >= EP_SETTINGS_PENDING_MAX)
        return -EBUSY;
    local_settings_t s = settings_last(ep);
    for (size_t i = 0; i < cnt; i++) {
        if (e[i].id == PX_H2_SETTINGS_INITIAL_WINDOW_SIZE) {
            if (e[i].value > (uint32_t)PX_H2_WINDOW_MAX)
                return -EINVAL;
            s.initial_window = e[i].value;
        } else if (e[i].id == PX_H2_SETTINGS_MAX_CONCURRENT_STREAMS) {
            s.max_concurrent = e[i].value;
        } else if (e[i].id == PX_H2_SETTINGS_MAX_FRAME_SIZE ||
                   e[i].id == PX_H2_SETTINGS_ENABLE_PUSH ||
                   e[i].id == PX_H2_SETTINGS_HEADER_TABLE_SIZE) {
            return -EINVAL; /* fixed for the connection's life */
        }
    }
    if (settings_send(ep, e, cnt, s) != 0)
        return -ENOMEM;
    if (s.initial_window > ep->local_initial) {
        /* Larger now: the peer may use it as soon as it reads the frame. */
        px_h2_stab_each(&ep->streams, recv_resize, &s.initial_window);
        ep->local_initial = s.initial_window;
    }
    return 0;
}

int px_h2_ep_shutdown(px_h2_ep_t *ep)
{
    if (ep->failed || ep->goaway_step > 0)
        return 0;
    if (ep->role == PX_H2_ROLE_CLIENT) {
        int rc = write_goaway(ep, ep->last_peer_id, PX_H2_NO_ERROR, "shutdown");
        if (rc == 0) {
            ep->goaway_step = 2;
            ep->goaway_sent_last = ep->last_peer_id;
        }
        return rc;
    }
    /* Two steps (section 6.8): the first GOAWAY warns and a PING measures the round trip; the
     * final one follows the PING's ACK, when no stream the peer opened can still be on the
     * way. */
    uint8_t *b = reserve(ep, 2 * PX_H2_FRAME_HD_LEN + 8 + 8 + 8);
    if (b == NULL)
        return -ENOMEM;
    size_t off = px_h2_write_goaway(b, PX_H2_STREAM_ID_MAX, PX_H2_NO_ERROR, "shutdown", 8);
    off += px_h2_write_ping(b + off, (const uint8_t *)EP_DRAIN_PING, false);
    ep->out->commit(ep->tr, off);
    ep->goaway_step = 1;
    ep->drain_sent_ms = now_ms(ep);
    return 0;
}

int px_h2_ep_fail(px_h2_ep_t *ep, uint32_t code, const char *reason)
{
    MEM_ASSERT(ep != NULL);
    MEM_ASSERT(reason != NULL);
    if (ep->failed)
        return -EPROTO;
    ep->failed = true;
    ep->fail_code = code;
    if (ep->cbs->on_fail != NULL)
        ep->cbs->on_fail(ep->ud, code, reason);
    /* Best effort: without memory for it the connection closes without a GOAWAY. */
    (void)write_goaway(ep, ep->last_peer_id, code, reason);
    ep->goaway_step = 2;
    ep->goaway_sent_last = ep->last_peer_id;
    return -EPROTO;
}

void px_h2_ep_consume(px_h2_ep_t *ep, px_h2_ep_stream_t *st, size_t len)
{
    MEM_ASSERT(st != NULL && st->ep == ep);
    MEM_ASSERT(len <= st->unconsumed);
    if (len == 0 || st->state == PX_H2_ST_CLOSED)
        return;
    st->unconsumed -= (uint32_t)len;
    owe_conn(ep, (uint32_t)len);
    owe_stream(ep, st, px_h2_recv_window_consumed(&st->recv, (uint32_t)len));
}

int px_h2_ep_tick(px_h2_ep_t *ep)
{
    if (ep->failed || ep->cbs->now_ms == NULL)
        return ep->failed ? -EPROTO : 0;
    uint64_t now = now_ms(ep);
    /* The trim's SETTINGS is not timed: a client may well read nothing while it has no
     * request (curl's idle pool does not), and the decoder then simply stays. */
    if (ep->pending_cnt > 0 && !ep->dec_zeroing &&
        now - ep->settings_sent_ms > ep->cfg.settings_timeout_ms)
        return px_h2_ep_fail(ep, PX_H2_SETTINGS_TIMEOUT, "SETTINGS not acknowledged in time");
    if (ep->goaway_step == 1 && now - ep->drain_sent_ms > ep->cfg.settings_timeout_ms) {
        if (write_goaway(ep, ep->last_peer_id, PX_H2_NO_ERROR, "shutdown") == 0) {
            ep->goaway_step = 2;
            ep->goaway_sent_last = ep->last_peer_id;
        }
    }
    return 0;
}

bool px_h2_ep_trim(px_h2_ep_t *ep)
{
    if (!px_h2_ep_idle(ep) || ep->failed)
        return false;
    bool done = false;
    if (ep->enc.def != NULL) {
        px_h2_hpack_enc_fini(&ep->enc); /* enc_revive makes it again for the next block */
        done = true;
    }
    /* The decoder's table is the peer's to fill: hold the peer to 0 bytes (SETTINGS), and
     * settings_acked drops the decoder once it agrees. Only with nothing else unacked, so a
     * peer that never answers costs nothing but the 15-byte frame, and not after a GOAWAY.
     * Server role only: a worker holds many idle client connections and few pooled upstream
     * ones, whose output buffer the frame would allocate again (h2w does not trim). */
    if (ep->role == PX_H2_ROLE_SERVER && ep->dec.inf != NULL && !ep->dec_zeroing &&
        ep->pending_cnt == 0 && ep->goaway_step == 0 && !ep->goaway_recv) {
        px_h2_setting_entry_t e = {PX_H2_SETTINGS_HEADER_TABLE_SIZE, 0};
        if (settings_send(ep, &e, 1, settings_last(ep)) == 0) {
            ep->dec_zeroing = true;
            done = true;
        }
    }
    return done;
}

/* ---- getters ----------------------------------------------------------------------- */

bool px_h2_ep_done(const px_h2_ep_t *ep)
{
    if (ep->failed)
        return true;
    return (ep->goaway_recv || ep->goaway_step == 2) && ep->streams.cnt == 0;
}

bool px_h2_ep_idle(const px_h2_ep_t *ep)
{
    return ep->streams.cnt == 0 && ep->hb_id == 0 && !px_h2_reader_busy(&ep->reader);
}

bool px_h2_ep_block_open(const px_h2_ep_t *ep)
{
    return ep->hb_id != 0;
}

uint32_t px_h2_ep_error(const px_h2_ep_t *ep)
{
    return ep->failed ? ep->fail_code : PX_H2_NO_ERROR;
}

const px_h2_ep_counters_t *px_h2_ep_counters(const px_h2_ep_t *ep)
{
    return &ep->cnt;
}

uint32_t px_h2_ep_streams_cnt(const px_h2_ep_t *ep)
{
    return ep->streams.cnt;
}

uint32_t px_h2_ep_peer_max_streams(const px_h2_ep_t *ep)
{
    MEM_ASSERT(ep != NULL);
    return ep->peer_max_concurrent;
}

int64_t px_h2_ep_send_window(const px_h2_ep_t *ep)
{
    return ep->conn_send;
}

int64_t px_h2_ep_recv_window(const px_h2_ep_t *ep)
{
    return ep->conn_recv.window;
}

int32_t px_h2_ep_stream_id(const px_h2_ep_stream_t *st)
{
    return st->id;
}

px_h2_state_t px_h2_ep_stream_state(const px_h2_ep_stream_t *st)
{
    return st->state;
}

void *px_h2_ep_stream_ud(const px_h2_ep_stream_t *st)
{
    return st->ud;
}

void px_h2_ep_stream_set_ud(px_h2_ep_stream_t *st, void *ud)
{
    st->ud = ud;
}

mem_subregion_t *px_h2_ep_stream_sub(const px_h2_ep_stream_t *st)
{
    return st->sub;
}

int64_t px_h2_ep_stream_send_window(const px_h2_ep_stream_t *st)
{
    return st->send_window;
}

int64_t px_h2_ep_stream_recv_window(const px_h2_ep_stream_t *st)
{
    return st->recv.window;
}

size_t px_h2_ep_stream_queued(const px_h2_ep_stream_t *st)
{
    return st->queued;
}

typedef struct check_s {
    const px_h2_ep_t *ep;
    const char *bad;
    uint32_t peer, local;
} check_t;

static void check_stream(void *p, void *arg)
{
    check_t *c = arg;
    const px_h2_ep_stream_t *st = p;
    if (st->send_window > PX_H2_WINDOW_MAX || st->recv.window > PX_H2_WINDOW_MAX)
        c->bad = "a stream window above 2^31-1";
    else if (st->send_window < 0 && !c->ep->send_shrunk)
        c->bad = "a stream send window below 0 without a SETTINGS change";
    else if (st->recv.window < 0 && !c->ep->recv_shrunk)
        c->bad = "a stream receive window below 0 without a SETTINGS change";
    else if (st->state == PX_H2_ST_CLOSED || st->state >= PX_H2_ST_CNT)
        c->bad = "a closed stream in the table";
    else if (st->counted != px_h2_state_counts(st->state))
        c->bad = "a stream counted against the limit in the wrong state";
    if (st->counted && st->peer_init)
        c->peer++;
    else if (st->counted)
        c->local++;
}

const char *px_h2_ep_check(const px_h2_ep_t *ep)
{
    if (ep->conn_send > PX_H2_WINDOW_MAX || ep->conn_recv.window > PX_H2_WINDOW_MAX)
        return "a connection window above 2^31-1";
    if (ep->conn_send < 0)
        return "the connection send window below 0";
    if (ep->conn_recv.window < 0)
        return "the connection receive window below 0";
    check_t c = {.ep = ep};
    px_h2_stab_each(&ep->streams, check_stream, &c);
    if (c.bad != NULL)
        return c.bad;
    if (c.peer != ep->streams_peer || c.local != ep->streams_local)
        return "the live stream counts are off";
    if (ep->role == PX_H2_ROLE_SERVER && ep->streams_peer > ep->cfg.max_concurrent_streams &&
        ep->streams_peer > ep->local_max_concurrent)
        return "more peer streams than MAX_CONCURRENT_STREAMS";
    return NULL;
}
