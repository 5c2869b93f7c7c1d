/*
 * mem/heapprof.c: the sampling heap profiler: geometric sampling distances, the table of live
 * samples with their backtraces, the pprof legacy heap dump and in-process symbolization.
 *
 * One process-wide instance. Any thread records and forgets samples; sampled events are rare
 * (on average one per `interval` bytes), so the tables sit behind one mutex. The only lock-free
 * part is a counting filter that lets mem__heapprof_forget() return without the lock for the
 * vast majority of frees, which were never sampled.
 * All storage (tables, dump scratch, ELF images) is mapped with mmap directly, never through
 * the facade, so recording a sample can never recurse into the allocator.
 */
#include "mem/base.h"
#include "mem/heapprof.h"
#include "mem/internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <execinfo.h>
#include <fcntl.h>
#include <inttypes.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Frames kept per sample: deep enough for nghttp2 callbacks under libuv under a worker. */
#define HP_FRAMES_MAX 32
/* Distinct stacks ever sampled (cumulative counts keep them alive, as tcmalloc's buckets). */
#define HP_BUCKETS_MAX 8192
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
/* Distance between re-checks while sampling is off, so turning it on takes effect soon. */
#define HP_OFF_RECHECK_BYTES ((size_t)8 << 20)
/* The frame-pointer walk gives up on a link that jumps further up the stack than this. */
#define HP_FP_GAP_MAX ((uintptr_t)1 << 20)

MEM_STATIC_ASSERT(MEM_IS_POW2(HP_BUCKETS_MAX), "bucket table size must be a power of two");
MEM_STATIC_ASSERT(MEM_IS_POW2(HP_INDEX_SLOTS) && MEM_IS_POW2(HP_INDEX_SLOTS_MIN) &&
                      HP_INDEX_SLOTS_MIN <= HP_INDEX_SLOTS,
                  "index sizes must be powers of two");
MEM_STATIC_ASSERT(MEM_IS_POW2(HP_BUCKET_SLOTS), "bucket index size must be a power of two");
MEM_STATIC_ASSERT(MEM_IS_POW2(HP_FILTER_SLOTS), "filter size must be a power of two");
MEM_STATIC_ASSERT(HP_SAMPLES_MAX < UINT32_MAX, "sample indexes are 32-bit");

typedef struct hp_bucket_s {
    uint64_t hash;  /* 0 = empty slot */
    uint32_t depth; /* frames in pcs */
    uint32_t pad;
    uint64_t live_objs, live_bytes;   /* samples alive now */
    uint64_t alloc_objs, alloc_bytes; /* samples ever recorded */
    void *pcs[HP_FRAMES_MAX];         /* return addresses, innermost first */
} hp_bucket_t;

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
static size_t hp_interval; /* atomic: mean sampling distance, 0 = off */
static size_t hp_live_cnt; /* atomic mirror of hp.samples_cnt for lock-free readers */

/* Bytes of the tables charged to the budget as metadata (under hp_lock): the touched high-water
 * of the dense arrays and the index, and the hashed tables whole from the first sample. */
static size_t hp_meta_charged;
static size_t hp_samples_hwm;

static __thread uint64_t tl_rng;
/* The main executable's code, where weir's own functions are: the frame-pointer walk trusts
 * a frame only while it returns into this range. Written once inside pthread_once. */
static uintptr_t hp_text_lo, hp_text_hi;

/* ---- set-up ---------------------------------------------------------------------------- */

/* Finds the main executable's code segment (the first object dl_iterate_phdr reports). */
static int on_phdr(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size, (void)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            hp_text_lo = (uintptr_t)(info->dlpi_addr + ph->p_vaddr);
            hp_text_hi = hp_text_lo + (uintptr_t)ph->p_memsz;
            break;
        }
    }
    return 1; /* the main program only */
}

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
    /* backtrace() loads libgcc_s and may call libc malloc on its first use. Do that here, once,
     * instead of inside an allocation's slow path. */
    void *pcs[4];
    (void)backtrace(pcs, 4);
    (void)dl_iterate_phdr(on_phdr, NULL);
}

