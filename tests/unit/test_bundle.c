/* test_bundle.c - the bundle format: tar headers written and read back (ustar and pax), the incremental reader fed
 * in pieces of every size, every refusal (tampered blob, truncation at every byte, wrong version, foreign or repeated
 * member, wrong size, bytes after the end), and larder_store_import: one batch, idempotent, refused whole over
 * quota with the store unchanged. */
#include "bundle.h"
#include "registry.h"
#include "store.h"
#include "tar.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

typedef struct buf {
    unsigned char *p;
    size_t n;
} buf_t;

static void put_bytes(buf_t *b, const void *p, size_t n)
{
    b->p = realloc(b->p, b->n + n);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_member(buf_t *b, const char *name, const void *data, size_t n)
{
    char hdr[4 * LARDER_TAR_BLOCK];
    size_t hl = larder_tar_header(hdr, name, n, 1700000000);
    put_bytes(b, hdr, hl);
    put_bytes(b, data, n);
    static const char zeros[LARDER_TAR_BLOCK];
    put_bytes(b, zeros, larder_tar_padding(n));
}

static void put_end(buf_t *b)
{
    static const char zeros[2 * LARDER_TAR_BLOCK];
    put_bytes(b, zeros, sizeof(zeros));
}

static void sha_hex(const char *s, size_t n, char *out)
{
    char path[] = "/tmp/larder-test-bundle-sha-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
        if (write(fd, s, n) != (ssize_t)n)
            out[0] = 0;
        close(fd);
    }
    larder_sha256_file(path, out);
    unlink(path);
}

static const char blob_a[] = "the bytes of blob a, which two entries share";
static const char blob_b[] = "blob b";
static char dig_a[LARDER_SHA256_HEX], dig_b[LARDER_SHA256_HEX];

/* a bundle of 3 entries (two share blob a), one uncached pin and one module record */
static void make_bundle(buf_t *b, int version, const char *extra_member)
{
    memset(b, 0, sizeof(*b));
    char *h = larder_bundle_header_text("set-1", 1700000000, 4, 2, sizeof(blob_a) - 1 + sizeof(blob_b) - 1);
    if (version != 1) {
        char *v = strstr(h, "\"version\": 1");
        if (v)
            v[11] = (char)('0' + version);
    }
    put_member(b, LARDER_BUNDLE_HEADER, h, strlen(h));
    free(h);
    json_t *ents = json_array();
    larder_entry_t e = {0};
    memcpy(e.digest, dig_a, LARDER_SHA256_HEX);
    e.size = sizeof(blob_a) - 1;
    e.url = (char *)"http://up.invalid/a";
    e.content_type = (char *)"text/plain";
    e.etag = (char *)"\"x\"";
    e.flags = LARDER_ENTRY_IMMUTABLE;
    e.fetched_at = 1700000000;
    json_array_append_new(ents, larder_bundle_entry_json(LARDER_PROTO_FILES, "k/a", &e));
    json_array_append_new(ents, larder_bundle_entry_json(LARDER_PROTO_PYPI, "k/a-again", &e));
    memcpy(e.digest, dig_b, LARDER_SHA256_HEX);
    e.size = sizeof(blob_b) - 1;
    e.flags = 0;
    json_array_append_new(ents, larder_bundle_entry_json(LARDER_PROTO_FILES, "k/b", &e));
    json_array_append_new(ents, larder_bundle_entry_json(LARDER_PROTO_FILES, "k/uncached", NULL));
    json_t *meta = json_array();
    json_array_append_new(meta, larder_bundle_meta_json(LARDER_PROTO_PYPI, "f/x/y", "rec value", 9));
    json_array_append_new(meta, larder_bundle_meta_json(LARDER_PROTO_PYPI, "bin", "a\0b\xff", 4));
    json_t *m = json_pack("{s:s, s:o, s:o}", "pin_set", "set-1", "entries", ents, "meta", meta);
    char *mt = json_dumps(m, JSON_INDENT(1));
    json_decref(m);
    put_member(b, LARDER_BUNDLE_MANIFEST, mt, strlen(mt));
    free(mt);
    char name[128];
    snprintf(name, sizeof(name), "%s%s", LARDER_BUNDLE_BLOB_PREFIX, dig_b);
    put_member(b, name, blob_b, sizeof(blob_b) - 1);
    if (extra_member)
        put_member(b, extra_member, "zz", 2);
    snprintf(name, sizeof(name), "%s%s", LARDER_BUNDLE_BLOB_PREFIX, dig_a);
    put_member(b, name, blob_a, sizeof(blob_a) - 1);
    put_end(b);
}

