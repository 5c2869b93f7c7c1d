/*
 * mem/heapprof.c: the heap profiler's table of live samples: one bucket per distinct stack and
 * labels (thread name, size class, owner kind; counts of live and ever-recorded samples), the live
 * samples indexed by pointer, and a counting filter; recording, forgetting, and the snapshot the
 * dumps write out. When to sample is mem/sampling.c, the stacks mem/unwind.c, the output
 * mem/pprof.c.
 *
 * One process-wide instance (`hp`, this file's own state). Any thread records and forgets
 * samples; sampled events are rare (on average one per `interval` bytes), so the tables sit
 * behind one mutex. The only lock-free part is the counting filter that lets
 * mem__heapprof_forget() return without the lock for the vast majority of frees, which were
 * never sampled. All storage is mapped with mmap directly, never through the facade, so
 * recording a sample can never recurse into the allocator.
 */
#include "mem/base.h"
#include "mem/heapprof.h"
#include "mem/internal.h"
#include "mem/unwind.h"
#include "mem/heapsnap.h"
#include "mem/tcache.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>

#define HP_BUCKETS_MAX MEM_HEAPPROF_BUCKETS_MAX
/* Live samples at once: 32768 samples at the default 512 KiB interval stand for ~16 GiB. */
#define HP_SAMPLES_MAX 32768
/* Open-addressing index from pointer to sample, at most half full. It starts at
 * HP_INDEX_SLOTS_MIN and doubles as samples accumulate, so its touched pages (and RSS) follow
 * the live samples rather than the capacity. */
#define HP_INDEX_SLOTS     (2 * HP_SAMPLES_MAX)
#define HP_INDEX_SLOTS_MIN 1024
/* Open-addressing index from stack hash to bucket; buckets themselves are stored densely. */
#define HP_BUCKET_SLOTS (2 * HP_BUCKETS_MAX)
/* Counting filter: a zero slot proves that a pointer is not sampled, without the lock. */
#define HP_FILTER_SLOTS 65536

MEM_STATIC_ASSERT(MEM_IS_POW2(HP_BUCKETS_MAX), "bucket table size must be a power of two");
MEM_STATIC_ASSERT(MEM_IS_POW2(HP_INDEX_SLOTS) && MEM_IS_POW2(HP_INDEX_SLOTS_MIN) &&
                      HP_INDEX_SLOTS_MIN <= HP_INDEX_SLOTS,
                  "index sizes must be powers of two");
MEM_STATIC_ASSERT(MEM_IS_POW2(HP_BUCKET_SLOTS), "bucket index size must be a power of two");
MEM_STATIC_ASSERT(MEM_IS_POW2(HP_FILTER_SLOTS), "filter size must be a power of two");
MEM_STATIC_ASSERT(HP_SAMPLES_MAX < UINT32_MAX, "sample indexes are 32-bit");

typedef mem__heapprof_bucket_t hp_bucket_t;

typedef struct hp_sample_s {
    void *p;           /* the sampled allocation (not owned) */
    const void *owner; /* its region or sub-arena, NULL for the facade */
    size_t len;
    uint32_t bucket; /* index into buckets */
    uint32_t pad;
} hp_sample_t;

typedef struct hp_state_s {
    hp_bucket_t *buckets; /* owns: part of the mapping below; dense [0, buckets_cnt) */
    uint32_t *bucket_ix;  /* bucket number + 1 by stack hash, 0 = empty */
    hp_sample_t *samples; /* dense array [0, samples_cnt) */
    uint32_t *index;      /* sample number + 1 by pointer hash, 0 = empty */
    size_t index_mask;    /* slots in use - 1 (grows to HP_INDEX_SLOTS - 1) */
    uint16_t *filter;     /* counts per hash(p) slot; written under lock, read without */
    void *map;            /* owns: one mmap for everything above */
    size_t map_len;
    size_t samples_cnt;
    size_t buckets_cnt;
    uint64_t dropped; /* samples refused because a table was full */
} hp_state_t;

static pthread_mutex_t hp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t hp_once = PTHREAD_ONCE_INIT;
static hp_state_t hp;
static int hp_setup_err;   /* written once inside pthread_once */
static size_t hp_live_cnt; /* atomic mirror of hp.samples_cnt for lock-free readers */

