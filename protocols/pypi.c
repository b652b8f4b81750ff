/* pypi.c - a pull-through Python package index at /pypi/ (PEP 503 HTML, PEP 691 JSON, PEP 658/714 metadata).
 *
 *   /pypi/simple/                          root index (cached, links made relative)
 *   /pypi/simple/<project>/                project page; non-normalised names get a 301 to the PEP 503 name
 *   /pypi/files/<project>/<scheme>/<host>/<path>[.metadata]   a distribution file or its core metadata
 * A project page is fetched in the format the client negotiated (Accept, q-values; JSON and HTML cached under
 * separate keys) and rewritten before it is stored: every file link becomes a relative link to /pypi/files/,
 * fragments and data-* attributes / JSON fields are kept, and each file's upstream URL with its sha256 (and its
 * metadata sha256) is recorded in the store. A file request is served only when such a record exists, so only
 * what an upstream page linked to can be fetched (never an open proxy), and the recorded sha256 is verified
 * before the file is committed. A file missing from the records makes us refresh the project page once.
 * Files are immutable; pages live for pypi.ttl and are then revalidated (ETag/Last-Modified), or served STALE. */
#include "pypi.h"
#include "cache.h"
#include "log.h"
#include "jobs.h"
#include "protocols.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- buffers ---- */

static void buf_add(larder_pypi_buf_t *b, const char *s, size_t n)
{
    if (!b->p || b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        char *np = realloc(b->p, b->cap);
        if (!np)
            abort(); /* out of memory: nothing sensible to serve */
        b->p = np;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void buf_str(larder_pypi_buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }
static void buf_html(larder_pypi_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': buf_str(b, "&amp;"); break;
        case '<': buf_str(b, "&lt;"); break;
        case '>': buf_str(b, "&gt;"); break;
        case '"': buf_str(b, "&quot;"); break;
        case '\'': buf_str(b, "&#39;"); break;
        default: buf_add(b, s + i, 1);
        }
    }
}

/* ---- names and negotiation ---- */

int larder_pypi_normalize(const char *name, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    int sep = 0;
    if (len == 0 || len >= outlen || len > 200)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '-' || c == '_' || c == '.') {
            sep = 1;
            continue;
        }
        if (!isalnum(c))
            return -1;
        if (sep && o > 0)
            out[o++] = '-';
        sep = 0;
        out[o++] = (char)tolower(c);
    }
    if (o == 0)
        return -1;
    out[o] = 0;
    return 0;
}

int larder_pypi_negotiate(const char *accept, size_t len, int *legacy_html)
{
    *legacy_html = 1;
    if (!accept || len == 0)
        return LARDER_PYPI_HTML;
    double best_q = 0;
    int best = -1, best_legacy = 1;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && accept[end] != ',')
            end++;
        /* one media range: type [; params] */
        size_t ts = i;
        while (ts < end && (accept[ts] == ' ' || accept[ts] == '\t'))
            ts++;
        size_t te = ts;
        while (te < end && accept[te] != ';' && accept[te] != ' ' && accept[te] != '\t')
            te++;
        double q = 1.0;
        for (size_t p = te; p < end; p++) {
            if (accept[p] == ';') {
                size_t k = p + 1;
                while (k < end && accept[k] == ' ')
                    k++;
                if (k + 2 <= end && (accept[k] == 'q' || accept[k] == 'Q') && accept[k + 1] == '=') {
                    char num[16];
                    size_t nl = 0;
                    for (size_t m = k + 2; m < end && nl < sizeof(num) - 1 && accept[m] != ';' && accept[m] != ' '; m++)
                        num[nl++] = accept[m];
                    num[nl] = 0;
                    q = strtod(num, NULL);
                    if (!(q >= 0 && q <= 1))
                        q = 0;
                }
            }
        }
        size_t tl = te - ts;
        const char *t = accept + ts;
        int fmt = -1, legacy = 0;
#define MT(lit) (tl == sizeof(lit) - 1 && strncasecmp(t, lit, tl) == 0)
        if (MT("application/vnd.pypi.simple.v1+json") || MT("application/vnd.pypi.simple.latest+json"))
            fmt = LARDER_PYPI_JSON;
        else if (MT("application/vnd.pypi.simple.v1+html") || MT("application/vnd.pypi.simple.latest+html"))
            fmt = LARDER_PYPI_HTML;
        else if (MT("text/html") || MT("text/*") || MT("*/*")) {
            fmt = LARDER_PYPI_HTML;
            legacy = 1;
        }
