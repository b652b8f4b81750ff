/* jobs_api.c - the seed jobs' HTTP API (docs/operations.md), called by admin.c's router:
 *
 *   POST   /-/api/v1/jobs[?pin_set=NAME][&kind=K][&dry_run=1]   body: a seed spec or a raw file (seedinput.c)
 *   GET    /-/api/v1/jobs                    every job, newest first
 *   GET    /-/api/v1/jobs/<id>               one job with its items
 *   DELETE /-/api/v1/jobs/<id>               cancel
 *   POST   /-/api/v1/jobs/<id>/retry         run the failed, cancelled and interrupted items again
 *
 * A raw body becomes a seed spec here, with the module's expander for its kind; what it cannot seed is listed in
 * the answer ("unseedable", with line numbers), a malformed line is a 400 naming it. jobs.c runs the spec. */
#include "admin.h"
#include "cache.h"
#include "jobs.h"
#include "log.h"
#include "module.h"
#include "seedinput.h"
#include "seedspec.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int method_is(h2o_req_t *req, const char *m)
{
    return req->input.method.len == strlen(m) && memcmp(req->input.method.base, m, req->input.method.len) == 0;
}

static void send_json(larder_app_t *app, h2o_req_t *req, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    const char *reason = status == 200   ? "OK"
                         : status == 202 ? "Accepted"
                         : status == 400 ? "Bad Request"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 409 ? "Conflict"
                         : status == 413 ? "Payload Too Large"
                                         : "Error";
    larder_send_text(app, req, -1, status, reason, "application/json", s, strlen(s));
    free(s);
}

static void error(larder_app_t *app, h2o_req_t *req, int status, const char *msg)
{
    if (status >= 500)
        larder_err("admin: %.*s: %s", (int)req->input.path.len, req->input.path.base, msg);
    else
        larder_info("admin: %.*s %.*s: %d %s", (int)req->input.method.len, req->input.method.base,
                    (int)req->input.path.len, req->input.path.base, status, msg);
    send_json(app, req, status, json_pack("{s:s}", "error", msg));
}

static void not_allowed(larder_app_t *app, h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    char m[160];
    snprintf(m, sizeof(m), "%.*s is not allowed here: use %s", (int)req->input.method.len, req->input.method.base,
             allow);
    error(app, req, 405, m);
}

/* a query parameter's raw value (the values taken here need no decoding: names and flags); 1 when present */
static int query(h2o_req_t *req, const char *name, char *out, size_t outlen)
{
    if (req->input.query_at == SIZE_MAX)
        return 0;
    const char *q = req->input.path.base + req->input.query_at + 1, *end = req->input.path.base + req->input.path.len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *seg = amp ? amp : end;
        if ((size_t)(seg - q) >= nl && memcmp(q, name, nl) == 0 && (q + nl == seg || q[nl] == '=')) {
            size_t vl = q + nl == seg ? 0 : (size_t)(seg - q) - nl - 1;
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, q + nl + 1 > seg ? seg : q + nl + 1, vl);
            out[vl] = 0;
            return 1;
        }
        q = amp ? amp + 1 : end;
    }
    return 0;
}

typedef struct report_ctx {
    json_t *arr;
} report_ctx_t;

static void on_unseedable(void *ctx, unsigned line, const char *text, const char *why, int failed)
{
    (void)failed;
    report_ctx_t *c = ctx;
    if (json_array_size(c->arr) >= 1000)
        return; /* enough to show what is wrong */
    json_t *o = json_pack("{s:s, s:s}", "text", text, "why", why);
    json_object_set_new(o, "line", line ? json_integer(line) : json_null());
    json_array_append_new(c->arr, o);
}

/* "line N: ..." -> N */
static unsigned line_of_message(const char *err)
{
    unsigned n = 0;
    return sscanf(err, "line %u:", &n) == 1 ? n : 0;
}

static void bad_input(larder_app_t *app, h2o_req_t *req, const char *msg, unsigned line, const char *kind)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    if (line)
        json_object_set_new(j, "line", json_integer(line));
    if (kind)
        json_object_set_new(j, "kind", json_string(kind));
    larder_info("admin: POST /-/api/v1/jobs: 400 %s", msg);
    send_json(app, req, 400, j);
}

