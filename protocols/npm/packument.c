/* packument.c - the stored forms of an npm packument (part of the npm protocol, see serve.c).
 *
 * The upstream is only ever asked for the full document, and one GET makes both stored forms: npm_packument_stream
 * (the streaming transform of fetch.h, the rewrite itself in pkstream.c) writes pk/<name>/full and pk/<name>/abbr
 * while the document downloads. Every dist.tarball becomes LARDER_NPM_BASE_TOKEN/<name>/-/<file> (serve.c's
 * responses replace the token with the public base chunk by chunk while sending, so one stored copy serves every
 * host name), a record t/<name>/<file> -> "integrity\nshasum\nupstream URL" is written for every tarball, and meta
 * pa/<name> names the digests of the two forms made together; serve.c and seed.c read the tarball records to fetch
 * and verify tarballs, and answer only for files a packument listed.
 * npm_transform_packument() is the same on complete documents, for seed jobs (key pk/<name>/full) and for deriving
 * pk/<name>/abbr from the stored full form by a local fetch when only that one is cached (offline); meta pa/<name>
 * then names the full form it was made from: npm_abbr_matches() lets serve.c serve it only while both still match.
 * The rewrite itself, larder_npm_rewrite_packument(), is pure (JSON in, JSON out) and is unit-tested and fuzzed.
 * This file never answers requests and never talks to the upstream. */
#include "internal.h"
#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PACKUMENT ((uint64_t)512 * 1024 * 1024)

static void buf_add(larder_npm_buf_t *b, const char *s, size_t n)
{
    if (!b->p || b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        char *np = realloc(b->p, b->cap);
        if (!np)
            abort();
        b->p = np;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void buf_str(larder_npm_buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

/* ---- the rewrite (pure: unit-tested and fuzzed) ---- */

int npm_is_http(const char *u)
{
    return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0);
}

/* the last path segment of a tarball URL (no query or fragment) */
int npm_tarball_file(const char *url, char *out, size_t outlen)
{
    const char *s = strstr(url, "://");
    if (!s)
        return -1;
    s += 3;
    const char *end = s + strcspn(s, "?#");
    const char *slash = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == '/')
            slash = p;
    if (!slash)
        return -1;
    size_t n = (size_t)(end - slash - 1);
    if (!npm_file_ok(slash + 1, n) || n + 1 > outlen)
        return -1;
    memcpy(out, slash + 1, n);
    out[n] = 0;
    return 0;
}

static const char *const abbreviated_fields[] = {
    "name", "version", "deprecated", "dependencies", "optionalDependencies", "devDependencies", "bundleDependencies",
    "bundledDependencies", "peerDependencies", "peerDependenciesMeta", "acceptDependencies", "bin", "directories",
    "dist", "engines", "cpu", "os", "libc", "_hasShrinkwrap", "hasInstallScript", "funding", "license", NULL};

static json_t *abbreviate_version(json_t *vo)
{
    json_t *o = json_object();
    for (int i = 0; abbreviated_fields[i]; i++) {
        json_t *v = json_object_get(vo, abbreviated_fields[i]);
        if (v)
            json_object_set(o, abbreviated_fields[i], v);
    }
    if (!json_object_get(o, "hasInstallScript")) {
        json_t *scripts = json_object_get(vo, "scripts");
        if (json_is_object(scripts) && (json_object_get(scripts, "preinstall") || json_object_get(scripts, "install") ||
                                        json_object_get(scripts, "postinstall")))
            json_object_set_new(o, "hasInstallScript", json_true());
    }
    return o;
}

int larder_npm_rewrite_packument(const char *in, size_t len, const char *name, int abbreviated, larder_npm_buf_t *out,
                                 larder_npm_tarball_cb cb, void *ctx, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(in, len, JSON_ALLOW_NUL, &je);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "upstream packument is not a JSON object%s%s", root ? "" : ": ", root ? "" : je.text);
        json_decref(root);
        return -1;
    }
    json_t *versions = json_object_get(root, "versions");
    if (versions && !json_is_object(versions)) {
        snprintf(err, errlen, "upstream packument: 'versions' is not an object");
        json_decref(root);
        return -1;
    }
    const char *ver;
    json_t *vo;
    larder_npm_buf_t local = {0};
    json_object_foreach(versions, ver, vo)
    {
        json_t *dist = json_object_get(vo, "dist");
        const char *tb = json_string_value(json_object_get(dist, "tarball"));
        char file[256];
        if (!json_is_object(dist) || !npm_is_http(tb) || npm_tarball_file(tb, file, sizeof(file)) < 0)
            continue; /* nothing we would fetch: left as it is */
        if (cb) {
            larder_npm_tarball_t t = {ver, file, tb, json_string_value(json_object_get(dist, "integrity")),
                                      json_string_value(json_object_get(dist, "shasum"))};
            cb(ctx, &t);
        }
        local.len = 0;
        buf_str(&local, LARDER_NPM_BASE_TOKEN "/");
        buf_str(&local, name);
        buf_str(&local, "/-/");
        buf_str(&local, file);
        json_object_set_new(dist, "tarball", json_string(local.p));
    }
    free(local.p);
    json_t *doc = root;
    if (abbreviated) {
        doc = json_object();
        json_t *v;
        if ((v = json_object_get(root, "name")))
            json_object_set(doc, "name", v);
        json_t *time = json_object_get(root, "time");
        if ((v = json_object_get(root, "modified")) || (v = json_object_get(time, "modified")))
            json_object_set(doc, "modified", v);
        if ((v = json_object_get(root, "dist-tags")))
            json_object_set(doc, "dist-tags", v);
        if (time)
            json_object_set(doc, "time", time); /* pnpm's time-based resolution needs it */
        json_t *nv = json_object();
        json_object_foreach(versions, ver, vo)
        {
            if (json_is_object(vo))
                json_object_set_new(nv, ver, abbreviate_version(vo));
        }
        json_object_set_new(doc, "versions", nv);
    }
    char *s = json_dumps(doc, JSON_COMPACT);
    if (doc != root)
        json_decref(doc);
    json_decref(root);
    if (!s) {
        snprintf(err, errlen, "cannot serialise the packument");
        return -1;
    }
    buf_str(out, s);
    free(s);
    return 0;
}