#undef MT
        /* on equal q prefer JSON, then v1 HTML, then text/html */
        if (fmt >= 0 && q > 0 &&
            (q > best_q || (q == best_q && (fmt > best || (fmt == best && legacy < best_legacy))))) {
            best_q = q;
            best = fmt;
            best_legacy = legacy;
        }
        i = end + 1;
    }
    if (best >= 0)
        *legacy_html = best == LARDER_PYPI_HTML ? best_legacy : 0;
    return best;
}

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
                buf_add(out, "/", 0);
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
            buf_add(out, path + i, sl);
            if (!last)
                buf_add(out, "/", 1);
        }
        i = j + 1;
    }
    if (out->len == base)
        buf_add(out, "/", 1);
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
        buf_add(&b, ref, (size_t)(h - ref));
        for (size_t i = 0; i < k; i++) /* schemes are case-insensitive: keep one spelling */
            b.p[i] = (char)tolower((unsigned char)b.p[i]);
        if (!p) {
            buf_add(&b, h, (size_t)(e - h));
            buf_add(&b, "/", 1);
        } else {
            buf_add(&b, h, (size_t)(p - h));
            remove_dot_segments(&b, p, (size_t)(e - p));
        }
        return b.p;
    }
    if (reflen >= 2 && ref[0] == '/' && ref[1] == '/') {
        buf_add(&b, base, scheme_len + 1);
        const char *h = ref + 2, *e = ref + reflen;
        const char *p = memchr(h, '/', (size_t)(e - h));
        buf_add(&b, "//", 2);
        if (!p) {
            buf_add(&b, h, (size_t)(e - h));
            buf_add(&b, "/", 1);
        } else {
            buf_add(&b, h, (size_t)(p - h));
            remove_dot_segments(&b, p, (size_t)(e - p));
        }
        return b.p;
    }
    buf_add(&b, base, scheme_len + 3 + hostlen);
    larder_pypi_buf_t path = {0};
    if (reflen > 0 && ref[0] == '/') {
        buf_add(&path, ref, reflen);
    } else {
        const char *bp = bpath ? bpath : "/";
        const char *q = strchr(bp, '?');
        size_t bplen = q ? (size_t)(q - bp) : strlen(bp);
        const char *slash = bp;
        for (size_t i = 0; i < bplen; i++)
            if (bp[i] == '/')
                slash = bp + i;
        buf_add(&path, bp, (size_t)(slash - bp) + 1);
        buf_add(&path, ref, reflen);
    }
    const char *qm = path.p ? memchr(path.p, '?', path.len) : NULL;
    size_t plen = qm ? (size_t)(qm - path.p) : path.len;
    remove_dot_segments(&b, path.p ? path.p : "/", path.p ? plen : 1);
    if (qm)
        buf_add(&b, qm, path.len - plen);
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

