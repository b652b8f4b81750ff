/* indexes.c - the apt repository's own indexes: Release/InRelease parsing (the SHA256 list and Acquire-By-Hash),
 * Packages parsing (one stanza at a time, the fields larder needs), xz/gzip decompression of indexes, and the fetch
 * transforms that store Release files and indexes as they are while recording what they promise:
 *   Release:  meta "r/<host><prefix>/dists/<suite>/<file>" = "<sha256> <size> <by-hash>" for each index it lists,
 *             so proxy.c serves every client the indexes consistent with the Release it got;
 *   Packages: meta "d/<host><prefix>/<Filename>" = "<sha256> <size>" for each package it lists, so a .deb download
 *             is verified before commit.
 * The parsers are pure (exposed in apt.h for the unit tests and fuzzers); closure.c builds the package universe on
 * larder_apt_parse_packages(), seed.c reads Release files and indexes with them. */
#include "apt.h"
#include "internal.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <inttypes.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* ---- Release files ---- */

/* the value of a "Field: value" line at the start of a line, or NULL; *vlen its length */
static const char *field_at(const char *line, const char *end, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    if ((size_t)(end - line) <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    if (v >= end) {
        *vlen = 0;
        return v;
    }
    const char *e = memchr(v, '\n', (size_t)(end - v));
    if (!e)
        e = end;
    while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *vlen = (size_t)(e - v);
    return v;
}

int larder_apt_parse_release(const char *text, size_t len, larder_apt_release_cb cb, void *ctx, int *by_hash)
{
    *by_hash = 0;
    const char *p = text, *end = text + len;
    int in_sha = 0, n = 0, seen_field = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t vlen;
        const char *v;
        if (p < le && (*p == ' ' || *p == '\t')) {
            if (in_sha) {
                /* " <sha256> <size> <path>" */
                char sha[65], path[1024];
                unsigned long long size;
                char line[1200];
                size_t ll = (size_t)(le - p) < sizeof(line) - 1 ? (size_t)(le - p) : sizeof(line) - 1;
                memcpy(line, p, ll);
                line[ll] = 0;
                if (sscanf(line, " %64s %llu %1023s", sha, &size, path) == 3 && larder_is_sha256_hex(sha)) {
                    for (char *c = sha; *c; c++)
                        *c = (char)tolower((unsigned char)*c);
                    if (cb)
                        cb(ctx, path, sha, size);
                    n++;
                }
            }
        } else {
            in_sha = 0;
            if (le - p >= 7 && strncmp(p, "SHA256:", 7) == 0) {
                in_sha = 1;
                seen_field = 1;
            } else if ((v = field_at(p, le, "Acquire-By-Hash", &vlen))) {
                *by_hash = vlen == 3 && strncasecmp(v, "yes", 3) == 0;
                seen_field = 1;
            } else if (field_at(p, le, "Suite", &vlen) || field_at(p, le, "Codename", &vlen) ||
                       field_at(p, le, "Components", &vlen)) {
                seen_field = 1;
            }
        }
        p = le + 1;
    }
    return seen_field ? n : -1;
}

/* ---- Packages files ---- */

long larder_apt_parse_packages(const char *text, size_t len, larder_apt_pkg_cb cb, void *ctx)
{
    const char *p = text, *end = text + len;
    long n = 0;
    while (p < end) {
        /* one stanza: up to an empty line */
        const char *s = p;
        const char *se = s;
        while (se < end) {
            const char *nl = memchr(se, '\n', (size_t)(end - se));
            if (!nl) {
                se = end;
                break;
            }
            if (nl + 1 < end && (nl[1] == '\n' || (nl[1] == '\r' && nl + 2 < end && nl[2] == '\n'))) {
                se = nl + 1;
                break;
            }
            se = nl + 1;
        }
        /* fields we need; values copied so they are NUL-terminated */
        static const char *const names[] = {"Package",      "Version", "Filename",   "SHA256",    "Depends",
                                            "Pre-Depends",  "Provides", "Architecture", "Size",     "Multi-Arch",
                                            "Essential",    "Priority"};
        enum { NF = sizeof(names) / sizeof(names[0]) };
        char *vals[NF] = {0};
        for (const char *l = s; l < se;) {
            const char *nl = memchr(l, '\n', (size_t)(se - l));
            const char *le = nl ? nl : se;
            for (int f = 0; f < NF; f++) {
                size_t vl;
                const char *v = vals[f] ? NULL : field_at(l, le, names[f], &vl);
                if (v) {
                    vals[f] = strndup(v, vl);
                    break;
                }
            }
            l = le + 1;
        }
        if (vals[0] && *vals[0]) {
            larder_apt_pkg_t pk = {vals[0], vals[1], vals[2],  vals[3],  vals[4],
                                   vals[5], vals[6], vals[7],  vals[8] ? strtoull(vals[8], NULL, 10) : 0,
                                   vals[9], vals[10], vals[11]};
            if (cb)
                cb(ctx, &pk);
            n++;
        }
        for (int f = 0; f < NF; f++)
            free(vals[f]);
        p = se;
        while (p < end && (*p == '\n' || *p == '\r'))
            p++;
    }
    return n;
}

