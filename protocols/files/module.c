/* module.c - the files module's declaration: its config section (files.pins, files.mirrors: parsed here with the
 * core's helpers, so every message names file, line and key), its seed section (the generic list of items or
 * {path, sha256}) and its handlers (files.c). */
#include "internal.h"
#include "module.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void release_pins(void *field, void *base);
static void release_mirrors(void *field, void *base);

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

/* pin and mirror names share one namespace: /files/<name> */
static int name_taken(larder_conf_t *c, const larder_files_conf_t *cfg, const yaml_node_t *n, const char *key, const char *name)
{
    for (size_t i = 0; i < cfg->npins; i++)
        if (cfg->pins[i].name && !strcmp(cfg->pins[i].name, name))
            return larder_conf_fail(c, n, "key '%s': name '%s' is already used by files.pins[%zu]", key, name, i);
    for (size_t i = 0; i < cfg->nmirrors; i++)
        if (cfg->mirrors[i].name && !strcmp(cfg->mirrors[i].name, name))
            return larder_conf_fail(c, n, "key '%s': name '%s' is already used by files.mirrors[%zu]", key, name, i);
    return 0;
}

static int get_name(larder_conf_t *c, const larder_files_conf_t *cfg, const yaml_node_t *n, const char *key, char **out)
{
    char qb[300];
    char *name = NULL;
    if (larder_conf_string(c, n, key, 0, &name) < 0)
        return -1;
    if (!name_ok(name)) {
        larder_conf_fail(c, n,
             "key '%s': '%s' is not a valid name (1-128 of A-Z a-z 0-9 . _ -, not starting with '.', not 'sha256')",
             key, larder_conf_quote(name, strlen(name), qb, sizeof(qb)));
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

static int parse_pins(larder_conf_t *c, const yaml_node_t *n, const char *pkey, void *field, void *base)
{
    larder_files_conf_t *cfg = base;
    (void)pkey;
    release_pins(field, base);
    static const char *const names[] = {"name", "url", "sha256", NULL};
    if (larder_conf_is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return larder_conf_fail(c, n, "key 'files.pins': expected a list of {name, url, sha256}, got %s", larder_conf_type_name(n));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return 0;
    if (!(cfg->pins = calloc(count, sizeof(*cfg->pins))))
        return larder_conf_fail(c, n, "out of memory");
    for (size_t i = 0; i < count; i++) {
        char where[48], key[96], qb[300];
        snprintf(where, sizeof(where), "files.pins[%zu]", i);
        yaml_node_t *item = larder_conf_node(c, n->data.sequence.items.start[i], n);
        if (!item)
            return -1;
        if (item->type != YAML_MAPPING_NODE)
            return larder_conf_fail(c, item, "key '%s': expected a mapping {name, url, sha256}, got %s", where, larder_conf_type_name(item));
        larder_file_pin_t *pin = &cfg->pins[cfg->npins++];
        larder_conf_iter_t it;
        yaml_node_t *v;
        int which, r;
        larder_conf_map_begin(c, item, where, &it);
        while ((r = larder_conf_map_next(c, &it, names, where, &which, &v)) > 0) {
            snprintf(key, sizeof(key), "%s.%s", where, names[which]);
            if (which == 0 && get_name(c, cfg, v, key, &pin->name) < 0)
                return -1;
            if (which == 1 && larder_conf_url(c, v, key, 0, 0, &pin->url) < 0)
                return -1;
            if (which == 2) {
                if (larder_conf_string(c, v, key, 1, &pin->sha256) < 0)
                    return -1;
                if (pin->sha256) {
                    for (char *p = pin->sha256; *p; p++)
                        if (*p >= 'A' && *p <= 'F')
                            *p = (char)(*p - 'A' + 'a');
                    if (!larder_is_sha256_hex(pin->sha256))
                        return larder_conf_fail(c, v, "key '%s': '%s' is not a SHA-256 digest (64 hex digits)", key,
                                    larder_conf_quote(pin->sha256, strlen(pin->sha256), qb, sizeof(qb)));
                }
            }
        }
        if (r < 0)
            return -1;
        if (!pin->name || !pin->url)
            return larder_conf_fail(c, item, "key '%s': '%s' is required", where, pin->name ? "url" : "name");
    }
    return 0;
}

static int parse_mirrors(larder_conf_t *c, const yaml_node_t *n, const char *mkey, void *field, void *base)
{
    larder_files_conf_t *cfg = base;
    (void)mkey;
    release_mirrors(field, base);
    static const char *const names[] = {"name", "url", NULL};
    if (larder_conf_is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return larder_conf_fail(c, n, "key 'files.mirrors': expected a list of {name, url}, got %s", larder_conf_type_name(n));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return 0;
    if (!(cfg->mirrors = calloc(count, sizeof(*cfg->mirrors))))
        return larder_conf_fail(c, n, "out of memory");
    for (size_t i = 0; i < count; i++) {
        char where[48], key[96];
        snprintf(where, sizeof(where), "files.mirrors[%zu]", i);
        yaml_node_t *item = larder_conf_node(c, n->data.sequence.items.start[i], n);
        if (!item)
            return -1;
        if (item->type != YAML_MAPPING_NODE)
            return larder_conf_fail(c, item, "key '%s': expected a mapping {name, url}, got %s", where, larder_conf_type_name(item));
        larder_file_mirror_t *m = &cfg->mirrors[cfg->nmirrors++];
        larder_conf_iter_t it;
        yaml_node_t *v;
        int which, r;
        larder_conf_map_begin(c, item, where, &it);
        while ((r = larder_conf_map_next(c, &it, names, where, &which, &v)) > 0) {
            snprintf(key, sizeof(key), "%s.%s", where, names[which]);
            if (which == 0 && get_name(c, cfg, v, key, &m->name) < 0)
                return -1;
            if (which == 1 && larder_conf_url(c, v, key, 0, 1, &m->prefix) < 0)
                return -1;
        }
        if (r < 0)
            return -1;
        if (!m->name || !m->prefix)
            return larder_conf_fail(c, item, "key '%s': '%s' is required", where, m->name ? "url" : "name");
    }
    return 0;
}


static void print_pins(FILE *f, const void *field, const void *base, int indent)
{
    const larder_files_conf_t *fc = base;
    (void)field;
    for (size_t i = 0; i < fc->npins; i++) {
        fprintf(f, "\n%*s- name: ", indent + 2, "");
        larder_conf_print_str(f, fc->pins[i].name);
        fprintf(f, "\n%*s  url: ", indent + 2, "");
        larder_conf_print_str(f, fc->pins[i].url);
        if (fc->pins[i].sha256)
            fprintf(f, "\n%*s  sha256: %s", indent + 2, "", fc->pins[i].sha256);
    }
    if (!fc->npins)
        fputs(" []", f);
}

static void print_mirrors(FILE *f, const void *field, const void *base, int indent)
{
    const larder_files_conf_t *fc = base;
    (void)field;
    for (size_t i = 0; i < fc->nmirrors; i++) {
        fprintf(f, "\n%*s- name: ", indent + 2, "");
        larder_conf_print_str(f, fc->mirrors[i].name);
        fprintf(f, "\n%*s  url: ", indent + 2, "");
        larder_conf_print_str(f, fc->mirrors[i].prefix);
    }
    if (!fc->nmirrors)
        fputs(" []", f);
}

static void release_pins(void *field, void *base)
{
    larder_files_conf_t *fc = base;
    (void)field;
    for (size_t i = 0; i < fc->npins; i++) {
        free(fc->pins[i].name);
        free(fc->pins[i].url);
        free(fc->pins[i].sha256);
    }
    free(fc->pins);
    fc->pins = NULL;
    fc->npins = 0;
}

static void release_mirrors(void *field, void *base)
{
    larder_files_conf_t *fc = base;
    (void)field;
    for (size_t i = 0; i < fc->nmirrors; i++) {
        free(fc->mirrors[i].name);
        free(fc->mirrors[i].prefix);
    }
    free(fc->mirrors);
    fc->mirrors = NULL;
    fc->nmirrors = 0;
}

#define FILES(f) LARDER_KEY_IN_MODULE, offsetof(larder_files_conf_t, f)
static const larder_conf_key_t files_keys[] = {
    {.name = "pins", .type = LARDER_KEY_CUSTOM, FILES(pins), .shape = "list of {name, url, sha256}",
     .doc = "files served by name at /files/<name>, verified when sha256 is given", .parse = parse_pins,
     .print = print_pins, .release = release_pins},
    {.name = "mirrors", .type = LARDER_KEY_CUSTOM, FILES(mirrors), .shape = "list of {name, url}",
     .doc = "URL prefixes served at /files/<name>/<path>", .parse = parse_mirrors, .print = print_mirrors,
     .release = release_mirrors},
    LARDER_KEYS_END,
};

/* ---- raw input: "URL [sha256]" per line, each under a configured pin or mirror ---- */

static int url_line_ok(const char *s) { return !strncmp(s, "https://", 8) || !strncmp(s, "http://", 7); }

static int detect_urls(const char *text, size_t len) { return larder_text_line_score(text, len, url_line_ok); }

typedef struct url_lines {
    const larder_config_t *cfg;
    larder_seed_spec_t *spec;
    larder_seed_input_report_fn report;
    void *rctx;
    unsigned *errline;
    char *err;
    size_t errlen;
} url_lines_t;

static int url_line(void *ctx, unsigned line, char *s)
{
    url_lines_t *c = ctx;
    char *sv, *url = strtok_r(s, " \t", &sv), *sha = strtok_r(NULL, " \t", &sv);
    if (sha && !strncmp(sha, "sha256:", 7))
        sha += 7;
    if (!url || !url_line_ok(url) || strtok_r(NULL, " \t", &sv) || (sha && !larder_is_sha256_hex(sha))) {
        *c->errline = line;
        snprintf(c->err, c->errlen, "line %u: expected an http(s) URL and optionally its sha256 (64 hex digits)", line);
        return -1;
    }
    char why[300];
    size_t before = c->spec->nitems;
    if (!c->cfg) {
        c->report(c->rctx, line, url, "URLs are mapped to files pins and mirrors by the daemon", 1);
        return 0;
    }
    if (files_pin_spec(c->cfg, c->spec, url, NULL, why, sizeof(why)) < 0) {
        c->report(c->rctx, line, url, "not under a pin or mirror in files.pins / files.mirrors: only those are fetched", 1);
        return 0;
    }
    if (sha && c->spec->nitems > before) {
        larder_seed_item_t *it = &c->spec->items[c->spec->nitems - 1];
        free(it->sha256);
        it->sha256 = strdup(sha);
        for (char *h = it->sha256; h && *h; h++)
            *h = (char)(*h >= 'A' && *h <= 'F' ? *h - 'A' + 'a' : *h);
    }
    return 0;
}

static int expand_urls(const larder_config_t *cfg, larder_seed_spec_t *spec, int proto, const char *text, size_t len,
                       larder_seed_input_report_fn report, void *rctx, unsigned *errline, char *err, size_t errlen)
{
    (void)proto;
    url_lines_t c = {cfg, spec, report, rctx, errline, err, errlen};
    *errline = 0;
    return larder_text_each_line(text, len, url_line, &c) ? -1 : 0;
}

static const larder_seed_input_t files_inputs[] = {
    {.kind = "urls", .detect = detect_urls, .expand = expand_urls},
    {.kind = NULL},
};

/* GET /-/api/v1/upstreams: each mirror's prefix and each pin's URL */
static void files_upstreams(const larder_config_t *cfg, void (*add)(void *, const char *, const char *), void *ctx)
{
    const larder_files_conf_t *fc = larder_proto_conf(cfg, LARDER_PROTO_FILES);
    for (size_t i = 0; fc && i < fc->nmirrors; i++)
        add(ctx, fc->mirrors[i].name, fc->mirrors[i].prefix);
    for (size_t i = 0; fc && i < fc->npins; i++)
        add(ctx, fc->pins[i].name, fc->pins[i].url);
}

/* GET /-/api/v1/info: the names served under /files/ (a pin at /files/<name>, a mirror at /files/<name>/...) */
static void files_client_info(const larder_config_t *cfg, json_t *mine, json_t *top)
{
    const larder_files_conf_t *c = larder_proto_conf(cfg, LARDER_PROTO_FILES);
    json_t *pins = json_array(), *mirrors = json_array();
    for (size_t i = 0; c && i < c->npins; i++)
        json_array_append_new(pins, json_string(c->pins[i].name));
    for (size_t i = 0; c && i < c->nmirrors; i++)
        json_array_append_new(mirrors, json_string(c->mirrors[i].name));
    json_object_set_new(mine, "pins", pins);
    json_object_set_new(mine, "mirrors", mirrors);
    json_object_set_new(top, "files", json_pack("{s:O, s:O}", "pins", pins, "mirrors", mirrors));
}

const larder_protocol_t larder_protocol_files = {
    .proto = LARDER_PROTO_FILES,
    .name = "files",
    .mount = "/files/",
    .summary = "pinned and mirrored files (release tarballs, pyenv/node binaries) at /files/",
    .default_ttl = "1d",
    .conf_size = sizeof(larder_files_conf_t),
    .conf_keys = files_keys,
    .handle = files_handle,
    .seed = files_seed,
    .seed_inputs = files_inputs,
    .pin_spec = files_pin_spec,
    .upstreams = files_upstreams,
    .client_info = files_client_info,
};
