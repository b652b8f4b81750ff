/* config.c - larder.yaml: text in, one immutable larder_config_t out, or one error message naming file, line
 * and key.
 *
 * The keys are declared, not coded: core_keys below are the core's own, proto_keys the four every protocol
 * section has (enabled, quota, ttl, upstream), and each module (module.h) declares the rest of its section in its
 * conf_keys. libyaml's document loader turns the text into a node graph; parse_map() walks a mapping, finds each
 * key in the declared tables (a dotted name "quota.total" makes "quota" a nested mapping) and parse_value() reads
 * it with the typed helper of its type (bool, int, size, duration, string, URL, host list) or the module's own
 * parser, into the struct the key names (the config, the protocol's common settings or the module's struct).
 * Unknown and duplicate keys are refused there, so a typo can never be silently ignored, whoever owns the key.
 * Defaults are the same declarations' `def` texts, parsed by the same code before the file, so a key that is
 * absent keeps its default, the struct is complete whatever the text says, and `larder config` can print every
 * key with its value and owner (larder_config_print). Each node may be visited once: YAML aliases would let a
 * few bytes describe an exponential (or cyclic) tree, and a config has no use for them, so a second visit is an
 * error rather than a hang. Only the first error is kept; on any error the partial config is freed and NULL
 * returned, so callers never see a half-valid struct.
 *
 * Nothing here logs or exits, and nothing names a protocol: the caller decides what to do with the message. */
#include "config.h"
#include "module.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MAX_DURATION (100ULL * 366 * 86400) /* keeps now + ttl far from overflow */
#define MAX_TIMEOUT 86400ULL                /* handed to libcurl as a long */
#define MAX_THREADS 1024
#define MAX_URL 4096
#define MAX_STRING 4096

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

struct larder_conf {
    yaml_document_t *doc;
    const char *source;
    char *err;
    size_t errlen;
    unsigned char *visited; /* one flag per node */
    size_t nnodes;
    int failed;
};
typedef struct larder_conf ctx_t;

