/* oci.c - a pull-through mirror of Docker/OCI registries at /v2/ (the distribution spec's read side).
 * Which registry a request is for: containerd's ?ns=<registry>, else a /v2/<registry>/<name> prefix, else docker.io;
 * only registries in oci.registries are contacted. Manifests are stored byte for byte with the upstream's media
 * type (never converted) and served only to clients whose Accept allows that type; every manifest answer carries
 * Docker-Content-Digest. Manifests by digest and blobs are immutable and verified against their digest before
 * commit; blobs are stored once per registry, whatever the repository. Tags are volatile (oci.ttl) and revalidated
 * with a HEAD (which does not count as a Docker Hub pull), compared by digest. Upstream token auth (Bearer
 * challenges, anonymous or with configured credentials, tokens cached until expiry) is done by the fetcher; client
 * credentials are never forwarded. */
#include "oci.h"
#include "cache.h"
#include "jobs.h"
#include "log.h"
#include "internal.h"
#include "util.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *const manifest_types[] = {
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json", NULL};
#define UPSTREAM_ACCEPT                                                                                                \
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "                            \
    "application/vnd.docker.distribution.manifest.list.v2+json, "                                                      \
    "application/vnd.docker.distribution.manifest.v2+json"

/* ---- parsing ---- */

void larder_oci_canonical_registry(const char *in, size_t len, char *out, size_t outlen)
{
    size_t n = len < outlen - 1 ? len : outlen - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[n] = 0;
    if (!strcmp(out, "index.docker.io") || !strcmp(out, "registry-1.docker.io") ||
        !strcmp(out, "registry.hub.docker.com"))
        snprintf(out, outlen, "docker.io");
}

/* a path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static int component_ok(const char *s, size_t n)
{
    if (n == 0 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return 0;
    if (!(islower((unsigned char)s[n - 1]) || isdigit((unsigned char)s[n - 1])))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (islower(c) || isdigit(c))
            continue;
        if (c == '.' || c == '_' || c == '-') {
            size_t j = i;
            while (j < n && (s[j] == '.' || s[j] == '_' || s[j] == '-'))
                j++;
            /* a separator: one of . _ -, or "__", or a run of '-' of any length */
            size_t run = j - i;
            int ok = run == 1 || (run == 2 && s[i] == '_' && s[i + 1] == '_');
            for (size_t k = i; !ok && k < j && s[k] == '-'; k++)
                ok = k + 1 == j;
            if (!ok)
                return 0;
            i = j - 1;
            continue;
        }
        return 0;
    }
    return 1;
}

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 255)
        return 0;
    const char *p = s, *e = s + n;
    while (p < e) {
        const char *sl = memchr(p, '/', (size_t)(e - p));
        const char *ce = sl ? sl : e;
        if (!component_ok(p, (size_t)(ce - p)))
            return 0;
        p = sl ? sl + 1 : e;
        if (sl && p == e)
            return 0;
    }
    return 1;
}

