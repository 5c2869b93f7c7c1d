/*
 * bench/mem_micro.c: microbenchmarks of mem/'s fast paths, with glibc's malloc measured in the
 * same run for comparison.
 *
 *   tcache_pair     mem_malloc + mem_free of one size, hot (target <= 3 ns per pair)
 *   subarena_alloc  mem_subregion_alloc of small objects (target <= 1.5 ns per allocation);
 *                   also reported with the sub-arena's new and free amortised in
 *   depot_transfer  two threads: one allocates, the other frees, so objects travel in
 *                   batches through the depot (ns per object, wall time); the hand-off ring
 *                   alone is measured too and subtracted
 *   glibc_pair      malloc + free of the same size, hot
 *   glibc_transfer  the depot_transfer pattern on glibc's malloc
 *
 * Each figure is the best of --reps repetitions (the minimum is the least disturbed by other
 * processes on a shared machine). One machine-readable line per result (STYLE.md section 8).
 * All state is owned by main() except the transfer ring, shared by exactly two threads.
 */
#include "mem/base.h"

#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/subregion.h"

#define MICRO_RING_CAP   4096 /* power of two: the index mask */
#define MICRO_SUB_ALLOCS 1024 /* allocations per sub-arena: 48 KiB of 48 B objects */
#define MICRO_SUB_LEN    48

MEM_STATIC_ASSERT(MEM_IS_POW2(MICRO_RING_CAP), "ring index mask");

/* Keeps the compiler from proving a pointer unused (GCC deletes malloc/free pairs). */
#define MICRO_ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

typedef enum micro_alloc_e {
    MICRO_WEIR,
    MICRO_GLIBC,
    MICRO_NONE, /* the ring alone: fake pointers, no allocator */
} micro_alloc_t;

/* Single-producer single-consumer ring. Head and tail live on their own cache lines because
 * each is written by a different thread. */
typedef struct micro_ring_s {
    MEM_ALIGNED(MEM_CACHELINE) uint64_t head; /* written by the producer */
    MEM_ALIGNED(MEM_CACHELINE) uint64_t tail; /* written by the consumer */
    MEM_ALIGNED(MEM_CACHELINE) void *slots[MICRO_RING_CAP];
} micro_ring_t;

typedef struct micro_xfer_s {
    micro_ring_t *ring; /* borrows: main owns it and joins both threads before freeing it */
    micro_alloc_t alloc;
    uint64_t objs;
    size_t len;
    int err; /* -ENOMEM when an allocation failed */
} micro_xfer_t;

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Waits politely: the machine may have fewer free cores than we have threads. */
static void micro_pause(unsigned *spins)
{
    if (++*spins < 64) {
        __builtin_ia32_pause();
    } else {
        *spins = 0;
        sched_yield();
    }
}

static double bench_tcache_pair(uint64_t iters, size_t len)
{
    uint64_t t0 = clock_ns();
    for (uint64_t i = 0; i < iters; i++) {
        void *p = mem_malloc(len);
        if (MEM_UNLIKELY(p == NULL))
            return -1.0;
        MICRO_ESCAPE(p);
        mem_free(p);
    }
    return (double)(clock_ns() - t0) / (double)iters;
}

static double bench_glibc_pair(uint64_t iters, size_t len)
{
    uint64_t t0 = clock_ns();
    for (uint64_t i = 0; i < iters; i++) {
        void *p = malloc(len);
        if (MEM_UNLIKELY(p == NULL))
            return -1.0;
        MICRO_ESCAPE(p);
        free(p);
    }
    return (double)(clock_ns() - t0) / (double)iters;
}

/* Returns ns per allocation; `*amortised` gets ns per allocation with the sub-arena's new
 * and free included. */
static double bench_subarena_alloc(uint64_t iters, double *amortised)
{
    mem_region_t *r = mem_region_new(0);
    if (r == NULL)
        return -1.0;
    uint64_t batches = MEM_MAX(iters / MICRO_SUB_ALLOCS, (uint64_t)1);
    uint64_t alloc_ns = 0;
    uint64_t t0 = clock_ns();
    for (uint64_t b = 0; b < batches; b++) {
        mem_subregion_t *s = mem_subregion_new(r, 0);
        if (s == NULL)
            goto fail;
        uint64_t a0 = clock_ns();
        for (unsigned i = 0; i < MICRO_SUB_ALLOCS; i++) {
            void *p = mem_subregion_alloc(s, MICRO_SUB_LEN);
            if (MEM_UNLIKELY(p == NULL)) {
                mem_subregion_free(s);
                goto fail;
            }
            MICRO_ESCAPE(p);
        }
        alloc_ns += clock_ns() - a0;
        mem_subregion_free(s);
        /* s freed */
    }
    uint64_t total_ns = clock_ns() - t0;
    mem_region_free(r);
    *amortised = (double)total_ns / (double)(batches * MICRO_SUB_ALLOCS);
    return (double)alloc_ns / (double)(batches * MICRO_SUB_ALLOCS);
fail:
    mem_region_free(r);
    return -1.0;
}

