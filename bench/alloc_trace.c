/*
 * bench/alloc_trace.c: the HTTP/2-shaped allocation trace, run against weir's thread cache,
 * weir's sub-arenas, the process's malloc (glibc, or jemalloc/tcmalloc/mimalloc through
 * LD_PRELOAD) and a no-allocator floor that measures the harness itself.
 *
 * Each thread keeps 64 connections x 10 stream slots. A step ends a random stream (frees all
 * its objects) and starts a new one in that slot: a 256 B stream struct plus 30..59 objects,
 * 60% 16..63 B, 25% 64..255 B, 10% 256..1023 B, 3% 1024..4095 B, 2% 16 KiB. Every object has
 * its first and last byte written, and both are checked before it is freed, so an allocator
 * that hands out overlapping memory fails the run instead of looking fast.
 *
 * The random choices depend only on the seed and the thread index, never on the allocator,
 * so every mode executes the same trace. Each thread owns all its state; threads meet only
 * at the start barrier. One machine-readable line per run on stdout (STYLE.md section 8).
 */
#include "mem/base.h"

#include <dlfcn.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/subregion.h"

#define TRACE_CONNS        64
#define TRACE_STREAMS      10
#define TRACE_SLOTS        (TRACE_CONNS * TRACE_STREAMS)
#define TRACE_OBJS_MIN     30
#define TRACE_OBJS_MAX     59
#define TRACE_STREAM_LEN   256
#define TRACE_BIG_LEN      16384
#define TRACE_PTRS_MAX     (TRACE_OBJS_MAX + 1) /* the stream struct is ptrs[0] */
#define TRACE_THREADS_MAX  64
#define TRACE_WARMUP_STEPS 20000
#define TRACE_BLOCKS       10 /* the timed steps run in this many separately timed blocks */

/* The floor keeps, per size bucket, a pool of fixed cells and a LIFO stack of the free ones:
 * allocation pops a pointer, free pushes it back, no metadata, no size classes, no
 * thread-safety. That is the least any allocator can do, and its LIFO reuse hands a new
 * stream the lines the previous one just had checked, as the real allocators' caches do.
 * Two simpler floors were tried and measured worse than mimalloc, so they measured cache
 * misses rather than the harness: a bump pointer per slot (new streams landed on cold lines)
 * and a fixed cell per (slot, object index) (every cell got touched: 345 MB RSS).
 * The pools are reserved with MAP_NORESERVE; only the lines written count in RSS. The 64 B
 * skew on the two big cells keeps their first bytes off a single cache set. */
#define TRACE_BUCKETS 5
static const size_t trace_cell_len[TRACE_BUCKETS] = {64, 256, 1024, 4096 + 64, 16384 + 64};
#define TRACE_CELLS ((size_t)TRACE_SLOTS * TRACE_PTRS_MAX)

MEM_STATIC_ASSERT(TRACE_SLOTS == 640, "64 connections x 10 streams");

typedef enum trace_mode_e {
    TRACE_FLOOR,
    TRACE_TCACHE,
    TRACE_SUBARENA,
    TRACE_LIBC,
} trace_mode_t;

typedef struct trace_slot_s {
    uint32_t cnt;         /* live objects in ptrs, the stream struct included */
    uint32_t tag;         /* seeds the check bytes of this stream's objects */
    mem_subregion_t *sub; /* owns (weir-subarena): this stream's sub-arena */
    uint32_t lens[TRACE_PTRS_MAX];
    uint8_t buckets[TRACE_PTRS_MAX]; /* floor only: which pool each object came from */
    void *ptrs[TRACE_PTRS_MAX];      /* owns (tcache, libc); subregion (subarena); pool (floor) */
} trace_slot_t;

