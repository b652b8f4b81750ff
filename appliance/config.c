/* config.c - larder.yaml: text in, one immutable larder_config_t out, or one error message naming file, line
 * and key.
 *
 * libyaml's document loader turns the text into a node graph; this file walks that graph once, top-down, with
 * one small function per mapping (top level, listen items, quota, timeouts, a protocol section, pins, mirrors).
 * Every mapping goes through map_next(), which is where unknown and duplicate keys are refused, so a typo can
 * never be silently ignored. Defaults are filled in before the walk, so a key that is absent keeps its default
 * and the struct is complete whatever the text says. Each node may be visited once: YAML aliases would let a
 * few bytes describe an exponential (or cyclic) tree, and a config has no use for them, so a second visit is an
 * error rather than a hang. Only the first error is kept; on any error the partial config is freed and NULL
 * returned, so callers never see a half-valid struct.
 *
 * Nothing here logs or exits: the caller decides what to do with the message. The embedded default config
 * (used when no file is given) goes through the same parser, so it can never drift from what a file would
 * produce. */
#include "config.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

static const char default_config[] =
    "# Built-in configuration: what `larder serve` runs with when no --config is given.\n"
    "listen:\n"
    "  - address: 0.0.0.0\n"
    "    port: 3142\n"
    "data_dir: ./larder-data\n"
    "offline: false\n"
    "quota:\n"
    "  min_free: 1GiB\n"
    "timeouts:\n"
    "  connect: 10s\n"
    "  idle: 60s\n"
    "files: {ttl: 1d}\n"
    "pypi:  {ttl: 10m, upstream: 'https://pypi.org/simple/'}\n"
    "npm:   {ttl: 10m, upstream: 'https://registry.npmjs.org/'}\n"
    "apt:   {ttl: 30m}\n"
    "gems:  {ttl: 10m, upstream: 'https://rubygems.org/'}\n"
    "oci:   {ttl: 1h, upstream: 'https://registry-1.docker.io/'}\n";

static const char *const proto_names[LARDER_NPROTO] = {"files", "pypi", "npm", "apt", "gems", "oci"};
static const uint64_t proto_default_ttl[LARDER_NPROTO] = {86400, 600, 600, 1800, 600, 3600};
static const char *const proto_default_upstream[LARDER_NPROTO] = {
    NULL, "https://pypi.org/simple/", "https://registry.npmjs.org/", NULL, "https://rubygems.org/",
    "https://registry-1.docker.io/"};

#define MAX_DURATION (100ULL * 366 * 86400) /* keeps now + ttl far from overflow */
#define MAX_TIMEOUT 86400ULL                /* handed to libcurl as a long */
#define MAX_THREADS 1024
#define MAX_URL 4096
#define MAX_STRING 4096

const char *larder_proto_name(int proto)
{
    return proto >= 0 && proto < LARDER_NPROTO ? proto_names[proto] : NULL;
}

int larder_proto_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < LARDER_NPROTO; i++)
        if (strcmp(name, proto_names[i]) == 0)
            return i;
    return -1;
}

/* ---- sizes and durations ---- */

/* leading decimal digits into *v; returns the number of digits, 0 if none, -1 on overflow */
static int parse_digits(const char *s, uint64_t *v)
{
    uint64_t n = 0;
    int i = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *v = n;
    return i;
}

static int mul_checked(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b && a > UINT64_MAX / b)
        return -1;
    *out = a * b;
    return 0;
}

int larder_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ULL << 10},
        {"kib", 1ULL << 10},
        {"kb", 1000ULL},
        {"m", 1ULL << 20},
        {"mib", 1ULL << 20},
        {"mb", 1000000ULL},
        {"g", 1ULL << 30},
        {"gib", 1ULL << 30},
        {"gb", 1000000000ULL},
        {"t", 1ULL << 40},
        {"tib", 1ULL << 40},
        {"tb", 1000000000000ULL},
    };
    uint64_t n;
    if (!s || !out)
        return -1;
    int nd = parse_digits(s, &n);
    if (nd <= 0)
        return -1;
    const char *suf = s + nd;
    if (*suf == ' ')
        suf++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(suf, units[i].suffix) == 0) {
            if (suf != s + nd && !*suf)
                return -1; /* "10 " */
            return mul_checked(n, units[i].mult, out);
        }
    }
    return -1;
}

int larder_parse_duration(const char *s, uint64_t *out)
{
    uint64_t n, mult;
    if (!s || !out)
        return -1;
    int nd = parse_digits(s, &n);
    if (nd <= 0)
        return -1;
    const char *suf = s + nd;
    if (suf[0] && suf[1])
        return -1;
    switch (suf[0]) {
    case '\0':
    case 's':
    case 'S':
        mult = 1;
        break;
    case 'm':
    case 'M':
        mult = 60;
        break;
    case 'h':
    case 'H':
        mult = 3600;
        break;
    case 'd':
    case 'D':
        mult = 86400;
        break;
    case 'w':
    case 'W':
        mult = 604800;
        break;
    default:
        return -1;
    }
    return mul_checked(n, mult, out);
}

/* ---- walking the document ---- */

typedef struct {
    yaml_document_t *doc;
    const char *source;
    char *err;
    size_t errlen;
    unsigned char *visited; /* one flag per node */
    size_t nnodes;
    int failed;
} ctx_t;

