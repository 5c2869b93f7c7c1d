/*
 * proxy/upstream/tls.c: client TLS contexts and per-connection set-up for upstreams (see tls.h).
 */
#include "proxy/upstream/tls.h"
#include "mem/base.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* The slot a connection's new sessions go to (SSL ex data: a pointer to the endpoint's
 * SSL_SESSION pointer). Set once by the main thread in px_uptls_config_init. */
static int sess_slot_idx = -1;

/* OpenSSL hands over a session it made (TLS 1.2: at the end of a full handshake; TLS 1.3: for
 * each NewSessionTicket, after the handshake). The endpoint keeps the latest one: its next
 * connection offers it, so reconnects in a pool resume. Returning 1 keeps the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = SSL_get_ex_data(ssl, sess_slot_idx);
    if (slot == NULL)
        return 0;
    if (!SSL_SESSION_is_resumable(sess))
        return 0;
    SSL_SESSION_free(*slot);
    *slot = sess;
    return 1;
}

SSL_CTX *px_uptls_ctx_new(const px_cluster_cfg_t *cl, char *err, size_t err_len)
{
    MEM_ASSERT(cl != NULL);
    MEM_ASSERT(cl->tls);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, err_len, "cluster %s: SSL_CTX_new failed (out of memory)", cl->name);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Idle pooled connections hold no 16 KiB record buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (cl->tls_verify) {
        int ok = cl->tls_ca ? SSL_CTX_load_verify_locations(ctx, cl->tls_ca, NULL)
                            : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            snprintf(err, err_len, "cluster %s: cannot load tls.ca %s: %s", cl->name,
                     cl->tls_ca ? cl->tls_ca : "(system bundle)",
                     ERR_reason_error_string(ERR_peek_last_error()));
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (cl->tls_cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cl->tls_cert) != 1) {
            snprintf(err, err_len, "cluster %s: cannot load tls.cert %s: %s", cl->name,
                     cl->tls_cert, ERR_reason_error_string(ERR_peek_last_error()));
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, cl->tls_key, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, err_len, "cluster %s: cannot load tls.key %s: %s", cl->name, cl->tls_key,
                     ERR_reason_error_string(ERR_peek_last_error()));
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(err, err_len, "cluster %s: tls.key %s does not match tls.cert %s", cl->name,
                     cl->tls_key, cl->tls_cert);
            goto fail;
        }
    }
    /* ALPN in wire form (length byte, name). An h2 cluster needs h2 (RFC 9113 3.2); an HTTP/1.1
     * cluster offers http/1.1, which a server without ALPN also gets. */
    static const unsigned char alpn_h2[] = "\x02h2";
    static const unsigned char alpn_h1[] = "\x08http/1.1";
    int arc = cl->proto == PX_PROTO_H2C
                  ? SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2) - 1)
                  : SSL_CTX_set_alpn_protos(ctx, alpn_h1, sizeof(alpn_h1) - 1);
    if (arc != 0) {
        snprintf(err, err_len, "cluster %s: cannot set ALPN (out of memory)", cl->name);
        goto fail;
    }
    /* Client sessions go to the endpoint slots only (no internal store: that is for servers). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

int px_uptls_config_init(px_config_t *cfg, char *err, size_t err_len)
{
    MEM_ASSERT(cfg != NULL);
    MEM_ASSERT(err != NULL);
    /* Certificate verification compares times (OPENSSL_gmtime -> gmtime_r), and glibc loads
     * the time zone on the process's first such call: fopen of /etc/localtime, its buffer and
     * strings, five libc mallocs on a worker at its first upstream handshake. Load it here,
     * in the main thread at start, so proxying makes no libc allocation (e2e 93). */
    tzset();
    if (sess_slot_idx < 0) {
        sess_slot_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        if (sess_slot_idx < 0) {
            snprintf(err, err_len, "SSL_get_ex_new_index failed (out of memory)");
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < cfg->clusters_cnt; i++) {
        px_cluster_cfg_t *cl = &cfg->clusters[i];
        if (!cl->tls || cl->tls_ctx)
            continue;
        cl->tls_ctx = px_uptls_ctx_new(cl, err, err_len);
        if (cl->tls_ctx == NULL)
            return -EINVAL;
    }
    return 0;
}

/* True when `host` is an IPv4 or IPv6 literal (with or without brackets). */
static bool is_ip_literal(const char *host, char *ip, size_t ip_len)
{
    unsigned char buf[sizeof(struct in6_addr)];
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 0 || len >= ip_len)
        return false;
    memcpy(ip, host, len);
    ip[len] = '\0';
    return inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1;
}

