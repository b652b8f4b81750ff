/* module.c - the apt module's declaration: its config section (apt.allow, apt.https_hosts), its seed section
 * (repositories: [{url, suite, components, architectures, signed_by}], packages: [...]: parsed and emitted here,
 * the packages becoming one item whose closure is resolved together) and its handlers (proxy.c, seed.c). */
#include "apt.h"
#include "internal.h"
#include "module.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int word_ok(const char *s, size_t len)
{
    if (len == 0 || len > 100)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || strchr("-._+~/", s[i])))
            return 0;
    return 1;
}

/* a package name, or "name[:arch]=version" (one exact version, as a pin set's spec names them) */
static int pkgname_ok(const char *s, size_t len)
{
    if (len == sizeof(LARDER_APT_INDEXES_ONLY) - 1 && !memcmp(s, LARDER_APT_INDEXES_ONLY, len))
        return 1;
    const char *eq = memchr(s, '=', len);
    size_t nl = eq ? (size_t)(eq - s) : len;
    const char *colon = eq ? memchr(s, ':', nl) : NULL;
    if (colon) {
        if (!word_ok(colon + 1, (size_t)(s + nl - colon - 1)) || memchr(colon + 1, '/', (size_t)(s + nl - colon - 1)))
            return 0;
        nl = (size_t)(colon - s);
    }
    if (nl == 0 || nl > 100)
        return 0;
    for (size_t i = 0; i < nl; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || strchr("-.+", s[i])))
            return 0;
    if (!eq)
        return 1;
    size_t vl = len - (size_t)(eq - s) - 1;
    if (vl == 0 || vl > 200)
        return 0;
    for (size_t i = 1; i <= vl; i++)
        if (!(isalnum((unsigned char)eq[i]) || strchr(".+~:-", eq[i])))
            return 0;
    return 1;
}

/* apt: {repositories: [{url, suite, components, architectures, signed_by}], packages: [names]}; each repository
 * becomes one "url suite comp,comp arch,arch signed_by|-" string of the repositories option */
