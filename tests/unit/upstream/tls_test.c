/*
 * tests/unit/upstream/tls_test.c: the upstream TLS client (proxy/upstream/tls.c) and the shared
 * memory-BIO transport (proxy/upstream/tlsio.c), against an OpenSSL server in the same process:
 * handshakes pumped between memory BIOs, ALPN, data through px_tlsio_seal/px_tlsio_take,
 * session resumption through an endpoint's slot, the verification failures and their 502
 * reasons, and context errors. The certificate is tests/e2e/configs/certs/test-cert.pem
 * (self-signed, localhost and 127.0.0.1), which is also the CA where one is configured.
 */
#include "mem/base.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "mem/malloc.h"
#include "mem/stats.h"
#include "proxy/config/config.h"
#include "proxy/upstream/tls.h"
#include "proxy/upstream/tlsio.h"
#include "tests/harness.h"

static char cert_path[1100], key_path[1100];
static mem_stats_t stats; /* large: not on the stack */

static uint64_t live_bytes(void)
{
    mem_stats_snapshot(&stats);
    return stats.live;
}

/* The server accepts only `server_alpn` (wire form), or answers with no ALPN (NOACK). */
static const char *server_alpn = "\x02h2";

static int on_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                     const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    const unsigned char *want = (const unsigned char *)server_alpn;
    for (unsigned i = 0; i + 1 < inlen; i += 1u + in[i]) {
        if (in[i] == want[0] && i + 1u + in[i] <= inlen &&
            memcmp(in + i + 1, want + 1, in[i]) == 0) {
            *out = in + i + 1;
            *outlen = in[i];
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *server_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, on_select, NULL);
    return ctx;
}

/* Moves what `from` wrote into `to`'s read BIO. Returns the bytes moved, or -1. */
static long pump(BIO *from_w, BIO *to_r)
{
    uint8_t *p = NULL;
    size_t len = 0;
    if (px_tlsio_take(from_w, &p, &len) != 0)
        return -1;
    if (len > 0 && BIO_write(to_r, p, (int)len) != (int)len)
        len = (size_t)-1;
    mem_free(p);
    return (long)len;
}

typedef struct pair_s {
    SSL *c, *s;
    BIO *cr, *cw, *sr, *sw;
} pair_t;

/* Runs the handshake between a client made by weir's functions and an OpenSSL server.
 * Returns 1 when both finished, 0 when either failed. The client's post-handshake messages
 * (TLS 1.3 session tickets) are read too, so that its new-session callback has run. */
static int handshake(pair_t *p, SSL_CTX *sctx, const px_cluster_cfg_t *cl, const px_addr_t *ep,
                     SSL_SESSION **slot)
{
    memset(p, 0, sizeof(*p));
    if (px_tlsio_new(cl->tls_ctx, true, &p->c, &p->cr, &p->cw) != 0)
        return 0;
    if (px_uptls_conn_setup(p->c, cl, ep, slot) != 0)
        return 0;
    if (px_tlsio_new(sctx, false, &p->s, &p->sr, &p->sw) != 0)
        return 0;
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 20 && !(cdone && sdone); i++) {
        int rc = SSL_do_handshake(p->c);
        if (rc == 1)
            cdone = 1;
        else if (SSL_get_error(p->c, rc) != SSL_ERROR_WANT_READ)
            return 0;
        if (pump(p->cw, p->sr) < 0)
            return 0;
        rc = SSL_do_handshake(p->s);
        if (rc == 1)
            sdone = 1;
        else if (SSL_get_error(p->s, rc) != SSL_ERROR_WANT_READ) {
            pump(p->sw, p->cr); /* the alert */
            (void)SSL_do_handshake(p->c);
            return 0;
        }
        if (pump(p->sw, p->cr) < 0)
            return 0;
    }
    uint8_t b[16];
    (void)SSL_read(p->c, b, sizeof(b)); /* tickets; no application data yet */
    return cdone && sdone;
}

static void pair_free(pair_t *p)
{
    if (p->c)
        SSL_shutdown(p->c); /* as weir's pooled close: the session stays resumable */
    SSL_free(p->c);
    SSL_free(p->s);
    memset(p, 0, sizeof(*p));
    ERR_clear_error();
}