static void *on_xfer_produce(void *arg)
{
    micro_xfer_t *x = arg;
    micro_ring_t *ring = x->ring;
    static char dummy[64];
    uint64_t tail_seen = 0;
    for (uint64_t i = 0; i < x->objs; i++) {
        void *p = dummy;
        if (x->alloc == MICRO_WEIR)
            p = mem_malloc(x->len);
        else if (x->alloc == MICRO_GLIBC)
            p = malloc(x->len);
        /* NULL is handed over too, so the consumer's count completes; freeing NULL is a
         * no-op. Only this thread writes err, and main reads it after the joins. */
        if (MEM_UNLIKELY(p == NULL))
            x->err = -ENOMEM;
        unsigned spins = 0;
        while (i - tail_seen >= MICRO_RING_CAP) {
            tail_seen = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
            if (i - tail_seen >= MICRO_RING_CAP)
                micro_pause(&spins);
        }
        ring->slots[i & (MICRO_RING_CAP - 1)] = p;
        __atomic_store_n(&ring->head, i + 1, __ATOMIC_RELEASE);
    }
    if (x->alloc == MICRO_WEIR)
        mem_thread_detach();
    return NULL;
}

static void *on_xfer_consume(void *arg)
{
    micro_xfer_t *x = arg;
    micro_ring_t *ring = x->ring;
    uint64_t head_seen = 0;
    for (uint64_t i = 0; i < x->objs; i++) {
        unsigned spins = 0;
        while (i >= head_seen) {
            head_seen = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
            if (i >= head_seen)
                micro_pause(&spins);
        }
        void *p = ring->slots[i & (MICRO_RING_CAP - 1)];
        MICRO_ESCAPE(p);
        if (x->alloc == MICRO_WEIR)
            mem_free(p);
        else if (x->alloc == MICRO_GLIBC)
            free(p);
        __atomic_store_n(&ring->tail, i + 1, __ATOMIC_RELEASE);
    }
    if (x->alloc == MICRO_WEIR)
        mem_thread_detach();
    return NULL;
}

/* Returns wall ns per object moved from the producer to the consumer. */
static double bench_transfer(micro_ring_t *ring, micro_alloc_t alloc, uint64_t objs, size_t len)
{
    micro_xfer_t x = {.ring = ring, .alloc = alloc, .objs = objs, .len = len, .err = 0};
    pthread_t prod, cons;
    memset(ring, 0, sizeof(*ring));
    uint64_t t0 = clock_ns();
    if (pthread_create(&cons, NULL, on_xfer_consume, &x) != 0)
        return -1.0;
    if (pthread_create(&prod, NULL, on_xfer_produce, &x) != 0) {
        /* The consumer would wait forever for objects: this is fatal for the run. */
        fprintf(stderr, "mem_micro: pthread_create failed\n");
        exit(1);
    }
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    uint64_t ns = clock_ns() - t0;
    if (x.err != 0)
        return -1.0;
    return (double)ns / (double)objs;
}

