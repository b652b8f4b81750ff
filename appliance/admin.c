/* admin.c - everything under /-/: health, Prometheus metrics, the JSON admin API and the embedded web UI.
 *
 *   GET  /-/health                 200 {"status":"ok",...}
 *   GET  /-/metrics                Prometheus text
 *   GET  /-/ui/...                 static UI embedded at build time
 *   GET  /-/api/v1/stats           usage per protocol, quotas, fetches in flight, lifetime counters
 *   GET  /-/api/v1/history?range=&step=   the counters' time series (history.c)
 *   GET  /-/api/v1/upstreams       every upstream's health and hold-off (upstreams.c)
 *   GET  /-/api/v1/entries?...     paged list; DELETE one entry; POST /-/api/v1/pins/<set>/entries pins one
 *                                  (admin_entries.c);  GET /-/api/v1/info: for client set-up (admin_info.c)
 *   GET  /-/api/v1/pins            pin sets with their sizes;  GET /-/api/v1/pins/<set>: its entries
 *   DELETE /-/api/v1/pins/<set>    unpin a set (entries stay cached until evicted)
 *   GET  /-/api/v1/pins/<set>/spec the seed spec that makes the set again elsewhere (YAML, pinspec.c)
 *   /-/api/v1/jobs[/<id>[/retry]]  seed jobs: submit, list, cancel, retry (jobs_api.c)
 *   POST /-/api/v1/record          body {"pin_set": NAME, "client": ADDR} (client optional): start recording;
 *                                  GET: the recording's state; DELETE: stop it (record.h)
 * Reads are open; every write needs `Authorization: Bearer <admin.token>` and is refused outright when no
 * token is configured. The dispatcher checks each path's methods (405 with Allow, admin_util.c) before its
 * handler runs, and adds the headers every /-/ answer carries. Responses are built with jansson in the request's
 * pool; no state lives here. */
#include "admin.h"
#include "bundle_export.h"
#include "cache.h"
#include "history.h"
#include "jobs.h"
#include "log.h"
#include "pinspec.h"
#include "record.h"
#include "upstreams.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERSION "0.1.0"

static int method_is(h2o_req_t *req, const char *m)
{
    return req->input.method.len == strlen(m) && memcmp(req->input.method.base, m, req->input.method.len) == 0;
}

static void send_json(larder_app_t *app, h2o_req_t *req, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    size_t n = strlen(s);
    static const char *reasons[] = {"OK", "Accepted"};
    larder_send_text(app, req, -1, status, status == 202 ? reasons[1] : status == 200 ? reasons[0] : "Error",
                     "application/json", s, n);
    free(s);
}

static void json_error(larder_app_t *app, h2o_req_t *req, int status, const char *reason, const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    larder_send_text(app, req, -1, status, reason, "application/json", s, strlen(s));
    free(s);
}

int larder_admin_authorized(larder_app_t *app, h2o_req_t *req)
{
    const char *tok = app->cfg->admin_token;
    if (!tok) {
        json_error(app, req, 403, "Forbidden", "admin writes are disabled: set admin.token in larder.yaml");
        return 0;
    }
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    size_t tl = strlen(tok);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len == 7 + tl && strncasecmp(v.base, "Bearer ", 7) == 0 && CRYPTO_memcmp(v.base + 7, tok, tl) == 0)
            return 1;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer realm=\"larder\""));
    json_error(app, req, 401, "Unauthorized", "missing or wrong admin token (Authorization: Bearer <admin.token>)");
    return 0;
}

/* ---- handlers ---- */

static void health(larder_app_t *app, h2o_req_t *req)
{
    larder_store_stats_t s;
    larder_store_get_stats(app->store, &s);
    json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:i}", "status", "ok", "version", VERSION, "offline",
                          app->cfg->offline, "uptime", (json_int_t)(larder_now() - app->started_at), "blob_bytes",
                          (json_int_t)s.blob_bytes, "blobs", (json_int_t)s.blob_count, "fetches_active",
                          larder_fetcher_active(app->fetcher));
    send_json(app, req, 200, j);
}

