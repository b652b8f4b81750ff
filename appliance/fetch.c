/* fetch.c - every upstream download, on one thread driving a libcurl multi handle.
 *
 * Worker threads call larder_fetch_start(); under the table mutex it either joins the fetch already running for
 * that (protocol, key) -- only one that verifies every digest the request expects, so a pin never shares a mirror
 * path's unverified download -- or queues a new one and wakes the curl thread. The curl thread writes the body to
 * a temp file in WBUF_SIZE pieces, publishing progress through the atomic `written` counter and the `wake` callback,
 * so clients tail the growing file instead of waiting for the end; readers are woken once per loop turn of the curl
 * thread and every WAKE_BYTES of a long burst, not per chunk. The first HASH_INLINE_BYTES are hashed as they are
 * written, the rest by the hash thread (hasher_main), which reads them back while the download runs. When the
 * transfer ends the body goes to a commit thread, which waits for the digest and verifies it (`verified`, for a body of 8 MiB or
 * more: from then on its readers may finish, as the bytes are known good; a body that expects no digest is
 * `verified` as its transfer ends with the right length), transforms, fsyncs and commits it through the
 * store (rename + one write batch) and only then removes the
 * fetch from the table: a request that misses the table afterwards finds the committed entry. A failed,
 * truncated or mismatching body, or one announced with a malformed Content-Length, is never committed; the fetch
 * ends FAILED and tailers abort their responses. larder_entry_satisfies() decides whether a stored entry may answer
 * a request that expects a digest (sha256, or an SRI digest recorded beside the blob when it was verified).
 * A local fetch (no upstream: the transform makes the body) goes straight to a commit thread, or with own_thread to
 * a detached thread of its own, for transforms that run for minutes (an external program mirroring a repository);
 * destroying the fetcher flags larder_fetch_cancelled() and waits for those threads.
 * A streaming transform (fetch.h larder_stream_ops_t) rewrites the body chunk by chunk on this thread into one or
 * more outputs that clients tail, each committed at the end (the stream_* functions at the end of this file).
 * Fetch objects are reference counted; the file descriptor lives as long as the last reader. */
#include "fetch.h"
#include "heartbeat.h"
#include "log.h"
#include "upstreams.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define TABLE_SIZE 1024
#define COMMIT_THREADS 2
/* readers are woken at least once per this many bytes written within one curl_multi_perform */
#define WAKE_BYTES ((uint64_t)1 << 20)
/* a downloaded body at least this large is released to its readers once verified, before its fsync and commit */
#define EARLY_RELEASE_BYTES ((uint64_t)8 << 20)
/* The body is written to its temp file in pieces of this size: curl hands over about 16 KB per callback on
 * loopback, and ext4 costs about 2.5 times as much per byte in 16 KB writes as in 256 KB ones (large folios). A
 * partial piece waits at most WBUF_HOLD_MS (the first bytes of a body never wait), so a slow upstream's bytes still
 * reach the tailers at once. */
#define WBUF_SIZE ((size_t)256 << 10)
#define WBUF_HOLD_MS 2
#define PREALLOC_STEP ((uint64_t)16 << 20)
/* The first this many bytes of a body are hashed on the curl thread as they arrive; the rest by the hash thread,
 * which reads them back from the page cache in HASH_READ pieces while the download goes on, so that the curl thread
 * only receives and writes (sha256 was a third of its time) and a digest is ready moments after the last byte. */
#define HASH_INLINE_BYTES ((uint64_t)4 << 20)
#define HASH_READ ((size_t)128 << 10)
/* How often the curl thread looks at how long it waited for a CPU (its schedstat), and the share of that time
 * from which it counts as starved (larder_fetcher_starved: tailers then send no more than has arrived). */
#define STARVE_INTERVAL_MS 20
#define STARVE_PERCENT 10

typedef struct done_waiter {
    larder_fetch_done_cb cb;
    void *ctx;
    struct done_waiter *next;
} done_waiter_t;

struct larder_fetch_priv {
    _Atomic int refs;
    larder_fetcher_t *owner;
    larder_fetch_t *table_next; /* chain in the single-flight table */
    larder_fetch_t *queue_next; /* submission queue, then the commit queue */
    char *table_key;
    char *sha256, *inm, *ims, *pin_set, *accept;
    larder_transform_fn transform;
    uint32_t entry_flags;
    uint64_t ttl;
    CURL *easy;
    struct curl_slist *headers;
    EVP_MD_CTX *md;
    EVP_MD_CTX *md2;              /* integrity algorithm, when one is given */
    const EVP_MD *md2_alg;
    const char *md2_name;         /* its name as larder_parse_integrity gives it ("SHA512"; static) */
    unsigned char want2[64];
    unsigned int want2_len;
    char *integrity;
    int nostore;
    int local; /* no upstream: straight to a commit thread, the transform makes the body */
    int own_thread; /* local, on a thread of its own rather than a commit thread */
    int held;       /* its upstream is held off (upstreams.h): fails at once, fe->error says why */
    char curl_error[CURL_ERROR_SIZE]; /* curl's detailed reason ("Failed to connect to h port 80 ...: Connection
                                         refused"), for the upstream's health */
    uint64_t external; /* set by the transform: bytes kept outside the blob store for this entry */
    char *body, *body_type;
    size_t body_len;
    char *scope_key, *auth_user, *auth_pass, *in_www_auth, *head_digest, *in_dcd;
    int auth_retried, head_phase;
    char tmp_path[4096];
    int in_headers_status; /* status of the response currently being received */
    int64_t in_content_length;
    int in_bad_length;     /* its Content-Length was malformed or given twice with different values */
    char *in_content_type, *in_etag, *in_last_modified;
    uint64_t started_ms;
    done_waiter_t *waiters;
    int write_failed_errno;
    _Atomic int abandoned; /* every waiter detached: the transfer stops (larder_fetch_detach) */
    /* a streaming transform (fetch.h): its state, the side fetches of outputs 1.. (whose `primary` is this one),
     * the hash of this fetch's output, the upstream bytes received (written counts the output) */
    const larder_stream_ops_t *stream;
    void *sstate;
    larder_fetch_t *side[LARDER_STREAM_MAX_OUT];
    larder_fetch_t *primary;
    EVP_MD_CTX *omd;
    uint64_t raw_in;
    /* the write piece (WBUF_SIZE, curl thread only): bytes received but not yet written, and since when */
    char *wbuf;
    size_t wbuf_len, wbuf_size;
    uint64_t wbuf_since_ms;
    larder_fetch_t *wbuf_next; /* in the fetcher's list of fetches holding a partial piece (wbuf_listed) */
    int wbuf_listed;
    int prealloc;          /* reserve the Content-Length in the temp file as it is written (prealloc_plan) */
    uint64_t prealloc_to;  /* reserved so far */
    /* the hash thread (hasher_main): from `hashed` up to `written` md and md2 are its own; hash_err when the temp
     * file could not be read back. hash_next chains the hash thread's list, which holds a reference. */
    int hashing;
    _Atomic uint64_t hashed;
    int hash_err;
    int hash_waited; /* the transfer is over and finish_body waits for the digest (under hmu) */
    larder_fetch_t *hash_next;
};

struct larder_fetcher {
    const larder_config_t *cfg;
    larder_store_t *store;
    larder_metrics_t *metrics;
    larder_upstreams_t *upstreams; /* health and hold-off of the upstreams, or NULL */
    larder_fetch_wake_cb wake;
    void *wake_ctx;
    pthread_mutex_t mu; /* table, queue, waiters and final state transitions */
    larder_fetch_t *table[TABLE_SIZE];
    larder_fetch_t *queue;
    CURLM *multi;
    pthread_t thread;
    larder_beat_t beat; /* the watchdog's question to the curl thread's loop (larder_fetcher_heartbeat) */
    _Atomic unsigned stall_seconds; /* test hook (larder_fetcher_test_stall) */
    _Atomic unsigned commit_stall;  /* test hook (larder_fetcher_test_stall_commit) */
    _Atomic int stop;
    _Atomic int active;
    int wake_due;         /* (curl thread) bytes were written since the last wake-up */
    uint64_t wake_bytes;  /* (curl thread) bytes written since the last wake-up */
    larder_fetch_t *wbuf_pending; /* (curl thread) fetches holding a partial write piece */
    /* (curl thread) its /proc schedstat, read every STARVE_INTERVAL_MS: when, and the time waited for a CPU then */
    int sched_fd;
    uint64_t sched_at_ms, sched_wait_ns;
    _Atomic int starved;
    /* the hash thread (hasher_main) and its list of fetches (under hmu); hcond: there is work; hdone: progress */
    pthread_t hasher;
    pthread_mutex_t hmu;
    pthread_cond_t hcond, hdone;
    larder_fetch_t *hash_head;
    larder_fetch_t *hash_busy; /* the fetch whose bytes the hash thread is reading now */
    int hash_stop;
    /* complete bodies are verified, transformed, fsynced and committed here, off the curl thread, so a slow
     * commit (a large fsync, rewriting a 30 MB index document) never holds up the other downloads */
    pthread_t committers[COMMIT_THREADS];
    pthread_mutex_t cmu;
    pthread_cond_t ccond;
    larder_fetch_t *commit_head, *commit_tail;
    int commit_stop;
    /* local fetches whose transform runs on a thread of its own (own_thread): how many are running (under cmu),
     * signalled on own_done when one ends, so that destroying the fetcher waits for them */
    int own_running;
    pthread_cond_t own_done;
    /* hosts that did not answer: "scheme://host[:port]" -> until when they are left alone (under mu) */
    struct down_host {
        char origin[300];
        uint64_t until;
    } down[32];
    /* registry bearer tokens by scope key (curl thread only) */
    struct token {
        char *key, *token;
        uint64_t expires;
    } tokens[64];
    size_t ntokens;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

int larder_parse_integrity(const char *sri, const char **alg_name, unsigned char *raw, unsigned int *rawlen)
{
    static const struct {
        const char *prefix, *name;
        unsigned int len;
    } algs[] = {{"sha512-", "SHA512", 64}, {"sha384-", "SHA384", 48}, {"sha256-", "SHA256", 32}, {"sha1-", "SHA1", 20}};
    if (!sri)
        return -1;
    for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
        size_t pl = strlen(algs[a].prefix);
        for (const char *s = sri; *s;) {
            while (*s == ' ' || *s == '\t')
                s++;
            const char *e = s;
            while (*e && *e != ' ' && *e != '\t')
                e++;
            if ((size_t)(e - s) > pl && strncmp(s, algs[a].prefix, pl) == 0) {
                const char *b = s + pl, *be = memchr(b, '?', (size_t)(e - b)); /* options after '?' */
                size_t bl = be ? (size_t)(be - b) : (size_t)(e - b);
                unsigned char out[128];
                if (bl == 0 || bl > 96 || bl % 4)
                    break;
                char in[100];
                memcpy(in, b, bl);
                in[bl] = 0;
                int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)bl);
                if (n < 0)
                    break;
                size_t pad = (bl >= 1 && in[bl - 1] == '=') + (bl >= 2 && in[bl - 2] == '=');
                if ((unsigned int)n - pad != algs[a].len)
                    break;
                memcpy(raw, out, algs[a].len);
                *rawlen = algs[a].len;
                *alg_name = algs[a].name;
                return 0;
            }
            s = e;
        }
    }
    return -1;
}

