/* pkstream.c - the streaming packument rewriter (part of the npm protocol, see packument.c).
 *
 * One pass over the upstream document with yajl's event parser, fed chunk by chunk as it downloads, writes both
 * stored forms at once: the full form (the document as it came, every versions.<v>.dist.tarball an http(s) URL of a
 * valid file name replaced by LARDER_NPM_BASE_TOKEN/<name>/-/<file>) and the abbreviated form (name, dist-tags,
 * time, versions with abbreviated_fields only, hasInstallScript when scripts has an install hook, and `modified`,
 * from the root or from time.modified, emitted at the end because time may come after versions). No DOM: memory is
 * a small constant plus the output not yet drained by the caller, the current key and the values of one dist object.
 * The result is, as JSON, what larder_npm_rewrite_packument() makes of the same document (fuzz_npm_stream checks it
 * on random chunk splits). Pure: no store, no I/O. */
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define MAXD 2048 /* as jansson's parser: deeper documents are refused */

enum role { R_OTHER, R_ROOT, R_VERSIONS, R_VERSION, R_DIST, R_SCRIPTS, R_TIME, R_TARBALL, R_INTEGRITY, R_SHASUM };
enum amode { A_SKIP, A_COPY, A_ROOT, A_VERSIONS, A_VERSION };

typedef struct frame {
    unsigned char role, amode, cap, is_map;
} frame_t;

/* a JSON writer: commas by the members already written at each depth */
typedef struct writer {
    larder_npm_buf_t *out;
    int depth;
    int after_key;
    unsigned char members[MAXD + 1];
} writer_t;

struct larder_npm_stream {
    yajl_handle h;
    char *name;
    larder_npm_tarball_cb cb;
    void *cbctx;
    larder_npm_buf_t out[2];  /* full, abbreviated: drained by the caller */
    larder_npm_buf_t cap[3];  /* captured `modified`: [1] the root's, [2] time's */
    int have_cap[3];
    writer_t w[2], wc;        /* the capture writer writes into cap[capturing] */
    frame_t stack[MAXD];
    int depth;
    int done, failed, saw_versions;
    unsigned char p_role, p_amode, p_cap; /* of the value that follows the last key */
    larder_npm_buf_t key;     /* the last key (decoded), for the abbreviated writer, which writes it late */
    int v_has_his, v_install; /* the current version: hasInstallScript present; scripts has an install hook */
    char *d_tarball, *d_integrity, *d_shasum; /* the current dist object */
    larder_npm_buf_t version; /* the current version's key */
    char err[200];
};

static const char *const abbr_fields[] = {
    "name", "version", "deprecated", "dependencies", "optionalDependencies", "devDependencies", "bundleDependencies",
    "bundledDependencies", "peerDependencies", "peerDependenciesMeta", "acceptDependencies", "bin", "directories",
    "dist", "engines", "cpu", "os", "libc", "_hasShrinkwrap", "hasInstallScript", "funding", "license", NULL};

static void badd(larder_npm_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > nc)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np)
            abort();
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void bstr(larder_npm_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    badd(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        badd(b, s + run, i - run);
        run = i + 1;
        char e[7] = {'\\', (char)c, 0};
        size_t el = 2;
        if (c == '\n')
            e[1] = 'n';
        else if (c == '\t')
            e[1] = 't';
        else if (c == '\r')
            e[1] = 'r';
        else if (c < 0x20) {
            e[1] = 'u';
            e[2] = e[3] = '0';
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            el = 6;
        }
        badd(b, e, el);
    }
    badd(b, s + run, n - run);
    badd(b, "\"", 1);
}

static void w_sep(writer_t *w)
{
    if (!w->after_key && w->depth > 0) {
        if (w->members[w->depth - 1])
            badd(w->out, ",", 1);
        w->members[w->depth - 1] = 1;
    }
    w->after_key = 0;
}
static void w_key(writer_t *w, const char *k, size_t n)
{
    if (w->depth > 0) {
        if (w->members[w->depth - 1])
            badd(w->out, ",", 1);
        w->members[w->depth - 1] = 1;
    }
    bstr(w->out, k, n);
    badd(w->out, ":", 1);
    w->after_key = 1;
}
static void w_open(writer_t *w, char c)
{
    w_sep(w);
    badd(w->out, &c, 1);
    w->members[w->depth++] = 0;
}
static void w_close(writer_t *w, char c)
{
    w->depth--;
    badd(w->out, &c, 1);
}
static void w_raw(writer_t *w, const char *s, size_t n)
{
    w_sep(w);
    badd(w->out, s, n);
}
static void w_string(writer_t *w, const char *s, size_t n)
{
    w_sep(w);
    bstr(w->out, s, n);
}