static void metrics(larder_app_t *app, h2o_req_t *req)
{
    size_t len;
    char *text = larder_metrics_render(&app->metrics, app->store, app->cfg, larder_fetcher_active(app->fetcher), &len);
    larder_send_text(app, req, -1, 200, "OK", "text/plain; version=0.0.4", text, len);
    free(text);
}

/* the persisted lifetime counters (history.c) of one protocol's v[] (LARDER_H_*), or of the sum */
static void add_counters(json_t *o, const uint64_t *v)
{
    for (int i = 0; i < LARDER_H_NCOUNTERS; i++)
        json_object_set_new(o, larder_history_counter_names[i], json_integer((json_int_t)v[i]));
    /* answers from a stored copy over every answer of the cache (pass-through answers are not) */
    uint64_t from_store = v[LARDER_H_HITS] + v[LARDER_H_STALE] + v[LARDER_H_REVALIDATED];
    uint64_t answers = from_store + v[LARDER_H_MISSES] + v[LARDER_H_EXPIRED];
    json_object_set_new(o, "hit_ratio", answers ? json_real((double)from_store / (double)answers) : json_null());
}

static void stats(larder_app_t *app, h2o_req_t *req)
{
    larder_store_stats_t s;
    larder_store_get_stats(app->store, &s);
    json_t *protos = json_object();
    uint64_t total[LARDER_H_NCOUNTERS] = {0}, tbytes = 0, tentries = 0, tevictions = 0;
    for (int p = 0; p < larder_proto_count(); p++) {
        uint64_t v[LARDER_H_NCOUNTERS];
        larder_history_counters(&app->metrics, p, v);
        json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:b}", "bytes", (json_int_t)s.entry_bytes[p], "entries",
                              (json_int_t)s.entry_count[p], "quota", (json_int_t)app->cfg->proto[p].quota,
                              "evictions", (json_int_t)s.evictions[p], "enabled", app->cfg->proto[p].enabled);
        add_counters(o, v);
        for (int i = 0; i < LARDER_H_NCOUNTERS; i++)
            total[i] += v[i];
        tbytes += s.entry_bytes[p];
        tentries += s.entry_count[p];
        tevictions += s.evictions[p];
        json_object_set_new(protos, larder_proto_name(p), o);
    }
    json_t *tot = json_pack("{s:I, s:I, s:I}", "bytes", (json_int_t)tbytes, "entries", (json_int_t)tentries,
                            "evictions", (json_int_t)tevictions);
    add_counters(tot, total);
    uint64_t since = app->history ? larder_history_since(app->history) : app->started_at;
    json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:b, s:i, s:o, s:o, s:I}", "blob_bytes", (json_int_t)s.blob_bytes,
                          "blobs", (json_int_t)s.blob_count, "external_bytes", (json_int_t)s.external_bytes,
                          "quota_total", (json_int_t)app->cfg->quota_total, "min_free", (json_int_t)app->cfg->min_free,
                          "offline", app->cfg->offline, "fetches_active", larder_fetcher_active(app->fetcher),
                          "protocols", protos, "total", tot, "counters_since", (json_int_t)since);
    send_json(app, req, 200, j);
}

typedef struct pins_ctx {
    larder_app_t *app;
    json_t *obj; /* set -> {entries, bytes} or, for one set, array of entries */
    int one_set;
} pins_ctx_t;

