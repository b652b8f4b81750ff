/* fuzz_pypi_json.c - the project-page rewriter on arbitrary upstream JSON (PEP 691), to both output formats. */
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
        larder_pypi_rewrite_page("https://up.example/simple/demo/", "demo", 1, (const char *)data, size, fmt, &out,
                                 on_file, NULL, err, sizeof(err));
        free(out.p);
    }
    /* the same bytes as a requirement line must not crash either */
    char line[512];
    size_t n = size < sizeof(line) - 1 ? size : sizeof(line) - 1;
    memcpy(line, data, n);
    line[n] = 0;
    larder_pypi_requirement_t r;
    larder_pypi_parse_requirement(line, &r, err, sizeof(err));
    return 0;
}
