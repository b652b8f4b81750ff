/* seedspec.c - the seed spec: YAML text (from `larder seed` via the admin API) in, a flat list of
 * (protocol, ref, optional sha256) items out.
 *
 * This file only checks shape: a pin_set name, one list per protocol section, each item a string or a
 * {path, sha256} mapping with a sane ref. It never decides whether a ref exists - jobs.c hands every item to its
 * protocol, which resolves it against the config - so the rules here are the ones no protocol could relax: refs
 * are non-empty, relative, bounded and free of control bytes. Sections for protocols this version cannot seed
 * are recognised and refused by name, so a spec written for a newer Larder fails loudly instead of seeding half
 * of itself. The text arrives over the network, so the walk visits every YAML node at most once (aliases are
 * refused) and any error frees everything and answers one "line N: ..." message. */
#include "seedspec.h"
#include "config.h"
#include "util.h"

#include <stdarg.h>
#include <stddef.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_REF 2048

typedef struct {
    yaml_document_t *doc;
    char *err;
    size_t errlen;
    unsigned char *visited;
    int failed;
    larder_seed_spec_t *spec;
    size_t cap;
} ctx_t;

static int fail(ctx_t *c, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
    if (c->failed++ || !c->err || !c->errlen)
        return -1;
    int k = snprintf(c->err, c->errlen, "line %zu: ", n ? n->start_mark.line + 1 : (size_t)1);
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

static yaml_node_t *node_at(ctx_t *c, int id, const yaml_node_t *parent)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, id);
    if (!n) {
        fail(c, parent, "malformed document");
        return NULL;
    }
    if (c->visited[id - 1]) {
        fail(c, parent, "YAML aliases (*name) are not supported in seed specs");
        return NULL;
    }
    c->visited[id - 1] = 1;
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

static const char *scalar(ctx_t *c, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        fail(c, n, "%s: expected a string, got %s", what, type_name(n));
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

static int check_ref(ctx_t *c, const yaml_node_t *n, const char *ref, size_t len)
{
    char qb[300];
    if (len == 0)
        return fail(c, n, "empty item");
    if (memchr(ref, '\0', len))
        return fail(c, n, "item contains a NUL byte");
    if (len > MAX_REF)
        return fail(c, n, "item is longer than %d bytes", MAX_REF);
    if (ref[0] == '/')
        return fail(c, n, "item '%s' must be relative (no leading '/')", quote(ref, len, qb, sizeof(qb)));
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)ref[i] < 0x20 || ref[i] == 0x7f)
            return fail(c, n, "item '%s' contains a control character", quote(ref, len, qb, sizeof(qb)));
    return 0;
}

static int get_sha256(ctx_t *c, const yaml_node_t *n, char **out)
{
    char qb[300];
    if (is_null(n))
        return 0;
    const char *v = scalar(c, n, "sha256");
    if (!v)
        return -1;
    size_t len = n->data.scalar.length;
    char d[65];
    if (len != 64)
        return fail(c, n, "sha256 '%s' is not a SHA-256 digest (64 hex digits)", quote(v, len, qb, sizeof(qb)));
    for (size_t i = 0; i < 64; i++)
        d[i] = (v[i] >= 'A' && v[i] <= 'F') ? (char)(v[i] - 'A' + 'a') : v[i];
    d[64] = '\0';
    if (!larder_is_sha256_hex(d))
        return fail(c, n, "sha256 '%s' is not a SHA-256 digest (64 hex digits)", quote(v, len, qb, sizeof(qb)));
    if (!(*out = strdup(d)))
        return fail(c, n, "out of memory");
    return 0;
}

static int add_item(ctx_t *c, const yaml_node_t *n, int proto, const char *ref, size_t len, char *sha256)
{
    larder_seed_spec_t *s = c->spec;
    if (s->nitems == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        larder_seed_item_t *ni = realloc(s->items, ncap * sizeof(*ni));
        if (!ni) {
            free(sha256);
            return fail(c, n, "out of memory");
        }
        s->items = ni;
        c->cap = ncap;
    }
    char *r = malloc(len + 1);
    if (!r) {
        free(sha256);
        return fail(c, n, "out of memory");
    }
    memcpy(r, ref, len);
    r[len] = '\0';
    s->items[s->nitems++] = (larder_seed_item_t){.proto = proto, .ref = r, .sha256 = sha256};
    return 0;
}

