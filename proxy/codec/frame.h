/*
 * proxy/codec/frame.h: HTTP/2 frames (RFC 9113 section 4 and 6): the 9-byte header, the
 * frame-level validity rules of each of the ten frame types, and their serialisation.
 *
 * This is the first layer of weir's own HTTP/2 codec (DESIGN.md section 4): it knows frames,
 * not streams or connections, so both roles (the server toward clients, the h2c client
 * toward upstreams) share it. Decoding never copies: a decoded frame points into the bytes it
 * was decoded from. Every violation a single frame can show by itself is reported with the
 * RFC's error code and whether it ends the stream or the whole connection; the rules that
 * need state (stream states, CONTINUATION sequences, windows) belong to the layer above.
 * Pure functions: any thread, no allocation.
 */
#ifndef PX_CODEC_FRAME_H
#define PX_CODEC_FRAME_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PX_H2_FRAME_HD_LEN       9u
#define PX_H2_MAX_FRAME_MIN      16384u     /* SETTINGS_MAX_FRAME_SIZE floor and default */
#define PX_H2_MAX_FRAME_MAX      16777215u  /* 2^24 - 1 */
#define PX_H2_WINDOW_MAX         2147483647 /* 2^31 - 1 */
#define PX_H2_STREAM_ID_MAX      2147483647
#define PX_H2_PREFACE            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PX_H2_PREFACE_LEN        24u
#define PX_H2_SETTINGS_ENTRY_LEN 6u

typedef enum px_h2_frame_type_e {
    PX_H2_DATA = 0x0,
    PX_H2_HEADERS = 0x1,
    PX_H2_PRIORITY = 0x2,
    PX_H2_RST_STREAM = 0x3,
    PX_H2_SETTINGS = 0x4,
    PX_H2_PUSH_PROMISE = 0x5,
    PX_H2_PING = 0x6,
    PX_H2_GOAWAY = 0x7,
    PX_H2_WINDOW_UPDATE = 0x8,
    PX_H2_CONTINUATION = 0x9,
    PX_H2_FRAME_TYPES_CNT = 10, /* types at or above this are unknown: ignored (section 4.1) */
} px_h2_frame_type_t;

/* Frame flags. The same bit means different things for different types. */
#define PX_H2_FLAG_END_STREAM  0x01u /* DATA, HEADERS */
#define PX_H2_FLAG_ACK         0x01u /* SETTINGS, PING */
#define PX_H2_FLAG_END_HEADERS 0x04u /* HEADERS, PUSH_PROMISE, CONTINUATION */
#define PX_H2_FLAG_PADDED      0x08u /* DATA, HEADERS, PUSH_PROMISE */
#define PX_H2_FLAG_PRIORITY    0x20u /* HEADERS */

/* Error codes (section 7). */
typedef enum px_h2_error_e {
    PX_H2_NO_ERROR = 0x0,
    PX_H2_PROTOCOL_ERROR = 0x1,
    PX_H2_INTERNAL_ERROR = 0x2,
    PX_H2_FLOW_CONTROL_ERROR = 0x3,
    PX_H2_SETTINGS_TIMEOUT = 0x4,
    PX_H2_STREAM_CLOSED = 0x5,
    PX_H2_FRAME_SIZE_ERROR = 0x6,
    PX_H2_REFUSED_STREAM = 0x7,
    PX_H2_CANCEL = 0x8,
    PX_H2_COMPRESSION_ERROR = 0x9,
    PX_H2_CONNECT_ERROR = 0xa,
    PX_H2_ENHANCE_YOUR_CALM = 0xb,
    PX_H2_INADEQUATE_SECURITY = 0xc,
    PX_H2_HTTP_1_1_REQUIRED = 0xd,
} px_h2_error_t;

