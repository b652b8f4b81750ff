/* serve.c - the npm registry at /npm/ (or at / of a listener dedicated to npm): the request handler.
 *
 * The npm protocol is four files: route.c (names and paths), packument.c (the stored full and abbreviated
 * packuments and the tarball records, made on commit threads), seed.c (seed lines, lockfiles and the seed
 * expander) and this one, which answers requests; module.c declares the module (config keys, seed section).
 * Packuments: whichever form the client asks for, the upstream is asked for the full document only, and one
 * streaming fetch (npm_packument_stream) makes pk/<name>/full and pk/<name>/abbr at once while it downloads; a
 * request for either form is an ordinary larder_cache_serve() of its key, tailing its output of that fetch
 * (abbreviated: Accept: application/vnd.npm.install-v1+json; yarn 1 and pnpm ask for it, npm 11 asks for the full
 * one). abbr_step() also covers the rarer cases: a stored abbreviated form not made with the stored full one (made
 * again), and offline with only the full form cached (derived from it).
 * LARDER_NPM_BASE_TOKEN in stored documents is replaced while sending by the public base (npm.public_url, or the
 * scheme and Host of the request).
 * Tarballs: answered only for files a packument listed (the t/<name>/<file> records; no open proxy) and verified
 * against the registry's integrity before commit; a tarball missing from the cached packument refreshes the
 * packument once. Search and audit requests pass through uncached (503 at once when offline). */
#include "internal.h"
#include "cache.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *npm_upstream_base(const larder_config_t *cfg) { return cfg->proto[LARDER_PROTO_NPM].upstream; }

/* upstream URL of a packument: scoped names with an encoded slash, as registry.npmjs.org expects */
void npm_packument_url(const larder_config_t *cfg, const char *name, char *out, size_t outlen)
{
    const char *slash = name[0] == '@' ? strchr(name, '/') : NULL;
    if (slash)
        snprintf(out, outlen, "%s%.*s%%2f%s", npm_upstream_base(cfg), (int)(slash - name), name, slash + 1);
    else
        snprintf(out, outlen, "%s%s", npm_upstream_base(cfg), name);
}

/* ---- packuments ---- */

/* what the tarball URLs in our packuments start with, for this request */
static const char *public_base(larder_app_t *app, h2o_req_t *req, const char *rest)
{
    const char *pub = ((const larder_npm_conf_t *)larder_proto_conf(app->cfg, LARDER_PROTO_NPM))->public_url;
    if (pub)
        return pub;
    size_t prefix = (size_t)(rest - req->input.path.base); /* "/npm/" or "/" (a dedicated listener) */
    if (prefix > req->input.path.len || prefix == 0)
        prefix = 1;
    h2o_iovec_t host = req->input.authority;
    if (host.len == 0 || host.len > 255)
        return NULL;
    for (size_t i = 0; i < host.len; i++) {
        unsigned char ch = (unsigned char)host.base[i];
        if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']' || ch == '_'))
            return NULL;
    }
    int tls = req->input.scheme == &H2O_URL_SCHEME_HTTPS;
    size_t n = (tls ? 8 : 7) + host.len + prefix;
    char *b = h2o_mem_alloc_pool(&req->pool, n + 1);
    snprintf(b, n + 1, "%s%.*s%.*s", tls ? "https://" : "http://", (int)host.len, host.base, (int)(prefix - 1),
             req->input.path.base);
    return b;
}

static int wants_abbreviated(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char t[] = "application/vnd.npm.install-v1+json";
    for (size_t k = 0; k + sizeof(t) - 1 <= v.len; k++) {
        if (strncasecmp(v.base + k, t, sizeof(t) - 1) != 0)
            continue;
        /* a q=0 means "not this one" */
        const char *e = memchr(v.base + k, ',', v.len - k);
        size_t pl = e ? (size_t)(e - (v.base + k)) : v.len - k;
        char param[128];
        snprintf(param, sizeof(param), "%.*s", (int)(pl < 127 ? pl : 127), v.base + k);
        const char *q = strstr(param, "q=");
        return !(q && strtod(q + 2, NULL) <= 0.0);
    }
    return 0;
}

/* One abbreviated-packument request on its way through abbr_step: the full form is fetched at most once (one
 * upstream document per package serves both forms), the abbreviated form derived at most once. */
