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

/* ---- raw requirements text (the daemon and `larder seed` alike) ---- */

typedef struct req_report {
    const char *text;
    size_t len;
    larder_seed_input_report_fn report;
    void *rctx;
} req_report_t;

static void req_unseedable(void *ctx, const char *line, const char *why, int failed)
{
    req_report_t *r = ctx;
    r->report(r->rctx, larder_text_line_of(r->text, r->len, line), line, why, failed);
}

/* requirement lines of text into pypi items. An unpinned line is not seeded (reported); a line that is no
 * requirement at all fails the text. includes: the -r files named (NULL: each is reported, as pasted text cannot
 * name files the daemon could read) */
static int expand_text(larder_seed_spec_t *spec, int proto, const char *text, size_t len,
                       larder_seed_input_report_fn report, void *rctx, char ***includes, size_t *ninc,
                       unsigned *errline, char *err, size_t errlen)
{
    req_report_t rr = {text, len, report, rctx};
    char **lines, **inc;
    size_t ni, n = larder_pypi_requirement_lines_ex(text, len, &lines, &inc, &ni, req_unseedable, &rr);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        larder_pypi_requirement_t req;
        char perr[300];
        if (r == 0 && larder_pypi_parse_requirement(lines[i], &req, perr, sizeof(perr)) < 0) {
            unsigned ln = larder_text_line_of(text, len, lines[i]);
            if (strstr(perr, "pinned")) {
                report(rctx, ln, lines[i], perr, 1);
            } else {
                *errline = ln;
                snprintf(err, errlen, "line %u: %s", ln, perr);
                r = -1;
            }
        } else if (r == 0 && larder_seed_append(spec, proto, lines[i], NULL) < 0) {
            r = -1;
            snprintf(err, errlen, "out of memory");
        }
        free(lines[i]);
    }
    free(lines);
    if (includes) {
        *includes = inc;
        *ninc = ni;
        return r;
    }
    for (size_t i = 0; i < ni; i++) {
        char what[4200];
        snprintf(what, sizeof(what), "-r %s", inc[i]);
        report(rctx, larder_text_line_of(text, len, inc[i]), what,
               "an include: the daemon cannot read other files; paste that file too, or use `larder seed` with "
               "requirement_files", 1);
        free(inc[i]);
    }
    free(inc);
    return r;
}

static int expand_requirements_text(const larder_config_t *cfg, larder_seed_spec_t *spec, int proto, const char *text,
                                    size_t len, larder_seed_input_report_fn report, void *rctx, unsigned *errline,
                                    char *err, size_t errlen)
{
    (void)cfg;
    return expand_text(spec, proto, text, len, report, rctx, NULL, NULL, errline, err, errlen);
}

/* a line of a requirements file: "name==1.0", "name[x]>=1; marker", "-r other.txt", "--hash=..." */
static int req_line_ok(const char *s)
{
    if (s[0] == '-')
        return !strncmp(s, "-r ", 3) || !strncmp(s, "-c ", 3) || !strncmp(s, "-e ", 3) || !strncmp(s, "--", 2) ||
               !strncmp(s, "-i ", 3);
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    size_t i = 0;
    while (s[i] && (strchr("-_.", s[i]) || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                    (s[i] >= '0' && s[i] <= '9')))
        i++;
    return !s[i] || strchr("[=<>~!; \\", s[i]) != NULL;
}

static int strong_line(const char *s) { return strstr(s, "==") || strstr(s, ">=") || strstr(s, "~=") || !strncmp(s, "-r ", 3) || strstr(s, "--hash="); }

static int detect_requirements(const char *text, size_t len)
{
    int share = larder_text_line_score(text, len, req_line_ok);
    if (share < 100)
        return share * 6 / 10;
    /* bare names fit other lists too (apt packages, images): only pip's own operators make it certain */
    return larder_text_line_score(text, len, strong_line) > 0 ? 90 : 60;
}

static const larder_seed_input_t pypi_inputs[] = {
    {.kind = "requirements", .detect = detect_requirements, .expand = expand_requirements_text},
    {.kind = NULL},
};

static void file_unseedable(void *ctx, unsigned line, const char *text, const char *why, int failed)
{
    (void)line; /* named by the line as written, as before */
    larder_unseedable_report(ctx, text, why, failed);
}

/* `larder seed`: a requirements file and the files it includes with -r (relative to it), into pypi items */
static int expand_at(larder_seed_spec_t *spec, int proto, const char *path, int depth, larder_unseedable_fn fn,
                     void *uctx, char *err, size_t errlen)
{
    size_t len;
    char *text = larder_seed_read_file(path, "requirement file", &len, err, errlen);
    if (!text)
        return -1;
    larder_unseedable_t u = {fn, uctx, path};
    char **inc = NULL, perr[400];
    size_t ninc = 0;
    unsigned errline = 0;
    int r = expand_text(spec, proto, text, len, file_unseedable, &u, &inc, &ninc, &errline, perr, sizeof(perr));
    free(text);
    if (r < 0)
        snprintf(err, errlen, "%s: %s", path, perr);
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
    .seed_inputs = pypi_inputs,
    .handle = pypi_handle,
    .seed = pypi_seed,
    .pin_spec = larder_pypi_pin_spec,
    .bundle_meta = pypi_bundle_meta,
};
