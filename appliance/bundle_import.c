/* bundle_import.c - the import API: a bundle uploaded in bounded chunks, checked as it arrives, committed at once.
 *
 *   POST   /-/api/v1/imports[?size=N]          -> 201 {"id", "chunk"}   (409 while another import runs)
 *   PUT    /-/api/v1/imports/<id>?offset=N     body: the next bytes (at most "chunk"); 409 {"offset"} if N is wrong
 *   POST   /-/api/v1/imports/<id>/commit       -> 202; the entries land on a thread of their own
 *   GET    /-/api/v1/imports/<id>              state: receiving | committing | done | failed, counts, error
 *   DELETE /-/api/v1/imports/<id>              abandon it (temp files removed)
 *
 * h2o 2.2.5 buffers a request body whole, so a bundle of any size arrives as a sequence of chunks of at most
 * larder_bundle_chunk_max() bytes, each fed to the incremental bundle reader (bundle.c) on the worker thread: blob
 * bytes go to temp files in <data>/tmp/ while they are hashed, so memory holds one chunk and the manifest, never
 * the bundle. The first wrong byte (a bad digest, a wrong size, a bad format version, a truncated or tampered
 * archive) fails the import at once with a message naming what is wrong, and its temp files are removed; nothing
 * of it was ever visible. The commit fsyncs the temp files and hands everything to larder_store_import (blob files
 * renamed, then entries, pins and module records in one write batch). An entry's external data (a git mirror, member
 * external/<n>) is verified into a temp file the same way; at the commit its module first stages it out of sight
 * (bundle_external_stage: the import fails whole, and nothing changed, when that fails), then the entries are
 * written with the staged data's size as their external bytes, and only then is the data put in place
 * (bundle_external_place; removed instead when the write failed). One import at a time: the state lives in
 * larder_bundles_t (made by `larder serve`), with a reaper thread that fails an import idle for IDLE_SECS. Every
 * request needs the admin token. */
#include "admin.h"
#include "bundle.h"
#include "bundle_export.h"
#include "cache.h"
#include "log.h"
#include "module.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IDLE_SECS 600   /* an import that receives nothing for this long is abandoned */
#define KEEP_SECS 3600  /* a finished import's state stays readable this long */
#define CHUNK_MAX ((uint64_t)4 * 1024 * 1024)

enum { ST_RECEIVING, ST_COMMITTING, ST_DONE, ST_FAILED };
static const char *const state_names[] = {"receiving", "committing", "done", "failed"};

typedef struct session {
    larder_bundles_t *owner;
    char id[33];
    int state;
    uint64_t started, last, size;
    uint64_t offset;
    larder_bundle_reader_t rd;
    char (*tmp)[4096]; /* per manifest blob (rd.m.blobs order): its temp file, "" when none */
    char **xtmp;       /* per manifest entry: the temp file of its external data (malloc'd), or NULL */
    int fd;
    char error[700];
    larder_import_report_t rep;
    pthread_t committer;
    int has_committer;
} session_t;

struct larder_bundles {
    larder_app_t *app;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    session_t *s; /* the current or last import */
    pthread_t reaper;
    int stop;
    int exporting; /* export threads making external data (bundle_export.c), under mu */
};

uint64_t larder_bundle_chunk_max(const larder_config_t *cfg)
{
    uint64_t c = cfg->seed_spec_max < CHUNK_MAX ? cfg->seed_spec_max : CHUNK_MAX;
    return c > cfg->body_max ? c : cfg->body_max;
}

/* ---- temp files ---- */

static void remove_temps(session_t *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    for (size_t i = 0; s->tmp && i < s->rd.m.nblobs; i++)
        if (s->tmp[i][0]) {
            unlink(s->tmp[i]);
            s->tmp[i][0] = 0;
        }
    for (size_t i = 0; s->xtmp && i < s->rd.m.nentries; i++)
        if (s->xtmp[i]) {
            unlink(s->xtmp[i]);
            free(s->xtmp[i]);
            s->xtmp[i] = NULL;
        }
}

