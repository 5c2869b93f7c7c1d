/*
 * proxy/h2/stream.c: the per-stream response-body buffer (see stream.h).
 *
 * Chunks are tcache objects of at most 8 KiB, each as large as the bytes appended into it: the
 * codec (proxy/h2/serve.c) takes every chunk as it stands after each append, so nothing is
 * ever appended to a chunk after its first fill, and a chunk of 8 KiB for an upstream read that
 * brought 1 KiB would hold 8 KiB for it until the client reads it (with stalled clients the
 * overload manager, which weighs streams by their buffered bytes, then saw half of what they
 * held: e2e 74 reached critical). A slow client pins at most stream_buffer_bytes plus the
 * size-class rounding of its chunks.
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
            size_t want = MEM_MIN(sizeof(px_chunk_t) + len, (size_t)PX_CHUNK_BYTES);
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
