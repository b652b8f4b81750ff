/* apt.c - Debian/Ubuntu repositories, as an HTTP proxy for apt (absolute-URI requests, `Acquire::http::Proxy`) and
 * under /apt/<host>/<path>; both map to the cache key <host><path>, so the two kinds of clients share entries.
 *
 * Only hosts in apt.allow and only repository paths (dists/, pool/) are fetched. pool/ files and by-hash/ indexes
 * are immutable; Release files are volatile (apt.ttl). When a Release file is stored, its SHA256 list is recorded
 * (meta "r/<host><prefix>/dists/<suite>/<file>"), and later requests for an index it lists are served from the
 * by-hash copy (or a copy keyed by that hash): every client sees indexes consistent with the Release it got, and a
 * new Release never mixes with old indexes. When a Packages index is stored, the SHA256 of each package it lists is
 * recorded (meta "d/<host><prefix>/<Filename>"), and .deb downloads are verified against it before commit.
 * Seeding resolves the dependency closure of package names over the repositories' Packages indexes, taking for
 * each package the version apt would install (its candidate: see "the package universe" below). */
#include "apt.h"
#include "apt_version.h"
#include "cache.h"
#include "jobs.h"
#include "log.h"
#include "protocols.h"
#include "util.h"

#include <ctype.h>
#include <inttypes.h>
#include <lzma.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_INDEX ((size_t)1024 * 1024 * 1024) /* decompressed Packages size cap */

/* ---- request mapping ---- */

static int path_char_ok(unsigned char ch)
{
    return ch != 0 && (isalnum(ch) || strchr("-._~+/:@=,", ch) != NULL);
}

int larder_apt_map(const char *target, size_t len, int proxy_form, larder_apt_target_t *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *p = target, *end = target + len;
    if (proxy_form) {
        if (len >= 7 && strncasecmp(p, "http://", 7) == 0) {
            p += 7;
        } else if (len >= 8 && strncasecmp(p, "https://", 8) == 0) {
            out->https = 1;
            p += 8;
        } else {
            snprintf(err, errlen, "not an http:// URL");
            return -1;
        }
    } else if ((size_t)(end - p) >= 6 && strncmp(p, "https/", 6) == 0) {
        out->https = 1;
        p += 6;
    }
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (!slash || slash == p || (size_t)(slash - p) >= sizeof(out->host)) {
        snprintf(err, errlen, "expected <host>/<path>");
        return -1;
    }
    size_t hl = (size_t)(slash - p);
    for (size_t i = 0; i < hl; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == ':' || ch == '_' || ch == '[' || ch == ']')) {
            snprintf(err, errlen, "not a host name");
            return -1;
        }
        out->host[i] = (char)tolower(ch);
    }
    out->host[hl] = 0;
    /* a default port is the same host */
    size_t sl = strlen(out->host);
    if (!out->https && sl > 3 && strcmp(out->host + sl - 3, ":80") == 0)
        out->host[sl - 3] = 0;
    else if (out->https && sl > 4 && strcmp(out->host + sl - 4, ":443") == 0)
        out->host[sl - 4] = 0;
    const char *path = slash;
    size_t pl = (size_t)(end - path);
    if (memchr(path, '?', pl) || memchr(path, '#', pl)) {
        snprintf(err, errlen, "queries are not part of a repository path");
        return -1;
    }
    if (pl >= sizeof(out->path)) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    /* percent-escapes are decoded (apt writes '+' as %2b), into characters a repository path may contain; an
     * encoded '/' or anything else odd is refused */
    size_t o = 0;
    for (size_t i = 0; i < pl; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch == '%') {
            unsigned int v;
            if (i + 2 >= pl || !isxdigit((unsigned char)path[i + 1]) || !isxdigit((unsigned char)path[i + 2]) ||
                sscanf(path + i + 1, "%2x", &v) != 1 || v == '/' || v == '%' || !path_char_ok((unsigned char)v)) {
                snprintf(err, errlen, "this percent-encoding is not part of a repository path");
                return -1;
            }
            ch = (unsigned char)v;
            i += 2;
        } else if (!path_char_ok(ch)) {
            snprintf(err, errlen, "unexpected character in the path");
            return -1;
        }
        out->path[o++] = (char)ch;
    }
    out->path[o] = 0;
    pl = o;
    for (size_t i = 0; i + 1 < pl; i++) {
        if (out->path[i] == '/' && out->path[i + 1] == '/') {
            snprintf(err, errlen, "empty path segment");
            return -1;
        }
        if (out->path[i] == '/' && out->path[i + 1] == '.') {
            snprintf(err, errlen, "path segments may not start with '.'");
            return -1;
        }
    }
    if (out->path[pl - 1] == '/') {
        snprintf(err, errlen, "a directory is not a repository file");
        return -1;
    }
    /* the repository prefix ends where dists/ or pool/ starts */
    const char *d = strstr(out->path, "/dists/");
    const char *pool = strstr(out->path, "/pool/");
    if (d && (!pool || d < pool)) {
        out->prefix_len = (size_t)(d - out->path);
        const char *s = d + 7, *se = strchr(s, '/');
        if (!se || (size_t)(se - s) >= sizeof(out->suite) || se == s) {
            snprintf(err, errlen, "expected dists/<suite>/<file>");
            return -1;
        }
        memcpy(out->suite, s, (size_t)(se - s));
        out->suite[se - s] = 0;
        out->relpath = se + 1;
        const char *base = strrchr(out->path, '/') + 1;
        if (strstr(out->relpath, "/by-hash/") || strncmp(out->relpath, "by-hash/", 8) == 0)
            out->kind = LARDER_APT_BYHASH;
        else if (!strchr(out->relpath, '/') &&
                 (!strcmp(base, "InRelease") || !strcmp(base, "Release") || !strcmp(base, "Release.gpg")))
            out->kind = LARDER_APT_RELEASE;
        else
            out->kind = LARDER_APT_INDEX;
        return 0;
    }
    if (pool) {
        out->prefix_len = (size_t)(pool - out->path);
        out->kind = LARDER_APT_POOL;
        return 0;
    }
    snprintf(err, errlen, "not a repository path (expected .../dists/... or .../pool/...)");
    return -1;
}

/* ---- Release files ---- */

/* the value of a "Field: value" line at the start of a line, or NULL; *vlen its length */
static const char *field_at(const char *line, const char *end, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    if ((size_t)(end - line) <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    if (v >= end) {
        *vlen = 0;
        return v;
    }
    const char *e = memchr(v, '\n', (size_t)(end - v));
    if (!e)
        e = end;
    while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *vlen = (size_t)(e - v);
    return v;
}

int larder_apt_parse_release(const char *text, size_t len, larder_apt_release_cb cb, void *ctx, int *by_hash)
{
    *by_hash = 0;
    const char *p = text, *end = text + len;
    int in_sha = 0, n = 0, seen_field = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t vlen;
        const char *v;
        if (p < le && (*p == ' ' || *p == '\t')) {
            if (in_sha) {
                /* " <sha256> <size> <path>" */
                char sha[65], path[1024];
                unsigned long long size;
                char line[1200];
                size_t ll = (size_t)(le - p) < sizeof(line) - 1 ? (size_t)(le - p) : sizeof(line) - 1;
                memcpy(line, p, ll);
                line[ll] = 0;
                if (sscanf(line, " %64s %llu %1023s", sha, &size, path) == 3 && larder_is_sha256_hex(sha)) {
                    for (char *c = sha; *c; c++)
                        *c = (char)tolower((unsigned char)*c);
                    if (cb)
                        cb(ctx, path, sha, size);
                    n++;
                }
            }
        } else {
            in_sha = 0;
            if (le - p >= 7 && strncmp(p, "SHA256:", 7) == 0) {
                in_sha = 1;
                seen_field = 1;
            } else if ((v = field_at(p, le, "Acquire-By-Hash", &vlen))) {
                *by_hash = vlen == 3 && strncasecmp(v, "yes", 3) == 0;
                seen_field = 1;
            } else if (field_at(p, le, "Suite", &vlen) || field_at(p, le, "Codename", &vlen) ||
                       field_at(p, le, "Components", &vlen)) {
                seen_field = 1;
            }
        }
        p = le + 1;
    }
    return seen_field ? n : -1;
}