static void session_free(session_t *s)
{
    if (!s)
        return;
    if (s->has_committer)
        pthread_join(s->committer, NULL);
    remove_temps(s);
    larder_bundle_reader_free(&s->rd);
    free(s->tmp);
    free(s->xtmp);
    free(s);
}

/* caller holds mu */
static void session_fail(session_t *s, const char *msg)
{
    if (s->state == ST_FAILED)
        return;
    snprintf(s->error, sizeof(s->error), "%s", msg);
    s->state = ST_FAILED;
    remove_temps(s);
    larder_warn("bundle: import %s (pin set %s) refused: %s; nothing was imported", s->id,
                s->rd.m.pin_set[0] ? s->rd.m.pin_set : "?", msg);
}

/* ---- the reader's sink ---- */

static int sink_manifest(void *ctx, larder_bundle_reader_t *r, const larder_bundle_manifest_t *m)
{
    session_t *s = ctx;
    larder_app_t *app = s->owner->app;
    const larder_config_t *cfg = app->cfg;
    /* a first look at the quotas, before gigabytes are uploaded: blobs already stored add nothing */
    uint64_t fresh = 0, per[LARDER_MAX_PROTO] = {0};
    for (size_t i = 0; i < m->nblobs; i++)
        if (!larder_store_has_blob(app->store, m->blobs[i].digest, NULL))
            fresh += m->blobs[i].size;
    for (size_t i = 0; i < m->nentries; i++) {
        if (m->entries[i].cached)
            per[m->entries[i].proto] += m->entries[i].e.size;
        if (m->entries[i].has_external) { /* its data unpacked is about the size of the member */
            per[m->entries[i].proto] += m->entries[i].ext.size;
            fresh += m->entries[i].ext.size;
        }
    }
    char a[32], b[32];
    if (cfg->quota_total && fresh > cfg->quota_total) {
        larder_format_size(fresh, a, sizeof(a));
        larder_format_size(cfg->quota_total, b, sizeof(b));
        return larder_bundle_fail(r, "the bundle does not fit: its new blobs take %s, quota.total is %s", a, b);
    }
    for (int p = 0; p < larder_proto_count(); p++)
        if (cfg->proto[p].quota && per[p] > cfg->proto[p].quota) {
            larder_format_size(per[p], a, sizeof(a));
            larder_format_size(cfg->proto[p].quota, b, sizeof(b));
            return larder_bundle_fail(r, "the bundle does not fit: its %s entries take %s, %s.quota is %s",
                                      larder_proto_name(p), a, larder_proto_name(p), b);
        }
    uint64_t free_b = larder_store_free_disk(app->store);
    if (free_b != UINT64_MAX && free_b < fresh + cfg->min_free) {
        char c[32];
        larder_format_size(fresh, a, sizeof(a));
        larder_format_size(cfg->min_free, b, sizeof(b));
        larder_format_size(free_b, c, sizeof(c));
        return larder_bundle_fail(r, "the bundle does not fit on disk: its new blobs take %s and quota.min_free keeps "
                                     "%s free, but only %s are free",
                                  a, b, c);
    }
    s->tmp = calloc(m->nblobs + 1, sizeof(*s->tmp));
    if (!s->tmp || (m->nexternal && !(s->xtmp = calloc(m->nentries + 1, sizeof(*s->xtmp)))))
        return larder_bundle_fail(r, "out of memory");
    for (size_t i = 0; i < m->nentries; i++) {
        const larder_protocol_t *mod = larder_protocol_get(m->entries[i].proto);
        if (m->entries[i].has_external && (!mod->bundle_external_stage || !mod->bundle_external_place))
            return larder_bundle_fail(r, "%s %.100s carries data outside the blob store, which this larder's %s module "
                                         "cannot import",
                                      mod->name, m->entries[i].key, mod->name);
        if (m->entries[i].has_external && !cfg->proto[m->entries[i].proto].enabled)
            return larder_bundle_fail(r, "%s %.100s carries data of the %s module, which is not enabled here", mod->name,
                                      m->entries[i].key, mod->name);
    }
    larder_info("bundle: import %s: pin set %s from larder %s: %zu entries, %zu blobs (%" PRIu64 " bytes), %zu "
                "external data files (%" PRIu64 " bytes), %zu module records",
                s->id, m->pin_set, m->larder, m->nentries, m->nblobs, m->blob_bytes, m->nexternal, m->external_bytes,
                m->nmeta);
    return 0;
}