static int hp_setup(void)
{
    (void)pthread_once(&hp_once, on_setup_once);
    return hp_setup_err;
}

/* ---- sampling distance ----------------------------------------------------------------- */

static uint64_t rng_next(void)
{
    uint64_t x = tl_rng;
    if (MEM_UNLIKELY(x == 0)) {
        /* Seed per thread from the address of its TLS block and the clock: distinct threads
         * and distinct processes draw distinct sequences. */
        x = mem__splitmix64((uint64_t)(uintptr_t)&tl_rng ^ mem__now_ns());
        if (x == 0)
            x = 0x2545f4914f6cdd1dull;
    }
    /* xorshift64*: period 2^64-1, good enough for sampling and a few instructions. */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    tl_rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Natural logarithm of `x` in (0, 1], without libm (mem links no -lm). x = m * 2^e with m in
 * [1, 2); ln(m) = 2 atanh(s), s = (m-1)/(m+1) in [0, 1/3], whose odd series converges to
 * double precision in a dozen terms. */
static double hp_ln(double x)
{
    MEM_ASSERT(x > 0.0);
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m;
    memcpy(&m, &bits, sizeof(m));
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s, term = s, sum = 0.0;
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= s2;
    }
    return 2.0 * sum + (double)e * 0.69314718055994530942;
}

size_t mem__heapprof_next_interval(void)
{
    size_t mean = __atomic_load_n(&hp_interval, __ATOMIC_RELAXED);
    if (mean == 0)
        return HP_OFF_RECHECK_BYTES;
    /* u uniform in (0, 1]: 53 random bits, plus one so that ln(u) is finite. */
    double u = (double)((rng_next() >> 11) + 1) * (1.0 / 9007199254740992.0);
    MEM_ASSERT(u > 0.0 && u <= 1.0);
    double d = -hp_ln(u) * (double)mean;
    /* Cap far out in the tail so that one draw cannot switch sampling off for good. */
    double cap = (double)mean * 64.0;
    if (d > cap)
        d = cap;
    size_t r = (size_t)d + 1;
    MEM_ASSERT(r >= 1);
    return r;
}

void mem_heapprof_set_interval(size_t sample_bytes)
{
    /* Set-up here too: the first backtrace() then happens at configuration time. */
    if (sample_bytes != 0)
        (void)hp_setup();
    __atomic_store_n(&hp_interval, sample_bytes, __ATOMIC_RELAXED);
}