typedef struct got {
    int manifests, begins, ends;
    buf_t data;
} got_t;

static int s_manifest(void *ctx, larder_bundle_reader_t *r, const larder_bundle_manifest_t *m)
{
    ((got_t *)ctx)->manifests++;
    return 0;
}
static int s_begin(void *ctx, larder_bundle_reader_t *r, const larder_bundle_blob_t *b)
{
    ((got_t *)ctx)->begins++;
    return 0;
}
static int s_data(void *ctx, larder_bundle_reader_t *r, const unsigned char *p, size_t n)
{
    put_bytes(&((got_t *)ctx)->data, p, n);
    return 0;
}
static int s_end(void *ctx, larder_bundle_reader_t *r, const larder_bundle_blob_t *b)
{
    ((got_t *)ctx)->ends++;
    return 0;
}

/* read b in pieces of `step` bytes (0: one piece); 0 when accepted; err gets the message */
static int read_bundle(const buf_t *b, size_t step, got_t *g, char *err, size_t errlen, larder_bundle_manifest_t *keep)
{
    larder_bundle_sink_t sink = {s_manifest, s_begin, s_data, s_end, g};
    larder_bundle_reader_t r;
    larder_bundle_reader_init(&r, &sink);
    int rc = 0;
    for (size_t off = 0; off < b->n && rc == 0;) {
        size_t n = step && b->n - off > step ? step : b->n - off;
        rc = larder_bundle_feed(&r, b->p + off, n);
        off += n;
    }
    if (rc == 0)
        rc = larder_bundle_finish(&r);
    snprintf(err, errlen, "%s", larder_bundle_error(&r));
    if (keep && rc == 0) {
        *keep = r.m;
        memset(&r.m, 0, sizeof(r.m));
    }
    larder_bundle_reader_free(&r);
    return rc;
}

static uint64_t seen_size;
static int big_begin(void *ctx, const char *name, uint64_t size)
{
    *(uint64_t *)ctx = size;
    return strcmp(name, "big") != 0;
}