/* {path: ..., sha256: ...} */
static int parse_item_map(ctx_t *c, const yaml_node_t *item, int proto)
{
    char qb[300];
    const yaml_node_t *path = NULL;
    char *sha256 = NULL;
    int have_sha256 = 0;
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key, item), *v = k ? node_at(c, p->value, k) : NULL;
        if (!v)
            goto bad;
        const char *kv = scalar(c, k, "key");
        if (!kv)
            goto bad;
        if (!strcmp(kv, "path") && k->data.scalar.length == 4) {
            if (path) {
                fail(c, k, "duplicate key 'path' in %s item", larder_proto_name(proto));
                goto bad;
            }
            path = v;
        } else if (!strcmp(kv, "sha256") && k->data.scalar.length == 6) {
            if (have_sha256++) {
                fail(c, k, "duplicate key 'sha256' in %s item", larder_proto_name(proto));
                goto bad;
            }
            if (get_sha256(c, v, &sha256) < 0)
                goto bad;
        } else {
            fail(c, k, "unknown key '%s' in %s item (expected path, sha256)",
                 quote(kv, k->data.scalar.length, qb, sizeof(qb)), larder_proto_name(proto));
            goto bad;
        }
    }
    if (!path) {
        fail(c, item, "%s item: 'path' is required", larder_proto_name(proto));
        goto bad;
    }
    const char *ref = scalar(c, path, "path");
    if (ref && is_null(path)) {
        fail(c, path, "empty item");
        goto bad;
    }
    if (!ref || check_ref(c, path, ref, path->data.scalar.length) < 0)
        goto bad;
    return add_item(c, path, proto, ref, path->data.scalar.length, sha256);
bad:
    free(sha256);
    return -1;
}

static int parse_section(ctx_t *c, const yaml_node_t *n, int proto)
{
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "section '%s': expected a list of items, got %s", larder_proto_name(proto), type_name(n));
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
        yaml_node_t *item = node_at(c, *i, n);
        if (!item)
            return -1;
        if (item->type == YAML_MAPPING_NODE) {
            if (parse_item_map(c, item, proto) < 0)
                return -1;
        } else if (item->type == YAML_SCALAR_NODE) {
            const char *ref = (const char *)item->data.scalar.value;
            if (is_null(item))
                return fail(c, item, "empty item");
            if (check_ref(c, item, ref, item->data.scalar.length) < 0 ||
                add_item(c, item, proto, ref, item->data.scalar.length, NULL) < 0)
                return -1;
        } else {
            return fail(c, item, "%s item: expected a path or {path, sha256}, got a list", larder_proto_name(proto));
        }
    }
    return 0;
}

static int add_string(larder_seed_strings_t *s, const char *v, size_t len)
{
    char **nv = realloc(s->v, (s->n + 1) * sizeof(*nv));
    if (!nv)
        return -1;
    s->v = nv;
    if (!(s->v[s->n] = strndup(v, len)))
        return -1;
    s->n++;
    return 0;
}

static void free_strings(larder_seed_strings_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* a list of scalars; `ok` validates each (NULL = any printable) */
static int parse_strings(ctx_t *c, const yaml_node_t *n, const char *what, larder_seed_strings_t *out,
                         int (*ok)(const char *, size_t))
{
    char qb[300];
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "%s: expected a list, got %s", what, type_name(n));
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
        yaml_node_t *item = node_at(c, *i, n);
        if (!item)
            return -1;
        const char *v = scalar(c, item, what);
        if (!v)
            return -1;
        size_t len = item->data.scalar.length;
        if (is_null(item) || len == 0)
            return fail(c, item, "%s: empty item", what);
        if (check_ref(c, item, v, len) < 0)
            return -1;
        if (ok && !ok(v, len))
            return fail(c, item, "%s: '%s' is not valid", what, quote(v, len, qb, sizeof(qb)));
        if (add_string(out, v, len) < 0)
            return fail(c, item, "out of memory");
    }
    return 0;
}

static int pyver_ok(const char *s, size_t len)
{
    int major, minor;
    char tail;
    char buf[16];
    if (len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    return sscanf(buf, "%d.%d%c", &major, &minor, &tail) == 2 && major >= 2 && major <= 9 && minor >= 0 && minor < 100;
}

static int platform_ok(const char *s, size_t len)
{
    if (len > 100)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* pypi: {python_versions, platforms, requirements, requirement_files} */
static int word_ok(const char *s, size_t len)
{
    if (len == 0 || len > 100)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || strchr("-._+~/", s[i])))
            return 0;
    return 1;
}