static int tag_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128 || !(isalnum((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
            return 0;
    return 1;
}

static int digest_ok(const char *s, size_t n)
{
    if (n != 71 || strncmp(s, "sha256:", 7) != 0)
        return 0;
    for (size_t i = 7; i < n; i++)
        if (!(isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int looks_like_registry(const char *s, size_t n)
{
    return memchr(s, '.', n) || memchr(s, ':', n) || (n == 9 && !memcmp(s, "localhost", 9));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode a query value (%XX escapes; '+' is a space as in form encoding, which no registry name contains, so it is
 * rejected later) into out (NUL-terminated). 0, or -1 on a bad escape, a NUL byte or when it does not fit. */
static int percent_decode(const char *in, size_t n, char *out, size_t outsz, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0 || o + 1 >= outsz)
            return -1;
        out[o++] = c;
    }
    out[o] = 0;
    *outlen = o;
    return 0;
}

/* split registry from name and apply docker.io's library/ rule */
static int set_name(larder_oci_req_t *out, const char *name, size_t nl, const char *ns, size_t nsl)
{
    const char *slash = memchr(name, '/', nl);
    if (ns) {
        larder_oci_canonical_registry(ns, nsl, out->registry, sizeof(out->registry));
    } else if (slash && looks_like_registry(name, (size_t)(slash - name))) {
        larder_oci_canonical_registry(name, (size_t)(slash - name), out->registry, sizeof(out->registry));
        nl -= (size_t)(slash + 1 - name);
        name = slash + 1;
    } else {
        snprintf(out->registry, sizeof(out->registry), "docker.io");
    }
    for (const char *c = out->registry; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == ':' || *c == '_'))
            return -1;
    if (!out->registry[0] || !name_ok(name, nl))
        return -1;
    int lib = !strcmp(out->registry, "docker.io") && !memchr(name, '/', nl);
    if (nl + (lib ? 8 : 0) >= sizeof(out->name))
        return -1;
    snprintf(out->name, sizeof(out->name), "%s%.*s", lib ? "library/" : "", (int)nl, name);
    return 0;
}

int larder_oci_parse(const char *path, size_t len, const char *query, size_t qlen, larder_oci_req_t *out,
                     const char **code, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    *code = "NAME_INVALID";
    if (len == 0) {
        out->kind = LARDER_OCI_ROOT;
        return 0;
    }
    const char *ns = NULL;
    size_t nsl = 0;
    char nsbuf[sizeof(out->registry)];
    for (const char *q = query, *qe = query ? query + qlen : NULL; q && q < qe;) {
        const char *amp = memchr(q, '&', (size_t)(qe - q));
        const char *pe = amp ? amp : qe;
        if (pe - q > 3 && !memcmp(q, "ns=", 3)) {
            /* containerd and BuildKit encode it with Go's url.Values.Encode: ns=127.0.0.1%3A5000 */
            if (percent_decode(q + 3, (size_t)(pe - q - 3), nsbuf, sizeof(nsbuf), &nsl) < 0) {
                snprintf(err, errlen, "invalid ns= parameter (bad percent-encoding or longer than %zu bytes)",
                         sizeof(nsbuf) - 1);
                return -1;
            }
            ns = nsbuf;
            out->ns_query = 1;
        }
        q = amp ? amp + 1 : qe;
    }
    /* <name>/manifests/<ref>, <name>/blobs/<digest>, <name>/tags/list, <name>/blobs/uploads/... */
    static const struct {
        const char *mark;
        int kind;
    } marks[] = {{"/blobs/uploads", LARDER_OCI_UPLOAD}, {"/manifests/", LARDER_OCI_MANIFEST},
                 {"/blobs/", LARDER_OCI_BLOB}, {"/tags/list", LARDER_OCI_TAGS}};
    const char *at = NULL;
    int kind = 0;
    size_t ml = 0;
    for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]) && !at; m++) {
        size_t l = strlen(marks[m].mark);
        for (const char *p = path + len - l; p >= path; p--) {
            if (!memcmp(p, marks[m].mark, l)) {
                at = p;
                kind = marks[m].kind;
                ml = l;
                break;
            }
        }
    }
    if (!at || at == path) {
        *code = "NAME_UNKNOWN";
        snprintf(err, errlen, "expected /v2/<name>/manifests/<reference>, /v2/<name>/blobs/<digest> or "
                              "/v2/<name>/tags/list");
        return -1;
    }
    out->kind = kind;
    if (kind == LARDER_OCI_UPLOAD) {
        *code = "UNSUPPORTED";
        snprintf(err, errlen, "larder is a read-only mirror: push to the upstream registry");
        return -1;
    }
    if (set_name(out, path, (size_t)(at - path), ns, nsl) < 0) {
        snprintf(err, errlen, "invalid repository or registry name");
        return -1;
    }
    const char *r = at + ml;
    size_t rl = len - (size_t)(r - path);
    if (kind == LARDER_OCI_TAGS) {
        if (rl != 0) {
            *code = "NAME_UNKNOWN";
            snprintf(err, errlen, "unexpected path after tags/list");
            return -1;
        }
        return 0;
    }
    if (digest_ok(r, rl)) {
        out->ref_is_digest = 1;
    } else if (kind == LARDER_OCI_BLOB || !tag_ok(r, rl)) {
        *code = kind == LARDER_OCI_BLOB ? "DIGEST_INVALID" : "TAG_INVALID";
        snprintf(err, errlen, kind == LARDER_OCI_BLOB ? "blobs are addressed by sha256:<64 hex digits>"
                                                      : "not a valid tag or sha256 digest");
        return -1;
    }
    memcpy(out->ref, r, rl);
    out->ref[rl] = 0;
    return 0;
}

