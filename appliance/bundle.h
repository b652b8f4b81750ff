/* bundle.h - the bundle file format (docs/bundles.md): a POSIX tar holding a pin set's entries, their blobs and the
 * module records that serving them needs, to carry a seeded set to an air-gapped appliance.
 *
 *   larder-bundle.json    {"format":"larder-bundle","version":1,"larder":"0.1.0","pin_set":...,counts}
 *   manifest.json         {"pin_set":...,"entries":[...],"meta":[...]}
 *   blobs/sha256/<hex>    one per distinct digest of the cached entries, any order
 *   external/<n>          the data entry #n of the manifest keeps outside the blob store (a git mirror), one file
 *                         written by its module (bundle_external_export), any order after the manifest
 *
 * This file has the pure part: the JSON of both documents and an incremental reader that checks a bundle as its
 * bytes arrive (every blob's size and sha256 against the manifest) and hands verified data to a sink. The daemon's
 * import (bundle_import.c), `larder export`'s check of what it downloaded (bundle_cli.c), the unit test and the
 * fuzzer all use it. */
#ifndef LARDER_BUNDLE_H
#define LARDER_BUNDLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "tar.h"

#define LARDER_BUNDLE_FORMAT "larder-bundle"
#define LARDER_BUNDLE_VERSION 1
#define LARDER_BUNDLE_HEADER "larder-bundle.json"
#define LARDER_BUNDLE_MANIFEST "manifest.json"
#define LARDER_BUNDLE_BLOB_PREFIX "blobs/sha256/"
#define LARDER_BUNDLE_EXTERNAL_PREFIX "external/"
#define LARDER_BUNDLE_NOTE_MAX 1024 /* a module's note on its external data (printable) */
#define LARDER_BUNDLE_HEADER_MAX ((size_t)64 * 1024)
#define LARDER_BUNDLE_MANIFEST_MAX (256ULL * 1024 * 1024)
#define LARDER_BUNDLE_KEY_MAX 3000     /* entry and record keys (the store's keys are at most 4096 with prefixes) */
#define LARDER_BUNDLE_META_MAX ((size_t)1024 * 1024) /* one record's value */

typedef struct larder_bundle_blob {
    char digest[LARDER_SHA256_HEX];
    uint64_t size;
    int seen;
    size_t entry; /* an external member: its entry's index + 1; 0: a blob */
} larder_bundle_blob_t;

typedef struct larder_bundle_entry {
    int proto;
    char *key;
    int cached;        /* 0: the set names the key but it was not cached (pinned again on import, no blob) */
    larder_entry_t e;  /* digest, size, fetched_at, fresh_until, flags and the four strings (malloc'd); e.external
                          is 0 as read (the importing module measures its own data) */
    int has_external;  /* the entry's data outside the blob store travels as member external/<index> */
    larder_bundle_blob_t ext; /* that member's sha256 and size */
    char *ext_note;    /* the exporting module's note on it (malloc'd, printable), or NULL */
} larder_bundle_entry_t;

typedef struct larder_bundle_meta {
    int proto;
    char *key;
    char *val; /* malloc'd, NUL-terminated (len bytes before it) */
    size_t len;
} larder_bundle_meta_t;

typedef struct larder_bundle_manifest {
    int version;
    char larder[32];   /* the exporting larder's version */
    char pin_set[65];
    uint64_t created;
    larder_bundle_entry_t *entries;
    size_t nentries;
    larder_bundle_meta_t *meta;
    size_t nmeta;
    larder_bundle_blob_t *blobs; /* distinct digests of the cached entries, sorted */
    size_t nblobs;
    uint64_t blob_bytes;
    size_t nexternal; /* entries with an external member, and those members' bytes */
    uint64_t external_bytes;
} larder_bundle_manifest_t;

void larder_bundle_manifest_free(larder_bundle_manifest_t *m);
/* the blob of that digest, or NULL */
larder_bundle_blob_t *larder_bundle_find_blob(larder_bundle_manifest_t *m, const char *digest);

/* ---- writing ---- */

/* larder-bundle.json's text (malloc'd) */
char *larder_bundle_header_text(const char *pin_set, uint64_t created, size_t nentries, size_t nblobs,
                                uint64_t blob_bytes);
/* one element of manifest.json's "entries" (e NULL: not cached), and of "meta" */
json_t *larder_bundle_entry_json(int proto, const char *key, const larder_entry_t *e);
json_t *larder_bundle_meta_json(int proto, const char *key, const char *val, size_t len);
/* an entry's external member (external/<index>): "external": {"sha256", "size", "note"} added to its element */
void larder_bundle_entry_set_external(json_t *entry, const char *digest, uint64_t size, const char *note);

/* ---- reading ---- */

typedef struct larder_bundle_reader larder_bundle_reader_t;

typedef struct larder_bundle_sink {
    /* the manifest was read and checked: refuse the bundle here (quota), with larder_bundle_fail */
    int (*manifest)(void *ctx, larder_bundle_reader_t *r, const larder_bundle_manifest_t *m);
    /* a blob's bytes: begin, data (in pieces), end once its size and sha256 were checked; non-zero stops. An
     * external member comes the same way, with b->entry its entry's index + 1 (b is &entries[i].ext) */
    int (*blob_begin)(void *ctx, larder_bundle_reader_t *r, const larder_bundle_blob_t *b);
    int (*blob_data)(void *ctx, larder_bundle_reader_t *r, const unsigned char *p, size_t n);
    int (*blob_end)(void *ctx, larder_bundle_reader_t *r, const larder_bundle_blob_t *b);
    void *ctx;
} larder_bundle_sink_t;

struct larder_bundle_reader {
    larder_tar_reader_t tar;
    larder_bundle_sink_t sink;
    int member;    /* which member is open: 0 none, 1 header, 2 manifest, 3 blob */
    int members;   /* members read so far */
    char *buf;     /* the header or manifest being read */
    size_t len, cap;
    larder_bundle_manifest_t m;
    int have_manifest;
    larder_bundle_blob_t *cur;
    uint64_t cur_have;
    void *md; /* EVP_MD_CTX of the current blob */
    uint64_t blobs_done, bytes_done; /* progress */
};

/* sink may be NULL (check only) */
void larder_bundle_reader_init(larder_bundle_reader_t *r, const larder_bundle_sink_t *sink);
void larder_bundle_reader_free(larder_bundle_reader_t *r);
/* 0, or -1 with larder_bundle_error(r) saying what is wrong (and where) */
int larder_bundle_feed(larder_bundle_reader_t *r, const void *p, size_t n);
/* the input ended: 0 when the bundle was complete, else -1 ("the bundle is truncated: ...") */
int larder_bundle_finish(larder_bundle_reader_t *r);
const char *larder_bundle_error(const larder_bundle_reader_t *r);
int larder_bundle_fail(larder_bundle_reader_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* parse and check a manifest document alone (the reader does this with the member's text); 0 or -1 and err */
int larder_bundle_parse_manifest(const char *text, size_t len, const char *pin_set, larder_bundle_manifest_t *m,
                                 char *err, size_t errlen);
/* check larder-bundle.json; fills version, larder, pin_set, created of m */
int larder_bundle_parse_header(const char *text, size_t len, larder_bundle_manifest_t *m, char *err, size_t errlen);


#endif