static void test_tar(void)
{
    /* pax: a long name and a size over ustar's 8 GiB */
    char hdr[4 * LARDER_TAR_BLOCK];
    char longname[201];
    memset(longname, 'n', 200);
    longname[200] = 0;
    CHECK(larder_tar_header(hdr, longname, 5, 0) == 3 * LARDER_TAR_BLOCK);
    CHECK(larder_tar_member_size(longname, 5) == 4 * LARDER_TAR_BLOCK);
    CHECK(larder_tar_header(hdr, "short", 5, 0) == LARDER_TAR_BLOCK);
    CHECK(larder_tar_member_size("short", 600) == 3 * LARDER_TAR_BLOCK);
    buf_t b = {0};
    put_member(&b, longname, "hello", 5);
    put_end(&b);
    got_t g = {0};
    larder_tar_reader_t r;
    larder_tar_cb_t cb = {NULL, NULL, NULL, NULL};
    larder_tar_reader_init(&r, &cb);
    CHECK(larder_tar_feed(&r, b.p, b.n) == 0);
    CHECK(larder_tar_done(&r));
    static const unsigned char pad[10240];
    CHECK(larder_tar_feed(&r, pad, sizeof(pad)) == 0); /* tar's record padding after the end is fine */
    CHECK(larder_tar_feed(&r, (const unsigned char *)"x", 1) < 0); /* anything else is not */
    CHECK(strstr(r.error, "after the end") != NULL);
    larder_tar_reader_free(&r);
    (void)g;
    /* 9 GiB announced by pax: the reader takes the pax size */
    uint64_t big = 9ULL << 30;
    CHECK(larder_tar_header(hdr, "big", big, 0) == 3 * LARDER_TAR_BLOCK);
    CHECK(larder_tar_member_size("big", big) == 3 * LARDER_TAR_BLOCK + big);
    larder_tar_cb_t bcb = {big_begin, NULL, NULL, &seen_size};
    larder_tar_reader_init(&r, &bcb);
    CHECK(larder_tar_feed(&r, (const unsigned char *)hdr, 3 * LARDER_TAR_BLOCK) == 0 && seen_size == big);
    larder_tar_reader_free(&r);
    /* a damaged header checksum */
    buf_t c = {0};
    put_member(&c, "a", "x", 1);
    c.p[5] ^= 1;
    larder_tar_reader_init(&r, &cb);
    CHECK(larder_tar_feed(&r, c.p, c.n) < 0 && strstr(r.error, "checksum") != NULL);
    larder_tar_reader_free(&r);
    free(b.p);
    free(c.p);
}

static void test_reader(void)
{
    char err[600];
    buf_t b;
    make_bundle(&b, 1, NULL);
    /* whole, and in pieces of 1, 7, 511, 513 bytes */
    size_t steps[] = {0, 1, 7, 511, 513};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        got_t g = {0};
        CHECK(read_bundle(&b, steps[i], &g, err, sizeof(err), NULL) == 0);
        CHECK(g.manifests == 1 && g.begins == 2 && g.ends == 2);
        CHECK(g.data.n == sizeof(blob_a) - 1 + sizeof(blob_b) - 1);
        free(g.data.p);
    }
    larder_bundle_manifest_t m;
    got_t g = {0};
    CHECK(read_bundle(&b, 0, &g, err, sizeof(err), &m) == 0);
    free(g.data.p);
    CHECK(m.nentries == 4 && m.nblobs == 2 && m.nmeta == 2 && strcmp(m.pin_set, "set-1") == 0);
    CHECK(m.entries[0].cached && m.entries[0].e.flags == LARDER_ENTRY_IMMUTABLE);
    CHECK(m.entries[0].e.etag && strcmp(m.entries[0].e.etag, "\"x\"") == 0);
    CHECK(!m.entries[3].cached);
    CHECK(m.meta[1].len == 4 && memcmp(m.meta[1].val, "a\0b\xff", 4) == 0); /* base64 round trip */
    CHECK(m.meta[0].len == 9 && strcmp(m.meta[0].val, "rec value") == 0);
    larder_bundle_manifest_free(&m);

    /* truncated anywhere: never accepted */
    int accepted = 0;
    for (size_t cut = 0; cut < b.n; cut += (cut < 3000 ? 1 : 97)) {
        buf_t t = {b.p, cut};
        got_t gg = {0};
        if (read_bundle(&t, 0, &gg, err, sizeof(err), NULL) == 0)
            accepted++;
        else if (!err[0])
            accepted++; /* a refusal always says why */
        free(gg.data.p);
    }
    CHECK(accepted == 0);
    buf_t t = {b.p, b.n - 700};
    got_t gg = {0};
    CHECK(read_bundle(&t, 0, &gg, err, sizeof(err), NULL) < 0 && strstr(err, "truncated") != NULL);
    free(gg.data.p);

    /* one byte of a blob flipped */
    buf_t x = {malloc(b.n), b.n};
    memcpy(x.p, b.p, b.n);
    unsigned char *at = memmem(x.p, x.n, blob_a, sizeof(blob_a) - 1);
    CHECK(at != NULL);
    if (at)
        at[3] ^= 0x20;
    memset(&gg, 0, sizeof(gg));
    CHECK(read_bundle(&x, 0, &gg, err, sizeof(err), NULL) < 0 && strstr(err, "is corrupt") != NULL &&
          strstr(err, dig_a) != NULL);
    CHECK(gg.ends == 1); /* blob b before it was fine; a never reached its end */
    free(gg.data.p);
    free(x.p);
    free(b.p);

    /* a format version from the future, refused before the manifest is read */
    make_bundle(&b, 2, NULL);
    memset(&gg, 0, sizeof(gg));
    CHECK(read_bundle(&b, 0, &gg, err, sizeof(err), NULL) < 0 && strstr(err, "format version 2") != NULL);
    CHECK(gg.manifests == 0);
    free(b.p);
    /* a member that is not a blob */
    make_bundle(&b, 1, "etc/passwd");
    CHECK(read_bundle(&b, 0, &gg, err, sizeof(err), NULL) < 0 && strstr(err, "unexpected member etc/passwd") != NULL);
    free(b.p);
    free(gg.data.p);
}

