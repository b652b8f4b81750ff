/* files.c - pinned and mirrored arbitrary files (release tarballs, pyenv/node binaries, patches) at /files/.
 *
 *   /files/<pin>             the pin's URL (files.pins), verified against its sha256 when one is given
 *   /files/<mirror>/<path>   <mirror prefix><path> (files.mirrors): nodeenv --mirror, python.org/ftp, GitHub releases
 *   /files/sha256/<hex>      the pin with that sha256, else any cached blob by digest (pyenv's PYTHON_BUILD_MIRROR_URL)
 * Only configured pins and prefixes are reachable: this is never an open proxy. The raw path is checked before
 * anything else: dot segments, empty segments, backslashes, control characters and percent-encoded dots,
 * slashes and backslashes are refused with 400, so a path can never climb out of its mirror prefix.
 * The cache key is the upstream URL, so a pin and a mirror path naming the same file share one entry. */
#include "files.h"
#include "cache.h"
#include "jobs.h"
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int larder_files_map(const larder_config_t *cfg, const char *path, size_t len, larder_files_target_t *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path); /* queries are not part of a file's identity */
    if (len == 0) {
        snprintf(err, errlen, "name a pin or mirror: /files/<pin>, /files/<mirror>/<path> or /files/sha256/<hex>");
        return 404;
    }
    if (len > 4096) {
        snprintf(err, errlen, "path too long");
        return 400;
    }
    if (!larder_path_is_safe(path, len, err, errlen))
        return 400;
    const char *slash = memchr(path, '/', len);
    size_t nlen = slash ? (size_t)(slash - path) : len;
    const char *rest = slash ? slash + 1 : NULL;
    size_t rlen = slash ? len - nlen - 1 : 0;

    if (nlen == 6 && memcmp(path, "sha256", 6) == 0) {
        if (!rest || rlen != 64) {
            snprintf(err, errlen, "expected /files/sha256/<64 hex digits>");
            return 404;
        }
        for (size_t i = 0; i < 64; i++)
            out->digest[i] = (char)tolower((unsigned char)rest[i]);
        out->digest[64] = 0;
        if (!larder_is_sha256_hex(out->digest)) {
            snprintf(err, errlen, "expected /files/sha256/<64 hex digits>");
            return 400;
        }
        out->kind = LARDER_FILES_DIGEST;
    }
    const larder_proto_config_t *pc = &cfg->proto[LARDER_PROTO_FILES];
    const larder_files_conf_t *fc = larder_proto_conf(cfg, LARDER_PROTO_FILES);
    if (out->kind == LARDER_FILES_DIGEST) {
        /* a pin with that sha256 is that file: fetched through the pin when not cached yet (python-build asks its
         * mirror for <sha256> first), and its entry is what a recording pins */
        for (size_t i = 0; i < fc->npins; i++) {
            const larder_file_pin_t *pin = &fc->pins[i];
            if (pin->sha256 && strcasecmp(pin->sha256, out->digest) == 0) {
                out->kind = LARDER_FILES_FETCH;
                out->url = strdup(pin->url);
                out->sha256 = pin->sha256;
                out->flags = 1; /* LARDER_ENTRY_IMMUTABLE */
                out->ttl = pc->ttl;
                break;
            }
        }
        return 0;
    }
    if (!slash) {
        for (size_t i = 0; i < fc->npins; i++) {
            const larder_file_pin_t *pin = &fc->pins[i];
            if (strlen(pin->name) == nlen && memcmp(pin->name, path, nlen) == 0) {
                out->kind = LARDER_FILES_FETCH;
                out->url = strdup(pin->url);
                out->sha256 = pin->sha256;
                out->flags = pin->sha256 ? 1 /* LARDER_ENTRY_IMMUTABLE */ : 0;
                out->ttl = pc->ttl;
                return 0;
            }
        }
    } else {
        for (size_t i = 0; i < fc->nmirrors; i++) {
            const larder_file_mirror_t *m = &fc->mirrors[i];
            if (strlen(m->name) == nlen && memcmp(m->name, path, nlen) == 0) {
                if (rlen == 0) {
                    snprintf(err, errlen, "mirror '%s' needs a file path after it", m->name);
                    return 404;
                }
                size_t plen = strlen(m->prefix);
                out->url = malloc(plen + rlen + 1);
                memcpy(out->url, m->prefix, plen);
                memcpy(out->url + plen, rest, rlen);
                out->url[plen + rlen] = 0;
                out->kind = LARDER_FILES_FETCH;
                out->ttl = pc->ttl;
                return 0;
            }
        }
    }
    snprintf(err, errlen, "no %s named '%.*s' is configured (files.%s in larder.yaml)", slash ? "mirror" : "pin",
             (int)(nlen > 200 ? 200 : nlen), path, slash ? "mirrors" : "pins");
    return 404;
}

