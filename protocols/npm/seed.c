/* seed.c - seeding the npm cache (part of the npm protocol, see serve.c).
 *
 * Two sides. The `larder seed` client turns a package-lock.json into seed lines "name@version[ integrity]"
 * (larder_npm_lockfile_lines(), called by main.c); both it and the daemon parse such a line with
 * larder_npm_parse_seed_ref(), which insists on an exact version. These are pure functions, unit-tested.
 * In the daemon, npm_seed() expands one seed line into fetches: the full packument (rewritten by packument.c as for
 * any request), then, once it is stored, the abbreviated form derived from it (pinned with the same freshness) and
 * the version's tarball, found through the t/<name>/<file> record the rewrite wrote and verified against the
 * lockfile's integrity when it has one (else the registry's). Nothing here answers requests. */
#include "internal.h"
#include "jobs.h"
#include "util.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- seed refs and lockfiles (pure: unit-tested) ---- */

static int exact_version(const char *v, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 3; part++) {
        size_t st = i;
        while (i < n && isdigit((unsigned char)v[i]))
            i++;
        if (i == st)
            return 0;
        if (part < 2) {
            if (i >= n || v[i] != '.')
                return 0;
            i++;
        }
    }
    if (i == n)
        return 1;
    if (v[i] != '-' && v[i] != '+')
        return 0;
    for (i++; i < n; i++)
        if (!(isalnum((unsigned char)v[i]) || v[i] == '.' || v[i] == '-' || v[i] == '+'))
            return 0;
    return 1;
}

int larder_npm_parse_seed_ref(const char *ref, char *name, size_t namelen, char *version, size_t versionlen,
                              char *integrity, size_t intlen, char *err, size_t errlen)
{
    integrity[0] = 0;
    const char *sp = strchr(ref, ' ');
    size_t rl = sp ? (size_t)(sp - ref) : strlen(ref);
    const char *at = NULL;
    for (size_t i = 1; i < rl; i++)
        if (ref[i] == '@')
            at = ref + i;
    if (!at) {
        snprintf(err, errlen, "'%.200s' has no version: seed name@version (as package-lock.json records it)", ref);
        return -1;
    }
    size_t nl = (size_t)(at - ref), vl = rl - nl - 1;
    if (!larder_npm_name_ok(ref, nl) || nl + 1 > namelen) {
        snprintf(err, errlen, "'%.*s' is not a valid package name", (int)(nl > 200 ? 200 : nl), ref);
        return -1;
    }
    if (!exact_version(at + 1, vl) || vl + 1 > versionlen) {
        snprintf(err, errlen, "'%.200s' is not pinned to an exact version: seed name@x.y.z", ref);
        return -1;
    }
    memcpy(name, ref, nl);
    name[nl] = 0;
    memcpy(version, at + 1, vl);
    version[vl] = 0;
    if (sp) {
        while (*sp == ' ')
            sp++;
        size_t il = strlen(sp);
        while (il && sp[il - 1] == ' ')
            il--;
        if (il) {
            const char *alg;
            unsigned char raw[64];
            unsigned int rawlen;
            char tmp[300];
            if (il >= sizeof(tmp) || il + 1 > intlen) {
                snprintf(err, errlen, "'%.200s': integrity too long", ref);
                return -1;
            }
            memcpy(tmp, sp, il);
            tmp[il] = 0;
            if (larder_parse_integrity(tmp, &alg, raw, &rawlen) < 0) {
                snprintf(err, errlen, "'%.200s': not an integrity string (sha512-<base64>)", ref);
                return -1;
            }
            memcpy(integrity, tmp, il + 1);
        }
    }
    return 0;
}

