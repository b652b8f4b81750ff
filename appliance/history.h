/* history.h - the counters' lifetime totals and their time series, kept in the store (GET /-/api/v1/history). */
#ifndef LARDER_HISTORY_H
#define LARDER_HISTORY_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"

/* the counters of one protocol, in the order of their persisted records (append only: a record with fewer values
 * reads the missing ones as 0) */
enum {
    LARDER_H_REQUESTS = 0,
    LARDER_H_HITS,
    LARDER_H_MISSES,
    LARDER_H_STALE,
    LARDER_H_REVALIDATED,
    LARDER_H_EXPIRED,
    LARDER_H_BYPASS,
    LARDER_H_ERRORS,
    LARDER_H_BYTES_SERVED,
    LARDER_H_BYTES_UPSTREAM,
    LARDER_H_BYTES_SEED,
    LARDER_H_BYTES_SAVED,
    LARDER_H_NCOUNTERS
};
/* "requests", "hits", ...: the JSON names */
extern const char *const larder_history_counter_names[LARDER_H_NCOUNTERS];

/* the counters of protocol p in app->metrics as v[LARDER_H_NCOUNTERS] (lifetime totals once history.c restored them) */
void larder_history_counters(const larder_metrics_t *m, int p, uint64_t *v);

/* the kept resolutions */
#define LARDER_HISTORY_MINUTE_KEEP (25ULL * 3600)     /* minute buckets: a day, and an hour of margin */
#define LARDER_HISTORY_HOUR_KEEP (91ULL * 24 * 3600)  /* hour buckets: 90 days, and a day of margin */

/* "1h" -> 3600 for the range names (1h 24h 7d 30d 90d) or the step names (1m 5m 15m 1h 6h 1d); 0 when not one */
uint64_t larder_history_range(const char *s);
uint64_t larder_history_step(const char *s);
/* The window of a query at `now`: the steps [start, end) end with the step that holds now (steps aligned on
 * multiples of step since the epoch), n = range / step points. *resolution: the bucket size it reads (60 for ranges
 * up to a day, else 3600). 0, or -1 when the step is finer than that resolution or coarser than the range: then
 * `allowed` gets the step names that are allowed for the range ("1h, 6h, 1d"). */
int larder_history_window(uint64_t now, uint64_t range, uint64_t step, uint64_t *start, uint64_t *end, size_t *n,
                          uint64_t *resolution, char *allowed, size_t allowedlen);
/* a bucket's or the totals' record: "1 v0 v1 ..." (after the version, the totals have their `since` first);
 * parse adds the values found to v (missing ones count 0); 0, or -1 when malformed */
size_t larder_history_format(char *out, size_t outlen, const uint64_t *v, size_t nv);
int larder_history_parse(const char *s, size_t len, uint64_t *v, size_t nv);

typedef struct larder_history larder_history_t;
/* Restores the lifetime totals from the store into app->metrics (before any request is served) and starts the
 * thread that persists them and their increments every 10 s. NULL on failure (a message logged). */
larder_history_t *larder_history_create(larder_app_t *app);
/* the last flush, then the thread stops; after every counter's last increment (the fetcher and jobs destroyed) */
void larder_history_destroy(larder_history_t *h);
/* the oldest time the persisted totals count from */
uint64_t larder_history_since(larder_history_t *h);
/* GET /-/api/v1/history?range=&step= */
void larder_history_handle(larder_app_t *app, h2o_req_t *req);

#endif
