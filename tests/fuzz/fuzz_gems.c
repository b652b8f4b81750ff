/* fuzz_gems.c - the compact index /info parser, Gemfile.lock reading, gem paths and seed references, on arbitrary
 * bytes. */
#include "gems.h"

#include <stdlib.h>
#include <string.h>

static void on_v(void *ctx, const char *version, const char *platform, const char *sha)
{
    (void)ctx, (void)platform;
    if (!*version || (sha && strlen(sha) != 64))
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *s = (const char *)data;
    larder_gems_parse_info(s, size, on_v, NULL);
    char **lines = NULL, err[300];
    long n = larder_gems_lockfile_lines(s, size, &lines, err, sizeof(err));
    for (long i = 0; i < n; i++) {
        if (!strchr(lines[i], ':'))
            abort();
        free(lines[i]);
    }
    free(lines);
    char arg[256];
    const char *e;
    if (larder_gems_route(s, size, arg, sizeof(arg), &e) > 0 && (strchr(arg, '/') || strstr(arg, "..")))
        abort();
    char ref[512], name[256], ver[128];
    size_t rn = size < sizeof(ref) - 1 ? size : sizeof(ref) - 1;
    memcpy(ref, data, rn);
    ref[rn] = 0;
    larder_gems_parse_seed_ref(ref, name, sizeof(name), ver, sizeof(ver), err, sizeof(err));
    return 0;
}