/* Bytes of the tables charged to the budget as metadata (under hp_lock): the touched high-water
 * of the dense arrays and the index, and the hashed tables whole from the first sample. */
static size_t hp_meta_charged;
static size_t hp_samples_hwm;

/* ---- set-up ---------------------------------------------------------------------------- */

static void on_setup_once(void)
{
    size_t b = sizeof(hp_bucket_t) * HP_BUCKETS_MAX;
    size_t bx = sizeof(uint32_t) * HP_BUCKET_SLOTS;
    size_t s = sizeof(hp_sample_t) * HP_SAMPLES_MAX;
    size_t i = sizeof(uint32_t) * HP_INDEX_SLOTS;
    size_t f = sizeof(uint16_t) * HP_FILTER_SLOTS;
    size_t len = b + bx + s + i + f;
    /* MAP_NORESERVE: pages are touched only as samples arrive, so an idle profiler costs no
     * RSS however large its tables may grow. */
    void *m =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        hp_setup_err = -ENOMEM;
        return;
    }
    hp.map = m;
    hp.map_len = len;
    hp.buckets = (hp_bucket_t *)m;
    hp.bucket_ix = (uint32_t *)((char *)m + b);
    hp.samples = (hp_sample_t *)((char *)m + b + bx);
    hp.index = (uint32_t *)((char *)m + b + bx + s);
    hp.index_mask = HP_INDEX_SLOTS_MIN - 1;
    hp.filter = (uint16_t *)((char *)m + b + bx + s + i);
    (void)mem__unwind_init();
}

static int hp_setup(void)
{
    (void)pthread_once(&hp_once, on_setup_once);
    return hp_setup_err;
}

size_t mem_heapprof_samples_live(void)
{
    return __atomic_load_n(&hp_live_cnt, __ATOMIC_RELAXED);
}

/* ---- tables ---------------------------------------------------------------------------- */

static uint64_t ptr_hash(const void *p)
{
    return mem__splitmix64((uint64_t)(uintptr_t)p);
}

const char *mem_heapprof_owner_name(unsigned kind)
{
    switch (kind) {
    case MEM_HEAPPROF_OWNER_TCACHE:
        return "tcache";
    case MEM_HEAPPROF_OWNER_REGION:
        return "region";
    case MEM_HEAPPROF_OWNER_SUBREGION:
        return "subregion";
    case MEM_HEAPPROF_OWNER_LIBRARY:
        return "library";
    }
    return "unknown";
}

/* The labels a bucket is keyed by besides its stack. */
typedef struct hp_labels_s {
    uint32_t sc_bytes;
    uint32_t owner;
    char thread[16];
} hp_labels_t;

static uint64_t stack_hash(void *const *pcs, uint32_t depth, const hp_labels_t *l)
{
    uint64_t h = 0x84222325cbf29ce4ull ^ depth;
    for (uint32_t i = 0; i < depth; i++)
        h = mem__splitmix64(h ^ (uint64_t)(uintptr_t)pcs[i]);
    h = mem__splitmix64(h ^ ((uint64_t)l->sc_bytes << 8 | l->owner));
    uint64_t t[2];
    memcpy(t, l->thread, sizeof(t));
    h = mem__splitmix64(h ^ t[0]);
    h = mem__splitmix64(h ^ t[1]);
    return h ? h : 1; /* 0 marks an empty bucket */
}

static bool labels_eq(const hp_bucket_t *b, const hp_labels_t *l)
{
    return b->sc_bytes == l->sc_bytes && b->owner == l->owner &&
           memcmp(b->thread, l->thread, sizeof(b->thread)) == 0;
}

/* Finds or creates the bucket for a stack and its labels. Returns its index, or -1 when the
 * table is full. Caller holds hp_lock. */
