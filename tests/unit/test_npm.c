/* test_npm.c - npm names and request paths, packument rewriting (full and abbreviated), lockfile reading, seed
 * references, and Subresource Integrity parsing. */
#include "fetch.h"
#include "npm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int route(const char *p, char *name, char *file)
{
    const char *err;
    return larder_npm_route(p, strlen(p), name, 256, file, 256, &err);
}

static void test_route(void)
{
    char n[256], f[256];
    CHECK(route("lodash", n, f) == LARDER_NPM_PACKUMENT && !strcmp(n, "lodash"));
    CHECK(route("lodash/", n, f) == LARDER_NPM_PACKUMENT && !strcmp(n, "lodash"));
    CHECK(route("@types%2fnode", n, f) == LARDER_NPM_PACKUMENT && !strcmp(n, "@types/node"));
    CHECK(route("@types%2Fnode", n, f) == LARDER_NPM_PACKUMENT && !strcmp(n, "@types/node"));
    CHECK(route("@types/node", n, f) == LARDER_NPM_PACKUMENT && !strcmp(n, "@types/node"));
    CHECK(route("lodash/-/lodash-4.17.21.tgz", n, f) == LARDER_NPM_TARBALL && !strcmp(n, "lodash") &&
          !strcmp(f, "lodash-4.17.21.tgz"));
    CHECK(route("@types/node/-/node-20.1.0.tgz", n, f) == LARDER_NPM_TARBALL && !strcmp(n, "@types/node") &&
          !strcmp(f, "node-20.1.0.tgz"));
    CHECK(route("@types%2fnode/-/node-20.1.0.tgz", n, f) == LARDER_NPM_TARBALL && !strcmp(n, "@types/node"));
    CHECK(route("lodash/4.17.21", n, f) == LARDER_NPM_VERSION && !strcmp(f, "4.17.21"));
    CHECK(route("JSONStream", n, f) == LARDER_NPM_PACKUMENT); /* legacy upper-case names exist */
    /* refused */
    CHECK(route("", n, f) < 0);
    CHECK(route("..", n, f) < 0);
    CHECK(route(".hidden", n, f) < 0);
    CHECK(route("lodash/-/../../etc/passwd", n, f) < 0);
    CHECK(route("lodash/-/x/y.tgz", n, f) < 0);
    CHECK(route("lodash/-/.tgz", n, f) < 0);
    CHECK(route("lodash/-/lodash.tar", n, f) < 0);
    CHECK(route("@scope", n, f) < 0);
    CHECK(route("@/x", n, f) < 0);
    CHECK(route("a%2fb", n, f) < 0);
    CHECK(route("a b", n, f) < 0);
    CHECK(route("a/b/c", n, f) < 0);
    CHECK(!larder_npm_name_ok("@scope/", 7));
    CHECK(larder_npm_name_ok("@s/n", 4));
}

typedef struct seen {
    int n;
    char file[4][64], url[4][128], integ[4][128];
} seen_t;

static void on_tb(void *ctx, const larder_npm_tarball_t *t)
{
    seen_t *s = ctx;
    if (s->n < 4) {
        snprintf(s->file[s->n], 64, "%s", t->file);
        snprintf(s->url[s->n], 128, "%s", t->url);
        snprintf(s->integ[s->n], 128, "%s", t->integrity ? t->integrity : "-");
    }
    s->n++;
}

static const char packument[] =
    "{\"name\":\"@s/demo\",\"dist-tags\":{\"latest\":\"1.1.0\"},\"readme\":\"big readme\","
    "\"time\":{\"modified\":\"2024-01-02T00:00:00.000Z\",\"1.0.0\":\"2024-01-01T00:00:00.000Z\"},"
    "\"versions\":{"
    "\"1.0.0\":{\"name\":\"@s/demo\",\"version\":\"1.0.0\",\"readme\":\"r\",\"scripts\":{\"postinstall\":\"node x\"},"
    "\"dependencies\":{\"a\":\"^1\"},\"dist\":{\"tarball\":\"https://registry.npmjs.org/@s/demo/-/demo-1.0.0.tgz\","
    "\"integrity\":\"sha512-AAAA\",\"shasum\":\"0123\"}},"
    "\"1.1.0\":{\"name\":\"@s/demo\",\"version\":\"1.1.0\",\"dist\":{\"tarball\":\"http://other.host/x/demo-1.1.0.tgz?x=1\"}},"
    "\"2.0.0\":{\"name\":\"@s/demo\",\"version\":\"2.0.0\",\"dist\":{\"tarball\":\"file:///etc/passwd\"}}"
    "}}";

