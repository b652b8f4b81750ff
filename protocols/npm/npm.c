/* npm.c - the npm registry at /npm/ (or at / of a listener dedicated to npm).
 *
 * Packuments: the upstream is only ever asked for the full document (key pk/<name>/full), rewritten once on a commit
 * thread. The abbreviated "install" document (kept with `time`; yarn 1 and pnpm ask for it, npm 11 asks for the full
 * one) is derived from the cached full form by a local fetch (no upstream) and cached as pk/<name>/abbr; meta
 * pa/<name> names the two digests it was made from and of, so it is served only while it matches the full form.
 * One upstream fetch per package serves both forms, and offline whichever full form is cached serves both.
 * Every dist.tarball becomes LARDER_NPM_BASE_TOKEN/<name>/-/<file>; the token is replaced by the public base
 * (npm.public_url, or the scheme and Host of the request) chunk by chunk while the document is sent, so one stored
 * copy serves every host name without a per-request rewrite of the whole document. While rewriting, a record
 * t/<name>/<file> -> integrity, shasum, upstream URL is written for every tarball: tarball requests are answered
 * only for files a packument listed (no open proxy) and verified against the registry's integrity before commit.
 * A tarball missing from the cached packument refreshes the packument once. Search and audit requests pass
 * through uncached (503 at once when offline). */
#include "npm.h"
#include "cache.h"
#include "jobs.h"
#include "log.h"
#include "protocols.h"
#include "util.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_PACKUMENT ((uint64_t)512 * 1024 * 1024)

/* ---- buffers ---- */

static void buf_add(larder_npm_buf_t *b, const char *s, size_t n)
{
    if (!b->p || b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        char *np = realloc(b->p, b->cap);
        if (!np)
            abort();
        b->p = np;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void buf_str(larder_npm_buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

/* ---- names and paths ---- */

static int name_part_ok(const char *s, size_t len)
{
    if (len == 0 || len > 214 || s[0] == '.' || s[0] == '_')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~'))
            return 0;
    }
    return 1;
}

int larder_npm_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 214)
        return 0;
    if (name[0] == '@') {
        const char *slash = memchr(name, '/', len);
        if (!slash)
            return 0;
        return name_part_ok(name + 1, (size_t)(slash - name - 1)) &&
               name_part_ok(slash + 1, len - (size_t)(slash + 1 - name));
    }
    return name_part_ok(name, len);
}

static int file_ok(const char *s, size_t len)
{
    if (len < 5 || len > 255 || s[0] == '.' || strncmp(s + len - 4, ".tgz", 4) != 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '+' || ch == '~'))
            return 0;
    }
    return 1;
}

int larder_npm_route(const char *path, size_t len, char *name, size_t namelen, char *file, size_t filelen,
                     const char **err)
{
    *err = "not an npm registry path";
    file[0] = 0;
    /* the name: "name", "@scope/name" or "@scope%2fname" (never decoded before this point) */
    char nb[512];
    size_t nl = 0, i = 0;
    if (len == 0)
        return -1;
    if (path[0] == '@') {
        const char *sep = NULL;
        size_t seplen = 0;
        for (size_t k = 1; k < len; k++) {
            if (path[k] == '/') {
                sep = path + k;
                seplen = 1;
                break;
            }
            if (path[k] == '%' && k + 2 < len && path[k + 1] == '2' && (path[k + 2] == 'f' || path[k + 2] == 'F')) {
                sep = path + k;
                seplen = 3;
                break;
            }
        }
        if (!sep)
            return -1;
        size_t sl = (size_t)(sep - path);
        const char *rest = sep + seplen;
        const char *e = memchr(rest, '/', len - (size_t)(rest - path));
        size_t pl = e ? (size_t)(e - rest) : len - (size_t)(rest - path);
        if (sl + 1 + pl >= sizeof(nb))
            return -1;
        memcpy(nb, path, sl);
        nb[sl] = '/';
        memcpy(nb + sl + 1, rest, pl);
        nl = sl + 1 + pl;
        i = (size_t)(rest - path) + pl;
    } else {
        const char *e = memchr(path, '/', len);
        nl = e ? (size_t)(e - path) : len;
        if (nl >= sizeof(nb))
            return -1;
        memcpy(nb, path, nl);
        i = nl;
    }
    nb[nl] = 0;
    if (!larder_npm_name_ok(nb, nl)) {
        *err = "not a valid package name";
        return -1;
    }
    if (nl + 1 > namelen)
        return -1;
    memcpy(name, nb, nl + 1);
    if (i == len || (i + 1 == len && path[i] == '/'))
        return LARDER_NPM_PACKUMENT;
    /* i at '/': "-/<file>" or "<version>" */
    const char *r = path + i + 1;
    size_t rl = len - i - 1;
    if (rl >= 2 && r[0] == '-' && r[1] == '/') {
        if (!file_ok(r + 2, rl - 2) || rl - 2 + 1 > filelen) {
            *err = "not a tarball file name (<name>-<version>.tgz)";
            return -1;
        }
        memcpy(file, r + 2, rl - 2);
        file[rl - 2] = 0;
        return LARDER_NPM_TARBALL;
    }
    if (rl == 0 || rl + 1 > filelen || memchr(r, '/', rl))
        return -1;
    for (size_t k = 0; k < rl; k++)
        if (!(isalnum((unsigned char)r[k]) || (r[k] && strchr("-._+~", r[k]))))
            return -1;
    memcpy(file, r, rl);
    file[rl] = 0;
    return LARDER_NPM_VERSION;
}

