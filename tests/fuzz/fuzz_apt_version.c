/* fuzz_apt_version.c - the Debian version comparison on arbitrary bytes: never crashes, reflexive and antisymmetric,
 * consistent with the counted and NUL-terminated forms, and relations agree with the comparison. */
#include "apt_version.h"

#include <stdlib.h>
#include <string.h>

static int sgn(int v)
{
    return (v > 0) - (v < 0);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* three versions separated by '\n' (missing ones are empty) */
    const char *s = (const char *)data, *end = s + size;
    const char *v[3];
    size_t l[3];
    for (int i = 0; i < 3; i++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        v[i] = s;
        l[i] = (size_t)((nl ? nl : end) - s);
        s = nl ? nl + 1 : end;
    }
    for (int i = 0; i < 3; i++) {
        if (larder_apt_vercmp_n(v[i], l[i], v[i], l[i]) != 0)
            abort();
        for (int j = 0; j < 3; j++)
            if (sgn(larder_apt_vercmp_n(v[i], l[i], v[j], l[j])) != -sgn(larder_apt_vercmp_n(v[j], l[j], v[i], l[i])))
                abort();
    }
    /* transitivity over the three */
    int ab = sgn(larder_apt_vercmp_n(v[0], l[0], v[1], l[1])), bc = sgn(larder_apt_vercmp_n(v[1], l[1], v[2], l[2]));
    int ac = sgn(larder_apt_vercmp_n(v[0], l[0], v[2], l[2]));
    if (ab <= 0 && bc <= 0 && ac > 0)
        abort();
    if (ab >= 0 && bc >= 0 && ac < 0)
        abort();
    /* NUL-terminated copies compare the same (when there is no NUL inside), and relations follow */
    if (!memchr(v[0], 0, l[0]) && !memchr(v[1], 0, l[1])) {
        char *a = strndup(v[0], l[0]), *b = strndup(v[1], l[1]);
        int c = sgn(larder_apt_vercmp(a, b));
        if (c != ab)
            abort();
        if (larder_apt_relation_ok(a, ">=", b) != (c >= 0) || larder_apt_relation_ok(a, "<<", b) != (c < 0) ||
            larder_apt_relation_ok(a, "=", b) != (c == 0) || larder_apt_relation_ok(a, "~", b) != -1)
            abort();
        free(a);
        free(b);
    }
    return 0;
}