long larder_npm_lockfile_lines(const char *json, size_t len, char ***lines, larder_npm_skip_cb skipped, void *ctx,
                               char *err, size_t errlen)
{
    *lines = NULL;
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "not a JSON object%s%s (line %d)", root ? "" : ": ", root ? "" : je.text, je.line);
        json_decref(root);
        return -1;
    }
    json_t *pkgs = json_object_get(root, "packages");
    if (!json_is_object(pkgs)) {
        snprintf(err, errlen, "no \"packages\" map: lockfileVersion %lld is not supported; regenerate it with npm 7 or "
                              "later (npm install --package-lock-only)",
                 (long long)json_integer_value(json_object_get(root, "lockfileVersion")));
        json_decref(root);
        return -1;
    }
    long n = 0;
    size_t cap = 0;
    const char *key;
    json_t *e;
    json_object_foreach(pkgs, key, e)
    {
        if (!*key || !json_is_object(e))
            continue; /* the project itself */
        if (json_is_true(json_object_get(e, "link"))) {
            if (skipped)
                skipped(ctx, key, "a link to a local directory: nothing to fetch", 0);
            continue;
        }
        if (json_is_true(json_object_get(e, "inBundle")))
            continue; /* comes inside its parent's tarball */
        const char *resolved = json_string_value(json_object_get(e, "resolved"));
        const char *version = json_string_value(json_object_get(e, "version"));
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name) {
            const char *nm = strstr(key, "node_modules/");
            const char *last = NULL;
            while (nm) {
                last = nm;
                nm = strstr(nm + 1, "node_modules/");
            }
            name = last ? last + 13 : key;
        }
        if (resolved && strncmp(resolved, "file:", 5) == 0) {
            if (skipped)
                skipped(ctx, key, "a local file or directory (file:): nothing to fetch", 0);
            continue;
        }
        if (resolved && (!npm_is_http(resolved) || !strstr(resolved, "/-/"))) {
            if (skipped)
                skipped(ctx, key,
                        strncmp(resolved, "git", 3) == 0 || strstr(resolved, "://github.com/")
                            ? "a git dependency: the npm section cannot seed git sources (see the git mirror)"
                            : "not resolved from a registry (a tarball URL or other source): the npm section cannot "
                              "seed it; a tarball URL can be pinned in the files section",
                        1);
            continue;
        }
        /* no `resolved` (npm's omit-lockfile-registry-resolved): a registry package by name and version, fetched
         * through the configured upstream like any seed line */
        if (!version || !exact_version(version, strlen(version)) || !larder_npm_name_ok(name, strlen(name))) {
            if (skipped)
                skipped(ctx, key,
                        version && !strncmp(version, "file:", 5) ? "a local file or directory: nothing to fetch"
                        : resolved ? "no exact version or no valid name"
                                   : "no resolved URL and no exact registry version: not seedable",
                        !(version && !strncmp(version, "file:", 5)));
            continue;
        }
        const char *integrity = json_string_value(json_object_get(e, "integrity"));
        size_t ll = strlen(name) + strlen(version) + (integrity ? strlen(integrity) : 0) + 3;
        char *line = malloc(ll);
        snprintf(line, ll, "%s@%s%s%s", name, version, integrity ? " " : "", integrity ? integrity : "");
        int dup = 0;
        for (long k = 0; k < n && !dup; k++)
            dup = strcmp((*lines)[k], line) == 0;
        if (dup) {
            free(line);
            continue;
        }
        if ((size_t)n == cap) {
            cap = cap ? cap * 2 : 64;
            *lines = realloc(*lines, cap * sizeof(**lines)); // NOLINT(bugprone-sizeof-expression): array of strings
        }
        (*lines)[n++] = line;
    }
    json_decref(root);
    return n;
}

/* ---- the seed expander (the daemon side) ---- */

typedef struct seed_req {
    char name[256];
    char version[128];
    char integrity[300];
    char label[700];
    int packument_only; /* "<name> --packument-only": the packument (both forms), no tarball */
} seed_req_t;