static px_cluster_cfg_t cluster(px_proto_t proto, const char *ca, const char *sni)
{
    px_cluster_cfg_t cl;
    memset(&cl, 0, sizeof(cl));
    cl.name = "t";
    cl.proto = proto;
    cl.tls = true;
    cl.tls_verify = true;
    cl.tls_ca = (char *)ca;
    cl.tls_sni = (char *)sni;
    return cl;
}

/* Makes the cluster's context through px_uptls_config_init, as main() does. */
static int make_ctx(px_cluster_cfg_t *cl)
{
    px_config_t cfg;
    char err[256];
    memset(&cfg, 0, sizeof(cfg));
    cfg.clusters = cl;
    cfg.clusters_cnt = 1;
    int rc = px_uptls_config_init(&cfg, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "px_uptls_config_init: %s\n", err);
    return rc;
}

static px_addr_t endpoint(const char *host)
{
    px_addr_t a;
    memset(&a, 0, sizeof(a));
    snprintf(a.host, sizeof(a.host), "%s", host);
    a.port = 443;
    return a;
}

TEST(h2_handshake_data_and_resumption)
{
    SSL_CTX *sctx = server_ctx();
    REQUIRE(sctx != NULL);
    server_alpn = "\x02h2";
    px_cluster_cfg_t cl = cluster(PX_PROTO_H2C, cert_path, NULL);
    REQUIRE(make_ctx(&cl) == 0);
    px_addr_t ep = endpoint("127.0.0.1"); /* no SNI: the IP address SAN is verified */
    SSL_SESSION *slot = NULL;
    pair_t p;

    REQUIRE(handshake(&p, sctx, &cl, &ep, &slot));
    CHECK(px_uptls_alpn_check(p.c, &cl) == NULL);
    CHECK(SSL_get_servername(p.c, TLSEXT_NAMETYPE_host_name) == NULL);
    CHECK(!SSL_session_reused(p.c));
    CHECK(slot != NULL); /* the new-session callback filled the endpoint's slot */

    /* 100 KB through seal/take, read back by the server. */
    static uint8_t out[100000], in[100000];
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i * 7 + 3);
    CHECK_EQ(px_tlsio_seal(p.c, out, sizeof(out)), 0);
    CHECK(pump(p.cw, p.sr) > (long)sizeof(out)); /* records add headers and tags */
    size_t got = 0;
    while (got < sizeof(in)) {
        int n = SSL_read(p.s, in + got, (int)(sizeof(in) - got));
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    CHECK_EQ(got, sizeof(in));
    CHECK(memcmp(in, out, sizeof(in)) == 0);
    pair_free(&p);

    /* The next connection to the endpoint offers the slot's session and resumes. */
    REQUIRE(handshake(&p, sctx, &cl, &ep, &slot));
    CHECK(SSL_session_reused(p.c));
    pair_free(&p);

    SSL_SESSION_free(slot);
    SSL_CTX_free(cl.tls_ctx);
    SSL_CTX_free(sctx);
    CHECK_EQ(live_bytes(), 0);
}

TEST(alpn)
{
    SSL_CTX *sctx = server_ctx();
    REQUIRE(sctx != NULL);
    /* A server that speaks only http/1.1 and acknowledges no other ALPN offer. */
    server_alpn = "\x08http/1.1";
    px_cluster_cfg_t h2 = cluster(PX_PROTO_H2C, cert_path, "localhost");
    px_cluster_cfg_t h1 = cluster(PX_PROTO_HTTP1, cert_path, "localhost");
    REQUIRE(make_ctx(&h2) == 0);
    REQUIRE(make_ctx(&h1) == 0);
    px_addr_t ep = endpoint("127.0.0.1");
    SSL_SESSION *slot = NULL;
    pair_t p;

    REQUIRE(handshake(&p, sctx, &h2, &ep, &slot));
    CHECK_STR(SSL_get_servername(p.c, TLSEXT_NAMETYPE_host_name), "localhost");
    CHECK_STR(px_uptls_alpn_check(p.c, &h2),
              "upstream TLS: the upstream did not select h2 by ALPN");
    pair_free(&p);
    SSL_SESSION_free(slot);
    slot = NULL;
    REQUIRE(handshake(&p, sctx, &h1, &ep, &slot));
    CHECK(px_uptls_alpn_check(p.c, &h1) == NULL);
    pair_free(&p);

    SSL_SESSION_free(slot);
    SSL_CTX_free(h2.tls_ctx);
    SSL_CTX_free(h1.tls_ctx);
    SSL_CTX_free(sctx);
    server_alpn = "\x02h2";
    CHECK_EQ(live_bytes(), 0);
}