/* ---- Packages files ---- */

long larder_apt_parse_packages(const char *text, size_t len, larder_apt_pkg_cb cb, void *ctx)
{
    const char *p = text, *end = text + len;
    long n = 0;
    while (p < end) {
        /* one stanza: up to an empty line */
        const char *s = p;
        const char *se = s;
        while (se < end) {
            const char *nl = memchr(se, '\n', (size_t)(end - se));
            if (!nl) {
                se = end;
                break;
            }
            if (nl + 1 < end && (nl[1] == '\n' || (nl[1] == '\r' && nl + 2 < end && nl[2] == '\n'))) {
                se = nl + 1;
                break;
            }
            se = nl + 1;
        }
        /* fields we need; values copied so they are NUL-terminated */
        static const char *const names[] = {"Package",      "Version", "Filename",   "SHA256",    "Depends",
                                            "Pre-Depends",  "Provides", "Architecture", "Size",     "Multi-Arch",
                                            "Essential",    "Priority"};
        enum { NF = sizeof(names) / sizeof(names[0]) };
        char *vals[NF] = {0};
        for (const char *l = s; l < se;) {
            const char *nl = memchr(l, '\n', (size_t)(se - l));
            const char *le = nl ? nl : se;
            for (int f = 0; f < NF; f++) {
                size_t vl;
                const char *v = vals[f] ? NULL : field_at(l, le, names[f], &vl);
                if (v) {
                    vals[f] = strndup(v, vl);
                    break;
                }
            }
            l = le + 1;
        }
        if (vals[0] && *vals[0]) {
            larder_apt_pkg_t pk = {vals[0], vals[1], vals[2],  vals[3],  vals[4],
                                   vals[5], vals[6], vals[7],  vals[8] ? strtoull(vals[8], NULL, 10) : 0,
                                   vals[9], vals[10], vals[11]};
            if (cb)
                cb(ctx, &pk);
            n++;
        }
        for (int f = 0; f < NF; f++)
            free(vals[f]);
        p = se;
        while (p < end && (*p == '\n' || *p == '\r'))
            p++;
    }
    return n;
}

/* double a full output buffer, up to max + 1 bytes (one more than allowed, so an overflow shows): 1 grown,
 * 0 already at the limit, -1 out of memory */
static int grow(char **out, size_t *cap, size_t max)
{
    if (*cap > max)
        return 0;
    size_t ncap = *cap * 2 > max + 1 ? max + 1 : *cap * 2;
    char *nb = realloc(*out, ncap + 1);
    if (!nb)
        return -1;
    *out = nb;
    *cap = ncap;
    return 1;
}

char *larder_apt_decompress(const char *in, size_t len, size_t max, size_t *outlen)
{
    size_t cap = len * 4 + 4096, n = 0;
    if (cap > max + 1)
        cap = max + 1;
    char *out = malloc(cap + 1);
    if (!out)
        return NULL;
    const unsigned char *u = (const unsigned char *)in;
    if (len >= 6 && memcmp(u, "\xFD" "7zXZ\0", 6) == 0) {
        lzma_stream s = LZMA_STREAM_INIT;
        if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK)
            goto bad;
        s.next_in = u;
        s.avail_in = len;
        lzma_ret r;
        do {
            int g = n == cap ? grow(&out, &cap, max) : 1;
            if (g < 0) {
                lzma_end(&s);
                goto bad;
            }
            if (g == 0)
                break;
            s.next_out = (uint8_t *)out + n;
            s.avail_out = cap - n;
            r = lzma_code(&s, LZMA_FINISH);
            n = cap - s.avail_out;
        } while (r == LZMA_OK);
        lzma_end(&s);
        if (r != LZMA_STREAM_END || n > max)
            goto bad;
    } else if (len >= 2 && u[0] == 0x1f && u[1] == 0x8b) {
        z_stream z;
        memset(&z, 0, sizeof(z));
        if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
            goto bad;
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)len;
        int r;
        do {
            int g = n == cap ? grow(&out, &cap, max) : 1;
            if (g < 0) {
                inflateEnd(&z);
                goto bad;
            }
            if (g == 0)
                break;
            z.next_out = (Bytef *)out + n;
            z.avail_out = (uInt)(cap - n);
            r = inflate(&z, Z_NO_FLUSH);
            n = cap - z.avail_out;
        } while (r == Z_OK);
        inflateEnd(&z);
        if (r != Z_STREAM_END || n > max)
            goto bad;
    } else {
        if (len > max)
            goto bad;
        if (len > cap) {
            char *nb = realloc(out, len + 1);
            if (!nb)
                goto bad;
            out = nb;
        }
        memcpy(out, in, len);
        n = len;
    }
    out[n] = 0;
    *outlen = n;
    return out;
bad:
    free(out);
    return NULL;
}

/* ---- the package universe and its closure ----
 *
 * What apt would install, without a dpkg status (nothing counts as installed) and without preferences files (every
 * source at priority 500): the candidate of a package name is its highest version (Debian ordering, apt_version.c)
 * among the stanzas of the native architecture or `all`, whichever repository or suite lists it; equal versions go
 * to the first stanza added (the caller adds indexes in the order of its repositories, never in arrival order). A
 * dependency group "a (>= 1) | b:any | c" is satisfied by its first alternative that is satisfied: by the candidate
 * of that name if the candidate meets the version constraint (and, for :any, is Multi-Arch: allowed), else by a
 * package whose candidate Provides the name (with a matching "(= v)" for a versioned dependency), Essential and
 * higher Priority first, then the first added. apt considers only candidates, so does this closure. */

typedef struct upkg {
    char *name, *version, *filename, *sha256, *depends, *pre_depends, *arch;
    uint64_t size;
    int repo;
    int ma_allowed; /* Multi-Arch: allowed, so it satisfies name:any */
    int rank;       /* among providers, lower first: Essential, then Priority required..extra */
    int mark;
} upkg_t;

typedef struct prov {
    char *name;    /* the package's own name (real) or a name it Provides */
    char *version; /* for a Provides "name (= v)": v; NULL otherwise */
    int real;
    size_t pkg; /* index into pkgs */
} prov_t;

struct larder_apt_universe {
    upkg_t *pkgs;
    size_t n, cap;
    prov_t *provs; /* every name a package answers to: its own and its Provides */
    size_t np, pcap;
    size_t *table; /* open addressing over provs by name: index+1, 0 empty */
    size_t tcap;
    char arch[64]; /* the native architecture; "" accepts every architecture */
};

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

larder_apt_universe_t *larder_apt_universe_new(void) { return calloc(1, sizeof(larder_apt_universe_t)); }

void larder_apt_universe_set_arch(larder_apt_universe_t *u, const char *arch)
{
    snprintf(u->arch, sizeof(u->arch), "%s", arch ? arch : "");
}

