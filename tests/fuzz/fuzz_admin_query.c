/* fuzz_admin_query.c - the admin API's query-parameter decoder and its entries cursor against arbitrary bytes (both
 * come from any client of /-/api/v1/). The input is split at its first newline: the query string, then a parameter
 * name. A decoded value must fit, hold no NUL, and equal the raw value when that has no '%' or '+'; a cursor that
 * decodes must encode back to itself (lower-cased), and every name must survive encode then decode. */
#include "admin.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size > 8192)
        return 0;
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t qlen = nl ? (size_t)(nl - in) : size;
    char name[64] = "q";
    if (nl) {
        size_t n = size - qlen - 1;
        if (n == 0 || n >= sizeof(name) || memchr(nl + 1, 0, n) || memchr(nl + 1, '=', n) || memchr(nl + 1, '&', n))
            return 0;
        memcpy(name, nl + 1, n);
        name[n] = 0;
    }
    char out[256];
    int r = larder_admin_query_in(in, qlen, name, out, sizeof(out));
    if (r < -1 || r > 1)
        abort();
    if (r == 1) {
        size_t ol = strnlen(out, sizeof(out));
        if (ol >= sizeof(out))
            abort();
        /* the raw value of the first segment named `name` */
        const char *q = in, *end = in + qlen;
        size_t nlen = strlen(name);
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q)), *se = amp ? amp : end;
            if ((size_t)(se - q) > nlen && memcmp(q, name, nlen) == 0 && q[nlen] == '=') {
                const char *v = q + nlen + 1;
                size_t vl = (size_t)(se - v);
                if (!memchr(v, '%', vl) && !memchr(v, '+', vl) && (vl != ol || memcmp(v, out, vl) != 0))
                    abort();
                break;
            }
            q = amp ? amp + 1 : end;
        }
    }
    /* the cursor: the query part as a cursor string */
    char hex[8193], dec[4097];
    memcpy(hex, in, qlen);
    hex[qlen] = 0;
    if (strlen(hex) == qlen && larder_admin_cursor_decode(hex, dec, sizeof(dec)) == 0) {
        char *back = larder_admin_cursor_encode(dec);
        if (!back || strlen(back) != qlen)
            abort();
        for (size_t i = 0; i < qlen; i++)
            if (back[i] != tolower((unsigned char)hex[i]))
                abort();
        free(back);
    }
    /* any name (up to its first NUL) round-trips */
    char nm[513];
    size_t n = size < 512 ? size : 512;
    memcpy(nm, in, n);
    nm[n] = 0;
    if (nm[0]) {
        char *e = larder_admin_cursor_encode(nm);
        if (!e || larder_admin_cursor_decode(e, dec, sizeof(dec)) != 0 || strcmp(dec, nm) != 0)
            abort();
        free(e);
    }
    return 0;
}
