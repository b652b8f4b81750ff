/* test_store_lru.c - the LRU index (one run per protocol, a/<proto>/<atime>/<key>): a protocol quota evicts from its
 * own run, quota.total from the oldest of all runs; two entries of one blob evicted in one pass drop both references;
 * a store written with the older index (l/<atime>/<proto>/<key>) is moved on open; fsck puts back a lost LRU key. */
#include "registry.h"
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static int put(larder_store_t *st, int proto, const char *key, size_t n, char fill)
{
    char path[4096];
    int fd = larder_store_tmp_create(st, path, sizeof(path));
    if (fd < 0)
        return fd;
    char *buf = malloc(n);
    memset(buf, fill, n);
    ssize_t w = write(fd, buf, n);
    free(buf);
    close(fd);
    if (w != (ssize_t)n)
        return -EIO;
    larder_entry_t e = {0};
    if (larder_sha256_file(path, e.digest) < 0)
        return -EIO;
    e.size = n;
    e.fetched_at = larder_now();
    e.url = (char *)"http://example.invalid/x";
    return larder_store_commit(st, proto, key, path, &e, NULL);
}

static int has(larder_store_t *st, int proto, const char *key)
{
    larder_entry_t e;
    int r = larder_store_get(st, proto, key, &e);
    if (r == 0)
        larder_entry_clear(&e);
    return r == 0;
}

/* the number of keys under prefix in <dir>/db (the store must be closed) */
static int count_prefix(const char *dir, const char *prefix)
{
    char path[4096], *err = NULL;
    snprintf(path, sizeof(path), "%s/db", dir);
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_t *db = rocksdb_open(o, path, &err);
    if (err) {
        fprintf(stderr, "open %s: %s\n", path, err);
        free(err);
        rocksdb_options_destroy(o);
        return -1;
    }
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
    size_t pl = strlen(prefix);
    int n = 0;
    for (rocksdb_iter_seek(it, prefix, pl); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < pl || memcmp(k, prefix, pl) != 0)
            break;
        n++;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    return n;
}

/* rewrite every a/<proto>/<atime>/<key> as the older l/<atime>/<proto>/<key> (or, drop_one: delete the first a/
 * key instead, as a lost key) */
static void rewrite_index(const char *dir, int drop_one)
{
    char path[4096], *err = NULL;
    snprintf(path, sizeof(path), "%s/db", dir);
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_t *db = rocksdb_open(o, path, &err);
    CHECK(err == NULL);
    if (err) {
        free(err);
        rocksdb_options_destroy(o);
        return;
    }
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
    for (rocksdb_iter_seek(it, "a/", 2); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < 2 || memcmp(k, "a/", 2) != 0)
            break;
        rocksdb_writebatch_delete(b, k, kl);
        if (drop_one)
            break;
        /* a/<proto>/<16 hex>/<key> */
        char buf[1024], nk[1100];
        memcpy(buf, k, kl);
        buf[kl] = 0;
        char *proto = buf + 2, *s1 = strchr(proto, '/');
        *s1 = 0;
        char *atime = s1 + 1;
        atime[16] = 0;
        int n = snprintf(nk, sizeof(nk), "l/%s/%s/%s", atime, proto, atime + 17);
        rocksdb_writebatch_put(b, nk, (size_t)n, "", 0);
    }
    rocksdb_iter_destroy(it);
    rocksdb_write(db, wo, b, &err);
    CHECK(err == NULL);
    free(err);
    rocksdb_writebatch_destroy(b);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_readoptions_destroy(ro);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
}

