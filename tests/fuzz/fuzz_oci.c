/* fuzz_oci.c - registry request parsing (path and ?ns= query), image references and Accept matching, on arbitrary
 * bytes. */
#include "oci.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *s = (const char *)data;
    const char *q = memchr(s, '?', size);
    size_t plen = q ? (size_t)(q - s) : size;
    larder_oci_req_t o;
    const char *code;
    char err[300];
    if (larder_oci_parse(s, plen, q ? q + 1 : NULL, q ? size - plen - 1 : 0, &o, &code, err, sizeof(err)) == 0 &&
        o.kind != LARDER_OCI_ROOT) {
        /* accepted names never climb out of their repository or carry odd bytes into keys and URLs */
        if (!o.registry[0] || !o.name[0] || strstr(o.name, "..") || strstr(o.name, "//") || o.name[0] == '/' ||
            strpbrk(o.name, " ?#%\\") || strpbrk(o.registry, "/ ?#%@") || strpbrk(o.ref, "/ ?#%"))
            abort();
    }
    char ref[512];
    size_t n = size < sizeof(ref) - 1 ? size : sizeof(ref) - 1;
    memcpy(ref, data, n);
    ref[n] = 0;
    if (larder_oci_parse_ref(ref, &o, err, sizeof(err)) == 0 && (!o.ref[0] || strchr(o.registry, '/')))
        abort();
    larder_oci_accepts(s, size, "application/vnd.oci.image.index.v1+json");
    return 0;
}
