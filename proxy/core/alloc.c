/*
 * proxy/core/alloc.c: allocator hook-up for libuv, nghttp2 and OpenSSL (see alloc.h).
 *
 * Everything here is a thin adapter: the allocator is mem/'s malloc facade, which serves the
 * calling thread from its thread cache (libuv through its exempt entry points, which never
 * fail at the budget). No state besides the static nghttp2_mem table. The allocating hooks
 * are MEM_LIB_HOOK, so a heap sample they take is unwound through the library's frames.
 */
#include "proxy/core/alloc.h"
#include "mem/base.h"

#include <openssl/crypto.h>
#include <uv.h>

#include "mem/malloc.h"

MEM_LIB_HOOK static void *on_ng_malloc(size_t size, void *ud)
{
    (void)ud;
    return mem_malloc(size);
}

static void on_ng_free(void *ptr, void *ud)
{
    (void)ud;
    mem_free(ptr);
}

MEM_LIB_HOOK static void *on_ng_calloc(size_t nmemb, size_t size, void *ud)
{
    (void)ud;
    return mem_calloc(nmemb, size);
}

MEM_LIB_HOOK static void *on_ng_realloc(void *ptr, size_t size, void *ud)
{
    (void)ud;
    return mem_realloc(ptr, size);
}

static nghttp2_mem ng_mem = {
    .mem_user_data = NULL,
    .malloc = on_ng_malloc,
    .free = on_ng_free,
    .calloc = on_ng_calloc,
    .realloc = on_ng_realloc,
};

MEM_LIB_HOOK static void *on_ssl_malloc(size_t num, const char *file, int line)
{
    (void)file;
    (void)line;
    return mem_malloc(num);
}

MEM_LIB_HOOK static void *on_ssl_realloc(void *p, size_t num, const char *file, int line)
{
    (void)file;
    (void)line;
    return mem_realloc(p, num);
}

static void on_ssl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    mem_free(p);
}

int px_alloc_install(void)
{
    /* OpenSSL refuses a new table once it has allocated anything: that is the "too late"
     * case, which would mix two allocators on one pointer. */
    if (!CRYPTO_set_mem_functions(on_ssl_malloc, on_ssl_realloc, on_ssl_free))
        return -EALREADY;
    /* libuv 1.44 aborts when its allocator returns NULL (its watcher array grows past 32 KiB
     * at about 4,000 descriptors), so its allocations pass the budget's limit instead of
     * failing; they are counted apart (mem_stats_t.exempt_live, exempt_over) and shown in
     * /memory. What libuv holds is bounded by the connections the budget lets in. */
    if (uv_replace_allocator(mem_malloc_exempt, mem_realloc_exempt, mem_calloc_exempt,
                             mem_free_exempt) != 0)
        return -EINVAL;
    MEM_ASSERT(ng_mem.malloc == on_ng_malloc);
    return 0;
}

nghttp2_mem *px_alloc_nghttp2_mem(void)
{
    MEM_ASSERT(ng_mem.free == on_ng_free);
    return &ng_mem;
}
