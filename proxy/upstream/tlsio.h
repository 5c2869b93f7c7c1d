/*
 * proxy/upstream/tlsio.h: an SSL object driven through two memory BIOs, the TLS transport that
 * both sides of weir share: the downstream (proxy/core/conn.c, server role) and the upstream
 * connections (proxy/upstream/upstream.c, client role). libuv does all socket I/O; ciphertext
 * read from the socket goes into the read BIO, and what OpenSSL writes lands in the write BIO
 * for the caller to send.
 *
 * It lives in upstream/, the lowest folder that uses it, so that core/ can include it too
 * (.ci/layering.py: config < upstream < h2 < core). An SSL object belongs to one connection and
 * is touched only by that connection's worker.
 */
#ifndef PX_TLSIO_H
#define PX_TLSIO_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* Creates the SSL object of one connection from `ctx`, in the client role when `client` (else
 * the server role), with a read BIO (ciphertext from the peer) and a write BIO (ciphertext for
 * the peer), both memory BIOs owned by the SSL, that answer "retry" rather than EOF when empty.
 * Returns 0 or -ENOMEM (nothing to undo). Ownership: gives `*ssl` (SSL_free); `*rbio` and
 * `*wbio` are borrowed from it. Thread: the connection's worker. Alloc: OpenSSL (mem facade). */
int px_tlsio_new(SSL_CTX *ctx, bool client, SSL **ssl, BIO **rbio, BIO **wbio);

/* Encrypts `len` plaintext bytes of `p` (all of them: a memory BIO never pushes back) into the
 * write BIO. Returns 0, or -EPROTO when SSL_write fails (the connection is done).
 * Thread: the connection's worker. Alloc: OpenSSL (records, mem facade). */
int px_tlsio_seal(SSL *ssl, const uint8_t *p, size_t len);

/* Moves the ciphertext waiting in `wbio` into a new buffer (mem_malloc) of exactly that size.
 * Returns 0 and sets `*out` and `*out_len` (NULL and 0 when nothing waits), or -ENOMEM
 * (the bytes stay in `wbio`). Ownership: gives `*out` (mem_free). Alloc: tcache. */
int px_tlsio_take(BIO *wbio, uint8_t **out, size_t *out_len);

#endif /* PX_TLSIO_H */