static int pin_cb(void *arg, const char *set, int proto, const char *key)
{
    pins_ctx_t *c = arg;
    larder_entry_t e;
    int have = proto >= 0 && larder_store_get(c->app->store, proto, key, &e) == 0;
    if (c->one_set) {
        json_t *o = json_pack("{s:s, s:s, s:b}", "protocol", proto >= 0 ? larder_proto_name(proto) : "?", "key", key,
                              "cached", have);
        if (have) {
            json_object_set_new(o, "size", json_integer((json_int_t)e.size));
            json_object_set_new(o, "sha256", json_string(e.digest));
        }
        json_array_append_new(c->obj, o);
    } else {
        json_t *s = json_object_get(c->obj, set);
        if (!s) {
            s = json_pack("{s:s, s:I, s:I, s:I, s:I}", "name", set, "entries", (json_int_t)0, "bytes", (json_int_t)0,
                          "exclusive_entries", (json_int_t)0, "exclusive_bytes", (json_int_t)0);
            json_object_set_new(c->obj, set, s);
        }
        json_object_set_new(s, "entries", json_integer(json_integer_value(json_object_get(s, "entries")) + 1));
        if (have)
            json_object_set_new(s, "bytes", json_integer(json_integer_value(json_object_get(s, "bytes")) +
                                                         (json_int_t)e.size));
        /* pinned by this set only: evictable once it is unpinned (external bytes, a mirror's, included) */
        if (have && larder_store_pin_count(c->app->store, proto, key) == 1) {
            json_t *xe = json_object_get(s, "exclusive_entries"), *xb = json_object_get(s, "exclusive_bytes");
            json_integer_set(xe, json_integer_value(xe) + 1);
            json_integer_set(xb, json_integer_value(xb) + (json_int_t)(e.size + e.external));
        }
    }
    if (have)
        larder_entry_clear(&e);
    return 0;
}

static void pins(larder_app_t *app, h2o_req_t *req, const char *set, size_t setlen)
{
    char name[80];
    if (set) {
        if (!larder_pin_set_name_ok(set, setlen)) {
            json_error(app, req, 400, "Bad Request", "pin set names are [A-Za-z0-9._-]{1,64}");
            return;
        }
        memcpy(name, set, setlen);
        name[setlen] = 0;
    }
    if (method_is(req, "DELETE") && set) {
        if (!larder_admin_authorized(app, req))
            return;
        int r = larder_store_delete_pin_set(app->store, name);
        if (r == -ENOENT) {
            json_error(app, req, 404, "Not Found", "no such pin set");
            return;
        }
        if (r < 0) {
            json_error(app, req, 500, "Internal Server Error", "could not delete the pin set; see the log");
            return;
        }
        larder_info("admin: pin set %s deleted (%d entries unpinned)", name, r);
        send_json(app, req, 200, json_pack("{s:s, s:i}", "deleted", name, "unpinned", r));
        return;
    }
    if (!method_is(req, "GET") && !method_is(req, "HEAD")) {
        json_error(app, req, 405, "Method Not Allowed", "use GET, or DELETE on /-/api/v1/pins/<set>");
        return;
    }
    pins_ctx_t c = {app, set ? json_array() : json_object(), set != NULL};
    if (larder_store_each_pin(app->store, set ? name : NULL, pin_cb, &c) < 0) {
        json_decref(c.obj);
        json_error(app, req, 500, "Internal Server Error", "metadata store read failed; see the log");
        return;
    }
    if (set) {
        if (json_array_size(c.obj) == 0) {
            json_decref(c.obj);
            json_error(app, req, 404, "Not Found", "no such pin set");
            return;
        }
        send_json(app, req, 200, json_pack("{s:s, s:o}", "name", name, "entries", c.obj));
        return;
    }
    json_t *arr = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(c.obj, k, v) json_array_append(arr, v);
    json_decref(c.obj);
    send_json(app, req, 200, json_pack("{s:o}", "pin_sets", arr));
}