static int parse_apt(larder_seed_parse_t *c, const yaml_node_t *n)
{
    char qb[300];
    larder_seed_strings_t *repos = (larder_seed_strings_t *)larder_seed_option(larder_seedp_spec(c), LARDER_PROTO_APT, "repositories");
    if (larder_conf_is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return larder_seedp_fail(c, n, "section 'apt': expected a mapping (repositories: [...], packages: [...]), got %s",
                    larder_conf_type_name(n));
    larder_seed_strings_t pkgs = {0};
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = larder_seedp_node(c, p->key, n), *v = k ? larder_seedp_node(c, p->value, k) : NULL;
        if (!v)
            goto bad;
        const char *kv = larder_seedp_scalar(c, k, "key");
        if (!kv)
            goto bad;
        if (!strcmp(kv, "packages")) {
            if (larder_seedp_strings(c, v, "apt.packages", &pkgs, pkgname_ok) < 0)
                goto bad;
        } else if (!strcmp(kv, "repositories")) {
            if (v->type != YAML_SEQUENCE_NODE) {
                larder_seedp_fail(c, v, "apt.repositories: expected a list of {url, suite, components, architectures}");
                goto bad;
            }
            for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top; i++) {
                yaml_node_t *r = larder_seedp_node(c, *i, v);
                if (!r)
                    goto bad;
                if (r->type != YAML_MAPPING_NODE) {
                    larder_seedp_fail(c, r, "apt.repositories: each repository is a mapping {url, suite, components, "
                               "architectures, signed_by}");
                    goto bad;
                }
                char url[1100] = "", suite[110] = "", comps[600] = "", archs[300] = "", signed_by[1100] = "-";
                for (yaml_node_pair_t *q = r->data.mapping.pairs.start; q < r->data.mapping.pairs.top; q++) {
                    yaml_node_t *rk = larder_seedp_node(c, q->key, r), *rv = rk ? larder_seedp_node(c, q->value, rk) : NULL;
                    if (!rv)
                        goto bad;
                    const char *rkv = larder_seedp_scalar(c, rk, "key");
                    if (!rkv)
                        goto bad;
                    if (!strcmp(rkv, "components") || !strcmp(rkv, "architectures")) {
                        larder_seed_strings_t l = {0};
                        if (rv->type == YAML_SCALAR_NODE) {
                            const char *sv = larder_seedp_scalar(c, rv, rkv);
                            if (!sv || larder_seed_strings_add(&l, sv, strlen(sv)) < 0)
                                goto bad;
                        } else if (larder_seedp_strings(c, rv, rkv, &l, word_ok) < 0) {
                            larder_seed_strings_free(&l);
                            goto bad;
                        }
                        char *dst = !strcmp(rkv, "components") ? comps : archs;
                        size_t cap = !strcmp(rkv, "components") ? sizeof(comps) : sizeof(archs);
                        dst[0] = 0;
                        for (size_t j = 0; j < l.n; j++) {
                            if (!word_ok(l.v[j], strlen(l.v[j])) || strlen(dst) + strlen(l.v[j]) + 2 > cap) {
                                larder_seedp_fail(c, rv, "apt.repositories: '%s' is not a valid %s", l.v[j], rkv);
                                larder_seed_strings_free(&l);
                                goto bad;
                            }
                            size_t dl = strlen(dst);
                            snprintf(dst + dl, cap - dl, "%s%s", j ? "," : "", l.v[j]);
                        }
                        larder_seed_strings_free(&l);
                    } else if (!strcmp(rkv, "url") || !strcmp(rkv, "suite") || !strcmp(rkv, "signed_by")) {
                        const char *sv = larder_seedp_scalar(c, rv, rkv);
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
                            larder_seedp_fail(c, rv, "apt.repositories: '%s' is not a valid %s%s", larder_conf_quote(sv, sl, qb, sizeof(qb)),
                                 rkv, !strcmp(rkv, "url") ? " (an http:// or https:// URL)" : "");
                            goto bad;
                        }
                        memcpy(dst, sv, sl + 1);
                    } else {
                        larder_seedp_fail(c, rk, "unknown key '%s' in an apt repository (expected url, suite, components, "
                                    "architectures, signed_by)",
                             larder_conf_quote(rkv, rk->data.scalar.length, qb, sizeof(qb)));
                        goto bad;
                    }
                }
                if (!url[0] || !suite[0]) {
                    larder_seedp_fail(c, r, "apt.repositories: url and suite are required");
                    goto bad;
                }
                char line[3300];
                snprintf(line, sizeof(line), "%s %s %s %s %s", url, suite, comps[0] ? comps : "main",
                         archs[0] ? archs : "amd64", signed_by);
                if (larder_seed_strings_add(repos, line, strlen(line)) < 0) {
                    larder_seedp_fail(c, r, "out of memory");
                    goto bad;
                }
            }
        } else {
            larder_seedp_fail(c, k, "unknown key '%s' in apt (expected repositories, packages)",
                 larder_conf_quote(kv, k->data.scalar.length, qb, sizeof(qb)));
            goto bad;
        }
    }
    if (pkgs.n) {
        /* one item: the closure is resolved over all the names at once */
        size_t total = 1;
        for (size_t i = 0; i < pkgs.n; i++)
            total += strlen(pkgs.v[i]) + 1;
        char *joined = malloc(total);
        if (!joined) {
            larder_seedp_fail(c, n, "out of memory");
            goto bad;
        }
        size_t jl = 0;
        for (size_t i = 0; i < pkgs.n; i++)
            jl += (size_t)snprintf(joined + jl, total - jl, "%s%s", i ? " " : "", pkgs.v[i]);
        int r = larder_seedp_item(c, n, LARDER_PROTO_APT, joined, jl);
        free(joined);
        if (r < 0)
            goto bad;
    }
    larder_seed_strings_free(&pkgs);
    return 0;
bad:
    larder_seed_strings_free(&pkgs);
    return -1;
}

static void emit_apt(FILE *f, const larder_seed_spec_t *spec, int p)
{
    const larder_seed_strings_t *repos = larder_seed_option(spec, LARDER_PROTO_APT, "repositories");
    fprintf(f, "apt:\n  repositories:\n");
    for (size_t i = 0; i < repos->n; i++) {
        char line[4096], *sv;
        snprintf(line, sizeof(line), "%s", repos->v[i]);
        char *url = strtok_r(line, " ", &sv), *suite = strtok_r(NULL, " ", &sv);
        char *comps = strtok_r(NULL, " ", &sv), *archs = strtok_r(NULL, " ", &sv);
        char *sb = strtok_r(NULL, " ", &sv);
        fprintf(f, "    - url: ");
        larder_conf_print_str(f, url ? url : "");
        fprintf(f, "\n      suite: ");
        larder_conf_print_str(f, suite ? suite : "");
        /* "-": not known (a pin set's spec with a Release file and no index): the defaults */
        fprintf(f, "\n      components: [%s]\n      architectures: [%s]\n", comps && strcmp(comps, "-") != 0 ? comps : "main",
                archs && strcmp(archs, "-") != 0 ? archs : "amd64");
        if (sb && strcmp(sb, "-") != 0) {
            fprintf(f, "      signed_by: ");
            larder_conf_print_str(f, sb);
            fputc('\n', f);
        }
    }
    fprintf(f, "  packages:\n");
    for (size_t i = 0; i < spec->nitems; i++) {
        if (spec->items[i].proto != p)
            continue;
        char *names = strdup(spec->items[i].ref), *sv;
        for (char *nm = names ? strtok_r(names, " ", &sv) : NULL; nm; nm = strtok_r(NULL, " ", &sv))
            fprintf(f, "    - \"%s\"\n", nm); /* quoted: "name=1:2.0" is a string, never a YAML mapping */
        free(names);
    }
}

