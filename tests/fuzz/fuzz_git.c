/* fuzz_git.c - what the git module reads from clients and seed specs, on arbitrary bytes: request paths below
 * /git/ (a routed repository must be a safe directory name and URL path), the Git-Protocol header, ref names, the
 * lookup of a ref in a ref list, gzip request bodies (with their bound) and seed items. */
#include "git.h"

#include <stdlib.h>
#include <string.h>

static int count(void *ctx, const char *p, size_t n)
{
    (void)p;
    *(size_t *)ctx += n;
    return 0;
}

static void check_repo(const char *remote, const char *path)
{
    /* what becomes <data_dir>/git/<remote>/<path>.git and <url>/<path> */
    if (!larder_git_remote_name_ok(remote, strlen(remote)) || !path[0] || path[0] == '/' || path[0] == '.' ||
        strstr(path, "/.") || strstr(path, "//") || strchr(path, '%') || strchr(path, '\\') ||
        strlen(path) > LARDER_GIT_PATH_MAX || path[strlen(path) - 1] == '/')
        abort();
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#')
            abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *in = (const char *)data, *err = NULL;
    larder_git_route_t r;
    size_t n = size < 8192 ? size : 8192;
    if (larder_git_route(in, n, &r, &err) == 0) {
        if (r.kind < LARDER_GIT_INFO_REFS || r.kind > LARDER_GIT_REPO)
            abort();
        check_repo(r.remote, r.path);
    } else if (!err) {
        abort();
    }
    if (larder_git_protocol_ok(in, n)) {
        for (size_t i = 0; i < n; i++)
            if (in[i] == '\n' || in[i] == '\r' || in[i] == ' ' || in[i] == 0)
                abort();
        larder_git_protocol_is_v2(in, n);
    }
    if (larder_git_refname_ok(in, n) && (in[0] == '-' || memchr(in, ' ', n) || memchr(in, 0, n)))
        abort();
    char *s = malloc(n + 1);
    memcpy(s, in, n);
    s[n] = 0;
    size_t split = n ? (unsigned char)data[0] % (n + 1) : 0;
    s[split] = 0; /* the ref: the part before the split; the list: what follows */
    larder_git_ref_find(s + (split < n ? split + 1 : n), n - (split < n ? split + 1 : n), s);
    char remote[LARDER_GIT_REMOTE_MAX + 1], path[LARDER_GIT_PATH_MAX + 1];
    const char *refs;
    memcpy(s, in, n);
    s[n] = 0;
    if (!memchr(in, 0, n) && larder_git_seed_item(s, remote, sizeof(remote), path, sizeof(path), &refs, &err) == 0)
        check_repo(remote, path);
    free(s);
    size_t total = 0;
    if (larder_git_gunzip(in, size, 1u << 20, count, &total, &err) == 0 && total > 1u << 20)
        abort();
    return 0;
}