static int sink_begin(void *ctx, larder_bundle_reader_t *r, const larder_bundle_blob_t *b)
{
    session_t *s = ctx;
    if (b->entry) {
        char path[4096];
        int fd = larder_store_tmp_create(s->owner->app->store, path, sizeof(path));
        if (fd < 0)
            return larder_bundle_fail(r, "cannot create a temp file for %s%zu: %s", LARDER_BUNDLE_EXTERNAL_PREFIX,
                                      b->entry - 1, strerror(-fd));
        s->xtmp[b->entry - 1] = strdup(path);
        s->fd = fd;
        if (!s->xtmp[b->entry - 1]) {
            unlink(path);
            return larder_bundle_fail(r, "out of memory");
        }
        return 0;
    }
    size_t i = (size_t)(b - s->rd.m.blobs);
    int fd = larder_store_tmp_create(s->owner->app->store, s->tmp[i], sizeof(s->tmp[i]));
    if (fd < 0) {
        s->tmp[i][0] = 0;
        return larder_bundle_fail(r, "cannot create a temp file for blob %s: %s", b->digest, strerror(-fd));
    }
    s->fd = fd;
    return 0;
}

static int sink_data(void *ctx, larder_bundle_reader_t *r, const unsigned char *p, size_t n)
{
    session_t *s = ctx;
    if (larder_write_all(s->fd, (const char *)p, n) < 0)
        return larder_bundle_fail(r, "writing %s %s to %s failed: %s", r->cur->entry ? "external data" : "blob",
                                  r->cur->digest, larder_store_data_dir(s->owner->app->store), strerror(errno));
    return 0;
}

static int sink_end(void *ctx, larder_bundle_reader_t *r, const larder_bundle_blob_t *b)
{
    session_t *s = ctx;
    (void)r;
    (void)b;
    close(s->fd); /* fsynced by the commit, off the worker thread */
    s->fd = -1;
    return 0;
}

/* ---- the commit (its own thread: fsync of every temp file, the modules' staging, one store call, placing) ---- */

/* every staged external data: put in place (keep) or removed; failures are logged (the entries are written) */
static void place_all(session_t *s, char **staged, int keep)
{
    larder_bundle_manifest_t *m = &s->rd.m;
    for (size_t i = 0; staged && i < m->nentries; i++) {
        if (!staged[i])
            continue;
        const larder_protocol_t *mod = larder_protocol_get(m->entries[i].proto);
        char err[400] = "";
        if (mod->bundle_external_place(s->owner->app, m->entries[i].key, staged[i], keep, err, sizeof(err)) < 0)
            larder_err("bundle: import %s: %s the data of %s %s failed: %s", s->id, keep ? "putting in place" : "removing",
                       mod->name, m->entries[i].key, err);
        free(staged[i]);
        staged[i] = NULL;
    }
}

