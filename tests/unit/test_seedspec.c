/* test_seedspec.c - seed specs: the documented forms parse, every malformed one is refused with its line. */
#include "config.h"
#include "registry.h"
#include "seedspec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define OPT(s, proto, key) larder_seed_option((s), LARDER_PROTO_##proto, (key))

static larder_seed_spec_t *parse(const char *yaml, char *err, size_t errlen)
{
    return larder_seed_parse(yaml, strlen(yaml), err, errlen);
}

static void expect_error(int src_line, int line, const char *yaml, const char *frag)
{
    char err[512] = "";
    larder_seed_spec_t *s = parse(yaml, err, sizeof(err));
    char want[32];
    snprintf(want, sizeof(want), "line %d: ", line);
    if (s || strncmp(err, want, strlen(want)) != 0 || !strstr(err, frag)) {
        fprintf(stderr, "%s:%d: expected an error at line %d containing '%s'\n  spec: %s\n  got: %s\n", __FILE__,
                src_line, line, frag, yaml, s ? "(accepted)" : err);
        failures++;
    }
    larder_seed_free(s);
}
#define EXPECT_ERROR(line, yaml, frag) expect_error(__LINE__, line, yaml, frag)

static void test_good(void)
{
    static const char yaml[] =
        "# what the tutor-18 image needs\n"
        "pin_set: tutor-18\n"
        "files:\n"
        "  - node-v20.tar.xz\n"
        "  - nodejs/v20.11.1/node-v20.11.1-linux-x64.tar.xz\n"
        "  - path: python/3.11.7/Python-3.11.7.tar.xz\n"
        "    sha256: 18E1AA7E66FF3A58423D59ED22815A6954E53342122C45DF20C96877C062B9B7\n"
        "  - {path: 'a b/c?d=1'}\n"
        "  - {path: x, sha256: ~}\n";
    char err[512];
    larder_seed_spec_t *s = parse(yaml, err, sizeof(err));
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "  error: %s\n", err);
        return;
    }
    CHECK(strcmp(s->pin_set, "tutor-18") == 0);
    CHECK(s->nitems == 5);
    if (s->nitems == 5) {
        for (size_t i = 0; i < 5; i++)
            CHECK(s->items[i].proto == LARDER_PROTO_FILES);
        CHECK(strcmp(s->items[0].ref, "node-v20.tar.xz") == 0 && s->items[0].sha256 == NULL);
        CHECK(strcmp(s->items[1].ref, "nodejs/v20.11.1/node-v20.11.1-linux-x64.tar.xz") == 0);
        CHECK(strcmp(s->items[2].ref, "python/3.11.7/Python-3.11.7.tar.xz") == 0);
        CHECK(s->items[2].sha256 &&
              strcmp(s->items[2].sha256, "18e1aa7e66ff3a58423d59ed22815a6954e53342122c45df20c96877c062b9b7") == 0);
        CHECK(strcmp(s->items[3].ref, "a b/c?d=1") == 0);
        CHECK(strcmp(s->items[4].ref, "x") == 0 && s->items[4].sha256 == NULL);
    }
    larder_seed_free(s);

    /* flow style, key order free, a 64-character pin set, a 2048-byte ref */
    char big[2200];
    memset(big, 'a', 2048);
    big[2048] = 0;
    char doc[2400];
    snprintf(doc, sizeof(doc),
             "{files: [%s], pin_set: A.b_c-0123456789012345678901234567890123456789012345678901234567}", big);
    s = parse(doc, err, sizeof(err));
    CHECK(s && s->nitems == 1 && strlen(s->items[0].ref) == 2048 && strlen(s->pin_set) == 64);
    larder_seed_free(s);

    /* many items (the array grows) */
    size_t n = 1000, off = 0;
    char *many = malloc(n * 16 + 64);
    off += (size_t)sprintf(many + off, "pin_set: many\nfiles:\n");
    for (size_t i = 0; i < n; i++)
        off += (size_t)sprintf(many + off, "  - f%zu\n", i);
    s = parse(many, err, sizeof(err));
    CHECK(s && s->nitems == n && strcmp(s->items[n - 1].ref, "f999") == 0);
    larder_seed_free(s);
    free(many);
    larder_seed_free(NULL);
}

