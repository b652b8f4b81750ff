/* yarnlock.c - a yarn.lock (v1, classic yarn) into npm seed lines "name@version integrity".
 *
 * The format: blocks separated by blank lines; a block's header is one or more comma-separated, possibly quoted
 * specifiers ending with ':' at column 0 ("lodash@^4.17.0, lodash@^4.17.21:", "\"@babel/core@^7.0.0\":",
 * "alias@npm:real@^1.0.0:"), then fields indented by two spaces: `version "x"`, `resolved "url#sha1"`,
 * `integrity sha512-...`, and nested maps (dependencies) indented further. Only version, resolved and integrity are
 * read. A registry tarball (a URL with "/-/" in its path) is seeded by name and version; git, tarball-URL and local
 * (file:, link:) sources are reported. Bytes are untrusted: every line is bounded, every field checked. */
#include "npm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct yblock {
    unsigned line;       /* of the header */
    char name[256];      /* from the first specifier */
    char spec[512];      /* the first specifier as written (for reports) */
    char version[128];
    char resolved[1024];
    char integrity[300];
    int local;           /* file: / link: / workspace */
    int have_version;
} yblock_t;

/* a quoted or bare token at s (up to a blank, ',' or ':' outside quotes); into out; the end, or NULL */
static const char *token(const char *s, const char *end, char *out, size_t outlen)
{
    size_t n = 0;
    if (s < end && *s == '"') {
        s++;
        while (s < end && *s != '"') {
            if (n + 1 >= outlen)
                return NULL;
            out[n++] = *s++;
        }
        if (s >= end)
            return NULL;
        s++;
    } else {
        while (s < end && *s != ',' && *s != ' ' && *s != '\t' && !(*s == ':' && (s + 1 == end))) {
            if (n + 1 >= outlen)
                return NULL;
            out[n++] = *s++;
        }
    }
    out[n] = 0;
    return n ? s : NULL;
}

/* "name@range", "@scope/name@range", "alias@npm:real@range" -> the package's name; 0 or -1 */
static int spec_name(const char *spec, char *name, size_t namelen, int *local)
{
    const char *at = strchr(spec + (spec[0] == '@' ? 1 : 0), '@');
    if (!at || at == spec)
        return -1;
    const char *range = at + 1;
    *local = !strncmp(range, "file:", 5) || !strncmp(range, "link:", 5) || !strncmp(range, "portal:", 7) ||
             !strncmp(range, "workspace:", 10);
    if (!strncmp(range, "npm:", 4)) { /* an alias: the real package */
        const char *real = range + 4;
        const char *rat = strchr(real + (real[0] == '@' ? 1 : 0), '@');
        size_t rl = rat ? (size_t)(rat - real) : strlen(real);
        if (!rl || rl >= namelen)
            return -1;
        memcpy(name, real, rl);
        name[rl] = 0;
        return 0;
    }
    size_t nl = (size_t)(at - spec);
    if (nl >= namelen)
        return -1;
    memcpy(name, spec, nl);
    name[nl] = 0;
    return 0;
}