/* stage every entry's external data (its module builds it out of sight); 0, or -1 with err */
static int stage_all(session_t *s, char **staged, char *err, size_t errlen)
{
    larder_bundle_manifest_t *m = &s->rd.m;
    for (size_t i = 0; i < m->nentries; i++) {
        larder_bundle_entry_t *be = &m->entries[i];
        if (!be->has_external)
            continue;
        const larder_protocol_t *mod = larder_protocol_get(be->proto);
        char where[4200], why[400] = "";
        uint64_t ext = 0;
        where[0] = 0;
        if (!s->xtmp || !s->xtmp[i] ||
            mod->bundle_external_stage(s->owner->app, be->key, &be->e, s->xtmp[i], be->ext_note, where, sizeof(where),
                                       &ext, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "the data of %s %.200s could not be unpacked: %.300s", mod->name, be->key,
                     why[0] ? why : "no verified copy");
            return -1;
        }
        staged[i] = strdup(where);
        if (!staged[i]) {
            mod->bundle_external_place(s->owner->app, be->key, where, 0, why, sizeof(why));
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        be->e.external = ext ? ext : 1; /* never 0: an entry with external data says so */
        unlink(s->xtmp[i]); /* unpacked: the space is free again before the commit */
        free(s->xtmp[i]);
        s->xtmp[i] = NULL;
    }
    return 0;
}

static void *commit_main(void *arg)
{
    session_t *s = arg;
    larder_bundles_t *bs = s->owner;
    larder_store_t *st = bs->app->store;
    larder_bundle_manifest_t *m = &s->rd.m;
    char err[600] = "";
    int r = 0;
    uint64_t t0 = larder_now_ms();
    for (size_t i = 0; i < m->nblobs && r == 0; i++) {
        int fd = open(s->tmp[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0) {
            snprintf(err, sizeof(err), "cannot sync the temp file of blob %s: %s", m->blobs[i].digest,
                     strerror(errno));
            r = -1;
        }
        if (fd >= 0)
            close(fd);
    }
    for (size_t i = 0; s->xtmp && i < m->nentries && r == 0; i++) {
        int fd = s->xtmp[i] ? open(s->xtmp[i], O_RDONLY | O_CLOEXEC) : -2;
        if (fd == -1 || (fd >= 0 && fsync(fd) < 0)) {
            snprintf(err, sizeof(err), "cannot sync the temp file of %s%zu: %s", LARDER_BUNDLE_EXTERNAL_PREFIX, i,
                     strerror(errno));
            r = -1;
        }
        if (fd >= 0)
            close(fd);
    }
    larder_import_item_t *items = calloc(m->nentries + 1, sizeof(*items));
    larder_import_blob_t *blobs = calloc(m->nblobs + 1, sizeof(*blobs));
    char **staged = m->nexternal ? calloc(m->nentries + 1, sizeof(*staged)) : NULL;
    if (r == 0 && (!items || !blobs || (m->nexternal && !staged))) {
        snprintf(err, sizeof(err), "out of memory");
        r = -1;
    }
    if (r == 0 && m->nexternal)
        r = stage_all(s, staged, err, sizeof(err));
    if (r == 0) {
        for (size_t i = 0; i < m->nentries; i++) {
            items[i].proto = m->entries[i].proto;
            items[i].key = m->entries[i].key;
            items[i].e = m->entries[i].cached ? &m->entries[i].e : NULL;
        }
        for (size_t i = 0; i < m->nblobs; i++) {
            blobs[i].digest = m->blobs[i].digest;
            blobs[i].size = m->blobs[i].size;
            blobs[i].tmp_path = s->tmp[i];
        }
        larder_meta_batch_t *mb = larder_store_meta_begin(st);
        for (size_t i = 0; i < m->nmeta; i++)
            larder_meta_batch_put(mb, m->meta[i].proto, m->meta[i].key, m->meta[i].val, m->meta[i].len);
        r = larder_store_import(st, m->pin_set, items, m->nentries, blobs, m->nblobs, mb, &s->rep, err, sizeof(err));
    }
    place_all(s, staged, r == 0); /* after the entries, or removed: never a mirror without its entry */
    free(staged);
    free(items);
    free(blobs);
    pthread_mutex_lock(&bs->mu);
    remove_temps(s); /* those renamed into blobs/ are gone already */
    if (r == 0) {
        s->state = ST_DONE;
        larder_info("bundle: import %s: pin set %s imported in %" PRIu64 " ms: %" PRIu64 " entries added, %" PRIu64
                    " replaced, %" PRIu64 " already there, %" PRIu64 " pinned, %" PRIu64 " new blobs (%" PRIu64
                    " bytes), %zu module records",
                    s->id, m->pin_set, larder_now_ms() - t0, s->rep.added, s->rep.replaced, s->rep.unchanged,
                    s->rep.pinned, s->rep.new_blobs, s->rep.new_bytes, m->nmeta);
    } else {
        session_fail(s, err);
    }
    s->last = larder_now();
    pthread_mutex_unlock(&bs->mu);
    return NULL;
}

/* ---- the reaper ---- */

static void *reaper_main(void *arg)
{
    larder_bundles_t *bs = arg;
    pthread_mutex_lock(&bs->mu);
    while (!bs->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        pthread_cond_timedwait(&bs->cv, &bs->mu, &ts);
        session_t *s = bs->s;
        uint64_t now = larder_now();
        if (s && s->state == ST_RECEIVING && now > s->last + IDLE_SECS) {
            char msg[200];
            snprintf(msg, sizeof(msg), "abandoned: no data for %d seconds (at byte %" PRIu64 ")", IDLE_SECS,
                     s->offset);
            session_fail(s, msg);
        }
        if (s && (s->state == ST_DONE || s->state == ST_FAILED) && now > s->last + KEEP_SECS) {
            bs->s = NULL;
            pthread_mutex_unlock(&bs->mu);
            session_free(s);
            pthread_mutex_lock(&bs->mu);
        }
    }
    pthread_mutex_unlock(&bs->mu);
    return NULL;
}

larder_bundles_t *larder_bundles_create(larder_app_t *app)
{
    larder_bundles_t *bs = calloc(1, sizeof(*bs));
    if (!bs)
        return NULL;
    bs->app = app;
    pthread_mutex_init(&bs->mu, NULL);
    pthread_cond_init(&bs->cv, NULL);
    if (pthread_create(&bs->reaper, NULL, reaper_main, bs) != 0) {
        free(bs);
        return NULL;
    }
    return bs;
}

int larder_bundles_export_begin(larder_bundles_t *bs)
{
    pthread_mutex_lock(&bs->mu);
    int ok = !bs->stop;
    if (ok)
        bs->exporting++;
    pthread_mutex_unlock(&bs->mu);
    return ok ? 0 : -1;
}

void larder_bundles_export_end(larder_bundles_t *bs)
{
    pthread_mutex_lock(&bs->mu);
    bs->exporting--;
    pthread_cond_broadcast(&bs->cv);
    pthread_mutex_unlock(&bs->mu);
}

void larder_bundles_destroy(larder_bundles_t *bs)
{
    if (!bs)
        return;
    pthread_mutex_lock(&bs->mu);
    bs->stop = 1;
    pthread_cond_broadcast(&bs->cv);
    while (bs->exporting) /* an export's module hook (git bundle create) runs to its end */
        pthread_cond_wait(&bs->cv, &bs->mu);
    pthread_mutex_unlock(&bs->mu);
    pthread_join(bs->reaper, NULL);
    session_free(bs->s); /* joins a commit in progress, removes temp files */
    pthread_mutex_destroy(&bs->mu);
    pthread_cond_destroy(&bs->cv);
    free(bs);
}

/* ---- HTTP ---- */

static void send_json(larder_app_t *app, h2o_req_t *req, int status, const char *reason, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    larder_send_text(app, req, -1, status, reason, "application/json", s, strlen(s));
    free(s);
}

static void fail(larder_app_t *app, h2o_req_t *req, int status, const char *reason, const char *msg)
{
    send_json(app, req, status, reason, json_pack("{s:s}", "error", msg));
}

static int is_method(h2o_req_t *req, const char *m)
{
    return req->input.method.len == strlen(m) && memcmp(req->input.method.base, m, req->input.method.len) == 0;
}

/* a decimal query parameter; 1 when present and valid */
static int query_u64(h2o_req_t *req, const char *name, uint64_t *out)
{
    if (req->input.query_at == SIZE_MAX)
        return 0;
    const char *q = req->input.path.base + req->input.query_at + 1, *end = req->input.path.base + req->input.path.len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *se = amp ? amp : end;
        if ((size_t)(se - q) > nl && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            uint64_t v = 0;
            const char *d = q + nl + 1;
            if (d == se || se - d > 19)
                return 0;
            for (; d < se; d++) {
                if (*d < '0' || *d > '9')
                    return 0;
                v = v * 10 + (uint64_t)(*d - '0');
            }
            *out = v;
            return 1;
        }
        q = amp ? amp + 1 : end;
    }
    return 0;
}

static json_t *session_json(const session_t *s)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:I}", "id", s->id, "state", state_names[s->state], "offset",
                          (json_int_t)s->offset, "size", (json_int_t)s->size);
    if (s->rd.have_manifest) {
        json_object_set_new(j, "pin_set", json_string(s->rd.m.pin_set));
        json_object_set_new(j, "entries", json_integer((json_int_t)s->rd.m.nentries));
        json_object_set_new(j, "blobs", json_integer((json_int_t)s->rd.m.nblobs));
        json_object_set_new(j, "blob_bytes", json_integer((json_int_t)s->rd.m.blob_bytes));
        json_object_set_new(j, "records", json_integer((json_int_t)s->rd.m.nmeta));
    }
    json_object_set_new(j, "blobs_received", json_integer((json_int_t)s->rd.blobs_done));
    if (s->state == ST_DONE)
        json_object_set_new(j, "result",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "added", (json_int_t)s->rep.added, "replaced",
                                      (json_int_t)s->rep.replaced, "unchanged", (json_int_t)s->rep.unchanged, "pinned",
                                      (json_int_t)s->rep.pinned, "new_blobs", (json_int_t)s->rep.new_blobs,
                                      "new_bytes", (json_int_t)s->rep.new_bytes));
    if (s->state == ST_FAILED)
        json_object_set_new(j, "error", json_string(s->error));
    return j;
}

