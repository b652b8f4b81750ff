/* module.c - the oci module's declaration: its config section (oci.registries, parsed here with the core's
 * helpers), its seed section (images: [...], platforms: [...]) and its handlers (oci.c). */
#include "internal.h"
#include "module.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void release_registries(void *field, void *base)
{
    larder_oci_conf_t *pc = base;
    (void)field;
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
static int parse_registries(larder_conf_t *c, const yaml_node_t *n, const char *rkey, void *field, void *base)
{
    larder_oci_conf_t *pc = base;
    (void)rkey;
    char qb[300];
    release_registries(field, base);
    if (larder_conf_is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return larder_conf_fail(c, n, "key 'oci.registries': expected a mapping of registry name to URL, got %s", larder_conf_type_name(n));
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    pc->registries = calloc(count ? count : 1, sizeof(*pc->registries));
    if (!pc->registries)
        return larder_conf_fail(c, n, "out of memory");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = larder_conf_node(c, p->key, n), *v = k ? larder_conf_node(c, p->value, k) : NULL;
        if (!v)
            return -1;
        const char *kv = larder_conf_scalar(c, k, "oci.registries", "a registry name");
        if (!kv)
            return -1;
        size_t kl = strlen(kv);
        int ok = kl > 0 && kl < 256;
        for (size_t i = 0; ok && i < kl; i++)
            ok = isalnum((unsigned char)kv[i]) || kv[i] == '.' || kv[i] == '-' || kv[i] == ':' || kv[i] == '_';
        if (!ok)
            return larder_conf_fail(c, k, "key 'oci.registries': '%s' is not a registry name (host or host:port)",
                        larder_conf_quote(kv, kl, qb, sizeof(qb)));
        char key[320];
        snprintf(key, sizeof(key), "oci.registries.%s", kv);
        larder_oci_registry_t *r = &pc->registries[pc->nregistries++];
        if (!(r->name = strdup(kv)))
            return larder_conf_fail(c, k, "out of memory");
        for (char *q = r->name; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        if (v->type == YAML_MAPPING_NODE) {
            static const char *const names[] = {"url", "username", "password", NULL};
            larder_conf_iter_t it;
            yaml_node_t *vv;
            int which, rr;
            larder_conf_map_begin(c, v, key, &it);
            while ((rr = larder_conf_map_next(c, &it, names, key, &which, &vv)) > 0) {
                char sk[400];
                snprintf(sk, sizeof(sk), "%s.%s", key, names[which]);
                if (which == 0 && larder_conf_url(c, vv, sk, 0, 0, &r->url) < 0)
                    return -1;
                if (which == 1 && larder_conf_string(c, vv, sk, 1, &r->username) < 0)
                    return -1;
                if (which == 2 && larder_conf_string(c, vv, sk, 1, &r->password) < 0)
                    return -1;
            }
            if (rr < 0)
                return -1;
            if (!r->url)
                return larder_conf_fail(c, v, "key '%s': url is required", key);
        } else if (larder_conf_url(c, v, key, 0, 0, &r->url) < 0) {
            return -1;
        }
        size_t ul = strlen(r->url);
        while (ul > 0 && r->url[ul - 1] == '/')
            r->url[--ul] = 0;
    }
    return 0;
}

static void print_registries(FILE *f, const void *field, const void *base, int indent)
{
    const larder_oci_conf_t *pc = base;
    (void)field;
    for (size_t i = 0; i < pc->nregistries; i++) {
        const larder_oci_registry_t *r = &pc->registries[i];
        fprintf(f, "\n%*s%s: {url: ", indent + 2, "", r->name);
        larder_conf_print_str(f, r->url);
        if (r->username) {
            fputs(", username: ", f);
            larder_conf_print_str(f, r->username);
        }
        if (r->password) { /* printed like the rest: the file holding it is as readable as this output */
            fputs(", password: ", f);
            larder_conf_print_str(f, r->password);
        }
        fputc('}', f);
    }
    if (!pc->nregistries)
        fputs(" {}", f);
}

/* "os/arch[/variant]" */
static int platform_ok(const char *s, size_t len)
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

static const larder_conf_key_t oci_keys[] = {
    {.name = "registries", .type = LARDER_KEY_CUSTOM, LARDER_KEY_IN_MODULE, offsetof(larder_oci_conf_t, registries),
     .def = "{docker.io: 'https://registry-1.docker.io'}", .shape = "mapping of name to URL or {url, username, password}",
     .doc = "the registries mirrored (only these are contacted)", .parse = parse_registries,
     .print = print_registries, .release = release_registries},
    LARDER_KEYS_END,
};

static const larder_seed_key_t oci_seed_keys[] = {
    {.key = "images", .kind = LARDER_SEED_ITEMS},
    {.key = "platforms", .kind = LARDER_SEED_OPTION, .ok = platform_ok, .def = "linux/amd64"},
    {.key = NULL},
};

const larder_protocol_t larder_protocol_oci = {
    .proto = LARDER_PROTO_OCI,
    .name = "oci",
    .mount = "/v2/",
    .summary = "Docker/OCI registry mirror at /v2/ (docker daemon registry-mirrors, containerd, skopeo)",
    .default_ttl = "1h",
    .default_upstream = "https://registry-1.docker.io/",
    .conf_size = sizeof(larder_oci_conf_t),
    .conf_keys = oci_keys,
    .seed_keys = oci_seed_keys,
    .seed_shape = "images: [...], platforms: [...]",
    .handle = oci_handle,
    .seed = oci_seed,
};
