/* seed.c - seeding pip requirements: from a pinned "name==version --hash=sha256:..." to the files a job fetches.
 *
 * pypi_seed (the .seed of the vtable in serve.c) parses one requirement and fetches the project page through the
 * same transform as a client request (pypi_transform_page), so the page's files are recorded; seed_page_done then
 * reads the stored JSON and adds every file of that release whose tags fit the seed's python_versions and
 * platforms (larder_pypi_parse_filename, larder_pypi_dist_matches) and whose sha256 is one of the pinned hashes,
 * with its .metadata file, under the canonical keys a client request maps to (pypi_canon_url), so seeded files are
 * hits later. Requirements files are split into requirement lines by larder_pypi_requirement_lines[_ex] for the
 * `larder seed` client; lines pip would take from elsewhere (VCS, direct URLs, local paths) are reported instead.
 * Nothing here answers HTTP requests (serve.c does). */
#include "internal.h"
#include "util.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- filenames and tags ---- */

int larder_pypi_parse_filename(const char *fn, larder_pypi_dist_t *d)
{
    memset(d, 0, sizeof(*d));
    size_t n = strlen(fn);
    if (n > 4 && strcmp(fn + n - 4, ".whl") == 0) {
        /* name-ver(-build)?-py-abi-plat.whl */
        char tmp[600];
        if (n - 4 >= sizeof(tmp))
            return -1;
        memcpy(tmp, fn, n - 4);
        tmp[n - 4] = 0;
        char *parts[7];
        int np = 0;
        char *save, *tok = strtok_r(tmp, "-", &save);
        while (tok && np < 7) {
            parts[np++] = tok;
            tok = strtok_r(NULL, "-", &save);
        }
        if (tok || (np != 5 && np != 6))
            return -1;
        if (larder_pypi_normalize(parts[0], strlen(parts[0]), d->name, sizeof(d->name)) < 0)
            return -1;
        snprintf(d->version, sizeof(d->version), "%s", parts[1]);
        snprintf(d->pytag, sizeof(d->pytag), "%s", parts[np - 3]);
        snprintf(d->abitag, sizeof(d->abitag), "%s", parts[np - 2]);
        snprintf(d->plattag, sizeof(d->plattag), "%s", parts[np - 1]);
        d->is_wheel = 1;
        return 0;
    }
    static const char *exts[] = {".tar.gz", ".zip", ".tar.bz2", ".tgz", NULL};
    for (int i = 0; exts[i]; i++) {
        size_t el = strlen(exts[i]);
        if (n > el && strcmp(fn + n - el, exts[i]) == 0) {
            /* name-version: the version starts after the last '-' followed by a digit */
            size_t base = n - el;
            const char *dash = NULL;
            for (size_t k = 0; k < base; k++)
                if (fn[k] == '-' && k + 1 < base && isdigit((unsigned char)fn[k + 1]))
                    dash = fn + k;
            if (!dash)
                return -1;
            if (larder_pypi_normalize(fn, (size_t)(dash - fn), d->name, sizeof(d->name)) < 0)
                return -1;
            size_t vl = base - (size_t)(dash - fn) - 1;
            if (vl >= sizeof(d->version))
                return -1;
            memcpy(d->version, dash + 1, vl);
            d->version[vl] = 0;
            return 0;
        }
    }
    return -1;
}

static int tag_in(const char *tags, const char *want)
{
    /* compressed tag sets: "py2.py3" */
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", tags);
    char *save, *t = strtok_r(tmp, ".", &save);
    for (; t; t = strtok_r(NULL, ".", &save))
        if (strcmp(t, want) == 0)
            return 1;
    return 0;
}

