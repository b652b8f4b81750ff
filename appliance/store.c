/* store.c - RocksDB metadata + content-addressed blob files.
 *
 * Layout under data_dir: db/ (RocksDB), blobs/sha256/ab/<hex> (one file per unique content), tmp/ (downloads
 * in flight; emptied at start-up). Keys in RocksDB:
 *   e/<proto>/<key>        entry (binary, see encode_entry)      b/<digest>       number of entries using the blob
 *   a/<proto>/<atime:016x>/<key>  LRU order for eviction, one run per protocol (a protocol's quota evicts from its
 *                          own run; quota.total and the free-disk watermark merge the runs' heads), so a pass reads
 *                          the keys it evicts, not the store. Stores written before it had one run for all protocols,
 *                          l/<atime:016x>/<proto>/<key>: open moves those keys to a/ once (logged).
 *   u/<proto>, n/<proto>, u/_blobs, n/_blobs, u/_external  byte and entry counters (kept in memory, written with
 *                          every batch that changes them: nothing is counted at open)
 *   p/<set>/<proto>/<key>  membership of a pin set               c/<proto>/<key>  number of sets pinning it
 *   o/<digest>             size of a blob no entry references, kept after `fsck --repair-db` (served by digest)
 * quarantine/<digest>.<time> holds blob files that failed verification while being served (evidence, never read).
 * A metadata read error (iterator or get) is never taken for "absent": open refuses a damaged database, fsck
 * deletes nothing it cannot prove unreferenced, and `fsck --repair-db` is the way back (see docs/operations.md).
 * Readers (lookups) are lock-free; everything that changes counters (commit, evict, pin, fsck) runs under one
 * mutex and lands in one WriteBatch, so a crash leaves either the old or the new state. Blob files are renamed
 * into place before the batch that references them and unlinked only after the batch that drops the last
 * reference, so metadata never points at a missing file except after outside tampering (fsck repairs that).
 * An entry may also account for bytes its module keeps outside the blob store (`external`: a git mirror): they
 * count in the protocol's usage and in quota.total, and evicting such an entry calls the module's `evicted` hook
 * (through the registry, as the core reaches every module) so that the module removes them.
 * An entry's hit count costs no write of its own: hits are counted in memory and land in the entry with its access
 * time, which larder_store_touch writes at most once a minute (and all at once at close or when many keys wait). */
#include "store.h"
#include "log.h"
#include "module.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct larder_store {
    const larder_config_t *cfg;
    char *dir;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    pthread_mutex_t mu; /* serialises every read-modify-write of counters */
    uint64_t usage[LARDER_MAX_PROTO];
    uint64_t count[LARDER_MAX_PROTO];
    uint64_t blob_bytes, blob_count;
    uint64_t ext_bytes; /* the entries' external bytes, all protocols */
    _Atomic uint64_t evictions[LARDER_MAX_PROTO];
    _Atomic uint64_t tmp_seq;
    /* hits counted in memory since the entry was last written: they land with its next access-time write (at
     * most once a minute, see larder_store_touch), or all at once when too many keys wait, or at close */
    pthread_mutex_t hmu; /* taken after mu when both are held */
    pthread_mutex_t smu; /* guards snap, the counters as last read (larder_store_get_stats) */
    larder_store_stats_t snap;
    struct hit_pending *hits[256];
    size_t nhits;
};

typedef struct hit_pending {
    struct hit_pending *next;
    int proto;
    uint64_t n;
    char key[];
} hit_pending_t;

#define HITS_MAX_PENDING 4096

/* ---- key helpers ---- */

static size_t mkkey(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static size_t mkkey(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len)
        return 0;
    return (size_t)n;
}

#define KEYMAX 4096

static int db_get_u64(larder_store_t *st, const char *key, size_t klen, uint64_t *out)
{
    char *errptr = NULL;
    size_t vlen;
    char *v = rocksdb_get(st->db, st->ropts, key, klen, &vlen, &errptr);
    *out = 0;
    if (errptr) {
        larder_err("store: read %.*s: %s", (int)klen, key, errptr);
        free(errptr);
        return -EIO;
    }
    if (!v)
        return -ENOENT;
    char tmp[32];
    size_t n = vlen < sizeof(tmp) - 1 ? vlen : sizeof(tmp) - 1;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    *out = strtoull(tmp, NULL, 10);
    rocksdb_free(v);
    return 0;
}

static void batch_put_u64(rocksdb_writebatch_t *b, const char *key, size_t klen, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    rocksdb_writebatch_put(b, key, klen, tmp, (size_t)n);
}

static int write_batch(larder_store_t *st, rocksdb_writebatch_t *b)
{
    char *errptr = NULL;
    rocksdb_write(st->db, st->wopts, b, &errptr);
    if (errptr) {
        larder_err("store: write batch failed: %s", errptr);
        free(errptr);
        return -EIO;
    }
    return 0;
}

/* 0 when the iteration that just ended saw every key; -EIO (logged) when RocksDB stopped it with an error, which
 * must never be mistaken for the end of the data */
static int iter_end(rocksdb_iterator_t *it, const char *what)
{
    char *errptr = NULL;
    rocksdb_iter_get_error(it, &errptr);
    if (!errptr)
        return 0;
    larder_err("store: %s: metadata read failed: %s (stop larder and run `larder fsck --repair-db`)", what, errptr);
    free(errptr);
    return -EIO;
}

/* ---- entry encoding: fixed header then four length-prefixed strings ---- */

static void put_u64(char **p, uint64_t v) { memcpy(*p, &v, 8); *p += 8; }
static void put_str(char **p, const char *s)
{
    uint32_t n = s ? (uint32_t)strlen(s) : 0;
    memcpy(*p, &n, 4);
    *p += 4;
    if (n)
        memcpy(*p, s, n);
    *p += n;
}

static char *encode_entry(const larder_entry_t *e, size_t *len)
{
    const char *strs[4] = {e->content_type, e->url, e->etag, e->last_modified};
    /* E1, or E2 with the external bytes after the strings (entries without any stay E1), or E3 with the external
     * bytes and the hit count after the strings (entries that were served from the cache) */
    int ver = e->hits ? 3 : e->external ? 2 : 1;
    size_t n = 2 + 64 + 8 * 4 + 4 + (ver == 3 ? 16 : ver == 2 ? 8 : 0);
    for (int i = 0; i < 4; i++)
        n += 4 + (strs[i] ? strlen(strs[i]) : 0);
    char *buf = malloc(n), *p = buf;
    if (!buf)
        return NULL;
    *p++ = 'E';
    *p++ = (char)('0' + ver);
    memcpy(p, e->digest, 64);
    p += 64;
    put_u64(&p, e->size);
    put_u64(&p, e->fetched_at);
    put_u64(&p, e->fresh_until);
    put_u64(&p, e->atime);
    memcpy(p, &e->flags, 4);
    p += 4;
    for (int i = 0; i < 4; i++)
        put_str(&p, strs[i]);
    if (ver >= 2)
        put_u64(&p, e->external);
    if (ver == 3)
        put_u64(&p, e->hits);
    *len = n;
    return buf;
}

static int decode_entry(const char *v, size_t len, larder_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    const char *p = v, *end = v + len;
    if (len < 2 + 64 + 32 + 4 || p[0] != 'E' || p[1] < '1' || p[1] > '3')
        return -EINVAL;
    int ver = p[1] - '0';
    p += 2;
    memcpy(e->digest, p, 64);
    e->digest[64] = 0;
    p += 64;
    memcpy(&e->size, p, 8);
    memcpy(&e->fetched_at, p + 8, 8);
    memcpy(&e->fresh_until, p + 16, 8);
    memcpy(&e->atime, p + 24, 8);
    memcpy(&e->flags, p + 32, 4);
    p += 36;
    char **strs[4] = {&e->content_type, &e->url, &e->etag, &e->last_modified};
    for (int i = 0; i < 4; i++) {
        uint32_t n;
        if (end - p < 4)
            goto bad;
        memcpy(&n, p, 4);
        p += 4;
        if ((size_t)(end - p) < n)
            goto bad;
        if (n) {
            *strs[i] = strndup(p, n);
            p += n;
        }
    }
    if (ver >= 2) {
        if ((size_t)(end - p) < (size_t)8 * (size_t)(ver - 1))
            goto bad;
        memcpy(&e->external, p, 8);
        if (ver == 3)
            memcpy(&e->hits, p + 8, 8);
    }
    return 0;
bad:
    larder_entry_clear(e);
    return -EINVAL;
}

void larder_entry_clear(larder_entry_t *e)
{
    free(e->content_type);
    free(e->url);
    free(e->etag);
    free(e->last_modified);
    e->content_type = e->url = e->etag = e->last_modified = NULL;
}

int larder_entry_is_fresh(const larder_entry_t *e, uint64_t now, uint64_t ttl)
{
    return (e->flags & LARDER_ENTRY_IMMUTABLE) || now < e->fetched_at + ttl;
}

/* ---- paths ---- */

const char *larder_store_data_dir(larder_store_t *st) { return st->dir; }

void larder_store_blob_path(larder_store_t *st, const char *digest, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/blobs/sha256/%.2s/%s", st->dir, digest, digest);
}

static int clean_tmp(larder_store_t *st)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tmp", st->dir);
    DIR *d = opendir(path);
    int removed = 0;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[4400];
        snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
        if (unlink(p) == 0)
            removed++;
    }
    closedir(d);
    if (removed)
        larder_info("store: removed %d orphaned temp file(s) from an earlier run", removed);
    return removed;
}

static void load_counters(larder_store_t *st)
{
    char k[64];
    for (int p = 0; p < larder_proto_count(); p++) {
        size_t n = mkkey(k, sizeof(k), "u/%s", larder_proto_name(p));
        db_get_u64(st, k, n, &st->usage[p]);
        n = mkkey(k, sizeof(k), "n/%s", larder_proto_name(p));
        db_get_u64(st, k, n, &st->count[p]);
    }
    db_get_u64(st, "u/_blobs", 8, &st->blob_bytes);
    db_get_u64(st, "n/_blobs", 8, &st->blob_count);
    db_get_u64(st, "u/_external", 11, &st->ext_bytes);
}

static void batch_counters(larder_store_t *st, rocksdb_writebatch_t *b, int proto)
{
    char k[64];
    size_t n = mkkey(k, sizeof(k), "u/%s", larder_proto_name(proto));
    batch_put_u64(b, k, n, st->usage[proto]);
    n = mkkey(k, sizeof(k), "n/%s", larder_proto_name(proto));
    batch_put_u64(b, k, n, st->count[proto]);
    batch_put_u64(b, "u/_blobs", 8, st->blob_bytes);
    batch_put_u64(b, "n/_blobs", 8, st->blob_count);
    batch_put_u64(b, "u/_external", 11, st->ext_bytes);
}