/* the SRI digest of a blob is recorded, as hex, under the protocol's meta key "sri/<ALG>/<sha256 of the blob>": a
 * fact about content-addressed bytes, true whichever request stored them */
static void sri_meta_key(char *out, size_t n, const char *alg, const char *digest)
{
    snprintf(out, n, "sri/%s/%.64s", alg, digest);
}

static void record_sri(larder_store_t *st, int proto, const char *alg, const char *digest, const unsigned char *raw,
                       unsigned int len)
{
    char k[96], hex[2 * 64 + 1];
    sri_meta_key(k, sizeof(k), alg, digest);
    larder_hex(raw, len, hex);
    larder_meta_batch_t *b = larder_store_meta_begin(st);
    if (!b)
        return;
    larder_meta_batch_put(b, proto, k, hex, 2 * (size_t)len);
    if (larder_store_meta_commit(st, b) < 0)
        larder_warn("fetch: recording the %s digest of blob %.16s... failed", alg, digest);
}

/* digest of a stored blob with another algorithm (entries stored before their SRI digest was recorded) */
static int hash_blob(larder_store_t *st, const char *digest, const EVP_MD *md, unsigned char *out, unsigned int *len)
{
    char path[4096];
    larder_store_blob_path(st, digest, path, sizeof(path));
    return larder_digest_file(path, md, out, len) == 0 ? 0 : -1;
}

int larder_entry_satisfies(larder_store_t *st, int proto, const larder_entry_t *e, const char *sha256,
                           const char *integrity)
{
    if (sha256 && strncasecmp(e->digest, sha256, LARDER_SHA256_HEX) != 0)
        return 0;
    const char *alg;
    unsigned char want[64], have[64];
    unsigned int wlen = 0, hlen = 0;
    if (!integrity || larder_parse_integrity(integrity, &alg, want, &wlen) < 0)
        return 1;
    if (strcmp(alg, "SHA256") == 0) {
        if (larder_unhex(e->digest, 32, have) == 0)
            hlen = 32;
    } else {
        char k[96];
        size_t len = 0;
        sri_meta_key(k, sizeof(k), alg, e->digest);
        char *v = larder_store_meta_get(st, proto, k, &len);
        if (v && len == 2 * (size_t)wlen && larder_unhex(v, wlen, have) == 0)
            hlen = wlen;
        free(v);
        const EVP_MD *md = EVP_get_digestbyname(alg);
        if (!hlen && md && hash_blob(st, e->digest, md, have, &hlen) == 0)
            record_sri(st, proto, alg, e->digest, have, hlen);
    }
    return hlen == wlen && memcmp(have, want, wlen) == 0;
}

static int own_thread_start(larder_fetcher_t *f, larder_fetch_t *fe);
static void stream_release(larder_fetch_t *fe);
static void stream_setup(larder_fetch_t *fe, const larder_fetch_req_t *req);
static larder_fetch_t *stream_pick(larder_fetch_t *fe, const larder_fetch_req_t *req);

/* hand fe to the commit threads (verify, transform, fsync, commit run there, never on the curl thread) */
static void commit_enqueue(larder_fetcher_t *f, larder_fetch_t *fe)
{
    fe->priv->queue_next = NULL;
    pthread_mutex_lock(&f->cmu);
    if (f->commit_tail)
        f->commit_tail->priv->queue_next = fe;
    else
        f->commit_head = fe;
    f->commit_tail = fe;
    pthread_cond_signal(&f->ccond);
    pthread_mutex_unlock(&f->cmu);
}

/* whether a request may share fetch fe: every digest the request expects is verified by fe too */
static int joinable(const larder_fetch_t *fe, const larder_fetch_req_t *req)
{
    const struct larder_fetch_priv *p = fe->priv;
    if (atomic_load(&p->abandoned)) /* stopping: whoever asks now (a retry, a client) gets a fetch of its own */
        return 0;
    if (req->sha256 && (!p->sha256 || strcasecmp(p->sha256, req->sha256) != 0))
        return 0;
    const char *alg;
    unsigned char raw[64];
    unsigned int rawlen;
    if (req->integrity && larder_parse_integrity(req->integrity, &alg, raw, &rawlen) == 0 &&
        (!p->md2_alg || strcmp(p->md2_name, alg) != 0 || p->want2_len != rawlen ||
         memcmp(p->want2, raw, rawlen) != 0))
        return 0;
    return 1;
}

void larder_fetch_retain(larder_fetch_t *fe) { atomic_fetch_add(&fe->priv->refs, 1); }

void larder_fetch_release(larder_fetch_t *fe)
{
    if (!fe || atomic_fetch_sub(&fe->priv->refs, 1) != 1)
        return;
    struct larder_fetch_priv *p = fe->priv;
    if (fe->fd >= 0)
        close(fe->fd);
    if (p->md)
        EVP_MD_CTX_free(p->md);
    if (p->md2)
        EVP_MD_CTX_free(p->md2);
    free(p->wbuf);
    stream_release(fe);
    free(p->integrity);
    free(p->body);
    free(p->body_type);
    free(p->scope_key);
    free(p->auth_user);
    free(p->auth_pass);
    free(p->in_www_auth);
    free(p->head_digest);
    free(p->in_dcd);
    free(p->table_key);
    free(p->sha256);
    free(p->inm);
    free(p->ims);
    free(p->pin_set);
    free(p->accept);
    free(p->in_content_type);
    free(p->in_etag);
    free(p->in_last_modified);
    free(p);
    free(fe->content_type);
    free(fe->etag);
    free(fe->last_modified);
    free(fe->key);
    free(fe->url);
    free(fe);
}

static void table_remove(larder_fetcher_t *f, larder_fetch_t *fe)
{
    larder_fetch_t **pp = &f->table[hash_str(fe->priv->table_key) % TABLE_SIZE];
    for (; *pp; pp = &(*pp)->priv->table_next) {
        if (*pp == fe) {
            *pp = fe->priv->table_next;
            return;
        }
    }
}

larder_fetch_t *larder_fetch_start(larder_fetcher_t *f, const larder_fetch_req_t *req, int *how)
{
    /* a streaming transform's transfer runs under the key of its first output, whichever output is asked for */
    const char *fkey = req->stream && req->stream_keys[0] ? req->stream_keys[0] : req->key;
    size_t klen = strlen(fkey) + 16;
    char *tkey = malloc(klen);
    snprintf(tkey, klen, "%d/%s", req->proto, fkey);
    larder_fetch_t **bucket = &f->table[hash_str(tkey) % TABLE_SIZE];

    pthread_mutex_lock(&f->mu);
    for (larder_fetch_t *fe = *bucket; fe; fe = fe->priv->table_next) {
        if (strcmp(fe->priv->table_key, tkey) == 0 && joinable(fe, req)) {
            larder_fetch_retain(fe);
            pthread_mutex_unlock(&f->mu);
            free(tkey);
            *how = LARDER_FETCH_JOINED;
            return stream_pick(fe, req);
        }
    }
    /* The previous fetch of this key may have committed between the caller's lookup and now. */
    if (!req->if_none_match && !req->if_modified_since && !req->force) {
        larder_entry_t e;
        if (larder_store_get(f->store, req->proto, req->key, &e) == 0) {
            int fresh = larder_entry_is_fresh(&e, larder_now(), req->ttl) &&
                        larder_entry_satisfies(f->store, req->proto, &e, req->sha256, req->integrity);
            larder_entry_clear(&e);
            if (fresh) {
                pthread_mutex_unlock(&f->mu);
                free(tkey);
                *how = LARDER_FETCH_NOW_CACHED;
                return NULL;
            }
        }
    }
    larder_fetch_t *fe = calloc(1, sizeof(*fe));
    struct larder_fetch_priv *p = calloc(1, sizeof(*p));
    fe->priv = p;
    fe->fd = -1;
    fe->content_length = -1;
    fe->proto = req->proto;
    fe->key = strdup(fkey);
    fe->url = strdup(req->url);
    atomic_init(&p->refs, 2); /* the table/thread and the caller */
    p->owner = f;
    p->table_key = tkey;
    p->sha256 = xstrdup(req->sha256);
    p->inm = xstrdup(req->if_none_match);
    p->ims = xstrdup(req->if_modified_since);
    p->pin_set = xstrdup(req->pin_set);
    p->accept = xstrdup(req->accept);
    p->transform = req->stream ? NULL : req->transform;
    fe->buffered = p->transform != NULL;
    stream_setup(fe, req);
    p->nostore = req->nostore;
    p->local = req->local && req->transform;
    p->own_thread = p->local && req->own_thread;
    p->scope_key = xstrdup(req->auth_scope_key);
    p->auth_user = xstrdup(req->auth_user);
    p->auth_pass = xstrdup(req->auth_pass);
    if (req->head_digest) {
        p->head_digest = xstrdup(req->head_digest);
        p->head_phase = 1;
    }
    if (req->body && req->nostore) {
        p->body = malloc(req->body_len + 1);
        memcpy(p->body, req->body, req->body_len);
        p->body_len = req->body_len;
        p->body_type = xstrdup(req->body_type);
    }
    if (req->integrity) {
        const char *alg;
        if (larder_parse_integrity(req->integrity, &alg, p->want2, &p->want2_len) == 0) {
            p->md2_alg = EVP_get_digestbyname(alg);
            p->md2_name = alg;
            p->integrity = strdup(req->integrity);
        }
    }
    p->entry_flags = req->entry_flags;
    p->ttl = req->ttl;
    p->in_content_length = -1;
    p->started_ms = larder_now_ms();
    p->table_next = *bucket;
    *bucket = fe;
    atomic_fetch_add(&f->active, 1);
    if (p->local) {
        pthread_mutex_unlock(&f->mu);
        if (!p->own_thread || own_thread_start(f, fe) < 0)
            commit_enqueue(f, fe);
        *how = LARDER_FETCH_STARTED;
        return fe;
    }
    /* a held-off upstream is not contacted: the fetch fails on the curl thread like any other, so waiters, stale
     * answers and seed jobs see an ordinary failure */
    p->held = larder_upstreams_admit(f->upstreams, fe->proto, fe->url, fe->error, sizeof(fe->error)) < 0;
    p->queue_next = f->queue;
    f->queue = fe;
    pthread_mutex_unlock(&f->mu);
    curl_multi_wakeup(f->multi);
    *how = LARDER_FETCH_STARTED;
    return stream_pick(fe, req);
}

