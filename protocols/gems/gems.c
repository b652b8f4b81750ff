/* gems.c - rubygems.org (or another gem server) at /gems/, for bundler (`mirror.https://rubygems.org`) and
 * `gem install --source`.
 *
 * Compact index files (/versions, /names, /info/<name>) are volatile (gems.ttl) and served with what bundler
 * checks: an ETag that is the quoted MD5 of exactly the bytes served, Repr-Digest (sha-256 of the whole file, on 206
 * answers too) and byte ranges (bundler asks for `bytes=<size-1>-` of /versions and /info files it has). The MD5 is
 * computed once, when the file is stored. /info files also tell the sha256 of every .gem; .gem downloads are
 * verified against it before commit. The full index (specs.4.8.gz & co.) is volatile; gemspecs and .gem files are
 * immutable. /api/v1/dependencies answers 404, as rubygems.org does since it removed that API. */
#include "gems.h"
#include "cache.h"
#include "jobs.h"
#include "log.h"
#include "internal.h"
#include "util.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- paths ---- */

static int gem_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 200 || s[0] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.'))
            return 0;
        if (s[i] == '.' && i + 1 < n && s[i + 1] == '.')
            return 0;
    }
    return 1;
}

int larder_gems_route(const char *path, size_t len, char *arg, size_t arglen, const char **err)
{
    arg[0] = 0;
    *err = "not a gem server path";
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(path, lit, len) == 0)
    if (IS("versions"))
        return LARDER_GEMS_VERSIONS;
    if (IS("names"))
        return LARDER_GEMS_NAMES;
    if (IS("specs.4.8.gz") || IS("latest_specs.4.8.gz") || IS("prerelease_specs.4.8.gz") || IS("specs.4.8") ||
        IS("latest_specs.4.8") || IS("prerelease_specs.4.8"))
        return LARDER_GEMS_SPECS;
    if (IS("api/v1/dependencies") || IS("api/v1/dependencies.json"))
        return LARDER_GEMS_DEPENDENCIES;
#undef IS
    static const struct {
        const char *prefix, *suffix;
        int kind;
    } forms[] = {{"info/", "", LARDER_GEMS_INFO},
                 {"quick/Marshal.4.8/", ".gemspec.rz", LARDER_GEMS_GEMSPEC},
                 {"gems/", ".gem", LARDER_GEMS_GEM}};
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        size_t pl = strlen(forms[f].prefix), sl = strlen(forms[f].suffix);
        if (len <= pl + sl || memcmp(path, forms[f].prefix, pl) != 0 ||
            memcmp(path + len - sl, forms[f].suffix, sl) != 0)
            continue;
        size_t nl = len - pl - sl;
        if (!gem_name_ok(path + pl, nl) || nl + 1 > arglen) {
            *err = "not a valid gem name";
            return -1;
        }
        memcpy(arg, path + pl, nl);
        arg[nl] = 0;
        return forms[f].kind;
    }
    return -1;
}

/* ---- /info files ---- */

long larder_gems_parse_info(const char *text, size_t len, larder_gems_info_cb cb, void *ctx)
{
    if (len < 4 || memcmp(text, "---\n", 4) != 0)
        return -1;
    long n = 0;
    const char *p = text + 4, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *sp = memchr(p, ' ', (size_t)(le - p));
        const char *ve = sp ? sp : le;
        if (ve > p) {
            char version[200] = "", platform[100] = "", sha[65] = "";
            size_t vl = (size_t)(ve - p);
            if (vl < sizeof(version)) {
                memcpy(version, p, vl);
                version[vl] = 0;
                /* "1.2.3-x86_64-linux": the platform is what follows the first '-' */
                char *dash = strchr(version, '-');
                if (dash) {
                    snprintf(platform, sizeof(platform), "%s", dash + 1);
                    *dash = 0;
                }
                const char *bar = memchr(p, '|', (size_t)(le - p));
                for (const char *c = bar; c && c < le; c = memchr(c + 1, ',', (size_t)(le - c - 1))) {
                    const char *f = c + 1;
                    if (le - f > 9 && !memcmp(f, "checksum:", 9)) {
                        size_t hl = 0;
                        while (f + 9 + hl < le && isxdigit((unsigned char)f[9 + hl]) && hl < 64)
                            hl++;
                        if (hl == 64) {
                            for (size_t k = 0; k < 64; k++)
                                sha[k] = (char)tolower((unsigned char)f[9 + k]);
                            sha[64] = 0;
                        }
                    }
                }
                if (version[0] && cb)
                    cb(ctx, version, platform[0] ? platform : NULL, sha[0] ? sha : NULL);
                n++;
            }
        }
        p = le + 1;
    }
    return n;
}

