/*
 * proxy/codec/frame.c: decoding and encoding of single HTTP/2 frames (proxy/codec/frame.h). Each
 * rule cites the RFC 9113 section it comes from; where the RFC lets a receiver choose between
 * a stream and a connection error, the stream error is chosen when the frame cannot have
 * changed connection state.
 */
#include "proxy/codec/frame.h"
#include "mem/base.h"

#include <string.h>

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int fail(px_h2_frame_err_t *err, uint32_t code, bool stream, const char *reason)
{
    err->code = code;
    err->stream = stream;
    err->reason = reason;
    return -EPROTO;
}

/* Strips the padding of DATA, HEADERS and PUSH_PROMISE (section 6.1): `*p`/`*len` end up on
 * what lies between the pad length byte and the padding. */
static int unpad(const px_h2_frame_hd_t *hd, const uint8_t **p, size_t *len, px_h2_frame_err_t *err)
{
    if (!(hd->flags & PX_H2_FLAG_PADDED))
        return 0;
    if (*len < 1)
        return fail(err, PX_H2_FRAME_SIZE_ERROR, false, "padded frame without a pad length");
    size_t pad = (*p)[0];
    (*p)++;
    (*len)--;
    /* "If the length of the padding is the length of the frame payload or greater, the
     * recipient MUST treat this as a connection error of type PROTOCOL_ERROR." */
    if (pad > *len)
        return fail(err, PX_H2_PROTOCOL_ERROR, false, "padding longer than the payload");
    *len -= pad;
    return 0;
}

static void priority_read(const uint8_t *p, px_h2_priority_t *pri)
{
    uint32_t v = get32(p);
    pri->exclusive = (v >> 31) != 0;
    pri->depends_on = (int32_t)(v & 0x7fffffffu);
    pri->weight = p[4];
}

