/* module.c - the npm module's declaration: its config section (npm.public_url), its seed section (packages,
 * lockfiles read by `larder seed`) and its handlers. */
#include "internal.h"
#include "module.h"
#include "npm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* `larder seed`: a package-lock.json (or npm-shrinkwrap.json) into npm items */
static int expand_lockfile(larder_seed_spec_t *spec, int proto, const char *path, larder_unseedable_fn fn,
                           void *uctx, char *err, size_t errlen)
{
    size_t len;
    char *text = larder_seed_read_file(path, "lockfile", &len, err, errlen);
    if (!text)
        return -1;
    larder_unseedable_t u = {fn, uctx, path};
    char **lines = NULL, perr[512];
    long n = larder_npm_lockfile_lines(text, len, &lines, larder_unseedable_report, &u, perr, sizeof(perr));
    free(text);
    if (n < 0) {
        snprintf(err, errlen, "%s: %s", path, perr);
        return -1;
    }
    return larder_seed_append_lines(spec, proto, lines, (size_t)n);
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
    .handle = npm_handle,
    .seed = npm_seed,
    .pin_spec = larder_npm_pin_spec,
    .bundle_meta = npm_bundle_meta,
    .client_info = npm_client_info,
};