/* a bundle whose second entry keeps data outside the blob store (member external/1); how: 0 right, 1 the external
 * member missing, 2 one byte of it flipped, 3 it twice, 4 an extra external/7, 5 named external/01 */
static const char ext_data[] = "a git bundle, as far as the reader knows";
static void make_ext_bundle(buf_t *b, int how)
{
    memset(b, 0, sizeof(*b));
    char dig_x[LARDER_SHA256_HEX];
    sha_hex(ext_data, sizeof(ext_data) - 1, dig_x);
    char *h = larder_bundle_header_text("set-x", 1700000000, 2, 1, sizeof(blob_b) - 1);
    put_member(b, LARDER_BUNDLE_HEADER, h, strlen(h));
    free(h);
    json_t *ents = json_array();
    larder_entry_t e = {0};
    memcpy(e.digest, dig_b, LARDER_SHA256_HEX);
    e.size = sizeof(blob_b) - 1;
    json_array_append_new(ents, larder_bundle_entry_json(LARDER_PROTO_FILES, "k/b", &e));
    e.external = 12345;
    json_t *x = larder_bundle_entry_json(LARDER_PROTO_GIT, "m/r/o/p", &e);
    larder_bundle_entry_set_external(x, dig_x, sizeof(ext_data) - 1, "refs/heads/main");
    json_array_append_new(ents, x);
    json_t *m = json_pack("{s:s, s:o, s:[]}", "pin_set", "set-x", "entries", ents, "meta");
    char *mt = json_dumps(m, JSON_INDENT(1));
    json_decref(m);
    put_member(b, LARDER_BUNDLE_MANIFEST, mt, strlen(mt));
    free(mt);
    char name[128], data[sizeof(ext_data)];
    memcpy(data, ext_data, sizeof(data));
    if (how == 2)
        data[5] ^= 1;
    snprintf(name, sizeof(name), "%s1", LARDER_BUNDLE_EXTERNAL_PREFIX);
    if (how != 1 && how != 5)
        put_member(b, name, data, sizeof(ext_data) - 1);
    if (how == 5)
        put_member(b, "external/01", data, sizeof(ext_data) - 1);
    if (how == 3)
        put_member(b, name, data, sizeof(ext_data) - 1);
    if (how == 4)
        put_member(b, "external/7", data, sizeof(ext_data) - 1);
    snprintf(name, sizeof(name), "%s%s", LARDER_BUNDLE_BLOB_PREFIX, dig_b);
    put_member(b, name, blob_b, sizeof(blob_b) - 1);
    put_end(b);
}

static size_t ext_begun; /* the entry index + 1 of the last external member begun */
static int x_begin(void *ctx, larder_bundle_reader_t *r, const larder_bundle_blob_t *b)
{
    if (b->entry)
        ext_begun = b->entry;
    return s_begin(ctx, r, b);
}

