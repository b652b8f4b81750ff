/* seedspec.h - the seed spec: a YAML document naming what to fetch and pin.
 *
 *   pin_set: tutor-18          # required: [A-Za-z0-9._-]{1,64}
 *   files:                     # one section per protocol
 *     - node-v20.tar.xz        # a configured pin name, or
 *     - nodejs/v20.11.1/node-v20.11.1-linux-x64.tar.xz   # <mirror>/<path>
 *     - path: python/3.11.7/Python-3.11.7.tar.xz         # mapping form
 *       sha256: 0123...        # optional expected digest
 *
 * Parsing only checks shape; the protocol handlers resolve each ref. A protocol's section is the module's to
 * declare (module.h: seed_keys, or a seed_section parser of its own). */
#ifndef LARDER_SEEDSPEC_H
#define LARDER_SEEDSPEC_H

#include <stddef.h>

#include "config.h"

typedef struct larder_seed_item {
    int proto;    /* enum larder_proto */
    char *ref;    /* protocol-specific reference (for files: the path under /files/) */
    char *sha256; /* optional, 64 lower-case hex, or NULL */
} larder_seed_item_t;

typedef struct larder_seed_strings {
    char **v;
    size_t n;
} larder_seed_strings_t;

#define LARDER_SEED_MAX_KEYS 8 /* keys one module's seed section may declare */

typedef struct larder_seed_spec {
    char *pin_set;
    larder_seed_item_t *items;
    size_t nitems;
    /* the strings of each module's OPTION and FILES keys, by module and by the key's index in its seed_keys
     * (module.h); read them with larder_seed_option() */
    larder_seed_strings_t opts[LARDER_MAX_PROTO][LARDER_SEED_MAX_KEYS];
} larder_seed_spec_t;

/* the strings given for (or defaulted to) a module's seed key: "python_versions", "platforms", ...; NULL when the
 * module declares no such key */
const larder_seed_strings_t *larder_seed_option(const larder_seed_spec_t *spec, int proto, const char *key);
int larder_seed_strings_add(larder_seed_strings_t *s, const char *v, size_t len);
void larder_seed_strings_free(larder_seed_strings_t *s);

/* NULL on error with a message ("line N: ...") in err. */
larder_seed_spec_t *larder_seed_parse(const char *text, size_t len, char *err, size_t errlen);
/* LARDER_SEED_CLIENT: the `larder seed` side, which may name local files (the modules' LARDER_SEED_FILES keys) */
#define LARDER_SEED_CLIENT 1
larder_seed_spec_t *larder_seed_parse_ex(const char *text, size_t len, int flags, char *err, size_t errlen);
/* append an item (copies ref); 0 or -1 */
int larder_seed_append(larder_seed_spec_t *spec, int proto, const char *ref, const char *sha256);
/* give every option the spec leaves empty its module's declared default (as parsing does); 0 or -1 */
int larder_seed_apply_defaults(larder_seed_spec_t *spec);
/* the spec as YAML (local files already expanded into items); malloc'd */
char *larder_seed_emit(const larder_seed_spec_t *spec);
void larder_seed_free(larder_seed_spec_t *spec);

#endif