/* the local link for an upstream file URL, relative to /pypi/simple/<project>/ */
static int local_link(larder_pypi_buf_t *out, const char *project, const char *url, const char *fragment)
{
    const char *s = strstr(url, "://");
    if (!s || (size_t)(s - url) > 5)
        return -1;
    buf_str(out, "../../files/");
    buf_str(out, project);
    buf_str(out, "/");
    buf_add(out, url, (size_t)(s - url));
    buf_str(out, "/");
    buf_str(out, s + 3);
    if (fragment) {
        buf_str(out, "#");
        buf_str(out, fragment);
    }
    return 0;
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

typedef struct file_rec {
    char *filename, *url, *fragment, *sha256, *requires_python, *yanked, *meta_sha256;
    int yanked_flag, has_meta;
    json_t *extra; /* JSON input: the original object (fields kept) */
} file_rec_t;

typedef struct page {
    file_rec_t *files;
    size_t n, cap;
} page_t;

static void page_free(page_t *pg)
{
    for (size_t i = 0; i < pg->n; i++) {
        file_rec_t *f = &pg->files[i];
        free(f->filename);
        free(f->url);
        free(f->fragment);
        free(f->sha256);
        free(f->requires_python);
        free(f->yanked);
        free(f->meta_sha256);
        if (f->extra)
            json_decref(f->extra);
    }
    free(pg->files);
}

static file_rec_t *page_add(page_t *pg)
{
    if (pg->n == pg->cap) {
        pg->cap = pg->cap ? pg->cap * 2 : 32;
        pg->files = realloc(pg->files, pg->cap * sizeof(*pg->files));
    }
    file_rec_t *f = &pg->files[pg->n++];
    memset(f, 0, sizeof(*f));
    return f;
}

static char *fragment_sha256(const char *frag)
{
    if (frag && strncmp(frag, "sha256=", 7) == 0 && larder_is_sha256_hex(frag + 7))
        return strdup(frag + 7);
    return NULL;
}

/* HTML in, HTML out: copy the page, rewriting hrefs of anchors; every anchor also lands in pg */
static int html_rewrite(const char *page_url, const char *project, const char *in, size_t len, page_t *pg,
                        larder_pypi_buf_t *out)
{
    const char *p = in, *end = in + len, *copied = in;
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
        const attr_t *href = find_attr(attrs, na, "href");
        if (!href || !href->val) {
            p = after;
            continue;
        }
        /* anchor text up to </a> is the filename */
        const char *close = after;
        while (close < end && *close != '<')
            close++;
        char *hv = attr_value(href);
        file_rec_t *f = page_add(pg);
        f->url = larder_url_resolve(page_url, hv, strlen(hv), &f->fragment);
        free(hv);
        if (!is_http_url(f->url)) { /* not something we could fetch: left as it is */
            free(f->url);
            free(f->fragment);
            pg->n--;
            p = after;
            continue;
        }
        char *text = malloc((size_t)(close - after) + 1);
        size_t tl = html_unescape(after, (size_t)(close - after), text);
        text[tl] = 0;
        /* trim */
        char *ts = text;
        while (*ts && isspace((unsigned char)*ts))
            ts++;
        size_t tsl = strlen(ts);
        while (tsl && isspace((unsigned char)ts[tsl - 1]))
            ts[--tsl] = 0;
        f->filename = strdup(ts);
        free(text);
        f->sha256 = fragment_sha256(f->fragment);
        f->requires_python = attr_value(find_attr(attrs, na, "data-requires-python"));
        const attr_t *y = find_attr(attrs, na, "data-yanked");
        if (y) {
            f->yanked_flag = 1;
            f->yanked = attr_value(y);
        }
        const attr_t *m = find_attr(attrs, na, "data-core-metadata");
        if (!m)
            m = find_attr(attrs, na, "data-dist-info-metadata");
        if (m) {
            char *mv = attr_value(m);
            if (mv && strcasecmp(mv, "false") != 0) {
                f->has_meta = 1;
                const char *h = hash_value(mv);
                f->meta_sha256 = h ? strdup(h) : NULL;
            }
            free(mv);
        }
        if (out) {
            /* copy up to the href value, write ours, continue after it */
            buf_add(out, copied, (size_t)(href->vstart - copied));
            larder_pypi_buf_t link = {0};
            if (local_link(&link, project, f->url, f->fragment) == 0) {
                buf_add(out, "\"", 1);
                buf_html(out, link.p, link.len);
                buf_add(out, "\"", 1);
            } else {
                buf_add(out, href->vstart, (size_t)(href->vend - href->vstart));
            }
            free(link.p);
            copied = href->vend;
        }
        p = after;
    }
    if (out)
        buf_add(out, copied, (size_t)(end - copied));
    return 0;
}

static void emit_html(const char *project, page_t *pg, larder_pypi_buf_t *out)
{
    buf_str(out, "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n"
                 "    <title>Links for ");
    buf_html(out, project, strlen(project));
    buf_str(out, "</title>\n  </head>\n  <body>\n    <h1>Links for ");
    buf_html(out, project, strlen(project));
    buf_str(out, "</h1>\n");
    for (size_t i = 0; i < pg->n; i++) {
        file_rec_t *f = &pg->files[i];
        larder_pypi_buf_t link = {0};
        char frag[80];
        if (f->sha256)
            snprintf(frag, sizeof(frag), "sha256=%s", f->sha256);
        if (local_link(&link, project, f->url, f->sha256 ? frag : NULL) < 0) {
            free(link.p);
            continue;
        }
        buf_str(out, "    <a href=\"");
        buf_html(out, link.p, link.len);
        buf_str(out, "\"");
        free(link.p);
        if (f->requires_python) {
            buf_str(out, " data-requires-python=\"");
            buf_html(out, f->requires_python, strlen(f->requires_python));
            buf_str(out, "\"");
        }
        if (f->yanked_flag) {
            buf_str(out, " data-yanked=\"");
            if (f->yanked)
                buf_html(out, f->yanked, strlen(f->yanked));
            buf_str(out, "\"");
        }
        if (f->has_meta) {
            const char *v = f->meta_sha256 ? f->meta_sha256 : NULL;
            for (int k = 0; k < 2; k++) {
                buf_str(out, k ? " data-core-metadata=\"" : " data-dist-info-metadata=\"");
                if (v) {
                    buf_str(out, "sha256=");
                    buf_str(out, v);
                } else
                    buf_str(out, "true");
                buf_str(out, "\"");
            }
        }
        buf_str(out, ">");
        buf_html(out, f->filename ? f->filename : "", f->filename ? strlen(f->filename) : 0);
        buf_str(out, "</a><br/>\n");
    }
    buf_str(out, "  </body>\n</html>\n");
}