static int pkgname_ok(const char *s, size_t len)
{
    if (len == 0 || len > 100)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || strchr("-.+", s[i])))
            return 0;
    return 1;
}

/* apt: {repositories: [{url, suite, components, architectures, signed_by}], packages: [names]} */
static int parse_apt(ctx_t *c, const yaml_node_t *n)
{
    char qb[300];
    if (is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "section 'apt': expected a mapping (repositories: [...], packages: [...]), got %s",
                    type_name(n));
    larder_seed_strings_t pkgs = {0};
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key, n), *v = k ? node_at(c, p->value, k) : NULL;
        if (!v)
            goto bad;
        const char *kv = scalar(c, k, "key");
        if (!kv)
            goto bad;
        if (!strcmp(kv, "packages")) {
            if (parse_strings(c, v, "apt.packages", &pkgs, pkgname_ok) < 0)
                goto bad;
        } else if (!strcmp(kv, "repositories")) {
            if (v->type != YAML_SEQUENCE_NODE) {
                fail(c, v, "apt.repositories: expected a list of {url, suite, components, architectures}");
                goto bad;
            }
            for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top; i++) {
                yaml_node_t *r = node_at(c, *i, v);
                if (!r)
                    goto bad;
                if (r->type != YAML_MAPPING_NODE) {
                    fail(c, r, "apt.repositories: each repository is a mapping {url, suite, components, "
                               "architectures, signed_by}");
                    goto bad;
                }
                char url[1100] = "", suite[110] = "", comps[600] = "", archs[300] = "", signed_by[1100] = "-";
                for (yaml_node_pair_t *q = r->data.mapping.pairs.start; q < r->data.mapping.pairs.top; q++) {
                    yaml_node_t *rk = node_at(c, q->key, r), *rv = rk ? node_at(c, q->value, rk) : NULL;
                    if (!rv)
                        goto bad;
                    const char *rkv = scalar(c, rk, "key");
                    if (!rkv)
                        goto bad;
                    if (!strcmp(rkv, "components") || !strcmp(rkv, "architectures")) {
                        larder_seed_strings_t l = {0};
                        if (rv->type == YAML_SCALAR_NODE) {
                            const char *sv = scalar(c, rv, rkv);
                            if (!sv || add_string(&l, sv, strlen(sv)) < 0)
                                goto bad;
                        } else if (parse_strings(c, rv, rkv, &l, word_ok) < 0) {
                            free_strings(&l);
                            goto bad;
                        }
                        char *dst = !strcmp(rkv, "components") ? comps : archs;
                        size_t cap = !strcmp(rkv, "components") ? sizeof(comps) : sizeof(archs);
                        dst[0] = 0;
                        for (size_t j = 0; j < l.n; j++) {
                            if (!word_ok(l.v[j], strlen(l.v[j])) || strlen(dst) + strlen(l.v[j]) + 2 > cap) {
                                fail(c, rv, "apt.repositories: '%s' is not a valid %s", l.v[j], rkv);
                                free_strings(&l);
                                goto bad;
                            }
                            size_t dl = strlen(dst);
                            snprintf(dst + dl, cap - dl, "%s%s", j ? "," : "", l.v[j]);
                        }
                        free_strings(&l);
                    } else if (!strcmp(rkv, "url") || !strcmp(rkv, "suite") || !strcmp(rkv, "signed_by")) {
                        const char *sv = scalar(c, rv, rkv);
                        if (!sv)
                            goto bad;
                        size_t sl = strlen(sv);
                        char *dst = !strcmp(rkv, "url") ? url : !strcmp(rkv, "suite") ? suite : signed_by;
                        size_t cap = !strcmp(rkv, "url") ? sizeof(url) : !strcmp(rkv, "suite") ? sizeof(suite)
                                                                                                : sizeof(signed_by);
                        int okv = sl > 0 && sl < cap && !strpbrk(sv, " \t\n'\"");
                        if (okv && !strcmp(rkv, "url"))
                            okv = !strncmp(sv, "http://", 7) || !strncmp(sv, "https://", 8);
                        if (okv && !strcmp(rkv, "suite"))
                            okv = word_ok(sv, sl);
                        if (!okv) {
                            fail(c, rv, "apt.repositories: '%s' is not a valid %s%s", quote(sv, sl, qb, sizeof(qb)),
                                 rkv, !strcmp(rkv, "url") ? " (an http:// or https:// URL)" : "");
                            goto bad;
                        }
                        memcpy(dst, sv, sl + 1);
                    } else {
                        fail(c, rk, "unknown key '%s' in an apt repository (expected url, suite, components, "
                                    "architectures, signed_by)",
                             quote(rkv, rk->data.scalar.length, qb, sizeof(qb)));
                        goto bad;
                    }
                }
                if (!url[0] || !suite[0]) {
                    fail(c, r, "apt.repositories: url and suite are required");
                    goto bad;
                }
                char line[3300];
                snprintf(line, sizeof(line), "%s %s %s %s %s", url, suite, comps[0] ? comps : "main",
                         archs[0] ? archs : "amd64", signed_by);
                if (add_string(&c->spec->apt_repos, line, strlen(line)) < 0) {
                    fail(c, r, "out of memory");
                    goto bad;
                }
            }
        } else {
            fail(c, k, "unknown key '%s' in apt (expected repositories, packages)",
                 quote(kv, k->data.scalar.length, qb, sizeof(qb)));
            goto bad;
        }
    }
    if (pkgs.n) {
        char joined[8192] = "";
        for (size_t i = 0; i < pkgs.n; i++) {
            if (strlen(joined) + strlen(pkgs.v[i]) + 2 > sizeof(joined)) {
                fail(c, n, "apt.packages: too many packages in one spec");
                goto bad;
            }
            size_t jl = strlen(joined);
            snprintf(joined + jl, sizeof(joined) - jl, "%s%s", i ? " " : "", pkgs.v[i]);
        }
        if (add_item(c, n, LARDER_PROTO_APT, joined, strlen(joined), NULL) < 0)
            goto bad;
    }
    free_strings(&pkgs);
    return 0;