typedef struct pk_req {
    char name[256];
    char url[4400];
    const char *base;
    int fetched, derived; /* steps already taken for this request */
    int fetch_status;   /* upstream status of the fetch last waited for */
    int full_state;     /* final state of the full form's fetch, when this request made one */
    larder_fetch_t *fe; /* our extra reference to the fetch waited for, to read its status */
} pk_req_t;

static void abbr_step(larder_app_t *app, h2o_req_t *req, pk_req_t *pr);

static void abbr_after(larder_app_t *app, h2o_req_t *req, int state, void *data)
{
    pk_req_t *pr = data;
    if (pr->fe) {
        pr->fetch_status = pr->fe->status;
        larder_fetch_release(pr->fe);
        pr->fe = NULL;
    }
    if (pr->fetched && !pr->derived)
        pr->full_state = state;
    abbr_step(app, req, pr);
}

/* wait for fe, then take the next step */
static void abbr_wait(larder_app_t *app, h2o_req_t *req, pk_req_t *pr, const char *key, larder_fetch_t *fe)
{
    larder_fetch_retain(fe);
    pr->fe = fe;
    larder_cache_after_fetch(app, req, LARDER_PROTO_NPM, h2o_strdup(&req->pool, key, SIZE_MAX).base, fe, abbr_after,
                             pr);
}

/* status < 0: HIT or STALE by freshness; else the LARDER_CACHE_* status to report (the full form was just fetched) */
static void serve_stored_packument(larder_app_t *app, h2o_req_t *req, const char *key, const char *base, int abbr,
                                   int status)
{
    larder_mapping_t m = {
        .proto = LARDER_PROTO_NPM,
        .key = h2o_strdup(&req->pool, key, SIZE_MAX).base,
        .url = NULL, /* from the store: HIT or STALE by its freshness */
        .ttl = app->cfg->proto[LARDER_PROTO_NPM].ttl,
        .override_status = status >= 0,
        .status = status,
        .content_type = abbr ? "application/vnd.npm.install-v1+json" : "application/json",
        .subst_from = LARDER_NPM_BASE_TOKEN,
        .subst_to = base,
    };
    larder_cache_serve(app, req, &m);
}

/* what X-Larder-Cache says of an abbreviated form served after this request's own fetch of the full one */
static int abbr_status(const pk_req_t *pr)
{
    if (!pr->fetched)
        return -1;
    switch (pr->full_state) {
    case LARDER_FETCH_DONE:
        return LARDER_CACHE_MISS;
    case LARDER_FETCH_NOT_MODIFIED:
        return LARDER_CACHE_REVALIDATED;
    default:
        return LARDER_CACHE_STALE; /* the fetch failed: the cached form is served */
    }
}

/* the mapping of a packument request of either form: one streaming fetch of the full upstream document makes both */
static void packument_mapping(larder_app_t *app, h2o_req_t *req, larder_mapping_t *m, const char *name,
                              const char *url, const char *base, int abbr)
{
    char fk[400], ak[400];
    snprintf(fk, sizeof(fk), "pk/%s/full", name);
    snprintf(ak, sizeof(ak), "pk/%s/abbr", name);
    const char *fkp = h2o_strdup(&req->pool, fk, SIZE_MAX).base, *akp = h2o_strdup(&req->pool, ak, SIZE_MAX).base;
    *m = (larder_mapping_t){
        .proto = LARDER_PROTO_NPM,
        .key = abbr ? akp : fkp,
        .url = h2o_strdup(&req->pool, url, SIZE_MAX).base,
        .ttl = app->cfg->proto[LARDER_PROTO_NPM].ttl,
        .accept = "application/json", /* the full document: both forms are made from it */
        .stream = &npm_packument_stream,
        .stream_keys = {fkp, akp},
        .content_type = abbr ? "application/vnd.npm.install-v1+json" : "application/json",
        .subst_from = LARDER_NPM_BASE_TOKEN,
        .subst_to = base,
    };
}

/* An abbreviated request: online, the abbreviated entry is served through the cache like any document (a miss
 * joins or starts the one streaming fetch of the full document that makes both forms, and tails its abbreviated
 * output); a stored abbreviated form that was not made with the stored full one is fetched again once. Offline
 * with only the full form cached, the abbreviated one is derived from it. */