static int fail(ctx_t *c, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
    if (c->failed++ || !c->err || !c->errlen)
        return -1;
    int k = snprintf(c->err, c->errlen, "%s:%zu: ", c->source, n ? n->start_mark.line + 1 : (size_t)1);
    if (k >= 0 && (size_t)k < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* user text echoed in a message: escaped and shortened */
static const char *quote(const char *s, size_t len, char *buf, size_t buflen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < buflen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (i >= 60) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ch < 0x20 || ch == 0x7f || ch == '\\')
            o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    buf[o] = '\0';
    return buf;
}

/* the node with this id, marked as visited; NULL (with the error set) on a second visit */
static yaml_node_t *node_at(ctx_t *c, int id, const yaml_node_t *parent)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, id);
    if (!n) {
        fail(c, parent, "malformed document");
        return NULL;
    }
    size_t i = (size_t)(id - 1);
    if (c->visited[i]) {
        fail(c, parent, "YAML aliases (*name) are not supported in larder.yaml");
        return NULL;
    }
    c->visited[i] = 1;
    return n;
}

static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

static const char *type_name(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar";
}

/* a scalar's text; refuses other node types and embedded NUL bytes */
static const char *scalar(ctx_t *c, const yaml_node_t *n, const char *key, const char *want)
{
    if (n->type != YAML_SCALAR_NODE) {
        fail(c, n, "key '%s': expected %s, got %s", key, want, type_name(n));
        return NULL;
    }
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length) {
        fail(c, n, "key '%s': contains a NUL byte", key);
        return NULL;
    }
    return v;
}

typedef struct {
    const yaml_node_t *map;
    yaml_node_pair_t *pair;
    unsigned seen; /* bit i: names[i] already given */
} map_iter_t;

/* A mapping (or an empty value, which counts as an empty mapping). */
static int map_begin(ctx_t *c, const yaml_node_t *n, const char *key, map_iter_t *it)
{
    it->map = n;
    it->seen = 0;
    it->pair = NULL;
    if (is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "key '%s': expected a mapping, got %s", key, type_name(n));
    it->pair = n->data.mapping.pairs.start;
    return 0;
}

/* Next pair of the mapping: 1 with *which = index in names and *val set, 0 at the end, -1 on error. Unknown and
 * duplicate keys are errors here so that no caller can forget them. `where` names the mapping in messages. */
static int map_next(ctx_t *c, map_iter_t *it, const char *const *names, const char *where, int *which,
                    yaml_node_t **val)
{
    char qb[300];
    if (!it->pair || it->pair >= it->map->data.mapping.pairs.top)
        return 0;
    yaml_node_pair_t *p = it->pair++;
    yaml_node_t *k = node_at(c, p->key, it->map);
    if (!k)
        return -1;
    if (k->type != YAML_SCALAR_NODE)
        return fail(c, k, "%s%s%s: keys must be plain words, got %s", where ? "in '" : "top level", where ? where : "",
                    where ? "'" : "", type_name(k));
    const char *kv = (const char *)k->data.scalar.value;
    size_t klen = k->data.scalar.length;
    int i = 0;
    for (; names[i]; i++)
        if (strlen(names[i]) == klen && memcmp(names[i], kv, klen) == 0)
            break;
    if (!names[i]) {
        if (where)
            return fail(c, k, "unknown key '%s' in '%s'", quote(kv, klen, qb, sizeof(qb)), where);
        return fail(c, k, "unknown top-level key '%s'", quote(kv, klen, qb, sizeof(qb)));
    }
    if (it->seen & (1u << i)) {
        if (where)
            return fail(c, k, "duplicate key '%s' in '%s'", names[i], where);
        return fail(c, k, "duplicate key '%s'", names[i]);
    }
    it->seen |= 1u << i;
    if (!(*val = node_at(c, p->value, k)))
        return -1;
    *which = i;
    return 1;
}

static char *dup_str(ctx_t *c, const yaml_node_t *n, const char *s)
{
    char *d = strdup(s);
    if (!d)
        fail(c, n, "out of memory");
    return d;
}

/* replaces *out (which may hold a default); an empty value sets NULL when nullable */
static int get_string(ctx_t *c, const yaml_node_t *n, const char *key, int nullable, char **out)
{
    if (is_null(n)) {
        if (!nullable)
            return fail(c, n, "key '%s': needs a value", key);
        free(*out);
        *out = NULL;
        return 0;
    }
    const char *v = scalar(c, n, key, "a string");
    if (!v)
        return -1;
    if (!*v)
        return fail(c, n, "key '%s': must not be empty", key);
    if (strlen(v) > MAX_STRING)
        return fail(c, n, "key '%s': longer than %d bytes", key, MAX_STRING);
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(c, n, "key '%s': contains a control character", key);
    char *d = dup_str(c, n, v);
    if (!d)
        return -1;
    free(*out);
    *out = d;
    return 0;
}

static int get_bool(ctx_t *c, const yaml_node_t *n, const char *key, int *out)
{
    char qb[300];
    const char *v = scalar(c, n, key, "true or false");
    if (!v)
        return -1;
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
        *out = 0;
    else
        return fail(c, n, "key '%s': expected true or false, got '%s'", key, quote(v, strlen(v), qb, sizeof(qb)));
    return 0;
}