static void start_import(larder_app_t *app, larder_bundles_t *bs, h2o_req_t *req)
{
    pthread_mutex_lock(&bs->mu);
    session_t *old = bs->s;
    if (old && (old->state == ST_RECEIVING || old->state == ST_COMMITTING)) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "another import (%s) is %s; wait for it to finish, or DELETE /-/api/v1/imports/%s (an idle one is "
                 "abandoned after %d seconds)",
                 old->id, state_names[old->state], old->id, IDLE_SECS);
        pthread_mutex_unlock(&bs->mu);
        fail(app, req, 409, "Conflict", msg);
        return;
    }
    bs->s = NULL;
    pthread_mutex_unlock(&bs->mu);
    session_free(old);
    session_t *s = calloc(1, sizeof(*s));
    unsigned char raw[16];
    if (!s || RAND_bytes(raw, sizeof(raw)) != 1) {
        free(s);
        fail(app, req, 500, "Internal Server Error", "cannot start an import");
        return;
    }
    larder_hex(raw, sizeof(raw), s->id);
    s->owner = bs;
    s->fd = -1;
    s->started = s->last = larder_now();
    query_u64(req, "size", &s->size);
    larder_bundle_sink_t sink = {sink_manifest, sink_begin, sink_data, sink_end, s};
    larder_bundle_reader_init(&s->rd, &sink);
    pthread_mutex_lock(&bs->mu);
    if (bs->s) { /* another POST won the race */
        pthread_mutex_unlock(&bs->mu);
        session_free(s);
        fail(app, req, 409, "Conflict", "another import has just started");
        return;
    }
    bs->s = s;
    pthread_mutex_unlock(&bs->mu);
    larder_info("bundle: import %s started (%" PRIu64 " bytes announced)", s->id, s->size);
    send_json(app, req, 201, "Created",
              json_pack("{s:s, s:I}", "id", s->id, "chunk", (json_int_t)larder_bundle_chunk_max(app->cfg)));
}