int larder_pypi_dist_matches(const larder_pypi_dist_t *d, char *const *pyvers, size_t npy, char *const *platforms,
                             size_t nplat)
{
    if (!d->is_wheel)
        return 1;
    for (size_t i = 0; i < npy; i++) {
        int major = 0, minor = 0;
        if (sscanf(pyvers[i], "%d.%d", &major, &minor) != 2)
            continue;
        char cp[16], py[16], pym[8], abi3[8] = "abi3";
        snprintf(cp, sizeof(cp), "cp%d%d", major, minor);
        snprintf(py, sizeof(py), "py%d%d", major, minor);
        snprintf(pym, sizeof(pym), "py%d", major);
        int py_ok = tag_in(d->pytag, cp) || tag_in(d->pytag, py) || tag_in(d->pytag, pym);
        /* abi3 wheels built for an older cp3X work on newer ones */
        for (int m = 2; !py_ok && m < minor; m++) {
            char older[16];
            snprintf(older, sizeof(older), "cp%d%d", major, m);
            py_ok = tag_in(d->pytag, older) && tag_in(d->abitag, abi3);
        }
        if (!py_ok)
            continue;
        if (!(tag_in(d->abitag, "none") || tag_in(d->abitag, abi3) || tag_in(d->abitag, cp)))
            continue;
        if (tag_in(d->plattag, "any"))
            return 1;
        for (size_t k = 0; k < nplat; k++) {
            const char *want = platforms[k];
            const char *arch = strrchr(want, '_');
            /* manylinux*: accept any manylinux/linux tag of the same architecture */
            char tmp[256];
            snprintf(tmp, sizeof(tmp), "%s", d->plattag);
            char *save, *t = strtok_r(tmp, ".", &save);
            for (; t; t = strtok_r(NULL, ".", &save)) {
                if (strcmp(t, want) == 0)
                    return 1;
                const char *tarch = strrchr(t, '_');
                if (arch && tarch && strncmp(want, "manylinux", 9) == 0 && strncmp(t, "manylinux", 9) == 0 &&
                    strcmp(arch, tarch) == 0)
                    return 1;
                if (arch && tarch && strncmp(want, "musllinux", 9) == 0 && strncmp(t, "musllinux", 9) == 0 &&
                    strcmp(arch, tarch) == 0)
                    return 1;
            }
        }
    }
    return 0;
}

/* ---- seeding ---- */

typedef struct seed_req {
    char name[256];
    char version[128];
    char hashes[32][65];
    size_t nhashes;
    char file[256]; /* --file=: only this file */
    int page_only;  /* "<name> --page-only": the page, no file */
    char label[400];
} seed_req_t;

static int same_version(const char *a, const char *b);