static int get_uint(ctx_t *c, const yaml_node_t *n, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    char qb[300];
    uint64_t v;
    const char *s = scalar(c, n, key, "a number");
    if (!s)
        return -1;
    int nd = parse_digits(s, &v);
    if (nd <= 0 || s[nd])
        return fail(c, n, "key '%s': expected a whole number, got '%s'", key, quote(s, strlen(s), qb, sizeof(qb)));
    if (v < min || v > max)
        return fail(c, n, "key '%s': %s is out of range (%llu..%llu)", key, quote(s, strlen(s), qb, sizeof(qb)),
                    (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

static int get_size(ctx_t *c, const yaml_node_t *n, const char *key, uint64_t *out)
{
    char qb[300];
    const char *s = scalar(c, n, key, "a size");
    if (!s)
        return -1;
    if (larder_parse_size(s, out) < 0)
        return fail(c, n, "key '%s': '%s' is not a size (use a number of bytes with an optional unit: 512MiB, 10GB, 1T)",
                    key, quote(s, strlen(s), qb, sizeof(qb)));
    return 0;
}

static int get_duration(ctx_t *c, const yaml_node_t *n, const char *key, uint64_t max, uint64_t *out)
{
    char qb[300];
    const char *s = scalar(c, n, key, "a duration");
    if (!s)
        return -1;
    if (larder_parse_duration(s, out) < 0)
        return fail(c, n, "key '%s': '%s' is not a duration (use a number with s, m, h, d or w: 30s, 10m, 1d)", key,
                    quote(s, strlen(s), qb, sizeof(qb)));
    if (*out > max)
        return fail(c, n, "key '%s': %s is too long (at most %llu seconds)", key, quote(s, strlen(s), qb, sizeof(qb)),
                    (unsigned long long)max);
    return 0;
}

/* an absolute http(s) URL with a host; with dir set, normalised to end with '/' */
static int get_url(ctx_t *c, const yaml_node_t *n, const char *key, int nullable, int dir, char **out)
{
    char qb[300];
    if (is_null(n)) {
        if (!nullable)
            return fail(c, n, "key '%s': needs a value", key);
        free(*out);
        *out = NULL;
        return 0;
    }
    const char *v = scalar(c, n, key, "a URL");
    if (!v)
        return -1;
    size_t len = strlen(v);
    size_t skip = !strncasecmp(v, "http://", 7) ? 7 : !strncasecmp(v, "https://", 8) ? 8 : 0;
    if (!skip)
        return fail(c, n, "key '%s': '%s' is not an http:// or https:// URL", key, quote(v, len, qb, sizeof(qb)));
    if (len > MAX_URL)
        return fail(c, n, "key '%s': URL longer than %d bytes", key, MAX_URL);
    if (!v[skip] || v[skip] == '/' || v[skip] == '?' || v[skip] == '#')
        return fail(c, n, "key '%s': '%s' has no host name", key, quote(v, len, qb, sizeof(qb)));
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return fail(c, n, "key '%s': URL contains a space or control character", key);
    if (dir && strchr(v, '#'))
        return fail(c, n, "key '%s': a URL prefix cannot contain '#'", key);
    int slash = dir && v[len - 1] != '/';
    char *d = malloc(len + slash + 1);
    if (!d)
        return fail(c, n, "out of memory");
    memcpy(d, v, len);
    if (slash)
        d[len++] = '/';
    d[len] = '\0';
    free(*out);
    *out = d;
    return 0;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 128 || s[0] == '.' || !strcmp(s, "sha256"))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* ---- sections ---- */

static int parse_tls(ctx_t *c, const yaml_node_t *n, const char *key, larder_listen_t *l)
{
    static const char *const names[] = {"cert", "key", NULL};
    char k2[128];
    map_iter_t it;
    yaml_node_t *v;
    int which, r;
    if (map_begin(c, n, key, &it) < 0)
        return -1;
    while ((r = map_next(c, &it, names, key, &which, &v)) > 0) {
        snprintf(k2, sizeof(k2), "%s.%s", key, names[which]);
        if (get_string(c, v, k2, 1, which == 0 ? &l->tls_cert : &l->tls_key) < 0)
            return -1;
    }
    if (r < 0)
        return -1;
    if (!l->tls_cert != !l->tls_key)
        return fail(c, n, "key '%s': %s given without %s", key, l->tls_cert ? "cert" : "key",
                    l->tls_cert ? "key" : "cert");
    return 0;
}

static int parse_listen(ctx_t *c, const yaml_node_t *n, larder_config_t *cfg)
{
    static const char *const names[] = {"address", "port", "tls", "protocol", NULL};
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "key 'listen': expected a list of {address, port, tls}, got %s", type_name(n));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return fail(c, n, "key 'listen': at least one listener is needed");
    /* the default listener is replaced, not added to */
    for (size_t i = 0; i < cfg->nlisten; i++) {
        free(cfg->listen[i].address);
        free(cfg->listen[i].tls_cert);
        free(cfg->listen[i].tls_key);
    }
    free(cfg->listen);
    cfg->nlisten = 0;
    if (!(cfg->listen = calloc(count, sizeof(*cfg->listen))))
        return fail(c, n, "out of memory");
    for (size_t i = 0; i < count; i++) {
        char where[48], key[96];
        snprintf(where, sizeof(where), "listen[%zu]", i);
        yaml_node_t *item = node_at(c, n->data.sequence.items.start[i], n);
        if (!item)
            return -1;
        larder_listen_t *l = &cfg->listen[cfg->nlisten++];
        l->port = 3142;
        l->protocol = -1;
        if (!(l->address = dup_str(c, item, "0.0.0.0")))
            return -1;
        if (item->type != YAML_MAPPING_NODE)
            return fail(c, item, "key '%s': expected a mapping {address, port, tls}, got %s", where, type_name(item));
        map_iter_t it;
        yaml_node_t *v;
        int which, r;
        map_begin(c, item, where, &it);
        while ((r = map_next(c, &it, names, where, &which, &v)) > 0) {
            snprintf(key, sizeof(key), "%s.%s", where, names[which]);
            uint64_t port;
            if (which == 0 && get_string(c, v, key, 0, &l->address) < 0)
                return -1;
            if (which == 1) {
                if (get_uint(c, v, key, 1, 65535, &port) < 0)
                    return -1;
                l->port = (int)port;
            }
            if (which == 2 && parse_tls(c, v, key, l) < 0)
                return -1;
            if (which == 3) {
                char *pn = NULL;
                if (get_string(c, v, key, 1, &pn) < 0)
                    return -1;
                if (pn) {
                    l->protocol = larder_proto_from_name(pn);
                    if (l->protocol < 0) {
                        fail(c, v, "key '%s': unknown protocol '%s' (expected files, pypi, npm, apt, gems or oci)", key,
                             pn);
                        free(pn);
                        return -1;
                    }
                    free(pn);
                }
            }
        }
        if (r < 0)
            return -1;
        for (const char *p = l->address; *p; p++)
            if (*p == ' ' || *p == '/')
                return fail(c, item, "key '%s.address': '%s' is not an IP address or host name", where, l->address);
    }
    return 0;
}

/* pin and mirror names share one namespace: /files/<name> */
static int name_taken(ctx_t *c, const larder_config_t *cfg, const yaml_node_t *n, const char *key, const char *name)
{
    for (size_t i = 0; i < cfg->npins; i++)
        if (cfg->pins[i].name && !strcmp(cfg->pins[i].name, name))
            return fail(c, n, "key '%s': name '%s' is already used by files.pins[%zu]", key, name, i);
    for (size_t i = 0; i < cfg->nmirrors; i++)
        if (cfg->mirrors[i].name && !strcmp(cfg->mirrors[i].name, name))
            return fail(c, n, "key '%s': name '%s' is already used by files.mirrors[%zu]", key, name, i);
    return 0;
}

static int get_name(ctx_t *c, const larder_config_t *cfg, const yaml_node_t *n, const char *key, char **out)
{
    char qb[300];
    char *name = NULL;
    if (get_string(c, n, key, 0, &name) < 0)
        return -1;
    if (!name_ok(name)) {
        fail(c, n,
             "key '%s': '%s' is not a valid name (1-128 of A-Z a-z 0-9 . _ -, not starting with '.', not 'sha256')",
             key, quote(name, strlen(name), qb, sizeof(qb)));
        free(name);
        return -1;
    }
    if (name_taken(c, cfg, n, key, name) < 0) {
        free(name);
        return -1;
    }
    *out = name;
    return 0;
}

static int parse_pins(ctx_t *c, const yaml_node_t *n, larder_config_t *cfg)
{
    static const char *const names[] = {"name", "url", "sha256", NULL};
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "key 'files.pins': expected a list of {name, url, sha256}, got %s", type_name(n));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return 0;
    if (!(cfg->pins = calloc(count, sizeof(*cfg->pins))))
        return fail(c, n, "out of memory");
    for (size_t i = 0; i < count; i++) {
        char where[48], key[96], qb[300];
        snprintf(where, sizeof(where), "files.pins[%zu]", i);
        yaml_node_t *item = node_at(c, n->data.sequence.items.start[i], n);
        if (!item)
            return -1;
        if (item->type != YAML_MAPPING_NODE)
            return fail(c, item, "key '%s': expected a mapping {name, url, sha256}, got %s", where, type_name(item));
        larder_file_pin_t *pin = &cfg->pins[cfg->npins++];
        map_iter_t it;
        yaml_node_t *v;
        int which, r;
        map_begin(c, item, where, &it);
        while ((r = map_next(c, &it, names, where, &which, &v)) > 0) {
            snprintf(key, sizeof(key), "%s.%s", where, names[which]);
            if (which == 0 && get_name(c, cfg, v, key, &pin->name) < 0)
                return -1;
            if (which == 1 && get_url(c, v, key, 0, 0, &pin->url) < 0)
                return -1;
            if (which == 2) {
                if (get_string(c, v, key, 1, &pin->sha256) < 0)
                    return -1;
                if (pin->sha256) {
                    for (char *p = pin->sha256; *p; p++)
                        if (*p >= 'A' && *p <= 'F')
                            *p = (char)(*p - 'A' + 'a');
                    if (!larder_is_sha256_hex(pin->sha256))
                        return fail(c, v, "key '%s': '%s' is not a SHA-256 digest (64 hex digits)", key,
                                    quote(pin->sha256, strlen(pin->sha256), qb, sizeof(qb)));
                }
            }
        }
        if (r < 0)
            return -1;
        if (!pin->name || !pin->url)
            return fail(c, item, "key '%s': '%s' is required", where, pin->name ? "url" : "name");
    }
    return 0;
}

static int parse_mirrors(ctx_t *c, const yaml_node_t *n, larder_config_t *cfg)
{
    static const char *const names[] = {"name", "url", NULL};
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "key 'files.mirrors': expected a list of {name, url}, got %s", type_name(n));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return 0;
    if (!(cfg->mirrors = calloc(count, sizeof(*cfg->mirrors))))
        return fail(c, n, "out of memory");
    for (size_t i = 0; i < count; i++) {
        char where[48], key[96];
        snprintf(where, sizeof(where), "files.mirrors[%zu]", i);
        yaml_node_t *item = node_at(c, n->data.sequence.items.start[i], n);
        if (!item)
            return -1;
        if (item->type != YAML_MAPPING_NODE)
            return fail(c, item, "key '%s': expected a mapping {name, url}, got %s", where, type_name(item));
        larder_file_mirror_t *m = &cfg->mirrors[cfg->nmirrors++];
        map_iter_t it;
        yaml_node_t *v;
        int which, r;
        map_begin(c, item, where, &it);
        while ((r = map_next(c, &it, names, where, &which, &v)) > 0) {
            snprintf(key, sizeof(key), "%s.%s", where, names[which]);
            if (which == 0 && get_name(c, cfg, v, key, &m->name) < 0)
                return -1;
            if (which == 1 && get_url(c, v, key, 0, 1, &m->prefix) < 0)
                return -1;
        }
        if (r < 0)
            return -1;
        if (!m->name || !m->prefix)
            return fail(c, item, "key '%s': '%s' is required", where, m->name ? "url" : "name");
    }
    return 0;
}

