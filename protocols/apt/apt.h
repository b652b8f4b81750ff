/* apt.h - the apt repository cache: request mapping (proxy and path mode), Release and Packages parsing, and the
 * dependency closure used for seeding. The pure functions are exposed for the unit tests and fuzzers. */
#ifndef LARDER_APT_H
#define LARDER_APT_H

#include <stddef.h>
#include <stdint.h>

#include "module.h"

/* the apt section of larder.yaml beyond the common keys */
typedef struct larder_apt_conf {
    larder_conf_hosts_t allow;       /* apt.allow: the upstream hosts apt requests may reach */
    larder_conf_hosts_t https_hosts; /* apt.https_hosts: fetched over https although asked for http:// */
} larder_apt_conf_t;

enum larder_apt_kind {
    LARDER_APT_RELEASE = 1, /* dists/<suite>/{InRelease,Release,Release.gpg}: volatile */
    LARDER_APT_INDEX,       /* other files under dists/ (Packages, Translation, ...): volatile, or pinned by Release */
    LARDER_APT_BYHASH,      /* dists/.../by-hash/<ALGO>/<hash>: immutable */
    LARDER_APT_POOL,        /* pool/...: packages and sources, immutable */
};

typedef struct larder_apt_target {
    int https;          /* the client asked for https (path mode /apt/https/...) */
    char host[256];     /* lower-case host[:port] */
    char path[2048];    /* absolute path on the host, starting with '/' */
    int kind;           /* enum larder_apt_kind */
    size_t prefix_len;  /* length of the repository prefix in path ("/debian" in /debian/dists/...) */
    char suite[128];    /* the suite (dists/<suite>/...) for RELEASE, INDEX and BYHASH */
    const char *relpath; /* for INDEX: the path below dists/<suite>/ (points into path) */
} larder_apt_target_t;

/* Map what a client asked for onto a repository file.
 *   proxy form: "http://host[:port]/path" (an absolute-URI request line)
 *   path form:  "<host>/<path>" or "https/<host>/<path>" (below /apt/)
 * Only repository paths (.../dists/..., .../pool/...) are accepted; traversal, encoded slashes, queries and odd
 * characters are refused. 0, or -1 with a message. */
int larder_apt_map(const char *target, size_t len, int proxy_form, larder_apt_target_t *out, char *err,
                   size_t errlen);

/* One file listed in the SHA256 section of a Release/InRelease file. */
typedef void (*larder_apt_release_cb)(void *ctx, const char *relpath, const char *sha256, uint64_t size);
/* Parse Release or InRelease text: calls cb for each SHA256 entry; *by_hash set from "Acquire-By-Hash: yes".
 * Returns the number of entries, or -1 when the text is not a Release file. */
int larder_apt_parse_release(const char *text, size_t len, larder_apt_release_cb cb, void *ctx, int *by_hash);

/* One stanza of a Packages file (strings are NUL-terminated copies valid during the call, NULL when absent). */
typedef struct larder_apt_pkg {
    const char *package, *version, *filename, *sha256, *depends, *pre_depends, *provides, *architecture;
    uint64_t size;
    const char *multi_arch, *essential, *priority;
} larder_apt_pkg_t;
typedef void (*larder_apt_pkg_cb)(void *ctx, const larder_apt_pkg_t *p);
/* Parse an uncompressed Packages file; returns the number of stanzas with a Package field. */
long larder_apt_parse_packages(const char *text, size_t len, larder_apt_pkg_cb cb, void *ctx);

/* Decompress a Packages/Translation file if it is xz or gzip (sniffed from the magic bytes); plain text is copied.
 * Returns a malloc'd NUL-terminated buffer (length in *outlen) or NULL. `max` caps the output size. */
char *larder_apt_decompress(const char *in, size_t len, size_t max, size_t *outlen);

/* Dependency closure over a set of Packages files: add stanzas, then resolve names, the way apt would with nothing
 * installed and no preferences: each package name contributes its candidate, the highest version (Debian ordering)
 * of the native architecture or `all` among all added stanzas (equal versions: the first added, so add indexes in a
 * fixed order). Depends and Pre-Depends are followed: a group "a (>= 1) | b:any | c" takes its first alternative
 * whose candidate satisfies it (version constraint; Multi-Arch: allowed for :any), else a candidate that Provides
 * the name (versioned dependencies need a versioned "Provides: name (= v)"). Recommends are not followed. */
typedef struct larder_apt_universe larder_apt_universe_t;
larder_apt_universe_t *larder_apt_universe_new(void);
void larder_apt_universe_free(larder_apt_universe_t *u);
/* the native architecture (stanzas of other architectures answer only name:arch); NULL or "" accepts all */
void larder_apt_universe_set_arch(larder_apt_universe_t *u, const char *arch);
/* add every stanza of an uncompressed Packages text; `repo` is an opaque tag returned with each package */
long larder_apt_universe_add(larder_apt_universe_t *u, const char *text, size_t len, int repo);
typedef void (*larder_apt_closure_cb)(void *ctx, const char *package, const char *version, const char *filename,
                                      const char *sha256, uint64_t size, int repo);
/* a name nothing answers to (why NULL; needed_by NULL for a top-level name), or a relation that no candidate
 * satisfies, a virtual top-level name with several providers (why says so) */
typedef void (*larder_apt_missing_cb)(void *ctx, const char *name, const char *needed_by, const char *why);
/* cb once per package file in the closure (the candidate; also the same version with other bytes in another
 * repository, since apt may take either); missing as above; a dependency no candidate satisfies still pins the
 * candidate of its first alternative (what apt would take before failing). Returns the number of cb calls. */
long larder_apt_closure(larder_apt_universe_t *u, char *const *names, size_t n, larder_apt_closure_cb cb,
                        larder_apt_missing_cb missing, void *ctx);

/* "name[:arch]=version" (an exact package of a pin set's spec): cb for each stanza of exactly that version and
 * architecture (no arch: the native one or all; a version without an epoch matches any epoch, as .deb file names
 * drop it), one per distinct file; dependencies are not followed. The number of cb calls, -1 without '=' */
long larder_apt_exact(larder_apt_universe_t *u, const char *spec, larder_apt_closure_cb cb, void *ctx);

/* an apt.packages entry that is no package: the repositories' Release files and indexes only */
#define LARDER_APT_INDEXES_ONLY "--indexes-only"

/* the pin_spec hook (module.h): Release files and indexes -> the repository (url, suite, components,
 * architectures) in apt.repositories; a pool .deb -> "name[:arch]=version" in apt.packages, resolved in those
 * repositories (which must include one of the .deb's: its Release sorts first) */
int larder_apt_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                        char *why, size_t whylen);

#endif