/* ---- raw input: an apt package list, with its repositories as sources.list lines ----
 *   deb [arch=amd64,arm64] http://deb.debian.org/debian bookworm main contrib
 *   curl
 *   libssl3=3.0.11-1~deb12u2
 *   zlib1g:arm64          (the architecture is added to the repositories')
 * One item of every package (the closure is resolved over all of them at once), as the apt section does. */

static int apt_list_line_ok(const char *s)
{
    if (!strncmp(s, "deb ", 4))
        return 1;
    size_t n = strlen(s);
    const char *colon = memchr(s, ':', n);
    if (colon && !memchr(s, '=', n)) /* name:arch */
        return word_ok(colon + 1, n - (size_t)(colon - s) - 1) && pkgname_ok(s, (size_t)(colon - s));
    return pkgname_ok(s, n);
}

static int apt_list_line_strong(const char *s)
{
    return !strncmp(s, "deb http", 8) || (apt_list_line_ok(s) && (strchr(s, '=') || strchr(s, ':')));
}

static int detect_apt(const char *text, size_t len)
{
    int share = larder_text_line_score(text, len, apt_list_line_ok);
    if (share < 100)
        return share / 2;
    return larder_text_line_score(text, len, apt_list_line_strong) > 0 ? 90 : 60;
}

typedef struct apt_list {
    larder_seed_strings_t pkgs, repos;
    char archs[200];
    unsigned *errline;
    char *err;
    size_t errlen;
} apt_list_t;

static int add_arch(apt_list_t *c, const char *a, size_t n)
{
    for (const char *p = c->archs; *p;) { /* already there */
        size_t l = strcspn(p, ",");
        if (l == n && !memcmp(p, a, n))
            return 0;
        p += l + (p[l] == ',');
    }
    size_t cl = strlen(c->archs);
    if (cl + n + 2 > sizeof(c->archs))
        return -1;
    snprintf(c->archs + cl, sizeof(c->archs) - cl, "%s%.*s", cl ? "," : "", (int)n, a);
    return 0;
}

static int apt_line(void *ctx, unsigned line, char *s)
{
    apt_list_t *c = ctx;
    if (!strncmp(s, "deb ", 4)) { /* deb [opts] URL SUITE COMPONENT... */
        char *sv, *tok = strtok_r(s + 4, " \t", &sv), comps[1000] = "", archs[200] = "", signed_by[1100] = "-";
        if (tok && tok[0] == '[') { /* options: arch=..., signed-by=... (a keyring on this machine); others ignored */
            for (; tok; tok = strtok_r(NULL, " \t", &sv)) {
                char *o = tok + (tok[0] == '[');
                size_t ol = strlen(o);
                int last = ol && o[ol - 1] == ']';
                if (last)
                    o[--ol] = 0;
                if (!strncmp(o, "arch=", 5))
                    snprintf(archs, sizeof(archs), "%s", o + 5);
                else if (!strncmp(o, "signed-by=", 10) && o[10] && strlen(o + 10) < 1024)
                    snprintf(signed_by, sizeof(signed_by), "%s", o + 10);
                if (last)
                    break;
            }
            tok = tok ? strtok_r(NULL, " \t", &sv) : NULL;
        }
        char *url = tok, *suite = url ? strtok_r(NULL, " \t", &sv) : NULL;
        for (char *comp = suite ? strtok_r(NULL, " \t", &sv) : NULL; comp; comp = strtok_r(NULL, " \t", &sv)) {
            size_t cl = strlen(comps);
            if (!word_ok(comp, strlen(comp)) || cl + strlen(comp) + 2 > sizeof(comps))
                goto bad_deb;
            snprintf(comps + cl, sizeof(comps) - cl, "%s%s", cl ? "," : "", comp);
        }
        if (!url || !suite || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) || strlen(url) > 2000 ||
            !word_ok(suite, strlen(suite)) || (archs[0] && !word_ok(archs, strlen(archs))))
            goto bad_deb;
        size_t ul = strlen(url);
        if (ul > 8 && url[ul - 1] == '/')
            url[ul - 1] = 0;
        char repo[4500];
        snprintf(repo, sizeof(repo), "%s %s %s %s %s", url, suite, comps[0] ? comps : "main", archs[0] ? archs : "-",
                 signed_by);
        if (larder_seed_strings_add(&c->repos, repo, strlen(repo)) < 0)
            goto oom;
        return 0;
    bad_deb:
        *c->errline = line;
        snprintf(c->err, c->errlen, "line %u: a repository is `deb [arch=...] http(s)://URL SUITE COMPONENT...`", line);
        return -1;
    }
    size_t n = strlen(s);
    const char *colon = memchr(s, ':', n);
    if (!apt_list_line_ok(s)) {
        *c->errline = line;
        snprintf(c->err, c->errlen, "line %u: '%.200s' is not a package (name, name=version, name:arch) or a deb line",
                 line, s);
        return -1;
    }
    if (colon && !strchr(s, '=')) { /* name:arch: the name, and the architecture for the repositories */
        if (add_arch(c, colon + 1, n - (size_t)(colon - s) - 1) < 0)
            goto oom;
        n = (size_t)(colon - s);
    }
    if (larder_seed_strings_add(&c->pkgs, s, n) < 0)
        goto oom;
    return 0;