/* ---- packument rewriting ---- */

static int is_http(const char *u)
{
    return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0);
}

/* the last path segment of a tarball URL (no query or fragment) */
static int tarball_file(const char *url, char *out, size_t outlen)
{
    const char *s = strstr(url, "://");
    if (!s)
        return -1;
    s += 3;
    const char *end = s + strcspn(s, "?#");
    const char *slash = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == '/')
            slash = p;
    if (!slash)
        return -1;
    size_t n = (size_t)(end - slash - 1);
    if (!file_ok(slash + 1, n) || n + 1 > outlen)
        return -1;
    memcpy(out, slash + 1, n);
    out[n] = 0;
    return 0;
}

static const char *const abbreviated_fields[] = {
    "name", "version", "deprecated", "dependencies", "optionalDependencies", "devDependencies", "bundleDependencies",
    "bundledDependencies", "peerDependencies", "peerDependenciesMeta", "acceptDependencies", "bin", "directories",
    "dist", "engines", "cpu", "os", "libc", "_hasShrinkwrap", "hasInstallScript", "funding", "license", NULL};

static json_t *abbreviate_version(json_t *vo)
{
    json_t *o = json_object();
    for (int i = 0; abbreviated_fields[i]; i++) {
        json_t *v = json_object_get(vo, abbreviated_fields[i]);
        if (v)
            json_object_set(o, abbreviated_fields[i], v);
    }
    if (!json_object_get(o, "hasInstallScript")) {
        json_t *scripts = json_object_get(vo, "scripts");
        if (json_is_object(scripts) && (json_object_get(scripts, "preinstall") || json_object_get(scripts, "install") ||
                                        json_object_get(scripts, "postinstall")))
            json_object_set_new(o, "hasInstallScript", json_true());
    }
    return o;
}

int larder_npm_rewrite_packument(const char *in, size_t len, const char *name, int abbreviated, larder_npm_buf_t *out,
                                 larder_npm_tarball_cb cb, void *ctx, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(in, len, JSON_ALLOW_NUL, &je);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "upstream packument is not a JSON object%s%s", root ? "" : ": ", root ? "" : je.text);
        json_decref(root);
        return -1;
    }
    json_t *versions = json_object_get(root, "versions");
    if (versions && !json_is_object(versions)) {
        snprintf(err, errlen, "upstream packument: 'versions' is not an object");
        json_decref(root);
        return -1;
    }
    const char *ver;
    json_t *vo;
    larder_npm_buf_t local = {0};
    json_object_foreach(versions, ver, vo)
    {
        json_t *dist = json_object_get(vo, "dist");
        const char *tb = json_string_value(json_object_get(dist, "tarball"));
        char file[256];
        if (!json_is_object(dist) || !is_http(tb) || tarball_file(tb, file, sizeof(file)) < 0)
            continue; /* nothing we would fetch: left as it is */
        if (cb) {
            larder_npm_tarball_t t = {ver, file, tb, json_string_value(json_object_get(dist, "integrity")),
                                      json_string_value(json_object_get(dist, "shasum"))};
            cb(ctx, &t);
        }
        local.len = 0;
        buf_str(&local, LARDER_NPM_BASE_TOKEN "/");
        buf_str(&local, name);
        buf_str(&local, "/-/");
        buf_str(&local, file);
        json_object_set_new(dist, "tarball", json_string(local.p));
    }
    free(local.p);
    json_t *doc = root;
    if (abbreviated) {
        doc = json_object();
        json_t *v;
        if ((v = json_object_get(root, "name")))
            json_object_set(doc, "name", v);
        json_t *time = json_object_get(root, "time");
        if ((v = json_object_get(root, "modified")) || (v = json_object_get(time, "modified")))
            json_object_set(doc, "modified", v);
        if ((v = json_object_get(root, "dist-tags")))
            json_object_set(doc, "dist-tags", v);
        if (time)
            json_object_set(doc, "time", time); /* pnpm's time-based resolution needs it */
        json_t *nv = json_object();
        json_object_foreach(versions, ver, vo)
        {
            if (json_is_object(vo))
                json_object_set_new(nv, ver, abbreviate_version(vo));
        }
        json_object_set_new(doc, "versions", nv);
    }
    char *s = json_dumps(doc, JSON_COMPACT);
    if (doc != root)
        json_decref(doc);
    json_decref(root);
    if (!s) {
        snprintf(err, errlen, "cannot serialise the packument");
        return -1;
    }
    buf_str(out, s);
    free(s);
    return 0;
}

