/* pinspec.c - a pin set turned back into the seed spec that makes it again on another appliance (GET
 * /-/api/v1/pins/<set>/spec, and the spec of a recording).
 *
 * The pins of the set are read once, sorted by protocol and key, and each is handed with its entry (or NULL when it
 * is no longer cached) to its module's pin_spec hook, which appends the seed items that fetch it again exactly
 * (module.h). Modules may rely on that order: within a protocol a hook sees the entries whose keys sort before its
 * own already turned into items (an index page after the files it lists). Items that come out twice are kept once.
 * A pin that no hook can express is not dropped silently: it becomes a "# not reproducible" comment line at the top
 * of the spec, with the module's reason. The YAML is larder_seed_emit's, so it parses with larder_seed_parse. This
 * file reads the store and never writes it; it names no protocol. */
#include "pinspec.h"
#include "module.h"
#include "seedspec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pin {
    int proto;
    char *key;
} pin_t;

typedef struct pins {
    pin_t *v;
    size_t n, cap;
    int oom;
} pins_t;

static int collect(void *arg, const char *set, int proto, const char *key)
{
    pins_t *p = arg;
    (void)set;
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 64;
        pin_t *nv = realloc(p->v, ncap * sizeof(*nv));
        if (!nv) {
            p->oom = 1;
            return 1;
        }
        p->v = nv;
        p->cap = ncap;
    }
    if (!(p->v[p->n].key = strdup(key))) {
        p->oom = 1;
        return 1;
    }
    p->v[p->n++].proto = proto;
    return 0;
}

static int pin_order(const void *a, const void *b)
{
    const pin_t *x = a, *y = b;
    if (x->proto != y->proto)
        return x->proto < y->proto ? -1 : 1;
    return strcmp(x->key, y->key);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* drop items equal (protocol, ref, sha256) to an earlier one, keeping the order */
static void dedupe(larder_seed_spec_t *spec)
{
    size_t o = 0;
    for (size_t i = 0; i < spec->nitems; i++) {
        larder_seed_item_t *it = &spec->items[i];
        int dup = 0;
        for (size_t j = 0; j < o && !dup; j++)
            dup = spec->items[j].proto == it->proto && !strcmp(spec->items[j].ref, it->ref) &&
                  same_str(spec->items[j].sha256, it->sha256);
        if (dup) {
            free(it->ref);
            free(it->sha256);
            continue;
        }
        spec->items[o++] = *it;
    }
    spec->nitems = o;
}

/* a comment line: control characters (a key or a reason is one line) become '?' */
static void comment(FILE *f, const char *proto, const char *key, const char *why)
{
    fputs("# not reproducible: ", f);
    const char *parts[3] = {proto, key, why};
    for (int i = 0; i < 3; i++) {
        for (const char *s = parts[i]; *s; s++)
            fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
        fputs(i == 0 ? " " : i == 1 ? ": " : "\n", f);
    }
}

int larder_pins_spec(const larder_config_t *cfg, larder_store_t *st, const char *set, char **out)
{
    *out = NULL;
    pins_t p = {0};
    int r = larder_store_each_pin(st, set, collect, &p);
    if (r == 0 && p.oom)
        r = -ENOMEM;
    if (r == 0 && p.n == 0)
        r = -ENOENT;
    larder_seed_spec_t *spec = r == 0 ? calloc(1, sizeof(*spec)) : NULL;
    char *notes = NULL, *yaml = NULL;
    size_t noteslen = 0;
    FILE *nf = spec ? open_memstream(&notes, &noteslen) : NULL;
    if (r == 0 && (!spec || !nf || !(spec->pin_set = strdup(set))))
        r = -ENOMEM;
    size_t bad = 0;
    if (r == 0) {
        qsort(p.v, p.n, sizeof(*p.v), pin_order);
        for (size_t i = 0; i < p.n; i++) {
            const larder_protocol_t *m = larder_protocol_get(p.v[i].proto);
            char why[512] = "";
            if (!m) {
                comment(nf, "?", p.v[i].key, "a protocol this larder does not know");
                bad++;
                continue;
            }
            if (!m->pin_spec) {
                comment(nf, m->name, p.v[i].key, "this protocol's entries cannot be seeded");
                bad++;
                continue;
            }
            larder_entry_t e;
            int have = larder_store_get(st, p.v[i].proto, p.v[i].key, &e) == 0;
            if (m->pin_spec(cfg, spec, p.v[i].key, have ? &e : NULL, why, sizeof(why)) < 0) {
                comment(nf, m->name, p.v[i].key, why[0] ? why : "cannot be expressed in a seed spec");
                bad++;
            }
            if (have)
                larder_entry_clear(&e);
        }
        dedupe(spec);
        if (larder_seed_apply_defaults(spec) < 0 || !(yaml = larder_seed_emit(spec)))
            r = -ENOMEM;
    }
    if (nf && fclose(nf) != 0 && r == 0)
        r = -ENOMEM;
    if (r == 0) {
        size_t need = strlen(set) + noteslen + strlen(yaml) + 200;
        char *text = malloc(need);
        if (!text) {
            r = -ENOMEM;
        } else {
            snprintf(text, need,
                     "# the seed spec of pin set %s (%zu pinned entries, %zu not reproducible): larder seed it on "
                     "another appliance\n%s%s",
                     set, p.n, bad, notes ? notes : "", yaml);
            *out = text;
        }
    }
    free(yaml);
    free(notes);
    larder_seed_free(spec);
    for (size_t i = 0; i < p.n; i++)
        free(p.v[i].key);
    free(p.v);
    return r;
}