/* 1 when dir does not exist or holds nothing: the only case where an empty database may be created */
static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT;
    struct dirent *de;
    int empty = 1;
    while (empty && (de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

/* RocksDB reports a held LOCK file as "IO error: While lock file: <dir>/LOCK: Resource temporarily unavailable"
 * (another process) or "IO error: lock hold by current process, ...: <dir>/LOCK: No locks available" */
static int is_lock_conflict(const char *msg)
{
    return strstr(msg, "IO error") && strstr(msg, "/LOCK: ");
}

/* Read every key once: a damaged table or a lost file shows up here instead of as 500s (or worse, as "absent")
 * later. It reads the whole metadata (about 400 bytes an entry), so the daemon runs it beside serving instead of
 * before (larder_store_verify); every read path already takes a read error for an error, never for "absent". */
static int verify_all(larder_store_t *st, const _Atomic int *stop, char *err, size_t errlen)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(ro, 1);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, ro);
    uint64_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t vlen;
        (void)rocksdb_iter_value(it, &vlen);
        if (++n % 4096 == 0 && stop && atomic_load(stop))
            break;
    }
    char *errptr = NULL;
    rocksdb_iter_get_error(it, &errptr);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (errptr) {
        snprintf(err, errlen, "reading %s/db failed after %" PRIu64 " keys: %s", st->dir, n, errptr);
        free(errptr);
        return -EIO;
    }
    return 0;
}

static const char repair_hint[] = "the metadata store is damaged; nothing was changed. Stop every larder using this "
                                  "data_dir and run `larder fsck --repair-db` (see docs/operations.md, "
                                  "\"Recovering a damaged metadata store\")";

static int open_db(larder_store_t *st, int allow_create, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/db", st->dir);
    st->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->opts, allow_create);
    rocksdb_options_set_paranoid_checks(st->opts, 1);
    rocksdb_options_set_max_open_files(st->opts, 256);
    rocksdb_options_set_keep_log_file_num(st->opts, 2);
    rocksdb_options_increase_parallelism(st->opts, 2);
    st->ropts = rocksdb_readoptions_create();
    st->wopts = rocksdb_writeoptions_create();
    char *errptr = NULL;
    st->db = rocksdb_open(st->opts, path, &errptr);
    if (errptr) {
        if (is_lock_conflict(errptr))
            snprintf(err, errlen, "cannot open metadata store %s: %s (is another larder using this data_dir?)", path,
                     errptr);
        else
            snprintf(err, errlen, "cannot open metadata store %s: %s: %s", path, errptr, repair_hint);
        free(errptr);
        st->db = NULL;
        return -EIO;
    }
    return 0;
}

int larder_store_verify(larder_store_t *st, const _Atomic int *stop, char *err, size_t errlen)
{
    char why[1024];
    uint64_t t0 = larder_now_ms();
    if (verify_all(st, stop, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", why, repair_hint);
        return -EIO;
    }
    if (!stop || !atomic_load(stop))
        larder_info("store: metadata verified (every key read) in %" PRIu64 " ms", larder_now_ms() - t0);
    return 0;
}

/* Stores written before the per-protocol LRU runs have l/<atime:016x>/<proto>/<key>: each key is moved to
 * a/<proto>/<atime:016x>/<key> (the put and the delete in one batch, 10000 keys a batch), so a crash part-way leaves
 * every key in one form or the other and the next open finishes the move. Once done, this is one seek per open. */
static int migrate_lru(larder_store_t *st, char *err, size_t errlen)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, ro);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    uint64_t moved = 0, dropped = 0, t0 = larder_now_ms();
    int r = 0, inb = 0;
    char nk[KEYMAX + 64];
    for (rocksdb_iter_seek(it, "l/", 2); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < 2 || memcmp(k, "l/", 2) != 0)
            break;
        if (!moved && !dropped)
            larder_info("store: moving the LRU index to one run per protocol (once, for a store written by an "
                        "earlier version)");
        rocksdb_writebatch_delete(b, k, klen);
        inb++;
        /* l/<16 hex>/<proto>/<key> */
        const char *pn = k + 2 + 17, *end = k + klen;
        const char *sl = klen > 2 + 17 ? memchr(pn, '/', (size_t)(end - pn)) : NULL;
        size_t n = 0;
        if (sl && k[2 + 16] == '/' && sl + 1 < end && klen < KEYMAX)
            n = mkkey(nk, sizeof(nk), "a/%.*s/%.16s/%.*s", (int)(sl - pn), pn, k + 2, (int)(end - sl - 1), sl + 1);
        if (n) {
            rocksdb_writebatch_put(b, nk, n, "", 0);
            moved++;
        } else {
            dropped++; /* not an LRU key: an entry without one is re-indexed by fsck */
        }
        if (inb >= 10000) {
            if ((r = write_batch(st, b)) < 0)
                break;
            rocksdb_writebatch_clear(b);
            inb = 0;
        }
    }
    if (r == 0 && (r = iter_end(it, "moving the LRU index")) == 0 && inb)
        r = write_batch(st, b);
    rocksdb_writebatch_destroy(b);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (r < 0) {
        snprintf(err, errlen, "moving the LRU index of %s/db failed after %" PRIu64 " keys (see the log): %s", st->dir,
                 moved, repair_hint);
        return r;
    }
    if (moved || dropped) {
        /* the deleted l/ keys would stay as tombstones that every later open's seek above (and the metadata check)
         * steps over, one by one, until a compaction reaches them: compact that range now, once */
        rocksdb_compact_range(st->db, "l/", 2, "l0", 2);
        larder_info("store: LRU index moved: %" PRIu64 " keys in %" PRIu64 " ms%s", moved, larder_now_ms() - t0,
                    dropped ? " (malformed keys dropped)" : "");
    }
    return 0;
}

static void stats_locked(larder_store_t *st, larder_store_stats_t *out);

int larder_store_open(const larder_config_t *cfg, larder_store_t **out, char *err, size_t errlen)
{
    larder_store_t *st = calloc(1, sizeof(*st));
    char path[4096];
    st->cfg = cfg;
    st->dir = strdup(cfg->data_dir);
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->hmu, NULL);
    pthread_mutex_init(&st->smu, NULL);
    /* An existing database is never re-created: with CURRENT lost, create_if_missing would start an empty one
     * over the old tables and every blob would then look unreferenced. */
    snprintf(path, sizeof(path), "%s/db", st->dir);
    int new_db = dir_is_empty(path);
    const char *subs[] = {"", "/db", "/blobs/sha256", "/tmp"};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", st->dir, subs[i]);
        int r = larder_mkdirs(path, 0750);
        if (r < 0) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(-r));
            goto fail;
        }
    }
    if (open_db(st, new_db, err, errlen) < 0 || migrate_lru(st, err, errlen) < 0)
        goto fail;
    clean_tmp(st);
    load_counters(st);
    stats_locked(st, &st->snap);
    *out = st;
    return 0;
fail:
    larder_store_close(st);
    return -EIO;
}

int larder_store_repair_db(const larder_config_t *cfg, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/db", cfg->data_dir);
    struct stat sb;
    if (stat(path, &sb) < 0) {
        snprintf(err, errlen, "no metadata store at %s: %s", path, strerror(errno));
        return -ENOENT;
    }
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_paranoid_checks(o, 1);
    char *errptr = NULL;
    larder_info("store: repairing %s (damaged tables are moved to %s/lost/)", path, path);
    rocksdb_repair_db(o, path, &errptr);
    rocksdb_options_destroy(o);
    if (errptr) {
        snprintf(err, errlen, "RocksDB repair of %s failed: %s", path, errptr);
        free(errptr);
        return -EIO;
    }
    return 0;
}

static void hits_flush(larder_store_t *st);

void larder_store_close(larder_store_t *st)
{
    if (!st)
        return;
    if (st->db) {
        hits_flush(st);
        /* the memtable into a table file now: otherwise the next open replays the write-ahead log (up to the
         * memtable's size, 64 MiB of recent writes: seconds) before it can answer anything */
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 1);
        char *errptr = NULL;
        rocksdb_flush(st->db, fo, &errptr);
        rocksdb_flushoptions_destroy(fo);
        if (errptr) {
            larder_warn("store: flushing the metadata at close: %s (the next start replays its log)", errptr);
            free(errptr);
        }
        rocksdb_close(st->db);
    }
    if (st->opts)
        rocksdb_options_destroy(st->opts);
    if (st->ropts)
        rocksdb_readoptions_destroy(st->ropts);
    if (st->wopts)
        rocksdb_writeoptions_destroy(st->wopts);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->hmu);
    pthread_mutex_destroy(&st->smu);
    free(st->dir);
    free(st);
}

/* ---- lookups ---- */

static int get_raw_entry(larder_store_t *st, const char *k, size_t klen, larder_entry_t *out)
{
    char *errptr = NULL;
    size_t vlen;
    char *v = rocksdb_get(st->db, st->ropts, k, klen, &vlen, &errptr);
    if (errptr) {
        larder_err("store: read failed: %s", errptr);
        free(errptr);
        return -EIO;
    }
    if (!v)
        return -ENOENT;
    int r = decode_entry(v, vlen, out);
    rocksdb_free(v);
    if (r < 0)
        larder_err("store: undecodable entry %.*s (run larder fsck)", (int)klen, k);
    return r;
}

int larder_store_get(larder_store_t *st, int proto, const char *key, larder_entry_t *out)
{
    char k[KEYMAX];
    size_t klen = mkkey(k, sizeof(k), "e/%s/%s", larder_proto_name(proto), key);
    if (!klen)
        return -ENAMETOOLONG;
    return get_raw_entry(st, k, klen, out);
}

int larder_store_has_blob(larder_store_t *st, const char *digest, uint64_t *size)
{
    char k[80], path[4096];
    uint64_t refs;
    if (!larder_is_sha256_hex(digest))
        return 0;
    size_t n = mkkey(k, sizeof(k), "b/%s", digest);
    if (db_get_u64(st, k, n, &refs) < 0 || refs == 0) {
        n = mkkey(k, sizeof(k), "o/%s", digest); /* kept by fsck --repair-db: content-addressed, so still valid */
        if (db_get_u64(st, k, n, &refs) < 0)
            return 0;
    }
    larder_store_blob_path(st, digest, path, sizeof(path));
    struct stat sb;
    if (stat(path, &sb) < 0)
        return 0;
    if (size)
        *size = (uint64_t)sb.st_size;
    return 1;
}

