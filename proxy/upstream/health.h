/*
 * proxy/upstream/health.h: the health of a cluster's endpoints, shared by every worker: the
 * active health checker's verdict (health_check:), passive outlier ejection (outlier_detection:,
 * Envoy's semantics), the retry budget (retries:), and the per-endpoint figures /clusters and
 * /metrics show (active requests, connections, failures).
 *
 * Instances: one px_health_t per configuration, attached to it by the main thread before the
 * config is published (px_health_attach: at start, and at each reload before the hand-over) and
 * freed with it at its last px_config_unref; it holds one px_hcluster_t per cluster, each with
 * one px_hep_t per endpoint, in the same order as the config. A px_hcluster_t is reference-
 * counted: a reload gives a cluster that px_config_cluster_same as one of the running config the
 * running one's entry, so its endpoints' state (verdicts, ejections and their remaining time,
 * counts of exchanges and connections in flight) goes on across the reload, and the pools that
 * move to the new config (upstream.c) keep counting into the same entry. A changed cluster starts
 * afresh (every endpoint healthy); its old entry lives as long as the old config does.
 *
 * Thread: any. Fields are read and written with __atomic builtins (relaxed: each is a figure or
 * a verdict on its own; no field orders another). The active checker's fields are written by one
 * worker only (the one that probes, worker 0) and read by all.
 */
#ifndef PX_HEALTH_H
#define PX_HEALTH_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

#include "proxy/config/config.h"

/* Why an endpoint takes no traffic (px_hep_state). */
typedef enum px_hep_state_e {
    PX_HEP_HEALTHY = 0,
    PX_HEP_UNHEALTHY, /* the active check failed unhealthy_threshold times in a row */
    PX_HEP_EJECTED,   /* outlier detection ejected it; see eject_reason */
} px_hep_state_t;

/* What one exchange on an endpoint came to, for outlier detection. */
typedef enum px_hresult_e {
    PX_HRES_OK = 0,     /* a response head below 500 */
    PX_HRES_5XX,        /* a 5xx response head from the upstream (status given) */
    PX_HRES_LOCAL_FAIL, /* connect failure or timeout, reset, timeout: no response head */
} px_hresult_t;

typedef enum px_eject_reason_e {
    PX_EJECT_NONE = 0,
    PX_EJECT_5XX,
    PX_EJECT_GATEWAY,
} px_eject_reason_t;

typedef struct px_hep_s {
    /* Written by any worker. */
    uint64_t ejected_until_ms; /* px_health_now_ms() when the ejection ends; 0 = not ejected */
    uint32_t ejections;        /* the multiplier: ejections not yet decayed by the sweep */
    uint64_t last_until_ms;    /* when the last ejection ended (or ends); kept after it */
    uint32_t cons_5xx;         /* consecutive 5xx (and local failures) */
    uint32_t cons_gateway;     /* consecutive 502/503/504 (and local failures) */
    uint32_t eject_reason;     /* px_eject_reason_t of the current or last ejection */
    uint32_t rq_active;        /* exchanges counted on it now, all workers */
    uint32_t cx_active;        /* connections open to it now, all workers (probes included) */
    uint64_t rq_total;         /* exchanges sent its way, retries included */
    uint64_t rq_5xx;           /* 5xx response heads */
    uint64_t rq_local_fail;    /* connect failures, timeouts, resets */
    uint64_t ejections_total;
    /* Written by the active checker only. */
    uint32_t hc_unhealthy;      /* bool: the check says unhealthy */
    uint32_t hc_pass_run;       /* consecutive passes */
    uint32_t hc_fail_run;       /* consecutive failures */
    uint32_t hc_last_status;    /* the last probe's status, 0 when it got none */
    uint64_t hc_checks;         /* probes finished */
    uint64_t hc_failures;       /* probes failed */
    const char *hc_last_reason; /* borrows (static text): why the last probe failed, or NULL */
} px_hep_t;

typedef struct px_hcluster_s {
    int refs; /* any: atomic; the tables (one per config) that hold it */
    /* Copies of the cluster's settings (equal in every config that shares the entry, as
     * px_config_cluster_same compares them; check.path is NULL: probe.c reads the config's). */
    px_health_check_cfg_t check;
    px_outlier_cfg_t outlier;
    uint32_t retry_budget_percent;
    uint32_t retry_min_concurrency;
    uint32_t ejected_cnt;    /* endpoints ejected now */
    uint32_t rq_active;      /* exchanges in flight, all workers (the budget's base) */
    uint32_t retries_active; /* of those, exchanges that retried */
    uint64_t retries_total;
    uint64_t retries_budget_exhausted; /* retries refused by the budget */
    uint64_t ejections_overflow;       /* ejections refused by max_ejection_percent */
    size_t eps_cnt;
    px_hep_t eps[]; /* cfg->endpoints_cnt, same order */
} px_hcluster_t;

