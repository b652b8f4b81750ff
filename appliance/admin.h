/* admin.h - /-/health, /-/metrics, the JSON admin API under /-/api/v1/ and the embedded web UI at /-/ui/. */
#ifndef LARDER_ADMIN_H
#define LARDER_ADMIN_H

#include <h2o.h>
#include "app.h"

void larder_admin_handle(larder_app_t *app, h2o_req_t *req);
/* an admin write's token check: 1, or 0 with the request answered (403 without admin.token, 401 with a JSON error) */
int larder_admin_authorized(larder_app_t *app, h2o_req_t *req);

/* /-/api/v1/jobs (rest NULL) and /-/api/v1/jobs/<rest> (jobs_api.c) */
void larder_jobs_api(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);

/* embedded web UI assets (generated at build time from webui/) */
typedef struct larder_asset {
    const char *path; /* "index.html" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} larder_asset_t;
extern const larder_asset_t larder_webui_assets[];
extern const size_t larder_webui_nassets;

#endif
