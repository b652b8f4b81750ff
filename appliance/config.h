/* config.h - larder.yaml, parsed once at start-up into an immutable struct.
 *
 * Every key is documented in docs/configuration.md. Parsing never aborts the
 * process: errors come back as a message naming file, line and key. */
#ifndef LARDER_CONFIG_H
#define LARDER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum larder_proto {
    LARDER_PROTO_FILES = 0,
    LARDER_PROTO_PYPI,
    LARDER_PROTO_NPM,
    LARDER_PROTO_APT,
    LARDER_PROTO_GEMS,
    LARDER_PROTO_OCI,
    LARDER_NPROTO
};

/* "files", "pypi", ...; NULL for an out-of-range value */
const char *larder_proto_name(int proto);
/* index of a protocol name, or -1 */
int larder_proto_from_name(const char *name);

typedef struct larder_listen {
    char *address;  /* "0.0.0.0" default */
    int port;       /* 3142 default */
    char *tls_cert; /* NULL: plain HTTP */
    char *tls_key;
    int protocol;   /* -1: every protocol under its mount (/files/, /pypi/, ...); else only this protocol, at / */
} larder_listen_t;

typedef struct larder_file_pin {
    char *name;   /* served at /files/<name>; no '/' allowed */
    char *url;    /* absolute http(s) URL */
    char *sha256; /* 64 lower-case hex chars, or NULL */
} larder_file_pin_t;

typedef struct larder_file_mirror {
    char *name;   /* served at /files/<name>/<path> */
    char *prefix; /* absolute http(s) URL prefix, ends with '/' */
} larder_file_mirror_t;

typedef struct larder_oci_registry {
    char *name;     /* "docker.io", "ghcr.io", "127.0.0.1:5000" (lower case) */
    char *url;      /* https://registry-1.docker.io (no trailing '/') */
    char *username; /* optional credentials for this upstream, or NULL */
    char *password;
} larder_oci_registry_t;

typedef struct larder_proto_config {
    int enabled;          /* default 1 */
    uint64_t quota;       /* bytes, 0 = no per-protocol quota */
    uint64_t ttl;         /* seconds for volatile objects */
    char *upstream;       /* protocol default upstream URL (may be NULL) */
    char *public_url;     /* npm: base URL clients reach this protocol at (no trailing '/'), or NULL: from Host */
    char **hosts;         /* apt: allow-list of upstream hosts (host or host:port, lower case) */
    size_t nhosts;
    char **https_hosts;   /* apt: hosts fetched over https although clients ask for http:// URLs */
    size_t nhttps_hosts;
    larder_oci_registry_t *registries; /* oci: the registries mirrored (docker.io by default) */
    size_t nregistries;
} larder_proto_config_t;

typedef struct larder_config {
    char *source;          /* file name the config came from, or "<default>" */
    larder_listen_t *listen;
    size_t nlisten;
    char *data_dir;        /* "./larder-data" default */
    int offline;           /* never contact upstreams */
    int threads;           /* worker threads, 0 = number of cores */
    uint64_t quota_total;  /* bytes of blob storage, 0 = unlimited */
    uint64_t min_free;     /* free-disk watermark in bytes (default 1GiB) */
    char *admin_token;     /* NULL: admin writes are refused */
    char *upstream_proxy;  /* http://host:port or NULL */
    char *upstream_ca;     /* PEM bundle trusted for upstream TLS instead of the system store, or NULL */
    uint64_t connect_timeout; /* seconds, default 10 */
    uint64_t idle_timeout;    /* seconds without upstream bytes, default 60 */
    uint64_t max_object_size; /* bytes, default 0 = unlimited */
    int verify_on_read;       /* store.verify_on_read: hash whole blobs as they are served (default 1) */
    uint64_t verify_interval; /* store.verify_interval: seconds a blob verified by a worker thread (and unchanged
                                 on disk) is not hashed again by it (default 600; 0: every time) */
    uint64_t body_max;        /* limits.request_body: largest request body anywhere but a seed upload (64 KiB) */
    uint64_t seed_spec_max;   /* limits.seed_spec: largest seed spec body of POST /-/api/v1/jobs (16 MiB) */
    uint64_t bodies_total;    /* limits.request_bodies: bytes all seed uploads in flight may hold (64 MiB) */
    larder_proto_config_t proto[LARDER_NPROTO];
    larder_file_pin_t *pins;
    size_t npins;
    larder_file_mirror_t *mirrors;
    size_t nmirrors;
} larder_config_t;

/* Parse YAML text. On success returns a config; on failure NULL and writes a
 * message ("FILE:LINE: key 'x': problem") into err. `source` names the text in
 * messages. */
larder_config_t *larder_config_parse(const char *text, size_t len, const char *source, char *err, size_t errlen);
/* Read and parse a file (path NULL = embedded default config). */
larder_config_t *larder_config_load(const char *path, char *err, size_t errlen);
void larder_config_free(larder_config_t *cfg);

/* "10GiB", "512M", "1000" -> bytes. 0 on success, -1 on bad input. */
int larder_parse_size(const char *s, uint64_t *out);
/* "10m", "1h", "30s", "2d", "0" -> seconds. 0 on success, -1 on bad input. */
int larder_parse_duration(const char *s, uint64_t *out);

#endif