void larder_fetch_on_done(larder_fetch_t *fe, larder_fetch_done_cb cb, void *ctx)
{
    larder_fetcher_t *f = fe->priv->owner;
    pthread_mutex_lock(&f->mu);
    int st = atomic_load(&fe->state);
    if (st >= LARDER_FETCH_DONE) {
        pthread_mutex_unlock(&f->mu);
        cb(fe, ctx);
        return;
    }
    done_waiter_t *w = malloc(sizeof(*w));
    w->cb = cb;
    w->ctx = ctx;
    w->next = fe->priv->waiters;
    fe->priv->waiters = w;
    pthread_mutex_unlock(&f->mu);
}

int larder_fetch_detach(larder_fetch_t *fe, larder_fetch_done_cb cb, void *ctx)
{
    larder_fetcher_t *f = fe->priv->owner;
    struct larder_fetch_priv *p = fe->priv;
    int found = 0;
    pthread_mutex_lock(&f->mu);
    for (done_waiter_t **pp = &p->waiters; *pp; pp = &(*pp)->next)
        if ((*pp)->cb == cb && (*pp)->ctx == ctx) {
            done_waiter_t *w = *pp;
            *pp = w->next;
            free(w);
            found = 1;
            break;
        }
    /* nobody else: no other waiter, and no reference but the table's and the caller's (a client tailing the body
     * holds one). Only a transfer stops; a commit under way completes (its bytes are all there) */
    int side_read = 0;
    for (int i = 1; i < LARDER_STREAM_MAX_OUT; i++)
        side_read |= p->side[i] && (atomic_load(&p->side[i]->priv->refs) > 1 || p->side[i]->priv->waiters);
    if (found && !p->waiters && !side_read && atomic_load(&p->refs) == 2 && atomic_load(&fe->state) < LARDER_FETCH_DONE &&
        !p->local && !p->nostore) {
        atomic_store(&p->abandoned, 1);
        larder_info("fetch: %s abandoned: nobody waits for it any more", fe->url);
    }
    pthread_mutex_unlock(&f->mu);
    if (found)
        larder_fetch_release(fe);
    return found;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    larder_fetch_t *fe = ud;
    if (!atomic_load(&fe->priv->abandoned))
        return 0;
    snprintf(fe->error, sizeof(fe->error), "cancelled: nobody waits for it any more");
    return 1; /* aborts the transfer: FAILED, never stored */
}

int larder_fetcher_active(larder_fetcher_t *f) { return atomic_load(&f->active); }

int larder_fetcher_starved(larder_fetcher_t *f) { return atomic_load(&f->starved); }

/* ---- curl callbacks (fetch thread) ---- */

static char *header_value(const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return strndup(v, (size_t)(end - v));
}

static void publish_headers(larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    fe->status = p->in_headers_status;
    fe->content_length = p->in_content_length;
    /* a retried fetch (token auth, HEAD first) publishes again */
    free(fe->content_type);
    free(fe->etag);
    free(fe->last_modified);
    fe->content_type = p->in_content_type;
    fe->etag = p->in_etag;
    fe->last_modified = p->in_last_modified;
    p->in_content_type = p->in_etag = p->in_last_modified = NULL;
    fe->upstream_ms = larder_now_ms() - p->started_ms;
}

int64_t larder_parse_content_length(const char *v)
{
    int64_t val = -1;
    for (const char *s = v;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s < '0' || *s > '9')
            return -1;
        int64_t n = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (n > (INT64_MAX - 9) / 10)
                return -1;
            n = n * 10 + (*s - '0');
        }
        while (*s == ' ' || *s == '\t')
            s++;
        if (val >= 0 && n != val)
            return -1;
        val = n;
        if (!*s)
            return val;
        if (*s++ != ',')
            return -1;
    }
}

static int stream_open(larder_fetch_t *fe);
static size_t stream_body(larder_fetch_t *fe, const char *buf, size_t len);

/* Whether to reserve the announced length in the temp file as it is written (body_write, PREALLOC_STEP at a time,
 * so that the first bytes do not wait for a large fallocate): ext4 then writes into allocated blocks rather than
 * reserving them page by page, a fifth less time per byte. Not when it would take more than half of the free
 * space: a Content-Length is the upstream's word. */
static void prealloc_plan(larder_fetch_t *fe)
{
    struct statvfs sv;
    fe->priv->prealloc_to = 0;
    fe->priv->prealloc = fstatvfs(fe->fd, &sv) == 0 &&
                         (uint64_t)fe->content_length <= (uint64_t)sv.f_bavail * sv.f_frsize / 2;
}

/* before writing up to `upto`: reserve the next PREALLOC_STEP (best effort; without fallocate it goes without) */
static void prealloc_ahead(larder_fetch_t *fe, uint64_t upto)
{
    struct larder_fetch_priv *p = fe->priv;
    uint64_t cl = (uint64_t)fe->content_length;
    if (upto <= p->prealloc_to || p->prealloc_to >= cl)
        return;
    uint64_t to = upto + PREALLOC_STEP < cl ? upto + PREALLOC_STEP : cl;
    if (fallocate(fe->fd, FALLOC_FL_KEEP_SIZE, (off_t)p->prealloc_to, (off_t)(to - p->prealloc_to)) < 0) {
        if (errno != EOPNOTSUPP)
            larder_log(LARDER_LOG_DEBUG, "fetch: %s: fallocate: %s", fe->url, strerror(errno));
        p->prealloc = 0;
        return;
    }
    p->prealloc_to = to;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    larder_fetch_t *fe = ud;
    struct larder_fetch_priv *p = fe->priv;
    size_t len = size * n;
    char *v;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        const char *sp = memchr(buf, ' ', len);
        p->in_headers_status = sp ? atoi(sp + 1) : 0;
        p->in_content_length = -1;
        p->in_bad_length = 0;
        free(p->in_content_type);
        free(p->in_etag);
        free(p->in_last_modified);
        p->in_content_type = p->in_etag = p->in_last_modified = NULL;
    } else if ((v = header_value(buf, len, "content-length"))) {
        /* digits only; a list ("10, 10") or a repeated header must agree (RFC 9110 8.6). curl itself reads a
         * prefix ("10x00" as 10), so anything else fails the download rather than storing a short body */
        int64_t cl = larder_parse_content_length(v);
        if (cl < 0 || (p->in_content_length >= 0 && p->in_content_length != cl))
            p->in_bad_length = 1;
        else
            p->in_content_length = cl;
        free(v);
    } else if ((v = header_value(buf, len, "content-type"))) {
        free(p->in_content_type);
        p->in_content_type = v;
    } else if ((v = header_value(buf, len, "etag"))) {
        free(p->in_etag);
        p->in_etag = v;
    } else if ((v = header_value(buf, len, "last-modified"))) {
        free(p->in_last_modified);
        p->in_last_modified = v;
    } else if ((v = header_value(buf, len, "www-authenticate"))) {
        free(p->in_www_auth);
        p->in_www_auth = v;
    } else if ((v = header_value(buf, len, "docker-content-digest"))) {
        free(p->in_dcd);
        p->in_dcd = v;
    } else if ((len == 2 && buf[0] == '\r') || (len == 1 && buf[0] == '\n')) {
        /* end of one response's headers; redirects are followed by curl, a 200 starts the stream */
        int s = p->in_headers_status;
        if (s == 200 && !p->head_phase && atomic_load(&fe->state) == LARDER_FETCH_PENDING) {
            if (p->in_bad_length) {
                snprintf(fe->error, sizeof(fe->error), "upstream sent a malformed or contradictory Content-Length");
                return 0; /* aborts the transfer: FAILED, never stored */
            }
            if (fe->fd < 0) {
                int fd = larder_store_tmp_create(p->owner->store, p->tmp_path, sizeof(p->tmp_path));
                if (fd < 0) {
                    snprintf(fe->error, sizeof(fe->error), "cannot create temp file: %s", strerror(-fd));
                    return 0; /* aborts the transfer */
                }
                fe->fd = fd;
            }
            publish_headers(fe);
            if (!p->stream && fe->content_length >= (int64_t)WBUF_SIZE)
                prealloc_plan(fe);
            if (p->stream && stream_open(fe) < 0)
                return 0; /* aborts the transfer; fe->error says why */
            atomic_store(&fe->state, LARDER_FETCH_STREAMING);
            p->owner->wake(p->owner->wake_ctx);
        }
    }
    return len;
}

/* ---- the hash thread: hashes what the curl thread wrote, reading it back from the temp file ---- */

/* from now on the hash thread hashes fe's bytes from `from` (md and md2 hold everything before it) */
static void hash_attach(larder_fetcher_t *f, larder_fetch_t *fe, uint64_t from)
{
    struct larder_fetch_priv *p = fe->priv;
    larder_fetch_retain(fe); /* the list's reference */
    pthread_mutex_lock(&f->hmu);
    atomic_store(&p->hashed, from);
    p->hashing = 1;
    p->hash_next = NULL;
    larder_fetch_t **pp = &f->hash_head;
    while (*pp)
        pp = &(*pp)->priv->hash_next;
    *pp = fe;
    pthread_mutex_unlock(&f->hmu);
}

/* take fe off the hash thread's list, once that thread is not reading it (any thread; a no-op when not on it) */
static void hash_detach(larder_fetcher_t *f, larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    pthread_mutex_lock(&f->hmu);
    int was = p->hashing;
    if (was) {
        while (f->hash_busy == fe)
            pthread_cond_wait(&f->hdone, &f->hmu);
        for (larder_fetch_t **pp = &f->hash_head; *pp; pp = &(*pp)->priv->hash_next) {
            if (*pp == fe) {
                *pp = p->hash_next;
                break;
            }
        }
        p->hashing = 0;
    }
    pthread_mutex_unlock(&f->hmu);
    if (was)
        larder_fetch_release(fe);
}

/* wait until the hash thread has hashed all of fe's body (written is final), then take it off the list;
 * 0, or -1 when the temp file could not be read back (fe->error says why) */
static int hash_wait(larder_fetcher_t *f, larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    uint64_t w = atomic_load(&fe->written);
    pthread_mutex_lock(&f->hmu);
    p->hash_waited = 1;
    pthread_cond_signal(&f->hcond); /* it may have put fe aside while the curl thread was starved */
    while (p->hashing && !p->hash_err && atomic_load(&p->hashed) < w)
        pthread_cond_wait(&f->hdone, &f->hmu);
    int err = p->hash_err;
    pthread_mutex_unlock(&f->hmu);
    hash_detach(f, fe);
    if (err) {
        snprintf(fe->error, sizeof(fe->error), "reading the temp file back to hash it failed: %s", strerror(err));
        return -1;
    }
    return 0;
}

