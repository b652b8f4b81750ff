/* fuzz_content_length.c - the upstream Content-Length parser against arbitrary bytes (headers come from upstreams).
 * An accepted value must be exactly what its digits say: the input is blanks, the same decimal number once or in a
 * comma-separated list, and nothing else; anything else accepted is a parser bug even if it does not crash. */
#include "fetch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size > 256)
        return 0;
    char in[257];
    memcpy(in, data, size);
    in[size] = 0;
    if (strlen(in) != size)
        return 0; /* header values never hold NUL */
    int64_t v = larder_parse_content_length(in);
    if (v < 0) {
        if (v != -1)
            abort();
        return 0;
    }
    /* rebuild: every comma-separated field is blanks + the decimal number (leading zeros allowed) + blanks */
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, v);
    for (const char *s = in;;) {
        s += strspn(s, " \t");
        s += strspn(s, "0");
        size_t d = strspn(s, "0123456789");
        if (!(d == strlen(num) && memcmp(s, num, d) == 0) && !(v == 0 && d == 0 && s > in && s[-1] == '0'))
            abort();
        s += d;
        s += strspn(s, " \t");
        if (!*s)
            break;
        if (*s++ != ',')
            abort();
    }
    return 0;
}