size_t mem_heapprof_interval(void)
{
    return __atomic_load_n(&hp_interval, __ATOMIC_RELAXED);
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

static uint64_t stack_hash(void *const *pcs, uint32_t depth)
{
    uint64_t h = 0x84222325cbf29ce4ull ^ depth;
    for (uint32_t i = 0; i < depth; i++)
        h = mem__splitmix64(h ^ (uint64_t)(uintptr_t)pcs[i]);
    return h ? h : 1; /* 0 marks an empty bucket */
}

/* Finds or creates the bucket for a stack. Returns its index, or -1 when the table is full.
 * Caller holds hp_lock. */
static long bucket_get(void *const *pcs, uint32_t depth)
{
    MEM_ASSERT(depth <= HP_FRAMES_MAX);
    uint64_t h = stack_hash(pcs, depth);
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
            memcpy(b->pcs, pcs, depth * sizeof(void *));
            hp.bucket_ix[i] = (uint32_t)++hp.buckets_cnt;
            return (long)(hp.buckets_cnt - 1);
        }
        hp_bucket_t *b = &hp.buckets[v - 1];
        if (b->hash == h && b->depth == depth && memcmp(b->pcs, pcs, depth * sizeof(void *)) == 0)
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

/* Walks the frame-pointer chain of the calling function (inlined: its frame is the first),
 * writing return addresses innermost first, while the frames are weir's own: weir is built
 * with -fno-omit-frame-pointer, the libraries it calls are not, so the chain is trusted only
 * while each frame returns into the main executable. Stops after the first address outside
 * it, which is still a true return address: only the link beyond it could be garbage. A load and
 * two compares per frame, against thousands of instructions per frame for the DWARF unwinder behind
 * backtrace(). */
MEM_INLINE int fp_walk(void **out, int max)
{
    void **fp = __builtin_frame_address(0);
    int n = 0;
    while (n < max) {
        uintptr_t ret = (uintptr_t)fp[1];
        if (ret == 0)
            break;
        out[n++] = (void *)ret;
        if (ret < hp_text_lo || ret >= hp_text_hi)
            break;
        void **next = fp[0];
        uintptr_t gap = (uintptr_t)next - (uintptr_t)fp;
        if ((uintptr_t)next <= (uintptr_t)fp || gap > HP_FP_GAP_MAX || ((uintptr_t)next & 7))
            break;
        fp = next;
    }
    return n;
}

/* The allocator's own text (MEM_ALLOC_TEXT): a sample's stack starts after these frames. */
extern const char __start_mem_alloc_text[], __stop_mem_alloc_text[];

static bool in_alloc_text(const void *pc)
{
    /* A return address points just past its call: pc - 1 is inside the calling function. */
    const char *c = (const char *)pc - 1;
    return c >= __start_mem_alloc_text && c < __stop_mem_alloc_text;
}

/* The index of the first frame of `raw[0..n)` that is the allocation's caller: past the
 * recorder's own frame (found by `ret`, its return address) and any the unwinder put above it
 * (ASan's interceptor), then past every frame in the allocator's text. */
static int site_index(void *const *raw, int n, const void *ret)
{
    int self = 0;
    while (self < n && raw[self] != ret)
        self++;
    int i = self < n ? self : 0;
    while (i < n && in_alloc_text(raw[i]))
        i++;
    return i;
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

MEM_ALLOC_TEXT MEM_NOINLINE int mem__heapprof_record(void *p, size_t len, const void *owner)
{
    MEM_ASSERT(p != NULL);
    if (__atomic_load_n(&hp_interval, __ATOMIC_RELAXED) == 0)
        return 0; /* sampling was turned off since the distance was drawn */
    int err = hp_setup();
    if (err)
        return err;
    /* The unwinding is the slow part: do it before taking the lock. Weir's own frames by their
     * frame pointers, ending at the first library frame (uv_run, nghttp2's callback caller):
     * the frames beyond it are generic. When that library frame comes right after the
     * allocation's caller, the allocation is the library's own (nghttp2, libuv or OpenSSL
     * through the facade, via weir's one-frame callback), and the DWARF unwinder names the
     * library's frames and the weir code that called into it instead. */
    void *raw[HP_FRAMES_MAX + 16];
    int want = HP_FRAMES_MAX + 16;
    void *ret = __builtin_return_address(0);
    int n = hp_text_hi != 0 ? fp_walk(raw, want) : 0;
    int drop = site_index(raw, n, ret);
    if (n - drop <= 2) {
        n = backtrace(raw, want);
        drop = site_index(raw, n, ret);
    }
    uint32_t depth = (uint32_t)MEM_MIN(n - drop, HP_FRAMES_MAX);

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
    long bi = bucket_get(raw + drop, depth);
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

/* ---- dump ------------------------------------------------------------------------------ */

/* Scratch mapping for a snapshot taken under the lock and written out without it. */
typedef struct hp_snap_s {
    hp_bucket_t *b;
    size_t cnt;
    size_t map_len;
    size_t interval;
} hp_snap_t;

static int snap_take(hp_snap_t *snap)
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

static void snap_release(hp_snap_t *snap)
{
    if (snap->b)
        munmap(snap->b, snap->map_len);
    snap->b = NULL;
}

/* Buffered output on the stack: lines are appended and flushed through the writer. */
typedef struct hp_out_s {
    mem_write_fn write;
    void *ud;
    size_t len;
    int err;
    char buf[8192];
} hp_out_t;

static void out_flush(hp_out_t *o)
{
    if (o->err == 0 && o->len > 0) {
        int r = o->write(o->ud, o->buf, o->len);
        if (r < 0)
            o->err = r;
    }
    o->len = 0;
}

MEM_PRINTF(2, 3) static void out_printf(hp_out_t *o, const char *fmt, ...)
{
    if (o->err)
        return;
    for (int tries = 0; tries < 2; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
        va_end(ap);
        MEM_ASSERT(n >= 0);
        if ((size_t)n < sizeof(o->buf) - o->len) {
            o->len += (size_t)n;
            return;
        }
        out_flush(o);
    }
    o->err = -EOVERFLOW; /* one piece larger than the buffer: a programming error */
}

static void out_raw(hp_out_t *o, const char *p, size_t len)
{
    out_flush(o);
    if (o->err == 0 && len > 0) {
        int r = o->write(o->ud, p, len);
        if (r < 0)
            o->err = r;
    }
}

/* Copies /proc/self/maps verbatim: pprof needs it to map PCs to binaries and offsets. */
static void out_maps(hp_out_t *o)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        o->err = -errno;
        return;
    }
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            o->err = o->err ? o->err : -errno;
            break;
        }
        if (n == 0)
            break;
        out_raw(o, buf, (size_t)n);
        if (o->err)
            break;
    }
    close(fd);
}

