/* cache.h - the request flow shared by every protocol: lookup, freshness, single-flight miss, serving. */
#ifndef LARDER_CACHE_H
#define LARDER_CACHE_H

#include <h2o.h>
#include "app.h"

/* What a protocol handler maps a request to. Strings must outlive the call (request pool is fine). */
typedef struct larder_mapping {
    int proto;
    const char *key;    /* cache key within the protocol */
    const char *url;    /* upstream URL, or NULL when the object can only come from the cache */
    const char *sha256; /* expected digest (verified before commit), or NULL */
    const char *integrity; /* expected Subresource Integrity ("sha512-<base64>"), verified before commit, or NULL */
    uint32_t flags;     /* LARDER_ENTRY_IMMUTABLE ... */
    uint64_t ttl;       /* freshness of volatile objects, seconds */
    const char *accept; /* Accept header sent upstream, or NULL */
    larder_transform_fn transform; /* rewrite the upstream document before it is stored, or NULL */
    const char *content_type; /* override the stored content type in the response, or NULL */
    /* Serve the stored document with every occurrence of subst_from replaced by subst_to (per request, chunk by
     * chunk, so a large document never holds up the thread): e.g. a base URL that depends on the request's Host.
     * Such responses have no Content-Length and ignore Range. NULL: serve the bytes as stored. */
    const char *subst_from, *subst_to;
    /* An answer that is never cached (search, audit): the upstream's reply streams through; GET or POST (the
     * request body is forwarded); offline, or upstream failure, answers 503 at once. */
    int passthrough;
    /* registry token auth for the upstream (see larder_fetch_req_t), or NULL */
    const char *auth_scope_key, *auth_user, *auth_pass;
    int head_revalidate; /* revalidate an expired entry with HEAD + Docker-Content-Digest (OCI tags) */
    int digest_header;   /* add Docker-Content-Digest: sha256:<stored digest> to the response */
    int repr_digest;     /* add Repr-Digest: sha-256=:<base64>: (the whole stored representation, 206s too) */
    int range_full;      /* an unsatisfiable Range gets the whole representation (200) instead of 416 */
    int md5_etag;        /* the ETag is the quoted MD5 of the stored bytes (meta "md5/<sha256>" of the protocol,
                            recorded by its transform) instead of the sha256: what bundler checks */
    /* whether the stored content type may be served to this request (e.g. a manifest media type against the
     * client's Accept); when not, `unacceptable_body` (JSON) is sent with status 404. NULL: always */
    int (*acceptable)(h2o_req_t *req, const char *content_type);
    const char *unacceptable_body;
    /* Serve another representation of the stored document, made per request from the stored bytes (a document
     * stored once and offered in two formats, e.g. a PyPI page stored as JSON and asked for as HTML): render
     * returns the new body (malloc'd, *outlen) or NULL (a 502 naming the key). The ETag gets "-<render_tag>"
     * appended; Range, HEAD and conditional requests apply to the rendered body. NULL: serve the bytes as stored.
     * The output must depend on the stored bytes alone (and render_tag): it is kept and reused for later hits of
     * the same blob (cache.c, "rendered documents"). */
    char *(*render)(void *ctx, const char *in, size_t len, size_t *outlen);
    void *render_ctx;
    const char *render_tag;
    /* With url NULL: report `status` (LARDER_CACHE_*) instead of HIT/STALE by freshness, when the caller has just
     * fetched what is served (e.g. a document derived from one fetched for this request: MISS or REVALIDATED) */
    int override_status, status;
    /* the entry a recording (record.h) pins for this answer when it is not `key` (an answer found through a record
     * of the module's, e.g. a manifest by digest stored under another name), or NULL */
    const char *record_key;
} larder_mapping_t;

/* Serve a GET/HEAD through the cache. Always answers the request (possibly asynchronously). */
void larder_cache_serve(larder_app_t *app, h2o_req_t *req, const larder_mapping_t *m);
/* Wait (without blocking the thread) until `fe` has ended, then call `then` on this worker thread with its final
 * state; `then` must answer the request. Takes over the caller's reference to fe. */
typedef void (*larder_after_fetch_fn)(larder_app_t *app, h2o_req_t *req, int fetch_state, void *data);
void larder_cache_after_fetch(larder_app_t *app, h2o_req_t *req, int proto, const char *key, larder_fetch_t *fe,
                              larder_after_fetch_fn then, void *data);
/* Serve a stored blob by its digest (content-addressed access); 404 when not cached. */
void larder_cache_serve_digest(larder_app_t *app, h2o_req_t *req, int proto, const char *digest);
/* The same with a content type, Docker-Content-Digest and an Accept check (m: content_type, digest_header,
 * acceptable, unacceptable_body); returns 0 when answered, -1 when the blob is not stored (nothing sent). */
int larder_cache_serve_stored_digest(larder_app_t *app, h2o_req_t *req, const larder_mapping_t *m, const char *digest);

/* A complete short response with a text body and a log line; proto < 0 for non-protocol paths. */
void larder_send_text(larder_app_t *app, h2o_req_t *req, int proto, int status, const char *reason,
                      const char *content_type, const char *body, size_t len);
void larder_send_error(larder_app_t *app, h2o_req_t *req, int proto, int status, const char *reason, const char *fmt,
                       ...) __attribute__((format(printf, 6, 7)));

/* Worker-thread side of fetch progress: resume every response of this thread waiting for upstream bytes. */
void larder_cache_on_wake(void);
/* Number of responses of this thread waiting for upstream bytes. */
size_t larder_cache_blocked(void);

#endif
