/* reqhead.c - the framing of an HTTP/1 request, decided from its head before anything reads the body.
 *
 * h2o 2.2.5 resolves conflicting framing silently: Transfer-Encoding wins over Content-Length, and of several
 * Content-Length headers the first counts. A proxy in front of Larder may pick the other one, and the bytes it
 * thinks are a body become a second request here (request smuggling). So the head is parsed again with the very
 * parser h2o uses (picohttpparser, exported by libh2o; its header is not installed, hence the declaration below)
 * and such requests are called ambiguous, to be answered 400 with the connection closed. Repeated Content-Length
 * headers with the same value are allowed (RFC 9112 section 6.3). Nothing here allocates or keeps state. */
#include "reqhead.h"

#include <h2o.h>
#include <string.h>
#include <strings.h>

_Static_assert(LARDER_REQHEAD_MAX == H2O_MAX_REQLEN, // NOLINT(misc-redundant-expression): equal is the point
               "LARDER_REQHEAD_MAX must follow h2o's H2O_MAX_REQLEN");

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

static int name_is(const struct phr_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name && h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* a Content-Length value: digits only (optional whitespace around was already trimmed by the parser) */
static int parse_length(const char *v, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = n;
    return 0;
}

int larder_reqhead_parse(const char *buf, size_t len, larder_reqhead_t *out)
{
    return larder_reqhead_parse_more(buf, len, 0, out);
}

int larder_reqhead_parse_more(const char *buf, size_t len, size_t last_len, larder_reqhead_t *out)
{
    struct phr_header headers[H2O_MAX_HEADERS];
    size_t nheaders = H2O_MAX_HEADERS;
    int minor;
    memset(out, 0, sizeof(*out));
    if (len > LARDER_REQHEAD_MAX)
        len = LARDER_REQHEAD_MAX;
    int r = phr_parse_request(buf, len, &out->method, &out->method_len, &out->path, &out->path_len, &minor, headers,
                              &nheaders, last_len < len ? last_len : 0);
    if (r <= 0)
        return r == -2 ? -2 : -1;
    int nlength = 0, ntransfer = 0, bad = 0, differ = 0;
    for (size_t i = 0; i < nheaders; i++) {
        const struct phr_header *h = &headers[i];
        if (name_is(h, "content-length")) {
            uint64_t v;
            if (parse_length(h->value, h->value_len, &v) < 0)
                bad = 1;
            else if (nlength > 0 && v != out->content_length)
                differ = 1;
            else
                out->content_length = v;
            nlength++;
        } else if (name_is(h, "transfer-encoding")) {
            ntransfer++;
        } else if (name_is(h, "authorization") && !out->authorization) {
            out->authorization = h->value;
            out->authorization_len = h->value_len;
        }
    }
    if (differ || (ntransfer && nlength) || ntransfer > 1)
        out->framing = LARDER_BODY_AMBIGUOUS;
    else if (bad)
        out->framing = LARDER_BODY_BAD_LENGTH;
    else if (ntransfer)
        out->framing = LARDER_BODY_CHUNKED;
    else if (nlength)
        out->framing = LARDER_BODY_LENGTH;
    else
        out->framing = LARDER_BODY_NONE;
    return r;
}
