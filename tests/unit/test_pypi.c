/* test_pypi.c - PEP 503 names, Accept negotiation, URL resolution, page rewriting (HTML and JSON both ways),
 * wheel/sdist filenames and tag matching, requirement lines. */
#include "pypi.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char *norm(const char *in)
{
    static char out[256];
    return larder_pypi_normalize(in, strlen(in), out, sizeof(out)) == 0 ? out : NULL;
}

static const char *resolve(const char *base, const char *ref)
{
    static char out[1024];
    char *frag;
    char *r = larder_url_resolve(base, ref, strlen(ref), &frag);
    snprintf(out, sizeof(out), "%s%s%s", r ? r : "(null)", frag ? "#" : "", frag ? frag : "");
    free(r);
    free(frag);
    return out;
}

typedef struct seen {
    int n;
    char urls[8][256];
    char sha[8][65];
    char meta[8][65];
} seen_t;

static void on_file(void *ctx, const larder_pypi_file_t *f)
{
    seen_t *s = ctx;
    if (s->n >= 8)
        return;
    snprintf(s->urls[s->n], 256, "%s", f->url);
    snprintf(s->sha[s->n], 65, "%s", f->sha256 ? f->sha256 : "-");
    snprintf(s->meta[s->n], 65, "%s", f->meta_sha256 ? f->meta_sha256 : (f->has_meta ? "yes" : "-"));
    s->n++;
}

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"

/* both directions with the rarer attributes: other hash names, gpg-sig, yanked without a reason, metadata
 * without a hash; and the stored JSON rendered as HTML */
