/* test_store_admin.c - what the admin API asks of the store: removing one entry the way eviction does (a blob
 * another entry uses stays, a pinned entry is refused), resuming a listing after a key, the pin sets naming an
 * entry, and hit counts that cost no write of their own yet reach the entry (with a new fetch of the key, when too
 * many keys wait, at close) and are never counted twice. The once-a-minute write with the access time is not
 * waited for here. */
#include "registry.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static int put(larder_store_t *st, int proto, const char *key, size_t n, char fill, char *digest)
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
    if (digest)
        memcpy(digest, e.digest, LARDER_SHA256_HEX);
    e.size = n;
    e.fetched_at = larder_now();
    e.url = (char *)"http://example.invalid/x";
    return larder_store_commit(st, proto, key, path, &e, NULL);
}

typedef struct keys {
    char v[64][64];
    int n;
} keys_t;

static int key_cb(void *ctx, int proto, const char *key, const larder_entry_t *e)
{
    (void)e;
    keys_t *k = ctx;
    if (k->n < 64)
        snprintf(k->v[k->n++], 64, "%s/%s", larder_proto_name(proto), key);
    return k->n == 3; /* pages of three */
}

static int set_cb(void *ctx, const char *set)
{
    keys_t *k = ctx;
    if (k->n < 64)
        snprintf(k->v[k->n++], 64, "%s", set);
    return 0;
}

static uint64_t stored_hits(larder_store_t *st, int proto, const char *key)
{
    larder_entry_t e;
    if (larder_store_get(st, proto, key, &e) < 0)
        return UINT64_MAX;
    uint64_t h = e.hits;
    larder_entry_clear(&e);
    return h;
}

