/* fetch.h - upstream downloads: one libcurl multi thread, one fetch per cache key (single flight). */
#ifndef LARDER_FETCH_H
#define LARDER_FETCH_H

#include <stdatomic.h>
#include <stdint.h>
#include "config.h"
#include "metrics.h"
#include "store.h"

typedef struct larder_fetcher larder_fetcher_t;

enum larder_fetch_state {
    LARDER_FETCH_PENDING = 0,   /* queued or waiting for upstream headers */
    LARDER_FETCH_STREAMING,     /* 200 received, body being written to `fd` */
    LARDER_FETCH_DONE,          /* body complete and verified (committed unless `uncached`) */
    LARDER_FETCH_NOT_MODIFIED,  /* conditional request answered 304; entry freshness renewed */
    LARDER_FETCH_FAILED,        /* see status (upstream status or 0) and error */
};

typedef struct larder_fetch larder_fetch_t;
/* Rewrites a complete, verified upstream body (in_fd, in_len bytes; fe->digest is its sha256) into out_fd before it
 * is committed; runs on a commit thread. Sets *content_type (malloc'd) for the stored object. 0, or -1 with a
 * message in err. */
typedef int (*larder_transform_fn)(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                                   char **content_type, char *err, size_t errlen);

/* A streaming transform: the upstream body is rewritten chunk by chunk while it downloads, on the fetch thread, into
 * up to LARDER_STREAM_MAX_OUT outputs, each a temp file that clients tail as it grows (the first byte of a client's
 * answer leaves while the upstream document is still arriving). Output i is the entry stream_keys[i] of the request;
 * output 0 is the fetch itself (the single flight runs under stream_keys[0]), the others are side fetches that
 * larder_fetch_start returns to requests for their keys. What is stored and hashed is each output; the outputs
 * have no Content-Length. A failing feed fails the fetch (nothing stored, tailers aborted); every output is
 * committed, or none. The module keeps its own protocol out of appliance/ behind these callbacks. */
#define LARDER_STREAM_MAX_OUT 2
typedef struct larder_stream_ops {
    int nout;                                        /* 1 .. LARDER_STREAM_MAX_OUT */
    const char *content_type[LARDER_STREAM_MAX_OUT]; /* of each stored output */
    /* per transfer, on the fetch thread when a 200 arrives: the transform's state, or NULL (the fetch fails) */
    void *(*open)(const larder_fetch_t *fe);
    /* one chunk of the upstream body (final = 1, len 0: the body is complete; then on a commit thread). Writes
     * what it makes with larder_stream_write(). 0, or -1 with a message in err */
    int (*feed)(void *state, larder_fetch_t *fe, const char *buf, size_t len, int final, char *err, size_t errlen);
    /* on a commit thread once every output is complete, before they are committed: the module's own records
     * (digests[i]: sha256 hex of output i). 0, or -1 with a message (nothing is committed). May be NULL */
    int (*before_commit)(void *state, larder_store_t *st, const larder_fetch_t *fe, const char *const *keys,
                         const char *const *digests, char *err, size_t errlen);
    void (*close)(void *state);
} larder_stream_ops_t;
/* from feed: append len bytes to output `out` (readers see them at once). 0, or -1 (errno in the fetch's error) */
int larder_stream_write(larder_fetch_t *fe, int out, const char *buf, size_t len);