/* ---- on a commit thread: the stored forms and the tarball records ---- */

typedef struct rec_ctx {
    larder_meta_batch_t *b;
    const char *name;
} rec_ctx_t;

static void record_tarball(void *arg, const larder_npm_tarball_t *t)
{
    rec_ctx_t *c = arg;
    if (strlen(t->url) > 3000)
        return;
    char key[800], val[4000];
    snprintf(key, sizeof(key), "t/%s/%s", c->name, t->file);
    int n = snprintf(val, sizeof(val), "%s\n%s\n%s", t->integrity && !strchr(t->integrity, '\n') ? t->integrity : "-",
                     t->shasum && !strchr(t->shasum, '\n') ? t->shasum : "-", t->url);
    if (n > 0 && (size_t)n < sizeof(val))
        larder_meta_batch_put(c->b, LARDER_PROTO_NPM, key, val, (size_t)n);
}

/* "sha1-<base64>" from a hex shasum */
int npm_shasum_integrity(const char *hex, char *out, size_t outlen)
{
    unsigned char raw[20];
    if (!hex || strlen(hex) != 40 || larder_unhex(hex, 20, raw) < 0)
        return -1;
    unsigned char b64[40];
    EVP_EncodeBlock(b64, raw, 20);
    snprintf(out, outlen, "sha1-%s", b64);
    return 0;
}

/* the name in a key "pk/<name>/<form>"; 0 or -1 */
static int packument_key_name(const char *k, char *name, size_t namelen, const char **form)
{
    const char *slash = strrchr(k, '/');
    if (strncmp(k, "pk/", 3) != 0 || !slash || slash - k - 3 <= 0 || (size_t)(slash - k - 3) >= namelen)
        return -1;
    memcpy(name, k + 3, (size_t)(slash - k - 3));
    name[slash - k - 3] = 0;
    *form = slash + 1;
    return 0;
}

/* meta "pa/<name>" -> "<sha256 of the full form>\n<sha256 of the abbreviated form>": which stored full document the
 * stored abbreviated one was derived from. Both digests must match the entries for the abbreviated form to be
 * served, so a full form refreshed since (or an abbreviated commit that failed) never serves an outdated one. */