static void test_rewrite(void)
{
    char err[256];
    seen_t s = {0};
    larder_npm_buf_t out = {0};
    CHECK(larder_npm_rewrite_packument(packument, sizeof(packument) - 1, "@s/demo", 0, &out, on_tb, &s, err,
                                       sizeof(err)) == 0);
    CHECK(s.n == 2);
    CHECK(!strcmp(s.file[0], "demo-1.0.0.tgz") && !strcmp(s.url[0], "https://registry.npmjs.org/@s/demo/-/demo-1.0.0.tgz"));
    CHECK(!strcmp(s.integ[0], "sha512-AAAA"));
    CHECK(!strcmp(s.file[1], "demo-1.1.0.tgz"));
    CHECK(out.p && strstr(out.p, "\"tarball\":\"" LARDER_NPM_BASE_TOKEN "/@s/demo/-/demo-1.0.0.tgz\""));
    CHECK(out.p && strstr(out.p, "\"tarball\":\"" LARDER_NPM_BASE_TOKEN "/@s/demo/-/demo-1.1.0.tgz\""));
    CHECK(out.p && !strstr(out.p, "registry.npmjs.org"));
    CHECK(out.p && strstr(out.p, "file:///etc/passwd")); /* left alone: never fetched by us */
    CHECK(out.p && strstr(out.p, "big readme"));          /* full document keeps everything else */
    free(out.p);

    memset(&s, 0, sizeof(s));
    out = (larder_npm_buf_t){0};
    CHECK(larder_npm_rewrite_packument(packument, sizeof(packument) - 1, "@s/demo", 1, &out, on_tb, &s, err,
                                       sizeof(err)) == 0);
    CHECK(out.p && !strstr(out.p, "readme"));
    CHECK(out.p && strstr(out.p, "\"modified\":\"2024-01-02T00:00:00.000Z\""));
    CHECK(out.p && strstr(out.p, "\"time\":{"));
    CHECK(out.p && strstr(out.p, "\"hasInstallScript\":true"));
    CHECK(out.p && !strstr(out.p, "\"scripts\""));
    CHECK(out.p && strstr(out.p, "\"dependencies\":{\"a\":\"^1\"}"));
    CHECK(out.p && strstr(out.p, "\"dist-tags\":{\"latest\":\"1.1.0\"}"));
    free(out.p);

    out = (larder_npm_buf_t){0};
    CHECK(larder_npm_rewrite_packument("[1]", 3, "x", 0, &out, NULL, NULL, err, sizeof(err)) < 0);
    CHECK(larder_npm_rewrite_packument("{\"versions\":3}", 14, "x", 0, &out, NULL, NULL, err, sizeof(err)) < 0);
    CHECK(larder_npm_rewrite_packument("{not json", 9, "x", 0, &out, NULL, NULL, err, sizeof(err)) < 0);
    free(out.p);
}

typedef struct skips {
    int failed, local;
} skips_t;

static void count_skip(void *ctx, const char *what, const char *why, int failed)
{
    skips_t *s = ctx;
    (void)what;
    (void)why;
    if (failed)
        s->failed++;
    else
        s->local++;
}

