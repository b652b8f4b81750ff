/* pypi.c - a pull-through Python package index at /pypi/ (PEP 503 HTML, PEP 691 JSON, PEP 658/714 metadata).
 *
 *   /pypi/simple/                          root index (cached, links made relative)
 *   /pypi/simple/<project>/                project page; non-normalised names get a 301 to the PEP 503 name
 *   /pypi/files/<project>/<scheme>/<host>/<path>[.metadata]   a distribution file or its core metadata
 * The project list and each project page are fetched once (JSON preferred, HTML accepted) and stored in one form,
 * PEP 691 JSON, whatever the upstream sent: every file link becomes a relative link to /pypi/files/ (no fragment;
 * hashes, data-* attributes and JSON fields are carried over), and each file's upstream URL with its sha256 (and
 * its metadata sha256) is recorded in the store under the project. Clients negotiate JSON or HTML (Accept, PEP 691);
 * HTML is rendered from the stored JSON per request, so one upstream fetch serves both, offline too. A file request
 * is served only when the record exists for that project, so only what an upstream page linked to can be fetched
 * (never an open proxy), a file is never served under another project's URL, and the recorded sha256 is verified
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
    /* candidates: 0 v1+json, 1 v1+html, 2 text/html; per candidate the q and specificity (3 exact, 2 a type
     * wildcard, 1 the catch-all) of the most specific media range that matches it */
    double q_of[3] = {0, 0, 0};
    int spec_of[3] = {0, 0, 0};
    *legacy_html = 1;
    size_t i = 0;
    int any = 0;
    while (accept && i < len) {
        size_t end = i;
        while (end < len && accept[end] != ',')
            end++;
        size_t ts = i;
        while (ts < end && (accept[ts] == ' ' || accept[ts] == '\t'))
            ts++;
        size_t te = ts;
        while (te < end && accept[te] != ';' && accept[te] != ' ' && accept[te] != '\t')
            te++;
        double q = 1.0;
        int q_ok = 1;
        for (size_t p = te; p < end; p++) {
            if (accept[p] != ';')
                continue;
            size_t k = p + 1;
            while (k < end && (accept[k] == ' ' || accept[k] == '\t'))
                k++;
            if (k + 2 <= end && (accept[k] == 'q' || accept[k] == 'Q') && accept[k + 1] == '=') {
                char num[16];
                size_t nl = 0;
                for (size_t m = k + 2; m < end && nl < sizeof(num) - 1 && accept[m] != ';' && accept[m] != ' ' &&
                                       accept[m] != '\t';
                     m++)
                    num[nl++] = accept[m];
                num[nl] = 0;
                char *e;
                q = strtod(num, &e);
                q_ok = nl > 0 && *e == 0 && q >= 0 && q <= 1;
            }
        }
        size_t tl = te - ts;
        const char *t = accept + ts;
        if (tl)
            any = 1;
#define MT(lit) (tl == sizeof(lit) - 1 && strncasecmp(t, lit, tl) == 0)
        int match[3] = {0, 0, 0}; /* specificity per candidate */
        if (MT("application/vnd.pypi.simple.v1+json") || MT("application/vnd.pypi.simple.latest+json"))
            match[0] = 3;
        else if (MT("application/vnd.pypi.simple.v1+html") || MT("application/vnd.pypi.simple.latest+html"))
            match[1] = 3;
        else if (MT("text/html"))
            match[2] = 3;
        else if (MT("application/*"))
            match[0] = match[1] = 2;
        else if (MT("text/*"))
            match[2] = 2;
        else if (MT("*/*"))
            match[0] = match[1] = match[2] = 1;
#undef MT
        for (int c = 0; q_ok && c < 3; c++) {
            if (!match[c] || match[c] < spec_of[c])
                continue;
            if (match[c] > spec_of[c] || q > q_of[c])
                q_of[c] = q;
            spec_of[c] = match[c];
        }
        i = end + 1;
    }
    if (!any) /* no Accept header: as the catch-all range */
        return LARDER_PYPI_HTML;
    /* tie order: exact matches JSON, v1 HTML, text/html; wildcard matches text/html first */
    static const int exact_order[3] = {0, 1, 2}, wild_order[3] = {2, 0, 1};
    int best = -1;
    for (int k = 0; k < 6; k++) {
        int c = k < 3 ? exact_order[k] : wild_order[k - 3];
        int exact = spec_of[c] == 3;
        if ((k < 3) != exact || q_of[c] <= 0)
            continue;
        if (best < 0 || q_of[c] > q_of[best] || (q_of[c] == q_of[best] && spec_of[c] > spec_of[best]))
            best = c;
    }
    if (best < 0)
        return -1;
    *legacy_html = best == 2;
    return best == 0 ? LARDER_PYPI_JSON : LARDER_PYPI_HTML;
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
    if (k > 0 && k < reflen && ref[k] == ':' && isalpha((unsigned char)ref[0])) {
        /* another absolute URI (mailto:, javascript:, ...): kept as it is, never something we fetch */
        buf_add(&b, ref, reflen);
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
    char *hash_alg, *hash_hex; /* a fragment hash other than sha256 (HTML input), kept for the client */
    int yanked_flag, has_meta;
    int gpg_sig;   /* data-gpg-sig: -1 not given, 0, 1 */
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
        free(f->hash_alg);
        free(f->hash_hex);
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
        if (!pg->files)
            abort();
    }
    file_rec_t *f = &pg->files[pg->n++];
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

