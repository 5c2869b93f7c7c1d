/*
 * mem/base.c: the out-of-line part of mem/base.h (assert failure reporting).
 */
#include "mem/base.h"

#include <unistd.h>
#include <string.h>

void mem_assert_fail(const char *cond, const char *file, int line)
{
    /* No stdio buffering and no allocation: the heap may be the thing that is broken. */
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "weir: assertion failed: %s (%s:%d)\n", cond, file, line);
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, (size_t)MEM_MIN(n, (int)sizeof(buf) - 1));
        (void)w;
    }
    abort();
}