int larder_pypi_parse_requirement(const char *line, larder_pypi_requirement_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *ns = p;
    while (isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.')
        p++;
    if (p == ns || larder_pypi_normalize(ns, (size_t)(p - ns), out->name, sizeof(out->name)) < 0) {
        snprintf(err, errlen, "'%.200s' does not start with a project name", line);
        return -1;
    }
    if (*p == '[') { /* extras do not change which files exist */
        const char *close = strchr(p, ']');
        if (!close) {
            snprintf(err, errlen, "'%.200s': unterminated extras", line);
            return -1;
        }
        p = close + 1;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (p[0] != '=' || p[1] != '=') {
        snprintf(err, errlen, "'%.200s' is not pinned: seed exact versions (name==version, as pip-compile writes)",
                 line);
        return -1;
    }
    p += p[2] == '=' ? 3 : 2;
    while (*p == ' ')
        p++;
    const char *vs = p;
    while (*p && !isspace((unsigned char)*p) && *p != ';' && *p != ',' && *p != '\\')
        p++;
    size_t vl = (size_t)(p - vs);
    if (vl == 0 || vl >= sizeof(out->version) || memchr(vs, '*', vl)) {
        snprintf(err, errlen, "'%.200s' is not pinned to one version", line);
        return -1;
    }
    memcpy(out->version, vs, vl);
    out->version[vl] = 0;
    if (*p == ',') {
        snprintf(err, errlen, "'%.200s': only a single == pin is supported", line);
        return -1;
    }
    /* markers are ignored (files are chosen by python_versions/platforms); collect --hash options */
    const char *h = p;
    while ((h = strstr(h, "--hash")) != NULL) {
        h += 6;
        while (*h == '=' || *h == ' ')
            h++;
        if (strncmp(h, "sha256:", 7) == 0 && out->nhashes < sizeof(out->hashes) / sizeof(out->hashes[0])) {
            char hex[65];
            size_t k = 0;
            for (; k < 64 && isxdigit((unsigned char)h[7 + k]); k++)
                hex[k] = (char)tolower((unsigned char)h[7 + k]);
            hex[k] = 0;
            if (k == 64)
                memcpy(out->hashes[out->nhashes++], hex, 65);
        }
    }
    const char *f = strstr(p, "--file=");
    if (f) {
        f += 7;
        size_t fl = strcspn(f, " \t\\");
        larder_pypi_dist_t d;
        if (fl == 0 || fl >= sizeof(out->file)) {
            snprintf(err, errlen, "'%.200s': --file= needs a file name", line);
            return -1;
        }
        memcpy(out->file, f, fl);
        out->file[fl] = 0;
        if (strchr(out->file, '/') || larder_pypi_parse_filename(out->file, &d) < 0 || strcmp(d.name, out->name) != 0 ||
            !same_version(d.version, out->version)) {
            snprintf(err, errlen, "'%.200s': --file=%s is not a file of %s %s", line, out->file, out->name, out->version);
            return -1;
        }
    }
    return 0;
}

/* version strings compare after lower-casing and dropping a leading 'v' (exact PEP 440 equality is not needed
 * for pinned requirements written by pip-compile, which copies the index's spelling) */
static int same_version(const char *a, const char *b)
{
    if (*a == 'v' || *a == 'V')
        a++;
    if (*b == 'v' || *b == 'V')
        b++;
    return strcasecmp(a, b) == 0;
}

static void seed_page_done(larder_seed_ctx_t *c, int proto, const char *key, void *data)
{
    seed_req_t *sr = data;
    larder_app_t *app = larder_seed_app(c);
    const larder_seed_spec_t *spec = larder_seed_spec_of(c);
    larder_entry_t e;
    char path[4096];
    if (larder_store_get(app->store, proto, key, &e) < 0) {
        larder_seed_fail(c, sr->label, "the index page vanished from the cache");
        return;
    }
    larder_store_blob_path(app->store, e.digest, path, sizeof(path));
    larder_entry_clear(&e);
    size_t len;
    char *text = larder_read_file(path, &len);
    json_t *root = text ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    json_t *files = json_object_get(root, "files");
    size_t i, matched = 0, versions_seen = 0;
    json_t *fo;
    if (sr->page_only) {
        json_decref(root);
        return;
    }
    json_array_foreach(files, i, fo)
    {
        const char *fn = json_string_value(json_object_get(fo, "filename"));
        const char *url = json_string_value(json_object_get(fo, "url"));
        larder_pypi_dist_t d;
        if (!fn || !url || larder_pypi_parse_filename(fn, &d) < 0 || strcmp(d.name, sr->name) != 0 ||
            !same_version(d.version, sr->version))
            continue;
        versions_seen++;
        const larder_seed_strings_t *pyv = larder_seed_option(spec, LARDER_PROTO_PYPI, "python_versions");
        const larder_seed_strings_t *plat = larder_seed_option(spec, LARDER_PROTO_PYPI, "platforms");
        if (sr->file[0] ? strcmp(fn, sr->file) != 0 : !larder_pypi_dist_matches(&d, pyv->v, pyv->n, plat->v, plat->n))
            continue;
        const char *sha = pypi_json_sha256(fo);
        if (sr->file[0] && !sha && sr->nhashes)
            sha = sr->hashes[0]; /* an index without hashes: the spec's hash verifies the download */
        if (sr->nhashes) {
            int ok = 0;
            for (size_t k = 0; sha && k < sr->nhashes; k++)
                ok |= strcmp(sha, sr->hashes[k]) == 0;
            if (!ok)
                continue;
        }
        /* our own link: ../../files/<project>/<scheme>/<host>/<path>[#fragment] */
        static const char pre[] = "../../files/";
        if (strncmp(url, pre, sizeof(pre) - 1) != 0)
            continue;
        const char *r = url + sizeof(pre) - 1;
        const char *hash = strchr(r, '#');
        size_t rl = hash ? (size_t)(hash - r) : strlen(r);
        const char *s1 = memchr(r, '/', rl), *s2 = s1 ? memchr(s1 + 1, '/', rl - (size_t)(s1 + 1 - r)) : NULL;
        const char *s3 = s2 ? memchr(s2 + 1, '/', rl - (size_t)(s2 + 1 - r)) : NULL;
        if (!s3)
            continue;
        char *canon =
            pypi_canon_url(s1 + 1, (size_t)(s2 - s1 - 1), s2 + 1, (size_t)(s3 - s2 - 1), s3, (size_t)(r + rl - s3));
        char rkey[4500];
        snprintf(rkey, sizeof(rkey), "f/%s/%s", sr->name, canon);
        char *rec = larder_store_meta_get(app->store, LARDER_PROTO_PYPI, rkey, NULL);
        char fsha[80] = "", msha[80] = "";
        int has_meta = 0, off = 0;
        if (!rec || sscanf(rec, "%70s %70s %d %n", fsha, msha, &has_meta, &off) != 3 || !off) {
            free(rec);
            free(canon);
            continue;
        }
        const char *raw = rec + off;
        larder_fetch_req_t fr = {.proto = LARDER_PROTO_PYPI,
                                 .key = canon,
                                 .url = raw,
                                 .sha256 = larder_is_sha256_hex(fsha) ? fsha : sha,
                                 .entry_flags = LARDER_ENTRY_IMMUTABLE};
        larder_seed_add(c, fn, &fr, NULL, NULL);
        if (has_meta) {
            char mkey[4300], murl[4300], mlabel[600];
            snprintf(mkey, sizeof(mkey), "%s.metadata", canon);
            snprintf(murl, sizeof(murl), "%s.metadata", raw);
            snprintf(mlabel, sizeof(mlabel), "%s.metadata", fn);
            larder_fetch_req_t mr = {.proto = LARDER_PROTO_PYPI,
                                     .key = mkey,
                                     .url = murl,
                                     .sha256 = larder_is_sha256_hex(msha) ? msha : NULL,
                                     .entry_flags = LARDER_ENTRY_IMMUTABLE};
            larder_seed_add(c, mlabel, &mr, NULL, NULL);
        }
        matched++;
        free(rec);
        free(canon);
    }
    if (root)
        json_decref(root);
    if (!matched) {
        char msg[600];
        if (sr->file[0])
            snprintf(msg, sizeof(msg), versions_seen ? "the index lists no file %s%s" : "version not found in the index",
                     sr->file, sr->nhashes ? " with this sha256" : "");
        else
            snprintf(msg, sizeof(msg), versions_seen ? "no file of this release matches the seed's python_versions "
                                                       "and platforms%s"
                                                     : "version not found in the index%s",
                     sr->nhashes ? " and hashes" : "");
        larder_seed_fail(c, sr->label, msg);
    }
}

/* "<name> --page-only": 1 with the normalised name, else 0 */
static int page_only_ref(const char *ref, char *name, size_t namelen)
{
    static const char opt[] = " " LARDER_PYPI_PAGE_ONLY;
    size_t rl = strlen(ref), ol = sizeof(opt) - 1;
    if (rl <= ol || strcmp(ref + rl - ol, opt) != 0)
        return 0;
    for (size_t i = 0; i < rl - ol; i++)
        if (!(isalnum((unsigned char)ref[i]) || ref[i] == '-' || ref[i] == '_' || ref[i] == '.'))
            return 0;
    return larder_pypi_normalize(ref, rl - ol, name, namelen) == 0;
}

void pypi_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    larder_pypi_requirement_t req;
    char err[400];
    int page_only = page_only_ref(item->ref, req.name, sizeof(req.name));
    if (page_only) {
        req.version[0] = 0;
        req.nhashes = 0;
        req.file[0] = 0;
    } else if (larder_pypi_parse_requirement(item->ref, &req, err, sizeof(err)) < 0) {
        larder_seed_fail(ctx, item->ref, err);
        return;
    }
    const char *up = upstream_base(app->cfg);
    if (!up) {
        larder_seed_fail(ctx, item->ref, "pypi.upstream is not configured");
        return;
    }
    seed_req_t *sr = calloc(1, sizeof(*sr));
    memcpy(sr->name, req.name, sizeof(sr->name));
    memcpy(sr->version, req.version, sizeof(sr->version));
    memcpy(sr->hashes, req.hashes, sizeof(sr->hashes));
    sr->nhashes = req.nhashes;
    memcpy(sr->file, req.file, sizeof(sr->file));
    sr->page_only = page_only;
    if (page_only)
        snprintf(sr->label, sizeof(sr->label), "%s", req.name);
    else
        snprintf(sr->label, sizeof(sr->label), "%s==%s", req.name, req.version);
    char url[4400];
    snprintf(url, sizeof(url), "%s%s/", up, req.name);
    /* the page's callback owns sr (and may run at once when the page is cached) */
    char key[400], label[500];
    snprintf(key, sizeof(key), "page/%s/json", req.name);
    snprintf(label, sizeof(label), "%s (index)", sr->label);
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_PYPI,
                             .key = key,
                             .url = url,
                             .ttl = app->cfg->proto[LARDER_PROTO_PYPI].ttl,
                             .accept = UPSTREAM_ACCEPT,
                             .transform = pypi_transform_page};
    larder_seed_add(ctx, label, &fr, seed_page_done, sr);
}