typedef struct larder_fetch_req {
    int proto;
    const char *key;
    const char *url;
    const char *sha256;            /* expected digest or NULL */
    uint32_t entry_flags;          /* LARDER_ENTRY_IMMUTABLE ... */
    uint64_t ttl;                  /* seconds of freshness for volatile objects */
    const char *if_none_match;     /* conditional revalidation, or NULL */
    const char *if_modified_since;
    const char *pin_set;           /* pin the committed entry in this set, or NULL */
    const char *accept;            /* Accept header for upstream, or NULL */
    int force;                     /* fetch even when a fresh entry exists (refresh on demand) */
    larder_transform_fn transform; /* rewrite before commit (responses then wait for the commit), or NULL */
    const char *integrity;         /* Subresource Integrity string ("sha512-<base64>" ...; the strongest of
                                      sha512/sha384/sha256/sha1 listed is verified before commit), or NULL */
    int nostore;                   /* stream to the waiting clients, never commit (pass-through answers) */
    const char *body;              /* with nostore: POST this body (body_type its Content-Type), or NULL: GET */
    size_t body_len;
    const char *body_type;
    /* registry token auth: on a 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`, fetch a token
     * from the realm (with auth_user/auth_pass as Basic credentials when given, else anonymously), cache it under
     * auth_scope_key until it expires, and retry once; later fetches with the same key send it at once */
    const char *auth_scope_key;
    const char *auth_user, *auth_pass;
    /* revalidate with HEAD first: when the upstream's Docker-Content-Digest is "sha256:<head_digest>" the stored
     * entry is kept (NOT_MODIFIED) without a GET; otherwise the GET follows */
    const char *head_digest;
    /* no upstream: the transform makes the document from what the store already holds (in_fd -1, in_len 0) on a
     * commit thread, e.g. one format of a document derived from another; url is only a label then. Single flight
     * by key like any fetch, so waiters and seed jobs treat it as one */
    int local;
    /* with local: run the transform on a thread of its own instead of a commit thread (a transform that runs for
     * minutes, e.g. one driving an external program, must not hold up every other commit). Its error message is
     * the fetch's error as it is (no "rewriting ... failed" prefix). The fetcher waits for such threads when it is
     * destroyed; the transform should poll larder_fetch_cancelled() and give up when it turns 1 */
    int own_thread;
    /* a streaming transform (above) and the keys of its outputs (key is one of them), or NULL */
    const larder_stream_ops_t *stream;
    const char *stream_keys[LARDER_STREAM_MAX_OUT];
} larder_fetch_req_t;

/* Parse an SRI string: the strongest supported algorithm's digest. 0 and *md/raw/rawlen set, or -1. */
int larder_parse_integrity(const char *sri, const char **alg_name, unsigned char *raw, unsigned int *rawlen);

/* An upstream Content-Length value (NUL-terminated, surrounding blanks allowed): digits, or a comma-separated list of
 * the same number (RFC 9110 8.6); -1 when malformed ("10x00", "", "-1", "10, 11", overflow). */
int64_t larder_parse_content_length(const char *v);

/* 1 when a stored entry may answer a request expecting `sha256` and/or `integrity` (either may be NULL; an
 * integrity string that cannot be parsed expects nothing, as larder_fetch_start does): its digest is the expected
 * one, and its bytes match the SRI digest (recorded when a download was verified against it, else computed once from
 * the blob and recorded). 0 when it differs: the entry must not satisfy the request (a mirror path or a request
 * without a digest may have stored other bytes under the same key); fetch and verify instead. */
int larder_entry_satisfies(larder_store_t *st, int proto, const larder_entry_t *e, const char *sha256,
                           const char *integrity);

struct larder_fetch {
    _Atomic int state;
    _Atomic uint64_t written; /* bytes of body in fd, readable by tailers */
    int fd;                   /* temp file (then blob) holding the body; valid while referenced */
    int status;               /* final upstream status, valid from STREAMING/FAILED on */
    int64_t content_length;   /* -1 when unknown */
    int uncached;             /* DONE but not committed (quota or disk) */
    int buffered;             /* transformed before commit: serve the committed entry, never the raw stream */
    int streamed;             /* fd holds a streaming transform's output (of unknown length), not upstream bytes */
    _Atomic int verified;     /* (not buffered, 8 MiB or more) the body is complete and matches its length and every expected
                                 digest: its readers may send the last byte while fsync, rename and commit still
                                 run; the fd stays valid, and a failed commit does not take the bytes back */
    _Atomic int tailers;      /* responses streaming the body as it arrives (kept by cache.c: it paces them) */
    char *content_type, *etag, *last_modified;
    char digest[LARDER_SHA256_HEX];
    char error[256];
    uint64_t upstream_ms;
    int proto;
    char *key, *url;
    /* private to fetch.c below */
    struct larder_fetch_priv *priv;
};

typedef void (*larder_fetch_wake_cb)(void *ctx);
typedef void (*larder_fetch_done_cb)(larder_fetch_t *f, void *ctx);

larder_fetcher_t *larder_fetcher_create(const larder_config_t *cfg, larder_store_t *store, larder_metrics_t *metrics,
                                        larder_fetch_wake_cb wake, void *wake_ctx);