/* ---- Gemfile.lock ---- */

static void push_line(char ***lines, long *n, size_t *cap, const char *s)
{
    for (long k = 0; k < *n; k++)
        if (!strcmp((*lines)[k], s))
            return;
    if ((size_t)*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *lines = realloc(*lines, *cap * sizeof(**lines)); // NOLINT(bugprone-sizeof-expression): array of strings
    }
    (*lines)[(*n)++] = strdup(s);
}

long larder_gems_lockfile_lines(const char *text, size_t len, char ***lines, char *err, size_t errlen)
{
    return larder_gems_lockfile_lines_ex(text, len, lines, NULL, NULL, err, errlen);
}

long larder_gems_lockfile_lines_ex(const char *text, size_t len, char ***lines, larder_gems_unseedable_cb cb, void *ctx,
                                   char *err, size_t errlen)
{
    *lines = NULL;
    long n = 0;
    size_t cap = 0;
    int in_gem = 0, in_specs = 0, saw_gem = 0, in_other = 0; /* in_other: 1 GIT, 2 PATH */
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t ll = (size_t)(le - p);
        if (ll && p[ll - 1] == '\r')
            ll--;
        if (ll > 0 && p[0] != ' ') { /* a section: GEM, GIT, PATH, PLATFORMS, DEPENDENCIES ... */
            in_gem = ll == 3 && !memcmp(p, "GEM", 3);
            in_other = ll == 3 && !memcmp(p, "GIT", 3) ? 1 : ll == 4 && !memcmp(p, "PATH", 4) ? 2 : 0;
            saw_gem |= in_gem;
            in_specs = 0;
        } else if ((in_gem || in_other) && ll >= 8 && !memcmp(p, "  specs:", 8)) {
            in_specs = 1;
        } else if ((in_gem || in_other) && ll >= 3 && p[0] == ' ' && p[1] == ' ' && p[2] != ' ') {
            in_specs = 0; /* "  remote: ..." */
        } else if (in_specs && in_other && ll > 4 && !memcmp(p, "    ", 4) && p[4] != ' ') {
            /* a gem from a git repository or a local path: not on the gem server */
            char what[300];
            snprintf(what, sizeof(what), "%.*s", (int)(ll - 4 > 250 ? 250 : ll - 4), p + 4);
            if (cb)
                cb(ctx, what,
                   in_other == 1 ? "from a GIT section: the gems section cannot seed git sources (the git mirror "
                                   "serves them)"
                                 : "from a PATH section (a local directory): nothing to fetch",
                   in_other == 1);
        } else if (in_specs && ll > 4 && !memcmp(p, "    ", 4) && p[4] != ' ') {
            /* "    name (version[-platform])" */
            const char *s = p + 4, *e = p + ll;
            const char *sp = memchr(s, ' ', (size_t)(e - s));
            if (sp && sp + 2 < e && sp[1] == '(' && e[-1] == ')' && gem_name_ok(s, (size_t)(sp - s))) {
                char line[512];
                snprintf(line, sizeof(line), "%.*s:%.*s", (int)(sp - s), s, (int)(e - sp - 3), sp + 2);
                push_line(lines, &n, &cap, line);
            }
        }
        p = le + 1;
    }
    if (!saw_gem) {
        snprintf(err, errlen, "no GEM section: not a Gemfile.lock, or a bundle without rubygems sources");
        for (long i = 0; i < n; i++)
            free((*lines)[i]);
        free(*lines);
        *lines = NULL;
        return -1;
    }
    return n;
}