int main(void)
{
    char dir[] = "/tmp/larder-test-store-lru-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    larder_config_t cfg = {0};
    cfg.data_dir = dir;
    larder_store_t *st;
    char err[1024];
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);

    /* npm's entries are older than files': a files quota evicts files' oldest, never npm's */
    CHECK(put(st, LARDER_PROTO_NPM, "n1", 1000, 'a') == 0);
    CHECK(put(st, LARDER_PROTO_NPM, "n2", 1000, 'b') == 0);
    sleep(1); /* atimes are in seconds: f1 is newer than n1 and n2 */
    CHECK(put(st, LARDER_PROTO_FILES, "f1", 1000, 'c') == 0);
    sleep(1);
    CHECK(put(st, LARDER_PROTO_FILES, "f2", 1000, 'd') == 0);
    cfg.proto[LARDER_PROTO_FILES].quota = 2500;
    CHECK(put(st, LARDER_PROTO_FILES, "f3", 1000, 'e') == 0);
    CHECK(!has(st, LARDER_PROTO_FILES, "f1"));
    CHECK(has(st, LARDER_PROTO_FILES, "f2") && has(st, LARDER_PROTO_FILES, "f3"));
    CHECK(has(st, LARDER_PROTO_NPM, "n1") && has(st, LARDER_PROTO_NPM, "n2"));
    cfg.proto[LARDER_PROTO_FILES].quota = 0;

    /* quota.total takes the oldest of all runs: npm's two (same second: store order), then files' f2 */
    larder_store_stats_t s;
    larder_store_get_stats(st, &s);
    CHECK(s.blob_bytes == 4000);
    cfg.quota_total = 3500;
    CHECK(put(st, LARDER_PROTO_FILES, "f4", 1000, 'f') == 0);
    CHECK(!has(st, LARDER_PROTO_NPM, "n1") && !has(st, LARDER_PROTO_NPM, "n2"));
    CHECK(has(st, LARDER_PROTO_FILES, "f2") && has(st, LARDER_PROTO_FILES, "f3") && has(st, LARDER_PROTO_FILES, "f4"));
    cfg.quota_total = 0;

    /* two entries of one blob (and a third of another) evicted in one pass: both references dropped, the file goes */
    CHECK(put(st, LARDER_PROTO_OCI, "o1", 2000, 's') == 0);
    CHECK(put(st, LARDER_PROTO_OCI, "o2", 2000, 's') == 0);
    CHECK(put(st, LARDER_PROTO_OCI, "o3", 500, 't') == 0);
    larder_entry_t e;
    CHECK(larder_store_get(st, LARDER_PROTO_OCI, "o1", &e) == 0);
    char blob[4096];
    larder_store_blob_path(st, e.digest, blob, sizeof(blob));
    larder_entry_clear(&e);
    struct stat sb;
    CHECK(stat(blob, &sb) == 0);
    cfg.proto[LARDER_PROTO_OCI].quota = 600;
    CHECK(larder_store_make_room(st, LARDER_PROTO_OCI, 0) == 0);
    CHECK(!has(st, LARDER_PROTO_OCI, "o1") && !has(st, LARDER_PROTO_OCI, "o2") && has(st, LARDER_PROTO_OCI, "o3"));
    CHECK(stat(blob, &sb) < 0 && errno == ENOENT);
    cfg.proto[LARDER_PROTO_OCI].quota = 0;
    larder_store_get_stats(st, &s);
    uint64_t blobs_before = s.blob_count, bytes_before = s.blob_bytes;
    larder_fsck_report_t rep;
    CHECK(larder_store_fsck(st, &rep) == 0);
    CHECK(rep.blobs_orphaned == 0 && rep.entries_dropped == 0 && rep.lru_restored == 0);
    larder_store_get_stats(st, &s);
    CHECK(s.blob_count == blobs_before && s.blob_bytes == bytes_before); /* the counters were right */
    larder_store_close(st);

    /* a store with the older index: moved on open, once; eviction then works from the new runs */
    CHECK(count_prefix(dir, "a/") == 4);
    rewrite_index(dir, 0);
    CHECK(count_prefix(dir, "a/") == 0 && count_prefix(dir, "l/") == 4);
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);
    larder_store_close(st);
    CHECK(count_prefix(dir, "a/") == 4 && count_prefix(dir, "l/") == 0);
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);
    cfg.proto[LARDER_PROTO_FILES].quota = 2000; /* f2, f3, f4: the oldest (f2) goes */
    CHECK(larder_store_make_room(st, LARDER_PROTO_FILES, 0) == 0);
    CHECK(!has(st, LARDER_PROTO_FILES, "f2") && has(st, LARDER_PROTO_FILES, "f3") && has(st, LARDER_PROTO_FILES, "f4"));
    cfg.proto[LARDER_PROTO_FILES].quota = 0;
    larder_store_close(st);

    /* a lost LRU key: fsck puts it back, and the entry can be evicted again */
    CHECK(count_prefix(dir, "a/") == 3);
    rewrite_index(dir, 1);
    CHECK(count_prefix(dir, "a/") == 2);
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);
    CHECK(larder_store_fsck(st, &rep) == 0 && rep.lru_restored == 1 && rep.entries_dropped == 0);
    larder_store_close(st);
    CHECK(count_prefix(dir, "a/") == 3);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        failures++;
    if (failures) {
        fprintf(stderr, "test_store_lru: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_store_lru: ok\n");
    return 0;
}