/* a list of host names (host or host:port); replaces *out */
static int get_hosts(ctx_t *c, const yaml_node_t *n, const char *key, char ***out, size_t *nout)
{
    for (size_t i = 0; i < *nout; i++)
        free((*out)[i]);
    free(*out);
    *out = NULL;
    *nout = 0;
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "key '%s': expected a list of host names, got %s", key, type_name(n));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    *out = calloc(count ? count : 1, sizeof(char *)); // NOLINT(bugprone-sizeof-expression): array of strings
    if (!*out)
        return fail(c, n, "out of memory");
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = node_at(c, n->data.sequence.items.start[i], n);
        if (!item)
            return -1;
        char ik[96];
        snprintf(ik, sizeof(ik), "%s[%zu]", key, i);
        const char *v = scalar(c, item, ik, "a host name");
        if (!v)
            return -1;
        size_t vl = strlen(v);
        if (vl == 0 || vl > 255)
            return fail(c, item, "key '%s': expected a host name or host:port", ik);
        for (size_t k = 0; k < vl; k++)
            if (!(isalnum((unsigned char)v[k]) || v[k] == '.' || v[k] == '-' || v[k] == ':' || v[k] == '_' ||
                  v[k] == '[' || v[k] == ']'))
                return fail(c, item, "key '%s': '%s' is not a host name or host:port (no scheme, no path)", ik, v);
        char *h = strdup(v);
        if (!h)
            return fail(c, item, "out of memory");
        for (char *q = h; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        (*out)[(*nout)++] = h;
    }
    return 0;
}

