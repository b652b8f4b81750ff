/* metrics.h - per-protocol counters (atomics), rendered as Prometheus text at /-/metrics. */
#ifndef LARDER_METRICS_H
#define LARDER_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "store.h"

/* one enum of cache statuses, shown in X-Larder-Cache, logs and metrics */
enum larder_cache_status {
    LARDER_CACHE_HIT = 0,
    LARDER_CACHE_MISS,
    LARDER_CACHE_STALE,
    LARDER_CACHE_REVALIDATED,
    LARDER_CACHE_EXPIRED,
    LARDER_CACHE_BYPASS,
    LARDER_NCACHE_STATUS
};
const char *larder_cache_status_name(int s);

/* Lifetime totals: history.c restores them from the store at start-up and persists them (with the time series of
 * their increments) every few seconds and at shutdown, so they survive restarts. */
typedef struct larder_metrics {
    _Atomic uint64_t requests[LARDER_MAX_PROTO]; /* every request answered by a module (errors included) */
    _Atomic uint64_t responses[LARDER_MAX_PROTO][LARDER_NCACHE_STATUS];
    _Atomic uint64_t bytes_served[LARDER_MAX_PROTO];
    _Atomic uint64_t bytes_upstream[LARDER_MAX_PROTO]; /* from upstreams, for fetches clients started */
    _Atomic uint64_t bytes_seed[LARDER_MAX_PROTO];     /* from upstreams, for fetches seed jobs started */
    _Atomic uint64_t bytes_saved[LARDER_MAX_PROTO];    /* served on HIT, STALE and REVALIDATED answers */
    _Atomic uint64_t errors[LARDER_MAX_PROTO];
    _Atomic int64_t client_connections; /* open now, on every worker and listener (server.c) */
} larder_metrics_t;

/* the end of one answer of a module: counts the request, its body bytes, and the bytes the cache saved (an answer
 * from a stored copy: HIT, STALE, REVALIDATED); cache_status < 0: none */
void larder_metrics_answered(larder_metrics_t *m, int proto, int cache_status, uint64_t sent);

/* Prometheus text exposition; malloc'd, caller frees */
char *larder_metrics_render(const larder_metrics_t *m, larder_store_t *store, const larder_config_t *cfg,
                            int fetches_active, size_t *len);

#endif