typedef struct trace_thread_s {
    pthread_t tid;
    unsigned idx;
    trace_mode_t mode;
    uint64_t rng;
    uint64_t steps;
    uint64_t pairs;         /* allocations made during the timed steps */
    double blk_median_ns;   /* median over the blocks of CPU ns per pair */
    double blk_min_ns;      /* the fastest block\'s CPU ns per pair */
    uint64_t cpu_ns;        /* thread CPU time of the timed steps */
    uint64_t wall_start_ns; /* CLOCK_MONOTONIC around the timed steps */
    uint64_t wall_end_ns;
    uint64_t minflt;     /* minor page faults during the timed steps */
    uint64_t sys_ns;     /* kernel CPU time during the timed steps (part of cpu_ns) */
    uint64_t arena_held; /* weir-subarena, after the timed steps: bytes the sub-arenas hold */
    uint64_t arena_used; /* ... and bytes the trace asked for, rounded to 16 */
    uint64_t check;      /* folds the check bytes so no work can be elided */
    int err;             /* 0, or a negative errno that ended the run */
    trace_slot_t *slots; /* owns: TRACE_SLOTS entries */
    mem_region_t *regions[TRACE_CONNS]; /* owns (weir-subarena): one per connection */
    char *pool[TRACE_BUCKETS];          /* owns (floor): TRACE_CELLS cells per bucket, reserved */
    void **free_cells[TRACE_BUCKETS];   /* owns (floor): LIFO stack of free cells per bucket */
    size_t free_cnt[TRACE_BUCKETS];
} trace_thread_t;

static pthread_barrier_t g_start;
static pthread_barrier_t g_stop;