int main(void)
{
    char dir[] = "/tmp/larder-test-store-admin-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    larder_config_t cfg = {0};
    cfg.data_dir = dir;
    larder_store_t *st;
    char err[1024], d1[LARDER_SHA256_HEX], path[4096];
    struct stat sb;
    larder_entry_t e;
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);

    /* ---- delete ---- */
    CHECK(put(st, LARDER_PROTO_FILES, "a", 500, 'a', d1) == 0);
    CHECK(put(st, LARDER_PROTO_NPM, "b", 500, 'a', NULL) == 0); /* the same bytes */
    CHECK(put(st, LARDER_PROTO_FILES, "c", 300, 'c', NULL) == 0);
    larder_store_blob_path(st, d1, path, sizeof(path));
    CHECK(larder_store_delete_entry(st, LARDER_PROTO_FILES, "a") == 0);
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "a", &e) == -ENOENT);
    CHECK(stat(path, &sb) == 0); /* npm's b still uses it */
    CHECK(larder_store_delete_entry(st, LARDER_PROTO_FILES, "a") == -ENOENT);
    CHECK(larder_store_pin(st, "s1", LARDER_PROTO_NPM, "b") == 0);
    CHECK(larder_store_delete_entry(st, LARDER_PROTO_NPM, "b") == -EBUSY);
    CHECK(larder_store_get(st, LARDER_PROTO_NPM, "b", &e) == 0);
    larder_entry_clear(&e);
    CHECK(larder_store_delete_pin_set(st, "s1") == 1);
    CHECK(larder_store_delete_entry(st, LARDER_PROTO_NPM, "b") == 0);
    CHECK(stat(path, &sb) < 0); /* the last reference went: so did the file */
    larder_store_stats_t s;
    larder_store_get_stats(st, &s);
    CHECK(s.blob_count == 1 && s.blob_bytes == 300 && s.entry_count[LARDER_PROTO_NPM] == 0);
    CHECK(s.entry_bytes[LARDER_PROTO_FILES] == 300);
    larder_fsck_report_t rep;
    CHECK(larder_store_fsck(st, &rep) == 0 && rep.blobs_orphaned == 0 && rep.entries_dropped == 0);

    /* ---- listing after a key ---- */
    for (int i = 0; i < 7; i++) {
        char k[16];
        snprintf(k, sizeof(k), "p%d", i);
        CHECK(put(st, LARDER_PROTO_PYPI, k, 10 + (size_t)i, (char)('A' + i), NULL) == 0);
    }
    keys_t k1 = {0}, k2 = {0}, k3 = {0}, k4 = {0};
    CHECK(larder_store_each_entry_after(st, LARDER_PROTO_PYPI, NULL, key_cb, &k1) == 1);
    CHECK(k1.n == 3 && strcmp(k1.v[0], "pypi/p0") == 0 && strcmp(k1.v[2], "pypi/p2") == 0);
    CHECK(larder_store_each_entry_after(st, LARDER_PROTO_PYPI, k1.v[2], key_cb, &k2) == 1);
    CHECK(k2.n == 3 && strcmp(k2.v[0], "pypi/p3") == 0);
    CHECK(larder_store_delete_entry(st, LARDER_PROTO_PYPI, "p5") == 0); /* the cursor's own key goes */
    CHECK(larder_store_each_entry_after(st, LARDER_PROTO_PYPI, k2.v[2], key_cb, &k3) == 0);
    CHECK(k3.n == 1 && strcmp(k3.v[0], "pypi/p6") == 0);
    /* an `after` of another protocol: before this one's entries starts at its first, after them ends */
    CHECK(larder_store_each_entry_after(st, LARDER_PROTO_PYPI, "files/zzz", key_cb, &k4) == 1);
    CHECK(k4.n == 3 && strcmp(k4.v[0], "pypi/p0") == 0);
    keys_t k5 = {0};
    CHECK(larder_store_each_entry_after(st, LARDER_PROTO_FILES, "pypi/p0", key_cb, &k5) == 0 && k5.n == 0);

    /* ---- pin sets of an entry ---- */
    CHECK(larder_store_pin(st, "b-set", LARDER_PROTO_PYPI, "p1") == 0);
    CHECK(larder_store_pin(st, "a-set", LARDER_PROTO_PYPI, "p1") == 0);
    CHECK(larder_store_pin(st, "a-set", LARDER_PROTO_PYPI, "p2") == 0);
    CHECK(larder_store_pin(st, "a", LARDER_PROTO_PYPI, "p3") == 0); /* a name that prefixes another */
    keys_t sets = {0};
    CHECK(larder_store_each_pin_set(st, set_cb, &sets) == 0);
    /* store order: '-' sorts before '/', so "a-set" comes before "a" */
    CHECK(sets.n == 3 && strcmp(sets.v[0], "a-set") == 0 && strcmp(sets.v[1], "a") == 0 &&
          strcmp(sets.v[2], "b-set") == 0);
    CHECK(larder_store_pin_count(st, LARDER_PROTO_PYPI, "p1") == 2);
    CHECK(larder_store_pin_count(st, LARDER_PROTO_PYPI, "p2") == 1);
    CHECK(larder_store_pin_count(st, LARDER_PROTO_PYPI, "p0") == 0);
    CHECK(larder_store_in_pin_set(st, "a-set", LARDER_PROTO_PYPI, "p2") == 1);
    CHECK(larder_store_in_pin_set(st, "b-set", LARDER_PROTO_PYPI, "p2") == 0);
    CHECK(larder_store_in_pin_set(st, "a", LARDER_PROTO_PYPI, "p2") == 0);

    /* ---- hits ---- */
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "c", &e) == 0);
    CHECK(e.hits == 0);
    for (int i = 0; i < 5; i++)
        larder_store_touch(st, LARDER_PROTO_FILES, "c", &e); /* atime is fresh: counted in memory only */
    CHECK(stored_hits(st, LARDER_PROTO_FILES, "c") == 0);
    CHECK(larder_store_hits(st, LARDER_PROTO_FILES, "c", &e) == 5);
    /* (the write with the access time, once a minute, is not waited for here) */
    larder_store_touch(st, LARDER_PROTO_FILES, "c", &e);
    larder_entry_clear(&e);
    /* a new fetch of the key keeps the count, the pending hits included */
    CHECK(put(st, LARDER_PROTO_FILES, "c", 301, 'd', NULL) == 0);
    CHECK(stored_hits(st, LARDER_PROTO_FILES, "c") == 6);
    CHECK(larder_store_get(st, LARDER_PROTO_FILES, "c", &e) == 0);
    CHECK(larder_store_hits(st, LARDER_PROTO_FILES, "c", &e) == 6); /* nothing counted twice */
    larder_store_touch(st, LARDER_PROTO_FILES, "c", &e);
    larder_entry_clear(&e);
    /* a removed entry's pending hits do not pass to the key's next entry */
    CHECK(larder_store_get(st, LARDER_PROTO_PYPI, "p0", &e) == 0);
    larder_store_touch(st, LARDER_PROTO_PYPI, "p0", &e);
    larder_entry_clear(&e);
    CHECK(larder_store_delete_entry(st, LARDER_PROTO_PYPI, "p0") == 0);
    CHECK(put(st, LARDER_PROTO_PYPI, "p0", 10, 'A', NULL) == 0);
    CHECK(stored_hits(st, LARDER_PROTO_PYPI, "p0") == 0);
    /* pending hits are written at close */
    CHECK(larder_store_get(st, LARDER_PROTO_PYPI, "p4", &e) == 0);
    larder_store_touch(st, LARDER_PROTO_PYPI, "p4", &e);
    larder_store_touch(st, LARDER_PROTO_PYPI, "p4", &e);
    larder_entry_clear(&e);
    larder_store_close(st);
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);
    CHECK(stored_hits(st, LARDER_PROTO_PYPI, "p4") == 2);
    CHECK(stored_hits(st, LARDER_PROTO_FILES, "c") == 7);
    /* ... and all at once when too many keys wait */
    larder_entry_t pe;
    CHECK(larder_store_get(st, LARDER_PROTO_PYPI, "p6", &pe) == 0);
    larder_store_touch(st, LARDER_PROTO_PYPI, "p6", &pe);
    for (int i = 0; i < 4100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "ghost%d", i); /* keys without an entry: counted, then dropped by the flush */
        larder_store_touch(st, LARDER_PROTO_GEMS, key, &pe);
    }
    larder_entry_clear(&pe);
    CHECK(stored_hits(st, LARDER_PROTO_PYPI, "p6") == 1);
    CHECK(larder_store_fsck(st, &rep) == 0 && rep.entries_dropped == 0 && rep.blobs_corrupt == 0);
    larder_store_close(st);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        failures++;
    if (failures) {
        fprintf(stderr, "test_store_admin: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_store_admin: ok\n");
    return 0;
}
