/* test_apt.c - apt request mapping (proxy and path mode), Release and Packages parsing, decompression, and the
 * dependency closure used by seeding. */
#include "apt.h"

#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"

static int map(const char *s, int proxy, larder_apt_target_t *t)
{
    char err[200];
    return larder_apt_map(s, strlen(s), proxy, t, err, sizeof(err));
}

static void test_map(void)
{
    larder_apt_target_t t;
    CHECK(map("http://deb.debian.org/debian/dists/bookworm/InRelease", 1, &t) == 0);
    CHECK(!strcmp(t.host, "deb.debian.org") && !strcmp(t.path, "/debian/dists/bookworm/InRelease"));
    CHECK(t.kind == LARDER_APT_RELEASE && !strcmp(t.suite, "bookworm") && t.prefix_len == 7 && !t.https);
    CHECK(map("deb.debian.org/debian/dists/bookworm/InRelease", 0, &t) == 0 && t.kind == LARDER_APT_RELEASE);
    CHECK(map("https/deb.debian.org/debian/dists/bookworm/Release.gpg", 0, &t) == 0 && t.https &&
          t.kind == LARDER_APT_RELEASE);
    CHECK(map("HTTP://Deb.Debian.Org:80/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", 1, &t) == 0 &&
          !strcmp(t.host, "deb.debian.org") && t.kind == LARDER_APT_POOL && t.prefix_len == 7);
    CHECK(map("http://127.0.0.1:8080/dists/stable/main/binary-amd64/Packages.xz", 1, &t) == 0 &&
          !strcmp(t.host, "127.0.0.1:8080") && t.kind == LARDER_APT_INDEX && t.prefix_len == 0 &&
          !strcmp(t.relpath, "main/binary-amd64/Packages.xz"));
    CHECK(map("http://h/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/abc", 1, &t) == 0 &&
          t.kind == LARDER_APT_BYHASH);
    CHECK(map("http://h/ubuntu/dists/jammy-updates/main/i18n/Translation-en.xz", 1, &t) == 0 &&
          t.kind == LARDER_APT_INDEX && !strcmp(t.suite, "jammy-updates"));
    /* apt writes '+' and '~' percent-encoded: same file */
    CHECK(map("http://h/debian/pool/main/j/jq/jq_1.6-2.1%2bdeb12u2_amd64.deb", 1, &t) == 0 &&
          !strcmp(t.path, "/debian/pool/main/j/jq/jq_1.6-2.1+deb12u2_amd64.deb"));
    /* refused */
    CHECK(map("http://h/etc/passwd", 1, &t) < 0);
    CHECK(map("http://h/debian/pool/../../etc/passwd", 1, &t) < 0);
    CHECK(map("http://h/debian/pool/main/%2e%2e/x.deb", 1, &t) < 0);
    CHECK(map("http://h/debian/dists/x%2fy/InRelease", 1, &t) < 0);
    CHECK(map("http://h/debian/dists/bookworm/InRelease?x=1", 1, &t) < 0);
    CHECK(map("http://h/debian//dists/bookworm/InRelease", 1, &t) < 0);
    CHECK(map("http://h/debian/dists/bookworm/", 1, &t) < 0);
    CHECK(map("ftp://h/debian/dists/bookworm/InRelease", 1, &t) < 0);
    CHECK(map("http://h", 1, &t) < 0);
    CHECK(map("http://h/debian/dists/bookworm/In Release", 1, &t) < 0);
    CHECK(map("http://h/debian/pool/main/a/%00.deb", 1, &t) < 0);
    CHECK(map("h/debian/pool/main/a/b.deb", 0, &t) == 0 && t.kind == LARDER_APT_POOL);
}

typedef struct rel_seen {
    int n;
    char path[8][128];
    char sha[8][65];
    unsigned long long size[8];
} rel_seen_t;