/* ---- lockfiles and seed refs ---- */

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
        if (resolved && (!is_http(resolved) || !strstr(resolved, "/-/"))) {
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

/* ---- the daemon side ---- */

static const char *upstream_base(const larder_config_t *cfg) { return cfg->proto[LARDER_PROTO_NPM].upstream; }

/* upstream URL of a packument: scoped names with an encoded slash, as registry.npmjs.org expects */
static void packument_url(const larder_config_t *cfg, const char *name, char *out, size_t outlen)
{
    const char *slash = name[0] == '@' ? strchr(name, '/') : NULL;
    if (slash)
        snprintf(out, outlen, "%s%.*s%%2f%s", upstream_base(cfg), (int)(slash - name), name, slash + 1);
    else
        snprintf(out, outlen, "%s%s", upstream_base(cfg), name);
}

typedef struct rec_ctx {
    larder_meta_batch_t *b;
    const char *name;
} rec_ctx_t;

static void record_tarball(void *arg, const larder_npm_tarball_t *t)
{
    rec_ctx_t *c = arg;
    if (strlen(t->url) > 3000)
        return;
    char key[800], val[4000];
    snprintf(key, sizeof(key), "t/%s/%s", c->name, t->file);
    int n = snprintf(val, sizeof(val), "%s\n%s\n%s", t->integrity && !strchr(t->integrity, '\n') ? t->integrity : "-",
                     t->shasum && !strchr(t->shasum, '\n') ? t->shasum : "-", t->url);
    if (n > 0 && (size_t)n < sizeof(val))
        larder_meta_batch_put(c->b, LARDER_PROTO_NPM, key, val, (size_t)n);
}



/* the name in a key "pk/<name>/<form>"; 0 or -1 */
static int packument_key_name(const char *k, char *name, size_t namelen, const char **form)
{
    const char *slash = strrchr(k, '/');
    if (strncmp(k, "pk/", 3) != 0 || !slash || slash - k - 3 <= 0 || (size_t)(slash - k - 3) >= namelen)
        return -1;
    memcpy(name, k + 3, (size_t)(slash - k - 3));
    name[slash - k - 3] = 0;
    *form = slash + 1;
    return 0;
}

/* meta "pa/<name>" -> "<sha256 of the full form>\n<sha256 of the abbreviated form>": which stored full document the
 * stored abbreviated one was derived from. Both digests must match the entries for the abbreviated form to be
 * served, so a full form refreshed since (or an abbreviated commit that failed) never serves an outdated one. */
static int abbr_matches(larder_store_t *st, const char *name, const larder_entry_t *full, const larder_entry_t *abbr)
{
    char k[400];
    snprintf(k, sizeof(k), "pa/%s", name);
    size_t len = 0;
    char *v = larder_store_meta_get(st, LARDER_PROTO_NPM, k, &len);
    int ok = v && len == 2 * (LARDER_SHA256_HEX - 1) + 1 && memcmp(v, full->digest, LARDER_SHA256_HEX - 1) == 0 &&
             memcmp(v + LARDER_SHA256_HEX, abbr->digest, LARDER_SHA256_HEX - 1) == 0;
    free(v);
    return ok;
}

/* "pk/<name>/abbr" made from the stored full form (never from the upstream: one upstream document per package
 * serves both forms); runs on a commit thread */
static int derive_abbreviated(larder_store_t *st, const char *name, int out_fd, char **content_type, char *err,
                              size_t errlen)
{
    char fk[400], path[4096];
    snprintf(fk, sizeof(fk), "pk/%s/full", name);
    larder_entry_t fe;
    if (larder_store_get(st, LARDER_PROTO_NPM, fk, &fe) < 0) {
        snprintf(err, errlen, "the full packument of %s is not cached", name);
        return -1;
    }
    char full_digest[LARDER_SHA256_HEX];
    memcpy(full_digest, fe.digest, sizeof(full_digest));
    larder_store_blob_path(st, fe.digest, path, sizeof(path));
    larder_entry_clear(&fe);
    size_t in_len = 0;
    char *in = larder_read_file(path, &in_len);
    if (!in) {
        snprintf(err, errlen, "cannot read the cached full packument of %s", name);
        return -1;
    }
    uint64_t t0 = larder_now_ms();
    larder_npm_buf_t out = {0};
    /* the stored tarball URLs are already ours (the base token is no http URL): only the fields are cut */
    int r = larder_npm_rewrite_packument(in, in_len, name, 1, &out, NULL, NULL, err, errlen);
    free(in);
    uint64_t ms = larder_now_ms() - t0;
    if (ms >= 200)
        larder_info("npm: deriving the abbreviated packument of %s (%zu bytes) took %" PRIu64 " ms", name, in_len, ms);
    if (r == 0 && larder_write_all(out_fd, out.p ? out.p : "", out.len) < 0) {
        snprintf(err, errlen, "writing the abbreviated packument failed");
        r = -1;
    }
    if (r == 0) {
        unsigned char md[32];
        unsigned int mdlen = 0;
        char val[2 * LARDER_SHA256_HEX], k[400];
        EVP_Digest(out.p ? out.p : "", out.len, md, &mdlen, larder_sha256_md(), NULL);
        memcpy(val, full_digest, LARDER_SHA256_HEX - 1);
        val[LARDER_SHA256_HEX - 1] = '\n';
        larder_hex(md, 32, val + LARDER_SHA256_HEX);
        snprintf(k, sizeof(k), "pa/%s", name);
        larder_meta_batch_t *b = larder_store_meta_begin(st);
        larder_meta_batch_put(b, LARDER_PROTO_NPM, k, val, sizeof(val) - 1);
        r = larder_store_meta_commit(st, b);
        if (r < 0)
            snprintf(err, errlen, "cannot record the abbreviated packument");
    }
    free(out.p);
    *content_type = strdup("application/vnd.npm.install-v1+json");
    return r;
}

/* key "pk/<name>/full": the upstream document rewritten (tarball URLs ours, tarball records written); key
 * "pk/<name>/abbr": derived from the stored full form. Runs on a commit thread. */
static int transform_packument(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                               char **content_type, char *err, size_t errlen)
{
    char name[320];
    const char *form;
    if (packument_key_name(fe->key, name, sizeof(name), &form) < 0) {
        snprintf(err, errlen, "bad packument key");
        return -1;
    }
    if (strcmp(form, "abbr") == 0)
        return derive_abbreviated(st, name, out_fd, content_type, err, errlen);
    if (in_len > MAX_PACKUMENT) {
        snprintf(err, errlen, "packument larger than 512 MiB");
        return -1;
    }
    char *in;
    if (larder_pread_all(in_fd, in_len, &in) < 0) {
        snprintf(err, errlen, "cannot read the downloaded packument");
        return -1;
    }
    uint64_t t0 = larder_now_ms();
    larder_npm_buf_t out = {0};
    larder_meta_batch_t *b = larder_store_meta_begin(st);
    rec_ctx_t rc = {b, name};
    int r = larder_npm_rewrite_packument(in, in_len, name, 0, &out, record_tarball, &rc, err, errlen);
    free(in);
    if (r == 0)
        r = larder_store_meta_commit(st, b);
    else
        larder_store_meta_discard(b);
    uint64_t ms = larder_now_ms() - t0;
    if (ms >= 200)
        larder_info("npm: rewriting the packument of %s (%" PRIu64 " bytes) took %" PRIu64 " ms", name, in_len, ms);
    *content_type = strdup("application/json");
    if (r == 0 && larder_write_all(out_fd, out.p ? out.p : "", out.len) < 0) {
        snprintf(err, errlen, "writing the rewritten packument failed");
        r = -1;
    }
    free(out.p);
    return r;
}

/* what the tarball URLs in our packuments start with, for this request */
static const char *public_base(larder_app_t *app, h2o_req_t *req, const char *rest)
{
    const char *pub = app->cfg->proto[LARDER_PROTO_NPM].public_url;
    if (pub)
        return pub;
    size_t prefix = (size_t)(rest - req->input.path.base); /* "/npm/" or "/" (a dedicated listener) */
    if (prefix > req->input.path.len || prefix == 0)
        prefix = 1;
    h2o_iovec_t host = req->input.authority;
    if (host.len == 0 || host.len > 255)
        return NULL;
    for (size_t i = 0; i < host.len; i++) {
        unsigned char ch = (unsigned char)host.base[i];
        if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']' || ch == '_'))
            return NULL;
    }
    int tls = req->input.scheme == &H2O_URL_SCHEME_HTTPS;
    size_t n = (tls ? 8 : 7) + host.len + prefix;
    char *b = h2o_mem_alloc_pool(&req->pool, n + 1);
    snprintf(b, n + 1, "%s%.*s%.*s", tls ? "https://" : "http://", (int)host.len, host.base, (int)(prefix - 1),
             req->input.path.base);
    return b;
}