static int settings_check(const uint8_t *p, size_t cnt, px_h2_frame_err_t *err)
{
    for (size_t i = 0; i < cnt; i++, p += PX_H2_SETTINGS_ENTRY_LEN) {
        uint16_t id = (uint16_t)((p[0] << 8) | p[1]);
        uint32_t v = get32(p + 2);
        switch (id) {
        case PX_H2_SETTINGS_ENABLE_PUSH:
            if (v > 1)
                return fail(err, PX_H2_PROTOCOL_ERROR, false, "SETTINGS_ENABLE_PUSH not 0 or 1");
            break;
        case PX_H2_SETTINGS_INITIAL_WINDOW_SIZE:
            if (v > (uint32_t)PX_H2_WINDOW_MAX)
                return fail(err, PX_H2_FLOW_CONTROL_ERROR, false,
                            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1");
            break;
        case PX_H2_SETTINGS_MAX_FRAME_SIZE:
            if (v < PX_H2_MAX_FRAME_MIN || v > PX_H2_MAX_FRAME_MAX)
                return fail(err, PX_H2_PROTOCOL_ERROR, false,
                            "SETTINGS_MAX_FRAME_SIZE outside 16384..2^24-1");
            break;
        default:
            break; /* section 6.5.2: unknown settings are ignored */
        }
    }
    return 0;
}

int px_h2_frame_decode(const px_h2_frame_hd_t *hd, const uint8_t *payload, uint32_t max_frame_size,
                       px_h2_frame_t *out, px_h2_frame_err_t *err)
{
    MEM_ASSERT(hd != NULL && out != NULL && err != NULL);
    MEM_ASSERT(max_frame_size >= PX_H2_MAX_FRAME_MIN && max_frame_size <= PX_H2_MAX_FRAME_MAX);
    memset(out, 0, sizeof(*out));
    out->hd = *hd;
    const uint8_t *p = payload;
    size_t len = hd->length;
    int32_t sid = hd->stream_id;
    /* Section 4.2: a frame over our SETTINGS_MAX_FRAME_SIZE. A connection error is allowed
     * for every type and required for most; weir uses it for all. */
    if (hd->length > max_frame_size)
        return fail(err, PX_H2_FRAME_SIZE_ERROR, false,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE");
    switch (hd->type) {
    case PX_H2_DATA:
        if (sid == 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, false, "DATA on stream 0");
        if (unpad(hd, &p, &len, err) != 0)
            return -EPROTO;
        out->u.data.data = p;
        out->u.data.len = len;
        out->u.data.padded = hd->length - (uint32_t)len;
        return 0;
    case PX_H2_HEADERS:
        if (sid == 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, false, "HEADERS on stream 0");
        if (unpad(hd, &p, &len, err) != 0)
            return -EPROTO;
        if (hd->flags & PX_H2_FLAG_PRIORITY) {
            if (len < 5)
                return fail(err, PX_H2_FRAME_SIZE_ERROR, false, "HEADERS too short for PRIORITY");
            out->u.headers.has_priority = true;
            priority_read(p, &out->u.headers.priority);
            p += 5;
            len -= 5;
            /* Section 5.3.1: a stream cannot depend on itself. */
            if (out->u.headers.priority.depends_on == sid)
                return fail(err, PX_H2_PROTOCOL_ERROR, true, "stream depends on itself");
        }
        out->u.headers.block = p;
        out->u.headers.len = len;
        return 0;
    case PX_H2_PRIORITY:
        if (sid == 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, false, "PRIORITY on stream 0");
        if (len != 5)
            return fail(err, PX_H2_FRAME_SIZE_ERROR, true, "PRIORITY length not 5");
        priority_read(p, &out->u.priority);
        if (out->u.priority.depends_on == sid)
            return fail(err, PX_H2_PROTOCOL_ERROR, true, "stream depends on itself");
        return 0;
    case PX_H2_RST_STREAM:
        if (sid == 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, false, "RST_STREAM on stream 0");
        if (len != 4)
            return fail(err, PX_H2_FRAME_SIZE_ERROR, false, "RST_STREAM length not 4");
        out->u.rst_stream.code = get32(p);
        return 0;
    case PX_H2_SETTINGS:
        if (sid != 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, false, "SETTINGS on a stream");
        if ((hd->flags & PX_H2_FLAG_ACK) && len != 0)
            return fail(err, PX_H2_FRAME_SIZE_ERROR, false, "SETTINGS ACK with a payload");
        if (len % PX_H2_SETTINGS_ENTRY_LEN != 0)
            return fail(err, PX_H2_FRAME_SIZE_ERROR, false, "SETTINGS length not a multiple of 6");
        out->u.settings.entries = p;
        out->u.settings.cnt = len / PX_H2_SETTINGS_ENTRY_LEN;
        return settings_check(p, out->u.settings.cnt, err);
    case PX_H2_PUSH_PROMISE:
        if (sid == 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, false, "PUSH_PROMISE on stream 0");
        if (unpad(hd, &p, &len, err) != 0)
            return -EPROTO;
        if (len < 4)
            return fail(err, PX_H2_FRAME_SIZE_ERROR, false, "PUSH_PROMISE too short");
        out->u.push_promise.promised_id = (int32_t)(get32(p) & 0x7fffffffu);
        out->u.push_promise.block = p + 4;
        out->u.push_promise.len = len - 4;
        return 0;
    case PX_H2_PING:
        if (sid != 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, false, "PING on a stream");
        if (len != 8)
            return fail(err, PX_H2_FRAME_SIZE_ERROR, false, "PING length not 8");
        memcpy(out->u.ping.opaque, p, 8);
        return 0;
    case PX_H2_GOAWAY:
        if (sid != 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, false, "GOAWAY on a stream");
        if (len < 8)
            return fail(err, PX_H2_FRAME_SIZE_ERROR, false, "GOAWAY shorter than 8");
        out->u.goaway.last_stream_id = (int32_t)(get32(p) & 0x7fffffffu);
        out->u.goaway.code = get32(p + 4);
        out->u.goaway.debug = p + 8;
        out->u.goaway.debug_len = len - 8;
        return 0;
    case PX_H2_WINDOW_UPDATE:
        if (len != 4)
            return fail(err, PX_H2_FRAME_SIZE_ERROR, false, "WINDOW_UPDATE length not 4");
        out->u.window_update.increment = get32(p) & 0x7fffffffu;
        /* Section 6.9: an increment of 0 is a stream error, or a connection error on 0. */
        if (out->u.window_update.increment == 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, sid != 0, "WINDOW_UPDATE increment 0");
        return 0;
    case PX_H2_CONTINUATION:
        if (sid == 0)
            return fail(err, PX_H2_PROTOCOL_ERROR, false, "CONTINUATION on stream 0");
        out->u.continuation.block = p;
        out->u.continuation.len = len;
        return 0;
    default:
        return 0; /* section 4.1: unknown types are ignored */
    }
}

px_h2_setting_entry_t px_h2_settings_get(const px_h2_frame_t *f, size_t idx)
{
    MEM_ASSERT(f->hd.type == PX_H2_SETTINGS);
    MEM_ASSERT(idx < f->u.settings.cnt);
    const uint8_t *p = f->u.settings.entries + idx * PX_H2_SETTINGS_ENTRY_LEN;
    return (px_h2_setting_entry_t){(uint16_t)((p[0] << 8) | p[1]), get32(p + 2)};
}

size_t px_h2_write_settings(uint8_t *b, const px_h2_setting_entry_t *e, size_t cnt, bool ack)
{
    MEM_ASSERT(!ack || cnt == 0);
    MEM_ASSERT(cnt * PX_H2_SETTINGS_ENTRY_LEN <= PX_H2_MAX_FRAME_MIN);
    uint32_t len = (uint32_t)(cnt * PX_H2_SETTINGS_ENTRY_LEN);
    px_h2_frame_hd_write(b, len, PX_H2_SETTINGS, ack ? PX_H2_FLAG_ACK : 0, 0);
    uint8_t *p = b + PX_H2_FRAME_HD_LEN;
    for (size_t i = 0; i < cnt; i++, p += PX_H2_SETTINGS_ENTRY_LEN) {
        p[0] = (uint8_t)(e[i].id >> 8);
        p[1] = (uint8_t)e[i].id;
        put32(p + 2, e[i].value);
    }
    return PX_H2_FRAME_HD_LEN + len;
}

size_t px_h2_write_ping(uint8_t *b, const uint8_t opaque[8], bool ack)
{
    px_h2_frame_hd_write(b, 8, PX_H2_PING, ack ? PX_H2_FLAG_ACK : 0, 0);
    memcpy(b + PX_H2_FRAME_HD_LEN, opaque, 8);
    return PX_H2_FRAME_HD_LEN + 8;
}

size_t px_h2_write_goaway(uint8_t *b, int32_t last_stream_id, uint32_t code, const char *debug,
                          size_t debug_len)
{
    MEM_ASSERT(last_stream_id >= 0);
    MEM_ASSERT(debug_len <= PX_H2_MAX_FRAME_MIN - 8);
    px_h2_frame_hd_write(b, (uint32_t)(8 + debug_len), PX_H2_GOAWAY, 0, 0);
    put32(b + PX_H2_FRAME_HD_LEN, (uint32_t)last_stream_id);
    put32(b + PX_H2_FRAME_HD_LEN + 4, code);
    if (debug_len > 0)
        memcpy(b + PX_H2_FRAME_HD_LEN + 8, debug, debug_len);
    return PX_H2_FRAME_HD_LEN + 8 + debug_len;
}

size_t px_h2_write_rst_stream(uint8_t *b, int32_t stream_id, uint32_t code)
{
    MEM_ASSERT(stream_id > 0);
    px_h2_frame_hd_write(b, 4, PX_H2_RST_STREAM, 0, stream_id);
    put32(b + PX_H2_FRAME_HD_LEN, code);
    return PX_H2_FRAME_HD_LEN + 4;
}

size_t px_h2_write_window_update(uint8_t *b, int32_t stream_id, uint32_t increment)
{
    MEM_ASSERT(increment >= 1 && increment <= (uint32_t)PX_H2_WINDOW_MAX);
    MEM_ASSERT(stream_id >= 0);
    px_h2_frame_hd_write(b, 4, PX_H2_WINDOW_UPDATE, 0, stream_id);
    put32(b + PX_H2_FRAME_HD_LEN, increment);
    return PX_H2_FRAME_HD_LEN + 4;
}

size_t px_h2_write_priority(uint8_t *b, int32_t stream_id, const px_h2_priority_t *pri)
{
    MEM_ASSERT(stream_id > 0);
    MEM_ASSERT(pri->depends_on >= 0);
    px_h2_frame_hd_write(b, 5, PX_H2_PRIORITY, 0, stream_id);
    put32(b + PX_H2_FRAME_HD_LEN, (uint32_t)pri->depends_on | (pri->exclusive ? 0x80000000u : 0));
    b[PX_H2_FRAME_HD_LEN + 4] = pri->weight;
    return PX_H2_FRAME_HD_LEN + 5;
}

size_t px_h2_write_data_hd(uint8_t *b, int32_t stream_id, uint32_t len, bool end_stream)
{
    MEM_ASSERT(stream_id > 0);
    px_h2_frame_hd_write(b, len, PX_H2_DATA, end_stream ? PX_H2_FLAG_END_STREAM : 0, stream_id);
    return PX_H2_FRAME_HD_LEN;
}

size_t px_h2_block_frames_len(size_t block_len, uint32_t max_frame_size)
{
    MEM_ASSERT(max_frame_size >= PX_H2_MAX_FRAME_MIN);
    size_t frames = block_len == 0 ? 1 : (block_len + max_frame_size - 1) / max_frame_size;
    return frames * PX_H2_FRAME_HD_LEN + block_len;
}

size_t px_h2_write_block(uint8_t *b, int32_t stream_id, const uint8_t *block, size_t block_len,
                         uint32_t max_frame_size, bool end_stream)
{
    MEM_ASSERT(stream_id > 0);
    MEM_ASSERT(max_frame_size >= PX_H2_MAX_FRAME_MIN && max_frame_size <= PX_H2_MAX_FRAME_MAX);
    uint8_t *p = b;
    size_t off = 0;
    bool first = true;
    do {
        size_t n = MEM_MIN(block_len - off, (size_t)max_frame_size);
        bool last = off + n == block_len;
        uint8_t flags = last ? PX_H2_FLAG_END_HEADERS : 0;
        if (first && end_stream)
            flags |= PX_H2_FLAG_END_STREAM;
        px_h2_frame_hd_write(p, (uint32_t)n, first ? PX_H2_HEADERS : PX_H2_CONTINUATION, flags,
                             stream_id);
        if (n > 0)
            memcpy(p + PX_H2_FRAME_HD_LEN, block + off, n);
        p += PX_H2_FRAME_HD_LEN + n;
        off += n;
        first = false;
    } while (off < block_len);
    MEM_ASSERT((size_t)(p - b) == px_h2_block_frames_len(block_len, max_frame_size));
    return (size_t)(p - b);
}

size_t px_h2_write_push_promise(uint8_t *b, int32_t stream_id, int32_t promised_id,
                                const uint8_t *block, size_t block_len)
{
    MEM_ASSERT(stream_id > 0 && promised_id > 0);
    MEM_ASSERT(block_len + 4 <= PX_H2_MAX_FRAME_MIN);
    px_h2_frame_hd_write(b, (uint32_t)(4 + block_len), PX_H2_PUSH_PROMISE, PX_H2_FLAG_END_HEADERS,
                         stream_id);
    put32(b + PX_H2_FRAME_HD_LEN, (uint32_t)promised_id);
    if (block_len > 0)
        memcpy(b + PX_H2_FRAME_HD_LEN + 4, block, block_len);
    return PX_H2_FRAME_HD_LEN + 4 + block_len;
}

const char *px_h2_frame_type_name(uint8_t type)
{
    static const char *const names[PX_H2_FRAME_TYPES_CNT] = {
        "DATA",         "HEADERS", "PRIORITY", "RST_STREAM",    "SETTINGS",
        "PUSH_PROMISE", "PING",    "GOAWAY",   "WINDOW_UPDATE", "CONTINUATION",
    };
    return type < PX_H2_FRAME_TYPES_CNT ? names[type] : "UNKNOWN";
}

const char *px_h2_error_name(uint32_t code)
{
    static const char *const names[] = {
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    };
    MEM_STATIC_ASSERT(MEM_ARRAY_LEN(names) == PX_H2_HTTP_1_1_REQUIRED + 1, "one name per code");
    return code < MEM_ARRAY_LEN(names) ? names[code] : "UNKNOWN_ERROR";
}
