/*
 * proxy/codec/hpack.h: HPACK (RFC 7541) for weir's HTTP/2 codec, on nghttp2's inflater and
 * deflater, with their memory from mem/ (the nghttp2_mem they are given).
 *
 * A decoder belongs to one connection's receive side: header block fragments (HEADERS, then
 * CONTINUATION) are fed as they arrive, fields are passed to a callback as they complete, and
 * the header list is bounded by SETTINGS_MAX_HEADER_LIST_SIZE as RFC 9113 section 6.5.2 counts
 * it (name + value + 32 per field). Past the bound the rest of the block is still decoded,
 * because the dynamic table must stay in step with the peer's, but nothing more is passed on.
 * An encoder belongs to one connection's send side. nghttp2 codes do not leave hpack.c.
 * Only the connection's worker thread touches them.
 */
#ifndef PX_CODEC_HPACK_H
#define PX_CODEC_HPACK_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

/* One decoded field. The bytes are borrowed for the callback only. */
typedef int (*px_h2_field_fn)(void *ud, const uint8_t *name, size_t name_len, const uint8_t *value,
                              size_t value_len);

typedef struct px_h2_hpack_dec_s {
    nghttp2_hd_inflater *inf; /* owns */
    size_t list_bytes;        /* of the block being decoded */
    size_t list_max;          /* 0 = unbounded */
    bool too_large;           /* the current (or last) block passed list_max */
    bool in_block;            /* a block has begun and not ended */
} px_h2_hpack_dec_t;

typedef struct px_h2_hpack_enc_s {
    nghttp2_hd_deflater *def; /* owns */
} px_h2_hpack_enc_t;

/* Creates the decoder with the default 4,096-byte table and a header list bound of
 * `list_max` bytes (0 = none). `mem` is copied. Returns 0 or -ENOMEM. Alloc: `mem`. */
MEM_MUST_CHECK int px_h2_hpack_dec_init(px_h2_hpack_dec_t *d, nghttp2_mem *mem, size_t list_max);
/* Frees the decoder; again, or after a failed init, does nothing. */
void px_h2_hpack_dec_fini(px_h2_hpack_dec_t *d);

/* Decodes one fragment of a header block; `last` on the fragment that ends it (END_HEADERS).
 * Each complete field goes to `fn` until the list passes its bound. Returns 0, -EPROTO for a
 * decoding error (COMPRESSION_ERROR: the connection must end), -ENOMEM, or the first
 * negative value `fn` returned (decoding stops there; the connection must end too, since the
 * table is then out of step). Alloc: the decoder's `mem` (its dynamic table). */
MEM_MUST_CHECK int px_h2_hpack_decode(px_h2_hpack_dec_t *d, const uint8_t *in, size_t len,
                                      bool last, px_h2_field_fn fn, void *ud);

/* True when the current block, or the one that just ended, passed the header list bound; it
 * clears when the next block begins. Getter. */
static inline bool px_h2_hpack_too_large(const px_h2_hpack_dec_t *d)
{
    return d->too_large;
}

/* Applies the peer's SETTINGS_HEADER_TABLE_SIZE to our encoder (RFC 7541 section 4.2: the
 * size update is sent at the start of the next block), or our own acknowledged setting to
 * the decoder. Return 0 or -ENOMEM. */
MEM_MUST_CHECK int px_h2_hpack_enc_table_size(px_h2_hpack_enc_t *e, size_t size);
MEM_MUST_CHECK int px_h2_hpack_dec_table_size(px_h2_hpack_dec_t *d, size_t size);

/* Creates an encoder whose dynamic table holds at most `table_max` bytes (nghttp2's default
 * is 4,096; 0 keeps every field out of the table). Returns 0 or -ENOMEM. Alloc: `mem`. */
MEM_MUST_CHECK int px_h2_hpack_enc_init(px_h2_hpack_enc_t *e, nghttp2_mem *mem, size_t table_max);
/* Frees the encoder; again, or after a failed init, does nothing (an endpoint drops its
 * encoder while idle and frees it at the end either way). */
void px_h2_hpack_enc_fini(px_h2_hpack_enc_t *e);

/* The most bytes px_h2_hpack_encode can write for `nva`. Getter. */
size_t px_h2_hpack_encode_bound(px_h2_hpack_enc_t *e, const nghttp2_nv *nva, size_t cnt);

/* Encodes `nva` (pseudo-headers first, as RFC 9113 section 8.3 requires) into `out`.
 * Returns the bytes written, or -E2BIG when `cap` is too small, -ENOMEM.
 * Alloc: the encoder's `mem`. */
MEM_MUST_CHECK ssize_t px_h2_hpack_encode(px_h2_hpack_enc_t *e, uint8_t *out, size_t cap,
                                          const nghttp2_nv *nva, size_t cnt);

/* RFC 9113 section 8.2.1: a field name (lower case, no separators; a leading ':' is the
 * pseudo-header's) and a value (no NUL, CR, LF, no leading or trailing space or tab) that
 * HTTP/2 allows. Getter. */
bool px_h2_field_valid(const uint8_t *name, size_t name_len, const uint8_t *value,
                       size_t value_len);

#endif /* PX_CODEC_HPACK_H */