int npm_abbr_matches(larder_store_t *st, const char *name, const larder_entry_t *full, const larder_entry_t *abbr)
{
    char k[400];
    snprintf(k, sizeof(k), "pa/%s", name);
    size_t len = 0;
    char *v = larder_store_meta_get(st, LARDER_PROTO_NPM, k, &len);
    int ok = v && len == 2 * (LARDER_SHA256_HEX - 1) + 1 && memcmp(v, full->digest, LARDER_SHA256_HEX - 1) == 0 &&
             memcmp(v + LARDER_SHA256_HEX, abbr->digest, LARDER_SHA256_HEX - 1) == 0;
    free(v);
    return ok;
}

/* "pk/<name>/abbr" made from the stored full form (never from the upstream: one upstream document per package
 * serves both forms); runs on a commit thread */
static int derive_abbreviated(larder_store_t *st, const char *name, int out_fd, char **content_type, char *err,
                              size_t errlen)
{
    char fk[400], path[4096];
    snprintf(fk, sizeof(fk), "pk/%s/full", name);
    larder_entry_t fe;
    if (larder_store_get(st, LARDER_PROTO_NPM, fk, &fe) < 0) {
        snprintf(err, errlen, "the full packument of %s is not cached", name);
        return -1;
    }
    char full_digest[LARDER_SHA256_HEX];
    memcpy(full_digest, fe.digest, sizeof(full_digest));
    larder_store_blob_path(st, fe.digest, path, sizeof(path));
    larder_entry_clear(&fe);
    size_t in_len = 0;
    char *in = larder_read_file(path, &in_len);
    if (!in) {
        snprintf(err, errlen, "cannot read the cached full packument of %s", name);
        return -1;
    }
    uint64_t t0 = larder_now_ms();
    larder_npm_buf_t out = {0};
    /* the stored tarball URLs are already ours (the base token is no http URL): only the fields are cut */
    int r = larder_npm_rewrite_packument(in, in_len, name, 1, &out, NULL, NULL, err, errlen);
    free(in);
    uint64_t ms = larder_now_ms() - t0;
    if (ms >= 200)
        larder_info("npm: deriving the abbreviated packument of %s (%zu bytes) took %" PRIu64 " ms", name, in_len, ms);
    if (r == 0 && larder_write_all(out_fd, out.p ? out.p : "", out.len) < 0) {
        snprintf(err, errlen, "writing the abbreviated packument failed");
        r = -1;
    }
    if (r == 0) {
        unsigned char md[32];
        unsigned int mdlen = 0;
        char val[2 * LARDER_SHA256_HEX], k[400];
        EVP_Digest(out.p ? out.p : "", out.len, md, &mdlen, larder_sha256_md(), NULL);
        memcpy(val, full_digest, LARDER_SHA256_HEX - 1);
        val[LARDER_SHA256_HEX - 1] = '\n';
        larder_hex(md, 32, val + LARDER_SHA256_HEX);
        snprintf(k, sizeof(k), "pa/%s", name);
        larder_meta_batch_t *b = larder_store_meta_begin(st);
        larder_meta_batch_put(b, LARDER_PROTO_NPM, k, val, sizeof(val) - 1);
        r = larder_store_meta_commit(st, b);
        if (r < 0)
            snprintf(err, errlen, "cannot record the abbreviated packument");
    }
    free(out.p);
    *content_type = strdup("application/vnd.npm.install-v1+json");
    return r;
}

/* key "pk/<name>/full": the upstream document rewritten (tarball URLs ours, tarball records written); key
 * "pk/<name>/abbr": derived from the stored full form. Runs on a commit thread. */
int npm_transform_packument(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                            char **content_type, char *err, size_t errlen)
{
    char name[320];
    const char *form;
    if (packument_key_name(fe->key, name, sizeof(name), &form) < 0) {
        snprintf(err, errlen, "bad packument key");
        return -1;
    }
    if (strcmp(form, "abbr") == 0)
        return derive_abbreviated(st, name, out_fd, content_type, err, errlen);
    if (in_len > MAX_PACKUMENT) {
        snprintf(err, errlen, "packument larger than 512 MiB");
        return -1;
    }
    char *in;
    if (larder_pread_all(in_fd, in_len, &in) < 0) {
        snprintf(err, errlen, "cannot read the downloaded packument");
        return -1;
    }
    uint64_t t0 = larder_now_ms();
    larder_npm_buf_t out = {0};
    larder_meta_batch_t *b = larder_store_meta_begin(st);
    rec_ctx_t rc = {b, name};
    int r = larder_npm_rewrite_packument(in, in_len, name, 0, &out, record_tarball, &rc, err, errlen);
    free(in);
    if (r == 0)
        r = larder_store_meta_commit(st, b);
    else
        larder_store_meta_discard(b);
    uint64_t ms = larder_now_ms() - t0;
    if (ms >= 200)
        larder_info("npm: rewriting the packument of %s (%" PRIu64 " bytes) took %" PRIu64 " ms", name, in_len, ms);
    *content_type = strdup("application/json");
    if (r == 0 && larder_write_all(out_fd, out.p ? out.p : "", out.len) < 0) {
        snprintf(err, errlen, "writing the rewritten packument failed");
        r = -1;
    }
    free(out.p);
    return r;
}