static void on_rel(void *ctx, const char *relpath, const char *sha, uint64_t size)
{
    rel_seen_t *r = ctx;
    if (r->n < 8) {
        snprintf(r->path[r->n], 128, "%s", relpath);
        snprintf(r->sha[r->n], 65, "%s", sha);
        r->size[r->n] = size;
    }
    r->n++;
}

#define H1 "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5"
#define H2 "1111111111111111111111111111111111111111111111111111111111111111"

static void test_release(void)
{
    static const char rel[] = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
                              "Origin: Debian\nSuite: stable\nCodename: bookworm\nAcquire-By-Hash: yes\n"
                              "Components: main\nMD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 main/binary-amd64/Packages\n"
                              "SHA256:\n " H1 "  8790396 main/binary-amd64/Packages.xz\n " H2
                              " 123 main/i18n/Translation-en.bz2\n"
                              "-----BEGIN PGP SIGNATURE-----\n\nxyz\n-----END PGP SIGNATURE-----\n";
    rel_seen_t r = {0};
    int by_hash = 0;
    CHECK(larder_apt_parse_release(rel, sizeof(rel) - 1, on_rel, &r, &by_hash) == 2);
    CHECK(by_hash == 1 && r.n == 2);
    CHECK(!strcmp(r.path[0], "main/binary-amd64/Packages.xz") && !strcmp(r.sha[0], H1) && r.size[0] == 8790396);
    CHECK(!strcmp(r.path[1], "main/i18n/Translation-en.bz2"));
    CHECK(larder_apt_parse_release("hello\nworld\n", 12, on_rel, &r, &by_hash) < 0);
}

static const char packages[] =
    "Package: app\nVersion: 1.0\nArchitecture: amd64\nDepends: libfoo (>= 1.2), mail-transport-agent | exim4, "
    "perl:any\nPre-Depends: dpkg (>= 1.15)\nFilename: pool/main/a/app/app_1.0_amd64.deb\nSize: 1000\nSHA256: " H1
    "\nDescription: an app\n with a long description\n\n"
    "Package: libfoo\nVersion: 1.3\nFilename: pool/main/libf/libfoo/libfoo_1.3_amd64.deb\nSHA256: " H2 "\n\n"
    "Package: postfix\nVersion: 3\nProvides: mail-transport-agent, default-mta (= 3)\nDepends: libfoo\n"
    "Filename: pool/main/p/postfix/postfix_3_amd64.deb\n\n"
    "Package: perl\nVersion: 5\nMulti-Arch: allowed\nFilename: pool/main/p/perl/perl_5_amd64.deb\n\n"
    "Package: lonely\nVersion: 1\nDepends: nothing-provides-this\nFilename: pool/main/l/lonely/lonely_1_amd64.deb\n";

typedef struct clos {
    int n;
    char names[32][64]; /* "name=version" */
    int missing;
    char miss[8][64];
    char why[8][400];
} clos_t;

static void on_clos(void *ctx, const char *package, const char *version, const char *filename, const char *sha256,
                    uint64_t size, int repo)
{
    (void)filename, (void)sha256, (void)size, (void)repo;
    clos_t *c = ctx;
    if (c->n < 32)
        snprintf(c->names[c->n], 64, "%s=%s", package, version);
    c->n++;
}

static void on_missing(void *ctx, const char *name, const char *needed_by, const char *why)
{
    (void)needed_by;
    clos_t *c = ctx;
    if (c->missing < 8) {
        snprintf(c->miss[c->missing], 64, "%s", name);
        snprintf(c->why[c->missing], 400, "%s", why ? why : "");
    }
    c->missing++;
}

/* the closure has package n (any version), or exactly "n=version" */
static int has(const clos_t *c, const char *n)
{
    size_t nl = strlen(n);
    for (int i = 0; i < c->n && i < 32; i++)
        if (!strcmp(c->names[i], n) || (!strchr(n, '=') && !strncmp(c->names[i], n, nl) && c->names[i][nl] == '='))
            return 1;
    return 0;
}