TEST(verify_failures)
{
    SSL_CTX *sctx = server_ctx();
    REQUIRE(sctx != NULL);
    SSL_SESSION *slot = NULL;
    px_addr_t ep = endpoint("127.0.0.1");
    bool verify = false;
    pair_t p;

    /* A name the certificate does not carry. */
    px_cluster_cfg_t name = cluster(PX_PROTO_H2C, cert_path, "wrong.example");
    REQUIRE(make_ctx(&name) == 0);
    CHECK(!handshake(&p, sctx, &name, &ep, &slot));
    CHECK_STR(px_uptls_fail_reason(p.c, &verify),
              "upstream TLS certificate verify failed: hostname mismatch");
    CHECK(verify);
    pair_free(&p);

    /* The system bundle (no tls.ca) does not hold the self-signed test certificate. */
    px_cluster_cfg_t sys = cluster(PX_PROTO_H2C, NULL, "localhost");
    REQUIRE(make_ctx(&sys) == 0);
    CHECK(!handshake(&p, sctx, &sys, &ep, &slot));
    CHECK_STR(px_uptls_fail_reason(p.c, &verify),
              "upstream TLS certificate verify failed: self-signed certificate");
    CHECK(verify);
    pair_free(&p);

    /* verify: false takes it. */
    sys.tls_verify = false;
    SSL_CTX_free(sys.tls_ctx);
    sys.tls_ctx = NULL;
    REQUIRE(make_ctx(&sys) == 0);
    CHECK(handshake(&p, sctx, &sys, &ep, &slot));
    pair_free(&p);
    CHECK(slot != NULL);

    SSL_SESSION_free(slot);
    SSL_CTX_free(name.tls_ctx);
    SSL_CTX_free(sys.tls_ctx);
    SSL_CTX_free(sctx);
    CHECK_EQ(live_bytes(), 0);
}

TEST(context_errors)
{
    char err[256];
    px_cluster_cfg_t cl = cluster(PX_PROTO_HTTP1, "/nonexistent/ca.pem", NULL);
    cl.name = "api";
    CHECK(px_uptls_ctx_new(&cl, err, sizeof(err)) == NULL);
    CHECK(strncmp(err, "cluster api: cannot load tls.ca /nonexistent/ca.pem", 51) == 0);
    cl = cluster(PX_PROTO_HTTP1, cert_path, NULL);
    cl.name = "api";
    cl.tls_cert = cert_path;
    cl.tls_key = cert_path; /* a certificate where the key should be */
    CHECK(px_uptls_ctx_new(&cl, err, sizeof(err)) == NULL);
    CHECK(strncmp(err, "cluster api: cannot load tls.key", 32) == 0);
    cl.tls_key = key_path;
    SSL_CTX *ctx = px_uptls_ctx_new(&cl, err, sizeof(err));
    CHECK(ctx != NULL);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    CHECK_EQ(live_bytes(), 0);
}

int main(void)
{
    const char *slash = strrchr(__FILE__, '/');
    /* __FILE__ is .../tests/unit/upstream/tls_test.c; the certificate is in .../tests/e2e/. */
    snprintf(cert_path, sizeof(cert_path), "%.*s/../../e2e/configs/certs/test-cert.pem",
             (int)(slash ? slash - __FILE__ : 1), slash ? __FILE__ : ".");
    snprintf(key_path, sizeof(key_path), "%.*s/../../e2e/configs/certs/test-key.pem",
             (int)(slash ? slash - __FILE__ : 1), slash ? __FILE__ : ".");
    RUN(h2_handshake_data_and_resumption);
    RUN(alpn);
    RUN(verify_failures);
    RUN(context_errors);
    return TEST_SUMMARY();
}