static int emit(const yblock_t *b, char ***lines, long *n, size_t *cap, larder_npm_yarn_cb skipped, void *ctx,
                char *err, size_t errlen)
{
    if (b->local) {
        if (skipped)
            skipped(ctx, b->line, b->spec, "a local file, link or workspace package: nothing to fetch", 0);
        return 0;
    }
    if (!b->have_version) {
        snprintf(err, errlen, "line %u: the entry %s has no version", b->line, b->spec);
        return -1;
    }
    const char *r = b->resolved;
    if (r[0] && (strncmp(r, "https://", 8) != 0 && strncmp(r, "http://", 7) != 0)) {
        if (skipped)
            skipped(ctx, b->line, b->spec,
                    "not from a registry (a git or local source): the npm section cannot seed it", 1);
        return 0;
    }
    if (r[0] && (!strstr(r, "/-/") || strstr(r, "codeload.github.com") || strstr(r, ".git#"))) {
        if (skipped)
            skipped(ctx, b->line, b->spec, "a tarball URL outside a registry: the npm section cannot seed it", 1);
        return 0;
    }
    char line[800], nm[256], ver[128], integ[300], perr[300];
    int len = snprintf(line, sizeof(line), "%s@%s%s%s", b->name, b->version, b->integrity[0] ? " " : "",
                       b->integrity);
    if (len < 0 || (size_t)len >= sizeof(line) ||
        larder_npm_parse_seed_ref(line, nm, sizeof(nm), ver, sizeof(ver), integ, sizeof(integ), perr, sizeof(perr)) < 0) {
        if (skipped)
            skipped(ctx, b->line, b->spec, "not an exact registry version", 1);
        return 0;
    }
    for (long i = 0; i < *n; i++) /* the same package reached through two headers */
        if (strcmp((*lines)[i], line) == 0)
            return 0;
    if ((size_t)*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        char **nl = realloc(*lines, nc * sizeof(*nl));
        if (!nl) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        *lines = nl;
        *cap = nc;
    }
    (*lines)[(*n)++] = strdup(line);
    return 0;
}

/* the value of a `key "value"` / `key value` field line (after the indent) into out; 1 when it is key */
static int field(const char *s, const char *end, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    if ((size_t)(end - s) <= kl || memcmp(s, key, kl) != 0 || (s[kl] != ' ' && s[kl] != ':'))
        return 0;
    s += kl;
    while (s < end && (*s == ' ' || *s == ':'))
        s++;
    if (!token(s, end, out, outlen))
        out[0] = 0;
    return 1;
}

long larder_npm_yarnlock_lines(const char *text, size_t len, char ***lines, larder_npm_yarn_cb skipped, void *ctx,
                               unsigned *errline, char *err, size_t errlen)
{
    *lines = NULL;
    *errline = 0;
    long n = 0;
    size_t cap = 0, i = 0;
    unsigned ln = 0;
    int in_block = 0, headers = 0;
    yblock_t b;
    memset(&b, 0, sizeof(b));
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        const char *s = text + i, *end = nl ? nl : text + len;
        i = (size_t)(end - text) + 1;
        ln++;
        if (end > s && end[-1] == '\r')
            end--;
        if (end == s || s[0] == '#')
            continue;
        if (s[0] != ' ') { /* a header */
            if (in_block && emit(&b, lines, &n, &cap, skipped, ctx, err, errlen) < 0)
                goto fail_at_block;
            memset(&b, 0, sizeof(b));
            b.line = ln;
            if (end[-1] != ':') {
                snprintf(err, errlen, "line %u: a yarn.lock entry starts with specifiers ending in ':'", ln);
                goto fail;
            }
            if (!token(s, end - 1, b.spec, sizeof(b.spec)) || spec_name(b.spec, b.name, sizeof(b.name), &b.local) < 0) {
                snprintf(err, errlen, "line %u: '%.*s' is not a package specifier (name@range)", ln,
                         (int)(end - s > 200 ? 200 : end - s), s);
                goto fail;
            }
            in_block = 1;
            headers++;
            continue;
        }
        if (!in_block) {
            snprintf(err, errlen, "line %u: an indented line before any entry", ln);
            goto fail;
        }
        if (end - s < 3 || s[1] != ' ' || s[2] == ' ')
            continue; /* nested (dependencies) */
        s += 2;
        if (field(s, end, "version", b.version, sizeof(b.version)))
            b.have_version = b.version[0] != 0;
        else if (!field(s, end, "resolved", b.resolved, sizeof(b.resolved)))
            field(s, end, "integrity", b.integrity, sizeof(b.integrity));
    }
    if (in_block && emit(&b, lines, &n, &cap, skipped, ctx, err, errlen) < 0)
        goto fail_at_block;
    if (!headers) {
        snprintf(err, errlen, "no entries: not a yarn.lock");
        ln = 0;
        goto fail;
    }
    return n;
fail_at_block:
    ln = b.line;
fail:
    *errline = ln;
    for (long k = 0; k < n; k++)
        free((*lines)[k]);
    free(*lines);
    *lines = NULL;
    return -1;
}
