/* module.c - the gems module's declaration: the common config keys only, its seed section (gems: [...],
 * lockfiles: [Gemfile.lock], read by `larder seed`) and its handlers (gems.c). */
#include "internal.h"
#include "module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- raw Gemfile.lock text (the daemon and `larder seed` alike) ---- */

typedef struct lock_report {
    const char *text;
    size_t len;
    larder_seed_input_report_fn report;
    void *rctx;
} lock_report_t;

static void lock_skipped(void *ctx, const char *what, const char *why, int failed)
{
    lock_report_t *r = ctx;
    r->report(r->rctx, larder_text_line_of(r->text, r->len, what), what, why, failed);
}

static int expand_gemfile_lock_text(const larder_config_t *cfg, larder_seed_spec_t *spec, int proto, const char *text,
                                    size_t len, larder_seed_input_report_fn report, void *rctx, unsigned *errline,
                                    char *err, size_t errlen)
{
    (void)cfg;
    lock_report_t lr = {text, len, report, rctx};
    char **lines = NULL;
    *errline = 0;
    long n = larder_gems_lockfile_lines_ex(text, len, &lines, lock_skipped, &lr, err, errlen);
    if (n < 0)
        return -1;
    return larder_seed_append_lines(spec, proto, lines, (size_t)n);
}

static int detect_gemfile_lock(const char *text, size_t len)
{
    int sections = (len >= 4 && (!memcmp(text, "GEM\n", 4) || !memcmp(text, "GIT\n", 4))) ||
                   (len >= 5 && !memcmp(text, "PATH\n", 5)) || memmem(text, len, "\nGEM\n", 5);
    return sections && memmem(text, len, "\n  specs:\n", 10) ? 100 : 0;
}

static const larder_seed_input_t gems_inputs[] = {
    {.kind = "gemfile-lock", .detect = detect_gemfile_lock, .expand = expand_gemfile_lock_text},
    {.kind = NULL},
};

static void file_unseedable(void *ctx, unsigned line, const char *text, const char *why, int failed)
{
    (void)line;
    larder_unseedable_report(ctx, text, why, failed);
}

/* `larder seed`: a Gemfile.lock into gems items (GIT sections are listed as not seedable, PATH ones as local) */
static int expand_gemfile_lock(larder_seed_spec_t *spec, int proto, const char *path, larder_unseedable_fn fn,
                               void *uctx, char *err, size_t errlen)
{
    size_t len;
    char *text = larder_seed_read_file(path, "Gemfile.lock", &len, err, errlen);
    if (!text)
        return -1;
    larder_unseedable_t u = {fn, uctx, path};
    char perr[300];
    unsigned errline = 0;
    int r = expand_gemfile_lock_text(NULL, spec, proto, text, len, file_unseedable, &u, &errline, perr, sizeof(perr));
    free(text);
    if (r < 0)
        snprintf(err, errlen, "%s: %s", path, perr);
    return r;
}

static const larder_seed_key_t gems_seed_keys[] = {
    {.key = "gems", .kind = LARDER_SEED_ITEMS},
    {.key = "lockfiles", .kind = LARDER_SEED_FILES, .expand = expand_gemfile_lock},
    {.key = NULL},
};

/* compact index files: their MD5 (md5/<sha256>, bundler's ETag); an /info file the checksums of the gems it lists
 * (g/<name>-<version>[-<platform>].gem) */
static void gems_bundle_meta(const char *key, const larder_entry_t *e, void (*add)(void *, const char *, int), void *ctx)
{
    char p[512];
    if (e && snprintf(p, sizeof(p), "md5/%s", e->digest) < (int)sizeof(p))
        add(ctx, p, 0);
    if (strncmp(key, "info/", 5) == 0 && snprintf(p, sizeof(p), "g/%s-", key + 5) < (int)sizeof(p))
        add(ctx, p, 1);
}

const larder_protocol_t larder_protocol_gems = {
    .proto = LARDER_PROTO_GEMS,
    .name = "gems",
    .mount = "/gems/",
    .summary = "rubygems.org cache at /gems/ (compact index, bundler and gem)",
    .default_ttl = "10m",
    .default_upstream = "https://rubygems.org/",
    .seed_keys = gems_seed_keys,
    .seed_shape = "gems: [...], lockfiles: [...]",
    .seed_inputs = gems_inputs,
    .handle = gems_handle,
    .seed = gems_seed,
    .pin_spec = larder_gems_pin_spec,
    .bundle_meta = gems_bundle_meta,
};
