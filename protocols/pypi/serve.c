/* serve.c - a pull-through Python package index at /pypi/ (PEP 503 HTML, PEP 691 JSON, PEP 658/714 metadata):
 * the request handler and the protocol's vtable. pages.c parses upstream pages, render.c writes what clients get,
 * seed.c expands seed items; internal.h is what they share.
 *
 *   /pypi/simple/                          root index (cached, links made relative)
 *   /pypi/simple/<project>/                project page; non-normalised names get a 301 to the PEP 503 name
 *   /pypi/files/<project>/<scheme>/<host>/<path>[.metadata]   a distribution file or its core metadata
 * The project list and each project page are fetched once (JSON preferred, HTML accepted) and stored in one form,
 * PEP 691 JSON, whatever the upstream sent: every file link becomes a relative link to /pypi/files/ (no fragment;
 * hashes, data-* attributes and JSON fields are carried over), and each file's upstream URL with its sha256 (and
 * its metadata sha256) is recorded in the store under the project. Clients negotiate JSON or HTML (Accept, PEP 691);
 * HTML is rendered from the stored JSON per request, so one upstream fetch serves both, offline too. A file request
 * is served only when the record exists for that project, so only what an upstream page linked to can be fetched
 * (never an open proxy), a file is never served under another project's URL, and the recorded sha256 is verified
 * before the file is committed. A file missing from the records makes us refresh the project page once.
 * Files are immutable; pages live for pypi.ttl and are then revalidated (ETag/Last-Modified), or served STALE. */
#include "internal.h"
#include "cache.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- canonical file URLs ---- */

/* pip re-quotes every path part (quote(unquote(part))); both the recorded upstream URL and the requested path
 * are brought to that one form so they compare equal: %XX decoded, then everything but unreserved characters
 * and '/' encoded again (upper-case hex). */
static void canon_append(larder_pypi_buf_t *b, const char *s, size_t n, int is_host)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n + 0 && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
            char h[3] = {s[i + 1], s[i + 2], 0};
            c = (unsigned char)strtol(h, NULL, 16);
            i += 2;
        }
        if (is_host) {
            char lc = (char)tolower(c);
            pypi_buf_add(b, &lc, 1);
        } else if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            pypi_buf_add(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            pypi_buf_add(b, e, 3);
        }
    }
}

/* "scheme://host/path" -> canonical form (malloc'd) or NULL; queries are kept verbatim */
char *pypi_canon_url(const char *scheme, size_t sl, const char *host, size_t hl, const char *path, size_t pl)
{
    larder_pypi_buf_t b = {0};
    pypi_buf_add(&b, scheme, sl);
    pypi_buf_add(&b, "://", 3);
    canon_append(&b, host, hl, 1);
    const char *q = memchr(path, '?', pl);
    canon_append(&b, path, q ? (size_t)(q - path) : pl, 0);
    if (q)
        pypi_buf_add(&b, q, pl - (size_t)(q - path));
    return b.p;
}

static char *canon_full_url(const char *url)
{
    const char *s = strstr(url, "://");
    if (!s)
        return NULL;
    const char *h = s + 3, *p = strchr(h, '/');
    if (!p)
        p = h + strlen(h);
    return pypi_canon_url(url, (size_t)(s - url), h, (size_t)(p - h), p, strlen(p));
}

/* ---- the protocol: pages ---- */

/* One stored form per document: the project list and each project page are kept as PEP 691 JSON (under
 * "index/list" and "page/<project>/json"), whatever the upstream sent; HTML clients get it rendered per request
 * (larder_pypi_render_html). One upstream fetch per project, and offline both formats come from what is cached. */
#define JSON_TYPE "application/vnd.pypi.simple.v1+json"

typedef struct rec_ctx {
    larder_meta_batch_t *b;
    const char *project;
} rec_ctx_t;