static void test_external(void)
{
    char err[600];
    buf_t b;
    make_ext_bundle(&b, 0);
    size_t steps[] = {0, 1, 7, 513};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        got_t g = {0};
        larder_bundle_sink_t sink = {s_manifest, x_begin, s_data, s_end, &g};
        larder_bundle_reader_t r;
        larder_bundle_reader_init(&r, &sink);
        ext_begun = 0;
        int rc = 0;
        for (size_t off = 0; off < b.n && rc == 0;) {
            size_t n = steps[i] && b.n - off > steps[i] ? steps[i] : b.n - off;
            rc = larder_bundle_feed(&r, b.p + off, n);
            off += n;
        }
        CHECK(rc == 0 && larder_bundle_finish(&r) == 0);
        CHECK(g.begins == 2 && g.ends == 2 && ext_begun == 2);
        CHECK(g.data.n == sizeof(ext_data) - 1 + sizeof(blob_b) - 1);
        CHECK(r.m.nexternal == 1 && r.m.external_bytes == sizeof(ext_data) - 1 && r.m.nblobs == 1);
        CHECK(r.m.entries[1].has_external && !r.m.entries[0].has_external);
        CHECK(r.m.entries[1].e.external == 0); /* the importing module measures its own */
        CHECK(r.m.entries[1].ext_note && strcmp(r.m.entries[1].ext_note, "refs/heads/main") == 0);
        larder_bundle_reader_free(&r);
        free(g.data.p);
    }
    free(b.p);
    struct {
        int how;
        const char *want;
    } bad[] = {{1, "lacks member external/1"},
               {2, "external/1 (the data of git m/r/o/p) is corrupt"},
               {3, "appears twice"},
               {4, "external/7 is not named by the manifest"},
               {5, "external/01 is not named by the manifest"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        make_ext_bundle(&b, bad[i].how);
        got_t g = {0};
        err[0] = 0;
        CHECK(read_bundle(&b, 0, &g, err, sizeof(err), NULL) < 0);
        if (!strstr(err, bad[i].want))
            fprintf(stderr, "case %d: \"%s\" does not say \"%s\"\n", bad[i].how, err, bad[i].want);
        CHECK(strstr(err, bad[i].want) != NULL);
        free(g.data.p);
        free(b.p);
    }
    /* truncated in the external member */
    make_ext_bundle(&b, 0);
    unsigned char *at = memmem(b.p, b.n, ext_data, sizeof(ext_data) - 1);
    CHECK(at != NULL);
    if (at) {
        buf_t t = {b.p, (size_t)(at - b.p) + 3};
        got_t g = {0};
        CHECK(read_bundle(&t, 0, &g, err, sizeof(err), NULL) < 0 && strstr(err, "truncated") != NULL &&
              strstr(err, "external/1") != NULL);
        free(g.data.p);
    }
    free(b.p);
}