static void *hasher_main(void *arg)
{
    larder_fetcher_t *f = arg;
    pthread_setname_np(pthread_self(), "larder-hash");
    char *buf = malloc(HASH_READ);
    pthread_mutex_lock(&f->hmu);
    for (;;) {
        larder_fetch_t *fe = NULL, **pp;
        int starved = atomic_load(&f->starved), put_aside = 0;
        for (pp = &f->hash_head; *pp; pp = &(*pp)->priv->hash_next) {
            struct larder_fetch_priv *q = (*pp)->priv;
            if (!q->hash_err && atomic_load(&q->hashed) < atomic_load(&(*pp)->written)) {
                if (starved && !q->hash_waited && !q->sha256 && !q->md2_name) {
                    /* nobody waits for this digest (no client's last byte: there is none to verify), and the
                     * transfer still running needs the CPU more: hashed once it is over */
                    put_aside = 1;
                    continue;
                }
                fe = *pp;
                break;
            }
        }
        if (!fe) {
            if (f->hash_stop)
                break;
            if (put_aside) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += STARVE_INTERVAL_MS * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&f->hcond, &f->hmu, &ts);
            } else {
                pthread_cond_wait(&f->hcond, &f->hmu);
            }
            continue;
        }
        struct larder_fetch_priv *p = fe->priv;
        /* to the end of the list, so that a fast download does not keep the others waiting */
        if (p->hash_next) {
            *pp = p->hash_next;
            larder_fetch_t **tail = pp;
            while (*tail)
                tail = &(*tail)->priv->hash_next;
            *tail = fe;
            p->hash_next = NULL;
        }
        f->hash_busy = fe;
        uint64_t from = atomic_load(&p->hashed), to = atomic_load(&fe->written);
        size_t n = to - from > HASH_READ ? HASH_READ : (size_t)(to - from);
        pthread_mutex_unlock(&f->hmu);
        int err = buf ? 0 : ENOMEM;
        size_t got = 0;
        while (!err && got < n) {
            ssize_t r = pread(fe->fd, buf + got, n - got, (off_t)(from + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                err = r < 0 ? errno : EIO; /* shorter than what was written: the file changed under us */
                break;
            }
            got += (size_t)r;
        }
        if (!err) {
            EVP_DigestUpdate(p->md, buf, n);
            if (p->md2)
                EVP_DigestUpdate(p->md2, buf, n);
        }
        pthread_mutex_lock(&f->hmu);
        f->hash_busy = NULL;
        if (err)
            p->hash_err = err;
        else
            atomic_store(&p->hashed, from + n);
        pthread_cond_broadcast(&f->hdone);
    }
    pthread_mutex_unlock(&f->hmu);
    free(buf);
    return NULL;
}

/* ---- the body: written to the temp file in WBUF_SIZE pieces, hashed, published to the tailers ---- */

/* write len bytes at `written`, hash them (here or on the hash thread), publish them; 0, or -1 (fe->error) */
static int body_write(larder_fetch_t *fe, const char *buf, size_t len)
{
    struct larder_fetch_priv *p = fe->priv;
    larder_fetcher_t *f = p->owner;
    uint64_t w = atomic_load(&fe->written);
    if (p->prealloc)
        prealloc_ahead(fe, w + len);
    size_t off = 0;
    while (off < len) {
        ssize_t r = pwrite(fe->fd, buf + off, len - off, (off_t)(w + off));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            p->write_failed_errno = errno;
            snprintf(fe->error, sizeof(fe->error), "writing the temp file failed: %s", strerror(errno));
            return -1;
        }
        off += (size_t)r;
    }
    if (!p->hashing && w + len > HASH_INLINE_BYTES)
        hash_attach(f, fe, w);
    if (!p->hashing) {
        EVP_DigestUpdate(p->md, buf, len);
        if (p->md2)
            EVP_DigestUpdate(p->md2, buf, len);
    }
    atomic_store(&fe->written, w + len);
    if (p->hashing) { /* under the mutex: the hash thread looks at `written` under it before it sleeps */
        pthread_mutex_lock(&f->hmu);
        pthread_cond_signal(&f->hcond);
        pthread_mutex_unlock(&f->hmu);
    }
    /* one wake-up per WAKE_BYTES, or at the end of this loop turn (fetch_thread): not one per chunk, which costs
     * every worker a pipe read and every tailer a send of a few KB */
    f->wake_bytes += len;
    if (w == 0 || f->wake_bytes >= WAKE_BYTES) {
        f->wake_bytes = 0;
        f->wake_due = 0;
        f->wake(f->wake_ctx);
    } else {
        f->wake_due = 1;
    }
    return 0;
}

/* write out fe's partial piece; 0, or -1 (fe->error) */
static int wbuf_flush(larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    if (!p->wbuf_len)
        return 0;
    size_t n = p->wbuf_len;
    p->wbuf_len = 0;
    return body_write(fe, p->wbuf, n);
}

/* the end of fe's transfer (curl thread): its last piece written, off the pending list, the piece freed */
static int wbuf_end(larder_fetcher_t *f, larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    int r = wbuf_flush(fe);
    for (larder_fetch_t **pp = &f->wbuf_pending; *pp; pp = &(*pp)->priv->wbuf_next) {
        if (*pp == fe) {
            *pp = p->wbuf_next;
            break;
        }
    }
    p->wbuf_next = NULL;
    p->wbuf_listed = 0;
    free(p->wbuf);
    p->wbuf = NULL;
    return r < 0 || p->write_failed_errno ? -1 : 0;
}

/* end of a loop turn (curl thread): write the pieces held WBUF_HOLD_MS; returns the ms until the next is due, or -1 */
static long wbuf_tick(larder_fetcher_t *f)
{
    if (!f->wbuf_pending)
        return -1;
    uint64_t now = larder_mono_ms();
    long next = -1;
    for (larder_fetch_t **pp = &f->wbuf_pending; *pp;) {
        larder_fetch_t *fe = *pp;
        struct larder_fetch_priv *p = fe->priv;
        if (p->wbuf_len && now - p->wbuf_since_ms < WBUF_HOLD_MS) {
            long due = (long)(WBUF_HOLD_MS - (now - p->wbuf_since_ms));
            if (next < 0 || due < next)
                next = due;
            pp = &p->wbuf_next;
            continue;
        }
        if (p->wbuf_len)
            wbuf_flush(fe); /* a failure is kept in write_failed_errno: the next callback or finish() fails it */
        *pp = p->wbuf_next; /* written (or empty): off the list until its next partial piece */
        p->wbuf_next = NULL;
        p->wbuf_listed = 0;
    }
    return next;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
    larder_fetch_t *fe = ud;
    struct larder_fetch_priv *p = fe->priv;
    size_t len = size * n, total = len;
    if (atomic_load(&fe->state) != LARDER_FETCH_STREAMING)
        return len; /* body of an error or 304 response: not stored */
    if (p->stream)
        return stream_body(fe, buf, len);
    if (p->write_failed_errno)
        return 0; /* a piece written at the end of a loop turn failed (fe->error says why) */
    uint64_t have = atomic_load(&fe->written) + p->wbuf_len;
    if (fe->content_length >= 0 && have + len > (uint64_t)fe->content_length) {
        snprintf(fe->error, sizeof(fe->error), "upstream sent more than its Content-Length");
        return 0;
    }
    while (len > 0) {
        /* the first bytes of a body go out at once (time to first byte); a chunk of a whole piece needs no copy */
        if (p->wbuf_len == 0 && (have == 0 || len >= WBUF_SIZE))
            return body_write(fe, buf, len) < 0 ? 0 : total;
        if (!p->wbuf) { /* no larger than the rest of a body of known length (a small one's is small) */
            uint64_t rest = fe->content_length >= 0 ? (uint64_t)fe->content_length - have : WBUF_SIZE;
            p->wbuf_size = rest < WBUF_SIZE ? (size_t)rest : WBUF_SIZE;
            if (!(p->wbuf = malloc(p->wbuf_size)))
                return body_write(fe, buf, len) < 0 ? 0 : total;
        }
        size_t k = p->wbuf_size - p->wbuf_len < len ? p->wbuf_size - p->wbuf_len : len;
        if (p->wbuf_len == 0) {
            p->wbuf_since_ms = larder_mono_ms();
            if (!p->wbuf_listed) {
                p->wbuf_listed = 1;
                p->wbuf_next = p->owner->wbuf_pending;
                p->owner->wbuf_pending = fe;
            }
        }
        memcpy(p->wbuf + p->wbuf_len, buf, k);
        p->wbuf_len += k;
        buf += k;
        len -= k;
        if (p->wbuf_len == p->wbuf_size && wbuf_flush(fe) < 0)
            return 0;
    }
    return total;
}

/* ---- hosts that do not answer ---- */

static void origin_of(const char *url, char *out, size_t n)
{
    const char *s = strstr(url, "://");
    size_t l = s ? (size_t)(s + 3 - url) + strcspn(s + 3, "/?#") : strlen(url);
    if (l >= n)
        l = n - 1;
    memcpy(out, url, l);
    out[l] = 0;
}

static void host_mark(larder_fetcher_t *f, const char *url, int down)
{
    char o[300];
    origin_of(url, o, sizeof(o));
    uint64_t now = larder_now();
    pthread_mutex_lock(&f->mu);
    size_t slot = sizeof(f->down) / sizeof(f->down[0]), empty = slot;
    for (size_t i = 0; i < sizeof(f->down) / sizeof(f->down[0]); i++) {
        if (!strcmp(f->down[i].origin, o))
            slot = i;
        else if (empty == sizeof(f->down) / sizeof(f->down[0]) && f->down[i].until <= now)
            empty = i;
    }
    if (down) {
        if (slot == sizeof(f->down) / sizeof(f->down[0]))
            slot = empty;
        if (slot < sizeof(f->down) / sizeof(f->down[0])) {
            if (f->down[slot].until <= now)
                larder_warn("fetch: %s does not answer: stale entries of it are served without asking for %d s", o,
                            (int)(f->cfg->connect_timeout * 3 + 15));
            snprintf(f->down[slot].origin, sizeof(f->down[slot].origin), "%s", o);
            f->down[slot].until = now + f->cfg->connect_timeout * 3 + 15;
        }
    } else if (slot < sizeof(f->down) / sizeof(f->down[0])) {
        f->down[slot].until = 0;
        f->down[slot].origin[0] = 0;
    }
    pthread_mutex_unlock(&f->mu);
}

int larder_fetcher_host_down(larder_fetcher_t *f, const char *url)
{
    char o[300];
    origin_of(url, o, sizeof(o));
    uint64_t now = larder_now();
    int r = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < sizeof(f->down) / sizeof(f->down[0]) && !r; i++)
        r = f->down[i].until > now && !strcmp(f->down[i].origin, o);
    pthread_mutex_unlock(&f->mu);
    return r;
}

/* ---- registry bearer tokens (curl thread only) ---- */

static const char *token_get(larder_fetcher_t *f, const char *key)
{
    uint64_t now = larder_now();
    for (size_t i = 0; i < f->ntokens; i++)
        if (strcmp(f->tokens[i].key, key) == 0)
            return f->tokens[i].expires > now ? f->tokens[i].token : NULL;
    return NULL;
}