static void free_registries(larder_proto_config_t *pc)
{
    for (size_t i = 0; i < pc->nregistries; i++) {
        free(pc->registries[i].name);
        free(pc->registries[i].url);
        free(pc->registries[i].username);
        free(pc->registries[i].password);
    }
    free(pc->registries);
    pc->registries = NULL;
    pc->nregistries = 0;
}

/* oci.registries: {name: URL} or {name: {url, username, password}}; replaces the defaults */
static int parse_registries(ctx_t *c, const yaml_node_t *n, larder_proto_config_t *pc)
{
    char qb[300];
    free_registries(pc);
    if (is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "key 'oci.registries': expected a mapping of registry name to URL, got %s", type_name(n));
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    pc->registries = calloc(count ? count : 1, sizeof(*pc->registries));
    if (!pc->registries)
        return fail(c, n, "out of memory");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key, n), *v = k ? node_at(c, p->value, k) : NULL;
        if (!v)
            return -1;
        const char *kv = scalar(c, k, "oci.registries", "a registry name");
        if (!kv)
            return -1;
        size_t kl = strlen(kv);
        int ok = kl > 0 && kl < 256;
        for (size_t i = 0; ok && i < kl; i++)
            ok = isalnum((unsigned char)kv[i]) || kv[i] == '.' || kv[i] == '-' || kv[i] == ':' || kv[i] == '_';
        if (!ok)
            return fail(c, k, "key 'oci.registries': '%s' is not a registry name (host or host:port)",
                        quote(kv, kl, qb, sizeof(qb)));
        char key[320];
        snprintf(key, sizeof(key), "oci.registries.%s", kv);
        larder_oci_registry_t *r = &pc->registries[pc->nregistries++];
        if (!(r->name = strdup(kv)))
            return fail(c, k, "out of memory");
        for (char *q = r->name; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        if (v->type == YAML_MAPPING_NODE) {
            static const char *const names[] = {"url", "username", "password", NULL};
            map_iter_t it;
            yaml_node_t *vv;
            int which, rr;
            map_begin(c, v, key, &it);
            while ((rr = map_next(c, &it, names, key, &which, &vv)) > 0) {
                char sk[400];
                snprintf(sk, sizeof(sk), "%s.%s", key, names[which]);
                if (which == 0 && get_url(c, vv, sk, 0, 0, &r->url) < 0)
                    return -1;
                if (which == 1 && get_string(c, vv, sk, 1, &r->username) < 0)
                    return -1;
                if (which == 2 && get_string(c, vv, sk, 1, &r->password) < 0)
                    return -1;
            }
            if (rr < 0)
                return -1;
            if (!r->url)
                return fail(c, v, "key '%s': url is required", key);
        } else if (get_url(c, v, key, 0, 0, &r->url) < 0) {
            return -1;
        }
        size_t ul = strlen(r->url);
        while (ul > 0 && r->url[ul - 1] == '/')
            r->url[--ul] = 0;
    }
    return 0;
}