/* wyrand: one multiply per draw, good enough for picking sizes and slots. */
MEM_INLINE uint64_t rng_next(uint64_t *s)
{
    *s += 0xa0761d6478bd642fULL;
    __uint128_t t = (__uint128_t)*s * (*s ^ 0xe7037ed1a0b428dbULL);
    return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

/* Maps 32 random bits onto [0, n) with a multiply instead of a division. */
MEM_INLINE uint32_t rng_range(uint32_t r, uint32_t n)
{
    return (uint32_t)(((uint64_t)r * n) >> 32);
}

/* The object size law of the trace; one 64-bit draw per object. `bucket` says which of the
 * five ranges was drawn (only the floor uses it). */
MEM_INLINE uint32_t trace_obj_len(uint64_t r, uint32_t *bucket)
{
    uint32_t pct = rng_range((uint32_t)r, 100);
    uint32_t hi = (uint32_t)(r >> 32);
    if (pct < 60) {
        *bucket = 0;
        return 16 + rng_range(hi, 48);
    }
    if (pct < 85) {
        *bucket = 1;
        return 64 + rng_range(hi, 192);
    }
    if (pct < 95) {
        *bucket = 2;
        return 256 + rng_range(hi, 768);
    }
    if (pct < 98) {
        *bucket = 3;
        return 1024 + rng_range(hi, 3072);
    }
    *bucket = 4;
    return TRACE_BIG_LEN;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts `v` in place and returns its median. */
static double median(double *v, unsigned n)
{
    MEM_ASSERT(n > 0);
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static uint64_t clock_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Allocates one object for slot `sl`. The mode is a compile-time constant at every call site
 * (the step loops below are specialised per mode), so the switch costs nothing. */
MEM_INLINE void *trace_alloc(trace_thread_t *t, trace_mode_t mode, size_t slot_idx,
                             trace_slot_t *sl, uint32_t i, uint32_t bucket, size_t len)
{
    switch (mode) {
    case TRACE_FLOOR:
        (void)slot_idx;
        MEM_ASSERT_HOT(len <= trace_cell_len[bucket]);
        MEM_ASSERT_HOT(t->free_cnt[bucket] > 0);
        sl->buckets[i] = (uint8_t)bucket;
        return t->free_cells[bucket][--t->free_cnt[bucket]];
    case TRACE_TCACHE:
        return mem_malloc(len);
    case TRACE_SUBARENA:
        return mem_subregion_alloc(sl->sub, len);
    case TRACE_LIBC:
        return malloc(len);
    }
    return NULL;
}

/* Checks the bytes written at allocation time; a mismatch means two live objects overlapped. */
MEM_INLINE int trace_check(trace_thread_t *t, const trace_slot_t *sl, uint32_t i)
{
    const unsigned char *p = sl->ptrs[i];
    unsigned char first = p[0];
    unsigned char last = p[sl->lens[i] - 1];
    t->check += first + last;
    if (MEM_UNLIKELY(first != (unsigned char)(sl->tag + i) ||
                     last != (unsigned char)(sl->tag ^ (i * 7u))))
        return -EFAULT;
    return 0;
}

/* Ends the stream in `sl`: checks then frees its objects. */
MEM_INLINE int trace_end(trace_thread_t *t, trace_mode_t mode, trace_slot_t *sl)
{
    for (uint32_t i = 0; i < sl->cnt; i++) {
        if (MEM_UNLIKELY(trace_check(t, sl, i) != 0))
            return -EFAULT;
        if (mode == TRACE_TCACHE)
            mem_free(sl->ptrs[i]);
        else if (mode == TRACE_LIBC)
            free(sl->ptrs[i]);
        else if (mode == TRACE_FLOOR)
            t->free_cells[sl->buckets[i]][t->free_cnt[sl->buckets[i]]++] = sl->ptrs[i];
    }
    if (mode == TRACE_SUBARENA) {
        mem_subregion_free(sl->sub);
        /* sl->sub freed */
        sl->sub = NULL;
    }
    sl->cnt = 0;
    return 0;
}

/* Starts a new stream in slot `slot_idx`: the stream struct, then 30..59 objects. */
MEM_INLINE int trace_begin(trace_thread_t *t, trace_mode_t mode, size_t slot_idx, trace_slot_t *sl,
                           uint32_t objs)
{
    MEM_ASSERT_HOT(sl->cnt == 0);
    MEM_ASSERT_HOT(objs <= TRACE_OBJS_MAX);
    if (mode == TRACE_SUBARENA) {
        sl->sub = mem_subregion_new(t->regions[slot_idx / TRACE_STREAMS], 0);
        if (MEM_UNLIKELY(sl->sub == NULL))
            return -ENOMEM;
    }
    sl->tag = (uint32_t)t->rng;
    for (uint32_t i = 0; i <= objs; i++) {
        uint32_t bucket = 1;
        uint32_t len = i == 0 ? TRACE_STREAM_LEN : trace_obj_len(rng_next(&t->rng), &bucket);
        unsigned char *p = trace_alloc(t, mode, slot_idx, sl, i, bucket, len);
        if (MEM_UNLIKELY(p == NULL))
            return -ENOMEM;
        p[0] = (unsigned char)(sl->tag + i);
        p[len - 1] = (unsigned char)(sl->tag ^ (i * 7u));
        sl->ptrs[i] = p;
        sl->lens[i] = len;
        sl->cnt = i + 1;
    }
    return 0;
}

/* Runs `steps` steps; returns the number of allocations made or a negative errno. */
MEM_INLINE int64_t trace_steps(trace_thread_t *t, trace_mode_t mode, uint64_t steps)
{
    int64_t pairs = 0;
    for (uint64_t s = 0; s < steps; s++) {
        uint64_t r = rng_next(&t->rng);
        size_t slot_idx = rng_range((uint32_t)r, TRACE_SLOTS);
        uint32_t objs = TRACE_OBJS_MIN + rng_range((uint32_t)(r >> 32), 30);
        trace_slot_t *sl = &t->slots[slot_idx];
        int rc = trace_end(t, mode, sl);
        if (rc == 0)
            rc = trace_begin(t, mode, slot_idx, sl, objs);
        if (MEM_UNLIKELY(rc != 0))
            return rc;
        pairs += objs + 1;
    }
    return pairs;
}

/* Two out-of-line copies per mode: trace_timed_* for the measured steps and trace_warm_* for
 * the warm-up. run-alloc gives callgrind --toggle-collect=trace_timed_*, so only the measured
 * steps are counted, not set-up, warm-up or tear-down. */
#define TRACE_STEPS_FN(name, m)                                                                    \
    MEM_NOINLINE int64_t trace_timed_##name(trace_thread_t *t, uint64_t steps);                    \
    MEM_NOINLINE int64_t trace_warm_##name(trace_thread_t *t, uint64_t steps);                     \
    MEM_NOINLINE int64_t trace_timed_##name(trace_thread_t *t, uint64_t steps)                     \
    {                                                                                              \
        return trace_steps(t, m, steps);                                                           \
    }                                                                                              \
    MEM_NOINLINE int64_t trace_warm_##name(trace_thread_t *t, uint64_t steps)                      \
    {                                                                                              \
        return trace_steps(t, m, steps);                                                           \
    }
TRACE_STEPS_FN(floor, TRACE_FLOOR)
TRACE_STEPS_FN(tcache, TRACE_TCACHE)
TRACE_STEPS_FN(subarena, TRACE_SUBARENA)
TRACE_STEPS_FN(libc, TRACE_LIBC)

static int64_t trace_run(trace_thread_t *t, uint64_t steps, bool timed)
{
    switch (t->mode) {
    case TRACE_FLOOR:
        return timed ? trace_timed_floor(t, steps) : trace_warm_floor(t, steps);
    case TRACE_TCACHE:
        return timed ? trace_timed_tcache(t, steps) : trace_warm_tcache(t, steps);
    case TRACE_SUBARENA:
        return timed ? trace_timed_subarena(t, steps) : trace_warm_subarena(t, steps);
    case TRACE_LIBC:
        return timed ? trace_timed_libc(t, steps) : trace_warm_libc(t, steps);
    }
    return -EINVAL;
}

/* Fills every slot (untimed), so the timed steps start from the steady state. */
static int trace_fill(trace_thread_t *t)
{
    for (size_t i = 0; i < TRACE_SLOTS; i++) {
        uint64_t r = rng_next(&t->rng);
        uint32_t objs = TRACE_OBJS_MIN + rng_range((uint32_t)r, 30);
        int rc = 0;
        switch (t->mode) {
        case TRACE_FLOOR:
            rc = trace_begin(t, TRACE_FLOOR, i, &t->slots[i], objs);
            break;
        case TRACE_TCACHE:
            rc = trace_begin(t, TRACE_TCACHE, i, &t->slots[i], objs);
            break;
        case TRACE_SUBARENA:
            rc = trace_begin(t, TRACE_SUBARENA, i, &t->slots[i], objs);
            break;
        case TRACE_LIBC:
            rc = trace_begin(t, TRACE_LIBC, i, &t->slots[i], objs);
            break;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int trace_drain(trace_thread_t *t)
{
    int err = 0;
    for (size_t i = 0; i < TRACE_SLOTS; i++) {
        int rc = 0;
        switch (t->mode) {
        case TRACE_FLOOR:
            rc = trace_end(t, TRACE_FLOOR, &t->slots[i]);
            break;
        case TRACE_TCACHE:
            rc = trace_end(t, TRACE_TCACHE, &t->slots[i]);
            break;
        case TRACE_SUBARENA:
            rc = trace_end(t, TRACE_SUBARENA, &t->slots[i]);
            break;
        case TRACE_LIBC:
            rc = trace_end(t, TRACE_LIBC, &t->slots[i]);
            break;
        }
        if (rc != 0 && err == 0)
            err = rc;
    }
    return err;
}

static int trace_thread_setup(trace_thread_t *t)
{
    /* Harness memory comes from mmap in every mode so that it never warms or fragments the
     * allocator under test. */
    size_t slots_len = sizeof(trace_slot_t) * TRACE_SLOTS;
    void *slots = mmap(NULL, slots_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED)
        return -errno;
    t->slots = slots;
    for (size_t b = 0; t->mode == TRACE_FLOOR && b < TRACE_BUCKETS; b++) {
        void *pool = mmap(NULL, TRACE_CELLS * trace_cell_len[b], PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (pool == MAP_FAILED)
            return -errno;
        t->pool[b] = pool;
        void *cells = mmap(NULL, TRACE_CELLS * sizeof(void *), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (cells == MAP_FAILED)
            return -errno;
        t->free_cells[b] = cells;
        /* Lowest addresses on top, so the pool is used from its start. */
        for (size_t c = 0; c < TRACE_CELLS; c++)
            t->free_cells[b][c] = (char *)pool + (TRACE_CELLS - 1 - c) * trace_cell_len[b];
        t->free_cnt[b] = TRACE_CELLS;
    }
    if (t->mode == TRACE_TCACHE || t->mode == TRACE_SUBARENA) {
        int rc = mem_thread_attach(-1);
        if (rc != 0)
            return rc;
    }
    if (t->mode == TRACE_SUBARENA) {
        for (size_t c = 0; c < TRACE_CONNS; c++) {
            t->regions[c] = mem_region_new(0);
            if (t->regions[c] == NULL)
                return -ENOMEM;
        }
    }
    return 0;
}

static void trace_thread_teardown(trace_thread_t *t)
{
    for (size_t c = 0; c < TRACE_CONNS; c++) {
        mem_region_free(t->regions[c]);
        /* t->regions[c] freed */
        t->regions[c] = NULL;
    }
    if (t->mode == TRACE_TCACHE || t->mode == TRACE_SUBARENA)
        mem_thread_detach();
    for (size_t b = 0; b < TRACE_BUCKETS; b++) {
        if (t->pool[b] != NULL)
            munmap(t->pool[b], TRACE_CELLS * trace_cell_len[b]);
        if (t->free_cells[b] != NULL)
            munmap(t->free_cells[b], TRACE_CELLS * sizeof(void *));
        t->pool[b] = NULL;
        t->free_cells[b] = NULL;
    }
    if (t->slots != NULL)
        munmap(t->slots, sizeof(trace_slot_t) * TRACE_SLOTS);
    t->slots = NULL;
}

static void *trace_thread_main(void *arg)
{
    trace_thread_t *t = arg;
    int rc = trace_thread_setup(t);
    if (rc == 0)
        rc = trace_fill(t);
    if (rc == 0) {
        int64_t w = trace_run(t, TRACE_WARMUP_STEPS, false);
        rc = w < 0 ? (int)w : 0;
    }
    /* Every thread reaches both barriers even after an error, so the others never hang. */
    pthread_barrier_wait(&g_start);
    if (rc == 0) {
        struct rusage ru0, ru1;
        getrusage(RUSAGE_THREAD, &ru0);
        t->wall_start_ns = clock_ns(CLOCK_MONOTONIC);
        /* Blocks: a slow phase of a shared machine spoils a block or two, and the median
         * block ignores it; the total still covers every step. */
        int64_t pairs = 0;
        double per_blk[TRACE_BLOCKS];
        unsigned blks = 0;
        for (uint64_t done = 0; done < t->steps && pairs >= 0; blks++) {
            uint64_t n = blks == TRACE_BLOCKS - 1 ? t->steps - done
                                                  : MEM_MAX(t->steps / TRACE_BLOCKS, (uint64_t)1);
            uint64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            int64_t got = trace_run(t, n, true);
            uint64_t c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
            if (got < 0) {
                pairs = got;
                break;
            }
            MEM_ASSERT(blks < TRACE_BLOCKS);
            per_blk[blks] = (double)c1 / (double)got;
            t->cpu_ns += c1;
            pairs += got;
            done += n;
        }
        MEM_ASSERT(pairs < 0 || blks > 0);
        if (pairs >= 0) {
            t->blk_median_ns = median(per_blk, blks); /* sorts per_blk */
            t->blk_min_ns = per_blk[0];
        }
        t->wall_end_ns = clock_ns(CLOCK_MONOTONIC);
        getrusage(RUSAGE_THREAD, &ru1);
        t->minflt = (uint64_t)(ru1.ru_minflt - ru0.ru_minflt);
        t->sys_ns = (uint64_t)((ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000000LL +
                               (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1000LL);
        if (pairs < 0)
            rc = (int)pairs;
        else
            t->pairs = (uint64_t)pairs;
    }
    pthread_barrier_wait(&g_stop);
    /* How much the live sub-arenas hold for what was asked of them: chunk tails and block
     * headers show up here, and in the peak RSS. */
    for (size_t i = 0; rc == 0 && t->mode == TRACE_SUBARENA && i < TRACE_SLOTS; i++) {
        const trace_slot_t *sl = &t->slots[i];
        t->arena_held += mem_subregion_bytes(sl->sub);
        for (uint32_t k = 0; k < sl->cnt; k++)
            t->arena_used += MEM_ALIGN_UP(sl->lens[k], 16u);
    }
    if (t->slots != NULL) {
        int drc = trace_drain(t);
        if (rc == 0)
            rc = drc;
    }
    trace_thread_teardown(t);
    t->err = rc;
    return NULL;
}

/* Peak resident set in KiB: VmHWM, or ru_maxrss where /proc is unavailable. */
static long rss_peak_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
                break;
        }
        fclose(f);
    }
    if (kib < 0) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            kib = ru.ru_maxrss;
    }
    return kib;
}

/* Names the malloc the process really resolved, so a missing LD_PRELOAD cannot pass for
 * jemalloc, tcmalloc or mimalloc. */
static const char *malloc_impl(void)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL)
        return "unknown";
    if (strstr(info.dli_fname, "jemalloc") != NULL)
        return "jemalloc";
    if (strstr(info.dli_fname, "tcmalloc") != NULL)
        return "tcmalloc";
    if (strstr(info.dli_fname, "mimalloc") != NULL)
        return "mimalloc";
    if (strstr(info.dli_fname, "libc.so") != NULL)
        return "glibc";
    return "other";
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_alloc_trace --mode MODE [--threads N] [--steps N] [--seed N]\n"
            "  MODE: weir-tcache | weir-subarena | libc | floor\n"
            "  --threads  worker threads, 1..%d (default 1)\n"
            "  --steps    timed steps per thread (default 200000); each step ends one stream\n"
            "             and starts another of 31..60 allocations\n"
            "  --seed     PRNG seed (default 42); thread i uses seed + i\n"
            "  --sample-bytes  weir modes: heap sampling interval (default: weir's, 512 KiB;\n"
            "             0 = off)\n"
            "  libc mode uses the process's malloc: LD_PRELOAD jemalloc, tcmalloc or mimalloc.\n",
            TRACE_THREADS_MAX);
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mode", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'},
        {"steps", required_argument, NULL, 's'},
        {"seed", required_argument, NULL, 'r'},
        {"sample-bytes", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *mode_name = NULL;
    long long sample_bytes = -1; /* -1: weir's default heap sampling interval */
    uint64_t threads = 1, steps = 200000, seed = 42;
    int c;
    while ((c = getopt_long(argc, argv, "m:t:s:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            mode_name = optarg;
            break;
        case 't':
            if (parse_u64(optarg, 1, TRACE_THREADS_MAX, &threads) != 0) {
                fprintf(stderr, "alloc_trace: --threads wants 1..%d, got '%s'\n", TRACE_THREADS_MAX,
                        optarg);
                return 2;
            }
            break;
        case 's':
            if (parse_u64(optarg, 1, UINT64_MAX / 64, &steps) != 0) {
                fprintf(stderr, "alloc_trace: --steps wants a positive integer, got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'r':
            if (parse_u64(optarg, 0, UINT64_MAX, &seed) != 0) {
                fprintf(stderr, "alloc_trace: --seed wants an integer, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'S': {
            uint64_t v = 0;
            if (parse_u64(optarg, 0, (uint64_t)1 << 40, &v) != 0) {
                fprintf(stderr, "alloc_trace: --sample-bytes wants 0..2^40, got '%s'\n", optarg);
                return 2;
            }
            sample_bytes = (long long)v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || mode_name == NULL) {
        fprintf(stderr, "alloc_trace: %s\n",
                mode_name == NULL ? "--mode is required" : "unexpected argument");
        usage(stderr);
        return 2;
    }
    trace_mode_t mode;
    if (strcmp(mode_name, "floor") == 0) {
        mode = TRACE_FLOOR;
    } else if (strcmp(mode_name, "weir-tcache") == 0) {
        mode = TRACE_TCACHE;
    } else if (strcmp(mode_name, "weir-subarena") == 0) {
        mode = TRACE_SUBARENA;
    } else if (strcmp(mode_name, "libc") == 0) {
        mode = TRACE_LIBC;
    } else {
        fprintf(stderr, "alloc_trace: unknown mode '%s'\n", mode_name);
        usage(stderr);
        return 2;
    }
    const char *impl = mode == TRACE_LIBC ? malloc_impl() : mode == TRACE_FLOOR ? "none" : "weir";

    if (mode == TRACE_TCACHE || mode == TRACE_SUBARENA) {
        mem_config_t cfg;
        mem_config_default(&cfg);
        if (sample_bytes >= 0)
            cfg.sample_bytes = (size_t)sample_bytes;
        sample_bytes = (long long)cfg.sample_bytes;
        int rc = mem_init(&cfg);
        if (rc != 0) {
            fprintf(stderr, "alloc_trace: mem_init failed: %s\n", strerror(-rc));
            return 1;
        }
    }

    static trace_thread_t ts[TRACE_THREADS_MAX];
    pthread_barrier_init(&g_start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&g_stop, NULL, (unsigned)threads + 1);
    for (unsigned i = 0; i < threads; i++) {
        ts[i].idx = i;
        ts[i].mode = mode;
        ts[i].rng = seed + i;
        ts[i].steps = steps;
        int rc = pthread_create(&ts[i].tid, NULL, trace_thread_main, &ts[i]);
        if (rc != 0) {
            /* The barriers count every thread: without all of them nobody could proceed. */
            fprintf(stderr, "alloc_trace: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    pthread_barrier_wait(&g_start);
    pthread_barrier_wait(&g_stop);

    /* Wall time spans the first thread's start to the last thread's end, as the threads saw
     * it; main's own wake-ups from the barriers may be late on a busy machine. */
    uint64_t pairs = 0, cpu_ns = 0, check = 0, w0 = UINT64_MAX, w1 = 0, minflt = 0, sys_ns = 0;
    double blk_ns = 0, blk_min_ns = 0;
    uint64_t arena_held = 0, arena_used = 0;
    int err = 0;
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(ts[i].tid, NULL);
        pairs += ts[i].pairs;
        cpu_ns += ts[i].cpu_ns;
        minflt += ts[i].minflt;
        blk_ns += ts[i].blk_median_ns / (double)threads;
        blk_min_ns += ts[i].blk_min_ns / (double)threads;
        arena_held += ts[i].arena_held;
        arena_used += ts[i].arena_used;
        sys_ns += ts[i].sys_ns;
        check += ts[i].check;
        w0 = MEM_MIN(w0, ts[i].wall_start_ns);
        w1 = MEM_MAX(w1, ts[i].wall_end_ns);
        if (ts[i].err != 0 && err == 0)
            err = ts[i].err;
    }
    if (err != 0) {
        fprintf(stderr, "alloc_trace: mode %s failed: %s\n", mode_name,
                err == -EFAULT ? "an object's check bytes changed (overlapping allocations)"
                               : strerror(-err));
        return 1;
    }
    long rss = rss_peak_kib();
    if (mode == TRACE_TCACHE || mode == TRACE_SUBARENA) {
        size_t live = mem_fini();
        if (live != 0) {
            fprintf(stderr, "alloc_trace: mem_fini reports %zu bytes still live\n", live);
            return 1;
        }
    }
    MEM_ASSERT(pairs > 0);
    MEM_ASSERT(w1 >= w0);
    uint64_t wall_ns = w1 - w0;
    printf(
        "alloc_trace mode=%s impl=%s threads=%u steps=%llu pairs=%llu ns_per_pair=%.3f "
        "wall_ns_per_pair=%.3f rss_peak_kib=%ld check=%llu sample_bytes=%lld sys_ns_per_pair=%.3f "
        "minflt_per_kpair=%.3f blk_ns_per_pair=%.3f blk_min_ns_per_pair=%.3f arena_held_kib=%llu "
        "arena_used_kib=%llu\n",
        mode_name, impl, (unsigned)threads, (unsigned long long)steps, (unsigned long long)pairs,
        (double)cpu_ns / (double)pairs, (double)wall_ns / (double)pairs, rss,
        (unsigned long long)check,
        mode == TRACE_TCACHE || mode == TRACE_SUBARENA ? sample_bytes : -1LL,
        (double)sys_ns / (double)pairs, (double)minflt * 1000.0 / (double)pairs, blk_ns, blk_min_ns,
        (unsigned long long)(arena_held / 1024), (unsigned long long)(arena_used / 1024));
    return 0;
}