int larder_store_tmp_create(larder_store_t *st, char *path, size_t pathlen)
{
    uint64_t seq = atomic_fetch_add(&st->tmp_seq, 1);
    snprintf(path, pathlen, "%s/tmp/%d-%" PRIu64 "-%" PRIu64, st->dir, (int)getpid(), larder_now_ms(), seq);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

/* ---- removal of an entry (caller holds mu); unlinks are collected for after the batch ---- */

typedef struct unlink_list {
    char (*digests)[LARDER_SHA256_HEX];
    size_t n, cap;
} unlink_list_t;

/* the reference counts of blobs that a batch being built has changed already: a batch cannot be read back, so an
 * eviction pass that drops two entries of one blob must see its own first decrement (open addressing by the digest's
 * first 16 hex digits, which are uniformly distributed) */
typedef struct ref_cache {
    struct ref_slot {
        char d[LARDER_SHA256_HEX]; /* "" when free */
        uint64_t refs;
    } *v;
    size_t n, cap; /* cap: 0 or a power of two */
} ref_cache_t;

static struct ref_slot *ref_cache_find(ref_cache_t *c, const char *digest, int add)
{
    if (add && (c->n + 1) * 2 > c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        struct ref_slot *nv = calloc(nc, sizeof(*nv));
        if (!nv)
            return NULL;
        struct ref_slot *old = c->v;
        size_t ocap = c->cap;
        c->v = nv;
        c->cap = nc;
        c->n = 0;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].d[0]) {
                struct ref_slot *s = ref_cache_find(c, old[i].d, 1);
                s->refs = old[i].refs;
            }
        free(old);
    }
    if (!c->cap)
        return NULL;
    uint64_t h = 0;
    for (int i = 0; i < 16; i++)
        h = h << 4 | (uint64_t)(digest[i] <= '9' ? digest[i] - '0' : (digest[i] | 0x20) - 'a' + 10);
    for (size_t i = (size_t)h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        struct ref_slot *s = &c->v[i];
        if (!s->d[0]) {
            if (!add)
                return NULL;
            memcpy(s->d, digest, LARDER_SHA256_HEX - 1);
            s->d[LARDER_SHA256_HEX - 1] = 0;
            c->n++;
            return s;
        }
        if (memcmp(s->d, digest, LARDER_SHA256_HEX - 1) == 0)
            return s;
    }
}

static void ref_cache_free(ref_cache_t *c)
{
    free(c->v);
    memset(c, 0, sizeof(*c));
}

/* rc: the counts this batch has changed (NULL: the batch changes one entry at most) */
static void drop_blob_ref(larder_store_t *st, rocksdb_writebatch_t *b, const char *digest, uint64_t size,
                          unlink_list_t *ul, ref_cache_t *rc)
{
    char k[80];
    size_t n = mkkey(k, sizeof(k), "b/%s", digest);
    uint64_t refs = 0;
    struct ref_slot *slot = rc ? ref_cache_find(rc, digest, 0) : NULL;
    if (slot) {
        if (slot->refs == 0)
            return; /* this batch deletes the blob already (its count was too low: fsck recounts) */
        refs = slot->refs;
    } else if (db_get_u64(st, k, n, &refs) == -EIO) {
        return; /* an unreadable count is not a zero count: the file stays (fsck --repair-db settles it) */
    }
    if (rc && !slot)
        slot = ref_cache_find(rc, digest, 1);
    if (refs <= 1) {
        rocksdb_writebatch_delete(b, k, n);
        if (st->blob_bytes >= size)
            st->blob_bytes -= size;
        if (st->blob_count)
            st->blob_count--;
        if (ul->n == ul->cap) {
            ul->cap = ul->cap ? ul->cap * 2 : 8;
            ul->digests = realloc(ul->digests, ul->cap * sizeof(*ul->digests));
        }
        memcpy(ul->digests[ul->n++], digest, LARDER_SHA256_HEX);
        if (slot)
            slot->refs = 0;
    } else {
        batch_put_u64(b, k, n, refs - 1);
        if (slot)
            slot->refs = refs - 1;
    }
}

static void unlink_blobs(larder_store_t *st, unlink_list_t *ul)
{
    char path[4096];
    for (size_t i = 0; i < ul->n; i++) {
        larder_store_blob_path(st, ul->digests[i], path, sizeof(path));
        unlink(path);
    }
    free(ul->digests);
    ul->digests = NULL;
    ul->n = ul->cap = 0;
}

static uint64_t hits_take(larder_store_t *st, int proto, const char *key);

static void batch_remove_entry(larder_store_t *st, rocksdb_writebatch_t *b, int proto, const char *key,
                               const larder_entry_t *old, unlink_list_t *ul, ref_cache_t *rc)
{
    hits_take(st, proto, key); /* hits of a removed entry are not carried to the key's next entry */
    char k[KEYMAX];
    size_t n = mkkey(k, sizeof(k), "e/%s/%s", larder_proto_name(proto), key);
    rocksdb_writebatch_delete(b, k, n);
    n = mkkey(k, sizeof(k), "a/%s/%016" PRIx64 "/%s", larder_proto_name(proto), old->atime, key);
    rocksdb_writebatch_delete(b, k, n);
    uint64_t logical = old->size + old->external;
    st->usage[proto] = st->usage[proto] >= logical ? st->usage[proto] - logical : 0;
    st->ext_bytes = st->ext_bytes >= old->external ? st->ext_bytes - old->external : 0;
    if (st->count[proto])
        st->count[proto]--;
    drop_blob_ref(st, b, old->digest, old->size, ul, rc);
}

/* ---- quotas and eviction ---- */

static uint64_t disk_free(larder_store_t *st)
{
    struct statvfs sv;
    if (statvfs(st->dir, &sv) < 0)
        return UINT64_MAX;
    return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* on_disk: the part of incoming already written (a module's external bytes): counted by the quotas, not again by
 * the free-disk watermark */
static int over_quota(larder_store_t *st, int proto, uint64_t incoming, uint64_t on_disk, uint64_t *pending_free)
{
    const larder_config_t *c = st->cfg;
    if (c->quota_total && st->blob_bytes + st->ext_bytes + incoming > c->quota_total)
        return 1;
    if (proto >= 0 && c->proto[proto].quota && st->usage[proto] + incoming > c->proto[proto].quota)
        return 2;
    if (c->min_free && disk_free(st) + *pending_free < c->min_free + (incoming - on_disk))
        return 3;
    return 0;
}

/* entries with external bytes that an eviction removed: their modules are told once the eviction is written */
typedef struct evicted_list {
    struct evicted {
        int proto;
        char *key;
    } *v;
    size_t n, cap;
} evicted_list_t;

static void evicted_add(evicted_list_t *l, int proto, const char *key)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        struct evicted *nv = realloc(l->v, nc * sizeof(*nv));
        if (!nv)
            return;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n].proto = proto;
    if ((l->v[l->n].key = strdup(key)))
        l->n++;
}

