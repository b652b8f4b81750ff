/* store_fill.c - larder-store-fill: fills a data directory with N cache entries through the store's own API
 * (larder_store_commit, the call the daemon's fetches end in), for bench/store.sh.
 *
 *   larder-store-fill DATA_DIR N [SHARE]
 *
 * Entries go to pypi, npm, apt, gems, oci and files, N/6 each, in that order (a protocol's entries are all newer
 * than those of the protocols before it: files' are the newest, which is what makes a files quota reach past the
 * others' entries in a store-wide LRU order), with keys shaped like those protocols' keys.
 * Every SHARE consecutive entries (default 16) of a protocol share one blob: N/SHARE distinct content-addressed blob
 * files of 200..4200 bytes (many tiny blobs), which keeps the fill's cost (one directory fsync per new blob in
 * larder_store_commit) within minutes; the metadata (one entry, one LRU key per entry; one reference count per
 * blob) is exactly what the daemon writes. Temp files are written for new blobs only (a commit of an already stored
 * digest drops the temp file anyway), and are not fsync'ed before the commit (the daemon fsyncs its downloads; the
 * bench needs the resulting store, not the durability of the fill). No quota is configured, so nothing is evicted.
 * Prints the count of entries, blobs and the seconds taken. Built only with -DLARDER_BENCH_TOOLS=ON. */
#include "registry.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void hex(const unsigned char *md, char out[LARDER_SHA256_HEX])
{
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* the bytes of blob j: a header naming it, then a deterministic filler; size 200..4200 */
static size_t blob_bytes(uint64_t j, char *buf, size_t cap)
{
    size_t n = 200 + (size_t)((j * 2654435761u) % 4001);
    if (n > cap)
        n = cap;
    int h = snprintf(buf, cap, "larder-bench blob %" PRIu64 "\n", j);
    uint64_t x = (uint64_t)(j * 0x9E3779B97F4A7C15ull) + 1;
    for (size_t i = (size_t)h; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (char)('a' + (x % 26));
    }
    return n;
}

static const char *names[] = {"pypi", "npm", "apt", "gems", "oci", "files"};
#define NPROTO (sizeof(names) / sizeof(names[0]))

/* a key shaped like the protocol's own (the store treats keys as opaque strings) */
static void make_key(int which, uint64_t i, char *out, size_t len, const char **ctype)
{
    uint64_t pkg = i / 7, ver = i % 7;
    switch (which) {
    case 0:
        snprintf(out, len, "files/packages/%02x/%02x/pkg%" PRIu64 "-1.%" PRIu64 ".0-py3-none-any.whl",
                 (unsigned)(pkg % 256), (unsigned)(pkg / 256 % 256), pkg, ver);
        *ctype = "application/octet-stream";
        break;
    case 1:
        snprintf(out, len, "tarball/pkg-%" PRIu64 "/-/pkg-%" PRIu64 "-1.0.%" PRIu64 ".tgz", pkg, pkg, ver);
        *ctype = "application/octet-stream";
        break;
    case 2:
        snprintf(out, len, "debian/pool/main/p/pkg%" PRIu64 "/pkg%" PRIu64 "_1.%" PRIu64 "-1_amd64.deb", pkg, pkg,
                 ver);
        *ctype = "application/vnd.debian.binary-package";
        break;
    case 3:
        snprintf(out, len, "gems/gem%" PRIu64 "-0.%" PRIu64 ".0.gem", pkg, ver);
        *ctype = "application/octet-stream";
        break;
    case 4:
        snprintf(out, len, "registry-1.docker.io/library/img%" PRIu64 "/blobs/sha256:%016" PRIx64 "%016" PRIx64, pkg,
                 (uint64_t)(i * 0x9E3779B97F4A7C15ull), ~i);
        *ctype = "application/vnd.oci.image.layer.v1.tar+gzip";
        break;
    default:
        snprintf(out, len, "origin/releases/v%" PRIu64 "/artifact-%" PRIu64 ".tar.gz", ver, pkg);
        *ctype = "application/gzip";
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: larder-store-fill DATA_DIR N [SHARE]\n");
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10), share = argc > 3 ? strtoull(argv[3], NULL, 10) : 16;
    if (!n || !share) {
        fprintf(stderr, "larder-store-fill: N and SHARE must be positive\n");
        return 2;
    }
    larder_config_t cfg = {0};
    cfg.data_dir = argv[1];
    for (int p = 0; p < LARDER_MAX_PROTO; p++)
        cfg.proto[p].enabled = 1;
    int ids[NPROTO];
    for (size_t w = 0; w < NPROTO; w++)
        if ((ids[w] = larder_proto_from_name(names[w])) < 0) {
            fprintf(stderr, "larder-store-fill: no protocol %s in this build\n", names[w]);
            return 2;
        }
    larder_store_t *st;
    char err[1024];
    if (larder_store_open(&cfg, &st, err, sizeof(err)) < 0) {
        fprintf(stderr, "larder-store-fill: %s\n", err);
        return 1;
    }
    uint64_t t0 = larder_now_ms(), blobs = 0;
    static char buf[8192];
    char key[512], path[4096], url[700];
    unsigned char md[32];
    int rc = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t per = (n + NPROTO - 1) / NPROTO;
        size_t w = (size_t)(i / per);
        uint64_t pi = i % per;                  /* index within the protocol */
        uint64_t j = (pi / share) * NPROTO + w; /* the blob: SHARE consecutive entries of a protocol share it */
        size_t len = blob_bytes(j, buf, sizeof(buf));
        larder_entry_t e = {0};
        unsigned int mdlen = 0;
        EVP_Digest(buf, len, md, &mdlen, larder_sha256_md(), NULL);
        hex(md, e.digest);
        const char *ctype;
        make_key((int)w, pi, key, sizeof(key), &ctype);
        if (!larder_store_has_blob(st, e.digest, NULL)) {
            int fd = larder_store_tmp_create(st, path, sizeof(path));
            if (fd < 0 || write(fd, buf, len) != (ssize_t)len) {
                fprintf(stderr, "larder-store-fill: temp file: %s\n", strerror(fd < 0 ? -fd : errno));
                rc = 1;
                if (fd >= 0)
                    close(fd);
                break;
            }
            close(fd);
            blobs++;
        } else {
            snprintf(path, sizeof(path), "%s/tmp/larder-store-fill-none", argv[1]); /* never created */
        }
        snprintf(url, sizeof(url), "https://upstream.invalid/%s/%s", names[w], key);
        e.size = len;
        e.fetched_at = larder_now();
        e.fresh_until = e.fetched_at + 86400;
        e.flags = w == NPROTO - 1 ? 0 : LARDER_ENTRY_IMMUTABLE;
        e.content_type = (char *)ctype;
        e.url = url;
        e.etag = w == NPROTO - 1 ? (char *)"\"bench\"" : NULL;
        int r = larder_store_commit(st, ids[w], key, path, &e, NULL);
        if (r < 0) {
            fprintf(stderr, "larder-store-fill: commit %s %s: %s\n", names[w], key, strerror(-r));
            rc = 1;
            break;
        }
        if ((i + 1) % 100000 == 0)
            fprintf(stderr, "larder-store-fill: %" PRIu64 " entries, %.1f s\n", i + 1,
                    (double)(larder_now_ms() - t0) / 1000.0);
    }
    larder_store_close(st);
    printf("entries %" PRIu64 " blobs %" PRIu64 " seconds %.1f\n", n, blobs, (double)(larder_now_ms() - t0) / 1000.0);
    return rc;
}
