/*
 * mem/pprof.c: the heap profile's output (mem/pprof.h): pprof's legacy heap profile text,
 * buffered through the caller's writer, and the distinct program counters of the live
 * samples for a symbolizer. Each works on a snapshot of the buckets (mem/heapprof.c).
 */
#include "mem/base.h"
#include "mem/pprof.h"
#include "mem/heapprof.h"
#include "mem/heapsnap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef mem__heapprof_bucket_t hp_bucket_t;
typedef mem__heapprof_snap_t hp_snap_t;

/* Buffered output on the stack: lines are appended and flushed through the writer. */
typedef struct hp_out_s {
    mem_write_fn write;
    void *ud;
    size_t len;
    int err;
    char buf[8192];
} hp_out_t;

static void out_flush(hp_out_t *o)
{
    if (o->err == 0 && o->len > 0) {
        int r = o->write(o->ud, o->buf, o->len);
        if (r < 0)
            o->err = r;
    }
    o->len = 0;
}

MEM_PRINTF(2, 3) static void out_printf(hp_out_t *o, const char *fmt, ...)
{
    if (o->err)
        return;
    for (int tries = 0; tries < 2; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
        va_end(ap);
        MEM_ASSERT(n >= 0);
        if ((size_t)n < sizeof(o->buf) - o->len) {
            o->len += (size_t)n;
            return;
        }
        out_flush(o);
    }
    o->err = -EOVERFLOW; /* one piece larger than the buffer: a programming error */
}

static void out_raw(hp_out_t *o, const char *p, size_t len)
{
    out_flush(o);
    if (o->err == 0 && len > 0) {
        int r = o->write(o->ud, p, len);
        if (r < 0)
            o->err = r;
    }
}

/* Copies /proc/self/maps verbatim: pprof needs it to map PCs to binaries and offsets. */
static void out_maps(hp_out_t *o)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        o->err = -errno;
        return;
    }
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            o->err = o->err ? o->err : -errno;
            break;
        }
        if (n == 0)
            break;
        out_raw(o, buf, (size_t)n);
        if (o->err)
            break;
    }
    close(fd);
}

int mem_heapprof_dump(mem_write_fn write, void *ud)
{
    return mem_heapprof_dump_at(MEM_HEAPSNAP_LIVE, write, ud);
}

int mem_heapprof_each_pc(int (*fn)(void *ud, const void *pc), void *ud)
{
    return mem_heapprof_each_pc_at(MEM_HEAPSNAP_LIVE, fn, ud);
}

int mem_heapprof_each_row(long which, int (*fn)(void *ud, const mem_heapprof_row_t *r), void *ud,
                          size_t *interval_out)
{
    MEM_ASSERT(fn != NULL);
    MEM_ASSERT(interval_out != NULL);
    hp_snap_t snap;
    int err = mem__heapsnap_take(&snap, which);
    if (err)
        return err;
    *interval_out = snap.interval;
    for (size_t i = 0; i < snap.cnt && err == 0; i++) {
        const hp_bucket_t *b = &snap.b[i];
        MEM_ASSERT(b->depth <= MEM_HEAPPROF_FRAMES_MAX);
        mem_heapprof_row_t r = {
            .pcs = (const void *const *)b->pcs,
            .depth = b->depth,
            .sc_bytes = b->sc_bytes,
            .thread = b->thread,
            .owner = mem_heapprof_owner_name(b->owner),
            .live_objs = b->live_objs,
            .live_bytes = b->live_bytes,
            .alloc_objs = b->alloc_objs,
            .alloc_bytes = b->alloc_bytes,
        };
        err = fn(ud, &r);
    }
    mem__heapprof_snap_release(&snap);
    return err;
}

int mem_heapprof_dump_at(long which, mem_write_fn write, void *ud)
{
    MEM_ASSERT(write != NULL);
    hp_snap_t snap;
    int err = mem__heapsnap_take(&snap, which);
    if (err)
        return err;
    /* The output buffer is 8 KiB: keep it off small thread stacks by mapping it too. */
    hp_out_t *o =
        mmap(NULL, sizeof(hp_out_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (o == MAP_FAILED) {
        mem__heapprof_snap_release(&snap);
        return -ENOMEM;
    }
    o->write = write;
    o->ud = ud;
    o->len = 0;
    o->err = 0;

    uint64_t in_objs = 0, in_bytes = 0, al_objs = 0, al_bytes = 0;
    for (size_t i = 0; i < snap.cnt; i++) {
        in_objs += snap.b[i].live_objs;
        in_bytes += snap.b[i].live_bytes;
        al_objs += snap.b[i].alloc_objs;
        al_bytes += snap.b[i].alloc_bytes;
    }
    /* heap_v2/<interval>: counts are raw samples; pprof un-samples them itself. An interval of
     * 0 (off) would divide by zero in pprof, so write 1 (every byte) in that case. */
    out_printf(
        o, "heap profile: %6" PRIu64 ": %8" PRIu64 " [%6" PRIu64 ": %8" PRIu64 "] @ heap_v2/%zu\n",
        in_objs, in_bytes, al_objs, al_bytes, snap.interval ? snap.interval : (size_t)1);
    for (size_t i = 0; i < snap.cnt && o->err == 0; i++) {
        const hp_bucket_t *b = &snap.b[i];
        out_printf(o, "%6" PRIu64 ": %8" PRIu64 " [%6" PRIu64 ": %8" PRIu64 "] @", b->live_objs,
                   b->live_bytes, b->alloc_objs, b->alloc_bytes);
        for (uint32_t f = 0; f < b->depth; f++)
            out_printf(o, " 0x%" PRIxPTR, (uintptr_t)b->pcs[f]);
        out_printf(o, "\n");
    }
    out_printf(o, "\nMAPPED_LIBRARIES:\n");
    out_maps(o);
    out_flush(o);
    err = o->err;
    munmap(o, sizeof(hp_out_t));
    mem__heapprof_snap_release(&snap);
    return err;
}

int mem_heapprof_each_pc_at(long which, int (*fn)(void *ud, const void *pc), void *ud)
{
    MEM_ASSERT(fn != NULL);
    hp_snap_t snap;
    int err = mem__heapsnap_take(&snap, which);
    if (err)
        return err;
    /* Each PC once: later copies are zeroed in the (private) snapshot as each is visited. */
    for (size_t i = 0; i < snap.cnt && err == 0; i++) {
        hp_bucket_t *b = &snap.b[i];
        if (b->live_objs == 0)
            continue;
        for (uint32_t f = 0; f < b->depth && err == 0; f++) {
            uintptr_t pc = (uintptr_t)b->pcs[f];
            if (pc == 0)
                continue;
            for (size_t j = i; j < snap.cnt; j++) {
                for (uint32_t g = (j == i ? f + 1 : 0); g < snap.b[j].depth; g++) {
                    if ((uintptr_t)snap.b[j].pcs[g] == pc)
                        snap.b[j].pcs[g] = NULL;
                }
            }
            err = fn(ud, (const void *)pc);
        }
    }
    mem__heapprof_snap_release(&snap);
    return err;
}
