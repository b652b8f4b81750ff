/* fuzz_npm.c - the packument rewriter (full and abbreviated), the request-path router, lockfile reading and seed
 * references, on arbitrary bytes. */
#include "npm.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void on_tarball(void *ctx, const larder_npm_tarball_t *t)
{
    (void)ctx;
    size_t n = strlen(t->file);
    /* a tarball file name is one safe path segment: it becomes part of a cache key and a URL path */
    if (n < 5 || strchr(t->file, '/') || strcmp(t->file + n - 4, ".tgz") != 0 || t->file[0] == '.' ||
        strncasecmp(t->url, "http", 4) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[256];
    for (int abbr = 0; abbr < 2; abbr++) {
        larder_npm_buf_t out = {0};
        larder_npm_rewrite_packument((const char *)data, size, "@scope/demo", abbr, &out, on_tarball, NULL, err,
                                     sizeof(err));
        free(out.p);
    }
    char name[256], file[256];
    const char *e;
    int kind = larder_npm_route((const char *)data, size < 4096 ? size : 4096, name, sizeof(name), file, sizeof(file),
                                &e);
    if (kind > 0 && (!larder_npm_name_ok(name, strlen(name)) || strstr(name, "..") == name))
        abort();
    if (kind == LARDER_NPM_TARBALL && (strchr(file, '/') || file[0] == '.'))
        abort();
    char **lines = NULL;
    long n = larder_npm_lockfile_lines((const char *)data, size, &lines, NULL, NULL, err, sizeof(err));
    for (long i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    char ref[512], version[128], integ[300];
    size_t rn = size < sizeof(ref) - 1 ? size : sizeof(ref) - 1;
    memcpy(ref, data, rn);
    ref[rn] = 0;
    larder_npm_parse_seed_ref(ref, name, sizeof(name), version, sizeof(version), integ, sizeof(integ), err,
                              sizeof(err));
    return 0;
}