bad:
    free_strings(&pkgs);
    return -1;
}

static int platform_ok2(const char *s, size_t len)
{
    size_t slashes = 0;
    if (len < 3 || len > 100)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '/')
            slashes++;
        else if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    }
    return slashes == 1 || slashes == 2;
}

/* A protocol section made of string lists: one key whose strings are the protocol's items, the others options of
 * the spec. Keys that name local files (client_only) are read by `larder seed` and never accepted by the daemon. */
typedef struct list_key {
    const char *key;
    ptrdiff_t spec_off; /* offset of the larder_seed_strings_t in larder_seed_spec_t; -1: the section's items */
    int client_only;
    int (*ok)(const char *, size_t);
} list_key_t;

typedef struct list_section {
    int proto;
    const char *shape; /* for the "expected a mapping (...)" message */
    const list_key_t *keys;
} list_section_t;

static int parse_list_section(ctx_t *c, const yaml_node_t *n, const list_section_t *sec, int client)
{
    char qb[300], what[96];
    const char *name = larder_proto_name(sec->proto);
    const char *items_key = NULL;
    for (const list_key_t *lk = sec->keys; lk->key; lk++)
        if (lk->spec_off < 0)
            items_key = lk->key;
    if (is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "section '%s': expected a mapping (%s), got %s", name, sec->shape, type_name(n));
    larder_seed_strings_t items = {0};
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key, n), *v = k ? node_at(c, p->value, k) : NULL;
        if (!v)
            goto bad;
        const char *kv = scalar(c, k, "key");
        if (!kv)
            goto bad;
        const list_key_t *lk = sec->keys;
        while (lk->key && strcmp(kv, lk->key) != 0)
            lk++;
        if (!lk->key) {
            char expected[200] = "";
            for (const list_key_t *e = sec->keys; e->key; e++) {
                size_t l = strlen(expected);
                snprintf(expected + l, sizeof(expected) - l, "%s%s", l ? ", " : "", e->key);
            }
            fail(c, k, "unknown key '%s' in %s (expected %s)", quote(kv, k->data.scalar.length, qb, sizeof(qb)), name,
                 expected);
            goto bad;
        }
        if (lk->client_only && !client) {
            fail(c, k, "%s.%s must be expanded by `larder seed` (it reads the files); post %s instead", name, lk->key,
                 items_key ? items_key : "items");
            goto bad;
        }
        snprintf(what, sizeof(what), "%s.%s", name, lk->key);
        larder_seed_strings_t *dest =
            lk->spec_off < 0 ? &items : (larder_seed_strings_t *)(void *)((char *)c->spec + lk->spec_off);
        if (parse_strings(c, v, what, dest, lk->ok) < 0)
            goto bad;
    }
    for (size_t i = 0; i < items.n; i++)
        if (add_item(c, n, sec->proto, items.v[i], strlen(items.v[i]), NULL) < 0)
            goto bad;
    free_strings(&items);
    return 0;