typedef struct px_health_s {
    const px_config_t *cfg;   /* borrows: the config it describes (and usually belongs to) */
    px_hcluster_t **clusters; /* owns a reference on each: cfg->clusters_cnt, same order */
    size_t clusters_cnt;
} px_health_t;

/* Monotonic milliseconds (CLOCK_MONOTONIC), the same clock on every thread. */
uint64_t px_health_now_ms(void);

/* Makes the health table of `cfg`: each cluster that px_config_cluster_same as a cluster of
 * `prev`'s table shares that entry (its state goes on), the others start with every endpoint
 * healthy. `prev` may be NULL. Returns 0 or -ENOMEM.
 * Ownership: gives (px_health_free); borrows `prev` for the call. Thread: main. Alloc: tcache. */
int px_health_new(const px_config_t *cfg, const px_health_t *prev, px_health_t **out);
/* Drops the table's references on its entries and frees it. NULL is ignored. Thread: any. */
void px_health_free(px_health_t *h);

/* Makes the table of `cfg` (px_health_new, carrying over from `prev`'s table when `prev` has
 * one) and attaches it to `cfg` (cfg->health, freed with cfg). Returns 0 or -ENOMEM (nothing
 * attached). Thread: main, before `cfg` is published. Alloc: tcache. */
int px_health_attach(px_config_t *cfg, const px_config_t *prev);

/* The table attached to `cfg`, or NULL. Getter. */
static inline px_health_t *px_health_of(const px_config_t *cfg)
{
    return cfg != NULL ? (px_health_t *)cfg->health : NULL;
}

/* The entry of cluster `cfg` (one of h->cfg's clusters, by identity), or NULL. Getter. */
px_hcluster_t *px_health_cluster(const px_health_t *h, const px_cluster_cfg_t *cfg);

/* One cluster's entry (reference count 1; for a worker that has no shared table: driver tests).
 * Ownership: gives (px_hcluster_unref). Alloc: tcache. */
px_hcluster_t *px_hcluster_new(const px_cluster_cfg_t *cfg);
/* Drops one reference; the last frees the entry. NULL is ignored. Thread: any. */
void px_hcluster_unref(px_hcluster_t *hc);

/* The state of endpoint `idx` at `now_ms`, and with PX_HEP_EJECTED its reason. Getter. */
px_hep_state_t px_hep_state(const px_hcluster_t *hc, size_t idx, uint64_t now_ms);

/* True when endpoint `idx` may take traffic at `now_ms`: healthy by the active check and not
 * ejected. An ejection whose time has passed ends here (the first caller to see it). */
bool px_hep_usable(px_hcluster_t *hc, size_t idx, uint64_t now_ms);

/* Records the outcome of one exchange on endpoint `idx` and ejects it when a consecutive count
 * reaches its threshold and max_ejection_percent allows (cluster with outlier_detection).
 * Returns true when this call ejected it. */
bool px_health_report(px_hcluster_t *hc, size_t idx, px_hresult_t res, int status, uint64_t now_ms);

/* Ends ejections that have run out and decays the multiplier of endpoints that stayed in for a
 * whole interval (Envoy: one step per interval). Thread: the one worker that sweeps. */
void px_health_sweep(px_hcluster_t *hc, uint64_t now_ms);

/* Records an active probe of endpoint `idx`: `pass`, the status it got (0: none) and why it
 * failed (static). Returns true when the verdict changed. Thread: the checker only. */
bool px_health_probe_result(px_hcluster_t *hc, size_t idx, bool pass, int status,
                            const char *reason);

/* Asks the retry budget for one retry: allowed while the retries in flight stay under
 * max(min_retry_concurrency, budget_percent of the active requests). On true the caller holds
 * one retry (px_health_retry_end). */
bool px_health_retry_begin(px_hcluster_t *hc);
void px_health_retry_end(px_hcluster_t *hc);

/* Per-endpoint counters of exchanges and connections (relaxed atomic adds). */
static inline void px_hep_rq_add(px_hcluster_t *hc, size_t idx, int d)
{
    MEM_ASSERT_HOT(idx < hc->eps_cnt);
    __atomic_add_fetch(&hc->eps[idx].rq_active, (uint32_t)d, __ATOMIC_RELAXED);
    __atomic_add_fetch(&hc->rq_active, (uint32_t)d, __ATOMIC_RELAXED);
    if (d > 0)
        __atomic_add_fetch(&hc->eps[idx].rq_total, 1, __ATOMIC_RELAXED);
}

static inline void px_hep_cx_add(px_hcluster_t *hc, size_t idx, int d)
{
    MEM_ASSERT_HOT(idx < hc->eps_cnt);
    __atomic_add_fetch(&hc->eps[idx].cx_active, (uint32_t)d, __ATOMIC_RELAXED);
}

/* Static names for JSON and metrics. */
const char *px_hep_state_name(px_hep_state_t s);
const char *px_eject_reason_name(px_eject_reason_t r);

#endif /* PX_HEALTH_H */
