/*
 * mem/registry.c: the debug registry of every segment and large mapping mem/ has made (debug
 * and sanitizer builds, MEM_DEBUG >= 1), so that free() rejects a pointer mem/ never mapped
 * before it reads the header such a pointer would have. Release builds trust the caller.
 *
 * One process-wide bitmap, written with atomics by whichever thread maps or unmaps.
 */
#include "mem/base.h"
#include "mem/internal.h"
#include "mem/segment.h"

#include <string.h>
#include <sys/mman.h>

#if MEM_DEBUG >= 1
/* One bit per 4 MiB of a 47-bit address space (4 MiB of bitmap, mapped NORESERVE: only
 * the words in use cost memory). Lets free() reject a pointer mem/ never mapped before it
 * dereferences its would-be header. */
#define REG_BITS ((uint64_t)1 << (47 - MEM_SEG_SHIFT))
static uint64_t *reg_bits;

static uint64_t *reg_map(void)
{
    uint64_t *b = __atomic_load_n(&reg_bits, __ATOMIC_ACQUIRE);
    if (b)
        return b;
    void *m = mmap(NULL, REG_BITS / 8, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uint64_t *expect = NULL;
    if (!__atomic_compare_exchange_n(&reg_bits, &expect, (uint64_t *)m, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        munmap(m, REG_BITS / 8);
        return expect;
    }
    return m;
}

/* One bit per 4 KiB page of the bitmap: set when the page is first written and charged to
 * the budget as metadata then. */
static uint64_t reg_pages[REG_BITS / 8 / 4096 / 64 + 1];

void mem__registry_meta_forget(void)
{
    memset(reg_pages, 0, sizeof(reg_pages));
}

bool mem__registry_has(const void *base)
{
    uint64_t i = (uint64_t)(uintptr_t)base >> MEM_SEG_SHIFT;
    uint64_t *b = __atomic_load_n(&reg_bits, __ATOMIC_ACQUIRE);
    if (!b || i >= REG_BITS)
        return false;
    return (__atomic_load_n(&b[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

void mem__registry_set(const void *base, bool on)
{
    uint64_t i = (uint64_t)(uintptr_t)base >> MEM_SEG_SHIFT;
    uint64_t *b = reg_map();
    MEM_ASSERT(b != NULL);
    MEM_ASSERT(i < REG_BITS);
    uint64_t pg = (i / 8) / 4096;
    uint64_t pbit = (uint64_t)1 << (pg % 64);
    if (on && !(__atomic_fetch_or(&reg_pages[pg / 64], pbit, __ATOMIC_RELAXED) & pbit))
        mem__meta_charge(4096);
    if (on)
        __atomic_fetch_or(&b[i / 64], (uint64_t)1 << (i % 64), __ATOMIC_RELEASE);
    else
        __atomic_fetch_and(&b[i / 64], ~((uint64_t)1 << (i % 64)), __ATOMIC_RELEASE);
}
#else
bool mem__registry_has(const void *base)
{
    (void)base;
    return true;
}

void mem__registry_set(const void *base, bool on)
{
    (void)base;
    (void)on;
}

void mem__registry_meta_forget(void) {}
#endif