int larder_gems_parse_seed_ref(const char *ref, char *name, size_t namelen, char *version, size_t versionlen,
                               char *err, size_t errlen)
{
    const char *c = strchr(ref, ':');
    const char *open = strchr(ref, '(');
    const char *ne, *vs, *ve;
    if (c) {
        ne = c;
        vs = c + 1;
        ve = vs + strlen(vs);
    } else if (open && strchr(open, ')')) {
        ne = open;
        while (ne > ref && ne[-1] == ' ')
            ne--;
        vs = open + 1;
        ve = strchr(open, ')');
    } else {
        snprintf(err, errlen, "'%.200s' has no version: seed name:version (as Gemfile.lock pins it)", ref);
        return -1;
    }
    size_t nl = (size_t)(ne - ref), vl = (size_t)(ve - vs);
    if (!gem_name_ok(ref, nl) || nl + 1 > namelen) {
        snprintf(err, errlen, "'%.200s': not a valid gem name", ref);
        return -1;
    }
    int ok = vl > 0 && vl + 1 <= versionlen && isdigit((unsigned char)vs[0]);
    for (size_t i = 0; ok && i < vl; i++)
        ok = isalnum((unsigned char)vs[i]) || vs[i] == '.' || vs[i] == '-' || vs[i] == '_';
    if (!ok) {
        snprintf(err, errlen, "'%.200s' is not pinned to one version: seed name:1.2.3", ref);
        return -1;
    }
    memcpy(name, ref, nl);
    name[nl] = 0;
    memcpy(version, vs, vl);
    version[vl] = 0;
    return 0;
}

/* ---- the daemon side ---- */

static const char *upstream_base(const larder_config_t *cfg) { return cfg->proto[LARDER_PROTO_GEMS].upstream; }


typedef struct info_rec {
    larder_meta_batch_t *b;
    const char *name;
} info_rec_t;

static void record_gem(void *arg, const char *version, const char *platform, const char *sha256)
{
    info_rec_t *c = arg;
    if (!sha256)
        return;
    char key[600];
    snprintf(key, sizeof(key), "g/%s-%s%s%s.gem", c->name, version, platform ? "-" : "", platform ? platform : "");
    larder_meta_batch_put(c->b, LARDER_PROTO_GEMS, key, sha256, 64);
}

/* compact index files: stored as they are; the MD5 of the bytes is recorded (bundler's ETag), and /info files
 * tell the checksum of every .gem */
static int compact_transform(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                             char **content_type, char *err, size_t errlen)
{
    if (in_len > (uint64_t)1024 * 1024 * 1024) {
        snprintf(err, errlen, "compact index file larger than 1 GiB");
        return -1;
    }
    char *buf = malloc(in_len + 1);
    if (!buf)
        return -1;
    uint64_t off = 0;
    while (off < in_len) {
        ssize_t r = pread(in_fd, buf + off, in_len - off, (off_t)off);
        if (r <= 0) {
            free(buf);
            snprintf(err, errlen, "cannot read the downloaded file");
            return -1;
        }
        off += (uint64_t)r;
    }
    buf[in_len] = 0;
    /* stored as received, so the stored digest is the body's (fe->digest) */
    unsigned char md5[16];
    unsigned int l1 = 0;
    EVP_Digest(buf, in_len, md5, &l1, EVP_md5(), NULL);
    char md5hex[33];
    larder_hex(md5, 16, md5hex);
    md5hex[32] = 0;
    char mk[100];
    snprintf(mk, sizeof(mk), "md5/%.64s", fe->digest);
    larder_meta_batch_t *b = larder_store_meta_begin(st);
    larder_meta_batch_put(b, LARDER_PROTO_GEMS, mk, md5hex, 32);
    if (strncmp(fe->key, "info/", 5) == 0) {
        info_rec_t ic = {b, fe->key + 5};
        larder_gems_parse_info(buf, in_len, record_gem, &ic);
    }
    int r = larder_store_meta_commit(st, b);
    if (r == 0 && larder_write_all(out_fd, buf, in_len) < 0) {
        snprintf(err, errlen, "writing the file failed");
        r = -1;
    }
    free(buf);
    *content_type = strdup("text/plain; charset=utf-8");
    return r;
}

