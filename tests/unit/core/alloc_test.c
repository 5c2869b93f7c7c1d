/*
 * tests/unit/core/alloc_test.c: the library allocator hooks (proxy/core/alloc.c). With the
 * budget full, libuv's allocations still succeed (libuv 1.44 aborts when its allocator
 * returns NULL), are counted as exempt, and are freed back; nghttp2's and OpenSSL's still
 * fail at the limit, cleanly.
 */
#include "mem/base.h"

#include <string.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "proxy/core/alloc.h"
#include "tests/harness.h"

static mem_stats_t snap(void)
{
    static mem_stats_t st;
    mem_thread_flush();
    CHECK_OK(mem_stats_snapshot(&st));
    return st;
}

/* Allocates 64 KiB blocks until the budget refuses one; returns the list. */
static void **fill(size_t *cnt)
{
    static void *blocks[4096];
    size_t n = 0;
    while (n < MEM_ARRAY_LEN(blocks) && (blocks[n] = mem_malloc(65536)) != NULL)
        n++;
    *cnt = n;
    return blocks;
}

TEST(libuv_passes_a_full_budget)
{
    mem_budget_set_limit(mem_budget_committed() + (8u << 20));
    size_t n = 0;
    void **blocks = fill(&n);
    CHECK(n > 0 && n < 4096);
    uint64_t over0 = snap().exempt_over, refused0 = snap().budget_refused;
    CHECK(refused0 > 0);
    /* The budget is full: a plain allocation fails ... */
    CHECK(mem_malloc(65536) == NULL);
    /* ... and libuv's do not. uv_interface_addresses allocates through uv__malloc. */
    uv_interface_address_t *ifs = NULL;
    int cnt = 0;
    CHECK_EQ(uv_interface_addresses(&ifs, &cnt), 0);
    CHECK(cnt > 0);
    /* A loop allocates its watcher array (and more) through libuv's allocator too. */
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);
    char big[8192];
    size_t big_len = sizeof(big);
    CHECK_EQ(uv_os_homedir(big, &big_len), 0);
    mem_stats_t st = snap();
    CHECK(st.exempt_live > 0);
    CHECK(st.exempt_over > over0);
    /* nghttp2 and OpenSSL stay inside the budget: they fail cleanly. */
    nghttp2_mem *ng = px_alloc_nghttp2_mem();
    CHECK(ng->malloc(65536, ng->mem_user_data) == NULL);
    CHECK(OPENSSL_malloc(65536) == NULL);
    uv_free_interface_addresses(ifs, cnt);
    CHECK_EQ(uv_loop_close(&loop), 0);
    for (size_t i = 0; i < n; i++)
        mem_free(blocks[i]);
    mem_budget_set_limit(0);
    st = snap();
    CHECK_EQ(st.exempt_live, 0);
}

int main(void)
{
    /* As main() does: mem/ first, then the hooks, before the libraries allocate. */
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0 || px_alloc_install() != 0)
        return 1;
    uint64_t live0 = snap().live;
    RUN(libuv_passes_a_full_budget);
    if (snap().live != live0)
        th_tests_failed++;
    return TEST_SUMMARY();
}
