/* test_oci.c - registry request parsing (names, references, registry selection), Accept matching, image
 * references for seeding. */
#include "oci.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

#define D "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int parse(const char *path, const char *query, larder_oci_req_t *o, const char **code)
{
    char err[300];
    return larder_oci_parse(path, strlen(path), query, query ? strlen(query) : 0, o, code, err, sizeof(err));
}

static void test_parse(void)
{
    larder_oci_req_t o;
    const char *code;
    CHECK(parse("", NULL, &o, &code) == 0 && o.kind == LARDER_OCI_ROOT);
    CHECK(parse("alpine/manifests/3.19", NULL, &o, &code) == 0 && o.kind == LARDER_OCI_MANIFEST &&
          !strcmp(o.registry, "docker.io") && !strcmp(o.name, "library/alpine") && !strcmp(o.ref, "3.19") &&
          !o.ref_is_digest);
    CHECK(parse("bitnami/redis/manifests/latest", NULL, &o, &code) == 0 && !strcmp(o.name, "bitnami/redis"));
    CHECK(parse("library/alpine/manifests/" D, NULL, &o, &code) == 0 && o.ref_is_digest && !strcmp(o.ref, D));
    CHECK(parse("alpine/blobs/" D, NULL, &o, &code) == 0 && o.kind == LARDER_OCI_BLOB);
    CHECK(parse("alpine/tags/list", NULL, &o, &code) == 0 && o.kind == LARDER_OCI_TAGS);
    /* registry selection */
    CHECK(parse("astral-sh/uv/manifests/latest", "ns=ghcr.io", &o, &code) == 0 && !strcmp(o.registry, "ghcr.io") &&
          !strcmp(o.name, "astral-sh/uv") && o.ns_query);
    CHECK(parse("ghcr.io/astral-sh/uv/manifests/latest", NULL, &o, &code) == 0 && !strcmp(o.registry, "ghcr.io") &&
          !strcmp(o.name, "astral-sh/uv"));
    CHECK(parse("127.0.0.1:5000/team/app/manifests/1", NULL, &o, &code) == 0 &&
          !strcmp(o.registry, "127.0.0.1:5000") && !strcmp(o.name, "team/app"));
    CHECK(parse("localhost/app/manifests/1", NULL, &o, &code) == 0 && !strcmp(o.registry, "localhost"));
    CHECK(parse("alpine/manifests/3", "ns=index.docker.io", &o, &code) == 0 && !strcmp(o.registry, "docker.io") &&
          !strcmp(o.name, "library/alpine"));
    CHECK(parse("registry-1.docker.io/alpine/manifests/3", NULL, &o, &code) == 0 &&
          !strcmp(o.registry, "docker.io") && !strcmp(o.name, "library/alpine"));
    /* a repository whose name contains "manifests" */
    CHECK(parse("me/manifests/manifests/v1", NULL, &o, &code) == 0 && !strcmp(o.name, "me/manifests") &&
          !strcmp(o.ref, "v1"));
    /* separators: one of . _ -, "__", or a run of '-' */
    CHECK(parse("a--b/c__d/e.f/manifests/1", NULL, &o, &code) == 0);
    CHECK(parse("a._b/manifests/1", NULL, &o, &code) < 0);
    CHECK(parse("a___b/manifests/1", NULL, &o, &code) < 0);
    CHECK(parse("a-_b/manifests/1", NULL, &o, &code) < 0);
    CHECK(parse("a-/manifests/1", NULL, &o, &code) < 0);
    /* refused */
    CHECK(parse("alpine/blobs/uploads/", NULL, &o, &code) < 0 && !strcmp(code, "UNSUPPORTED"));
    CHECK(parse("Alpine/manifests/3", NULL, &o, &code) < 0 && !strcmp(code, "NAME_INVALID"));
    CHECK(parse("../manifests/3", NULL, &o, &code) < 0);
    CHECK(parse("a//b/manifests/3", NULL, &o, &code) < 0);
    CHECK(parse("alpine/manifests/-bad", NULL, &o, &code) < 0 && !strcmp(code, "TAG_INVALID"));
    CHECK(parse("alpine/blobs/latest", NULL, &o, &code) < 0 && !strcmp(code, "DIGEST_INVALID"));
    CHECK(parse("alpine/blobs/sha256:XYZ", NULL, &o, &code) < 0);
    CHECK(parse("alpine", NULL, &o, &code) < 0 && !strcmp(code, "NAME_UNKNOWN"));
    CHECK(parse("alpine/tags/list/x", NULL, &o, &code) < 0);
    CHECK(parse("a/manifests/1", "ns=evil host", &o, &code) < 0);
    /* ns= is percent-encoded by containerd and BuildKit (Go's url.Values.Encode) */
    CHECK(parse("team/app/manifests/1", "ns=127.0.0.1%3A5000", &o, &code) == 0 &&
          !strcmp(o.registry, "127.0.0.1:5000") && !strcmp(o.name, "team/app") && o.ns_query);
    CHECK(parse("team/app/manifests/1", "x=1&ns=localhost%3a5000&y", &o, &code) == 0 &&
          !strcmp(o.registry, "localhost:5000"));
    CHECK(parse("a/manifests/1", "ns=evil%20host", &o, &code) < 0);
    CHECK(parse("a/manifests/1", "ns=evil+host", &o, &code) < 0);
    CHECK(parse("a/manifests/1", "ns=a%2", &o, &code) < 0);
    CHECK(parse("a/manifests/1", "ns=a%zz", &o, &code) < 0);
    CHECK(parse("a/manifests/1", "ns=a%00b", &o, &code) < 0);
    CHECK(parse("a/manifests/1", "ns=a%2Fb", &o, &code) < 0);
}