/* GET /-/api/v1/pins/<set>/spec: YAML for `larder seed` */
static void pin_set_spec(larder_app_t *app, h2o_req_t *req, const char *set, size_t setlen)
{
    char name[80], *yaml = NULL;
    if (!larder_pin_set_name_ok(set, setlen)) {
        json_error(app, req, 400, "Bad Request", "pin set names are [A-Za-z0-9._-]{1,64}");
        return;
    }
    if (!method_is(req, "GET") && !method_is(req, "HEAD")) {
        json_error(app, req, 405, "Method Not Allowed", "use GET on /-/api/v1/pins/<set>/spec");
        return;
    }
    memcpy(name, set, setlen);
    name[setlen] = 0;
    int r = larder_pins_spec(app->cfg, app->store, name, &yaml);
    if (r == -ENOENT)
        json_error(app, req, 404, "Not Found", "no such pin set");
    else if (r < 0)
        json_error(app, req, 500, "Internal Server Error", "could not read the pin set; see the log");
    else
        larder_send_text(app, req, -1, 200, "OK", "application/yaml", yaml, strlen(yaml));
    if (r < 0 && r != -ENOENT)
        larder_err("admin: the spec of pin set %s: %s", name, strerror(-r));
    free(yaml);
}

static void ui(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    if (len == 0) {
        rest = "index.html";
        len = strlen(rest);
    }
    for (size_t i = 0; i < larder_webui_nassets; i++) {
        const larder_asset_t *a = &larder_webui_assets[i];
        if (strlen(a->path) == len && memcmp(a->path, rest, len) == 0) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
            larder_send_text(app, req, -1, 200, "OK", a->content_type, (const char *)a->data, a->len);
            return;
        }
    }
    larder_send_error(app, req, -1, 404, "Not Found", "no such UI file");
}

static json_t *record_json(const larder_record_status_t *s)
{
    json_t *j = json_pack("{s:b}", "recording", s->active);
    if (s->set[0]) {
        json_object_set_new(j, "pin_set", json_string(s->set));
        json_object_set_new(j, "client", s->client[0] ? json_string(s->client) : json_null());
        json_object_set_new(j, "started_at", json_integer((json_int_t)s->started_at));
        if (!s->active)
            json_object_set_new(j, "stopped_at", json_integer((json_int_t)s->stopped_at));
        json_object_set_new(j, "recorded", json_integer((json_int_t)s->recorded));
        json_object_set_new(j, "served", json_integer((json_int_t)s->served));
        json_object_set_new(j, "skipped", json_integer((json_int_t)s->skipped));
    }
    return j;
}