void gems_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    const char *q = memchr(rest, '?', len);
    size_t plen = q ? (size_t)(q - rest) : len;
    const char *up = upstream_base(app->cfg);
    if (!up) {
        larder_send_error(app, req, LARDER_PROTO_GEMS, 503, "Service Unavailable", "gems.upstream is not configured");
        return;
    }
    if (plen == 0) {
        /* rubygems asks HEAD / to decide whether the source has a compact index (a 2xx: it has) */
        static const char root[] = "larder gem cache: compact index at versions, names, info/<gem>\n";
        larder_send_text(app, req, LARDER_PROTO_GEMS, 200, "OK", "text/plain; charset=utf-8", root, sizeof(root) - 1);
        return;
    }
    char arg[256];
    const char *err;
    int kind = larder_gems_route(rest, plen, arg, sizeof(arg), &err);
    if (kind < 0) {
        larder_send_error(app, req, LARDER_PROTO_GEMS, 404, "Not Found",
                          "%s: larder's gem cache answers /versions, /names, /info/<gem>, the specs.4.8.gz indexes, "
                          "/quick/Marshal.4.8/ gemspecs and /gems/<gem>.gem",
                          err);
        return;
    }
    if (kind == LARDER_GEMS_DEPENDENCIES) {
        larder_send_error(app, req, LARDER_PROTO_GEMS, 404, "Not Found",
                          "the dependency API was removed from rubygems.org; use the compact index (/versions, /info)");
        return;
    }
    char key[400], url[4400];
    snprintf(key, sizeof(key), "%.*s", (int)plen, rest);
    snprintf(url, sizeof(url), "%s%.*s", up, (int)plen, rest);
    larder_mapping_t m = {.proto = LARDER_PROTO_GEMS, .ttl = app->cfg->proto[LARDER_PROTO_GEMS].ttl};
    switch (kind) {
    case LARDER_GEMS_VERSIONS:
    case LARDER_GEMS_NAMES:
    case LARDER_GEMS_INFO:
        m.transform = compact_transform;
        m.md5_etag = 1;
        m.repr_digest = 1;
        m.range_full = 1;
        m.content_type = "text/plain; charset=utf-8";
        break;
    case LARDER_GEMS_SPECS:
        m.content_type = "application/octet-stream";
        break;
    case LARDER_GEMS_GEMSPEC:
        m.flags = LARDER_ENTRY_IMMUTABLE;
        m.content_type = "application/octet-stream";
        break;
    case LARDER_GEMS_GEM: {
        m.flags = LARDER_ENTRY_IMMUTABLE;
        m.content_type = "application/octet-stream";
        char gk[300];
        snprintf(gk, sizeof(gk), "g/%s.gem", arg);
        char *sha = larder_store_meta_get(app->store, LARDER_PROTO_GEMS, gk, NULL);
        if (sha && larder_is_sha256_hex(sha))
            m.sha256 = h2o_strdup(&req->pool, sha, SIZE_MAX).base;
        free(sha);
        break;
    }
    default:
        break;
    }
    m.key = h2o_strdup(&req->pool, key, SIZE_MAX).base;
    m.url = h2o_strdup(&req->pool, url, SIZE_MAX).base;
    larder_cache_serve(app, req, &m);
}

