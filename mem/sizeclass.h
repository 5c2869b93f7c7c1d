/*
 * mem/sizeclass.h: the compile-time size-class table and the size -> class lookup.
 *
 * 40 classes from 16 B to 32 KiB. Up to 128 B the classes step by the 16-byte alignment
 * malloc must give; above that there are four classes per power of two, so each class is at
 * most 25% larger than the previous one (asserted at compile time in sizeclass.c).
 * The table is immutable; the lookup table is filled by a constructor before main() so the
 * allocation fast path can use it before mem_init(). Thread: any.
 */
#ifndef MEM_SIZECLASS_H
#define MEM_SIZECLASS_H

#include "mem/base.h"

#define MEM_SC_COUNT      40
#define MEM_SC_MAX        32768u
#define MEM_SC_ALIGN      16u
#define MEM_SC_LOOKUP_LEN (MEM_SC_MAX / MEM_SC_ALIGN + 1)

/* Object size of each class in bytes. */
extern const uint32_t mem_sc_size[MEM_SC_COUNT];
/* lookup[(len + 15) / 16] = smallest class holding len (len <= MEM_SC_MAX). */
extern uint8_t mem_sc_lookup[MEM_SC_LOOKUP_LEN];

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