/* "f/<project>/<canonical url>": a file is served under the project whose page lists it, and no other */
static void record_file(void *arg, const larder_pypi_file_t *f)
{
    rec_ctx_t *c = arg;
    char *canon = canon_full_url(f->url);
    if (!canon || strlen(canon) > 4000 || strlen(f->url) > 4000) {
        free(canon);
        return;
    }
    char val[4300];
    int n = snprintf(val, sizeof(val), "%s %s %d %s", f->sha256 ? f->sha256 : "-",
                     f->meta_sha256 ? f->meta_sha256 : "-", f->has_meta, f->url);
    char key[4500];
    snprintf(key, sizeof(key), "f/%s/%s", c->project, canon);
    free(canon);
    larder_meta_batch_put(c->b, LARDER_PROTO_PYPI, key, val, (size_t)n);
}

/* is the upstream document JSON? its content type says so; without one, its first character */
static int upstream_is_json(const larder_fetch_t *fe, const char *in, size_t len)
{
    if (fe->content_type && *fe->content_type)
        return strstr(fe->content_type, "json") != NULL;
    size_t i = 0;
    while (i < len && isspace((unsigned char)in[i]))
        i++;
    return i < len && in[i] == '{';
}

/* key "page/<project>/json" or "index/list": the upstream document (HTML or JSON) becomes our JSON. (Project
 * pages were always stored as JSON under that key, so pages seeded by older versions are still used; the project
 * list moved from "index/json", which held an HTML upstream's HTML as it came.) */
int pypi_transform_page(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                        char **content_type, char *err, size_t errlen)
{
    char project[256] = "";
    int is_index = strncmp(fe->key, "index/", 6) == 0;
    const char *slash = strrchr(fe->key, '/');
    if (!is_index) {
        size_t pl = (size_t)(slash - fe->key) - 5;
        if (pl >= sizeof(project))
            return -1;
        memcpy(project, fe->key + 5, pl);
        project[pl] = 0;
    }
    if (in_len > (uint64_t)512 * 1024 * 1024) {
        snprintf(err, errlen, "index page larger than 512 MiB");
        return -1;
    }
    char *in;
    if (larder_pread_all(in_fd, in_len, &in) < 0) {
        snprintf(err, errlen, "cannot read the downloaded page");
        return -1;
    }
    int in_json = upstream_is_json(fe, in, in_len);
    larder_pypi_buf_t out = {0};
    int r = 0;
    if (is_index) {
        r = larder_pypi_rewrite_index(in_json, in, in_len, &out, err, errlen);
    } else {
        larder_meta_batch_t *b = larder_store_meta_begin(st);
        rec_ctx_t rc = {b, project};
        r = larder_pypi_rewrite_page(fe->url, project, in_json, in, in_len, LARDER_PYPI_JSON, &out, record_file, &rc,
                                     err, errlen);
        if (r == 0)
            r = larder_store_meta_commit(st, b);
        else
            larder_store_meta_discard(b);
    }
    *content_type = strdup(JSON_TYPE);
    free(in);
    if (r == 0 && larder_write_all(out_fd, out.p ? out.p : "", out.len) < 0) {
        snprintf(err, errlen, "writing the rewritten page failed");
        r = -1;
    }
    free(out.p);
    return r;
}

static char *render_html(void *ctx, const char *in, size_t len, size_t *outlen)
{
    (void)ctx;
    return larder_pypi_render_html(in, len, outlen);
}

