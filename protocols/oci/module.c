/* module.c - the oci module's declaration: its config section (oci.registries, parsed here with the core's
 * helpers), its seed section (images: [...], platforms: [...]) and its handlers (oci.c). */
#include "internal.h"
#include "module.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a registry name: host or host:port */
static int registry_name_ok(const char *s, size_t len)
{
    int ok = len > 0 && len < 256;
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '-' || s[i] == ':' || s[i] == '_';
    return ok;
}

static const larder_conf_endpoint_spec_t registries_spec = {
    .item = "registry", .hint = "host or host:port", .name_ok = registry_name_ok};

/* oci.registries: {name: URL} or {name: {url, username, password}}; replaces the defaults */
static int parse_registries(larder_conf_t *c, const yaml_node_t *n, const char *key, void *field, void *base)
{
    larder_oci_conf_t *pc = base;
    (void)field;
    return larder_conf_endpoints(c, n, key, &registries_spec, &pc->registries, &pc->nregistries);
}

static void print_registries(FILE *f, const void *field, const void *base, int indent)
{
    const larder_oci_conf_t *pc = base;
    (void)field;
    larder_conf_endpoints_print(f, pc->registries, pc->nregistries, indent);
}

static void release_registries(void *field, void *base)
{
    larder_oci_conf_t *pc = base;
    (void)field;
    larder_conf_endpoints_release(&pc->registries, &pc->nregistries);
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

/* ---- raw input: one image reference per line ---- */

static int on_git_host(const char *s)
{
    return !strncmp(s, "github.com/", 11) || !strncmp(s, "gitlab.com/", 11) || !strncmp(s, "bitbucket.org/", 14);
}

static int image_line_ok(const char *s)
{
    if (on_git_host(s))
        return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("._/:@-", *c)))
            return 0;
    return (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9');
}

static int image_line_strong(const char *s) { return image_line_ok(s) && (strchr(s, '/') || strchr(s, ':')); }

static int detect_images(const char *text, size_t len)
{
    int share = larder_text_line_score(text, len, image_line_ok);
    if (share < 100)
        return share * 6 / 10;
    return larder_text_line_score(text, len, image_line_strong) == 100 ? 85 : 60;
}

typedef struct lines_ctx {
    larder_seed_spec_t *spec;
    int proto;
    unsigned *errline;
    char *err;
    size_t errlen;
} lines_ctx_t;

static int image_line(void *ctx, unsigned line, char *s)
{
    lines_ctx_t *c = ctx;
    larder_oci_req_t r;
    char perr[300];
    if (strchr(s, ' ') || strchr(s, '\t') || larder_oci_parse_ref(s, &r, perr, sizeof(perr)) < 0) {
        *c->errline = line;
        snprintf(c->err, c->errlen, "line %u: '%.200s' is not an image reference ([registry/]name[:tag][@sha256:...])%s%s",
                 line, s, strchr(s, ' ') ? "" : ": ", strchr(s, ' ') ? "" : perr);
        return -1;
    }
    if (larder_seed_append(c->spec, c->proto, s, NULL) < 0) {
        snprintf(c->err, c->errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int expand_images(const larder_config_t *cfg, larder_seed_spec_t *spec, int proto, const char *text, size_t len,
                         larder_seed_input_report_fn report, void *rctx, unsigned *errline, char *err, size_t errlen)
{
    (void)cfg, (void)report, (void)rctx;
    lines_ctx_t c = {spec, proto, errline, err, errlen};
    *errline = 0;
    return larder_text_each_line(text, len, image_line, &c) ? -1 : 0;
}

static const larder_seed_input_t oci_inputs[] = {
    {.kind = "images", .detect = detect_images, .expand = expand_images},
    {.kind = NULL},
};

/* a manifest's media type by digest (mt/<registry>/<sha256>): how a manifest asked for by digest is answered */
static void oci_bundle_meta(const char *key, const larder_entry_t *e, void (*add)(void *, const char *, int), void *ctx)
{
    const char *slash = strncmp(key, "m/", 2) == 0 ? strchr(key + 2, '/') : NULL;
    char p[512];
    if (e && slash && snprintf(p, sizeof(p), "mt/%.*s/%s", (int)(slash - key - 2), key + 2, e->digest) < (int)sizeof(p))
        add(ctx, p, 0);
}

/* GET /-/api/v1/upstreams: the registries */
static void oci_upstreams(const larder_config_t *cfg, void (*add)(void *, const char *, const char *), void *ctx)
{
    const larder_oci_conf_t *oc = larder_proto_conf(cfg, LARDER_PROTO_OCI);
    for (size_t i = 0; oc && i < oc->nregistries; i++)
        add(ctx, oc->registries[i].name, oc->registries[i].url);
}

/* GET /-/api/v1/info: the registries clients may pull through, and which one is Docker Hub (the only one docker's
 * registry-mirrors applies to) */
static void oci_client_info(const larder_config_t *cfg, json_t *mine, json_t *top)
{
    const larder_oci_conf_t *c = larder_proto_conf(cfg, LARDER_PROTO_OCI);
    json_t *names = json_array(), *regs = json_array();
    const char *hub = NULL;
    for (size_t i = 0; c && i < c->nregistries; i++) {
        int is_hub = strcmp(c->registries[i].name, "docker.io") == 0;
        if (is_hub)
            hub = c->registries[i].name;
        json_array_append_new(names, json_string(c->registries[i].name));
        json_array_append_new(regs, json_pack("{s:s, s:b}", "name", c->registries[i].name, "docker_hub", is_hub));
    }
    json_object_set_new(mine, "registries", regs);
    json_object_set_new(mine, "docker_hub", hub ? json_string(hub) : json_null());
    json_object_set_new(top, "oci_registries", names);
}

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
    .seed_inputs = oci_inputs,
    .handle = oci_handle,
    .seed = oci_seed,
    .pin_spec = larder_oci_pin_spec,
    .bundle_meta = oci_bundle_meta,
    .upstreams = oci_upstreams,
    .client_info = oci_client_info,
};