int larder_oci_accepts(const char *accept, size_t len, const char *media_type)
{
    if (!accept || len == 0)
        return 1;
    size_t tl = strlen(media_type);
    const char *p = accept, *e = accept + len;
    while (p < e) {
        const char *comma = memchr(p, ',', (size_t)(e - p));
        const char *ie = comma ? comma : e;
        while (p < ie && (*p == ' ' || *p == '\t'))
            p++;
        if (p >= ie) {
            p = comma ? comma + 1 : e;
            continue;
        }
        const char *semi = memchr(p, ';', (size_t)(ie - p));
        const char *te = semi ? semi : ie;
        while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        int match = ((size_t)(te - p) == tl && strncasecmp(p, media_type, tl) == 0) ||
                    ((size_t)(te - p) == 3 && !memcmp(p, "*/*", 3));
        if (match) {
            double q = 1.0;
            for (const char *s = semi; s && s < ie; s = memchr(s + 1, ';', (size_t)(ie - s - 1))) {
                const char *v = s + 1;
                while (v < ie && *v == ' ')
                    v++;
                if (ie - v > 2 && (v[0] == 'q' || v[0] == 'Q') && v[1] == '=') {
                    char num[16];
                    size_t nl = 0;
                    for (const char *d = v + 2; d < ie && nl < sizeof(num) - 1 && (isdigit((unsigned char)*d) || *d == '.');
                         d++)
                        num[nl++] = *d;
                    num[nl] = 0;
                    q = strtod(num, NULL);
                }
            }
            if (q > 0)
                return 1;
        }
        p = comma ? comma + 1 : e;
    }
    return 0;
}

int larder_oci_parse_ref(const char *ref, larder_oci_req_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(ref);
    const char *at = memchr(ref, '@', len);
    size_t nl = at ? (size_t)(at - ref) : len;
    /* a tag is after the last ':' that follows the last '/' */
    const char *last_slash = NULL;
    for (size_t i = 0; i < nl; i++)
        if (ref[i] == '/')
            last_slash = ref + i;
    const char *colon = memchr(last_slash ? last_slash : ref, ':', nl - (size_t)((last_slash ? last_slash : ref) - ref));
    size_t name_len = colon ? (size_t)(colon - ref) : nl;
    if (set_name(out, ref, name_len, NULL, 0) < 0) {
        snprintf(err, errlen, "'%.200s' is not an image reference ([registry/]name[:tag][@sha256:digest])", ref);
        return -1;
    }
    out->kind = LARDER_OCI_MANIFEST;
    size_t tl = colon ? nl - name_len - 1 : 0;
    if (colon && !tag_ok(colon + 1, tl)) {
        snprintf(err, errlen, "'%.200s': not a valid tag", ref);
        return -1;
    }
    /* name:tag@digest: the digest is the reference, the tag is kept beside it */
    snprintf(at ? out->tag : out->ref, sizeof(out->tag), "%.*s", (int)tl, colon ? colon + 1 : "");
    if (at) {
        if (!digest_ok(at + 1, strlen(at + 1))) {
            snprintf(err, errlen, "'%.200s': the digest must be sha256:<64 hex digits>", ref);
            return -1;
        }
        snprintf(out->ref, sizeof(out->ref), "%s", at + 1);
        out->ref_is_digest = 1;
    } else if (!colon) {
        snprintf(out->ref, sizeof(out->ref), "latest");
    }
    return 0;
}

/* ---- the daemon side ---- */