static void test_bad(void)
{
    EXPECT_ERROR(1, "", "empty");
    EXPECT_ERROR(1, "# nothing\n", "empty");
    EXPECT_ERROR(1, "- a\n- b\n", "mapping");
    EXPECT_ERROR(1, "files:\n  - a\n", "pin_set is required");
    EXPECT_ERROR(1, "pin_set: x\n", "nothing to seed");
    EXPECT_ERROR(1, "pin_set: x\nfiles: []\n", "nothing to seed");
    EXPECT_ERROR(1, "pin_set: x\nfiles:\n", "nothing to seed");
    EXPECT_ERROR(1, "pin_set: 'a b'\nfiles: [a]\n", "pin_set must be");
    EXPECT_ERROR(1, "pin_set: ''\nfiles: [a]\n", "pin_set must be");
    EXPECT_ERROR(1, "pin_set: ~\nfiles: [a]\n", "pin_set must be");
    EXPECT_ERROR(1, "pin_set: [a]\nfiles: [a]\n", "pin_set must be");
    EXPECT_ERROR(1, "pin_set: a/b\nfiles: [a]\n", "pin_set must be");
    EXPECT_ERROR(1,
                 "pin_set: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nfiles: [a]\n",
                 "pin_set must be");
    EXPECT_ERROR(2, "pin_set: x\npin_set: y\nfiles: [a]\n", "duplicate key 'pin_set'");
    EXPECT_ERROR(3, "pin_set: x\nfiles: [a]\nfiles: [b]\n", "duplicate key 'files'");
    EXPECT_ERROR(2, "pin_set: x\nfile:\n  - a\n", "unknown key 'file'");
    EXPECT_ERROR(4, "pin_set: x\nfiles: [a]\npypi:\n  - requests==2.31.0\n", "section 'pypi': expected a mapping");
    EXPECT_ERROR(3, "pin_set: x\npypi:\n  requirement_files: [r.txt]\n", "names files on your machine, which the daemon cannot read");
    EXPECT_ERROR(3, "pin_set: x\npypi:\n  requirementz: [a==1]\n", "unknown key 'requirementz' in pypi");
    EXPECT_ERROR(3, "pin_set: x\npypi:\n  python_versions: [three]\n  requirements: [a==1]\n", "is not valid");
    EXPECT_ERROR(3, "pin_set: x\npypi:\n  platforms: ['Linux x86']\n  requirements: [a==1]\n", "is not valid");
    EXPECT_ERROR(1, "pin_set: x\npypi:\n  python_versions: ['3.12']\n", "nothing to seed");
    EXPECT_ERROR(2, "pin_set: x\noci: [alpine]\n", "section 'oci': expected a mapping");
    EXPECT_ERROR(4, "pin_set: x\noci:\n  images: [alpine]\n  platforms: [amd64]\n", "oci.platforms: 'amd64' is not valid");
    EXPECT_ERROR(3, "pin_set: x\noci:\n  imgs: [alpine]\n", "unknown key 'imgs' in oci");
    EXPECT_ERROR(3, "pin_set: x\ngems:\n  lockfiles: [Gemfile.lock]\n", "names files on your machine, which the daemon cannot read");
    EXPECT_ERROR(3, "pin_set: x\ngems:\n  rubygems: [rails:7]\n", "unknown key 'rubygems' in gems");
    EXPECT_ERROR(2, "pin_set: x\ngems: [rails]\n", "section 'gems': expected a mapping");
    EXPECT_ERROR(2, "pin_set: x\napt: [curl]\n", "section 'apt': expected a mapping");
    EXPECT_ERROR(3, "pin_set: x\napt:\n  packages: [Curl]\n", "apt.packages: 'Curl' is not valid");
    EXPECT_ERROR(4, "pin_set: x\napt:\n  repositories:\n    - {url: ftp://x/debian, suite: bookworm}\n",
                 "is not a valid url");
    EXPECT_ERROR(4, "pin_set: x\napt:\n  repositories:\n    - {url: http://x/debian}\n", "url and suite are required");
    EXPECT_ERROR(4, "pin_set: x\napt:\n  repositories:\n    - {url: http://x/d, suite: s, mirror: y}\n",
                 "unknown key 'mirror' in an apt repository");
    EXPECT_ERROR(1, "pin_set: x\nnpm: ~\n", "nothing to seed");
    EXPECT_ERROR(2, "pin_set: x\nnpm: [a@1.0.0]\n", "section 'npm': expected a mapping");
    EXPECT_ERROR(3, "pin_set: x\nnpm:\n  lockfiles: [package-lock.json]\n", "names files on your machine, which the daemon cannot read");
    EXPECT_ERROR(3, "pin_set: x\nnpm:\n  pkgs: [a@1.0.0]\n", "unknown key 'pkgs' in npm");
    EXPECT_ERROR(2, "pin_set: x\nfiles: a\n", "expected a list");
    EXPECT_ERROR(2, "pin_set: x\nfiles: {path: a}\n", "expected a list");
    EXPECT_ERROR(3, "pin_set: x\nfiles:\n  - ''\n", "empty item");
    EXPECT_ERROR(3, "pin_set: x\nfiles:\n  - ~\n", "empty item");
    EXPECT_ERROR(3, "pin_set: x\nfiles:\n  - /etc/passwd\n", "no leading '/'");
    EXPECT_ERROR(3, "pin_set: x\nfiles:\n  - \"a\\0b\"\n", "NUL");
    EXPECT_ERROR(3, "pin_set: x\nfiles:\n  - \"a\\nb\"\n", "control character");
    EXPECT_ERROR(3, "pin_set: x\nfiles:\n  - [a]\n", "got a list");
    EXPECT_ERROR(3, "pin_set: x\nfiles:\n  - sha256: 18e1aa7e66ff3a58423d59ed22815a6954e53342122c45df20c96877c062b9b7\n",
                 "'path' is required");
    EXPECT_ERROR(4, "pin_set: x\nfiles:\n  - path: a\n    sha256: 1234\n", "64 hex");
    EXPECT_ERROR(4,
                 "pin_set: x\nfiles:\n  - path: a\n"
                 "    sha256: 18e1aa7e66ff3a58423d59ed22815a6954e53342122c45df20c96877c062b9bz\n",
                 "64 hex");
    EXPECT_ERROR(4, "pin_set: x\nfiles:\n  - path: a\n    digest: x\n", "unknown key 'digest' in files item");
    EXPECT_ERROR(4, "pin_set: x\nfiles:\n  - path: a\n    path: b\n", "duplicate key 'path'");
    EXPECT_ERROR(5, "pin_set: x\nfiles:\n  - path: a\n    sha256: ~\n    sha256: ~\n", "duplicate key 'sha256'");
    EXPECT_ERROR(3, "pin_set: x\nfiles:\n  - path: [a]\n", "path: expected a string");
    EXPECT_ERROR(4, "pin_set: x\nfiles:\n  - [a, b\n", "YAML syntax error");
    EXPECT_ERROR(4, "pin_set: x\nfiles: [a]\n---\npin_set: y\n", "only one YAML document");
    EXPECT_ERROR(3, "pin_set: &p x\nfiles:\n  - *p\n", "aliases");
    EXPECT_ERROR(1, "? [a]\n: b\n", "expected a string");

    char big[2200];
    memset(big, 'a', 2049);
    big[2049] = 0;
    char doc[2400];
    snprintf(doc, sizeof(doc), "pin_set: x\nfiles:\n  - %s\n", big);
    EXPECT_ERROR(3, doc, "longer than 2048");

    char err[256];
    larder_seed_spec_t *s = parse("pin_set: \"\xc3\x28\"\n", err, sizeof(err));
    CHECK(s == NULL && strstr(err, "UTF-8"));
    /* the parser reads exactly len bytes */
    s = larder_seed_parse("pin_set: x\nfiles: [a]\nGARBAGE", 22, err, sizeof(err));
    CHECK(s && s->nitems == 1);
    larder_seed_free(s);
    s = larder_seed_parse(NULL, 0, err, sizeof(err));
    CHECK(s == NULL);
    s = parse("bogus: 1\n", NULL, 0);
    CHECK(s == NULL);
}