static int wants_abbreviated(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char t[] = "application/vnd.npm.install-v1+json";
    for (size_t k = 0; k + sizeof(t) - 1 <= v.len; k++) {
        if (strncasecmp(v.base + k, t, sizeof(t) - 1) != 0)
            continue;
        /* a q=0 means "not this one" */
        const char *e = memchr(v.base + k, ',', v.len - k);
        size_t pl = e ? (size_t)(e - (v.base + k)) : v.len - k;
        char param[128];
        snprintf(param, sizeof(param), "%.*s", (int)(pl < 127 ? pl : 127), v.base + k);
        const char *q = strstr(param, "q=");
        return !(q && strtod(q + 2, NULL) <= 0.0);
    }
    return 0;
}

/* One abbreviated-packument request on its way through abbr_step: the full form is fetched at most once (one
 * upstream document per package serves both forms), the abbreviated form derived at most once. */
typedef struct pk_req {
    char name[256];
    char url[4400];
    const char *base;
    int fetched, derived; /* steps already taken for this request */
    int fetch_status;   /* upstream status of the fetch last waited for */
    int full_state;     /* final state of the full form's fetch, when this request made one */
    larder_fetch_t *fe; /* our extra reference to the fetch waited for, to read its status */
} pk_req_t;

static void abbr_step(larder_app_t *app, h2o_req_t *req, pk_req_t *pr);