static void serve_page(larder_app_t *app, h2o_req_t *req, const char *project)
{
    const larder_config_t *cfg = app->cfg;
    const char *up = upstream_base(cfg);
    if (!up) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 503, "Service Unavailable", "pypi.upstream is not configured");
        return;
    }
    ssize_t ai = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    int legacy;
    int fmt = larder_pypi_negotiate(ai >= 0 ? req->headers.entries[ai].value.base : NULL,
                                    ai >= 0 ? req->headers.entries[ai].value.len : 0, &legacy);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Accept"));
    if (fmt < 0) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 406, "Not Acceptable",
                          "acceptable: application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html, "
                          "text/html");
        return;
    }
    char key[400], url[4400];
    if (project) {
        snprintf(key, sizeof(key), "page/%s/json", project);
        snprintf(url, sizeof(url), "%s%s/", up, project);
    } else {
        snprintf(key, sizeof(key), "index/list");
        snprintf(url, sizeof(url), "%s", up);
    }
    larder_mapping_t m = {
        .proto = LARDER_PROTO_PYPI,
        .key = h2o_strdup(&req->pool, key, SIZE_MAX).base,
        .url = h2o_strdup(&req->pool, url, SIZE_MAX).base,
        .ttl = cfg->proto[LARDER_PROTO_PYPI].ttl,
        .accept = UPSTREAM_ACCEPT,
        .transform = pypi_transform_page,
        .content_type = fmt == LARDER_PYPI_JSON ? JSON_TYPE
                        : legacy                ? "text/html; charset=utf-8"
                                                : "application/vnd.pypi.simple.v1+html",
        .render = fmt == LARDER_PYPI_HTML ? render_html : NULL,
        .render_tag = "html",
    };
    larder_cache_serve(app, req, &m);
}

/* ---- the protocol: files ---- */

typedef struct file_req {
    char project[256];
    char *url;     /* upstream file URL (pool) */
    char *key_url; /* URL whose record describes it (without .metadata) */
    int is_meta;
    int refreshed;
} file_req_t;

static void serve_file_after_refresh(larder_app_t *app, h2o_req_t *req, int state, void *data);

static void serve_file_step(larder_app_t *app, h2o_req_t *req, file_req_t *fr)
{
    char rkey[4500];
    snprintf(rkey, sizeof(rkey), "f/%s/%s", fr->project, fr->key_url);
    char *rec = larder_store_meta_get(app->store, LARDER_PROTO_PYPI, rkey, NULL);
    if (!rec) {
        if (!fr->refreshed && !app->cfg->offline && upstream_base(app->cfg)) {
            /* not listed in the page we know: refresh the project page once, then look again */
            fr->refreshed = 1;
            char key[400], url[4400];
            snprintf(key, sizeof(key), "page/%s/json", fr->project);
            snprintf(url, sizeof(url), "%s%s/", upstream_base(app->cfg), fr->project);
            larder_fetch_req_t f = {.proto = LARDER_PROTO_PYPI,
                                    .key = key,
                                    .url = url,
                                    .ttl = app->cfg->proto[LARDER_PROTO_PYPI].ttl,
                                    .accept = UPSTREAM_ACCEPT,
                                    .transform = pypi_transform_page,
                                    .force = 1};
            int how;
            larder_fetch_t *fe = larder_fetch_start(app->fetcher, &f, &how);
            if (fe) {
                larder_cache_after_fetch(app, req, LARDER_PROTO_PYPI, key, fe, serve_file_after_refresh, fr);
                return;
            }
        }
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-larder-cache"), 1, NULL,
                              H2O_STRLIT("MISS"));
        larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found",
                          "%s is not listed in the index page of '%s'%s", fr->url, fr->project,
                          app->cfg->offline ? " (offline: seed the project while online)" : "");
        return;
    }
    char sha[80] = "", msha[80] = "";
    int has_meta = 0, off = 0;
    if (sscanf(rec, "%70s %70s %d %n", sha, msha, &has_meta, &off) != 3 || !off || !rec[off]) {
        free(rec);
        larder_send_error(app, req, LARDER_PROTO_PYPI, 500, "Internal Server Error", "damaged file record");
        return;
    }
    /* the upstream URL exactly as the index gave it */
    size_t rl = strlen(rec + off);
    const char *upstream = fr->is_meta ? h2o_concat(&req->pool, h2o_iovec_init(rec + off, rl),
                                                    h2o_iovec_init(H2O_STRLIT(".metadata"))).base
                                       : h2o_strdup(&req->pool, rec + off, rl).base;
    free(rec);
    const char *want = fr->is_meta ? msha : sha;
    if (fr->is_meta && !has_meta) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found", "the index announces no metadata file for %s",
                          fr->key_url);
        return;
    }
    larder_mapping_t m = {
        .proto = LARDER_PROTO_PYPI,
        .key = fr->url,
        .url = upstream,
        .sha256 = larder_is_sha256_hex(want) ? h2o_strdup(&req->pool, want, SIZE_MAX).base : NULL,
        .flags = LARDER_ENTRY_IMMUTABLE,
        .ttl = 0,
    };
    larder_cache_serve(app, req, &m);
}