static void pk_count(void *ctx, const larder_apt_pkg_t *p)
{
    int *n = ctx;
    if (!strcmp(p->package, "app"))
        *n += p->size == 1000 && p->sha256 && !strcmp(p->sha256, H1) && p->pre_depends &&
              !strcmp(p->filename, "pool/main/a/app/app_1.0_amd64.deb");
}

static void test_packages_and_closure(void)
{
    int ok = 0;
    CHECK(larder_apt_parse_packages(packages, sizeof(packages) - 1, pk_count, &ok) == 5 && ok == 1);
    larder_apt_universe_t *u = larder_apt_universe_new();
    CHECK(larder_apt_universe_add(u, packages, sizeof(packages) - 1, 0) == 5);
    clos_t c = {0};
    char *names[] = {"app", "no-such-package"};
    long n = larder_apt_closure(u, names, 2, on_clos, on_missing, &c);
    /* app, libfoo, postfix (provides mail-transport-agent), perl; dpkg is missing (Pre-Depends) */
    CHECK(n == 4 && has(&c, "app") && has(&c, "libfoo") && has(&c, "postfix") && has(&c, "perl"));
    CHECK(c.missing == 2);
    clos_t c2 = {0};
    char *l[] = {"lonely"};
    CHECK(larder_apt_closure(u, l, 1, on_clos, on_missing, &c2) == 1 && c2.missing == 1 &&
          !strcmp(c2.miss[0], "nothing-provides-this"));
    larder_apt_universe_free(u);
}

/* two suites listing different versions of the same packages (the higher one sometimes in each) */
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
static const char suite_main[] =
    "Package: top\nVersion: 1.0\nArchitecture: amd64\n"
    "Pre-Depends: pre\n"
    "Depends: lib (>= 1:1.0-1+deb12u1), old (>= 5) | alt, gone | alt2, virt (>= 3), any:any, cut (<< 2.0)\n"
    "Filename: pool/t/top_1.0_amd64.deb\nSHA256: " SHA_A "\n\n"
    "Package: lib\nVersion: 1:1.0-1\nArchitecture: all\nFilename: pool/l/lib_1.0-1_all.deb\nSHA256: " SHA_A "\n\n"
    "Package: pre\nVersion: 2.0-1\nArchitecture: amd64\nFilename: pool/p/pre_2.0-1_amd64.deb\nSHA256: " SHA_A "\n\n"
    "Package: old\nVersion: 1.0\nArchitecture: all\nFilename: pool/o/old_1.0_all.deb\nSHA256: " SHA_A "\n\n"
    "Package: alt\nVersion: 1.0-1\nArchitecture: all\nFilename: pool/a/alt_1.0-1_all.deb\nSHA256: " SHA_A "\n\n"
    "Package: alt2\nVersion: 3\nArchitecture: all\nFilename: pool/a/alt2_3_all.deb\nSHA256: " SHA_A "\n\n"
    "Package: prov\nVersion: 3.0-1\nArchitecture: all\nProvides: virt (= 3.0)\n"
    "Filename: pool/p/prov_3.0-1_all.deb\nSHA256: " SHA_A "\n\n"
    "Package: unver\nVersion: 9\nArchitecture: all\nProvides: virt\nFilename: pool/u/unver_9_all.deb\nSHA256: " SHA_A
    "\n\n"
    "Package: any\nVersion: 1.0\nArchitecture: amd64\nMulti-Arch: allowed\nFilename: pool/a/any_1.0_amd64.deb\n"
    "SHA256: " SHA_C "\n\n"
    "Package: cut\nVersion: 1.9\nArchitecture: all\nFilename: pool/c/cut_1.9_all.deb\nSHA256: " SHA_A "\n\n"
    "Package: lib\nVersion: 9.0\nArchitecture: i386\nFilename: pool/l/lib_9.0_i386.deb\nSHA256: " SHA_A "\n";
