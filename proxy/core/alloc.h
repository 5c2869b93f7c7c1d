/*
 * proxy/core/alloc.h: hooks that route libuv's, nghttp2's and OpenSSL's allocations to the mem/
 * facade (thread caches), so steady-state proxying makes no libc malloc calls.
 *
 * Installed once by main() before any libuv, nghttp2 or OpenSSL use. Thread: main.
 */
#ifndef PX_ALLOC_H
#define PX_ALLOC_H

#include "mem/base.h"

#include <nghttp2/nghttp2.h>

/* Installs uv_replace_allocator and CRYPTO_set_mem_functions hooks backed by mem_malloc &co.
 * Returns 0, or -EALREADY when a library had already allocated (too late to hook).
 * Thread: main, before any other thread starts. Alloc: none. */
int px_alloc_install(void);

/* The nghttp2_mem every HPACK table uses (mem_malloc & co with the user-data signature).
 * Ownership: borrows (static storage). Thread: any. */
nghttp2_mem *px_alloc_nghttp2_mem(void);

#endif /* PX_ALLOC_H */