static void serve_file_after_refresh(larder_app_t *app, h2o_req_t *req, int state, void *data)
{
    serve_file_step(app, req, data);
}

static void serve_file(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    /* <project>/<scheme>/<host>/<path> */
    char err[256];
    const char *q = memchr(rest, '?', len);
    if (q)
        len = (size_t)(q - rest);
    if (!larder_path_is_safe(rest, len, err, sizeof(err))) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 400, "Bad Request", "%s", err);
        return;
    }
    const char *s1 = memchr(rest, '/', len);
    const char *s2 = s1 ? memchr(s1 + 1, '/', len - (size_t)(s1 + 1 - rest)) : NULL;
    const char *s3 = s2 ? memchr(s2 + 1, '/', len - (size_t)(s2 + 1 - rest)) : NULL;
    file_req_t *fr = h2o_mem_alloc_pool(&req->pool, sizeof(*fr));
    memset(fr, 0, sizeof(*fr));
    if (!s3 || s3 + 1 >= rest + len ||
        larder_pypi_normalize(rest, (size_t)(s1 - rest), fr->project, sizeof(fr->project)) < 0) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found",
                          "expected /pypi/files/<project>/<scheme>/<host>/<path> (links come from /pypi/simple/)");
        return;
    }
    size_t schl = (size_t)(s2 - s1 - 1);
    if (!((schl == 4 && !memcmp(s1 + 1, "http", 4)) || (schl == 5 && !memcmp(s1 + 1, "https", 5)))) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found", "unsupported scheme");
        return;
    }
    char *canon = pypi_canon_url(s1 + 1, schl, s2 + 1, (size_t)(s3 - s2 - 1), s3, (size_t)(rest + len - s3));
    fr->url = h2o_strdup(&req->pool, canon, SIZE_MAX).base;
    free(canon);
    size_t n = strlen(fr->url);
    fr->is_meta = n > 9 && strcmp(fr->url + n - 9, ".metadata") == 0;
    fr->key_url = fr->is_meta ? h2o_strdup(&req->pool, fr->url, n - 9).base : fr->url;
    serve_file_step(app, req, fr);
}

void pypi_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    const char *q = memchr(rest, '?', len);
    size_t plen = q ? (size_t)(q - rest) : len;
    if (plen == 6 && memcmp(rest, "simple", 6) == 0) { /* PEP 503: pages end with '/' */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, H2O_STRLIT("/pypi/simple/"));
        larder_send_text(app, req, LARDER_PROTO_PYPI, 301, "Moved Permanently", "text/plain", "", 0);
        return;
    }
    if (plen >= 7 && memcmp(rest, "simple/", 7) == 0) {
        const char *name = rest + 7;
        size_t nl = plen - 7;
        if (nl == 0) {
            serve_page(app, req, NULL);
            return;
        }
        int slash = name[nl - 1] == '/';
        if (slash)
            nl--;
        char norm[256];
        if (memchr(name, '/', nl) || larder_pypi_normalize(name, nl, norm, sizeof(norm)) < 0) {
            larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found", "not a valid project name");
            return;
        }
        if (!slash || strlen(norm) != nl || memcmp(norm, name, nl) != 0) {
            char loc[400];
            snprintf(loc, sizeof(loc), "/pypi/simple/%s/", norm);
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                           h2o_strdup(&req->pool, loc, SIZE_MAX).base, strlen(loc));
            larder_send_text(app, req, LARDER_PROTO_PYPI, 301, "Moved Permanently", "text/plain", "", 0);
            return;
        }
        serve_page(app, req, norm);
        return;
    }
    if (plen >= 6 && memcmp(rest, "files/", 6) == 0) {
        serve_file(app, req, rest + 6, len - 6);
        return;
    }
    larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found",
                      "set PIP_INDEX_URL to http://<larder>/pypi/simple/");
}