static void test_conversions(void)
{
    static const char html[] =
        "<html><body>\n"
        "<a href=\"https://f.example/x-1.0.tar.gz#md5=0123456789abcdef0123456789abcdef\" data-gpg-sig=\"true\" "
        "data-yanked data-dist-info-metadata=\"true\">x-1.0.tar.gz</a>\n"
        "<a href=\"https://f.example/x-1.1.tar.gz#sha256=" H1 "\" data-gpg-sig=\"false\" "
        "data-core-metadata=\"false\" data-dist-info-metadata=\"sha256=" H2 "\">\n  x-1.1.tar.gz\n</a>\n"
        "<a href=\"mailto:someone@example\">not a file</a>\n"
        "</body></html>\n";
    larder_pypi_buf_t out = {0};
    char err[256];
    seen_t s = {0};
    CHECK(larder_pypi_rewrite_page("http://up/simple/x/", "x", 0, html, sizeof(html) - 1, LARDER_PYPI_JSON, &out,
                                   on_file, &s, err, sizeof(err)) == 0);
    CHECK(s.n == 2);
    CHECK(out.p && strstr(out.p, "\"hashes\":{\"md5\":\"0123456789abcdef0123456789abcdef\"}"));
    CHECK(out.p && strstr(out.p, "\"gpg-sig\":true") && strstr(out.p, "\"gpg-sig\":false"));
    CHECK(out.p && strstr(out.p, "\"yanked\":true"));
    CHECK(out.p && strstr(out.p, "\"core-metadata\":true"));
    /* data-core-metadata wins over the older attribute (PEP 714) */
    CHECK(strcmp(s.meta[1], "-") == 0);
    CHECK(out.p && strstr(out.p, "\"filename\":\"x-1.1.tar.gz\""));
    CHECK(out.p && !strstr(out.p, "dist-info-metadata") && !strstr(out.p, "mailto"));
    size_t hl = 0;
    char *h = out.p ? larder_pypi_render_html(out.p, out.len, &hl) : NULL;
    CHECK(h && hl == strlen(h));
    CHECK(h && strstr(h, "<a href=\"../../files/x/https/f.example/x-1.0.tar.gz#md5=0123456789abcdef0123456789abcdef\" "
                         "data-yanked=\"\" data-gpg-sig=\"true\" data-core-metadata=\"true\" "
                         "data-dist-info-metadata=\"true\">x-1.0.tar.gz</a>"));
    CHECK(h && strstr(h, "<a href=\"../../files/x/https/f.example/x-1.1.tar.gz#sha256=" H1 "\" data-gpg-sig=\"false\">"));
    CHECK(h && strstr(h, "<meta name=\"pypi:repository-version\" content=\"1.0\">"));
    free(h);
    free(out.p);

    /* JSON 1.1 upstream: version kept; yanked reason and requires-python escaped in HTML; an old stored page whose
     * url still has a fragment gets exactly one */
    static const char json[] =
        "{\"meta\":{\"api-version\":\"1.1\"},\"name\":\"x\",\"files\":[{\"filename\":\"x-2.0-py3-none-any.whl\","
        "\"url\":\"../../files/x/https/f.example/x-2.0-py3-none-any.whl#sha256=" H2 "\",\"hashes\":{\"sha256\":\"" H1
        "\"},\"requires-python\":\">=3.8,<4\",\"yanked\":\"bad \\\"quote\\\" & <tag>\",\"core-metadata\":{\"sha256\":\"" H2
        "\"},\"size\":10}]}";
    h = larder_pypi_render_html(json, sizeof(json) - 1, &hl);
    CHECK(h && strstr(h, "content=\"1.1\""));
    CHECK(h && strstr(h, "href=\"../../files/x/https/f.example/x-2.0-py3-none-any.whl#sha256=" H1 "\""));
    CHECK(h && strstr(h, "data-requires-python=\"&gt;=3.8,&lt;4\""));
    CHECK(h && strstr(h, "data-yanked=\"bad &quot;quote&quot; &amp; &lt;tag&gt;\""));
    CHECK(h && strstr(h, "data-core-metadata=\"sha256=" H2 "\" data-dist-info-metadata=\"sha256=" H2 "\""));
    free(h);
    CHECK(larder_pypi_render_html("{\"x\":1}", 7, &hl) == NULL || hl == 0);
    CHECK(larder_pypi_render_html("<html>", 6, &hl) == NULL);

    /* the project list, both ways */
    static const char idx[] = "<html><body><a href=\"/simple/foo-bar/\">\n Foo.Bar\n</a>"
                              "<a href=\"/simple/x/\">x &amp; y</a><a href=\"/simple/zope-interface/\">zope.interface</a>"
                              "<a>no-href</a></body></html>";
    out = (larder_pypi_buf_t){0};
    CHECK(larder_pypi_rewrite_index(0, idx, sizeof(idx) - 1, &out, err, sizeof(err)) == 0);
    CHECK(out.p && strcmp(out.p, "{\"meta\":{\"api-version\":\"1.0\"},\"projects\":[{\"name\":\"Foo.Bar\"},"
                                 "{\"name\":\"zope.interface\"}]}") == 0);
    h = out.p ? larder_pypi_render_html(out.p, out.len, &hl) : NULL;
    CHECK(h && strstr(h, "<a href=\"foo-bar/\">Foo.Bar</a>") && strstr(h, "<a href=\"zope-interface/\">zope.interface</a>"));
    free(h);
    free(out.p);
    static const char idxj[] = "{\"meta\":{\"api-version\":\"1.1\"},\"projects\":[{\"name\":\"Alpha\"},{\"name\":1},"
                               "{\"name\":\"../etc\"},{\"nom\":\"x\"},{\"name\":\"b_c\",\"_private\":1}]}";
    out = (larder_pypi_buf_t){0};
    CHECK(larder_pypi_rewrite_index(1, idxj, sizeof(idxj) - 1, &out, err, sizeof(err)) == 0);
    CHECK(out.p && strcmp(out.p, "{\"meta\":{\"api-version\":\"1.0\"},\"projects\":[{\"name\":\"Alpha\"},"
                                 "{\"name\":\"b_c\"}]}") == 0);
    free(out.p);
    out = (larder_pypi_buf_t){0};
    CHECK(larder_pypi_rewrite_index(1, "<html>", 6, &out, err, sizeof(err)) < 0 && strstr(err, "projects"));
    CHECK(larder_pypi_rewrite_index(1, "{\"projects\":{}}", 15, &out, err, sizeof(err)) < 0);
    free(out.p);
}

