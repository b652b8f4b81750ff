/* test_pinspec.c - pinned entries back into seed items (each module's pin_spec hook), and larder_pins_spec over a
 * real store: key order, duplicates dropped, "# not reproducible" comments, and a spec that parses back. */
#include "module.h"
#include "pinspec.h"
#include "registry.h"
#include "seedspec.h"
#include "store.h"
#include "util.h"
#include "apt.h"
#include "oci.h"
#include "pypi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static larder_config_t *cfg;
static const char D1[] = "1111111111111111111111111111111111111111111111111111111111111111";
static const char D2[] = "2222222222222222222222222222222222222222222222222222222222222222";

/* run one module's hook on key (entry with digest d and content type ct, or no entry when d is NULL) */
static int hook(larder_seed_spec_t *spec, int proto, const char *key, const char *d, const char *ct, char *why)
{
    larder_entry_t e = {0};
    if (d)
        memcpy(e.digest, d, 65);
    e.content_type = (char *)ct;
    why[0] = 0;
    return larder_protocol_get(proto)->pin_spec(cfg, spec, key, d ? &e : NULL, why, 256);
}

static int has_item(const larder_seed_spec_t *spec, int proto, const char *ref, const char *sha)
{
    for (size_t i = 0; i < spec->nitems; i++)
        if (spec->items[i].proto == proto && !strcmp(spec->items[i].ref, ref) &&
            ((!sha && !spec->items[i].sha256) || (sha && spec->items[i].sha256 && !strcmp(sha, spec->items[i].sha256))))
            return 1;
    return 0;
}

static size_t count(const larder_seed_spec_t *spec, int proto)
{
    size_t n = 0;
    for (size_t i = 0; i < spec->nitems; i++)
        n += spec->items[i].proto == proto;
    return n;
}

/* the spec as YAML parses back to the same items */
static void round_trip(larder_seed_spec_t *spec)
{
    char err[300];
    if (!spec->pin_set)
        spec->pin_set = strdup("t");
    CHECK(larder_seed_apply_defaults(spec) == 0);
    char *y = larder_seed_emit(spec);
    larder_seed_spec_t *back = y ? larder_seed_parse(y, strlen(y), err, sizeof(err)) : NULL;
    if (!back)
        fprintf(stderr, "round trip: %s\n%s\n", err, y ? y : "");
    CHECK(back != NULL);
    if (back) {
        CHECK(back->nitems == spec->nitems);
        for (size_t i = 0; i < spec->nitems; i++)
            CHECK(has_item(back, spec->items[i].proto, spec->items[i].ref, spec->items[i].sha256));
    }
    larder_seed_free(back);
    free(y);
}

static void files(void)
{
    larder_seed_spec_t *s = calloc(1, sizeof(*s));
    char why[256];
    CHECK(hook(s, LARDER_PROTO_FILES, "https://example.org/x.tar.gz", D1, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_FILES, "x.tgz", D1));
    /* a pin whose configured sha256 is another one: the mirror path */
    CHECK(hook(s, LARDER_PROTO_FILES, "https://example.org/y.tar.gz", D2, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_FILES, "ex/y.tar.gz", D2));
    CHECK(hook(s, LARDER_PROTO_FILES, "https://example.org/a/b.zip", NULL, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_FILES, "ex/a/b.zip", NULL));
    CHECK(hook(s, LARDER_PROTO_FILES, "https://elsewhere.org/z", D1, NULL, why) == -1 && strstr(why, "no pin"));
    /* a URL that no request path could produce is not turned into one */
    CHECK(hook(s, LARDER_PROTO_FILES, "https://example.org/a/../b", D1, NULL, why) == -1);
    round_trip(s);
    larder_seed_free(s);
}

static void npm(void)
{
    larder_seed_spec_t *s = calloc(1, sizeof(*s));
    char why[256];
    /* keys in store order: packuments before tarballs */
    CHECK(hook(s, LARDER_PROTO_NPM, "pk/@scope/pkg/abbr", D1, NULL, why) == 0);
    CHECK(hook(s, LARDER_PROTO_NPM, "pk/@scope/pkg/full", D1, NULL, why) == 0);
    CHECK(hook(s, LARDER_PROTO_NPM, "pk/lonely/full", D1, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_NPM, "@scope/pkg --packument-only", NULL));
    CHECK(hook(s, LARDER_PROTO_NPM, "tgz/@scope/pkg/pkg-1.2.3-beta.1.tgz", D1, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_NPM, "@scope/pkg@1.2.3-beta.1 sha256-ERERERERERERERERERERERERERERERERERERERERERE=", NULL));
    CHECK(!has_item(s, LARDER_PROTO_NPM, "@scope/pkg --packument-only", NULL));
    CHECK(has_item(s, LARDER_PROTO_NPM, "lonely --packument-only", NULL));
    CHECK(hook(s, LARDER_PROTO_NPM, "tgz/left-pad/left-pad-1.3.0.tgz", NULL, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_NPM, "left-pad@1.3.0", NULL));
    CHECK(hook(s, LARDER_PROTO_NPM, "tgz/left-pad/other-1.3.0.tgz", D1, NULL, why) == -1);
    CHECK(hook(s, LARDER_PROTO_NPM, "search", D1, NULL, why) == -1);
    CHECK(count(s, LARDER_PROTO_NPM) == 3);
    round_trip(s);
    larder_seed_free(s);
}