int mem_heapprof_dump(mem_write_fn write, void *ud)
{
    MEM_ASSERT(write != NULL);
    hp_snap_t snap;
    int err = snap_take(&snap);
    if (err)
        return err;
    /* The output buffer is 8 KiB: keep it off small thread stacks by mapping it too. */
    hp_out_t *o =
        mmap(NULL, sizeof(hp_out_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (o == MAP_FAILED) {
        snap_release(&snap);
        return -ENOMEM;
    }
    o->write = write;
    o->ud = ud;
    o->len = 0;
    o->err = 0;

    uint64_t in_objs = 0, in_bytes = 0, al_objs = 0, al_bytes = 0;
    for (size_t i = 0; i < snap.cnt; i++) {
        in_objs += snap.b[i].live_objs;
        in_bytes += snap.b[i].live_bytes;
        al_objs += snap.b[i].alloc_objs;
        al_bytes += snap.b[i].alloc_bytes;
    }
    /* heap_v2/<interval>: counts are raw samples; pprof un-samples them itself. An interval of
     * 0 (off) would divide by zero in pprof, so write 1 (every byte) in that case. */
    out_printf(
        o, "heap profile: %6" PRIu64 ": %8" PRIu64 " [%6" PRIu64 ": %8" PRIu64 "] @ heap_v2/%zu\n",
        in_objs, in_bytes, al_objs, al_bytes, snap.interval ? snap.interval : (size_t)1);
    for (size_t i = 0; i < snap.cnt && o->err == 0; i++) {
        const hp_bucket_t *b = &snap.b[i];
        out_printf(o, "%6" PRIu64 ": %8" PRIu64 " [%6" PRIu64 ": %8" PRIu64 "] @", b->live_objs,
                   b->live_bytes, b->alloc_objs, b->alloc_bytes);
        for (uint32_t f = 0; f < b->depth; f++)
            out_printf(o, " 0x%" PRIxPTR, (uintptr_t)b->pcs[f]);
        out_printf(o, "\n");
    }
    out_printf(o, "\nMAPPED_LIBRARIES:\n");
    out_maps(o);
    out_flush(o);
    err = o->err;
    munmap(o, sizeof(hp_out_t));
    snap_release(&snap);
    return err;
}

/* ---- in-process symbolization ---------------------------------------------------------- */

/* One ELF file mapped read-only, with its symbol tables located. */
typedef struct hp_elf_s {
    const char *path; /* borrows: the dladdr name, or "/proc/self/exe" */
    const void *base; /* load address, dli_fbase */
    const uint8_t *img;
    size_t img_len;
    bool is_exec; /* ET_EXEC: symbol values are absolute */
    struct {
        const Elf64_Sym *syms;
        size_t cnt;
        const char *str;
        size_t str_len;
    } tab[2]; /* .symtab, .dynsym */
} hp_elf_t;

#define HP_ELF_CACHE 8

static void elf_close(hp_elf_t *e)
{
    if (e->img)
        munmap((void *)e->img, e->img_len);
    memset(e, 0, sizeof(*e));
}

/* Maps `path` and finds its symbol tables. Every offset is bounds-checked: the file is ours,
 * but a truncated or replaced binary must not crash a dump. */
static int elf_open(hp_elf_t *e, const char *path, const void *base)
{
    memset(e, 0, sizeof(*e));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return -EINVAL;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -ENOMEM;
    e->img = m;
    e->img_len = (size_t)st.st_size;
    e->path = path;
    e->base = base;
    const Elf64_Ehdr *eh = m;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shentsize != sizeof(Elf64_Shdr))
        goto fail;
    e->is_exec = eh->e_type == ET_EXEC;
    if (eh->e_shoff == 0 || eh->e_shoff > e->img_len ||
        (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > e->img_len - eh->e_shoff)
        goto fail;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(e->img + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        int t = sh[i].sh_type == SHT_SYMTAB ? 0 : sh[i].sh_type == SHT_DYNSYM ? 1 : -1;
        if (t < 0 || sh[i].sh_link >= eh->e_shnum)
            continue;
        const Elf64_Shdr *strsh = &sh[sh[i].sh_link];
        if (sh[i].sh_offset > e->img_len || sh[i].sh_size > e->img_len - sh[i].sh_offset ||
            strsh->sh_offset > e->img_len || strsh->sh_size > e->img_len - strsh->sh_offset)
            continue;
        e->tab[t].syms = (const Elf64_Sym *)(e->img + sh[i].sh_offset);
        e->tab[t].cnt = sh[i].sh_size / sizeof(Elf64_Sym);
        e->tab[t].str = (const char *)(e->img + strsh->sh_offset);
        e->tab[t].str_len = strsh->sh_size;
    }
    return 0;
fail:
    elf_close(e);
    return -EINVAL;
}

/* Finds the function symbol that contains `pc`. Returns its name or NULL. A linear scan per
 * PC: dumps are rare and this needs no allocation for a sorted copy. A symbol whose
 * [value, value + size) holds the address wins; otherwise the nearest lower symbol of size 0
 * (hand-written assembly). */
static const char *elf_lookup(const hp_elf_t *e, uintptr_t pc)
{
    uintptr_t addr = e->is_exec ? pc : pc - (uintptr_t)e->base;
    const char *near = NULL;
    uint64_t near_start = 0;
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < e->tab[t].cnt; i++) {
            const Elf64_Sym *s = &e->tab[t].syms[i];
            if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_value == 0 ||
                s->st_name >= e->tab[t].str_len || s->st_value > addr)
                continue;
            const char *name = e->tab[t].str + s->st_name;
            /* The name must end inside its string table. */
            if (memchr(name, 0, e->tab[t].str_len - s->st_name) == NULL)
                continue;
            if (addr < s->st_value + s->st_size)
                return name;
            if (s->st_size == 0 && s->st_value >= near_start) {
                near = name;
                near_start = s->st_value;
            }
        }
    }
    return near;
}