static void test_manifest_checks(void)
{
    char err[600];
    larder_bundle_manifest_t m;
    const char *bad[] = {
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"nope\",\"key\":\"a\",\"cached\":false}]}",
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"files\",\"key\":\"a\\nb\",\"cached\":false}]}",
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"files\",\"key\":\"a\",\"sha256\":\"ABC\",\"size\":1}]}",
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"files\",\"key\":\"a\",\"cached\":false},"
        "{\"protocol\":\"files\",\"key\":\"a\",\"cached\":false}]}",
        "{\"pin_set\":\"other\",\"entries\":[]}",
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"files\",\"key\":\"a\",\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1,\"external\":5}]}",
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"files\",\"key\":\"a\",\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1,\"content_type\":\"a\\r\\nb\"}]}",
        "[]",
        /* external data: on an uncached entry, without a valid sha256 or size, with a note that is not text */
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"git\",\"key\":\"m/a/b\",\"cached\":false,\"external\":"
        "{\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1}}]}",
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"git\",\"key\":\"m/a/b\",\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1,\"external\":{\"size\":1}}]}",
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"git\",\"key\":\"m/a/b\",\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1,\"external\":{\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":-1}}]}",
        "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"git\",\"key\":\"m/a/b\",\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1,\"external\":{\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1,\"note\":\"a\\nb\"}}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&m, 0, sizeof(m));
        err[0] = 0;
        CHECK(larder_bundle_parse_manifest(bad[i], strlen(bad[i]), "s", &m, err, sizeof(err)) < 0);
        CHECK(err[0] != 0);
        larder_bundle_manifest_free(&m);
    }
    /* what older bundles (and bundles without external data) say: accepted */
    const char *good = "{\"pin_set\":\"s\",\"entries\":[{\"protocol\":\"files\",\"key\":\"a\",\"sha256\":"
                       "\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1,\"external\":0}]}";
    memset(&m, 0, sizeof(m));
    CHECK(larder_bundle_parse_manifest(good, strlen(good), "s", &m, err, sizeof(err)) == 0);
    CHECK(m.nentries == 1 && !m.entries[0].has_external && m.nexternal == 0);
    larder_bundle_manifest_free(&m);
}

/* larder_store_import on a temp data dir */
static int tmp_blob(larder_store_t *st, const char *s, char *path)
{
    int fd = larder_store_tmp_create(st, path, 4096);
    if (fd < 0)
        return -1;
    int r = larder_write_all(fd, s, strlen(s));
    close(fd);
    return r;
}

static int count_pins(void *ctx, const char *set, int proto, const char *key)
{
    (*(int *)ctx)++;
    return 0;
}