static int key_is(const larder_npm_buf_t *k, const char *s)
{
    size_t n = strlen(s);
    return k->len == n && memcmp(k->p, s, n) == 0;
}

static char *cstr(const unsigned char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        abort();
    memcpy(c, s, n);
    c[n] = 0;
    return c; /* a string with a NUL reads as its prefix, as jansson's json_string_value does */
}

/* ---- the value about to start ---- */

typedef struct vinfo {
    unsigned char role, amode, cap;
    int cap_root; /* the value is a captured `modified` itself */
    int in_map;   /* its parent is an object (the key was read) */
} vinfo_t;

static int value_info(larder_npm_stream_t *s, int is_map, vinfo_t *v)
{
    memset(v, 0, sizeof(*v));
    if (s->done) {
        snprintf(s->err, sizeof(s->err), "data after the end of the document");
        return -1;
    }
    if (s->depth == 0) {
        if (!is_map) {
            snprintf(s->err, sizeof(s->err), "upstream packument is not a JSON object");
            return -1;
        }
        v->role = R_ROOT;
        v->amode = A_ROOT;
        return 0;
    }
    const frame_t *p = &s->stack[s->depth - 1];
    if (p->is_map) {
        v->in_map = 1;
        v->role = s->p_role;
        v->amode = s->p_amode;
        v->cap = s->p_cap;
        v->cap_root = s->p_cap && !p->cap;
    } else {
        v->role = R_OTHER;
        v->amode = p->amode == A_COPY ? A_COPY : A_SKIP;
        v->cap = p->cap;
    }
    if (v->role == R_VERSIONS && !is_map) {
        snprintf(s->err, sizeof(s->err), "upstream packument: 'versions' is not an object");
        return -1;
    }
    if (!is_map && (v->role == R_VERSION || v->role == R_DIST || v->role == R_SCRIPTS || v->role == R_TIME))
        v->role = R_OTHER;
    if (!is_map && v->amode == A_VERSION)
        v->amode = A_SKIP; /* a version that is not an object is left out of the abbreviated form */
    return 0;
}

/* the key (abbreviated form, written late) and the capture start before any value */
static void value_prefix(larder_npm_stream_t *s, const vinfo_t *v)
{
    if (v->amode != A_SKIP && v->in_map)
        w_key(&s->w[1], s->key.p ? s->key.p : "", s->key.len);
    if (v->cap_root) {
        s->cap[v->cap].len = 0;
        s->have_cap[v->cap] = 1;
        memset(&s->wc, 0, sizeof(s->wc));
        s->wc.out = &s->cap[v->cap];
    }
}

static int on_scalar_raw(larder_npm_stream_t *s, const char *raw, size_t n, const unsigned char *str, size_t slen,
                         int is_string)
{
    vinfo_t v;
    if (value_info(s, 0, &v) < 0)
        return 0;
    value_prefix(s, &v);
    if (is_string && v.role == R_TARBALL) {
        free(s->d_tarball);
        s->d_tarball = cstr(str, slen);
        char file[256];
        if (npm_is_http(s->d_tarball) && npm_tarball_file(s->d_tarball, file, sizeof(file)) == 0) {
            larder_npm_buf_t nb = {0};
            badd(&nb, LARDER_NPM_BASE_TOKEN "/", strlen(LARDER_NPM_BASE_TOKEN "/"));
            badd(&nb, s->name, strlen(s->name));
            badd(&nb, "/-/", 3);
            badd(&nb, file, strlen(file));
            w_string(&s->w[0], nb.p, nb.len);
            if (v.amode != A_SKIP)
                w_string(&s->w[1], nb.p, nb.len);
            if (v.cap)
                w_string(&s->wc, nb.p, nb.len);
            free(nb.p);
            return 1;
        }
    } else if (is_string && v.role == R_INTEGRITY) {
        free(s->d_integrity);
        s->d_integrity = cstr(str, slen);
    } else if (is_string && v.role == R_SHASUM) {
        free(s->d_shasum);
        s->d_shasum = cstr(str, slen);
    } else if (!is_string && v.role == R_TARBALL) {
        free(s->d_tarball); /* the last `tarball` counts, as in jansson */
        s->d_tarball = NULL;
    }
    for (int i = 0; i < 3; i++) {
        writer_t *w = i < 2 ? &s->w[i] : &s->wc;
        if ((i == 1 && v.amode == A_SKIP) || (i == 2 && !v.cap))
            continue;
        if (is_string)
            w_string(w, (const char *)str, slen);
        else
            w_raw(w, raw, n);
    }
    return 1;
}

