/* fuzz_pypi_html.c - the project-page rewriter on arbitrary upstream HTML, to both output formats. Invariant:
 * every file the rewriter reports is an http(s) URL (nothing else can ever be fetched), and HTML never fails. */
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
            abort(); /* HTML never fails: unparseable markup is copied */
        free(out.p);
    }
    return 0;
}