/* tell each module that its entry is gone (written: ok), then free the list */
static void evicted_notify(larder_store_t *st, evicted_list_t *l, int ok)
{
    for (size_t i = 0; i < l->n; i++) {
        const larder_protocol_t *m = larder_protocol_get(l->v[i].proto);
        if (ok && m && m->evicted)
            m->evicted(st->cfg, l->v[i].key);
        free(l->v[i].key);
    }
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* the head of an LRU run (a/<proto>/<16 hex>/<key>, prefix pfx) past any malformed key, or NULL at its end */
static const char *run_head(rocksdb_iterator_t *it, const char *pfx, size_t pfxlen, size_t *klen, uint64_t *keys_read)
{
    while (rocksdb_iter_valid(it)) {
        const char *k = rocksdb_iter_key(it, klen);
        if (!k || *klen < pfxlen || memcmp(k, pfx, pfxlen) != 0)
            return NULL;
        if (*klen >= pfxlen + 18 && k[pfxlen + 16] == '/')
            return k;
        rocksdb_iter_next(it); /* malformed: no atime and key */
        (*keys_read)++;
    }
    return NULL;
}

/* caller holds mu. Evicts least recently used unpinned entries until `incoming` fits (on_disk of it already
 * written); never (keep_proto, keep_key), the entry being committed (NULL: none) */
static int make_room_locked(larder_store_t *st, int proto, uint64_t incoming, uint64_t on_disk, int keep_proto,
                            const char *keep_key)
{
    uint64_t pending_free = 0;
    int why = over_quota(st, proto, incoming, on_disk, &pending_free);
    if (!why)
        return 0;
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    unlink_list_t ul = {0};
    evicted_list_t el = {0};
    int evicted = 0;
    /* blobs kept by fsck --repair-db that no entry has adopted yet go first (they count in the total only) */
    for (rocksdb_iter_seek(it, "o/", 2); (why == 1 || why == 3) && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < 2 || memcmp(k, "o/", 2) != 0)
            break;
        if (klen != 2 + LARDER_SHA256_HEX - 1)
            continue;
        const char *v = rocksdb_iter_value(it, &vlen);
        char num[32];
        size_t nl = vlen < sizeof(num) - 1 ? vlen : sizeof(num) - 1;
        memcpy(num, v, nl);
        num[nl] = 0;
        uint64_t size = strtoull(num, NULL, 10);
        rocksdb_writebatch_delete(b, k, klen);
        st->blob_bytes = st->blob_bytes >= size ? st->blob_bytes - size : 0;
        if (st->blob_count)
            st->blob_count--;
        if (ul.n == ul.cap) {
            ul.cap = ul.cap ? ul.cap * 2 : 8;
            ul.digests = realloc(ul.digests, ul.cap * sizeof(*ul.digests));
        }
        memcpy(ul.digests[ul.n], k + 2, LARDER_SHA256_HEX - 1);
        ul.digests[ul.n++][LARDER_SHA256_HEX - 1] = 0;
        pending_free += size;
        evicted++;
        larder_info("store: removed unindexed blob %.*s (%" PRIu64 " bytes) to make room", (int)(klen - 2), k + 2, size);
        why = over_quota(st, proto, incoming, on_disk, &pending_free);
    }
    if (why && iter_end(it, "eviction") < 0)
        why = 4;
    /* the LRU runs, one per protocol (a/<proto>/<atime>/<key>): a protocol's quota takes its own run's head, the
     * total and the watermark the oldest of the runs' heads. Only the keys that are evicted (and those skipped:
     * pinned, or the entry being committed) are read, whatever the store's size */
    int np = larder_proto_count();
    rocksdb_iterator_t *runs[LARDER_MAX_PROTO] = {0};
    char pfx[LARDER_MAX_PROTO][64];
    size_t pfxlen[LARDER_MAX_PROTO] = {0};
    ref_cache_t rc = {0};
    uint64_t t0 = larder_now_ms(), keys_read = 0, bytes_evicted = 0;
    int entries_evicted = 0;
    for (int p = 0; p < np && (why == 1 || why == 2 || why == 3); p++) {
        pfxlen[p] = mkkey(pfx[p], sizeof(pfx[p]), "a/%s/", larder_proto_name(p));
        runs[p] = rocksdb_create_iterator(st->db, st->ropts);
        rocksdb_iter_seek(runs[p], pfx[p], pfxlen[p]);
    }
    while (why == 1 || why == 2 || why == 3) {
        /* the run whose head is the oldest (a/<proto>/<16 hex>/...; ties: the lower protocol number) */
        int best = -1;
        const char *bk = NULL;
        size_t bklen = 0;
        for (int p = 0; p < np; p++) {
            if (why == 2 && p != proto)
                continue;
            size_t klen = 0;
            const char *k = run_head(runs[p], pfx[p], pfxlen[p], &klen, &keys_read);
            if (!k)
                continue;
            if (best < 0 || memcmp(k + pfxlen[p], bk + pfxlen[best], 16) < 0) {
                best = p;
                bk = k;
                bklen = klen;
            }
        }
        if (best < 0)
            break;
        int p = best;
        keys_read++;
        char buf[KEYMAX], lk[KEYMAX];
        if (bklen >= sizeof(buf)) {
            rocksdb_iter_next(runs[p]);
            continue;
        }
        memcpy(lk, bk, bklen);
        const char *key = buf;
        memcpy(buf, bk + pfxlen[p] + 17, bklen - pfxlen[p] - 17);
        buf[bklen - pfxlen[p] - 17] = 0;
        rocksdb_iter_next(runs[p]);
        if (keep_key && p == keep_proto && strcmp(key, keep_key) == 0)
            continue;
        if (larder_store_is_pinned(st, p, key))
            continue;
        larder_entry_t old;
        int g = larder_store_get(st, p, key, &old);
        if (g == -ENOENT)
            rocksdb_writebatch_delete(b, lk, bklen); /* dangling LRU key */
        if (g < 0)
            continue;
        size_t before = ul.n;
        batch_remove_entry(st, b, p, key, &old, &ul, &rc);
        if (ul.n > before)
            pending_free += old.size;
        if (old.external) {
            pending_free += old.external;
            evicted_add(&el, p, key);
        }
        atomic_fetch_add(&st->evictions[p], 1);
        evicted++;
        entries_evicted++;
        bytes_evicted += old.size + old.external;
        larder_info("store: evicted %s %s (%" PRIu64 " bytes) to make room", larder_proto_name(p), key,
                    old.size + old.external);
        larder_entry_clear(&old);
        why = over_quota(st, proto, incoming, on_disk, &pending_free);
    }
    ref_cache_free(&rc);
    for (int p = 0; p < np; p++)
        if (runs[p]) {
            if (why && why != 4 && iter_end(runs[p], "eviction") < 0)
                why = 4;
            rocksdb_iter_destroy(runs[p]);
        }
    if (entries_evicted)
        larder_info("store: eviction pass: %d entries (%" PRIu64 " bytes) evicted, %" PRIu64
                    " index keys read, %" PRIu64 " ms",
                    entries_evicted, bytes_evicted, keys_read, larder_now_ms() - t0);
    /* what was evicted before a read error is still consistent; only "every remaining entry is pinned" would be a
     * lie, so the error is reported as such */
    int ierr = why == 4 ? -EIO : 0;
    rocksdb_iter_destroy(it);
    for (int p = 0; p < larder_proto_count(); p++)
        batch_counters(st, b, p);
    int r = evicted ? write_batch(st, b) : 0;
    rocksdb_writebatch_destroy(b);
    if (r == 0)
        unlink_blobs(st, &ul);
    else
        free(ul.digests);
    evicted_notify(st, &el, r == 0);
    if (why && ierr < 0)
        return ierr;
    if (why) {
        const char *what = why == 1 ? "quota.total" : why == 2 ? "the protocol quota" : "the free-disk watermark";
        larder_warn("store: cannot make room for %" PRIu64 " bytes: %s reached and every remaining entry is pinned",
                    incoming, what);
        return -ENOSPC;
    }
    return r;
}

int larder_store_make_room(larder_store_t *st, int proto, uint64_t incoming)
{
    pthread_mutex_lock(&st->mu);
    int r = make_room_locked(st, proto, incoming, 0, -1, NULL);
    pthread_mutex_unlock(&st->mu);
    return r;
}

/* ---- commit ---- */

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static void batch_pin(larder_store_t *st, rocksdb_writebatch_t *b, const char *set, int proto, const char *key)
{
    char k[KEYMAX];
    size_t n = mkkey(k, sizeof(k), "p/%s/%s/%s", set, larder_proto_name(proto), key);
    char *errptr = NULL;
    size_t vlen;
    char *v = rocksdb_get(st->db, st->ropts, k, n, &vlen, &errptr);
    free(errptr);
    if (v) { /* already in this set */
        rocksdb_free(v);
        return;
    }
    rocksdb_writebatch_put(b, k, n, "", 0);
    n = mkkey(k, sizeof(k), "c/%s/%s", larder_proto_name(proto), key);
    uint64_t c = 0;
    db_get_u64(st, k, n, &c);
    batch_put_u64(b, k, n, c + 1);
}

int larder_store_commit(larder_store_t *st, int proto, const char *key, const char *tmp_path, const larder_entry_t *e,
                        const char *pin_set)
{
    char blob[4096], k[KEYMAX];
    int r = 0;
    larder_store_blob_path(st, e->digest, blob, sizeof(blob));
    pthread_mutex_lock(&st->mu);

    larder_entry_t old;
    int had_old = 0;
    uint64_t blob_refs = 0;
    size_t bn = mkkey(k, sizeof(k), "b/%s", e->digest);
    int blob_known = db_get_u64(st, k, bn, &blob_refs) == 0 && blob_refs > 0;
    /* a blob re-indexed by fsck --repair-db is already counted: this entry adopts it */
    char ok_[80];
    uint64_t osize = 0;
    size_t okn = mkkey(ok_, sizeof(ok_), "o/%s", e->digest);
    int unindexed = !blob_known && db_get_u64(st, ok_, okn, &osize) == 0;
    /* the external bytes it adds beyond those of the entry it replaces (never evicted to make room for itself) */
    uint64_t old_external = 0;
    if (e->external && larder_store_get(st, proto, key, &old) == 0) {
        old_external = old.external;
        larder_entry_clear(&old);
    }
    uint64_t ext_growth = e->external > old_external ? e->external - old_external : 0;
    if ((r = make_room_locked(st, proto, (blob_known || unindexed ? 0 : e->size) + ext_growth, ext_growth, proto,
                              key)) < 0) {
        unlink(tmp_path);
        goto out;
    }
    /* eviction may have dropped the old entry of this key or the last other user of this blob */
    had_old = larder_store_get(st, proto, key, &old) == 0;
    int same_blob = had_old && strcmp(old.digest, e->digest) == 0;
    blob_known = db_get_u64(st, k, bn, &blob_refs) == 0 && blob_refs > 0;
    unindexed = !blob_known && db_get_u64(st, ok_, okn, &osize) == 0;
    if (blob_known) {
        unlink(tmp_path); /* identical bytes already stored */
    } else {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/blobs/sha256/%.2s", st->dir, e->digest);
        larder_mkdirs(dir, 0750);
        if (rename(tmp_path, blob) < 0) {
            r = -errno;
            larder_err("store: rename %s -> %s: %s", tmp_path, blob, strerror(errno));
            unlink(tmp_path);
            goto out;
        }
        fsync_dir(dir);
    }

    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    unlink_list_t ul = {0};
    uint64_t kept_hits = had_old ? old.hits + hits_take(st, proto, key) : 0; /* a key fetched again keeps its count */
    if (had_old)
        batch_remove_entry(st, b, proto, key, &old, &ul, NULL);
    /* the new reference; when the old entry used the same blob its ref was just dropped above */
    if (same_blob) {
        /* drop_blob_ref queued an unlink or a decrement for this very blob: undo both */
        if (ul.n && strcmp(ul.digests[ul.n - 1], e->digest) == 0) {
            ul.n--;
            st->blob_bytes += e->size;
            st->blob_count++;
        }
    } else if (unindexed) {
        rocksdb_writebatch_delete(b, ok_, okn); /* the verified download replaced the file: same bytes, now owned */
        if (osize != e->size) {
            st->blob_bytes = st->blob_bytes >= osize ? st->blob_bytes - osize : 0;
            st->blob_bytes += e->size;
        }
    } else if (!blob_known) {
        st->blob_bytes += e->size;
        st->blob_count++;
    }
    uint64_t refs_now = same_blob ? blob_refs : blob_refs + 1;
    batch_put_u64(b, k, bn, refs_now ? refs_now : 1);

    larder_entry_t ne = *e;
    ne.atime = larder_now();
    ne.hits = kept_hits;
    size_t vlen;
    char *v = encode_entry(&ne, &vlen);
    size_t n = mkkey(k, sizeof(k), "e/%s/%s", larder_proto_name(proto), key);
    rocksdb_writebatch_put(b, k, n, v, vlen);
    free(v);
    n = mkkey(k, sizeof(k), "a/%s/%016" PRIx64 "/%s", larder_proto_name(proto), ne.atime, key);
    rocksdb_writebatch_put(b, k, n, "", 0);
    st->usage[proto] += e->size + e->external;
    st->ext_bytes += e->external;
    st->count[proto]++;
    if (pin_set)
        batch_pin(st, b, pin_set, proto, key);
    batch_counters(st, b, proto);
    r = write_batch(st, b);
    rocksdb_writebatch_destroy(b);
    if (r == 0)
        unlink_blobs(st, &ul);
    else
        free(ul.digests);
out:
    if (had_old)
        larder_entry_clear(&old);
    pthread_mutex_unlock(&st->mu);
    return r;
}

static int rewrite_entry(larder_store_t *st, int proto, const char *key, larder_entry_t *e, uint64_t old_atime)
{
    char k[KEYMAX];
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    size_t vlen;
    char *v = encode_entry(e, &vlen);
    size_t n = mkkey(k, sizeof(k), "e/%s/%s", larder_proto_name(proto), key);
    rocksdb_writebatch_put(b, k, n, v, vlen);
    free(v);
    if (old_atime != e->atime) {
        n = mkkey(k, sizeof(k), "a/%s/%016" PRIx64 "/%s", larder_proto_name(proto), old_atime, key);
        rocksdb_writebatch_delete(b, k, n);
        n = mkkey(k, sizeof(k), "a/%s/%016" PRIx64 "/%s", larder_proto_name(proto), e->atime, key);
        rocksdb_writebatch_put(b, k, n, "", 0);
    }
    int r = write_batch(st, b);
    rocksdb_writebatch_destroy(b);
    return r;
}

