/* npm.h - the npm registry handler: packuments (full and abbreviated), tarballs, search and audit pass-through,
 * seeding from package-lock.json. The pure functions are exposed for the unit tests and fuzzers. */
#ifndef LARDER_NPM_H
#define LARDER_NPM_H

#include <stddef.h>

#include "seedspec.h"
#include "store.h"

/* the npm section of larder.yaml beyond the common keys */
typedef struct larder_npm_conf {
    char *public_url; /* npm.public_url: base URL clients reach npm at (no trailing '/'), or NULL: from Host */
} larder_npm_conf_t;

/* What stored packuments say instead of our own base URL; replaced per request when served, because the base
 * (public_url, or the scheme and Host the client used) is not known when the document is stored. */
#define LARDER_NPM_BASE_TOKEN "@larder-base@"

typedef struct larder_npm_buf {
    char *p;
    size_t len, cap;
} larder_npm_buf_t;

/* One tarball a packument lists: our file name for it (the last path segment of dist.tarball), the upstream URL
 * and what to verify it against (SRI integrity and/or sha1 shasum, either may be NULL). */
typedef struct larder_npm_tarball {
    const char *version;
    const char *file;
    const char *url;
    const char *integrity;
    const char *shasum;
} larder_npm_tarball_t;
typedef void (*larder_npm_tarball_cb)(void *ctx, const larder_npm_tarball_t *t);

/* A valid package name ("name" or "@scope/name"): 1, else 0. */
int larder_npm_name_ok(const char *name, size_t len);

/* Split a request path below the mount (no query) into what it asks for.
 *   LARDER_NPM_PACKUMENT  name            ("lodash", "@types%2fnode", "@types%2Fnode", "@types/node")
 *   LARDER_NPM_TARBALL    name, file      ("lodash/-/lodash-4.17.21.tgz", "@types/node/-/node-20.1.0.tgz")
 *   LARDER_NPM_VERSION    name, file=version ("lodash/4.17.21", "lodash/latest")
 *   -1 with a message for anything else. */
enum { LARDER_NPM_PACKUMENT = 1, LARDER_NPM_TARBALL, LARDER_NPM_VERSION };
int larder_npm_route(const char *path, size_t len, char *name, size_t namelen, char *file, size_t filelen,
                     const char **err);

/* Rewrite an upstream packument (JSON) for clients: every dist.tarball becomes
 * LARDER_NPM_BASE_TOKEN "/<name>/-/<file>"; with `abbreviated`, only the fields an installer needs are kept
 * (plus `time`, which pnpm uses). cb (may be NULL) sees every tarball. 0, or -1 with a message. */
int larder_npm_rewrite_packument(const char *in, size_t len, const char *name, int abbreviated, larder_npm_buf_t *out,
                                 larder_npm_tarball_cb cb, void *ctx, char *err, size_t errlen);

/* The same rewrite streaming (pkstream.c): the document is fed in chunks as it arrives and both forms are made in
 * one pass without a DOM, each appended to its buffer (larder_npm_stream_out: 0 the full form, 1 the abbreviated
 * one), which the caller drains (writes out and sets len to 0) as it likes. cb sees every tarball at the end of its
 * dist object. The result equals, as JSON, larder_npm_rewrite_packument()'s; `modified` comes last in the
 * abbreviated form. feed/finish: 0, or -1 with a message (malformed JSON, not an object, 'versions' not an
 * object, an incomplete document); after an error every call fails. */
typedef struct larder_npm_stream larder_npm_stream_t;
larder_npm_stream_t *larder_npm_stream_new(const char *name, larder_npm_tarball_cb cb, void *ctx);
larder_npm_buf_t *larder_npm_stream_out(larder_npm_stream_t *s, int abbreviated);
int larder_npm_stream_feed(larder_npm_stream_t *s, const char *buf, size_t len, char *err, size_t errlen);
int larder_npm_stream_finish(larder_npm_stream_t *s, char *err, size_t errlen);
void larder_npm_stream_free(larder_npm_stream_t *s);

/* `larder seed` side: the packages of a package-lock.json (lockfileVersion 2 or 3) as seed lines
 * "name@version integrity" (integrity omitted when the lockfile has none). Entries without `resolved` (npm's
 * omit-lockfile-registry-resolved) are registry packages by name and version. Entries bundled in another package
 * are covered by it; links and file: entries are local (reported with failed=0: nothing to fetch); git, tarball-URL
 * and other sources cannot be seeded by the npm section (reported with failed=1). `skipped` may be NULL. Returns the
 * number of lines (malloc'd array of malloc'd strings) or -1 with a message. */
typedef void (*larder_npm_skip_cb)(void *ctx, const char *what, const char *why, int failed);
long larder_npm_lockfile_lines(const char *json, size_t len, char ***lines, larder_npm_skip_cb skipped, void *ctx,
                               char *err, size_t errlen);

/* The same from a yarn.lock (v1): "name@version integrity" per registry package (duplicates dropped). Local
 * (file:, link:) entries and git or tarball-URL sources are reported through skipped (may be NULL) with the line
 * of their entry. -1 with "line N: ..." in err and *errline = N (0 when no line is to blame). */
typedef void (*larder_npm_yarn_cb)(void *ctx, unsigned line, const char *what, const char *why, int failed);
long larder_npm_yarnlock_lines(const char *text, size_t len, char ***lines, larder_npm_yarn_cb skipped, void *ctx,
                               unsigned *errline, char *err, size_t errlen);

/* "name@version[ integrity]" -> parts; version must be exact (x.y.z[-pre][+build]). 0, or -1 with a message. */
int larder_npm_parse_seed_ref(const char *ref, char *name, size_t namelen, char *version, size_t versionlen,
                              char *integrity, size_t intlen, char *err, size_t errlen);

/* the seed line of a package's packument alone (both forms, no tarball): "<name> --packument-only" */
#define LARDER_NPM_PACKUMENT_ONLY "--packument-only"

/* the pin_spec hook (module.h): tgz/<name>/<file> -> "<name>@<version> sha256-<the stored digest>"; a packument
 * (pk/<name>/full|abbr) -> nothing when the package has a tarball item, else "<name> --packument-only" */
int larder_npm_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                        char *why, size_t whylen);

#endif
