/* test_git.c - the git module's pure functions: request paths below /git/ (endpoints, repository paths and what
 * they refuse), remote names, the Git-Protocol header, ref names, ref lists, gzip request bodies and seed items;
 * and the module's config section and seed section through the core's parsers. */
#include "config.h"
#include "git.h"
#include "module.h"
#include "registry.h"
#include "seedspec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"

static int route(const char *p, larder_git_route_t *r)
{
    const char *err = NULL;
    int rc = larder_git_route(p, strlen(p), r, &err);
    if (rc < 0 && !err)
        return 99; /* a refusal always says why */
    return rc < 0 ? -1 : r->kind;
}

static void test_route(void)
{
    larder_git_route_t r;
    CHECK(route("github.com/openedx/edx-platform.git/info/refs?service=git-upload-pack", &r) == LARDER_GIT_INFO_REFS);
    CHECK(!strcmp(r.remote, "github.com") && !strcmp(r.path, "openedx/edx-platform"));
    CHECK(route("github.com/openedx/edx-platform/info/refs?service=git-upload-pack", &r) == LARDER_GIT_INFO_REFS);
    CHECK(!strcmp(r.path, "openedx/edx-platform")); /* with .git or without: one mirror */
    CHECK(route("GitHub.com/a/b/git-upload-pack", &r) == LARDER_GIT_UPLOAD_PACK && !strcmp(r.remote, "github.com"));
    CHECK(route("gitlab.com/group/sub/project.git/git-upload-pack", &r) == LARDER_GIT_UPLOAD_PACK &&
          !strcmp(r.path, "group/sub/project"));
    CHECK(route("127.0.0.1:8080/x/info/refs?foo=1&service=git-upload-pack", &r) == LARDER_GIT_INFO_REFS &&
          !strcmp(r.remote, "127.0.0.1:8080"));
    CHECK(route("github.com/a/b.git.git/info/refs?service=git-upload-pack", &r) == LARDER_GIT_INFO_REFS &&
          !strcmp(r.path, "a/b.git")); /* one suffix removed */
    /* pushes and the dumb protocol are recognised (and refused by the handler) */
    CHECK(route("github.com/a/b/info/refs?service=git-receive-pack", &r) == LARDER_GIT_RECEIVE_PACK);
    CHECK(route("github.com/a/b.git/git-receive-pack", &r) == LARDER_GIT_RECEIVE_PACK);
    CHECK(route("github.com/a/b/info/refs", &r) == LARDER_GIT_DUMB);
    CHECK(route("github.com/a/b/info/refs?x=1", &r) == LARDER_GIT_DUMB);
    CHECK(route("github.com/a/b.git/HEAD", &r) == LARDER_GIT_DUMB && !strcmp(r.path, "a/b"));
    CHECK(route("github.com/a/b.git/objects/info/packs", &r) == LARDER_GIT_DUMB && !strcmp(r.path, "a/b"));
    CHECK(route("github.com/a/b/objects/ab/cdef0123", &r) == LARDER_GIT_DUMB && !strcmp(r.path, "a/b"));
    CHECK(route("github.com/a/b/objects/pack/pack-1.pack", &r) == LARDER_GIT_DUMB);
    CHECK(route("github.com/a/b", &r) == LARDER_GIT_REPO && !strcmp(r.path, "a/b"));
    CHECK(route("github.com/a/b.git/", &r) == LARDER_GIT_REPO && !strcmp(r.path, "a/b"));
    CHECK(route("github.com/a/objects/zz/q", &r) == LARDER_GIT_REPO); /* not an object path: a repository */
    /* refused, each with a reason */
    CHECK(route("", &r) == -1);
    CHECK(route("github.com", &r) == -1);
    CHECK(route("github.com/", &r) == -1);
    CHECK(route("github.com/info/refs?service=git-upload-pack", &r) == -1);
    CHECK(route("github.com/a/b/info/refs?service=git-upload-packx", &r) == -1);
    CHECK(route("github.com/a/b/info/refs?service=", &r) == -1);
    CHECK(route("github.com/../etc/info/refs?service=git-upload-pack", &r) == -1);
    CHECK(route("github.com/a/../../x/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a/./b/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a//b/git-upload-pack", &r) == -1);
    CHECK(route("github.com/.git/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a/.git/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a/.hidden/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a/%2e%2e/b/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a%2fb/c/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a\\b/c/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a b/c/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a/b.git/c/git-upload-pack", &r) == -1); /* a mirror inside another */
    CHECK(route("github.com/a/b/../git-upload-pack", &r) == -1);
    CHECK(route(".github.com/a/b/git-upload-pack", &r) == -1);
    CHECK(route("-x/a/b/git-upload-pack", &r) == -1);
    CHECK(route("/github.com/a/git-upload-pack", &r) == -1);
    CHECK(route("github.com/a/git-upload-pack/", &r) == LARDER_GIT_REPO); /* a repository named git-upload-pack */
    char deep[1024];
    int dl = snprintf(deep, sizeof(deep), "github.com");
    for (int i = 0; i < 17; i++)
        dl += snprintf(deep + dl, sizeof(deep) - (size_t)dl, "/a");
    snprintf(deep + dl, sizeof(deep) - (size_t)dl, "/git-upload-pack");
    CHECK(route(deep, &r) == -1);
    char longseg[600];
    snprintf(longseg, sizeof(longseg), "github.com/%0250d/git-upload-pack", 0);
    CHECK(route(longseg, &r) == -1);
    snprintf(longseg, sizeof(longseg), "github.com/%0200d/git-upload-pack", 0);
    CHECK(route(longseg, &r) == LARDER_GIT_UPLOAD_PACK);
}

