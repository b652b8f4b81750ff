/* proxy.c - the request side of the apt cache: apt as an HTTP proxy (absolute-URI requests,
 * `Acquire::http::Proxy`) and under /apt/<host>/<path>; both map to the cache key <host><path>, so the two kinds of
 * clients share entries.
 *
 * larder_apt_map() turns what a client asked for into a repository file (host, path, kind, suite); apt_serve() checks
 * the host against apt.allow and builds the cache mapping: pool/ files and by-hash/ indexes are immutable, Release
 * files volatile (apt.ttl). An index the stored Release lists is served from the by-hash copy (or a copy keyed by
 * that hash), and a .deb from pool/ is verified against the SHA256 its Packages index recorded: the records
 * ("r/..." and "d/...") are written by the transforms in indexes.c, which this file only names in the mapping.
 * This file holds the protocol definition; the seed expander it names lives in seed.c. */
#include "apt.h"
#include "cache.h"
#include "internal.h"
#include "util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

/* ---- serving requests ---- */

static const char *upstream_url(h2o_req_t *req, const larder_config_t *cfg, const larder_apt_target_t *t,
                                const char *path)
{
    const larder_apt_conf_t *ac = larder_proto_conf(cfg, LARDER_PROTO_APT);
    int https = t->https || in_list(ac->https_hosts.v, ac->https_hosts.n, t->host);
    return h2o_concat(&req->pool, h2o_iovec_init(https ? "https://" : "http://", https ? 8 : 7),
                      h2o_iovec_init(t->host, strlen(t->host)), h2o_iovec_init(path, strlen(path)))
        .base;
}

static const char *pool_str(h2o_req_t *req, const char *s) { return h2o_strdup(&req->pool, s, SIZE_MAX).base; }

static void apt_serve(larder_app_t *app, h2o_req_t *req, const larder_apt_target_t *t)
{
    const larder_proto_config_t *pc = &app->cfg->proto[LARDER_PROTO_APT];
    const larder_apt_conf_t *ac = larder_proto_conf(app->cfg, LARDER_PROTO_APT);
    if (!in_list(ac->allow.v, ac->allow.n, t->host)) {
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
            m.transform = apt_release_transform;
        m.content_type = "text/plain";
        break;
    case LARDER_APT_BYHASH: {
        m.flags = LARDER_ENTRY_IMMUTABLE;
        const char *h = strstr(t->path, "/by-hash/SHA256/");
        if (h && larder_is_sha256_hex(h + 16))
            m.sha256 = pool_str(req, h + 16);
        m.transform = apt_index_transform;
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
        m.transform = apt_index_transform;
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
void apt_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
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