oom:
    snprintf(c->err, c->errlen, "out of memory (or too many architectures)");
    return -1;
}

static int expand_apt_list(const larder_config_t *cfg, larder_seed_spec_t *spec, int proto, const char *text,
                           size_t len, larder_seed_input_report_fn report, void *rctx, unsigned *errline, char *err,
                           size_t errlen)
{
    (void)cfg, (void)report, (void)rctx;
    apt_list_t c = {.errline = errline, .err = err, .errlen = errlen};
    *errline = 0;
    int r = larder_text_each_line(text, len, apt_line, &c) ? -1 : 0;
    if (r == 0 && !c.repos.n) {
        snprintf(err, errlen, "an apt package list needs its repositories: add a line `deb http(s)://URL SUITE "
                              "COMPONENT...` as in sources.list");
        r = -1;
    }
    if (r == 0 && !c.pkgs.n) {
        snprintf(err, errlen, "no package in the list");
        r = -1;
    }
    larder_seed_strings_t *repos = (larder_seed_strings_t *)larder_seed_option(spec, proto, "repositories");
    for (size_t i = 0; r == 0 && i < c.repos.n; i++) {
        /* "url suite comps archs": the architectures given (else amd64) and those the packages name */
        char url[2100], suite[200], comps[1000], archs[200], sb[1100], line[4700];
        if (sscanf(c.repos.v[i], "%2099s %199s %999s %199s %1099s", url, suite, comps, archs, sb) != 5) {
            r = -1;
            break;
        }
        apt_list_t all = {.archs = ""};
        snprintf(all.archs, sizeof(all.archs), "%s", strcmp(archs, "-") ? archs : "amd64");
        for (const char *p = c.archs; *p;) {
            size_t l = strcspn(p, ",");
            if (add_arch(&all, p, l) < 0)
                r = -1;
            p += l + (p[l] == ',');
        }
        snprintf(line, sizeof(line), "%s %s %s %s %s", url, suite, comps, all.archs, strcmp(sb, "-") ? sb : "");
        if (r < 0 || !repos || larder_seed_strings_add(repos, line, strlen(line)) < 0)
            r = -1;
    }
    size_t total = 1;
    for (size_t i = 0; i < c.pkgs.n; i++)
        total += strlen(c.pkgs.v[i]) + 1;
    char *joined = r == 0 ? malloc(total) : NULL;
    if (joined) {
        size_t jl = 0;
        for (size_t i = 0; i < c.pkgs.n; i++)
            jl += (size_t)snprintf(joined + jl, total - jl, "%s%s", i ? " " : "", c.pkgs.v[i]);
        r = larder_seed_append(spec, proto, joined, NULL);
        free(joined);
    } else if (r == 0) {
        r = -1;
    }
    if (r < 0 && !err[0])
        snprintf(err, errlen, "out of memory");
    larder_seed_strings_free(&c.pkgs);
    larder_seed_strings_free(&c.repos);
    return r;
}

