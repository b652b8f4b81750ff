/* fuzz_npm_stream.c - the streaming packument rewriter (pkstream.c), differentially: the input (after two bytes that
 * seed the chunk sizes) is fed in random chunk splits, and whenever jansson accepts the document (duplicate keys
 * refused: a streaming rewrite keeps every one, jansson the last) the streamed full and abbreviated forms must parse
 * as JSON and equal, as JSON, what the DOM rewrite (larder_npm_rewrite_packument) makes of it, with the same
 * tarballs reported; when the DOM rewrite refuses the document, so must the stream. */
#include "npm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void count_tarball(void *ctx, const larder_npm_tarball_t *t)
{
    (void)t;
    (*(size_t *)ctx)++;
}

static json_t *parse(const char *p, size_t n)
{
    json_error_t je;
    return json_loadb(p ? p : "", n, JSON_ALLOW_NUL, &je);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned seed = (unsigned)data[0] << 8 | data[1];
    const char *doc = (const char *)data + 2;
    size_t len = size - 2;
    char err[256];
    size_t ntb = 0;
    larder_npm_stream_t *s = larder_npm_stream_new("@scope/demo", count_tarball, &ntb);
    larder_npm_buf_t out[2] = {{0}, {0}};
    int r = 0;
    for (size_t off = 0; off < len && r == 0;) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % (seed & 1 ? 7 : 300);
        if (n > len - off)
            n = len - off;
        r = larder_npm_stream_feed(s, doc + off, n, err, sizeof(err));
        off += n;
        for (int i = 0; i < 2; i++) { /* drain as the fetch does */
            larder_npm_buf_t *o = larder_npm_stream_out(s, i);
            if (o->len) {
                out[i].p = realloc(out[i].p, out[i].len + o->len + 1);
                memcpy(out[i].p + out[i].len, o->p, o->len);
                out[i].len += o->len;
                o->len = 0;
            }
        }
    }
    if (r == 0)
        r = larder_npm_stream_finish(s, err, sizeof(err));
    for (int i = 0; i < 2; i++) {
        larder_npm_buf_t *o = larder_npm_stream_out(s, i);
        out[i].p = realloc(out[i].p, out[i].len + o->len + 1);
        if (o->len)
            memcpy(out[i].p + out[i].len, o->p, o->len);
        out[i].len += o->len;
    }
    larder_npm_stream_free(s);

    json_error_t je;
    json_t *strict = json_loadb(doc, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (strict) {
        json_decref(strict);
        for (int abbr = 0; abbr < 2; abbr++) {
            larder_npm_buf_t ref = {0};
            size_t rtb = 0;
            int rr = larder_npm_rewrite_packument(doc, len, "@scope/demo", abbr, &ref, count_tarball, &rtb, err,
                                                  sizeof(err));
            if (rr < 0) {
                if (r == 0) {
                    fprintf(stderr, "the stream accepted what the DOM rewrite refused: %s\n", err);
                    abort();
                }
                free(ref.p);
                continue;
            }
            if (r < 0) {
                fprintf(stderr, "the stream refused what the DOM rewrite accepted: %s\n", err);
                abort();
            }
            json_t *a = parse(ref.p, ref.len), *b = parse(out[abbr].p, out[abbr].len);
            if (!a || !b || !json_equal(a, b)) {
                fprintf(stderr, "form %d differs:\nDOM:    %.*s\nstream: %.*s\n", abbr, (int)ref.len,
                        ref.p ? ref.p : "", (int)out[abbr].len, out[abbr].p ? out[abbr].p : "");
                abort();
            }
            if (rtb != ntb) {
                fprintf(stderr, "tarballs: DOM %zu, stream %zu\n", rtb, ntb);
                abort();
            }
            json_decref(a);
            json_decref(b);
            free(ref.p);
        }
    }
    free(out[0].p);
    free(out[1].p);
    return 0;
}