static void test_pypi(void)
{
    char err[512];
    static const char yaml[] = "pin_set: py\n"
                               "pypi:\n"
                               "  requirements:\n"
                               "    - Django==4.2.7\n"
                               "    - 'requests==2.31.0 --hash=sha256:aa'\n"
                               "files: [a]\n";
    larder_seed_spec_t *s = parse(yaml, err, sizeof(err));
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK(s->nitems == 3);
    CHECK(s->items[0].proto == LARDER_PROTO_PYPI && strcmp(s->items[0].ref, "Django==4.2.7") == 0);
    CHECK(OPT(s, PYPI, "python_versions")->n == 1 && strcmp(OPT(s, PYPI, "python_versions")->v[0], "3.11") == 0);
    CHECK(OPT(s, PYPI, "platforms")->n == 1 && strcmp(OPT(s, PYPI, "platforms")->v[0], "manylinux2014_x86_64") == 0);
    /* emit, parse again: same items */
    char *text = larder_seed_emit(s);
    larder_seed_spec_t *s2 = text ? parse(text, err, sizeof(err)) : NULL;
    CHECK(s2 != NULL);
    if (s2) {
        CHECK(s2->nitems == 3 && strcmp(s2->pin_set, "py") == 0);
        /* emitted by protocol: the pypi items keep their order and text */
        size_t k = 0;
        for (size_t i = 0; i < s2->nitems; i++)
            if (s2->items[i].proto == LARDER_PROTO_PYPI)
                CHECK(strcmp(s2->items[i].ref, s->items[k++].ref) == 0);
        size_t npypi = 0;
        for (size_t i = 0; i < s2->nitems; i++)
            npypi += s2->items[i].proto == LARDER_PROTO_PYPI;
        CHECK(npypi == 2);
        larder_seed_free(s2);
    }
    free(text);
    larder_seed_free(s);
    /* the client may name requirement files */
    static const char client[] = "pin_set: py\npypi:\n  python_versions: ['3.10', '3.11']\n"
                                 "  requirement_files: [requirements/base.txt]\n";
    s = larder_seed_parse_ex(client, sizeof(client) - 1, LARDER_SEED_CLIENT, err, sizeof(err));
    CHECK(s && OPT(s, PYPI, "requirement_files")->n == 1 && OPT(s, PYPI, "python_versions")->n == 2 && s->nitems == 0);
    larder_seed_free(s);
}