bad:
    free_strings(&items);
    return -1;
}

#define SPEC_LIST(field) ((ptrdiff_t)offsetof(larder_seed_spec_t, field))
/* pypi: {requirements, requirement_files, python_versions, platforms} */
static const list_key_t pypi_keys[] = {{"requirements", -1, 0, NULL},
                                       {"requirement_files", SPEC_LIST(pypi_requirement_files), 1, NULL},
                                       {"python_versions", SPEC_LIST(pypi_python_versions), 0, pyver_ok},
                                       {"platforms", SPEC_LIST(pypi_platforms), 0, platform_ok},
                                       {NULL, 0, 0, NULL}};
/* npm: {packages: ["name@version"], lockfiles: [package-lock.json]} */
static const list_key_t npm_keys[] = {
    {"packages", -1, 0, NULL}, {"lockfiles", SPEC_LIST(npm_lockfiles), 1, NULL}, {NULL, 0, 0, NULL}};
/* gems: {gems: ["name:version"], lockfiles: [Gemfile.lock]} */
static const list_key_t gems_keys[] = {
    {"gems", -1, 0, NULL}, {"lockfiles", SPEC_LIST(gems_lockfiles), 1, NULL}, {NULL, 0, 0, NULL}};
/* oci: {images: [refs], platforms: [os/arch]} */
static const list_key_t oci_keys[] = {
    {"images", -1, 0, NULL}, {"platforms", SPEC_LIST(oci_platforms), 0, platform_ok2}, {NULL, 0, 0, NULL}};
static const list_section_t list_sections[] = {
    {LARDER_PROTO_PYPI, "requirements: [...], python_versions: [...]", pypi_keys},
    {LARDER_PROTO_NPM, "packages: [...], lockfiles: [...]", npm_keys},
    {LARDER_PROTO_GEMS, "gems: [...], lockfiles: [...]", gems_keys},
    {LARDER_PROTO_OCI, "images: [...], platforms: [...]", oci_keys},
};

static int pin_set_ok(const char *s, size_t len)
{
    if (len < 1 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static int parse_root(ctx_t *c, const yaml_node_t *root, int flags)
{
    char qb[300];
    unsigned seen = 0;
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, "a seed spec is a mapping (pin_set: NAME, files: [...]), got %s", type_name(root));
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key, root), *v = k ? node_at(c, p->value, k) : NULL;
        if (!v)
            return -1;
        const char *kv = scalar(c, k, "key");
        if (!kv)
            return -1;
        size_t klen = k->data.scalar.length;
        int proto = strlen(kv) == klen ? larder_proto_from_name(kv) : -1;
        int slot = proto >= 0 ? proto : (strlen(kv) == klen && !strcmp(kv, "pin_set")) ? LARDER_NPROTO : -1;
        if (slot < 0)
            return fail(c, k, "unknown key '%s' (expected pin_set or a protocol section such as files)",
                        quote(kv, klen, qb, sizeof(qb)));
        if (seen & (1u << slot))
            return fail(c, k, "duplicate key '%s'", kv);
        seen |= 1u << slot;
        if (slot == LARDER_NPROTO) {
            const char *ps = v->type == YAML_SCALAR_NODE && !is_null(v) ? (const char *)v->data.scalar.value : NULL;
            if (!ps || !pin_set_ok(ps, v->data.scalar.length))
                return fail(c, v, "pin_set must be 1-64 of A-Z a-z 0-9 . _ -%s%s%s", ps ? " (got '" : "",
                            ps ? quote(ps, v->data.scalar.length, qb, sizeof(qb)) : "", ps ? "')" : "");
            if (!(c->spec->pin_set = strdup(ps)))
                return fail(c, v, "out of memory");
        } else if (proto == LARDER_PROTO_APT) {
            if (parse_apt(c, v) < 0)
                return -1;
        } else if (proto != LARDER_PROTO_FILES) {
            const list_section_t *sec = NULL;
            for (size_t i = 0; i < sizeof(list_sections) / sizeof(list_sections[0]); i++)
                if (list_sections[i].proto == proto)
                    sec = &list_sections[i];
            if (!sec)
                return fail(c, k, "section '%s' is not supported by this version yet", kv);
            if (parse_list_section(c, v, sec, flags & LARDER_SEED_CLIENT) < 0)
                return -1;
        } else if (parse_section(c, v, proto) < 0) {
            return -1;
        }
    }
    if (!c->spec->pin_set)
        return fail(c, root, "pin_set is required (the name of the pin set that will keep these items)");
    if (c->spec->nitems == 0 && c->spec->pypi_requirement_files.n == 0 && c->spec->npm_lockfiles.n == 0 &&
        c->spec->gems_lockfiles.n == 0)
        return fail(c, root, "nothing to seed (no items in any section)");
    return 0;
}