static void test_names(void)
{
    CHECK(larder_git_remote_name_ok("github.com", 10));
    CHECK(larder_git_remote_name_ok("git.example.com:8443", 20));
    CHECK(larder_git_remote_name_ok("local", 5));
    CHECK(!larder_git_remote_name_ok("", 0));
    CHECK(!larder_git_remote_name_ok(".tmp", 4));
    CHECK(!larder_git_remote_name_ok(".home", 5));
    CHECK(!larder_git_remote_name_ok("a/b", 3));
    CHECK(!larder_git_remote_name_ok("a b", 3));
    CHECK(!larder_git_remote_name_ok("-a", 2));

    CHECK(larder_git_protocol_ok("version=2", 9));
    CHECK(larder_git_protocol_ok("version=2:object-format=sha256", 30));
    CHECK(!larder_git_protocol_ok("", 0));
    CHECK(!larder_git_protocol_ok("version=2\n", 10));
    CHECK(!larder_git_protocol_ok("version 2", 9));
    CHECK(!larder_git_protocol_ok("a;b", 3));
    char big[300];
    memset(big, 'a', sizeof(big));
    CHECK(!larder_git_protocol_ok(big, 257));
    CHECK(larder_git_protocol_ok(big, 256));
    CHECK(larder_git_protocol_is_v2("version=2", 9));
    CHECK(larder_git_protocol_is_v2("foo=1:version=2", 15));
    CHECK(!larder_git_protocol_is_v2("version=1", 9));
    CHECK(!larder_git_protocol_is_v2("version=20", 10));
    CHECK(!larder_git_protocol_is_v2("", 0));

#define REF_OK(s) larder_git_refname_ok(s, strlen(s))
    CHECK(REF_OK("master"));
    CHECK(REF_OK("open-release/teak.1"));
    CHECK(REF_OK("refs/tags/v1.0"));
    CHECK(REF_OK("0123456789abcdef0123456789abcdef01234567"));
    CHECK(!REF_OK(""));
    CHECK(!REF_OK("-x"));
    CHECK(!REF_OK("a..b"));
    CHECK(!REF_OK("a/.b"));
    CHECK(!REF_OK(".a"));
    CHECK(!REF_OK("a.lock"));
    CHECK(!REF_OK("a.lock/b"));
    CHECK(!REF_OK("a/"));
    CHECK(!REF_OK("/a"));
    CHECK(!REF_OK("a//b"));
    CHECK(!REF_OK("a."));
    CHECK(!REF_OK("a b"));
    CHECK(!REF_OK("a~1"));
    CHECK(!REF_OK("a^"));
    CHECK(!REF_OK("a:b"));
    CHECK(!REF_OK("a@{1}"));
    CHECK(!REF_OK("@"));
    CHECK(!REF_OK("a\\b"));
    CHECK(!REF_OK("a*"));
}

