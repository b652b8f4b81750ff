/* bundle_export.h - GET /-/api/v1/pins/<set>/bundle (bundle_export.c) and the import API (bundle_import.c). */
#ifndef LARDER_BUNDLE_EXPORT_H
#define LARDER_BUNDLE_EXPORT_H

#include <h2o.h>
#include "app.h"

/* GET|HEAD /-/api/v1/pins/<set>/bundle: set is the raw <set> part */
void larder_bundle_export(larder_app_t *app, h2o_req_t *req, const char *set, size_t setlen);

/* /-/api/v1/imports[/<id>[/commit]]: rest is what follows "/-/api/v1/imports" (query excluded) */
void larder_bundle_imports(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);

/* the import sessions' state (one at a time), and the reaper of abandoned ones; made by `larder serve` */
typedef struct larder_bundles larder_bundles_t;
larder_bundles_t *larder_bundles_create(larder_app_t *app);
/* removes the temp files of an unfinished import; waits for a commit in progress */
void larder_bundles_destroy(larder_bundles_t *b);

/* the threads that make an export's external data (bundle_export.c) are counted here, so that stopping waits for
 * them: begin is 0, or -1 when larder is stopping (no thread may start then) */
int larder_bundles_export_begin(larder_bundles_t *b);
void larder_bundles_export_end(larder_bundles_t *b);

/* the body limit of PUT /-/api/v1/imports/<id> chunks (the head guard lets them through like seed uploads) */
uint64_t larder_bundle_chunk_max(const larder_config_t *cfg);

#endif
