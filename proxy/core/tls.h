/*
 * proxy/core/tls.h: OpenSSL 3 server contexts (certificate, key, ALPN "h2") and per-connection
 * SSL objects driven through memory BIOs, so libuv does all socket I/O.
 *
 * A context is created per TLS listener by the main thread and shared read-only by the
 * workers (SSL_CTX is thread-safe once configured). SSL objects belong to one connection.
 */
#ifndef PX_TLS_H
#define PX_TLS_H

#include "mem/base.h"

#include <stdbool.h>

#include <openssl/ssl.h>

/* Creates a server context from PEM `cert` and `key` with ALPN "h2" required, TLS 1.2 or
 * later with PX_TLS12_CIPHERS, and SSL_MODE_RELEASE_BUFFERS. Returns NULL and a one-line reason in
 * `err`. Ownership: gives (SSL_CTX_free). Thread: main. Alloc: OpenSSL (mem facade). */
SSL_CTX *px_tls_ctx_new(const char *cert, const char *key, char *err, size_t err_len);

/* Creates the SSL object of one connection with a read BIO (ciphertext from the peer) and a
 * write BIO (ciphertext for the peer), both memory BIOs owned by the SSL.
 * Returns 0 or -ENOMEM. Ownership: gives `*ssl` (SSL_free). Thread: worker. */
MEM_MUST_CHECK int px_tls_conn_new(SSL_CTX *ctx, SSL **ssl, BIO **rbio, BIO **wbio);

/* TLS 1.2 cipher suites (OpenSSL syntax): ECDHE with AES-GCM or ChaCha20-Poly1305, none of
 * RFC 9113 9.2.2's blocklist. */
#define PX_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* The application protocol a handshake selected by ALPN. */
typedef enum px_tls_alpn_e {
    PX_TLS_ALPN_NONE = 0, /* the client offered no ALPN: served as HTTP/1.1 */
    PX_TLS_ALPN_H2,
    PX_TLS_ALPN_HTTP11,
} px_tls_alpn_t;

/* The protocol ALPN selected on `ssl` after its handshake; PX_TLS_ALPN_NONE when the client
 * offered none (a client offering only protocols weir does not speak fails the handshake
 * with a no_application_protocol alert). Thread: the connection's worker. Alloc: none. */
px_tls_alpn_t px_tls_alpn(const SSL *ssl);

#endif /* PX_TLS_H */
