/*
 * mem/arena_internal.h: the bump arena shared by regions and sub-arenas (private to
 * mem/region.c and mem/subregion.c).
 *
 * An arena is a chain of chunks taken from the thread cache plus a list of large blocks, with
 * a byte cap and cleanup callbacks. It is embedded as the first member of mem_region_t and
 * mem_subregion_t, so an arena's address is its owner's address (the heap profiler's `owner`).
 * Only the thread that created the arena touches it.
 *
 * ASan: a fresh chunk is poisoned whole and each allocation unpoisons exactly its bytes, so
 * an overrun past an allocation into the chunk's unused tail is reported. Blocks are poisoned
 * when the arena dies and unpoisoned right before mem_free: the facade owns the poisoning of
 * its own free objects (it writes free-list links into them) and of their reuse.
 */
#ifndef MEM_ARENA_INTERNAL_H
#define MEM_ARENA_INTERNAL_H

#include "mem/base.h"
#include "mem/region.h"

#include <stdbool.h>

/* 16-byte alignment: what malloc guarantees on x86-64, so callers may store any type. */
#define MEM__ARENA_ALIGN 16
/* First chunk of an arena: most connections and streams never need a second. */
#define MEM__ARENA_CHUNK_MIN 1024
/* The largest size class: chunks stay thread-cache objects (no dedicated mapping). */
#define MEM__ARENA_CHUNK_MAX 32768
/* Larger allocations get their own block so that one does not waste most of a chunk. */
#define MEM__ARENA_BIG (MEM__ARENA_CHUNK_MAX / 4)

MEM_STATIC_ASSERT(MEM_IS_POW2(MEM__ARENA_ALIGN), "alignment must be a power of two");
MEM_STATIC_ASSERT(MEM__ARENA_CHUNK_MIN <= MEM__ARENA_CHUNK_MAX, "chunk bounds");

/* A chunk or a large block: a header followed by data (16-aligned). */
typedef struct mem__block_s {
    struct mem__block_s *next; /* owns: older block of the same list */
    size_t size;               /* bytes taken from the facade, header included */
} mem__block_t;

MEM_STATIC_ASSERT(sizeof(mem__block_t) % MEM__ARENA_ALIGN == 0, "block header keeps alignment");

typedef struct mem__cleanup_s {
    struct mem__cleanup_s *next; /* arena: the previously added cleanup */
    mem_cleanup_fn fn;
    void *arg; /* borrows: the caller's */
} mem__cleanup_t;

typedef struct mem__arena_s mem__arena_t;
struct mem__arena_s {
    /* Hot: the bump pointer. */
    char *cur;
    char *end;
    size_t bytes_used; /* handed out, rounded to the alignment */
    /* Cold. */
    size_t bytes;             /* held: own chunks and large blocks */
    size_t child_bytes;       /* held by sub-arenas (charged to this arena's cap) */
    size_t cap_bytes;         /* 0 = none; covers bytes + child_bytes */
    size_t chunk_next;        /* size of the next chunk to take */
    mem__block_t *chunks;     /* owns: newest first; the last holds the owner struct */
    mem__block_t *bigs;       /* owns: large blocks, newest first */
    mem__cleanup_t *cleanups; /* arena: last added first */
    mem__arena_t *parent;     /* borrows: the region a sub-arena charges, NULL for a region */
    bool sampled;             /* the heap profiler holds samples owned by this arena */
};

/* Per-thread distance in bytes to the next sampled arena allocation. */
extern __thread int64_t mem__arena_countdown;

/* Takes a block of `len` bytes beyond the current chunk (a new chunk or a large block).
 * Returns NULL past a cap or on OOM. */
void *mem__arena_alloc_slow(mem__arena_t *a, size_t len);
/* Records a sampled allocation (draws the next distance first). */
void mem__arena_sample(mem__arena_t *a, void *p, size_t len);
/* Creates an arena whose owner struct of `hdr_len` bytes lives at the start of its first
 * chunk; returns that struct (zeroed past the arena) or NULL. `parent` is charged too. */
void *mem__arena_new(size_t hdr_len, size_t cap_bytes, mem__arena_t *parent);
/* Runs the cleanups (last added first). */
void mem__arena_run_cleanups(mem__arena_t *a);
/* Gives the large blocks and chunks back (newest first, so the thread cache hands them out
 * again LIFO) and uncharges the parent. The owner struct is gone afterwards. */
void mem__arena_release(mem__arena_t *a);
/* Adds a cleanup record (allocated in the arena). Returns 0 or -ENOMEM. */
int mem__arena_cleanup_add(mem__arena_t *a, mem_cleanup_fn fn, void *arg);

/* The owner structs, shared by mem/region.c and mem/subregion.c. */
#define MEM__REGION_LABEL_MAX 48

typedef struct mem_subregion_s mem_subregion_t;

struct mem_region_s {
    mem__arena_t arena;        /* first: the arena's address is the region's */
    mem_region_t *prev, *next; /* the owner thread's live list */
    mem_region_t **home;       /* borrows: head of the owner thread's list (owner check) */
    mem_subregion_t *subs;     /* sub-arenas still open, newest first */
    size_t subs_cnt;
    uint64_t id;
    uint64_t created_ns;
    char label[MEM__REGION_LABEL_MAX];
};

struct mem_subregion_s {
    mem__arena_t arena;           /* first: the arena's address is the sub-arena's */
    mem_region_t *parent;         /* borrows: outlives us (it frees us if we are still open) */
    mem_subregion_t *prev, *next; /* the parent's list of open sub-arenas */
};

/* Frees every sub-arena still open in `r` (mem/subregion.c). */
void mem__region_free_subs(mem_region_t *r);

/* Bump-allocates `len` bytes. Ownership: arena. */
MEM_INLINE void *mem__arena_alloc(mem__arena_t *a, size_t len)
{
    MEM_ASSERT_HOT(a != NULL);
    char *p = a->cur;
    size_t need = (len + (MEM__ARENA_ALIGN - 1)) & ~(size_t)(MEM__ARENA_ALIGN - 1);
    /* `need < len` catches the wrap-around of a huge `len`; the slow path rejects it. Large
     * requests always take their own block, even when the current chunk could hold them. */
    if (MEM_UNLIKELY(need > (size_t)(a->end - p) || need < len || len > MEM__ARENA_BIG)) {
        p = mem__arena_alloc_slow(a, len);
        if (MEM_UNLIKELY(p == NULL))
            return NULL;
    } else {
        a->cur = p + need;
        a->bytes_used += need;
        MEM_UNPOISON(p, len);
    }
    MEM_ASSERT_HOT(((uintptr_t)p & (MEM__ARENA_ALIGN - 1)) == 0);
    mem__arena_countdown -= (int64_t)need;
    if (MEM_UNLIKELY(mem__arena_countdown <= 0))
        mem__arena_sample(a, p, len);
    return p;
}

#endif /* MEM_ARENA_INTERNAL_H */