static int cb_null(void *ctx) { return on_scalar_raw(ctx, "null", 4, NULL, 0, 0); }
static int cb_bool(void *ctx, int b) { return on_scalar_raw(ctx, b ? "true" : "false", b ? 4 : 5, NULL, 0, 0); }
static int cb_number(void *ctx, const char *s, size_t n) { return on_scalar_raw(ctx, s, n, NULL, 0, 0); }
static int cb_string(void *ctx, const unsigned char *s, size_t n) { return on_scalar_raw(ctx, NULL, 0, s, n, 1); }

static int open_container(larder_npm_stream_t *s, int is_map)
{
    vinfo_t v;
    if (value_info(s, is_map, &v) < 0)
        return 0;
    if (s->depth >= MAXD) {
        snprintf(s->err, sizeof(s->err), "upstream packument nests deeper than %d levels", MAXD);
        return 0;
    }
    value_prefix(s, &v);
    char c = is_map ? '{' : '[';
    w_open(&s->w[0], c);
    if (v.amode != A_SKIP)
        w_open(&s->w[1], c);
    if (v.cap)
        w_open(&s->wc, c);
    frame_t *f = &s->stack[s->depth++];
    f->role = v.role;
    f->amode = v.amode;
    f->cap = v.cap;
    f->is_map = (unsigned char)is_map;
    if (v.role == R_VERSIONS)
        s->saw_versions = 1;
    if (v.role == R_VERSION) {
        s->v_has_his = s->v_install = 0;
        s->version.len = 0;
        badd(&s->version, s->key.p ? s->key.p : "", s->key.len);
    }
    if (v.role == R_DIST) {
        free(s->d_tarball);
        free(s->d_integrity);
        free(s->d_shasum);
        s->d_tarball = s->d_integrity = s->d_shasum = NULL;
    }
    return 1;
}

static int cb_start_map(void *ctx) { return open_container(ctx, 1); }
static int cb_start_array(void *ctx) { return open_container(ctx, 0); }

static int cb_map_key(void *ctx, const unsigned char *k, size_t n)
{
    larder_npm_stream_t *s = ctx;
    const frame_t *p = &s->stack[s->depth - 1];
    s->key.len = 0;
    badd(&s->key, (const char *)k, n);
    w_key(&s->w[0], (const char *)k, n);
    if (p->cap)
        w_key(&s->wc, (const char *)k, n);
    s->p_cap = p->cap;
    if (!p->cap && (p->role == R_ROOT || p->role == R_TIME) && key_is(&s->key, "modified"))
        s->p_cap = p->role == R_ROOT ? 1 : 2;
    s->p_role = R_OTHER;
    switch (p->role) {
    case R_ROOT:
        s->p_role = key_is(&s->key, "versions") ? R_VERSIONS : key_is(&s->key, "time") ? R_TIME : R_OTHER;
        break;
    case R_VERSIONS:
        s->p_role = R_VERSION;
        break;
    case R_VERSION:
        s->p_role = key_is(&s->key, "dist") ? R_DIST : key_is(&s->key, "scripts") ? R_SCRIPTS : R_OTHER;
        if (key_is(&s->key, "hasInstallScript"))
            s->v_has_his = 1;
        break;
    case R_DIST:
        s->p_role = key_is(&s->key, "tarball")     ? R_TARBALL
                    : key_is(&s->key, "integrity") ? R_INTEGRITY
                    : key_is(&s->key, "shasum")    ? R_SHASUM
                                                   : R_OTHER;
        break;
    case R_SCRIPTS:
        if (key_is(&s->key, "preinstall") || key_is(&s->key, "install") || key_is(&s->key, "postinstall"))
            s->v_install = 1;
        break;
    default:
        break;
    }
    switch (p->amode) {
    case A_COPY:
        s->p_amode = A_COPY;
        break;
    case A_ROOT:
        s->p_amode = key_is(&s->key, "versions") ? A_VERSIONS
                     : (key_is(&s->key, "name") || key_is(&s->key, "dist-tags") || key_is(&s->key, "time")) ? A_COPY
                                                                                                            : A_SKIP;
        break;
    case A_VERSIONS:
        s->p_amode = A_VERSION;
        break;
    case A_VERSION:
        s->p_amode = A_SKIP;
        for (int i = 0; abbr_fields[i]; i++)
            if (key_is(&s->key, abbr_fields[i]))
                s->p_amode = A_COPY;
        break;
    default:
        s->p_amode = A_SKIP;
        break;
    }
    return 1;
}