static const larder_oci_registry_t *find_registry(const larder_config_t *cfg, const char *name)
{
    const larder_oci_conf_t *pc = larder_proto_conf(cfg, LARDER_PROTO_OCI);
    for (size_t i = 0; i < pc->nregistries; i++)
        if (!strcmp(pc->registries[i].name, name))
            return &pc->registries[i];
    return NULL;
}

static void send_oci_error(larder_app_t *app, h2o_req_t *req, int status, const char *reason, const char *code,
                           const char *msg)
{
    json_t *j = json_pack("{s:[{s:s,s:s}]}", "errors", "code", code, "message", msg);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("docker-distribution-api-version"), 1, NULL,
                          H2O_STRLIT("registry/2.0"));
    larder_send_text(app, req, LARDER_PROTO_OCI, status, reason, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
}

static int manifest_acceptable(h2o_req_t *req, const char *content_type)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (i < 0)
        return 1;
    /* every Accept header counts (docker sends one per type) */
    char type[200];
    size_t n = strcspn(content_type, ";");
    snprintf(type, sizeof(type), "%.*s", (int)(n < sizeof(type) - 1 ? n : sizeof(type) - 1), content_type);
    while (n > 0 && type[n - 1] == ' ')
        type[--n] = 0;
    for (; i >= 0; i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, i))
        if (larder_oci_accepts(req->headers.entries[i].value.base, req->headers.entries[i].value.len, type))
            return 1;
    return 0;
}

static const char unacceptable[] =
    "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"the manifest exists, but not in a media type the "
    "client accepts (larder never converts manifests)\"}]}";


/* manifests: stored byte for byte; the media type (the upstream's Content-Type, else the document's mediaType) is
 * recorded by digest so a later request by digest is answered from the store */
static int manifest_transform(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                              char **content_type, char *err, size_t errlen)
{
    if (in_len > (uint64_t)4 * 1024 * 1024) {
        snprintf(err, errlen, "manifest larger than 4 MiB");
        return -1;
    }
    char *buf = malloc(in_len + 1);
    if (!buf || pread(in_fd, buf, in_len, 0) != (ssize_t)in_len) {
        free(buf);
        snprintf(err, errlen, "cannot read the manifest");
        return -1;
    }
    buf[in_len] = 0;
    json_t *j = json_loadb(buf, in_len, 0, NULL);
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    const char *ct = fe->content_type;
    int known = 0;
    for (int i = 0; manifest_types[i] && ct; i++)
        known |= strncmp(ct, manifest_types[i], strlen(manifest_types[i])) == 0;
    const char *type = known ? manifest_types[0] : NULL;
    for (int i = 0; manifest_types[i]; i++) {
        if (ct && strncmp(ct, manifest_types[i], strlen(manifest_types[i])) == 0)
            type = manifest_types[i];
    }
    if (!type && mt)
        type = mt;
    if (!json_is_object(j) || !type) {
        json_decref(j);
        free(buf);
        snprintf(err, errlen, "the upstream did not send an image manifest or index");
        return -1;
    }
    *content_type = strdup(type);
    json_decref(j);
    /* media type by digest: the manifest is stored as received, so its digest is the body's (fe->digest) */
    const char *slash = strchr(fe->key + 2, '/');
    char mkey[400];
    snprintf(mkey, sizeof(mkey), "mt/%.*s/%.64s", slash ? (int)(slash - fe->key - 2) : 0, fe->key + 2, fe->digest);
    larder_meta_batch_t *b = larder_store_meta_begin(st);
    larder_meta_batch_put(b, LARDER_PROTO_OCI, mkey, *content_type, strlen(*content_type));
    int r = larder_store_meta_commit(st, b);
    if (r == 0 && larder_write_all(out_fd, buf, in_len) < 0) {
        snprintf(err, errlen, "writing the manifest failed");
        r = -1;
    }
    free(buf);
    return r;
}

static void add_ns_header(h2o_req_t *req, const larder_oci_req_t *o)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("docker-distribution-api-version"), 1, NULL,
                          H2O_STRLIT("registry/2.0"));
    if (o->ns_query)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("oci-namespace"), 1, NULL,
                              h2o_strdup(&req->pool, o->registry, SIZE_MAX).base, strlen(o->registry));
}

