/* store.h - the cache's persistent state: RocksDB metadata plus content-addressed blob files. */
#ifndef LARDER_STORE_H
#define LARDER_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "util.h"

typedef struct larder_store larder_store_t;

enum {
    LARDER_ENTRY_IMMUTABLE = 1, /* never revalidated */
};

typedef struct larder_entry {
    char digest[LARDER_SHA256_HEX];
    uint64_t size;
    uint64_t fetched_at;  /* seconds; set again by every successful revalidation */
    uint64_t fresh_until; /* seconds: fetched_at + the ttl in force then (informational: freshness is computed
                             from fetched_at and the ttl in force now, see larder_entry_is_fresh) */
    uint64_t atime;       /* last access, coarse (see larder_store_touch) */
    uint32_t flags;
    /* bytes the module keeps outside the blob store for this entry (a git mirror's directory), set by the fetch's
     * transform (larder_fetch_set_external): counted in the protocol's usage and in quota.total like blob bytes.
     * When such an entry is evicted, the module's `evicted` hook (module.h) removes that data. 0 for most */
    uint64_t external;
    /* answers served from the cache (HIT and STALE) since the key was first stored, as last written: the hits since
     * then are counted in memory (larder_store_hits adds them) */
    uint64_t hits;
    char *content_type; /* malloc'd or NULL */
    char *url;
    char *etag;
    char *last_modified;
} larder_entry_t;

typedef struct larder_store_stats {
    uint64_t blob_bytes; /* unique bytes on disk */
    uint64_t blob_count;
    uint64_t external_bytes; /* bytes kept outside the blob store by modules (larder_entry_t.external) */
    uint64_t entry_bytes[LARDER_MAX_PROTO]; /* logical bytes per protocol, external bytes included */
    uint64_t entry_count[LARDER_MAX_PROTO];
    uint64_t evictions[LARDER_MAX_PROTO];
} larder_store_stats_t;

typedef struct larder_fsck_report {
    uint64_t blobs_checked, blobs_corrupt, blobs_orphaned, entries_dropped, tmp_removed;
    uint64_t blobs_unindexed; /* kept without an entry (o/ records: after --repair-db), served by digest */
    uint64_t lru_restored;    /* entries whose LRU key was missing (they could not be evicted): put back */
    int metadata_unreadable;  /* the metadata could not be read in full: nothing was changed */
} larder_fsck_report_t;

/* Opens (creating only when <data>/db is absent or empty); a database RocksDB cannot open is refused with a message
 * naming `larder fsck --repair-db`. The "another larder?" hint only on a LOCK conflict. Its cost does not grow with
 * the number of entries (the counters are stored; a store with the older LRU index is moved once, logged): what
 * reads every key is larder_store_verify. */
int larder_store_open(const larder_config_t *cfg, larder_store_t **out, char *err, size_t errlen);
/* Read every metadata key once with checksums verified: 0, or -EIO with a message naming `larder fsck --repair-db`
 * in err (a damaged table). `larder serve` runs it in a thread of its own beside serving and stops when it fails;
 * `larder fsck` before anything else. stop (may be NULL) is polled: non-zero gives up early (returns 0). */
int larder_store_verify(larder_store_t *st, const _Atomic int *stop, char *err, size_t errlen);
/* RocksDB's repair of <data>/db (the store must not be open anywhere); follow with larder_store_fsck_reindex */
int larder_store_repair_db(const larder_config_t *cfg, char *err, size_t errlen);
void larder_store_close(larder_store_t *st);
const char *larder_store_data_dir(larder_store_t *st);

/* 0 and a filled entry (free with larder_entry_clear), -ENOENT, or another -errno */
int larder_store_get(larder_store_t *st, int proto, const char *key, larder_entry_t *out);
void larder_entry_clear(larder_entry_t *e);
/* immutable, or fetched (or revalidated) less than ttl seconds ago: the protocol's ttl of the current configuration,
 * so that a lowered ttl applies to objects cached before the change */