static void abbr_after(larder_app_t *app, h2o_req_t *req, int state, void *data)
{
    pk_req_t *pr = data;
    if (pr->fe) {
        pr->fetch_status = pr->fe->status;
        larder_fetch_release(pr->fe);
        pr->fe = NULL;
    }
    if (pr->fetched && !pr->derived)
        pr->full_state = state;
    abbr_step(app, req, pr);
}

/* wait for fe, then take the next step */
static void abbr_wait(larder_app_t *app, h2o_req_t *req, pk_req_t *pr, const char *key, larder_fetch_t *fe)
{
    larder_fetch_retain(fe);
    pr->fe = fe;
    larder_cache_after_fetch(app, req, LARDER_PROTO_NPM, h2o_strdup(&req->pool, key, SIZE_MAX).base, fe, abbr_after,
                             pr);
}

/* status < 0: HIT or STALE by freshness; else the LARDER_CACHE_* status to report (the full form was just fetched) */
static void serve_stored_packument(larder_app_t *app, h2o_req_t *req, const char *key, const char *base, int abbr,
                                   int status)
{
    larder_mapping_t m = {
        .proto = LARDER_PROTO_NPM,
        .key = h2o_strdup(&req->pool, key, SIZE_MAX).base,
        .url = NULL, /* from the store: HIT or STALE by its freshness */
        .ttl = app->cfg->proto[LARDER_PROTO_NPM].ttl,
        .override_status = status >= 0,
        .status = status,
        .content_type = abbr ? "application/vnd.npm.install-v1+json" : "application/json",
        .subst_from = LARDER_NPM_BASE_TOKEN,
        .subst_to = base,
    };
    larder_cache_serve(app, req, &m);
}

/* what X-Larder-Cache says of an abbreviated form served after this request's own fetch of the full one */
static int abbr_status(const pk_req_t *pr)
{
    if (!pr->fetched)
        return -1;
    switch (pr->full_state) {
    case LARDER_FETCH_DONE:
        return LARDER_CACHE_MISS;
    case LARDER_FETCH_NOT_MODIFIED:
        return LARDER_CACHE_REVALIDATED;
    default:
        return LARDER_CACHE_STALE; /* the fetch failed: the cached form is served */
    }
}