static void test_store_import(void)
{
    char dir[] = "/tmp/larder-test-bundle-XXXXXX";
    if (!mkdtemp(dir))
        return;
    larder_config_t cfg = {0};
    cfg.data_dir = dir;
    cfg.quota_total = 1024;
    larder_store_t *st;
    char err[600];
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);
    char pa[4096], pb[4096];
    larder_entry_t ea = {0}, eb = {0};
    memcpy(ea.digest, dig_a, LARDER_SHA256_HEX);
    ea.size = sizeof(blob_a) - 1;
    ea.url = (char *)"http://up.invalid/a";
    memcpy(eb.digest, dig_b, LARDER_SHA256_HEX);
    eb.size = sizeof(blob_b) - 1;
    larder_import_item_t items[] = {
        {LARDER_PROTO_FILES, "k/a", &ea}, {LARDER_PROTO_PYPI, "k/a2", &ea}, {LARDER_PROTO_FILES, "k/b", &eb},
        {LARDER_PROTO_FILES, "k/none", NULL}};
    larder_import_blob_t blobs[] = {{dig_a, ea.size, pa}, {dig_b, eb.size, pb}};
    larder_import_report_t rep;
    for (int round = 0; round < 2; round++) {
        CHECK(tmp_blob(st, blob_a, pa) == 0 && tmp_blob(st, blob_b, pb) == 0);
        larder_meta_batch_t *mb = larder_store_meta_begin(st);
        larder_meta_batch_put(mb, LARDER_PROTO_PYPI, "f/x", "v", 1);
        CHECK(larder_store_import(st, "imp", items, 4, blobs, 2, mb, &rep, err, sizeof(err)) == 0);
        CHECK(rep.pinned == 4);
        CHECK(round == 0 ? (rep.added == 3 && rep.new_blobs == 2) : (rep.unchanged == 3 && rep.new_blobs == 0));
        unlink(pa); /* the caller removes the temp files it still has */
        unlink(pb);
    }
    /* an entry with external data (a module staged it): counted, and always replaced, never doubled */
    larder_entry_t ex = eb;
    ex.external = 700;
    larder_import_item_t xi[] = {{LARDER_PROTO_GIT, "m/r/p", &ex}};
    larder_import_blob_t xb[] = {{dig_b, eb.size, NULL}};
    for (int round = 0; round < 2; round++) {
        int rx = larder_store_import(st, "impx", xi, 1, xb, 1, NULL, &rep, err, sizeof(err));
        if (rx != 0)
            fprintf(stderr, "import with external data: %s\n", err);
        CHECK(rx == 0);
        CHECK(round == 0 ? rep.added == 1 : rep.replaced == 1);
        larder_store_stats_t sx;
        memset(&sx, 0, sizeof(sx));
        larder_store_get_stats(st, &sx);
        CHECK(sx.external_bytes == 700 && sx.entry_bytes[LARDER_PROTO_GIT] == 700 + eb.size);
        larder_entry_t gx;
        CHECK(larder_store_get(st, LARDER_PROTO_GIT, "m/r/p", &gx) == 0 && gx.external == 700);
        larder_entry_clear(&gx);
    }
    larder_store_stats_t s, s2;
    memset(&s, 0, sizeof(s)); /* get_stats fills the registered protocols only */
    memset(&s2, 0, sizeof(s2));
    larder_store_get_stats(st, &s);
    CHECK(s.blob_count == 2 && s.blob_bytes == ea.size + eb.size);
    CHECK(s.entry_count[LARDER_PROTO_FILES] == 2 && s.entry_count[LARDER_PROTO_PYPI] == 1);
    larder_entry_t got;
    CHECK(larder_store_get(st, LARDER_PROTO_PYPI, "k/a2", &got) == 0 && strcmp(got.digest, dig_a) == 0);
    larder_entry_clear(&got);
    CHECK(larder_store_is_pinned(st, LARDER_PROTO_FILES, "k/none"));
    char *v = larder_store_meta_get(st, LARDER_PROTO_PYPI, "f/x", NULL);
    CHECK(v && strcmp(v, "v") == 0);
    free(v);
    int pins = 0;
    larder_store_each_pin(st, "imp", count_pins, &pins);
    CHECK(pins == 4);
    char path[4096];
    larder_store_blob_path(st, dig_a, path, sizeof(path));
    CHECK(access(path, F_OK) == 0);

    /* over quota.total: refused whole, nothing changes */
    char big[2000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    char dig_q[LARDER_SHA256_HEX], pq[4096];
    sha_hex(big, strlen(big), dig_q);
    CHECK(tmp_blob(st, big, pq) == 0);
    larder_entry_t eq = {0};
    memcpy(eq.digest, dig_q, LARDER_SHA256_HEX);
    eq.size = strlen(big);
    larder_import_item_t qi[] = {{LARDER_PROTO_FILES, "k/q", &eq}};
    larder_import_blob_t qb[] = {{dig_q, eq.size, pq}};
    CHECK(larder_store_import(st, "imp2", qi, 1, qb, 1, NULL, &rep, err, sizeof(err)) == -ENOSPC);
    CHECK(strstr(err, "does not fit") != NULL);
    unlink(pq);
    larder_store_get_stats(st, &s2);
    CHECK(s.blob_bytes == s2.blob_bytes && s.blob_count == s2.blob_count && s.external_bytes == s2.external_bytes);
    CHECK(memcmp(s.entry_bytes, s2.entry_bytes, sizeof(s.entry_bytes)) == 0);
    CHECK(memcmp(s.entry_count, s2.entry_count, sizeof(s.entry_count)) == 0);
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "k/q", &got) == -ENOENT);
    pins = 0;
    larder_store_each_pin(st, "imp2", count_pins, &pins);
    CHECK(pins == 0);
    larder_store_close(st);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    sha_hex(blob_a, sizeof(blob_a) - 1, dig_a);
    sha_hex(blob_b, sizeof(blob_b) - 1, dig_b);
    test_tar();
    test_reader();
    test_manifest_checks();
    test_external();
    test_store_import();
    if (failures)
        fprintf(stderr, "test_bundle: %d failures\n", failures);
    return failures != 0;
}