static const larder_seed_input_t apt_inputs[] = {
    {.kind = "apt", .detect = detect_apt, .expand = expand_apt_list},
    {.kind = NULL},
};

static const larder_seed_key_t apt_seed_keys[] = {
    {.key = "packages", .kind = LARDER_SEED_ITEMS},
    {.key = "repositories", .kind = LARDER_SEED_OPTION},
    {.key = NULL},
};

#define APT(f) LARDER_KEY_IN_MODULE, offsetof(larder_apt_conf_t, f)
static const larder_conf_key_t apt_keys[] = {
    {.name = "allow", .type = LARDER_KEY_HOSTS, APT(allow),
     .def = "[deb.debian.org, security.debian.org, archive.ubuntu.com, security.ubuntu.com, ports.ubuntu.com]",
     .doc = "the only upstream hosts (host or host:port) apt requests may reach"},
    {.name = "https_hosts", .type = LARDER_KEY_HOSTS, APT(https_hosts),
     .doc = "hosts fetched over https although clients ask for http:// URLs"},
    LARDER_KEYS_END,
};

/* a Release file's transform recorded the indexes it lists (r/<repo>/dists/<suite>/...), a Packages index's the
 * packages it lists (d/<repo>/<pool path>): what serving and verifying those files checks */
static void apt_bundle_meta(const char *key, const larder_entry_t *e, void (*add)(void *, const char *, int), void *ctx)
{
    (void)e;
    const char *d = strstr(key, "/dists/");
    if (!d)
        return;
    const char *s = d + 7, *se = strchr(s, '/');
    if (!se)
        return;
    char p[2048];
    if (snprintf(p, sizeof(p), "r/%.*s/dists/%.*s/", (int)(d - key), key, (int)(se - s), s) < (int)sizeof(p))
        add(ctx, p, 1);
    if ((strstr(key, "/binary-") || strstr(key, "/Packages")) &&
        snprintf(p, sizeof(p), "d/%.*s/", (int)(d - key), key) < (int)sizeof(p))
        add(ctx, p, 1);
}

/* GET /-/api/v1/upstreams: the allowed hosts, with the scheme they are fetched with (apt.https_hosts) */
static void apt_upstreams(const larder_config_t *cfg, void (*add)(void *, const char *, const char *), void *ctx)
{
    const larder_apt_conf_t *ac = larder_proto_conf(cfg, LARDER_PROTO_APT);
    for (size_t i = 0; ac && i < ac->allow.n; i++) {
        int https = 0;
        for (size_t j = 0; j < ac->https_hosts.n && !https; j++)
            https = strcmp(ac->https_hosts.v[j], ac->allow.v[i]) == 0;
        char url[400];
        snprintf(url, sizeof(url), "%s://%s", https ? "https" : "http", ac->allow.v[i]);
        add(ctx, ac->allow.v[i], url);
    }
}

/* GET /-/api/v1/info: the hosts apt may reach through Larder (proxy mode) or name under /apt/<host>/ */
static void apt_client_info(const larder_config_t *cfg, json_t *mine, json_t *top)
{
    (void)top;
    const larder_apt_conf_t *c = larder_proto_conf(cfg, LARDER_PROTO_APT);
    json_t *allow = json_array(), *https = json_array();
    for (size_t i = 0; c && i < c->allow.n; i++)
        json_array_append_new(allow, json_string(c->allow.v[i]));
    for (size_t i = 0; c && i < c->https_hosts.n; i++)
        json_array_append_new(https, json_string(c->https_hosts.v[i]));
    json_object_set_new(mine, "allow", allow);
    json_object_set_new(mine, "https_hosts", https);
}

const larder_protocol_t larder_protocol_apt = {
    .proto = LARDER_PROTO_APT,
    .name = "apt",
    .mount = "/apt/",
    .summary = "apt repositories, as an HTTP proxy (Acquire::http::Proxy) and at /apt/<host>/<path>",
    .default_ttl = "30m",
    .conf_size = sizeof(larder_apt_conf_t),
    .conf_keys = apt_keys,
    .seed_keys = apt_seed_keys,
    .seed_shape = "repositories: [...], packages: [...]",
    .seed_section = parse_apt,
    .seed_emit = emit_apt,
    .seed_inputs = apt_inputs,
    .handle = apt_handle,
    .handle_proxy = larder_apt_handle_proxy,
    .seed = apt_seed,
    .pin_spec = larder_apt_pin_spec,
    .bundle_meta = apt_bundle_meta,
    .upstreams = apt_upstreams,
    .client_info = apt_client_info,
};
