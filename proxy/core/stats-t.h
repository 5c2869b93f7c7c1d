/*
 * proxy/core/stats-t.h: the type of the proxy's counters (connections, streams, requests by
 * status, upstream errors, overload actions), one block per worker, summed by the reader.
 *
 * Each worker writes only its own block with relaxed atomics (MEM_STAT_ADD); the admin thread
 * sums all blocks (px_stats_sum in proxy/core/worker.h). Gauges (`_active`) go up and down;
 * the rest only grow. Types only, so the protocol folders (h2/, upstream/) may count into a
 * worker's block without including the core's headers.
 */
#ifndef PX_STATS_T_H
#define PX_STATS_T_H

#include "mem/base.h"

typedef struct px_stats_s {
    /* downstream */
    uint64_t conn_accepted;
    uint64_t conn_active;
    uint64_t conn_tls_accepted;
    uint64_t conn_rejected_h1;      /* HTTP/1.1 bytes after ALPN h2: answered 505 */
    uint64_t conn_closed_error;     /* protocol error or TLS failure */
    uint64_t conn_refused_overload; /* not accepted: critical pressure or max_connections */
    uint64_t streams_opened;
    uint64_t streams_active;
    uint64_t streams_reset_by_peer;
    uint64_t streams_reset_by_us;
    uint64_t requests_total;
    uint64_t requests_http1; /* of requests_total: over HTTP/1.x (proxy/h1/) */
    uint64_t requests_http2; /* of requests_total: over HTTP/2 */
    uint64_t responses_1xx, responses_2xx, responses_3xx, responses_4xx, responses_5xx;
    uint64_t bytes_in;  /* read from downstream sockets (preface, frames, TLS records) */
    uint64_t bytes_out; /* written to downstream sockets */
    uint64_t goaway_sent;
    /* upstream */
    uint64_t upstream_conn_opened;
    uint64_t upstream_conn_active;
    uint64_t upstream_connect_failed;
    uint64_t upstream_connect_timeout;
    uint64_t upstream_request_timeout;
    uint64_t upstream_reset;                  /* died mid-stream */
    uint64_t upstream_retries;                /* exchanges sent again to another endpoint */
    uint64_t upstream_retry_budget_exhausted; /* retries the cluster's retry budget refused */
    uint64_t upstream_health_probes;          /* active health checks finished */
    uint64_t upstream_requests;
    uint64_t upstream_tls_handshakes;    /* completed, resumed ones included */
    uint64_t upstream_tls_resumed;       /* handshakes that resumed a session */
    uint64_t upstream_tls_verify_failed; /* the upstream's certificate did not verify: 502 */
    uint64_t upstream_tls_failed;        /* other handshake failures (alerts, ALPN): 502 */
    /* overload */
    uint64_t overload_streams_refused; /* RST_STREAM(REFUSED_STREAM) or 503 */
    uint64_t overload_conns_refused;
    uint64_t overload_goaway_idle;
    uint64_t overload_streams_shed; /* heaviest streams reset at critical */
    uint64_t overload_conns_shed;   /* stalled connections closed under pressure */
    uint64_t stream_cap_resets;     /* stream passed its byte cap */
    uint64_t conn_cap_resets;
    /* hardening */
    uint64_t flood_goaway; /* rapid reset, ping/settings/empty-frame floods */
    uint64_t timeouts_idle;
    uint64_t timeouts_header;
    uint64_t timeouts_send; /* output made no progress for limits.send_timeout */
    /* connections waiting for memory (proxy/core/memwait.c): wake-ups of a worker's list */
    uint64_t memwait_woken_free;  /* by a free on the worker's thread */
    uint64_t memwait_woken_timer; /* by the fallback timer */
    /* of bytes_out: DATA payloads written from the stream buffer's own chunks (no copy) */
    uint64_t bytes_out_borrowed;
} px_stats_t;

#define PX_STATS_FIELDS_CNT (sizeof(px_stats_t) / sizeof(uint64_t))

/* One memory tenant's figures on one worker (a route or cluster with `memory: {limit}`; see
 * proxy/upstream/tenant.h). Written by that worker only with relaxed atomics, summed by the
 * reader. One cache line, so that two workers' rows never share one. */
typedef struct px_tenant_stats_s {
    uint64_t bytes;      /* gauge: what its streams hold, as last counted at their accounting
                            points (sub-arena, buffered body, share of the connection) */
    uint64_t streams;    /* gauge: its streams now */
    uint64_t admitted;   /* streams it was given */
    uint64_t refused;    /* new streams refused past its limit (REFUSED_STREAM or 503) */
    uint64_t shed;       /* streams reset (or stalled connections closed) to bring it under */
    uint64_t shed_bytes; /* what those held when shed */
    uint64_t pad_[2];
} px_tenant_stats_t;
MEM_STATIC_ASSERT(sizeof(px_tenant_stats_t) == 64, "one cache line per worker and tenant");
MEM_STATIC_ASSERT(sizeof(px_stats_t) % sizeof(uint64_t) == 0, "px_stats_t is all uint64_t");

#endif /* PX_STATS_T_H */
