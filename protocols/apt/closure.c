/* closure.c - the package universe and its dependency closure: what apt would install for a list of package
 * names, given the Packages indexes of the seeded repositories.
 *
 * Stanzas are added with larder_apt_universe_add() (parsed by indexes.c) and indexed by every name they answer to
 * (their own and their Provides) in one open-addressing table; larder_apt_closure() walks Pre-Depends and Depends
 * from the top-level names, choosing candidates with the Debian version ordering of apt_version.c. Pure: no store,
 * no network, no configuration; seed.c turns each package of the closure into a fetch. */
#include "apt.h"
#include "apt_version.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* "name[:arch]=version": the stanzas of exactly that version (without an epoch in `version`, the stanza's epoch is
 * not compared: .deb file names drop it), of that architecture (none given: the native one or all); one cb per
 * distinct file. Dependencies are not followed. Returns the number of cb calls, -1 when `spec` has no '=' */
long larder_apt_exact(larder_apt_universe_t *u, const char *spec, larder_apt_closure_cb cb, void *ctx)
{
    const char *eq = strchr(spec, '=');
    if (!eq || !u->tcap)
        return eq ? 0 : -1;
    const char *colon = memchr(spec, ':', (size_t)(eq - spec));
    size_t len = (size_t)((colon ? colon : eq) - spec);
    char arch[64] = "";
    if (colon)
        snprintf(arch, sizeof(arch), "%.*s", (int)(eq - colon - 1), colon + 1);
    const char *want = eq + 1;
    int epoch = strchr(want, ':') != NULL;
    long n = 0;
    for (size_t i = (size_t)(hash_name(spec, len) & (u->tcap - 1)); u->table[i]; i = (i + 1) & (u->tcap - 1)) {
        const prov_t *pv = &u->provs[u->table[i] - 1];
        const upkg_t *p = &u->pkgs[pv->pkg];
        if (!pv->real || !name_is(pv->name, spec, len) || !p->version)
            continue;
        if (arch[0] ? !(p->arch && (!strcmp(p->arch, arch) || !strcmp(p->arch, "all"))) : !arch_ok(u, p, ""))
            continue;
        const char *v = p->version, *c = strchr(v, ':');
        if (!epoch && c)
            v = c + 1;
        if (larder_apt_vercmp(v, want) != 0)
            continue;
        /* the same bytes listed twice (two suites, two mirrors) are one file, as in the closure */
        int seen = 0;
        for (size_t j = (size_t)(hash_name(spec, len) & (u->tcap - 1)); u->table[j] != u->table[i] && !seen;
             j = (j + 1) & (u->tcap - 1)) {
            const prov_t *pj = &u->provs[u->table[j] - 1];
            const upkg_t *q = &u->pkgs[pj->pkg];
            seen = pj->real && same_variant(p, q) && !strcmp(p->sha256, q->sha256);
        }
        if (seen)
            continue;
        if (cb)
            cb(ctx, p->name, p->version, p->filename, p->sha256, p->size, p->repo);
        n++;
    }
    return n;
}