static void pypi(void)
{
    larder_seed_spec_t *s = calloc(1, sizeof(*s));
    char why[256], want[400];
    CHECK(hook(s, LARDER_PROTO_PYPI, "https://files.example/p/Demo_Pkg-1.0%2Blocal-cp311-cp311-macosx_11_0_arm64.whl",
               D1, NULL, why) == 0);
    snprintf(want, sizeof(want),
             "demo-pkg==1.0+local --file=Demo_Pkg-1.0+local-cp311-cp311-macosx_11_0_arm64.whl --hash=sha256:%s", D1);
    CHECK(has_item(s, LARDER_PROTO_PYPI, want, NULL));
    CHECK(hook(s, LARDER_PROTO_PYPI,
               "https://files.example/p/Demo_Pkg-1.0%2Blocal-cp311-cp311-macosx_11_0_arm64.whl.metadata", D2, NULL,
               why) == 0);
    CHECK(count(s, LARDER_PROTO_PYPI) == 1);
    CHECK(hook(s, LARDER_PROTO_PYPI, "https://files.example/p/other-2.0.tar.gz.metadata", D2, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_PYPI, "other==2.0 --file=other-2.0.tar.gz", NULL));
    CHECK(hook(s, LARDER_PROTO_PYPI, "page/demo-pkg/json", D2, NULL, why) == 0);
    CHECK(hook(s, LARDER_PROTO_PYPI, "page/only-page/json", D2, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_PYPI, "only-page --page-only", NULL));
    CHECK(count(s, LARDER_PROTO_PYPI) == 3);
    CHECK(hook(s, LARDER_PROTO_PYPI, "index/list", D2, NULL, why) == -1 && strstr(why, "project list"));
    CHECK(hook(s, LARDER_PROTO_PYPI, "https://files.example/p/README", D2, NULL, why) == -1);
    round_trip(s);
    /* the exact-file form parses; a file of another release does not */
    larder_pypi_requirement_t r;
    char err[300];
    CHECK(larder_pypi_parse_requirement("a==1.0 --file=a-1.0-py3-none-any.whl", &r, err, sizeof(err)) == 0 &&
          !strcmp(r.file, "a-1.0-py3-none-any.whl"));
    CHECK(larder_pypi_parse_requirement("a==1.0 --file=a-1.1-py3-none-any.whl", &r, err, sizeof(err)) == -1);
    CHECK(larder_pypi_parse_requirement("a==1.0 --file=b-1.0.tar.gz", &r, err, sizeof(err)) == -1);
    larder_seed_free(s);
}