static int close_container(larder_npm_stream_t *s, int is_map)
{
    frame_t f = s->stack[--s->depth];
    char c = is_map ? '}' : ']';
    if (f.role == R_VERSION && f.amode == A_VERSION && !s->v_has_his && s->v_install) {
        w_key(&s->w[1], "hasInstallScript", 16);
        w_raw(&s->w[1], "true", 4);
    }
    if (f.role == R_DIST && s->d_tarball && s->cb) {
        char file[256];
        if (npm_is_http(s->d_tarball) && npm_tarball_file(s->d_tarball, file, sizeof(file)) == 0) {
            char *ver = cstr((const unsigned char *)(s->version.p ? s->version.p : ""), s->version.len);
            larder_npm_tarball_t t = {ver, file, s->d_tarball, s->d_integrity, s->d_shasum};
            s->cb(s->cbctx, &t);
            free(ver);
        }
    }
    if (f.role == R_ROOT) {
        int which = s->have_cap[1] ? 1 : s->have_cap[2] ? 2 : 0;
        if (which) {
            w_key(&s->w[1], "modified", 8);
            w_raw(&s->w[1], s->cap[which].p ? s->cap[which].p : "null", s->cap[which].p ? s->cap[which].len : 4);
        }
        if (!s->saw_versions) {
            w_key(&s->w[1], "versions", 8);
            w_raw(&s->w[1], "{}", 2);
        }
        s->done = 1;
    }
    w_close(&s->w[0], c);
    if (f.amode != A_SKIP)
        w_close(&s->w[1], c);
    if (f.cap)
        w_close(&s->wc, c);
    return 1;
}

static int cb_end_map(void *ctx) { return close_container(ctx, 1); }
static int cb_end_array(void *ctx) { return close_container(ctx, 0); }

static const yajl_callbacks callbacks = {cb_null,      cb_bool,    NULL,       NULL,        cb_number, cb_string,
                                         cb_start_map, cb_map_key, cb_end_map, cb_start_array, cb_end_array};

larder_npm_stream_t *larder_npm_stream_new(const char *name, larder_npm_tarball_cb cb, void *ctx)
{
    larder_npm_stream_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->h = yajl_alloc(&callbacks, NULL, s);
    if (!s->h) {
        free(s);
        return NULL;
    }
    s->name = strdup(name);
    s->cb = cb;
    s->cbctx = ctx;
    s->w[0].out = &s->out[0];
    s->w[1].out = &s->out[1];
    return s;
}

void *larder_npm_stream_cbctx(larder_npm_stream_t *s) { return s->cbctx; }

larder_npm_buf_t *larder_npm_stream_out(larder_npm_stream_t *s, int abbreviated) { return &s->out[abbreviated ? 1 : 0]; }

static int stream_error(larder_npm_stream_t *s, yajl_status st, const unsigned char *buf, size_t len, char *err,
                        size_t errlen)
{
    s->failed = 1;
    if (st == yajl_status_client_canceled || s->err[0]) {
        snprintf(err, errlen, "%s", s->err[0] ? s->err : "rewrite stopped");
        return -1;
    }
    unsigned char *m = yajl_get_error(s->h, 0, buf, len);
    char *msg = (char *)m;
    size_t ml = msg ? strcspn(msg, "\n") : 0;
    snprintf(err, errlen, "upstream packument is not valid JSON: %.*s", (int)(ml > 150 ? 150 : ml), msg ? msg : "");
    if (m)
        yajl_free_error(s->h, m);
    return -1;
}

int larder_npm_stream_feed(larder_npm_stream_t *s, const char *buf, size_t len, char *err, size_t errlen)
{
    if (s->failed) {
        snprintf(err, errlen, "%s", s->err[0] ? s->err : "the rewrite failed");
        return -1;
    }
    if (len == 0)
        return 0;
    yajl_status st = yajl_parse(s->h, (const unsigned char *)buf, len);
    if (st != yajl_status_ok)
        return stream_error(s, st, (const unsigned char *)buf, len, err, errlen);
    return 0;
}

int larder_npm_stream_finish(larder_npm_stream_t *s, char *err, size_t errlen)
{
    if (s->failed) {
        snprintf(err, errlen, "%s", s->err[0] ? s->err : "the rewrite failed");
        return -1;
    }
    yajl_status st = yajl_complete_parse(s->h);
    if (st != yajl_status_ok)
        return stream_error(s, st, NULL, 0, err, errlen);
    if (!s->done) {
        s->failed = 1;
        snprintf(err, errlen, "upstream packument is incomplete");
        return -1;
    }
    return 0;
}

void larder_npm_stream_free(larder_npm_stream_t *s)
{
    if (!s)
        return;
    yajl_free(s->h);
    for (int i = 0; i < 2; i++)
        free(s->out[i].p);
    for (int i = 0; i < 3; i++)
        free(s->cap[i].p);
    free(s->key.p);
    free(s->version.p);
    free(s->d_tarball);
    free(s->d_integrity);
    free(s->d_shasum);
    free(s->name);
    free(s);
}