int larder_store_refresh(larder_store_t *st, int proto, const char *key, uint64_t fresh_until, const char *etag,
                         const char *last_modified)
{
    larder_entry_t e;
    pthread_mutex_lock(&st->mu);
    int r = larder_store_get(st, proto, key, &e);
    if (r == 0) {
        uint64_t old_atime = e.atime;
        e.fresh_until = fresh_until;
        e.fetched_at = larder_now();
        e.atime = e.fetched_at;
        if (etag) {
            free(e.etag);
            e.etag = strdup(etag);
        }
        if (last_modified) {
            free(e.last_modified);
            e.last_modified = strdup(last_modified);
        }
        r = rewrite_entry(st, proto, key, &e, old_atime);
        larder_entry_clear(&e);
    }
    pthread_mutex_unlock(&st->mu);
    return r;
}

/* ---- hits: counted in memory, written with the access time ---- */

static size_t hits_bucket(int proto, const char *key)
{
    uint32_t h = 2166136261U ^ (uint32_t)proto;
    for (const char *c = key; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619U;
    return h % (sizeof(((larder_store_t *)0)->hits) / sizeof(hit_pending_t *));
}

/* +1 for the key; 1 when too many keys wait and everything should be written */
static int hits_add(larder_store_t *st, int proto, const char *key)
{
    size_t bk = hits_bucket(proto, key);
    pthread_mutex_lock(&st->hmu);
    hit_pending_t *h = st->hits[bk];
    while (h && (h->proto != proto || strcmp(h->key, key) != 0))
        h = h->next;
    size_t kl = strlen(key);
    if (!h && (h = malloc(sizeof(*h) + kl + 1))) {
        h->proto = proto;
        h->n = 0;
        memcpy(h->key, key, kl + 1);
        h->next = st->hits[bk];
        st->hits[bk] = h;
        st->nhits++;
    }
    if (h)
        h->n++;
    int full = st->nhits > HITS_MAX_PENDING;
    pthread_mutex_unlock(&st->hmu);
    return full;
}

/* the key's pending hits, forgotten */
static uint64_t hits_take(larder_store_t *st, int proto, const char *key)
{
    uint64_t n = 0;
    pthread_mutex_lock(&st->hmu);
    for (hit_pending_t **pp = &st->hits[hits_bucket(proto, key)]; *pp; pp = &(*pp)->next) {
        hit_pending_t *h = *pp;
        if (h->proto == proto && strcmp(h->key, key) == 0) {
            n = h->n;
            *pp = h->next;
            free(h);
            st->nhits--;
            break;
        }
    }
    pthread_mutex_unlock(&st->hmu);
    return n;
}

uint64_t larder_store_hits(larder_store_t *st, int proto, const char *key, const larder_entry_t *e)
{
    uint64_t n = e->hits;
    pthread_mutex_lock(&st->hmu);
    for (hit_pending_t *h = st->hits[hits_bucket(proto, key)]; h; h = h->next)
        if (h->proto == proto && strcmp(h->key, key) == 0) {
            n += h->n;
            break;
        }
    pthread_mutex_unlock(&st->hmu);
    return n;
}

/* every pending count into its entry, in one write (access times unchanged); caller does not hold mu */
static void hits_flush(larder_store_t *st)
{
    pthread_mutex_lock(&st->mu);
    pthread_mutex_lock(&st->hmu);
    hit_pending_t *all = NULL;
    for (size_t i = 0; i < sizeof(st->hits) / sizeof(st->hits[0]); i++)
        while (st->hits[i]) {
            hit_pending_t *h = st->hits[i];
            st->hits[i] = h->next;
            h->next = all;
            all = h;
        }
    st->nhits = 0;
    pthread_mutex_unlock(&st->hmu);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    int puts = 0;
    while (all) {
        hit_pending_t *h = all;
        all = h->next;
        larder_entry_t e;
        char k[KEYMAX];
        size_t kn = mkkey(k, sizeof(k), "e/%s/%s", larder_proto_name(h->proto), h->key);
        if (kn && get_raw_entry(st, k, kn, &e) == 0) {
            e.hits += h->n;
            size_t vlen;
            char *v = encode_entry(&e, &vlen);
            if (v)
                rocksdb_writebatch_put(b, k, kn, v, vlen);
            free(v);
            puts++;
            larder_entry_clear(&e);
        }
        free(h);
    }
    if (puts)
        write_batch(st, b);
    rocksdb_writebatch_destroy(b);
    pthread_mutex_unlock(&st->mu);
}

void larder_store_touch(larder_store_t *st, int proto, const char *key, const larder_entry_t *seen)
{
    uint64_t now = larder_now();
    if (hits_add(st, proto, key)) {
        hits_flush(st);
        return;
    }
    if (seen->atime + 60 > now)
        return;
    larder_entry_t e;
    pthread_mutex_lock(&st->mu);
    if (larder_store_get(st, proto, key, &e) == 0) {
        uint64_t old_atime = e.atime;
        if (old_atime + 60 <= now) {
            e.atime = now;
            e.hits += hits_take(st, proto, key);
            rewrite_entry(st, proto, key, &e, old_atime);
        }
        larder_entry_clear(&e);
    }
    pthread_mutex_unlock(&st->mu);
}

/* ---- pins ---- */

int larder_store_is_pinned(larder_store_t *st, int proto, const char *key)
{
    char k[KEYMAX];
    uint64_t c = 0;
    size_t n = mkkey(k, sizeof(k), "c/%s/%s", larder_proto_name(proto), key);
    int r = db_get_u64(st, k, n, &c);
    return r == -EIO || (r == 0 && c > 0); /* unreadable: never evict it */
}

int larder_store_pin_count(larder_store_t *st, int proto, const char *key)
{
    char k[KEYMAX];
    uint64_t c = 0;
    size_t n = mkkey(k, sizeof(k), "c/%s/%s", larder_proto_name(proto), key);
    int r = db_get_u64(st, k, n, &c);
    if (r == -EIO)
        return -EIO;
    return r == 0 ? (int)(c > INT32_MAX ? INT32_MAX : c) : 0;
}

int larder_store_in_pin_set(larder_store_t *st, const char *set, int proto, const char *key)
{
    char k[KEYMAX], *errptr = NULL;
    size_t vlen, n = mkkey(k, sizeof(k), "p/%s/%s/%s", set, larder_proto_name(proto), key);
    if (!n)
        return 0;
    char *v = rocksdb_get(st->db, st->ropts, k, n, &vlen, &errptr);
    if (errptr) {
        larder_err("store: read %.*s: %s", (int)n, k, errptr);
        free(errptr);
        return -EIO;
    }
    rocksdb_free(v);
    return v != NULL;
}

int larder_store_each_pin_set(larder_store_t *st, larder_set_cb cb, void *ctx)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    int r = 0;
    rocksdb_iter_seek(it, "p/", 2);
    while (rocksdb_iter_valid(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < 2 || memcmp(k, "p/", 2) != 0)
            break;
        const char *slash = memchr(k + 2, '/', klen - 2);
        char name[256];
        size_t nl = slash ? (size_t)(slash - k - 2) : 0;
        if (!slash || nl == 0 || nl >= sizeof(name) - 1) {
            rocksdb_iter_next(it);
            continue;
        }
        memcpy(name, k + 2, nl);
        name[nl] = 0;
        if ((r = cb(ctx, name)) != 0)
            break;
        /* the first key after every p/<name>/...: '0' follows '/' */
        char next[260];
        size_t xn = mkkey(next, sizeof(next), "p/%s0", name);
        rocksdb_iter_seek(it, next, xn);
    }
    if (r == 0)
        r = iter_end(it, "listing pin sets");
    rocksdb_iter_destroy(it);
    return r;
}

int larder_store_delete_entry(larder_store_t *st, int proto, const char *key)
{
    char k[KEYMAX];
    uint64_t c = 0;
    size_t cn = mkkey(k, sizeof(k), "c/%s/%s", larder_proto_name(proto), key);
    if (!cn)
        return -ENAMETOOLONG;
    larder_entry_t old;
    pthread_mutex_lock(&st->mu);
    int r = db_get_u64(st, k, cn, &c);
    if (r == -EIO || (r == 0 && c > 0)) {
        pthread_mutex_unlock(&st->mu);
        return r == -EIO ? -EIO : -EBUSY;
    }
    if ((r = larder_store_get(st, proto, key, &old)) < 0) {
        pthread_mutex_unlock(&st->mu);
        return r;
    }
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    unlink_list_t ul = {0};
    evicted_list_t el = {0};
    batch_remove_entry(st, b, proto, key, &old, &ul, NULL);
    if (old.external)
        evicted_add(&el, proto, key);
    batch_counters(st, b, proto);
    r = write_batch(st, b);
    rocksdb_writebatch_destroy(b);
    if (r == 0)
        unlink_blobs(st, &ul);
    else
        free(ul.digests);
    evicted_notify(st, &el, r == 0);
    larder_entry_clear(&old);
    pthread_mutex_unlock(&st->mu);
    return r;
}

int larder_store_pin(larder_store_t *st, const char *set, int proto, const char *key)
{
    pthread_mutex_lock(&st->mu);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    batch_pin(st, b, set, proto, key);
    int r = write_batch(st, b);
    rocksdb_writebatch_destroy(b);
    pthread_mutex_unlock(&st->mu);
    return r;
}

int larder_store_delete_pin_set(larder_store_t *st, const char *set)
{
    char prefix[256], k[KEYMAX];
    size_t plen = mkkey(prefix, sizeof(prefix), "p/%s/", set);
    if (!plen)
        return -EINVAL;
    pthread_mutex_lock(&st->mu);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    int count = 0;
    for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *pk = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(pk, prefix, plen) != 0)
            break;
        rocksdb_writebatch_delete(b, pk, klen);
        /* rest is <proto>/<key> */
        size_t n = mkkey(k, sizeof(k), "c/%.*s", (int)(klen - plen), pk + plen);
        uint64_t c = 0;
        db_get_u64(st, k, n, &c);
        if (c <= 1)
            rocksdb_writebatch_delete(b, k, n);
        else
            batch_put_u64(b, k, n, c - 1);
        count++;
    }
    int r = iter_end(it, "deleting a pin set");
    rocksdb_iter_destroy(it);
    if (r == 0) /* a set read only in part is not deleted in part */
        r = count ? write_batch(st, b) : -ENOENT;
    rocksdb_writebatch_destroy(b);
    pthread_mutex_unlock(&st->mu);
    return r < 0 ? r : count;
}