int larder_entry_is_fresh(const larder_entry_t *e, uint64_t now, uint64_t ttl);

void larder_store_blob_path(larder_store_t *st, const char *digest, char *out, size_t outlen);
/* 1 when a blob of that digest is on disk and referenced (or kept unindexed by fsck --repair-db) */
int larder_store_has_blob(larder_store_t *st, const char *digest, uint64_t *size);

/* create a temp file for a download; returns fd (>=0) and its path, or -errno */
int larder_store_tmp_create(larder_store_t *st, char *path, size_t pathlen);

/* Move a verified, fsync'ed temp file into blobs/ and record the entry (plus an optional pin) in one write
 * batch; replaces any older entry of the key. May evict other entries to honour quotas. 0 or -errno
 * (-ENOSPC when quotas cannot make room: nothing is committed and the temp file is removed). */
int larder_store_commit(larder_store_t *st, int proto, const char *key, const char *tmp_path, const larder_entry_t *e,
                        const char *pin_set);
/* after a 304: new freshness and validators for an existing entry */
int larder_store_refresh(larder_store_t *st, int proto, const char *key, uint64_t fresh_until, const char *etag,
                         const char *last_modified);
/* record an access (a hit): counted in memory, written with the access time at most once a minute per entry */
void larder_store_touch(larder_store_t *st, int proto, const char *key, const larder_entry_t *e);
/* e's hits plus those counted in memory and not written yet */
uint64_t larder_store_hits(larder_store_t *st, int proto, const char *key, const larder_entry_t *e);

/* Remove one entry as eviction does (its blob goes when no other entry references it; a module's external data
 * through its `evicted` hook). 0, -ENOENT, -EBUSY when a pin set names it (nothing changed), or -errno */
int larder_store_delete_entry(larder_store_t *st, int proto, const char *key);

/* make room for `incoming` more bytes; 0, or -ENOSPC when impossible. Evicting an entry with external bytes calls
 * its module's `evicted` hook (with the store's lock held) once the eviction is written */
int larder_store_make_room(larder_store_t *st, int proto, uint64_t incoming);

int larder_store_pin(larder_store_t *st, const char *set, int proto, const char *key);
/* number of entries unpinned, or -ENOENT when the set does not exist */
int larder_store_delete_pin_set(larder_store_t *st, const char *set);
int larder_store_is_pinned(larder_store_t *st, int proto, const char *key);
/* the number of sets pinning the key (0 when none), or -EIO */
int larder_store_pin_count(larder_store_t *st, int proto, const char *key);
/* 1 when `set` pins the key, 0 when not, -EIO */
int larder_store_in_pin_set(larder_store_t *st, const char *set, int proto, const char *key);
/* every pin set's name once, in order (a seek per set, not a walk of its pins); cb returns non-zero to stop */
typedef int (*larder_set_cb)(void *ctx, const char *set);
int larder_store_each_pin_set(larder_store_t *st, larder_set_cb cb, void *ctx);

typedef int (*larder_entry_cb)(void *ctx, int proto, const char *key, const larder_entry_t *e);
/* iterate entries of one protocol (proto < 0: all); the callback returns non-zero to stop */
int larder_store_each_entry(larder_store_t *st, int proto, larder_entry_cb cb, void *ctx);
/* the same in store order, starting after the entry `after` names ("<protocol name>/<key>"; NULL or "": from the
 * first). An `after` that no longer exists resumes at the key that follows it */
int larder_store_each_entry_after(larder_store_t *st, int proto, const char *after, larder_entry_cb cb, void *ctx);
typedef int (*larder_pin_cb)(void *ctx, const char *set, int proto, const char *key);
/* iterate pins of one set (set NULL: all sets) */
int larder_store_each_pin(larder_store_t *st, const char *set, larder_pin_cb cb, void *ctx);

/* Small auxiliary records a protocol keeps beside its entries (e.g. which files a cached index lists and their
 * digests): m/<proto>/<key> -> value. A batch collects puts and lands in one write. */
