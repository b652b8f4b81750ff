/* pypi.h - the Python package index (PEP 503 HTML, PEP 691 JSON, PEP 658/714 metadata) at /pypi/. */
#ifndef LARDER_PYPI_H
#define LARDER_PYPI_H

#include <stddef.h>
#include <stdint.h>

#include "seedspec.h"
#include "store.h"

enum { LARDER_PYPI_HTML = 0, LARDER_PYPI_JSON = 1 };

/* PEP 503 normalisation (lower-case, runs of -_. to one '-') into out (outlen >= len + 1); 0, or -1 when the
 * name is empty, too long or has characters outside [A-Za-z0-9._-]. */
int larder_pypi_normalize(const char *name, size_t len, char *out, size_t outlen);

/* Choose a format from an Accept header (NULL or empty = none, taken as "any type"), PEP 691 style: each of the three
 * representations (v1+json, v1+html, text/html; "latest" is an alias of v1) gets the q of the most specific media
 * range matching it (exact, "type/any", "any/any"); the highest q wins, then the more specific match, then JSON over HTML
 * for exact matches and text/html for wildcards (a bare "any/any" gets text/html). Returns LARDER_PYPI_JSON or
 * LARDER_PYPI_HTML, with *legacy_html set when text/html won; -1 when nothing acceptable (406). */
int larder_pypi_negotiate(const char *accept, size_t len, int *legacy_html);

/* Resolve `ref` against the absolute URL `base` (RFC 3986 subset: absolute, scheme-relative, path-absolute,
 * relative with dot segments). malloc'd, fragment removed (returned in *fragment, malloc'd or NULL). */
char *larder_url_resolve(const char *base, const char *ref, size_t reflen, char **fragment);

typedef struct larder_pypi_file {
    const char *url;          /* absolute upstream URL, no fragment */
    const char *sha256;       /* hex or NULL */
    const char *meta_sha256;  /* PEP 658/714 metadata digest, or NULL */
    int has_meta;             /* metadata file announced (with or without digest) */
} larder_pypi_file_t;

typedef struct larder_pypi_buf {
    char *p;
    size_t len, cap;
} larder_pypi_buf_t;

typedef void (*larder_pypi_file_cb)(void *ctx, const larder_pypi_file_t *f);

/* Rewrite an upstream project page (HTML or JSON, `in_json`) fetched from page_url into format out_fmt, every
 * file link pointing back at /pypi/files/<project>/<scheme>/<host>/<path> relative to /pypi/simple/<project>/.
 * JSON out is what is stored: PEP 691 with "hashes" always present and URLs without a fragment; HTML out is that
 * JSON rendered by larder_pypi_render_html. Reports each file through cb. 0, or -1 with a message. Pure: safe to
 * fuzz. */
int larder_pypi_rewrite_page(const char *page_url, const char *project, int in_json, const char *in, size_t len,
                             int out_fmt, larder_pypi_buf_t *out, larder_pypi_file_cb cb, void *ctx, char *err,
                             size_t errlen);

/* The upstream project list (HTML anchors or PEP 691 JSON) as PEP 691 JSON: {"meta":{"api-version":"1.0"},
 * "projects":[{"name":...}]}, names that are not valid project names dropped. 0, or -1 with a message. */
int larder_pypi_rewrite_index(int in_json, const char *in, size_t len, larder_pypi_buf_t *out, char *err,
                              size_t errlen);

/* Our stored JSON (a project page or the project list) as PEP 503 HTML: data-requires-python, data-yanked,
 * data-gpg-sig, data-core-metadata and data-dist-info-metadata, one hash as the URL fragment; project links
 * relative ("<normalized>/"). malloc'd with its length in *outlen, or NULL when the input is not such JSON. */
char *larder_pypi_render_html(const char *in, size_t len, size_t *outlen);

/* Parse a wheel or sdist filename: name (normalised) and version; for wheels the tag triple. 0 or -1. */
typedef struct larder_pypi_dist {
    char name[256], version[128];
    int is_wheel;
    char pytag[128], abitag[128], plattag[256];
} larder_pypi_dist_t;
int larder_pypi_parse_filename(const char *filename, larder_pypi_dist_t *out);

/* Would this dist install on one of `pyvers` ("3.11") x `platforms` ("manylinux2014_x86_64")? sdists always do. */
int larder_pypi_dist_matches(const larder_pypi_dist_t *d, char *const *pyvers, size_t npy, char *const *platforms,
                             size_t nplat);

/* "name[extras]==version [; markers] [--hash=sha256:HEX ...] [--file=FILENAME]"; --file names one file of the
 * release (whatever the seed's python_versions and platforms): the exact-file form of a pin set's spec */
typedef struct larder_pypi_requirement {
    char name[256];
    char version[128];
    char hashes[32][65];
    size_t nhashes;
    char file[256]; /* --file=, or "" */
} larder_pypi_requirement_t;
int larder_pypi_parse_requirement(const char *line, larder_pypi_requirement_t *out, char *err, size_t errlen);

/* Split a requirements file (pip-compile output) into requirement lines: continuations joined, comments and
 * option lines dropped; `-r FILE` lines are returned in *includes (paths as written). Returns the number of
 * lines; both arrays are malloc'd (free each string and the array). */
size_t larder_pypi_requirement_lines(const char *text, size_t len, char ***lines, char ***includes, size_t *nincludes);
/* The same, reporting every line that is not an index requirement through cb (may be NULL): git/VCS sources and
 * direct URLs (`-e git+https://...`, `git+https://...`, `name @ https://...`) with failed=1, since the pip section
 * cannot seed them; local paths and editable local projects with failed=0 (nothing to fetch). */
typedef void (*larder_pypi_unseedable_cb)(void *ctx, const char *line, const char *why, int failed);
size_t larder_pypi_requirement_lines_ex(const char *text, size_t len, char ***lines, char ***includes,
                                        size_t *nincludes, larder_pypi_unseedable_cb cb, void *ctx);

/* the seed line of a project's index page alone (no file): "<name> --page-only" */
#define LARDER_PYPI_PAGE_ONLY "--page-only"

/* the pin_spec hook (module.h): a file (key: its canonical upstream URL) or its .metadata -> "<name>==<version>
 * --file=<filename> --hash=sha256:<stored digest>"; a project page -> nothing when a file of the project is in the
 * spec, else "<name> --page-only"; the project list cannot be seeded */
int larder_pypi_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                         char *why, size_t whylen);

#endif
