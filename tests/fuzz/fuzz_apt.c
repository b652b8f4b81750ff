/* fuzz_apt.c - the apt request mapper (proxy and path form), the Release and Packages parsers, decompression and the
 * dependency closure (over two suites), on arbitrary bytes. */
#include "apt.h"

#include <stdlib.h>
#include <string.h>

static void on_rel(void *ctx, const char *relpath, const char *sha, uint64_t size)
{
    (void)ctx, (void)size;
    if (strlen(sha) != 64 || !*relpath)
        abort();
}

static void on_pkg(void *ctx, const larder_apt_pkg_t *p)
{
    (void)ctx;
    if (!p->package || !*p->package)
        abort();
}

static void on_clos(void *ctx, const char *package, const char *version, const char *filename, const char *sha256,
                    uint64_t size, int repo)
{
    (void)ctx, (void)sha256, (void)size;
    if (!*package || !version || !filename || repo < 0 || repo > 1)
        abort();
}

static void on_missing(void *ctx, const char *name, const char *needed_by, const char *why)
{
    (void)ctx, (void)needed_by, (void)why;
    if (!*name)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *s = (const char *)data;
    char err[200];
    larder_apt_target_t t;
    for (int proxy = 0; proxy < 2; proxy++) {
        if (larder_apt_map(s, size, proxy, &t, err, sizeof(err)) == 0) {
            /* whatever is accepted is a clean absolute path: no traversal, no empty segment, no NUL */
            if (t.path[0] != '/' || strstr(t.path, "/.") || strstr(t.path, "//") || strlen(t.path) == 0 ||
                t.prefix_len > strlen(t.path) || !t.host[0])
                abort();
        }
    }
    int by_hash;
    larder_apt_parse_release(s, size, on_rel, NULL, &by_hash);
    larder_apt_parse_packages(s, size, on_pkg, NULL);
    size_t n;
    char *d = larder_apt_decompress(s, size, 1 << 22, &n);
    free(d);
    /* the closure over the input as two suites (its halves), the second listing what the first does not */
    larder_apt_universe_t *u = larder_apt_universe_new();
    larder_apt_universe_set_arch(u, "amd64");
    larder_apt_universe_add(u, s, size / 2, 0);
    larder_apt_universe_add(u, s + size / 2, size - size / 2, 1);
    char *names[] = {"app", "libc6", "mta"};
    larder_apt_closure(u, names, 3, on_clos, on_missing, NULL);
    larder_apt_universe_free(u);
    return 0;
}