static void put_chunk(larder_app_t *app, session_t *s, h2o_req_t *req)
{
    uint64_t off;
    if (!query_u64(req, "offset", &off)) {
        fail(app, req, 400, "Bad Request", "PUT /-/api/v1/imports/<id>?offset=N with the bundle's bytes from N");
        return;
    }
    if (s->state != ST_RECEIVING) {
        json_t *j = session_json(s);
        json_object_set_new(j, "error", json_string(s->state == ST_FAILED ? s->error : "the import takes no more data"));
        send_json(app, req, 409, "Conflict", j);
        return;
    }
    if (off != s->offset) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the import is at byte %" PRIu64 ", not %" PRIu64, s->offset, off);
        send_json(app, req, 409, "Conflict", json_pack("{s:s, s:I}", "error", msg, "offset", (json_int_t)s->offset));
        return;
    }
    size_t n = req->entity.base ? req->entity.len : 0;
    if (n == 0 || n > larder_bundle_chunk_max(app->cfg)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "a chunk has 1 to %" PRIu64 " bytes", larder_bundle_chunk_max(app->cfg));
        fail(app, req, n ? 413 : 400, n ? "Payload Too Large" : "Bad Request", msg);
        return;
    }
    s->last = larder_now();
    if (larder_bundle_feed(&s->rd, req->entity.base, n) < 0) {
        session_fail(s, larder_bundle_error(&s->rd));
        fail(app, req, 422, "Unprocessable Entity", s->error);
        return;
    }
    s->offset += n;
    send_json(app, req, 200, "OK", session_json(s));
}

