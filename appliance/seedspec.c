/* seedspec.c - the seed spec: YAML text (from `larder seed` via the admin API) in, a flat list of
 * (protocol, ref, optional sha256) items out.
 *
 * This file only checks shape: a pin_set name, one list per protocol section, each item a string or a
 * {path, sha256} mapping with a sane ref. It never decides whether a ref exists - jobs.c hands every item to its
 * protocol, which resolves it against the config - so the rules here are the ones no protocol could relax: refs
 * are non-empty, relative, bounded and free of control bytes. Each protocol section is its module's: a mapping
 * of the string lists it declares (module.h seed_keys: the items, options with defaults, local files that only
 * `larder seed` reads), a parser of its own (seed_section), or by default a list of items or {path, sha256}.
 * Unknown sections and keys are refused by name, so a spec written for a newer Larder fails loudly instead of
 * seeding half of itself. The text arrives over the network, so the walk visits every YAML node at most once (aliases are
 * refused) and any error frees everything and answers one "line N: ..." message. */
#include "seedspec.h"
#include "config.h"
#include "module.h"
#include "util.h"

#include <stdarg.h>
#include <stddef.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_REF 2048

struct larder_seed_parse {
    yaml_document_t *doc;
    char *err;
    size_t errlen;
    unsigned char *visited;
    int failed;
    larder_seed_spec_t *spec;
    size_t cap;
};
typedef struct larder_seed_parse ctx_t;

/* the first error, "line N: ...": this file calls it fail(); module section parsers, larder_seedp_fail() */
#define fail larder_seedp_fail
int larder_seedp_fail(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
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

/* A protocol section made of string lists (the module's seed_keys): the ITEMS key's strings are the section's
 * items, the others options of the spec. FILES keys name local files: read by `larder seed`, never accepted by the
 * daemon. */
static int parse_list_section(ctx_t *c, const yaml_node_t *n, const larder_protocol_t *m, int client)
{
    char qb[300], what[96];
    const char *name = m->name;
    const char *items_key = NULL;
    for (const larder_seed_key_t *lk = m->seed_keys; lk->key; lk++)
        if (lk->kind == LARDER_SEED_ITEMS)
            items_key = lk->key;
    if (is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "section '%s': expected a mapping (%s), got %s", name, m->seed_shape ? m->seed_shape : "...",
                    type_name(n));
    larder_seed_strings_t items = {0};
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key, n), *v = k ? node_at(c, p->value, k) : NULL;
        if (!v)
            goto bad;
        const char *kv = scalar(c, k, "key");
        if (!kv)
            goto bad;
        const larder_seed_key_t *lk = m->seed_keys;
        while (lk->key && strcmp(kv, lk->key) != 0)
            lk++;
        if (!lk->key) {
            char expected[200] = "";
            for (const larder_seed_key_t *e = m->seed_keys; e->key; e++) {
                size_t l = strlen(expected);
                snprintf(expected + l, sizeof(expected) - l, "%s%s", l ? ", " : "", e->key);
            }
            fail(c, k, "unknown key '%s' in %s (expected %s)", quote(kv, k->data.scalar.length, qb, sizeof(qb)), name,
                 expected);
            goto bad;
        }
        if (lk->kind == LARDER_SEED_FILES && !client) {
            fail(c, k,
                 "%s.%s names files on your machine, which the daemon cannot read: run `larder seed SPEC` where they "
                 "are, paste each file by itself (its kind is detected), or list its items under %s.%s",
                 name, lk->key, name, items_key ? items_key : "items");
            goto bad;
        }
        snprintf(what, sizeof(what), "%s.%s", name, lk->key);
        larder_seed_strings_t *dest =
            lk->kind == LARDER_SEED_ITEMS ? &items : &c->spec->opts[m->proto][lk - m->seed_keys];
        if (parse_strings(c, v, what, dest, lk->ok) < 0)
            goto bad;
    }
    for (size_t i = 0; i < items.n; i++)
        if (add_item(c, n, m->proto, items.v[i], strlen(items.v[i]), NULL) < 0)
            goto bad;
    free_strings(&items);
    return 0;
bad:
    free_strings(&items);
    return -1;
}

