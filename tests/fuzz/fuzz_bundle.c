/* fuzz_bundle.c - the bundle reader (bundle.c on tar.c) against arbitrary bytes: bundles arrive over the admin API
 * from a file anyone may have handled. The input is fed in pieces whose sizes come from its first byte, as network
 * chunks would split it. A refusal must say why; an accepted bundle must have a manifest whose every blob was seen
 * with its size, and no more blob bytes than the manifest announces; the same for external members (external/<n>). */
#include "bundle.h"

#include <stdlib.h>
#include <string.h>

typedef struct seen {
    uint64_t bytes, begins, ends;
} seen_t;

static int s_begin(void *ctx, larder_bundle_reader_t *r, const larder_bundle_blob_t *b)
{
    ((seen_t *)ctx)->begins++;
    return 0;
}
static int s_data(void *ctx, larder_bundle_reader_t *r, const unsigned char *p, size_t n)
{
    ((seen_t *)ctx)->bytes += n;
    return 0;
}
static int s_end(void *ctx, larder_bundle_reader_t *r, const larder_bundle_blob_t *b)
{
    ((seen_t *)ctx)->ends++;
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] * 7 + 1;
    data++;
    size--;
    seen_t s = {0};
    larder_bundle_sink_t sink = {NULL, s_begin, s_data, s_end, &s};
    larder_bundle_reader_t r;
    larder_bundle_reader_init(&r, &sink);
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0;) {
        size_t n = size - off < step ? size - off : step;
        rc = larder_bundle_feed(&r, data + off, n);
        off += n;
    }
    if (rc == 0)
        rc = larder_bundle_finish(&r);
    if (rc < 0) {
        if (!larder_bundle_error(&r)[0])
            abort(); /* every refusal says why */
    } else {
        /* external members (a git mirror's data) come through the same sink */
        if (!r.have_manifest || s.ends != r.m.nblobs + r.m.nexternal || s.begins != r.m.nblobs + r.m.nexternal ||
            s.bytes != r.m.blob_bytes + r.m.external_bytes)
            abort();
        for (size_t i = 0; i < r.m.nblobs; i++)
            if (!r.m.blobs[i].seen)
                abort();
        for (size_t i = 0; i < r.m.nentries; i++)
            if (r.m.entries[i].has_external && (!r.m.entries[i].ext.seen || r.m.entries[i].ext.entry != i + 1))
                abort();
    }
    larder_bundle_reader_free(&r);
    return 0;
}
