/* app.h - the daemon's shared context: what worker threads, the fetch thread and jobs all reach. */
#ifndef LARDER_APP_H
#define LARDER_APP_H

#include "config.h"
#include "fetch.h"
#include "metrics.h"
#include "store.h"

typedef struct larder_jobs larder_jobs_t;
typedef struct larder_record larder_record_t;
typedef struct larder_bundles larder_bundles_t;
typedef struct larder_history larder_history_t;
typedef struct larder_upstreams larder_upstreams_t;

typedef struct larder_app {
    const larder_config_t *cfg;
    larder_store_t *store;
    larder_fetcher_t *fetcher;
    larder_jobs_t *jobs;
    larder_record_t *record; /* recording (record.h); NULL outside `larder serve` */
    larder_bundles_t *bundles; /* bundle imports (bundle_import.c) */
    larder_metrics_t metrics; /* lifetime totals (restored and persisted by history.c) */
    larder_history_t *history; /* the counters' persistence and time series (history.h); NULL outside `serve` */
    larder_upstreams_t *upstreams; /* every configured upstream's health and hold-off (upstreams.h) */
    uint64_t started_at;
} larder_app_t;

#endif
