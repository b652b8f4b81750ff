/* files.h - pinned and mirrored arbitrary files at /files/. */
#ifndef LARDER_FILES_H
#define LARDER_FILES_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "util.h"

typedef struct larder_file_pin {
    char *name;   /* served at /files/<name>; no '/' allowed */
    char *url;    /* absolute http(s) URL */
    char *sha256; /* 64 lower-case hex chars, or NULL */
} larder_file_pin_t;

typedef struct larder_file_mirror {
    char *name;   /* served at /files/<name>/<path> */
    char *prefix; /* absolute http(s) URL prefix, ends with '/' */
} larder_file_mirror_t;

/* the files section of larder.yaml beyond the common keys (files.pins, files.mirrors) */
typedef struct larder_files_conf {
    larder_file_pin_t *pins;
    size_t npins;
    larder_file_mirror_t *mirrors;
    size_t nmirrors;
} larder_files_conf_t;

enum { LARDER_FILES_FETCH = 1, LARDER_FILES_DIGEST = 2 };

typedef struct larder_files_target {
    int kind;
    char digest[LARDER_SHA256_HEX]; /* LARDER_FILES_DIGEST */
    char *url;                      /* LARDER_FILES_FETCH: malloc'd upstream URL, also the cache key */
    const char *sha256;             /* expected digest from the pin, or NULL */
    uint32_t flags;
    uint64_t ttl;
} larder_files_target_t;

/* Map the raw path under /files/ (no leading '/', query allowed and ignored) to a target.
 * Returns 0, or an HTTP status (400, 404) with a message in err. Pure: safe to fuzz. */
int larder_files_map(const larder_config_t *cfg, const char *path, size_t len, larder_files_target_t *out, char *err,
                     size_t errlen);

#endif
