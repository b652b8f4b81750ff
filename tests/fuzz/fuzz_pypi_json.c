/* fuzz_pypi_json.c - the project-page rewriter and the project-list converter on arbitrary upstream JSON (PEP 691),
 * to both output formats, and the HTML renderer on arbitrary bytes (it reads what we stored, but must not trust
 * it). Invariant: what the rewriters accept renders back to HTML. */
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
    size_t hl;
    for (int fmt = 0; fmt < 2; fmt++) {
        larder_pypi_buf_t out = {0};
        int r = larder_pypi_rewrite_page("https://up.example/simple/demo/", "demo", 1, (const char *)data, size, fmt,
                                         &out, on_file, NULL, err, sizeof(err));
        if (r == 0 && fmt == LARDER_PYPI_JSON) {
            char *h = larder_pypi_render_html(out.p, out.len, &hl);
            if (!h)
                abort();
            free(h);
        }
        free(out.p);
    }
    larder_pypi_buf_t idx = {0};
    if (larder_pypi_rewrite_index(1, (const char *)data, size, &idx, err, sizeof(err)) == 0) {
        char *h = larder_pypi_render_html(idx.p, idx.len, &hl);
        if (!h)
            abort();
        free(h);
    }
    free(idx.p);
    free(larder_pypi_render_html((const char *)data, size, &hl));
    /* the same bytes as a requirement line must not crash either */
    char line[512];
    size_t n = size < sizeof(line) - 1 ? size : sizeof(line) - 1;
    memcpy(line, data, n);
    line[n] = 0;
    larder_pypi_requirement_t r;
    larder_pypi_parse_requirement(line, &r, err, sizeof(err));
    return 0;
}
