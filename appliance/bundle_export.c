/* bundle_export.c - GET /-/api/v1/pins/<set>/bundle: a pin set as one tar stream (docs/bundles.md).
 *
 * The manifest is made first, from the metadata only (entries, and the module records each module's bundle_meta
 * hook names), so the response has an exact Content-Length before a byte is sent. Then an h2o generator streams
 * larder-bundle.json, manifest.json and every distinct blob, reading each blob file in slices of BUFSZ and hashing
 * it as it goes: memory stays at one buffer whatever the set's size. A blob whose bytes do not match its name is
 * never sent whole: its last slice is checked before it leaves, the file goes to quarantine (as when serving) and
 * the response is aborted, so the client sees a truncated download, never a complete bundle with a bad blob.
 * Entries whose module keeps data outside the blob store (git mirrors: larder_entry_t.external) travel as one more
 * member each, external/<entry index>: a file the module's bundle_external_export hook writes into the store's tmp
 * dir. Its sha256 and size go into the manifest, so those files are made before the response starts, on a thread
 * of their own (a git bundle of a large mirror takes minutes) while the request waits on a timer of its worker's
 * loop; they are streamed like blobs (hashed again as they go) and removed when the response ends or is abandoned.
 * A module without the hook makes such a set a 409. Reads are open, like every other read of the admin API. */
#include "bundle_export.h"
#include "bundle.h"
#include "cache.h"
#include "log.h"
#include "module.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUFSZ ((size_t)256 * 1024)

/* a member after the manifest: a stored blob, or the temp file of an entry's external data */
typedef struct xblob {
    char digest[LARDER_SHA256_HEX];
    uint64_t size;
    size_t entry; /* external data: the entry's index + 1 (member external/<index>); 0: a blob */
    char *path;   /* external data: its temp file (removed with the stream) */
} xblob_t;

/* an entry whose module keeps data outside the blob store: its file is made by the export thread */
typedef struct xext {
    int proto;
    char *key;
    larder_entry_t e;
    size_t index;  /* in the manifest's entries */
    json_t *json;  /* its element of entries (borrowed; touched on the worker only) */
    char path[4096]; /* the file, in the store's tmp dir; "" when none (yet, or no longer ours) */
    char digest[LARDER_SHA256_HEX];
    uint64_t size;
    char note[LARDER_BUNDLE_NOTE_MAX + 1];
} xext_t;

typedef struct collect {
    larder_app_t *app;
    json_t *entries;
    json_t *meta_keys; /* "<proto>\x01<p|x>\x01<mkey>" -> null: the records to look up */
    json_t *seen_blobs; /* digest -> index */
    xblob_t *blobs;
    size_t nblobs, cap;
    uint64_t blob_bytes;
    xext_t *ext;
    size_t next, extcap;
    uint64_t ext_bytes;
    char error[600];
    int conflict; /* the error is a 409 */
    int cur_proto;
} collect_t;

static void add_meta_key(void *ctx, const char *mkey, int prefix)
{
    collect_t *c = ctx;
    char k[LARDER_BUNDLE_KEY_MAX + 16];
    if (snprintf(k, sizeof(k), "%d\x01%c\x01%s", c->cur_proto, prefix ? 'p' : 'x', mkey) < (int)sizeof(k))
        json_object_set_new(c->meta_keys, k, json_null());
}