/* fill the parts of a mapping common to every upstream request of a repository */
static void upstream_auth(h2o_req_t *req, const larder_oci_registry_t *r, const larder_oci_req_t *o,
                          larder_mapping_t *m)
{
    char sk[600];
    snprintf(sk, sizeof(sk), "%s|repository:%s:pull", o->registry, o->name);
    m->auth_scope_key = h2o_strdup(&req->pool, sk, SIZE_MAX).base;
    m->auth_user = r->username;
    m->auth_pass = r->password;
}

void oci_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    const char *q = memchr(rest, '?', len);
    size_t plen = q ? (size_t)(q - rest) : len;
    larder_oci_req_t o;
    const char *code;
    char err[400];
    int get = req->input.method.len == 3 && !memcmp(req->input.method.base, "GET", 3);
    int head = req->input.method.len == 4 && !memcmp(req->input.method.base, "HEAD", 4);
    if (larder_oci_parse(rest, plen, q ? q + 1 : NULL, q ? len - plen - 1 : 0, &o, &code, err, sizeof(err)) < 0) {
        int st = !strcmp(code, "UNSUPPORTED") ? 405 : !strcmp(code, "NAME_UNKNOWN") ? 404 : 400;
        send_oci_error(app, req, st, st == 405 ? "Method Not Allowed" : st == 404 ? "Not Found" : "Bad Request", code,
                       err);
        return;
    }
    if (!get && !head) {
        send_oci_error(app, req, 405, "Method Not Allowed", "UNSUPPORTED",
                       "larder is a read-only mirror: push to the upstream registry");
        return;
    }
    if (o.kind == LARDER_OCI_ROOT) {
        add_ns_header(req, &o);
        larder_send_text(app, req, LARDER_PROTO_OCI, 200, "OK", "application/json", "{}", 2);
        return;
    }
    const larder_oci_registry_t *r = find_registry(app->cfg, o.registry);
    if (!r) {
        snprintf(err, sizeof(err), "registry %s is not mirrored here: add it to oci.registries", o.registry);
        send_oci_error(app, req, 404, "Not Found", "NAME_UNKNOWN", err);
        return;
    }
    add_ns_header(req, &o);
    char key[800], url[1400];
    larder_mapping_t m = {.proto = LARDER_PROTO_OCI};
    upstream_auth(req, r, &o, &m);
    if (o.kind == LARDER_OCI_BLOB) {
        snprintf(key, sizeof(key), "b/%s/%s", o.registry, o.ref);
        snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", r->url, o.name, o.ref);
        m.sha256 = h2o_strdup(&req->pool, o.ref + 7, SIZE_MAX).base;
        m.flags = LARDER_ENTRY_IMMUTABLE;
        m.content_type = "application/octet-stream";
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("docker-content-digest"), 1, NULL,
                              h2o_strdup(&req->pool, o.ref, SIZE_MAX).base, strlen(o.ref));
    } else if (o.kind == LARDER_OCI_TAGS) {
        snprintf(key, sizeof(key), "t/%s/%s", o.registry, o.name);
        snprintf(url, sizeof(url), "%s/v2/%s/tags/list", r->url, o.name);
        m.ttl = app->cfg->proto[LARDER_PROTO_OCI].ttl;
        m.content_type = "application/json";
    } else {
        m.digest_header = 1;
        m.acceptable = manifest_acceptable;
        m.unacceptable_body = unacceptable;
        m.transform = manifest_transform;
        m.accept = UPSTREAM_ACCEPT;
        if (o.ref_is_digest) {
            /* a manifest we already have under any name: answer from the store (recorded as the by-digest entry) */
            char mkey[500];
            snprintf(mkey, sizeof(mkey), "mt/%s/%s", o.registry, o.ref + 7);
            snprintf(key, sizeof(key), "m/%s/%s@%s", o.registry, o.name, o.ref);
            char *mt = larder_store_meta_get(app->store, LARDER_PROTO_OCI, mkey, NULL);
            if (mt) {
                m.content_type = h2o_strdup(&req->pool, mt, SIZE_MAX).base;
                free(mt);
                m.key = h2o_strdup(&req->pool, mkey, SIZE_MAX).base;
                m.record_key = h2o_strdup(&req->pool, key, SIZE_MAX).base;
                if (larder_cache_serve_stored_digest(app, req, &m, o.ref + 7) == 0)
                    return;
                m.content_type = NULL; /* (record_key stays: it is the key below) */
            }
            m.sha256 = h2o_strdup(&req->pool, o.ref + 7, SIZE_MAX).base;
            m.flags = LARDER_ENTRY_IMMUTABLE;
        } else {
            snprintf(key, sizeof(key), "m/%s/%s:%s", o.registry, o.name, o.ref);
            m.ttl = app->cfg->proto[LARDER_PROTO_OCI].ttl;
            m.head_revalidate = 1;
        }
        snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", r->url, o.name, o.ref);
    }
    m.key = h2o_strdup(&req->pool, key, SIZE_MAX).base;
    m.url = h2o_strdup(&req->pool, url, SIZE_MAX).base;
    larder_cache_serve(app, req, &m);
}