larder_seed_spec_t *larder_seed_parse(const char *text, size_t len, char *err, size_t errlen)
{
    return larder_seed_parse_ex(text, len, 0, err, errlen);
}

larder_seed_spec_t *larder_seed_parse_ex(const char *text, size_t len, int flags, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    larder_seed_spec_t *spec = calloc(1, sizeof(*spec));
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int ok = 0, have_doc = 0;
    if (!spec || !yaml_parser_initialize(&parser)) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        free(spec);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), text ? len : 0);
    if (!yaml_parser_load(&parser, &doc))
        goto syntax;
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || is_null(root)) {
        if (err && errlen)
            snprintf(err, errlen, "line 1: the seed spec is empty (it needs pin_set and a files list)");
        goto out;
    }
    if (!yaml_parser_load(&parser, &extra))
        goto syntax;
    yaml_node_t *r2 = yaml_document_get_root_node(&extra);
    size_t line2 = r2 ? r2->start_mark.line + 1 : 0;
    yaml_document_delete(&extra);
    if (r2) {
        if (err && errlen)
            snprintf(err, errlen, "line %zu: only one YAML document is allowed", line2);
        goto out;
    }
    ctx_t c = {.doc = &doc, .err = err, .errlen = errlen, .spec = spec};
    size_t nnodes = (size_t)(doc.nodes.top - doc.nodes.start);
    if (!(c.visited = calloc(nnodes ? nnodes : 1, 1))) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        goto out;
    }
    c.visited[0] = 1; /* the root */
    int r = parse_root(&c, root, flags);
    if (r == 0 && !c.failed && !spec->pypi_python_versions.n)
        r = add_string(&spec->pypi_python_versions, "3.11", 4);
    if (r == 0 && !c.failed && !spec->oci_platforms.n)
        r = add_string(&spec->oci_platforms, "linux/amd64", 11);
    if (r == 0 && !c.failed && !spec->pypi_platforms.n)
        r = add_string(&spec->pypi_platforms, "manylinux2014_x86_64", 20);
    free(c.visited);
    ok = r == 0 && !c.failed;
    goto out;
syntax:
    if (err && errlen) {
        if (parser.error == YAML_MEMORY_ERROR)
            snprintf(err, errlen, "out of memory");
        else if (parser.error == YAML_READER_ERROR)
            snprintf(err, errlen, "byte %zu: %s (a seed spec must be UTF-8 text)", parser.problem_offset,
                     parser.problem ? parser.problem : "unreadable input");
        else
            snprintf(err, errlen, "line %zu: YAML syntax error: %s%s%s%s", parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "unknown problem", parser.context ? " (" : "",
                     parser.context ? parser.context : "", parser.context ? ")" : "");
    }
out:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (!ok) {
        if (err && errlen && !err[0])
            snprintf(err, errlen, "invalid seed spec");
        larder_seed_free(spec);
        return NULL;
    }
    return spec;
}

void larder_seed_free(larder_seed_spec_t *spec)
{
    if (!spec)
        return;
    for (size_t i = 0; i < spec->nitems; i++) {
        free(spec->items[i].ref);
        free(spec->items[i].sha256);
    }
    free(spec->items);
    free(spec->pin_set);
    free_strings(&spec->pypi_python_versions);
    free_strings(&spec->pypi_platforms);
    free_strings(&spec->pypi_requirement_files);
    free_strings(&spec->npm_lockfiles);
    free_strings(&spec->apt_repos);
    free_strings(&spec->oci_platforms);
    free_strings(&spec->gems_lockfiles);
    free(spec);
}