static int on_pin(void *arg, const char *set, int proto, const char *key)
{
    collect_t *c = arg;
    (void)set;
    const larder_protocol_t *m = larder_protocol_get(proto);
    if (!m)
        return 0; /* a module that no longer exists */
    larder_entry_t e;
    int r = larder_store_get(c->app->store, proto, key, &e);
    if (r == -EIO) {
        snprintf(c->error, sizeof(c->error), "metadata store read failed; see the log");
        return 1;
    }
    if (r < 0) {
        json_array_append_new(c->entries, larder_bundle_entry_json(proto, key, NULL));
        return 0;
    }
    if (e.external && !m->bundle_external_export) {
        snprintf(c->error, sizeof(c->error),
                 "the set holds %s %.200s, whose data %s keeps outside the blob store (%" PRIu64 " bytes): this "
                 "module cannot carry it in a bundle; export a set without it (seed it on the other side from its "
                 "upstream)",
                 m->name, key, m->name, e.external);
        c->conflict = 1;
        larder_entry_clear(&e);
        return 1;
    }
    json_t *ej = larder_bundle_entry_json(proto, key, &e);
    if (e.external) {
        if (c->next == c->extcap) {
            size_t nc = c->extcap ? 2 * c->extcap : 8;
            xext_t *nv = realloc(c->ext, nc * sizeof(*nv));
            if (!nv) {
                json_decref(ej);
                larder_entry_clear(&e);
                snprintf(c->error, sizeof(c->error), "out of memory");
                return 1;
            }
            c->ext = nv;
            c->extcap = nc;
        }
        xext_t *x = &c->ext[c->next++];
        memset(x, 0, sizeof(*x));
        x->proto = proto;
        x->key = strdup(key);
        memcpy(x->e.digest, e.digest, LARDER_SHA256_HEX);
        x->e.size = e.size;
        x->e.external = e.external;
        x->e.fetched_at = e.fetched_at;
        x->e.flags = e.flags;
        x->index = json_array_size(c->entries);
        x->json = ej;
    }
    json_array_append_new(c->entries, ej);
    if (!json_object_get(c->seen_blobs, e.digest)) {
        json_object_set_new(c->seen_blobs, e.digest, json_integer((json_int_t)c->nblobs));
        if (c->nblobs == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 64;
            c->blobs = realloc(c->blobs, c->cap * sizeof(*c->blobs));
        }
        memset(&c->blobs[c->nblobs], 0, sizeof(c->blobs[c->nblobs]));
        memcpy(c->blobs[c->nblobs].digest, e.digest, LARDER_SHA256_HEX);
        c->blobs[c->nblobs].size = e.size;
        c->nblobs++;
        c->blob_bytes += e.size;
    }
    if (m->bundle_meta) {
        c->cur_proto = proto;
        m->bundle_meta(key, &e, add_meta_key, c);
    }
    larder_entry_clear(&e);
    return 0;
}

static int on_meta(void *ctx, int proto, const char *key, const char *val, size_t len)
{
    json_t *arr = ctx;
    if (strlen(key) <= LARDER_BUNDLE_KEY_MAX && len <= LARDER_BUNDLE_META_MAX)
        json_array_append_new(arr, larder_bundle_meta_json(proto, key, val, len));
    return 0;
}

/* the records the hooks named; a record named twice (overlapping prefixes) is written once */
static json_t *collect_meta(collect_t *c)
{
    json_t *arr = json_array(), *seen = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(c->meta_keys, k, v)
    {
        int proto = atoi(k);
        const char *s = strchr(k, '\x01');
        int prefix = s[1] == 'p';
        const char *mkey = s + 3;
        if (prefix) {
            json_t *part = json_array();
            larder_store_each_meta(c->app->store, proto, mkey, on_meta, part);
            size_t i;
            json_t *rec;
            json_array_foreach(part, i, rec)
            {
                char id[LARDER_BUNDLE_KEY_MAX + 16];
                snprintf(id, sizeof(id), "%d\x01%s", proto, json_string_value(json_object_get(rec, "key")));
                if (!json_object_get(seen, id)) {
                    json_object_set_new(seen, id, json_true());
                    json_array_append(arr, rec);
                }
            }
            json_decref(part);
        } else {
            size_t len = 0;
            char *val = larder_store_meta_get(c->app->store, proto, mkey, &len);
            char id[LARDER_BUNDLE_KEY_MAX + 16];
            snprintf(id, sizeof(id), "%d\x01%s", proto, mkey);
            if (val && !json_object_get(seen, id)) {
                json_object_set_new(seen, id, json_true());
                json_array_append_new(arr, larder_bundle_meta_json(proto, mkey, val, len));
            }
            free(val);
        }
    }
    json_decref(seen);
    return arr;
}

/* ---- the stream ---- */

