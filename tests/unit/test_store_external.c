/* test_store_external.c - entries that account for bytes their module keeps outside the blob store (a git
 * mirror): stored and read back, counted in the protocol's usage and in quota.total once (not again when the entry
 * is replaced), evicted like any unpinned entry (never to make room for themselves), kept when pinned, and
 * recounted by fsck; on a temp data dir. */
#include "registry.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* commit n bytes of fill under (proto, key), accounting for `external` more bytes */
static int put(larder_store_t *st, int proto, const char *key, size_t n, char fill, uint64_t external,
               const char *pin)
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
    e.external = external;
    e.fetched_at = larder_now();
    e.url = (char *)"http://example.invalid/x";
    return larder_store_commit(st, proto, key, path, &e, pin);
}

int main(void)
{
    char dir[] = "/tmp/larder-test-external-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    larder_config_t cfg = {0};
    cfg.data_dir = dir;
    cfg.quota_total = 10000;
    larder_store_t *st;
    char err[256];
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);
    /* P sorts after git in the LRU order of one second: the mirror's entry is the least recently used one */
    const int G = LARDER_PROTO_GIT, F = LARDER_PROTO_FILES, P = LARDER_PROTO_PYPI;
    larder_store_stats_t s;
    larder_entry_t e;

    /* counted once, read back */
    CHECK(put(st, P, "a", 1000, 'a', 0, NULL) == 0);
    CHECK(put(st, G, "m/r/x", 100, 'x', 5000, NULL) == 0);
    CHECK(larder_store_get(st, G, "m/r/x", &e) == 0 && e.external == 5000 && e.size == 100);
    larder_entry_clear(&e);
    CHECK(larder_store_get(st, P, "a", &e) == 0 && e.external == 0);
    larder_entry_clear(&e);
    larder_store_get_stats(st, &s);
    CHECK(s.external_bytes == 5000 && s.entry_bytes[G] == 5100 && s.blob_bytes == 1100);

    /* replaced (the mirror grew by 4000: 10100 > 10000): room is made by evicting the other entry, never the one
     * being replaced, although it is the least recently used; the new size counts, not the sum */
    CHECK(put(st, G, "m/r/x", 100, 'x', 9000, NULL) == 0);
    CHECK(larder_store_get(st, G, "m/r/x", &e) == 0 && e.external == 9000);
    larder_entry_clear(&e);
    CHECK(larder_store_get(st, P, "a", &e) == -ENOENT);
    larder_store_get_stats(st, &s);
    CHECK(s.external_bytes == 9000 && s.entry_bytes[G] == 9100 && s.blob_bytes == 100);

    /* a new blob that does not fit: the mirror's entry is evicted like any other */
    CHECK(put(st, F, "b", 3000, 'b', 0, NULL) == 0);
    CHECK(larder_store_get(st, G, "m/r/x", &e) == -ENOENT);
    larder_store_get_stats(st, &s);
    CHECK(s.external_bytes == 0 && s.entry_bytes[G] == 0 && s.entry_count[G] == 0 && s.evictions[G] == 1);

    /* pinned: kept, the others go, and what still does not fit is refused */
    CHECK(put(st, G, "m/r/y", 100, 'y', 6000, "keep") == 0);
    CHECK(put(st, F, "c", 2000, 'c', 0, NULL) == 0); /* b goes */
    CHECK(larder_store_get(st, F, "b", &e) == -ENOENT);
    CHECK(put(st, F, "d", 4000, 'd', 0, NULL) == -ENOSPC);
    CHECK(larder_store_get(st, G, "m/r/y", &e) == 0);
    larder_entry_clear(&e);

    /* the per-protocol quota counts external bytes too */
    larder_store_close(st);
    cfg.quota_total = 0;
    cfg.proto[G].quota = 7000;
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);
    larder_store_get_stats(st, &s);
    CHECK(s.external_bytes == 6000 && s.entry_bytes[G] == 6100); /* counters survive a restart */
    CHECK(put(st, G, "m/r/z", 100, 'z', 1000, NULL) == -ENOSPC); /* 6100 + 1100 > 7000, the rest is pinned */
    CHECK(larder_store_delete_pin_set(st, "keep") == 1);
    CHECK(put(st, G, "m/r/z", 100, 'z', 1000, NULL) == 0); /* now y goes */
    CHECK(larder_store_get(st, G, "m/r/y", &e) == -ENOENT);

    /* fsck recounts */
    larder_fsck_report_t rep;
    CHECK(larder_store_fsck(st, &rep) == 0);
    larder_store_get_stats(st, &s);
    CHECK(s.external_bytes == 1000 && s.entry_bytes[G] == 1100);

    larder_store_close(st);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    if (failures)
        fprintf(stderr, "test_store_external: %d failure(s)\n", failures);
    else
        printf("test_store_external: all checks passed\n");
    return failures ? 1 : 0;
}