void larder_apt_universe_free(larder_apt_universe_t *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->pkgs[i].name);
        free(u->pkgs[i].version);
        free(u->pkgs[i].filename);
        free(u->pkgs[i].sha256);
        free(u->pkgs[i].depends);
        free(u->pkgs[i].pre_depends);
        free(u->pkgs[i].arch);
    }
    for (size_t i = 0; i < u->np; i++) {
        free(u->provs[i].name);
        free(u->provs[i].version);
    }
    free(u->pkgs);
    free(u->provs);
    free(u->table);
    free(u);
}

static void table_insert(larder_apt_universe_t *u, size_t pi)
{
    const char *nm = u->provs[pi].name;
    size_t i = (size_t)(hash_name(nm, strlen(nm)) & (u->tcap - 1));
    while (u->table[i])
        i = (i + 1) & (u->tcap - 1);
    u->table[i] = pi + 1;
}

static void add_prov(larder_apt_universe_t *u, const char *name, size_t len, const char *version, size_t vlen,
                     int real, size_t pkg)
{
    if (len == 0)
        return;
    if (u->np == u->pcap) {
        u->pcap = u->pcap ? u->pcap * 2 : 1024;
        u->provs = realloc(u->provs, u->pcap * sizeof(*u->provs));
    }
    u->provs[u->np].name = strndup(name, len);
    u->provs[u->np].version = version && vlen ? strndup(version, vlen) : NULL;
    u->provs[u->np].real = real;
    u->provs[u->np].pkg = pkg;
    u->np++;
    if (u->np * 2 > u->tcap) {
        size_t ncap = u->tcap ? u->tcap * 2 : 2048;
        while (u->np * 2 > ncap)
            ncap *= 2;
        free(u->table);
        u->table = calloc(ncap, sizeof(*u->table));
        u->tcap = ncap;
        for (size_t i = 0; i < u->np; i++)
            table_insert(u, i);
    } else {
        table_insert(u, u->np - 1);
    }
}

/* one relation "name[:arch] [(op version)] [arch list] [<profiles>]" */
typedef struct dep {
    char name[256];
    char arch[64]; /* "" (native), "any", or an architecture ("native" is read as "") */
    char op[3];    /* "" when unversioned */
    char ver[256];
} dep_t;

static int is_sp(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* parse one relation in [a, ae); 0, or -1 when there is no name */
static int parse_rel(const char *a, const char *ae, dep_t *d)
{
    memset(d, 0, sizeof(*d));
    while (a < ae && is_sp(*a))
        a++;
    const char *ne = a;
    while (ne < ae && !is_sp(*ne) && *ne != '(' && *ne != '[' && *ne != '<' && *ne != ':')
        ne++;
    if (ne == a || (size_t)(ne - a) >= sizeof(d->name))
        return -1;
    memcpy(d->name, a, (size_t)(ne - a));
    a = ne;
    if (a < ae && *a == ':') {
        const char *qe = ++a;
        while (qe < ae && !is_sp(*qe) && *qe != '(' && *qe != '[' && *qe != '<')
            qe++;
        if ((size_t)(qe - a) < sizeof(d->arch))
            memcpy(d->arch, a, (size_t)(qe - a));
        if (!strcmp(d->arch, "native"))
            d->arch[0] = 0;
        a = qe;
    }
    while (a < ae && is_sp(*a))
        a++;
    if (a < ae && *a == '(') {
        const char *close = memchr(a, ')', (size_t)(ae - a));
        const char *ce = close ? close : ae;
        a++;
        while (a < ce && is_sp(*a))
            a++;
        size_t ol = 0;
        while (a < ce && ol < 2 && strchr("<=>", *a))
            d->op[ol++] = *a++;
        while (a < ce && is_sp(*a))
            a++;
        const char *ve = a;
        while (ve < ce && !is_sp(*ve))
            ve++;
        if (ol && ve > a && (size_t)(ve - a) < sizeof(d->ver))
            memcpy(d->ver, a, (size_t)(ve - a));
        else
            d->op[0] = 0; /* "(>=)" or an odd one: read as unversioned rather than unsatisfiable */
    }
    return 0;
}

static int priority_rank(const char *p)
{
    static const char *const names[] = {"required", "important", "standard", "optional", "extra"};
    for (int i = 0; p && i < 5; i++)
        if (!strcasecmp(p, names[i]))
            return i;
    return 5;
}

typedef struct add_ctx {
    larder_apt_universe_t *u;
    int repo;
} add_ctx_t;

static void add_pkg(void *arg, const larder_apt_pkg_t *p)
{
    add_ctx_t *c = arg;
    larder_apt_universe_t *u = c->u;
    if (!p->filename)
        return;
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 1024;
        u->pkgs = realloc(u->pkgs, u->cap * sizeof(*u->pkgs));
    }
    upkg_t *k = &u->pkgs[u->n];
    memset(k, 0, sizeof(*k));
    k->name = strdup(p->package);
    k->version = strdup(p->version ? p->version : "");
    k->filename = strdup(p->filename);
    k->sha256 = p->sha256 ? strdup(p->sha256) : NULL;
    k->depends = p->depends ? strdup(p->depends) : NULL;
    k->pre_depends = p->pre_depends ? strdup(p->pre_depends) : NULL;
    k->arch = p->architecture && *p->architecture ? strdup(p->architecture) : NULL;
    k->size = p->size;
    k->repo = c->repo;
    k->ma_allowed = p->multi_arch && !strcasecmp(p->multi_arch, "allowed");
    k->rank = (p->essential && !strcasecmp(p->essential, "yes") ? 0 : 10) + priority_rank(p->priority);
    size_t idx = u->n++;
    add_prov(u, p->package, strlen(p->package), NULL, 0, 1, idx);
    /* Provides: "a, b (= 1.0), c" */
    for (const char *s = p->provides; s && *s;) {
        const char *e = strchr(s, ',');
        if (!e)
            e = s + strlen(s);
        dep_t d;
        if (parse_rel(s, e, &d) == 0)
            add_prov(u, d.name, strlen(d.name), !strcmp(d.op, "=") ? d.ver : NULL, strlen(d.ver), 0, idx);
        s = *e ? e + 1 : e;
    }
}

long larder_apt_universe_add(larder_apt_universe_t *u, const char *text, size_t len, int repo)
{
    add_ctx_t c = {u, repo};
    return larder_apt_parse_packages(text, len, add_pkg, &c);
}

/* whether a stanza's architecture fits a relation's qualifier ("" and "any": the native one; `all` always) */
static int arch_ok(const larder_apt_universe_t *u, const upkg_t *p, const char *want)
{
    if (!p->arch || !strcmp(p->arch, "all"))
        return 1;
    const char *a = want[0] && strcmp(want, "any") != 0 ? want : u->arch;
    return !a[0] || !strcmp(p->arch, a);
}

static int name_is(const char *s, const char *name, size_t len)
{
    return strlen(s) == len && memcmp(s, name, len) == 0;
}

/* the candidate of a real package name: its highest version; at equal versions the first added */
static long candidate(const larder_apt_universe_t *u, const char *name, size_t len, const char *arch)
{
    if (!u->tcap)
        return -1;
    long best = -1;
    for (size_t i = (size_t)(hash_name(name, len) & (u->tcap - 1)); u->table[i]; i = (i + 1) & (u->tcap - 1)) {
        const prov_t *pv = &u->provs[u->table[i] - 1];
        if (!pv->real || !name_is(pv->name, name, len) || !arch_ok(u, &u->pkgs[pv->pkg], arch))
            continue;
        if (best < 0) {
            best = (long)pv->pkg;
            continue;
        }
        int c = larder_apt_vercmp(u->pkgs[pv->pkg].version, u->pkgs[best].version);
        if (c > 0 || (c == 0 && pv->pkg < (size_t)best))
            best = (long)pv->pkg;
    }
    return best;
}