/* ---- requirements files (used by the `larder seed` client) ---- */

static void push(char ***arr, size_t *n, const char *s, size_t len)
{
    *arr = realloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[(*n)++] = strndup(s, len);
}

/* a requirement that names a version-control source: "git+https://...", "name @ git+ssh://..." */
static int vcs_source(const char *s)
{
    static const char *const vcs[] = {"git+", "hg+", "svn+", "bzr+", NULL};
    const char *at = strstr(s, " @ ");
    const char *src = at ? at + 3 : s;
    while (*src == ' ')
        src++;
    for (int i = 0; vcs[i]; i++)
        if (!strncasecmp(src, vcs[i], strlen(vcs[i])))
            return 1;
    return 0;
}

/* the source of a requirement line, when it is not the index: 1 a URL, 2 a local path, 0 the index */
static int direct_source(const char *s)
{
    const char *at = strstr(s, " @ ");
    const char *src = at ? at + 3 : s;
    while (*src == ' ')
        src++;
    if (!strncasecmp(src, "file:", 5) || src[0] == '.' || src[0] == '/' || src[0] == '~')
        return 2;
    if (!strncasecmp(src, "http://", 7) || !strncasecmp(src, "https://", 8) || strstr(src, "://"))
        return 1;
    return 0;
}

