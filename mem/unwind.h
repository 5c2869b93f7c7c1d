/*
 * mem/unwind.h: the heap profiler's stack unwinding: weir's own frames by their frame
 * pointers (a load and two compares per frame), the DWARF unwinder behind backtrace() where a
 * library allocated for itself, and where a sample's stack starts (past the allocator's own
 * frames, MEM_ALLOC_TEXT).
 *
 * State: the main executable's code range, found once (mem__unwind_init) and read-only
 * afterwards. Thread: any.
 */
#ifndef MEM_UNWIND_H
#define MEM_UNWIND_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

/* The main executable's code, where weir's own functions are: the frame-pointer walk trusts a
 * frame only while it returns into this range. Written once inside mem__unwind_init(). */
typedef struct mem__unwind_text_s {
    uintptr_t lo, hi;
} mem__unwind_text_t;
extern mem__unwind_text_t mem__unwind_text;

/* The frame-pointer walk gives up on a link that jumps further up the stack than this. */
#define MEM_UNWIND_FP_GAP_MAX ((uintptr_t)1 << 20)

/* Finds the executable's code range and makes the first backtrace() call (which loads
 * libgcc_s and may call libc malloc), once per process. Returns 0. Thread: any. */
int mem__unwind_init(void);

/* Walks the frame-pointer chain of the calling function (inlined: its frame is the first),
 * writing return addresses innermost first, while the frames are weir's own: weir is built
 * with -fno-omit-frame-pointer, the libraries it calls are not, so the chain is trusted only
 * while each frame returns into the main executable. Stops after the first address outside
 * it, which is still a true return address: only the link beyond it could be garbage.
 * Returns how many were written (0 before mem__unwind_init()). */
MEM_INLINE int mem__unwind_fp(void **out, int max)
{
    if (mem__unwind_text.hi == 0)
        return 0;
    void **fp = __builtin_frame_address(0);
    int n = 0;
    while (n < max) {
        uintptr_t ret = (uintptr_t)fp[1];
        if (ret == 0)
            break;
        out[n++] = (void *)ret;
        if (ret < mem__unwind_text.lo || ret >= mem__unwind_text.hi)
            break;
        void **next = fp[0];
        uintptr_t gap = (uintptr_t)next - (uintptr_t)fp;
        if ((uintptr_t)next <= (uintptr_t)fp || gap > MEM_UNWIND_FP_GAP_MAX ||
            ((uintptr_t)next & 7))
            break;
        fp = next;
    }
    return n;
}

/* The DWARF unwinder (backtrace()): thousands of instructions per frame, but it names the
 * frames of libraries built without frame pointers. Returns how many were written. */
int mem__unwind_dwarf(void **out, int max);

/* The index of the first frame of `raw[0..n)` that is the allocation's caller: past the
 * recorder's own frame (found by `ret`, its return address) and any the unwinder put above it
 * (ASan's interceptor), then past every frame in the allocator's text (MEM_ALLOC_TEXT). */
int mem__unwind_site(void *const *raw, int n, const void *ret);

/* True when the allocation whose caller's return address is `pc` (the frame at the index
 * mem__unwind_site() gave) is a library's own: the caller is outside the main executable
 * (libuv calling the allocator directly) or is an allocator hook (MEM_LIB_HOOK). Such a
 * sample is unwound by the DWARF unwinder, which names the library's frames; any other is
 * left to the frame-pointer walk, even when a library frame follows right after the caller
 * (a weir callback run by libuv that allocates), where the DWARF unwinder would cost about
 * 20,000 instructions for frames that say only "the event loop". */
bool mem__unwind_is_library(const void *pc);

#endif /* MEM_UNWIND_H */