typedef struct xgen {
    h2o_generator_t super;
    larder_app_t *app;
    h2o_req_t *req;
    char set[65];
    char *header_text, *manifest_text;
    size_t header_len, manifest_len;
    xblob_t *blobs;
    size_t nblobs;
    /* position: item 0 header member, 1 manifest member, 2.. blobs, then the end marker */
    size_t item;
    int part;            /* 0: tar header, 1: data, 2: padding */
    const char *mem;     /* the current in-memory piece */
    size_t mem_left;
    char hdr[4 * LARDER_TAR_BLOCK];
    int fd;
    uint64_t blob_left;
    EVP_MD_CTX *md;
    char *buf;
    uint64_t sent, total;
    int done;
} xgen_t;

static const char zeros[2 * LARDER_TAR_BLOCK];

static void xgen_dispose(void *p)
{
    xgen_t *g = p;
    if (g->fd >= 0)
        close(g->fd);
    for (size_t i = 0; i < g->nblobs; i++)
        if (g->blobs[i].path) {
            unlink(g->blobs[i].path);
            free(g->blobs[i].path);
        }
    free(g->header_text);
    free(g->manifest_text);
    free(g->blobs);
    free(g->buf);
    EVP_MD_CTX_free(g->md);
}

/* a member's tar name */
static void member_name(const xblob_t *b, char *out, size_t n)
{
    if (b->entry)
        snprintf(out, n, "%s%zu", LARDER_BUNDLE_EXTERNAL_PREFIX, b->entry - 1);
    else
        snprintf(out, n, "%s%s", LARDER_BUNDLE_BLOB_PREFIX, b->digest);
}

/* open blob i and set up its tar header; 0, or -1 (logged) */
static int open_blob(xgen_t *g, size_t i)
{
    const xblob_t *b = &g->blobs[i];
    char path[4096], name[LARDER_TAR_NAME_MAX];
    if (b->path)
        snprintf(path, sizeof(path), "%s", b->path);
    else
        larder_store_blob_path(g->app->store, b->digest, path, sizeof(path));
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (g->fd < 0 || fstat(g->fd, &sb) < 0 || (uint64_t)sb.st_size != b->size) {
        larder_err("bundle: export of pin set %s aborted: %s %s %s", g->set, b->path ? "the external data file" : "blob",
                   b->path ? b->path : b->digest, g->fd < 0 ? strerror(errno) : "has another size than its entry says");
        return -1;
    }
    member_name(b, name, sizeof(name));
    g->mem = g->hdr;
    g->mem_left = larder_tar_header(g->hdr, name, b->size, larder_now());
    g->blob_left = b->size;
    EVP_DigestInit_ex(g->md, larder_sha256_md(), NULL);
    return 0;
}

/* the blob's bytes all passed: they must hash to its name */
static int blob_verified(xgen_t *g)
{
    const xblob_t *b = &g->blobs[g->item - 2];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char hex[LARDER_SHA256_HEX];
    EVP_DigestFinal_ex(g->md, md, &n);
    larder_hex(md, 32, hex);
    if (strcmp(hex, b->digest) == 0)
        return 1;
    if (b->path) { /* our own temp file changed under us: nothing to quarantine */
        larder_err("bundle: export of pin set %s aborted: the external data file %s changed while it was sent", g->set,
                   b->path);
        return 0;
    }
    char q[4096] = "";
    int dropped = larder_store_quarantine(g->app->store, b->digest, g->fd, q, sizeof(q));
    larder_err("bundle: export of pin set %s aborted: stored blob %s is corrupt (its bytes hash to %s); blob moved "
               "to quarantine%s%s, %d entr%s dropped: seed the set again before exporting it",
               g->set, b->digest, hex, q[0] ? " as " : "", q, dropped < 0 ? 0 : dropped, dropped == 1 ? "y" : "ies");
    return 0;
}

