/* pages.c - reading what a PyPI upstream sends: a project page or the project list, HTML (PEP 503) or JSON
 * (PEP 691), into the page model of internal.h (pypi_page_t: one pypi_file_rec_t per file link).
 *
 * Links are resolved against the page's own URL (larder_url_resolve, an RFC 3986 subset) and only http(s) links
 * become files. An HTML page is scanned anchor by anchor: href, text, data-requires-python, data-yanked,
 * data-gpg-sig, the PEP 658/714 metadata attributes and a hash in the URL fragment; a JSON page keeps each file
 * object whole (`extra`) so that no field is lost. larder_pypi_rewrite_page hands the model to render.c
 * (pypi_emit_json) for the stored JSON and reports every file to its callback (serve.c records them);
 * larder_pypi_rewrite_index turns the project list into JSON the same way.
 * Everything here is pure: no store, no requests, no configuration, so the fuzzers (fuzz_pypi_html,
 * fuzz_pypi_json) reach it through pypi.h alone. */
#include "internal.h"
#include "util.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- URLs ---- */

static void remove_dot_segments(larder_pypi_buf_t *out, const char *path, size_t len)
{
    /* out receives the normalised path; segments are pushed and popped on '/' boundaries */
    size_t i = 0;
    size_t base = out->len;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        size_t sl = j - i;
        int last = j >= len;
        if (sl == 1 && path[i] == '.') {
            if (last)
                pypi_buf_add(out, "/", 0);
        } else if (sl == 2 && path[i] == '.' && path[i + 1] == '.') {
            /* pop the last segment (keeping the leading '/') */
            if (out->len > base) {
                size_t k = out->len - 1; /* points at trailing '/' */
                while (k > base && out->p[k - 1] != '/')
                    k--;
                out->len = k > base ? k : base + 1;
                out->p[out->len] = 0;
            }
        } else {
            pypi_buf_add(out, path + i, sl);
            if (!last)
                pypi_buf_add(out, "/", 1);
        }
        i = j + 1;
    }
    if (out->len == base)
        pypi_buf_add(out, "/", 1);
}

char *larder_url_resolve(const char *base, const char *ref, size_t reflen, char **fragment)
{
    *fragment = NULL;
    const char *hash = memchr(ref, '#', reflen);
    if (hash) {
        *fragment = strndup(hash + 1, reflen - (size_t)(hash - ref) - 1);
        reflen = (size_t)(hash - ref);
    }
    larder_pypi_buf_t b = {0};
    const char *bs = strstr(base, "://");
    if (!bs)
        goto bad;
    size_t scheme_len = (size_t)(bs - base);
    const char *bhost = bs + 3;
    const char *bpath = strchr(bhost, '/');
    size_t hostlen = bpath ? (size_t)(bpath - bhost) : strlen(bhost);
    /* absolute: scheme:// */
    size_t k = 0;
    while (k < reflen && (isalnum((unsigned char)ref[k]) || ref[k] == '+' || ref[k] == '-' || ref[k] == '.'))
        k++;
    if (k > 0 && k + 2 < reflen && ref[k] == ':' && ref[k + 1] == '/' && ref[k + 2] == '/') {
        const char *h = ref + k + 3, *e = ref + reflen;
        const char *p = memchr(h, '/', (size_t)(e - h));
        pypi_buf_add(&b, ref, (size_t)(h - ref));
        for (size_t i = 0; i < k; i++) /* schemes are case-insensitive: keep one spelling */
            b.p[i] = (char)tolower((unsigned char)b.p[i]);
        if (!p) {
            pypi_buf_add(&b, h, (size_t)(e - h));
            pypi_buf_add(&b, "/", 1);
        } else {
            pypi_buf_add(&b, h, (size_t)(p - h));
            remove_dot_segments(&b, p, (size_t)(e - p));
        }
        return b.p;
    }
    if (k > 0 && k < reflen && ref[k] == ':' && isalpha((unsigned char)ref[0])) {
        /* another absolute URI (mailto:, javascript:, ...): kept as it is, never something we fetch */
        pypi_buf_add(&b, ref, reflen);
        return b.p;
    }
    if (reflen >= 2 && ref[0] == '/' && ref[1] == '/') {
        pypi_buf_add(&b, base, scheme_len + 1);
        const char *h = ref + 2, *e = ref + reflen;
        const char *p = memchr(h, '/', (size_t)(e - h));
        pypi_buf_add(&b, "//", 2);
        if (!p) {
            pypi_buf_add(&b, h, (size_t)(e - h));
            pypi_buf_add(&b, "/", 1);
        } else {
            pypi_buf_add(&b, h, (size_t)(p - h));
            remove_dot_segments(&b, p, (size_t)(e - p));
        }
        return b.p;
    }
    pypi_buf_add(&b, base, scheme_len + 3 + hostlen);
    larder_pypi_buf_t path = {0};
    if (reflen > 0 && ref[0] == '/') {
        pypi_buf_add(&path, ref, reflen);
    } else {
        const char *bp = bpath ? bpath : "/";
        const char *q = strchr(bp, '?');
        size_t bplen = q ? (size_t)(q - bp) : strlen(bp);
        const char *slash = bp;
        for (size_t i = 0; i < bplen; i++)
            if (bp[i] == '/')
                slash = bp + i;
        pypi_buf_add(&path, bp, (size_t)(slash - bp) + 1);
        pypi_buf_add(&path, ref, reflen);
    }
    const char *qm = path.p ? memchr(path.p, '?', path.len) : NULL;
    size_t plen = qm ? (size_t)(qm - path.p) : path.len;
    remove_dot_segments(&b, path.p ? path.p : "/", path.p ? plen : 1);
    if (qm)
        pypi_buf_add(&b, qm, path.len - plen);
    free(path.p);
    return b.p;
bad:
    free(b.p);
    free(*fragment);
    *fragment = NULL;
    return NULL;
}