static long bucket_get(void *const *pcs, uint32_t depth, const hp_labels_t *l)
{
    MEM_ASSERT(depth <= MEM_HEAPPROF_FRAMES_MAX);
    MEM_ASSERT(l->thread[sizeof(l->thread) - 1] == 0);
    uint64_t h = stack_hash(pcs, depth, l);
    size_t mask = HP_BUCKET_SLOTS - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t v = hp.bucket_ix[i];
        if (v == 0) {
            /* The index is at most half full (HP_BUCKET_SLOTS = 2 * HP_BUCKETS_MAX). */
            if (hp.buckets_cnt >= HP_BUCKETS_MAX)
                return -1;
            hp_bucket_t *b = &hp.buckets[hp.buckets_cnt];
            b->hash = h;
            b->depth = depth;
            b->sc_bytes = l->sc_bytes;
            b->owner = l->owner;
            memcpy(b->thread, l->thread, sizeof(b->thread));
            memcpy(b->pcs, pcs, depth * sizeof(void *));
            hp.bucket_ix[i] = (uint32_t)++hp.buckets_cnt;
            return (long)(hp.buckets_cnt - 1);
        }
        hp_bucket_t *b = &hp.buckets[v - 1];
        if (b->hash == h && b->depth == depth && labels_eq(b, l) &&
            memcmp(b->pcs, pcs, depth * sizeof(void *)) == 0)
            return (long)(v - 1);
    }
}

/* Returns the index slot holding `p`, or the empty slot where it would go. Caller holds lock. */
static size_t index_find(const void *p)
{
    size_t mask = hp.index_mask;
    size_t i = ptr_hash(p) & mask;
    for (;;) {
        uint32_t v = hp.index[i];
        if (v == 0 || hp.samples[v - 1].p == p)
            return i;
        i = (i + 1) & mask;
    }
}

/* Removes index slot `i` with backward-shift deletion, so no tombstones accumulate. */
static void index_remove_slot(size_t i)
{
    size_t mask = hp.index_mask;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t v = hp.index[j];
        if (v == 0)
            break;
        size_t home = ptr_hash(hp.samples[v - 1].p) & mask;
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            hp.index[i] = v;
            i = j;
        }
    }
    hp.index[i] = 0;
}

/* Doubles the index when one more sample would make it more than half full, and re-inserts
 * every sample from the dense array (caller holds lock). */
static void index_reserve(void)
{
    size_t slots = hp.index_mask + 1;
    if ((hp.samples_cnt + 1) * 2 <= slots || slots >= HP_INDEX_SLOTS)
        return;
    slots *= 2;
    hp.index_mask = slots - 1;
    memset(hp.index, 0, slots * sizeof(*hp.index));
    for (size_t k = 0; k < hp.samples_cnt; k++) {
        size_t i = ptr_hash(hp.samples[k].p) & hp.index_mask;
        while (hp.index[i] != 0)
            i = (i + 1) & hp.index_mask;
        hp.index[i] = (uint32_t)(k + 1);
    }
}

static size_t filter_slot(const void *p)
{
    return (ptr_hash(p) >> 20) & (HP_FILTER_SLOTS - 1);
}

/* Removes sample number `k` (caller holds lock): bucket counts, filter, index, dense array. */
static void sample_remove(size_t k)
{
    MEM_ASSERT(k < hp.samples_cnt);
    hp_sample_t *s = &hp.samples[k];
    hp_bucket_t *b = &hp.buckets[s->bucket];
    MEM_ASSERT(b->live_objs > 0);
    b->live_objs--;
    b->live_bytes -= s->len;
    uint16_t *f = &hp.filter[filter_slot(s->p)];
    MEM_ASSERT(*f > 0);
    __atomic_store_n(f, (uint16_t)(*f - 1), __ATOMIC_RELAXED);
    size_t slot = index_find(s->p);
    MEM_ASSERT(hp.index[slot] == k + 1);
    index_remove_slot(slot);
    size_t last = hp.samples_cnt - 1;
    if (k != last) {
        /* Swap-remove keeps the array dense, so owner scans touch only live samples. */
        hp.samples[k] = hp.samples[last];
        size_t moved = index_find(hp.samples[k].p);
        MEM_ASSERT(hp.index[moved] == last + 1);
        hp.index[moved] = (uint32_t)(k + 1);
    }
    hp.samples_cnt = last;
    __atomic_store_n(&hp_live_cnt, last, __ATOMIC_RELEASE);
}

/* Charges the tables' newly touched bytes as metadata (caller holds hp_lock). Pages once
 * touched stay resident, so the charge only grows, until mem_fini() forgets it. */
