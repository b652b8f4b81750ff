/* git.h - the git mirror at /git/<remote>/<path>: its configuration and the pure functions over client bytes (request
 * paths, the Git-Protocol header, gzip request bodies, seed references, ref lists), exposed for the unit tests and
 * the fuzzer. Nothing here touches the store, a process or the network. */
#ifndef LARDER_GIT_H
#define LARDER_GIT_H

#include <stddef.h>
#include <stdint.h>

#include "module.h"

/* one of git.remotes: name ("github.com", "git.example.com:8443", lower case), url (https://github.com, no
 * trailing '/'; a repository is <url>/<path>), optional credentials sent to this upstream only */
typedef larder_conf_endpoint_t larder_git_remote_t;

/* the git section of larder.yaml beyond the common keys */
typedef struct larder_git_conf {
    larder_git_remote_t *remotes; /* git.remotes: the only hosts mirrored */
    size_t nremotes;
    int max_concurrent;        /* git.max_concurrent: upstream fetches, and upload-pack processes, at once */
    uint64_t max_request_body; /* git.max_request_body: largest upload-pack request body, inflated */
} larder_git_conf_t;

#define LARDER_GIT_REMOTE_MAX 255 /* bytes of a remote name */
#define LARDER_GIT_PATH_MAX 512   /* bytes of a repository path within its remote */
#define LARDER_GIT_SEGMENT_MAX 200
#define LARDER_GIT_DEPTH_MAX 16   /* segments of a repository path */

enum {
    LARDER_GIT_INFO_REFS = 1,  /* GET <repo>/info/refs?service=git-upload-pack */
    LARDER_GIT_UPLOAD_PACK,    /* POST <repo>/git-upload-pack */
    LARDER_GIT_RECEIVE_PACK,   /* a push: info/refs?service=git-receive-pack or POST <repo>/git-receive-pack */
    LARDER_GIT_DUMB,           /* the dumb protocol: info/refs without a service, HEAD, objects/... */
    LARDER_GIT_REPO,           /* the repository URL itself (a browser, or a typo) */
};

typedef struct larder_git_route {
    int kind;                                /* LARDER_GIT_* */
    char remote[LARDER_GIT_REMOTE_MAX + 1]; /* lower case */
    char path[LARDER_GIT_PATH_MAX + 1];     /* "openedx/edx-platform": ".git" removed, the mirror's name */
} larder_git_route_t;

/* A request path below /git/ (query included, never decoded): what it asks for and of which repository. 0, or -1
 * with a message in *err (an invalid path or query, an unknown service). */
int larder_git_route(const char *rest, size_t len, larder_git_route_t *out, const char **err);

/* "<remote>/<path>[.git]" (a seed item's repository, the repository part of a request path): the remote lower-cased
 * and the path without ".git". Segments are 1-200 of [A-Za-z0-9._-], none starting with '.', at most 16 of them,
 * at most 512 bytes; only the last may end in ".git" (so that no mirror lies inside another). 0, or -1 with *err. */
int larder_git_repo_parse(const char *s, size_t len, char *remote, size_t remotelen, char *path, size_t pathlen,
                          const char **err);

/* a remote name: 1-255 of [A-Za-z0-9.:_-], not starting with '.' or '-' (a host or host:port) */
int larder_git_remote_name_ok(const char *s, size_t len);

/* a Git-Protocol header value that may be passed to git as GIT_PROTOCOL: 1-256 of [A-Za-z0-9=:._-] */
int larder_git_protocol_ok(const char *v, size_t len);
/* whether a (valid) GIT_PROTOCOL value asks for protocol version 2 ("version=2" among its ':'-separated keys) */
int larder_git_protocol_is_v2(const char *v, size_t len);

/* a ref as a seed spec names it: a branch or tag name, a full refname (refs/...) or a commit id; git's own rules
 * (check-ref-format) plus: not starting with '-', at most 255 bytes */
int larder_git_refname_ok(const char *s, size_t len);

/* Look a seed ref up in a ref list ("<id> <refname>\n" lines, as the mirror stores it: annotated tags followed by
 * "<peeled id> <refname>^{}"): a full refname, refs/heads/<ref> or refs/tags/<ref>, or a 40- or 64-hex id that a
 * listed ref points at. 1 found, 0 not. */
int larder_git_ref_find(const char *list, size_t len, const char *ref);

/* Inflate a gzip body (Content-Encoding: gzip) into sink, at most max bytes in all. 0; -1 not gzip, corrupt,
 * truncated or followed by other bytes; -2 larger than max; -3 the sink failed. *err says which. */
typedef int (*larder_git_sink_fn)(void *ctx, const char *p, size_t n);
int larder_git_gunzip(const char *in, size_t len, uint64_t max, larder_git_sink_fn sink, void *ctx, const char **err);

/* A seed item as stored in a seed spec: "<remote>/<path>[ <ref>...]" (space-separated). Splits off the repository
 * (parsed as larder_git_repo_parse does) and returns where the refs start (*refs, possibly ""). 0, or -1 with *err. */
int larder_git_seed_item(const char *item, char *remote, size_t remotelen, char *path, size_t pathlen,
                         const char **refs, const char **err);

#endif
