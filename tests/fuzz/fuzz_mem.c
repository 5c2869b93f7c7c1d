/*
 * tests/fuzz/fuzz_mem.c: fuzzes sequences of mem/ API calls against a model. The input is a
 * program: each op byte picks malloc / calloc / realloc / free / aligned_alloc / region_new /
 * region_alloc / region_free / subregion_new / subregion_alloc / subregion_free, with sizes and
 * slots from the following bytes. Every block is filled with a pattern derived from its slot
 * and checked before it is freed or moved (realloc keeps the prefix); calloc memory must read
 * zero; region and sub-arena allocations must respect their caps. At the end everything is
 * freed and mem_stats must show no live region, sub-arena or facade byte left by this input.
 * Thread: one. Alloc: mem/ (that is the point).
 */
#include "mem/base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"
#include "mem/subregion.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOTS 16

typedef struct blk_s {
    uint8_t *p;
    size_t len;
    uint8_t seed;
} blk_t;

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 31);
}

static void check(const uint8_t *p, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)(seed + i * 31))
            abort(); /* memory changed under us: allocator bug */
}

typedef struct rd_s {
    const uint8_t *p;
    size_t left;
} rd_t;

static uint32_t take(rd_t *r, int bytes)
{
    uint32_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = (v << 8) | (r->left ? *r->p : 0);
        if (r->left) {
            r->p++;
            r->left--;
        }
    }
    return v;
}

/* Sizes: mostly small (size classes), sometimes large (past the tcache classes). */
static size_t pick_size(rd_t *r)
{
    uint32_t v = take(r, 2);
    if ((v & 0xc000) == 0xc000)
        return (size_t)(v & 0x3fff) * 64; /* up to ~1 MiB */
    return v & 0x3ff;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!mem_is_initialised() && (mem_init(NULL) != 0 || mem_thread_attach(0) != 0))
        abort();
    mem_stats_t before;
    if (mem_stats_snapshot(&before) != 0)
        abort();
    blk_t heap[SLOTS] = {{0}};
    blk_t rblk[SLOTS] = {{0}}; /* region/subregion blocks: checked, never freed alone */
    mem_region_t *region = NULL;
    mem_subregion_t *sub = NULL;
    size_t rcap = 0;
    rd_t r = {data, size};
    for (int steps = 0; r.left > 0 && steps < 4096; steps++) {
        uint8_t op = (uint8_t)take(&r, 1);
        unsigned s = op >> 4 & (SLOTS - 1);
        blk_t *b = &heap[s];
        switch (op % 12) {
        case 0: /* malloc */
        case 1: /* calloc */
            if (b->p)
                break;
            b->len = pick_size(&r);
            b->p = (op % 12) ? mem_calloc(1, b->len) : mem_malloc(b->len);
            if (b->p == NULL)
                break; /* allowed: OOM is an operating condition */
            if (op % 12 == 1)
                for (size_t i = 0; i < b->len; i++)
                    if (b->p[i] != 0)
                        abort();
            MEM_ASSERT(mem_usable_size(b->p) >= b->len);
            b->seed = (uint8_t)(s * 7 + steps);
            fill(b->p, b->len, b->seed);
            break;
        case 2: { /* realloc (also from NULL) */
            size_t n = pick_size(&r);
            uint8_t *q = mem_realloc(b->p, n);
            if (q == NULL && n > 0)
                break; /* the old block is untouched */
            if (b->p)
                check(q, MEM_MIN(n, b->len), b->seed);
            b->p = n ? q : NULL;
            if (n == 0 && q != NULL)
                mem_free(q);
            b->len = n;
            if (b->p)
                fill(b->p, b->len, b->seed);
            break;
        }
        case 3: /* free */
        case 4:
            if (b->p)
                check(b->p, b->len, b->seed);
            mem_free(b->p);
            b->p = NULL;
            break;
        case 5: { /* aligned_alloc */
            if (b->p)
                break;
            size_t align = (size_t)1 << (take(&r, 1) % 13);
            b->len = pick_size(&r);
            b->p = mem_aligned_alloc(align, b->len);
            if (b->p == NULL)
                break;
            if ((uintptr_t)b->p % align != 0)
                abort();
            b->seed = (uint8_t)steps;
            fill(b->p, b->len, b->seed);
            break;
        }
        case 6: /* region_new (replaces the current one) */
        case 9: /* region_free */
            for (unsigned i = 0; i < SLOTS; i++)
                if (rblk[i].p)
                    check(rblk[i].p, rblk[i].len, rblk[i].seed);
            memset(rblk, 0, sizeof(rblk));
            mem_subregion_free(sub); /* NULL is fine */
            sub = NULL;
            mem_region_free(region);
            region = NULL;
            if (op % 12 == 6) {
                rcap = 4096 + (size_t)take(&r, 2) * 16;
                region = mem_region_new(rcap);
            }
            break;
        case 7: /* region_alloc */
        case 8: /* subregion_alloc */
            if (region == NULL || rblk[s].p)
                break;
            rblk[s].len = pick_size(&r);
            if (op % 12 == 8 && sub == NULL)
                break;
            rblk[s].p = op % 12 == 7 ? mem_region_alloc(region, rblk[s].len)
                                     : mem_subregion_alloc(sub, rblk[s].len);
            if (rblk[s].p == NULL)
                break; /* cap reached: allowed */
            if (mem_region_bytes_used(region) > rcap)
                abort(); /* past the cap */
            rblk[s].seed = (uint8_t)(steps * 3);
            fill(rblk[s].p, rblk[s].len, rblk[s].seed);
            break;
        case 10: /* subregion_new */
            if (region == NULL || sub != NULL)
                break;
            sub = mem_subregion_new(region, 1024 + (size_t)take(&r, 2) * 8);
            break;
        case 11: /* subregion_free: its blocks die with it */
            if (sub == NULL)
                break;
            mem_subregion_free(sub);
            sub = NULL;
            /* Which rblk came from the sub-arena is not tracked; forget all but check the
             * region ones stay intact is not possible either, so drop them all. */
            memset(rblk, 0, sizeof(rblk));
            break;
        }
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        if (heap[i].p)
            check(heap[i].p, heap[i].len, heap[i].seed);
        mem_free(heap[i].p);
        if (rblk[i].p)
            check(rblk[i].p, rblk[i].len, rblk[i].seed);
    }
    mem_subregion_free(sub);
    mem_region_free(region);
    mem_stats_t after;
    if (mem_stats_snapshot(&after) != 0)
        abort();
    if (after.regions_live != before.regions_live ||
        after.subregions_live != before.subregions_live)
        abort(); /* a region or sub-arena outlived its free */
    if (after.live != before.live)
        abort(); /* facade bytes leaked or double-counted */
    return 0;
}