static void meta_account(void)
{
    size_t pg = 4096;
    hp_samples_hwm = MEM_MAX(hp_samples_hwm, hp.samples_cnt);
    size_t need = MEM_ALIGN_UP(hp.buckets_cnt * sizeof(hp_bucket_t), pg) +
                  MEM_ALIGN_UP(hp_samples_hwm * sizeof(hp_sample_t), pg) +
                  MEM_ALIGN_UP((hp.index_mask + 1) * sizeof(uint32_t), pg) +
                  sizeof(uint32_t) * HP_BUCKET_SLOTS + sizeof(uint16_t) * HP_FILTER_SLOTS;
    if (need > hp_meta_charged && mem_is_initialised()) {
        mem__meta_charge(need - hp_meta_charged);
        hp_meta_charged = need;
    }
}

void mem__heapprof_meta_forget(void)
{
    pthread_mutex_lock(&hp_lock);
    hp_meta_charged = 0;
    hp_samples_hwm = hp.samples_cnt;
    pthread_mutex_unlock(&hp_lock);
}

MEM_ALLOC_TEXT MEM_NOINLINE int mem__heapprof_record(void *p, size_t len, const void *owner,
                                                     unsigned kind)
{
    MEM_ASSERT(p != NULL);
    MEM_ASSERT(kind <= MEM_HEAPPROF_OWNER_LIBRARY);
    if (mem_heapprof_interval() == 0)
        return 0; /* sampling was turned off since the distance was drawn */
    int err = hp_setup();
    if (err)
        return err;
    /* The unwinding is the slow part: do it before taking the lock. Weir's own frames by their
     * frame pointers, ending at the first library frame (uv_run, nghttp2's callback caller):
     * the frames beyond it are generic. When the allocation is a library's own (the caller is
     * a library, as libuv calling its exempt entry points, or an allocator hook marked
     * MEM_LIB_HOOK, as nghttp2's and OpenSSL's), the DWARF unwinder names the library's frames
     * and the weir code that called into it instead. A weir callback that a library runs and
     * that allocates (the write batch in a libuv check callback) is weir's own allocation:
     * its frame-pointer stack says where, and the DWARF unwinder would cost about 20,000
     * instructions a sample (it did for every such sample until the hooks were marked). */
    void *raw[MEM_HEAPPROF_FRAMES_MAX + 16];
    int want = MEM_HEAPPROF_FRAMES_MAX + 16;
    void *ret = __builtin_return_address(0);
    int n = mem__unwind_fp(raw, want);
    int drop = mem__unwind_site(raw, n, ret);
    if (n == drop || mem__unwind_is_library(raw[drop])) {
        n = mem__unwind_dwarf(raw, want);
        drop = mem__unwind_site(raw, n, ret);
        if (kind == MEM_HEAPPROF_OWNER_TCACHE)
            kind = MEM_HEAPPROF_OWNER_LIBRARY;
    }
    uint32_t depth = (uint32_t)MEM_MIN(n - drop, MEM_HEAPPROF_FRAMES_MAX);
    /* The labels: a region's bump has no size class; the facade's classes end at MEM_SC_MAX
     * (larger is a mapping of its own: "large"). The thread's name was read when its cache
     * was made; a thread without a cache of its own shares one. */
    hp_labels_t lab;
    memset(&lab, 0, sizeof(lab));
    lab.owner = kind;
    bool bump = kind == MEM_HEAPPROF_OWNER_REGION || kind == MEM_HEAPPROF_OWNER_SUBREGION;
    if (!bump && len > 0 && len <= MEM_SC_MAX)
        lab.sc_bytes = mem_sc_size[mem_sc_of(len)];
    const mem__tcache_t *tc = mem__tc_self;
    if (tc != NULL && tc->reg_idx >= 0)
        memcpy(lab.thread, tc->name, sizeof(lab.thread) - 1);
    else
        memcpy(lab.thread, "shared", sizeof("shared"));

    pthread_mutex_lock(&hp_lock);
    if (hp.samples_cnt >= HP_SAMPLES_MAX) {
        err = -ENOMEM;
        goto fail;
    }
    index_reserve();
    size_t slot = index_find(p);
    if (hp.index[slot] != 0) {
        /* The allocator handed out `p` again without forgetting it: replace the old sample. */
        sample_remove(hp.index[slot] - 1);
        slot = index_find(p);
    }
    long bi = bucket_get(raw + drop, depth, &lab);
    if (bi < 0) {
        err = -ENOMEM;
        goto fail;
    }
    hp_bucket_t *b = &hp.buckets[bi];
    b->live_objs++;
    b->live_bytes += len;
    b->alloc_objs++;
    b->alloc_bytes += len;
    size_t k = hp.samples_cnt++;
    hp.samples[k] = (hp_sample_t){.p = p, .owner = owner, .len = len, .bucket = (uint32_t)bi};
    hp.index[slot] = (uint32_t)(k + 1);
    uint16_t *f = &hp.filter[filter_slot(p)];
    MEM_ASSERT(*f < UINT16_MAX);
    __atomic_store_n(f, (uint16_t)(*f + 1), __ATOMIC_RELAXED);
    __atomic_store_n(&hp_live_cnt, hp.samples_cnt, __ATOMIC_RELEASE);
    meta_account();
    pthread_mutex_unlock(&hp_lock);
    /* After the lock: a new peak of committed memory copies the buckets (rate-limited). */
    mem__heapsnap_peak_check();
    return 0;
fail:
    hp.dropped++;
    pthread_mutex_unlock(&hp_lock);
    return err;
}

