/* seed.c - the apt seed expander: an item "pkg1 pkg2 ..." becomes the fetches of the package files apt would
 * install, resolved over the repositories of the seed spec (apt_repos lines "url suite comps archs signed_by").
 *
 * Each repository's InRelease is fetched (through the Release transform of indexes.c, so its records are the ones
 * clients get) and, when the spec names a keyring, checked with gpgv; the Packages (and Translation-en) indexes it
 * lists are fetched pinned to their SHA256. When the last of these fetches is done (a shared `pending` count; a
 * cached file calls back before larder_seed_add returns), the stored Packages indexes are loaded into a universe in
 * the order of the spec's repositories and its closure (closure.c) is seeded, each file pinned to its SHA256.
 * Hosts must be in apt.allow, as for clients (proxy.c). */
#include "apt.h"
#include "internal.h"
#include "jobs.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* names with their closure; "name=version" (a pin set's own files) exactly, without one */
    char **plain = calloc(s->nnames ? s->nnames : 1, sizeof(*plain)); // NOLINT(bugprone-sizeof-expression)
    size_t nplain = 0;
    long n = 0;
    for (size_t i = 0; i < s->nnames; i++) {
        long k = larder_apt_exact(u, s->names[i], closure_pkg, &cc);
        if (k < 0)
            plain[nplain++] = s->names[i];
        else if (k == 0)
            closure_missing(&cc, s->names[i], NULL, "no repository of the spec lists this version");
        n += k > 0 ? k : 0;
    }
    if (nplain)
        n += larder_apt_closure(u, plain, nplain, closure_pkg, closure_missing, &cc);
    free(plain);
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
                             .transform = apt_index_transform};
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
void apt_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    const larder_seed_spec_t *spec = larder_seed_spec_of(ctx);
    const larder_proto_config_t *pc = &app->cfg->proto[LARDER_PROTO_APT];
    const larder_apt_conf_t *ac = larder_proto_conf(app->cfg, LARDER_PROTO_APT);
    const larder_seed_strings_t *repos = larder_seed_option(spec, LARDER_PROTO_APT, "repositories");
    if (!repos->n) {
        larder_seed_fail(ctx, item->ref, "apt.repositories is empty: name the repositories to resolve packages in");
        return;
    }
    apt_seed_t *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->label, sizeof(s->label), "apt");
    s->repos = calloc(repos->n, sizeof(*s->repos));
    char *names = strdup(item->ref);
    char *sv;
    for (char *nm = names ? strtok_r(names, " ", &sv) : NULL; nm; nm = strtok_r(NULL, " ", &sv)) {
        if (!strcmp(nm, LARDER_APT_INDEXES_ONLY))
            continue; /* the repositories' Release files and indexes, no package */
        s->names = realloc(s->names, (s->nnames + 1) * sizeof(char *)); // NOLINT(bugprone-sizeof-expression)
        s->names[s->nnames++] = strdup(nm);
    }
    free(names);
    for (size_t i = 0; i < repos->n; i++) {
        apt_repo_t *r = &s->repos[s->nrepos];
        /* "url suite comps archs signed_by" */
        char line[4096];
        snprintf(line, sizeof(line), "%s", repos->v[i]);
        char *f[5] = {0};
        char *sv3;
        int nf = 0;
        for (char *tok = strtok_r(line, " ", &sv3); tok && nf < 5; tok = strtok_r(NULL, " ", &sv3))
            f[nf++] = tok;
        if (nf < 4) {
            larder_seed_fail(ctx, repos->v[i], "bad repository entry");
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
        if (!in_list(ac->allow.v, ac->allow.n, r->base.host)) {
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
                                 .transform = apt_release_transform};
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

/* ---- the pin_spec hook: pinned repository files back into the apt section ---- */

/* the words of a comma list, with `w` added when it is not there ("-": none yet) */
static void list_add(char *list, size_t cap, const char *w)
{
    if (!strcmp(list, "-")) {
        snprintf(list, cap, "%s", w);
        return;
    }
    size_t wl = strlen(w);
    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ",");
        if (l == wl && !memcmp(p, w, wl))
            return;
        p += l + (p[l] == ',');
    }
    size_t ll = strlen(list);
    if (ll + wl + 2 <= cap)
        snprintf(list + ll, cap - ll, ",%s", w);
}

/* the repositories line "url suite comps archs -" for (url, suite), added when absent; comp/arch merged in */
static int repo_line(larder_seed_spec_t *spec, const char *url, const char *suite, const char *comp, const char *arch)
{
    larder_seed_strings_t *repos = (larder_seed_strings_t *)larder_seed_option(spec, LARDER_PROTO_APT, "repositories");
    char line[3300], comps[600] = "-", archs[300] = "-";
    size_t ul = strlen(url), sl = strlen(suite), i;
    for (i = 0; i < repos->n; i++)
        if (!strncmp(repos->v[i], url, ul) && repos->v[i][ul] == ' ' && !strncmp(repos->v[i] + ul + 1, suite, sl) &&
            repos->v[i][ul + 1 + sl] == ' ')
            break;
    if (i < repos->n && sscanf(repos->v[i] + ul + sl + 2, "%599s %299s", comps, archs) != 2)
        return -1;
    if (comp)
        list_add(comps, sizeof(comps), comp);
    if (arch)
        list_add(archs, sizeof(archs), arch);
    snprintf(line, sizeof(line), "%s %s %s %s -", url, suite, comps, archs);
    if (i == repos->n)
        return larder_seed_strings_add(repos, line, strlen(line));
    char *nl = strdup(line);
    if (!nl)
        return -1;
    free(repos->v[i]);
    repos->v[i] = nl;
    return 0;
}