static void commit(larder_app_t *app, session_t *s, h2o_req_t *req)
{
    if (s->state != ST_RECEIVING) {
        json_t *j = session_json(s);
        if (s->state != ST_FAILED)
            json_object_set_new(j, "error", json_string("the import is already committed"));
        send_json(app, req, 409, "Conflict", j);
        return;
    }
    if (larder_bundle_finish(&s->rd) < 0) {
        session_fail(s, larder_bundle_error(&s->rd));
        fail(app, req, 422, "Unprocessable Entity", s->error);
        return;
    }
    s->state = ST_COMMITTING;
    s->last = larder_now();
    if (pthread_create(&s->committer, NULL, commit_main, s) != 0) {
        session_fail(s, "cannot start the commit thread");
        fail(app, req, 500, "Internal Server Error", s->error);
        return;
    }
    s->has_committer = 1;
    send_json(app, req, 202, "Accepted", session_json(s));
}

void larder_bundle_imports(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    larder_bundles_t *bs = app->bundles;
    if (!bs) {
        fail(app, req, 503, "Service Unavailable", "imports are not available");
        return;
    }
    if (len == 0 || (len == 1 && rest[0] == '/')) {
        if (!is_method(req, "POST")) {
            fail(app, req, 405, "Method Not Allowed", "POST /-/api/v1/imports starts an import");
            return;
        }
        if (larder_admin_authorized(app, req))
            start_import(app, bs, req);
        return;
    }
    if (rest[0] != '/' || len < 33 || (len != 33 && (len != 40 || memcmp(rest + 33, "/commit", 7) != 0))) {
        fail(app, req, 404, "Not Found", "no such import");
        return;
    }
    if (!larder_admin_authorized(app, req))
        return;
    int is_commit = len == 40;
    pthread_mutex_lock(&bs->mu);
    session_t *s = bs->s;
    if (!s || memcmp(s->id, rest + 1, 32) != 0) {
        pthread_mutex_unlock(&bs->mu);
        fail(app, req, 404, "Not Found", "no such import (it may have timed out, or another one replaced it)");
        return;
    }
    if (is_commit && is_method(req, "POST"))
        commit(app, s, req);
    else if (!is_commit && is_method(req, "PUT"))
        put_chunk(app, s, req);
    else if (!is_commit && (is_method(req, "GET") || is_method(req, "HEAD")))
        send_json(app, req, 200, "OK", session_json(s));
    else if (!is_commit && is_method(req, "DELETE")) {
        if (s->state == ST_RECEIVING)
            session_fail(s, "abandoned by the client");
        send_json(app, req, 200, "OK", session_json(s));
    } else
        fail(app, req, 405, "Method Not Allowed", "PUT, GET or DELETE /-/api/v1/imports/<id>; POST .../commit");
    pthread_mutex_unlock(&bs->mu);
}
