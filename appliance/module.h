/* module.h - what a protocol module declares, and the core helpers its declarations use.
 *
 * The core (appliance/) never names a protocol. Each protocol is a module under protocols/<name>/ that fills in
 * one larder_protocol_t: its name (the larder.yaml section, the seed-spec section, the metrics and log label,
 * the store's key prefix), its mount, its config keys, its seed-spec section, the expanders `larder seed` runs on
 * local files, and its request and seed handlers. protocols/registry.c holds the one array of modules; the core
 * iterates it (config.c parses each module's section with the typed helpers below, seedspec.c its seed section,
 * server.c mounts its handler, main.c runs its expanders). The model is nginx's: a module declares its directives
 * in a table, the core parses the file and hands each value to the module that declared it, so every error
 * message names file, line and key whoever owns the key. docs/architecture.md walks through adding a protocol. */
#ifndef LARDER_MODULE_H
#define LARDER_MODULE_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <yaml.h>

#include "app.h"
#include "seedspec.h"

/* ---- config keys ---- */

typedef struct larder_conf larder_conf_t; /* one parse of larder.yaml: the document and the first error */

typedef enum {
    LARDER_KEY_BOOL,     /* int: true/false, yes/no, on/off */
    LARDER_KEY_UINT,     /* uint64_t (min..max) */
    LARDER_KEY_INT,      /* int (min..max) */
    LARDER_KEY_SIZE,     /* uint64_t bytes: 512MiB, 10GB (at most max when max is set) */
    LARDER_KEY_DURATION, /* uint64_t seconds: 30s, 10m, 1d (min..max; max 0 = 100 years) */
    LARDER_KEY_STRING,   /* char *: printable, at most 4096 bytes; nullable keys accept ~ */
    LARDER_KEY_URL,      /* char *: absolute http(s) URL with a host */
    LARDER_KEY_URL_DIR,  /* char *: an http(s) URL prefix, normalised to end with '/' */
    LARDER_KEY_URL_BASE, /* char *: an http(s) base URL, trailing '/' removed */
    LARDER_KEY_HOSTS,    /* larder_conf_hosts_t: a list of host or host:port, lower-cased */
    LARDER_KEY_CUSTOM,   /* the key's own parse/print/release */
} larder_key_type_t;

/* where a key's offset points: the config itself (core keys), the protocol's common settings
 * (larder_proto_config_t: enabled, quota, ttl, upstream) or the module's own struct (conf_size bytes) */
enum { LARDER_KEY_IN_CONFIG = 0, LARDER_KEY_IN_PROTO, LARDER_KEY_IN_MODULE };

typedef struct larder_conf_hosts {
    char **v;
    size_t n;
} larder_conf_hosts_t;

typedef struct larder_conf_key larder_conf_key_t;
struct larder_conf_key {
    const char *name; /* dotted path under the section: "ttl", "timeouts.connect", "tls.cert" */
    larder_key_type_t type;
    int in;           /* LARDER_KEY_IN_* */
    size_t offset;    /* of the field in the struct `in` names */
    const char *def;  /* the default, written as in larder.yaml ("10m", "[a, b]"); NULL: none (the field stays 0) */
    const char *doc;  /* one line: what it does (printed by `larder config`, checked against docs/configuration.md) */
    int nullable;     /* STRING and URL*: ~, null or an empty value unset it */
    uint64_t min, max; /* UINT, INT, SIZE, DURATION bounds (max 0: the type's own bound) */
    /* CUSTOM: parse `n` into `field` (base: the struct holding it; a parser replaces what the field held),
     * print it as a YAML block after "key:" (each line starting with '\n', indent = the key's column; without
     * print and release the field is a char * printed and freed as a string), free it */
    int (*parse)(larder_conf_t *c, const yaml_node_t *n, const char *key, void *field, void *base);
    void (*print)(FILE *f, const void *field, const void *base, int indent);
    void (*release)(void *field, void *base);
    const char *shape; /* CUSTOM: the type named in docs ("list of {name, url, sha256}") */
};
#define LARDER_KEYS_END {.name = NULL}

