/* route.c - what an npm registry path names (part of the npm protocol, see serve.c).
 *
 * Package names ("name", "@scope/name", with the scope's slash sent raw or as %2f/%2F) and tarball file names are
 * checked here, and a path below the mount is split into a packument, a tarball or a per-version document. These are
 * pure functions over bytes from the network: no store, no configuration, no request; the unit tests and the fuzzer
 * call them directly through npm.h. serve.c routes every request with larder_npm_route(); packument.c uses
 * npm_file_ok() on the tarball file names it finds in upstream documents, and seed.c checks seed names with
 * larder_npm_name_ok(). */
#include "internal.h"

#include <ctype.h>
#include <string.h>

static int name_part_ok(const char *s, size_t len)
{
    if (len == 0 || len > 214 || s[0] == '.' || s[0] == '_')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~'))
            return 0;
    }
    return 1;
}

int larder_npm_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 214)
        return 0;
    if (name[0] == '@') {
        const char *slash = memchr(name, '/', len);
        if (!slash)
            return 0;
        return name_part_ok(name + 1, (size_t)(slash - name - 1)) &&
               name_part_ok(slash + 1, len - (size_t)(slash + 1 - name));
    }
    return name_part_ok(name, len);
}

int npm_file_ok(const char *s, size_t len)
{
    if (len < 5 || len > 255 || s[0] == '.' || strncmp(s + len - 4, ".tgz", 4) != 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '+' || ch == '~'))
            return 0;
    }
    return 1;
}

int larder_npm_route(const char *path, size_t len, char *name, size_t namelen, char *file, size_t filelen,
                     const char **err)
{
    *err = "not an npm registry path";
    file[0] = 0;
    /* the name: "name", "@scope/name" or "@scope%2fname" (never decoded before this point) */
    char nb[512];
    size_t nl = 0, i = 0;
    if (len == 0)
        return -1;
    if (path[0] == '@') {
        const char *sep = NULL;
        size_t seplen = 0;
        for (size_t k = 1; k < len; k++) {
            if (path[k] == '/') {
                sep = path + k;
                seplen = 1;
                break;
            }
            if (path[k] == '%' && k + 2 < len && path[k + 1] == '2' && (path[k + 2] == 'f' || path[k + 2] == 'F')) {
                sep = path + k;
                seplen = 3;
                break;
            }
        }
        if (!sep)
            return -1;
        size_t sl = (size_t)(sep - path);
        const char *rest = sep + seplen;
        const char *e = memchr(rest, '/', len - (size_t)(rest - path));
        size_t pl = e ? (size_t)(e - rest) : len - (size_t)(rest - path);
        if (sl + 1 + pl >= sizeof(nb))
            return -1;
        memcpy(nb, path, sl);
        nb[sl] = '/';
        memcpy(nb + sl + 1, rest, pl);
        nl = sl + 1 + pl;
        i = (size_t)(rest - path) + pl;
    } else {
        const char *e = memchr(path, '/', len);
        nl = e ? (size_t)(e - path) : len;
        if (nl >= sizeof(nb))
            return -1;
        memcpy(nb, path, nl);
        i = nl;
    }
    nb[nl] = 0;
    if (!larder_npm_name_ok(nb, nl)) {
        *err = "not a valid package name";
        return -1;
    }
    if (nl + 1 > namelen)
        return -1;
    memcpy(name, nb, nl + 1);
    if (i == len || (i + 1 == len && path[i] == '/'))
        return LARDER_NPM_PACKUMENT;
    /* i at '/': "-/<file>" or "<version>" */
    const char *r = path + i + 1;
    size_t rl = len - i - 1;
    if (rl >= 2 && r[0] == '-' && r[1] == '/') {
        if (!npm_file_ok(r + 2, rl - 2) || rl - 2 + 1 > filelen) {
            *err = "not a tarball file name (<name>-<version>.tgz)";
            return -1;
        }
        memcpy(file, r + 2, rl - 2);
        file[rl - 2] = 0;
        return LARDER_NPM_TARBALL;
    }
    if (rl == 0 || rl + 1 > filelen || memchr(r, '/', rl))
        return -1;
    for (size_t k = 0; k < rl; k++)
        if (!(isalnum((unsigned char)r[k]) || (r[k] && strchr("-._+~", r[k]))))
            return -1;
    memcpy(file, r, rl);
    file[rl] = 0;
    return LARDER_NPM_VERSION;
}