static int is_candidate(const larder_apt_universe_t *u, size_t idx, const char *arch)
{
    const upkg_t *p = &u->pkgs[idx];
    return candidate(u, p->name, strlen(p->name), arch) == (long)idx;
}

/* the package satisfying one alternative, or -1; *cand the candidate of the name itself (or -1), *known whether
 * anything answers to the name at all */
static long resolve_rel(const larder_apt_universe_t *u, const dep_t *d, long *cand, int *known)
{
    size_t len = strlen(d->name);
    int any = !strcmp(d->arch, "any");
    long c = candidate(u, d->name, len, d->arch);
    *cand = c;
    *known = c >= 0;
    if (c >= 0 && (!any || u->pkgs[c].ma_allowed) &&
        (!d->op[0] || larder_apt_relation_ok(u->pkgs[c].version, d->op, d->ver) == 1))
        return c;
    if (!u->tcap)
        return -1;
    long best = -1;
    for (size_t i = (size_t)(hash_name(d->name, len) & (u->tcap - 1)); u->table[i]; i = (i + 1) & (u->tcap - 1)) {
        const prov_t *pv = &u->provs[u->table[i] - 1];
        if (pv->real || !name_is(pv->name, d->name, len))
            continue;
        *known = 1;
        const upkg_t *p = &u->pkgs[pv->pkg];
        if (!arch_ok(u, p, d->arch) || (any && !p->ma_allowed) || !is_candidate(u, pv->pkg, d->arch))
            continue;
        if (d->op[0] && (!pv->version || larder_apt_relation_ok(pv->version, d->op, d->ver) != 1))
            continue; /* a versioned dependency wants a versioned Provides */
        if (best < 0 || p->rank < u->pkgs[best].rank || (p->rank == u->pkgs[best].rank && pv->pkg < (size_t)best))
            best = (long)pv->pkg;
    }
    return best;
}

typedef struct work {
    size_t *q;
    size_t n, cap;
    char **missing; /* names already reported missing (each once) */
    size_t nmissing;
} work_t;

static int first_report(work_t *w, const char *name)
{
    for (size_t i = 0; i < w->nmissing; i++)
        if (!strcmp(w->missing[i], name))
            return 0;
    w->missing = realloc(w->missing, (w->nmissing + 1) * sizeof(char *)); // NOLINT(bugprone-sizeof-expression)
    w->missing[w->nmissing++] = strdup(name);
    return 1;
}

static void push_pkg(larder_apt_universe_t *u, work_t *w, size_t idx)
{
    if (u->pkgs[idx].mark)
        return;
    u->pkgs[idx].mark = 1;
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->q = realloc(w->q, w->cap * sizeof(*w->q));
    }
    w->q[w->n++] = idx;
}

/* "a (>= 1) | b, c:any, d" -> resolve each group */
static void resolve_deps(larder_apt_universe_t *u, work_t *w, const char *deps, const char *field, const upkg_t *owner,
                         larder_apt_missing_cb missing, void *ctx)
{
    for (const char *g = deps; g && *g;) {
        const char *ge = strchr(g, ',');
        if (!ge)
            ge = g + strlen(g);
        int done = 0, known = 0;
        long first_cand = -1;
        char first[256] = "";
        for (const char *a = g; a < ge && !done;) {
            const char *ae = memchr(a, '|', (size_t)(ge - a));
            if (!ae)
                ae = ge;
            dep_t d;
            if (parse_rel(a, ae, &d) == 0) {
                if (!first[0])
                    snprintf(first, sizeof(first), "%s", d.name);
                long cand;
                int k;
                long idx = resolve_rel(u, &d, &cand, &k);
                if (idx >= 0) {
                    push_pkg(u, w, (size_t)idx);
                    done = 1;
                }
                known |= k;
                if (first_cand < 0)
                    first_cand = cand;
            }
            a = ae < ge ? ae + 1 : ge;
        }
        if (!done && first[0]) {
            if (!known) {
                if (missing && first_report(w, first))
                    missing(ctx, first, owner->name, NULL);
            } else {
                /* apt would take the candidates and then fail on the broken dependency: pin the candidate of the
                 * first alternative that has one, and say why the dependency does not hold */
                if (first_cand >= 0)
                    push_pkg(u, w, (size_t)first_cand);
                const char *gs = g, *gend = ge;
                while (gs < gend && is_sp(*gs))
                    gs++;
                while (gend > gs && is_sp(gend[-1]))
                    gend--;
                char rel[320], why[900];
                snprintf(rel, sizeof(rel), "%.*s", (int)(gend - gs) > 300 ? 300 : (int)(gend - gs), gs);
                int wl = snprintf(why, sizeof(why), "needed by %s %s (%s: %s), but no candidate satisfies it",
                                  owner->name, owner->version, field, rel);
                if (first_cand >= 0 && wl > 0 && (size_t)wl < sizeof(why))
                    snprintf(why + wl, sizeof(why) - (size_t)wl, ": the candidate of %s is %s", first,
                             u->pkgs[first_cand].version);
                if (missing && first_report(w, rel))
                    missing(ctx, first, owner->name, why);
            }
        }
        g = *ge ? ge + 1 : ge;
    }
}

/* a top-level name: its candidate, else the single package providing it (apt refuses to choose among several) */
static void resolve_top(larder_apt_universe_t *u, work_t *w, const char *name, larder_apt_missing_cb missing,
                        void *ctx)
{
    size_t len = strlen(name);
    long c = candidate(u, name, len, "");
    if (c >= 0) {
        push_pkg(u, w, (size_t)c);
        return;
    }
    long one = -1;
    int several = 0;
    char list[600] = "";
    for (size_t i = u->tcap ? (size_t)(hash_name(name, len) & (u->tcap - 1)) : 0; u->tcap && u->table[i];
         i = (i + 1) & (u->tcap - 1)) {
        const prov_t *pv = &u->provs[u->table[i] - 1];
        if (pv->real || !name_is(pv->name, name, len) || !arch_ok(u, &u->pkgs[pv->pkg], "") ||
            !is_candidate(u, pv->pkg, "") || (long)pv->pkg == one)
            continue;
        if (one >= 0)
            several = 1;
        if (one < 0 || (size_t)one > pv->pkg)
            one = (long)pv->pkg;
        size_t ll = strlen(list);
        if (ll < 400)
            snprintf(list + ll, sizeof(list) - ll, "%s%s", ll ? ", " : "", u->pkgs[pv->pkg].name);
    }
    if (one >= 0 && !several) {
        push_pkg(u, w, (size_t)one);
        return;
    }
    if (!missing)
        return;
    if (one < 0) {
        missing(ctx, name, NULL, NULL);
    } else {
        char why[800];
        snprintf(why, sizeof(why), "a virtual package provided by %s: apt will not choose, name one of them", list);
        missing(ctx, name, NULL, why);
    }
}

/* q is the same package, architecture and version as p, both with a SHA256 */
static int same_variant(const upkg_t *p, const upkg_t *q)
{
    return p->sha256 && q->sha256 && !strcmp(p->name, q->name) && larder_apt_vercmp(p->version, q->version) == 0 &&
           ((!p->arch && !q->arch) || (p->arch && q->arch && !strcmp(p->arch, q->arch)));
}