static void test_rewrite(void)
{
    static const char html[] =
        "<!DOCTYPE html><html><body><h1>Links for demo</h1>\n"
        "<a href=\"../../packages/demo-1.0-py3-none-any.whl#sha256=" H1 "\" data-requires-python=\"&gt;=3.8\" "
        "data-dist-info-metadata=\"sha256=" H2 "\" data-core-metadata=\"sha256=" H2 "\">demo-1.0-py3-none-any.whl</a><br/>\n"
        "<A HREF='https://files.example/p/demo-1.0.tar.gz?x=1&amp;y=2#sha256=" H2 "' data-yanked=\"bad &amp; broken\">"
        "demo-1.0.tar.gz</A>\n"
        "<a href=/abs/demo-0.9.zip>demo-0.9.zip</a>\n"
        "</body></html>\n";
    larder_pypi_buf_t out = {0};
    seen_t s = {0};
    char err[256];
    CHECK(larder_pypi_rewrite_page("http://up.example:8080/simple/demo/", "demo", 0, html, sizeof(html) - 1,
                                   LARDER_PYPI_HTML, &out, on_file, &s, err, sizeof(err)) == 0);
    CHECK(s.n == 3);
    CHECK(strcmp(s.urls[0], "http://up.example:8080/packages/demo-1.0-py3-none-any.whl") == 0);
    CHECK(strcmp(s.sha[0], H1) == 0 && strcmp(s.meta[0], H2) == 0);
    CHECK(strcmp(s.urls[1], "https://files.example/p/demo-1.0.tar.gz?x=1&y=2") == 0);
    CHECK(strcmp(s.sha[1], H2) == 0);
    CHECK(strcmp(s.urls[2], "http://up.example:8080/abs/demo-0.9.zip") == 0);
    CHECK(out.p && strstr(out.p, "href=\"../../files/demo/http/up.example:8080/packages/demo-1.0-py3-none-any.whl#sha256=" H1 "\""));
    CHECK(out.p && strstr(out.p, "data-requires-python=\"&gt;=3.8\""));
    CHECK(out.p && strstr(out.p, "data-core-metadata=\"sha256=" H2 "\""));
    CHECK(out.p && strstr(out.p, "../../files/demo/https/files.example/p/demo-1.0.tar.gz?x=1&amp;y=2#sha256=" H2));
    CHECK(out.p && strstr(out.p, "data-yanked=\"bad &amp; broken\""));
    CHECK(out.p && !strstr(out.p, "up.example:8080/simple"));
    free(out.p);

    /* HTML upstream, JSON out */
    out = (larder_pypi_buf_t){0};
    CHECK(larder_pypi_rewrite_page("http://up.example:8080/simple/demo/", "demo", 0, html, sizeof(html) - 1,
                                   LARDER_PYPI_JSON, &out, NULL, NULL, err, sizeof(err)) == 0);
    /* PEP 691: the hash goes into "hashes", the url carries no fragment */
    CHECK(out.p && strstr(out.p, "\"url\":\"../../files/demo/http/up.example:8080/packages/demo-1.0-py3-none-any.whl\""));
    CHECK(out.p && !strstr(out.p, "#sha256="));
    CHECK(out.p && strstr(out.p, "\"hashes\":{\"sha256\":\"" H1 "\"}"));
    CHECK(out.p && strstr(out.p, "\"meta\":{\"api-version\":\"1.0\"}") && strstr(out.p, "\"name\":\"demo\""));
    CHECK(out.p && strstr(out.p, "\"url\":\"../../files/demo/http/up.example:8080/abs/demo-0.9.zip\",\"filename\":"
                                 "\"demo-0.9.zip\",\"hashes\":{}"));
    CHECK(out.p && strstr(out.p, "\"requires-python\":\">=3.8\""));
    CHECK(out.p && strstr(out.p, "\"yanked\":\"bad & broken\""));
    CHECK(out.p && strstr(out.p, "\"core-metadata\":{\"sha256\":\"" H2 "\"}"));
    CHECK(out.p && strstr(out.p, "\"filename\":\"demo-1.0.tar.gz\""));
    free(out.p);

    /* JSON upstream: fields kept, url rewritten; and JSON -> HTML */
    static const char json[] =
        "{\"meta\":{\"api-version\":\"1.1\"},\"name\":\"demo\",\"versions\":[\"1.0\"],\"files\":["
        "{\"filename\":\"demo-1.0-py3-none-any.whl\",\"url\":\"https://files.example/demo-1.0-py3-none-any.whl\","
        "\"hashes\":{\"sha256\":\"" H1 "\"},\"requires-python\":\">=3.8\",\"yanked\":false,"
        "\"core-metadata\":{\"sha256\":\"" H2 "\"},\"size\":1234,\"upload-time\":\"2024-01-01T00:00:00Z\"}]}";
    out = (larder_pypi_buf_t){0};
    s = (seen_t){0};
    CHECK(larder_pypi_rewrite_page("http://up.example/simple/demo/", "demo", 1, json, sizeof(json) - 1,
                                   LARDER_PYPI_JSON, &out, on_file, &s, err, sizeof(err)) == 0);
    CHECK(s.n == 1 && strcmp(s.urls[0], "https://files.example/demo-1.0-py3-none-any.whl") == 0);
    CHECK(strcmp(s.meta[0], H2) == 0);
    CHECK(out.p && strstr(out.p, "\"url\":\"../../files/demo/https/files.example/demo-1.0-py3-none-any.whl\""));
    CHECK(out.p && strstr(out.p, "\"size\":1234") && strstr(out.p, "\"upload-time\"") && strstr(out.p, "\"versions\""));
    free(out.p);
    out = (larder_pypi_buf_t){0};
    CHECK(larder_pypi_rewrite_page("http://up.example/simple/demo/", "demo", 1, json, sizeof(json) - 1,
                                   LARDER_PYPI_HTML, &out, NULL, NULL, err, sizeof(err)) == 0);
    CHECK(out.p && strstr(out.p, "href=\"../../files/demo/https/files.example/demo-1.0-py3-none-any.whl#sha256=" H1 "\""));
    CHECK(out.p && strstr(out.p, "data-requires-python=\"&gt;=3.8\""));
    free(out.p);

    test_conversions();

    /* not a project page */
    out = (larder_pypi_buf_t){0};
    CHECK(larder_pypi_rewrite_page("http://u/simple/d/", "d", 1, "[1,2]", 5, LARDER_PYPI_JSON, &out, NULL, NULL, err,
                                   sizeof(err)) < 0);
    free(out.p);
}

