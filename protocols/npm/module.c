/* module.c - the npm module's declaration: its config section (npm.public_url), its seed section (packages,
 * lockfiles read by `larder seed`) and its handlers. */
#include "internal.h"
#include "module.h"
#include "npm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- raw lockfile text (the daemon and `larder seed` alike) ---- */

typedef struct lock_report {
    const char *text;
    size_t len;
    larder_seed_input_report_fn report;
    void *rctx;
} lock_report_t;

static void lock_skipped(void *ctx, const char *what, const char *why, int failed)
{
    lock_report_t *r = ctx;
    char needle[600];
    snprintf(needle, sizeof(needle), "\"%s\"", what); /* its key in the lockfile */
    r->report(r->rctx, larder_text_line_of(r->text, r->len, needle), what, why, failed);
}

static int expand_package_lock(const larder_config_t *cfg, larder_seed_spec_t *spec, int proto, const char *text,
                               size_t len, larder_seed_input_report_fn report, void *rctx, unsigned *errline,
                               char *err, size_t errlen)
{
    (void)cfg;
    lock_report_t lr = {text, len, report, rctx};
    char **lines = NULL;
    *errline = 0;
    long n = larder_npm_lockfile_lines(text, len, &lines, lock_skipped, &lr, err, errlen);
    if (n < 0)
        return -1;
    return larder_seed_append_lines(spec, proto, lines, (size_t)n);
}

static int detect_package_lock(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
        i++;
    if (i >= len || text[i] != '{')
        return 0;
    return memmem(text, len, "\"lockfileVersion\"", 17) ? 100 : 0;
}

static int expand_yarn_lock(const larder_config_t *cfg, larder_seed_spec_t *spec, int proto, const char *text,
                            size_t len, larder_seed_input_report_fn report, void *rctx, unsigned *errline, char *err,
                            size_t errlen)
{
    (void)cfg;
    char **lines = NULL;
    long n = larder_npm_yarnlock_lines(text, len, &lines, report, rctx, errline, err, errlen);
    if (n < 0)
        return -1;
    return larder_seed_append_lines(spec, proto, lines, (size_t)n);
}

static int detect_yarn_lock(const char *text, size_t len)
{
    if (memmem(text, len, "# yarn lockfile v1", 18))
        return 100;
    /* without its comment: headers ending in ':' followed by `  version "` */
    return memmem(text, len, ":\n  version \"", 13) && memmem(text, len, "\n  resolved \"", 13) ? 90 : 0;
}

static const larder_seed_input_t npm_inputs[] = {
    {.kind = "package-lock", .detect = detect_package_lock, .expand = expand_package_lock},
    {.kind = "yarn-lock", .detect = detect_yarn_lock, .expand = expand_yarn_lock},
    {.kind = NULL},
};

static void file_unseedable(void *ctx, unsigned line, const char *text, const char *why, int failed)
{
    (void)line; /* a lockfile's entries are named by their key */
    larder_unseedable_report(ctx, text, why, failed);
}

/* `larder seed`: a package-lock.json (or npm-shrinkwrap.json) into npm items */
static int expand_lockfile(larder_seed_spec_t *spec, int proto, const char *path, larder_unseedable_fn fn,
                           void *uctx, char *err, size_t errlen)
{
    size_t len;
    char *text = larder_seed_read_file(path, "lockfile", &len, err, errlen);
    if (!text)
        return -1;
    larder_unseedable_t u = {fn, uctx, path};
    char perr[512];
    unsigned errline = 0;
    int r = expand_package_lock(NULL, spec, proto, text, len, file_unseedable, &u, &errline, perr, sizeof(perr));
    free(text);
    if (r < 0)
        snprintf(err, errlen, "%s: %s", path, perr);
    return r;
}

static const larder_seed_key_t npm_seed_keys[] = {
    {.key = "packages", .kind = LARDER_SEED_ITEMS},
    {.key = "lockfiles", .kind = LARDER_SEED_FILES, .expand = expand_lockfile},
    {.key = NULL},
};

static const larder_conf_key_t npm_keys[] = {
    {.name = "public_url", .type = LARDER_KEY_URL_BASE, LARDER_KEY_IN_MODULE, offsetof(larder_npm_conf_t, public_url),
     .nullable = 1, .doc = "base URL clients reach npm at, for tarball URLs (none: from the request's Host)"},
    LARDER_KEYS_END,
};

/* a full packument's transform recorded its tarballs (t/<name>/<file>); an abbreviated one names the full form it
 * was derived from (pa/<name>) */
static void npm_bundle_meta(const char *key, const larder_entry_t *e, void (*add)(void *, const char *, int), void *ctx)
{
    (void)e;
    const char *slash = strrchr(key, '/');
    if (strncmp(key, "pk/", 3) != 0 || !slash || slash - key <= 3)
        return;
    char p[512];
    int nl = (int)(slash - key - 3);
    if (strcmp(slash, "/full") == 0 && snprintf(p, sizeof(p), "t/%.*s/", nl, key + 3) < (int)sizeof(p))
        add(ctx, p, 1);
    else if (strcmp(slash, "/abbr") == 0 && snprintf(p, sizeof(p), "pa/%.*s", nl, key + 3) < (int)sizeof(p))
        add(ctx, p, 0);
}

/* GET /-/api/v1/info: the base URL tarball links name when set (else the Host a client used) */
static void npm_client_info(const larder_config_t *cfg, json_t *mine, json_t *top)
{
    (void)top;
    const larder_npm_conf_t *c = larder_proto_conf(cfg, LARDER_PROTO_NPM);
    json_object_set_new(mine, "public_url", c && c->public_url ? json_string(c->public_url) : json_null());
}

const larder_protocol_t larder_protocol_npm = {
    .proto = LARDER_PROTO_NPM,
    .name = "npm",
    .mount = "/npm/",
    .summary = "the npm registry at /npm/ (npm, yarn; Tutor's NPM_REGISTRY)",
    .default_ttl = "10m",
    .default_upstream = "https://registry.npmjs.org/",
    .conf_size = sizeof(larder_npm_conf_t),
    .conf_keys = npm_keys,
    .seed_keys = npm_seed_keys,
    .seed_shape = "packages: [...], lockfiles: [...]",
    .seed_inputs = npm_inputs,
    .handle = npm_handle,
    .seed = npm_seed,
    .pin_spec = larder_npm_pin_spec,
    .bundle_meta = npm_bundle_meta,
    .client_info = npm_client_info,
};