size_t larder_pypi_requirement_lines(const char *text, size_t len, char ***lines, char ***includes, size_t *nincludes)
{
    return larder_pypi_requirement_lines_ex(text, len, lines, includes, nincludes, NULL, NULL);
}

size_t larder_pypi_requirement_lines_ex(const char *text, size_t len, char ***lines, char ***includes,
                                        size_t *nincludes, larder_pypi_unseedable_cb cb, void *ctx)
{
    size_t n = 0;
    *lines = NULL;
    *includes = NULL;
    *nincludes = 0;
    larder_pypi_buf_t logical = {0};
    size_t i = 0;
    while (i <= len) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        const char *l = text + i;
        size_t ll = e - i;
        while (ll && (l[ll - 1] == '\r'))
            ll--;
        /* a comment starts at '#' at the line start or after whitespace */
        for (size_t k = 0; k < ll; k++)
            if (l[k] == '#' && (k == 0 || isspace((unsigned char)l[k - 1]))) {
                ll = k;
                break;
            }
        int cont = ll && l[ll - 1] == '\\';
        if (cont)
            ll--;
        pypi_buf_add(&logical, l, ll);
        pypi_buf_add(&logical, " ", 1);
        if (!cont || e >= len) {
            /* trim and classify the logical line */
            char *s = logical.p;
            size_t sl = logical.len;
            while (sl && isspace((unsigned char)*s))
                s++, sl--;
            while (sl && isspace((unsigned char)s[sl - 1]))
                sl--;
            if (sl) {
                if (!strncmp(s, "-r ", 3) || !strncmp(s, "--requirement ", 14) || !strncmp(s, "--requirement=", 14)) {
                    const char *f = s + (s[1] == 'r' ? 3 : 14);
                    while (*f == ' ' || *f == '=')
                        f++;
                    push(includes, nincludes, f, sl - (size_t)(f - s));
                } else if (!strncmp(s, "-e ", 3) || !strncmp(s, "-e", 2) || !strncmp(s, "--editable", 10)) {
                    const char *t = s + (s[1] == 'e' ? 2 : 10);
                    while (*t == ' ' || *t == '=')
                        t++;
                    char *one = strndup(s, sl);
                    if (cb && one)
                        cb(ctx, one,
                           vcs_source(t) ? "an editable git (VCS) source: the pip section cannot seed git sources (the "
                                           "git mirror serves them)"
                           : direct_source(t) == 1 ? "an editable URL: the pip section cannot seed it"
                                                   : "an editable local project: nothing to fetch",
                           vcs_source(t) || direct_source(t) == 1);
                    free(one);
                } else if (s[0] != '-') {
                    char *one = strndup(s, sl);
                    int d = one ? direct_source(one) : 0;
                    if (one && vcs_source(one)) {
                        if (cb)
                            cb(ctx, one,
                               "a git (VCS) source: the pip section cannot seed git sources (the git mirror serves them)",
                               1);
                    } else if (one && d == 1) {
                        if (cb)
                            cb(ctx, one,
                               "a direct URL: the pip section seeds from the index only (pin the file in the files "
                               "section)",
                               1);
                    } else if (one && d == 2) {
                        if (cb)
                            cb(ctx, one, "a local path: nothing to fetch", 0);
                    } else {
                        push(lines, &n, s, sl);
                    }
                    free(one);
                }
                /* other options (-c, -i, --index-url, -e, --hash on its own line...) are not requirements */
            }
            logical.len = 0;
            if (logical.p)
                logical.p[0] = 0;
        }
        i = e + 1;
    }
    free(logical.p);
    return n;
}

