/* reqhead.h - what an HTTP/1 request head says about its body, read before h2o reads the body. */
#ifndef LARDER_REQHEAD_H
#define LARDER_REQHEAD_H

#include <stddef.h>
#include <stdint.h>

enum {
    LARDER_BODY_NONE = 0,   /* neither Content-Length nor Transfer-Encoding */
    LARDER_BODY_LENGTH,     /* Content-Length (repeated only with the same value) */
    LARDER_BODY_CHUNKED,    /* one Transfer-Encoding, no Content-Length */
    LARDER_BODY_AMBIGUOUS,  /* different Content-Length values, Transfer-Encoding with Content-Length, or several
                               Transfer-Encoding headers: two parsers may disagree where the body ends */
    LARDER_BODY_BAD_LENGTH, /* a Content-Length that is not a plain decimal number */
};

typedef struct larder_reqhead {
    const char *method, *path, *authorization; /* point into the parsed buffer; authorization NULL if absent */
    size_t method_len, path_len, authorization_len;
    int framing;             /* LARDER_BODY_* */
    uint64_t content_length; /* for LARDER_BODY_LENGTH */
} larder_reqhead_t;

/* h2o 2.2.5's H2O_MAX_REQLEN: the longest request head it parses (reqhead.c checks that the two agree) */
#define LARDER_REQHEAD_MAX (8192 + 4096 * 100)

/* Parse the request head at the start of buf (with h2o's own parser, so both see the same headers).
 * Returns the head's length (> 0) and fills out, -2 when the head is not complete yet, -1 when it is not an
 * HTTP/1 request head. Only the first LARDER_REQHEAD_MAX bytes are looked at, as h2o does. */
int larder_reqhead_parse(const char *buf, size_t len, larder_reqhead_t *out);
/* The same, for a head that arrives in pieces: last_len is how many bytes an earlier call found incomplete, so
 * only the new bytes are searched for the end of the head (no quadratic rescans of a slowly sent head). */
int larder_reqhead_parse_more(const char *buf, size_t len, size_t last_len, larder_reqhead_t *out);

#endif