static void seed_packument_done(larder_seed_ctx_t *c, int proto, const char *key, void *data)
{
    seed_req_t *sr = data;
    larder_app_t *app = larder_seed_app(c);
    larder_entry_t e;
    char path[4096];
    if (larder_store_get(app->store, proto, key, &e) < 0) {
        larder_seed_fail(c, sr->label, "the packument vanished from the cache");
        return;
    }
    larder_store_blob_path(app->store, e.digest, path, sizeof(path));
    uint64_t now = larder_now(), until = e.fresh_until;
    larder_entry_clear(&e);
    /* the abbreviated form (yarn 1, pnpm, older npm) derived from the full one just seeded, and pinned with it */
    char ak[400], alabel[800], aurl[4400];
    snprintf(ak, sizeof(ak), "pk/%s/abbr", sr->name);
    npm_packument_url(app->cfg, sr->name, aurl, sizeof(aurl));
    snprintf(alabel, sizeof(alabel), "%s (abbreviated packument)", sr->label);
    larder_fetch_req_t afr = {.proto = LARDER_PROTO_NPM,
                              .key = ak,
                              .url = aurl,
                              .ttl = until > now ? until - now : 0,
                              .transform = npm_transform_packument,
                              .force = 1,
                              .local = 1};
    larder_seed_add(c, alabel, &afr, NULL, NULL);
    if (sr->packument_only)
        return;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, NULL);
    json_t *dist = json_object_get(json_object_get(json_object_get(root, "versions"), sr->version), "dist");
    const char *tb = json_string_value(json_object_get(dist, "tarball"));
    const char *sep = tb ? strstr(tb, "/-/") : NULL;
    char file[256];
    if (!sep || strlen(sep + 3) >= sizeof(file)) {
        larder_seed_fail(c, sr->label, json_is_object(root) ? "version not found in the packument"
                                                            : "the packument could not be read");
        json_decref(root);
        return;
    }
    snprintf(file, sizeof(file), "%s", sep + 3);
    json_decref(root);
    char rkey[600];
    snprintf(rkey, sizeof(rkey), "t/%s/%s", sr->name, file);
    char *rec = larder_store_meta_get(app->store, LARDER_PROTO_NPM, rkey, NULL);
    char *shasum = rec ? strchr(rec, '\n') : NULL, *url = shasum ? strchr(shasum + 1, '\n') : NULL;
    if (!url) {
        free(rec);
        larder_seed_fail(c, sr->label, "the packument lists no fetchable tarball for this version");
        return;
    }
    *shasum++ = 0;
    *url++ = 0;
    char sha1i[64];
    /* the lockfile's integrity wins: a registry that changed a published tarball fails the item */
    const char *want = sr->integrity[0]         ? sr->integrity
                       : strcmp(rec, "-") != 0 ? rec
                       : npm_shasum_integrity(shasum, sha1i, sizeof(sha1i)) == 0 ? sha1i
                                                                                  : NULL;
    char tkey[600];
    snprintf(tkey, sizeof(tkey), "tgz/%s/%s", sr->name, file);
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_NPM,
                             .key = tkey,
                             .url = url,
                             .integrity = want,
                             .entry_flags = LARDER_ENTRY_IMMUTABLE};
    char label[800];
    snprintf(label, sizeof(label), "%s (tarball)", sr->label);
    larder_seed_add(c, label, &fr, NULL, NULL);
    free(rec);
}

/* "<name> --packument-only": 1 with the name copied, else 0 */
static int packument_only_ref(const char *ref, char *name, size_t namelen)
{
    static const char opt[] = " " LARDER_NPM_PACKUMENT_ONLY;
    size_t rl = strlen(ref), ol = sizeof(opt) - 1;
    if (rl <= ol || strcmp(ref + rl - ol, opt) != 0 || !larder_npm_name_ok(ref, rl - ol) || rl - ol >= namelen)
        return 0;
    memcpy(name, ref, rl - ol);
    name[rl - ol] = 0;
    return 1;
}

void npm_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    seed_req_t *sr = calloc(1, sizeof(*sr));
    char err[400];
    if (sr && packument_only_ref(item->ref, sr->name, sizeof(sr->name)))
        sr->packument_only = 1;
    else if (!sr || larder_npm_parse_seed_ref(item->ref, sr->name, sizeof(sr->name), sr->version, sizeof(sr->version),
                                              sr->integrity, sizeof(sr->integrity), err, sizeof(err)) < 0) {
        larder_seed_fail(ctx, item->ref, sr ? err : "out of memory");
        free(sr);
        return;
    }
    if (!npm_upstream_base(app->cfg)) {
        larder_seed_fail(ctx, item->ref, "npm.upstream is not configured");
        free(sr);
        return;
    }
    if (sr->packument_only)
        snprintf(sr->label, sizeof(sr->label), "%s", sr->name);
    else
        snprintf(sr->label, sizeof(sr->label), "%s@%s", sr->name, sr->version);
    char url[4400];
    npm_packument_url(app->cfg, sr->name, url, sizeof(url));
    char key[400], label[800];
    snprintf(key, sizeof(key), "pk/%s/full", sr->name);
    snprintf(label, sizeof(label), "%s (packument)", sr->label);
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_NPM,
                             .key = key,
                             .url = url,
                             .ttl = app->cfg->proto[LARDER_PROTO_NPM].ttl,
                             .accept = "application/json",
                             .transform = npm_transform_packument};
    larder_seed_add(ctx, label, &fr, seed_packument_done, sr);
}