/* SETTINGS identifiers (section 6.5.2); others are ignored. */
typedef enum px_h2_setting_e {
    PX_H2_SETTINGS_HEADER_TABLE_SIZE = 0x1,
    PX_H2_SETTINGS_ENABLE_PUSH = 0x2,
    PX_H2_SETTINGS_MAX_CONCURRENT_STREAMS = 0x3,
    PX_H2_SETTINGS_INITIAL_WINDOW_SIZE = 0x4,
    PX_H2_SETTINGS_MAX_FRAME_SIZE = 0x5,
    PX_H2_SETTINGS_MAX_HEADER_LIST_SIZE = 0x6,
} px_h2_setting_t;

typedef struct px_h2_frame_hd_s {
    uint32_t length; /* payload bytes, 24 bits */
    uint8_t type;
    uint8_t flags;
    int32_t stream_id; /* the reserved bit is dropped (section 4.1) */
} px_h2_frame_hd_t;

typedef struct px_h2_priority_s {
    int32_t depends_on;
    bool exclusive;
    uint8_t weight; /* as sent: weight - 1 */
} px_h2_priority_t;

typedef struct px_h2_setting_entry_s {
    uint16_t id;
    uint32_t value;
} px_h2_setting_entry_t;

/* A decoded frame. Every pointer borrows the payload it was decoded from. */
typedef struct px_h2_frame_s {
    px_h2_frame_hd_t hd;
    union {
        struct {
            const uint8_t *data; /* without padding */
            size_t len;
            uint32_t padded; /* bytes of padding and pad length (flow control counts them) */
        } data;
        struct {
            const uint8_t *block; /* the field block fragment, without padding */
            size_t len;
            bool has_priority;
            px_h2_priority_t priority;
        } headers;
        px_h2_priority_t priority;
        struct {
            uint32_t code;
        } rst_stream;
        struct {
            const uint8_t *entries; /* cnt entries of 6 bytes: px_h2_settings_get */
            size_t cnt;
        } settings;
        struct {
            int32_t promised_id;
            const uint8_t *block;
            size_t len;
        } push_promise;
        struct {
            uint8_t opaque[8];
        } ping;
        struct {
            int32_t last_stream_id;
            uint32_t code;
            const uint8_t *debug;
            size_t debug_len;
        } goaway;
        struct {
            uint32_t increment;
        } window_update;
        struct {
            const uint8_t *block;
            size_t len;
        } continuation;
    } u;
} px_h2_frame_t;

/* Why a frame is invalid: the error code and whether it is a stream error (RST_STREAM on
 * hd.stream_id) or a connection error (GOAWAY). `reason` is a static string for GOAWAY's
 * debug data and the log. */
typedef struct px_h2_frame_err_s {
    uint32_t code;
    bool stream;
    const char *reason;
} px_h2_frame_err_t;

/* Decodes the 9-byte frame header at `b`. Alloc: none. */
static inline void px_h2_frame_hd_parse(const uint8_t *b, px_h2_frame_hd_t *hd)
{
    hd->length = ((uint32_t)b[0] << 16) | ((uint32_t)b[1] << 8) | b[2];
    hd->type = b[3];
    hd->flags = b[4];
    hd->stream_id = (int32_t)((((uint32_t)b[5] & 0x7fu) << 24) | ((uint32_t)b[6] << 16) |
                              ((uint32_t)b[7] << 8) | b[8]);
}

/* Writes a 9-byte frame header at `b`. `length` must fit in 24 bits. Alloc: none. */
static inline void px_h2_frame_hd_write(uint8_t *b, uint32_t length, uint8_t type, uint8_t flags,
                                        int32_t stream_id)
{
    MEM_ASSERT_HOT(length <= PX_H2_MAX_FRAME_MAX);
    MEM_ASSERT_HOT(stream_id >= 0);
    b[0] = (uint8_t)(length >> 16);
    b[1] = (uint8_t)(length >> 8);
    b[2] = (uint8_t)length;
    b[3] = type;
    b[4] = flags;
    b[5] = (uint8_t)((uint32_t)stream_id >> 24);
    b[6] = (uint8_t)((uint32_t)stream_id >> 16);
    b[7] = (uint8_t)((uint32_t)stream_id >> 8);
    b[8] = (uint8_t)stream_id;
}