long larder_apt_closure(larder_apt_universe_t *u, char *const *names, size_t n, larder_apt_closure_cb cb,
                        larder_apt_missing_cb missing, void *ctx)
{
    work_t w = {0};
    for (size_t i = 0; i < u->n; i++)
        u->pkgs[i].mark = 0;
    for (size_t i = 0; i < n; i++)
        resolve_top(u, &w, names[i], missing, ctx);
    for (size_t k = 0; k < w.n; k++) {
        upkg_t *p = &u->pkgs[w.q[k]];
        resolve_deps(u, &w, p->pre_depends, "Pre-Depends", p, missing, ctx);
        p = &u->pkgs[w.q[k]];
        resolve_deps(u, &w, p->depends, "Depends", p, missing, ctx);
    }
    long total = (long)w.n;
    for (size_t k = 0; k < w.n; k++) {
        const upkg_t *p = &u->pkgs[w.q[k]];
        if (cb)
            cb(ctx, p->name, p->version, p->filename, p->sha256, p->size, p->repo);
        /* the same version with other bytes elsewhere is another version to apt, and either may be taken: pin
         * each distinct file (the same bytes in two places are one: apt tries its next source when one fails) */
        size_t len = strlen(p->name);
        for (size_t i = (size_t)(hash_name(p->name, len) & (u->tcap - 1)); u->table[i]; i = (i + 1) & (u->tcap - 1)) {
            const prov_t *pv = &u->provs[u->table[i] - 1];
            const upkg_t *q = &u->pkgs[pv->pkg];
            if (!pv->real || pv->pkg == w.q[k] || !same_variant(p, q) || !strcmp(q->sha256, p->sha256))
                continue;
            int seen = 0;
            for (size_t j = (size_t)(hash_name(p->name, len) & (u->tcap - 1)); u->table[j] && !seen;
                 j = (j + 1) & (u->tcap - 1)) {
                const prov_t *pj = &u->provs[u->table[j] - 1];
                seen = pj->real && pj->pkg < pv->pkg && same_variant(p, &u->pkgs[pj->pkg]) &&
                       !strcmp(u->pkgs[pj->pkg].sha256, q->sha256);
            }
            if (seen)
                continue;
            if (cb)
                cb(ctx, q->name, q->version, q->filename, q->sha256, q->size, q->repo);
            total++;
        }
    }
    free(w.q);
    for (size_t i = 0; i < w.nmissing; i++)
        free(w.missing[i]);
    free(w.missing);
    return total;
}

/* ---- the daemon side ---- */

static int in_list(char *const *list, size_t n, const char *host)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], host) == 0)
            return 1;
    return 0;
}



/* "<host><prefix>" of a cache key "<host><prefix>/dists/..." (or NULL) */
static char *key_repo(const char *key)
{
    const char *d = strstr(key, "/dists/");
    return d ? strndup(key, (size_t)(d - key)) : NULL;
}

typedef struct rel_rec {
    larder_meta_batch_t *b;
    const char *repo; /* <host><prefix> */
    const char *suite;
    int by_hash;
} rel_rec_t;

static void record_release_entry(void *arg, const char *relpath, const char *sha256, uint64_t size)
{
    rel_rec_t *c = arg;
    char key[1500], val[128];
    if (snprintf(key, sizeof(key), "r/%s/dists/%s/%s", c->repo, c->suite, relpath) >= (int)sizeof(key))
        return;
    int n = snprintf(val, sizeof(val), "%s %" PRIu64 " %d", sha256, size, c->by_hash);
    larder_meta_batch_put(c->b, LARDER_PROTO_APT, key, val, (size_t)n);
}

/* InRelease / Release: stored as they are; their SHA256 lists recorded for the indexes they name */
static int release_transform(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                             char **content_type, char *err, size_t errlen)
{
    char *in;
    if (in_len > (uint64_t)64 * 1024 * 1024 || larder_pread_all(in_fd, in_len, &in) < 0) {
        snprintf(err, errlen, "cannot read the Release file");
        return -1;
    }
    char *repo = key_repo(fe->key);
    const char *s = repo ? strstr(fe->key, "/dists/") + 7 : NULL;
    const char *se = s ? strchr(s, '/') : NULL;
    int r = 0;
    if (repo && se) {
        char suite[128];
        snprintf(suite, sizeof(suite), "%.*s", (int)(se - s), s);
        int by_hash;
        larder_apt_parse_release(in, in_len, NULL, NULL, &by_hash);
        larder_meta_batch_t *b = larder_store_meta_begin(st);
        rel_rec_t rc = {b, repo, suite, by_hash};
        if (larder_apt_parse_release(in, in_len, record_release_entry, &rc, &by_hash) < 0) {
            larder_store_meta_discard(b);
            snprintf(err, errlen, "not a Release file");
            r = -1;
        } else {
            r = larder_store_meta_commit(st, b);
        }
    }
    free(repo);
    if (r == 0 && larder_write_all(out_fd, in, in_len) < 0) {
        snprintf(err, errlen, "writing the Release file failed");
        r = -1;
    }
    free(in);
    *content_type = strdup("text/plain");
    return r;
}

typedef struct deb_rec {
    larder_meta_batch_t *b;
    const char *repo;
} deb_rec_t;

static void record_deb(void *arg, const larder_apt_pkg_t *p)
{
    deb_rec_t *c = arg;
    if (!p->filename || !p->sha256 || !larder_is_sha256_hex(p->sha256) || strstr(p->filename, ".."))
        return;
    char key[1500], val[100];
    if (snprintf(key, sizeof(key), "d/%s/%s", c->repo, p->filename) >= (int)sizeof(key))
        return;
    int n = snprintf(val, sizeof(val), "%s %" PRIu64, p->sha256, p->size);
    larder_meta_batch_put(c->b, LARDER_PROTO_APT, key, val, (size_t)n);
}

/* an index under dists/: stored as it is; when it is a Packages file (any compression), the SHA256 of every
 * package it lists is recorded so .deb downloads can be verified */
static int index_transform(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                           char **content_type, char *err, size_t errlen)
{
    char *in;
    if (in_len > (uint64_t)512 * 1024 * 1024 || larder_pread_all(in_fd, in_len, &in) < 0) {
        snprintf(err, errlen, "cannot read the index");
        return -1;
    }
    int r = 0;
    char *repo = key_repo(fe->key);
    if (repo && (strstr(fe->key, "/binary-") || strstr(fe->key, "/Packages"))) {
        size_t tl;
        char *text = larder_apt_decompress(in, in_len, MAX_INDEX, &tl);
        if (text && strncmp(text, "Package:", 8) == 0) {
            uint64_t t0 = larder_now_ms();
            larder_meta_batch_t *b = larder_store_meta_begin(st);
            deb_rec_t dc = {b, repo};
            long n = larder_apt_parse_packages(text, tl, record_deb, &dc);
            r = larder_store_meta_commit(st, b);
            uint64_t ms = larder_now_ms() - t0;
            if (ms >= 200)
                larder_info("apt: %s lists %ld packages (parsed in %" PRIu64 " ms)", fe->url, n, ms);
        }
        free(text);
    }
    free(repo);
    if (r == 0 && larder_write_all(out_fd, in, in_len) < 0) {
        snprintf(err, errlen, "writing the index failed");
        r = -1;
    }
    free(in);
    *content_type = strdup("application/octet-stream");
    return r;
}

static const char *upstream_url(h2o_req_t *req, const larder_config_t *cfg, const larder_apt_target_t *t,
                                const char *path)
{
    const larder_proto_config_t *pc = &cfg->proto[LARDER_PROTO_APT];
    int https = t->https || in_list(pc->https_hosts, pc->nhttps_hosts, t->host);
    return h2o_concat(&req->pool, h2o_iovec_init(https ? "https://" : "http://", https ? 8 : 7),
                      h2o_iovec_init(t->host, strlen(t->host)), h2o_iovec_init(path, strlen(path)))
        .base;
}