/* ---- JSON ---- */

static const char *json_sha256(json_t *o)
{
    const char *h = json_string_value(json_object_get(json_object_get(o, "hashes"), "sha256"));
    return h && larder_is_sha256_hex(h) ? h : NULL;
}

static int json_parse_page(const char *page_url, json_t *root, page_t *pg)
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
        file_rec_t *f = page_add(pg);
        f->url = larder_url_resolve(page_url, url, strlen(url), &f->fragment);
        if (!is_http_url(f->url)) {
            free(f->url);
            free(f->fragment);
            pg->n--;
            continue;
        }
        const char *fn = json_string_value(json_object_get(fo, "filename"));
        f->filename = fn ? strdup(fn) : NULL;
        const char *h = json_sha256(fo);
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
        if (json_is_true(m) || json_is_object(m)) {
            f->has_meta = 1;
            const char *mh = json_is_object(m) ? json_string_value(json_object_get(m, "sha256")) : NULL;
            f->meta_sha256 = mh && larder_is_sha256_hex(mh) ? strdup(mh) : NULL;
        }
        f->extra = json_incref(fo);
    }
    return 0;
}

static void emit_json(const char *project, json_t *orig_root, page_t *pg, larder_pypi_buf_t *out)
{
    json_t *root = orig_root ? json_deep_copy(orig_root) : json_pack("{s:{s:s}, s:s}", "meta", "api-version", "1.1",
                                                                      "name", project);
    json_t *files = json_array();
    for (size_t i = 0; i < pg->n; i++) {
        file_rec_t *f = &pg->files[i];
        larder_pypi_buf_t link = {0};
        if (local_link(&link, project, f->url, f->fragment) < 0) {
            free(link.p);
            continue;
        }
        json_t *o = f->extra ? json_deep_copy(f->extra) : json_object();
        json_object_set_new(o, "url", json_string(link.p));
        free(link.p);
        if (!f->extra) {
            const char *fn = f->filename;
            if (!fn || !*fn) {
                const char *slash = strrchr(f->url, '/');
                fn = slash ? slash + 1 : f->url;
            }
            json_object_set_new(o, "filename", json_string(fn));
            json_object_set_new(o, "hashes", f->sha256 ? json_pack("{s:s}", "sha256", f->sha256) : json_object());
            if (f->requires_python)
                json_object_set_new(o, "requires-python", json_string(f->requires_python));
            if (f->yanked_flag)
                json_object_set_new(o, "yanked", f->yanked && *f->yanked ? json_string(f->yanked) : json_true());
        }
        /* PEP 714: JSON carries the metadata hash as core-metadata only; the old dist-info-metadata key makes
         * pip 22.3-23.0 (Debian bookworm's pip) crash, so it never reaches a client, whatever the upstream sent */
        json_object_del(o, "dist-info-metadata");
        json_object_del(o, "data-dist-info-metadata");
        if (f->has_meta)
            json_object_set_new(o, "core-metadata",
                                f->meta_sha256 ? json_pack("{s:s}", "sha256", f->meta_sha256) : json_true());
        else
            json_object_del(o, "core-metadata");
        json_array_append_new(files, o);
    }
    json_object_set_new(root, "files", files);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (s) {
        buf_str(out, s);
        free(s);
    }
}

