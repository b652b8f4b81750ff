/* config.h - larder.yaml, parsed once at start-up into an immutable struct.
 *
 * Every key is documented in docs/configuration.md. Parsing never aborts the
 * process: errors come back as a message naming file, line and key. */
#ifndef LARDER_CONFIG_H
#define LARDER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* the protocol's name ("files", "pypi", ...: its module's name), NULL for an out-of-range value */
const char *larder_proto_name(int proto);
/* index of a protocol name, or -1 */
int larder_proto_from_name(const char *name);
/* number of protocol modules (protocols/registry.c) */
int larder_proto_count(void);

typedef struct larder_listen {
    char *address;  /* "0.0.0.0" default */
    int port;       /* 3142 default */
    char *tls_cert; /* NULL: plain HTTP */
    char *tls_key;
    int protocol;   /* -1: every protocol under its mount (/files/, /pypi/, ...); else only this protocol, at / */
    int http2;      /* TLS listeners: offer HTTP/2 by ALPN (default 1); 0: HTTP/1.1 only */
} larder_listen_t;

/* the settings every protocol section has; the module's own keys are in `ext` (module.h) */
typedef struct larder_proto_config {
    int enabled;      /* default 1 */
    uint64_t quota;   /* bytes, 0 = no per-protocol quota */
    uint64_t ttl;     /* seconds for volatile objects */
    char *upstream;   /* protocol default upstream URL (may be NULL) */
    void *ext;        /* the module's config struct (its conf_size bytes), or NULL */
} larder_proto_config_t;

/* the most protocols one build can have: sizes the per-protocol arrays of the core (counters, quotas) */
#define LARDER_MAX_PROTO 16

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
    char *admin_token_file; /* admin.token_file: read into admin_token at load when admin.token is unset */
    char *upstream_proxy;  /* http://host:port or NULL */
    char *upstream_ca;     /* PEM bundle trusted for upstream TLS instead of the system store, or NULL */
    uint64_t connect_timeout; /* seconds, default 10 */
    uint64_t idle_timeout;    /* seconds without upstream bytes, default 60 */
    uint64_t client_idle_timeout; /* seconds a client's idle keep-alive connection stays open, default 60 */
    int holdoff_after;        /* timeouts.holdoff_after: failures to reach an upstream before a hold-off (0: never) */
    uint64_t holdoff_first;   /* timeouts.holdoff: the first hold-off, seconds (5) */
    uint64_t holdoff_max;     /* timeouts.holdoff_max: the longest, seconds (60) */
    uint64_t max_object_size; /* bytes, default 0 = unlimited */
    int verify_on_read;       /* store.verify_on_read: hash whole blobs as they are served (default 1) */
    uint64_t verify_interval; /* store.verify_interval: seconds a blob verified by a worker thread (and unchanged
                                 on disk) is not hashed again by it (default 600; 0: every time) */
    uint64_t body_max;        /* limits.request_body: largest request body anywhere but a seed upload (64 KiB) */
    uint64_t seed_spec_max;   /* limits.seed_spec: largest seed spec body of POST /-/api/v1/jobs (16 MiB) */
    uint64_t bodies_total;    /* limits.request_bodies: bytes all seed uploads in flight may hold (64 MiB) */
    uint64_t jobs_keep;       /* jobs.keep: finished seed jobs kept (200) */
    uint64_t jobs_max_age;    /* jobs.max_age: seconds a finished seed job is kept (30 days) */
    larder_proto_config_t proto[LARDER_MAX_PROTO]; /* indexed by module (larder_proto_count() used) */
} larder_config_t;

/* Parse YAML text. On success returns a config; on failure NULL and writes a
 * message ("FILE:LINE: key 'x': problem") into err. `source` names the text in
 * messages. */
larder_config_t *larder_config_parse(const char *text, size_t len, const char *source, char *err, size_t errlen);
/* Read and parse a file (path NULL = the defaults every module declares). */
larder_config_t *larder_config_load(const char *path, char *err, size_t errlen);
void larder_config_free(larder_config_t *cfg);
/* the effective configuration as larder.yaml text: every key with its value, the module that owns it and its
 * one-line doc as comments; parsing the output gives the same configuration */
void larder_config_print(FILE *f, const larder_config_t *cfg);
/* every declared key as "section.key<TAB>type<TAB>default<TAB>owner" lines (the docs test compares them with
 * docs/configuration.md) */
void larder_config_keys(FILE *f);

/* "10GiB", "512M", "1000" -> bytes. 0 on success, -1 on bad input. */
int larder_parse_size(const char *s, uint64_t *out);
/* "10m", "1h", "30s", "2d", "0" -> seconds. 0 on success, -1 on bad input. */
int larder_parse_duration(const char *s, uint64_t *out);

#endif