int larder_seed_append(larder_seed_spec_t *spec, int proto, const char *ref, const char *sha256)
{
    larder_seed_item_t *ni = realloc(spec->items, (spec->nitems + 1) * sizeof(*ni));
    if (!ni)
        return -1;
    spec->items = ni;
    ni[spec->nitems] = (larder_seed_item_t){.proto = proto, .ref = strdup(ref), .sha256 = sha256 ? strdup(sha256) : NULL};
    spec->nitems++;
    return 0;
}

/* a YAML double-quoted scalar (valid JSON string syntax too) */
static void emit_str(FILE *f, const char *s)
{
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

char *larder_seed_emit(const larder_seed_spec_t *spec)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    fprintf(f, "pin_set: ");
    emit_str(f, spec->pin_set);
    fputc('\n', f);
    for (int p = 0; p < LARDER_NPROTO; p++) {
        int any = 0;
        for (size_t i = 0; i < spec->nitems; i++)
            any |= spec->items[i].proto == p;
        if (!any)
            continue;
        if (p == LARDER_PROTO_PYPI) {
            fprintf(f, "pypi:\n  python_versions: [");
            for (size_t i = 0; i < spec->pypi_python_versions.n; i++) {
                fputs(i ? ", " : "", f);
                emit_str(f, spec->pypi_python_versions.v[i]);
            }
            fprintf(f, "]\n  platforms: [");
            for (size_t i = 0; i < spec->pypi_platforms.n; i++) {
                fputs(i ? ", " : "", f);
                emit_str(f, spec->pypi_platforms.v[i]);
            }
            fprintf(f, "]\n  requirements:\n");
        } else if (p == LARDER_PROTO_NPM) {
            fprintf(f, "npm:\n  packages:\n");
        } else if (p == LARDER_PROTO_GEMS) {
            fprintf(f, "gems:\n  gems:\n");
        } else if (p == LARDER_PROTO_OCI) {
            fprintf(f, "oci:\n  platforms: [");
            for (size_t i = 0; i < spec->oci_platforms.n; i++) {
                fputs(i ? ", " : "", f);
                emit_str(f, spec->oci_platforms.v[i]);
            }
            fprintf(f, "]\n  images:\n");
        } else if (p == LARDER_PROTO_APT) {
            fprintf(f, "apt:\n  repositories:\n");
            for (size_t i = 0; i < spec->apt_repos.n; i++) {
                char line[4096], *sv;
                snprintf(line, sizeof(line), "%s", spec->apt_repos.v[i]);
                char *url = strtok_r(line, " ", &sv), *suite = strtok_r(NULL, " ", &sv);
                char *comps = strtok_r(NULL, " ", &sv), *archs = strtok_r(NULL, " ", &sv);
                char *sb = strtok_r(NULL, " ", &sv);
                fprintf(f, "    - url: ");
                emit_str(f, url ? url : "");
                fprintf(f, "\n      suite: ");
                emit_str(f, suite ? suite : "");
                fprintf(f, "\n      components: [%s]\n      architectures: [%s]\n", comps ? comps : "main",
                        archs ? archs : "amd64");
                if (sb && strcmp(sb, "-") != 0) {
                    fprintf(f, "      signed_by: ");
                    emit_str(f, sb);
                    fputc('\n', f);
                }
            }
            fprintf(f, "  packages:\n");
            for (size_t i = 0; i < spec->nitems; i++) {
                if (spec->items[i].proto != p)
                    continue;
                char names[8192], *sv;
                snprintf(names, sizeof(names), "%s", spec->items[i].ref);
                for (char *nm = strtok_r(names, " ", &sv); nm; nm = strtok_r(NULL, " ", &sv))
                    fprintf(f, "    - %s\n", nm);
            }
            continue;
        } else {
            fprintf(f, "%s:\n", larder_proto_name(p));
        }
        for (size_t i = 0; i < spec->nitems; i++) {
            const larder_seed_item_t *it = &spec->items[i];
            if (it->proto != p)
                continue;
            fputs(p == LARDER_PROTO_PYPI || p == LARDER_PROTO_NPM || p == LARDER_PROTO_OCI || p == LARDER_PROTO_GEMS
                      ? "    - "
                      : "  - ",
                  f);
            if (it->sha256) {
                fputs("{path: ", f);
                emit_str(f, it->ref);
                fprintf(f, ", sha256: %s}\n", it->sha256);
            } else {
                emit_str(f, it->ref);
                fputc('\n', f);
            }
        }
    }
    fclose(f);
    return out;
}