static void test_accept(void)
{
    const char *idx = "application/vnd.oci.image.index.v1+json";
    CHECK(larder_oci_accepts(NULL, 0, idx));
    const char *a1 = "application/vnd.docker.distribution.manifest.v2+json";
    CHECK(!larder_oci_accepts(a1, strlen(a1), idx));
    const char *a2 = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json";
    CHECK(larder_oci_accepts(a2, strlen(a2), idx));
    const char *a3 = "application/vnd.oci.image.index.v1+json;q=0";
    CHECK(!larder_oci_accepts(a3, strlen(a3), idx));
    const char *a4 = "*/*";
    CHECK(larder_oci_accepts(a4, strlen(a4), idx));
    const char *a5 = " APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON ; q=0.5";
    CHECK(larder_oci_accepts(a5, strlen(a5), idx));
}

static void test_ref(void)
{
    larder_oci_req_t o;
    char err[300];
    CHECK(larder_oci_parse_ref("alpine", &o, err, sizeof(err)) == 0 && !strcmp(o.registry, "docker.io") &&
          !strcmp(o.name, "library/alpine") && !strcmp(o.ref, "latest"));
    CHECK(larder_oci_parse_ref("docker.io/library/python:3.11-slim", &o, err, sizeof(err)) == 0 &&
          !strcmp(o.name, "library/python") && !strcmp(o.ref, "3.11-slim"));
    CHECK(larder_oci_parse_ref("ghcr.io/astral-sh/uv:0.4", &o, err, sizeof(err)) == 0 &&
          !strcmp(o.registry, "ghcr.io") && !strcmp(o.ref, "0.4"));
    CHECK(larder_oci_parse_ref("127.0.0.1:5000/app:1", &o, err, sizeof(err)) == 0 &&
          !strcmp(o.registry, "127.0.0.1:5000") && !strcmp(o.name, "app") && !strcmp(o.ref, "1"));
    CHECK(larder_oci_parse_ref("docker/dockerfile:1@" D, &o, err, sizeof(err)) == 0 && o.ref_is_digest &&
          !strcmp(o.ref, D) && !strcmp(o.name, "docker/dockerfile"));
    CHECK(larder_oci_parse_ref("Alpine", &o, err, sizeof(err)) < 0);
    CHECK(larder_oci_parse_ref("alpine@sha256:12", &o, err, sizeof(err)) < 0);
    CHECK(larder_oci_parse_ref("alpine:", &o, err, sizeof(err)) < 0);
}

int main(void)
{
    test_parse();
    test_accept();
    test_ref();
    if (failures) {
        fprintf(stderr, "test_oci: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_oci: ok\n");
    return 0;
}
