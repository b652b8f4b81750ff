/* gems.h - the rubygems cache: request paths, the compact index /info format, Gemfile.lock reading. The pure
 * functions are exposed for the unit tests and fuzzers. */
#ifndef LARDER_GEMS_H
#define LARDER_GEMS_H

#include <stddef.h>

#include "seedspec.h"
#include "store.h"

enum {
    LARDER_GEMS_VERSIONS = 1, /* /versions */
    LARDER_GEMS_NAMES,        /* /names */
    LARDER_GEMS_INFO,         /* /info/<name> */
    LARDER_GEMS_SPECS,        /* /specs.4.8.gz, /latest_specs.4.8.gz, /prerelease_specs.4.8.gz (and unzipped) */
    LARDER_GEMS_GEMSPEC,      /* /quick/Marshal.4.8/<full>.gemspec.rz */
    LARDER_GEMS_GEM,          /* /gems/<full>.gem */
    LARDER_GEMS_DEPENDENCIES, /* /api/v1/dependencies: gone from rubygems.org */
};

/* Map a path below the mount (no query) to a kind; *arg is the gem name (INFO) or full name (GEMSPEC, GEM).
 * Returns the kind, or -1 with a message. */
int larder_gems_route(const char *path, size_t len, char *arg, size_t arglen, const char **err);

/* One version line of a compact index /info/<name> file: "1.2.3[-platform] deps|checksum:<sha256>,ruby:..." */
typedef void (*larder_gems_info_cb)(void *ctx, const char *version, const char *platform, const char *sha256);
/* Parse an /info file; returns the number of version lines seen, -1 when it is not one. */
long larder_gems_parse_info(const char *text, size_t len, larder_gems_info_cb cb, void *ctx);

/* `larder seed` side: the gems of a Gemfile.lock (every GEM section's specs) as "name:version[-platform]" lines.
 * Returns the number of lines (malloc'd array of malloc'd strings) or -1 with a message. */
long larder_gems_lockfile_lines(const char *text, size_t len, char ***lines, char *err, size_t errlen);
/* The same, reporting the specs of GIT sections (failed=1: not seedable from a gem server) and PATH sections
 * (failed=0: local, nothing to fetch) through cb (may be NULL). */
typedef void (*larder_gems_unseedable_cb)(void *ctx, const char *what, const char *why, int failed);
long larder_gems_lockfile_lines_ex(const char *text, size_t len, char ***lines, larder_gems_unseedable_cb cb, void *ctx,
                                   char *err, size_t errlen);

/* "name:version[-platform]" (also "name (version)") -> parts. 0, or -1 with a message. */
int larder_gems_parse_seed_ref(const char *ref, char *name, size_t namelen, char *version, size_t versionlen,
                               char *err, size_t errlen);

/* the seed line of a gem's /info alone (with the shared indexes, no .gem): "<name> --info-only" */
#define LARDER_GEMS_INFO_ONLY "--info-only"

/* the pin_spec hook (module.h): gems/<name>-<version>.gem (and its gemspec) -> "<name>:<version>", verified
 * against /info when seeded; info/<name> -> nothing when a gem of that name is in the spec, else
 * "<name> --info-only"; the shared indexes come with every gem */
int larder_gems_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                         char *why, size_t whylen);

#endif
