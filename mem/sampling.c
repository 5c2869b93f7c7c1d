/*
 * mem/sampling.c: geometric sampling distances (mem/sampling.h): an exponential draw with
 * the configured mean from a per-thread xorshift64* generator, and a logarithm without libm.
 *
 * State: the process-wide interval (atomic) and one generator word per thread.
 */
#include "mem/base.h"
#include "mem/sampling.h"
#include "mem/internal.h"
#include "mem/unwind.h"

#include <string.h>

/* Distance between re-checks while sampling is off, so turning it on takes effect soon. */
#define SAMPLING_OFF_RECHECK_BYTES ((size_t)8 << 20)

static struct {
    size_t interval; /* atomic: mean sampling distance, 0 = off */
} sampling;

static __thread uint64_t tl_rng;

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
 * [1, 2); ln(m) = 2 atanh(s), s = (m-1)/(m+1) in [0, 1/3]. Five terms of the odd series
 * (to s^9 / 9) leave an error below 2 (1/3)^11 / 11 < 1e-6, far inside what sampling needs,
 * for one division and a dozen multiply-adds (the full series cost about 250 instructions a
 * draw, a fifth of the allocator's per-request budget in the callgrind profile). */
static double ln(double x)
{
    MEM_ASSERT(x > 0.0);
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m;
    memcpy(&m, &bits, sizeof(m));
    double s = (m - 1.0) / (m + 1.0);
    MEM_ASSERT(s >= 0.0 && s < 0.34);
    double s2 = s * s;
    double series = 1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9))));
    return 2.0 * s * series + (double)e * 0.69314718055994530942;
}

size_t mem__sampling_next(void)
{
    size_t mean = __atomic_load_n(&sampling.interval, __ATOMIC_RELAXED);
    if (mean == 0)
        return SAMPLING_OFF_RECHECK_BYTES;
    /* u uniform in (0, 1]: 53 random bits, plus one so that ln(u) is finite. */
    double u = (double)((rng_next() >> 11) + 1) * (1.0 / 9007199254740992.0);
    MEM_ASSERT(u > 0.0 && u <= 1.0);
    double d = -ln(u) * (double)mean;
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
    /* The unwinder's set-up here too: its first backtrace() (which loads libgcc_s and may
     * call libc malloc) then happens at configuration time, not inside a slow path. */
    if (sample_bytes != 0)
        (void)mem__unwind_init();
    __atomic_store_n(&sampling.interval, sample_bytes, __ATOMIC_RELAXED);
}

size_t mem_heapprof_interval(void)
{
    return __atomic_load_n(&sampling.interval, __ATOMIC_RELAXED);
}