int larder_store_each_pin(larder_store_t *st, const char *set, larder_pin_cb cb, void *ctx)
{
    char prefix[256];
    size_t plen = set ? mkkey(prefix, sizeof(prefix), "p/%s/", set) : mkkey(prefix, sizeof(prefix), "p/");
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    int r = 0;
    for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0 || klen >= KEYMAX)
            break;
        char buf[KEYMAX];
        memcpy(buf, k + 2, klen - 2);
        buf[klen - 2] = 0;
        char *s1 = strchr(buf, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
        if (!s2)
            continue;
        *s1 = *s2 = 0;
        if ((r = cb(ctx, buf, larder_proto_from_name(s1 + 1), s2 + 1)) != 0)
            break;
    }
    if (r == 0)
        r = iter_end(it, "listing pins");
    rocksdb_iter_destroy(it);
    return r;
}

int larder_store_each_entry_after(larder_store_t *st, int proto, const char *after, larder_entry_cb cb, void *ctx)
{
    char prefix[64];
    size_t plen = proto >= 0 ? mkkey(prefix, sizeof(prefix), "e/%s/", larder_proto_name(proto))
                             : mkkey(prefix, sizeof(prefix), "e/");
    char from[KEYMAX];
    size_t flen = after && *after ? mkkey(from, sizeof(from), "e/%s", after) : 0;
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    int r = 0;
    if (flen && (flen < plen || memcmp(from, prefix, plen) < 0))
        flen = 0; /* before this protocol's entries: from its first */
    rocksdb_iter_seek(it, flen ? from : prefix, flen ? flen : plen);
    if (flen && rocksdb_iter_valid(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen == flen && memcmp(k, from, flen) == 0)
            rocksdb_iter_next(it);
    }
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0 || klen >= KEYMAX)
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        char buf[KEYMAX];
        memcpy(buf, k + 2, klen - 2);
        buf[klen - 2] = 0;
        char *slash = strchr(buf, '/');
        if (!slash)
            continue;
        *slash = 0;
        larder_entry_t e;
        if (decode_entry(v, vlen, &e) < 0)
            continue;
        r = cb(ctx, larder_proto_from_name(buf), slash + 1, &e);
        larder_entry_clear(&e);
        if (r)
            break;
    }
    if (r == 0)
        r = iter_end(it, "listing entries");
    rocksdb_iter_destroy(it);
    return r;
}

int larder_store_each_entry(larder_store_t *st, int proto, larder_entry_cb cb, void *ctx)
{
    return larder_store_each_entry_after(st, proto, NULL, cb, ctx);
}

/* ---- quarantine ---- */

int larder_store_quarantine(larder_store_t *st, const char *digest, int fd, char *qpath, size_t qlen)
{
    char blob[4096], qdir[4096], k[KEYMAX];
    if (qlen)
        qpath[0] = 0;
    if (!larder_is_sha256_hex(digest))
        return -EINVAL;
    larder_store_blob_path(st, digest, blob, sizeof(blob));
    snprintf(qdir, sizeof(qdir), "%s/quarantine", st->dir);
    pthread_mutex_lock(&st->mu);
    /* only the very file that was read: a good copy committed since (same name) is left alone */
    struct stat a, b;
    if (stat(blob, &a) < 0 || (fd >= 0 && (fstat(fd, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino))) {
        pthread_mutex_unlock(&st->mu);
        return -ESTALE;
    }
    int r = larder_mkdirs(qdir, 0750);
    char dest[4200];
    snprintf(dest, sizeof(dest), "%s/%s.%" PRIu64, qdir, digest, larder_now_ms());
    if (r == 0 && rename(blob, dest) < 0)
        r = -errno;
    if (r < 0) {
        larder_err("store: cannot move %s to %s: %s; removing it", blob, qdir, strerror(-r));
        unlink(blob);
        dest[0] = 0;
    } else {
        fsync_dir(qdir);
    }
    if (qlen)
        snprintf(qpath, qlen, "%s", dest);

    /* drop every entry that references the digest, then the blob's records */
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    unlink_list_t ul = {0};
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    int dropped = 0;
    /* blob counters change once for the file, whatever the entries' reference counting did */
    uint64_t blob_bytes = st->blob_bytes, blob_count = st->blob_count, refs = 0;
    size_t n = mkkey(k, sizeof(k), "b/%s", digest);
    if (db_get_u64(st, k, n, &refs) == 0 && refs > 0) {
        blob_bytes = blob_bytes >= (uint64_t)a.st_size ? blob_bytes - (uint64_t)a.st_size : 0;
        blob_count = blob_count ? blob_count - 1 : 0;
    }
    for (rocksdb_iter_seek(it, "e/", 2); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *ek = rocksdb_iter_key(it, &klen);
        if (klen < 2 || memcmp(ek, "e/", 2) != 0)
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        /* the digest sits at a fixed place in an encoded entry: no need to decode the others */
        if (vlen < 2 + 64 || memcmp(v + 2, digest, 64) != 0 || klen >= sizeof(k))
            continue;
        larder_entry_t e;
        if (decode_entry(v, vlen, &e) < 0)
            continue;
        memcpy(k, ek + 2, klen - 2);
        k[klen - 2] = 0;
        char *slash = strchr(k, '/');
        int p = slash ? (*slash = 0, larder_proto_from_name(k)) : -1;
        if (p >= 0) {
            /* pins (p/, c/) stay: the next fetch of the key lands in the same sets */
            batch_remove_entry(st, wb, p, slash + 1, &e, &ul, NULL);
            dropped++;
        }
        larder_entry_clear(&e);
    }
    int ierr = iter_end(it, "quarantine");
    rocksdb_iter_destroy(it);
    st->blob_bytes = blob_bytes;
    st->blob_count = blob_count;
    n = mkkey(k, sizeof(k), "b/%s", digest);
    rocksdb_writebatch_delete(wb, k, n);
    uint64_t osize;
    n = mkkey(k, sizeof(k), "o/%s", digest);
    if (db_get_u64(st, k, n, &osize) == 0) {
        rocksdb_writebatch_delete(wb, k, n);
        st->blob_bytes = st->blob_bytes >= osize ? st->blob_bytes - osize : 0;
        if (st->blob_count)
            st->blob_count--;
    }
    for (int p = 0; p < larder_proto_count(); p++)
        batch_counters(st, wb, p);
    r = write_batch(st, wb);
    rocksdb_writebatch_destroy(wb);
    free(ul.digests); /* the file is already in quarantine */
    pthread_mutex_unlock(&st->mu);
    if (r == 0 && ierr < 0)
        r = ierr;
    return r < 0 ? r : dropped;
}

/* ---- auxiliary records ---- */

struct larder_meta_batch {
    rocksdb_writebatch_t *b;
};

larder_meta_batch_t *larder_store_meta_begin(larder_store_t *st)
{
    larder_meta_batch_t *b = malloc(sizeof(*b));
    b->b = rocksdb_writebatch_create();
    return b;
}

/* the section of module records: the module's name, or for the core's own records (LARDER_META_CORE) "-core",
 * which no module can be named */
static const char *meta_owner(int proto)
{
    const char *n = proto == LARDER_META_CORE ? NULL : larder_proto_name(proto);
    return n ? n : "-core";
}

void larder_meta_batch_put(larder_meta_batch_t *b, int proto, const char *key, const char *val, size_t len)
{
    char k[KEYMAX];
    size_t n = mkkey(k, sizeof(k), "m/%s/%s", meta_owner(proto), key);
    if (n)
        rocksdb_writebatch_put(b->b, k, n, val, len);
}

void larder_meta_batch_delete(larder_meta_batch_t *b, int proto, const char *key)
{
    char k[KEYMAX];
    size_t n = mkkey(k, sizeof(k), "m/%s/%s", meta_owner(proto), key);
    if (n)
        rocksdb_writebatch_delete(b->b, k, n);
}

int larder_store_meta_commit(larder_store_t *st, larder_meta_batch_t *b)
{
    int r = write_batch(st, b->b);
    rocksdb_writebatch_destroy(b->b);
    free(b);
    return r;
}

void larder_store_meta_discard(larder_meta_batch_t *b)
{
    rocksdb_writebatch_destroy(b->b);
    free(b);
}

char *larder_store_meta_get(larder_store_t *st, int proto, const char *key, size_t *len)
{
    char k[KEYMAX], *errptr = NULL;
    size_t n = mkkey(k, sizeof(k), "m/%s/%s", meta_owner(proto), key), vlen;
    if (!n)
        return NULL;
    char *v = rocksdb_get(st->db, st->ropts, k, n, &vlen, &errptr);
    free(errptr);
    if (!v)
        return NULL;
    char *out = malloc(vlen + 1);
    memcpy(out, v, vlen);
    out[vlen] = 0;
    rocksdb_free(v);
    if (len)
        *len = vlen;
    return out;
}

static void stats_locked(larder_store_t *st, larder_store_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->blob_bytes = st->blob_bytes;
    out->blob_count = st->blob_count;
    out->external_bytes = st->ext_bytes;
    for (int p = 0; p < larder_proto_count(); p++) {
        out->entry_bytes[p] = st->usage[p];
        out->entry_count[p] = st->count[p];
    }
}

/* The counters as of now, or, while a long operation holds the lock (an eviction pass of many entries, fsck), as
 * of the last time they were read: /-/health, /-/api/v1/stats and /metrics never wait for a pass to end. The
 * eviction counts are always current. */
void larder_store_get_stats(larder_store_t *st, larder_store_stats_t *out)
{
    if (pthread_mutex_trylock(&st->mu) == 0) {
        stats_locked(st, out);
        pthread_mutex_unlock(&st->mu);
        pthread_mutex_lock(&st->smu);
        st->snap = *out;
        pthread_mutex_unlock(&st->smu);
    } else {
        pthread_mutex_lock(&st->smu);
        *out = st->snap;
        pthread_mutex_unlock(&st->smu);
    }
    for (int p = 0; p < larder_proto_count(); p++)
        out->evictions[p] = atomic_load(&st->evictions[p]);
}

/* ---- fsck ---- */

typedef struct digest_set {
    char (*d)[LARDER_SHA256_HEX];
    uint64_t *size;
    uint64_t *refs;
    size_t n, cap;
} digest_set_t;

static int ds_cmp(const void *a, const void *b) { return strcmp(a, b); }

static long ds_find(digest_set_t *s, const char *d)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->d[mid], d);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void ds_add(digest_set_t *s, const char *d, uint64_t size)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->d = realloc(s->d, s->cap * sizeof(*s->d));
        s->size = realloc(s->size, s->cap * sizeof(*s->size));
    }
    memcpy(s->d[s->n], d, LARDER_SHA256_HEX);
    s->d[s->n][LARDER_SHA256_HEX - 1] = 0;
    s->size[s->n] = size;
    s->n++;
}