/* fill buf with the next bytes of the archive; -1: abort the response */
static ssize_t fill(xgen_t *g)
{
    size_t len = 0;
    while (len < BUFSZ && !g->done) {
        if (g->mem_left) {
            size_t n = g->mem_left < BUFSZ - len ? g->mem_left : BUFSZ - len;
            memcpy(g->buf + len, g->mem, n);
            g->mem += n;
            g->mem_left -= n;
            len += n;
            continue;
        }
        if (g->item >= 2 && g->part == 1 && g->blob_left) {
            size_t want = g->blob_left < BUFSZ - len ? (size_t)g->blob_left : BUFSZ - len;
            ssize_t r = pread(g->fd, g->buf + len, want, (off_t)(g->blobs[g->item - 2].size - g->blob_left));
            if (r <= 0) {
                larder_err("bundle: export of pin set %s aborted: reading blob %s failed: %s", g->set,
                           g->blobs[g->item - 2].digest, r < 0 ? strerror(errno) : "the file is shorter than its entry");
                return -1;
            }
            EVP_DigestUpdate(g->md, g->buf + len, (size_t)r);
            len += (size_t)r;
            g->blob_left -= (uint64_t)r;
            if (g->blob_left == 0 && !blob_verified(g))
                return -1; /* the last slice of a bad blob never leaves */
            continue;
        }
        /* the next part */
        if (g->part == 3) {
            g->done = 1;
            continue;
        }
        uint64_t size = g->item == 0 ? g->header_len : g->item == 1 ? g->manifest_len : g->blobs[g->item - 2].size;
        if (g->part == 0) {
            g->part = 1;
            if (g->item < 2) {
                g->mem = g->item == 0 ? g->header_text : g->manifest_text;
                g->mem_left = (size_t)size;
            }
        } else if (g->part == 1) {
            if (g->item >= 2 && size == 0 && !blob_verified(g))
                return -1;
            g->part = 2;
            g->mem = zeros;
            g->mem_left = larder_tar_padding(size);
        } else {
            if (g->fd >= 0) {
                close(g->fd);
                g->fd = -1;
            }
            g->item++;
            g->part = 0;
            if (g->item == 1) {
                g->mem = g->hdr;
                g->mem_left = larder_tar_header(g->hdr, LARDER_BUNDLE_MANIFEST, g->manifest_len, larder_now());
            } else if (g->item - 2 < g->nblobs) {
                if (open_blob(g, g->item - 2) < 0)
                    return -1;
            } else {
                g->mem = zeros;
                g->mem_left = sizeof(zeros);
                g->part = 3;
            }
        }
    }
    return (ssize_t)len;
}