static int is_http_url(const char *u)
{
    return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) &&
           u[u[4] == ':' ? 7 : 8] != '/' && u[u[4] == ':' ? 7 : 8] != 0;
}

/* ---- HTML ---- */

static size_t html_unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '&') {
            out[o++] = s[i];
            continue;
        }
        const char *semi = memchr(s + i, ';', n - i < 12 ? n - i : 12);
        if (!semi) {
            out[o++] = s[i];
            continue;
        }
        size_t el = (size_t)(semi - (s + i));
        const char *e = s + i + 1;
        long cp = -1;
        if (el == 4 && !memcmp(e, "amp", 3))
            cp = '&';
        else if (el == 3 && !memcmp(e, "lt", 2))
            cp = '<';
        else if (el == 3 && !memcmp(e, "gt", 2))
            cp = '>';
        else if (el == 5 && !memcmp(e, "quot", 4))
            cp = '"';
        else if (el == 5 && !memcmp(e, "apos", 4))
            cp = '\'';
        else if (el >= 3 && e[0] == '#') {
            char num[12];
            size_t nl = el - 2 < sizeof(num) - 1 ? el - 2 : sizeof(num) - 1;
            memcpy(num, e + 1, nl);
            num[nl] = 0;
            char *endp;
            cp = (num[0] == 'x' || num[0] == 'X') ? strtol(num + 1, &endp, 16) : strtol(num, &endp, 10);
            if (*endp || cp <= 0 || cp > 0x7e)
                cp = -1; /* only ASCII is meaningful in these attributes */
        }
        if (cp < 0) {
            out[o++] = s[i];
            continue;
        }
        out[o++] = (char)cp;
        i += el;
    }
    return o;
}

typedef struct attr {
    const char *name;
    size_t nlen;
    const char *val; /* raw, still escaped */
    size_t vlen;
    const char *vstart, *vend; /* span in the input including quotes */
} attr_t;

#define MAX_ATTRS 24

