/*
 * proxy/codec/reader.c: received bytes to whole frames (proxy/codec/reader.h).
 *
 * The fast path is a read that holds whole frames: each is passed straight from the read
 * buffer. The block for a cut frame is sized to that frame (not to MAX_FRAME_SIZE), so a slow
 * client that trickles a 16 KiB frame holds 16 KiB only while it does, and an idle
 * connection holds nothing.
 */
#include "proxy/codec/reader.h"
#include "mem/base.h"

#include <string.h>

#include "mem/malloc.h"

void px_h2_reader_init(px_h2_reader_t *r, bool preface, uint32_t max_len)
{
    MEM_ASSERT(r != NULL);
    MEM_ASSERT(max_len >= PX_H2_MAX_FRAME_MIN && max_len <= PX_H2_MAX_FRAME_MAX);
    memset(r, 0, sizeof(*r));
    r->preface_left = preface ? PX_H2_PREFACE_LEN : 0;
    r->max_len = max_len;
}

void px_h2_reader_fini(px_h2_reader_t *r)
{
    mem_free(r->part);
    r->part = NULL;
    r->part_len = 0;
    r->hd_len = 0;
}

/* Completes the cut frame with bytes from `*p`; calls `fn` when it is whole. */
static int finish_cut(px_h2_reader_t *r, const uint8_t **p, size_t *len, px_h2_frame_fn fn,
                      void *ud)
{
    if (r->hd_len < PX_H2_FRAME_HD_LEN) {
        size_t k = MEM_MIN(*len, (size_t)(PX_H2_FRAME_HD_LEN - r->hd_len));
        memcpy(r->hd_buf + r->hd_len, *p, k);
        r->hd_len += (uint8_t)k;
        *p += k;
        *len -= k;
        if (r->hd_len < PX_H2_FRAME_HD_LEN)
            return 0;
        px_h2_frame_hd_parse(r->hd_buf, &r->hd);
        if (r->hd.length > r->max_len)
            return -EMSGSIZE;
        /* The rest of the payload may be in this read: then no copy is needed at all. */
        if (*len >= r->hd.length) {
            int rc = fn(ud, &r->hd, *p);
            *p += r->hd.length;
            *len -= r->hd.length;
            r->hd_len = 0;
            return rc;
        }
        if (r->hd.length > 0) {
            r->part = mem_malloc(r->hd.length);
            if (r->part == NULL)
                return -ENOMEM;
        }
        r->part_len = 0;
    }
    MEM_ASSERT(r->hd_len == PX_H2_FRAME_HD_LEN);
    size_t k = MEM_MIN(*len, (size_t)(r->hd.length - r->part_len));
    if (k > 0)
        memcpy(r->part + r->part_len, *p, k);
    r->part_len += (uint32_t)k;
    *p += k;
    *len -= k;
    if (r->part_len < r->hd.length)
        return 0;
    int rc = fn(ud, &r->hd, r->part);
    mem_free(r->part);
    r->part = NULL;
    r->part_len = 0;
    r->hd_len = 0;
    return rc;
}

int px_h2_reader_feed(px_h2_reader_t *r, const uint8_t *data, size_t len, px_h2_frame_fn fn,
                      void *ud)
{
    MEM_ASSERT(fn != NULL);
    MEM_ASSERT(data != NULL || len == 0);
    const uint8_t *p = data;
    if (r->preface_left > 0) {
        size_t off = PX_H2_PREFACE_LEN - r->preface_left;
        size_t k = MEM_MIN(len, (size_t)r->preface_left);
        if (memcmp(p, PX_H2_PREFACE + off, k) != 0)
            return -EPROTO;
        r->preface_left -= (uint8_t)k;
        p += k;
        len -= k;
    }
    if (r->hd_len > 0 && len > 0) {
        int rc = finish_cut(r, &p, &len, fn, ud);
        if (rc != 0)
            return rc;
    }
    /* Whole frames straight from the caller's bytes. */
    while (len >= PX_H2_FRAME_HD_LEN) {
        px_h2_frame_hd_t hd;
        px_h2_frame_hd_parse(p, &hd);
        if (hd.length > r->max_len)
            return -EMSGSIZE;
        if (len - PX_H2_FRAME_HD_LEN < hd.length)
            break;
        int rc = fn(ud, &hd, p + PX_H2_FRAME_HD_LEN);
        if (rc != 0)
            return rc;
        p += PX_H2_FRAME_HD_LEN + hd.length;
        len -= PX_H2_FRAME_HD_LEN + hd.length;
    }
    if (len > 0) {
        MEM_ASSERT(r->hd_len == 0);
        return finish_cut(r, &p, &len, fn, ud);
    }
    return 0;
}