static void submit_text(larder_app_t *app, h2o_req_t *req, const char *text, size_t len);

static void submit(larder_app_t *app, h2o_req_t *req)
{
    if (!larder_admin_authorized(app, req))
        return;
    if (!req->entity.base || req->entity.len == 0) {
        error(app, req, 400, "POST a seed spec (YAML) or a requirements file, lockfile or list as the request body");
        return;
    }
    if (req->entity.len > app->cfg->seed_spec_max) { /* a chunked body is bounded by the largest body limit */
        char m[160];
        snprintf(m, sizeof(m), "a seed body may have at most %llu bytes (limits.seed_spec)",
                 (unsigned long long)app->cfg->seed_spec_max);
        error(app, req, 413, m);
        return;
    }
    /* the readers get a NUL-terminated copy: some were written for files read whole (larder_read_file) */
    size_t len = req->entity.len;
    char *text = malloc(len + 1);
    if (!text) {
        error(app, req, 503, "out of memory");
        return;
    }
    memcpy(text, req->entity.base, len);
    text[len] = 0;
    submit_text(app, req, text, len);
    free(text);
}

static void submit_text(larder_app_t *app, h2o_req_t *req, const char *text, size_t len)
{
    char set[80] = "", kindq[40] = "", dry[8] = "", msg[1024];
    int have_set = query(req, "pin_set", set, sizeof(set));
    int dry_run = query(req, "dry_run", dry, sizeof(dry)) && strcmp(dry, "0") != 0 && strcmp(dry, "false") != 0;
    if (have_set && !larder_pin_set_name_ok(set, strlen(set))) {
        error(app, req, 400, "pin_set: pin set names are [A-Za-z0-9._-]{1,64}");
        return;
    }
    const char *kind = NULL;
    if (query(req, "kind", kindq, sizeof(kindq)) && kindq[0]) {
        int p;
        if (strcmp(kindq, "spec") != 0 && !larder_seed_input_find(kindq, &p)) {
            char kinds[512];
            larder_seed_input_kinds(kinds, sizeof(kinds));
            snprintf(msg, sizeof(msg), "unknown kind '%.40s': one of %s", kindq, kinds);
            error(app, req, 400, msg);
            return;
        }
        kind = strcmp(kindq, "spec") == 0 ? "spec" : larder_seed_input_find(kindq, &p)->kind;
    } else if (larder_seed_input_detect(text, len, &kind, msg, sizeof(msg)) < 0) {
        error(app, req, 400, msg);
        return;
    }

    report_ctx_t rc = {json_array()};
    larder_seed_spec_t *spec = NULL;
    char err[512];
    if (strcmp(kind, "spec") == 0) {
        spec = larder_seed_parse(text, len, err, sizeof(err));
        if (!spec) {
            json_decref(rc.arr);
            bad_input(app, req, err, line_of_message(err), kind);
            return;
        }
        if (have_set && strcmp(set, spec->pin_set) != 0) {
            snprintf(msg, sizeof(msg), "pin_set=%s differs from the spec's own pin_set %s: leave one out", set,
                     spec->pin_set);
            larder_seed_free(spec);
            json_decref(rc.arr);
            bad_input(app, req, msg, 0, kind);
            return;
        }
    } else {
        if (!have_set) {
            json_decref(rc.arr);
            snprintf(msg, sizeof(msg), "this is a %s: say which pin set it seeds with ?pin_set=NAME", kind);
            bad_input(app, req, msg, 0, kind);
            return;
        }
        int proto = -1;
        const larder_seed_input_t *in = larder_seed_input_find(kind, &proto);
        spec = calloc(1, sizeof(*spec));
        spec->pin_set = strdup(set);
        unsigned errline = 0;
        err[0] = 0;
        if (!app->cfg->proto[proto].enabled) {
            snprintf(msg, sizeof(msg), "a %s is seeded by the %s section, which is disabled in larder.yaml", kind,
                     larder_proto_name(proto));
            larder_seed_free(spec);
            json_decref(rc.arr);
            bad_input(app, req, msg, 0, kind);
            return;
        }
        if (in->expand(app->cfg, spec, proto, text, len, on_unseedable, &rc, &errline, err, sizeof(err)) < 0 ||
            larder_seed_apply_defaults(spec) < 0) {
            if (!errline)
                errline = line_of_message(err);
            snprintf(msg, sizeof(msg), "%s", err[0] ? err : "out of memory");
            larder_seed_free(spec);
            json_decref(rc.arr);
            bad_input(app, req, msg, errline, kind);
            return;
        }
        if (spec->nitems == 0) {
            snprintf(msg, sizeof(msg), "nothing in this %s can be seeded%s", kind,
                     json_array_size(rc.arr) ? " (see unseedable)" : "");
            larder_seed_free(spec);
            json_t *j = json_pack("{s:s, s:s, s:o}", "error", msg, "kind", kind, "unseedable", rc.arr);
            larder_info("admin: POST /-/api/v1/jobs: 400 %s", msg);
            send_json(app, req, 400, j);
            return;
        }
    }
    if (dry_run) {
        json_t *items = json_array();
        for (size_t i = 0; i < spec->nitems; i++) {
            json_t *o = json_pack("{s:s, s:s}", "protocol", larder_proto_name(spec->items[i].proto), "ref",
                                  spec->items[i].ref);
            if (spec->items[i].sha256)
                json_object_set_new(o, "sha256", json_string(spec->items[i].sha256));
            json_array_append_new(items, o);
        }
        json_t *j = json_pack("{s:s, s:s, s:o, s:o}", "kind", kind, "pin_set", spec->pin_set, "items", items,
                              "unseedable", rc.arr);
        larder_seed_free(spec);
        send_json(app, req, 200, j);
        return;
    }
    char id[64], pin_set[80];
    size_t nitems = spec->nitems;
    snprintf(pin_set, sizeof(pin_set), "%s", spec->pin_set);
    larder_jobs_start(app->jobs, spec, kind, id, sizeof(id));
    send_json(app, req, 202,
              json_pack("{s:s, s:s, s:s, s:I, s:o}", "id", id, "kind", kind, "pin_set", pin_set, "items",
                        (json_int_t)nitems, "unseedable", rc.arr));
}