/* parse the attributes of a tag starting after its name; returns the position after '>' or NULL */
static const char *parse_attrs(const char *p, const char *end, attr_t *attrs, size_t *n)
{
    *n = 0;
    while (p < end) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p >= end)
            return NULL;
        if (*p == '>')
            return p + 1;
        if (*p == '/') {
            p++;
            continue;
        }
        const char *ns = p;
        while (p < end && !isspace((unsigned char)*p) && *p != '=' && *p != '>' && *p != '/')
            p++;
        attr_t a = {ns, (size_t)(p - ns), NULL, 0, NULL, NULL};
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p < end && *p == '=') {
            p++;
            while (p < end && isspace((unsigned char)*p))
                p++;
            if (p >= end)
                return NULL;
            a.vstart = p;
            if (*p == '"' || *p == '\'') {
                char q = *p++;
                const char *vs = p;
                while (p < end && *p != q)
                    p++;
                if (p >= end)
                    return NULL;
                a.val = vs;
                a.vlen = (size_t)(p - vs);
                p++;
            } else {
                const char *vs = p;
                while (p < end && !isspace((unsigned char)*p) && *p != '>')
                    p++;
                a.val = vs;
                a.vlen = (size_t)(p - vs);
            }
            a.vend = p;
        }
        if (*n < MAX_ATTRS)
            attrs[(*n)++] = a;
    }
    return NULL;
}

static const attr_t *find_attr(const attr_t *attrs, size_t n, const char *name)
{
    size_t l = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (attrs[i].nlen == l && strncasecmp(attrs[i].name, name, l) == 0)
            return &attrs[i];
    return NULL;
}

/* an unescaped copy of an attribute value (malloc'd) */
static char *attr_value(const attr_t *a)
{
    if (!a || !a->val)
        return NULL;
    char *out = calloc(a->vlen + 1, 1);
    if (!out)
        abort();
    size_t n = html_unescape(a->val, a->vlen, out);
    out[n] = 0;
    return out;
}

/* "sha256=<hex>" -> hex (in place) or NULL */
static const char *hash_value(char *v)
{
    if (!v)
        return NULL;
    if (strncasecmp(v, "sha256=", 7) == 0 && larder_is_sha256_hex(v + 7))
        return v + 7;
    return NULL;
}

static void page_free(pypi_page_t *pg)
{
    for (size_t i = 0; i < pg->n; i++) {
        pypi_file_rec_t *f = &pg->files[i];
        free(f->filename);
        free(f->url);
        free(f->fragment);
        free(f->sha256);
        free(f->requires_python);
        free(f->yanked);
        free(f->meta_sha256);
        free(f->hash_alg);
        free(f->hash_hex);
        if (f->extra)
            json_decref(f->extra);
    }
    free(pg->files);
}

static pypi_file_rec_t *page_add(pypi_page_t *pg)
{
    if (pg->n == pg->cap) {
        pg->cap = pg->cap ? pg->cap * 2 : 32;
        pg->files = realloc(pg->files, pg->cap * sizeof(*pg->files));
        if (!pg->files)
            abort();
    }
    pypi_file_rec_t *f = &pg->files[pg->n++];
    memset(f, 0, sizeof(*f));
    f->gpg_sig = -1;
    return f;
}

static char *fragment_sha256(const char *frag)
{
    if (frag && strncmp(frag, "sha256=", 7) == 0 && larder_is_sha256_hex(frag + 7))
        return strdup(frag + 7);
    return NULL;
}

static int parse_hash(const char *s, const char **hex)
{
    for (size_t i = 0; s && i < sizeof(pypi_hash_algs) / sizeof(pypi_hash_algs[0]); i++) {
        size_t nl = strlen(pypi_hash_algs[i].name);
        if (strncmp(s, pypi_hash_algs[i].name, nl) == 0 && s[nl] == '=' &&
            pypi_is_lower_hex(s + nl + 1, pypi_hash_algs[i].hexlen)) {
            *hex = s + nl + 1;
            return (int)i;
        }
    }
    return -1;
}

static char *trimmed_text(const char *s, size_t n)
{
    char *text = malloc(n + 1);
    if (!text)
        abort();
    size_t tl = html_unescape(s, n, text);
    text[tl] = 0;
    char *ts = text;
    while (*ts && isspace((unsigned char)*ts))
        ts++;
    size_t tsl = strlen(ts);
    while (tsl && isspace((unsigned char)ts[tsl - 1]))
        ts[--tsl] = 0;
    char *r = strdup(ts);
    free(text);
    return r;
}

