/*
 * tests/e2e/malloc_count.c: an LD_PRELOAD interposer that counts libc allocation calls
 * (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc) in the process.
 *
 * Built by 08-no-libc-malloc.sh with `cc -shared -fPIC`. SIGUSR1 arms it (the counter of
 * "armed" calls restarts at 0); SIGUSR2 writes "total=N armed=M" and the return addresses of
 * the first armed calls to the file named by $MALLOC_COUNT_OUT. Counting uses relaxed
 * atomics; the handlers use only async-signal-safe calls.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SITES_MAX 16

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

static unsigned long total_cnt, armed_cnt;
static int armed;
static void *sites[SITES_MAX];
static char site_threads[SITES_MAX][16]; /* thread name of each recorded call */

/* dlsym itself may allocate (calloc) before the real functions are known. */
static char boot[16384];
static size_t boot_used;
static int resolving;

static void *boot_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (boot_used + n > sizeof(boot))
        return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;
}

static int is_boot(void *p)
{
    return (char *)p >= boot && (char *)p < boot + sizeof(boot);
}

static void resolve(void)
{
    if (real_malloc || resolving)
        return;
    resolving = 1;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    resolving = 0;
}

static void count(void *site)
{
    __atomic_fetch_add(&total_cnt, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&armed, __ATOMIC_RELAXED)) {
        unsigned long k = __atomic_fetch_add(&armed_cnt, 1, __ATOMIC_RELAXED);
        if (k < SITES_MAX) {
            sites[k] = site;
            prctl(PR_GET_NAME, site_threads[k], 0, 0, 0);
        }
    }
}

void *malloc(size_t n)
{
    resolve();
    if (!real_malloc)
        return boot_alloc(n);
    count(__builtin_return_address(0));
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    resolve();
    if (!real_calloc)
        return boot_alloc(a * b); /* boot[] is zeroed static storage */
    count(__builtin_return_address(0));
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    resolve();
    count(__builtin_return_address(0));
    if (is_boot(p)) {
        void *q = real_malloc(n);
        if (q)
            memcpy(q, p, n); /* boot blocks are small and never reallocated in practice */
        return q;
    }
    return real_realloc(p, n);
}

void free(void *p)
{
    if (p == NULL || is_boot(p))
        return;
    resolve();
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    resolve();
    count(__builtin_return_address(0));
    return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    resolve();
    count(__builtin_return_address(0));
    return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
    resolve();
    count(__builtin_return_address(0));
    return real_memalign(align, n);
}

static char *fmt_ul(char *p, unsigned long v, int base)
{
    char tmp[32];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % (unsigned long)base];
        v /= (unsigned long)base;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void on_usr1(int sig)
{
    (void)sig;
    __atomic_store_n(&armed_cnt, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&armed, 1, __ATOMIC_RELAXED);
}

static void on_usr2(int sig)
{
    (void)sig;
    const char *path = getenv("MALLOC_COUNT_OUT");
    if (path == NULL)
        return;
    char buf[1024], *p = buf;
    memcpy(p, "total=", 6), p += 6;
    p = fmt_ul(p, __atomic_load_n(&total_cnt, __ATOMIC_RELAXED), 10);
    memcpy(p, " armed=", 7), p += 7;
    unsigned long a = __atomic_load_n(&armed_cnt, __ATOMIC_RELAXED);
    p = fmt_ul(p, a, 10);
    *p++ = '\n';
    for (unsigned long i = 0; i < a && i < SITES_MAX; i++) {
        memcpy(p, "site 0x", 7), p += 7;
        p = fmt_ul(p, (unsigned long)(uintptr_t)sites[i], 16);
        memcpy(p, " thread ", 8), p += 8;
        size_t tl = strnlen(site_threads[i], 15);
        memcpy(p, site_threads[i], tl), p += tl;
        *p++ = '\n';
    }
    /* Written to a temporary name and renamed, so a reader never sees half a file. */
    char tmp[512];
    size_t pl = strlen(path);
    if (pl + 5 > sizeof(tmp))
        return;
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    ssize_t w = write(fd, buf, (size_t)(p - buf));
    (void)w;
    close(fd);
    rename(tmp, path);
}

__attribute__((constructor)) static void init(void)
{
    resolve();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
}