static const char *pool_str(h2o_req_t *req, const char *s) { return h2o_strdup(&req->pool, s, SIZE_MAX).base; }

static void apt_serve(larder_app_t *app, h2o_req_t *req, const larder_apt_target_t *t)
{
    const larder_proto_config_t *pc = &app->cfg->proto[LARDER_PROTO_APT];
    if (!in_list(pc->hosts, pc->nhosts, t->host)) {
        larder_send_error(app, req, LARDER_PROTO_APT, 403, "Forbidden",
                          "%s is not an allowed apt repository host: add it to apt.allow in larder.yaml", t->host);
        return;
    }
    char key[4400];
    snprintf(key, sizeof(key), "%s%s", t->host, t->path);
    larder_mapping_t m = {.proto = LARDER_PROTO_APT, .ttl = pc->ttl};
    const char *path = t->path;
    const char *base = strrchr(t->path, '/') + 1;
    char repo[400];
    snprintf(repo, sizeof(repo), "%s%.*s", t->host, (int)t->prefix_len, t->path);
    switch (t->kind) {
    case LARDER_APT_RELEASE:
        if (strcmp(base, "Release.gpg") != 0)
            m.transform = release_transform;
        m.content_type = "text/plain";
        break;
    case LARDER_APT_BYHASH: {
        m.flags = LARDER_ENTRY_IMMUTABLE;
        const char *h = strstr(t->path, "/by-hash/SHA256/");
        if (h && larder_is_sha256_hex(h + 16))
            m.sha256 = pool_str(req, h + 16);
        m.transform = index_transform;
        break;
    }
    case LARDER_APT_INDEX: {
        /* an index the cached Release lists: the copy with that hash, so it matches the Release clients have */
        char rkey[4400];
        snprintf(rkey, sizeof(rkey), "r/%s/dists/%s/%s", repo, t->suite, t->relpath);
        char *rec = larder_store_meta_get(app->store, LARDER_PROTO_APT, rkey, NULL);
        char sha[80];
        unsigned long long size;
        int by_hash = 0;
        if (rec && sscanf(rec, "%70s %llu %d", sha, &size, &by_hash) == 3 && larder_is_sha256_hex(sha)) {
            char p2[2200];
            if (by_hash) {
                const char *slash = strrchr(t->path, '/');
                snprintf(p2, sizeof(p2), "%.*s/by-hash/SHA256/%s", (int)(slash - t->path), t->path, sha);
                path = pool_str(req, p2);
                snprintf(key, sizeof(key), "%s%s", t->host, p2);
            } else {
                snprintf(key + strlen(key), sizeof(key) - strlen(key), "@%s", sha);
            }
            m.sha256 = pool_str(req, sha);
            m.flags = LARDER_ENTRY_IMMUTABLE;
        }
        free(rec);
        m.transform = index_transform;
        break;
    }
    case LARDER_APT_POOL: {
        char dkey[4500];
        snprintf(dkey, sizeof(dkey), "d/%s", key);
        char *rec = larder_store_meta_get(app->store, LARDER_PROTO_APT, dkey, NULL);
        char sha[80];
        if (rec && sscanf(rec, "%70s", sha) == 1 && larder_is_sha256_hex(sha))
            m.sha256 = pool_str(req, sha);
        free(rec);
        m.flags = LARDER_ENTRY_IMMUTABLE;
        if (strlen(base) > 4 && !strcmp(base + strlen(base) - 4, ".deb"))
            m.content_type = "application/vnd.debian.binary-package";
        break;
    }
    default:
        break;
    }
    m.key = pool_str(req, key);
    m.url = upstream_url(req, app->cfg, t, path);
    larder_cache_serve(app, req, &m);
}

static int is_method(h2o_req_t *req, const char *m)
{
    return req->input.method.len == strlen(m) && memcmp(req->input.method.base, m, req->input.method.len) == 0;
}

/* path mode: /apt/<host>/<path> and /apt/https/<host>/<path> */
static void apt_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    larder_apt_target_t t;
    char err[200];
    if (larder_apt_map(rest, len, 0, &t, err, sizeof(err)) < 0) {
        larder_send_error(app, req, LARDER_PROTO_APT, 400, "Bad Request",
                          "%s: use /apt/<host>/<path of a repository file>, or set Acquire::http::Proxy", err);
        return;
    }
    apt_serve(app, req, &t);
}

void larder_apt_handle_proxy(larder_app_t *app, h2o_req_t *req)
{
    if (!app->cfg->proto[LARDER_PROTO_APT].enabled) {
        larder_send_error(app, req, LARDER_PROTO_APT, 403, "Forbidden",
                          "larder is not an open proxy, and its apt cache is disabled (apt.enabled)");
        return;
    }
    if (is_method(req, "CONNECT")) {
        larder_send_error(app, req, LARDER_PROTO_APT, 405, "Method Not Allowed",
                          "larder does not tunnel (CONNECT): write http:// URLs in sources.list and list the hosts "
                          "to fetch over TLS in apt.https_hosts");
        return;
    }
    larder_apt_target_t t;
    char err[200];
    if (larder_apt_map(req->input.path.base, req->input.path.len, 1, &t, err, sizeof(err)) < 0) {
        larder_send_error(app, req, LARDER_PROTO_APT, 403, "Forbidden",
                          "larder is not an open proxy: only apt repository files of hosts in apt.allow (%s)", err);
        return;
    }
    apt_serve(app, req, &t);
}

/* ---- seeding ---- */

typedef struct apt_repo {
    char url[1024]; /* http(s)://host/prefix (no trailing '/') */
    char suite[128];
    char comps[512];
    char archs[256];
    char signed_by[1024];
    larder_apt_target_t base; /* host and scheme */
} apt_repo_t;

typedef struct apt_seed {
    pthread_mutex_t mu;
    _Atomic int pending;
    apt_repo_t *repos;
    size_t nrepos;
    char **index_keys; /* Packages indexes fetched: "<repo>\t<key>" */
    int *index_repo;
    size_t nindex;
    char **names;
    size_t nnames;
    char label[64];
} apt_seed_t;

typedef struct apt_seed_ref {
    apt_seed_t *s;
    size_t repo;
} apt_seed_ref_t;

static void seed_free(apt_seed_t *s)
{
    for (size_t i = 0; i < s->nindex; i++)
        free(s->index_keys[i]);
    free(s->index_keys);
    free(s->index_repo);
    for (size_t i = 0; i < s->nnames; i++)
        free(s->names[i]);
    free(s->names);
    free(s->repos);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static char *blob_text(larder_app_t *app, const char *key, size_t *len)
{
    larder_entry_t e;
    char path[4096];
    if (larder_store_get(app->store, LARDER_PROTO_APT, key, &e) < 0)
        return NULL;
    larder_store_blob_path(app->store, e.digest, path, sizeof(path));
    larder_entry_clear(&e);
    return larder_read_file(path, len);
}

typedef struct closure_ctx {
    larder_seed_ctx_t *c;
    apt_seed_t *s;
    larder_app_t *app;
    long missing;
} closure_ctx_t;

static void closure_pkg(void *arg, const char *package, const char *version, const char *filename,
                        const char *sha256, uint64_t size, int repo)
{
    (void)size;
    closure_ctx_t *cc = arg;
    apt_repo_t *r = &cc->s->repos[repo];
    if (strstr(filename, "..") || filename[0] == '/')
        return;
    char key[4400], url[4400], label[600];
    const char *hp = strstr(r->url, "://") + 3;
    snprintf(key, sizeof(key), "%s/%s", hp, filename);
    for (char *k = key; *k && *k != '/'; k++)
        *k = (char)tolower((unsigned char)*k);
    snprintf(url, sizeof(url), "%s/%s", r->url, filename);
    snprintf(label, sizeof(label), "%s %s", package, version ? version : "");
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_APT,
                             .key = key,
                             .url = url,
                             .sha256 = sha256 && larder_is_sha256_hex(sha256) ? sha256 : NULL,
                             .entry_flags = LARDER_ENTRY_IMMUTABLE};
    larder_seed_add(cc->c, label, &fr, NULL, NULL);
}