/* Calls fn for every <a ...>text</a> of an HTML document: its attributes and its (unescaped, trimmed) text. */
typedef void (*anchor_fn)(void *ctx, const attr_t *attrs, size_t na, const char *text);
static void for_each_anchor(const char *in, size_t len, anchor_fn fn, void *ctx)
{
    const char *p = in, *end = in + len;
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt)
            break;
        p = lt + 1;
        if (end - p < 2 || (p[0] != 'a' && p[0] != 'A') || !isspace((unsigned char)p[1]))
            continue;
        attr_t attrs[MAX_ATTRS];
        size_t na;
        const char *after = parse_attrs(p + 1, end, attrs, &na);
        if (!after)
            break;
        const char *close = after;
        while (close < end && *close != '<')
            close++;
        char *text = trimmed_text(after, (size_t)(close - after));
        fn(ctx, attrs, na, text);
        free(text);
        p = after;
    }
}

typedef struct html_page_ctx {
    const char *page_url;
    pypi_page_t *pg;
} html_page_ctx_t;

static void html_file_anchor(void *arg, const attr_t *attrs, size_t na, const char *text)
{
    html_page_ctx_t *c = arg;
    const attr_t *href = find_attr(attrs, na, "href");
    if (!href || !href->val)
        return;
    char *hv = attr_value(href);
    char *frag = NULL;
    char *url = larder_url_resolve(c->page_url, hv, strlen(hv), &frag);
    free(hv);
    if (!is_http_url(url)) { /* not something we could fetch */
        free(url);
        free(frag);
        return;
    }
    pypi_file_rec_t *f = page_add(c->pg);
    f->url = url;
    f->fragment = frag;
    f->filename = strdup(text);
    f->sha256 = fragment_sha256(frag);
    const char *hex;
    int alg = parse_hash(frag, &hex);
    if (alg > 0) {
        f->hash_alg = strdup(pypi_hash_algs[alg].name);
        f->hash_hex = strdup(hex);
    }
    f->requires_python = attr_value(find_attr(attrs, na, "data-requires-python"));
    const attr_t *y = find_attr(attrs, na, "data-yanked");
    if (y) {
        f->yanked_flag = 1;
        f->yanked = attr_value(y);
    }
    const attr_t *g = find_attr(attrs, na, "data-gpg-sig");
    if (g) {
        char *gv = attr_value(g);
        f->gpg_sig = gv && strcasecmp(gv, "true") == 0;
        free(gv);
    }
    /* PEP 714: data-core-metadata wins; data-dist-info-metadata is the older name */
    const attr_t *m = find_attr(attrs, na, "data-core-metadata");
    if (!m)
        m = find_attr(attrs, na, "data-dist-info-metadata");
    if (m) {
        char *mv = attr_value(m);
        if (!mv || strcasecmp(mv, "false") != 0) {
            f->has_meta = 1;
            const char *h = hash_value(mv);
            f->meta_sha256 = h ? strdup(h) : NULL;
        }
        free(mv);
    }
}

/* ---- JSON ---- */

const char *pypi_json_sha256(json_t *o)
{
    const char *h = json_string_value(json_object_get(json_object_get(o, "hashes"), "sha256"));
    return h && larder_is_sha256_hex(h) ? h : NULL;
}

/* PEP 691 metadata value: true, or a non-empty object of hashes (what Python would call truthy) */
int pypi_json_truthy_meta(json_t *m)
{
    return json_is_true(m) || (json_is_object(m) && json_object_size(m) > 0);
}

static int json_parse_page(const char *page_url, json_t *root, pypi_page_t *pg)
{
    json_t *files = json_object_get(root, "files");
    if (!json_is_array(files))
        return -1;
    size_t i;
    json_t *fo;
    json_array_foreach(files, i, fo)
    {
        const char *url = json_string_value(json_object_get(fo, "url"));
        if (!json_is_object(fo) || !url)
            continue;
        char *frag = NULL;
        char *abs = larder_url_resolve(page_url, url, strlen(url), &frag);
        if (!is_http_url(abs)) {
            free(abs);
            free(frag);
            continue;
        }
        pypi_file_rec_t *f = page_add(pg);
        f->url = abs;
        f->fragment = frag;
        const char *fn = json_string_value(json_object_get(fo, "filename"));
        f->filename = fn ? strdup(fn) : NULL;
        const char *h = pypi_json_sha256(fo);
        f->sha256 = h ? strdup(h) : fragment_sha256(f->fragment);
        const char *rp = json_string_value(json_object_get(fo, "requires-python"));
        f->requires_python = rp ? strdup(rp) : NULL;
        json_t *y = json_object_get(fo, "yanked");
        if (json_is_string(y)) {
            f->yanked_flag = 1;
            f->yanked = strdup(json_string_value(y));
        } else if (json_is_true(y)) {
            f->yanked_flag = 1;
        }
        json_t *m = json_object_get(fo, "core-metadata");
        if (!m)
            m = json_object_get(fo, "dist-info-metadata");
        if (!m) /* how PyPI spelled it for a while in 2023 */
            m = json_object_get(fo, "data-dist-info-metadata");
        if (pypi_json_truthy_meta(m)) {
            f->has_meta = 1;
            const char *mh = json_is_object(m) ? json_string_value(json_object_get(m, "sha256")) : NULL;
            f->meta_sha256 = mh && larder_is_sha256_hex(mh) ? strdup(mh) : NULL;
        }
        f->extra = json_incref(fo);
    }
    return 0;
}