static double best(double a, double b)
{
    if (a < 0 || b < 0)
        return -1.0;
    return a < b ? a : b;
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

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_mem_micro [--iters N] [--xfer N] [--size BYTES] [--reps N]\n"
                 "  --iters  pairs or allocations per repetition (default 20000000)\n"
                 "  --xfer   objects moved between threads per repetition (default 4000000)\n"
                 "  --size   object size for the pair and transfer benchmarks (default 64)\n"
                 "  --reps   repetitions; the best is reported (default 3)\n"
                 "  --sample-bytes  heap sampling interval (default: weir's; 0 = off)\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"iters", required_argument, NULL, 'i'},
        {"xfer", required_argument, NULL, 'x'},
        {"size", required_argument, NULL, 's'},
        {"reps", required_argument, NULL, 'r'},
        {"sample-bytes", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t iters = 20000000, xfer = 4000000, size = 64, reps = 3, sample = UINT64_MAX;
    int c;
    while ((c = getopt_long(argc, argv, "i:x:s:r:h", opts, NULL)) != -1) {
        uint64_t *dst = c == 'i'   ? &iters
                        : c == 'x' ? &xfer
                        : c == 's' ? &size
                        : c == 'S' ? &sample
                                   : &reps;
        uint64_t max = c == 's' ? 4194304 : c == 'r' ? 100 : UINT64_MAX / 2;
        uint64_t min = c == 'S' ? 0 : 1;
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?' || parse_u64(optarg, min, max, dst) != 0) {
            fprintf(stderr, "mem_micro: bad value for an option (1..%llu expected)\n",
                    (unsigned long long)max);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "mem_micro: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    mem_config_t cfg;
    mem_config_default(&cfg);
    if (sample != UINT64_MAX)
        cfg.sample_bytes = (size_t)sample;
    int rc = mem_init(&cfg);
    if (rc != 0) {
        fprintf(stderr, "mem_micro: mem_init failed: %s\n", strerror(-rc));
        return 1;
    }
    rc = mem_thread_attach(-1);
    if (rc != 0) {
        fprintf(stderr, "mem_micro: mem_thread_attach failed: %s\n", strerror(-rc));
        return 1;
    }
    micro_ring_t *ring = mem_aligned_alloc(MEM_CACHELINE, sizeof(micro_ring_t));
    if (ring == NULL) {
        fprintf(stderr, "mem_micro: cannot allocate the transfer ring\n");
        return 1;
    }

    double tc = 1e30, gl = 1e30, sa = 1e30, sa_am = 1e30, dx = 1e30, rx = 1e30, gx = 1e30;
    for (uint64_t r = 0; r < reps; r++) {
        double am = 0;
        tc = best(tc, bench_tcache_pair(iters, size));
        gl = best(gl, bench_glibc_pair(iters, size));
        double s = bench_subarena_alloc(iters, &am);
        sa = best(sa, s);
        sa_am = best(sa_am, s < 0 ? s : am);
        dx = best(dx, bench_transfer(ring, MICRO_WEIR, xfer, size));
        rx = best(rx, bench_transfer(ring, MICRO_NONE, xfer, size));
        gx = best(gx, bench_transfer(ring, MICRO_GLIBC, xfer, size));
    }
    mem_free(ring);
    if (tc < 0 || gl < 0 || sa < 0 || dx < 0 || rx < 0 || gx < 0) {
        fprintf(stderr, "mem_micro: an allocation failed (out of memory or budget)\n");
        return 1;
    }
    printf("mem_micro bench=tcache_pair size=%llu iters=%llu ns_per_op=%.3f target_ns=3 "
           "sample_bytes=%zu\n",
           (unsigned long long)size, (unsigned long long)iters, tc, cfg.sample_bytes);
    printf("mem_micro bench=subarena_alloc size=%d iters=%llu ns_per_op=%.3f target_ns=1.5 "
           "sample_bytes=%zu\n",
           MICRO_SUB_LEN, (unsigned long long)iters, sa, cfg.sample_bytes);
    printf("mem_micro bench=subarena_alloc_amortised size=%d iters=%llu ns_per_op=%.3f "
           "sample_bytes=%zu\n",
           MICRO_SUB_LEN, (unsigned long long)iters, sa_am, cfg.sample_bytes);
    printf("mem_micro bench=depot_transfer size=%llu objs=%llu ns_per_op=%.3f "
           "ring_ns_per_op=%.3f net_ns_per_op=%.3f sample_bytes=%zu\n",
           (unsigned long long)size, (unsigned long long)xfer, dx, rx, dx - rx, cfg.sample_bytes);
    printf("mem_micro bench=glibc_pair size=%llu iters=%llu ns_per_op=%.3f\n",
           (unsigned long long)size, (unsigned long long)iters, gl);
    printf("mem_micro bench=glibc_transfer size=%llu objs=%llu ns_per_op=%.3f "
           "ring_ns_per_op=%.3f net_ns_per_op=%.3f\n",
           (unsigned long long)size, (unsigned long long)xfer, gx, rx, gx - rx);
    mem_thread_detach();
    size_t live = mem_fini();
    if (live != 0) {
        fprintf(stderr, "mem_micro: mem_fini reports %zu bytes still live\n", live);
        return 1;
    }
    return 0;
}