void mem__heapprof_forget(void *p)
{
    /* Acquire: a non-zero count was published after set-up, so hp.filter is visible. */
    if (p == NULL || __atomic_load_n(&hp_live_cnt, __ATOMIC_ACQUIRE) == 0)
        return;
    /* A zero filter count proves that `p` is not sampled: the record of `p` happened before
     * `p` was handed out, hence before this free. */
    if (__atomic_load_n(&hp.filter[filter_slot(p)], __ATOMIC_RELAXED) == 0)
        return;
    pthread_mutex_lock(&hp_lock);
    size_t slot = index_find(p);
    if (hp.index[slot] != 0)
        sample_remove(hp.index[slot] - 1);
    pthread_mutex_unlock(&hp_lock);
}

void mem__heapprof_forget_owner(const void *owner)
{
    MEM_ASSERT(owner != NULL);
    if (__atomic_load_n(&hp_live_cnt, __ATOMIC_RELAXED) == 0)
        return;
    pthread_mutex_lock(&hp_lock);
    /* Walk backwards: swap-remove moves the last sample into k, which was already seen. */
    for (size_t k = hp.samples_cnt; k-- > 0;) {
        if (hp.samples[k].owner == owner)
            sample_remove(k);
    }
    pthread_mutex_unlock(&hp_lock);
}

/* ---- snapshot -------------------------------------------------------------------------- */

int mem__heapprof_snap_take(mem__heapprof_snap_t *snap)
{
    memset(snap, 0, sizeof(*snap));
    snap->interval = mem_heapprof_interval();
    int err = hp_setup();
    if (err)
        return err;
    pthread_mutex_lock(&hp_lock);
    size_t cnt = hp.buckets_cnt;
    size_t len = MEM_MAX(cnt, (size_t)1) * sizeof(hp_bucket_t);
    /* mmap under the lock is acceptable: dumps are rare and the lock only guards sampling. */
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        pthread_mutex_unlock(&hp_lock);
        return -ENOMEM;
    }
    memcpy(m, hp.buckets, cnt * sizeof(hp_bucket_t));
    size_t n = cnt;
    pthread_mutex_unlock(&hp_lock);
    snap->b = m;
    snap->cnt = n;
    snap->map_len = len;
    return 0;
}

size_t mem__heapprof_copy(hp_bucket_t *dst)
{
    MEM_ASSERT(dst != NULL);
    if (hp_setup() != 0)
        return 0;
    pthread_mutex_lock(&hp_lock);
    size_t cnt = hp.buckets_cnt;
    MEM_ASSERT(cnt <= HP_BUCKETS_MAX);
    memcpy(dst, hp.buckets, cnt * sizeof(hp_bucket_t));
    pthread_mutex_unlock(&hp_lock);
    return cnt;
}

void mem__heapprof_snap_release(mem__heapprof_snap_t *snap)
{
    if (snap->b)
        munmap(snap->b, snap->map_len);
    snap->b = NULL;
}
