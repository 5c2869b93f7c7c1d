/*
 * mem/sizeclass.h: the compile-time size-class table and the size -> class lookup.
 *
 * 52 classes from 16 B to 256 KiB. Up to 128 B the classes step by the 16-byte alignment
 * malloc must give; above that there are four classes per power of two, so each class is at
 * most 25% larger than the previous one (asserted at compile time in sizeclass.c).
 * Classes up to 32 KiB are carved from one 64 KiB span; larger ones from a run of up to
 * MEM_SC_RUN_MAX adjacent spans of one segment (mem_sc_run), so objects up to 256 KiB cost
 * no mapping of their own.
 * The table is immutable; the lookup table is filled by a constructor before main() so the
 * allocation fast path can use it before mem_init(). Thread: any.
 */
#ifndef MEM_SIZECLASS_H
#define MEM_SIZECLASS_H

#include "mem/base.h"

/* MEM_SC_SPAN_BYTES repeats MEM_SPAN_SIZE (segment.h, asserted equal there) to keep this
 * header free of includes. */
#define MEM_SC_COUNT      52
#define MEM_SC_MAX        262144u
#define MEM_SC_SMALL_MAX  32768u /* the largest class of one span */
#define MEM_SC_SPAN_BYTES 65536u
#define MEM_SC_RUN_MAX    8u /* spans in the longest run */
#define MEM_SC_ALIGN      16u
#define MEM_SC_LOOKUP_LEN (MEM_SC_MAX / MEM_SC_ALIGN + 1)

/* Object size of each class in bytes. */
extern const uint32_t mem_sc_size[MEM_SC_COUNT];
/* lookup[(len + 15) / 16] = smallest class holding len (len <= MEM_SC_MAX). */
extern uint8_t mem_sc_lookup[MEM_SC_LOOKUP_LEN];
/* Spans per run of each class (1 up to MEM_SC_SMALL_MAX). Filled before main(). */
extern uint8_t mem_sc_run[MEM_SC_COUNT];

/* Returns the class for `len`, or MEM_SC_COUNT when `len` is larger than every class.
 * Getter: never allocates. */
MEM_INLINE unsigned mem_sc_of(size_t len)
{
    return MEM_LIKELY(len <= MEM_SC_MAX) ? mem_sc_lookup[(len + MEM_SC_ALIGN - 1) / MEM_SC_ALIGN]
                                         : MEM_SC_COUNT;
}

/* The same mapping computed arithmetically (used to build and to check the table). */
unsigned mem_sc_of_slow(size_t len);

#endif /* MEM_SIZECLASS_H */
