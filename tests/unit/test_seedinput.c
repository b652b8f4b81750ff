/* test_seedinput.c - finding the kind of a raw seed body (seedinput.c with the real modules' detectors), the text
 * helpers line expanders share, and the yarn.lock reader. */
#include "check.h"
#include "module.h"
#include "npm.h"
#include "seedinput.h"

#include <stdlib.h>
#include <string.h>

#define CHECK_STR(a, b)                                                                                                \
    do {                                                                                                               \
        const char *a_ = (a), *b_ = (b);                                                                               \
        if (strcmp(a_, b_) != 0) {                                                                                     \
            fprintf(stderr, "%s:%d: '%s' != '%s'\n", __FILE__, __LINE__, a_, b_);                                      \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

static const char *detect(const char *text, int *rc)
{
    const char *kind = NULL;
    static char msg[512]; /* returned */
    *rc = larder_seed_input_detect(text, strlen(text), &kind, msg, sizeof(msg));
    return *rc == 0 ? kind : msg;
}

static void t_detect(void)
{
    int rc;
    CHECK_STR(detect("pin_set: x\nfiles:\n  - a\n", &rc), "spec");
    CHECK_STR(detect("pin_set: x\nfiles: [oops\n", &rc), "spec"); /* broken, but meant as a spec */
    CHECK_STR(detect("requests==2.31.0 \\\n    --hash=sha256:abc\nflask>=3\n# c\n\n", &rc), "requirements");
    CHECK_STR(detect("{\n  \"name\": \"app\",\n  \"lockfileVersion\": 3,\n  \"packages\": {}\n}\n", &rc),
              "package-lock");
    CHECK_STR(detect("# yarn lockfile v1\n\nlodash@^4:\n  version \"4.17.21\"\n", &rc), "yarn-lock");
    CHECK_STR(detect("GEM\n  remote: https://rubygems.org/\n  specs:\n    rake (13.0.6)\n", &rc), "gemfile-lock");
    CHECK_STR(detect("nginx:1.25\nghcr.io/org/tool:2\n", &rc), "images");
    CHECK_STR(detect("github.com/openedx/edx-platform master\n", &rc), "git");
    CHECK_STR(detect("https://example.org/a.tar.gz\nhttp://example.org/b.bin 0123\n", &rc), "urls");
    CHECK_STR(detect("deb [arch=amd64] http://deb.debian.org/debian bookworm main\ncurl\nlibssl3=3.0.11-1\n", &rc),
              "apt");
    CHECK_STR(detect("curl=7.88.1-10\nzlib1g:arm64\n", &rc), "apt");
    const char *m = detect("curl\nwget\n", &rc);
    CHECK(rc == -2);
    CHECK(strstr(m, "requirements") && strstr(m, "images") && strstr(m, "apt") && strstr(m, "kind="));
    m = detect("%%% what is this\n", &rc);
    CHECK(rc == -1 && strstr(m, "kind="));
}

static void t_lines(void)
{
    const char *t = "a\n  b # note\n#c\n\nd\n";
    CHECK(larder_text_line_of(t, strlen(t), "d") == 5);
    CHECK(larder_text_line_of(t, strlen(t), "zz") == 0);
}

static void t_yarn(void)
{
    const char *y = "# yarn lockfile v1\n\n"
                    "\"@scope/a@^1.0.0\", \"@scope/a@^1.1.0\":\n"
                    "  version \"1.1.0\"\n"
                    "  resolved \"https://registry.yarnpkg.com/@scope/a/-/a-1.1.0.tgz#abc\"\n"
                    "  integrity sha512-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"
                    "  dependencies:\n"
                    "    b \"^2\"\n\n"
                    "b@^2:\n  version \"2.0.1\"\n  resolved \"https://registry.yarnpkg.com/b/-/b-2.0.1.tgz\"\n\n"
                    "alias@npm:real@^3:\n  version \"3.0.0\"\n  resolved \"https://r.example/real/-/real-3.0.0.tgz\"\n\n"
                    "g@github:x/g:\n  version \"1.0.0\"\n  resolved \"https://codeload.github.com/x/g/tar.gz/abc\"\n\n"
                    "l@file:../l:\n  version \"0.0.0\"\n";
    char **lines, err[300];
    unsigned errline = 9;
    long n = larder_npm_yarnlock_lines(y, strlen(y), &lines, NULL, NULL, &errline, err, sizeof(err));
    CHECK(n == 3);
    if (n == 3) {
        CHECK_STR(lines[0], "@scope/a@1.1.0 sha512-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==");
        CHECK_STR(lines[1], "b@2.0.1");
        CHECK_STR(lines[2], "real@3.0.0");
    }
    for (long i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    const char *bad = "# yarn lockfile v1\n\na@^1:\n  version \"1.0.0\"\nnot a header\n";
    CHECK(larder_npm_yarnlock_lines(bad, strlen(bad), &lines, NULL, NULL, &errline, err, sizeof(err)) == -1);
    CHECK(errline == 5);
    CHECK(strncmp(err, "line 5:", 7) == 0);
}

int main(void)
{
    t_detect();
    t_lines();
    t_yarn();
    if (failures) {
        fprintf(stderr, "test_seedinput: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_seedinput: ok\n");
    return 0;
}
