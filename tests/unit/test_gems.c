/* test_gems.c - gem server paths, the compact index /info format, Gemfile.lock reading and seed references. */
#include "gems.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int route(const char *p, char *arg)
{
    const char *err;
    return larder_gems_route(p, strlen(p), arg, 256, &err);
}

static void test_route(void)
{
    char a[256];
    CHECK(route("versions", a) == LARDER_GEMS_VERSIONS);
    CHECK(route("names", a) == LARDER_GEMS_NAMES);
    CHECK(route("info/rails", a) == LARDER_GEMS_INFO && !strcmp(a, "rails"));
    CHECK(route("info/net-http_persistent", a) == LARDER_GEMS_INFO);
    CHECK(route("specs.4.8.gz", a) == LARDER_GEMS_SPECS && route("latest_specs.4.8.gz", a) == LARDER_GEMS_SPECS &&
          route("prerelease_specs.4.8.gz", a) == LARDER_GEMS_SPECS);
    CHECK(route("quick/Marshal.4.8/rails-7.1.2.gemspec.rz", a) == LARDER_GEMS_GEMSPEC && !strcmp(a, "rails-7.1.2"));
    CHECK(route("gems/nokogiri-1.15.4-x86_64-linux.gem", a) == LARDER_GEMS_GEM &&
          !strcmp(a, "nokogiri-1.15.4-x86_64-linux"));
    CHECK(route("api/v1/dependencies", a) == LARDER_GEMS_DEPENDENCIES);
    CHECK(route("info/../etc/passwd", a) < 0);
    CHECK(route("gems/..gem", a) < 0);
    CHECK(route("gems/a/b.gem", a) < 0);
    CHECK(route("info/", a) < 0);
    CHECK(route("gems/x.tar", a) < 0);
    CHECK(route("", a) < 0);
}

typedef struct seen {
    int n;
    char v[4][32], plat[4][32], sha[4][65];
} seen_t;

static void on_v(void *ctx, const char *version, const char *platform, const char *sha)
{
    seen_t *s = ctx;
    if (s->n < 4) {
        snprintf(s->v[s->n], 32, "%s", version);
        snprintf(s->plat[s->n], 32, "%s", platform ? platform : "-");
        snprintf(s->sha[s->n], 65, "%s", sha ? sha : "-");
    }
    s->n++;
}

#define H "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_info(void)
{
    static const char info[] = "---\n"
                               "1.0.0 |checksum:" H "\n"
                               "1.1.0 racc:~> 1.4,mini_portile2:>= 2.8&< 3|checksum:" H ",ruby:>= 2.7\n"
                               "1.1.0-x86_64-linux racc:~> 1.4|checksum:" H ",ruby:>= 2.7,rubygems:>= 3.3\n"
                               "2.0.0 |ruby:>= 3\n";
    seen_t s = {0};
    CHECK(larder_gems_parse_info(info, sizeof(info) - 1, on_v, &s) == 4);
    CHECK(!strcmp(s.v[0], "1.0.0") && !strcmp(s.sha[0], H) && !strcmp(s.plat[0], "-"));
    CHECK(!strcmp(s.v[2], "1.1.0") && !strcmp(s.plat[2], "x86_64-linux") && !strcmp(s.sha[2], H));
    CHECK(!strcmp(s.v[3], "2.0.0") && !strcmp(s.sha[3], "-"));
    CHECK(larder_gems_parse_info("<html>", 6, on_v, &s) < 0);
}

static void count_unseedable(void *ctx, const char *what, const char *why, int failed)
{
    int *counts = ctx;
    counts[failed ? 1 : 0]++;
    CHECK(failed ? strstr(what, "y (0.1)") && strstr(why, "git") : strstr(what, "mine (0.2)") != NULL);
}

static void test_lockfile(void)
{
    static const char lock[] = "GIT\n  remote: https://github.com/x/y.git\n  specs:\n    y (0.1)\n\n"
                               "GEM\n  remote: https://rubygems.org/\n  specs:\n"
                               "    actionpack (7.1.2)\n      rack (>= 2.2.4)\n"
                               "    nokogiri (1.15.4-x86_64-linux)\n      racc (~> 1.4)\n"
                               "    rack (3.0.8)\n    racc (1.7.3)\n\n"
                               "PLATFORMS\n  x86_64-linux\n\nDEPENDENCIES\n  actionpack\n\nBUNDLED WITH\n   2.4.10\n";
    char **lines, err[200];
    long n = larder_gems_lockfile_lines(lock, sizeof(lock) - 1, &lines, err, sizeof(err));
    CHECK(n == 4);
    if (n == 4) {
        CHECK(!strcmp(lines[0], "actionpack:7.1.2"));
        CHECK(!strcmp(lines[1], "nokogiri:1.15.4-x86_64-linux"));
        CHECK(!strcmp(lines[3], "racc:1.7.3"));
    }
    for (long i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    CHECK(larder_gems_lockfile_lines("hello\n", 6, &lines, err, sizeof(err)) < 0);
    /* GIT specs are failures, PATH specs local; neither becomes a line */
    static const char lock2[] = "PATH\n  remote: engines/mine\n  specs:\n    mine (0.2)\n      rack\n\n";
    char both[sizeof(lock) + sizeof(lock2)];
    snprintf(both, sizeof(both), "%s%s", lock2, lock);
    int counts[2] = {0, 0};
    n = larder_gems_lockfile_lines_ex(both, strlen(both), &lines, count_unseedable, counts, err, sizeof(err));
    CHECK(n == 4 && counts[1] == 1 && counts[0] == 1);
    for (long i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static void test_ref(void)
{
    char n[256], v[128], err[300];
    CHECK(larder_gems_parse_seed_ref("rails:7.1.2", n, sizeof(n), v, sizeof(v), err, sizeof(err)) == 0 &&
          !strcmp(n, "rails") && !strcmp(v, "7.1.2"));
    CHECK(larder_gems_parse_seed_ref("nokogiri (1.15.4-x86_64-linux)", n, sizeof(n), v, sizeof(v), err,
                                     sizeof(err)) == 0 &&
          !strcmp(n, "nokogiri") && !strcmp(v, "1.15.4-x86_64-linux"));
    CHECK(larder_gems_parse_seed_ref("rails", n, sizeof(n), v, sizeof(v), err, sizeof(err)) < 0);
    CHECK(larder_gems_parse_seed_ref("rails:~> 7", n, sizeof(n), v, sizeof(v), err, sizeof(err)) < 0);
    CHECK(larder_gems_parse_seed_ref("../x:1", n, sizeof(n), v, sizeof(v), err, sizeof(err)) < 0);
}

int main(void)
{
    test_route();
    test_info();
    test_lockfile();
    test_ref();
    if (failures) {
        fprintf(stderr, "test_gems: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_gems: ok\n");
    return 0;
}