static void token_put(larder_fetcher_t *f, const char *key, const char *token, uint64_t ttl)
{
    size_t slot = f->ntokens;
    for (size_t i = 0; i < f->ntokens; i++)
        if (strcmp(f->tokens[i].key, key) == 0 || f->tokens[i].expires <= larder_now())
            slot = i;
    if (slot == f->ntokens) {
        if (f->ntokens < sizeof(f->tokens) / sizeof(f->tokens[0]))
            f->ntokens++;
        else
            slot = (size_t)(larder_now() % f->ntokens); /* full: replace one */
    }
    if (slot < f->ntokens) {
        free(f->tokens[slot].key);
        free(f->tokens[slot].token);
        f->tokens[slot].key = strdup(key);
        f->tokens[slot].token = strdup(token);
        /* a little before the registry's own expiry */
        f->tokens[slot].expires = larder_now() + (ttl > 30 ? ttl - 10 : ttl);
    }
}

/* the value of name="value" (or name=value) in a WWW-Authenticate header */
static int challenge_param(const char *h, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *p = h; (p = strcasestr(p, name)) != NULL; p += nl) {
        if ((p != h && p[-1] != ' ' && p[-1] != ',') || p[nl] != '=')
            continue;
        const char *v = p + nl + 1, *e;
        if (*v == '"') {
            v++;
            e = strchr(v, '"');
        } else {
            e = v + strcspn(v, ", ");
        }
        if (!e || (size_t)(e - v) >= outlen)
            return -1;
        memcpy(out, v, (size_t)(e - v));
        out[e - v] = 0;
        return 0;
    }
    return -1;
}

static size_t collect(char *buf, size_t size, size_t n, void *ud)
{
    char **acc = ud;
    size_t len = size * n, old = *acc ? strlen(*acc) : 0;
    if (old + len > (size_t)64 * 1024)
        return 0;
    char *nb = realloc(*acc, old + len + 1);
    if (!nb)
        return 0;
    memcpy(nb + old, buf, len);
    nb[old + len] = 0;
    *acc = nb;
    return len;
}

/* Answer a Bearer challenge: GET realm?service=..&scope=.. (Basic credentials when configured). Blocking, with short
 * timeouts; runs on the curl thread at most once per expired token. 0 and the token cached, or -1. */
static int fetch_token(larder_fetcher_t *f, larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    char realm[1024], service[256] = "", scope[512] = "";
    if (!p->in_www_auth || strncasecmp(p->in_www_auth, "Bearer ", 7) != 0 ||
        challenge_param(p->in_www_auth, "realm", realm, sizeof(realm)) < 0 ||
        !(strncmp(realm, "https://", 8) == 0 || strncmp(realm, "http://", 7) == 0))
        return -1;
    if (larder_fetcher_host_down(f, realm)) {
        snprintf(fe->error, sizeof(fe->error), "registry token service %.200s does not answer", realm);
        return -1;
    }
    challenge_param(p->in_www_auth, "service", service, sizeof(service));
    challenge_param(p->in_www_auth, "scope", scope, sizeof(scope));
    CURL *e = curl_easy_init();
    if (!e)
        return -1;
    char *es = curl_easy_escape(e, service, 0), *sc = curl_easy_escape(e, scope, 0);
    char url[2200];
    snprintf(url, sizeof(url), "%s%s%s%s%s%s", realm, strchr(realm, '?') ? "&" : "?", service[0] ? "service=" : "",
             service[0] ? es : "", scope[0] ? (service[0] ? "&scope=" : "scope=") : "", scope[0] ? sc : "");
    curl_free(es);
    curl_free(sc);
    char *body = NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)f->cfg->connect_timeout);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "larder/0.1");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    if (f->cfg->upstream_proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, f->cfg->upstream_proxy);
    if (f->cfg->upstream_ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, f->cfg->upstream_ca);
    if (p->auth_user && p->auth_pass) {
        curl_easy_setopt(e, CURLOPT_USERNAME, p->auth_user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, p->auth_pass);
    }
    long code = 0;
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_OPERATION_TIMEDOUT)
        host_mark(f, realm, 1);
    int r = -1;
    if (rc == CURLE_OK && code == 200 && body) {
        /* {"token": "...", "access_token": "...", "expires_in": 300} */
        char tok[8192];
        const char *t = strstr(body, "\"token\"");
        if (!t)
            t = strstr(body, "\"access_token\"");
        const char *q = t ? strchr(strchr(t, ':') ? strchr(t, ':') : t, '"') : NULL;
        const char *qe = q ? strchr(q + 1, '"') : NULL;
        if (q && qe && (size_t)(qe - q - 1) < sizeof(tok) && qe - q - 1 > 0) {
            memcpy(tok, q + 1, (size_t)(qe - q - 1));
            tok[qe - q - 1] = 0;
            int clean = 1;
            for (const char *c = tok; *c && clean; c++)
                clean = (unsigned char)*c > 0x20 && *c != '"' && *c != '\\';
            const char *ex = strstr(body, "\"expires_in\"");
            uint64_t ttl = 60; /* the distribution spec's default */
            if (ex && strchr(ex, ':'))
                ttl = strtoull(strchr(ex, ':') + 1, NULL, 10);
            if (ttl < 10)
                ttl = 60;
            if (clean) {
                token_put(f, p->scope_key, tok, ttl);
                r = 0;
            }
        }
    }
    if (r < 0)
        snprintf(fe->error, sizeof(fe->error), "registry token from %.200s failed (HTTP %ld)", realm, code);
    free(body);
    return r;
}

/* ---- fetch thread ---- */

static void setup_easy(larder_fetcher_t *f, larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    const larder_config_t *c = f->cfg;
    CURL *e = curl_easy_init();
    p->easy = e;
    p->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(p->md, larder_sha256_md(), NULL);
    if (p->md2_alg && strcmp(p->md2_name, "SHA256") != 0) { /* an SRI sha256 is checked against md's digest */
        p->md2 = EVP_MD_CTX_new();
        EVP_DigestInit_ex(p->md2, p->md2_alg, NULL);
    }
    curl_easy_setopt(e, CURLOPT_URL, fe->url);
    p->curl_error[0] = 0;
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, p->curl_error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, fe);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "larder/0.1");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)c->connect_timeout);
    /* idle timeout: abort when fewer than 1 byte/s arrives for idle_timeout seconds */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)c->idle_timeout);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, fe);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, fe);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, fe);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    if (c->max_object_size)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_object_size);
    if (c->upstream_proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, c->upstream_proxy);
    if (c->upstream_ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->upstream_ca);
    char hdr[1024];
    if (p->inm) {
        snprintf(hdr, sizeof(hdr), "If-None-Match: %s", p->inm);
        p->headers = curl_slist_append(p->headers, hdr);
    }
    if (p->accept) { /* the HEAD of a revalidation asks for the same media types as the GET */
        snprintf(hdr, sizeof(hdr), "Accept: %s", p->accept);
        p->headers = curl_slist_append(p->headers, hdr);
    }
    if (p->ims) {
        snprintf(hdr, sizeof(hdr), "If-Modified-Since: %s", p->ims);
        p->headers = curl_slist_append(p->headers, hdr);
    }
    if (p->body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, p->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body_len);
        snprintf(hdr, sizeof(hdr), "Content-Type: %s", p->body_type ? p->body_type : "application/octet-stream");
        p->headers = curl_slist_append(p->headers, hdr);
        p->headers = curl_slist_append(p->headers, "Expect:");
    }
    if (p->scope_key) {
        const char *tok = token_get(f, p->scope_key);
        if (tok) {
            char *ah = malloc(strlen(tok) + 32);
            sprintf(ah, "Authorization: Bearer %s", tok); // NOLINT(clang-analyzer-security.insecureAPI.*): sized
            p->headers = curl_slist_append(p->headers, ah);
            free(ah);
        }
    }
    if (p->head_phase)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (p->headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->headers);
    curl_multi_add_handle(f->multi, e);
}

static int stream_finish_body(larder_fetcher_t *f, larder_fetch_t *fe);

