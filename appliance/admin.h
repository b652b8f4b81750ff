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
/* ---- shared by the handlers under /-/ (admin_util.c) ---- */
struct json_t;
/* answer with j as compact JSON (takes j; NULL: a 500) */
void larder_admin_send_json(larder_app_t *app, h2o_req_t *req, int status, struct json_t *j);
/* {"error": msg} with status */
void larder_admin_error(larder_app_t *app, h2o_req_t *req, int status, const char *msg);
/* 1 when the request's method is one of allow ("GET, HEAD"); else 0 with a 405 answered, Allow: <allow> */
int larder_admin_allow(larder_app_t *app, h2o_req_t *req, const char *allow);
/* query parameter `name`, percent-decoded ('+' is a space): 1, 0 when absent, -1 when malformed, holding a NUL
 * or longer than outlen - 1 */
int larder_admin_query(h2o_req_t *req, const char *name, char *out, size_t outlen);
/* the same on a query string (without the '?'), for the fuzzer */
int larder_admin_query_in(const char *query, size_t len, const char *name, char *out, size_t outlen);
/* an entries cursor: the hex of a store name. decode: 0, or -1 for anything encode cannot have made (odd length,
 * not hex, a NUL byte, empty, not fitting outlen with its NUL); encode: malloc'd, NULL when out of memory */
int larder_admin_cursor_decode(const char *hex, char *out, size_t outlen);
char *larder_admin_cursor_encode(const char *name);
/* X-Content-Type-Options: nosniff on every /-/ answer; with ui the UI's Content-Security-Policy and
 * Referrer-Policy: no-referrer as well */
void larder_admin_common_headers(h2o_req_t *req, int ui);

/* ---- admin_entries.c ---- */
/* /-/api/v1/entries: GET lists (paged), DELETE removes one */
void larder_admin_entries(larder_app_t *app, h2o_req_t *req);
/* POST /-/api/v1/pins/<set>/entries {"protocol", "key"}: pins one cached entry */
void larder_admin_pin_entry(larder_app_t *app, h2o_req_t *req, const char *set, size_t setlen);
/* GET /-/api/v1/info: what the UI's Clients page needs */
void larder_admin_info(larder_app_t *app, h2o_req_t *req);

#define LARDER_VERSION "0.1.0"

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