static void test_lockfile(void)
{
    static const char lock[] =
        "{\"name\":\"app\",\"lockfileVersion\":3,\"packages\":{"
        "\"\":{\"name\":\"app\",\"dependencies\":{\"a\":\"^1\"}},"
        "\"node_modules/a\":{\"version\":\"1.2.3\",\"resolved\":\"https://registry.npmjs.org/a/-/a-1.2.3.tgz\","
        "\"integrity\":\"sha512-AAAA\"},"
        "\"node_modules/@s/b\":{\"version\":\"2.0.0\",\"resolved\":\"https://registry.npmjs.org/@s/b/-/b-2.0.0.tgz\"},"
        "\"node_modules/a/node_modules/c\":{\"version\":\"0.1.0\",\"resolved\":\"https://r.example/c/-/c-0.1.0.tgz\","
        "\"integrity\":\"sha1-BBBB\"},"
        "\"node_modules/alias\":{\"name\":\"real\",\"version\":\"3.0.0\",\"resolved\":\"https://r.example/real/-/real-3.0.0.tgz\"},"
        "\"node_modules/gitdep\":{\"version\":\"1.0.0\",\"resolved\":\"git+ssh://git@github.com/x/y.git#abc\"},"
        "\"node_modules/linked\":{\"resolved\":\"../linked\",\"link\":true},"
        "\"node_modules/a/node_modules/bundled\":{\"version\":\"1.0.0\",\"inBundle\":true},"
        "\"node_modules/dup\":{\"version\":\"1.2.3\",\"resolved\":\"https://registry.npmjs.org/a/-/a-1.2.3.tgz\","
        "\"name\":\"a\",\"integrity\":\"sha512-AAAA\"}"
        "}}";
    char **lines, err[256];
    long n = larder_npm_lockfile_lines(lock, sizeof(lock) - 1, &lines, NULL, NULL, err, sizeof(err));
    CHECK(n == 4);
    if (n == 4) {
        CHECK(!strcmp(lines[0], "a@1.2.3 sha512-AAAA"));
        CHECK(!strcmp(lines[1], "@s/b@2.0.0"));
        CHECK(!strcmp(lines[2], "c@0.1.0 sha1-BBBB"));
        CHECK(!strcmp(lines[3], "real@3.0.0"));
    }
    for (long i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    /* the same with the reasons: git is a failure, the link is local */
    skips_t sk = {0};
    n = larder_npm_lockfile_lines(lock, sizeof(lock) - 1, &lines, count_skip, &sk, err, sizeof(err));
    CHECK(n == 4 && sk.failed == 1 && sk.local == 1);
    for (long i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    /* omit-lockfile-registry-resolved: no resolved, seeded by name, version and integrity; tarball URLs and
     * unversioned entries fail, file: entries are local */
    static const char nores[] =
        "{\"lockfileVersion\":3,\"packages\":{\"\":{\"name\":\"app\"},"
        "\"node_modules/a\":{\"version\":\"1.2.3\",\"integrity\":\"sha512-AAAA\"},"
        "\"node_modules/x\":{\"name\":\"real\",\"version\":\"3.0.0\",\"dev\":true,\"optional\":true},"
        "\"node_modules/u\":{\"version\":\"1.0.0\",\"resolved\":\"https://example.com/u.tgz\"},"
        "\"node_modules/f\":{\"version\":\"1.0.0\",\"resolved\":\"file:../f\"},"
        "\"node_modules/nov\":{\"integrity\":\"sha512-AAAA\"}}}";
    memset(&sk, 0, sizeof(sk));
    n = larder_npm_lockfile_lines(nores, sizeof(nores) - 1, &lines, count_skip, &sk, err, sizeof(err));
    CHECK(n == 2 && sk.failed == 2 && sk.local == 1);
    if (n == 2) {
        CHECK(!strcmp(lines[0], "a@1.2.3 sha512-AAAA"));
        CHECK(!strcmp(lines[1], "real@3.0.0"));
    }
    for (long i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    CHECK(larder_npm_lockfile_lines("{\"lockfileVersion\":1,\"dependencies\":{}}", 39, &lines, NULL, NULL, err,
                                    sizeof(err)) < 0);
    CHECK(strstr(err, "lockfileVersion 1") != NULL);
}

static void test_seed_ref(void)
{
    char name[256], ver[128], integ[300], err[256];
    CHECK(larder_npm_parse_seed_ref("left-pad@1.3.0", name, sizeof(name), ver, sizeof(ver), integ, sizeof(integ), err,
                                    sizeof(err)) == 0 &&
          !strcmp(name, "left-pad") && !strcmp(ver, "1.3.0") && !integ[0]);
    CHECK(larder_npm_parse_seed_ref("@s/b@2.0.0-rc.1 sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==",
                                    name, sizeof(name), ver, sizeof(ver), integ, sizeof(integ), err, sizeof(err)) == 0 &&
          !strcmp(name, "@s/b") && !strcmp(ver, "2.0.0-rc.1") && !strncmp(integ, "sha512-", 7));
    CHECK(larder_npm_parse_seed_ref("left-pad@^1.3.0", name, sizeof(name), ver, sizeof(ver), integ, sizeof(integ), err,
                                    sizeof(err)) < 0 &&
          strstr(err, "exact version"));
    CHECK(larder_npm_parse_seed_ref("left-pad", name, sizeof(name), ver, sizeof(ver), integ, sizeof(integ), err,
                                    sizeof(err)) < 0);
    CHECK(larder_npm_parse_seed_ref("left-pad@latest", name, sizeof(name), ver, sizeof(ver), integ, sizeof(integ), err,
                                    sizeof(err)) < 0);
    CHECK(larder_npm_parse_seed_ref("a@1.0.0 notanintegrity", name, sizeof(name), ver, sizeof(ver), integ,
                                    sizeof(integ), err, sizeof(err)) < 0);
}

static void test_integrity(void)
{
    const char *alg;
    unsigned char raw[64];
    unsigned int n;
    /* sha512 of "" */
    CHECK(larder_parse_integrity("sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==",
                                 &alg, raw, &n) == 0 &&
          n == 64 && !strcmp(alg, "SHA512") && raw[0] == 0xcf && raw[63] == 0x3e);
    /* the strongest listed wins */
    CHECK(larder_parse_integrity("sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk= sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==",
                                 &alg, raw, &n) == 0 &&
          n == 64);
    CHECK(larder_parse_integrity("sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk=", &alg, raw, &n) == 0 && n == 20 && raw[0] == 0xda);
    CHECK(larder_parse_integrity("md5-1B2M2Y8AsgTpgAmY7PhCfg==", &alg, raw, &n) < 0);
    CHECK(larder_parse_integrity("sha512-short", &alg, raw, &n) < 0);
    CHECK(larder_parse_integrity("", &alg, raw, &n) < 0);
}

/* the streaming rewrite fed one byte at a time: both forms, `modified` from time.modified after versions, and the
 * errors of a malformed document */
static int stream_all(const char *doc, size_t step, larder_npm_buf_t out[2], char *err, size_t errlen)
{
    larder_npm_stream_t *s = larder_npm_stream_new("demo", NULL, NULL);
    int r = 0;
    size_t len = strlen(doc);
    for (size_t off = 0; off < len && r == 0; off += step)
        r = larder_npm_stream_feed(s, doc + off, off + step > len ? len - off : step, err, errlen);
    if (r == 0)
        r = larder_npm_stream_finish(s, err, errlen);
    for (int i = 0; i < 2; i++) {
        larder_npm_buf_t *o = larder_npm_stream_out(s, i);
        out[i].p = o->p ? strdup(o->p) : strdup("");
        out[i].len = o->len;
    }
    larder_npm_stream_free(s);
    return r;
}

static void test_stream(void)
{
    const char *doc = "{\"name\":\"demo\",\"readme\":\"big\\n\\\"text\\\"\",\"versions\":{\"1.0.0\":{\"version\":\"1.0.0\","
                      "\"readme\":\"r\",\"scripts\":{\"postinstall\":\"x\"},\"dist\":{\"tarball\":"
                      "\"https://r.example/demo/-/demo-1.0.0.tgz\",\"shasum\":\"ab\"}},\"2.0.0\":7},"
                      "\"time\":{\"1.0.0\":\"t1\",\"modified\":\"t2\"},\"dist-tags\":{\"latest\":\"1.0.0\"}}";
    larder_npm_buf_t out[2];
    char err[256];
    CHECK(stream_all(doc, 1, out, err, sizeof(err)) == 0);
    CHECK(!strcmp(out[0].p, "{\"name\":\"demo\",\"readme\":\"big\\n\\\"text\\\"\",\"versions\":{\"1.0.0\":{"
                            "\"version\":\"1.0.0\",\"readme\":\"r\",\"scripts\":{\"postinstall\":\"x\"},\"dist\":{"
                            "\"tarball\":\"" LARDER_NPM_BASE_TOKEN "/demo/-/demo-1.0.0.tgz\",\"shasum\":\"ab\"}},"
                            "\"2.0.0\":7},\"time\":{\"1.0.0\":\"t1\",\"modified\":\"t2\"},\"dist-tags\":{\"latest\":"
                            "\"1.0.0\"}}"));
    CHECK(!strcmp(out[1].p, "{\"name\":\"demo\",\"versions\":{\"1.0.0\":{\"version\":\"1.0.0\",\"dist\":{\"tarball\":"
                            "\"" LARDER_NPM_BASE_TOKEN "/demo/-/demo-1.0.0.tgz\",\"shasum\":\"ab\"},"
                            "\"hasInstallScript\":true}},\"time\":{\"1.0.0\":\"t1\",\"modified\":\"t2\"},"
                            "\"dist-tags\":{\"latest\":\"1.0.0\"},\"modified\":\"t2\"}"));
    free(out[0].p);
    free(out[1].p);
    static const char *const bad[] = {"{\"versions\":[]}", "[1]", "{\"a\":1", "{\"a\":1}x", "{\"a\":tru}", "", NULL};
    for (int i = 0; bad[i]; i++) {
        err[0] = 0;
        CHECK(stream_all(bad[i], 3, out, err, sizeof(err)) < 0 && err[0]);
        free(out[0].p);
        free(out[1].p);
    }
}

int main(void)
{
    test_stream();
    test_route();
    test_rewrite();
    test_lockfile();
    test_seed_ref();
    test_integrity();
    if (failures) {
        fprintf(stderr, "test_npm: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_npm: ok\n");
    return 0;
}