static void apt(void)
{
    larder_seed_spec_t *s = calloc(1, sizeof(*s));
    char why[256];
    CHECK(hook(s, LARDER_PROTO_APT, "127.0.0.1:8080/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", D1, NULL,
               why) == -1 &&
          strstr(why, "suite is unknown"));
    CHECK(hook(s, LARDER_PROTO_APT, "127.0.0.1:8080/debian/dists/stable/InRelease", D1, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_APT, "--indexes-only", NULL));
    CHECK(hook(s, LARDER_PROTO_APT, "127.0.0.1:8080/debian/dists/stable/contrib/binary-arm64/Packages.xz@" "abcd", D1,
               NULL, why) == 0);
    CHECK(hook(s, LARDER_PROTO_APT, "127.0.0.1:8080/debian/dists/stable/main/binary-amd64/by-hash/SHA256/abcd", D1,
               NULL, why) == 0);
    CHECK(hook(s, LARDER_PROTO_APT, "secure.example/deb/dists/sec/InRelease", D1, NULL, why) == 0);
    const larder_seed_strings_t *repos = larder_seed_option(s, LARDER_PROTO_APT, "repositories");
    CHECK(repos->n == 2);
    CHECK(repos->n == 2 && !strcmp(repos->v[0], "http://127.0.0.1:8080/debian stable contrib,main arm64,amd64 -"));
    CHECK(repos->n == 2 && !strcmp(repos->v[1], "https://secure.example/deb sec - - -"));
    CHECK(hook(s, LARDER_PROTO_APT, "127.0.0.1:8080/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", D1, NULL,
               why) == 0);
    CHECK(hook(s, LARDER_PROTO_APT, "127.0.0.1:8080/debian/pool/main/t/tz/tzdata_1%3a2024a-1_all.deb", D1, NULL,
               why) == 0);
    CHECK(hook(s, LARDER_PROTO_APT, "127.0.0.1:8080/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", D1, NULL,
               why) == 0);
    CHECK(hook(s, LARDER_PROTO_APT, "127.0.0.1:8080/debian/pool/main/h/hello/hello_2.10-3.dsc", D1, NULL, why) == -1);
    CHECK(count(s, LARDER_PROTO_APT) == 1 && has_item(s, LARDER_PROTO_APT, "hello:amd64=2.10-3 tzdata=1:2024a-1", NULL));
    round_trip(s);
    larder_seed_free(s);

    /* the exact form over a universe: that version only, any epoch when none is given, no dependencies */
    static const char pk[] = "Package: a\nVersion: 1:2.0-1\nArchitecture: amd64\nDepends: b\nFilename: pool/a_2.0-1_amd64.deb\n"
                             "SHA256: 11\n\nPackage: a\nVersion: 3.0\nArchitecture: amd64\nFilename: pool/a_3.0_amd64.deb\n"
                             "SHA256: 22\n\nPackage: b\nVersion: 1\nArchitecture: all\nFilename: pool/b_1_all.deb\nSHA256: 33\n";
    larder_apt_universe_t *u = larder_apt_universe_new();
    larder_apt_universe_set_arch(u, "amd64");
    larder_apt_universe_add(u, pk, sizeof(pk) - 1, 0);
    CHECK(larder_apt_exact(u, "a=2.0-1", NULL, NULL) == 1);
    CHECK(larder_apt_exact(u, "a:amd64=1:2.0-1", NULL, NULL) == 1);
    CHECK(larder_apt_exact(u, "a:arm64=2.0-1", NULL, NULL) == 0);
    CHECK(larder_apt_exact(u, "a=2.5", NULL, NULL) == 0);
    CHECK(larder_apt_exact(u, "b=1", NULL, NULL) == 1);
    CHECK(larder_apt_exact(u, "a", NULL, NULL) == -1);
    larder_apt_universe_free(u);
}

static void oci(void)
{
    larder_seed_spec_t *s = calloc(1, sizeof(*s));
    char why[256], want[400];
    CHECK(hook(s, LARDER_PROTO_OCI, "b/docker.io/sha256:" "1111111111111111111111111111111111111111111111111111111111111111",
               D1, NULL, why) == 0);
    CHECK(s->nitems == 0);
    CHECK(hook(s, LARDER_PROTO_OCI, "m/docker.io/library/alpine:3.19", D1,
               "application/vnd.oci.image.index.v1+json", why) == 0);
    snprintf(want, sizeof(want), "docker.io/library/alpine:3.19@sha256:%s --index-only", D1);
    CHECK(has_item(s, LARDER_PROTO_OCI, want, NULL));
    snprintf(want, sizeof(want), "m/127.0.0.1:5000/team/app@sha256:%s", D2);
    CHECK(hook(s, LARDER_PROTO_OCI, want, D2, "application/vnd.oci.image.manifest.v1+json", why) == 0);
    snprintf(want, sizeof(want), "127.0.0.1:5000/team/app@sha256:%s", D2);
    CHECK(has_item(s, LARDER_PROTO_OCI, want, NULL));
    CHECK(hook(s, LARDER_PROTO_OCI, "m/ghcr.io/x/y:latest", NULL, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_OCI, "ghcr.io/x/y:latest", NULL));
    CHECK(hook(s, LARDER_PROTO_OCI, "t/docker.io/library/alpine", D1, NULL, why) == -1);
    round_trip(s);
    /* name:tag@digest keeps both */
    larder_oci_req_t o;
    char err[300];
    snprintf(want, sizeof(want), "alpine:3.19@sha256:%s", D1);
    CHECK(larder_oci_parse_ref(want, &o, err, sizeof(err)) == 0 && o.ref_is_digest && !strcmp(o.tag, "3.19") &&
          !strcmp(o.name, "library/alpine"));
    larder_seed_free(s);
}

