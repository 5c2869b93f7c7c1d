/*
 * mem/malloc.h: the malloc-compatible facade over the thread caches.
 *
 * These back nghttp2_mem, uv_replace_allocator and CRYPTO_set_mem_functions, and every
 * allocation weir's own code makes outside regions. Objects up to the largest size class come
 * from the calling thread's cache; larger ones get their own mapping. Any thread may free any
 * pointer; a free on another thread or node goes home through the depots.
 * All return NULL on failure (budget exhausted, mapping failed) and never abort; a request
 * the budget refuses is retried once after the cached free memory went back to the OS.
 */
#ifndef MEM_MALLOC_H
#define MEM_MALLOC_H

#include "mem/base.h"

/* malloc(3) semantics; mem_malloc(0) returns a unique pointer. Thread: any. Alloc: tcache. */
void *mem_malloc(size_t len) MEM_MALLOC_ATTR;
/* calloc(3) semantics, overflow-checked; memory known to be zero is not cleared again. */
void *mem_calloc(size_t cnt, size_t len) MEM_MALLOC_ATTR;
/* realloc(3) semantics: realloc(NULL, n) = malloc(n); realloc(p, 0) frees and returns NULL. */
void *mem_realloc(void *p, size_t len);
/* aligned_alloc/posix_memalign semantics; `align` is a power of two. */
void *mem_aligned_alloc(size_t align, size_t len) MEM_MALLOC_ATTR;
/* free(3) semantics; NULL is ignored. In debug builds a double free or a pointer mem/ did not
 * hand out aborts with a message. Thread: any. */
void mem_free(void *p);
/* The usable size of `p` (>= the requested size). Getter: never allocates. */
size_t mem_usable_size(const void *p);

/* The exempt entry points: malloc/calloc/realloc/free semantics for callers that cannot
 * survive NULL (libuv 1.44 aborts when its allocator fails: pass these four to
 * uv_replace_allocator). Their charges pass the budget's limit instead of failing (each is
 * counted in mem_stats_t.exempt_over) and no fault is injected, so they return NULL only
 * when the kernel refuses a mapping. Their bytes are counted in mem_stats_t.exempt_live:
 * free an exempt object with mem_free_exempt (mem_free would leave it counted).
 * Thread: any. Alloc: tcache. */
void *mem_malloc_exempt(size_t len) MEM_MALLOC_ATTR;
void *mem_calloc_exempt(size_t cnt, size_t len) MEM_MALLOC_ATTR;
void *mem_realloc_exempt(void *p, size_t len);
void mem_free_exempt(void *p);

/* Convenience: copies `len` bytes of `s` and NUL-terminates. Alloc: tcache. */
char *mem_strndup(const char *s, size_t len) MEM_MALLOC_ATTR;
char *mem_strdup(const char *s) MEM_MALLOC_ATTR;

/* The fast paths inline (MEM_DEBUG=0, where mem_malloc and mem_free check nothing more): a
 * call `mem_malloc(n)` or `mem_free(p)` is the thread cache's pop or push in the caller, with
 * one unlikely branch to the cold slow path in mem/tcache.c (refill, spill, remote free,
 * large object, heap sample, first use). The out-of-line functions above remain for function
 * pointers (nghttp2_mem, libuv and OpenSSL call their own wrappers) and for debug builds,
 * whose entry points check every pointer. Inline, a call saves the call, the return and the
 * argument moves: about 8 of the 30 instructions of an allocation and of the 23 of a free, 44
 * times per proxied request. Defining the functions (mem/malloc.c) spells the names in
 * parentheses, which no macro expands.
 * mem_malloc is a statement expression rather than an inline function so that the call to the
 * slow path, whose return address is a heap sample's first frame, is the caller's own line
 * in the debug information: a symbolizer that expands inlined frames (google-pprof, addr2line
 * -i) names the caller there, not the allocator's inline function. The slow path is allocator
 * text (MEM_ALLOC_TEXT), so the recorded stack starts at the caller as before. */
#if MEM_DEBUG == 0
#include "mem/tcache.h"

#define mem_malloc(len)                                                                            \
    __extension__({                                                                                \
        size_t mem_len_ = (len);                                                                   \
        void *mem_p_ = mem__tcache_pop(mem__tc_self, mem_len_);                                    \
        MEM_LIKELY(mem_p_ != NULL) ? mem_p_ : mem__tcache_alloc_slow(mem__tc_self, mem_len_);      \
    })

MEM_INLINE void mem__free_inline(void *p)
{
    if (MEM_UNLIKELY(p == NULL))
        return;
    mem__tcache_free(mem__tc_self, p);
}

#define mem_free(p) mem__free_inline(p)
#endif

#endif /* MEM_MALLOC_H */