static void abbr_step(larder_app_t *app, h2o_req_t *req, pk_req_t *pr)
{
    char fk[400], ak[400];
    snprintf(fk, sizeof(fk), "pk/%s/full", pr->name);
    snprintf(ak, sizeof(ak), "pk/%s/abbr", pr->name);
    larder_store_t *st = app->store;
    for (int attempt = 0; attempt < 3; attempt++) {
        larder_entry_t f, a;
        int have_f = larder_store_get(st, LARDER_PROTO_NPM, fk, &f) == 0;
        int have_a = larder_store_get(st, LARDER_PROTO_NPM, ak, &a) == 0;
        uint64_t now = larder_now();
        int online = !app->cfg->offline && !larder_fetcher_host_down(app->fetcher, pr->url);
        if (!pr->fetched && online && (!have_f || !larder_entry_is_fresh(&f, now, app->cfg->proto[LARDER_PROTO_NPM].ttl))) {
            /* the full document is what the upstream is asked for, whichever form the client wants */
            larder_fetch_req_t fr = {.proto = LARDER_PROTO_NPM,
                                     .key = fk,
                                     .url = pr->url,
                                     .ttl = app->cfg->proto[LARDER_PROTO_NPM].ttl,
                                     .accept = "application/json",
                                     .transform = transform_packument,
                                     .if_none_match = have_f ? f.etag : NULL,
                                     .if_modified_since = have_f ? f.last_modified : NULL};
            int how;
            larder_fetch_t *fe = larder_fetch_start(app->fetcher, &fr, &how);
            if (have_f)
                larder_entry_clear(&f);
            if (have_a)
                larder_entry_clear(&a);
            if (fe) {
                pr->fetched = 1;
                abbr_wait(app, req, pr, fk, fe);
                return;
            }
            continue; /* committed meanwhile: look again */
        }
        if (have_f) {
            int match = have_a && abbr_matches(st, pr->name, &f, &a);
            uint64_t f_until = f.fresh_until, a_until = have_a ? a.fresh_until : 0;
            larder_entry_clear(&f);
            if (have_a)
                larder_entry_clear(&a);
            if (match) {
                if (a_until != f_until) /* the full form was revalidated: the derived one is as fresh */
                    larder_store_refresh(st, LARDER_PROTO_NPM, ak, f_until, NULL, NULL);
                serve_stored_packument(app, req, ak, pr->base, 1, abbr_status(pr));
                return;
            }
            if (!pr->derived) {
                pr->derived = 1;
                larder_fetch_req_t fr = {.proto = LARDER_PROTO_NPM,
                                         .key = ak,
                                         .url = pr->url,
                                         .ttl = f_until > now ? f_until - now : 0,
                                         .transform = transform_packument,
                                         .force = 1,
                                         .local = 1};
                int how;
                larder_fetch_t *fe = larder_fetch_start(app->fetcher, &fr, &how);
                if (fe) {
                    abbr_wait(app, req, pr, ak, fe);
                    return;
                }
                continue;
            }
            larder_send_error(app, req, LARDER_PROTO_NPM, 502, "Bad Gateway",
                              "the abbreviated packument of %s could not be derived from the cached full one; see "
                              "the daemon log",
                              pr->name);
            return;
        }
        if (have_a) { /* only the abbreviated form is cached (the full one was evicted, or cached by an older
                         version): it is all we have */
            larder_entry_clear(&a);
            serve_stored_packument(app, req, ak, pr->base, 1, abbr_status(pr));
            return;
        }
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-larder-cache"), 1, NULL,
                              H2O_STRLIT("MISS"));
        if (app->cfg->offline)
            larder_send_error(app, req, LARDER_PROTO_NPM, 504, "Gateway Timeout",
                              "larder is offline and %s is not cached.\nSeed it while online: list it in a seed spec "
                              "and run `larder seed SPEC.yaml`, or request it once with `offline: false`.",
                              pr->url);
        else if (pr->fetch_status == 404 || pr->fetch_status == 410)
            larder_send_error(app, req, LARDER_PROTO_NPM, 404, "Not Found", "not found upstream: %s answered %d",
                              pr->url, pr->fetch_status);
        else
            larder_send_error(app, req, LARDER_PROTO_NPM, pr->fetched ? 502 : 504,
                              pr->fetched ? "Bad Gateway" : "Gateway Timeout",
                              "the upstream fetch of %s failed and the packument is not cached", pr->url);
        return;
    }
    larder_send_error(app, req, LARDER_PROTO_NPM, 503, "Service Unavailable", "the packument keeps changing; retry");
}

static void serve_packument(larder_app_t *app, h2o_req_t *req, const char *rest, const char *name)
{
    const char *base = public_base(app, req, rest);
    if (!base) {
        larder_send_error(app, req, LARDER_PROTO_NPM, 400, "Bad Request",
                          "the Host header is missing or not a host name; set npm.public_url");
        return;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Accept"));
    char url[4400];
    packument_url(app->cfg, name, url, sizeof(url));
    if (wants_abbreviated(req)) {
        pk_req_t *pr = h2o_mem_alloc_pool(&req->pool, sizeof(*pr));
        memset(pr, 0, sizeof(*pr));
        snprintf(pr->name, sizeof(pr->name), "%s", name);
        memcpy(pr->url, url, sizeof(pr->url));
        pr->base = base;
        abbr_step(app, req, pr);
        return;
    }
    char key[400], ak[400];
    snprintf(key, sizeof(key), "pk/%s/full", name);
    snprintf(ak, sizeof(ak), "pk/%s/abbr", name);
    larder_entry_t e;
    if ((app->cfg->offline || larder_fetcher_host_down(app->fetcher, url)) &&
        larder_store_get(app->store, LARDER_PROTO_NPM, key, &e) < 0 &&
        larder_store_get(app->store, LARDER_PROTO_NPM, ak, &e) == 0) {
        larder_entry_clear(&e);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-larder-cache"), 1, NULL,
                              H2O_STRLIT("MISS"));
        larder_send_error(app, req, LARDER_PROTO_NPM, 504, "Gateway Timeout",
                          "only the abbreviated packument of %s is cached (application/vnd.npm.install-v1+json), and "
                          "the full document cannot be made from it (it lacks readme, scripts and other fields); "
                          "the upstream %s is %s. Ask with Accept: application/vnd.npm.install-v1+json, or seed the "
                          "package while online.",
                          name, url, app->cfg->offline ? "switched off (offline: true)" : "unreachable");
        return;
    }
    larder_mapping_t m = {
        .proto = LARDER_PROTO_NPM,
        .key = h2o_strdup(&req->pool, key, SIZE_MAX).base,
        .url = h2o_strdup(&req->pool, url, SIZE_MAX).base,
        .ttl = app->cfg->proto[LARDER_PROTO_NPM].ttl,
        .accept = "application/json",
        .transform = transform_packument,
        .content_type = "application/json",
        .subst_from = LARDER_NPM_BASE_TOKEN,
        .subst_to = base,
    };
    larder_cache_serve(app, req, &m);
}