static void xgen_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    xgen_t *g = (xgen_t *)self;
    ssize_t n = fill(g);
    if (n < 0) {
        larder_log_request("-", "GET", "/-/api/v1/pins/.../bundle", 200, "BYPASS", g->sent, -1, "export aborted");
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    g->sent += (uint64_t)n;
    h2o_iovec_t v = h2o_iovec_init(g->buf, (size_t)n);
    if (g->done) {
        larder_info("bundle: pin set %s exported: %zu members after the manifest, %" PRIu64 " bytes", g->set,
                    g->nblobs, g->sent);
        h2o_send(req, &v, 1, H2O_SEND_STATE_FINAL);
        return;
    }
    h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void xgen_stop(h2o_generator_t *self, h2o_req_t *req)
{
    xgen_t *g = (xgen_t *)self;
    if (!g->done)
        larder_warn("bundle: export of pin set %s stopped by the client after %" PRIu64 " of %" PRIu64 " bytes",
                    g->set, g->sent, g->total);
}

static void json_fail(larder_app_t *app, h2o_req_t *req, int status, const char *reason, const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    larder_send_text(app, req, -1, status, reason, "application/json", s, strlen(s));
    free(s);
}

static void collect_free(collect_t *c)
{
    json_decref(c->entries);
    json_decref(c->meta_keys);
    json_decref(c->seen_blobs);
    free(c->blobs);
    for (size_t i = 0; i < c->next; i++) {
        if (c->ext[i].path[0])
            unlink(c->ext[i].path);
        free(c->ext[i].key);
    }
    free(c->ext);
    memset(c, 0, sizeof(*c));
}

/* the set is collected (and its external data made): the manifest, the header, the stream. Takes c over */
static void respond(larder_app_t *app, h2o_req_t *req, const char *name, int head, collect_t *c)
{
    if (c->error[0] || json_array_size(c->entries) == 0) {
        int status = c->error[0] ? (c->conflict ? 409 : 500) : 404;
        larder_warn("bundle: export of pin set %s refused: %s", name, c->error[0] ? c->error : "no such pin set");
        json_fail(app, req, status, status == 409 ? "Conflict" : status == 500 ? "Internal Server Error" : "Not Found",
                  c->error[0] ? c->error : "no such pin set");
        collect_free(c);
        return;
    }
    /* the external members join the blobs (after them), their files now the stream's */
    if (c->next) {
        xblob_t *nb = realloc(c->blobs, (c->nblobs + c->next) * sizeof(*nb));
        if (!nb) {
            json_fail(app, req, 500, "Internal Server Error", "out of memory");
            collect_free(c);
            return;
        }
        c->blobs = nb;
        for (size_t i = 0; i < c->next; i++) {
            xext_t *x = &c->ext[i];
            larder_bundle_entry_set_external(x->json, x->digest, x->size, x->note);
            xblob_t *b = &c->blobs[c->nblobs++];
            memcpy(b->digest, x->digest, LARDER_SHA256_HEX);
            b->size = x->size;
            b->entry = x->index + 1;
            b->path = strdup(x->path);
            if (b->path)
                x->path[0] = 0;
        }
    }
    json_t *meta = collect_meta(c);
    size_t nentries = json_array_size(c->entries);
    json_t *man = json_pack("{s:s, s:O, s:o}", "pin_set", name, "entries", c->entries, "meta", meta);
    xgen_t *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), xgen_dispose);
    memset(g, 0, sizeof(*g));
    g->fd = -1;
    g->super.proceed = xgen_proceed;
    g->super.stop = xgen_stop;
    g->app = app;
    g->req = req;
    snprintf(g->set, sizeof(g->set), "%s", name);
    g->manifest_text = json_dumps(man, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(man);
    size_t nblobs = c->nblobs - c->next;
    uint64_t blob_bytes = c->blob_bytes, ext_bytes = c->ext_bytes;
    size_t next = c->next;
    g->header_text = larder_bundle_header_text(name, larder_now(), nentries, nblobs, blob_bytes);
    g->blobs = c->blobs; /* taken over, with the external files: removed by xgen_dispose */
    g->nblobs = c->nblobs;
    c->blobs = NULL;
    c->nblobs = 0;
    collect_free(c);
    g->md = EVP_MD_CTX_new();
    g->buf = malloc(BUFSZ);
    if (!g->manifest_text || !g->header_text || !g->md || !g->buf) {
        json_fail(app, req, 500, "Internal Server Error", "out of memory making the manifest");
        return;
    }
    g->header_len = strlen(g->header_text);
    g->manifest_len = strlen(g->manifest_text);
    if (g->manifest_len > LARDER_BUNDLE_MANIFEST_MAX) {
        json_fail(app, req, 413, "Payload Too Large", "the set's manifest is larger than a bundle may hold");
        return;
    }
    g->total = larder_tar_member_size(LARDER_BUNDLE_HEADER, g->header_len) +
               larder_tar_member_size(LARDER_BUNDLE_MANIFEST, g->manifest_len) + 2 * LARDER_TAR_BLOCK;
    char bname[LARDER_TAR_NAME_MAX];
    for (size_t i = 0; i < g->nblobs; i++) {
        member_name(&g->blobs[i], bname, sizeof(bname));
        g->total += larder_tar_member_size(bname, g->blobs[i].size);
    }
    g->mem = g->hdr;
    g->mem_left = larder_tar_header(g->hdr, LARDER_BUNDLE_HEADER, g->header_len, larder_now());
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = g->total;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/x-tar"));
    char *cd = h2o_mem_alloc_pool(&req->pool, 128);
    int cdl = snprintf(cd, 128, "attachment; filename=\"%s.larder.tar\"", name);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-disposition"), 0, NULL, cd, (size_t)cdl);
    larder_info("bundle: exporting pin set %s: %zu entries, %zu blobs (%" PRIu64 " bytes), %zu external data files "
                "(%" PRIu64 " bytes), %zu module records",
                name, nentries, nblobs, blob_bytes, next, ext_bytes, json_array_size(meta));
    h2o_start_response(req, &g->super);
    if (head) {
        g->done = 1;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    xgen_proceed(&g->super, req);
}

/* ---- external data: made on a thread of its own while the request waits ---- */

typedef struct xjob {
    pthread_mutex_t mu;
    int refs;     /* the thread and the waiting request */
    int finished; /* the thread is done: c is the request's again */
    larder_app_t *app;
    collect_t c;
    char name[65];
    int head;
} xjob_t;

static void xjob_release(xjob_t *j)
{
    pthread_mutex_lock(&j->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last)
        return;
    collect_free(&j->c); /* removes the files nobody took over */
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* make one entry's file with its module's hook, then hash it; 0, or -1 with c->error */
static int make_external(xjob_t *j, xext_t *x)
{
    const larder_protocol_t *m = larder_protocol_get(x->proto);
    char err[400] = "";
    int fd = larder_store_tmp_create(j->app->store, x->path, sizeof(x->path));
    if (fd < 0) {
        x->path[0] = 0;
        snprintf(j->c.error, sizeof(j->c.error), "cannot create a temp file for the data of %s %.200s: %s", m->name,
                 x->key, strerror(-fd));
        return -1;
    }
    int r = m->bundle_external_export(j->app, x->key, &x->e, fd, x->note, sizeof(x->note), err, sizeof(err));
    if (r == 0) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        char *buf = malloc(BUFSZ);
        uint64_t off = 0;
        ssize_t n = 0;
        if (md && buf) {
            EVP_DigestInit_ex(md, larder_sha256_md(), NULL);
            while ((n = pread(fd, buf, BUFSZ, (off_t)off)) > 0) {
                EVP_DigestUpdate(md, buf, (size_t)n);
                off += (uint64_t)n;
            }
            unsigned char d[EVP_MAX_MD_SIZE];
            unsigned int dl = 0;
            EVP_DigestFinal_ex(md, d, &dl);
            larder_hex(d, 32, x->digest);
        }
        if (!md || !buf || n < 0) {
            snprintf(err, sizeof(err), "reading it back failed: %s", !md || !buf ? "out of memory" : strerror(errno));
            r = -1;
        }
        x->size = off;
        EVP_MD_CTX_free(md);
        free(buf);
    }
    close(fd);
    x->note[sizeof(x->note) - 1] = 0;
    for (char *p = x->note; *p; p++) /* printable, as the manifest's reader wants it */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    if (r < 0) {
        snprintf(j->c.error, sizeof(j->c.error), "cannot export the data of %s %.200s: %.350s", m->name, x->key,
                 err[0] ? err : "the module failed");
        return -1;
    }
    j->c.ext_bytes += x->size;
    return 0;
}

static void *xjob_main(void *arg)
{
    xjob_t *j = arg;
    uint64_t t0 = larder_now_ms();
    for (size_t i = 0; i < j->c.next; i++) {
        pthread_mutex_lock(&j->mu);
        int alone = j->refs == 1; /* the client went away: no need to go on */
        pthread_mutex_unlock(&j->mu);
        if (alone || make_external(j, &j->c.ext[i]) < 0)
            break;
    }
    if (!j->c.error[0])
        larder_info("bundle: export of pin set %s: %zu external data files made in %" PRIu64 " ms (%" PRIu64
                    " bytes, in %s/tmp until sent)",
                    j->name, j->c.next, larder_now_ms() - t0, j->c.ext_bytes, larder_store_data_dir(j->app->store));
    larder_bundles_t *bs = j->app->bundles;
    pthread_mutex_lock(&j->mu);
    j->finished = 1;
    pthread_mutex_unlock(&j->mu);
    xjob_release(j);
    larder_bundles_export_end(bs);
    return NULL;
}

/* the request's side: a timer of its worker's loop polls the job; the pool's dispose lets go of it */
typedef struct xwait {
    h2o_timeout_entry_t timer;
    larder_app_t *app;
    h2o_req_t *req;
    xjob_t *job;
} xwait_t;

static void xwait_dispose(void *p)
{
    xwait_t *w = p;
    if (h2o_timeout_is_linked(&w->timer))
        h2o_timeout_unlink(&w->timer);
    if (w->job)
        xjob_release(w->job);
    w->job = NULL;
}

static void xwait_poll(h2o_timeout_entry_t *entry)
{
    xwait_t *w = H2O_STRUCT_FROM_MEMBER(xwait_t, timer, entry);
    xjob_t *j = w->job;
    pthread_mutex_lock(&j->mu);
    int done = j->finished;
    pthread_mutex_unlock(&j->mu);
    if (!done) {
        h2o_timeout_link(w->req->conn->ctx->loop, &w->req->conn->ctx->hundred_ms_timeout, &w->timer);
        return;
    }
    collect_t c = j->c; /* the thread is gone: the collection is the request's */
    memset(&j->c, 0, sizeof(j->c));
    char name[65];
    int head = j->head;
    snprintf(name, sizeof(name), "%s", j->name);
    w->job = NULL;
    xjob_release(j);
    respond(w->app, w->req, name, head, &c);
}

void larder_bundle_export(larder_app_t *app, h2o_req_t *req, const char *set, size_t setlen)
{
    int head = req->input.method.len == 4 && memcmp(req->input.method.base, "HEAD", 4) == 0;
    if (!head && !(req->input.method.len == 3 && memcmp(req->input.method.base, "GET", 3) == 0)) {
        json_fail(app, req, 405, "Method Not Allowed", "use GET /-/api/v1/pins/<set>/bundle");
        return;
    }
    if (!larder_pin_set_name_ok(set, setlen)) {
        json_fail(app, req, 400, "Bad Request", "pin set names are [A-Za-z0-9._-]{1,64}");
        return;
    }
    char name[65];
    memcpy(name, set, setlen);
    name[setlen] = 0;
    collect_t c = {.app = app, .entries = json_array(), .meta_keys = json_object(), .seen_blobs = json_object()};
    int r = larder_store_each_pin(app->store, name, on_pin, &c);
    if (r < 0 && !c.error[0])
        snprintf(c.error, sizeof(c.error), "metadata store read failed; see the log");
    if (c.error[0] || c.next == 0) {
        respond(app, req, name, head, &c);
        return;
    }
    /* external data to make first: on a thread of its own, the request waits on its loop */
    xjob_t *j = calloc(1, sizeof(*j));
    if (!j || !app->bundles || larder_bundles_export_begin(app->bundles) < 0) {
        free(j);
        snprintf(c.error, sizeof(c.error), "larder is stopping");
        respond(app, req, name, head, &c);
        return;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->refs = 2;
    j->app = app;
    j->c = c;
    j->head = head;
    snprintf(j->name, sizeof(j->name), "%s", name);
    xwait_t *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), xwait_dispose);
    memset(w, 0, sizeof(*w));
    w->app = app;
    w->req = req;
    w->job = j;
    w->timer.cb = xwait_poll;
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, xjob_main, j) != 0) {
        pthread_attr_destroy(&attr);
        larder_bundles_export_end(app->bundles);
        j->refs = 1; /* the request's only */
        pthread_mutex_lock(&j->mu);
        c = j->c;
        memset(&j->c, 0, sizeof(j->c));
        pthread_mutex_unlock(&j->mu);
        snprintf(c.error, sizeof(c.error), "cannot start the export thread");
        respond(app, req, name, head, &c);
        return; /* the job goes with the request's pool */
    }
    pthread_attr_destroy(&attr);
    larder_info("bundle: export of pin set %s: making %zu external data files first", name, c.next);
    h2o_timeout_link(req->conn->ctx->loop, &req->conn->ctx->hundred_ms_timeout, &w->timer);
}