static void gems_git(void)
{
    larder_seed_spec_t *s = calloc(1, sizeof(*s));
    char why[256];
    CHECK(hook(s, LARDER_PROTO_GEMS, "gems/nokogiri-1.15.4-x86_64-linux.gem", D1, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_GEMS, "nokogiri:1.15.4-x86_64-linux", NULL));
    CHECK(hook(s, LARDER_PROTO_GEMS, "info/nokogiri", D1, NULL, why) == 0);
    CHECK(hook(s, LARDER_PROTO_GEMS, "info/rack-test", D1, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_GEMS, "rack-test --info-only", NULL));
    CHECK(hook(s, LARDER_PROTO_GEMS, "quick/Marshal.4.8/rack-test-2.1.0.gemspec.rz", D1, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_GEMS, "rack-test:2.1.0", NULL));
    CHECK(!has_item(s, LARDER_PROTO_GEMS, "rack-test --info-only", NULL));
    CHECK(hook(s, LARDER_PROTO_GEMS, "versions", D1, NULL, why) == 0);
    CHECK(count(s, LARDER_PROTO_GEMS) == 2);
    CHECK(hook(s, LARDER_PROTO_GIT, "m/github.com/org/repo", D1, NULL, why) == 0);
    CHECK(has_item(s, LARDER_PROTO_GIT, "github.com/org/repo", NULL));
    CHECK(hook(s, LARDER_PROTO_GIT, "m/nowhere.example/org/repo", D1, NULL, why) == -1 && strstr(why, "git.remotes"));
    round_trip(s);
    larder_seed_free(s);
}

/* commit `body` under (proto, key) and pin it in set */
static void put(larder_store_t *st, int proto, const char *key, const char *body, const char *set)
{
    char path[4096];
    int fd = larder_store_tmp_create(st, path, sizeof(path));
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, body, strlen(body)) == (ssize_t)strlen(body));
    close(fd);
    larder_entry_t e = {0};
    CHECK(larder_sha256_file(path, e.digest) == 0);
    e.size = strlen(body);
    e.fetched_at = larder_now();
    e.url = (char *)"http://example.invalid/";
    CHECK(larder_store_commit(st, proto, key, path, &e, set) == 0);
}

static void whole_set(void)
{
    char dir[] = "/tmp/larder-test-pinspec-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    larder_config_t scfg = *cfg;
    scfg.data_dir = dir;
    larder_store_t *st = NULL;
    char err[300];
    CHECK(larder_store_open(&scfg, &st, err, sizeof(err)) == 0);
    if (!st)
        return;
    put(st, LARDER_PROTO_NPM, "tgz/left-pad/left-pad-1.3.0.tgz", "tarball", "s1");
    put(st, LARDER_PROTO_NPM, "pk/left-pad/full", "{}", "s1");
    put(st, LARDER_PROTO_NPM, "pk/left-pad/abbr", "{ }", "s1");
    put(st, LARDER_PROTO_FILES, "https://example.org/x.tar.gz", "x", "s1");
    put(st, LARDER_PROTO_OCI, "t/docker.io/library/alpine", "tags\nwith a newline", "s1");
    put(st, LARDER_PROTO_FILES, "https://example.org/x.tar.gz", "x", "other");
    char *y = NULL;
    CHECK(larder_pins_spec(cfg, st, "nope", &y) == -ENOENT && !y);
    CHECK(larder_pins_spec(cfg, st, "s1", &y) == 0 && y);
    if (y) {
        CHECK(strstr(y, "# not reproducible: oci t/docker.io/library/alpine: a tag list cannot be seeded\n"));
        CHECK(strstr(y, "pin_set: \"s1\"\n"));
        CHECK(strstr(y, "\"left-pad@1.3.0 sha256-"));
        CHECK(!strstr(y, "packument-only"));
        /* files before npm (registry order), and parses back */
        CHECK(strstr(y, "files:") && strstr(y, "npm:") && strstr(y, "files:") < strstr(y, "npm:"));
        larder_seed_spec_t *back = larder_seed_parse(y, strlen(y), err, sizeof(err));
        if (!back)
            fprintf(stderr, "%s\n%s\n", err, y);
        CHECK(back && back->nitems == 2 && !strcmp(back->pin_set, "s1"));
        larder_seed_free(back);
    }
    free(y);
    larder_store_close(st);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    static const char yaml[] =
        "files:\n"
        "  pins:\n"
        "    - {name: x.tgz, url: 'https://example.org/x.tar.gz'}\n"
        "    - {name: y.tgz, url: 'https://example.org/y.tar.gz', sha256: " "3333333333333333333333333333333333333333333333333333333333333333}\n"
        "  mirrors:\n"
        "    - {name: ex, url: 'https://example.org/'}\n"
        "apt:\n"
        "  allow: ['127.0.0.1:8080', secure.example]\n"
        "  https_hosts: [secure.example]\n"
        "git:\n"
        "  remotes: {github.com: 'https://github.com'}\n";
    char err[256];
    cfg = larder_config_parse(yaml, sizeof(yaml) - 1, "test", err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    for (int p = 0; p < larder_nprotocols; p++)
        CHECK(larder_protocol_get(p)->pin_spec != NULL);
    files();
    npm();
    pypi();
    apt();
    oci();
    gems_git();
    whole_set();
    larder_config_free(cfg);
    return failures != 0;
}