/* ---- seeding ---- */

typedef struct gem_seed {
    char name[256];
    char version[128]; /* "1.2.3" or "1.2.3-x86_64-linux" */
    char label[400];
    int info_only; /* "<name> --info-only": the indexes and /info/<name>, no .gem */
} gem_seed_t;

/* "<name> --info-only": 1 with the name copied, else 0 */
static int info_only_ref(const char *ref, char *name, size_t namelen)
{
    static const char opt[] = " " LARDER_GEMS_INFO_ONLY;
    size_t rl = strlen(ref), ol = sizeof(opt) - 1;
    if (rl <= ol || strcmp(ref + rl - ol, opt) != 0 || !gem_name_ok(ref, rl - ol) || rl - ol >= namelen)
        return 0;
    memcpy(name, ref, rl - ol);
    name[rl - ol] = 0;
    return 1;
}

static void seed_fetch(larder_seed_ctx_t *c, const char *path, const char *label, uint32_t flags, const char *sha256,
                       larder_transform_fn tf, larder_seed_then_fn then, void *data)
{
    larder_app_t *app = larder_seed_app(c);
    char url[4400];
    snprintf(url, sizeof(url), "%s%s", upstream_base(app->cfg), path);
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_GEMS,
                             .key = path,
                             .url = url,
                             .sha256 = sha256,
                             .entry_flags = flags,
                             .ttl = app->cfg->proto[LARDER_PROTO_GEMS].ttl,
                             .transform = tf};
    larder_seed_add(c, label, &fr, then, data);
}

static void seed_info_done(larder_seed_ctx_t *c, int proto, const char *key, void *data)
{
    (void)proto;
    (void)key;
    gem_seed_t *s = data;
    if (s->info_only)
        return;
    larder_app_t *app = larder_seed_app(c);
    char gk[600];
    snprintf(gk, sizeof(gk), "g/%s-%s.gem", s->name, s->version);
    char *sha = larder_store_meta_get(app->store, LARDER_PROTO_GEMS, gk, NULL);
    if (!sha || !larder_is_sha256_hex(sha)) {
        free(sha);
        larder_seed_fail(c, s->label, "this version is not listed in the gem's /info file");
        return;
    }
    char path[600], label[700];
    snprintf(path, sizeof(path), "gems/%s-%s.gem", s->name, s->version);
    snprintf(label, sizeof(label), "%s (.gem)", s->label);
    seed_fetch(c, path, label, LARDER_ENTRY_IMMUTABLE, sha, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "quick/Marshal.4.8/%s-%s.gemspec.rz", s->name, s->version);
    snprintf(label, sizeof(label), "%s (gemspec)", s->label);
    seed_fetch(c, path, label, LARDER_ENTRY_IMMUTABLE, NULL, NULL, NULL, NULL);
    free(sha);
}

void gems_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    gem_seed_t *s = calloc(1, sizeof(*s));
    char err[400];
    if (s && info_only_ref(item->ref, s->name, sizeof(s->name)))
        s->info_only = 1;
    else if (!s || larder_gems_parse_seed_ref(item->ref, s->name, sizeof(s->name), s->version, sizeof(s->version),
                                              err, sizeof(err)) < 0) {
        larder_seed_fail(ctx, item->ref, s ? err : "out of memory");
        free(s);
        return;
    }
    if (!upstream_base(app->cfg)) {
        larder_seed_fail(ctx, item->ref, "gems.upstream is not configured");
        free(s);
        return;
    }
    snprintf(s->label, sizeof(s->label), "%s%s%s", s->name, s->info_only ? "" : " ", s->version);
    /* the indexes every client starts from (cached after the first item: pinned at once) */
    static const char *const shared[] = {"versions", "names", "specs.4.8.gz", "latest_specs.4.8.gz",
                                         "prerelease_specs.4.8.gz"};
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
        seed_fetch(ctx, shared[i], shared[i], 0, NULL, i < 2 ? compact_transform : NULL, NULL, NULL);
    char path[400], label[500];
    snprintf(path, sizeof(path), "info/%s", s->name);
    snprintf(label, sizeof(label), "%s (/info)", s->label);
    seed_fetch(ctx, path, label, 0, NULL, compact_transform, seed_info_done, s);
}