static void closure_missing(void *arg, const char *name, const char *needed_by, const char *why)
{
    closure_ctx_t *cc = arg;
    char msg[1000];
    if (why)
        snprintf(msg, sizeof(msg), "%s", why);
    else if (needed_by)
        snprintf(msg, sizeof(msg), "needed by %s, but no package in the seeded repositories provides it", needed_by);
    else
        snprintf(msg, sizeof(msg), "no package of that name (or providing it) in the seeded repositories");
    larder_seed_fail(cc->c, name, msg);
    cc->missing++;
}

/* indexes in the order of the spec's repositories (then by key), not in the order their fetches completed: at equal
 * versions the first repository's copy is taken, every time */
static int index_order(const void *a, const void *b, void *arg)
{
    const apt_seed_t *s = arg;
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    if (s->index_repo[ia] != s->index_repo[ib])
        return s->index_repo[ia] < s->index_repo[ib] ? -1 : 1;
    return strcmp(s->index_keys[ia], s->index_keys[ib]);
}

static void seed_resolve(larder_seed_ctx_t *c, apt_seed_t *s)
{
    larder_app_t *app = larder_seed_app(c);
    larder_apt_universe_t *u = larder_apt_universe_new();
    /* the native architecture: the first one of the first repository (foreign ones answer only name:arch) */
    char arch[64] = "";
    if (s->nrepos) {
        size_t al = strcspn(s->repos[0].archs, ",");
        snprintf(arch, sizeof(arch), "%.*s", al < sizeof(arch) ? (int)al : 0, s->repos[0].archs);
    }
    larder_apt_universe_set_arch(u, arch);
    size_t *order = calloc(s->nindex ? s->nindex : 1, sizeof(*order));
    for (size_t i = 0; i < s->nindex; i++)
        order[i] = i;
    qsort_r(order, s->nindex, sizeof(*order), index_order, s);
    for (size_t k = 0; k < s->nindex; k++) {
        size_t i = order[k];
        size_t len, tl;
        char *raw = blob_text(app, s->index_keys[i], &len);
        char *text = raw ? larder_apt_decompress(raw, len, MAX_INDEX, &tl) : NULL;
        if (text)
            larder_apt_universe_add(u, text, tl, s->index_repo[i]);
        else
            larder_seed_fail(c, s->index_keys[i], "the Packages index could not be read");
        free(raw);
        free(text);
    }
    free(order);
    closure_ctx_t cc = {c, s, app, 0};
    long n = larder_apt_closure(u, s->names, s->nnames, closure_pkg, closure_missing, &cc);
    larder_info("apt seed: %zu package name(s) need %ld package(s)", s->nnames, n);
    larder_apt_universe_free(u);
}

static void seed_index_done(larder_seed_ctx_t *c, int proto, const char *key, void *data)
{
    (void)proto;
    (void)key;
    apt_seed_ref_t *ref = data;
    apt_seed_t *s = ref->s;
    if (atomic_fetch_sub(&s->pending, 1) == 1) {
        seed_resolve(c, s);
        seed_free(s);
    }
}

static int gpgv_ok(const char *keyring, const char *file, char *err, size_t errlen)
{
    char cmd[6000];
    /* single-quote both paths for the shell; they come from the seed spec and the store */
    if (strchr(keyring, '\'') || strchr(file, '\'')) {
        snprintf(err, errlen, "unusable path for gpgv");
        return 0;
    }
    snprintf(cmd, sizeof(cmd), "gpgv --quiet --keyring '%s' '%s' >/dev/null 2>&1", keyring, file);
    int r = system(cmd); // NOLINT(cert-env33-c): fixed program, quoted arguments
    if (r != 0) {
        snprintf(err, errlen, "InRelease signature does not verify with %.300s (gpgv exit %d)", keyring, r);
        return 0;
    }
    return 1;
}

static void add_index(larder_seed_ctx_t *c, apt_seed_t *s, size_t ri, const char *rkey_prefix, const char *relpath,
                      const char *sha, int by_hash, int record)
{
    apt_repo_t *r = &s->repos[ri];
    const char *hp = strstr(r->url, "://") + 3;
    char path[1500], key[4400], url[4400];
    if (by_hash) {
        const char *slash = strrchr(relpath, '/');
        snprintf(path, sizeof(path), "/dists/%s/%.*s%sby-hash/SHA256/%s", r->suite,
                 slash ? (int)(slash - relpath) : 0, relpath, slash ? "/" : "", sha);
        snprintf(key, sizeof(key), "%s%s", rkey_prefix, path);
        snprintf(url, sizeof(url), "%s%s", r->url, path);
    } else {
        snprintf(path, sizeof(path), "/dists/%s/%s", r->suite, relpath);
        snprintf(key, sizeof(key), "%s%s@%s", rkey_prefix, path, sha);
        snprintf(url, sizeof(url), "%s%s", r->url, path);
    }
    (void)hp;
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_APT,
                             .key = key,
                             .url = url,
                             .sha256 = sha,
                             .entry_flags = LARDER_ENTRY_IMMUTABLE,
                             .transform = index_transform};
    char label[1600];
    snprintf(label, sizeof(label), "%s/dists/%s/%s", r->url, r->suite, relpath);
    if (record) {
        pthread_mutex_lock(&s->mu);
        s->index_keys = realloc(s->index_keys, (s->nindex + 1) * sizeof(char *)); // NOLINT(bugprone-sizeof-expression)
        s->index_repo = realloc(s->index_repo, (s->nindex + 1) * sizeof(int));
        s->index_keys[s->nindex] = strdup(key);
        s->index_repo[s->nindex] = (int)ri;
        s->nindex++;
        pthread_mutex_unlock(&s->mu);
        apt_seed_ref_t *ref = malloc(sizeof(*ref));
        ref->s = s;
        ref->repo = ri;
        atomic_fetch_add(&s->pending, 1);
        larder_seed_add(c, label, &fr, seed_index_done, ref);
    } else {
        larder_seed_add(c, label, &fr, NULL, NULL);
    }
}

typedef struct want_ctx {
    const char *comp_arch[64]; /* "main/binary-amd64/Packages" ... */
    size_t n;
    char found[64][1024];
    char sha[64][65];
    int rank[64];
} want_ctx_t;

/* keep the best listed variant of each wanted index: .xz, then .gz, then plain */
static void want_entry(void *arg, const char *relpath, const char *sha256, uint64_t size)
{
    (void)size;
    want_ctx_t *w = arg;
    for (size_t i = 0; i < w->n; i++) {
        size_t bl = strlen(w->comp_arch[i]);
        if (strncmp(relpath, w->comp_arch[i], bl) != 0)
            continue;
        const char *ext = relpath + bl;
        int rank = !strcmp(ext, ".xz") ? 3 : !strcmp(ext, ".gz") ? 2 : !*ext ? 1 : 0;
        if (rank > w->rank[i]) {
            w->rank[i] = rank;
            snprintf(w->found[i], sizeof(w->found[i]), "%s", relpath);
            snprintf(w->sha[i], sizeof(w->sha[i]), "%s", sha256);
        }
    }
}