static const char suite_updates[] =
    "Package: lib\nVersion: 1:1.0-1+deb12u1\nArchitecture: amd64\nFilename: pool/l/lib_1.0-1+deb12u1_amd64.deb\n"
    "SHA256: " SHA_B "\n\n"
    "Package: pre\nVersion: 2.0~rc1-1\nArchitecture: amd64\nFilename: pool/p/pre_2.0~rc1-1_amd64.deb\nSHA256: " SHA_B
    "\n\n"
    "Package: alt\nVersion: 1.0-2\nArchitecture: all\nFilename: pool/a/alt_1.0-2_all.deb\nSHA256: " SHA_B "\n\n"
    "Package: prov\nVersion: 2.9-1\nArchitecture: all\nProvides: virt\nFilename: pool/p/prov_2.9-1_all.deb\nSHA256: " SHA_B
    "\n\n"
    "Package: any\nVersion: 1.0\nArchitecture: amd64\nMulti-Arch: allowed\nFilename: pool/a/any_1.0_amd64.deb\n"
    "SHA256: " SHA_C "\n\n"
    "Package: cut\nVersion: 2.0\nArchitecture: all\nFilename: pool/c/cut_2.0_all.deb\nSHA256: " SHA_B "\n";

static void closure_of(const char *first, const char *second, const char *name, clos_t *c)
{
    larder_apt_universe_t *u = larder_apt_universe_new();
    larder_apt_universe_set_arch(u, "amd64");
    larder_apt_universe_add(u, first, strlen(first), 0);
    larder_apt_universe_add(u, second, strlen(second), 1);
    memset(c, 0, sizeof(*c));
    char *names[] = {(char *)name};
    larder_apt_closure(u, names, 1, on_clos, on_missing, c);
    larder_apt_universe_free(u);
}

static void test_candidates(void)
{
    for (int swap = 0; swap < 2; swap++) {
        clos_t c;
        closure_of(swap ? suite_updates : suite_main, swap ? suite_main : suite_updates, "top", &c);
        /* the highest version wins whichever index came first; i386 is not the native architecture */
        CHECK(has(&c, "lib=1:1.0-1+deb12u1") && !has(&c, "lib=1:1.0-1") && !has(&c, "lib=9.0"));
        CHECK(has(&c, "pre=2.0-1") && !has(&c, "pre=2.0~rc1-1"));
        /* old's candidate (1.0) does not satisfy old (>= 5): the alternative alt, at its candidate */
        CHECK(!has(&c, "old") && has(&c, "alt=1.0-2") && !has(&c, "alt=1.0-1"));
        /* the first alternative exists nowhere: the second */
        CHECK(has(&c, "alt2=3"));
        /* virt (>= 3): only prov 3.0-1's versioned Provides satisfies it, not unver's unversioned one */
        CHECK(has(&c, "prov=3.0-1") && !has(&c, "prov=2.9-1") && !has(&c, "unver"));
        /* the same version with the same bytes in both suites: once */
        int nany = 0;
        for (int i = 0; i < c.n; i++)
            nany += !strncmp(c.names[i], "any=", 4);
        CHECK(nany == 1 && has(&c, "any=1.0"));
        /* cut (<< 2.0): the candidate is 2.0, which apt would take and then fail on: pinned, and reported */
        CHECK(has(&c, "cut=2.0") && !has(&c, "cut=1.9"));
        CHECK(c.missing == 1 && !strcmp(c.miss[0], "cut") && strstr(c.why[0], "needed by top 1.0") &&
              strstr(c.why[0], "cut (<< 2.0)") && strstr(c.why[0], "the candidate of cut is 2.0"));
        CHECK(c.n == 8);
    }
}