/* verify and commit; returns the final state */
static int finish_body(larder_fetcher_t *f, larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    uint64_t w = atomic_load(&fe->written);
    unsigned char raw[32];
    unsigned int rawlen = 0;
    if (p->stream)
        return stream_finish_body(f, fe);
    if (p->local)
        goto transform; /* nothing was downloaded: nothing to verify */
    if (hash_wait(f, fe) < 0)
        return LARDER_FETCH_FAILED;
    EVP_DigestFinal_ex(p->md, raw, &rawlen);
    larder_hex(raw, 32, fe->digest);
    if (fe->content_length >= 0 && (uint64_t)fe->content_length != w) {
        snprintf(fe->error, sizeof(fe->error), "truncated: %" PRIu64 " of %" PRId64 " bytes", w, fe->content_length);
        return LARDER_FETCH_FAILED;
    }
    if (p->sha256 && strcmp(p->sha256, fe->digest) != 0) {
        snprintf(fe->error, sizeof(fe->error), "sha256 mismatch: expected %.16s..., upstream sent %.16s...", p->sha256,
                 fe->digest);
        return LARDER_FETCH_FAILED;
    }
    if (p->md2) {
        unsigned char raw2[64];
        unsigned int len2 = 0;
        EVP_DigestFinal_ex(p->md2, raw2, &len2);
        if (len2 != p->want2_len || memcmp(raw2, p->want2, len2) != 0) {
            snprintf(fe->error, sizeof(fe->error), "integrity mismatch: expected %.40s...", p->integrity);
            return LARDER_FETCH_FAILED;
        }
    } else if (p->md2_name && strcmp(p->md2_name, "SHA256") == 0 &&
               (p->want2_len != 32 || memcmp(raw, p->want2, 32) != 0)) { /* setup_easy reuses md for it */
        snprintf(fe->error, sizeof(fe->error), "integrity mismatch: expected %.40s...", p->integrity);
        return LARDER_FETCH_FAILED;
    }
    if (!fe->buffered && w >= EARLY_RELEASE_BYTES) {
        /* complete and verified: its readers may send the last byte now; the fsync of a large body below must
         * not hold them up. Crash safety is the store's: nothing is an entry before fsync, rename and commit.
         * A smaller body keeps the stricter order (a client that has all of it finds it stored): its commit is
         * cheap, and a script that fetches a file and then seeds or inspects it relies on that */
        atomic_store(&fe->verified, 1);
        f->wake(f->wake_ctx);
    }
    unsigned stall = atomic_exchange(&f->commit_stall, 0);
    if (stall) { /* LARDER_TEST_HOOKS only: a commit this slow (a large fsync on a busy disk) */
        larder_warn("test hook: the commit of %s waits %u s after its verification", fe->url, stall);
        struct timespec ts = {(time_t)stall, 0};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    if (p->nostore) { /* a pass-through answer: complete for its readers, then gone */
        fe->uncached = 1;
        unlink(p->tmp_path);
        p->tmp_path[0] = 0;
        return LARDER_FETCH_DONE;
    }
transform:;
    char *ct = NULL;
    if (p->transform) {
        /* rewrite into a second temp file; what is stored (and hashed) is the rewritten document */
        char out_path[4096];
        int ofd = larder_store_tmp_create(f->store, out_path, sizeof(out_path));
        if (ofd < 0) {
            snprintf(fe->error, sizeof(fe->error), "cannot create temp file: %s", strerror(-ofd));
            return LARDER_FETCH_FAILED;
        }
        char err[200] = "";
        struct stat sb;
        if (p->transform(f->store, fe, fe->fd, w, ofd, &ct, err, sizeof(err)) < 0 || fstat(ofd, &sb) < 0 ||
            larder_sha256_file(out_path, fe->digest) < 0) {
            if (p->own_thread) /* its own words: "git fetch of ... failed: ..." */
                snprintf(fe->error, sizeof(fe->error), "%s", err[0] ? err : "the transform failed");
            else
                snprintf(fe->error, sizeof(fe->error), "rewriting the upstream document failed: %s", err);
            close(ofd);
            unlink(out_path);
            free(ct);
            return LARDER_FETCH_FAILED;
        }
        if (p->tmp_path[0])
            unlink(p->tmp_path);
        memcpy(p->tmp_path, out_path, sizeof(out_path));
        if (fe->fd >= 0)
            close(fe->fd);
        fe->fd = ofd;
        w = (uint64_t)sb.st_size;
    }
    if (fsync(fe->fd) < 0) {
        snprintf(fe->error, sizeof(fe->error), "fsync failed: %s", strerror(errno));
        free(ct);
        return LARDER_FETCH_FAILED;
    }
    larder_entry_t e = {0};
    memcpy(e.digest, fe->digest, LARDER_SHA256_HEX);
    e.size = w;
    e.fetched_at = larder_now();
    e.fresh_until = e.fetched_at + p->ttl;
    e.flags = p->entry_flags;
    e.external = p->external;
    e.content_type = ct ? ct : fe->content_type;
    e.url = fe->url;
    e.etag = fe->etag;
    e.last_modified = fe->last_modified;
    int r = larder_store_commit(f->store, fe->proto, fe->key, p->tmp_path, &e, p->pin_set);
    free(ct);
    if (r == 0 && p->md2 && !p->transform) /* verified above: later requests with this integrity need no re-hash */
        record_sri(f->store, fe->proto, p->md2_name, fe->digest, p->want2, p->want2_len);
    if (r < 0) {
        /* the body is complete and verified: waiting clients still get it, it is just not kept */
        fe->uncached = 1;
        snprintf(fe->error, sizeof(fe->error), "not cached: %s",
                 r == -ENOSPC ? "no room within quota or disk watermark" : strerror(-r));
        larder_warn("fetch: %s: %s", fe->url, fe->error);
    }
    p->tmp_path[0] = 0;
    return LARDER_FETCH_DONE;
}

static void complete(larder_fetcher_t *f, larder_fetch_t *fe, int final);

/* one own_thread fetch: what a commit thread does for a fetch, on a detached thread */
static void *own_thread_main(void *arg)
{
    larder_fetch_t *fe = arg;
    larder_fetcher_t *f = fe->priv->owner;
    complete(f, fe, finish_body(f, fe));
    pthread_mutex_lock(&f->cmu);
    f->own_running--;
    pthread_cond_broadcast(&f->own_done);
    pthread_mutex_unlock(&f->cmu);
    return NULL;
}

/* start fe's transform on a thread of its own; 0, or -1 when no thread could be made */
static int own_thread_start(larder_fetcher_t *f, larder_fetch_t *fe)
{
    pthread_attr_t attr;
    pthread_t tid;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&f->cmu);
    f->own_running++;
    int r = pthread_create(&tid, &attr, own_thread_main, fe);
    if (r != 0)
        f->own_running--;
    pthread_mutex_unlock(&f->cmu);
    pthread_attr_destroy(&attr);
    if (r != 0)
        larder_warn("fetch: cannot start a thread for %s (%s); it waits for a commit thread", fe->key, strerror(r));
    return r == 0 ? 0 : -1;
}

int larder_fetch_cancelled(const larder_fetch_t *fe) { return atomic_load(&fe->priv->owner->stop); }

int larder_fetch_by_job(const larder_fetch_t *fe) { return fe->priv->pin_set != NULL; }

void larder_fetcher_set_upstreams(larder_fetcher_t *f, larder_upstreams_t *u) { f->upstreams = u; }

void larder_fetch_set_external(const larder_fetch_t *fe, uint64_t bytes) { fe->priv->external = bytes; }

static void *commit_thread(void *arg)
{
    larder_fetcher_t *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->cmu);
        while (!f->commit_head && !f->commit_stop)
            pthread_cond_wait(&f->ccond, &f->cmu);
        larder_fetch_t *fe = f->commit_head;
        if (!fe) { /* stopping, and nothing left to commit */
            pthread_mutex_unlock(&f->cmu);
            return NULL;
        }
        f->commit_head = fe->priv->queue_next;
        if (!f->commit_head)
            f->commit_tail = NULL;
        pthread_mutex_unlock(&f->cmu);
        complete(f, fe, finish_body(f, fe));
    }
}

/* the upstream's health (upstreams.h): an answer below 500 is a success; no answer at all (no connection, DNS, TLS,
 * timeout before a status) counts towards its hold-off; a 5xx or a body broken off is a failure that does not */
static void record_outcome(larder_fetcher_t *f, larder_fetch_t *fe, CURLcode res, long code)
{
    char why[300];
    if (!f->upstreams)
        return;
    if (res == CURLE_ABORTED_BY_CALLBACK && atomic_load(&fe->priv->abandoned)) { /* cancelled by us */
        if (code > 0 && code < 500) /* the upstream had answered */
            larder_upstreams_outcome(f->upstreams, fe->proto, fe->url, LARDER_UPSTREAM_OK, NULL);
        return;
    }
    if (res == CURLE_OK && code > 0 && code < 500) {
        larder_upstreams_outcome(f->upstreams, fe->proto, fe->url, LARDER_UPSTREAM_OK, NULL);
    } else if (res == CURLE_OK || code > 0) {
        if (res == CURLE_OK)
            snprintf(why, sizeof(why), "upstream answered %ld", code);
        else
            snprintf(why, sizeof(why), "%s (after status %ld)", curl_easy_strerror(res), code);
        larder_upstreams_outcome(f->upstreams, fe->proto, fe->url, LARDER_UPSTREAM_FAILED, why);
    } else if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST || res == CURLE_COULDNT_RESOLVE_PROXY ||
               res == CURLE_OPERATION_TIMEDOUT || res == CURLE_SSL_CONNECT_ERROR || res == CURLE_PEER_FAILED_VERIFICATION ||
               res == CURLE_GOT_NOTHING || res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR) {
        larder_upstreams_outcome(f->upstreams, fe->proto, fe->url, LARDER_UPSTREAM_UNREACHABLE,
                                 fe->error[0]           ? fe->error
                                 : fe->priv->curl_error[0] ? fe->priv->curl_error
                                                         : curl_easy_strerror(res));
    } /* other errors are ours (a full disk, max_object_size, stopping): they say nothing of the upstream */
}

static void finish(larder_fetcher_t *f, larder_fetch_t *fe, CURLcode res)
{
    struct larder_fetch_priv *p = fe->priv;
    int final;
    long code = 0;
    /* the transfer is over: its last piece goes to the temp file before anything looks at `written` */
    int write_failed = wbuf_end(f, fe) < 0;
    curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &code);
    if (atomic_load(&fe->state) == LARDER_FETCH_PENDING)
        publish_headers(fe);
    fe->status = (int)code;
    if (code > 0)
        host_mark(f, fe->url, 0);
    else if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST || res == CURLE_OPERATION_TIMEDOUT ||
             res == CURLE_COULDNT_RESOLVE_PROXY)
        host_mark(f, fe->url, 1);
    record_outcome(f, fe, res, code);
    int retry = 0;
    if (res == CURLE_OK && code == 401 && p->scope_key && !p->auth_retried && atomic_load(&fe->state) ==
                                                                                   LARDER_FETCH_PENDING) {
        p->auth_retried = 1;
        retry = fetch_token(f, fe) == 0;
    } else if (res == CURLE_OK && p->head_phase) {
        char want[90];
        snprintf(want, sizeof(want), "sha256:%s", p->head_digest);
        if ((code == 200 && p->in_dcd && strcmp(p->in_dcd, want) == 0) || code == 304) {
            /* the tag still names the manifest we have: no GET (a HEAD is not a pull) */
            larder_store_refresh(f->store, fe->proto, fe->key, larder_now() + p->ttl, NULL, NULL);
            curl_multi_remove_handle(f->multi, p->easy);
            curl_easy_cleanup(p->easy);
            p->easy = NULL;
            complete(f, fe, LARDER_FETCH_NOT_MODIFIED);
            return;
        }
        p->head_phase = 0; /* changed, or no digest: fetch it */
        free(p->inm);
        free(p->ims);
        p->inm = p->ims = NULL;
        retry = 1;
    }
    if (retry) {
        curl_multi_remove_handle(f->multi, p->easy);
        curl_easy_cleanup(p->easy);
        p->easy = NULL;
        curl_slist_free_all(p->headers);
        p->headers = NULL;
        if (p->md)
            EVP_MD_CTX_free(p->md);
        p->md = NULL;
        if (p->md2)
            EVP_MD_CTX_free(p->md2);
        p->md2 = NULL;
        free(p->in_www_auth);
        p->in_www_auth = NULL;
        fe->status = 0;
        setup_easy(f, fe);
        return;
    }
    if (res == CURLE_OK && write_failed) {
        final = LARDER_FETCH_FAILED; /* fe->error says what the write met */
    } else if (res != CURLE_OK) {
        final = LARDER_FETCH_FAILED;
        if (!fe->error[0])
            snprintf(fe->error, sizeof(fe->error), "%s", curl_easy_strerror(res));
        if (res == CURLE_FILESIZE_EXCEEDED)
            snprintf(fe->error, sizeof(fe->error), "object larger than max_object_size");
    } else if (code == 304 && (p->inm || p->ims)) {
        final = LARDER_FETCH_NOT_MODIFIED;
        larder_store_refresh(f->store, fe->proto, fe->key, larder_now() + p->ttl, fe->etag, fe->last_modified);
        for (int i = 1; i < LARDER_STREAM_MAX_OUT; i++) /* every output of a streaming transform is as fresh */
            if (p->side[i])
                larder_store_refresh(f->store, fe->proto, p->side[i]->key, larder_now() + p->ttl, fe->etag,
                                     fe->last_modified);
    } else if (code == 200 && atomic_load(&fe->state) == LARDER_FETCH_STREAMING) {
        /* the transfer is over: hand the body to a commit thread */
        curl_multi_remove_handle(f->multi, p->easy);
        curl_easy_cleanup(p->easy);
        p->easy = NULL;
        curl_slist_free_all(p->headers);
        p->headers = NULL;
        uint64_t w = atomic_load(&fe->written);
        if (!fe->buffered && !p->stream && !p->sha256 && !p->md2_name && w >= EARLY_RELEASE_BYTES &&
            (fe->content_length < 0 || (uint64_t)fe->content_length == w)) {
            /* nothing to verify but its length, which is right: its readers may send the last byte now, while
             * the hash thread finishes the digest it is stored under (finish_body). Not a streaming transform's
             * output: its last bytes are written on the commit thread (stream_finish_body) */
            atomic_store(&fe->verified, 1);
            f->wake(f->wake_ctx);
        }
        commit_enqueue(f, fe);
        return;
    } else {
        final = LARDER_FETCH_FAILED;
        snprintf(fe->error, sizeof(fe->error), "upstream answered %ld", code);
    }
    complete(f, fe, final);
}