int px_uptls_conn_setup(SSL *ssl, const px_cluster_cfg_t *cl, const px_addr_t *ep,
                        SSL_SESSION **sess_slot)
{
    MEM_ASSERT(ssl != NULL);
    MEM_ASSERT(cl != NULL && ep != NULL);
    MEM_ASSERT(sess_slot_idx >= 0);
    char ip[64];
    const char *name = cl->tls_sni;
    bool ip_only = false;
    if (name == NULL) {
        if (is_ip_literal(ep->host, ip, sizeof(ip)))
            ip_only = true; /* RFC 6066 3: no SNI for an address; verify the address instead */
        else
            name = ep->host;
    }
    if (name != NULL && SSL_set_tlsext_host_name(ssl, name) != 1)
        goto fail;
    if (cl->tls_verify) {
        if (ip_only) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
            if (X509_VERIFY_PARAM_set1_ip_asc(vp, ip) != 1)
                goto fail;
        } else if (SSL_set1_host(ssl, name) != 1) {
            goto fail;
        }
    }
    if (SSL_set_ex_data(ssl, sess_slot_idx, sess_slot) != 1)
        goto fail;
    if (*sess_slot != NULL && SSL_set_session(ssl, *sess_slot) != 1)
        goto fail;
    return 0;
fail:
    ERR_clear_error();
    return -ENOMEM;
}

/* The 502 reasons: static, since the downstream gets a borrowed string. The common X509 results
 * have their own; any other reads "certificate verify failed" and the log has OpenSSL's text. */
static const struct {
    long code;
    const char *reason;
} verify_reasons[] = {
    {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
     "upstream TLS certificate verify failed: self-signed certificate"},
    {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
     "upstream TLS certificate verify failed: self-signed certificate in certificate chain"},
    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
     "upstream TLS certificate verify failed: unable to get local issuer certificate"},
    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
     "upstream TLS certificate verify failed: unable to get issuer certificate"},
    {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
     "upstream TLS certificate verify failed: unable to verify the first certificate"},
    {X509_V_ERR_CERT_HAS_EXPIRED,
     "upstream TLS certificate verify failed: certificate has expired"},
    {X509_V_ERR_CERT_NOT_YET_VALID,
     "upstream TLS certificate verify failed: certificate is not yet valid"},
    {X509_V_ERR_HOSTNAME_MISMATCH, "upstream TLS certificate verify failed: hostname mismatch"},
    {X509_V_ERR_IP_ADDRESS_MISMATCH, "upstream TLS certificate verify failed: IP address mismatch"},
    {X509_V_ERR_CERT_REVOKED, "upstream TLS certificate verify failed: certificate revoked"},
    {X509_V_ERR_INVALID_CA, "upstream TLS certificate verify failed: invalid CA certificate"},
    {X509_V_ERR_CERT_SIGNATURE_FAILURE,
     "upstream TLS certificate verify failed: certificate signature failure"},
};

const char *px_uptls_fail_reason(const SSL *ssl, bool *verify)
{
    MEM_ASSERT(ssl != NULL);
    MEM_ASSERT(verify != NULL);
    long v = SSL_get_verify_result(ssl);
    *verify = v != X509_V_OK;
    if (!*verify) {
        /* The error queue still holds why (tls_hs_failed logs it and clears it after). */
        if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL)
            return "upstream TLS handshake failed: no application protocol (the upstream "
                   "speaks none of the ALPN protocols offered)";
        return "upstream TLS handshake failed";
    }
    for (size_t i = 0; i < MEM_ARRAY_LEN(verify_reasons); i++)
        if (verify_reasons[i].code == v)
            return verify_reasons[i].reason;
    return "upstream TLS certificate verify failed";
}

const char *px_uptls_alpn_check(const SSL *ssl, const px_cluster_cfg_t *cl)
{
    MEM_ASSERT(ssl != NULL);
    MEM_ASSERT(cl != NULL);
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl, &p, &len);
    if (cl->proto == PX_PROTO_H2C) {
        if (len == 2 && memcmp(p, "h2", 2) == 0)
            return NULL;
        return "upstream TLS: the upstream did not select h2 by ALPN";
    }
    if (len == 0 || (len == 8 && memcmp(p, "http/1.1", 8) == 0))
        return NULL;
    return "upstream TLS: the upstream selected an unknown protocol by ALPN";
}