void files_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    larder_files_target_t t;
    char err[512];
    int status = larder_files_map(app->cfg, rest, len, &t, err, sizeof(err));
    if (status) {
        larder_send_error(app, req, LARDER_PROTO_FILES, status, status == 400 ? "Bad Request" : "Not Found", "%s", err);
        return;
    }
    if (t.kind == LARDER_FILES_DIGEST) {
        larder_cache_serve_digest(app, req, LARDER_PROTO_FILES, t.digest);
        return;
    }
    h2o_iovec_t url = h2o_strdup(&req->pool, t.url, SIZE_MAX);
    free(t.url);
    larder_mapping_t m = {.proto = LARDER_PROTO_FILES,
                          .key = url.base,
                          .url = url.base,
                          .sha256 = t.sha256,
                          .flags = t.flags,
                          .ttl = t.ttl};
    larder_cache_serve(app, req, &m);
}

void files_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    larder_files_target_t t;
    char err[512];
    if (larder_files_map(app->cfg, item->ref, strlen(item->ref), &t, err, sizeof(err))) {
        larder_seed_fail(ctx, item->ref, err);
        return;
    }
    if (t.kind != LARDER_FILES_FETCH) {
        larder_seed_fail(ctx, item->ref, "sha256/ paths cannot be seeded; name the pin or mirror path instead");
        return;
    }
    if (item->sha256 && t.sha256 && strcmp(item->sha256, t.sha256) != 0) {
        larder_seed_fail(ctx, item->ref, "sha256 in the seed spec differs from the pin's sha256 in larder.yaml");
        free(t.url);
        return;
    }
    const char *sha = item->sha256 ? item->sha256 : t.sha256;
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_FILES,
                             .url = t.url,
                             .key = t.url,
                             .sha256 = sha,
                             .entry_flags = sha ? LARDER_ENTRY_IMMUTABLE : t.flags,
                             .ttl = t.ttl};
    larder_seed_add(ctx, item->ref, &fr, NULL, NULL);
    free(t.url);
}

/* a pinned entry (key: the upstream URL) -> the pin whose URL it is, else <mirror>/<path> under the mirror whose
 * prefix it starts with; with the entry's digest, so that the same bytes are fetched or nothing */
int files_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                   char *why, size_t whylen)
{
    const larder_files_conf_t *fc = larder_proto_conf(cfg, LARDER_PROTO_FILES);
    const char *sha = e ? e->digest : NULL;
    for (size_t i = 0; i < fc->npins; i++) {
        const larder_file_pin_t *pin = &fc->pins[i];
        /* a pin whose configured sha256 is not the stored one would refuse the item: try a mirror path */
        if (!strcmp(pin->url, key) && (!pin->sha256 || !sha || !strcmp(pin->sha256, sha)))
            return larder_seed_append(spec, LARDER_PROTO_FILES, pin->name, sha);
    }
    for (size_t i = 0; i < fc->nmirrors; i++) {
        const larder_file_mirror_t *m = &fc->mirrors[i];
        size_t pl = strlen(m->prefix);
        if (strncmp(key, m->prefix, pl) != 0 || !key[pl])
            continue;
        size_t need = strlen(m->name) + strlen(key + pl) + 2;
        char *ref = malloc(need);
        if (!ref)
            break;
        snprintf(ref, need, "%s/%s", m->name, key + pl);
        /* only a path that maps back to this very URL (the checks of a request: no dot segments, no queries) */
        larder_files_target_t t;
        char err[512];
        int ok = larder_files_map(cfg, ref, strlen(ref), &t, err, sizeof(err)) == 0 && t.kind == LARDER_FILES_FETCH &&
                 !strcmp(t.url, key);
        if (t.kind == LARDER_FILES_FETCH)
            free(t.url);
        int r = ok ? larder_seed_append(spec, LARDER_PROTO_FILES, ref, sha) : 0;
        free(ref);
        if (ok)
            return r;
    }
    snprintf(why, whylen, "no pin or mirror in files.pins / files.mirrors names this URL");
    return -1;
}
