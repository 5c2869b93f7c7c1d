/*
 * proxy/codec/reader.h: turns a connection's received bytes into whole HTTP/2 frames, keeping
 * nothing but the frame that a read cut in two (issue 15: reads land in the worker's buffer;
 * an idle connection holds no buffer).
 *
 * A frame that arrives whole is handed to the callback straight from the caller's bytes. Only
 * when a read ends inside a frame are its bytes copied: up to 9 header bytes into the reader
 * itself, the rest into one thread-cache block of exactly that frame's size, freed as soon as
 * the frame is complete. The optional client preface (server role) is checked first.
 * Embedded in the codec's connection; only its worker thread touches it.
 */
#ifndef PX_CODEC_READER_H
#define PX_CODEC_READER_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/codec/frame.h"

/* One whole frame: `payload` (hd->length bytes) is borrowed for the call. A negative return
 * stops the reader and is returned by px_h2_reader_feed. */
typedef int (*px_h2_frame_fn)(void *ud, const px_h2_frame_hd_t *hd, const uint8_t *payload);

typedef struct px_h2_reader_s {
    uint8_t *part;        /* owns (tcache): the cut frame's payload so far, or NULL */
    uint32_t part_len;    /* payload bytes in part */
    uint8_t hd_buf[9];    /* header bytes of a cut frame header */
    uint8_t hd_len;       /* 0..9; 9 = header complete, payload in part */
    uint8_t preface_left; /* client preface bytes still expected (server role) */
    uint32_t max_len;     /* frames longer than this stop the reader (our MAX_FRAME_SIZE) */
    px_h2_frame_hd_t hd;  /* the cut frame's header, once hd_len is 9 */
} px_h2_reader_t;

/* Prepares `r`: `preface` when the peer must send the client preface first (server role);
 * `max_len` is our SETTINGS_MAX_FRAME_SIZE. Alloc: none. */
void px_h2_reader_init(px_h2_reader_t *r, bool preface, uint32_t max_len);

/* Frees a cut frame's bytes. Alloc: none. */
void px_h2_reader_fini(px_h2_reader_t *r);

/* Raises or lowers the frame length accepted from now on (after our SETTINGS is ACKed). */
static inline void px_h2_reader_set_max(px_h2_reader_t *r, uint32_t max_len)
{
    r->max_len = max_len;
}

/* True when the reader holds a cut frame (so the connection is not idle). Getter. */
static inline bool px_h2_reader_busy(const px_h2_reader_t *r)
{
    return r->hd_len > 0 || r->preface_left > 0;
}

/* Feeds `len` received bytes; calls `fn` once per whole frame, in order. Returns 0;
 * -EPROTO when the preface is wrong; -EMSGSIZE when a frame is longer than max_len (the
 * caller ends the connection with FRAME_SIZE_ERROR; `fn` sees only frames within it);
 * -ENOMEM when a cut frame's bytes cannot be kept; or `fn`'s negative result.
 * After an error the reader must not be fed again. Alloc: tcache, for a cut frame only. */
MEM_MUST_CHECK int px_h2_reader_feed(px_h2_reader_t *r, const uint8_t *data, size_t len,
                                     px_h2_frame_fn fn, void *ud);

#endif /* PX_CODEC_READER_H */