/* ---- helpers for a module's own section parser (module.h) ---- */

yaml_node_t *larder_seedp_node(larder_seed_parse_t *p, int id, const yaml_node_t *parent)
{
    return node_at(p, id, parent);
}
const char *larder_seedp_scalar(larder_seed_parse_t *p, const yaml_node_t *n, const char *what)
{
    return scalar(p, n, what);
}
int larder_seedp_strings(larder_seed_parse_t *p, const yaml_node_t *n, const char *what, larder_seed_strings_t *out,
                         int (*ok)(const char *, size_t))
{
    return parse_strings(p, n, what, out, ok);
}
int larder_seedp_item(larder_seed_parse_t *p, const yaml_node_t *n, int proto, const char *ref, size_t len)
{
    return add_item(p, n, proto, ref, len, NULL);
}
larder_seed_spec_t *larder_seedp_spec(larder_seed_parse_t *p) { return p->spec; }

static int parse_root(ctx_t *c, const yaml_node_t *root, int flags)
{
    char qb[300];
    unsigned seen = 0;
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, "a seed spec is a mapping (pin_set: NAME and one section per protocol), got %s",
                    type_name(root));
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key, root), *v = k ? node_at(c, p->value, k) : NULL;
        if (!v)
            return -1;
        const char *kv = scalar(c, k, "key");
        if (!kv)
            return -1;
        size_t klen = k->data.scalar.length;
        int proto = strlen(kv) == klen ? larder_proto_from_name(kv) : -1;
        int slot = proto >= 0 ? proto : (strlen(kv) == klen && !strcmp(kv, "pin_set")) ? LARDER_MAX_PROTO : -1;
        if (slot < 0) {
            char names[256] = "";
            for (int i = 0; i < larder_proto_count(); i++) {
                size_t nl = strlen(names);
                snprintf(names + nl, sizeof(names) - nl, ", %s", larder_proto_name(i));
            }
            return fail(c, k, "unknown key '%s' (expected pin_set%s)", quote(kv, klen, qb, sizeof(qb)), names);
        }
        if (seen & (1u << slot))
            return fail(c, k, "duplicate key '%s'", kv);
        seen |= 1u << slot;
        const larder_protocol_t *m = larder_protocol_get(proto);
        if (slot == LARDER_MAX_PROTO) {
            const char *ps = v->type == YAML_SCALAR_NODE && !is_null(v) ? (const char *)v->data.scalar.value : NULL;
            if (!ps || !larder_pin_set_name_ok(ps, v->data.scalar.length))
                return fail(c, v, "pin_set must be 1-64 of A-Z a-z 0-9 . _ -%s%s%s", ps ? " (got '" : "",
                            ps ? quote(ps, v->data.scalar.length, qb, sizeof(qb)) : "", ps ? "')" : "");
            if (!(c->spec->pin_set = strdup(ps)))
                return fail(c, v, "out of memory");
        } else if (m->seed_section) {
            if (m->seed_section(c, v) < 0 || c->failed)
                return -1;
        } else if (m->seed_keys) {
            if (parse_list_section(c, v, m, flags & LARDER_SEED_CLIENT) < 0)
                return -1;
        } else if (!m->seed) {
            return fail(c, k, "section '%s' cannot be seeded", kv);
        } else if (parse_section(c, v, proto) < 0) {
            return -1;
        }
    }
    if (!c->spec->pin_set)
        return fail(c, root, "pin_set is required (the name of the pin set that will keep these items)");
    if (c->spec->nitems == 0) {
        /* local files to read count as something to seed on the `larder seed` side */
        for (int p = 0; p < larder_proto_count(); p++) {
            const larder_protocol_t *m = larder_protocol_get(p);
            for (int i = 0; m->seed_keys && m->seed_keys[i].key; i++)
                if (m->seed_keys[i].kind == LARDER_SEED_FILES && c->spec->opts[p][i].n)
                    return 0;
        }
        return fail(c, root, "nothing to seed (no items in any section)");
    }
    return 0;
}

