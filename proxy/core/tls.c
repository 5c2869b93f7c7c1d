/*
 * proxy/core/tls.c: OpenSSL contexts and memory-BIO connections (see tls.h).
 */
#include "proxy/core/tls.h"
#include "mem/base.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>

#include "proxy/upstream/tlsio.h"

/* The application protocols a TLS listener accepts, in weir's order of preference, each in
 * ALPN wire form (length byte, name). RFC 9113 3.2: HTTP/2 over TLS is negotiated by ALPN,
 * so a client that does not offer one of these gets no connection. HTTP/1.1 over TLS joins
 * this table (and px_tls_alpn's answers) when proxy/h1/ serves it. */
static const struct {
    const char *wire;
    px_tls_alpn_t proto;
} alpn_accepted[] = {
    {"\x02h2", PX_TLS_ALPN_H2},
};

static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (size_t k = 0; k < sizeof(alpn_accepted) / sizeof(alpn_accepted[0]); k++) {
        const unsigned char *want = (const unsigned char *)alpn_accepted[k].wire;
        for (unsigned i = 0; i < inlen;) {
            unsigned l = in[i];
            if (i + 1 + l > inlen)
                break;
            if (l == want[0] && memcmp(in + i + 1, want + 1, l) == 0) {
                *out = in + i + 1;
                *outlen = (unsigned char)l;
                return SSL_TLSEXT_ERR_OK;
            }
            i += 1 + l;
        }
    }
    /* Nothing weir speaks: a no_application_protocol alert ends the handshake (RFC 7301 3.2). */
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

SSL_CTX *px_tls_ctx_new(const char *cert, const char *key, char *err, size_t err_len)
{
    MEM_ASSERT(err != NULL);
    SSL_CTX *ctx = NULL;
    if (cert == NULL || key == NULL) {
        snprintf(err, err_len, "tls listener needs tls_cert and tls_key");
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, err_len, "SSL_CTX_new failed (out of memory)");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* TLS 1.2 suites: ephemeral key exchange with an AEAD cipher only, which leaves out every
     * suite on RFC 9113 9.2.2's blocklist (CBC, RC4, static RSA, non-ephemeral). TLS 1.3
     * suites are all AEAD and are set apart (SSL_CTX_set_ciphersuites); left at defaults. */
    if (SSL_CTX_set_cipher_list(ctx, PX_TLS12_CIPHERS) != 1) {
        snprintf(err, err_len, "cannot set the TLS 1.2 cipher list");
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Release idle record buffers: an idle TLS connection then holds no 16 KiB buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, err_len, "cannot load tls_cert %s: %s", cert,
                 ERR_reason_error_string(ERR_peek_last_error()));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, err_len, "cannot load tls_key %s: %s", key,
                 ERR_reason_error_string(ERR_peek_last_error()));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, err_len, "tls_key %s does not match tls_cert %s", key, cert);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, NULL);
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

int px_tls_conn_new(SSL_CTX *ctx, SSL **ssl, BIO **rbio, BIO **wbio)
{
    MEM_ASSERT(ctx != NULL);
    MEM_ASSERT(ssl != NULL);
    return px_tlsio_new(ctx, false, ssl, rbio, wbio);
}

px_tls_alpn_t px_tls_alpn(const SSL *ssl)
{
    MEM_ASSERT(ssl != NULL);
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl, &p, &len);
    for (size_t k = 0; k < sizeof(alpn_accepted) / sizeof(alpn_accepted[0]); k++) {
        const unsigned char *want = (const unsigned char *)alpn_accepted[k].wire;
        if (len == want[0] && memcmp(p, want + 1, len) == 0)
            return alpn_accepted[k].proto;
    }
    return PX_TLS_ALPN_NONE;
}