static int parse_proto(ctx_t *c, const yaml_node_t *n, int proto, larder_config_t *cfg)
{
    static const char *const common[] = {"enabled", "quota", "ttl", "upstream", NULL};
    static const char *const files[] = {"enabled", "quota", "ttl", "upstream", "pins", "mirrors", NULL};
    static const char *const npm[] = {"enabled", "quota", "ttl", "upstream", "public_url", NULL};
    static const char *const apt[] = {"enabled", "quota", "ttl", "upstream", "allow", "https_hosts", NULL};
    static const char *const oci[] = {"enabled", "quota", "ttl", "upstream", "registries", NULL};
    const char *const *names = proto == LARDER_PROTO_FILES ? files
                               : proto == LARDER_PROTO_NPM ? npm
                               : proto == LARDER_PROTO_APT ? apt
                               : proto == LARDER_PROTO_OCI ? oci
                                                           : common;
    const char *where = proto_names[proto];
    larder_proto_config_t *pc = &cfg->proto[proto];
    char key[64];
    map_iter_t it;
    yaml_node_t *v;
    int which, r;
    if (map_begin(c, n, where, &it) < 0)
        return -1;
    while ((r = map_next(c, &it, names, where, &which, &v)) > 0) {
        snprintf(key, sizeof(key), "%s.%s", where, names[which]);
        if (proto == LARDER_PROTO_OCI && which == 4) {
            if (parse_registries(c, v, pc) < 0)
                return -1;
            continue;
        }
        if (proto == LARDER_PROTO_APT && which >= 4) {
            if (which == 4 ? get_hosts(c, v, key, &pc->hosts, &pc->nhosts) < 0
                           : get_hosts(c, v, key, &pc->https_hosts, &pc->nhttps_hosts) < 0)
                return -1;
            continue;
        }
        if (proto == LARDER_PROTO_NPM && which == 4) {
            if (get_url(c, v, key, 1, 0, &pc->public_url) < 0)
                return -1;
            size_t ul = pc->public_url ? strlen(pc->public_url) : 0;
            while (ul > 0 && pc->public_url[ul - 1] == '/')
                pc->public_url[--ul] = 0;
            continue;
        }
        switch (which) {
        case 0:
            r = get_bool(c, v, key, &pc->enabled);
            break;
        case 1:
            r = get_size(c, v, key, &pc->quota);
            break;
        case 2:
            r = get_duration(c, v, key, MAX_DURATION, &pc->ttl);
            break;
        case 3:
            r = get_url(c, v, key, 1, 1, &pc->upstream);
            break;
        case 4:
            r = parse_pins(c, v, cfg);
            break;
        case 5:
            r = parse_mirrors(c, v, cfg);
            break;
        }
        if (r < 0)
            return -1;
    }
    return r;
}

static int parse_quota(ctx_t *c, const yaml_node_t *n, larder_config_t *cfg)
{
    static const char *const names[] = {"total", "min_free", NULL};
    map_iter_t it;
    yaml_node_t *v;
    int which, r;
    if (map_begin(c, n, "quota", &it) < 0)
        return -1;
    while ((r = map_next(c, &it, names, "quota", &which, &v)) > 0)
        if (get_size(c, v, which ? "quota.min_free" : "quota.total", which ? &cfg->min_free : &cfg->quota_total) < 0)
            return -1;
    return r;
}

static int parse_timeouts(ctx_t *c, const yaml_node_t *n, larder_config_t *cfg)
{
    static const char *const names[] = {"connect", "idle", NULL};
    map_iter_t it;
    yaml_node_t *v;
    int which, r;
    if (map_begin(c, n, "timeouts", &it) < 0)
        return -1;
    while ((r = map_next(c, &it, names, "timeouts", &which, &v)) > 0) {
        if (which == 0) {
            if (get_duration(c, v, "timeouts.connect", MAX_TIMEOUT, &cfg->connect_timeout) < 0)
                return -1;
            if (cfg->connect_timeout == 0)
                return fail(c, v, "key 'timeouts.connect': must be at least 1s");
        } else if (get_duration(c, v, "timeouts.idle", MAX_TIMEOUT, &cfg->idle_timeout) < 0) {
            return -1;
        }
    }
    return r;
}

static int parse_store(ctx_t *c, const yaml_node_t *n, larder_config_t *cfg)
{
    static const char *const names[] = {"verify_on_read", "verify_interval", NULL};
    map_iter_t it;
    yaml_node_t *v;
    int which, r;
    if (map_begin(c, n, "store", &it) < 0)
        return -1;
    while ((r = map_next(c, &it, names, "store", &which, &v)) > 0) {
        if (which == 0 && get_bool(c, v, "store.verify_on_read", &cfg->verify_on_read) < 0)
            return -1;
        if (which == 1 && get_duration(c, v, "store.verify_interval", MAX_DURATION, &cfg->verify_interval) < 0)
            return -1;
    }
    return r;
}

static int parse_limits(ctx_t *c, const yaml_node_t *n, larder_config_t *cfg)
{
    static const char *const names[] = {"request_body", "seed_spec", "request_bodies", NULL};
    static const char *const keys[] = {"limits.request_body", "limits.seed_spec", "limits.request_bodies"};
    uint64_t *const fields[] = {&cfg->body_max, &cfg->seed_spec_max, &cfg->bodies_total};
    map_iter_t it;
    yaml_node_t *v;
    int which, r;
    if (map_begin(c, n, "limits", &it) < 0)
        return -1;
    while ((r = map_next(c, &it, names, "limits", &which, &v)) > 0) {
        if (get_size(c, v, keys[which], fields[which]) < 0)
            return -1;
        if (*fields[which] > (1ULL << 30))
            return fail(c, v, "key '%s': at most 1GiB", keys[which]);
        if (which == 1 && cfg->seed_spec_max == 0)
            return fail(c, v, "key 'limits.seed_spec': must be at least 1 byte");
    }
    if (r == 0 && cfg->seed_spec_max > cfg->bodies_total)
        return fail(c, n, "key 'limits.seed_spec': %llu bytes do not fit in limits.request_bodies (%llu bytes)",
                    (unsigned long long)cfg->seed_spec_max, (unsigned long long)cfg->bodies_total);
    return r;
}

