/*
 * mem/clock.c: the one clock of mem/ (mem__now_ns in mem/internal.h): CLOCK_MONOTONIC in
 * nanoseconds, for decay ages, the page-reset delay and the profiler's seeds. No state.
 * Thread: any.
 */
#include "mem/base.h"
#include "mem/internal.h"

#include <time.h>

uint64_t mem__now_ns(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    MEM_ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