static void stream_complete_sides(larder_fetcher_t *f, larder_fetch_t *fe, int final);

/* the end of every fetch: final state, metrics, waiters (on the curl thread or a commit thread) */
static void complete(larder_fetcher_t *f, larder_fetch_t *fe, int final)
{
    struct larder_fetch_priv *p = fe->priv;
    hash_detach(f, fe); /* a failed transfer's body is not hashed further */
    if (final == LARDER_FETCH_FAILED && p->tmp_path[0]) {
        unlink(p->tmp_path);
        p->tmp_path[0] = 0;
    }
    /* by who started the fetch: a seed job's (it pins in its set) even when clients joined it */
    uint64_t upstream_bytes = p->stream ? p->raw_in : atomic_load(&fe->written);
    if (p->pin_set)
        atomic_fetch_add(&f->metrics->bytes_seed[fe->proto], upstream_bytes);
    else
        atomic_fetch_add(&f->metrics->bytes_upstream[fe->proto], upstream_bytes);
    if (final == LARDER_FETCH_FAILED) {
        atomic_fetch_add(&f->metrics->errors[fe->proto], 1);
        larder_warn("fetch: %s failed: %s", fe->url, fe->error);
    }
    if (p->easy) {
        curl_multi_remove_handle(f->multi, p->easy);
        curl_easy_cleanup(p->easy);
        p->easy = NULL;
    }
    curl_slist_free_all(p->headers);
    p->headers = NULL;

    pthread_mutex_lock(&f->mu);
    table_remove(f, fe);
    atomic_store(&fe->state, final);
    done_waiter_t *w = p->waiters;
    p->waiters = NULL;
    pthread_mutex_unlock(&f->mu);
    atomic_fetch_sub(&f->active, 1);
    f->wake(f->wake_ctx);
    while (w) {
        done_waiter_t *next = w->next;
        w->cb(fe, w->ctx);
        free(w);
        w = next;
    }
    stream_complete_sides(f, fe, final);
    larder_fetch_release(fe); /* the table's reference */
}

/* Whether this (curl) thread waited for a CPU for STARVE_PERCENT of the last interval: the kernel's schedstat of
 * the thread says how long it was runnable but not running. Clients tailing a download compete with it for the
 * same cores; while it is starved they are paced (cache.c). Without /proc it is never starved. */
static void starve_tick(larder_fetcher_t *f)
{
    uint64_t now = larder_mono_ms();
    if (f->sched_fd < 0 || now - f->sched_at_ms < STARVE_INTERVAL_MS)
        return;
    char b[96];
    ssize_t n = pread(f->sched_fd, b, sizeof(b) - 1, 0);
    if (n <= 0)
        return;
    b[n] = 0;
    char *end;
    (void)strtoull(b, &end, 10); /* time on a CPU */
    uint64_t wait = strtoull(end, NULL, 10); /* time runnable, waiting for one */
    if (f->sched_at_ms) {
        int starved = (wait - f->sched_wait_ns) * 100 >= (now - f->sched_at_ms) * 1000000 * STARVE_PERCENT;
        if (atomic_exchange(&f->starved, starved) && !starved)
            f->wake(f->wake_ctx); /* the tailers it paced may send what they were holding back */
    }
    f->sched_at_ms = now;
    f->sched_wait_ns = wait;
}

static void *fetch_thread(void *arg)
{
    larder_fetcher_t *f = arg;
    pthread_setname_np(pthread_self(), "larder-fetch"); /* for top -H, perf and the watchdog's reader */
    f->sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC); /* this thread's own */
    while (!atomic_load(&f->stop)) {
        unsigned stall = atomic_exchange(&f->stall_seconds, 0);
        if (stall) { /* LARDER_TEST_HOOKS only: block this loop as a wedged callback would */
            struct timespec ts = {(time_t)stall, 0};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
            larder_warn("test hook: the fetch thread's loop stalled for %u s, resuming", stall);
        }
        larder_beat_answer(&f->beat); /* the loop came round: every transfer's callbacks returned */
        pthread_mutex_lock(&f->mu);
        larder_fetch_t *q = f->queue;
        f->queue = NULL;
        pthread_mutex_unlock(&f->mu);
        while (q) {
            larder_fetch_t *next = q->priv->queue_next;
            if (q->priv->held)
                complete(f, q, LARDER_FETCH_FAILED);
            else
                setup_easy(f, q);
            q = next;
        }
        int running;
        curl_multi_perform(f->multi, &running);
        long hold = wbuf_tick(f); /* pieces held long enough are written */
        starve_tick(f);
        if (f->wake_due) { /* what on_body wrote since its last wake-up */
            f->wake_due = 0;
            f->wake_bytes = 0;
            f->wake(f->wake_ctx);
        }
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(f->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            larder_fetch_t *fe;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&fe);
            finish(f, fe, m->data.result);
        }
        /* while starved, the loop comes round every STARVE_INTERVAL_MS, so that a download falling silent does not
         * leave its tailers paced for as long as it is silent */
        int timeout = hold >= 0 ? (int)hold : 1000;
        if (atomic_load(&f->starved) && timeout > STARVE_INTERVAL_MS)
            timeout = STARVE_INTERVAL_MS;
        curl_multi_poll(f->multi, NULL, 0, timeout, NULL);
    }
    if (f->sched_fd >= 0)
        close(f->sched_fd);
    return NULL;
}

void larder_fetcher_test_stall_commit(larder_fetcher_t *f, unsigned seconds) { atomic_store(&f->commit_stall, seconds); }

uint64_t larder_fetcher_heartbeat(larder_fetcher_t *f, uint64_t now)
{
    if (larder_beat_ask(&f->beat, now))
        curl_multi_wakeup(f->multi); /* its poll returns now rather than after up to a second */
    return larder_beat_waiting(&f->beat, now);
}

void larder_fetcher_test_stall(larder_fetcher_t *f, unsigned seconds)
{
    atomic_store(&f->stall_seconds, seconds);
    curl_multi_wakeup(f->multi);
}

larder_fetcher_t *larder_fetcher_create(const larder_config_t *cfg, larder_store_t *store, larder_metrics_t *metrics,
                                        larder_fetch_wake_cb wake, void *wake_ctx)
{
    larder_fetcher_t *f = calloc(1, sizeof(*f));
    f->cfg = cfg;
    f->metrics = metrics;
    f->store = store;
    f->wake = wake;
    f->wake_ctx = wake_ctx;
    pthread_mutex_init(&f->mu, NULL);
    f->multi = curl_multi_init();
    curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    pthread_mutex_init(&f->cmu, NULL);
    pthread_cond_init(&f->ccond, NULL);
    pthread_cond_init(&f->own_done, NULL);
    pthread_mutex_init(&f->hmu, NULL);
    pthread_cond_init(&f->hcond, NULL);
    pthread_cond_init(&f->hdone, NULL);
    pthread_create(&f->hasher, NULL, hasher_main, f);
    for (int i = 0; i < COMMIT_THREADS; i++)
        pthread_create(&f->committers[i], NULL, commit_thread, f);
    pthread_create(&f->thread, NULL, fetch_thread, f);
    return f;
}

void larder_fetcher_destroy(larder_fetcher_t *f)
{
    if (!f)
        return;
    atomic_store(&f->stop, 1);
    curl_multi_wakeup(f->multi);
    pthread_join(f->thread, NULL);
    pthread_mutex_lock(&f->cmu);
    f->commit_stop = 1; /* the committers finish what is queued, then exit */
    pthread_cond_broadcast(&f->ccond);
    pthread_mutex_unlock(&f->cmu);
    for (int i = 0; i < COMMIT_THREADS; i++)
        pthread_join(f->committers[i], NULL);
    /* own_thread transforms see larder_fetch_cancelled() and end; they use the store and the metrics */
    pthread_mutex_lock(&f->cmu);
    if (f->own_running)
        larder_info("waiting for %d long transform(s) to stop", f->own_running);
    while (f->own_running)
        pthread_cond_wait(&f->own_done, &f->cmu);
    pthread_mutex_unlock(&f->cmu);
    pthread_mutex_lock(&f->hmu); /* the committers are done: nobody waits for a digest any more */
    f->hash_stop = 1;
    pthread_cond_broadcast(&f->hcond);
    pthread_mutex_unlock(&f->hmu);
    pthread_join(f->hasher, NULL);
    while (f->hash_head) /* transfers cut off by the stop */
        hash_detach(f, f->hash_head);
    pthread_cond_destroy(&f->hcond);
    pthread_cond_destroy(&f->hdone);
    pthread_mutex_destroy(&f->hmu);
    for (size_t i = 0; i < f->ntokens; i++) {
        free(f->tokens[i].key);
        free(f->tokens[i].token);
    }
    pthread_cond_destroy(&f->ccond);
    pthread_cond_destroy(&f->own_done);
    pthread_mutex_destroy(&f->cmu);
    curl_multi_cleanup(f->multi);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* ---- streaming transforms (fetch.h): the outputs, their side fetches, and their commit ----
 * Output 0 is the fetch's own temp file; output i >= 1 belongs to side[i], a fetch object of its own (key
 * stream_keys[i], not in the table) that larder_fetch_start hands to requests for that key, so that clients tail it
 * like any download. The primary holds a reference to each side and ends them with itself (stream_complete_sides). */

static larder_fetch_t *side_new(larder_fetch_t *prim, const char *key)
{
    larder_fetch_t *s = calloc(1, sizeof(*s));
    struct larder_fetch_priv *sp = calloc(1, sizeof(*sp));
    if (!s || !sp)
        abort();
    s->priv = sp;
    s->fd = -1;
    s->content_length = -1;
    s->streamed = 1;
    s->proto = prim->proto;
    s->key = strdup(key);
    s->url = strdup(prim->url);
    atomic_init(&sp->refs, 1); /* the primary's */
    sp->owner = prim->priv->owner;
    return s;
}