static void ds_free(digest_set_t *s)
{
    free(s->d);
    free(s->size);
    free(s->refs);
    memset(s, 0, sizeof(*s));
}

/* sort digests together with their sizes; allocate the reference counts */
static void ds_sort(digest_set_t *s)
{
    size_t n = s->n;
    struct pair { char d[LARDER_SHA256_HEX]; uint64_t s; } *ps = malloc((n ? n : 1) * sizeof(*ps));
    for (size_t i = 0; i < n; i++) {
        memcpy(ps[i].d, s->d[i], LARDER_SHA256_HEX);
        ps[i].s = s->size[i];
    }
    qsort(ps, n, sizeof(*ps), ds_cmp);
    for (size_t i = 0; i < n; i++) {
        memcpy(s->d[i], ps[i].d, LARDER_SHA256_HEX);
        s->size[i] = ps[i].s;
    }
    free(ps);
    s->refs = calloc(n ? n : 1, sizeof(uint64_t));
}

/* Everything is read (blob files hashed, every metadata key walked) before anything is changed: a metadata read
 * error ends fsck with -EIO and no file deleted, since a blob can only be called unreferenced when every entry
 * was seen. reindex (after `--repair-db`): blobs no entry references are kept and recorded under o/ instead of
 * being deleted; o/ records from an earlier repair are kept by every fsck. */
static int fsck_run(larder_store_t *st, larder_fsck_report_t *rep, int reindex)
{
    memset(rep, 0, sizeof(*rep));
    char root[4096], path[8192];
    snprintf(root, sizeof(root), "%s/blobs/sha256", st->dir);
    digest_set_t good = {0}, bad = {0}, kept = {0};
    pthread_mutex_lock(&st->mu);

    /* 1. re-hash every blob file; a file whose content does not match its name is removed (in step 4) */
    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char sub[4400];
        snprintf(sub, sizeof(sub), "%s/%s", root, de->d_name);
        DIR *d2 = opendir(sub);
        struct dirent *f;
        while (d2 && (f = readdir(d2))) {
            if (f->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", sub, f->d_name);
            char hex[LARDER_SHA256_HEX];
            rep->blobs_checked++;
            struct stat sb;
            if (!larder_is_sha256_hex(f->d_name) || larder_sha256_file(path, hex) < 0 || strcmp(hex, f->d_name) != 0 ||
                stat(path, &sb) < 0) {
                if (larder_is_sha256_hex(f->d_name))
                    ds_add(&bad, f->d_name, 0);
                else
                    larder_warn("fsck: %s is not a blob (its name is not a sha256): left alone", path);
                continue;
            }
            ds_add(&good, hex, (uint64_t)sb.st_size);
        }
        if (d2)
            closedir(d2);
    }
    if (d)
        closedir(d);
    ds_sort(&good);

    /* 2. walk entries: drop those whose blob is gone or whose size disagrees; count references */
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    uint64_t usage[LARDER_MAX_PROTO] = {0}, count[LARDER_MAX_PROTO] = {0}, external = 0;
    for (rocksdb_iter_seek(it, "e/", 2); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < 2 || memcmp(k, "e/", 2) != 0)
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        larder_entry_t e;
        char buf[KEYMAX];
        if (klen >= sizeof(buf))
            continue;
        memcpy(buf, k + 2, klen - 2);
        buf[klen - 2] = 0;
        char *slash = strchr(buf, '/');
        int p = slash ? (*slash = 0, larder_proto_from_name(buf)) : -1;
        long idx = -1;
        int ok = decode_entry(v, vlen, &e) == 0;
        if (ok)
            idx = ds_find(&good, e.digest);
        if (!ok || p < 0 || idx < 0 || good.size[idx] != e.size) {
            larder_warn("fsck: dropping entry %.*s (blob missing or corrupt)", (int)klen, k);
            rocksdb_writebatch_delete(b, k, klen);
            if (ok) {
                char lk[KEYMAX];
                size_t ln = mkkey(lk, sizeof(lk), "a/%s/%016" PRIx64 "/%s", buf, e.atime, slash + 1);
                rocksdb_writebatch_delete(b, lk, ln);
            }
            rep->entries_dropped++;
        } else {
            /* an entry without its LRU key could never be evicted: put it back */
            char lk[KEYMAX], *gerr = NULL;
            size_t ln = mkkey(lk, sizeof(lk), "a/%s/%016" PRIx64 "/%s", buf, e.atime, slash + 1), lvlen;
            char *lv = ln ? rocksdb_get(st->db, st->ropts, lk, ln, &lvlen, &gerr) : NULL;
            if (ln && !lv && !gerr) {
                rocksdb_writebatch_put(b, lk, ln, "", 0);
                rep->lru_restored++;
            }
            rocksdb_free(lv);
            free(gerr);
            good.refs[idx]++;
            usage[p] += e.size + e.external;
            external += e.external;
            count[p]++;
        }
        if (ok)
            larder_entry_clear(&e);
    }
    int r = iter_end(it, "fsck (entries)");
    rocksdb_iter_destroy(it);

    /* 3. old blob reference counts and re-indexed blobs are rewritten below */
    static const char *const rewritten[] = {"b/", "o/"};
    for (size_t i = 0; r == 0 && i < 2; i++) {
        it = rocksdb_create_iterator(st->db, st->ropts);
        for (rocksdb_iter_seek(it, rewritten[i], 2); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t klen;
            const char *k = rocksdb_iter_key(it, &klen);
            if (klen < 2 || memcmp(k, rewritten[i], 2) != 0)
                break;
            if (i == 1 && klen == 2 + LARDER_SHA256_HEX - 1) {
                char dg[LARDER_SHA256_HEX];
                memcpy(dg, k + 2, LARDER_SHA256_HEX - 1);
                dg[LARDER_SHA256_HEX - 1] = 0;
                ds_add(&kept, dg, 0);
            }
            rocksdb_writebatch_delete(b, k, klen);
        }
        r = iter_end(it, "fsck (blob records)");
        rocksdb_iter_destroy(it);
    }
    if (r < 0) {
        /* nothing is changed on a metadata store that could not be read in full */
        rocksdb_writebatch_destroy(b);
        rep->metadata_unreadable = 1;
        larder_err("fsck: the metadata store could not be read in full; no blob was deleted and nothing was "
                   "changed. Run `larder fsck --repair-db`.");
        pthread_mutex_unlock(&st->mu);
        ds_free(&good);
        ds_free(&bad);
        ds_free(&kept);
        return r;
    }
    ds_sort(&kept);

    /* 4. the repairs: corrupt blobs go, counters are recomputed, unreferenced blobs go unless re-indexed */
    for (size_t i = 0; i < bad.n; i++) {
        larder_store_blob_path(st, bad.d[i], path, sizeof(path));
        larder_warn("fsck: %s does not match its digest: removed", path);
        unlink(path);
        rep->blobs_corrupt++;
    }
    memcpy(st->usage, usage, sizeof(usage));
    memcpy(st->count, count, sizeof(count));
    st->ext_bytes = external;
    st->blob_bytes = st->blob_count = 0;
    for (size_t i = 0; i < good.n; i++) {
        char k[80];
        size_t n;
        if (!good.refs[i]) {
            if (!reindex && ds_find(&kept, good.d[i]) < 0) {
                larder_store_blob_path(st, good.d[i], path, sizeof(path));
                unlink(path);
                rep->blobs_orphaned++;
                continue;
            }
            n = mkkey(k, sizeof(k), "o/%s", good.d[i]);
            batch_put_u64(b, k, n, good.size[i]);
            rep->blobs_unindexed++;
        } else {
            n = mkkey(k, sizeof(k), "b/%s", good.d[i]);
            batch_put_u64(b, k, n, good.refs[i]);
        }
        st->blob_bytes += good.size[i];
        st->blob_count++;
    }
    for (int p = 0; p < larder_proto_count(); p++)
        batch_counters(st, b, p);
    r = write_batch(st, b);
    rocksdb_writebatch_destroy(b);
    pthread_mutex_unlock(&st->mu);
    ds_free(&good);
    ds_free(&bad);
    ds_free(&kept);
    return r;
}

int larder_store_fsck(larder_store_t *st, larder_fsck_report_t *rep) { return fsck_run(st, rep, 0); }

int larder_store_fsck_reindex(larder_store_t *st, larder_fsck_report_t *rep) { return fsck_run(st, rep, 1); }

/* ---- bundles: module records by prefix, and the import of a whole pin set in one batch ---- */

int larder_store_each_meta(larder_store_t *st, int proto, const char *prefix, larder_meta_cb cb, void *ctx)
{
    char pk[KEYMAX];
    size_t plen = mkkey(pk, sizeof(pk), "m/%s/%s", meta_owner(proto), prefix);
    size_t skip = plen - strlen(prefix);
    if (!plen)
        return -ENAMETOOLONG;
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    int r = 0;
    char key[KEYMAX];
    for (rocksdb_iter_seek(it, pk, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, pk, plen) != 0 || klen - skip >= sizeof(key))
            break;
        memcpy(key, k + skip, klen - skip);
        key[klen - skip] = 0;
        const char *v = rocksdb_iter_value(it, &vlen);
        if ((r = cb(ctx, proto, key, v, vlen)) != 0)
            break;
    }
    if (r == 0)
        r = iter_end(it, "reading module records");
    rocksdb_iter_destroy(it);
    return r;
}

uint64_t larder_store_free_disk(larder_store_t *st) { return disk_free(st); }

/* a digest the import touches: the blobs of the bundle, and those of the entries it replaces */
typedef struct imp_blob {
    char digest[LARDER_SHA256_HEX];
    uint64_t size;
    const char *tmp; /* the bundle's verified copy, or NULL */
    uint64_t refs;   /* b/ now */
    int unindexed;   /* o/ record: the file is there, counted, without an entry */
    uint64_t osize;
    long delta;
    int created; /* renamed into blobs/ by this import */
} imp_blob_t;

static imp_blob_t *imp_find(imp_blob_t *v, size_t n, const char *digest)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].digest, digest) == 0)
            return &v[i];
    return NULL;
}