static void test_apt(void)
{
    char err[512];
    static const char yaml[] = "pin_set: deb\napt:\n  repositories:\n"
                               "    - url: http://deb.debian.org/debian\n      suite: bookworm\n"
                               "      components: [main, contrib]\n      signed_by: /usr/share/keyrings/k.gpg\n"
                               "    - {url: 'http://security.debian.org/debian-security', suite: bookworm-security}\n"
                               "  packages: [jq, curl, libc6]\n";
    larder_seed_spec_t *s = parse(yaml, err, sizeof(err));
    CHECK(s && s->nitems == 1 && s->items[0].proto == LARDER_PROTO_APT && !strcmp(s->items[0].ref, "jq curl libc6"));
    CHECK(s && OPT(s, APT, "repositories")->n == 2 &&
          !strcmp(OPT(s, APT, "repositories")->v[0], "http://deb.debian.org/debian bookworm main,contrib amd64 /usr/share/keyrings/k.gpg"));
    CHECK(s && OPT(s, APT, "repositories")->n == 2 &&
          !strcmp(OPT(s, APT, "repositories")->v[1], "http://security.debian.org/debian-security bookworm-security main amd64 -"));
    char *text = s ? larder_seed_emit(s) : NULL;
    larder_seed_spec_t *s2 = text ? parse(text, err, sizeof(err)) : NULL;
    CHECK(s2 && s2->nitems == 1 && !strcmp(s2->items[0].ref, "jq curl libc6") && OPT(s2, APT, "repositories")->n == 2 &&
          !strcmp(OPT(s2, APT, "repositories")->v[0], OPT(s, APT, "repositories")->v[0]) && !strcmp(OPT(s2, APT, "repositories")->v[1], OPT(s, APT, "repositories")->v[1]));
    if (!s2 && text)
        fprintf(stderr, "  re-parse: %s\n%s\n", err, text);
    larder_seed_free(s2);
    free(text);
    larder_seed_free(s);
}