int larder_pypi_rewrite_page(const char *page_url, const char *project, int in_json, const char *in, size_t len,
                             int out_fmt, larder_pypi_buf_t *out, larder_pypi_file_cb cb, void *ctx, char *err,
                             size_t errlen)
{
    page_t pg = {0};
    json_t *root = NULL;
    int r = 0;
    if (in_json) {
        json_error_t je;
        root = json_loadb(in, len, 0, &je);
        if (!root || json_parse_page(page_url, root, &pg) < 0) {
            snprintf(err, errlen, "upstream JSON page is not a PEP 691 project page%s%s", root ? "" : ": ",
                     root ? "" : je.text);
            r = -1;
            goto out;
        }
        if (out_fmt == LARDER_PYPI_JSON)
            emit_json(project, root, &pg, out);
        else
            emit_html(project, &pg, out);
    } else {
        html_rewrite(page_url, project, in, len, &pg, out_fmt == LARDER_PYPI_HTML ? out : NULL);
        if (out_fmt == LARDER_PYPI_JSON)
            emit_json(project, NULL, &pg, out);
    }
    if (!out->p)
        buf_add(out, "", 0);
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

/* ---- canonical file URLs ---- */

/* pip re-quotes every path part (quote(unquote(part))); both the recorded upstream URL and the requested path
 * are brought to that one form so they compare equal: %XX decoded, then everything but unreserved characters
 * and '/' encoded again (upper-case hex). */
static void canon_append(larder_pypi_buf_t *b, const char *s, size_t n, int is_host)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n + 0 && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
            char h[3] = {s[i + 1], s[i + 2], 0};
            c = (unsigned char)strtol(h, NULL, 16);
            i += 2;
        }
        if (is_host) {
            char lc = (char)tolower(c);
            buf_add(b, &lc, 1);
        } else if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            buf_add(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_add(b, e, 3);
        }
    }
}

/* "scheme://host/path" -> canonical form (malloc'd) or NULL; queries are kept verbatim */
static char *canon_url(const char *scheme, size_t sl, const char *host, size_t hl, const char *path, size_t pl)
{
    larder_pypi_buf_t b = {0};
    buf_add(&b, scheme, sl);
    buf_add(&b, "://", 3);
    canon_append(&b, host, hl, 1);
    const char *q = memchr(path, '?', pl);
    canon_append(&b, path, q ? (size_t)(q - path) : pl, 0);
    if (q)
        buf_add(&b, q, pl - (size_t)(q - path));
    return b.p;
}

static char *canon_full_url(const char *url)
{
    const char *s = strstr(url, "://");
    if (!s)
        return NULL;
    const char *h = s + 3, *p = strchr(h, '/');
    if (!p)
        p = h + strlen(h);
    return canon_url(url, (size_t)(s - url), h, (size_t)(p - h), p, strlen(p));
}

/* ---- the protocol: pages ---- */

static const char *const fmt_names[2] = {"html", "json"};

typedef struct rec_ctx {
    larder_meta_batch_t *b;
} rec_ctx_t;

static void record_file(void *arg, const larder_pypi_file_t *f)
{
    rec_ctx_t *c = arg;
    char *canon = canon_full_url(f->url);
    if (!canon || strlen(canon) > 4000 || strlen(f->url) > 4000) {
        free(canon);
        return;
    }
    char val[4300];
    int n = snprintf(val, sizeof(val), "%s %s %d %s", f->sha256 ? f->sha256 : "-",
                     f->meta_sha256 ? f->meta_sha256 : "-", f->has_meta, f->url);
    char key[4200];
    snprintf(key, sizeof(key), "f/%s", canon);
    free(canon);
    larder_meta_batch_put(c->b, LARDER_PROTO_PYPI, key, val, (size_t)n);
}



/* key "page/<project>/<fmt>" or "index/<fmt>" */
static int transform_page(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                          char **content_type, char *err, size_t errlen)
{
    char project[256] = "";
    int fmt;
    int is_index = strncmp(fe->key, "index/", 6) == 0;
    const char *slash = strrchr(fe->key, '/');
    fmt = slash && strcmp(slash + 1, "json") == 0 ? LARDER_PYPI_JSON : LARDER_PYPI_HTML;
    if (!is_index) {
        size_t pl = (size_t)(slash - fe->key) - 5;
        if (pl >= sizeof(project))
            return -1;
        memcpy(project, fe->key + 5, pl);
        project[pl] = 0;
    }
    if (in_len > (uint64_t)512 * 1024 * 1024) {
        snprintf(err, errlen, "index page larger than 512 MiB");
        return -1;
    }
    char *in;
    if (larder_pread_all(in_fd, in_len, &in) < 0) {
        snprintf(err, errlen, "cannot read the downloaded page");
        return -1;
    }
    int in_json = fe->content_type && strstr(fe->content_type, "json") != NULL;
    larder_pypi_buf_t out = {0};
    int r = 0;
    if (is_index) {
        /* the root index only lists projects: keep it as it is, links in HTML made relative to us */
        if (!in_json) {
            page_t pg = {0};
            const char *p = in, *end = in + in_len, *copied = in;
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
                const attr_t *href = find_attr(attrs, na, "href");
                const char *close = after;
                while (close < end && *close != '<')
                    close++;
                char norm[256];
                if (href && href->vstart &&
                    larder_pypi_normalize(after, (size_t)(close - after), norm, sizeof(norm)) == 0) {
                    buf_add(&out, copied, (size_t)(href->vstart - copied));
                    buf_str(&out, "\"");
                    buf_str(&out, norm);
                    buf_str(&out, "/\"");
                    copied = href->vend;
                }
                p = after;
            }
            buf_add(&out, copied, (size_t)(end - copied));
            page_free(&pg);
        } else {
            buf_add(&out, in, in_len);
        }
        *content_type = strdup(in_json ? "application/vnd.pypi.simple.v1+json" : "text/html");
    } else {
        larder_meta_batch_t *b = larder_store_meta_begin(st);
        rec_ctx_t rc = {b};
        r = larder_pypi_rewrite_page(fe->url, project, in_json, in, in_len, fmt, &out, record_file, &rc, err, errlen);
        if (r == 0)
            r = larder_store_meta_commit(st, b);
        else
            larder_store_meta_discard(b);
        *content_type = strdup(fmt == LARDER_PYPI_JSON ? "application/vnd.pypi.simple.v1+json" : "text/html");
    }
    free(in);
    if (r == 0 && larder_write_all(out_fd, out.p ? out.p : "", out.len) < 0) {
        snprintf(err, errlen, "writing the rewritten page failed");
        r = -1;
    }
    free(out.p);
    return r;
}