static void test_ref_find(void)
{
    const char *list = "1111111111111111111111111111111111111111 refs/heads/main\n"
                       "2222222222222222222222222222222222222222 refs/heads/open-release/teak.1\n"
                       "3333333333333333333333333333333333333333 refs/tags/v1.0\n"
                       "4444444444444444444444444444444444444444 refs/tags/v1.0^{}\n";
    size_t n = strlen(list);
    CHECK(larder_git_ref_find(list, n, "main"));
    CHECK(larder_git_ref_find(list, n, "open-release/teak.1"));
    CHECK(larder_git_ref_find(list, n, "v1.0"));
    CHECK(larder_git_ref_find(list, n, "refs/tags/v1.0"));
    CHECK(larder_git_ref_find(list, n, "refs/heads/main"));
    CHECK(larder_git_ref_find(list, n, "4444444444444444444444444444444444444444")); /* a peeled tag's commit */
    CHECK(larder_git_ref_find(list, n, "1111111111111111111111111111111111111111"));
    CHECK(!larder_git_ref_find(list, n, "teak.1"));
    CHECK(!larder_git_ref_find(list, n, "heads/main"));
    CHECK(!larder_git_ref_find(list, n, "v1.0^{}"));
    CHECK(!larder_git_ref_find(list, n, "5555555555555555555555555555555555555555"));
    CHECK(!larder_git_ref_find(list, n, "111111111111")); /* abbreviated ids are not refs */
    CHECK(!larder_git_ref_find("", 0, "main"));
    CHECK(larder_git_ref_find("1 refs/heads/x", 14, "x")); /* no final newline */
}

typedef struct sink {
    char buf[70000];
    size_t n;
} sink_t;

static int sink(void *ctx, const char *p, size_t n)
{
    sink_t *s = ctx;
    if (s->n + n > sizeof(s->buf))
        return -1;
    memcpy(s->buf + s->n, p, n);
    s->n += n;
    return 0;
}