static int parse_admin(ctx_t *c, const yaml_node_t *n, larder_config_t *cfg)
{
    static const char *const names[] = {"token", NULL};
    map_iter_t it;
    yaml_node_t *v;
    int which, r;
    if (map_begin(c, n, "admin", &it) < 0)
        return -1;
    while ((r = map_next(c, &it, names, "admin", &which, &v)) > 0)
        if (get_string(c, v, "admin.token", 1, &cfg->admin_token) < 0)
            return -1;
    return r;
}

static int parse_proxy(ctx_t *c, const yaml_node_t *n, larder_config_t *cfg)
{
    static const char *const schemes[] = {"http://", "https://", "socks4://", "socks4a://", "socks5://", "socks5h://",
                                          NULL};
    char qb[300];
    if (get_string(c, n, "upstream_proxy", 1, &cfg->upstream_proxy) < 0)
        return -1;
    if (!cfg->upstream_proxy)
        return 0;
    const char *p = cfg->upstream_proxy;
    for (int i = 0; schemes[i]; i++)
        if (!strncasecmp(p, schemes[i], strlen(schemes[i])) && p[strlen(schemes[i])])
            return strchr(p, ' ') ? fail(c, n, "key 'upstream_proxy': URL contains a space") : 0;
    return fail(c, n, "key 'upstream_proxy': '%s' is not a proxy URL (http://, https://, socks5h://... host:port)",
                quote(p, strlen(p), qb, sizeof(qb)));
}

static int parse_root(ctx_t *c, const yaml_node_t *root, larder_config_t *cfg)
{
    enum { K_LISTEN, K_DATA_DIR, K_OFFLINE, K_THREADS, K_QUOTA, K_ADMIN, K_PROXY, K_CA, K_TIMEOUTS, K_MAXOBJ,
           K_STORE, K_LIMITS, K_PROTO0 };
    static const char *const names[] = {"listen",   "data_dir",        "offline", "threads", "quota", "admin",
                                        "upstream_proxy", "upstream_ca", "timeouts", "max_object_size", "store",
                                        "limits", "files",
                                        "pypi",     "npm",             "apt",     "gems",    "oci",     NULL};
    map_iter_t it;
    yaml_node_t *v;
    int which, r;
    uint64_t u = 0;
    if (!is_null(root) && root->type != YAML_MAPPING_NODE)
        return fail(c, root, "the top level must be a mapping of settings (key: value), got %s", type_name(root));
    map_begin(c, root, "", &it);
    while ((r = map_next(c, &it, names, NULL, &which, &v)) > 0) {
        switch (which) {
        case K_LISTEN:
            r = parse_listen(c, v, cfg);
            break;
        case K_DATA_DIR:
            r = get_string(c, v, "data_dir", 0, &cfg->data_dir);
            break;
        case K_OFFLINE:
            r = get_bool(c, v, "offline", &cfg->offline);
            break;
        case K_THREADS:
            if ((r = get_uint(c, v, "threads", 0, MAX_THREADS, &u)) == 0)
                cfg->threads = (int)u;
            break;
        case K_QUOTA:
            r = parse_quota(c, v, cfg);
            break;
        case K_ADMIN:
            r = parse_admin(c, v, cfg);
            break;
        case K_PROXY:
            r = parse_proxy(c, v, cfg);
            break;
        case K_CA:
            r = get_string(c, v, "upstream_ca", 1, &cfg->upstream_ca);
            break;
        case K_TIMEOUTS:
            r = parse_timeouts(c, v, cfg);
            break;
        case K_MAXOBJ:
            r = get_size(c, v, "max_object_size", &cfg->max_object_size);
            break;
        case K_STORE:
            r = parse_store(c, v, cfg);
            break;
        case K_LIMITS:
            r = parse_limits(c, v, cfg);
            break;
        default:
            r = parse_proto(c, v, which - K_PROTO0, cfg);
            break;
        }
        if (r < 0)
            return -1;
    }
    return r;
}

/* ---- entry points ---- */

static int set_defaults(larder_config_t *cfg, const char *source)
{
    cfg->source = strdup(source);
    cfg->data_dir = strdup("./larder-data");
    cfg->listen = calloc(1, sizeof(*cfg->listen));
    if (!cfg->source || !cfg->data_dir || !cfg->listen)
        return -1;
    cfg->nlisten = 1;
    cfg->listen[0].port = 3142;
    cfg->listen[0].protocol = -1;
    if (!(cfg->listen[0].address = strdup("0.0.0.0")))
        return -1;
    cfg->min_free = 1ULL << 30;
    cfg->connect_timeout = 10;
    cfg->idle_timeout = 60;
    cfg->verify_on_read = 1;
    cfg->verify_interval = 600;
    cfg->body_max = (uint64_t)64 << 10;
    cfg->seed_spec_max = (uint64_t)16 << 20;
    cfg->bodies_total = (uint64_t)64 << 20;
    for (int p = 0; p < LARDER_NPROTO; p++) {
        cfg->proto[p].enabled = 1;
        cfg->proto[p].ttl = proto_default_ttl[p];
        if (proto_default_upstream[p] && !(cfg->proto[p].upstream = strdup(proto_default_upstream[p])))
            return -1;
    }
    larder_proto_config_t *oci = &cfg->proto[LARDER_PROTO_OCI];
    oci->registries = calloc(1, sizeof(*oci->registries));
    if (!oci->registries || !(oci->registries[0].name = strdup("docker.io")) ||
        !(oci->registries[0].url = strdup("https://registry-1.docker.io")))
        return -1;
    oci->nregistries = 1;
    static const char *const apt_hosts[] = {"deb.debian.org", "security.debian.org", "archive.ubuntu.com",
                                            "security.ubuntu.com", "ports.ubuntu.com"};
    larder_proto_config_t *apt = &cfg->proto[LARDER_PROTO_APT];
    apt->hosts = calloc(5, sizeof(char *)); // NOLINT(bugprone-sizeof-expression): array of strings
    if (!apt->hosts)
        return -1;
    for (size_t i = 0; i < 5; i++)
        if (!(apt->hosts[apt->nhosts++] = strdup(apt_hosts[i])))
            return -1;
    return 0;
}