typedef struct hp_symctx_s {
    hp_elf_t elf[HP_ELF_CACHE];
    size_t elf_cnt;
    const void *self_base; /* where the main executable is loaded */
} hp_symctx_t;

/* Resolves `pc` to a function name: the ELF tables of the object that holds it (so static
 * functions of the main binary resolve too), then dladdr's dynamic symbol. */
static const char *sym_resolve(hp_symctx_t *c, uintptr_t pc)
{
    Dl_info di;
    memset(&di, 0, sizeof(di));
    /* Return addresses point after the call; look up the call instruction itself. */
    uintptr_t q = pc > 0 ? pc - 1 : pc;
    if (dladdr((void *)q, &di) == 0 || di.dli_fbase == NULL)
        return NULL;
    hp_elf_t *e = NULL;
    for (size_t i = 0; i < c->elf_cnt; i++) {
        if (c->elf[i].base == di.dli_fbase) {
            e = &c->elf[i];
            break;
        }
    }
    if (e == NULL && c->elf_cnt < HP_ELF_CACHE) {
        const char *path = di.dli_fbase == c->self_base ? "/proc/self/exe" : di.dli_fname;
        if (path && path[0] && elf_open(&c->elf[c->elf_cnt], path, di.dli_fbase) == 0)
            e = &c->elf[c->elf_cnt++];
    }
    const char *name = e ? elf_lookup(e, q) : NULL;
    return name ? name : di.dli_sname;
}