/* gzip of in (compressed with zlib's gzip framing) into out; its length */
static size_t gz(const char *in, size_t len, unsigned char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (unsigned char *)in;
    z.avail_in = (unsigned)len;
    z.next_out = out;
    z.avail_out = (unsigned)cap;
    deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

static void test_gunzip(void)
{
    static char text[60000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "0032want 0123456789abcdef\n"[i % 26];
    static unsigned char z[70000];
    size_t zl = gz(text, sizeof(text), z, sizeof(z));
    CHECK(zl > 0 && zl < sizeof(text));
    sink_t *s = calloc(1, sizeof(*s));
    const char *err = NULL;
    CHECK(larder_git_gunzip((const char *)z, zl, sizeof(text), sink, s, &err) == 0);
    CHECK(s->n == sizeof(text) && !memcmp(s->buf, text, sizeof(text)));
    s->n = 0;
    CHECK(larder_git_gunzip((const char *)z, zl, sizeof(text) - 1, sink, s, &err) == -2 && err);
    s->n = 0;
    CHECK(larder_git_gunzip((const char *)z, zl - 5, sizeof(text), sink, s, &err) == -1); /* truncated */
    s->n = 0;
    z[zl] = 'x';
    CHECK(larder_git_gunzip((const char *)z, zl + 1, sizeof(text), sink, s, &err) == -1); /* trailing bytes */
    s->n = 0;
    CHECK(larder_git_gunzip("0032want", 8, 100, sink, s, &err) == -1); /* not gzip */
    CHECK(larder_git_gunzip("", 0, 100, sink, s, &err) == -1);
    s->n = sizeof(s->buf); /* a sink that refuses */
    CHECK(larder_git_gunzip((const char *)z, zl, sizeof(text), sink, s, &err) == -3);
    /* an empty body compressed */
    size_t el = gz("", 0, z, sizeof(z));
    s->n = 0;
    CHECK(larder_git_gunzip((const char *)z, el, 10, sink, s, &err) == 0 && s->n == 0);
    free(s);
}

static void test_seed_item(void)
{
    char remote[256], path[513];
    const char *refs, *err;
    CHECK(larder_git_seed_item("github.com/openedx/edx-platform master open-release/teak.1", remote, sizeof(remote),
                               path, sizeof(path), &refs, &err) == 0);
    CHECK(!strcmp(remote, "github.com") && !strcmp(path, "openedx/edx-platform") &&
          !strcmp(refs, "master open-release/teak.1"));
    CHECK(larder_git_seed_item("github.com/pyenv/pyenv.git", remote, sizeof(remote), path, sizeof(path), &refs,
                               &err) == 0);
    CHECK(!strcmp(path, "pyenv/pyenv") && !strcmp(refs, ""));
    CHECK(larder_git_seed_item("pyenv", remote, sizeof(remote), path, sizeof(path), &refs, &err) == -1);
    CHECK(larder_git_seed_item("github.com/../x", remote, sizeof(remote), path, sizeof(path), &refs, &err) == -1);
}

static void test_config(void)
{
    char err[512];
    larder_config_t *cfg = larder_config_parse("", 0, "t", err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg) {
        const larder_git_conf_t *gc = larder_proto_conf(cfg, LARDER_PROTO_GIT);
        CHECK(gc->nremotes == 2 && !strcmp(gc->remotes[0].name, "github.com") &&
              !strcmp(gc->remotes[0].url, "https://github.com") && !strcmp(gc->remotes[1].name, "gitlab.com"));
        CHECK(gc->max_concurrent == 16 && gc->max_request_body == 16u << 20);
        CHECK(cfg->proto[LARDER_PROTO_GIT].ttl == 300);
        larder_config_free(cfg);
    }
    const char *y = "git:\n  max_concurrent: 4\n  remotes:\n    Local: 'http://127.0.0.1:9/git/'\n"
                    "    corp: {url: 'https://git.corp', username: u, password: 'p:w'}\n";
    cfg = larder_config_parse(y, strlen(y), "t", err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg) {
        const larder_git_conf_t *gc = larder_proto_conf(cfg, LARDER_PROTO_GIT);
        CHECK(gc->nremotes == 2 && !strcmp(gc->remotes[0].name, "local") &&
              !strcmp(gc->remotes[0].url, "http://127.0.0.1:9/git")); /* replaces the defaults; no trailing '/' */
        CHECK(!strcmp(gc->remotes[1].username, "u") && !strcmp(gc->remotes[1].password, "p:w"));
        CHECK(gc->max_concurrent == 4);
        larder_config_free(cfg);
    }
    static const char *const bad[] = {
        "git:\n  remotes: [a]\n",
        "git:\n  remotes: {.tmp: 'http://x'}\n",
        "git:\n  remotes: {'a/b': 'http://x'}\n",
        "git:\n  remotes: {a: 'ftp://x'}\n",
        "git:\n  remotes: {a: 'http://u:p@x'}\n",
        "git:\n  remotes: {a: 'http://x/?q'}\n",
        "git:\n  remotes: {a: {url: 'http://x', username: u}}\n",
        "git:\n  remotes: {a: {username: u, password: p}}\n",
        "git:\n  remotes: {a: {url: 'http://x', user: u}}\n",
        "git:\n  remotes: {a: 'http://x', A: 'http://y'}\n",
        "git:\n  max_concurrent: 0\n",
        "git:\n  max_request_body: 2GiB\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg = larder_config_parse(bad[i], strlen(bad[i]), "t", err, sizeof(err));
        CHECK(cfg == NULL && strstr(err, "t:"));
        if (cfg) {
            fprintf(stderr, "accepted: %s", bad[i]);
            larder_config_free(cfg);
        }
    }
}

static void test_seedspec(void)
{
    char err[512];
    const char *y = "pin_set: s\ngit:\n  - github.com/pyenv/pyenv\n"
                    "  - {repo: github.com/openedx/edx-platform.git, refs: [open-release/teak.1, master]}\n";
    larder_seed_spec_t *spec = larder_seed_parse(y, strlen(y), err, sizeof(err));
    CHECK(spec != NULL);
    if (!spec)
        return;
    CHECK(spec->nitems == 2 && !strcmp(spec->items[0].ref, "github.com/pyenv/pyenv") &&
          !strcmp(spec->items[1].ref, "github.com/openedx/edx-platform open-release/teak.1 master"));
    char *out = larder_seed_emit(spec);
    larder_seed_spec_t *again = out ? larder_seed_parse(out, strlen(out), err, sizeof(err)) : NULL;
    CHECK(again && again->nitems == 2 && !strcmp(again->items[1].ref, spec->items[1].ref) &&
          !strcmp(again->items[0].ref, spec->items[0].ref));
    larder_seed_free(again);
    free(out);
    larder_seed_free(spec);
    static const char *const bad[] = {
        "pin_set: s\ngit: github.com/a/b\n",
        "pin_set: s\ngit: [github.com]\n",
        "pin_set: s\ngit: ['github.com/../x']\n",
        "pin_set: s\ngit: [{refs: [main]}]\n",
        "pin_set: s\ngit: [{repo: github.com/a/b, refs: ['a..b']}]\n",
        "pin_set: s\ngit: [{repo: github.com/a/b, refs: ['-x']}]\n",
        "pin_set: s\ngit: [{repo: github.com/a/b, branch: main}]\n",
        "pin_set: s\ngit: [[github.com/a/b]]\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        spec = larder_seed_parse(bad[i], strlen(bad[i]), err, sizeof(err));
        CHECK(spec == NULL);
        if (spec) {
            fprintf(stderr, "accepted: %s", bad[i]);
            larder_seed_free(spec);
        }
    }
}

int main(void)
{
    test_route();
    test_names();
    test_ref_find();
    test_gunzip();
    test_seed_item();
    test_config();
    test_seedspec();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures != 0;
}