void larder_jobs_api(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    if (!rest) {
        if (method_is(req, "POST"))
            submit(app, req);
        else if (method_is(req, "GET") || method_is(req, "HEAD")) {
            char *s = larder_jobs_json(app->jobs, NULL);
            larder_send_text(app, req, -1, 200, "OK", "application/json", s, strlen(s));
            free(s);
        } else
            not_allowed(app, req, "GET, HEAD, POST");
        return;
    }
    int retry = len > 6 && memcmp(rest + len - 6, "/retry", 6) == 0;
    size_t idlen = retry ? len - 6 : len;
    char id[64];
    if (idlen == 0 || idlen >= sizeof(id) || !larder_pin_set_name_ok(rest, idlen)) {
        error(app, req, 404, "no such job");
        return;
    }
    memcpy(id, rest, idlen);
    id[idlen] = 0;
    if (retry) {
        if (!method_is(req, "POST")) {
            not_allowed(app, req, "POST");
            return;
        }
        if (!larder_admin_authorized(app, req))
            return;
        size_t n = 0;
        int r = larder_jobs_retry(app->jobs, id, &n);
        if (r == -ENOENT)
            error(app, req, 404, "no such job");
        else if (r < 0)
            error(app, req, 409, "only a finished job with failed, cancelled or interrupted items can be retried");
        else
            send_json(app, req, 202, json_pack("{s:s, s:I}", "id", id, "items", (json_int_t)n));
        return;
    }
    if (method_is(req, "DELETE")) {
        if (!larder_admin_authorized(app, req))
            return;
        char *json = NULL;
        int r = larder_jobs_cancel(app->jobs, id, &json);
        if (r == -ENOENT)
            error(app, req, 404, "no such job");
        else if (r < 0)
            error(app, req, 409, "the job has already finished");
        else
            larder_send_text(app, req, -1, 200, "OK", "application/json", json, strlen(json));
        free(json);
        return;
    }
    if (!method_is(req, "GET") && !method_is(req, "HEAD")) {
        not_allowed(app, req, "GET, HEAD, DELETE");
        return;
    }
    char *s = larder_jobs_json(app->jobs, id);
    if (!s) {
        error(app, req, 404, "no such job");
        return;
    }
    larder_send_text(app, req, -1, 200, "OK", "application/json", s, strlen(s));
    free(s);
}
