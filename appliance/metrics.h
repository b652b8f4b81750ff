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

typedef struct larder_metrics {
    _Atomic uint64_t responses[LARDER_MAX_PROTO][LARDER_NCACHE_STATUS];
    _Atomic uint64_t bytes_served[LARDER_MAX_PROTO];
    _Atomic uint64_t bytes_upstream[LARDER_MAX_PROTO];
    _Atomic uint64_t errors[LARDER_MAX_PROTO];
} larder_metrics_t;

/* Prometheus text exposition; malloc'd, caller frees */
char *larder_metrics_render(const larder_metrics_t *m, larder_store_t *store, const larder_config_t *cfg,
                            int fetches_active, size_t *len);

#endif