/* ---- seeding: images with their platform manifests, configs and layers ---- */

typedef struct oci_seed {
    larder_oci_req_t o;
    char label[400];
    int index_only; /* LARDER_OCI_INDEX_ONLY: an index's platform manifests are not fetched */
} oci_seed_t;

static int platform_wanted(const larder_seed_spec_t *spec, json_t *platform)
{
    const char *os = json_string_value(json_object_get(platform, "os"));
    const char *arch = json_string_value(json_object_get(platform, "architecture"));
    const char *variant = json_string_value(json_object_get(platform, "variant"));
    if (!os || !arch)
        return 0;
    const larder_seed_strings_t *platforms = larder_seed_option(spec, LARDER_PROTO_OCI, "platforms");
    for (size_t i = 0; i < platforms->n; i++) {
        char want[200];
        snprintf(want, sizeof(want), "%s", platforms->v[i]);
        char *wv = strchr(want, '/') ? strchr(strchr(want, '/') + 1, '/') : NULL;
        if (wv)
            *wv++ = 0;
        char have[200];
        snprintf(have, sizeof(have), "%s/%s", os, arch);
        if (!strcmp(want, have) && (!wv || (variant && !strcmp(wv, variant))))
            return 1;
    }
    return 0;
}

static void seed_add_blob(larder_seed_ctx_t *c, const oci_seed_t *s, const larder_oci_registry_t *r,
                          const char *digest, const char *what)
{
    if (!digest || !digest_ok(digest, strlen(digest)))
        return;
    char key[800], url[1400], label[600];
    snprintf(key, sizeof(key), "b/%s/%s", s->o.registry, digest);
    snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", r->url, s->o.name, digest);
    snprintf(label, sizeof(label), "%s %s %.19s", s->label, what, digest);
    char sk[600];
    snprintf(sk, sizeof(sk), "%s|repository:%s:pull", s->o.registry, s->o.name);
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_OCI,
                             .key = key,
                             .url = url,
                             .sha256 = digest + 7,
                             .entry_flags = LARDER_ENTRY_IMMUTABLE,
                             .auth_scope_key = sk,
                             .auth_user = r->username,
                             .auth_pass = r->password};
    larder_seed_add(c, label, &fr, NULL, NULL);
}

static void seed_manifest(larder_seed_ctx_t *c, oci_seed_t *s, const char *ref, int is_digest, const char *want);