/* double a full output buffer, up to max + 1 bytes (one more than allowed, so an overflow shows): 1 grown,
 * 0 already at the limit, -1 out of memory */
static int grow(char **out, size_t *cap, size_t max)
{
    if (*cap > max)
        return 0;
    size_t ncap = *cap * 2 > max + 1 ? max + 1 : *cap * 2;
    char *nb = realloc(*out, ncap + 1);
    if (!nb)
        return -1;
    *out = nb;
    *cap = ncap;
    return 1;
}

char *larder_apt_decompress(const char *in, size_t len, size_t max, size_t *outlen)
{
    size_t cap = len * 4 + 4096, n = 0;
    if (cap > max + 1)
        cap = max + 1;
    char *out = malloc(cap + 1);
    if (!out)
        return NULL;
    const unsigned char *u = (const unsigned char *)in;
    if (len >= 6 && memcmp(u, "\xFD" "7zXZ\0", 6) == 0) {
        lzma_stream s = LZMA_STREAM_INIT;
        if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK)
            goto bad;
        s.next_in = u;
        s.avail_in = len;
        lzma_ret r;
        do {
            int g = n == cap ? grow(&out, &cap, max) : 1;
            if (g < 0) {
                lzma_end(&s);
                goto bad;
            }
            if (g == 0)
                break;
            s.next_out = (uint8_t *)out + n;
            s.avail_out = cap - n;
            r = lzma_code(&s, LZMA_FINISH);
            n = cap - s.avail_out;
        } while (r == LZMA_OK);
        lzma_end(&s);
        if (r != LZMA_STREAM_END || n > max)
            goto bad;
    } else if (len >= 2 && u[0] == 0x1f && u[1] == 0x8b) {
        z_stream z;
        memset(&z, 0, sizeof(z));
        if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
            goto bad;
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)len;
        int r;
        do {
            int g = n == cap ? grow(&out, &cap, max) : 1;
            if (g < 0) {
                inflateEnd(&z);
                goto bad;
            }
            if (g == 0)
                break;
            z.next_out = (Bytef *)out + n;
            z.avail_out = (uInt)(cap - n);
            r = inflate(&z, Z_NO_FLUSH);
            n = cap - z.avail_out;
        } while (r == Z_OK);
        inflateEnd(&z);
        if (r != Z_STREAM_END || n > max)
            goto bad;
    } else {
        if (len > max)
            goto bad;
        if (len > cap) {
            char *nb = realloc(out, len + 1);
            if (!nb)
                goto bad;
            out = nb;
        }
        memcpy(out, in, len);
        n = len;
    }
    out[n] = 0;
    *outlen = n;
    return out;
bad:
    free(out);
    return NULL;
}

/* ---- the fetch transforms of Release files and indexes ---- */

/* "<host><prefix>" of a cache key "<host><prefix>/dists/..." (or NULL) */
static char *key_repo(const char *key)
{
    const char *d = strstr(key, "/dists/");
    return d ? strndup(key, (size_t)(d - key)) : NULL;
}

typedef struct rel_rec {
    larder_meta_batch_t *b;
    const char *repo; /* <host><prefix> */
    const char *suite;
    int by_hash;
} rel_rec_t;