static char *upstream_base(const larder_config_t *cfg)
{
    return cfg->proto[LARDER_PROTO_PYPI].upstream;
}

static void serve_page(larder_app_t *app, h2o_req_t *req, const char *project)
{
    const larder_config_t *cfg = app->cfg;
    const char *up = upstream_base(cfg);
    if (!up) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 503, "Service Unavailable", "pypi.upstream is not configured");
        return;
    }
    ssize_t ai = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    int legacy;
    int fmt = larder_pypi_negotiate(ai >= 0 ? req->headers.entries[ai].value.base : NULL,
                                    ai >= 0 ? req->headers.entries[ai].value.len : 0, &legacy);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Accept"));
    if (fmt < 0) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 406, "Not Acceptable",
                          "acceptable: application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html, "
                          "text/html");
        return;
    }
    char key[400], url[4400];
    if (project) {
        snprintf(key, sizeof(key), "page/%s/%s", project, fmt_names[fmt]);
        snprintf(url, sizeof(url), "%s%s/", up, project);
    } else {
        snprintf(key, sizeof(key), "index/%s", fmt_names[fmt]);
        snprintf(url, sizeof(url), "%s", up);
    }
    larder_mapping_t m = {
        .proto = LARDER_PROTO_PYPI,
        .key = h2o_strdup(&req->pool, key, SIZE_MAX).base,
        .url = h2o_strdup(&req->pool, url, SIZE_MAX).base,
        .ttl = cfg->proto[LARDER_PROTO_PYPI].ttl,
        .accept = fmt == LARDER_PYPI_JSON ? "application/vnd.pypi.simple.v1+json"
                                          : "application/vnd.pypi.simple.v1+html, text/html;q=0.5",
        .transform = transform_page,
        .content_type = fmt == LARDER_PYPI_JSON ? "application/vnd.pypi.simple.v1+json"
                        : legacy                ? "text/html; charset=utf-8"
                                                : "application/vnd.pypi.simple.v1+html",
    };
    larder_cache_serve(app, req, &m);
}

/* ---- the protocol: files ---- */

typedef struct file_req {
    char project[256];
    char *url;     /* upstream file URL (pool) */
    char *key_url; /* URL whose record describes it (without .metadata) */
    int is_meta;
    int refreshed;
} file_req_t;

static void serve_file_after_refresh(larder_app_t *app, h2o_req_t *req, int state, void *data);