/* Decodes the complete frame `hd` + `payload` (hd->length bytes) into `out` and checks the
 * rules one frame can break by itself: frame size against `max_frame_size` (our
 * SETTINGS_MAX_FRAME_SIZE), the stream id each type must or must not carry, fixed payload
 * lengths, padding, PRIORITY self-dependency, zero WINDOW_UPDATE increments and SETTINGS
 * values. An unknown type decodes to its header only (it is to be ignored).
 * Returns 0, or -EPROTO with `err` filled. Alloc: none. */
int px_h2_frame_decode(const px_h2_frame_hd_t *hd, const uint8_t *payload, uint32_t max_frame_size,
                       px_h2_frame_t *out, px_h2_frame_err_t *err);

/* Entry `idx` (< cnt) of a decoded SETTINGS frame. Alloc: none. */
px_h2_setting_entry_t px_h2_settings_get(const px_h2_frame_t *f, size_t idx);

/* ---- serialisation: each writes a whole frame at `b` and returns its length ------------ */
/* The caller reserves the room: PX_H2_FRAME_HD_LEN plus the payload named in each comment. */

/* SETTINGS: 6 bytes per entry; `cnt` 0 with `ack` for the acknowledgement. */
size_t px_h2_write_settings(uint8_t *b, const px_h2_setting_entry_t *e, size_t cnt, bool ack);
/* PING: 8 bytes. */
size_t px_h2_write_ping(uint8_t *b, const uint8_t opaque[8], bool ack);
/* GOAWAY: 8 bytes plus `debug_len`. */
size_t px_h2_write_goaway(uint8_t *b, int32_t last_stream_id, uint32_t code, const char *debug,
                          size_t debug_len);
/* RST_STREAM: 4 bytes. */
size_t px_h2_write_rst_stream(uint8_t *b, int32_t stream_id, uint32_t code);
/* WINDOW_UPDATE: 4 bytes. `increment` in 1..2^31-1. */
size_t px_h2_write_window_update(uint8_t *b, int32_t stream_id, uint32_t increment);
/* PRIORITY: 5 bytes. */
size_t px_h2_write_priority(uint8_t *b, int32_t stream_id, const px_h2_priority_t *p);
/* The header of a DATA frame of `len` payload bytes (written separately: DATA payloads go out
 * from their own buffers, without a copy). Returns PX_H2_FRAME_HD_LEN. */
size_t px_h2_write_data_hd(uint8_t *b, int32_t stream_id, uint32_t len, bool end_stream);
/* HEADERS (first fragment; `fragment_len` bytes of the field block follow, copied here) and
 * CONTINUATION for the rest: px_h2_write_block splits `block` into frames of at most
 * `max_frame_size` payload bytes, HEADERS first (END_STREAM from `end_stream`), END_HEADERS
 * on the last. Needs px_h2_block_frames_len(len, max) bytes. */
size_t px_h2_block_frames_len(size_t block_len, uint32_t max_frame_size);
size_t px_h2_write_block(uint8_t *b, int32_t stream_id, const uint8_t *block, size_t block_len,
                         uint32_t max_frame_size, bool end_stream);
/* PUSH_PROMISE (weir never pushes; for tests and the client role's checks): 4 bytes plus
 * `block_len`, END_HEADERS set. */
size_t px_h2_write_push_promise(uint8_t *b, int32_t stream_id, int32_t promised_id,
                                const uint8_t *block, size_t block_len);

/* Name of a frame type ("DATA", ..., "UNKNOWN") and of an error code, for logs. Getters. */
const char *px_h2_frame_type_name(uint8_t type);
const char *px_h2_error_name(uint32_t code);

#endif /* PX_CODEC_FRAME_H */
