/*
 * proxy/admin/pprof_pb.h: the heap profile as pprof's protobuf (perftools.profiles.Profile,
 * gzip-compressed), the format Envoy's /heap_dump serves and that `go tool pprof` and
 * Google's `pprof` read: sample types alloc_objects/alloc_space/inuse_objects/inuse_space
 * (values un-sampled as pprof does for the legacy format), function names resolved in-process
 * (proxy/admin/symbolize.h), and the labels `worker` (the allocating thread's name),
 * `size_class` (the class's object size, or "large") and `owner`
 * (region|subregion|tcache|library).
 *
 * A small encoder of its own (varints and length-delimited fields only) and zlib's deflate
 * with a gzip header. Thread: any (the admin thread). Alloc: mem_malloc (the encoded profile,
 * the tables, zlib's state), system (the snapshot and the symbolizer, mmap).
 */
#ifndef PX_ADMIN_PPROF_PB_H
#define PX_ADMIN_PPROF_PB_H

#include "mem/base.h"
#include "mem/pprof.h"

/* Writes heap `which` (MEM_HEAPSNAP_LIVE, _PEAK or an overload snapshot's number) as a
 * gzipped profile.proto through `write`. Returns 0, -ENOENT (no such snapshot), -ENOMEM, or
 * the writer's error. */
int px_pprof_pb_write(long which, mem_write_fn write, void *ud);

#endif /* PX_ADMIN_PPROF_PB_H */