typedef struct tgz_req {
    char name[256];
    char file[256];
    int refreshed;
} tgz_req_t;

static void serve_tarball_after_refresh(larder_app_t *app, h2o_req_t *req, int state, void *data);

/* "sha1-<base64>" from a hex shasum */
static int shasum_integrity(const char *hex, char *out, size_t outlen)
{
    unsigned char raw[20];
    if (!hex || strlen(hex) != 40 || larder_unhex(hex, 20, raw) < 0)
        return -1;
    unsigned char b64[40];
    EVP_EncodeBlock(b64, raw, 20);
    snprintf(out, outlen, "sha1-%s", b64);
    return 0;
}

static void serve_tarball_step(larder_app_t *app, h2o_req_t *req, tgz_req_t *tr)
{
    char rkey[600];
    snprintf(rkey, sizeof(rkey), "t/%s/%s", tr->name, tr->file);
    char *rec = larder_store_meta_get(app->store, LARDER_PROTO_NPM, rkey, NULL);
    if (!rec) {
        if (!tr->refreshed && !app->cfg->offline && upstream_base(app->cfg)) {
            /* not in the packument we have: a new release? refresh the packument once, then look again */
            tr->refreshed = 1;
            char key[400], url[4400];
            snprintf(key, sizeof(key), "pk/%s/full", tr->name);
            packument_url(app->cfg, tr->name, url, sizeof(url));
            larder_fetch_req_t f = {.proto = LARDER_PROTO_NPM,
                                    .key = key,
                                    .url = url,
                                    .ttl = app->cfg->proto[LARDER_PROTO_NPM].ttl,
                                    .accept = "application/json",
                                    .transform = transform_packument,
                                    .force = 1};
            int how;
            larder_fetch_t *fe = larder_fetch_start(app->fetcher, &f, &how);
            if (fe) {
                larder_cache_after_fetch(app, req, LARDER_PROTO_NPM, key, fe, serve_tarball_after_refresh, tr);
                return;
            }
        }
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-larder-cache"), 1, NULL,
                              H2O_STRLIT("MISS"));
        larder_send_error(app, req, LARDER_PROTO_NPM, 404, "Not Found", "%s is not listed in the packument of %s%s",
                          tr->file, tr->name,
                          app->cfg->offline ? " (offline: seed the package while online)" : "");
        return;
    }
    char *integrity = rec, *shasum = strchr(rec, '\n'), *url = shasum ? strchr(shasum + 1, '\n') : NULL;
    if (!url) {
        free(rec);
        larder_send_error(app, req, LARDER_PROTO_NPM, 500, "Internal Server Error", "damaged tarball record");
        return;
    }
    *shasum++ = 0;
    *url++ = 0;
    char sha1i[64];
    const char *want = strcmp(integrity, "-") != 0 ? integrity
                       : shasum_integrity(shasum, sha1i, sizeof(sha1i)) == 0 ? sha1i
                                                                              : NULL;
    char key[600];
    snprintf(key, sizeof(key), "tgz/%s/%s", tr->name, tr->file);
    larder_mapping_t m = {
        .proto = LARDER_PROTO_NPM,
        .key = h2o_strdup(&req->pool, key, SIZE_MAX).base,
        .url = h2o_strdup(&req->pool, url, SIZE_MAX).base,
        .integrity = want ? h2o_strdup(&req->pool, want, SIZE_MAX).base : NULL,
        .flags = LARDER_ENTRY_IMMUTABLE,
        .content_type = "application/octet-stream",
    };
    free(rec);
    larder_cache_serve(app, req, &m);
}

static void serve_tarball_after_refresh(larder_app_t *app, h2o_req_t *req, int state, void *data)
{
    (void)state;
    serve_tarball_step(app, req, data);
}

