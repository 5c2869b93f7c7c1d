/*
 * mem/base.h: attributes, asserts and error helpers shared by every weir file.
 *
 * Included first everywhere (../shared/STYLE.md section 1). No state, no allocation.
 * MEM_ASSERT is always on; MEM_ASSERT_HOT needs MEM_DEBUG>=1; MEM_ASSERT_SLOW needs MEM_DEBUG>=2.
 */
#ifndef MEM_BASE_H
#define MEM_BASE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef MEM_DEBUG
#define MEM_DEBUG 0
#endif

#define MEM_LIKELY(x)   __builtin_expect(!!(x), 1)
#define MEM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MEM_NOINLINE    __attribute__((noinline))
#define MEM_COLD        __attribute__((cold))
/* The allocator's entry points and the slow paths between them and the heap profiler: kept
 * together in one text section, so that a sample's stack starts at the first frame outside
 * it (the caller) however the compiler inlined or tail-called its way through them. */
#define MEM_ALLOC_TEXT __attribute__((section("mem_alloc_text")))
/* A function that allocates on a library's behalf (an nghttp2_mem or OpenSSL allocator hook):
 * a heap sample whose caller is such a function is unwound by the DWARF unwinder, which names
 * the library's frames, instead of by frame pointers, which stop at the library. */
#define MEM_LIB_HOOK     __attribute__((section("mem_lib_hook_text"), noinline))
#define MEM_INLINE       static inline __attribute__((always_inline))
#define MEM_UNUSED       __attribute__((unused))
#define MEM_MALLOC_ATTR  __attribute__((malloc, warn_unused_result))
#define MEM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MEM_MUST_CHECK   __attribute__((warn_unused_result)) /* the result says if it failed */
#define MEM_CACHELINE    64
#define MEM_ALIGNED(n)   __attribute__((aligned(n)))

#define MEM_STATIC_ASSERT(cond, msg)      _Static_assert(cond, msg)
#define MEM_ARRAY_LEN(a)                  (sizeof(a) / sizeof((a)[0]))
#define MEM_MIN(a, b)                     ((a) < (b) ? (a) : (b))
#define MEM_MAX(a, b)                     ((a) > (b) ? (a) : (b))
#define MEM_ALIGN_UP(x, a)                (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define MEM_IS_POW2(x)                    ((x) != 0 && (((x) & ((x)-1)) == 0))
#define MEM_CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* Address sanitizer hooks: poisoning is how arena use-after-free becomes visible. */
#if defined(__SANITIZE_ADDRESS__) || defined(MEM_ASAN)
#include <sanitizer/asan_interface.h>
#define MEM_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define MEM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define MEM_HAVE_ASAN      1
#else
#define MEM_POISON(p, n)   ((void)(p), (void)(n))
#define MEM_UNPOISON(p, n) ((void)(p), (void)(n))
#define MEM_HAVE_ASAN      0
#endif

#if defined(__SANITIZE_THREAD__) || defined(MEM_TSAN)
#define MEM_HAVE_TSAN 1
#else
#define MEM_HAVE_TSAN 0
#endif

/* Prints the failed condition and aborts. Used only for broken invariants, never for
 * peer input or allocation failure (../shared/STYLE.md section 4). */
MEM_NOINLINE MEM_COLD __attribute__((noreturn)) void mem_assert_fail(const char *cond,
                                                                     const char *file, int line);

#define MEM_ASSERT(c)                                                                              \
    do {                                                                                           \
        if (MEM_UNLIKELY(!(c)))                                                                    \
            mem_assert_fail(#c, __FILE__, __LINE__);                                               \
    } while (0)

#if MEM_DEBUG >= 1
#define MEM_ASSERT_HOT(c) MEM_ASSERT(c)
#else
#define MEM_ASSERT_HOT(c) ((void)sizeof(c))
#endif

#if MEM_DEBUG >= 2
#define MEM_ASSERT_SLOW(c) MEM_ASSERT(c)
#else
#define MEM_ASSERT_SLOW(c) ((void)sizeof(c))
#endif

/* Relaxed counters: plain per-thread stats that another thread sums without tearing and
 * without TSan reports. */
/* `var` is evaluated once (it may be a call such as `tstats()->field`). */
#define MEM_STAT_ADD(var, n)                                                                       \
    ({                                                                                             \
        __typeof__(&(var)) mem_stat_p_ = &(var);                                                   \
        __atomic_store_n(mem_stat_p_, __atomic_load_n(mem_stat_p_, __ATOMIC_RELAXED) + (n),        \
                         __ATOMIC_RELAXED);                                                        \
    })
#define MEM_STAT_SUB(var, n)                                                                       \
    ({                                                                                             \
        __typeof__(&(var)) mem_stat_p_ = &(var);                                                   \
        __atomic_store_n(mem_stat_p_, __atomic_load_n(mem_stat_p_, __ATOMIC_RELAXED) - (n),        \
                         __ATOMIC_RELAXED);                                                        \
    })
#define MEM_STAT_LOAD(var)     __atomic_load_n(&(var), __ATOMIC_RELAXED)
#define MEM_STAT_STORE(var, v) __atomic_store_n(&(var), (v), __ATOMIC_RELAXED)

#endif /* MEM_BASE_H */