/* Public for tests and for the admin helper's symbolz: resolves one address in-process. The
 * returned name lives in a mapping released by the next call; copy it. */
int mem_heapprof_symbolize(const void *pc, char *out, size_t out_len)
{
    MEM_ASSERT(out != NULL);
    MEM_ASSERT(out_len > 0);
    hp_symctx_t *c =
        mmap(NULL, sizeof(hp_symctx_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED)
        return -ENOMEM;
    memset(c, 0, sizeof(*c));
    Dl_info self;
    if (dladdr((void *)mem_heapprof_symbolize, &self) != 0)
        c->self_base = self.dli_fbase;
    const char *name = sym_resolve(c, (uintptr_t)pc + 1);
    int err = name ? 0 : -ENOENT;
    if (name)
        snprintf(out, out_len, "%s", name);
    for (size_t i = 0; i < c->elf_cnt; i++)
        elf_close(&c->elf[i]);
    munmap(c, sizeof(*c));
    return err;
}

int mem_heapprof_dump_symbols(mem_write_fn write, void *ud)
{
    MEM_ASSERT(write != NULL);
    hp_snap_t snap;
    int err = snap_take(&snap);
    if (err)
        return err;
    hp_symctx_t *c =
        mmap(NULL, sizeof(hp_symctx_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    hp_out_t *o =
        mmap(NULL, sizeof(hp_out_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED || o == MAP_FAILED) {
        err = -ENOMEM;
        goto out;
    }
    memset(c, 0, sizeof(*c));
    o->write = write;
    o->ud = ud;
    Dl_info self;
    if (dladdr((void *)mem_heapprof_dump_symbols, &self) != 0)
        c->self_base = self.dli_fbase;
    /* Each PC once: mark duplicates by zeroing them in the (private) snapshot. */
    for (size_t i = 0; i < snap.cnt && o->err == 0; i++) {
        hp_bucket_t *b = &snap.b[i];
        if (b->live_objs == 0)
            continue;
        for (uint32_t f = 0; f < b->depth; f++) {
            uintptr_t pc = (uintptr_t)b->pcs[f];
            if (pc == 0)
                continue;
            for (size_t j = i; j < snap.cnt; j++) {
                for (uint32_t g = (j == i ? f + 1 : 0); g < snap.b[j].depth; g++) {
                    if ((uintptr_t)snap.b[j].pcs[g] == pc)
                        snap.b[j].pcs[g] = NULL;
                }
            }
            const char *name = sym_resolve(c, pc);
            out_printf(o, "0x%016" PRIxPTR " %s\n", pc, name ? name : "??");
        }
    }
    out_flush(o);
    err = o->err;
out:
    if (c != MAP_FAILED) {
        for (size_t i = 0; i < c->elf_cnt; i++)
            elf_close(&c->elf[i]);
        munmap(c, sizeof(*c));
    }
    if (o != MAP_FAILED)
        munmap(o, sizeof(hp_out_t));
    snap_release(&snap);
    return err;
}