static void npm_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    const char *q = memchr(rest, '?', len);
    size_t plen = q ? (size_t)(q - rest) : len;
    if (!upstream_base(app->cfg)) {
        larder_send_error(app, req, LARDER_PROTO_NPM, 503, "Service Unavailable", "npm.upstream is not configured");
        return;
    }
    if (plen == 0) {
        static const char root[] = "{\"db_name\":\"larder-npm\"}\n";
        larder_send_text(app, req, LARDER_PROTO_NPM, 200, "OK", "application/json", root, sizeof(root) - 1);
        return;
    }
    if (plen >= 2 && rest[0] == '-' && rest[1] == '/') {
        if (plen == 6 && memcmp(rest, "-/ping", 6) == 0) {
            larder_send_text(app, req, LARDER_PROTO_NPM, 200, "OK", "application/json", "{}\n", 3);
            return;
        }
        int search = plen == 11 && memcmp(rest, "-/v1/search", 11) == 0;
        int audit = plen > 18 && memcmp(rest, "-/npm/v1/security/", 18) == 0;
        if (search || audit) {
            char url[4400];
            snprintf(url, sizeof(url), "%s%.*s", upstream_base(app->cfg), (int)(len > 4000 ? 4000 : len), rest);
            larder_mapping_t m = {.proto = LARDER_PROTO_NPM,
                                  .key = search ? "search" : "audit",
                                  .url = h2o_strdup(&req->pool, url, SIZE_MAX).base,
                                  .accept = "application/json",
                                  .passthrough = 1};
            larder_cache_serve(app, req, &m);
            return;
        }
        larder_send_error(app, req, LARDER_PROTO_NPM, 404, "Not Found",
                          "larder's npm cache answers packuments, tarballs, /-/ping, /-/v1/search and audits");
        return;
    }
    if (!(req->input.method.len == 3 && memcmp(req->input.method.base, "GET", 3) == 0) &&
        !(req->input.method.len == 4 && memcmp(req->input.method.base, "HEAD", 4) == 0)) {
        larder_send_error(app, req, LARDER_PROTO_NPM, 405, "Method Not Allowed",
                          "larder is a read-only cache: publish to the upstream registry");
        return;
    }
    char name[256], file[256];
    const char *err;
    int kind = larder_npm_route(rest, plen, name, sizeof(name), file, sizeof(file), &err);
    if (kind == LARDER_NPM_PACKUMENT) {
        serve_packument(app, req, rest, name);
    } else if (kind == LARDER_NPM_TARBALL) {
        tgz_req_t *tr = h2o_mem_alloc_pool(&req->pool, sizeof(*tr));
        memset(tr, 0, sizeof(*tr));
        memcpy(tr->name, name, sizeof(tr->name));
        memcpy(tr->file, file, sizeof(tr->file));
        serve_tarball_step(app, req, tr);
    } else if (kind == LARDER_NPM_VERSION) {
        larder_send_error(app, req, LARDER_PROTO_NPM, 404, "Not Found",
                          "per-version documents are not served: ask for the packument /%s", name);
    } else {
        larder_send_error(app, req, LARDER_PROTO_NPM, 400, "Bad Request", "%s", err);
    }
}

/* ---- seeding ---- */

typedef struct seed_req {
    char name[256];
    char version[128];
    char integrity[300];
    char label[700];
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
    packument_url(app->cfg, sr->name, aurl, sizeof(aurl));
    snprintf(alabel, sizeof(alabel), "%s (abbreviated packument)", sr->label);
    larder_fetch_req_t afr = {.proto = LARDER_PROTO_NPM,
                              .key = ak,
                              .url = aurl,
                              .ttl = until > now ? until - now : 0,
                              .transform = transform_packument,
                              .force = 1,
                              .local = 1};
    larder_seed_add(c, alabel, &afr, NULL, NULL);
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
                       : shasum_integrity(shasum, sha1i, sizeof(sha1i)) == 0 ? sha1i
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

static void npm_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    seed_req_t *sr = calloc(1, sizeof(*sr));
    char err[400];
    if (!sr || larder_npm_parse_seed_ref(item->ref, sr->name, sizeof(sr->name), sr->version, sizeof(sr->version),
                                         sr->integrity, sizeof(sr->integrity), err, sizeof(err)) < 0) {
        larder_seed_fail(ctx, item->ref, sr ? err : "out of memory");
        free(sr);
        return;
    }
    if (!upstream_base(app->cfg)) {
        larder_seed_fail(ctx, item->ref, "npm.upstream is not configured");
        free(sr);
        return;
    }
    snprintf(sr->label, sizeof(sr->label), "%s@%s", sr->name, sr->version);
    char url[4400];
    packument_url(app->cfg, sr->name, url, sizeof(url));
    char key[400], label[800];
    snprintf(key, sizeof(key), "pk/%s/full", sr->name);
    snprintf(label, sizeof(label), "%s (packument)", sr->label);
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_NPM,
                             .key = key,
                             .url = url,
                             .ttl = app->cfg->proto[LARDER_PROTO_NPM].ttl,
                             .accept = "application/json",
                             .transform = transform_packument};
    larder_seed_add(ctx, label, &fr, seed_packument_done, sr);
}

const larder_protocol_t larder_protocol_npm = {
    .proto = LARDER_PROTO_NPM,
    .mount = "/npm/",
    .handle = npm_handle,
    .seed = npm_seed,
};