static void serve_file_step(larder_app_t *app, h2o_req_t *req, file_req_t *fr)
{
    char rkey[4200];
    snprintf(rkey, sizeof(rkey), "f/%s", fr->key_url);
    char *rec = larder_store_meta_get(app->store, LARDER_PROTO_PYPI, rkey, NULL);
    if (!rec) {
        if (!fr->refreshed && !app->cfg->offline && upstream_base(app->cfg)) {
            /* not listed in the page we know: refresh the project page once, then look again */
            fr->refreshed = 1;
            char key[400], url[4400];
            snprintf(key, sizeof(key), "page/%s/html", fr->project);
            snprintf(url, sizeof(url), "%s%s/", upstream_base(app->cfg), fr->project);
            larder_fetch_req_t f = {.proto = LARDER_PROTO_PYPI,
                                    .key = key,
                                    .url = url,
                                    .ttl = app->cfg->proto[LARDER_PROTO_PYPI].ttl,
                                    .accept = "application/vnd.pypi.simple.v1+html, text/html;q=0.5",
                                    .transform = transform_page,
                                    .force = 1};
            int how;
            larder_fetch_t *fe = larder_fetch_start(app->fetcher, &f, &how);
            if (fe) {
                larder_cache_after_fetch(app, req, LARDER_PROTO_PYPI, key, fe, serve_file_after_refresh, fr);
                return;
            }
        }
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-larder-cache"), 1, NULL,
                              H2O_STRLIT("MISS"));
        larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found",
                          "%s is not listed in the index page of '%s'%s", fr->url, fr->project,
                          app->cfg->offline ? " (offline: seed the project while online)" : "");
        return;
    }
    char sha[80] = "", msha[80] = "";
    int has_meta = 0, off = 0;
    if (sscanf(rec, "%70s %70s %d %n", sha, msha, &has_meta, &off) != 3 || !off || !rec[off]) {
        free(rec);
        larder_send_error(app, req, LARDER_PROTO_PYPI, 500, "Internal Server Error", "damaged file record");
        return;
    }
    /* the upstream URL exactly as the index gave it */
    size_t rl = strlen(rec + off);
    const char *upstream = fr->is_meta ? h2o_concat(&req->pool, h2o_iovec_init(rec + off, rl),
                                                    h2o_iovec_init(H2O_STRLIT(".metadata"))).base
                                       : h2o_strdup(&req->pool, rec + off, rl).base;
    free(rec);
    const char *want = fr->is_meta ? msha : sha;
    if (fr->is_meta && !has_meta) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found", "the index announces no metadata file for %s",
                          fr->key_url);
        return;
    }
    larder_mapping_t m = {
        .proto = LARDER_PROTO_PYPI,
        .key = fr->url,
        .url = upstream,
        .sha256 = larder_is_sha256_hex(want) ? h2o_strdup(&req->pool, want, SIZE_MAX).base : NULL,
        .flags = LARDER_ENTRY_IMMUTABLE,
        .ttl = 0,
    };
    larder_cache_serve(app, req, &m);
}

static void serve_file_after_refresh(larder_app_t *app, h2o_req_t *req, int state, void *data)
{
    serve_file_step(app, req, data);
}

static void serve_file(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    /* <project>/<scheme>/<host>/<path> */
    char err[256];
    const char *q = memchr(rest, '?', len);
    if (q)
        len = (size_t)(q - rest);
    if (!larder_path_is_safe(rest, len, err, sizeof(err))) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 400, "Bad Request", "%s", err);
        return;
    }
    const char *s1 = memchr(rest, '/', len);
    const char *s2 = s1 ? memchr(s1 + 1, '/', len - (size_t)(s1 + 1 - rest)) : NULL;
    const char *s3 = s2 ? memchr(s2 + 1, '/', len - (size_t)(s2 + 1 - rest)) : NULL;
    file_req_t *fr = h2o_mem_alloc_pool(&req->pool, sizeof(*fr));
    memset(fr, 0, sizeof(*fr));
    if (!s3 || s3 + 1 >= rest + len ||
        larder_pypi_normalize(rest, (size_t)(s1 - rest), fr->project, sizeof(fr->project)) < 0) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found",
                          "expected /pypi/files/<project>/<scheme>/<host>/<path> (links come from /pypi/simple/)");
        return;
    }
    size_t schl = (size_t)(s2 - s1 - 1);
    if (!((schl == 4 && !memcmp(s1 + 1, "http", 4)) || (schl == 5 && !memcmp(s1 + 1, "https", 5)))) {
        larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found", "unsupported scheme");
        return;
    }
    char *canon = canon_url(s1 + 1, schl, s2 + 1, (size_t)(s3 - s2 - 1), s3, (size_t)(rest + len - s3));
    fr->url = h2o_strdup(&req->pool, canon, SIZE_MAX).base;
    free(canon);
    size_t n = strlen(fr->url);
    fr->is_meta = n > 9 && strcmp(fr->url + n - 9, ".metadata") == 0;
    fr->key_url = fr->is_meta ? h2o_strdup(&req->pool, fr->url, n - 9).base : fr->url;
    serve_file_step(app, req, fr);
}

