/*
 * mem/arena_internal.h: the bump arena shared by regions and sub-arenas (private to
 * mem/region.c and mem/subregion.c).
 *
 * An arena is a chain of chunks taken from the thread cache plus a list of large objects (each
 * a facade object of its own, recorded in the chunks), with a byte cap, cleanup callbacks and
 * its own heap-sampling distance. It starts with its bump window (mem/bump.h), which is what
 * the inline allocation path reads, and is embedded as the first member of mem_region_t and
 * mem_subregion_t, so an arena's address is its owner's address (the heap profiler's
 * `owner`). Only the thread that created the arena touches it.
 *
 * ASan: a fresh chunk is poisoned whole and each allocation unpoisons exactly its bytes, so
 * an overrun past an allocation into the chunk's unused tail is reported. Chunks and large
 * objects are unpoisoned right before they go back to the facade, which poisons its own free
 * objects (it writes free-list links into them) until it hands them out again.
 */
#ifndef MEM_ARENA_INTERNAL_H
#define MEM_ARENA_INTERNAL_H

#include "mem/base.h"
#include "mem/bump.h"
#include "mem/region.h"

#include <stdbool.h>

#include "mem/tcache.h"

/* 16-byte alignment: what malloc guarantees on x86-64, so callers may store any type. */
#define MEM__ARENA_ALIGN MEM_BUMP_ALIGN
/* First chunk of a region: an idle connection holds little more. */
#define MEM__ARENA_CHUNK_MIN 1024
/* First chunk of a sub-arena: a stream's headers and bookkeeping usually fit in it. 4 KiB:
 * with 2 KiB the client-facing stream of a proxied request (its struct, the request's fields
 * and the response head's copy) took a second chunk of 4 KiB every time (6 KiB held, and
 * about 250 instructions a request to take and give back the chunk); the upstream-side
 * stream, which fitted in 2 KiB, now holds 2 KiB more, so a proxied request holds the same
 * 8 KiB in all. */
#define MEM__ARENA_CHUNK_SUB 4096
/* Later chunks double up to this. Requests above MEM__ARENA_BIG never go in a chunk, so a
 * small last chunk wastes at most that much of its tail; with 4 KiB the HTTP/2-shaped trace
 * (bench/) holds 11% above what it asked for, against 27% with chunks doubling to 32 KiB and
 * large requests up to 8 KiB in them. */
#define MEM__ARENA_CHUNK_MAX 4096
/* Larger allocations get their own facade object (exact size class, no header): one does not
 * waste the tail of a chunk, and a 16 KiB buffer stays in the 16 KiB class. */
#define MEM__ARENA_BIG MEM_BUMP_BIG

MEM_STATIC_ASSERT(MEM_IS_POW2(MEM__ARENA_ALIGN), "alignment must be a power of two");
MEM_STATIC_ASSERT(MEM__ARENA_CHUNK_MIN <= MEM__ARENA_CHUNK_SUB &&
                      MEM__ARENA_CHUNK_SUB <= MEM__ARENA_CHUNK_MAX,
                  "chunk bounds");

/* A chunk: a header followed by data (16-aligned). */
typedef struct mem__block_s {
    struct mem__block_s *next; /* owns: older chunk */
    size_t size;               /* bytes taken from the facade, header included */
} mem__block_t;

/* A large allocation: a facade object of its own, tracked by a record bumped from the arena. */
typedef struct mem__big_s {
    struct mem__big_s *next; /* arena: older record */
    void *p;                 /* owns: the facade object */
} mem__big_t;

MEM_STATIC_ASSERT(sizeof(mem__block_t) % MEM__ARENA_ALIGN == 0, "block header keeps alignment");

typedef struct mem__cleanup_s {
    struct mem__cleanup_s *next; /* arena: the previously added cleanup */
    mem_cleanup_fn fn;
    void *arg; /* borrows: the caller's */
} mem__cleanup_t;

typedef struct mem__arena_s mem__arena_t;
struct mem__arena_s {
    mem__bump_t bump; /* first and hot: the inline fast path's window (mem/bump.h) */
    /* Cold. */
    char *chunk_data;         /* where the current chunk's handed-out bytes start */
    char *chunk_end;          /* the current chunk's real end (bump.end may stop short) */
    char *win_start;          /* where the bump window opened (sampling counts from here) */
    int64_t sample_left;      /* bytes allocated here until the next heap sample */
    size_t sample_iv;         /* the mean sample_left was drawn with, as of mem__arena_strip */
    size_t used_closed;       /* handed out before chunk_data: older chunks, large objects */
    size_t bytes;             /* held: own chunks and large blocks */
    size_t child_bytes;       /* held by sub-arenas (charged to this arena's cap) */
    size_t cap_bytes;         /* 0 = none; covers bytes + child_bytes */
    size_t chunk_next;        /* size of the next chunk to take */
    mem__block_t *chunks;     /* owns: newest first; the last holds the owner struct */
    mem__big_t *bigs;         /* owns: large objects, newest first */
    mem__cleanup_t *cleanups; /* arena: last added first */
    mem__arena_t *parent;     /* borrows: the region a sub-arena charges, NULL for a region */
    bool sampled;             /* the heap profiler holds samples owned by this arena */
    bool closing;             /* its free has begun: a nested free (from a cleanup) is a no-op */
};

MEM_STATIC_ASSERT(offsetof(mem__arena_t, bump) == 0, "the bump window starts the arena");

/* Bytes handed out (rounded to the alignment), large objects included. */
size_t mem__arena_used(const mem__arena_t *a);
/* Records a sampled allocation. */
void mem__arena_sample(mem__arena_t *a, void *p, size_t len);
/* Creates an arena whose owner struct of `hdr_len` bytes lives at the start of its first
 * chunk; returns that struct (zeroed past the arena) or NULL. The first chunk has the default
 * size, or `first_len` bytes when that is larger. `parent` is charged too. */
void *mem__arena_new(size_t hdr_len, size_t first_len, size_t cap_bytes, mem__arena_t *parent);
/* Sets a stripped sub-arena up again in its own first chunk (mem__arena_strip, then kept by
 * mem/subregion.c): as mem__arena_new with that chunk and the sampling distance it had left,
 * except that the owner's fields past the arena are left for the caller to set. Returns
 * NULL, changing nothing, when these caps want a smaller first chunk. */
void *mem__arena_renew(mem__arena_t *a, size_t hdr_len, size_t cap_bytes, mem__arena_t *parent);
/* Runs the cleanups (last added first). */
void mem__arena_run_cleanups(mem__arena_t *a);
/* Gives the large blocks and every chunk but the first (which holds `a`) back, uncharges the
 * parent, forgets the heap samples it owned: `a` holds its first chunk only, uncharged,
 * poisoned past the owner struct, its sampling distance kept. */
void mem__arena_strip(mem__arena_t *a);
/* The last step of a stripped arena: keeps its sampling distance for the next arena and gives
 * its first chunk back. `a` is gone afterwards. */
void mem__arena_drop(mem__arena_t *a);
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

/* The thread's counters. Non-NULL: every caller just got memory from the facade, so the
 * library is initialised. */
MEM_INLINE mem__tstats_t *mem__arena_tstats(void)
{
    mem__tstats_t *ts = mem__tstats_local();
    MEM_ASSERT(ts != NULL);
    return ts;
}

/* Frees every sub-arena still open in `r` (mem/subregion.c). */
void mem__region_free_subs(mem_region_t *r);

#endif /* MEM_ARENA_INTERNAL_H */