typedef struct larder_meta_batch larder_meta_batch_t;
larder_meta_batch_t *larder_store_meta_begin(larder_store_t *st);
void larder_meta_batch_put(larder_meta_batch_t *b, int proto, const char *key, const char *val, size_t len);
/* delete the record m/<proto>/<key> when the batch is committed */
void larder_meta_batch_delete(larder_meta_batch_t *b, int proto, const char *key);
/* proto for the core's own records (m/-core/<key>: seed jobs under "jobs/"), in every larder_*meta* call */
#define LARDER_META_CORE (-1)
int larder_store_meta_commit(larder_store_t *st, larder_meta_batch_t *b); /* frees b */
void larder_store_meta_discard(larder_meta_batch_t *b);
/* malloc'd value (NUL-terminated) or NULL */
char *larder_store_meta_get(larder_store_t *st, int proto, const char *key, size_t *len);

/* every module record of proto whose key starts with prefix (the key without m/<proto>/); cb returns non-zero to
 * stop. 0, the callback's value, or -EIO */
typedef int (*larder_meta_cb)(void *ctx, int proto, const char *key, const char *val, size_t len);
int larder_store_each_meta(larder_store_t *st, int proto, const char *prefix, larder_meta_cb cb, void *ctx);

/* bytes free on the data directory's file system (UINT64_MAX when unknown) */
uint64_t larder_store_free_disk(larder_store_t *st);

/* Import of a bundle (appliance/bundle_import.c): every item is pinned in `set`; an item with an entry is added (or
 * replaces an entry of the key with other bytes; one with the same digest is left as it is). blobs: the verified,
 * fsync'ed temp files of the bundle's distinct digests (tmp_path NULL when not kept); one whose digest is already
 * stored is not used (the caller removes every temp file afterwards). meta: module records written with the rest
 * (taken over, may be NULL). Unpinned entries are evicted to make room; everything lands in one write batch, or
 * nothing does: -ENOSPC when it cannot fit, -errno otherwise, with the reason in err. An item whose entry has
 * external bytes (e->external: data its module staged already, put in place after this call) always replaces the
 * key's entry, and the module's `evicted` hook is not called for the entry it replaces: the module's placing of the
 * new data replaces the old. */
typedef struct larder_import_item {
    int proto;
    const char *key;
    const larder_entry_t *e; /* NULL: pinned only (the set names a key that was not cached) */
} larder_import_item_t;
typedef struct larder_import_blob {
    const char *digest;
    uint64_t size;
    const char *tmp_path;
} larder_import_blob_t;
typedef struct larder_import_report {
    uint64_t added, replaced, unchanged, pinned, new_blobs, new_bytes;
} larder_import_report_t;
int larder_store_import(larder_store_t *st, const char *set, const larder_import_item_t *items, size_t n,
                        const larder_import_blob_t *blobs, size_t nblobs, larder_meta_batch_t *meta,
                        larder_import_report_t *rep, char *err, size_t errlen);

void larder_store_get_stats(larder_store_t *st, larder_store_stats_t *out);

/* re-hash every blob, drop corrupt blobs and entries pointing at them, rebuild counters. Unreferenced blobs are
 * deleted, except those kept by a reindex. -EIO with nothing changed when the metadata cannot be read in full. */
int larder_store_fsck(larder_store_t *st, larder_fsck_report_t *report);
/* the same after a repair: every intact blob no entry references is kept and recorded (o/<digest>), so that it
 * is served by digest and adopted by the next commit of the same bytes instead of being deleted */
int larder_store_fsck_reindex(larder_store_t *st, larder_fsck_report_t *report);

/* A blob failed verification while being served: move its file (if it is still the file open as fd; fd < 0:
 * whatever is there) to <data>/quarantine/, drop every entry that references it and its records. Returns the
 * number of entries dropped, -ESTALE when the file was already replaced or moved, or -errno. qpath gets the
 * quarantine path (empty when the file could not be moved and was deleted). */
int larder_store_quarantine(larder_store_t *st, const char *digest, int fd, char *qpath, size_t qlen);

#endif