static void pypi_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    const char *q = memchr(rest, '?', len);
    size_t plen = q ? (size_t)(q - rest) : len;
    if (plen >= 7 && memcmp(rest, "simple/", 7) == 0) {
        const char *name = rest + 7;
        size_t nl = plen - 7;
        if (nl == 0) {
            serve_page(app, req, NULL);
            return;
        }
        int slash = name[nl - 1] == '/';
        if (slash)
            nl--;
        char norm[256];
        if (memchr(name, '/', nl) || larder_pypi_normalize(name, nl, norm, sizeof(norm)) < 0) {
            larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found", "not a valid project name");
            return;
        }
        if (!slash || strlen(norm) != nl || memcmp(norm, name, nl) != 0) {
            char loc[400];
            snprintf(loc, sizeof(loc), "/pypi/simple/%s/", norm);
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                           h2o_strdup(&req->pool, loc, SIZE_MAX).base, strlen(loc));
            larder_send_text(app, req, LARDER_PROTO_PYPI, 301, "Moved Permanently", "text/plain", "", 0);
            return;
        }
        serve_page(app, req, norm);
        return;
    }
    if (plen >= 6 && memcmp(rest, "files/", 6) == 0) {
        serve_file(app, req, rest + 6, len - 6);
        return;
    }
    larder_send_error(app, req, LARDER_PROTO_PYPI, 404, "Not Found",
                      "set PIP_INDEX_URL to http://<larder>/pypi/simple/");
}

/* ---- seeding ---- */

typedef struct seed_req {
    char name[256];
    char version[128];
    char hashes[32][65];
    size_t nhashes;
    char label[400];
} seed_req_t;

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
    json_array_foreach(files, i, fo)
    {
        const char *fn = json_string_value(json_object_get(fo, "filename"));
        const char *url = json_string_value(json_object_get(fo, "url"));
        larder_pypi_dist_t d;
        if (!fn || !url || larder_pypi_parse_filename(fn, &d) < 0 || strcmp(d.name, sr->name) != 0 ||
            !same_version(d.version, sr->version))
            continue;
        versions_seen++;
        if (!larder_pypi_dist_matches(&d, spec->pypi_python_versions.v, spec->pypi_python_versions.n,
                                      spec->pypi_platforms.v, spec->pypi_platforms.n))
            continue;
        const char *sha = json_sha256(fo);
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
        char *canon = canon_url(s1 + 1, (size_t)(s2 - s1 - 1), s2 + 1, (size_t)(s3 - s2 - 1), s3, (size_t)(r + rl - s3));
        char rkey[4200];
        snprintf(rkey, sizeof(rkey), "f/%s", canon);
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
                                 .sha256 = larder_is_sha256_hex(fsha) ? fsha : NULL,
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
        char msg[300];
        snprintf(msg, sizeof(msg), versions_seen ? "no file of this release matches the seed's python_versions and "
                                                   "platforms%s"
                                                 : "version not found in the index%s",
                 sr->nhashes ? " and hashes" : "");
        larder_seed_fail(c, sr->label, msg);
    }
}

static void pypi_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    larder_pypi_requirement_t req;
    char err[400];
    if (larder_pypi_parse_requirement(item->ref, &req, err, sizeof(err)) < 0) {
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
    snprintf(sr->label, sizeof(sr->label), "%s==%s", req.name, req.version);
    char url[4400];
    snprintf(url, sizeof(url), "%s%s/", up, req.name);
    /* the JSON page (whose callback owns sr, possibly at once when cached) last */
    for (int fmt = LARDER_PYPI_HTML; fmt <= LARDER_PYPI_JSON; fmt++) {
        char key[400], label[500];
        snprintf(key, sizeof(key), "page/%s/%s", req.name, fmt_names[fmt]);
        snprintf(label, sizeof(label), "%s (index, %s)", sr->label, fmt_names[fmt]);
        larder_fetch_req_t fr = {.proto = LARDER_PROTO_PYPI,
                                 .key = key,
                                 .url = url,
                                 .ttl = app->cfg->proto[LARDER_PROTO_PYPI].ttl,
                                 .accept = fmt == LARDER_PYPI_JSON ? "application/vnd.pypi.simple.v1+json"
                                                                   : "application/vnd.pypi.simple.v1+html, text/html;q=0.5",
                                 .transform = transform_page};
        if (fmt == LARDER_PYPI_JSON)
            larder_seed_add(ctx, label, &fr, seed_page_done, sr);
        else
            larder_seed_add(ctx, label, &fr, NULL, NULL);
    }
}

const larder_protocol_t larder_protocol_pypi = {
    .proto = LARDER_PROTO_PYPI,
    .mount = "/pypi/",
    .handle = pypi_handle,
    .seed = pypi_seed,
};

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
        buf_add(&logical, l, ll);
        buf_add(&logical, " ", 1);
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