/* the hash names PEP 503 lets an index use (hashlib's guaranteed ones) and their hex lengths */
static const struct {
    const char *name;
    size_t hexlen;
} hash_algs[] = {{"sha256", 64}, {"sha512", 128}, {"sha384", 96}, {"sha224", 56}, {"sha1", 40}, {"md5", 32}};

static int is_lower_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* "<alg>=<hex>" with a known algorithm: its index in hash_algs, *hex pointing into s; or -1 */
static int parse_hash(const char *s, const char **hex)
{
    for (size_t i = 0; s && i < sizeof(hash_algs) / sizeof(hash_algs[0]); i++) {
        size_t nl = strlen(hash_algs[i].name);
        if (strncmp(s, hash_algs[i].name, nl) == 0 && s[nl] == '=' && is_lower_hex(s + nl + 1, hash_algs[i].hexlen)) {
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
    page_t *pg;
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
    file_rec_t *f = page_add(c->pg);
    f->url = url;
    f->fragment = frag;
    f->filename = strdup(text);
    f->sha256 = fragment_sha256(frag);
    const char *hex;
    int alg = parse_hash(frag, &hex);
    if (alg > 0) {
        f->hash_alg = strdup(hash_algs[alg].name);
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

static const char *json_sha256(json_t *o)
{
    const char *h = json_string_value(json_object_get(json_object_get(o, "hashes"), "sha256"));
    return h && larder_is_sha256_hex(h) ? h : NULL;
}

/* PEP 691 metadata value: true, or a non-empty object of hashes (what Python would call truthy) */
static int json_truthy_meta(json_t *m)
{
    return json_is_true(m) || (json_is_object(m) && json_object_size(m) > 0);
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
        char *frag = NULL;
        char *abs = larder_url_resolve(page_url, url, strlen(url), &frag);
        if (!is_http_url(abs)) {
            free(abs);
            free(frag);
            continue;
        }
        file_rec_t *f = page_add(pg);
        f->url = abs;
        f->fragment = frag;
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
        if (json_truthy_meta(m)) {
            f->has_meta = 1;
            const char *mh = json_is_object(m) ? json_string_value(json_object_get(m, "sha256")) : NULL;
            f->meta_sha256 = mh && larder_is_sha256_hex(mh) ? strdup(mh) : NULL;
        }
        f->extra = json_incref(fo);
    }
    return 0;
}

/* The stored form of a project page: PEP 691 JSON whose file URLs are our links (no fragment: the hashes are in
 * "hashes"). From an HTML upstream it says api-version 1.0 (1.1 would need the sizes HTML does not carry); from a
 * JSON upstream every field is kept as it came, except the metadata keys (below). */
static void emit_json(const char *project, json_t *orig_root, page_t *pg, larder_pypi_buf_t *out)
{
    json_t *root = orig_root ? json_deep_copy(orig_root) : json_object();
    json_t *meta = json_object_get(root, "meta");
    if (!json_is_object(meta) || !json_is_string(json_object_get(meta, "api-version")))
        json_object_set_new(root, "meta", json_pack("{s:s}", "api-version", "1.0"));
    json_object_set_new(root, "name", json_string(project));
    json_t *files = json_array();
    for (size_t i = 0; i < pg->n; i++) {
        file_rec_t *f = &pg->files[i];
        larder_pypi_buf_t link = {0};
        if (local_link(&link, project, f->url, NULL) < 0) {
            free(link.p);
            continue;
        }
        json_t *o = f->extra ? json_deep_copy(f->extra) : json_object();
        json_object_set_new(o, "url", json_string(link.p));
        free(link.p);
        if (!json_is_string(json_object_get(o, "filename")) || !*json_string_value(json_object_get(o, "filename"))) {
            const char *fn = f->filename;
            if (!fn || !*fn) {
                const char *slash = strrchr(f->url, '/');
                fn = slash ? slash + 1 : f->url;
            }
            json_object_set_new(o, "filename", json_string(fn));
        }
        /* "hashes" must be there (PEP 691); a hash that came in the URL fragment moves into it */
        json_t *hashes = json_object_get(o, "hashes");
        if (!json_is_object(hashes)) {
            hashes = json_object();
            json_object_set_new(o, "hashes", hashes);
        }
        if (f->sha256 && !json_object_get(hashes, "sha256"))
            json_object_set_new(hashes, "sha256", json_string(f->sha256));
        if (f->hash_alg && !json_object_get(hashes, f->hash_alg))
            json_object_set_new(hashes, f->hash_alg, json_string(f->hash_hex));
        if (!f->extra) {
            if (f->requires_python)
                json_object_set_new(o, "requires-python", json_string(f->requires_python));
            if (f->yanked_flag)
                json_object_set_new(o, "yanked", f->yanked && *f->yanked ? json_string(f->yanked) : json_true());
            if (f->gpg_sig >= 0)
                json_object_set_new(o, "gpg-sig", json_boolean(f->gpg_sig));
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

/* ---- rendering the stored JSON as PEP 503 HTML ---- */

static void html_head(larder_pypi_buf_t *out, json_t *root, const char *title)
{
    /* the API version of the stored JSON when it is a plain Major.Minor, else 1.0 */
    const char *v = json_string_value(json_object_get(json_object_get(root, "meta"), "api-version"));
    int ok = v && *v && strlen(v) < 12;
    for (const char *c = v; ok && *c; c++)
        ok = isdigit((unsigned char)*c) || *c == '.';
    buf_str(out, "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"");
    buf_str(out, ok ? v : "1.0");
    buf_str(out, "\">\n    <title>");
    buf_html(out, title, strlen(title));
    buf_str(out, "</title>\n  </head>\n  <body>\n");
}

static void render_index_html(json_t *root, larder_pypi_buf_t *out)
{
    html_head(out, root, "Simple index");
    size_t i;
    json_t *po;
    json_array_foreach(json_object_get(root, "projects"), i, po)
    {
        const char *name = json_string_value(json_object_get(po, "name"));
        char norm[256];
        if (!name || larder_pypi_normalize(name, strlen(name), norm, sizeof(norm)) < 0)
            continue;
        buf_str(out, "    <a href=\"");
        buf_str(out, norm);
        buf_str(out, "/\">");
        buf_html(out, name, strlen(name));
        buf_str(out, "</a><br/>\n");
    }
    buf_str(out, "  </body>\n</html>\n");
}

static void attr_str(larder_pypi_buf_t *out, const char *name, const char *v)
{
    buf_str(out, " ");
    buf_str(out, name);
    buf_str(out, "=\"");
    buf_html(out, v, strlen(v));
    buf_str(out, "\"");
}

static void render_page_html(json_t *root, larder_pypi_buf_t *out)
{
    const char *name = json_string_value(json_object_get(root, "name"));
    char title[300];
    snprintf(title, sizeof(title), "Links for %s", name ? name : "");
    html_head(out, root, title);
    buf_str(out, "    <h1>");
    buf_html(out, title, strlen(title));
    buf_str(out, "</h1>\n");
    size_t i;
    json_t *fo;
    json_array_foreach(json_object_get(root, "files"), i, fo)
    {
        const char *url = json_string_value(json_object_get(fo, "url"));
        if (!url)
            continue;
        const char *hash = strchr(url, '#');
        size_t ul = hash ? (size_t)(hash - url) : strlen(url);
        const char *fn = json_string_value(json_object_get(fo, "filename"));
        if (!fn) {
            const char *slash = memrchr(url, '/', ul);
            fn = slash ? slash + 1 : url;
        }
        buf_str(out, "    <a href=\"");
        buf_html(out, url, ul);
        /* one hash in the fragment (PEP 503): sha256 when there is one */
        json_t *hashes = json_object_get(fo, "hashes");
        for (size_t k = 0; k < sizeof(hash_algs) / sizeof(hash_algs[0]); k++) {
            const char *hv = json_string_value(json_object_get(hashes, hash_algs[k].name));
            if (is_lower_hex(hv, hash_algs[k].hexlen)) {
                buf_str(out, "#");
                buf_str(out, hash_algs[k].name);
                buf_str(out, "=");
                buf_str(out, hv);
                break;
            }
        }
        buf_str(out, "\"");
        const char *rp = json_string_value(json_object_get(fo, "requires-python"));
        if (rp)
            attr_str(out, "data-requires-python", rp);
        json_t *y = json_object_get(fo, "yanked");
        if (json_is_string(y))
            attr_str(out, "data-yanked", json_string_value(y));
        else if (json_is_true(y))
            attr_str(out, "data-yanked", "");
        json_t *g = json_object_get(fo, "gpg-sig");
        if (json_is_boolean(g))
            attr_str(out, "data-gpg-sig", json_is_true(g) ? "true" : "false");
        json_t *m = json_object_get(fo, "core-metadata");
        if (!m)
            m = json_object_get(fo, "dist-info-metadata");
        if (json_truthy_meta(m)) {
            const char *mh = json_string_value(json_object_get(m, "sha256"));
            char v[80];
            snprintf(v, sizeof(v), "%s%s", larder_is_sha256_hex(mh) ? "sha256=" : "true",
                     larder_is_sha256_hex(mh) ? mh : "");
            /* PEP 714 name, and the PEP 658 one (same value) for pip before 23.1 */
            attr_str(out, "data-core-metadata", v);
            attr_str(out, "data-dist-info-metadata", v);
        }
        buf_str(out, ">");
        buf_html(out, fn, strlen(fn));
        buf_str(out, "</a><br/>\n");
    }
    buf_str(out, "  </body>\n</html>\n");
}

char *larder_pypi_render_html(const char *in, size_t len, size_t *outlen)
{
    json_t *root = json_loadb(in, len, 0, NULL);
    if (!json_is_object(root)) {
        if (root)
            json_decref(root);
        return NULL;
    }
    larder_pypi_buf_t out = {0};
    if (json_is_array(json_object_get(root, "files")))
        render_page_html(root, &out);
    else if (json_is_array(json_object_get(root, "projects")))
        render_index_html(root, &out);
    json_decref(root);
    *outlen = out.len;
    return out.p;
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
        emit_json(project, root, &pg, out);
    } else {
        larder_pypi_buf_t j = {0};
        emit_json(project, root, &pg, &j);
        size_t hl = 0;
        char *h = j.p ? larder_pypi_render_html(j.p, j.len, &hl) : NULL;
        if (h)
            buf_add(out, h, hl);
        free(h);
        free(j.p);
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
    buf_str(out, s);
    free(s);
    return 0;
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

/* One stored form per document: the project list and each project page are kept as PEP 691 JSON (under
 * "index/list" and "page/<project>/json"), whatever the upstream sent; HTML clients get it rendered per request
 * (larder_pypi_render_html). One upstream fetch per project, and offline both formats come from what is cached. */
#define UPSTREAM_ACCEPT "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
#define JSON_TYPE "application/vnd.pypi.simple.v1+json"

typedef struct rec_ctx {
    larder_meta_batch_t *b;
    const char *project;
} rec_ctx_t;

/* "f/<project>/<canonical url>": a file is served under the project whose page lists it, and no other */
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
    char key[4500];
    snprintf(key, sizeof(key), "f/%s/%s", c->project, canon);
    free(canon);
    larder_meta_batch_put(c->b, LARDER_PROTO_PYPI, key, val, (size_t)n);
}

/* is the upstream document JSON? its content type says so; without one, its first character */
static int upstream_is_json(const larder_fetch_t *fe, const char *in, size_t len)
{
    if (fe->content_type && *fe->content_type)
        return strstr(fe->content_type, "json") != NULL;
    size_t i = 0;
    while (i < len && isspace((unsigned char)in[i]))
        i++;
    return i < len && in[i] == '{';
}

/* key "page/<project>/json" or "index/list": the upstream document (HTML or JSON) becomes our JSON. (Project
 * pages were always stored as JSON under that key, so pages seeded by older versions are still used; the project
 * list moved from "index/json", which held an HTML upstream's HTML as it came.) */
static int transform_page(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                          char **content_type, char *err, size_t errlen)
{
    char project[256] = "";
    int is_index = strncmp(fe->key, "index/", 6) == 0;
    const char *slash = strrchr(fe->key, '/');
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
    int in_json = upstream_is_json(fe, in, in_len);
    larder_pypi_buf_t out = {0};
    int r = 0;
    if (is_index) {
        r = larder_pypi_rewrite_index(in_json, in, in_len, &out, err, errlen);
    } else {
        larder_meta_batch_t *b = larder_store_meta_begin(st);
        rec_ctx_t rc = {b, project};
        r = larder_pypi_rewrite_page(fe->url, project, in_json, in, in_len, LARDER_PYPI_JSON, &out, record_file, &rc,
                                     err, errlen);
        if (r == 0)
            r = larder_store_meta_commit(st, b);
        else
            larder_store_meta_discard(b);
    }
    *content_type = strdup(JSON_TYPE);
    free(in);
    if (r == 0 && larder_write_all(out_fd, out.p ? out.p : "", out.len) < 0) {
        snprintf(err, errlen, "writing the rewritten page failed");
        r = -1;
    }
    free(out.p);
    return r;
}

static char *render_html(void *ctx, const char *in, size_t len, size_t *outlen)
{
    (void)ctx;
    return larder_pypi_render_html(in, len, outlen);
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
        snprintf(key, sizeof(key), "page/%s/json", project);
        snprintf(url, sizeof(url), "%s%s/", up, project);
    } else {
        snprintf(key, sizeof(key), "index/list");
        snprintf(url, sizeof(url), "%s", up);
    }
    larder_mapping_t m = {
        .proto = LARDER_PROTO_PYPI,
        .key = h2o_strdup(&req->pool, key, SIZE_MAX).base,
        .url = h2o_strdup(&req->pool, url, SIZE_MAX).base,
        .ttl = cfg->proto[LARDER_PROTO_PYPI].ttl,
        .accept = UPSTREAM_ACCEPT,
        .transform = transform_page,
        .content_type = fmt == LARDER_PYPI_JSON ? JSON_TYPE
                        : legacy                ? "text/html; charset=utf-8"
                                                : "application/vnd.pypi.simple.v1+html",
        .render = fmt == LARDER_PYPI_HTML ? render_html : NULL,
        .render_tag = "html",
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
    char rkey[4500];
    snprintf(rkey, sizeof(rkey), "f/%s/%s", fr->project, fr->key_url);
    char *rec = larder_store_meta_get(app->store, LARDER_PROTO_PYPI, rkey, NULL);
    if (!rec) {
        if (!fr->refreshed && !app->cfg->offline && upstream_base(app->cfg)) {
            /* not listed in the page we know: refresh the project page once, then look again */
            fr->refreshed = 1;
            char key[400], url[4400];
            snprintf(key, sizeof(key), "page/%s/json", fr->project);
            snprintf(url, sizeof(url), "%s%s/", upstream_base(app->cfg), fr->project);
            larder_fetch_req_t f = {.proto = LARDER_PROTO_PYPI,
                                    .key = key,
                                    .url = url,
                                    .ttl = app->cfg->proto[LARDER_PROTO_PYPI].ttl,
                                    .accept = UPSTREAM_ACCEPT,
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
    if (plen == 6 && memcmp(rest, "simple", 6) == 0) { /* PEP 503: pages end with '/' */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, H2O_STRLIT("/pypi/simple/"));
        larder_send_text(app, req, LARDER_PROTO_PYPI, 301, "Moved Permanently", "text/plain", "", 0);
        return;
    }
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
    /* the page's callback owns sr (and may run at once when the page is cached) */
    char key[400], label[500];
    snprintf(key, sizeof(key), "page/%s/json", req.name);
    snprintf(label, sizeof(label), "%s (index)", sr->label);
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_PYPI,
                             .key = key,
                             .url = url,
                             .ttl = app->cfg->proto[LARDER_PROTO_PYPI].ttl,
                             .accept = UPSTREAM_ACCEPT,
                             .transform = transform_page};
    larder_seed_add(ctx, label, &fr, seed_page_done, sr);
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
