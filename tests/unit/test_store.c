/* test_store.c - the store's commit, dedupe, eviction, pinning and fsck, on a temp data dir. */
#include "registry.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

/* write `n` bytes of `fill` to a temp file of the store and commit it under key */
static int put(larder_store_t *st, int proto, const char *key, size_t n, char fill, const char *pin, char *digest)
{
    char path[4096];
    int fd = larder_store_tmp_create(st, path, sizeof(path));
    if (fd < 0)
        return fd;
    char *buf = malloc(n);
    memset(buf, fill, n);
    ssize_t w = write(fd, buf, n);
    free(buf);
    if (w != (ssize_t)n) {
        close(fd);
        return -EIO;
    }
    fsync(fd);
    close(fd);
    larder_entry_t e = {0};
    if (larder_sha256_file(path, e.digest) < 0)
        return -EIO;
    if (digest)
        memcpy(digest, e.digest, LARDER_SHA256_HEX);
    e.size = n;
    e.fetched_at = larder_now();
    e.fresh_until = e.fetched_at + 60;
    e.url = (char *)"http://example.invalid/x";
    e.content_type = (char *)"application/x-test";
    return larder_store_commit(st, proto, key, path, &e, pin);
}

static int count_cb(void *ctx, int proto, const char *key, const larder_entry_t *e)
{
    (*(int *)ctx)++;
    return 0;
}

