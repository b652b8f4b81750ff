/* render.c - what a client is sent: the stored PEP 691 JSON and the PEP 503 HTML rendered from it.
 *
 * pypi_emit_json turns the page model pages.c builds into the one stored form of a project page: file links
 * rewritten to ../../files/<project>/<scheme>/<host>/<path> (relative to /pypi/simple/<project>/), "hashes"
 * always present, the metadata key spelled as PEP 714 wants. larder_pypi_render_html renders that JSON (a project
 * page or the project list) as HTML for each request, so one upstream fetch serves both formats, offline too;
 * larder_pypi_negotiate picks the format from the client's Accept header (PEP 691).
 * Also here, shared by every pypi file: the growable buffer (pypi_buf_add), PEP 503 name normalisation and the
 * table of hash algorithms an index may use. Pure like pages.c: no store, no requests, no configuration. */
#include "internal.h"
#include "util.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- buffers ---- */

void pypi_buf_add(larder_pypi_buf_t *b, const char *s, size_t n)
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
void pypi_buf_str(larder_pypi_buf_t *b, const char *s) { pypi_buf_add(b, s, strlen(s)); }
static void buf_html(larder_pypi_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': pypi_buf_str(b, "&amp;"); break;
        case '<': pypi_buf_str(b, "&lt;"); break;
        case '>': pypi_buf_str(b, "&gt;"); break;
        case '"': pypi_buf_str(b, "&quot;"); break;
        case '\'': pypi_buf_str(b, "&#39;"); break;
        default: pypi_buf_add(b, s + i, 1);
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

/* ---- hashes ---- */

/* the hash names PEP 503 lets an index use (hashlib's guaranteed ones) and their hex lengths */
const pypi_hash_alg_t pypi_hash_algs[] = {{"sha256", 64}, {"sha512", 128}, {"sha384", 96},
                                          {"sha224", 56}, {"sha1", 40},    {"md5", 32}};

int pypi_is_lower_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* ---- the stored JSON ---- */

/* the local link for an upstream file URL, relative to /pypi/simple/<project>/ */
static int local_link(larder_pypi_buf_t *out, const char *project, const char *url, const char *fragment)
{
    const char *s = strstr(url, "://");
    if (!s || (size_t)(s - url) > 5)
        return -1;
    pypi_buf_str(out, "../../files/");
    pypi_buf_str(out, project);
    pypi_buf_str(out, "/");
    pypi_buf_add(out, url, (size_t)(s - url));
    pypi_buf_str(out, "/");
    pypi_buf_str(out, s + 3);
    if (fragment) {
        pypi_buf_str(out, "#");
        pypi_buf_str(out, fragment);
    }
    return 0;
}

/* The stored form of a project page: PEP 691 JSON whose file URLs are our links (no fragment: the hashes are in
 * "hashes"). From an HTML upstream it says api-version 1.0 (1.1 would need the sizes HTML does not carry); from a
 * JSON upstream every field is kept as it came, except the metadata keys (below). */
void pypi_emit_json(const char *project, json_t *orig_root, pypi_page_t *pg, larder_pypi_buf_t *out)
{
    json_t *root = orig_root ? json_deep_copy(orig_root) : json_object();
    json_t *meta = json_object_get(root, "meta");
    if (!json_is_object(meta) || !json_is_string(json_object_get(meta, "api-version")))
        json_object_set_new(root, "meta", json_pack("{s:s}", "api-version", "1.0"));
    json_object_set_new(root, "name", json_string(project));
    json_t *files = json_array();
    for (size_t i = 0; i < pg->n; i++) {
        pypi_file_rec_t *f = &pg->files[i];
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
        pypi_buf_str(out, s);
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
    pypi_buf_str(out, "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"");
    pypi_buf_str(out, ok ? v : "1.0");
    pypi_buf_str(out, "\">\n    <title>");
    buf_html(out, title, strlen(title));
    pypi_buf_str(out, "</title>\n  </head>\n  <body>\n");
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
        pypi_buf_str(out, "    <a href=\"");
        pypi_buf_str(out, norm);
        pypi_buf_str(out, "/\">");
        buf_html(out, name, strlen(name));
        pypi_buf_str(out, "</a><br/>\n");
    }
    pypi_buf_str(out, "  </body>\n</html>\n");
}

static void attr_str(larder_pypi_buf_t *out, const char *name, const char *v)
{
    pypi_buf_str(out, " ");
    pypi_buf_str(out, name);
    pypi_buf_str(out, "=\"");
    buf_html(out, v, strlen(v));
    pypi_buf_str(out, "\"");
}

static void render_page_html(json_t *root, larder_pypi_buf_t *out)
{
    const char *name = json_string_value(json_object_get(root, "name"));
    char title[300];
    snprintf(title, sizeof(title), "Links for %s", name ? name : "");
    html_head(out, root, title);
    pypi_buf_str(out, "    <h1>");
    buf_html(out, title, strlen(title));
    pypi_buf_str(out, "</h1>\n");
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
        pypi_buf_str(out, "    <a href=\"");
        buf_html(out, url, ul);
        /* one hash in the fragment (PEP 503): sha256 when there is one */
        json_t *hashes = json_object_get(fo, "hashes");
        for (size_t k = 0; k < sizeof(pypi_hash_algs) / sizeof(pypi_hash_algs[0]); k++) {
            const char *hv = json_string_value(json_object_get(hashes, pypi_hash_algs[k].name));
            if (pypi_is_lower_hex(hv, pypi_hash_algs[k].hexlen)) {
                pypi_buf_str(out, "#");
                pypi_buf_str(out, pypi_hash_algs[k].name);
                pypi_buf_str(out, "=");
                pypi_buf_str(out, hv);
                break;
            }
        }
        pypi_buf_str(out, "\"");
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
        if (pypi_json_truthy_meta(m)) {
            const char *mh = json_string_value(json_object_get(m, "sha256"));
            char v[80];
            snprintf(v, sizeof(v), "%s%s", larder_is_sha256_hex(mh) ? "sha256=" : "true",
                     larder_is_sha256_hex(mh) ? mh : "");
            /* PEP 714 name, and the PEP 658 one (same value) for pip before 23.1 */
            attr_str(out, "data-core-metadata", v);
            attr_str(out, "data-dist-info-metadata", v);
        }
        pypi_buf_str(out, ">");
        buf_html(out, fn, strlen(fn));
        pypi_buf_str(out, "</a><br/>\n");
    }
    pypi_buf_str(out, "  </body>\n</html>\n");
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