int larder_store_import(larder_store_t *st, const char *set, const larder_import_item_t *items, size_t n,
                        const larder_import_blob_t *blobs, size_t nblobs, larder_meta_batch_t *meta,
                        larder_import_report_t *rep, char *err, size_t errlen)
{
    memset(rep, 0, sizeof(*rep));
    imp_blob_t *bl = calloc(nblobs + n + 1, sizeof(*bl));
    char *change = calloc(n + 1, 1); /* 1: the entry is added or replaced */
    larder_entry_t *olds = calloc(n + 1, sizeof(*olds));
    char *had = calloc(n + 1, 1);
    if (!bl || !change || !olds || !had) {
        free(bl);
        free(change);
        free(olds);
        free(had);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    size_t nb = 0;
    int r = 0;
    unlink_list_t ul = {0};
    evicted_list_t el = {0};
    rocksdb_writebatch_t *b = NULL, *mb = meta ? meta->b : NULL;
    free(meta); /* taken over: its records land with the entries, or not at all */
    pthread_mutex_lock(&st->mu);

    /* what changes, and how many bytes it adds: for the quotas, before anything is written */
    uint64_t new_blob_bytes = 0;
    int64_t growth[LARDER_MAX_PROTO] = {0};
    for (size_t i = 0; i < nblobs; i++) {
        snprintf(bl[nb].digest, sizeof(bl[nb].digest), "%s", blobs[i].digest);
        bl[nb].size = blobs[i].size;
        bl[nb].tmp = blobs[i].tmp_path;
        nb++;
    }
    uint64_t new_external = 0, old_external = 0; /* staged by the modules already: on disk */
    for (int pass = 0; pass < 2; pass++) {
        new_blob_bytes = 0;
        new_external = old_external = 0;
        memset(growth, 0, sizeof(growth));
        for (size_t i = 0; i < n; i++) {
            if (had[i])
                larder_entry_clear(&olds[i]);
            had[i] = 0;
            change[i] = 0;
            if (!items[i].e)
                continue;
            int g = larder_store_get(st, items[i].proto, items[i].key, &olds[i]);
            if (g == -EIO) {
                snprintf(err, errlen, "metadata store read failed (see the log)");
                r = -EIO;
                goto out;
            }
            had[i] = g == 0;
            if (had[i] && strcmp(olds[i].digest, items[i].e->digest) == 0 && olds[i].size == items[i].e->size &&
                !olds[i].external && !items[i].e->external)
                continue; /* the same bytes are there: only pinned */
            change[i] = 1;
            growth[items[i].proto] += (int64_t)(items[i].e->size + items[i].e->external) -
                                      (had[i] ? (int64_t)(olds[i].size + olds[i].external) : 0);
            new_external += items[i].e->external;
            old_external += had[i] ? olds[i].external : 0; /* replaced by the new data: freed */
        }
        for (size_t i = 0; i < nb; i++) {
            char k[80];
            size_t kn = mkkey(k, sizeof(k), "b/%s", bl[i].digest);
            bl[i].refs = 0;
            bl[i].unindexed = 0;
            if (db_get_u64(st, k, kn, &bl[i].refs) == -EIO) {
                snprintf(err, errlen, "metadata store read failed (see the log)");
                r = -EIO;
                goto out;
            }
            kn = mkkey(k, sizeof(k), "o/%s", bl[i].digest);
            if (!bl[i].refs && db_get_u64(st, k, kn, &bl[i].osize) == 0)
                bl[i].unindexed = 1;
            if (!bl[i].refs && !bl[i].unindexed)
                new_blob_bytes += bl[i].size;
        }
        if (pass == 1)
            break;
        /* evict unpinned entries to make room; the bundle's bytes are already on disk (its temp files) */
        uint64_t ext_in = new_external > old_external ? new_external - old_external : 0;
        if ((r = make_room_locked(st, -1, new_blob_bytes + ext_in, new_blob_bytes + ext_in, -1, NULL)) < 0)
            goto quota;
        for (int p = 0; p < larder_proto_count(); p++)
            if (growth[p] > 0 && st->cfg->proto[p].quota &&
                (r = make_room_locked(st, p, (uint64_t)growth[p], (uint64_t)growth[p], -1, NULL)) < 0)
                goto quota;
        /* eviction may have removed entries being replaced, or other users of a blob: look again */
    }

    /* the reference counts: +1 for every new entry's blob, -1 for every replaced entry's */
    for (size_t i = 0; i < n; i++) {
        if (!change[i])
            continue;
        imp_blob_t *nbp = imp_find(bl, nb, items[i].e->digest);
        if (!nbp) {
            snprintf(err, errlen, "internal error: blob %s of %s is not in the bundle", items[i].e->digest, items[i].key);
            r = -EINVAL;
            goto out;
        }
        nbp->delta++;
        if (had[i]) {
            imp_blob_t *ob = imp_find(bl, nb, olds[i].digest);
            if (!ob) {
                ob = &bl[nb++];
                memcpy(ob->digest, olds[i].digest, LARDER_SHA256_HEX);
                ob->size = olds[i].size;
                char k[80];
                size_t kn = mkkey(k, sizeof(k), "b/%s", ob->digest);
                db_get_u64(st, k, kn, &ob->refs);
            }
            ob->delta--;
        }
    }
    /* blob files first (renamed into place before the batch that references them) */
    for (size_t i = 0; i < nb; i++) {
        imp_blob_t *x = &bl[i];
        if (x->refs || x->unindexed || x->delta <= 0)
            continue;
        if (!x->tmp) {
            snprintf(err, errlen, "internal error: no verified copy of blob %s", x->digest);
            r = -EINVAL;
            goto undo;
        }
        char dir[4096], path[4096];
        snprintf(dir, sizeof(dir), "%s/blobs/sha256/%.2s", st->dir, x->digest);
        larder_mkdirs(dir, 0750);
        larder_store_blob_path(st, x->digest, path, sizeof(path));
        if (rename(x->tmp, path) < 0) {
            r = -errno;
            snprintf(err, errlen, "cannot move blob %s into the store: %s", x->digest, strerror(errno));
            goto undo;
        }
        x->created = 1;
        fsync_dir(dir);
    }
    b = mb ? mb : rocksdb_writebatch_create();
    mb = NULL;
    uint64_t now = larder_now();
    for (size_t i = 0; i < n; i++) {
        const larder_import_item_t *it = &items[i];
        char k[KEYMAX];
        if (change[i]) {
            if (had[i]) {
                const larder_entry_t *o = &olds[i];
                size_t kn = mkkey(k, sizeof(k), "a/%s/%016" PRIx64 "/%s", larder_proto_name(it->proto), o->atime,
                                  it->key);
                rocksdb_writebatch_delete(b, k, kn);
                uint64_t logical = o->size + o->external;
                st->usage[it->proto] = st->usage[it->proto] >= logical ? st->usage[it->proto] - logical : 0;
                st->ext_bytes = st->ext_bytes >= o->external ? st->ext_bytes - o->external : 0;
                if (st->count[it->proto])
                    st->count[it->proto]--;
                if (o->external && !it->e->external)
                    evicted_add(&el, it->proto, it->key); /* its module removes the data it kept outside */
                /* (with external data of its own, the caller's module puts it in place of the old data) */
                rep->replaced++;
            } else {
                rep->added++;
            }
            larder_entry_t ne = *it->e;
            ne.atime = now;
            size_t vlen;
            char *v = encode_entry(&ne, &vlen);
            size_t kn = mkkey(k, sizeof(k), "e/%s/%s", larder_proto_name(it->proto), it->key);
            rocksdb_writebatch_put(b, k, kn, v, vlen);
            free(v);
            kn = mkkey(k, sizeof(k), "a/%s/%016" PRIx64 "/%s", larder_proto_name(it->proto), now, it->key);
            rocksdb_writebatch_put(b, k, kn, "", 0);
            st->usage[it->proto] += ne.size + ne.external;
            st->ext_bytes += ne.external;
            st->count[it->proto]++;
        } else if (it->e) {
            rep->unchanged++;
        }
        batch_pin(st, b, set, it->proto, it->key);
        rep->pinned++;
    }
    for (size_t i = 0; i < nb; i++) {
        imp_blob_t *x = &bl[i];
        if (x->delta == 0)
            continue;
        char k[80];
        size_t kn = mkkey(k, sizeof(k), "b/%s", x->digest);
        int64_t fin = (int64_t)x->refs + x->delta;
        if (fin <= 0) {
            rocksdb_writebatch_delete(b, k, kn);
            st->blob_bytes = st->blob_bytes >= x->size ? st->blob_bytes - x->size : 0;
            if (st->blob_count)
                st->blob_count--;
            if (ul.n == ul.cap) {
                ul.cap = ul.cap ? ul.cap * 2 : 8;
                ul.digests = realloc(ul.digests, ul.cap * sizeof(*ul.digests));
            }
            memcpy(ul.digests[ul.n++], x->digest, LARDER_SHA256_HEX);
            continue;
        }
        batch_put_u64(b, k, kn, (uint64_t)fin);
        if (!x->refs && x->unindexed) { /* adopted: same bytes, now with an entry */
            char ok_[80];
            size_t okn = mkkey(ok_, sizeof(ok_), "o/%s", x->digest);
            rocksdb_writebatch_delete(b, ok_, okn);
            if (x->osize != x->size)
                st->blob_bytes = (st->blob_bytes >= x->osize ? st->blob_bytes - x->osize : 0) + x->size;
        } else if (!x->refs) {
            st->blob_bytes += x->size;
            st->blob_count++;
            rep->new_blobs++;
            rep->new_bytes += x->size;
        }
    }
    for (int p = 0; p < larder_proto_count(); p++)
        batch_counters(st, b, p);
    r = write_batch(st, b);
    if (r < 0) {
        snprintf(err, errlen, "writing the metadata failed (see the log); nothing was imported");
        load_counters(st); /* the in-memory counters were moved for a batch that did not land */
        goto undo;
    }
    unlink_blobs(st, &ul);
    goto out;
quota:
    if (r == -ENOSPC)
        snprintf(err, errlen, "the bundle does not fit: its %" PRIu64 " bytes of new blobs exceed what the quotas "
                              "(quota.total, <protocol>.quota) or the free-disk watermark (quota.min_free) allow, even "
                              "after evicting every unpinned entry; nothing was imported",
                 new_blob_bytes);
    else
        snprintf(err, errlen, "making room failed (see the log); nothing was imported");
    goto out;
undo:
    for (size_t i = 0; i < nb; i++) {
        if (!bl[i].created)
            continue;
        char path[4096];
        larder_store_blob_path(st, bl[i].digest, path, sizeof(path));
        unlink(path);
    }
out:
    if (b)
        rocksdb_writebatch_destroy(b);
    if (mb)
        rocksdb_writebatch_destroy(mb);
    free(ul.digests);
    evicted_notify(st, &el, r == 0); /* with the lock held, as module.h promises */
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < n; i++)
        if (had[i])
            larder_entry_clear(&olds[i]);
    free(bl);
    free(change);
    free(olds);
    free(had);
    return r;
}
