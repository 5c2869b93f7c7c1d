/*
 * proxy/codec/hpack.c: the HPACK decoder and encoder of weir's HTTP/2 codec
 * (proxy/codec/hpack.h) over nghttp2's nghttp2_hd_inflater and nghttp2_hd_deflater.
 */
#include "proxy/codec/hpack.h"
#include "mem/base.h"

#include <string.h>

int px_h2_hpack_dec_init(px_h2_hpack_dec_t *d, nghttp2_mem *mem, size_t list_max)
{
    MEM_ASSERT(d != NULL && mem != NULL);
    memset(d, 0, sizeof(*d));
    d->list_max = list_max;
    return nghttp2_hd_inflate_new2(&d->inf, mem) == 0 ? 0 : -ENOMEM;
}

void px_h2_hpack_dec_fini(px_h2_hpack_dec_t *d)
{
    /* nghttp2_hd_inflate_del reads its argument's allocator: NULL must not reach it. */
    if (d->inf != NULL)
        nghttp2_hd_inflate_del(d->inf);
    d->inf = NULL;
}

int px_h2_hpack_decode(px_h2_hpack_dec_t *d, const uint8_t *in, size_t len, bool last,
                       px_h2_field_fn fn, void *ud)
{
    MEM_ASSERT(d->inf != NULL);
    MEM_ASSERT(fn != NULL);
    if (!d->in_block) {
        d->in_block = true;
        d->list_bytes = 0;
        d->too_large = false;
    }
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t n = nghttp2_hd_inflate_hd2(d->inf, &nv, &flags, in, len, last);
        if (n < 0)
            return n == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO;
        MEM_ASSERT((size_t)n <= len);
        in += n;
        len -= (size_t)n;
        if (flags & NGHTTP2_HD_INFLATE_EMIT) {
            /* RFC 9113 section 6.5.2: the uncompressed size plus 32 bytes per field. */
            d->list_bytes += nv.namelen + nv.valuelen + 32;
            if (d->list_max > 0 && d->list_bytes > d->list_max)
                d->too_large = true;
            if (!d->too_large) {
                int rc = fn(ud, nv.name, nv.namelen, nv.value, nv.valuelen);
                if (rc < 0)
                    return rc;
            }
        }
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            /* The next block starts afresh: the list bound counts per block. */
            nghttp2_hd_inflate_end_headers(d->inf);
            d->in_block = false;
            return 0;
        }
        if (len == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) {
            /* A non-final fragment is consumed: the rest of the block follows. A final one
             * ends with FINAL above; anything else is a block we cannot trust. */
            return last ? -EPROTO : 0;
        }
    }
}

int px_h2_hpack_dec_table_size(px_h2_hpack_dec_t *d, size_t size)
{
    return nghttp2_hd_inflate_change_table_size(d->inf, size) == 0 ? 0 : -ENOMEM;
}

int px_h2_hpack_enc_init(px_h2_hpack_enc_t *e, nghttp2_mem *mem, size_t table_max)
{
    MEM_ASSERT(e != NULL && mem != NULL);
    memset(e, 0, sizeof(*e));
    return nghttp2_hd_deflate_new2(&e->def, table_max, mem) == 0 ? 0 : -ENOMEM;
}

void px_h2_hpack_enc_fini(px_h2_hpack_enc_t *e)
{
    if (e->def != NULL)
        nghttp2_hd_deflate_del(e->def);
    e->def = NULL;
}

int px_h2_hpack_enc_table_size(px_h2_hpack_enc_t *e, size_t size)
{
    return nghttp2_hd_deflate_change_table_size(e->def, size) == 0 ? 0 : -ENOMEM;
}

size_t px_h2_hpack_encode_bound(px_h2_hpack_enc_t *e, const nghttp2_nv *nva, size_t cnt)
{
    return nghttp2_hd_deflate_bound(e->def, nva, cnt);
}

ssize_t px_h2_hpack_encode(px_h2_hpack_enc_t *e, uint8_t *out, size_t cap, const nghttp2_nv *nva,
                           size_t cnt)
{
    MEM_ASSERT(e->def != NULL);
    MEM_ASSERT(out != NULL || cap == 0);
    ssize_t n = nghttp2_hd_deflate_hd(e->def, out, cap, (nghttp2_nv *)nva, cnt);
    if (n >= 0)
        return n;
    return n == NGHTTP2_ERR_INSUFF_BUFSIZE ? -E2BIG : -ENOMEM;
}

bool px_h2_field_valid(const uint8_t *name, size_t name_len, const uint8_t *value, size_t value_len)
{
    if (name_len == 0)
        return false;
    /* nghttp2_check_header_name rejects upper case (RFC 9113 section 8.2.1) and takes a
     * pseudo-header's leading ':' only at the start. */
    if (!nghttp2_check_header_name(name, name_len))
        return false;
    return nghttp2_check_header_value_rfc9113(value, value_len) != 0;
}
