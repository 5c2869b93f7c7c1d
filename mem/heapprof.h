/*
 * mem/heapprof.h: the sampling heap profiler and its pprof dump.
 *
 * Allocations are sampled on average once every `sample_bytes` bytes with a geometric
 * interval (as tcmalloc does). A sample keeps the allocation's size and backtrace while it is
 * live. The dump is pprof's legacy heap profile text format ("heap profile: ..." header, one
 * line per stack, then MAPPED_LIBRARIES from /proc/self/maps), which `google-pprof --text`
 * reads. Functions are symbolized in-process as well (see mem_heapprof_dump_symbols), from the
 * running binary's own ELF symbol tables: that names them where no copy of the binary or no
 * pprof is at hand, and for binaries stripped of debug information (`strip -g`). A binary
 * stripped of `.symtab` (`strip -s`) keeps only its exported (`.dynsym`) names.
 * Its own storage is mapped directly, never through the facade, so it cannot recurse.
 */
#ifndef MEM_HEAPPROF_H
#define MEM_HEAPPROF_H

#include "mem/base.h"

/* Writer used by dumps: returns 0, or negative to stop the dump. */
typedef int (*mem_write_fn)(void *ud, const char *buf, size_t len);

/* Sets the mean sampling interval in bytes (0 = off). Thread: any. */
void mem_heapprof_set_interval(size_t sample_bytes);
size_t mem_heapprof_interval(void);

/* Writes the live-sample profile in pprof legacy heap format. Returns 0 or negative errno.
 * Thread: any. Alloc: none through mem/ (it maps scratch space directly). */
int mem_heapprof_dump(mem_write_fn write, void *ud);

/* Writes "ADDRESS FUNCTION" lines for every program counter in the live samples, the
 * format pprof's symbol server uses (`--symbols`), resolved in-process from the binary's
 * own ELF symbol tables and dladdr. Returns 0 or negative errno. */
int mem_heapprof_dump_symbols(mem_write_fn write, void *ud);

/* Resolves one code address to its function name in-process (ELF .symtab/.dynsym of the
 * object that holds it, then dladdr) and copies it into `out`. Returns 0, -ENOENT when no
 * symbol covers `pc`, or -ENOMEM. Thread: any. Alloc: none through mem/ (mmap). */
int mem_heapprof_symbolize(const void *pc, char *out, size_t out_len);

/* Live samples and their estimated bytes (each sample stands for interval/size objects). */
size_t mem_heapprof_samples_live(void);

/* ---- internal interface between the allocator and the profiler (mem/ only) ----------- */

/* Draws the next geometric sampling distance in bytes (mean = interval, at least 1). While
 * sampling is off it returns a re-check distance of a few MiB, so a caller that counts down
 * and then calls mem__heapprof_record notices within that distance that sampling was
 * turned on. */
size_t mem__heapprof_next_interval(void);
/* Records a sampled allocation `p` of `len` bytes with the stack of its caller: the frames in
 * the allocator's own text (MEM_ALLOC_TEXT) are dropped from the top, whatever the compiler
 * inlined. `owner` is the region it lives in, or NULL for a facade allocation.
 * Returns 0, or -ENOMEM when the sample table is full (the sample is then dropped). When
 * sampling is off it records nothing and returns 0. */
int mem__heapprof_record(void *p, size_t len, const void *owner);
/* Forgets the sample for `p`, if any. */
void mem__heapprof_forget(void *p);
/* Forgets every sample whose owner is `owner` (a region or sub-arena being freed). */
void mem__heapprof_forget_owner(const void *owner);

/* Forgets the tables' metadata charge (mem_fini resets the budget; the next sample charges
 * the tables again). Thread: main. */
void mem__heapprof_meta_forget(void);

#endif /* MEM_HEAPPROF_H */
