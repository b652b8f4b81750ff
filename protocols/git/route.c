/* route.c - what a git client's bytes say (part of the git protocol, see serve.c).
 *
 * A request path below /git/ is split into the repository (<remote>/<path>, ".git" optional and removed, every
 * segment checked: the path becomes a directory under data_dir/git/ and part of an upstream URL) and the endpoint:
 * the smart protocol's info/refs and git-upload-pack, a push (refused by serve.c), the dumb protocol, or nothing
 * git asks for. Also here: the Git-Protocol header's check, ref names as seed specs give them, the lookup of a ref
 * in a mirror's stored ref list, and the inflation of gzip request bodies with a bound. These are pure functions
 * over bytes from the network or a seed spec (no store, no configuration, no process); the unit tests and the fuzzer
 * call them through git.h. Nothing is ever percent-decoded: a '%' anywhere in a repository path is refused. */
#include "git.h"

#include <string.h>
#include <strings.h>
#include <zlib.h>

static int is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

int larder_git_remote_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > LARDER_GIT_REMOTE_MAX || s[0] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != ':' && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return len >= sl && memcmp(s + len - sl, suffix, sl) == 0;
}

int larder_git_repo_parse(const char *s, size_t len, char *remote, size_t remotelen, char *path, size_t pathlen,
                          const char **err)
{
    const char *slash = memchr(s, '/', len);
    if (!slash) {
        *err = "expected <remote>/<path>: a configured remote (git.remotes) and the repository's path on it";
        return -1;
    }
    size_t rl = (size_t)(slash - s);
    if (!larder_git_remote_name_ok(s, rl) || rl + 1 > remotelen) {
        *err = "not a remote name (a key of git.remotes: a host or host:port)";
        return -1;
    }
    for (size_t i = 0; i < rl; i++)
        remote[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    remote[rl] = 0;
    const char *p = slash + 1, *end = s + len;
    if (memchr(p, '%', (size_t)(end - p))) {
        *err = "percent-encoded characters are not accepted in a repository path";
        return -1;
    }
    size_t depth = 0;
    for (const char *seg = p; seg <= end;) {
        const char *e = memchr(seg, '/', (size_t)(end - seg));
        if (!e)
            e = end;
        size_t sl = (size_t)(e - seg);
        if (sl == 0) {
            *err = "empty segment in the repository path";
            return -1;
        }
        if (seg[0] == '.') {
            *err = "a segment of the repository path starts with '.'";
            return -1;
        }
        if (sl > LARDER_GIT_SEGMENT_MAX || ++depth > LARDER_GIT_DEPTH_MAX) {
            *err = "repository path too long";
            return -1;
        }
        for (size_t i = 0; i < sl; i++) {
            if (!is_alnum(seg[i]) && seg[i] != '.' && seg[i] != '_' && seg[i] != '-') {
                *err = "a repository path is made of segments of A-Z a-z 0-9 . _ -";
                return -1;
            }
        }
        if (e != end && ends_with(seg, sl, ".git")) {
            *err = "only the last segment of a repository path may end in .git";
            return -1;
        }
        seg = e + 1;
    }
    size_t pl = (size_t)(end - p);
    if (ends_with(p, pl, ".git"))
        pl -= 4; /* the last segment is not ".git" itself (it would start with '.'): never empty */
    if (pl > LARDER_GIT_PATH_MAX || pl + 1 > pathlen) {
        *err = "repository path too long";
        return -1;
    }
    memcpy(path, p, pl);
    path[pl] = 0;
    return 0;
}

/* the value of `service` in a query string, or NULL */
static const char *query_service(const char *q, size_t len, size_t *vlen)
{
    for (const char *a = q, *end = q + len; a < end;) {
        const char *e = memchr(a, '&', (size_t)(end - a));
        if (!e)
            e = end;
        if ((size_t)(e - a) >= 8 && memcmp(a, "service=", 8) == 0) {
            *vlen = (size_t)(e - a) - 8;
            return a + 8;
        }
        a = e + 1;
    }
    return NULL;
}

/* "objects/<2 hex>/<x>", "objects/info/<x>", "objects/pack/<x>" at the end of a path: the offset of the '/' before
 * "objects", or 0 when the path does not end so */
static size_t dumb_objects(const char *p, size_t len)
{
    size_t slash[3] = {0, 0, 0}, n = 0; /* the last three '/', latest first */
    for (size_t i = len; i-- > 0 && n < 3;)
        if (p[i] == '/')
            slash[n++] = i;
    if (n < 3 || slash[0] + 1 >= len || slash[1] - slash[2] - 1 != 7 || memcmp(p + slash[2] + 1, "objects", 7) != 0)
        return 0;
    const char *d = p + slash[1] + 1;
    size_t dl = slash[0] - slash[1] - 1;
    int hex2 = dl == 2;
    for (size_t i = 0; hex2 && i < 2; i++)
        hex2 = (d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f');
    if (hex2 || (dl == 4 && (memcmp(d, "info", 4) == 0 || memcmp(d, "pack", 4) == 0)))
        return slash[2];
    return 0;
}

int larder_git_route(const char *rest, size_t len, larder_git_route_t *out, const char **err)
{
    memset(out, 0, sizeof(*out));
    const char *qm = memchr(rest, '?', len);
    size_t pl = qm ? (size_t)(qm - rest) : len;
    const char *q = qm ? qm + 1 : NULL;
    size_t ql = qm ? len - pl - 1 : 0;
    size_t repo_len = pl;
    static const char info_refs[] = "/info/refs", upload[] = "/git-upload-pack", receive[] = "/git-receive-pack";
    if (pl > sizeof(info_refs) - 1 && ends_with(rest, pl, info_refs)) {
        repo_len = pl - (sizeof(info_refs) - 1);
        size_t sl = 0;
        const char *svc = q ? query_service(q, ql, &sl) : NULL;
        if (!svc)
            out->kind = LARDER_GIT_DUMB;
        else if (sl == 15 && memcmp(svc, "git-upload-pack", 15) == 0)
            out->kind = LARDER_GIT_INFO_REFS;
        else if (sl == 16 && memcmp(svc, "git-receive-pack", 16) == 0)
            out->kind = LARDER_GIT_RECEIVE_PACK;
        else {
            *err = "unknown service (git asks for service=git-upload-pack)";
            return -1;
        }
    } else if (pl > sizeof(upload) - 1 && ends_with(rest, pl, upload)) {
        repo_len = pl - (sizeof(upload) - 1);
        out->kind = LARDER_GIT_UPLOAD_PACK;
    } else if (pl > sizeof(receive) - 1 && ends_with(rest, pl, receive)) {
        repo_len = pl - (sizeof(receive) - 1);
        out->kind = LARDER_GIT_RECEIVE_PACK;
    } else if (pl > 5 && ends_with(rest, pl, "/HEAD")) {
        repo_len = pl - 5;
        out->kind = LARDER_GIT_DUMB;
    } else {
        size_t obj = dumb_objects(rest, pl);
        if (obj) {
            repo_len = obj;
            out->kind = LARDER_GIT_DUMB;
        } else {
            out->kind = LARDER_GIT_REPO;
            while (repo_len > 0 && rest[repo_len - 1] == '/') /* "…/repo.git/" as a browser may ask */
                repo_len--;
        }
    }
    if (repo_len == 0) {
        *err = "no repository named: the URL is /git/<remote>/<path>";
        return -1;
    }
    return larder_git_repo_parse(rest, repo_len, out->remote, sizeof(out->remote), out->path, sizeof(out->path), err);
}

int larder_git_protocol_ok(const char *v, size_t len)
{
    if (len == 0 || len > 256)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(v[i]) && v[i] != '=' && v[i] != ':' && v[i] != '.' && v[i] != '_' && v[i] != '-')
            return 0;
    return 1;
}

int larder_git_protocol_is_v2(const char *v, size_t len)
{
    for (const char *a = v, *end = v + len; a < end;) {
        const char *e = memchr(a, ':', (size_t)(end - a));
        if (!e)
            e = end;
        if (e - a == 9 && memcmp(a, "version=2", 9) == 0)
            return 1;
        a = e + 1;
    }
    return 0;
}

int larder_git_refname_ok(const char *s, size_t len)
{
    if (len == 0 || len > 255 || s[0] == '-' || s[0] == '/' || s[len - 1] == '/' || s[len - 1] == '.')
        return 0;
    if (len == 1 && s[0] == '@')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || strchr("~^:?*[\\", c))
            return 0;
        if (i + 1 < len && ((c == '.' && s[i + 1] == '.') || (c == '@' && s[i + 1] == '{') ||
                            (c == '/' && s[i + 1] == '/')))
            return 0;
        if (c == '.' && (i == 0 || s[i - 1] == '/'))
            return 0; /* a component starting with '.' */
        if (c == '/' && ends_with(s, i, ".lock"))
            return 0;
    }
    return !ends_with(s, len, ".lock");
}