static void record_release_entry(void *arg, const char *relpath, const char *sha256, uint64_t size)
{
    rel_rec_t *c = arg;
    char key[1500], val[128];
    if (snprintf(key, sizeof(key), "r/%s/dists/%s/%s", c->repo, c->suite, relpath) >= (int)sizeof(key))
        return;
    int n = snprintf(val, sizeof(val), "%s %" PRIu64 " %d", sha256, size, c->by_hash);
    larder_meta_batch_put(c->b, LARDER_PROTO_APT, key, val, (size_t)n);
}

/* InRelease / Release: stored as they are; their SHA256 lists recorded for the indexes they name */
int apt_release_transform(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                          char **content_type, char *err, size_t errlen)
{
    char *in;
    if (in_len > (uint64_t)64 * 1024 * 1024 || larder_pread_all(in_fd, in_len, &in) < 0) {
        snprintf(err, errlen, "cannot read the Release file");
        return -1;
    }
    char *repo = key_repo(fe->key);
    const char *s = repo ? strstr(fe->key, "/dists/") + 7 : NULL;
    const char *se = s ? strchr(s, '/') : NULL;
    int r = 0;
    if (repo && se) {
        char suite[128];
        snprintf(suite, sizeof(suite), "%.*s", (int)(se - s), s);
        int by_hash;
        larder_apt_parse_release(in, in_len, NULL, NULL, &by_hash);
        larder_meta_batch_t *b = larder_store_meta_begin(st);
        rel_rec_t rc = {b, repo, suite, by_hash};
        if (larder_apt_parse_release(in, in_len, record_release_entry, &rc, &by_hash) < 0) {
            larder_store_meta_discard(b);
            snprintf(err, errlen, "not a Release file");
            r = -1;
        } else {
            r = larder_store_meta_commit(st, b);
        }
    }
    free(repo);
    if (r == 0 && larder_write_all(out_fd, in, in_len) < 0) {
        snprintf(err, errlen, "writing the Release file failed");
        r = -1;
    }
    free(in);
    *content_type = strdup("text/plain");
    return r;
}

typedef struct deb_rec {
    larder_meta_batch_t *b;
    const char *repo;
} deb_rec_t;

static void record_deb(void *arg, const larder_apt_pkg_t *p)
{
    deb_rec_t *c = arg;
    if (!p->filename || !p->sha256 || !larder_is_sha256_hex(p->sha256) || strstr(p->filename, ".."))
        return;
    char key[1500], val[100];
    if (snprintf(key, sizeof(key), "d/%s/%s", c->repo, p->filename) >= (int)sizeof(key))
        return;
    int n = snprintf(val, sizeof(val), "%s %" PRIu64, p->sha256, p->size);
    larder_meta_batch_put(c->b, LARDER_PROTO_APT, key, val, (size_t)n);
}

/* an index under dists/: stored as it is; when it is a Packages file (any compression), the SHA256 of every
 * package it lists is recorded so .deb downloads can be verified */
int apt_index_transform(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                        char **content_type, char *err, size_t errlen)
{
    char *in;
    if (in_len > (uint64_t)512 * 1024 * 1024 || larder_pread_all(in_fd, in_len, &in) < 0) {
        snprintf(err, errlen, "cannot read the index");
        return -1;
    }
    int r = 0;
    char *repo = key_repo(fe->key);
    if (repo && (strstr(fe->key, "/binary-") || strstr(fe->key, "/Packages"))) {
        size_t tl;
        char *text = larder_apt_decompress(in, in_len, MAX_INDEX, &tl);
        if (text && strncmp(text, "Package:", 8) == 0) {
            uint64_t t0 = larder_now_ms();
            larder_meta_batch_t *b = larder_store_meta_begin(st);
            deb_rec_t dc = {b, repo};
            long n = larder_apt_parse_packages(text, tl, record_deb, &dc);
            r = larder_store_meta_commit(st, b);
            uint64_t ms = larder_now_ms() - t0;
            if (ms >= 200)
                larder_info("apt: %s lists %ld packages (parsed in %" PRIu64 " ms)", fe->url, n, ms);
        }
        free(text);
    }
    free(repo);
    if (r == 0 && larder_write_all(out_fd, in, in_len) < 0) {
        snprintf(err, errlen, "writing the index failed");
        r = -1;
    }
    free(in);
    *content_type = strdup("application/octet-stream");
    return r;
}
