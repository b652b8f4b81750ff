/* seedspec.h - the seed spec: a YAML document naming what to fetch and pin.
 *
 *   pin_set: tutor-18          # required: [A-Za-z0-9._-]{1,64}
 *   files:                     # one section per protocol
 *     - node-v20.tar.xz        # a configured pin name, or
 *     - nodejs/v20.11.1/node-v20.11.1-linux-x64.tar.xz   # <mirror>/<path>
 *     - path: python/3.11.7/Python-3.11.7.tar.xz         # mapping form
 *       sha256: 0123...        # optional expected digest
 *
 * Parsing only checks shape; the protocol handlers resolve each ref. */
#ifndef LARDER_SEEDSPEC_H
#define LARDER_SEEDSPEC_H

#include <stddef.h>

typedef struct larder_seed_item {
    int proto;    /* enum larder_proto */
    char *ref;    /* protocol-specific reference (for files: the path under /files/) */
    char *sha256; /* optional, 64 lower-case hex, or NULL */
} larder_seed_item_t;

typedef struct larder_seed_strings {
    char **v;
    size_t n;
} larder_seed_strings_t;

typedef struct larder_seed_spec {
    char *pin_set;
    larder_seed_item_t *items;
    size_t nitems;
    /* pypi section options */
    larder_seed_strings_t pypi_python_versions; /* default {"3.11"} */
    larder_seed_strings_t pypi_platforms;       /* default {"manylinux2014_x86_64"} */
    larder_seed_strings_t pypi_requirement_files; /* only with LARDER_SEED_CLIENT: read by `larder seed` */
    /* npm section options; npm items are "name@version" with an optional " <integrity>" after a space */
    larder_seed_strings_t npm_lockfiles; /* only with LARDER_SEED_CLIENT: package-lock.json files */
    /* apt section: repositories as "url suite comp,comp arch,arch signed_by|-"; the packages are one item whose
     * ref is the space-separated package names (their closure is resolved together) */
    larder_seed_strings_t apt_repos;
    larder_seed_strings_t oci_platforms; /* "os/arch[/variant]", default {"linux/amd64"} */
    larder_seed_strings_t gems_lockfiles; /* only with LARDER_SEED_CLIENT: Gemfile.lock files */
} larder_seed_spec_t;

/* NULL on error with a message ("line N: ...") in err. */
larder_seed_spec_t *larder_seed_parse(const char *text, size_t len, char *err, size_t errlen);
/* LARDER_SEED_CLIENT: the `larder seed` side, which may name local files (pypi.requirement_files) */
#define LARDER_SEED_CLIENT 1
larder_seed_spec_t *larder_seed_parse_ex(const char *text, size_t len, int flags, char *err, size_t errlen);
/* append an item (copies ref); 0 or -1 */
int larder_seed_append(larder_seed_spec_t *spec, int proto, const char *ref, const char *sha256);
/* the spec as YAML (requirement files already expanded into items); malloc'd */
char *larder_seed_emit(const larder_seed_spec_t *spec);
void larder_seed_free(larder_seed_spec_t *spec);

#endif