/* the declared defaults of options the spec does not give */
int larder_seed_apply_defaults(larder_seed_spec_t *spec)
{
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        for (int i = 0; m->seed_keys && m->seed_keys[i].key; i++) {
            const char *def = m->seed_keys[i].def;
            if (m->seed_keys[i].kind == LARDER_SEED_OPTION && def && !spec->opts[p][i].n &&
                add_string(&spec->opts[p][i], def, strlen(def)) < 0)
                return -1;
        }
    }
    return 0;
}

const larder_seed_strings_t *larder_seed_option(const larder_seed_spec_t *spec, int proto, const char *key)
{
    const larder_protocol_t *m = larder_protocol_get(proto);
    for (int i = 0; m && m->seed_keys && m->seed_keys[i].key; i++)
        if (!strcmp(m->seed_keys[i].key, key))
            return &spec->opts[proto][i];
    return NULL;
}

int larder_seed_strings_add(larder_seed_strings_t *s, const char *v, size_t len) { return add_string(s, v, len); }
void larder_seed_strings_free(larder_seed_strings_t *s) { free_strings(s); }

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
            snprintf(err, errlen, "line 1: the seed spec is empty (it needs pin_set and a protocol section)");
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
    if (r == 0 && !c.failed && larder_seed_apply_defaults(spec) < 0)
        r = fail(&c, root, "out of memory");
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
    for (int p = 0; p < LARDER_MAX_PROTO; p++)
        for (int i = 0; i < LARDER_SEED_MAX_KEYS; i++)
            free_strings(&spec->opts[p][i]);
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

/* a section of string lists: its options, then its items under the ITEMS key */
static void emit_list_section(FILE *f, const larder_seed_spec_t *spec, const larder_protocol_t *m)
{
    const char *items_key = "items";
    fprintf(f, "%s:\n", m->name);
    for (int i = 0; m->seed_keys[i].key; i++) {
        const larder_seed_key_t *k = &m->seed_keys[i];
        if (k->kind == LARDER_SEED_ITEMS)
            items_key = k->key;
        if (k->kind != LARDER_SEED_OPTION)
            continue;
        fprintf(f, "  %s: [", k->key);
        for (size_t j = 0; j < spec->opts[m->proto][i].n; j++) {
            fputs(j ? ", " : "", f);
            larder_conf_print_str(f, spec->opts[m->proto][i].v[j]);
        }
        fprintf(f, "]\n");
    }
    fprintf(f, "  %s:\n", items_key);
}

char *larder_seed_emit(const larder_seed_spec_t *spec)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    fprintf(f, "pin_set: ");
    larder_conf_print_str(f, spec->pin_set);
    fputc('\n', f);
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        int any = 0;
        for (size_t i = 0; i < spec->nitems; i++)
            any |= spec->items[i].proto == p;
        if (!any)
            continue;
        if (m->seed_emit) {
            m->seed_emit(f, spec, p);
            continue;
        }
        if (m->seed_keys)
            emit_list_section(f, spec, m);
        else
            fprintf(f, "%s:\n", m->name);
        for (size_t i = 0; i < spec->nitems; i++) {
            const larder_seed_item_t *it = &spec->items[i];
            if (it->proto != p)
                continue;
            fputs(m->seed_keys ? "    - " : "  - ", f);
            if (it->sha256) {
                fputs("{path: ", f);
                larder_conf_print_str(f, it->ref);
                fprintf(f, ", sha256: %s}\n", it->sha256);
            } else {
                larder_conf_print_str(f, it->ref);
                fputc('\n', f);
            }
        }
    }
    fclose(f);
    return out;
}

/* ---- for `larder seed`'s expanders (module.h) ---- */

void larder_unseedable_report(void *unseedable, const char *what, const char *why, int failed)
{
    const larder_unseedable_t *u = unseedable;
    if (u && u->fn)
        u->fn(u->ctx, u->file, what, why, failed);
}

char *larder_seed_read_file(const char *path, const char *what, size_t *len, char *err, size_t errlen)
{
    char *text = larder_read_file(path, len);
    if (!text)
        snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
    return text;
}

int larder_seed_append_lines(larder_seed_spec_t *spec, int proto, char **lines, size_t n)
{
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        if (r == 0 && larder_seed_append(spec, proto, lines[i], NULL) < 0)
            r = -1;
        free(lines[i]);
    }
    free(lines);
    return r;
}