static void abbr_step(larder_app_t *app, h2o_req_t *req, pk_req_t *pr)
{
    char fk[400], ak[400];
    snprintf(fk, sizeof(fk), "pk/%s/full", pr->name);
    snprintf(ak, sizeof(ak), "pk/%s/abbr", pr->name);
    larder_store_t *st = app->store;
    for (int attempt = 0; attempt < 3; attempt++) {
        larder_entry_t f, a;
        int have_f = larder_store_get(st, LARDER_PROTO_NPM, fk, &f) == 0;
        int have_a = larder_store_get(st, LARDER_PROTO_NPM, ak, &a) == 0;
        uint64_t now = larder_now();
        int online = !app->cfg->offline && !larder_fetcher_host_down(app->fetcher, pr->url);
        int match = have_f && have_a && npm_abbr_matches(st, pr->name, &f, &a);
        uint64_t f_until = have_f ? f.fresh_until : 0;
        if (have_f)
            larder_entry_clear(&f);
        if (have_a)
            larder_entry_clear(&a);
        if (online && (!have_a || !have_f || match || pr->fetched)) {
            larder_mapping_t m;
            packument_mapping(app, req, &m, pr->name, pr->url, pr->base, 1);
            if (pr->fetched) {
                m.override_status = 1;
                m.status = abbr_status(pr);
            }
            larder_cache_serve(app, req, &m);
            return;
        }
        if (online && !pr->fetched) {
            /* the stored abbreviated form was not made from the stored full one: make both again */
            larder_mapping_t m;
            packument_mapping(app, req, &m, pr->name, pr->url, pr->base, 1);
            larder_fetch_req_t fr = {.proto = LARDER_PROTO_NPM,
                                     .key = ak,
                                     .url = pr->url,
                                     .ttl = m.ttl,
                                     .accept = m.accept,
                                     .stream = m.stream,
                                     .stream_keys = {m.stream_keys[0], m.stream_keys[1]},
                                     .force = 1};
            int how;
            larder_fetch_t *fe = larder_fetch_start(app->fetcher, &fr, &how);
            pr->fetched = 1;
            if (fe) {
                abbr_wait(app, req, pr, ak, fe);
                return;
            }
            continue;
        }
        /* offline (or the upstream does not answer) */
        if (have_a && (match || !have_f)) {
            serve_stored_packument(app, req, ak, pr->base, 1, abbr_status(pr));
            return;
        }
        if (have_f) {
            if (!pr->derived) {
                pr->derived = 1;
                larder_fetch_req_t fr = {.proto = LARDER_PROTO_NPM,
                                         .key = ak,
                                         .url = pr->url,
                                         .ttl = f_until > now ? f_until - now : 0,
                                         .transform = npm_transform_packument,
                                         .force = 1,
                                         .local = 1};
                int how;
                larder_fetch_t *fe = larder_fetch_start(app->fetcher, &fr, &how);
                if (fe) {
                    abbr_wait(app, req, pr, ak, fe);
                    return;
                }
                continue;
            }
            larder_send_error(app, req, LARDER_PROTO_NPM, 502, "Bad Gateway",
                              "the abbreviated packument of %s could not be derived from the cached full one; see "
                              "the daemon log",
                              pr->name);
            return;
        }
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-larder-cache"), 1, NULL,
                              H2O_STRLIT("MISS"));
        larder_send_error(app, req, LARDER_PROTO_NPM, 504, "Gateway Timeout",
                          "larder is offline and %s is not cached.\nSeed it while online: list it in a seed spec "
                          "and run `larder seed SPEC.yaml`, or request it once with `offline: false`.",
                          pr->url);
        return;
    }
    larder_send_error(app, req, LARDER_PROTO_NPM, 503, "Service Unavailable", "the packument keeps changing; retry");
}