static void test_providers_and_variants(void)
{
    static const char a[] =
        "Package: app\nVersion: 1\nDepends: mta, perl:any, shell\nFilename: pool/app_1.deb\nSHA256: " SHA_A "\n\n"
        "Package: postfix\nVersion: 3\nPriority: optional\nProvides: mta, sendmail\nFilename: pool/postfix_3.deb\n\n"
        "Package: exim4\nVersion: 4\nPriority: standard\nProvides: mta\nFilename: pool/exim4_4.deb\n\n"
        "Package: perl\nVersion: 5\nFilename: pool/perl_5.deb\n\n"
        "Package: zsh\nVersion: 5\nProvides: shell\nFilename: pool/zsh_5.deb\n\n"
        "Package: dash\nVersion: 0.5\nEssential: yes\nPriority: required\nProvides: shell\nFilename: pool/dash.deb\n\n"
        "Package: dup\nVersion: 1.0\nFilename: pool/one/dup_1.0.deb\nSHA256: " SHA_A "\n";
    static const char b[] = "Package: dup\nVersion: 1.0\nFilename: pool/two/dup_1.0.deb\nSHA256: " SHA_B "\n\n"
                            "Package: dup\nVersion: 1.0-0\nFilename: pool/three/dup_1.0.deb\nSHA256: " SHA_B "\n";
    clos_t c;
    closure_of(a, b, "app", &c);
    /* several providers: the higher Priority (Essential first) */
    CHECK(has(&c, "exim4") && !has(&c, "postfix") && has(&c, "dash") && !has(&c, "zsh"));
    /* perl:any, perl not Multi-Arch: allowed: apt cannot satisfy it; the candidate is pinned and it is reported */
    CHECK(has(&c, "perl") && c.missing == 1 && strstr(c.why[0], "perl:any"));
    /* a top-level virtual name with several providers: apt refuses to choose */
    closure_of(a, b, "mta", &c);
    CHECK(c.n == 0 && c.missing == 1 && strstr(c.why[0], "postfix") && strstr(c.why[0], "exim4"));
    closure_of(a, b, "shell", &c);
    CHECK(c.n == 0 && c.missing == 1 && strstr(c.why[0], "zsh") && strstr(c.why[0], "dash"));
    /* ... with one provider it takes that one */
    closure_of(a, b, "sendmail", &c);
    CHECK(c.n == 1 && c.missing == 0 && has(&c, "postfix=3"));
    /* the same version with other bytes in another suite: both files, once each (1.0 and 1.0-0 are equal) */
    closure_of(a, b, "dup", &c);
    CHECK(c.n == 2 && c.missing == 0);
}

static void test_decompress(void)
{
    size_t n;
    char *p = larder_apt_decompress(packages, sizeof(packages) - 1, 1 << 20, &n);
    CHECK(p && n == sizeof(packages) - 1 && !memcmp(p, packages, n));
    free(p);
    /* gzip */
    unsigned char gz[4096];
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)(uintptr_t)packages;
    z.avail_in = sizeof(packages) - 1;
    z.next_out = gz;
    z.avail_out = sizeof(gz);
    deflate(&z, Z_FINISH);
    size_t gzlen = sizeof(gz) - z.avail_out;
    deflateEnd(&z);
    p = larder_apt_decompress((const char *)gz, gzlen, 1 << 20, &n);
    CHECK(p && n == sizeof(packages) - 1 && !memcmp(p, packages, n));
    free(p);
    /* xz */
    unsigned char xz[4096];
    size_t xzlen = 0;
    CHECK(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, (const uint8_t *)packages, sizeof(packages) - 1, xz,
                                  &xzlen, sizeof(xz)) == LZMA_OK);
    p = larder_apt_decompress((const char *)xz, xzlen, 1 << 20, &n);
    CHECK(p && n == sizeof(packages) - 1 && !memcmp(p, packages, n));
    free(p);
    /* the size cap holds, and truncated input is refused */
    CHECK(larder_apt_decompress((const char *)xz, xzlen, 100, &n) == NULL);
    CHECK(larder_apt_decompress((const char *)gz, gzlen / 2, 1 << 20, &n) == NULL);
}

int main(void)
{
    test_map();
    test_release();
    test_packages_and_closure();
    test_candidates();
    test_providers_and_variants();
    test_decompress();
    if (failures) {
        fprintf(stderr, "test_apt: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_apt: ok\n");
    return 0;
}