/* failures count 1, local lines 100 */
static void count_unseedable(void *ctx, const char *line, const char *why, int failed)
{
    int *n = ctx;
    *n += failed ? 1 : 100;
    if (failed && strstr(line, "git+"))
        CHECK(strstr(why, "cannot seed git sources") != NULL);
}

int main(void)
{
    CHECK(norm("Django") && strcmp(norm("Django"), "django") == 0);
    CHECK(norm("Foo__Bar.-baz") && strcmp(norm("Foo__Bar.-baz"), "foo-bar-baz") == 0);
    CHECK(norm("zope.interface") && strcmp(norm("zope.interface"), "zope-interface") == 0);
    CHECK(norm("-x") && strcmp(norm("-x"), "x") == 0);
    CHECK(norm("a/b") == NULL && norm("") == NULL && norm("..") == NULL && norm("a b") == NULL);

    int legacy;
#define NEG(s) larder_pypi_negotiate(s, strlen(s), &legacy)
    CHECK(larder_pypi_negotiate(NULL, 0, &legacy) == LARDER_PYPI_HTML && legacy);
    CHECK(NEG("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01") ==
          LARDER_PYPI_JSON);
    CHECK(NEG("text/html") == LARDER_PYPI_HTML && legacy);
    CHECK(NEG("application/vnd.pypi.simple.v1+html") == LARDER_PYPI_HTML && !legacy);
    CHECK(NEG("application/vnd.pypi.simple.v1+json;q=0.2, text/html;q=0.5") == LARDER_PYPI_HTML && legacy);
    CHECK(NEG("application/vnd.pypi.simple.v1+json;q=0") == -1);
    CHECK(NEG("application/json") == -1);
    CHECK(NEG("*/*") == LARDER_PYPI_HTML && legacy);
    CHECK(NEG("") == LARDER_PYPI_HTML && legacy);
    CHECK(NEG("application/vnd.pypi.simple.latest+json") == LARDER_PYPI_JSON);
    CHECK(NEG("application/vnd.pypi.simple.latest+html") == LARDER_PYPI_HTML && !legacy);
    CHECK(NEG("Application/Vnd.Pypi.Simple.V1+JSON") == LARDER_PYPI_JSON);
    CHECK(NEG("application/*") == LARDER_PYPI_JSON);
    CHECK(NEG("text/*") == LARDER_PYPI_HTML && legacy);
    /* uv and pip 23 */
    CHECK(NEG("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01") ==
          LARDER_PYPI_JSON);
    /* a more specific range overrides a wildcard, also with q=0 */
    CHECK(NEG("*/*;q=0.5, text/html;q=0") == LARDER_PYPI_JSON);
    CHECK(NEG("text/html;q=0.5, */*;q=0.9") == LARDER_PYPI_JSON);
    CHECK(NEG("text/html, */*;q=0.9") == LARDER_PYPI_HTML && legacy);
    CHECK(NEG("application/vnd.pypi.simple.v1+json;q=0.5, application/vnd.pypi.simple.v1+html;q=0.5") == LARDER_PYPI_JSON);
    CHECK(NEG("application/vnd.pypi.simple.v1+json;q=0.4, application/vnd.pypi.simple.v1+html;q=0.5") == LARDER_PYPI_HTML &&
          !legacy);
    CHECK(NEG("application/vnd.pypi.simple.v1+json ; q=1.0 ; charset=utf-8") == LARDER_PYPI_JSON);
    CHECK(NEG("application/vnd.pypi.simple.v1+json;q=abc") == -1);
    CHECK(NEG("application/vnd.pypi.simple.v1+json;q=2") == -1);
    CHECK(NEG("image/png, application/vnd.pypi.simple.v2+json") == -1);
    CHECK(NEG(",,, ;q=1") == LARDER_PYPI_HTML); /* no media range at all: as no header */

    CHECK(strcmp(resolve("http://h/simple/p/", "../../packages/x.whl#sha256=ab"), "http://h/packages/x.whl#sha256=ab") == 0);
    CHECK(strcmp(resolve("http://h/simple/p/", "/a/./b/../x.whl"), "http://h/a/x.whl") == 0);
    CHECK(strcmp(resolve("https://h:1/simple/p/", "//cdn/x"), "https://cdn/x") == 0);
    CHECK(strcmp(resolve("http://h/simple/p/", "x.whl"), "http://h/simple/p/x.whl") == 0);
    CHECK(strcmp(resolve("http://h/simple/p/", "https://f/a/../../b"), "https://f/b") == 0);
    CHECK(strcmp(resolve("http://h/simple/p/", "../../../../../etc"), "http://h/etc") == 0);
    CHECK(strcmp(resolve("http://h/simple/p/", "mailto:a@b"), "mailto:a@b") == 0);
    CHECK(strcmp(resolve("http://h/simple/p/", "HTTPS://h2/x.whl"), "https://h2/x.whl") == 0);

    larder_pypi_dist_t d;
    CHECK(larder_pypi_parse_filename("Django-4.2.7-py3-none-any.whl", &d) == 0 && d.is_wheel &&
          !strcmp(d.name, "django") && !strcmp(d.version, "4.2.7") && !strcmp(d.plattag, "any"));
    CHECK(larder_pypi_parse_filename("numpy-1.26.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", &d) == 0);
    char *py311[] = {"3.11"}, *py310[] = {"3.10"}, *ml[] = {"manylinux2014_x86_64"}, *arm[] = {"manylinux2014_aarch64"};
    CHECK(larder_pypi_dist_matches(&d, py311, 1, ml, 1));
    CHECK(!larder_pypi_dist_matches(&d, py310, 1, ml, 1));
    CHECK(!larder_pypi_dist_matches(&d, py311, 1, arm, 1));
    CHECK(larder_pypi_parse_filename("cryptography-41.0.7-cp37-abi3-manylinux_2_28_x86_64.whl", &d) == 0);
    CHECK(larder_pypi_dist_matches(&d, py311, 1, ml, 1));
    CHECK(larder_pypi_parse_filename("pywin32-306-cp311-cp311-win_amd64.whl", &d) == 0);
    CHECK(!larder_pypi_dist_matches(&d, py311, 1, ml, 1));
    CHECK(larder_pypi_parse_filename("Demo_Pkg.Two-2.0.tar.gz", &d) == 0 && !d.is_wheel && !strcmp(d.name, "demo-pkg-two") &&
          !strcmp(d.version, "2.0"));
    CHECK(larder_pypi_dist_matches(&d, py311, 1, ml, 1));
    CHECK(larder_pypi_parse_filename("not-a-dist.txt", &d) < 0);

    larder_pypi_requirement_t r;
    char err[300];
    CHECK(larder_pypi_parse_requirement("Django[bcrypt]==4.2.7 ; python_version >= \"3.8\" --hash=sha256:" H1
                                        " --hash=sha256:" H2,
                                        &r, err, sizeof(err)) == 0);
    CHECK(!strcmp(r.name, "django") && !strcmp(r.version, "4.2.7") && r.nhashes == 2 && !strcmp(r.hashes[1], H2));
    CHECK(larder_pypi_parse_requirement("requests>=2", &r, err, sizeof(err)) < 0 && strstr(err, "not pinned"));
    CHECK(larder_pypi_parse_requirement("requests==2.*", &r, err, sizeof(err)) < 0);
    CHECK(larder_pypi_parse_requirement("requests", &r, err, sizeof(err)) < 0);

    static const char reqs[] = "# via x\n"
                               "-r base.txt\n"
                               "--index-url https://example/simple\n"
                               "django==4.2.7 \\\n"
                               "    --hash=sha256:" H1 " \\\n"
                               "    --hash=sha256:" H2 "\n"
                               "\n"
                               "six==1.16.0  # via django\n";
    char **lines, **inc;
    size_t ninc, n = larder_pypi_requirement_lines(reqs, sizeof(reqs) - 1, &lines, &inc, &ninc);
    CHECK(n == 2 && ninc == 1);
    if (n == 2) {
        CHECK(strncmp(lines[0], "django==4.2.7", 13) == 0 && strstr(lines[0], H2));
        CHECK(strcmp(lines[1], "six==1.16.0") == 0);
    }
    if (ninc == 1)
        CHECK(strcmp(inc[0], "base.txt") == 0);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    for (size_t i = 0; i < ninc; i++)
        free(inc[i]);
    free(lines);
    free(inc);

    static const char vcs[] = "git+https://github.com/example/tool.git@v1.0#egg=tool\n"
                              "-e git+https://github.com/example/lib.git#egg=lib\n"
                              "tool2 @ git+ssh://git@github.com/example/tool2.git\n"
                              "pkg @ https://example.com/pkg-1.0-py3-none-any.whl\n"
                              "-e .\n"
                              "./local/pkg\n"
                              "six==1.16.0\n";
    int nfailed = 0, nlocal = 0;
    n = larder_pypi_requirement_lines_ex(vcs, sizeof(vcs) - 1, &lines, &inc, &ninc, count_unseedable, &nfailed);
    (void)nlocal;
    CHECK(n == 1 && ninc == 0 && nfailed == 4 + 100 * 2);
    if (n == 1)
        CHECK(strcmp(lines[0], "six==1.16.0") == 0);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(inc);

    test_rewrite();
    if (failures) {
        fprintf(stderr, "test_pypi: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_pypi: ok\n");
    return 0;
}
