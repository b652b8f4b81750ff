/* internal.h - what the pypi files share (pages.c, render.c, serve.c, seed.c); only they include it. The API the
 * rest of Larder, the tests and the fuzzers use is pypi.h. */
#ifndef LARDER_PYPI_INTERNAL_H
#define LARDER_PYPI_INTERNAL_H

#include "pypi.h"
#include "jobs.h"
#include "registry.h"
#include "seedspec.h"

#include <jansson.h>
#include <stddef.h>

/* ---- the page model (pages.c builds it, render.c writes it out) ---- */

typedef struct pypi_file_rec {
    char *filename, *url, *fragment, *sha256, *requires_python, *yanked, *meta_sha256;
    char *hash_alg, *hash_hex; /* a fragment hash other than sha256 (HTML input), kept for the client */
    int yanked_flag, has_meta;
    int gpg_sig;   /* data-gpg-sig: -1 not given, 0, 1 */
    json_t *extra; /* JSON input: the original object (fields kept) */
} pypi_file_rec_t;

typedef struct pypi_page {
    pypi_file_rec_t *files;
    size_t n, cap;
} pypi_page_t;

/* ---- pages.c ---- */

/* a PEP 691 file object's "hashes"."sha256" when it is 64 lower-case hex digits, else NULL */
const char *pypi_json_sha256(json_t *o);
/* PEP 691 metadata value: true, or a non-empty object of hashes (what Python would call truthy) */
int pypi_json_truthy_meta(json_t *m);

/* ---- render.c ---- */

/* append n bytes to b, keeping it NUL-terminated (aborts when out of memory) */
void pypi_buf_add(larder_pypi_buf_t *b, const char *s, size_t n);
/* append a C string to b */
void pypi_buf_str(larder_pypi_buf_t *b, const char *s);

/* the hash names PEP 503 lets an index use (hashlib's guaranteed ones) and their hex lengths, sha256 first */
typedef struct pypi_hash_alg {
    const char *name;
    size_t hexlen;
} pypi_hash_alg_t;
extern const pypi_hash_alg_t pypi_hash_algs[6];
/* is s exactly n lower-case hex digits? (NULL is not) */
int pypi_is_lower_hex(const char *s, size_t n);

/* the stored form of a project page (PEP 691 JSON, our file links) from the page model and, for a JSON upstream,
 * its original root object (NULL for HTML); appended to out */
void pypi_emit_json(const char *project, json_t *orig_root, pypi_page_t *pg, larder_pypi_buf_t *out);

/* ---- serve.c ---- */

/* what we ask an upstream index for: JSON preferred, HTML accepted */
#define UPSTREAM_ACCEPT "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"

/* the configured upstream index URL (ends with '/'), or NULL */
static inline char *upstream_base(const larder_config_t *cfg)
{
    return cfg->proto[LARDER_PROTO_PYPI].upstream;
}

/* "scheme://host/path" in the one form records and requests compare in (malloc'd, or NULL) */
char *pypi_canon_url(const char *scheme, size_t sl, const char *host, size_t hl, const char *path, size_t pl);
/* the fetch transform of a project page or the project list: the upstream document becomes our stored JSON and
 * each file of a project page is recorded in the store (larder_fetch_req_t.transform) */
int pypi_transform_page(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                        char **content_type, char *err, size_t errlen);

/* ---- seed.c ---- */

/* the protocol's .seed: one pinned requirement into the fetches of its release's matching files */
void pypi_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx);
/* serve.c: /pypi/<rest>: simple pages, files, metadata */
void pypi_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);

#endif