void larder_fetcher_destroy(larder_fetcher_t *f);

enum { LARDER_FETCH_STARTED = 0, LARDER_FETCH_JOINED = 1, LARDER_FETCH_NOW_CACHED = 2 };
/* Join the in-flight fetch of (proto, key) or start one. Returns a referenced fetch (release it), or NULL with
 * *how = LARDER_FETCH_NOW_CACHED when a fresh entry satisfying req's digests was committed meanwhile (look it up
 * again). A request that expects a digest joins only a fetch verified against the same digest; otherwise its own
 * fetch runs beside the other one (both commit; the store keeps the later, and a mismatching entry never
 * satisfies a request expecting a digest). */
larder_fetch_t *larder_fetch_start(larder_fetcher_t *f, const larder_fetch_req_t *req, int *how);
void larder_fetch_retain(larder_fetch_t *fe);
void larder_fetch_release(larder_fetch_t *fe);
/* Call cb (on the fetch thread, or at once if already finished) when the fetch reaches a final state. */
void larder_fetch_on_done(larder_fetch_t *fe, larder_fetch_done_cb cb, void *ctx);
/* Undo larder_fetch_on_done(fe, cb, ctx) and drop the caller's reference (the one larder_fetch_start gave): 1 when
 * the waiter was still registered (cb will never run; fe must not be used any more), 0 when the fetch already
 * finished and cb runs or ran (the reference is still the caller's, released as before). When nobody else waits for
 * the fetch (no other waiter, no other reference: no client tails it) its transfer stops and it ends FAILED with
 * "cancelled: ...", nothing stored. A seed job that is cancelled detaches its fetches this way. */
int larder_fetch_detach(larder_fetch_t *fe, larder_fetch_done_cb cb, void *ctx);
/* 1 once the fetcher is shutting down: a long transform (own_thread) should stop and fail */
int larder_fetch_cancelled(const larder_fetch_t *fe);
/* for a transform: the entry it makes accounts for `bytes` the module keeps outside the blob store
 * (larder_entry_t.external), so they count in the quotas and the module hears of the entry's eviction */
void larder_fetch_set_external(const larder_fetch_t *fe, uint64_t bytes);
/* 1 when a seed job started the fetch (its upstream bytes count as bytes_seed, whoever joined it) */
int larder_fetch_by_job(const larder_fetch_t *fe);
/* where fetches report their upstream's health and ask whether it is held off (upstreams.h); before the first fetch */
typedef struct larder_upstreams larder_upstreams_t;
void larder_fetcher_set_upstreams(larder_fetcher_t *f, larder_upstreams_t *u);
/* the watchdog (server.c), every tick: ask the curl thread's loop to answer (and wake it) unless a question is
 * outstanding; returns how long the outstanding question has waited in ms (0: answered). `now` is CLOCK_MONOTONIC
 * ms (heartbeat.h). The loop answers at the top of every turn, so a transfer callback or a token fetch that blocks
 * the thread shows here. The commit threads are not asked: one commit may rightly take minutes (a large fsync, a
 * transform) and there are several of them */
uint64_t larder_fetcher_heartbeat(larder_fetcher_t *f, uint64_t now);
/* a test hook (server.c, LARDER_TEST_HOOKS=1 only): the curl thread's loop sleeps `seconds` at its next turn */
void larder_fetcher_test_stall(larder_fetcher_t *f, unsigned seconds);
/* a test hook (LARDER_TEST_HOOKS=1 only): the next commit of a downloaded body waits `seconds` after its body is
 * verified, before its fsync, rename and write batch */
void larder_fetcher_test_stall_commit(larder_fetcher_t *f, unsigned seconds);
/* number of fetches in flight */
int larder_fetcher_active(larder_fetcher_t *f);
/* 1 while the curl thread waits for a CPU a tenth of the time or more (clients tailing downloads pace themselves) */
int larder_fetcher_starved(larder_fetcher_t *f);
/* 1 when the host of url could not be reached (no connection, no answer) within the last minute or so: stale
 * entries are then served at once instead of waiting for another timeout. Any answer from the host clears it. */
int larder_fetcher_host_down(larder_fetcher_t *f, const char *url);

#endif