/* add a word to the one apt item (the packages), creating it */
static int add_package(larder_seed_spec_t *spec, const char *word)
{
    size_t wl = strlen(word);
    for (size_t i = 0; i < spec->nitems; i++) {
        larder_seed_item_t *it = &spec->items[i];
        if (it->proto != LARDER_PROTO_APT)
            continue;
        if (!strcmp(it->ref, LARDER_APT_INDEXES_ONLY)) {
            char *nr = strdup(word);
            if (!nr)
                return -1;
            free(it->ref);
            it->ref = nr;
            return 0;
        }
        for (const char *p = it->ref; *p;) {
            size_t l = strcspn(p, " ");
            if (l == wl && !memcmp(p, word, wl))
                return 0;
            p += l + (p[l] == ' ');
        }
        size_t rl = strlen(it->ref);
        char *nr = realloc(it->ref, rl + wl + 2);
        if (!nr)
            return -1;
        nr[rl] = ' ';
        memcpy(nr + rl + 1, word, wl + 1);
        it->ref = nr;
        return 0;
    }
    return larder_seed_append(spec, LARDER_PROTO_APT, word, NULL);
}

int larder_apt_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                        char *why, size_t whylen)
{
    (void)e;
    const larder_apt_conf_t *ac = larder_proto_conf(cfg, LARDER_PROTO_APT);
    larder_apt_target_t t;
    char err[300], url[1100];
    if (larder_apt_map(key, strlen(key), 0, &t, err, sizeof(err)) < 0) {
        snprintf(why, whylen, "not a repository file: %s", err);
        return -1;
    }
    int https = in_list(ac->https_hosts.v, ac->https_hosts.n, t.host);
    snprintf(url, sizeof(url), "%s://%s%.*s", https ? "https" : "http", t.host, (int)t.prefix_len, t.path);
    if (t.kind != LARDER_APT_POOL) {
        /* dists/<suite>/<comp>/binary-<arch>/..., <comp>/i18n/..., by-hash copies below them, Release files */
        const char *d = strstr(t.path + t.prefix_len, "/dists/");
        const char *rel = d ? strchr(d + 7, '/') : NULL;
        char comp[128] = "", arch[64] = "";
        if (rel) {
            const char *s1 = strchr(rel + 1, '/');
            if (s1 && (size_t)(s1 - rel - 1) < sizeof(comp) && strncmp(rel + 1, "by-hash/", 8) != 0) {
                snprintf(comp, sizeof(comp), "%.*s", (int)(s1 - rel - 1), rel + 1);
                if (!strncmp(s1 + 1, "binary-", 7))
                    snprintf(arch, sizeof(arch), "%.*s", (int)strcspn(s1 + 8, "/"), s1 + 8);
            }
        }
        if (arch[0] && !strcmp(arch, "all"))
            arch[0] = 0;
        if (repo_line(spec, url, t.suite, comp[0] ? comp : NULL, arch[0] ? arch : NULL) < 0)
            return -1;
        /* an item, so that the section is emitted and seeded: the first package replaces it */
        for (size_t i = 0; i < spec->nitems; i++)
            if (spec->items[i].proto == LARDER_PROTO_APT)
                return 0;
        return larder_seed_append(spec, LARDER_PROTO_APT, LARDER_APT_INDEXES_ONLY, NULL);
    }
    /* pool/<comp>/<x>/<source>/<name>_<version>_<arch>.deb ('%3a' for the epoch's ':', which names drop anyway) */
    const char *file = strrchr(t.path, '/') + 1;
    size_t fl = strlen(file);
    char name[128], version[256], arch[64], word[500];
    const char *u1 = strchr(file, '_'), *u2 = u1 ? strchr(u1 + 1, '_') : NULL;
    if (fl < 5 || (strcmp(file + fl - 4, ".deb") != 0 && strcmp(file + fl - 5, ".udeb") != 0) || !u1 || !u2 ||
        strchr(u2 + 1, '_') || (size_t)(u1 - file) >= sizeof(name) || (size_t)(u2 - u1) >= sizeof(version)) {
        snprintf(why, whylen, "not a binary package (<name>_<version>_<arch>.deb): source packages cannot be seeded");
        return -1;
    }
    snprintf(name, sizeof(name), "%.*s", (int)(u1 - file), file);
    size_t vl = 0;
    for (const char *p = u1 + 1; p < u2 && vl + 1 < sizeof(version); p++) {
        if (p[0] == '%' && p + 2 < u2 && p[1] == '3' && (p[2] == 'a' || p[2] == 'A')) {
            version[vl++] = ':';
            p += 2;
        } else {
            version[vl++] = *p;
        }
    }
    version[vl] = 0;
    snprintf(arch, sizeof(arch), "%.*s", (int)strcspn(u2 + 1, "."), u2 + 1);
    if (!strcmp(arch, "all"))
        snprintf(word, sizeof(word), "%s=%s", name, version);
    else
        snprintf(word, sizeof(word), "%s:%s=%s", name, arch, version);
    /* the suite that lists it: the repository's Release files sort before its pool/ */
    const larder_seed_strings_t *repos = larder_seed_option(spec, LARDER_PROTO_APT, "repositories");
    size_t ul = strlen(url), i;
    for (i = 0; i < repos->n; i++)
        if (!strncmp(repos->v[i], url, ul) && repos->v[i][ul] == ' ')
            break;
    if (i == repos->n) {
        snprintf(why, whylen, "no Release file of %s in the pin set: its suite is unknown", url);
        return -1;
    }
    return add_package(spec, word);
}
