/* cache.c - the one request flow every protocol uses (DESIGN.md section 3).
 *
 * A protocol maps a request to a larder_mapping_t and calls larder_cache_serve(). Here the store is consulted:
 * an entry whose digest differs from the one the mapping expects is a miss (never served, never revalidated);
 * freshness is fetched_at + the mapping's (current) ttl; a fresh entry is served from its blob file (HEAD, single
 * Range, If-None-Match/If-Modified-Since); a stale one is revalidated with a conditional fetch, or served STALE
 * when offline or when upstream fails; a miss joins or starts the single-flight fetch and streams the growing temp
 * file as the fetch thread writes it.
 * Each response is a `tailer`: an h2o generator living in the request's pool that reads its file with pread and
 * pushes buffers to h2o (a tailer of a fetch in progress sends from a shared mapping of the temp file instead). A tailer that has sent everything written so far parks on this worker thread's
 * `blocked` list until the fetch thread wakes the thread (larder_cache_on_wake). A fetch that fails after bytes
 * were sent ends the response with an error, so clients see an aborted transfer, never a short success: the last
 * byte written is held back until the fetch is verified (larder_fetch_t.verified: not until its fsync and commit
 * are over; a commit that fails after that still leaves them the verified bytes; a request that finds the fetch
 * that joins a fetch verified already is answered as a HIT), and an HTTP/1.0 client (which cannot tell an aborted
 * body of unknown length from a complete one) waits for the verified end when the upstream sent no length.
 * A whole stored blob is hashed as it is sent (verify_on_read) and its last buffer is held back until the digest
 * matches: bit rot aborts the transfer and the blob goes to quarantine (store.c), so the next request refetches.
 * A blob verified in the last minutes is not hashed again (verify_memo: its bytes come from the page
 * cache then).
 * This file never talks to upstreams or RocksDB directly beyond lookups: fetch.c and store.c own those. */
#include "cache.h"
#include "log.h"
#include "record.h"
#include "util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAIL_BUFSZ ((size_t)256 * 1024)
/* a tailer of a fetch sends straight from a shared mapping of the temp file: windows of TAIL_MAP_WINDOW bytes, at
 * most TAIL_MAP_STEP per h2o_send (no pread copy per client; 100 clients of one 200 MB miss copied 20 GB) */
#define TAIL_MAP_WINDOW ((uint64_t)8 << 20)
#define TAIL_MAP_STEP ((uint64_t)1 << 20)

enum { PHASE_WAIT = 0, PHASE_SEND, PHASE_DONE };

typedef struct tailer {
    h2o_generator_t super;
    h2o_req_t *req;
    larder_app_t *app;
    larder_fetch_t *fetch; /* NULL when serving a complete blob */
    int fd;                /* own descriptor of a complete blob, or -1 */
    uint64_t off, end;     /* byte window still to send; end == UINT64_MAX: until the fetch ends */
    int proto;
    int cache_status;
    int phase;
    int is_head;
    int has_stale; /* a stale entry exists to fall back on when the revalidation fails */
    int in_send, again;
    int status;
    char *key;
    char *logpath;
    char method[8];
    uint64_t started_ms;
    int64_t upstream_ms; /* of the fetch this response came from, -1 for none */
    uint64_t sent;
    char *buf;
    size_t bufsz;
    h2o_linklist_t link;
    const char *content_type;   /* response content type overriding the stored one (request pool), or NULL */
    larder_after_fetch_fn then; /* instead of answering: call this once the fetch has ended */
    void *then_data;
    const char *subst_from, *subst_to; /* replace while sending (request pool), or NULL */
    size_t subst_flen, subst_tlen;
    char *sbuf; /* substituted output of the current chunk (malloc'd, reused) */
    size_t sbufsz;
    int pass; /* pass-through: upstream failures are 503, never 502/404 from the cache */
    int no_record;   /* not an answer for a recording (a blob found by its digest alone) */
    char *record_key; /* what a recording pins for this answer instead of key (larder_mapping_t.record_key) */
    int digest_header;
    int repr_digest, md5_etag, range_full;
    int (*acceptable)(h2o_req_t *req, const char *content_type);
    const char *unacceptable_body;
    EVP_MD_CTX *verify; /* sha256 of the stored bytes sent so far, when the whole blob is sent; else NULL */
    char digest[LARDER_SHA256_HEX]; /* what the verified blob must hash to */
    uint64_t vino, vmtime;          /* the verified file's inode and mtime (ns), for the memo below */
    char *(*render)(void *ctx, const char *in, size_t len, size_t *outlen);
    void *render_ctx;
    const char *render_tag;
    const char *want_sha256, *want_integrity; /* digests the request expects (request pool), or NULL */
    h2o_linklist_t ylink; /* on this thread's yielded list (a stored blob's next buffer waits for the next tick) */
    uint64_t tick;        /* the worker loop tick of this response's last buffer */
    int counted;      /* counted in fetch->tailers */
    char *map;        /* tailing a fetch: the mapped window of its file (tail_map), or NULL */
    uint64_t map_off; /* the window's offset in the file */
} tailer_t;

static __thread h2o_linklist_t blocked_anchor; /* zeroed per thread; initialised on first use */
static __thread size_t nblocked;

static h2o_linklist_t *blocked_list(void)
{
    if (!blocked_anchor.next)
        h2o_linklist_init_anchor(&blocked_anchor);
    return &blocked_anchor;
}

static int send_step(tailer_t *t);
static void unyield(tailer_t *t);

/* ---- small helpers ---- */

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    size_t len = strlen(value);
    char *v = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(v, value, len + 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v, len);
}

static int is_method(h2o_req_t *req, const char *m)
{
    return req->input.method.len == strlen(m) && memcmp(req->input.method.base, m, req->input.method.len) == 0;
}