int main(void)
{
    char dir[] = "/tmp/larder-test-store-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    larder_config_t cfg = {0};
    cfg.data_dir = dir;
    cfg.quota_total = 10ULL * 1024;
    larder_store_t *st;
    char err[1024], d1[LARDER_SHA256_HEX], d2[LARDER_SHA256_HEX], path[4096];
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);

    /* commit and read back */
    CHECK(put(st, LARDER_PROTO_FILES, "a", 1000, 'a', NULL, d1) == 0);
    larder_entry_t e;
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "a", &e) == 0);
    CHECK(e.size == 1000 && strcmp(e.digest, d1) == 0);
    CHECK(e.content_type && strcmp(e.content_type, "application/x-test") == 0);
    larder_entry_clear(&e);
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "nope", &e) == -ENOENT);
    larder_store_blob_path(st, d1, path, sizeof(path));
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size == 1000);

    /* identical bytes under another key and protocol: one blob */
    CHECK(put(st, LARDER_PROTO_NPM, "b", 1000, 'a', NULL, NULL) == 0);
    larder_store_stats_t s;
    larder_store_get_stats(st, &s);
    CHECK(s.blob_count == 1 && s.blob_bytes == 1000);
    CHECK(s.entry_bytes[LARDER_PROTO_FILES] == 1000 && s.entry_bytes[LARDER_PROTO_NPM] == 1000);

    /* replacing a key's content drops the old reference but keeps the blob the other key uses */
    CHECK(put(st, LARDER_PROTO_FILES, "a", 2000, 'b', NULL, d2) == 0);
    CHECK(stat(path, &sb) == 0);
    larder_store_get_stats(st, &s);
    CHECK(s.blob_count == 2 && s.blob_bytes == 3000);

    /* pin "a", then overflow the 10 KiB quota: unpinned entries go first, pinned ones stay */
    CHECK(larder_store_pin(st, "set1", LARDER_PROTO_FILES, "a") == 0);
    CHECK(larder_store_is_pinned(st, LARDER_PROTO_FILES, "a"));
    for (int i = 0; i < 8; i++) {
        char key[16];
        snprintf(key, sizeof(key), "f%d", i);
        CHECK(put(st, LARDER_PROTO_FILES, key, 1500, (char)('c' + i), NULL, NULL) == 0);
    }
    larder_store_get_stats(st, &s);
    CHECK(s.blob_bytes <= cfg.quota_total);
    CHECK(s.evictions[LARDER_PROTO_FILES] + s.evictions[LARDER_PROTO_NPM] > 0);
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "a", &e) == 0);
    larder_entry_clear(&e);
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "f7", &e) == 0);
    larder_entry_clear(&e);
    /* every blob file left on disk is accounted for */
    {
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "test $(find %s/blobs -type f | wc -l) -eq %llu", dir,
                 (unsigned long long)s.blob_count);
        CHECK(system(cmd) == 0);
    }

    /* an object bigger than what unpinned entries can free is refused, nothing committed */
    CHECK(larder_store_pin(st, "set1", LARDER_PROTO_FILES, "f7") == 0);
    CHECK(put(st, LARDER_PROTO_FILES, "huge", 9000, 'z', NULL, NULL) == -ENOSPC);
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "huge", &e) == -ENOENT);

    /* deleting the set unpins */
    CHECK(larder_store_delete_pin_set(st, "set1") == 2);
    CHECK(!larder_store_is_pinned(st, LARDER_PROTO_FILES, "a"));
    CHECK(larder_store_delete_pin_set(st, "set1") == -ENOENT);

    /* fsck: clean, then corrupt one blob and remove another's file */
    larder_fsck_report_t rep;
    CHECK(larder_store_fsck(st, &rep) == 0);
    CHECK(rep.blobs_corrupt == 0 && rep.entries_dropped == 0);
    larder_store_blob_path(st, d2, path, sizeof(path));
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "X", 1, 10) == 1);
    close(fd);
    int before = 0, after = 0;
    larder_store_each_entry(st, -1, count_cb, &before);
    CHECK(larder_store_fsck(st, &rep) == 0);
    CHECK(rep.blobs_corrupt == 1 && rep.entries_dropped == 1);
    larder_store_each_entry(st, -1, count_cb, &after);
    CHECK(after == before - 1);
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "a", &e) == -ENOENT);
    CHECK(larder_store_fsck(st, &rep) == 0);
    CHECK(rep.blobs_corrupt == 0 && rep.entries_dropped == 0 && rep.blobs_orphaned == 0);

    /* restart: counters and entries survive, orphaned temp files are removed */
    larder_store_get_stats(st, &s);
    uint64_t bytes = s.blob_bytes;
    int tfd = larder_store_tmp_create(st, path, sizeof(path));
    CHECK(tfd >= 0);
    close(tfd);
    larder_store_close(st);
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);
    CHECK(access(path, F_OK) < 0);
    larder_store_get_stats(st, &s);
    CHECK(s.blob_bytes == bytes);

    /* quarantine: the file moves, every entry naming the digest goes, counters follow; pins stay */
    char dq[LARDER_SHA256_HEX];
    CHECK(put(st, LARDER_PROTO_FILES, "q1", 700, 'q', "qset", dq) == 0);
    CHECK(put(st, LARDER_PROTO_NPM, "q2", 700, 'q', NULL, NULL) == 0);
    larder_store_get_stats(st, &s);
    uint64_t qbytes = s.blob_bytes, qcount = s.blob_count;
    larder_store_blob_path(st, dq, path, sizeof(path));
    fd = open(path, O_RDONLY);
    char qpath[4400];
    CHECK(larder_store_quarantine(st, dq, fd, qpath, sizeof(qpath)) == 2);
    CHECK(access(path, F_OK) < 0 && qpath[0] && access(qpath, F_OK) == 0 && strstr(qpath, "/quarantine/"));
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "q1", &e) == -ENOENT);
    CHECK(larder_store_get(st, LARDER_PROTO_NPM, "q2", &e) == -ENOENT);
    CHECK(!larder_store_has_blob(st, dq, NULL));
    CHECK(larder_store_is_pinned(st, LARDER_PROTO_FILES, "q1"));
    larder_store_get_stats(st, &s);
    CHECK(s.blob_bytes == qbytes - 700 && s.blob_count == qcount - 1);
    /* a good copy committed since is not the file that was read: left alone */
    CHECK(put(st, LARDER_PROTO_FILES, "q1", 700, 'q', NULL, NULL) == 0);
    CHECK(larder_store_quarantine(st, dq, fd, qpath, sizeof(qpath)) == -ESTALE);
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "q1", &e) == 0);
    larder_entry_clear(&e);
    close(fd);
    CHECK(larder_store_fsck(st, &rep) == 0);
    CHECK(rep.blobs_corrupt == 0 && rep.entries_dropped == 0 && rep.blobs_orphaned == 0);

    /* a blob file without an entry: fsck removes it, a re-index keeps it (served by digest, adopted by a commit) */
    char dorph[LARDER_SHA256_HEX];
    CHECK(put(st, LARDER_PROTO_FILES, "orph", 600, 'o', NULL, dorph) == 0);
    larder_store_blob_path(st, dorph, path, sizeof(path));
    char keep[4200];
    snprintf(keep, sizeof(keep), "%s.keep", path);
    CHECK(link(path, keep) == 0);
    CHECK(put(st, LARDER_PROTO_FILES, "orph", 10, 'p', NULL, NULL) == 0); /* the old blob loses its last entry */
    CHECK(access(path, F_OK) < 0);
    CHECK(rename(keep, path) == 0); /* ... and comes back as a file nothing references */
    CHECK(larder_store_fsck_reindex(st, &rep) == 0);
    CHECK(rep.blobs_unindexed == 1 && rep.blobs_orphaned == 0);
    uint64_t hsize = 0;
    CHECK(larder_store_has_blob(st, dorph, &hsize) && hsize == 600);
    larder_store_get_stats(st, &s);
    qbytes = s.blob_bytes;
    qcount = s.blob_count;
    CHECK(larder_store_fsck(st, &rep) == 0); /* a later fsck keeps it */
    CHECK(rep.blobs_unindexed == 1 && rep.blobs_orphaned == 0 && access(path, F_OK) == 0);
    CHECK(put(st, LARDER_PROTO_NPM, "adopt", 600, 'o', NULL, NULL) == 0);
    larder_store_get_stats(st, &s);
    CHECK(s.blob_bytes == qbytes && s.blob_count == qcount); /* adopted, not counted twice */
    CHECK(larder_store_fsck(st, &rep) == 0);
    CHECK(rep.blobs_unindexed == 0 && rep.blobs_orphaned == 0 && rep.entries_dropped == 0);
    larder_store_close(st);

    /* an existing database is never re-created: without CURRENT, open refuses; --repair-db brings it back */
    char cur[4200], cur2[4200];
    snprintf(cur, sizeof(cur), "%s/db/CURRENT", dir);
    snprintf(cur2, sizeof(cur2), "%s/db/CURRENT.gone", dir);
    CHECK(rename(cur, cur2) == 0);
    err[0] = 0;
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) < 0);
    CHECK(strstr(err, "--repair-db") != NULL && strstr(err, "another larder") == NULL);
    CHECK(access(cur, F_OK) < 0);
    CHECK(larder_store_repair_db(&cfg, err, sizeof(err)) == 0);
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);
    CHECK(larder_store_get(st, LARDER_PROTO_NPM, "adopt", &e) == 0);
    larder_entry_clear(&e);
    /* a second opener of the same data_dir gets the lock hint */
    larder_store_t *st2 = NULL;
    CHECK(larder_store_open(&cfg, &st2, err, sizeof(err)) < 0 && strstr(err, "another larder") != NULL);
    larder_store_close(st);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        failures++;
    if (failures) {
        fprintf(stderr, "test_store: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_store: ok\n");
    return 0;
}