static void yaml_error(const yaml_parser_t *p, const char *source, char *err, size_t errlen)
{
    if (!err || !errlen)
        return;
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(err, errlen, "%s: out of memory", source);
    } else if (p->error == YAML_READER_ERROR) {
        snprintf(err, errlen, "%s: byte %zu: %s (the file must be UTF-8 text)", source, p->problem_offset,
                 p->problem ? p->problem : "unreadable input");
    } else if (p->context) {
        snprintf(err, errlen, "%s:%zu: YAML syntax error: %s (%s on line %zu)", source, p->problem_mark.line + 1,
                 p->problem ? p->problem : "unknown problem", p->context, p->context_mark.line + 1);
    } else {
        snprintf(err, errlen, "%s:%zu: YAML syntax error: %s", source, p->problem_mark.line + 1,
                 p->problem ? p->problem : "unknown problem");
    }
}

larder_config_t *larder_config_parse(const char *text, size_t len, const char *source, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!source)
        source = "<string>";
    larder_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg || set_defaults(cfg, source) < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", source);
        larder_config_free(cfg);
        return NULL;
    }
    if (!text)
        len = 0;

    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int ok = 0, have_doc = 0;
    if (!yaml_parser_initialize(&parser)) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", source);
        larder_config_free(cfg);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(&parser, source, err, errlen);
        goto out;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        /* a second document would be silently ignored by the loader: refuse it instead */
        if (!yaml_parser_load(&parser, &extra)) {
            yaml_error(&parser, source, err, errlen);
            goto out;
        }
        yaml_node_t *r2 = yaml_document_get_root_node(&extra);
        size_t line = r2 ? r2->start_mark.line + 1 : 0;
        yaml_document_delete(&extra);
        if (r2) {
            if (err && errlen)
                snprintf(err, errlen, "%s:%zu: only one YAML document is allowed (remove the '---')", source, line);
            goto out;
        }
        ctx_t c = {.doc = &doc, .source = source, .err = err, .errlen = errlen};
        c.nnodes = (size_t)(doc.nodes.top - doc.nodes.start);
        if (!(c.visited = calloc(c.nnodes ? c.nnodes : 1, 1))) {
            if (err && errlen)
                snprintf(err, errlen, "%s: out of memory", source);
            goto out;
        }
        c.visited[0] = 1; /* the root */
        int r = parse_root(&c, root, cfg);
        free(c.visited);
        if (r < 0 || c.failed)
            goto out;
    }
    ok = 1;
out:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (!ok) {
        if (err && errlen && !err[0])
            snprintf(err, errlen, "%s: invalid configuration", source);
        larder_config_free(cfg);
        return NULL;
    }
    return cfg;
}

larder_config_t *larder_config_load(const char *path, char *err, size_t errlen)
{
    if (!path)
        return larder_config_parse(default_config, sizeof(default_config) - 1, "<default>", err, errlen);
    size_t len;
    char *text = larder_read_file(path, &len);
    if (!text) {
        if (err && errlen)
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    larder_config_t *cfg = larder_config_parse(text, len, path, err, errlen);
    free(text);
    return cfg;
}

void larder_config_free(larder_config_t *cfg)
{
    if (!cfg)
        return;
    free(cfg->source);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        free(cfg->listen[i].address);
        free(cfg->listen[i].tls_cert);
        free(cfg->listen[i].tls_key);
    }
    free(cfg->listen);
    free(cfg->data_dir);
    free(cfg->admin_token);
    free(cfg->upstream_proxy);
    free(cfg->upstream_ca);
    for (int p = 0; p < LARDER_NPROTO; p++) {
        free(cfg->proto[p].upstream);
        free(cfg->proto[p].public_url);
        for (size_t i = 0; i < cfg->proto[p].nhosts; i++)
            free(cfg->proto[p].hosts[i]);
        free(cfg->proto[p].hosts);
        for (size_t i = 0; i < cfg->proto[p].nhttps_hosts; i++)
            free(cfg->proto[p].https_hosts[i]);
        free(cfg->proto[p].https_hosts);
        free_registries(&cfg->proto[p]);
    }
    for (size_t i = 0; i < cfg->npins; i++) {
        free(cfg->pins[i].name);
        free(cfg->pins[i].url);
        free(cfg->pins[i].sha256);
    }
    free(cfg->pins);
    for (size_t i = 0; i < cfg->nmirrors; i++) {
        free(cfg->mirrors[i].name);
        free(cfg->mirrors[i].prefix);
    }
    free(cfg->mirrors);
    free(cfg);
}
