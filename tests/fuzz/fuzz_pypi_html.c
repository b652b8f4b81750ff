/* fuzz_pypi_html.c - the project-page rewriter and the project-list converter on arbitrary upstream HTML, and the
 * Accept negotiation on the same bytes. Invariants: every file the rewriter reports is an http(s) URL (nothing else
 * can ever be fetched), HTML never fails, and what we store (JSON) always renders back to HTML. */
#include "pypi.h"

#include <stdlib.h>
#include <string.h>

static void on_file(void *ctx, const larder_pypi_file_t *f)
{
    if (!f->url || strncmp(f->url, "http", 4) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[256];
    for (int fmt = 0; fmt < 2; fmt++) {
        larder_pypi_buf_t out = {0};
        int r = larder_pypi_rewrite_page("https://up.example:8443/simple/demo/", "demo", 0, (const char *)data, size,
                                         fmt, &out, on_file, NULL, err, sizeof(err));
        if (r != 0)
            abort(); /* HTML never fails: unparseable markup yields an empty page */
        if (fmt == LARDER_PYPI_JSON) {
            size_t hl;
            char *h = larder_pypi_render_html(out.p, out.len, &hl);
            if (!h)
                abort(); /* the stored form always renders */
            free(h);
        }
        free(out.p);
    }
    larder_pypi_buf_t idx = {0};
    if (larder_pypi_rewrite_index(0, (const char *)data, size, &idx, err, sizeof(err)) != 0)
        abort();
    size_t hl;
    char *h = larder_pypi_render_html(idx.p, idx.len, &hl);
    if (!h)
        abort();
    free(h);
    free(idx.p);
    int legacy;
    int fmt = larder_pypi_negotiate((const char *)data, size, &legacy);
    if (fmt < -1 || fmt > 1)
        abort();
    return 0;
}