static void record(larder_app_t *app, h2o_req_t *req)
{
    larder_record_status_t s;
    if (!app->record) {
        json_error(app, req, 503, "Service Unavailable", "recording is not available");
        return;
    }
    if (method_is(req, "GET") || method_is(req, "HEAD")) {
        larder_record_get(app->record, &s);
        send_json(app, req, 200, record_json(&s));
        return;
    }
    if (method_is(req, "POST")) {
        if (!larder_admin_authorized(app, req))
            return;
        if (req->entity.len > 4096) {
            json_error(app, req, 413, "Payload Too Large", "a record request is a small JSON object");
            return;
        }
        json_error_t je;
        json_t *j = req->entity.base && req->entity.len ? json_loadb(req->entity.base, req->entity.len, 0, &je) : NULL;
        const char *set = json_string_value(json_object_get(j, "pin_set"));
        json_t *cl = json_object_get(j, "client");
        if (!json_is_object(j) || !set || (cl && !json_is_null(cl) && !json_is_string(cl))) {
            json_decref(j);
            json_error(app, req, 400, "Bad Request",
                       "expected a JSON object {\"pin_set\": NAME, \"client\": ADDR} (client optional)");
            return;
        }
        char err[256];
        int r = larder_record_start(app->record, set, json_string_value(cl), err, sizeof(err));
        json_decref(j);
        if (r < 0) {
            json_error(app, req, r == -EBUSY ? 409 : 400, r == -EBUSY ? "Conflict" : "Bad Request", err);
            return;
        }
        larder_record_get(app->record, &s);
        send_json(app, req, 200, record_json(&s));
        return;
    }
    if (method_is(req, "DELETE")) {
        if (!larder_admin_authorized(app, req))
            return;
        if (larder_record_stop(app->record) < 0) {
            json_error(app, req, 404, "Not Found", "nothing is recording");
            return;
        }
        larder_record_get(app->record, &s);
        send_json(app, req, 200, record_json(&s));
        return;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, POST, DELETE"));
    json_error(app, req, 405, "Method Not Allowed", "use GET, POST or DELETE on /-/api/v1/record");
}

void larder_admin_handle(larder_app_t *app, h2o_req_t *req)
{
    const char *p = req->input.path.base;
    size_t len = req->input.query_at != SIZE_MAX ? req->input.query_at : req->input.path.len;
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(p, lit, len) == 0)
#define STARTS(lit) (len >= sizeof(lit) - 1 && memcmp(p, lit, sizeof(lit) - 1) == 0)
#define ENDS(lit) (len > sizeof(lit) - 1 && memcmp(p + len - (sizeof(lit) - 1), lit, sizeof(lit) - 1) == 0)
#define ALLOW(methods) larder_admin_allow(app, req, methods)
    static const char reads[] = "GET, HEAD";
    larder_admin_common_headers(req, IS("/-/ui") || STARTS("/-/ui/"));
    if (IS("/-/health")) {
        if (ALLOW(reads))
            health(app, req);
    } else if (IS("/-/metrics")) {
        if (ALLOW(reads))
            metrics(app, req);
    } else if (IS("/-/ui")) {
        if (ALLOW(reads)) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, H2O_STRLIT("/-/ui/"));
            larder_send_text(app, req, -1, 301, "Moved Permanently", "text/plain", "", 0);
        }
    } else if (STARTS("/-/ui/")) {
        if (ALLOW(reads))
            ui(app, req, p + 6, len - 6);
    } else if (IS("/-/api/v1/stats")) {
        if (ALLOW(reads))
            stats(app, req);
    } else if (IS("/-/api/v1/history")) {
        if (ALLOW(reads))
            larder_history_handle(app, req);
    } else if (IS("/-/api/v1/upstreams")) {
        if (ALLOW(reads))
            larder_upstreams_handle(app, req);
    } else if (IS("/-/api/v1/entries"))
        larder_admin_entries(app, req);
    else if (IS("/-/api/v1/info"))
        larder_admin_info(app, req);
    else if (IS("/-/api/v1/pins")) {
        if (ALLOW(reads))
            pins(app, req, NULL, 0);
    } else if (STARTS("/-/api/v1/pins/") && len > 20 && ENDS("/spec")) {
        if (ALLOW(reads))
            pin_set_spec(app, req, p + 15, len - 20);
    } else if (STARTS("/-/api/v1/pins/") && len > 22 && ENDS("/bundle")) {
        if (ALLOW(reads))
            larder_bundle_export(app, req, p + 15, len - 22);
    } else if (STARTS("/-/api/v1/pins/") && len > 23 && ENDS("/entries"))
        larder_admin_pin_entry(app, req, p + 15, len - 23);
    else if (STARTS("/-/api/v1/pins/")) {
        if (ALLOW("GET, HEAD, DELETE"))
            pins(app, req, p + 15, len - 15);
    } else if (IS("/-/api/v1/imports") || STARTS("/-/api/v1/imports/")) {
        if (ALLOW(len <= 18 || ENDS("/commit") ? "POST" : "GET, HEAD, PUT, DELETE"))
            larder_bundle_imports(app, req, p + 17, len - 17);
    } else if (IS("/-/api/v1/jobs"))
        larder_jobs_api(app, req, NULL, 0);
    else if (IS("/-/api/v1/record")) {
        if (ALLOW("GET, HEAD, POST, DELETE"))
            record(app, req);
    } else if (STARTS("/-/api/v1/jobs/"))
        larder_jobs_api(app, req, p + 15, len - 15);
    else
        json_error(app, req, 404, "Not Found", "unknown admin path; see docs/operations.md");
#undef IS
#undef STARTS
#undef ENDS
#undef ALLOW
}