/* the first error, "FILE:LINE: ...": this file calls it fail(); modules, larder_conf_fail() (module.h) */
#define fail larder_conf_fail
int larder_conf_fail(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
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

typedef larder_conf_iter_t map_iter_t;

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

static int parse_listen(ctx_t *c, const yaml_node_t *n, const char *lkey, void *field, void *base)
{
    larder_config_t *cfg = base;
    (void)lkey;
    (void)field;
    static const char *const names[] = {"address", "port", "tls", "protocol", "http2", NULL};
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
        l->http2 = 1;
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
            if (which == 4 && get_bool(c, v, key, &l->http2) < 0)
                return -1;
            if (which == 3) {
                char *pn = NULL;
                if (get_string(c, v, key, 1, &pn) < 0)
                    return -1;
                if (pn) {
                    l->protocol = larder_proto_from_name(pn);
                    if (l->protocol < 0) {
                        char names[256] = "";
                        for (int pi = 0; pi < larder_proto_count(); pi++) {
                            size_t nl = strlen(names);
                            snprintf(names + nl, sizeof(names) - nl, "%s%s", pi ? ", " : "", larder_proto_name(pi));
                        }
                        fail(c, v, "key '%s': unknown protocol '%s' (expected one of %s)", key, pn, names);
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

static int parse_proxy(ctx_t *c, const yaml_node_t *n, const char *key, void *field, void *base)
{
    larder_config_t *cfg = base;
    (void)key;
    (void)field;
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

/* ---- exported helpers (module.h): what a module's CUSTOM key parser uses ---- */


int larder_conf_is_null(const yaml_node_t *n) { return is_null(n); }
const char *larder_conf_type_name(const yaml_node_t *n) { return type_name(n); }
yaml_node_t *larder_conf_node(larder_conf_t *c, int id, const yaml_node_t *parent) { return node_at(c, id, parent); }
const char *larder_conf_scalar(larder_conf_t *c, const yaml_node_t *n, const char *key, const char *want)
{
    return scalar(c, n, key, want);
}
const char *larder_conf_quote(const char *s, size_t len, char *buf, size_t buflen)
{
    return quote(s, len, buf, buflen);
}
int larder_conf_map_begin(larder_conf_t *c, const yaml_node_t *n, const char *key, larder_conf_iter_t *it)
{
    return map_begin(c, n, key, it);
}
int larder_conf_map_next(larder_conf_t *c, larder_conf_iter_t *it, const char *const *names, const char *where,
                         int *which, yaml_node_t **val)
{
    return map_next(c, it, names, where, which, val);
}
int larder_conf_string(larder_conf_t *c, const yaml_node_t *n, const char *key, int nullable, char **out)
{
    return get_string(c, n, key, nullable, out);
}
int larder_conf_url(larder_conf_t *c, const yaml_node_t *n, const char *key, int nullable, int dir, char **out)
{
    return get_url(c, n, key, nullable, dir, out);
}

void larder_conf_endpoints_release(larder_conf_endpoint_t **v, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        free((*v)[i].name);
        free((*v)[i].url);
        free((*v)[i].username);
        free((*v)[i].password);
    }
    free(*v);
    *v = NULL;
    *n = 0;
}

int larder_conf_endpoints(larder_conf_t *c, const yaml_node_t *n, const char *key,
                          const larder_conf_endpoint_spec_t *spec, larder_conf_endpoint_t **v, size_t *nv)
{
    char qb[300], want[64];
    larder_conf_endpoints_release(v, nv);
    if (is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "key '%s': expected a mapping of %s name to URL, got %s", key, spec->item, type_name(n));
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    *v = calloc(count ? count : 1, sizeof(**v));
    if (!*v)
        return fail(c, n, "out of memory");
    snprintf(want, sizeof(want), "a %s name", spec->item);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key, n), *val = k ? node_at(c, p->value, k) : NULL;
        if (!val)
            return -1;
        const char *kv = scalar(c, k, key, want);
        if (!kv)
            return -1;
        size_t kl = strlen(kv);
        if (!spec->name_ok(kv, kl))
            return fail(c, k, "key '%s': '%s' is not a %s name (%s)", key, quote(kv, kl, qb, sizeof(qb)), spec->item,
                        spec->hint);
        char ek[320];
        snprintf(ek, sizeof(ek), "%s.%s", key, kv);
        larder_conf_endpoint_t *e = &(*v)[*nv];
        if (!(e->name = strdup(kv)))
            return fail(c, k, "out of memory");
        (*nv)++;
        for (char *q = e->name; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        for (size_t i = 0; spec->unique && i + 1 < *nv; i++)
            if (strcmp((*v)[i].name, e->name) == 0)
                return fail(c, k, "key '%s': %s '%s' is given twice", key, spec->item, e->name);
        if (val->type == YAML_MAPPING_NODE) {
            static const char *const names[] = {"url", "username", "password", NULL};
            map_iter_t it;
            yaml_node_t *vv;
            int which, r;
            map_begin(c, val, ek, &it);
            while ((r = map_next(c, &it, names, ek, &which, &vv)) > 0) {
                char sk[400];
                snprintf(sk, sizeof(sk), "%s.%s", ek, names[which]);
                if (which == 0 && get_url(c, vv, sk, 0, 0, &e->url) < 0)
                    return -1;
                if (which == 1 && get_string(c, vv, sk, 1, &e->username) < 0)
                    return -1;
                if (which == 2 && get_string(c, vv, sk, 1, &e->password) < 0)
                    return -1;
            }
            if (r < 0)
                return -1;
            if (!e->url)
                return fail(c, val, "key '%s': url is required", ek);
        } else if (get_url(c, val, ek, 0, 0, &e->url) < 0) {
            return -1;
        }
        if (spec->check && spec->check(c, val, ek, e) < 0)
            return -1;
        size_t ul = strlen(e->url);
        while (ul > 0 && e->url[ul - 1] == '/')
            e->url[--ul] = 0;
    }
    return 0;
}

void larder_conf_endpoints_print(FILE *f, const larder_conf_endpoint_t *v, size_t n, int indent)
{
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "\n%*s%s: {url: ", indent + 2, "", v[i].name);
        larder_conf_print_str(f, v[i].url);
        if (v[i].username) {
            fputs(", username: ", f);
            larder_conf_print_str(f, v[i].username);
        }
        if (v[i].password) { /* printed like the rest: the file holding it is as readable as this output */
            fputs(", password: ", f);
            larder_conf_print_str(f, v[i].password);
        }
        fputc('}', f);
    }
    if (!n)
        fputs(" {}", f);
}

void larder_conf_print_str(FILE *f, const char *s)
{
    if (!s) {
        fputc('~', f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static const char *fmt_size(uint64_t v, char *buf, size_t len);

/* ---- the core's own keys ---- */

static void print_listen(FILE *f, const void *field, const void *base, int indent)
{
    const larder_config_t *cfg = base;
    (void)field;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const larder_listen_t *l = &cfg->listen[i];
        fprintf(f, "\n%*s- address: ", indent + 2, "");
        larder_conf_print_str(f, l->address);
        fprintf(f, "\n%*s  port: %d", indent + 2, "", l->port);
        if (l->tls_cert) {
            fprintf(f, "\n%*s  tls: {cert: ", indent + 2, "");
            larder_conf_print_str(f, l->tls_cert);
            fputs(", key: ", f);
            larder_conf_print_str(f, l->tls_key);
            fputc('}', f);
        }
        if (l->protocol >= 0)
            fprintf(f, "\n%*s  protocol: %s", indent + 2, "", larder_proto_name(l->protocol));
        if (!l->http2)
            fprintf(f, "\n%*s  http2: false", indent + 2, "");
    }
}

static void release_listen(void *field, void *base)
{
    larder_config_t *cfg = base;
    (void)field;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        free(cfg->listen[i].address);
        free(cfg->listen[i].tls_cert);
        free(cfg->listen[i].tls_key);
    }
    free(cfg->listen);
    cfg->listen = NULL;
    cfg->nlisten = 0;
}

#define CORE(f) LARDER_KEY_IN_CONFIG, offsetof(larder_config_t, f)
static const larder_conf_key_t core_keys[] = {
    {.name = "listen", .type = LARDER_KEY_CUSTOM, CORE(listen), .def = "[{address: 0.0.0.0, port: 3142}]",
     .doc = "where the daemon accepts connections: [{address, port, tls: {cert, key}, protocol, http2}]",
     .parse = parse_listen, .print = print_listen, .release = release_listen, .shape = "list of listeners"},
    {.name = "data_dir", .type = LARDER_KEY_STRING, CORE(data_dir), .def = "./larder-data",
     .doc = "directory of the index (RocksDB) and the blobs"},
    {.name = "offline", .type = LARDER_KEY_BOOL, CORE(offline), .def = "false",
     .doc = "never contact an upstream; serve what is cached, stale or not"},
    {.name = "threads", .type = LARDER_KEY_INT, CORE(threads), .def = "0", .max = MAX_THREADS,
     .doc = "worker threads (0: one per CPU core)"},
    {.name = "quota.total", .type = LARDER_KEY_SIZE, CORE(quota_total), .def = "0",
     .doc = "bytes of blob storage, all protocols together (0: unlimited)"},
    {.name = "quota.min_free", .type = LARDER_KEY_SIZE, CORE(min_free), .def = "1GiB",
     .doc = "free-space watermark on the file system of data_dir (0: none)"},
    {.name = "admin.token", .type = LARDER_KEY_STRING, CORE(admin_token), .nullable = 1,
     .doc = "bearer token for admin writes (none: they are refused)"},
    {.name = "admin.token_file", .type = LARDER_KEY_STRING, CORE(admin_token_file), .nullable = 1,
     .doc = "file whose first line is the admin token, read at start when admin.token is unset (the Debian package "
            "generates /etc/larder/admin.token)"},
    {.name = "upstream_proxy", .type = LARDER_KEY_CUSTOM, CORE(upstream_proxy), .nullable = 1,
     .doc = "proxy for every upstream fetch: http://, https:// or socks5h://host:port",
     .parse = parse_proxy},
    {.name = "upstream_ca", .type = LARDER_KEY_STRING, CORE(upstream_ca), .nullable = 1,
     .doc = "PEM bundle trusted for upstream TLS instead of the system store"},
    {.name = "timeouts.connect", .type = LARDER_KEY_DURATION, CORE(connect_timeout), .def = "10s", .min = 1,
     .max = MAX_TIMEOUT, .doc = "time to connect to an upstream"},
    {.name = "timeouts.idle", .type = LARDER_KEY_DURATION, CORE(idle_timeout), .def = "60s", .max = MAX_TIMEOUT,
     .doc = "time without a byte from an upstream before the fetch fails (0: none)"},
    {.name = "timeouts.client_idle", .type = LARDER_KEY_DURATION, CORE(client_idle_timeout), .def = "60s", .min = 1,
     .max = MAX_TIMEOUT, .doc = "time a client's idle keep-alive connection (HTTP/1 or HTTP/2) is kept open"},
    {.name = "timeouts.holdoff_after", .type = LARDER_KEY_INT, CORE(holdoff_after), .def = "5", .max = 1000,
     .doc = "consecutive failures to reach an upstream after which it is held off (0: never)"},
    {.name = "timeouts.holdoff", .type = LARDER_KEY_DURATION, CORE(holdoff_first), .def = "5s", .min = 1,
     .max = MAX_TIMEOUT, .doc = "the first hold-off of an upstream; doubled after each failed probe"},
    {.name = "timeouts.holdoff_max", .type = LARDER_KEY_DURATION, CORE(holdoff_max), .def = "60s", .min = 1,
     .max = MAX_TIMEOUT, .doc = "the longest hold-off of an upstream"},
    {.name = "max_object_size", .type = LARDER_KEY_SIZE, CORE(max_object_size), .def = "0",
     .doc = "largest object fetched (0: no limit)"},
    {.name = "store.verify_on_read", .type = LARDER_KEY_BOOL, CORE(verify_on_read), .def = "true",
     .doc = "hash whole blobs as they are served; a damaged blob is quarantined"},
    {.name = "store.verify_interval", .type = LARDER_KEY_DURATION, CORE(verify_interval), .def = "10m",
     .doc = "a blob verified (and unchanged on disk) is not hashed again for this long"},
    {.name = "limits.request_body", .type = LARDER_KEY_SIZE, CORE(body_max), .def = "64KiB", .max = 1ULL << 30,
     .doc = "largest request body anywhere but a seed upload"},
    {.name = "limits.seed_spec", .type = LARDER_KEY_SIZE, CORE(seed_spec_max), .def = "16MiB", .min = 1,
     .max = 1ULL << 30, .doc = "largest seed spec body of POST /-/api/v1/jobs"},
    {.name = "limits.request_bodies", .type = LARDER_KEY_SIZE, CORE(bodies_total), .def = "64MiB",
     .max = 1ULL << 30, .doc = "bytes all seed uploads in flight may hold together"},
    {.name = "jobs.keep", .type = LARDER_KEY_UINT, CORE(jobs_keep), .def = "200", .min = 1, .max = 100000,
     .doc = "finished seed jobs kept (listed and in the store); older ones are forgotten"},
    {.name = "jobs.max_age", .type = LARDER_KEY_DURATION, CORE(jobs_max_age), .def = "30d", .min = 60,
     .doc = "finished seed jobs are forgotten this long after they finished"},
    LARDER_KEYS_END,
};

/* every protocol section starts with these */
#define PROTO(f) LARDER_KEY_IN_PROTO, offsetof(larder_proto_config_t, f)
static const larder_conf_key_t proto_keys[] = {
    {.name = "enabled", .type = LARDER_KEY_BOOL, PROTO(enabled), .def = "true", .doc = "serve this protocol"},
    {.name = "quota", .type = LARDER_KEY_SIZE, PROTO(quota), .def = "0",
     .doc = "bytes this protocol may store (0: only quota.total applies)"},
    {.name = "ttl", .type = LARDER_KEY_DURATION, PROTO(ttl), .doc = "how long a volatile object (index, metadata) is fresh"},
    {.name = "upstream", .type = LARDER_KEY_URL_DIR, PROTO(upstream), .nullable = 1, .doc = "upstream URL prefix"},
    LARDER_KEYS_END,
};

/* ---- walking sections by their declared keys ---- */

/* the keys a mapping may hold: the tables, the prefix their names are relative to, and the structs they fill */
typedef struct {
    const larder_conf_key_t *tables[2];
    const char *section; /* "" (top level) or the module name */
    void *bases[3];      /* by LARDER_KEY_IN_* */
} keyset_t;

static const char *type_label(const larder_conf_key_t *k)
{
    static const char *const labels[] = {"bool", "int", "int", "size", "duration", "string", "URL", "URL prefix",
                                         "URL", "list of hosts", "custom"};
    if (k->type == LARDER_KEY_CUSTOM)
        return k->shape ? k->shape : "string";
    return labels[k->type];
}

/* the declared key named `rel` (relative to the section), or NULL */
static const larder_conf_key_t *find_key(const keyset_t *ks, const char *rel, size_t len, int *group)
{
    *group = 0;
    for (int t = 0; t < 2; t++)
        for (const larder_conf_key_t *k = ks->tables[t]; k && k->name; k++) {
            if (strlen(k->name) == len && memcmp(k->name, rel, len) == 0)
                return k;
            if (strlen(k->name) > len && memcmp(k->name, rel, len) == 0 && k->name[len] == '.')
                *group = 1;
        }
    return NULL;
}

static void *field_of(const keyset_t *ks, const larder_conf_key_t *k)
{
    return (char *)ks->bases[k->in] + k->offset;
}

/* one value into its field, by the key's type; `key` is the full dotted name for messages */
static int parse_value(ctx_t *c, const yaml_node_t *v, const char *key, const larder_conf_key_t *k, const keyset_t *ks)
{
    char qb[300];
    void *field = field_of(ks, k);
    uint64_t u = 0;
    switch (k->type) {
    case LARDER_KEY_BOOL:
        return get_bool(c, v, key, (int *)field);
    case LARDER_KEY_UINT:
        return get_uint(c, v, key, k->min, k->max ? k->max : UINT64_MAX, (uint64_t *)field);
    case LARDER_KEY_INT:
        if (get_uint(c, v, key, k->min, k->max ? k->max : INT32_MAX, &u) < 0)
            return -1;
        *(int *)field = (int)u;
        return 0;
    case LARDER_KEY_SIZE:
        if (get_size(c, v, key, (uint64_t *)field) < 0)
            return -1;
        u = *(uint64_t *)field;
        if (k->max && u > k->max) {
            char mb[32];
            return fail(c, v, "key '%s': at most %s", key, fmt_size(k->max, mb, sizeof(mb)));
        }
        if (u < k->min)
            return fail(c, v, "key '%s': must be at least %llu byte%s", key, (unsigned long long)k->min,
                        k->min == 1 ? "" : "s");
        return 0;
    case LARDER_KEY_DURATION:
        if (get_duration(c, v, key, k->max ? k->max : MAX_DURATION, (uint64_t *)field) < 0)
            return -1;
        if (*(uint64_t *)field < k->min)
            return fail(c, v, "key '%s': must be at least %llus", key, (unsigned long long)k->min);
        return 0;
    case LARDER_KEY_STRING:
        return get_string(c, v, key, k->nullable, (char **)field);
    case LARDER_KEY_URL:
    case LARDER_KEY_URL_DIR:
    case LARDER_KEY_URL_BASE: {
        char **out = (char **)field;
        if (get_url(c, v, key, k->nullable, k->type == LARDER_KEY_URL_DIR, out) < 0)
            return -1;
        size_t ul = *out ? strlen(*out) : 0;
        while (k->type == LARDER_KEY_URL_BASE && ul > 0 && (*out)[ul - 1] == '/')
            (*out)[--ul] = 0;
        return 0;
    }
    case LARDER_KEY_HOSTS: {
        larder_conf_hosts_t *h = field;
        return get_hosts(c, v, key, &h->v, &h->n);
    }
    case LARDER_KEY_CUSTOM:
        return k->parse(c, v, key, field, ks->bases[k->in]);
    }
    return fail(c, v, "key '%s': %s", key, quote("?", 1, qb, sizeof(qb)));
}

static int parse_module(ctx_t *c, const yaml_node_t *v, int proto, larder_config_t *cfg);

/* a mapping whose keys are declared in ks; `path` is its dotted name ("" at the top level). At the top level a
 * key may also name a module: its section goes to the module's keys. */
static int parse_map(ctx_t *c, const yaml_node_t *n, const char *path, const keyset_t *ks)
{
    char qb[300], full[256];
    const char *seen[64];
    size_t nseen = 0;
    const char *where = *path ? path : NULL;
    map_iter_t it;
    if (map_begin(c, n, path, &it) < 0)
        return -1;
    if (is_null(n))
        return 0;
    size_t plen = strlen(path), slen = strlen(ks->section);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key, n);
        if (!k)
            return -1;
        if (k->type != YAML_SCALAR_NODE)
            return fail(c, k, "%s%s%s: keys must be plain words, got %s", where ? "in '" : "top level",
                        where ? where : "", where ? "'" : "", type_name(k));
        const char *kv = (const char *)k->data.scalar.value;
        size_t klen = k->data.scalar.length;
        int group = 0, proto = -1;
        const larder_conf_key_t *key = NULL;
        if (klen < 64 && !memchr(kv, '.', klen) && strlen(kv) == klen) {
            snprintf(full, sizeof(full), "%s%s%s", path, plen ? "." : "", kv);
            const char *rel = slen ? full + slen + 1 : full;
            key = find_key(ks, rel, strlen(rel), &group);
            if (!key && !group && !plen && !slen)
                proto = larder_proto_from_name(kv);
        }
        if (!key && !group && proto < 0) {
            if (where)
                return fail(c, k, "unknown key '%s' in '%s'", quote(kv, klen, qb, sizeof(qb)), where);
            return fail(c, k, "unknown top-level key '%s'", quote(kv, klen, qb, sizeof(qb)));
        }
        for (size_t i = 0; i < nseen; i++)
            if (!strcmp(seen[i], kv)) {
                if (where)
                    return fail(c, k, "duplicate key '%s' in '%s'", kv, where);
                return fail(c, k, "duplicate key '%s'", kv);
            }
        if (nseen < sizeof(seen) / sizeof(seen[0]))
            seen[nseen++] = kv;
        yaml_node_t *v = node_at(c, p->value, k);
        if (!v)
            return -1;
        if (proto >= 0) {
            if (parse_module(c, v, proto, ks->bases[LARDER_KEY_IN_CONFIG]) < 0)
                return -1;
        } else if (key ? parse_value(c, v, full, key, ks) < 0 : parse_map(c, v, full, ks) < 0) {
            return -1;
        }
        if (!plen && !slen && !strcmp(full, "limits")) {
            const larder_config_t *cfg = ks->bases[LARDER_KEY_IN_CONFIG];
            if (cfg->seed_spec_max > cfg->bodies_total)
                return fail(c, v, "key 'limits.seed_spec': %llu bytes do not fit in limits.request_bodies (%llu bytes)",
                            (unsigned long long)cfg->seed_spec_max, (unsigned long long)cfg->bodies_total);
        }
    }
    return 0;
}

static keyset_t module_keyset(larder_config_t *cfg, int proto)
{
    const larder_protocol_t *m = larder_protocol_get(proto);
    return (keyset_t){.tables = {proto_keys, m->conf_keys},
                      .section = m->name,
                      .bases = {cfg, &cfg->proto[proto], cfg->proto[proto].ext}};
}

static int parse_module(ctx_t *c, const yaml_node_t *v, int proto, larder_config_t *cfg)
{
    keyset_t ks = module_keyset(cfg, proto);
    return parse_map(c, v, ks.section, &ks);
}

static int parse_root(ctx_t *c, const yaml_node_t *root, larder_config_t *cfg)
{
    if (!is_null(root) && root->type != YAML_MAPPING_NODE)
        return fail(c, root, "the top level must be a mapping of settings (key: value), got %s", type_name(root));
    keyset_t core = {.tables = {core_keys, NULL}, .section = "", .bases = {cfg, NULL, NULL}};
    return parse_map(c, root, "", &core);
}

/* ---- defaults: each key's `def` text goes through the same parser as a file ---- */

static int apply_default(const keyset_t *ks, const larder_conf_key_t *k, const char *def, char *err, size_t errlen)
{
    char key[160];
    snprintf(key, sizeof(key), "%s%s%s", ks->section, *ks->section ? "." : "", k->name);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return -1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)def, strlen(def));
    int r = -1;
    if (yaml_parser_load(&parser, &doc)) {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        ctx_t c = {.doc = &doc, .source = "<default>", .err = err, .errlen = errlen};
        c.nnodes = (size_t)(doc.nodes.top - doc.nodes.start);
        if (root && (c.visited = calloc(c.nnodes ? c.nnodes : 1, 1))) {
            c.visited[0] = 1;
            r = parse_value(&c, root, key, k, ks);
            free(c.visited);
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    if (r < 0 && err && errlen && !err[0])
        snprintf(err, errlen, "<default>: key '%s': bad default '%s'", key, def);
    return r;
}

static int apply_defaults(const keyset_t *ks, const larder_protocol_t *m, char *err, size_t errlen)
{
    for (int t = 0; t < 2; t++)
        for (const larder_conf_key_t *k = ks->tables[t]; k && k->name; k++) {
            const char *def = k->def;
            if (m && k->in == LARDER_KEY_IN_PROTO && !strcmp(k->name, "ttl"))
                def = m->default_ttl;
            if (m && k->in == LARDER_KEY_IN_PROTO && !strcmp(k->name, "upstream"))
                def = m->default_upstream;
            if (def && apply_default(ks, k, def, err, errlen) < 0)
                return -1;
        }
    return 0;
}

static void release_keys(const keyset_t *ks)
{
    for (int t = 0; t < 2; t++)
        for (const larder_conf_key_t *k = ks->tables[t]; k && k->name; k++) {
            if (!ks->bases[k->in])
                continue;
            void *field = field_of(ks, k);
            if (k->release) {
                k->release(field, ks->bases[k->in]);
            } else if (k->type == LARDER_KEY_HOSTS) {
                larder_conf_hosts_t *h = field;
                for (size_t i = 0; i < h->n; i++)
                    free(h->v[i]);
                free(h->v);
                h->v = NULL;
                h->n = 0;
            } else if ((k->type >= LARDER_KEY_STRING && k->type <= LARDER_KEY_URL_BASE) ||
                       k->type == LARDER_KEY_CUSTOM) { /* a CUSTOM key without release holds a string */
                free(*(char **)field);
                *(char **)field = NULL;
            }
        }
}

/* ---- printing ---- */

static const char *fmt_size(uint64_t v, char *buf, size_t len)
{
    static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < 4; i++) {
        uint64_t u = 1ULL << (10 * (4 - i));
        if (v && v % u == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(v / u), units[i]);
            return buf;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

static const char *fmt_duration(uint64_t v, char *buf, size_t len)
{
    static const struct {
        uint64_t s;
        char u;
    } units[] = {{604800, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (v && v % units[i].s == 0) {
            snprintf(buf, len, "%llu%c", (unsigned long long)(v / units[i].s), units[i].u);
            return buf;
        }
    snprintf(buf, len, "%llus", (unsigned long long)v);
    return buf;
}

static void print_value(FILE *f, const larder_conf_key_t *k, const void *field, const void *base, int indent)
{
    char b[64];
    switch (k->type) {
    case LARDER_KEY_BOOL:
        fputs(*(const int *)field ? "true" : "false", f);
        break;
    case LARDER_KEY_UINT:
        fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case LARDER_KEY_INT:
        fprintf(f, "%d", *(const int *)field);
        break;
    case LARDER_KEY_SIZE:
        fputs(fmt_size(*(const uint64_t *)field, b, sizeof(b)), f);
        break;
    case LARDER_KEY_DURATION:
        fputs(fmt_duration(*(const uint64_t *)field, b, sizeof(b)), f);
        break;
    case LARDER_KEY_STRING:
    case LARDER_KEY_URL:
    case LARDER_KEY_URL_DIR:
    case LARDER_KEY_URL_BASE:
        larder_conf_print_str(f, *(char *const *)field);
        break;
    case LARDER_KEY_HOSTS: {
        const larder_conf_hosts_t *h = field;
        fputc('[', f);
        for (size_t i = 0; i < h->n; i++) {
            fputs(i ? ", " : "", f);
            larder_conf_print_str(f, h->v[i]);
        }
        fputc(']', f);
        break;
    }
    case LARDER_KEY_CUSTOM:
        if (k->print)
            k->print(f, field, base, indent);
        else
            larder_conf_print_str(f, *(char *const *)field);
        break;
    }
}

/* the keys of one keyset as nested YAML: "a.b" under "a:" */
static void print_keys(FILE *f, const keyset_t *ks, const char *owner, int indent)
{
    char open[64] = "";
    for (int t = 0; t < 2; t++)
        for (const larder_conf_key_t *k = ks->tables[t]; k && k->name; k++) {
            const char *dot = strchr(k->name, '.');
            const char *leaf = k->name;
            int in = indent;
            if (dot) {
                size_t gl = (size_t)(dot - k->name);
                if (strlen(open) != gl || strncmp(open, k->name, gl) != 0) {
                    snprintf(open, sizeof(open), "%.*s", (int)gl, k->name);
                    fprintf(f, "%*s%s:\n", indent, "", open);
                }
                leaf = dot + 1;
                in += 2;
            } else {
                open[0] = 0;
            }
            fprintf(f, "%*s%s:", in, "", leaf);
            if (k->type == LARDER_KEY_CUSTOM && k->print) {
                char *v = NULL;
                size_t vl = 0;
                FILE *m = open_memstream(&v, &vl);
                if (m) {
                    print_value(m, k, field_of(ks, k), ks->bases[k->in], in);
                    fclose(m);
                }
                if (v && v[0] == '\n') /* a block: the comment first */
                    fprintf(f, "  # %s: %s%s\n", owner, k->doc, v);
                else
                    fprintf(f, "%s  # %s: %s\n", v ? v : "", owner, k->doc);
                free(v);
                continue;
            }
            fputc(' ', f);
            print_value(f, k, field_of(ks, k), ks->bases[k->in], in);
            fprintf(f, "  # %s: %s\n", owner, k->doc);
        }
}

void larder_config_print(FILE *f, const larder_config_t *cfg)
{
    larder_config_t *c = (larder_config_t *)cfg; /* the keysets take non-const bases; nothing is written */
    fprintf(f, "# the effective configuration of %s: every key with its value (# owner: what it does)\n",
            cfg->source ? cfg->source : "<default>");
    keyset_t core = {.tables = {core_keys, NULL}, .section = "", .bases = {c, NULL, NULL}};
    print_keys(f, &core, "core", 0);
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        keyset_t ks = module_keyset(c, p);
        fprintf(f, "%s:  # %s\n", m->name, m->summary);
        print_keys(f, &ks, m->name, 2);
    }
}

static void list_keys(FILE *f, const keyset_t *ks, const larder_protocol_t *m)
{
    for (int t = 0; t < 2; t++)
        for (const larder_conf_key_t *k = ks->tables[t]; k && k->name; k++) {
            const char *def = k->def;
            if (m && k->in == LARDER_KEY_IN_PROTO && !strcmp(k->name, "ttl"))
                def = m->default_ttl;
            if (m && k->in == LARDER_KEY_IN_PROTO && !strcmp(k->name, "upstream"))
                def = m->default_upstream;
            fprintf(f, "%s%s%s\t%s\t%s\t%s\n", ks->section, *ks->section ? "." : "", k->name, type_label(k),
                    def ? def : "none", m ? m->name : "core");
        }
}

void larder_config_keys(FILE *f)
{
    keyset_t core = {.tables = {core_keys, NULL}, .section = ""};
    list_keys(f, &core, NULL);
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        keyset_t ks = {.tables = {proto_keys, m->conf_keys}, .section = m->name};
        list_keys(f, &ks, m);
    }
}

/* ---- entry points ---- */

static int set_defaults(larder_config_t *cfg, const char *source, char *err, size_t errlen)
{
    if (!(cfg->source = strdup(source)))
        return -1;
    keyset_t core = {.tables = {core_keys, NULL}, .section = "", .bases = {cfg, NULL, NULL}};
    if (apply_defaults(&core, NULL, err, errlen) < 0)
        return -1;
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        if (m->conf_size && !(cfg->proto[p].ext = calloc(1, m->conf_size)))
            return -1;
        keyset_t ks = module_keyset(cfg, p);
        if (apply_defaults(&ks, m, err, errlen) < 0)
            return -1;
    }
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
    if (!cfg || set_defaults(cfg, source, err, errlen) < 0) {
        if (err && errlen && !err[0])
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

/* admin.token_file: the token is its first line (surrounding blanks dropped); an empty file means no token, an
 * unreadable one is an error (a daemon silently without its token would refuse every admin write) */
static int load_token_file(larder_config_t *cfg, char *err, size_t errlen)
{
    size_t len;
    char *text = larder_read_file(cfg->admin_token_file, &len);
    if (!text) {
        if (err && errlen)
            snprintf(err, errlen, "%s: admin.token_file: cannot read %s: %s", cfg->source, cfg->admin_token_file,
                     strerror(errno));
        return -1;
    }
    size_t b = 0, e = strcspn(text, "\r\n");
    while (b < e && isspace((unsigned char)text[b]))
        b++;
    while (e > b && isspace((unsigned char)text[e - 1]))
        e--;
    if (e > b) {
        memmove(text, text + b, e - b);
        text[e - b] = '\0';
        cfg->admin_token = text;
    } else {
        free(text);
    }
    return 0;
}

larder_config_t *larder_config_load(const char *path, char *err, size_t errlen)
{
    if (!path)
        return larder_config_parse("", 0, "<default>", err, errlen);
    size_t len;
    char *text = larder_read_file(path, &len);
    if (!text) {
        if (err && errlen)
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    larder_config_t *cfg = larder_config_parse(text, len, path, err, errlen);
    free(text);
    if (cfg && !cfg->admin_token && cfg->admin_token_file && load_token_file(cfg, err, errlen) < 0) {
        larder_config_free(cfg);
        return NULL;
    }
    return cfg;
}

void larder_config_free(larder_config_t *cfg)
{
    if (!cfg)
        return;
    keyset_t core = {.tables = {core_keys, NULL}, .section = "", .bases = {cfg, NULL, NULL}};
    release_keys(&core);
    for (int p = 0; p < larder_proto_count(); p++) {
        keyset_t ks = module_keyset(cfg, p);
        release_keys(&ks);
        free(cfg->proto[p].ext);
    }
    free(cfg->source);
    free(cfg);
}