static void seed_release_done(larder_seed_ctx_t *c, int proto, const char *key, void *data)
{
    (void)proto;
    apt_seed_ref_t *ref = data;
    apt_seed_t *s = ref->s;
    apt_repo_t *r = &s->repos[ref->repo];
    larder_app_t *app = larder_seed_app(c);
    size_t len;
    char *text = blob_text(app, key, &len);
    char err[400] = "";
    int ok = text != NULL;
    if (ok && r->signed_by[0]) {
        larder_entry_t e;
        char path[4096];
        if (larder_store_get(app->store, LARDER_PROTO_APT, key, &e) == 0) {
            larder_store_blob_path(app->store, e.digest, path, sizeof(path));
            larder_entry_clear(&e);
            ok = gpgv_ok(r->signed_by, path, err, sizeof(err));
        }
    }
    if (ok) {
        /* Packages and Translation-en of every component and architecture */
        char buf[64][128];
        want_ctx_t w;
        memset(&w, 0, sizeof(w));
        char comps[512];
        snprintf(comps, sizeof(comps), "%s", r->comps);
        char *sv1, *sv2;
        for (char *comp = strtok_r(comps, ",", &sv1); comp && w.n < 60; comp = strtok_r(NULL, ",", &sv1)) {
            char archs[256];
            snprintf(archs, sizeof(archs), "%s", r->archs);
            for (char *arch = strtok_r(archs, ",", &sv2); arch && w.n < 60; arch = strtok_r(NULL, ",", &sv2)) {
                snprintf(buf[w.n], sizeof(buf[w.n]), "%s/binary-%s/Packages", comp, arch);
                w.comp_arch[w.n] = buf[w.n];
                w.n++;
            }
            snprintf(buf[w.n], sizeof(buf[w.n]), "%s/i18n/Translation-en", comp);
            w.comp_arch[w.n] = buf[w.n];
            w.n++;
        }
        int by_hash = 0;
        larder_apt_parse_release(text, len, want_entry, &w, &by_hash);
        char prefix[1200];
        const char *hp = strstr(r->url, "://") + 3;
        snprintf(prefix, sizeof(prefix), "%s", hp);
        for (char *k = prefix; *k && *k != '/'; k++)
            *k = (char)tolower((unsigned char)*k);
        for (size_t i = 0; i < w.n; i++) {
            if (!w.rank[i]) {
                if (strstr(w.comp_arch[i], "/binary-"))
                    larder_seed_fail(c, w.comp_arch[i], "the Release file does not list this index");
                continue;
            }
            add_index(c, s, ref->repo, prefix, w.found[i], w.sha[i], by_hash, strstr(w.comp_arch[i], "/binary-") != NULL);
            /* the plain name too, so clients that do not use by-hash find it offline */
        }
    } else {
        larder_seed_fail(c, r->url, err[0] ? err : "the Release file could not be read");
    }
    free(text);
    if (atomic_fetch_sub(&s->pending, 1) == 1) {
        seed_resolve(c, s);
        seed_free(s);
    }
}

/* item ref: "pkg1 pkg2 ..."; repositories come from the spec (apt_repos lines) */
static void apt_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    const larder_seed_spec_t *spec = larder_seed_spec_of(ctx);
    const larder_proto_config_t *pc = &app->cfg->proto[LARDER_PROTO_APT];
    if (!spec->apt_repos.n) {
        larder_seed_fail(ctx, item->ref, "apt.repositories is empty: name the repositories to resolve packages in");
        return;
    }
    apt_seed_t *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->label, sizeof(s->label), "apt");
    s->repos = calloc(spec->apt_repos.n, sizeof(*s->repos));
    char names[8192];
    snprintf(names, sizeof(names), "%s", item->ref);
    char *sv;
    for (char *nm = strtok_r(names, " ", &sv); nm; nm = strtok_r(NULL, " ", &sv)) {
        s->names = realloc(s->names, (s->nnames + 1) * sizeof(char *)); // NOLINT(bugprone-sizeof-expression)
        s->names[s->nnames++] = strdup(nm);
    }
    for (size_t i = 0; i < spec->apt_repos.n; i++) {
        apt_repo_t *r = &s->repos[s->nrepos];
        /* "url suite comps archs signed_by" */
        char line[4096];
        snprintf(line, sizeof(line), "%s", spec->apt_repos.v[i]);
        char *f[5] = {0};
        char *sv3;
        int nf = 0;
        for (char *tok = strtok_r(line, " ", &sv3); tok && nf < 5; tok = strtok_r(NULL, " ", &sv3))
            f[nf++] = tok;
        if (nf < 4) {
            larder_seed_fail(ctx, spec->apt_repos.v[i], "bad repository entry");
            continue;
        }
        size_t ul = strlen(f[0]);
        while (ul && f[0][ul - 1] == '/')
            f[0][--ul] = 0;
        snprintf(r->url, sizeof(r->url), "%s", f[0]);
        snprintf(r->suite, sizeof(r->suite), "%s", f[1]);
        snprintf(r->comps, sizeof(r->comps), "%s", f[2]);
        snprintf(r->archs, sizeof(r->archs), "%s", f[3]);
        snprintf(r->signed_by, sizeof(r->signed_by), "%s", nf > 4 && strcmp(f[4], "-") != 0 ? f[4] : "");
        /* the host must be allowed, like for clients */
        char probe[1500], err[200];
        int https = strncmp(r->url, "https://", 8) == 0;
        snprintf(probe, sizeof(probe), "%s/dists/%s/InRelease", r->url, r->suite);
        if (larder_apt_map(probe, strlen(probe), 1, &r->base, err, sizeof(err)) < 0) {
            larder_seed_fail(ctx, r->url, err);
            continue;
        }
        if (!in_list(pc->hosts, pc->nhosts, r->base.host)) {
            larder_seed_fail(ctx, r->url, "the host is not in apt.allow");
            continue;
        }
        (void)https;
        s->nrepos++;
    }
    if (!s->nrepos) {
        seed_free(s);
        return;
    }
    /* one count per repository, plus one for this loop: a cached Release calls back before larder_seed_add
     * returns, and the last callback frees s */
    atomic_store(&s->pending, (int)s->nrepos + 1);
    size_t nrepos = s->nrepos;
    for (size_t i = 0; i < nrepos; i++) {
        apt_repo_t *r = &s->repos[i];
        char key[4400], url[4400], label[1300];
        snprintf(key, sizeof(key), "%s%s", r->base.host, r->base.path);
        snprintf(url, sizeof(url), "%s/dists/%s/InRelease", r->url, r->suite);
        snprintf(label, sizeof(label), "%s %s (InRelease)", r->url, r->suite);
        larder_fetch_req_t fr = {.proto = LARDER_PROTO_APT,
                                 .key = key,
                                 .url = url,
                                 .ttl = pc->ttl,
                                 .transform = release_transform};
        apt_seed_ref_t *ref = malloc(sizeof(*ref));
        ref->s = s;
        ref->repo = i;
        larder_seed_add(ctx, label, &fr, seed_release_done, ref);
    }
    if (atomic_fetch_sub(&s->pending, 1) == 1) {
        seed_resolve(ctx, s);
        seed_free(s);
    }
}

const larder_protocol_t larder_protocol_apt = {
    .proto = LARDER_PROTO_APT,
    .mount = "/apt/",
    .handle = apt_handle,
    .seed = apt_seed,
};