/* ---- the pin_spec hook: a pinned entry back into gems lines ---- */

/* remove the gems items whose ref is `ref` */
static void drop_items(larder_seed_spec_t *spec, const char *ref)
{
    size_t o = 0;
    for (size_t i = 0; i < spec->nitems; i++) {
        larder_seed_item_t *it = &spec->items[i];
        if (it->proto == LARDER_PROTO_GEMS && !strcmp(it->ref, ref)) {
            free(it->ref);
            free(it->sha256);
            continue;
        }
        spec->items[o++] = *it;
    }
    spec->nitems = o;
}

int larder_gems_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                         char *why, size_t whylen)
{
    (void)cfg;
    (void)e;
    static const char *const shared[] = {"versions", "names", "specs.4.8.gz", "latest_specs.4.8.gz",
                                         "prerelease_specs.4.8.gz"};
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
        if (!strcmp(key, shared[i]))
            return 0; /* every gems item fetches them */
    char line[700];
    if (!strncmp(key, "info/", 5)) {
        const char *name = key + 5;
        size_t nl = strlen(name);
        if (!gem_name_ok(name, nl)) {
            snprintf(why, whylen, "not a gem name");
            return -1;
        }
        /* the .gem files sort before info/: a gem of this name already brings its /info */
        for (size_t i = 0; i < spec->nitems; i++)
            if (spec->items[i].proto == LARDER_PROTO_GEMS && !strncmp(spec->items[i].ref, name, nl) &&
                spec->items[i].ref[nl] == ':')
                return 0;
        snprintf(line, sizeof(line), "%s %s", name, LARDER_GEMS_INFO_ONLY);
        return larder_seed_append(spec, LARDER_PROTO_GEMS, line, NULL);
    }
    /* gems/<name>-<version>[-<platform>].gem and quick/Marshal.4.8/<name>-<version>.gemspec.rz: the version starts
     * at the first '-' followed by a digit */
    const char *file = NULL;
    size_t fl = 0;
    if (!strncmp(key, "gems/", 5) && strlen(key) > 9 && !strcmp(key + strlen(key) - 4, ".gem")) {
        file = key + 5;
        fl = strlen(file) - 4;
    } else if (!strncmp(key, "quick/Marshal.4.8/", 18) && strlen(key) > 30 &&
               !strcmp(key + strlen(key) - 11, ".gemspec.rz")) {
        file = key + 18;
        fl = strlen(file) - 11;
    }
    size_t nl = 0;
    while (file && nl + 1 < fl && !(file[nl] == '-' && isdigit((unsigned char)file[nl + 1])))
        nl++;
    char name[256], version[128], err[300];
    if (!file || nl + 1 >= fl || fl >= sizeof(line)) {
        snprintf(why, whylen, "not a .gem or gemspec file name (<name>-<version>)");
        return -1;
    }
    snprintf(line, sizeof(line), "%.*s:%.*s", (int)nl, file, (int)(fl - nl - 1), file + nl + 1);
    if (larder_gems_parse_seed_ref(line, name, sizeof(name), version, sizeof(version), err, sizeof(err)) < 0) {
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    snprintf(err, sizeof(err), "%s %s", name, LARDER_GEMS_INFO_ONLY);
    drop_items(spec, err);
    return larder_seed_append(spec, LARDER_PROTO_GEMS, line, NULL);
}