/* ---- the pin_spec hook: a pinned entry back into requirement lines ---- */

/* whether a pypi item of `project` is in the spec: any "<project>==..." (file = NULL), or the one naming `file` */
static int have_item(const larder_seed_spec_t *spec, const char *project, const char *file)
{
    size_t pl = strlen(project);
    for (size_t i = 0; i < spec->nitems; i++) {
        const char *r = spec->items[i].ref;
        if (spec->items[i].proto != LARDER_PROTO_PYPI || strncmp(r, project, pl) != 0 || strncmp(r + pl, "==", 2) != 0)
            continue;
        const char *f = file ? strstr(r, " --file=") : NULL;
        if (!file || (f && !strncmp(f + 8, file, strlen(file)) && (!f[8 + strlen(file)] || f[8 + strlen(file)] == ' ')))
            return 1;
    }
    return 0;
}

/* remove the pypi item whose ref is `ref` */
static void drop_item(larder_seed_spec_t *spec, const char *ref)
{
    size_t o = 0;
    for (size_t i = 0; i < spec->nitems; i++) {
        larder_seed_item_t *it = &spec->items[i];
        if (it->proto == LARDER_PROTO_PYPI && !strcmp(it->ref, ref)) {
            free(it->ref);
            free(it->sha256);
            continue;
        }
        spec->items[o++] = *it;
    }
    spec->nitems = o;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int larder_pypi_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                         char *why, size_t whylen)
{
    (void)cfg;
    char line[1000];
    if (!strcmp(key, "index/list")) {
        snprintf(why, whylen, "the project list (/pypi/simple/) is not seeded: pip reads project pages only");
        return -1;
    }
    if (!strncmp(key, "page/", 5)) {
        /* page/<project>/json: files sort before pages ("http..." < "page/"), so a file item of the project, which
         * fetches the page too, is already there */
        const char *slash = strchr(key + 5, '/');
        char project[256];
        size_t pl = slash ? (size_t)(slash - key - 5) : 0;
        if (!slash || strcmp(slash, "/json") != 0 || pl == 0 ||
            larder_pypi_normalize(key + 5, pl, project, sizeof(project)) < 0) {
            snprintf(why, whylen, "not a project page key");
            return -1;
        }
        if (have_item(spec, project, NULL))
            return 0;
        snprintf(line, sizeof(line), "%s %s", project, LARDER_PYPI_PAGE_ONLY);
        return larder_seed_append(spec, LARDER_PROTO_PYPI, line, NULL);
    }
    /* a file or its metadata: the key is its canonical upstream URL, the file name its last segment */
    size_t kl = strlen(key);
    int meta = kl > 9 && !strcmp(key + kl - 9, ".metadata");
    const char *slash = strrchr(key, '/');
    if (strncmp(key, "http", 4) != 0 || !slash) {
        snprintf(why, whylen, "not a file key (its upstream URL)");
        return -1;
    }
    char file[256] = "";
    size_t fl = 0;
    for (const char *s = slash + 1; s < key + kl - (meta ? 9 : 0); s++) {
        int hi, lo;
        char ch = *s;
        if (ch == '%' && (hi = hexval(s[1])) >= 0 && (lo = hexval(s[2])) >= 0) {
            ch = (char)(hi * 16 + lo);
            s += 2;
        }
        if (fl + 1 >= sizeof(file) || (unsigned char)ch < 0x21 || ch == '/') {
            fl = 0;
            break;
        }
        file[fl++] = ch;
    }
    file[fl] = 0;
    larder_pypi_dist_t d;
    if (!fl || larder_pypi_parse_filename(file, &d) < 0) {
        snprintf(why, whylen, "'%.200s' is not a wheel or sdist file name", fl ? file : slash + 1);
        return -1;
    }
    /* a .metadata comes with its file (the file's key sorts just before it) */
    if (meta && have_item(spec, d.name, file))
        return 0;
    int n = snprintf(line, sizeof(line), "%s==%s --file=%s", d.name, d.version, file);
    if (e && !meta)
        snprintf(line + n, sizeof(line) - (size_t)n, " --hash=sha256:%s", e->digest);
    char po[300];
    snprintf(po, sizeof(po), "%s %s", d.name, LARDER_PYPI_PAGE_ONLY);
    drop_item(spec, po);
    larder_pypi_requirement_t req;
    char err[400];
    if (larder_pypi_parse_requirement(line, &req, err, sizeof(err)) < 0) {
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    return larder_seed_append(spec, LARDER_PROTO_PYPI, line, NULL);
}