static void stream_setup(larder_fetch_t *fe, const larder_fetch_req_t *req)
{
    struct larder_fetch_priv *p = fe->priv;
    if (!req->stream)
        return;
    p->stream = req->stream;
    fe->streamed = 1;
    for (int i = 1; i < req->stream->nout && i < LARDER_STREAM_MAX_OUT; i++)
        if (req->stream_keys[i])
            p->side[i] = side_new(fe, req->stream_keys[i]);
}

/* the fetch a request for req->key reads: the primary, or one of its sides (the caller's reference moves to it) */
static larder_fetch_t *stream_pick(larder_fetch_t *fe, const larder_fetch_req_t *req)
{
    if (!req->stream)
        return fe;
    for (int i = 1; i < LARDER_STREAM_MAX_OUT; i++) {
        larder_fetch_t *s = fe->priv->side[i];
        if (s && strcmp(s->key, req->key) == 0) {
            larder_fetch_retain(s);
            larder_fetch_release(fe);
            return s;
        }
    }
    return fe;
}

static void stream_close_state(larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    if (p->sstate && p->stream && p->stream->close)
        p->stream->close(p->sstate);
    p->sstate = NULL;
}

static void stream_release(larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    stream_close_state(fe);
    if (p->omd)
        EVP_MD_CTX_free(p->omd);
    p->omd = NULL;
    for (int i = 1; i < LARDER_STREAM_MAX_OUT; i++)
        if (p->side[i])
            larder_fetch_release(p->side[i]);
}

static int omd_start(larder_fetch_t *o)
{
    if (!o->priv->omd)
        o->priv->omd = EVP_MD_CTX_new();
    return o->priv->omd && EVP_DigestInit_ex(o->priv->omd, larder_sha256_md(), NULL) == 1 ? 0 : -1;
}

/* on the fetch thread, when the 200 arrives: the outputs' temp files, the sides streaming, the transform's state */
static int stream_open(larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    const larder_stream_ops_t *ops = p->stream;
    fe->content_length = -1; /* the outputs' lengths are known at the end only (p->in_content_length is checked) */
    free(fe->content_type);
    fe->content_type = strdup(ops->content_type[0] ? ops->content_type[0] : "application/octet-stream");
    if (omd_start(fe) < 0) {
        snprintf(fe->error, sizeof(fe->error), "cannot hash the rewritten document");
        return -1;
    }
    for (int i = 1; i < LARDER_STREAM_MAX_OUT; i++) {
        larder_fetch_t *s = p->side[i];
        if (!s)
            continue;
        int fd = larder_store_tmp_create(p->owner->store, s->priv->tmp_path, sizeof(s->priv->tmp_path));
        if (fd < 0 || omd_start(s) < 0) {
            if (fd >= 0)
                close(fd);
            s->priv->tmp_path[0] = 0;
            snprintf(fe->error, sizeof(fe->error), "cannot create temp file: %s", fd < 0 ? strerror(-fd) : "hash");
            return -1;
        }
        s->fd = fd;
        s->status = fe->status;
        s->upstream_ms = fe->upstream_ms;
        s->content_type = strdup(ops->content_type[i] ? ops->content_type[i] : "application/octet-stream");
        s->etag = xstrdup(fe->etag);
        s->last_modified = xstrdup(fe->last_modified);
        atomic_store(&s->state, LARDER_FETCH_STREAMING);
    }
    p->raw_in = 0;
    p->sstate = ops->open(fe);
    if (!p->sstate) {
        snprintf(fe->error, sizeof(fe->error), "cannot start rewriting the upstream document");
        return -1;
    }
    return 0;
}

int larder_stream_write(larder_fetch_t *fe, int out, const char *buf, size_t len)
{
    larder_fetch_t *t = out == 0 ? fe : out < LARDER_STREAM_MAX_OUT ? fe->priv->side[out] : NULL;
    if (!t || t->fd < 0)
        return -1;
    uint64_t w = atomic_load(&t->written);
    for (size_t off = 0; off < len;) {
        ssize_t r = pwrite(t->fd, buf + off, len - off, (off_t)(w + off));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fe->priv->write_failed_errno = errno;
            snprintf(fe->error, sizeof(fe->error), "writing the temp file failed: %s", strerror(errno));
            return -1;
        }
        off += (size_t)r;
    }
    EVP_DigestUpdate(t->priv->omd, buf, len);
    atomic_store(&t->written, w + len);
    return 0;
}

/* on the fetch thread: one chunk of the upstream body through the transform */
static size_t stream_body(larder_fetch_t *fe, const char *buf, size_t len)
{
    struct larder_fetch_priv *p = fe->priv;
    p->raw_in += len;
    if (p->in_content_length >= 0 && p->raw_in > (uint64_t)p->in_content_length) {
        snprintf(fe->error, sizeof(fe->error), "upstream sent more than its Content-Length");
        return 0;
    }
    EVP_DigestUpdate(p->md, buf, len);
    if (p->md2)
        EVP_DigestUpdate(p->md2, buf, len);
    char err[200] = "";
    if (p->stream->feed(p->sstate, fe, buf, len, 0, err, sizeof(err)) < 0) {
        if (!fe->error[0])
            snprintf(fe->error, sizeof(fe->error), "rewriting the upstream document failed: %s", err);
        return 0; /* aborts the transfer: FAILED, nothing stored, tailers aborted */
    }
    p->owner->wake(p->owner->wake_ctx);
    return len;
}

/* on a commit thread: the end of the transform, the checks of the upstream body, every output committed */
static int stream_finish_body(larder_fetcher_t *f, larder_fetch_t *fe)
{
    struct larder_fetch_priv *p = fe->priv;
    const larder_stream_ops_t *ops = p->stream;
    char err[200] = "";
    unsigned char raw[64];
    unsigned int rawlen = 0;
    if (p->in_content_length >= 0 && (uint64_t)p->in_content_length != p->raw_in) {
        snprintf(fe->error, sizeof(fe->error), "truncated: %" PRIu64 " of %" PRId64 " bytes", p->raw_in,
                 p->in_content_length);
        return LARDER_FETCH_FAILED;
    }
    EVP_DigestFinal_ex(p->md, raw, &rawlen);
    char hex[LARDER_SHA256_HEX];
    larder_hex(raw, 32, hex);
    if (p->sha256 && strcmp(p->sha256, hex) != 0) {
        snprintf(fe->error, sizeof(fe->error), "sha256 mismatch: expected %.16s..., upstream sent %.16s...", p->sha256,
                 hex);
        return LARDER_FETCH_FAILED;
    }
    if (p->md2) {
        EVP_DigestFinal_ex(p->md2, raw, &rawlen);
        if (rawlen != p->want2_len || memcmp(raw, p->want2, rawlen) != 0) {
            snprintf(fe->error, sizeof(fe->error), "integrity mismatch: expected %.40s...", p->integrity);
            return LARDER_FETCH_FAILED;
        }
    }
    if (ops->feed(p->sstate, fe, NULL, 0, 1, err, sizeof(err)) < 0) {
        if (!fe->error[0])
            snprintf(fe->error, sizeof(fe->error), "rewriting the upstream document failed: %s", err);
        return LARDER_FETCH_FAILED;
    }
    larder_fetch_t *outs[LARDER_STREAM_MAX_OUT] = {fe};
    const char *keys[LARDER_STREAM_MAX_OUT] = {fe->key}, *digests[LARDER_STREAM_MAX_OUT] = {fe->digest};
    int n = 1;
    for (int i = 1; i < LARDER_STREAM_MAX_OUT; i++)
        if (p->side[i]) {
            outs[n] = p->side[i];
            keys[n] = p->side[i]->key;
            digests[n] = p->side[i]->digest;
            n++;
        }
    for (int i = 0; i < n; i++) {
        if (EVP_DigestFinal_ex(outs[i]->priv->omd, raw, &rawlen) != 1 || fsync(outs[i]->fd) < 0) {
            snprintf(fe->error, sizeof(fe->error), "fsync failed: %s", strerror(errno));
            return LARDER_FETCH_FAILED;
        }
        larder_hex(raw, 32, outs[i]->digest);
    }
    if (ops->before_commit && ops->before_commit(p->sstate, f->store, fe, keys, digests, err, sizeof(err)) < 0) {
        snprintf(fe->error, sizeof(fe->error), "rewriting the upstream document failed: %s", err);
        return LARDER_FETCH_FAILED;
    }
    /* the sides first: a reader that finds the primary's entry finds the others too */
    for (int i = n - 1; i >= 0; i--) {
        larder_fetch_t *o = outs[i];
        larder_entry_t e = {0};
        memcpy(e.digest, o->digest, LARDER_SHA256_HEX);
        e.size = atomic_load(&o->written);
        e.fetched_at = larder_now();
        e.fresh_until = e.fetched_at + p->ttl;
        e.flags = p->entry_flags;
        e.content_type = o->content_type;
        e.url = fe->url;
        e.etag = fe->etag;
        e.last_modified = fe->last_modified;
        int r = larder_store_commit(f->store, fe->proto, o->key, o->priv->tmp_path, &e, p->pin_set);
        o->priv->tmp_path[0] = 0;
        if (r < 0) {
            fe->uncached = o->uncached = 1; /* complete and verified: its readers still get it */
            snprintf(fe->error, sizeof(fe->error), "not cached: %s",
                     r == -ENOSPC ? "no room within quota or disk watermark" : strerror(-r));
            larder_warn("fetch: %s (%s): %s", fe->url, o->key, fe->error);
        }
    }
    return LARDER_FETCH_DONE;
}

/* the sides end with their primary (after its waiters ran); the transform's memory goes back at once */
static void stream_complete_sides(larder_fetcher_t *f, larder_fetch_t *fe, int final)
{
    struct larder_fetch_priv *p = fe->priv;
    if (!p->stream)
        return;
    stream_close_state(fe);
    for (int i = 1; i < LARDER_STREAM_MAX_OUT; i++) {
        larder_fetch_t *s = p->side[i];
        if (!s)
            continue;
        if (final == LARDER_FETCH_FAILED && s->priv->tmp_path[0]) {
            unlink(s->priv->tmp_path);
            s->priv->tmp_path[0] = 0;
        }
        s->status = fe->status;
        s->upstream_ms = fe->upstream_ms;
        s->uncached |= fe->uncached;
        if (!s->error[0])
            memcpy(s->error, fe->error, sizeof(s->error));
        pthread_mutex_lock(&f->mu);
        atomic_store(&s->state, final);
        done_waiter_t *w = s->priv->waiters;
        s->priv->waiters = NULL;
        pthread_mutex_unlock(&f->mu);
        while (w) {
            done_waiter_t *next = w->next;
            w->cb(s, w->ctx);
            free(w);
            w = next;
        }
    }
    f->wake(f->wake_ctx);
#ifdef __GLIBC__
    if (p->raw_in > (uint64_t)4 * 1024 * 1024)
        malloc_trim(0); /* a large document's buffers: give the memory back to the system */
#endif
}