static h2o_iovec_t find_header(h2o_req_t *req, const h2o_token_t *tok)
{
    ssize_t i = h2o_find_header(&req->headers, tok, -1);
    return i < 0 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

static void log_line(larder_app_t *app, h2o_req_t *req, int proto, int status, int cache_status, uint64_t bytes,
                     int64_t upstream_ms, const char *note)
{
    char path[512];
    size_t n = req->input.path.len < sizeof(path) - 1 ? req->input.path.len : sizeof(path) - 1;
    memcpy(path, req->input.path.base, n);
    path[n] = 0;
    char method[16];
    n = req->input.method.len < sizeof(method) - 1 ? req->input.method.len : sizeof(method) - 1;
    memcpy(method, req->input.method.base, n);
    method[n] = 0;
    /* the admin surface's reads that succeed (a UI polls them) are debug lines; its writes and errors stay info */
    int quiet = proto < 0 && status < 400 && (is_method(req, "GET") || is_method(req, "HEAD")) &&
                req->input.path.len >= 3 && memcmp(req->input.path.base, "/-/", 3) == 0;
    larder_log_request_at(quiet ? LARDER_LOG_DEBUG : LARDER_LOG_INFO, proto >= 0 ? larder_proto_name(proto) : "-",
                          method, path, status, cache_status >= 0 ? larder_cache_status_name(cache_status) : "-",
                          bytes, upstream_ms, note);
    if (proto >= 0 && status >= 400)
        atomic_fetch_add(&app->metrics.errors[proto], 1);
    if (proto >= 0)
        larder_metrics_answered(&app->metrics, proto, -1, 0); /* a body of the module's own, not from the cache */
}

void larder_send_text(larder_app_t *app, h2o_req_t *req, int proto, int status, const char *reason,
                      const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    /* every response says what the cache did; answers that never touch the cache are BYPASS */
    if (h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-larder-cache"), -1) < 0)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-larder-cache"), 1, NULL, H2O_STRLIT("BYPASS"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    log_line(app, req, proto, status, -1, len, -1, NULL);
    if (is_method(req, "HEAD"))
        len = 0;
    char *copy = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(copy, body, len);
    h2o_send_inline(req, copy, len);
}

void larder_send_error(larder_app_t *app, h2o_req_t *req, int proto, int status, const char *reason, const char *fmt,
                       ...)
{
    char body[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(body) - 2)
        n = sizeof(body) - 2;
    body[n++] = '\n';
    body[n] = 0;
    larder_send_text(app, req, proto, status, reason, "text/plain; charset=utf-8", body, (size_t)n);
}

/* ---- tailer lifecycle ---- */

static void park(tailer_t *t)
{
    if (!h2o_linklist_is_linked(&t->link)) {
        h2o_linklist_insert(blocked_list(), &t->link);
        nblocked++;
    }
}

static void unpark(tailer_t *t)
{
    if (h2o_linklist_is_linked(&t->link)) {
        h2o_linklist_unlink(&t->link);
        nblocked--;
    }
}

static void tailer_dispose(void *p)
{
    tailer_t *t = p;
    unpark(t);
    unyield(t);
    if (t->phase != PHASE_DONE) {
        larder_log_request(larder_proto_name(t->proto), t->method, t->logpath ? t->logpath : "-", t->status,
                           larder_cache_status_name(t->cache_status), t->sent, -1, "client went away");
        larder_metrics_answered(&t->app->metrics, t->proto, t->cache_status, t->sent);
    }
    if (t->fetch && t->counted)
        atomic_fetch_sub(&t->fetch->tailers, 1);
    if (t->fetch)
        larder_fetch_release(t->fetch);
    if (t->fd >= 0)
        close(t->fd);
    free(t->key);
    free(t->record_key);
    free(t->logpath);
    free(t->sbuf);
    EVP_MD_CTX_free(t->verify);
    if (t->map)
        munmap(t->map, TAIL_MAP_WINDOW);
}

static void finish_log(tailer_t *t, const char *note)
{
    t->phase = PHASE_DONE;
    int64_t ums = t->fetch ? (int64_t)t->fetch->upstream_ms : t->upstream_ms;
    larder_log_request(larder_proto_name(t->proto), t->method, t->logpath, t->status,
                       larder_cache_status_name(t->cache_status), t->sent, ums, note);
    larder_metrics_answered(&t->app->metrics, t->proto, t->cache_status, t->sent);
    /* an answer from the cache (passthrough answers and errors are not) joins a running recording */
    if (t->status < 400 && !t->pass && !t->no_record && t->cache_status != LARDER_CACHE_BYPASS)
        larder_record_served(t->app, t->req, t->proto, t->record_key ? t->record_key : t->key);
}

/* ---- fair sending of stored blobs ----
 * h2o calls proceed as soon as a buffer has been written, and when the client's socket takes it at once (a fast
 * reader on loopback, a large send buffer) that happens inside the same pass over the loop's pending sockets: one
 * connection could send megabytes while the other connections of the thread wait for the pass to end (measured:
 * 200 MB at c=32, larder's p50 was nginx's but its p90/p99 1.3-1.5x nginx's). So a stored blob sends one buffer per
 * connection per loop tick: a second proceed in the same tick puts the response on this thread's yielded list,
 * and larder_cache_tick (called by the worker between two runs of its loop) sends their next buffers. */
static __thread h2o_linklist_t yielded_anchor;
static __thread uint64_t cur_tick = 1;

static h2o_linklist_t *yielded_list(void)
{
    if (!yielded_anchor.next)
        h2o_linklist_init_anchor(&yielded_anchor);
    return &yielded_anchor;
}

static void unyield(tailer_t *t)
{
    if (t->ylink.next && h2o_linklist_is_linked(&t->ylink))
        h2o_linklist_unlink(&t->ylink);
}

/* 1 when t is a stored blob's response that already sent a buffer in this tick: it waits for the next one */
static int yield_blob(tailer_t *t)
{
    if (t->fetch || t->phase != PHASE_SEND)
        return 0;
    if (t->tick != cur_tick) {
        t->tick = cur_tick;
        return 0;
    }
    if (!t->ylink.next || !h2o_linklist_is_linked(&t->ylink))
        h2o_linklist_insert(yielded_list(), &t->ylink);
    return 1;
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req);

int larder_cache_tick(void)
{
    cur_tick++;
    h2o_linklist_t todo;
    h2o_linklist_init_anchor(&todo);
    h2o_linklist_insert_list(&todo, yielded_list());
    while (!h2o_linklist_is_empty(&todo)) {
        tailer_t *t = H2O_STRUCT_FROM_MEMBER(tailer_t, ylink, todo.next);
        h2o_linklist_unlink(&t->ylink);
        on_proceed(&t->super, t->req);
    }
    return !h2o_linklist_is_empty(yielded_list());
}

int larder_cache_yielded(void) { return yielded_anchor.next && !h2o_linklist_is_empty(&yielded_anchor); }

static void on_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    tailer_t *t = (tailer_t *)g;
    if (yield_blob(t))
        return;
    if (t->in_send) {
        t->again = 1;
        return;
    }
    t->in_send = 1;
    do {
        t->again = 0;
        if (send_step(t))
            return; /* the response is over; t may be gone */
    } while (t->again);
    t->in_send = 0;
}

static void on_stop(h2o_generator_t *g, h2o_req_t *req)
{
    tailer_t *t = (tailer_t *)g;
    unpark(t);
    unyield(t);
}

static tailer_t *tailer_new(larder_app_t *app, h2o_req_t *req, int proto, const char *key)
{
    tailer_t *t = h2o_mem_alloc_shared(&req->pool, sizeof(*t), tailer_dispose);
    memset(t, 0, sizeof(*t));
    t->super.proceed = on_proceed;
    t->super.stop = on_stop;
    t->req = req;
    t->app = app;
    t->fd = -1;
    t->proto = proto;
    t->cache_status = LARDER_CACHE_MISS;
    t->is_head = is_method(req, "HEAD");
    t->key = strdup(key);
    t->logpath = strndup(req->input.path.base, req->input.path.len < 512 ? req->input.path.len : 512);
    size_t n = req->input.method.len < sizeof(t->method) - 1 ? req->input.method.len : sizeof(t->method) - 1;
    memcpy(t->method, req->input.method.base, n);
    t->started_ms = larder_now_ms();
    t->upstream_ms = -1;
    t->link.next = t->link.prev = NULL;
    return t;
}

/* how a mapping wants its responses made */
static void tailer_apply(tailer_t *t, const larder_mapping_t *m)
{
    if (m->record_key)
        t->record_key = strdup(m->record_key);
    t->content_type = m->content_type;
    t->digest_header = m->digest_header;
    t->repr_digest = m->repr_digest;
    t->md5_etag = m->md5_etag;
    t->range_full = m->range_full;
    t->acceptable = m->acceptable;
    t->unacceptable_body = m->unacceptable_body;
    t->render = m->render;
    t->render_ctx = m->render_ctx;
    t->render_tag = m->render_tag ? m->render_tag : "r";
    t->want_sha256 = m->sha256;
    t->want_integrity = m->integrity;
    if (m->subst_from && *m->subst_from && m->subst_to) {
        t->subst_from = m->subst_from;
        t->subst_to = m->subst_to;
        t->subst_flen = strlen(m->subst_from);
        t->subst_tlen = strlen(m->subst_to);
    }
}

static int tailer_error(tailer_t *t, int status, const char *reason, const char *msg)
{
    t->phase = PHASE_DONE;
    h2o_req_t *req = t->req;
    add_header(req, "x-larder-cache", larder_cache_status_name(t->cache_status));
    larder_send_error(t->app, req, t->proto, status, reason, "%s", msg);
    return 1;
}

/* ---- ranges and conditionals ---- */

/* 0: [*start, *end) set; 1: no usable Range (send everything); -1: unsatisfiable */
static int parse_range(h2o_iovec_t h, uint64_t size, uint64_t *start, uint64_t *end)
{
    if (!h.base || h.len < 7 || strncasecmp(h.base, "bytes=", 6) != 0)
        return 1;
    char buf[64];
    if (h.len - 6 >= sizeof(buf))
        return 1;
    memcpy(buf, h.base + 6, h.len - 6);
    buf[h.len - 6] = 0;
    if (strchr(buf, ','))
        return 1; /* multiple ranges: a full 200 is a valid answer */
    char *dash = strchr(buf, '-'), *e1, *e2;
    if (!dash)
        return 1;
    *dash = 0;
    if (buf[0] == 0) { /* suffix: -N */
        unsigned long long n = strtoull(dash + 1, &e2, 10);
        if (*e2 || dash[1] == 0)
            return 1;
        if (n == 0 || size == 0)
            return -1;
        *start = n >= size ? 0 : size - n;
        *end = size;
        return 0;
    }
    unsigned long long a = strtoull(buf, &e1, 10);
    if (*e1)
        return 1;
    unsigned long long b = size ? size - 1 : 0;
    if (dash[1]) {
        b = strtoull(dash + 1, &e2, 10);
        if (*e2 || b < a)
            return 1;
        if (b >= size)
            b = size ? size - 1 : 0;
    }
    if (a >= size)
        return -1;
    *start = a;
    *end = b + 1;
    return 0;
}

static int etag_matches(h2o_iovec_t inm, const char *etag)
{
    if (!inm.base)
        return 0;
    size_t el = strlen(etag);
    for (size_t i = 0; i < inm.len; i++) {
        if (inm.base[i] == '*')
            return 1;
        if (inm.len - i >= el && memcmp(inm.base + i, etag, el) == 0)
            return 1;
    }
    return 0;
}

/* verify_on_read: 1 when md (the sha256 of the stored bytes read from fd; NULL: hashing failed) is the entry's
 * digest. Otherwise the blob goes to quarantine with every entry that names it, and the error is logged and counted,
 * with `what` saying what became of this response; 0. */
static int digest_matches(tailer_t *t, const char *digest, int fd, const unsigned char *md, const char *what)
{
    char hex[LARDER_SHA256_HEX];
    if (md)
        larder_hex(md, 32, hex);
    else
        snprintf(hex, sizeof(hex), "(hash failed)");
    if (strcmp(hex, digest) == 0)
        return 1;
    char qpath[4400];
    int r = larder_store_quarantine(t->app->store, digest, fd, qpath, sizeof(qpath));
    larder_err("cache: stored blob %s of %s %s is corrupt (its bytes hash to %s): %s; %s, %d entr%s dropped; the "
               "next request fetches it again",
               digest, larder_proto_name(t->proto), t->key, hex, what,
               r == -ESTALE ? "already quarantined or replaced" : qpath[0] ? "blob moved to quarantine" : "blob removed",
               r < 0 ? 0 : r, r == 1 ? "y" : "ies");
    if (qpath[0])
        larder_err("cache: quarantined blob kept as %s", qpath);
    atomic_fetch_add(&t->app->metrics.errors[t->proto], 1);
    return 0;
}

/* The rendered representation of the blob in fd (size bytes) in an anonymous file, so that Range and the chunked
 * sending below work on it as on any blob; its size in *outsize. The descriptor, or -1. */
/* ---- rendered documents ----
 * What a render hook makes (a PyPI page stored as JSON and asked for as HTML) depends only on the stored bytes, so it
 * is kept and reused: a hot page is not read, hashed, parsed and rendered again on every hit (that made a 10 KB HTML
 * page 6x slower than nginx serving it). Keyed like the verify memo below (digest, inode, mtime) plus the render
 * tag; reused for store.verify_interval when verify_on_read is on (after that the stored bytes are read and verified
 * again, as any hit's are) and for an hour when it is off. At most RENDER_SLOTS documents and RENDER_MAX_BYTES in
 * all; a document over a quarter of that is never kept. Each kept document is a memfd no one writes again; a
 * response reads its own dup. Shared by the workers under a mutex held only to look up or swap a slot. */
#define RENDER_SLOTS 128
#define RENDER_MAX_BYTES ((uint64_t)32 << 20)
typedef struct render_slot {
    uint64_t ino, mtime, at, size; /* at == 0: the slot is empty */
    int fd;
    char tag[24];
    char digest[LARDER_SHA256_HEX];
} render_slot_t;
static render_slot_t render_slots[RENDER_SLOTS];
static uint64_t render_bytes;
static pthread_mutex_t render_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t render_ttl(const larder_config_t *cfg)
{
    return cfg->verify_on_read ? cfg->verify_interval : 3600;
}

static render_slot_t *render_slot(const char *digest, const char *tag)
{
    uint32_t h = 2166136261U;
    for (const char *c = digest; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619U;
    for (const char *c = tag; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619U;
    return &render_slots[h % RENDER_SLOTS];
}

static void render_drop(render_slot_t *s)
{
    if (s->at) {
        close(s->fd);
        render_bytes -= s->size;
        memset(s, 0, sizeof(*s));
    }
}

/* a descriptor of its own on the kept rendering of this blob, or -1 */
static int render_lookup(tailer_t *t, const char *digest, uint64_t *outsize)
{
    uint64_t ttl = render_ttl(t->app->cfg);
    if (ttl == 0 || strlen(t->render_tag) >= sizeof(((render_slot_t *)0)->tag))
        return -1;
    int fd = -1;
    uint64_t now = larder_now();
    pthread_mutex_lock(&render_lock);
    render_slot_t *s = render_slot(digest, t->render_tag);
    if (s->at && s->at + ttl > now && s->ino == t->vino && s->mtime == t->vmtime &&
        strncmp(s->digest, digest, LARDER_SHA256_HEX - 1) == 0 && strcmp(s->tag, t->render_tag) == 0) {
        fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
        *outsize = s->size;
    }
    pthread_mutex_unlock(&render_lock);
    return fd;
}

static void render_keep(tailer_t *t, const char *digest, int fd, uint64_t size)
{
    uint64_t ttl = render_ttl(t->app->cfg);
    if (ttl == 0 || size > RENDER_MAX_BYTES / 4 || strlen(t->render_tag) >= sizeof(((render_slot_t *)0)->tag))
        return;
    int kfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (kfd < 0)
        return;
    uint64_t now = larder_now();
    pthread_mutex_lock(&render_lock);
    render_slot_t *s = render_slot(digest, t->render_tag);
    render_drop(s);
    if (render_bytes + size > RENDER_MAX_BYTES) /* make room from what has expired */
        for (size_t i = 0; i < RENDER_SLOTS; i++)
            if (render_slots[i].at && render_slots[i].at + ttl <= now)
                render_drop(&render_slots[i]);
    if (render_bytes + size > RENDER_MAX_BYTES) {
        pthread_mutex_unlock(&render_lock);
        close(kfd);
        return;
    }
    snprintf(s->digest, sizeof(s->digest), "%.*s", LARDER_SHA256_HEX - 1, digest);
    snprintf(s->tag, sizeof(s->tag), "%s", t->render_tag);
    s->ino = t->vino;
    s->mtime = t->vmtime;
    s->at = now;
    s->size = size;
    s->fd = kfd;
    render_bytes += size;
    pthread_mutex_unlock(&render_lock);
}

static int render_blob(tailer_t *t, int fd, const char *digest, uint64_t size, uint64_t *outsize)
{
    int kept = render_lookup(t, digest, outsize);
    if (kept >= 0)
        return kept;
    char *in = NULL;
    if (size > (uint64_t)256 * 1024 * 1024 || larder_pread_all(fd, size, &in) < 0) {
        free(in);
        return -1;
    }
    if (t->app->cfg->verify_on_read) {
        /* the whole stored document is in memory: check it before anything is built from it (verify_on_read) */
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        int ok = EVP_Digest(in, (size_t)size, md, &mdlen, larder_sha256_md(), NULL) == 1 && mdlen == 32;
        if (!digest_matches(t, digest, fd, ok ? md : NULL, "not converted")) {
            free(in);
            return -1;
        }
    }
    size_t olen = 0;
    char *out = t->render(t->render_ctx, in, (size_t)size, &olen);
    free(in);
    if (!out)
        return -1;
    int mfd = memfd_create("larder-render", MFD_CLOEXEC);
    if (mfd >= 0 && larder_write_all(mfd, out, olen) < 0) {
        close(mfd);
        mfd = -1;
    }
    free(out);
    *outsize = olen;
    if (mfd >= 0)
        render_keep(t, digest, mfd, olen);
    return mfd;
}

/* Which blobs were verified lately (verify_on_read). A blob read again within store.verify_interval comes from the
 * page cache, where hashing the same bytes again detects nothing new, so it is not hashed again: the cost of
 * verification is paid once per blob and interval instead of on every hit of a hot object. Shared by the worker
 * threads: a per-thread memo made the first full read of a large blob on each thread hash it again (150 ms of a
 * core for 200 MB, on the thread that also serves that thread's other clients, which showed in p99).
 * Keyed by digest, inode and mtime, so a file rewritten or replaced in place is hashed again at once.
 * Direct-mapped: a collision only costs an extra verification. */
#define VERIFY_MEMO_SLOTS 1024
typedef struct verify_memo {
    uint64_t key, ino, mtime, at;
} verify_memo_t;
static verify_memo_t verify_memo[VERIFY_MEMO_SLOTS];
static pthread_mutex_t verify_memo_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t memo_key(const char *digest)
{
    unsigned char raw[8] = {0};
    larder_unhex(digest, sizeof(raw), raw);
    uint64_t k = 0;
    for (size_t i = 0; i < sizeof(raw); i++)
        k = k << 8 | raw[i];
    return k | 1; /* never 0: 0 marks an empty slot */
}

static int recently_verified(const char *digest, uint64_t ino, uint64_t mtime, uint64_t interval)
{
    if (interval == 0)
        return 0;
    uint64_t k = memo_key(digest);
    pthread_mutex_lock(&verify_memo_lock);
    verify_memo_t m = verify_memo[k % VERIFY_MEMO_SLOTS];
    pthread_mutex_unlock(&verify_memo_lock);
    return m.key == k && m.ino == ino && m.mtime == mtime && m.at + interval > larder_now();
}

static void remember_verified(const char *digest, uint64_t ino, uint64_t mtime)
{
    uint64_t k = memo_key(digest);
    verify_memo_t m = {k, ino, mtime, larder_now()};
    pthread_mutex_lock(&verify_memo_lock);
    verify_memo[k % VERIFY_MEMO_SLOTS] = m;
    pthread_mutex_unlock(&verify_memo_lock);
}

/* Start a response from a complete blob. Returns 1 when the response is over. */
static int start_blob_response(tailer_t *t, const larder_entry_t *e, int cache_status)
{
    h2o_req_t *req = t->req;
    char path[4096];
    t->cache_status = cache_status;
    larder_store_blob_path(t->app->store, e->digest, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != e->size) {
        if (fd >= 0)
            close(fd);
        larder_err("cache: blob %s for %s is missing or has the wrong size (run larder fsck)", e->digest, t->key);
        return tailer_error(t, 502, "Bad Gateway", "cached copy is damaged; run `larder fsck`");
    }
    uint64_t size = e->size;
    t->vino = (uint64_t)sb.st_ino;
    t->vmtime = (uint64_t)sb.st_mtim.tv_sec * 1000000000ULL + (uint64_t)sb.st_mtim.tv_nsec;
    if (t->render) {
        int rfd = render_blob(t, fd, e->digest, e->size, &size);
        close(fd);
        if (rfd < 0) {
            larder_err("cache: the stored %s could not be converted for this request", t->key);
            return tailer_error(t, 502, "Bad Gateway", "the cached document could not be converted to the requested format");
        }
        fd = rfd;
    }
    if (t->fd >= 0)
        close(t->fd);
    t->fd = fd;
    if (t->fetch) {
        t->upstream_ms = (int64_t)t->fetch->upstream_ms;
        larder_fetch_release(t->fetch);
        t->fetch = NULL;
    }
    atomic_fetch_add(&t->app->metrics.responses[t->proto][cache_status], 1);
    if (cache_status == LARDER_CACHE_HIT || cache_status == LARDER_CACHE_STALE)
        larder_store_touch(t->app->store, t->proto, t->key, e);

    char etag[LARDER_SHA256_HEX + 24], lm[64];
    if (t->subst_from) {
        /* the bytes sent depend on the replacement too */
        uint32_t h = 2166136261U;
        for (const char *c = t->subst_to; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619U;
        snprintf(etag, sizeof(etag), "\"%s-%08x\"", e->digest, h);
    } else if (t->render) {
        snprintf(etag, sizeof(etag), "\"%.*s-%.16s\"", LARDER_SHA256_HEX, e->digest, t->render_tag);
    } else {
        snprintf(etag, sizeof(etag), "\"%.*s\"", LARDER_SHA256_HEX, e->digest);
    }
    if (t->md5_etag) {
        char mk[LARDER_SHA256_HEX + 8];
        snprintf(mk, sizeof(mk), "md5/%.*s", LARDER_SHA256_HEX, e->digest);
        char *md5 = larder_store_meta_get(t->app->store, t->proto, mk, NULL);
        if (md5 && strlen(md5) == 32)
            snprintf(etag, sizeof(etag), "\"%s\"", md5);
        free(md5);
    }
    if (t->repr_digest && !t->render) {
        unsigned char raw[32] = {0};
        larder_unhex(e->digest, 32, raw);
        unsigned char b64[64];
        EVP_EncodeBlock(b64, raw, 32);
        char rd[96];
        snprintf(rd, sizeof(rd), "sha-256=:%s:", b64);
        add_header(req, "repr-digest", rd);
    }
    uint64_t lmt = e->last_modified ? larder_parse_http_date(e->last_modified, strlen(e->last_modified)) : 0;
    if (!lmt)
        lmt = e->fetched_at;
    larder_http_date(lmt, lm, sizeof(lm));
    add_header(req, "x-larder-cache", larder_cache_status_name(cache_status));
    add_header(req, "etag", etag);
    add_header(req, "last-modified", lm);
    if (!t->subst_from)
        add_header(req, "accept-ranges", "bytes");

    h2o_iovec_t inm = find_header(req, H2O_TOKEN_IF_NONE_MATCH);
    h2o_iovec_t ims = find_header(req, H2O_TOKEN_IF_MODIFIED_SINCE);
    int not_modified = inm.base ? etag_matches(inm, etag)
                                : (ims.base && larder_parse_http_date(ims.base, ims.len) >= lmt);
    if (not_modified) {
        req->res.status = t->status = 304;
        req->res.reason = "Not Modified";
        h2o_start_response(req, &t->super);
        finish_log(t, NULL);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return 1;
    }
    const char *ct = t->content_type                            ? t->content_type
                     : e->content_type && *e->content_type ? e->content_type
                                                            : "application/octet-stream";
    if (t->digest_header) {
        char dcd[LARDER_SHA256_HEX + 8];
        snprintf(dcd, sizeof(dcd), "sha256:%.*s", LARDER_SHA256_HEX, e->digest);
        add_header(req, "docker-content-digest", dcd);
    }
    if (t->acceptable && !t->acceptable(req, ct)) {
        t->phase = PHASE_DONE;
        const char *b = t->unacceptable_body ? t->unacceptable_body : "{}";
        larder_send_text(t->app, req, t->proto, 404, "Not Found", "application/json", b, strlen(b));
        return 1;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, h2o_strdup(&req->pool, ct, SIZE_MAX).base,
                   strlen(ct));
    t->off = 0;
    t->end = size;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_iovec_t range = find_header(req, H2O_TOKEN_RANGE);
    h2o_iovec_t if_range = find_header(req, H2O_TOKEN_IF_RANGE);
    if (range.base && !t->subst_from && (!if_range.base || etag_matches(if_range, etag))) {
        uint64_t a, b;
        int r = parse_range(range, size, &a, &b);
        if (r < 0 && t->range_full)
            r = 1; /* the whole file: what bundler falls back to anyway */
        if (r < 0) {
            char cr[64];
            snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
            add_header(req, "content-range", cr);
            return tailer_error(t, 416, "Range Not Satisfiable", "requested range not satisfiable");
        }
        if (r == 0) {
            char cr[96];
            snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, a, b - 1, size);
            add_header(req, "content-range", cr);
            req->res.status = 206;
            req->res.reason = "Partial Content";
            t->off = a;
            t->end = b;
        }
    }
    t->status = req->res.status;
    req->res.content_length = t->subst_from ? SIZE_MAX : t->end - t->off;
    /* only a response that reads every stored byte can check them all (a partial Range cannot) */
    if (t->app->cfg->verify_on_read && !t->render && !t->is_head && t->off == 0 && t->end == e->size && e->size > 0 &&
        !t->verify && !recently_verified(e->digest, t->vino, t->vmtime, t->app->cfg->verify_interval)) {
        t->verify = EVP_MD_CTX_new();
        if (t->verify && EVP_DigestInit_ex(t->verify, larder_sha256_md(), NULL) != 1) {
            EVP_MD_CTX_free(t->verify);
            t->verify = NULL;
        }
        memcpy(t->digest, e->digest, LARDER_SHA256_HEX);
        t->digest[LARDER_SHA256_HEX - 1] = 0;
    }
    t->phase = PHASE_SEND;
    h2o_start_response(req, &t->super);
    if (t->is_head || t->off == t->end) {
        finish_log(t, NULL);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return 1;
    }
    return send_step(t);
}

/* fall back to whatever is in the store for this key */
static int serve_stored(tailer_t *t, int cache_status, const char *why)
{
    larder_entry_t e;
    if (larder_store_get(t->app->store, t->proto, t->key, &e) < 0)
        return tailer_error(t, 502, "Bad Gateway", why ? why : "cached copy vanished; retry");
    if (!larder_entry_satisfies(t->app->store, t->proto, &e, t->want_sha256, t->want_integrity)) {
        larder_entry_clear(&e); /* replaced meanwhile by a download that verified nothing */
        return tailer_error(t, 502, "Bad Gateway", "the cached copy does not match the expected digest; retry");
    }
    int r = start_blob_response(t, &e, cache_status);
    larder_entry_clear(&e);
    return r;
}

/* ---- streaming a fetch in progress ---- */

static int start_stream_response(tailer_t *t)
{
    h2o_req_t *req = t->req;
    larder_fetch_t *f = t->fetch;
    int st = atomic_load(&f->state);
    int verified = atomic_load(&f->verified); /* before written: a verified body's `written` is final */
    uint64_t written = atomic_load(&f->written);
    atomic_fetch_add(&t->app->metrics.responses[t->proto][t->cache_status], 1);
    add_header(req, "x-larder-cache", larder_cache_status_name(t->cache_status));
    const char *ct = f->content_type && *f->content_type ? f->content_type : "application/octet-stream";
    add_header(req, "content-type", ct);
    if (f->etag)
        add_header(req, "x-larder-upstream-etag", f->etag);
    t->off = 0;
    t->end = UINT64_MAX;
    if (f->content_length >= 0)
        t->end = (uint64_t)f->content_length;
    else if (st == LARDER_FETCH_DONE || verified)
        t->end = written;
    int sized = !(t->subst_from && f->streamed); /* substituted while sent: the length is not the file's */
    req->res.status = t->status = 200;
    req->res.reason = "OK";
    /* a single Range is honoured while the object is still arriving when its size is known (its last byte is held
     * back until the whole object is verified, like any response's) */
    h2o_iovec_t range = find_header(req, H2O_TOKEN_RANGE);
    if (range.base && sized && t->end != UINT64_MAX && !find_header(req, H2O_TOKEN_IF_RANGE).base) {
        uint64_t a, b;
        if (parse_range(range, t->end, &a, &b) == 0) {
            char cr[96];
            snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, a, b - 1, t->end);
            add_header(req, "content-range", cr);
            req->res.status = t->status = 206;
            req->res.reason = "Partial Content";
            t->off = a;
            t->end = b;
        }
    }
    if (t->end != UINT64_MAX && sized)
        req->res.content_length = t->end - t->off;
    t->phase = PHASE_SEND;
    h2o_start_response(req, &t->super);
    if (t->is_head) {
        finish_log(t, NULL);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return 1;
    }
    t->counted = 1;
    atomic_fetch_add(&f->tailers, 1);
    return send_step(t);
}

static int wait_step(tailer_t *t)
{
    larder_fetch_t *f = t->fetch;
    int st = atomic_load(&f->state);
    if (t->then) {
        if (st < LARDER_FETCH_DONE) {
            park(t);
            return 0;
        }
        /* hand the request back to the protocol; this tailer is finished without answering */
        t->phase = PHASE_DONE;
        larder_after_fetch_fn then = t->then;
        t->then = NULL;
        /* what was fetched is served in another form by the protocol (a derived document): recorded here */
        if (st == LARDER_FETCH_DONE || st == LARDER_FETCH_NOT_MODIFIED)
            larder_record_served(t->app, t->req, t->proto, t->key);
        then(t->app, t->req, st, t->then_data);
        return 1;
    }
    if (f->buffered && (st == LARDER_FETCH_STREAMING || st == LARDER_FETCH_PENDING)) {
        park(t); /* the rewritten document exists only once committed */
        return 0;
    }
    if (f->buffered && st == LARDER_FETCH_DONE) {
        if (f->uncached)
            return tailer_error(t, 503, "Service Unavailable", "the index page could not be stored (quota or disk full)");
        return serve_stored(t, t->cache_status, NULL);
    }
    switch (st) {
    case LARDER_FETCH_PENDING:
        park(t);
        return 0;
    case LARDER_FETCH_STREAMING:
        /* An HTTP/1.0 response of unknown length ends when the connection closes, so an aborted one looks
         * complete: such a client waits for the verified end and then gets a Content-Length */
        if (f->content_length < 0 && t->req->version < 0x101 && !atomic_load(&f->verified)) {
            park(t);
            return 0;
        }
        return start_stream_response(t);
    case LARDER_FETCH_DONE:
        if (f->streamed && !f->uncached) /* committed: served as stored, with its ETag and length */
            return serve_stored(t, t->cache_status, NULL);
        return start_stream_response(t);
    case LARDER_FETCH_NOT_MODIFIED:
        return serve_stored(t, LARDER_CACHE_REVALIDATED, NULL);
    default: {
        char msg[700];
        if (t->pass) {
            snprintf(msg, sizeof(msg), "the upstream did not answer %s: %s", f->url, f->error);
            return tailer_error(t, 503, "Service Unavailable", msg);
        }
        if (f->status == 404 || f->status == 410) {
            snprintf(msg, sizeof(msg), "not found upstream: %s answered %d", f->url, f->status);
            return tailer_error(t, 404, "Not Found", msg);
        }
        if (t->has_stale) {
            larder_warn("cache: serving stale %s: upstream failed: %s", t->key, f->error);
            return serve_stored(t, LARDER_CACHE_STALE, NULL);
        }
        snprintf(msg, sizeof(msg), "upstream fetch of %s failed: %s", f->url, f->error);
        return tailer_error(t, 502, "Bad Gateway", msg);
    }
    }
}

/* Replace subst_from by subst_to in the n bytes just read into t->buf. A partial match at the end of the chunk
 * is left for the next read (unless the file ends here). Returns how many input bytes were consumed; *out is the
 * bytes to send. */
static size_t substitute(tailer_t *t, size_t n, h2o_iovec_t *out)
{
    const char *from = t->subst_from;
    size_t fl = t->subst_flen, tl = t->subst_tlen;
    size_t keep = n;
    if (t->off + n < t->end) {
        size_t maxk = fl - 1 < n ? fl - 1 : n;
        for (size_t k = maxk; k > 0; k--) {
            if (memcmp(t->buf + n - k, from, k) == 0) {
                keep = n - k;
                break;
            }
        }
        if (keep == 0 && !t->fetch) /* cannot happen with a buffer larger than the token; never stall */
            keep = n;
        if (keep == 0) { /* a growing download: the rest of the token is still to come */
            *out = h2o_iovec_init(t->buf, 0);
            return 0;
        }
    }
    size_t count = 0;
    for (const char *p = t->buf, *e = t->buf + keep; (p = memmem(p, (size_t)(e - p), from, fl)) != NULL; p += fl)
        count++;
    if (count == 0) {
        *out = h2o_iovec_init(t->buf, keep);
        return keep;
    }
    size_t need = keep - count * fl + count * tl;
    if (need > t->sbufsz) {
        char *nb = realloc(t->sbuf, need);
        if (!nb) {
            *out = h2o_iovec_init(t->buf, keep);
            return keep;
        }
        t->sbuf = nb;
        t->sbufsz = need;
    }
    char *o = t->sbuf;
    const char *p = t->buf, *e = t->buf + keep;
    for (const char *m; (m = memmem(p, (size_t)(e - p), from, fl)) != NULL; p = m + fl) {
        memcpy(o, p, (size_t)(m - p));
        o += m - p;
        memcpy(o, t->subst_to, tl);
        o += tl;
    }
    memcpy(o, p, (size_t)(e - p));
    o += e - p;
    *out = h2o_iovec_init(t->sbuf, (size_t)(o - t->sbuf));
    return keep;
}

/* The last buffer of a verified blob is still held back: 1 when the bytes read match the digest. Otherwise the
 * response is aborted (the client is short of Content-Length, or sees no last chunk), the blob is quarantined
 * with every entry that names it, and 0 is returned: the response is over. */
static int verified(tailer_t *t)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_DigestFinal_ex(t->verify, md, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(t->verify);
    t->verify = NULL;
    char what[80];
    snprintf(what, sizeof(what), "transfer aborted after %" PRIu64 " bytes", t->sent);
    if (digest_matches(t, t->digest, t->fd, ok ? md : NULL, what)) {
        remember_verified(t->digest, t->vino, t->vmtime);
        return 1;
    }
    finish_log(t, "stored blob failed verification");
    h2o_send(t->req, NULL, 0, H2O_SEND_STATE_ERROR);
    return 0;
}

/* The next bytes of a fetch being tailed, [t->off, limit) (at most TAIL_MAP_STEP, within one window), from a mapping
 * of its file: 0 and *v set, or -1 (pread then). h2o is done with the previous buffer when this runs (it is called
 * from proceed, or for a parked tailer that had nothing in flight), so the old window can go. Only bytes below
 * `written` are touched, so the part of a window past the end of the growing file is never read. */
static int tail_map(tailer_t *t, int fd, uint64_t limit, h2o_iovec_t *v)
{
    uint64_t base = t->off & ~(TAIL_MAP_WINDOW - 1);
    if (t->map && t->map_off != base) {
        munmap(t->map, TAIL_MAP_WINDOW);
        t->map = NULL;
    }
    if (!t->map) {
        void *m = mmap(NULL, TAIL_MAP_WINDOW, PROT_READ, MAP_SHARED, fd, (off_t)base);
        if (m == MAP_FAILED)
            return -1;
        t->map = m;
        t->map_off = base;
    }
    uint64_t n = limit - t->off, room = base + TAIL_MAP_WINDOW - t->off;
    if (n > room)
        n = room;
    if (n > TAIL_MAP_STEP)
        n = TAIL_MAP_STEP;
#ifdef MADV_POPULATE_READ
    /* map the step's pages in one call rather than a page fault per 16 pages as the socket copies them */
    uint64_t pa = t->off & ~(uint64_t)4095;
    (void)madvise(t->map + (pa - base), (size_t)(t->off + n - pa), MADV_POPULATE_READ);
#endif
    *v = h2o_iovec_init(t->map + (t->off - base), (size_t)n);
    return 0;
}

/* Push the next buffer. Returns 1 when the response is over (t must not be touched after). */
static int send_step(tailer_t *t)
{
    if (t->phase == PHASE_WAIT)
        return wait_step(t);
    if (t->phase == PHASE_DONE)
        return 1;
    h2o_req_t *req = t->req;
    larder_fetch_t *f = t->fetch;
    int st = f ? atomic_load(&f->state) : LARDER_FETCH_DONE;
    uint64_t limit = t->end;
    int fd = t->fd;
    int complete = 1; /* the bytes up to `end` are all there and verified */
    if (f) {
        /* verified before written is read: a verified body's `written` is final */
        complete = st == LARDER_FETCH_DONE || atomic_load(&f->verified);
        uint64_t w = atomic_load(&f->written);
        fd = f->fd;
        if (complete && t->end == UINT64_MAX)
            t->end = w;
        limit = w < t->end ? w : t->end;
        /* Hold back the last byte until the body is verified (its fsync and commit may still run): a client must
         * never receive a complete response whose digest turns out wrong (its connection is aborted instead). Of
         * unknown length, the last byte written so far is the one held back. */
        if (!complete && t->end != UINT64_MAX && limit == t->end)
            limit = t->end - 1;
        else if (!complete && t->end == UINT64_MAX && limit > 0)
            limit--;
        /* Pacing: while a download runs on a starved curl thread (larder_fetcher_starved: it waited for a CPU a
         * tenth of the time), its tailers together send no more than has arrived, each its share (at least one step
         * ahead of what it has sent); over its share, a tailer waits for the next wake-up of the fetch. On shared
         * cores, 100 clients each copying every byte as it arrives slowed the download itself by 1.5-3 times. With
         * CPU to spare they are not paced. Once the body is verified they catch up at full speed from the page
         * cache. TTFB is not paced: a tailer's first bytes go out at once. */
        int ntail = atomic_load(&f->tailers);
        if (!complete && st == LARDER_FETCH_STREAMING && ntail > 1 && t->sent > 0 &&
            t->sent >= w / (uint64_t)ntail && larder_fetcher_starved(t->app->fetcher)) {
            park(t);
            return 0;
        }
        /* a streamed document substituted while sent goes through t->buf below (substitute() works there) */
        if (t->off < limit && !(t->subst_from && f->streamed)) {
            h2o_iovec_t v;
            if (tail_map(t, fd, limit, &v) == 0) {
                t->off += v.len;
                t->sent += v.len;
                if (t->off >= t->end) {
                    finish_log(t, NULL);
                    h2o_send(req, &v, 1, H2O_SEND_STATE_FINAL);
                    return 1;
                }
                h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
                return 0;
            }
        }
    }
    if (t->off < limit) {
        if (!t->buf) {
            uint64_t want = t->end == UINT64_MAX ? TAIL_BUFSZ : t->end - t->off;
            t->bufsz = want < TAIL_BUFSZ ? (size_t)want : TAIL_BUFSZ;
            t->buf = h2o_mem_alloc_pool(&req->pool, t->bufsz);
        }
        uint64_t n = limit - t->off;
        if (n > t->bufsz)
            n = t->bufsz;
        ssize_t r = pread(fd, t->buf, (size_t)n, (off_t)t->off);
        if (r <= 0) {
            larder_err("cache: read of %s failed at %" PRIu64 ": %s", t->key, t->off, r < 0 ? strerror(errno) : "EOF");
            finish_log(t, "read error");
            h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
            return 1;
        }
        h2o_iovec_t v = h2o_iovec_init(t->buf, (size_t)r);
        if (t->subst_from && (!f || f->streamed)) { /* a streaming transform's output is a stored document */
            r = (ssize_t)substitute(t, (size_t)r, &v);
            if (r == 0) { /* only the start of a token so far: wait for the rest */
                park(t);
                return 0;
            }
        }
        if (t->verify && !f)
            EVP_DigestUpdate(t->verify, t->buf, (size_t)r); /* the stored bytes consumed, before substitution */
        t->off += (uint64_t)r;
        if (t->off >= t->end && t->verify && !f && !verified(t))
            return 1;
        t->sent += v.len;
        if (t->off >= t->end) {
            finish_log(t, NULL);
            h2o_send(req, &v, 1, H2O_SEND_STATE_FINAL);
            return 1;
        }
        h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
        return 0;
    }
    if (t->off >= t->end) {
        finish_log(t, NULL);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return 1;
    }
    if (st == LARDER_FETCH_FAILED || complete) {
        /* complete here means the upstream sent less than announced, which fetch.c reports as FAILED; be safe */
        finish_log(t, f && f->error[0] ? f->error : "upstream failed");
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return 1;
    }
    park(t);
    return 0;
}

void larder_cache_on_wake(void)
{
    /* take the whole list: tailers that still have nothing to send park again */
    h2o_linklist_t todo;
    h2o_linklist_init_anchor(&todo);
    h2o_linklist_insert_list(&todo, blocked_list());
    nblocked = 0;
    while (!h2o_linklist_is_empty(&todo)) {
        tailer_t *t = H2O_STRUCT_FROM_MEMBER(tailer_t, link, todo.next);
        h2o_linklist_unlink(&t->link);
        on_proceed(&t->super, t->req);
    }
}

size_t larder_cache_blocked(void) { return nblocked; }

/* ---- entry points ---- */

static void serve_passthrough(larder_app_t *app, h2o_req_t *req, const larder_mapping_t *m)
{
    static _Atomic uint64_t counter;
    if (app->cfg->offline || !m->url) {
        add_header(req, "x-larder-cache", "BYPASS");
        add_header(req, "retry-after", "3600");
        larder_send_error(app, req, m->proto, 503, "Service Unavailable",
                          "larder is offline: %s is answered by the upstream only and is never cached", m->key);
        return;
    }
    int post = is_method(req, "POST");
    if (!post && !is_method(req, "GET") && !is_method(req, "HEAD")) {
        add_header(req, "allow", "GET, HEAD, POST");
        larder_send_error(app, req, m->proto, 405, "Method Not Allowed", "only GET, HEAD and POST are supported here");
        return;
    }
    char key[96];
    snprintf(key, sizeof(key), "pass/%" PRIu64 "/%s", atomic_fetch_add(&counter, 1), m->key);
    tailer_t *t = tailer_new(app, req, m->proto, key);
    t->cache_status = LARDER_CACHE_BYPASS;
    h2o_iovec_t ct = find_header(req, H2O_TOKEN_CONTENT_TYPE);
    char *ctype = ct.base ? h2o_strdup(&req->pool, ct.base, ct.len).base : NULL;
    larder_fetch_req_t fr = {.proto = m->proto,
                             .key = key,
                             .url = m->url,
                             .accept = m->accept,
                             .nostore = 1,
                             .body = post ? (req->entity.base ? req->entity.base : "") : NULL,
                             .body_len = post ? req->entity.len : 0,
                             .body_type = ctype};
    int how;
    t->fetch = larder_fetch_start(app->fetcher, &fr, &how);
    if (!t->fetch) {
        tailer_error(t, 503, "Service Unavailable", "could not start the upstream request");
        return;
    }
    t->pass = 1;
    t->phase = PHASE_WAIT;
    on_proceed(&t->super, req);
}

void larder_cache_serve(larder_app_t *app, h2o_req_t *req, const larder_mapping_t *m)
{
    if (m->passthrough) {
        serve_passthrough(app, req, m);
        return;
    }
    if (!is_method(req, "GET") && !is_method(req, "HEAD")) {
        add_header(req, "allow", "GET, HEAD");
        larder_send_error(app, req, m->proto, 405, "Method Not Allowed", "only GET and HEAD are supported here");
        return;
    }
    tailer_t *t = tailer_new(app, req, m->proto, m->key);
    tailer_apply(t, m);
    for (int attempt = 0; attempt < 2; attempt++) {
        larder_entry_t e;
        int r = larder_store_get(app->store, m->proto, m->key, &e);
        larder_fetch_req_t fr = {.proto = m->proto,
                                 .key = m->key,
                                 .url = m->url,
                                 .sha256 = m->sha256,
                                 .integrity = m->integrity,
                                 .entry_flags = m->flags,
                                 .ttl = m->ttl,
                                 .accept = m->accept,
                                 .transform = m->transform,
                                 .stream = m->stream,
                                 .stream_keys = {m->stream_keys[0], m->stream_keys[1]},
                                 .auth_scope_key = m->auth_scope_key,
                                 .auth_user = m->auth_user,
                                 .auth_pass = m->auth_pass};
        if (r == 0 && !larder_entry_satisfies(app->store, m->proto, &e, m->sha256, m->integrity)) {
            /* stored by a request that expected no digest (a mirror path naming a pin's URL, a tarball requested
             * before its packument): never an answer to one that does. A miss: fetch and verify, and the verified
             * object replaces it; never a conditional request that could renew the wrong entry */
            larder_warn("cache: stored %s (sha256 %.16s...) does not match the expected %s; fetching it again",
                        m->key, e.digest, m->sha256 ? "sha256" : "integrity");
            larder_entry_clear(&e);
            if (app->cfg->offline || !m->url) {
                char msg[1200];
                snprintf(msg, sizeof(msg),
                         "the cached copy of %s does not match the expected %s %.100s, and %s.\n"
                         "Seed it while online: list it in a seed spec and run `larder seed SPEC.yaml`.",
                         m->url ? m->url : m->key, m->sha256 ? "sha256" : "integrity",
                         m->sha256 ? m->sha256 : m->integrity,
                         m->url ? "larder is offline" : "it can only come from the cache");
                tailer_error(t, m->url ? 504 : 502, m->url ? "Gateway Timeout" : "Bad Gateway", msg);
                return;
            }
            int how;
            t->fetch = larder_fetch_start(app->fetcher, &fr, &how);
            if (!t->fetch && how == LARDER_FETCH_NOW_CACHED)
                continue; /* a verified copy was committed meanwhile: look again */
        } else if (r == 0) {
            int fresh = larder_entry_is_fresh(&e, larder_now(), m->ttl);
            /* an upstream that just failed to answer is not asked again for a while: stale at once */
            if (fresh || app->cfg->offline || !m->url || larder_fetcher_host_down(app->fetcher, m->url)) {
                int st = fresh ? LARDER_CACHE_HIT : LARDER_CACHE_STALE;
                if (!m->url && m->override_status)
                    st = m->status;
                start_blob_response(t, &e, st);
                larder_entry_clear(&e);
                return;
            }
            /* stale and online: revalidate */
            t->has_stale = 1;
            t->cache_status = LARDER_CACHE_EXPIRED;
            fr.if_none_match = e.etag;
            fr.if_modified_since = e.last_modified;
            char hd[LARDER_SHA256_HEX + 1];
            if (m->head_revalidate) {
                memcpy(hd, e.digest, LARDER_SHA256_HEX);
                hd[LARDER_SHA256_HEX] = 0;
                fr.head_digest = hd;
            }
            int how;
            t->fetch = larder_fetch_start(app->fetcher, &fr, &how);
            larder_entry_clear(&e);
        } else {
            if (r != -ENOENT) {
                tailer_error(t, 500, "Internal Server Error", "metadata store read failed; see the daemon log");
                return;
            }
            if (!m->url) {
                tailer_error(t, 404, "Not Found", "not in the cache");
                return;
            }
            if (app->cfg->offline) {
                char msg[1200];
                snprintf(msg, sizeof(msg),
                         "larder is offline and %s %s is not cached.\n"
                         "Seed it while online: list it in a seed spec and run `larder seed SPEC.yaml` (or record a "
                         "build with `larder record`), or request it once with `offline: false`.",
                         larder_proto_name(m->proto), m->url);
                larder_warn("offline: %s %s is not cached (key %s): answered 504", larder_proto_name(m->proto), m->url,
                            m->key);
                t->cache_status = LARDER_CACHE_MISS;
                tailer_error(t, 504, "Gateway Timeout", msg);
                return;
            }
            int how;
            t->fetch = larder_fetch_start(app->fetcher, &fr, &how);
            if (!t->fetch && how == LARDER_FETCH_NOW_CACHED)
                continue; /* committed meanwhile: look again */
            /* joined a download already complete and verified (its commit still running): answered from Larder's own
             * verified bytes without waiting for the upstream, a HIT as it will be once committed */
            if (t->fetch && how == LARDER_FETCH_JOINED && t->cache_status == LARDER_CACHE_MISS &&
                atomic_load(&t->fetch->verified))
                t->cache_status = LARDER_CACHE_HIT;
        }
        break;
    }
    if (!t->fetch) {
        tailer_error(t, 502, "Bad Gateway", "could not start the upstream fetch");
        return;
    }
    t->phase = PHASE_WAIT;
    on_proceed(&t->super, req);
}

void larder_cache_after_fetch(larder_app_t *app, h2o_req_t *req, int proto, const char *key, larder_fetch_t *fe,
                              larder_after_fetch_fn then, void *data)
{
    tailer_t *t = tailer_new(app, req, proto, key);
    t->fetch = fe;
    t->then = then;
    t->then_data = data;
    t->phase = PHASE_WAIT;
    on_proceed(&t->super, req);
}

void larder_cache_serve_digest(larder_app_t *app, h2o_req_t *req, int proto, const char *digest)
{
    if (!is_method(req, "GET") && !is_method(req, "HEAD")) {
        larder_send_error(app, req, proto, 405, "Method Not Allowed", "only GET and HEAD are supported here");
        return;
    }
    larder_mapping_t m = {.proto = proto};
    if (larder_cache_serve_stored_digest(app, req, &m, digest) < 0) {
        add_header(req, "x-larder-cache", "MISS");
        larder_send_error(app, req, proto, 404, "Not Found",
                          "no cached object has sha256 %s; fetch it once through a pin or mirror, or seed it", digest);
    }
}

int larder_cache_serve_stored_digest(larder_app_t *app, h2o_req_t *req, const larder_mapping_t *m, const char *digest)
{
    uint64_t size;
    if (!larder_store_has_blob(app->store, digest, &size))
        return -1;
    if (!is_method(req, "GET") && !is_method(req, "HEAD")) {
        larder_send_error(app, req, m->proto, 405, "Method Not Allowed", "only GET and HEAD are supported here");
        return 0;
    }
    tailer_t *t = tailer_new(app, req, m->proto, m->key ? m->key : digest);
    tailer_apply(t, m);
    t->no_record = !m->key && !m->record_key; /* a blob found by digest alone: no entry of its own to pin */
    larder_entry_t e = {0};
    memcpy(e.digest, digest, LARDER_SHA256_HEX);
    e.size = size;
    e.flags = LARDER_ENTRY_IMMUTABLE;
    e.atime = larder_now(); /* no entry to touch */
    e.fetched_at = e.atime;
    start_blob_response(t, &e, LARDER_CACHE_HIT);
    return 0;
}
