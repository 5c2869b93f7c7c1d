/*
 * tests/unit/admin/symbolize_test.c: in-process symbolization (proxy/admin/symbolize.c):
 * global, static and library functions by address, also from a copy of this binary stripped
 * of debug information; the /heap_dump/symbols list of the heap profile's program counters
 * (each once); and, read through those names, that mem/'s unwinder gives a sample's stack
 * from the allocation's caller (not the allocator's frames) down to main() by frame pointers.
 */
#include "mem/base.h"
#include "proxy/admin/symbolize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem/heapprof.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/region.h"
#include "mem/stats.h"
#include "tests/harness.h"
#include "tests/unit/mem/arena_check.h"

typedef struct membuf_s {
    char *buf;
    size_t len, cap;
} membuf_t;

static int write_mem(void *ud, const char *buf, size_t len)
{
    membuf_t *m = ud;
    if (m->len + len + 1 > m->cap) {
        size_t cap = MEM_MAX(m->cap * 2, m->len + len + 1);
        char *nb = realloc(m->buf, cap);
        if (nb == NULL)
            return -ENOMEM;
        m->buf = nb;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
    m->buf[m->len] = '\0';
    return 0;
}

/* The allocation site the profile must name. noinline keeps its frame in the stack. */
MEM_NOINLINE void heapprof_test_alloc_site(mem_region_t *r, int n);
MEM_NOINLINE void heapprof_test_alloc_site(mem_region_t *r, int n)
{
    for (int i = 0; i < n; i++) {
        void *p = mem_region_alloc(r, 1000);
        if (p)
            memset(p, 0, 1000);
    }
    __asm__ volatile("" ::: "memory"); /* no tail call */
}

/* A facade allocation site, for the same check on mem_malloc's path. */
MEM_NOINLINE void heapprof_test_malloc_site(void **out, int n);
MEM_NOINLINE void heapprof_test_malloc_site(void **out, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = mem_malloc(200);
    __asm__ volatile("" ::: "memory"); /* no tail call */
}

/* weir's own call chains are unwound by their frame pointers (mem/unwind.h): the walk stops
 * after the first frame outside the executable, which is libc's caller of main(), so _start
 * (which the DWARF unwinder reaches) is not in the stack, while main() is. */
TEST(frame_pointer_walk)
{
    begin();
    size_t saved = mem_heapprof_interval();
    if (mem_heapprof_samples_live() != 0) {
        fprintf(stderr, "SKIP frame_pointer_walk: samples from earlier tests are live\n");
        end_clean();
        return;
    }
    mem_heapprof_set_interval(4096);
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    heapprof_test_alloc_site(r, 100);
    CHECK(mem_heapprof_samples_live() > 0);
    membuf_t m = {0};
    CHECK_OK(px_symbolize_dump(write_mem, &m));
    REQUIRE(m.buf != NULL);
    CHECK(strstr(m.buf, " heapprof_test_alloc_site\n") != NULL);
    CHECK(strstr(m.buf, " main\n") != NULL);
    CHECK(strstr(m.buf, " _start\n") == NULL);
    fprintf(stderr, "symbols (frame-pointer walk):\n%.1500s\n", m.buf);
    free(m.buf);
    mem_region_free(r);
    /* Through the facade: the stack starts at the caller of mem_malloc, whatever the compiler
     * inlined or tail-called between mem_malloc and the recorder. */
    static void *objs[400];
    heapprof_test_malloc_site(objs, 400);
    CHECK(mem_heapprof_samples_live() > 0);
    m = (membuf_t){0};
    CHECK_OK(px_symbolize_dump(write_mem, &m));
    REQUIRE(m.buf != NULL);
    CHECK(strstr(m.buf, " heapprof_test_malloc_site\n") != NULL);
    CHECK(strstr(m.buf, " mem_malloc\n") == NULL);
    CHECK(strstr(m.buf, " mem__tcache_alloc_slow\n") == NULL);
    CHECK(strstr(m.buf, " main\n") != NULL);
    fprintf(stderr, "symbols (facade):\n%.1500s\n", m.buf);
    free(m.buf);
    for (int i = 0; i < 400; i++)
        mem_free(objs[i]);
    mem_heapprof_set_interval(saved);
    end_clean();
}

static int static_function_for_symbols(int x)
{
    return x * 3 + 1;
}

TEST(symbolize_in_process)
{
    begin();
    char name[256];
    CHECK_OK(px_symbolize_pc((const void *)heapprof_test_alloc_site, name, sizeof(name)));
    CHECK_STR(name, "heapprof_test_alloc_site");
    /* A static function is in .symtab only: dladdr alone could not name it. */
    int (*volatile fp)(int) = static_function_for_symbols;
    CHECK_EQ(fp(1), 4);
    CHECK_OK(px_symbolize_pc((const void *)fp, name, sizeof(name)));
    CHECK_STR(name, "static_function_for_symbols");
    /* Inside a function, not only at its entry. */
    CHECK_OK(px_symbolize_pc((const char *)mem_region_new + 5, name, sizeof(name)));
    CHECK_STR(name, "mem_region_new");
    /* A shared library (libc) through its own symbol tables or dladdr. */
    CHECK_OK(px_symbolize_pc((const void *)getpid, name, sizeof(name)));
    CHECK(strstr(name, "getpid") != NULL);
    int data = 0;
    CHECK(px_symbolize_pc(&data, name, sizeof(name)) < 0);

    /* The symbolz-style dump lists the PCs of live samples with their names. */
    size_t saved = mem_heapprof_interval();
    mem_heapprof_set_interval(4096);
    mem_region_t *r = mem_region_new(0);
    REQUIRE(r != NULL);
    heapprof_test_alloc_site(r, 100);
    membuf_t m = {0};
    CHECK_OK(px_symbolize_dump(write_mem, &m));
    REQUIRE(m.buf != NULL);
    CHECK(strncmp(m.buf, "0x", 2) == 0);
    CHECK(strstr(m.buf, " heapprof_test_alloc_site\n") != NULL);
    CHECK(strstr(m.buf, " mem__bump_alloc_slow\n") == NULL); /* the allocator's frames: dropped */
    CHECK(strstr(m.buf, " main\n") != NULL);
    fprintf(stderr, "symbols:\n%.2000s\n", m.buf);
    /* Each address once. */
    size_t lines = 0, dups = 0;
    for (char *l = m.buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        lines++;
        char *nl = strchr(l, '\n');
        size_t alen = (size_t)(strchr(l, ' ') - l);
        for (char *k = nl ? nl + 1 : NULL; k && *k; k = strchr(k, '\n'), k = k ? k + 1 : NULL)
            dups += strncmp(k, l, alen + 1) == 0;
    }
    CHECK(lines >= 3);
    CHECK_EQ(dups, 0);
    free(m.buf);
    mem_region_free(r);
    mem_heapprof_set_interval(saved);
    end_clean();
}

/* Re-runs this test binary, stripped of debug information, in --symbolize-self mode: the
 * in-process symbolizer must still name a static and a global function from .symtab. */
TEST(symbolize_stripped_copy)
{
    begin();
    if (access("/usr/bin/strip", X_OK) != 0) {
        fprintf(stderr, "SKIP stripped copy: /usr/bin/strip not installed (binutils)\n");
        return;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    REQUIRE(n > 0);
    exe[n] = '\0';
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char copy[4200], cmd[9000];
    snprintf(copy, sizeof(copy), "%s/weir-heapprof-stripped-%d", tmp, (int)getpid());
    snprintf(cmd, sizeof(cmd), "/usr/bin/strip -g -o '%s' '%s' && '%s' --symbolize-self", copy, exe,
             copy);
    FILE *f = popen(cmd, "r");
    REQUIRE(f != NULL);
    char out[4096];
    size_t len = fread(out, 1, sizeof(out) - 1, f);
    out[len] = '\0';
    CHECK_EQ(pclose(f), 0);
    CHECK(strstr(out, "global heapprof_test_alloc_site\n") != NULL);
    CHECK(strstr(out, "static static_function_for_symbols\n") != NULL);
    if (strstr(out, "static static_function_for_symbols\n") == NULL)
        fprintf(stderr, "stripped copy said: %s\n", out);
    unlink(copy);
    end_clean();
}

/* --symbolize-self: prints what the in-process symbolizer says about two of our functions. */
static int symbolize_self(void)
{
    char a[256] = "", b[256] = "";
    int ra = px_symbolize_pc((const void *)heapprof_test_alloc_site, a, sizeof(a));
    int (*volatile fp)(int) = static_function_for_symbols;
    int rb = px_symbolize_pc((const void *)fp, b, sizeof(b));
    printf("global %s\nstatic %s\n", ra == 0 ? a : "??", rb == 0 ? b : "??");
    return ra == 0 && rb == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--symbolize-self") == 0)
        return symbolize_self();
    mem_config_t cfg;
    mem_config_default(&cfg);
    int rc = mem_init(&cfg);
    if (rc != 0) {
        fprintf(stderr, "mem_init: %d\n", rc);
        return 1;
    }
    RUN(symbolize_in_process);
    RUN(frame_pointer_walk);
    RUN(symbolize_stripped_copy);
    return TEST_SUMMARY();
}