/* ---- the pin_spec hook: a pinned entry back into seed lines ---- */

/* remove the npm items whose ref is `ref` */
static void drop_items(larder_seed_spec_t *spec, const char *ref)
{
    size_t o = 0;
    for (size_t i = 0; i < spec->nitems; i++) {
        larder_seed_item_t *it = &spec->items[i];
        if (it->proto == LARDER_PROTO_NPM && !strcmp(it->ref, ref)) {
            free(it->ref);
            free(it->sha256);
            continue;
        }
        spec->items[o++] = *it;
    }
    spec->nitems = o;
}

/* whether an npm item "<name>@..." is in the spec */
static int have_package(const larder_seed_spec_t *spec, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < spec->nitems; i++)
        if (spec->items[i].proto == LARDER_PROTO_NPM && !strncmp(spec->items[i].ref, name, nl) &&
            spec->items[i].ref[nl] == '@')
            return 1;
    return 0;
}

int larder_npm_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                        char *why, size_t whylen)
{
    (void)cfg;
    char name[256], line[1000];
    if (!strncmp(key, "tgz/", 4)) {
        /* tgz/<name>/<base>-<version>.tgz, <base> the name without its scope */
        const char *file = strrchr(key, '/');
        size_t nl = (size_t)(file - key) - 4;
        if (nl == 0 || nl >= sizeof(name)) {
            snprintf(why, whylen, "not a tarball key");
            return -1;
        }
        memcpy(name, key + 4, nl);
        name[nl] = 0;
        file++;
        const char *base = strchr(name, '/') ? strchr(name, '/') + 1 : name;
        size_t bl = strlen(base), fl = strlen(file);
        if (!larder_npm_name_ok(name, nl) || fl <= bl + 5 || strncmp(file, base, bl) != 0 || file[bl] != '-' ||
            strcmp(file + fl - 4, ".tgz") != 0 || !exact_version(file + bl + 1, fl - bl - 5)) {
            snprintf(why, whylen, "the tarball's file name is not <name>-<version>.tgz: its version is unknown");
            return -1;
        }
        int n = snprintf(line, sizeof(line), "%s@%.*s", name, (int)(fl - bl - 5), file + bl + 1);
        if (e) {
            /* the stored tarball's own digest, as an integrity string: the same bytes or a failed item */
            unsigned char raw[32], b64[48];
            for (size_t i = 0; i < 32; i++)
                sscanf(e->digest + 2 * i, "%2hhx", &raw[i]);
            EVP_EncodeBlock(b64, raw, 32);
            snprintf(line + n, sizeof(line) - (size_t)n, " sha256-%s", (const char *)b64);
        }
        char po[300];
        snprintf(po, sizeof(po), "%s %s", name, LARDER_NPM_PACKUMENT_ONLY);
        drop_items(spec, po); /* the package item brings its packument along */
        return larder_seed_append(spec, LARDER_PROTO_NPM, line, NULL);
    }
    if (!strncmp(key, "pk/", 3)) {
        const char *form = strrchr(key, '/');
        size_t nl = (size_t)(form - key) - 3;
        if (nl == 0 || nl >= sizeof(name) || (strcmp(form, "/full") != 0 && strcmp(form, "/abbr") != 0)) {
            snprintf(why, whylen, "not a packument key");
            return -1;
        }
        memcpy(name, key + 3, nl);
        name[nl] = 0;
        if (have_package(spec, name))
            return 0;
        /* a packument without a tarball (an optional dependency for another platform, a version npm chose not to
         * install): the packument alone, until a tarball of the same package replaces it */
        snprintf(line, sizeof(line), "%s %s", name, LARDER_NPM_PACKUMENT_ONLY);
        return larder_seed_append(spec, LARDER_PROTO_NPM, line, NULL);
    }
    snprintf(why, whylen, "a pass-through answer (search, audit), not a registry object");
    return -1;
}
