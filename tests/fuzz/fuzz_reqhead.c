/* fuzz_reqhead.c - request-head framing against arbitrary bytes: never reads outside the input, and whatever it
 * returns is consistent (a parsed head lies inside the input, its method, path and Authorization value too), and a
 * head fed in two pieces gives the same answer as at once when it is complete. */
#include "reqhead.h"

#include <stdlib.h>

static void inside(const unsigned char *data, size_t size, const char *p, size_t len)
{
    if (p && ((const unsigned char *)p < data || (const unsigned char *)p + len > data + size))
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    larder_reqhead_t h;
    int r = larder_reqhead_parse((const char *)data, size, &h);
    if (r == 0 || r < -2 || (r > 0 && (size_t)r > size))
        abort();
    if (r > 0) {
        inside(data, size, h.method, h.method_len);
        inside(data, size, h.path, h.path_len);
        inside(data, size, h.authorization, h.authorization_len);
        if (h.framing < LARDER_BODY_NONE || h.framing > LARDER_BODY_BAD_LENGTH)
            abort();
    }
    /* fed in two pieces, the head gives the same answer as at once */
    size_t half = size / 2;
    larder_reqhead_t h1;
    if (larder_reqhead_parse((const char *)data, half, &h1) == -2) {
        larder_reqhead_t h2;
        int r2 = larder_reqhead_parse_more((const char *)data, size, half, &h2);
        /* a complete head is found either way with the same framing; incomplete and broken (-2 and -1) may differ,
         * as they do in h2o, which searches only the new bytes for an end of head with the same parser */
        if ((r > 0 || r2 > 0) && (r2 != r || h2.framing != h.framing))
            abort();
    }
    return 0;
}
