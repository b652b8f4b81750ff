/* module.c - the pypi module's declaration: the common config keys only, its seed section (requirements,
 * requirement_files read by `larder seed` with their -r includes, python_versions, platforms) and its handlers. */
#include "internal.h"
#include "module.h"
#include "util.h"
#include "pypi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "3.11" */
static int pyver_ok(const char *s, size_t len)
{
    int major, minor;
    char tail;
    char buf[16];
    if (len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    return sscanf(buf, "%d.%d%c", &major, &minor, &tail) == 2 && major >= 2 && major <= 9 && minor >= 0 && minor < 100;
}

/* a wheel platform tag: "manylinux2014_x86_64" */
static int platform_ok(const char *s, size_t len)
{
    if (len > 100)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* a requirements file and the files it includes with -r (relative to it), into pypi items */
static int expand_at(larder_seed_spec_t *spec, int proto, const char *path, int depth, larder_unseedable_fn fn,
                     void *uctx, char *err, size_t errlen)
{
    size_t len;
    char *text = larder_seed_read_file(path, "requirement file", &len, err, errlen);
    if (!text)
        return -1;
    larder_unseedable_t u = {fn, uctx, path};
    char **lines, **inc;
    size_t ninc, n = larder_pypi_requirement_lines_ex(text, len, &lines, &inc, &ninc, larder_unseedable_report, &u);
    free(text);
    int r = larder_seed_append_lines(spec, proto, lines, n);
    for (size_t i = 0; i < ninc; i++) {
        if (r == 0) {
            if (depth > 8) {
                snprintf(err, errlen, "%s: -r nesting too deep", path);
                r = -1;
            } else {
                char sub[4096];
                larder_path_beside(path, inc[i], sub, sizeof(sub));
                r = expand_at(spec, proto, sub, depth + 1, fn, uctx, err, errlen);
            }
        }
        free(inc[i]);
    }
    free(inc);
    return r;
}

static int expand_requirements(larder_seed_spec_t *spec, int proto, const char *path, larder_unseedable_fn fn,
                               void *uctx, char *err, size_t errlen)
{
    return expand_at(spec, proto, path, 0, fn, uctx, err, errlen);
}

static const larder_seed_key_t pypi_seed_keys[] = {
    {.key = "requirements", .kind = LARDER_SEED_ITEMS},
    {.key = "requirement_files", .kind = LARDER_SEED_FILES, .expand = expand_requirements},
    {.key = "python_versions", .kind = LARDER_SEED_OPTION, .ok = pyver_ok, .def = "3.11"},
    {.key = "platforms", .kind = LARDER_SEED_OPTION, .ok = platform_ok, .def = "manylinux2014_x86_64"},
    {.key = NULL},
};

/* a project page's transform recorded every file it lists (f/<project>/<url>): what serving those files checks */
static void pypi_bundle_meta(const char *key, const larder_entry_t *e, void (*add)(void *, const char *, int), void *ctx)
{
    (void)e;
    size_t kl = strlen(key);
    if (strncmp(key, "page/", 5) != 0 || kl < 11 || strcmp(key + kl - 5, "/json") != 0)
        return;
    char p[512];
    if (snprintf(p, sizeof(p), "f/%.*s/", (int)(kl - 10), key + 5) < (int)sizeof(p))
        add(ctx, p, 1);
}

const larder_protocol_t larder_protocol_pypi = {
    .proto = LARDER_PROTO_PYPI,
    .name = "pypi",
    .mount = "/pypi/",
    .summary = "the pip index (PEP 503/691 simple API) at /pypi/simple/, files at /pypi/files/",
    .default_ttl = "10m",
    .default_upstream = "https://pypi.org/simple/",
    .seed_keys = pypi_seed_keys,
    .seed_shape = "requirements: [...], python_versions: [...]",
    .handle = pypi_handle,
    .seed = pypi_seed,
    .pin_spec = larder_pypi_pin_spec,
    .bundle_meta = pypi_bundle_meta,
};
