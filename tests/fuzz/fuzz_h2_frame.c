/*
 * tests/fuzz/fuzz_h2_frame.c: fuzzes the frame layer of weir's HTTP/2 codec
 * (proxy/codec/frame.c). The input's first byte picks the local SETTINGS_MAX_FRAME_SIZE (16 KiB
 * or up to 4 MiB); the rest is read as a sequence of frames, each decoded as the codec will.
 * After every frame the decoded views must lie inside the frame's payload and agree with its
 * length, an error must carry a code and a reason, and every type with one canonical encoding
 * must encode back to the same bytes. Thread: one. Alloc: none.
 */
#include "mem/base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECKF(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static bool inside(const uint8_t *p, size_t len, const uint8_t *pay, size_t pay_len)
{
    return len == 0 || (p >= pay && p + len <= pay + pay_len);
}

static void check_frame(const px_h2_frame_hd_t *hd, const uint8_t *frame, const px_h2_frame_t *f)
{
    static uint8_t out[PX_H2_FRAME_HD_LEN + PX_H2_MAX_FRAME_MIN];
    const uint8_t *pay = frame + PX_H2_FRAME_HD_LEN;
    size_t n = 0;
    bool reserved = (frame[5] & 0x80) != 0;
    switch (hd->type) {
    case PX_H2_DATA:
        CHECKF(inside(f->u.data.data, f->u.data.len, pay, hd->length));
        CHECKF(f->u.data.len + f->u.data.padded == hd->length);
        return;
    case PX_H2_HEADERS:
        CHECKF(inside(f->u.headers.block, f->u.headers.len, pay, hd->length));
        CHECKF(f->u.headers.len <= hd->length);
        return;
    case PX_H2_PUSH_PROMISE:
        CHECKF(inside(f->u.push_promise.block, f->u.push_promise.len, pay, hd->length));
        CHECKF(f->u.push_promise.promised_id >= 0);
        return;
    case PX_H2_CONTINUATION:
        CHECKF(f->u.continuation.len == hd->length);
        return;
    case PX_H2_GOAWAY:
        CHECKF(f->u.goaway.last_stream_id >= 0);
        CHECKF(f->u.goaway.debug_len + 8 == hd->length);
        if (hd->flags == 0 && !reserved && !(pay[0] & 0x80) && hd->length <= PX_H2_MAX_FRAME_MIN)
            n = px_h2_write_goaway(out, f->u.goaway.last_stream_id, f->u.goaway.code,
                                   (const char *)f->u.goaway.debug, f->u.goaway.debug_len);
        break;
    case PX_H2_SETTINGS:
        CHECKF(f->u.settings.cnt * PX_H2_SETTINGS_ENTRY_LEN == hd->length);
        if ((hd->flags & ~PX_H2_FLAG_ACK) == 0 && !reserved && hd->length <= PX_H2_MAX_FRAME_MIN) {
            static px_h2_setting_entry_t e[PX_H2_MAX_FRAME_MIN / PX_H2_SETTINGS_ENTRY_LEN];
            for (size_t i = 0; i < f->u.settings.cnt; i++)
                e[i] = px_h2_settings_get(f, i);
            n = px_h2_write_settings(out, e, f->u.settings.cnt, hd->flags & PX_H2_FLAG_ACK);
        }
        break;
    case PX_H2_PING:
        if ((hd->flags & ~PX_H2_FLAG_ACK) == 0 && !reserved)
            n = px_h2_write_ping(out, f->u.ping.opaque, hd->flags & PX_H2_FLAG_ACK);
        break;
    case PX_H2_RST_STREAM:
        if (hd->flags == 0 && !reserved)
            n = px_h2_write_rst_stream(out, hd->stream_id, f->u.rst_stream.code);
        break;
    case PX_H2_WINDOW_UPDATE:
        CHECKF(f->u.window_update.increment >= 1);
        CHECKF(f->u.window_update.increment <= (uint32_t)PX_H2_WINDOW_MAX);
        if (hd->flags == 0 && !reserved && !(pay[0] & 0x80))
            n = px_h2_write_window_update(out, hd->stream_id, f->u.window_update.increment);
        break;
    case PX_H2_PRIORITY:
        CHECKF(f->u.priority.depends_on != hd->stream_id);
        if (hd->flags == 0 && !reserved)
            n = px_h2_write_priority(out, hd->stream_id, &f->u.priority);
        break;
    default:
        return;
    }
    if (n > 0) {
        CHECKF(n == PX_H2_FRAME_HD_LEN + hd->length);
        CHECKF(memcmp(out, frame, n) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t max = data[0] < 128 ? PX_H2_MAX_FRAME_MIN : PX_H2_MAX_FRAME_MIN << (data[0] % 9);
    data++;
    size--;
    while (size >= PX_H2_FRAME_HD_LEN) {
        px_h2_frame_hd_t hd;
        px_h2_frame_hd_parse(data, &hd);
        if (size - PX_H2_FRAME_HD_LEN < hd.length)
            hd.length = (uint32_t)(size - PX_H2_FRAME_HD_LEN); /* the rest, as if complete */
        px_h2_frame_t f;
        px_h2_frame_err_t err = {0};
        static uint8_t frame[PX_H2_FRAME_HD_LEN + (PX_H2_MAX_FRAME_MIN << 8)];
        size_t flen = PX_H2_FRAME_HD_LEN + hd.length;
        if (flen > sizeof(frame))
            return 0;
        /* The frame with its (possibly shortened) length written back, as one buffer. */
        memcpy(frame, data, flen);
        frame[0] = (uint8_t)(hd.length >> 16);
        frame[1] = (uint8_t)(hd.length >> 8);
        frame[2] = (uint8_t)hd.length;
        int rc = px_h2_frame_decode(&hd, frame + PX_H2_FRAME_HD_LEN, max, &f, &err);
        if (rc == 0) {
            CHECKF(hd.length <= max);
            check_frame(&hd, frame, &f);
        } else {
            CHECKF(rc == -EPROTO);
            CHECKF(err.reason != NULL);
            CHECKF(err.code != PX_H2_NO_ERROR && err.code <= PX_H2_HTTP_1_1_REQUIRED);
            CHECKF(!err.stream || hd.stream_id != 0);
        }
        data += flen;
        size -= flen;
    }
    return 0;
}