/* helpers for CUSTOM parsers: every failure records "FILE:LINE: message" once and returns -1 */
int larder_conf_fail(larder_conf_t *c, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int larder_conf_is_null(const yaml_node_t *n);
const char *larder_conf_type_name(const yaml_node_t *n);
/* a child node (mapping key or value, sequence item), each visited at most once (aliases are refused) */
yaml_node_t *larder_conf_node(larder_conf_t *c, int id, const yaml_node_t *parent);
const char *larder_conf_scalar(larder_conf_t *c, const yaml_node_t *n, const char *key, const char *want);
const char *larder_conf_quote(const char *s, size_t len, char *buf, size_t buflen);
/* iterate a mapping; names: NULL-terminated allowed keys; where: the mapping's dotted name for messages */
typedef struct larder_conf_iter {
    const yaml_node_t *map;
    yaml_node_pair_t *pair;
    unsigned seen;
} larder_conf_iter_t;
int larder_conf_map_begin(larder_conf_t *c, const yaml_node_t *n, const char *key, larder_conf_iter_t *it);
int larder_conf_map_next(larder_conf_t *c, larder_conf_iter_t *it, const char *const *names, const char *where,
                         int *which, yaml_node_t **val);
/* typed values (the same rules as the declared key types) */
int larder_conf_string(larder_conf_t *c, const yaml_node_t *n, const char *key, int nullable, char **out);
int larder_conf_url(larder_conf_t *c, const yaml_node_t *n, const char *key, int nullable, int dir, char **out);
/* A mapping of name to an upstream: `name: URL` or `name: {url, username, password}` (oci.registries,
 * git.remotes). Names are lower-cased, URLs lose their trailing '/'. The spec words the messages: "'x' is not a
 * <item> name (<hint>)", "<item> 'x' is given twice" (with unique). */
typedef struct larder_conf_endpoint {
    char *name;     /* lower case */
    char *url;      /* no trailing '/' */
    char *username; /* credentials for this upstream only, or NULL */
    char *password;
} larder_conf_endpoint_t;
typedef struct larder_conf_endpoint_spec {
    const char *item;                          /* "registry", "remote" */
    const char *hint;                          /* what a name looks like, for the message */
    int (*name_ok)(const char *s, size_t len); /* a valid name */
    int unique;                                /* refuse a name given twice (after lower-casing) */
    /* more checks of one entry once parsed (v: its value node, key: its dotted name), or NULL */
    int (*check)(larder_conf_t *c, const yaml_node_t *v, const char *key, const larder_conf_endpoint_t *e);
} larder_conf_endpoint_spec_t;
/* parse into the array v of nv entries (what they held is released first); `key` names the mapping ("oci.registries") */
int larder_conf_endpoints(larder_conf_t *c, const yaml_node_t *n, const char *key,
                          const larder_conf_endpoint_spec_t *spec, larder_conf_endpoint_t **v, size_t *nv);
/* as a YAML block for a CUSTOM key's print ("{}" when empty) */
void larder_conf_endpoints_print(FILE *f, const larder_conf_endpoint_t *v, size_t n, int indent);
void larder_conf_endpoints_release(larder_conf_endpoint_t **v, size_t *n);

/* print a string as a YAML double-quoted scalar (also valid JSON) */
void larder_conf_print_str(FILE *f, const char *s);

/* ---- seed-spec sections ---- */

enum {
    LARDER_SEED_ITEMS = 1, /* the strings are the section's items */
    LARDER_SEED_OPTION,    /* strings kept for the module (larder_seed_option()), defaults applied when absent */
    LARDER_SEED_FILES,     /* local files: `larder seed` expands each with `expand`; the daemon refuses the key */
};

/* an item of `file` that `larder seed` does not fetch: a failure (failed 1: listed, counted, exit status 1) or a
 * local source, only said (failed 0) */
typedef void (*larder_unseedable_fn)(void *ctx, const char *file, const char *what, const char *why, int failed);

typedef struct larder_seed_key {
    const char *key;
    int kind;                             /* LARDER_SEED_* */
    int (*ok)(const char *s, size_t len); /* validates each string, NULL: any */
    const char *def;                      /* OPTION: the default value when the key is absent, or NULL */
    /* FILES: read `path` (on the client's machine) and append items to spec (larder_seed_append); 0, or -1 with
     * the whole message in err ("cannot read lockfile x: ...", "x: not JSON") */
    int (*expand)(larder_seed_spec_t *spec, int proto, const char *path, larder_unseedable_fn unseedable,
                  void *uctx, char *err, size_t errlen);
} larder_seed_key_t;

/* for expanders: the protocol's own "(ctx, what, why, failed)" callbacks reach `fn` with the file named */
typedef struct larder_unseedable {
    larder_unseedable_fn fn;
    void *ctx;
    const char *file;
} larder_unseedable_t;
void larder_unseedable_report(void *unseedable, const char *what, const char *why, int failed);
/* read a local file for an expander: malloc'd text, or NULL with "cannot read <what> <path>: <strerror>" in err */
char *larder_seed_read_file(const char *path, const char *what, size_t *len, char *err, size_t errlen);
/* append n lines as items of proto, freeing them and the array; 0 or -1 */
int larder_seed_append_lines(larder_seed_spec_t *spec, int proto, char **lines, size_t n);

/* ---- raw seed inputs (POST /-/api/v1/jobs with a pasted file, docs/seeding.md) ----
 * A module names the raw text kinds it turns into seed items: a requirements file, a lockfile, a list of image
 * references. The daemon detects the kind of a posted body (the spec when it is one; otherwise the kind whose
 * detect scores highest) or takes it from ?kind=, then calls expand. */
/* a line of the text that is not seeded: its number (1-based; 0 when not known), the line as written, why, and
 * failed (1: it should have been seeded and cannot be; 0: a local source, nothing to fetch) */
typedef void (*larder_seed_input_report_fn)(void *ctx, unsigned line, const char *text, const char *why, int failed);
typedef struct larder_seed_input {
    const char *kind; /* "requirements", "package-lock": [a-z-], unique over every module */
    /* how much the text looks like this kind, cheaply (no full parse): 0 not at all, 100 certainly (a format
     * marker seen: "lockfileVersion", "# yarn lockfile v1"); line lists score by the share of lines that fit */
    int (*detect)(const char *text, size_t len);
    /* append the text's items to spec (larder_seed_append); every line not seeded (an include, a VCS or local
     * source, a line of no known shape) goes to report. 0, or -1 when the text as a whole is not of this kind or a
     * line is malformed beyond skipping: the message in err starts "line N: " when a line is to blame and *errline
     * is N (else 0). cfg: the daemon's config (what the text may name: a files mirror), NULL in `larder seed` */
    int (*expand)(const larder_config_t *cfg, larder_seed_spec_t *spec, int proto, const char *text, size_t len,
                  larder_seed_input_report_fn report, void *rctx, unsigned *errline, char *err, size_t errlen);
} larder_seed_input_t;
/* for expanders: the 1-based number of the first line of text containing needle (0: none) */
unsigned larder_text_line_of(const char *text, size_t len, const char *needle);
/* for line-list kinds: call fn on every line with comments ('#' to the end of the line, at the start or after a
 * blank) and surrounding blanks removed, blank lines skipped; fn returns 0 or -1 (stops, returned) */
int larder_text_each_line(const char *text, size_t len, int (*fn)(void *ctx, unsigned line, char *s), void *ctx);
/* for detect: the share (0..100) of non-blank, non-comment lines for which ok() is 1 (0 when there are none) */
int larder_text_line_score(const char *text, size_t len, int (*ok)(const char *s));

typedef struct larder_seed_parse larder_seed_parse_t; /* one parse of a seed spec */
/* helpers for a module's own section parser (seed_section), with the same rules as the generic ones */
int larder_seedp_fail(larder_seed_parse_t *p, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
yaml_node_t *larder_seedp_node(larder_seed_parse_t *p, int id, const yaml_node_t *parent);
const char *larder_seedp_scalar(larder_seed_parse_t *p, const yaml_node_t *n, const char *what);
int larder_seedp_strings(larder_seed_parse_t *p, const yaml_node_t *n, const char *what, larder_seed_strings_t *out,
                         int (*ok)(const char *, size_t));
int larder_seedp_item(larder_seed_parse_t *p, const yaml_node_t *n, int proto, const char *ref, size_t len);
larder_seed_spec_t *larder_seedp_spec(larder_seed_parse_t *p);

/* ---- the module ---- */

struct larder_seed_ctx;
struct json_t; /* jansson's */

typedef struct larder_protocol {
    int proto;           /* its index in larder_protocols[] (protocols/registry.h) */
    const char *name;    /* "pypi": config and seed section, metrics/log label, store key prefix */
    const char *mount;   /* path prefix on a general listener, e.g. "/pypi/" */
    const char *summary; /* one line for `larder config` */
    /* config: every section has enabled, quota, ttl and upstream (defaults below), then the module's keys */
    const char *default_ttl;      /* "10m" */
    const char *default_upstream; /* or NULL */
    size_t conf_size;             /* bytes of the module's own config struct (0: none) */
    const larder_conf_key_t *conf_keys; /* LARDER_KEYS_END-terminated, or NULL */
    /* seed spec: keys of a mapping section; NULL with seed_section NULL: a list of items or {path, sha256} */
    const larder_seed_key_t *seed_keys; /* {NULL}-terminated */
    const char *seed_shape;             /* "requirements: [...], python_versions: [...]", for messages */
    int (*seed_section)(larder_seed_parse_t *p, const yaml_node_t *n); /* a section of its own shape, or NULL */
    const larder_seed_input_t *seed_inputs; /* raw text kinds it expands ({NULL}-terminated), or NULL */
    void (*seed_emit)(FILE *f, const larder_seed_spec_t *spec, int proto); /* its emitter, with seed_section */
    /* serving: a request whose raw path starts with `mount`; rest = the path after it (query included) */
    void (*handle)(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);
    /* a request whose target is an absolute URI, or a CONNECT (proxy mode); at most one module has it */
    void (*handle_proxy)(larder_app_t *app, h2o_req_t *req);
    /* expand one seed item into fetches with larder_seed_add() / larder_seed_fail() (jobs.h) */
    void (*seed)(larder_app_t *app, const larder_seed_item_t *item, struct larder_seed_ctx *ctx);
    /* request bodies: the largest POST body the module takes at `path` (the raw path after its mount, query
     * included), or with path NULL the largest it takes anywhere; 0 (or NULL): limits.request_body. The head guard
     * (server.c) lets the first request of an HTTP/1 connection carry such a body, reserved in limits.request_bodies
     * before it is read; later requests of a kept-alive connection and HTTP/2 streams keep limits.request_body, so a
     * module that takes large bodies answers the requests before them with the connection not kept alive. The
     * handler still checks req->entity.len: a chunked body is bounded by the largest limit of any module only */
    uint64_t (*request_body_max)(const larder_config_t *cfg, const char *path, size_t len);
    /* the daemon's lifetime (`larder serve` only, enabled modules only): start runs once the store, the fetcher
     * and the jobs exist, before the first request (0, or -1 with a message: larder does not start); stop runs
     * after the last request was answered, before the fetcher is destroyed. NULL: nothing to do */
    int (*start)(larder_app_t *app, char *err, size_t errlen);
    void (*stop)(larder_app_t *app);
    /* an entry of this module that accounted for external bytes (larder_entry_t.external: data the module keeps
     * outside the blob store) was evicted to make room: remove that data. Called by the store with its lock held,
     * on whichever thread is committing: quick (a rename; delete elsewhere) and never calling into the store */
    void (*evicted)(const larder_config_t *cfg, const char *key);
    /* recording (`larder record`) and GET /-/api/v1/pins/<set>/spec: append to `spec` (larder_seed_append, or the
     * module's options) the seed items that fetch the pinned entry `key` of this module again from the upstream,
     * exactly: the same versions and digests, so that seeding another appliance gets the same bytes. An entry that
     * another item brings along (an index or packument fetched for a package item) may add nothing. e: the entry,
     * or NULL when the pin names an entry that is not cached. 0, or -1 with `why` filled: the entry cannot be
     * expressed in a seed spec (listed as a comment in the spec). NULL: the module's entries cannot be seeded */
    int (*pin_spec)(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                    char *why, size_t whylen);
    /* bundles (`larder export`, docs/bundles.md): the module records (larder_meta_batch_put keys) written when the
     * entry `key` was stored that serving it, or the files it lists, needs: add(ctx, mkey, 0) names one record,
     * add(ctx, prefix, 1) every record whose key starts with prefix. They travel in the bundle with the entry and are
     * written with it on import (the entry's transform does not run again there). NULL: its entries need none */
    void (*bundle_meta)(const char *key, const larder_entry_t *e, void (*add)(void *ctx, const char *mkey, int prefix),
                        void *ctx);
    /* bundles and the data an entry keeps outside the blob store (larder_entry_t.external: a git mirror). It travels
     * as ONE file per entry, whose format is the module's.
     * export: write that data for entry `key` (e: its entry) to fd, an empty temp file in the store's tmp dir. Runs
     * on a thread of its own (it may take minutes and the disk space of the data); the file must be a consistent
     * snapshot even if the data changes meanwhile. `note` may get a short printable text (at most notelen - 1 bytes)
     * that the import hook gets back. 0, or -1 with the reason in err.
     * import, in two steps, so that nothing half-made is ever visible: stage builds the data from `file` (verified
     * against the manifest, removed by the core afterwards) out of sight, in a place the module names in `staged`,
     * and sets *external to its size on disk; it runs on the import's commit thread before the entries are written.
     * Then place(staged, keep 1) puts it where the entry `key` finds it, replacing the data the key had (once the
     * entries were written), or place(staged, keep 0) removes it (the import failed). 0, or -1 with err.
     * NULL: entries of the module with external bytes cannot be exported (409) */
    int (*bundle_external_export)(larder_app_t *app, const char *key, const larder_entry_t *e, int fd, char *note,
                                  size_t notelen, char *err, size_t errlen);
    int (*bundle_external_stage)(larder_app_t *app, const char *key, const larder_entry_t *e, const char *file,
                                 const char *note, char *staged, size_t stagedlen, uint64_t *external, char *err,
                                 size_t errlen);
    int (*bundle_external_place)(larder_app_t *app, const char *key, const char *staged, int keep, char *err,
                                 size_t errlen);
    /* GET /-/api/v1/upstreams (upstreams.h): the upstreams the module's configuration names besides its section's
     * `upstream` (which the core lists itself as "upstream"): add(ctx, name, url) for each, url the prefix its
     * fetched URLs start with (files mirrors and pins, registries, remotes, hosts). Their health is kept by the
     * longest prefix of each fetched URL. NULL: none */
    void (*upstreams)(const larder_config_t *cfg, void (*add)(void *ctx, const char *name, const char *url), void *ctx);
    /* GET /-/api/v1/info (the UI's Clients page): add to `mine` (the module's object, which has "enabled" and
     * "mount") the names a client's set-up needs (registries, mirrors, remotes: names and which is the default,
     * never credentials), and to `top` (the whole answer) keys of its own the API documents ("oci_registries").
     * Called for enabled and disabled modules alike. NULL: the mount is all a client needs */
    void (*client_info)(const larder_config_t *cfg, struct json_t *mine, struct json_t *top);
} larder_protocol_t;

/* the registry (protocols/registry.c) */
extern const larder_protocol_t *const larder_protocols[];
extern const int larder_nprotocols;

/* the module with this index, NULL when out of range */
const larder_protocol_t *larder_protocol_get(int proto);
/* the module's own config struct in cfg (conf_size bytes), NULL when it declares none */
void *larder_proto_conf(const larder_config_t *cfg, int proto);

#endif