static void seed_manifest_done(larder_seed_ctx_t *c, int proto, const char *key, void *data)
{
    oci_seed_t *s = data;
    larder_app_t *app = larder_seed_app(c);
    const larder_seed_spec_t *spec = larder_seed_spec_of(c);
    const larder_oci_registry_t *r = find_registry(app->cfg, s->o.registry);
    larder_entry_t e;
    char path[4096];
    if (!r || larder_store_get(app->store, proto, key, &e) < 0) {
        larder_seed_fail(c, s->label, "the manifest vanished from the cache");
        return;
    }
    larder_store_blob_path(app->store, e.digest, path, sizeof(path));
    larder_entry_clear(&e);
    json_t *j = json_load_file(path, 0, NULL);
    json_t *manifests = json_object_get(j, "manifests");
    if (json_is_array(manifests) && !s->index_only) {
        size_t i, matched = 0;
        json_t *mo;
        json_array_foreach(manifests, i, mo)
        {
            const char *d = json_string_value(json_object_get(mo, "digest"));
            if (!d || !platform_wanted(spec, json_object_get(mo, "platform")))
                continue;
            oci_seed_t *sub = malloc(sizeof(*sub));
            *sub = *s;
            seed_manifest(c, sub, d, 1, NULL);
            matched++;
        }
        if (!matched)
            larder_seed_fail(c, s->label, "the image index has no manifest for the seed's platforms");
    } else if (!json_is_array(manifests)) { /* (--index-only: the spec names the platform manifests by digest) */
        seed_add_blob(c, s, r, json_string_value(json_object_get(json_object_get(j, "config"), "digest")), "config");
        json_t *layers = json_object_get(j, "layers");
        size_t i;
        json_t *lo;
        json_array_foreach(layers, i, lo)
        {
            seed_add_blob(c, s, r, json_string_value(json_object_get(lo, "digest")), "layer");
        }
        if (!json_is_array(layers))
            larder_seed_fail(c, s->label, "not an image manifest or index");
    }
    json_decref(j);
}

/* takes ownership of s; want: a tag's digest ("sha256:<hex>"), or NULL: fetched by digest, stored as the tag, so the
 * tag resolves to the recorded bytes whatever the upstream's tag says today (until revalidated online) */
static void seed_manifest(larder_seed_ctx_t *c, oci_seed_t *s, const char *ref, int is_digest, const char *want)
{
    larder_app_t *app = larder_seed_app(c);
    const larder_oci_registry_t *r = find_registry(app->cfg, s->o.registry);
    char key[800], url[1400], label[600], sk[600];
    snprintf(key, sizeof(key), "m/%s/%s%s%s", s->o.registry, s->o.name, is_digest ? "@" : ":", ref);
    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", r->url, s->o.name, want ? want : ref);
    snprintf(label, sizeof(label), "%s manifest %.19s", s->label, ref);
    snprintf(sk, sizeof(sk), "%s|repository:%s:pull", s->o.registry, s->o.name);
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_OCI,
                             .key = key,
                             .url = url,
                             .sha256 = is_digest ? ref + 7 : want ? want + 7 : NULL,
                             .entry_flags = is_digest ? LARDER_ENTRY_IMMUTABLE : 0,
                             .ttl = app->cfg->proto[LARDER_PROTO_OCI].ttl,
                             .accept = UPSTREAM_ACCEPT,
                             .transform = manifest_transform,
                             .auth_scope_key = sk,
                             .auth_user = r->username,
                             .auth_pass = r->password};
    larder_seed_add(c, label, &fr, seed_manifest_done, s);
}

void oci_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    oci_seed_t *s = calloc(1, sizeof(*s));
    char err[300], refbuf[2100];
    if (s)
        s->index_only = larder_oci_seed_ref(item->ref, refbuf, sizeof(refbuf));
    if (!s || larder_oci_parse_ref(refbuf, &s->o, err, sizeof(err)) < 0) {
        larder_seed_fail(ctx, item->ref, s ? err : "out of memory");
        free(s);
        return;
    }
    if (!find_registry(app->cfg, s->o.registry)) {
        snprintf(err, sizeof(err), "registry %s is not in oci.registries", s->o.registry);
        larder_seed_fail(ctx, item->ref, err);
        free(s);
        return;
    }
    snprintf(s->label, sizeof(s->label), "%s", item->ref);
    /* name:tag@digest: the manifest of that digest, stored as the tag */
    char ref[160], want[160];
    int by_tag = s->o.tag[0] != 0;
    snprintf(ref, sizeof(ref), "%s", by_tag ? s->o.tag : s->o.ref);
    snprintf(want, sizeof(want), "%s", s->o.ref);
    seed_manifest(ctx, s, ref, s->o.ref_is_digest && !by_tag, by_tag ? want : NULL);
}
