/* test_config_docs.c - docs/configuration.md's key index lists exactly the keys the core and the protocol
 * modules declare, with the same type, default and owner (larder_config_keys), so docs and code cannot drift.
 * Also: the effective configuration `larder config` prints parses back to the same configuration. */
#include "config.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifndef LARDER_SOURCE_DIR
#define LARDER_SOURCE_DIR "."
#endif

#define MAX_KEYS 256

typedef struct {
    char *v[MAX_KEYS];
    size_t n;
} lines_t;

/* "| `a` | b | `c` | d |" -> "a\tb\tc\td" (backticks dropped, cells trimmed) */
static char *row_to_line(const char *row)
{
    char out[1024];
    size_t o = 0;
    int cell = 0;
    const char *p = row + 1;
    while (*p && cell < 4) {
        const char *bar = strchr(p, '|');
        if (!bar)
            break;
        const char *a = p, *b = bar;
        while (a < b && (*a == ' ' || *a == '`'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '`'))
            b--;
        if (cell)
            out[o++] = '\t';
        for (const char *q = a; q < b && o + 2 < sizeof(out); q++)
            if (!(*q == '\\' && q[1] == '|')) /* "\|" in a cell is a '|' */
                out[o++] = *q;
        cell++;
        p = bar + 1;
    }
    out[o] = 0;
    return strdup(out);
}

static void read_doc_keys(lines_t *doc)
{
    size_t len;
    char *text = larder_read_file(LARDER_SOURCE_DIR "/docs/configuration.md", &len);
    CHECK(text != NULL);
    if (!text)
        return;
    char *sec = strstr(text, "\n## Key index\n");
    CHECK(sec != NULL);
    if (!sec) {
        free(text);
        return;
    }
    char *end = strstr(sec + 1, "\n## ");
    if (end)
        *end = 0;
    for (char *line = strtok(sec, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, "| `", 3) && doc->n < MAX_KEYS)
            doc->v[doc->n++] = row_to_line(line);
    free(text);
}

static void declared_keys(lines_t *decl)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    larder_config_keys(f);
    fclose(f);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        if (decl->n < MAX_KEYS)
            decl->v[decl->n++] = strdup(line);
    free(buf);
}

static int has(const lines_t *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s))
            return 1;
    return 0;
}

static void test_key_index(void)
{
    lines_t doc = {0}, decl = {0};
    read_doc_keys(&doc);
    declared_keys(&decl);
    CHECK(decl.n > 20);
    for (size_t i = 0; i < decl.n; i++)
        if (!has(&doc, decl.v[i])) {
            fprintf(stderr, "declared but not in docs/configuration.md's key index (or different there): %s\n",
                    decl.v[i]);
            failures++;
        }
    for (size_t i = 0; i < doc.n; i++)
        if (!has(&decl, doc.v[i])) {
            fprintf(stderr, "in docs/configuration.md's key index but not declared (or different): %s\n", doc.v[i]);
            failures++;
        }
    for (size_t i = 0; i < doc.n; i++)
        free(doc.v[i]);
    for (size_t i = 0; i < decl.n; i++)
        free(decl.v[i]);
}

static char *print(const larder_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    larder_config_print(f, cfg);
    fclose(f);
    return buf;
}

/* what `larder config` prints is itself a config that gives the same configuration */
static void test_print_roundtrip(const char *yaml)
{
    char err[512];
    larder_config_t *cfg = larder_config_parse(yaml, strlen(yaml), "a.yaml", err, sizeof(err));
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    char *a = print(cfg);
    larder_config_t *cfg2 = larder_config_parse(a, strlen(a), "a.yaml", err, sizeof(err));
    CHECK(cfg2 != NULL);
    if (!cfg2) {
        fprintf(stderr, "  printed config does not parse: %s\n%s\n", err, a);
    } else {
        char *b = print(cfg2);
        CHECK(strcmp(a, b) == 0);
        if (strcmp(a, b) != 0)
            fprintf(stderr, "  first:\n%s\n  second:\n%s\n", a, b);
        free(b);
        larder_config_free(cfg2);
    }
    free(a);
    larder_config_free(cfg);
}

int main(void)
{
    test_key_index();
    test_print_roundtrip("");
    test_print_roundtrip("listen:\n  - {address: 127.0.0.1, port: 8080}\n  - {port: 4873, protocol: npm}\n"
                         "  - {port: 443, tls: {cert: /c.pem, key: /k.pem}, http2: false}\n"
                         "data_dir: /srv/larder\nthreads: 3\nquota: {total: 1500MB, min_free: 0}\n"
                         "admin: {token: 's3cret \"x\"'}\nupstream_proxy: http://proxy:3128\n"
                         "timeouts: {connect: 90s, idle: 0}\nstore: {verify_on_read: no, verify_interval: 0}\n"
                         "files:\n  ttl: 36h\n  pins:\n    - {name: a, url: 'https://x/a', sha256: "
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}\n"
                         "  mirrors: [{name: m, url: 'https://y/dist'}]\n"
                         "npm: {public_url: 'https://larder.example/npm/', quota: 10G}\n"
                         "apt: {allow: [deb.debian.org, '127.0.0.1:8080'], https_hosts: [deb.debian.org]}\n"
                         "oci: {registries: {docker.io: 'https://registry-1.docker.io', "
                         "ghcr.io: {url: 'https://ghcr.io', username: u}}}\n"
                         "pypi: {enabled: false, upstream: ~}\n");
    if (failures) {
        fprintf(stderr, "test_config_docs: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_config_docs: all checks passed\n");
    return 0;
}
