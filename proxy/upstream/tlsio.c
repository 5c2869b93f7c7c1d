/*
 * proxy/upstream/tlsio.c: SSL objects on memory BIOs (see tlsio.h).
 */
#include "proxy/upstream/tlsio.h"
#include "mem/base.h"

#include <errno.h>
#include <limits.h>

#include <openssl/err.h>

#include "mem/malloc.h"

int px_tlsio_new(SSL_CTX *ctx, bool client, SSL **ssl, BIO **rbio, BIO **wbio)
{
    MEM_ASSERT(ctx != NULL);
    MEM_ASSERT(ssl != NULL);
    SSL *s = SSL_new(ctx);
    BIO *r = BIO_new(BIO_s_mem());
    BIO *w = BIO_new(BIO_s_mem());
    if (s == NULL || r == NULL || w == NULL)
        goto fail;
    /* An empty memory BIO must say "retry", not EOF, while we wait for the socket. */
    BIO_set_mem_eof_return(r, -1);
    BIO_set_mem_eof_return(w, -1);
    SSL_set_bio(s, r, w); /* s owns both BIOs now */
    if (client)
        SSL_set_connect_state(s);
    else
        SSL_set_accept_state(s);
    *ssl = s;
    *rbio = r;
    *wbio = w;
    return 0;
fail:
    BIO_free(r);
    BIO_free(w);
    SSL_free(s);
    ERR_clear_error();
    return -ENOMEM;
}

int px_tlsio_seal(SSL *ssl, const uint8_t *p, size_t len)
{
    MEM_ASSERT(ssl != NULL);
    MEM_ASSERT(p != NULL || len == 0);
    size_t off = 0;
    while (off < len) {
        size_t chunk = MEM_MIN(len - off, (size_t)INT_MAX);
        int n = SSL_write(ssl, p + off, (int)chunk);
        if (n <= 0) {
            ERR_clear_error();
            return -EPROTO;
        }
        off += (size_t)n;
    }
    return 0;
}

int px_tlsio_take(BIO *wbio, uint8_t **out, size_t *out_len)
{
    MEM_ASSERT(wbio != NULL);
    MEM_ASSERT(out != NULL);
    *out = NULL;
    *out_len = 0;
    size_t pending = BIO_ctrl_pending(wbio);
    if (pending == 0)
        return 0;
    MEM_ASSERT(pending <= INT_MAX);
    uint8_t *b = mem_malloc(pending);
    if (b == NULL)
        return -ENOMEM;
    int n = BIO_read(wbio, b, (int)pending);
    if (n <= 0) {
        mem_free(b);
        return 0;
    }
    *out = b;
    *out_len = (size_t)n;
    return 0;
}