static void test_oci_gems(void)
{
    char err[512];
    static const char yaml[] = "pin_set: img\noci:\n  platforms: [linux/arm64/v8, linux/amd64]\n  images:\n"
                               "    - alpine:3.19\n    - ghcr.io/astral-sh/uv:0.4\n"
                               "gems:\n  gems: ['rails:7.1.2', 'nokogiri:1.15.4-x86_64-linux']\n";
    larder_seed_spec_t *s = parse(yaml, err, sizeof(err));
    CHECK(s && s->nitems == 4 && OPT(s, OCI, "platforms")->n == 2 && !strcmp(OPT(s, OCI, "platforms")->v[0], "linux/arm64/v8"));
    char *text = s ? larder_seed_emit(s) : NULL;
    larder_seed_spec_t *s2 = text ? parse(text, err, sizeof(err)) : NULL;
    CHECK(s2 && s2->nitems == 4 && OPT(s2, OCI, "platforms")->n == 2);
    int oci = 0, gems = 0;
    for (size_t i = 0; s2 && i < s2->nitems; i++) {
        oci += s2->items[i].proto == LARDER_PROTO_OCI;
        gems += s2->items[i].proto == LARDER_PROTO_GEMS;
    }
    CHECK(oci == 2 && gems == 2);
    if (!s2 && text)
        fprintf(stderr, "  re-parse: %s\n%s\n", err, text);
    larder_seed_free(s2);
    free(text);
    larder_seed_free(s);
    s = parse("pin_set: x\noci:\n  images: [alpine]\n", err, sizeof(err));
    CHECK(s && OPT(s, OCI, "platforms")->n == 1 && !strcmp(OPT(s, OCI, "platforms")->v[0], "linux/amd64"));
    larder_seed_free(s);
}

static void test_npm(void)
{
    char err[512];
    static const char yaml[] = "pin_set: js\nnpm:\n  packages:\n    - left-pad@1.3.0\n"
                               "    - '@s/b@2.0.0 sha512-AAAA'\n";
    larder_seed_spec_t *s = parse(yaml, err, sizeof(err));
    CHECK(s && s->nitems == 2 && s->items[1].proto == LARDER_PROTO_NPM && !strcmp(s->items[1].ref, "@s/b@2.0.0 sha512-AAAA"));
    char *text = s ? larder_seed_emit(s) : NULL;
    larder_seed_spec_t *s2 = text ? parse(text, err, sizeof(err)) : NULL;
    CHECK(s2 && s2->nitems == 2 && !strcmp(s2->items[0].ref, "left-pad@1.3.0") &&
          !strcmp(s2->items[1].ref, "@s/b@2.0.0 sha512-AAAA"));
    larder_seed_free(s2);
    free(text);
    larder_seed_free(s);
    static const char client[] = "pin_set: js\nnpm:\n  lockfiles: [app/package-lock.json]\n";
    s = larder_seed_parse_ex(client, sizeof(client) - 1, LARDER_SEED_CLIENT, err, sizeof(err));
    CHECK(s && OPT(s, NPM, "lockfiles")->n == 1 && s->nitems == 0);
    larder_seed_free(s);
}

int main(void)
{
    test_pypi();
    test_npm();
    test_apt();
    test_oci_gems();
    test_good();
    test_bad();
    if (failures) {
        fprintf(stderr, "test_seedspec: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_seedspec: ok\n");
    return 0;
}
