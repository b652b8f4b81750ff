/* internal.h - what the files of the npm protocol share; nothing outside protocols/npm/ includes it (the public
 * functions, for main.c, the unit tests and the fuzzer, are in npm.h). */
#ifndef LARDER_NPM_INTERNAL_H
#define LARDER_NPM_INTERNAL_H

#include "npm.h"
#include "fetch.h"
#include "jobs.h"
#include "registry.h"

#include <stdint.h>

/* route.c: a valid tarball file name ("<name>-<version>.tgz" of safe characters): 1, else 0. */
int npm_file_ok(const char *s, size_t len);

/* packument.c: an http:// or https:// URL: 1, else 0. */
int npm_is_http(const char *u);
/* packument.c: the file name of a tarball URL (its last path segment, a valid file name); 0, or -1 */
int npm_tarball_file(const char *url, char *out, size_t outlen);
/* packument.c: the transform of the keys pk/<name>/full (the upstream document rewritten, tarball records written)
 * and pk/<name>/abbr (derived from the stored full form); runs on a commit thread. */
int npm_transform_packument(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                            char **content_type, char *err, size_t errlen);
/* packument.c: the streaming transform of a packument download: outputs pk/<name>/full and pk/<name>/abbr (in this
 * order in stream_keys), the tarball records and meta pa/<name> committed with them. */
extern const larder_stream_ops_t npm_packument_stream;
/* pkstream.c: the tarball callback's context of a stream */
void *larder_npm_stream_cbctx(larder_npm_stream_t *s);
/* packument.c: whether the stored abbreviated form (entry abbr) was derived from the stored full form (entry full),
 * as meta pa/<name> records: 1, else 0. */
int npm_abbr_matches(larder_store_t *st, const char *name, const larder_entry_t *full, const larder_entry_t *abbr);
/* packument.c: "sha1-<base64>" from the hex shasum of a tarball record; 0, or -1 when it is not one. */
int npm_shasum_integrity(const char *hex, char *out, size_t outlen);

/* serve.c: the configured upstream registry (npm.upstream), NULL when there is none. */
const char *npm_upstream_base(const larder_config_t *cfg);
/* serve.c: the upstream URL of a packument (scoped names with an encoded slash, as registry.npmjs.org expects). */
void npm_packument_url(const larder_config_t *cfg, const char *name, char *out, size_t outlen);

/* serve.c: /npm/<rest>: packuments, tarballs and the pass-through endpoints. */
void npm_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);
/* seed.c: the seed expander of larder_protocol_npm. */
void npm_seed(larder_app_t *app, const larder_seed_item_t *item, struct larder_seed_ctx *ctx);

#endif
