/*
 * proxy/h2/stream.c: the per-stream response-body buffer (see stream.h).
 *
 * Chunks are 8 KiB tcache objects: a size class, so allocation is a thread-cache pop, and
 * small enough that a slow client pins at most stream_buffer_bytes plus one chunk.
 */
#include "proxy/h2/stream.h"
#include "mem/base.h"

#include <string.h>

#include "mem/malloc.h"

#define PX_CHUNK_BYTES 8192u

int px_stream_body_append(px_stream_t *st, const uint8_t *data, size_t len)
{
    MEM_ASSERT_HOT(st != NULL);
    MEM_ASSERT_HOT(data != NULL || len == 0);
    while (len > 0) {
        px_chunk_t *t = st->chunks_tail;
        if (t == NULL || t->len == t->cap) {
            size_t want =
                sizeof(px_chunk_t) + MEM_MAX(len, (size_t)PX_CHUNK_BYTES - sizeof(px_chunk_t));
            if (want > PX_CHUNK_BYTES)
                want = PX_CHUNK_BYTES;
            px_chunk_t *n = mem_malloc(want);
            if (n == NULL)
                return -ENOMEM;
            n->next = NULL;
            n->owner = NULL;
            n->off = n->len = 0;
            n->cap = (uint32_t)(want - sizeof(px_chunk_t));
            if (t)
                t->next = n;
            else
                st->chunks = n;
            st->chunks_tail = t = n;
        }
        size_t k = MEM_MIN(len, (size_t)(t->cap - t->len));
        memcpy(t->data + t->len, data, k);
        t->len += (uint32_t)k;
        st->buffered += k;
        data += k;
        len -= k;
    }
    return 0;
}

size_t px_stream_body_avail(const px_stream_t *st)
{
    return (st->static_len - st->static_off) + st->buffered;
}

void px_stream_body_take(px_stream_t *st, uint8_t *dst, size_t len)
{
    MEM_ASSERT(len <= px_stream_body_avail(st));
    size_t k = MEM_MIN(len, st->static_len - st->static_off);
    if (k > 0) {
        memcpy(dst, st->static_body + st->static_off, k);
        st->static_off += k;
        dst += k;
        len -= k;
    }
    while (len > 0) {
        px_chunk_t *c = st->chunks;
        MEM_ASSERT(c != NULL);
        k = MEM_MIN(len, (size_t)(c->len - c->off));
        memcpy(dst, c->data + c->off, k);
        c->off += (uint32_t)k;
        st->buffered -= k;
        dst += k;
        len -= k;
        if (c->off == c->len) {
            st->chunks = c->next;
            if (st->chunks == NULL)
                st->chunks_tail = NULL;
            mem_free(c);
        }
    }
}

void px_stream_body_free(px_stream_t *st)
{
    px_chunk_t *c = st->chunks;
    while (c) {
        px_chunk_t *n = c->next;
        mem_free(c);
        c = n;
    }
    st->chunks = st->chunks_tail = NULL;
    st->buffered = 0;
}

char *px_stream_strdup(px_stream_t *st, const char *s, size_t len)
{
    MEM_ASSERT_HOT(st->sub != NULL);
    return mem_subregion_strndup(st->sub, s, len);
}
