/*
 * mem/unwind.c: set-up and the slow parts of the heap profiler's unwinding (mem/unwind.h):
 * the executable's code range, the DWARF unwinder, and where a sample's stack starts.
 */
#include "mem/base.h"
#include "mem/unwind.h"

#include <execinfo.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>

mem__unwind_text_t mem__unwind_text;

static pthread_once_t unwind_once = PTHREAD_ONCE_INIT;

/* Finds the main executable's code segment (the first object dl_iterate_phdr reports). */
static int on_phdr(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size, (void)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            mem__unwind_text.lo = (uintptr_t)(info->dlpi_addr + ph->p_vaddr);
            mem__unwind_text.hi = mem__unwind_text.lo + (uintptr_t)ph->p_memsz;
            break;
        }
    }
    return 1; /* the main program only */
}

static void on_init_once(void)
{
    /* backtrace() loads libgcc_s and may call libc malloc on its first use. Do that here,
     * once, instead of inside an allocation's slow path. */
    void *pcs[4];
    (void)backtrace(pcs, 4);
    (void)dl_iterate_phdr(on_phdr, NULL);
    MEM_ASSERT(mem__unwind_text.lo <= mem__unwind_text.hi);
}

int mem__unwind_init(void)
{
    (void)pthread_once(&unwind_once, on_init_once);
    return 0;
}

int mem__unwind_dwarf(void **out, int max)
{
    MEM_ASSERT(out != NULL);
    MEM_ASSERT(max > 0);
    return backtrace(out, max);
}

/* The allocator's own text (MEM_ALLOC_TEXT): a sample's stack starts after these frames. */
extern const char __start_mem_alloc_text[], __stop_mem_alloc_text[];

static bool in_alloc_text(const void *pc)
{
    /* A return address points just past its call: pc - 1 is inside the calling function. */
    const char *c = (const char *)pc - 1;
    return c >= __start_mem_alloc_text && c < __stop_mem_alloc_text;
}

/* The allocator hooks' text (MEM_LIB_HOOK). Weak: a program without hooks has no such
 * section, and then both are NULL. */
extern const char __start_mem_lib_hook_text[] __attribute__((weak));
extern const char __stop_mem_lib_hook_text[] __attribute__((weak));

bool mem__unwind_is_library(const void *pc)
{
    const char *c = (const char *)pc - 1; /* inside the calling function */
    if ((uintptr_t)pc < mem__unwind_text.lo || (uintptr_t)pc >= mem__unwind_text.hi)
        return true;
    return __start_mem_lib_hook_text != NULL && c >= __start_mem_lib_hook_text &&
           c < __stop_mem_lib_hook_text;
}

int mem__unwind_site(void *const *raw, int n, const void *ret)
{
    MEM_ASSERT(n >= 0);
    int self = 0;
    while (self < n && raw[self] != ret)
        self++;
    int i = self < n ? self : 0;
    while (i < n && in_alloc_text(raw[i]))
        i++;
    return i;
}