static void serve_packument(larder_app_t *app, h2o_req_t *req, const char *rest, const char *name)
{
    const char *base = public_base(app, req, rest);
    if (!base) {
        larder_send_error(app, req, LARDER_PROTO_NPM, 400, "Bad Request",
                          "the Host header is missing or not a host name; set npm.public_url");
        return;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Accept"));
    char url[4400];
    npm_packument_url(app->cfg, name, url, sizeof(url));
    if (wants_abbreviated(req)) {
        pk_req_t *pr = h2o_mem_alloc_pool(&req->pool, sizeof(*pr));
        memset(pr, 0, sizeof(*pr));
        snprintf(pr->name, sizeof(pr->name), "%s", name);
        memcpy(pr->url, url, sizeof(pr->url));
        pr->base = base;
        abbr_step(app, req, pr);
        return;
    }
    char key[400], ak[400];
    snprintf(key, sizeof(key), "pk/%s/full", name);
    snprintf(ak, sizeof(ak), "pk/%s/abbr", name);
    larder_entry_t e;
    if ((app->cfg->offline || larder_fetcher_host_down(app->fetcher, url)) &&
        larder_store_get(app->store, LARDER_PROTO_NPM, key, &e) < 0 &&
        larder_store_get(app->store, LARDER_PROTO_NPM, ak, &e) == 0) {
        larder_entry_clear(&e);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-larder-cache"), 1, NULL,
                              H2O_STRLIT("MISS"));
        larder_send_error(app, req, LARDER_PROTO_NPM, 504, "Gateway Timeout",
                          "only the abbreviated packument of %s is cached (application/vnd.npm.install-v1+json), and "
                          "the full document cannot be made from it (it lacks readme, scripts and other fields); "
                          "the upstream %s is %s. Ask with Accept: application/vnd.npm.install-v1+json, or seed the "
                          "package while online.",
                          name, url, app->cfg->offline ? "switched off (offline: true)" : "unreachable");
        return;
    }
    larder_mapping_t m;
    packument_mapping(app, req, &m, name, url, base, 0);
    larder_cache_serve(app, req, &m);
}

/* ---- tarballs ---- */

typedef struct tgz_req {
    char name[256];
    char file[256];
    int refreshed;
} tgz_req_t;

static void serve_tarball_after_refresh(larder_app_t *app, h2o_req_t *req, int state, void *data);

static void serve_tarball_step(larder_app_t *app, h2o_req_t *req, tgz_req_t *tr)
{
    char rkey[600];
    snprintf(rkey, sizeof(rkey), "t/%s/%s", tr->name, tr->file);
    char *rec = larder_store_meta_get(app->store, LARDER_PROTO_NPM, rkey, NULL);
    if (!rec) {
        if (!tr->refreshed && !app->cfg->offline && npm_upstream_base(app->cfg)) {
            /* not in the packument we have: a new release? refresh the packument once, then look again */
            tr->refreshed = 1;
            char key[400], url[4400];
            snprintf(key, sizeof(key), "pk/%s/full", tr->name);
            npm_packument_url(app->cfg, tr->name, url, sizeof(url));
            char ak[400];
            snprintf(ak, sizeof(ak), "pk/%s/abbr", tr->name);
            larder_fetch_req_t f = {.proto = LARDER_PROTO_NPM,
                                    .key = key,
                                    .url = url,
                                    .ttl = app->cfg->proto[LARDER_PROTO_NPM].ttl,
                                    .accept = "application/json",
                                    .stream = &npm_packument_stream, /* both forms, from one GET */
                                    .stream_keys = {key, ak},
                                    .force = 1};
            int how;
            larder_fetch_t *fe = larder_fetch_start(app->fetcher, &f, &how);
            if (fe) {
                larder_cache_after_fetch(app, req, LARDER_PROTO_NPM, key, fe, serve_tarball_after_refresh, tr);
                return;
            }
        }
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-larder-cache"), 1, NULL,
                              H2O_STRLIT("MISS"));
        larder_send_error(app, req, LARDER_PROTO_NPM, 404, "Not Found", "%s is not listed in the packument of %s%s",
                          tr->file, tr->name,
                          app->cfg->offline ? " (offline: seed the package while online)" : "");
        return;
    }
    char *integrity = rec, *shasum = strchr(rec, '\n'), *url = shasum ? strchr(shasum + 1, '\n') : NULL;
    if (!url) {
        free(rec);
        larder_send_error(app, req, LARDER_PROTO_NPM, 500, "Internal Server Error", "damaged tarball record");
        return;
    }
    *shasum++ = 0;
    *url++ = 0;
    char sha1i[64];
    const char *want = strcmp(integrity, "-") != 0 ? integrity
                       : npm_shasum_integrity(shasum, sha1i, sizeof(sha1i)) == 0 ? sha1i
                                                                                  : NULL;
    char key[600];
    snprintf(key, sizeof(key), "tgz/%s/%s", tr->name, tr->file);
    larder_mapping_t m = {
        .proto = LARDER_PROTO_NPM,
        .key = h2o_strdup(&req->pool, key, SIZE_MAX).base,
        .url = h2o_strdup(&req->pool, url, SIZE_MAX).base,
        .integrity = want ? h2o_strdup(&req->pool, want, SIZE_MAX).base : NULL,
        .flags = LARDER_ENTRY_IMMUTABLE,
        .content_type = "application/octet-stream",
    };
    free(rec);
    larder_cache_serve(app, req, &m);
}

