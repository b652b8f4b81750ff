/* fuzz_files_map.c - the /files/ request-path mapper against arbitrary raw paths. Checks the invariants that
 * keep it from being an open proxy: a fetch target always starts with a configured prefix or pin URL, and
 * never contains a dot segment or an encoded slash. */
#include "config.h"
#include "files.h"

#include <stdlib.h>
#include <string.h>

static larder_config_t *cfg;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (!cfg) {
        static const char yaml[] = "files:\n"
                                   "  pins:\n"
                                   "    - {name: tool.tar.gz, url: 'https://example.org/tool-1.0.tar.gz'}\n"
                                   "  mirrors:\n"
                                   "    - {name: nodejs, url: 'https://nodejs.example/dist/'}\n";
        char err[256];
        cfg = larder_config_parse(yaml, sizeof(yaml) - 1, "fuzz", err, sizeof(err));
        if (!cfg)
            abort();
    }
    larder_files_target_t t;
    char err[512];
    int status = larder_files_map(cfg, (const char *)data, size, &t, err, sizeof(err));
    if (status == 0 && t.kind == LARDER_FILES_FETCH) {
        if (strncmp(t.url, "https://nodejs.example/dist/", 28) != 0 &&
            strcmp(t.url, "https://example.org/tool-1.0.tar.gz") != 0)
            abort();
        if (strstr(t.url + 8, "/../") || strstr(t.url + 8, "/./") || strcasestr(t.url, "%2f") ||
            strstr(t.url + 8, "//"))
            abort();
        free(t.url);
    }
    return 0;
}
