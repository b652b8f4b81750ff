/* test_files_map.c - /files/ path mapping: pins, mirrors, digests, and every traversal form refused. */
#include "config.h"
#include "files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static larder_config_t *cfg;

static int map(const char *path, larder_files_target_t *t)
{
    char err[512];
    return larder_files_map(cfg, path, strlen(path), t, err, sizeof(err));
}

int main(void)
{
    static const char yaml[] =
        "files:\n"
        "  ttl: 1h\n"
        "  pins:\n"
        "    - {name: py.tar.xz, url: 'https://example.org/Python-3.11.7.tar.xz',\n"
        "       sha256: 18E1AA7E66FF3A58423D59ED22815A6954E53342122C45DF20C96877C062B9B7}\n"
        "    - {name: plain, url: 'http://example.org/plain'}\n"
        "  mirrors:\n"
        "    - {name: nodejs, url: 'https://nodejs.example/dist'}\n";
    char err[256];
    cfg = larder_config_parse(yaml, sizeof(yaml) - 1, "test", err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    larder_files_target_t t;
    CHECK(map("py.tar.xz", &t) == 0 && t.kind == LARDER_FILES_FETCH);
    CHECK(strcmp(t.url, "https://example.org/Python-3.11.7.tar.xz") == 0);
    CHECK(t.sha256 && strcmp(t.sha256, "18e1aa7e66ff3a58423d59ed22815a6954e53342122c45df20c96877c062b9b7") == 0);
    CHECK(t.flags == 1);
    free(t.url);
    CHECK(map("plain", &t) == 0 && t.sha256 == NULL && t.flags == 0 && t.ttl == 3600);
    free(t.url);
    CHECK(map("nodejs/v20.11.1/node-v20.11.1-linux-x64.tar.gz?foo=bar", &t) == 0);
    CHECK(strcmp(t.url, "https://nodejs.example/dist/v20.11.1/node-v20.11.1-linux-x64.tar.gz") == 0);
    free(t.url);
    CHECK(map("nodejs/a%2Bb", &t) == 0); /* an encoded '+' is a legitimate file name character */
    free(t.url);
    /* the digest of a pin: that pin (fetched through it on first use) */
    CHECK(map("sha256/18E1AA7E66FF3A58423D59ED22815A6954E53342122C45DF20C96877C062B9B7", &t) == 0);
    CHECK(t.kind == LARDER_FILES_FETCH && t.url && strcmp(t.url, "https://example.org/Python-3.11.7.tar.xz") == 0);
    CHECK(t.sha256 && strcmp(t.sha256, "18e1aa7e66ff3a58423d59ed22815a6954e53342122c45df20c96877c062b9b7") == 0);
    CHECK(t.flags == 1 && t.ttl == 3600);
    free(t.url);
    /* any other digest: a blob by digest */
    CHECK(map("sha256/28E1AA7E66FF3A58423D59ED22815A6954E53342122C45DF20C96877C062B9B7", &t) == 0);
    CHECK(t.kind == LARDER_FILES_DIGEST && strcmp(t.digest, "28e1aa7e66ff3a58423d59ed22815a6954e53342122c45df20c96877c062b9b7") == 0);

    static const char *bad[] = {"nodejs/../etc/passwd", "nodejs/a/../../x", "nodejs/./x", "nodejs//x",
                                "nodejs/%2e%2e/x", "nodejs/%2E%2E/x", "nodejs/a%2fb", "nodejs/a%2Fb", "nodejs/a%5cb",
                                "nodejs/a\\b", "nodejs/a%00b", "nodejs/a%", "nodejs/a%zz", "nodejs/..",
                                "nodejs/a\nb", "nodejs/%252e"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int s = map(bad[i], &t);
        if (s != 400)
            fprintf(stderr, "expected 400 for %s, got %d\n", bad[i], s);
        CHECK(s == 400);
    }
    CHECK(map("unknown", &t) == 404);
    CHECK(map("unknown/x", &t) == 404);
    CHECK(map("py.tar.xz/x", &t) == 404); /* a pin is not a mirror */
    CHECK(map("nodejs", &t) == 404);      /* a mirror is not a pin */
    CHECK(map("nodejs/", &t) == 404);
    CHECK(map("", &t) == 404);
    CHECK(map("sha256/abc", &t) == 404);
    CHECK(map("sha256/zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", &t) == 400);
    /* an absolute URL is just an unknown name: never fetched */
    CHECK(map("http://evil.example/x", &t) != 0);
    larder_config_free(cfg);
    if (failures) {
        fprintf(stderr, "test_files_map: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_files_map: ok\n");
    return 0;
}