/* ---- the streaming rewrite of a download (fetch.h's streaming transform) ----
 * One upstream GET of the full document makes pk/<name>/full (output 0) and pk/<name>/abbr (output 1) while it
 * downloads (pkstream.c); the tarball records and meta pa/<name> are written just before both are committed. */

typedef struct npm_sstate {
    larder_npm_stream_t *s;
    larder_meta_batch_t *b;
    char name[320];
} npm_sstate_t;

static void *npm_stream_open(const larder_fetch_t *fe)
{
    const char *form;
    npm_sstate_t *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    rec_ctx_t *rc = NULL;
    if (packument_key_name(fe->key, st->name, sizeof(st->name), &form) < 0 || !(rc = malloc(sizeof(*rc)))) {
        free(st);
        return NULL;
    }
    st->b = larder_store_meta_begin(NULL);
    rc->b = st->b;
    rc->name = st->name;
    st->s = larder_npm_stream_new(st->name, record_tarball, rc);
    if (!st->s) {
        larder_store_meta_discard(st->b);
        free(rc);
        free(st);
        return NULL;
    }
    return st;
}

static int npm_stream_drain(npm_sstate_t *st, larder_fetch_t *fe)
{
    for (int i = 0; i < 2; i++) {
        larder_npm_buf_t *o = larder_npm_stream_out(st->s, i);
        if (o->len && larder_stream_write(fe, i, o->p, o->len) < 0 && i == 0)
            return -1;
        o->len = 0;
    }
    return 0;
}

static int npm_stream_feed(void *state, larder_fetch_t *fe, const char *buf, size_t len, int final, char *err,
                           size_t errlen)
{
    npm_sstate_t *st = state;
    int r = final ? larder_npm_stream_finish(st->s, err, errlen) : larder_npm_stream_feed(st->s, buf, len, err, errlen);
    if (r < 0) {
        larder_warn("npm: the packument of %s from %s is malformed: %s", st->name, fe->url, err);
        return -1;
    }
    if (npm_stream_drain(st, fe) < 0) {
        snprintf(err, errlen, "writing the rewritten packument failed");
        return -1;
    }
    return 0;
}

static int npm_stream_before_commit(void *state, larder_store_t *store, const larder_fetch_t *fe,
                                    const char *const *keys, const char *const *digests, char *err, size_t errlen)
{
    (void)fe;
    (void)keys;
    npm_sstate_t *st = state;
    char val[2 * LARDER_SHA256_HEX], k[400];
    memcpy(val, digests[0], LARDER_SHA256_HEX - 1);
    val[LARDER_SHA256_HEX - 1] = '\n';
    memcpy(val + LARDER_SHA256_HEX, digests[1], LARDER_SHA256_HEX - 1);
    snprintf(k, sizeof(k), "pa/%s", st->name);
    larder_meta_batch_put(st->b, LARDER_PROTO_NPM, k, val, sizeof(val) - 1);
    int r = larder_store_meta_commit(store, st->b);
    st->b = NULL;
    if (r < 0)
        snprintf(err, errlen, "cannot record the tarballs of the packument");
    return r;
}

static void npm_stream_close(void *state)
{
    npm_sstate_t *st = state;
    if (st->b)
        larder_store_meta_discard(st->b);
    if (st->s) {
        /* the tarball callback's context lives as long as the stream */
        free(larder_npm_stream_cbctx(st->s));
        larder_npm_stream_free(st->s);
    }
    free(st);
}

const larder_stream_ops_t npm_packument_stream = {
    .nout = 2,
    .content_type = {"application/json", "application/vnd.npm.install-v1+json"},
    .open = npm_stream_open,
    .feed = npm_stream_feed,
    .before_commit = npm_stream_before_commit,
    .close = npm_stream_close,
};