static void serve_tarball_after_refresh(larder_app_t *app, h2o_req_t *req, int state, void *data)
{
    (void)state;
    serve_tarball_step(app, req, data);
}

/* ---- the handler ---- */

void npm_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    const char *q = memchr(rest, '?', len);
    size_t plen = q ? (size_t)(q - rest) : len;
    if (!npm_upstream_base(app->cfg)) {
        larder_send_error(app, req, LARDER_PROTO_NPM, 503, "Service Unavailable", "npm.upstream is not configured");
        return;
    }
    if (plen == 0) {
        static const char root[] = "{\"db_name\":\"larder-npm\"}\n";
        larder_send_text(app, req, LARDER_PROTO_NPM, 200, "OK", "application/json", root, sizeof(root) - 1);
        return;
    }
    if (plen >= 2 && rest[0] == '-' && rest[1] == '/') {
        if (plen == 6 && memcmp(rest, "-/ping", 6) == 0) {
            larder_send_text(app, req, LARDER_PROTO_NPM, 200, "OK", "application/json", "{}\n", 3);
            return;
        }
        int search = plen == 11 && memcmp(rest, "-/v1/search", 11) == 0;
        int audit = plen > 18 && memcmp(rest, "-/npm/v1/security/", 18) == 0;
        if (search || audit) {
            char url[4400];
            snprintf(url, sizeof(url), "%s%.*s", npm_upstream_base(app->cfg), (int)(len > 4000 ? 4000 : len), rest);
            larder_mapping_t m = {.proto = LARDER_PROTO_NPM,
                                  .key = search ? "search" : "audit",
                                  .url = h2o_strdup(&req->pool, url, SIZE_MAX).base,
                                  .accept = "application/json",
                                  .passthrough = 1};
            larder_cache_serve(app, req, &m);
            return;
        }
        larder_send_error(app, req, LARDER_PROTO_NPM, 404, "Not Found",
                          "larder's npm cache answers packuments, tarballs, /-/ping, /-/v1/search and audits");
        return;
    }
    if (!(req->input.method.len == 3 && memcmp(req->input.method.base, "GET", 3) == 0) &&
        !(req->input.method.len == 4 && memcmp(req->input.method.base, "HEAD", 4) == 0)) {
        larder_send_error(app, req, LARDER_PROTO_NPM, 405, "Method Not Allowed",
                          "larder is a read-only cache: publish to the upstream registry");
        return;
    }
    char name[256], file[256];
    const char *err;
    int kind = larder_npm_route(rest, plen, name, sizeof(name), file, sizeof(file), &err);
    if (kind == LARDER_NPM_PACKUMENT) {
        serve_packument(app, req, rest, name);
    } else if (kind == LARDER_NPM_TARBALL) {
        tgz_req_t *tr = h2o_mem_alloc_pool(&req->pool, sizeof(*tr));
        memset(tr, 0, sizeof(*tr));
        memcpy(tr->name, name, sizeof(tr->name));
        memcpy(tr->file, file, sizeof(tr->file));
        serve_tarball_step(app, req, tr);
    } else if (kind == LARDER_NPM_VERSION) {
        larder_send_error(app, req, LARDER_PROTO_NPM, 404, "Not Found",
                          "per-version documents are not served: ask for the packument /%s", name);
    } else {
        larder_send_error(app, req, LARDER_PROTO_NPM, 400, "Bad Request", "%s", err);
    }
}