static int is_hex_id(const char *s, size_t len)
{
    if (len != 40 && len != 64)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

static int name_is(const char *name, size_t nl, const char *prefix, const char *ref, size_t rl)
{
    size_t pl = strlen(prefix);
    return nl == pl + rl && memcmp(name, prefix, pl) == 0 && memcmp(name + pl, ref, rl) == 0;
}

int larder_git_ref_find(const char *list, size_t len, const char *ref)
{
    size_t rl = strlen(ref);
    int id = is_hex_id(ref, rl);
    for (const char *l = list, *end = list + len; l < end;) {
        const char *e = memchr(l, '\n', (size_t)(end - l));
        if (!e)
            e = end;
        const char *sp = memchr(l, ' ', (size_t)(e - l));
        if (sp) {
            size_t il = (size_t)(sp - l);
            const char *name = sp + 1;
            size_t nl = (size_t)(e - name);
            if (id) {
                if (il == rl && strncasecmp(l, ref, rl) == 0)
                    return 1;
            } else if (!ends_with(name, nl, "^{}") &&
                       (name_is(name, nl, "", ref, rl) || name_is(name, nl, "refs/heads/", ref, rl) ||
                        name_is(name, nl, "refs/tags/", ref, rl))) {
                return 1;
            }
        }
        l = e + 1;
    }
    return 0;
}

int larder_git_gunzip(const char *in, size_t len, uint64_t max, larder_git_sink_fn sink, void *ctx, const char **err)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) { /* gzip framing only */
        *err = "cannot inflate the request body";
        return -1;
    }
    unsigned char out[16384];
    uint64_t total = 0;
    int r = Z_OK, ret = 0;
    const unsigned char *p = (const unsigned char *)in;
    size_t left = len;
    while (r != Z_STREAM_END) {
        if (z.avail_in == 0) {
            if (left == 0) {
                *err = "the gzip request body is truncated";
                ret = -1;
                break;
            }
            z.next_in = (unsigned char *)p; /* zlib's API is not const; it does not write */
            z.avail_in = left > (1u << 30) ? (1u << 30) : (unsigned)left;
            p += z.avail_in;
            left -= z.avail_in;
        }
        z.next_out = out;
        z.avail_out = sizeof(out);
        r = inflate(&z, Z_NO_FLUSH);
        if (r != Z_OK && r != Z_STREAM_END && !(r == Z_BUF_ERROR && z.avail_in == 0 && left > 0)) {
            *err = "the request body is not valid gzip";
            ret = -1;
            break;
        }
        size_t n = sizeof(out) - z.avail_out;
        total += n;
        if (total > max) {
            *err = "the inflated request body is too large";
            ret = -2;
            break;
        }
        if (n && sink(ctx, (const char *)out, n) < 0) {
            *err = "cannot store the request body";
            ret = -3;
            break;
        }
    }
    if (ret == 0 && (z.avail_in > 0 || left > 0)) {
        *err = "bytes follow the gzip request body";
        ret = -1;
    }
    inflateEnd(&z);
    return ret;
}

int larder_git_seed_item(const char *item, char *remote, size_t remotelen, char *path, size_t pathlen,
                         const char **refs, const char **err)
{
    const char *sp = strchr(item, ' ');
    size_t rl = sp ? (size_t)(sp - item) : strlen(item);
    if (larder_git_repo_parse(item, rl, remote, remotelen, path, pathlen, err) < 0)
        return -1;
    *refs = sp ? sp + 1 : item + rl;
    return 0;
}
