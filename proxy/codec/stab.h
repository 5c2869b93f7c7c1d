/*
 * proxy/codec/stab.h: the stream table of weir's HTTP/2 codec: which streams of a connection are
 * live (id to the codec's stream, open addressing) and how the last few closed ones closed
 * (RFC 9113 section 5.1 treats frames on a stream closed by our RST_STREAM, by the peer's, or
 * by END_STREAM both ways differently).
 *
 * The slot array comes from the thread cache, grows with the live streams and goes back as
 * soon as the last one closes, so an idle connection holds none. Embedded in the codec's
 * connection (proxy/codec/endpoint.h); only its worker thread touches it.
 */
#ifndef PX_CODEC_STAB_H
#define PX_CODEC_STAB_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/codec/state.h"

#define PX_H2_STAB_CLOSED_CNT 32u /* closed streams remembered, oldest forgotten first */

typedef struct px_h2_stab_slot_s {
    int32_t id; /* 0 = empty */
    void *p;    /* borrows: the stream, freed by the endpoint after px_h2_stab_del */
} px_h2_stab_slot_t;

typedef struct px_h2_stab_s {
    px_h2_stab_slot_t *slots; /* owns (tcache), NULL while no stream is live */
    uint32_t cap;             /* slots, a power of two, or 0 */
    uint32_t cnt;             /* live streams */
    int32_t closed_id[PX_H2_STAB_CLOSED_CNT];
    uint8_t closed_how[PX_H2_STAB_CLOSED_CNT]; /* px_h2_closed_t */
    uint8_t closed_next;                       /* ring index of the next entry */
} px_h2_stab_t;

/* An empty table. Alloc: none. */
void px_h2_stab_init(px_h2_stab_t *t);

/* Frees the slot array (the streams are the caller's). Alloc: none. */
void px_h2_stab_fini(px_h2_stab_t *t);

/* The live stream `id`, or NULL. Getter. */
void *px_h2_stab_get(const px_h2_stab_t *t, int32_t id);

/* Adds live stream `id` (not present). Returns 0 or -ENOMEM (nothing changed).
 * Alloc: tcache when the table grows. */
MEM_MUST_CHECK int px_h2_stab_put(px_h2_stab_t *t, int32_t id, void *p);

/* Removes live stream `id` (present) and remembers how it closed. The slot array is freed
 * when it was the last. Alloc: none. */
void px_h2_stab_del(px_h2_stab_t *t, int32_t id, px_h2_closed_t how);

/* Removes live stream `id` (present) without remembering it: it never reached the wire. */
void px_h2_stab_drop(px_h2_stab_t *t, int32_t id);

/* Remembers a stream that closed without ever being live here (refused, or reset before it
 * was opened). Alloc: none. */
void px_h2_stab_remember(px_h2_stab_t *t, int32_t id, px_h2_closed_t how);

/* True when closed stream `id` is among the last PX_H2_STAB_CLOSED_CNT remembered, with how
 * it closed in `*how`; false when it was forgotten (or never live). Getter. */
bool px_h2_stab_closed_find(const px_h2_stab_t *t, int32_t id, px_h2_closed_t *how);

/* Calls `fn` for every live stream; `fn` may not change the table. */
void px_h2_stab_each(const px_h2_stab_t *t, void (*fn)(void *p, void *arg), void *arg);

#endif /* PX_CODEC_STAB_H */
