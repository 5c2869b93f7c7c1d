/*
 * proxy/upstream/tls.h: TLS toward upstreams, the client side: a cluster's SSL_CTX (trust
 * anchors, verification, client certificate, ALPN, the session cache hook), and the set-up of
 * one connection's SSL (SNI, the host name to verify, the session to resume).
 *
 * A cluster's context is made by the main thread before the workers start (so that a bad CA,
 * certificate or key is an error at start and in --check-config), stored in the cluster's
 * config, and shared read-only by the workers. Sessions are kept per endpoint per worker by
 * upstream.c: px_uptls_conn_new points the SSL at the endpoint's slot, and OpenSSL's
 * new-session callback fills it, so that pooled reconnects resume instead of paying a full
 * handshake.
 */
#ifndef PX_UPTLS_H
#define PX_UPTLS_H

#include "mem/base.h"

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "proxy/config/config.h"

/* Makes the client context of `cl` (cl->tls set): TLS 1.2 or later, peer verification unless
 * cl->tls_verify is false, trust anchors from cl->tls_ca or the system bundle, the client
 * certificate and key when set, ALPN "h2" or "http/1.1" after cl->proto, client session
 * caching through the endpoint slots. Returns NULL and a one-line reason naming the cluster
 * in `err`. Ownership: gives (SSL_CTX_free). Thread: main. Alloc: OpenSSL (mem facade). */
SSL_CTX *px_uptls_ctx_new(const px_cluster_cfg_t *cl, char *err, size_t err_len);

/* Makes the contexts of every TLS cluster of `cfg` (cfg->clusters[i].tls_ctx, freed with the
 * config). Returns 0, or -EINVAL with the reason in `err`. Thread: main. */
int px_uptls_config_init(px_config_t *cfg, char *err, size_t err_len);

/* Sets up `ssl` (client role, from px_tlsio_new) for a connection to `ep` of `cl`: SNI
 * (cl->tls_sni, else ep's host when it is a name), the name or address verification checks,
 * the session to offer (`*sess_slot` when set), and `sess_slot` as where a new session goes.
 * `sess_slot` must outlive `ssl` (the endpoint outlives its connections). Returns 0 or -ENOMEM.
 * Thread: worker. Alloc: OpenSSL. */
int px_uptls_conn_setup(SSL *ssl, const px_cluster_cfg_t *cl, const px_addr_t *ep,
                        SSL_SESSION **sess_slot);

/* After a failed handshake: a short static reason for the 502 body and the log ("upstream TLS
 * certificate verify failed: self-signed certificate", "upstream TLS handshake failed"), and
 * whether it was the certificate verification (`*verify`). Getter: never allocates. */
const char *px_uptls_fail_reason(const SSL *ssl, bool *verify);

/* After a completed handshake: NULL when ALPN agreed on what `cl` speaks, else a static reason
 * (an h2 cluster whose upstream did not select "h2"). */
const char *px_uptls_alpn_check(const SSL *ssl, const px_cluster_cfg_t *cl);

#endif /* PX_UPTLS_H */