int larder_pypi_rewrite_page(const char *page_url, const char *project, int in_json, const char *in, size_t len,
                             int out_fmt, larder_pypi_buf_t *out, larder_pypi_file_cb cb, void *ctx, char *err,
                             size_t errlen)
{
    pypi_page_t pg = {0};
    json_t *root = NULL;
    int r = 0;
    if (in_json) {
        json_error_t je;
        root = json_loadb(in, len, 0, &je);
        if (!json_is_object(root) || json_parse_page(page_url, root, &pg) < 0) {
            snprintf(err, errlen, "upstream JSON page is not a PEP 691 project page%s%s", root ? "" : ": ",
                     root ? "" : je.text);
            r = -1;
            goto out;
        }
    } else {
        html_page_ctx_t hc = {page_url, &pg};
        for_each_anchor(in, len, html_file_anchor, &hc);
    }
    if (out_fmt == LARDER_PYPI_JSON) {
        pypi_emit_json(project, root, &pg, out);
    } else {
        larder_pypi_buf_t j = {0};
        pypi_emit_json(project, root, &pg, &j);
        size_t hl = 0;
        char *h = j.p ? larder_pypi_render_html(j.p, j.len, &hl) : NULL;
        if (h)
            pypi_buf_add(out, h, hl);
        free(h);
        free(j.p);
    }
    if (!out->p)
        pypi_buf_add(out, "", 0);
    for (size_t i = 0; cb && i < pg.n; i++) {
        larder_pypi_file_t f = {pg.files[i].url, pg.files[i].sha256, pg.files[i].meta_sha256, pg.files[i].has_meta};
        cb(ctx, &f);
    }
out:
    page_free(&pg);
    if (root)
        json_decref(root);
    return r;
}

/* ---- the project list ---- */

static void index_anchor(void *arg, const attr_t *attrs, size_t na, const char *text)
{
    char norm[256];
    if (find_attr(attrs, na, "href") && larder_pypi_normalize(text, strlen(text), norm, sizeof(norm)) == 0)
        json_array_append_new(arg, json_pack("{s:s}", "name", text));
}

int larder_pypi_rewrite_index(int in_json, const char *in, size_t len, larder_pypi_buf_t *out, char *err,
                              size_t errlen)
{
    json_t *projects = json_array();
    if (in_json) {
        json_error_t je;
        json_t *root = json_loadb(in, len, 0, &je);
        json_t *list = json_object_get(root, "projects");
        if (!json_is_array(list)) {
            snprintf(err, errlen, "upstream JSON project list is not PEP 691 (no \"projects\" array)%s%s",
                     root ? "" : ": ", root ? "" : je.text);
            if (root)
                json_decref(root);
            json_decref(projects);
            return -1;
        }
        size_t i;
        json_t *po;
        json_array_foreach(list, i, po)
        {
            const char *name = json_string_value(json_object_get(po, "name"));
            char norm[256];
            if (name && larder_pypi_normalize(name, strlen(name), norm, sizeof(norm)) == 0)
                json_array_append_new(projects, json_pack("{s:s}", "name", name));
        }
        json_decref(root);
    } else {
        for_each_anchor(in, len, index_anchor, projects);
    }
    json_t *root = json_pack("{s:{s:s}, s:o}", "meta", "api-version", "1.0", "projects", projects);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pypi_buf_str(out, s);
    free(s);
    return 0;
}
