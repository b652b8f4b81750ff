/* history.c - the counters survive restarts, and their increments are kept as a time series.
 *
 * The counters themselves are the atomics of app->metrics, bumped on the hot path by cache.c, fetch.c and modules.
 * At start-up this file loads each protocol's lifetime totals from the store into them, so every reader (/-/metrics,
 * /-/api/v1/stats) sees lifetime totals. A thread of its own wakes every 10 s (on multiples of 10 s of the wall
 * clock) and at shutdown, takes the increments since its last flush, and writes in one batch: the new totals and
 * the increments added to the minute bucket and the hour bucket they fall in. Nothing here runs on a worker thread
 * except GET /-/api/v1/history, which reads the buckets and adds the increments not flushed yet.
 *
 * Records (module records of each protocol, under a prefix no module uses: m/<proto>/~h/...):
 *   ~h/total        "1 <since> <v0> <v1> ..."   lifetime totals, counted since <since>
 *   ~h/m/<time>     "1 <v0> <v1> ..."           increments in the minute starting at <time> (10 digits)
 *   ~h/h/<time>     the same per hour
 * Minute buckets older than 25 h and hour buckets older than 91 days are deleted by the flusher (a sweep a minute,
 * resp. an hour). Bounded: at most ~1500 minute and ~2200 hour records per protocol, written only when non-zero. */
#include "history.h"
#include "admin.h"

#include "cache.h"
#include "log.h"
#include "module.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FLUSH_EVERY 10

const char *const larder_history_counter_names[LARDER_H_NCOUNTERS] = {
    "requests",    "hits",   "misses", "stale",        "revalidated",    "expired",
    "bypass",      "errors", "bytes_served", "bytes_upstream", "bytes_seed", "bytes_saved",
};

static const struct {
    const char *name;
    uint64_t secs;
} ranges[] = {{"1h", 3600}, {"24h", 86400}, {"7d", 604800}, {"30d", 2592000}, {"90d", 7776000}},
  steps[] = {{"1m", 60}, {"5m", 300}, {"15m", 900}, {"1h", 3600}, {"6h", 21600}, {"1d", 86400}};
#define NRANGES (sizeof(ranges) / sizeof(ranges[0]))
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

uint64_t larder_history_range(const char *s)
{
    for (size_t i = 0; s && i < NRANGES; i++)
        if (!strcmp(s, ranges[i].name))
            return ranges[i].secs;
    return 0;
}

uint64_t larder_history_step(const char *s)
{
    for (size_t i = 0; s && i < NSTEPS; i++)
        if (!strcmp(s, steps[i].name))
            return steps[i].secs;
    return 0;
}

int larder_history_window(uint64_t now, uint64_t range, uint64_t step, uint64_t *start, uint64_t *end, size_t *n,
                          uint64_t *resolution, char *allowed, size_t allowedlen)
{
    uint64_t res = range <= 86400 ? 60 : 3600;
    if (resolution)
        *resolution = res;
    if (range == 0 || step < res || step > range || range % step) {
        size_t l = 0;
        if (allowedlen)
            allowed[0] = 0;
        for (size_t i = 0; i < NSTEPS && range; i++) {
            if (steps[i].secs < res || steps[i].secs > range || range % steps[i].secs)
                continue;
            int w = snprintf(allowed + l, allowedlen - l, "%s%s", l ? ", " : "", steps[i].name);
            if (w < 0 || (size_t)w >= allowedlen - l)
                break;
            l += (size_t)w;
        }
        return -1;
    }
    *end = (now / step + 1) * step;
    *start = *end - range;
    *n = (size_t)(range / step);
    return 0;
}

size_t larder_history_format(char *out, size_t outlen, const uint64_t *v, size_t nv)
{
    size_t l = 0;
    int w = snprintf(out, outlen, "1");
    if (w < 0 || (size_t)w >= outlen)
        return 0;
    l = (size_t)w;
    for (size_t i = 0; i < nv; i++) {
        w = snprintf(out + l, outlen - l, " %" PRIu64, v[i]);
        if (w < 0 || (size_t)w >= outlen - l)
            return 0;
        l += (size_t)w;
    }
    return l;
}

int larder_history_parse(const char *s, size_t len, uint64_t *v, size_t nv)
{
    char buf[512];
    if (len >= sizeof(buf) || len < 1 || s[0] != '1' || (len > 1 && s[1] != ' '))
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *p = buf + 1;
    for (size_t i = 0; *p; i++) {
        if (*p != ' ' || p[1] < '0' || p[1] > '9')
            return -1;
        char *e;
        errno = 0;
        unsigned long long x = strtoull(p + 1, &e, 10);
        if (errno)
            return -1;
        if (i < nv)
            v[i] += x; /* values a later version appended are skipped */
        p = e;
    }
    return 0;
}

/* ---- the counters of app->metrics ---- */

struct larder_history {
    larder_app_t *app;
    pthread_t thread;
    pthread_mutex_t mu; /* flushed[], since[], and the flush itself (the history answer adds what is not flushed) */
    pthread_cond_t cond;
    int stop;
    uint64_t flushed[LARDER_MAX_PROTO][LARDER_H_NCOUNTERS]; /* the totals as last written */
    uint64_t since[LARDER_MAX_PROTO];
    uint64_t swept_minutes, swept_hours;
    int write_failed; /* logged once until a write succeeds */
};

void larder_history_counters(const larder_metrics_t *m, int p, uint64_t *v)
{
    v[LARDER_H_REQUESTS] = atomic_load(&m->requests[p]);
    v[LARDER_H_HITS] = atomic_load(&m->responses[p][LARDER_CACHE_HIT]);
    v[LARDER_H_MISSES] = atomic_load(&m->responses[p][LARDER_CACHE_MISS]);
    v[LARDER_H_STALE] = atomic_load(&m->responses[p][LARDER_CACHE_STALE]);
    v[LARDER_H_REVALIDATED] = atomic_load(&m->responses[p][LARDER_CACHE_REVALIDATED]);
    v[LARDER_H_EXPIRED] = atomic_load(&m->responses[p][LARDER_CACHE_EXPIRED]);
    v[LARDER_H_BYPASS] = atomic_load(&m->responses[p][LARDER_CACHE_BYPASS]);
    v[LARDER_H_ERRORS] = atomic_load(&m->errors[p]);
    v[LARDER_H_BYTES_SERVED] = atomic_load(&m->bytes_served[p]);
    v[LARDER_H_BYTES_UPSTREAM] = atomic_load(&m->bytes_upstream[p]);
    v[LARDER_H_BYTES_SEED] = atomic_load(&m->bytes_seed[p]);
    v[LARDER_H_BYTES_SAVED] = atomic_load(&m->bytes_saved[p]);
}

static void restore_counters(larder_metrics_t *m, int p, const uint64_t *v)
{
    atomic_store(&m->requests[p], v[LARDER_H_REQUESTS]);
    atomic_store(&m->responses[p][LARDER_CACHE_HIT], v[LARDER_H_HITS]);
    atomic_store(&m->responses[p][LARDER_CACHE_MISS], v[LARDER_H_MISSES]);
    atomic_store(&m->responses[p][LARDER_CACHE_STALE], v[LARDER_H_STALE]);
    atomic_store(&m->responses[p][LARDER_CACHE_REVALIDATED], v[LARDER_H_REVALIDATED]);
    atomic_store(&m->responses[p][LARDER_CACHE_EXPIRED], v[LARDER_H_EXPIRED]);
    atomic_store(&m->responses[p][LARDER_CACHE_BYPASS], v[LARDER_H_BYPASS]);
    atomic_store(&m->errors[p], v[LARDER_H_ERRORS]);
    atomic_store(&m->bytes_served[p], v[LARDER_H_BYTES_SERVED]);
    atomic_store(&m->bytes_upstream[p], v[LARDER_H_BYTES_UPSTREAM]);
    atomic_store(&m->bytes_seed[p], v[LARDER_H_BYTES_SEED]);
    atomic_store(&m->bytes_saved[p], v[LARDER_H_BYTES_SAVED]);
}

/* the increments since the last flush (the counters only grow; a smaller value reads as none) */
static int pending(larder_history_t *h, int p, uint64_t *delta)
{
    uint64_t now[LARDER_H_NCOUNTERS];
    int any = 0;
    larder_history_counters(&h->app->metrics, p, now);
    for (int i = 0; i < LARDER_H_NCOUNTERS; i++) {
        delta[i] = now[i] > h->flushed[p][i] ? now[i] - h->flushed[p][i] : 0;
        any |= delta[i] != 0;
    }
    return any;
}

static void bucket_key(char *out, size_t n, char res, uint64_t t) { snprintf(out, n, "~h/%c/%010" PRIu64, res, t); }

/* add delta to the bucket record (res 'm' or 'h', at t) in batch b */
static void bucket_add(larder_history_t *h, larder_meta_batch_t *b, int p, char res, uint64_t t, const uint64_t *delta)
{
    char key[32], val[512];
    uint64_t v[LARDER_H_NCOUNTERS] = {0};
    bucket_key(key, sizeof(key), res, t);
    size_t len;
    char *old = larder_store_meta_get(h->app->store, p, key, &len);
    if (old && larder_history_parse(old, len, v, LARDER_H_NCOUNTERS) < 0) {
        larder_warn("history: %s record %s is malformed; it starts again from zero", larder_proto_name(p), key);
        memset(v, 0, sizeof(v));
    }
    free(old);
    for (int i = 0; i < LARDER_H_NCOUNTERS; i++)
        v[i] += delta[i];
    size_t l = larder_history_format(val, sizeof(val), v, LARDER_H_NCOUNTERS);
    if (l)
        larder_meta_batch_put(b, p, key, val, l);
}

typedef struct sweep_ctx {
    larder_meta_batch_t *b;
    uint64_t before;
    size_t skip; /* bytes of "~h/m/" */
    int n;
} sweep_ctx_t;

static int sweep_cb(void *arg, int proto, const char *key, const char *val, size_t len)
{
    (void)val;
    (void)len;
    sweep_ctx_t *c = arg;
    uint64_t t = strtoull(key + c->skip, NULL, 10);
    if (t >= c->before)
        return 1; /* keys are in time order: the rest is newer */
    larder_meta_batch_delete(c->b, proto, key);
    c->n++;
    return 0;
}

static void sweep(larder_history_t *h, larder_meta_batch_t *b, char res, uint64_t before)
{
    char prefix[8];
    snprintf(prefix, sizeof(prefix), "~h/%c/", res);
    for (int p = 0; p < larder_proto_count(); p++) {
        sweep_ctx_t c = {b, before, strlen(prefix), 0};
        if (larder_store_each_meta(h->app->store, p, prefix, sweep_cb, &c) < 0)
            larder_warn("history: reading the %s %s buckets to prune them failed", larder_proto_name(p),
                        res == 'm' ? "minute" : "hour");
    }
}

/* write the increments since the last flush into the buckets of time `at`, and the totals */
static void flush(larder_history_t *h, uint64_t at, int force_totals)
{
    pthread_mutex_lock(&h->mu);
    larder_meta_batch_t *b = larder_store_meta_begin(h->app->store);
    uint64_t cur[LARDER_MAX_PROTO][LARDER_H_NCOUNTERS];
    int wrote = 0;
    for (int p = 0; p < larder_proto_count(); p++) {
        uint64_t delta[LARDER_H_NCOUNTERS];
        larder_history_counters(&h->app->metrics, p, cur[p]);
        int any = 0;
        for (int i = 0; i < LARDER_H_NCOUNTERS; i++) {
            delta[i] = cur[p][i] > h->flushed[p][i] ? cur[p][i] - h->flushed[p][i] : 0;
            any |= delta[i] != 0;
        }
        if (!any && !force_totals)
            continue;
        if (any) {
            bucket_add(h, b, p, 'm', at / 60 * 60, delta);
            bucket_add(h, b, p, 'h', at / 3600 * 3600, delta);
        }
        uint64_t tv[1 + LARDER_H_NCOUNTERS];
        tv[0] = h->since[p];
        memcpy(tv + 1, cur[p], sizeof(cur[p]));
        char val[600];
        size_t l = larder_history_format(val, sizeof(val), tv, 1 + LARDER_H_NCOUNTERS);
        if (l)
            larder_meta_batch_put(b, p, "~h/total", val, l);
        wrote = 1;
    }
    if (at >= h->swept_minutes + 60) {
        sweep(h, b, 'm', at > LARDER_HISTORY_MINUTE_KEEP ? at - LARDER_HISTORY_MINUTE_KEEP : 0);
        h->swept_minutes = at;
        wrote = 1;
    }
    if (at >= h->swept_hours + 3600) {
        sweep(h, b, 'h', at > LARDER_HISTORY_HOUR_KEEP ? at - LARDER_HISTORY_HOUR_KEEP : 0);
        h->swept_hours = at;
        wrote = 1;
    }
    if (!wrote) {
        larder_store_meta_discard(b);
    } else if (larder_store_meta_commit(h->app->store, b) == 0) {
        memcpy(h->flushed, cur, sizeof(cur[0]) * (size_t)larder_proto_count());
        if (h->write_failed)
            larder_info("history: the counters are written again");
        h->write_failed = 0;
    } else if (!h->write_failed) { /* kept in memory: the next flush writes the increments */
        larder_err("history: writing the counters to the store failed; retrying every %d s", FLUSH_EVERY);
        h->write_failed = 1;
    }
    pthread_mutex_unlock(&h->mu);
}

static void *flusher(void *arg)
{
    larder_history_t *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        /* wake just after the next multiple of FLUSH_EVERY: the increments of [t - 10, t) go to t - 1's buckets */
        uint64_t next = ((uint64_t)ts.tv_sec / FLUSH_EVERY + 1) * FLUSH_EVERY;
        ts.tv_sec = (time_t)next;
        ts.tv_nsec = 20000000L; /* 20 ms */
        int r = 0;
        while (!h->stop && r != ETIMEDOUT)
            r = pthread_cond_timedwait(&h->cond, &h->mu, &ts);
        if (h->stop)
            break;
        pthread_mutex_unlock(&h->mu);
        flush(h, next - 1, 0);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

larder_history_t *larder_history_create(larder_app_t *app)
{
    larder_history_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->app = app;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cond, NULL);
    uint64_t now = larder_now();
    for (int p = 0; p < larder_proto_count(); p++) {
        size_t len;
        char *s = larder_store_meta_get(app->store, p, "~h/total", &len);
        uint64_t tv[1 + LARDER_H_NCOUNTERS] = {0};
        if (s && (larder_history_parse(s, len, tv, 1 + LARDER_H_NCOUNTERS) < 0 || tv[0] == 0)) {
            larder_warn("history: the %s counters' record is malformed; they start again from zero",
                        larder_proto_name(p));
            memset(tv, 0, sizeof(tv));
        }
        free(s);
        h->since[p] = tv[0] ? tv[0] : now;
        restore_counters(&app->metrics, p, tv + 1);
        memcpy(h->flushed[p], tv + 1, sizeof(h->flushed[p]));
    }
    h->swept_minutes = h->swept_hours = 0; /* the first flush prunes what is left from long ago */
    flush(h, now, 1); /* `since` of new protocols is written at once */
    if (pthread_create(&h->thread, NULL, flusher, h) != 0) {
        larder_err("history: cannot start the thread that writes the counters");
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    return h;
}

void larder_history_destroy(larder_history_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    flush(h, larder_now(), 0);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

uint64_t larder_history_since(larder_history_t *h)
{
    uint64_t s = UINT64_MAX;
    pthread_mutex_lock(&h->mu);
    for (int p = 0; p < larder_proto_count(); p++)
        if (h->since[p] < s)
            s = h->since[p];
    pthread_mutex_unlock(&h->mu);
    return s == UINT64_MAX ? 0 : s;
}

/* ---- GET /-/api/v1/history ---- */

/* the value of query parameter `name` (as sent: the names and values used here need no decoding); 1 when present */
static int query_param(h2o_req_t *req, const char *name, char *out, size_t outlen)
{
    if (req->input.query_at == SIZE_MAX)
        return 0;
    const char *q = req->input.path.base + req->input.query_at + 1;
    const char *end = req->input.path.base + req->input.path.len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *seg_end = amp ? amp : end;
        if ((size_t)(seg_end - q) > nl && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t vl = (size_t)(seg_end - q) - nl - 1;
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, q + nl + 1, vl);
            out[vl] = 0;
            return 1;
        }
        q = amp ? amp + 1 : end;
    }
    return 0;
}

typedef struct query_ctx {
    uint64_t start, end, step;
    size_t n, skip;
    uint64_t *sums; /* [proto][counter][n] */
    int bad;
} query_ctx_t;

static uint64_t *series_of(query_ctx_t *c, int p, int i) { return c->sums + ((size_t)p * LARDER_H_NCOUNTERS + (size_t)i) * c->n; }

static void add_at(query_ctx_t *c, int p, uint64_t t, const uint64_t *v)
{
    if (t < c->start || t >= c->end)
        return;
    size_t k = (size_t)((t - c->start) / c->step);
    for (int i = 0; i < LARDER_H_NCOUNTERS; i++)
        series_of(c, p, i)[k] += v[i];
}

static int query_cb(void *arg, int proto, const char *key, const char *val, size_t len)
{
    query_ctx_t *c = arg;
    uint64_t t = strtoull(key + c->skip, NULL, 10), v[LARDER_H_NCOUNTERS] = {0};
    if (t >= c->end)
        return 1;
    if (larder_history_parse(val, len, v, LARDER_H_NCOUNTERS) < 0) {
        c->bad++;
        return 0;
    }
    add_at(c, proto, t, v);
    return 0;
}

static json_t *series_json(query_ctx_t *c, int p)
{
    json_t *s = json_object();
    for (int i = 0; i < LARDER_H_NCOUNTERS; i++) {
        json_t *a = json_array();
        const uint64_t *v = series_of(c, p, i);
        for (size_t k = 0; k < c->n; k++)
            json_array_append_new(a, json_integer((json_int_t)v[k]));
        json_object_set_new(s, larder_history_counter_names[i], a);
    }
    return s;
}

void larder_history_handle(larder_app_t *app, h2o_req_t *req)
{
    /* admin.c's router answers any other method than GET and HEAD with 405 and Allow */
    larder_history_t *h = app->history;
    if (!h) {
        larder_admin_error(app, req, 503, "the history is not available");
        return;
    }
    char rs[16] = "24h", ss[16] = "5m", allowed[64], msg[256];
    query_param(req, "range", rs, sizeof(rs));
    query_param(req, "step", ss, sizeof(ss));
    uint64_t range = larder_history_range(rs), step = larder_history_step(ss), res;
    if (!range) {
        larder_admin_error(app, req, 400, "range must be one of 1h, 24h, 7d, 30d, 90d");
        return;
    }
    if (!step) {
        larder_admin_error(app, req, 400, "step must be one of 1m, 5m, 15m, 1h, 6h, 1d");
        return;
    }
    query_ctx_t c = {0};
    c.step = step;
    if (larder_history_window(larder_now(), range, step, &c.start, &c.end, &c.n, &res, allowed, sizeof(allowed)) < 0) {
        snprintf(msg, sizeof(msg), "step %s is not allowed for range %s (%s kept): use one of %s", ss, rs,
                 res == 60 ? "minute buckets are" : "only hour buckets are", allowed);
        larder_admin_error(app, req, 400, msg);
        return;
    }
    int np = larder_proto_count();
    c.sums = calloc((size_t)(np + 1) * LARDER_H_NCOUNTERS * c.n, sizeof(uint64_t));
    if (!c.sums) {
        larder_admin_error(app, req, 500, "out of memory");
        return;
    }
    const char *prefix = res == 60 ? "~h/m/" : "~h/h/";
    c.skip = strlen(prefix);
    int failed = 0;
    /* under the flusher's lock: the records and the increments not written yet are counted once each */
    pthread_mutex_lock(&h->mu);
    uint64_t now = larder_now();
    for (int p = 0; p < np && !failed; p++) {
        uint64_t d[LARDER_H_NCOUNTERS];
        failed = larder_store_each_meta(app->store, p, prefix, query_cb, &c) < 0;
        if (pending(h, p, d))
            add_at(&c, p, now, d);
    }
    pthread_mutex_unlock(&h->mu);
    if (failed) {
        free(c.sums);
        larder_admin_error(app, req, 500, "metadata store read failed; see the log");
        return;
    }
    if (c.bad)
        larder_warn("history: %d malformed bucket record(s) skipped", c.bad);
    for (int p = 0; p < np; p++)
        for (int i = 0; i < LARDER_H_NCOUNTERS; i++)
            for (size_t k = 0; k < c.n; k++)
                series_of(&c, np, i)[k] += series_of(&c, p, i)[k];
    json_t *times = json_array(), *series = json_object();
    for (size_t k = 0; k < c.n; k++)
        json_array_append_new(times, json_integer((json_int_t)c.start + (json_int_t)k * (json_int_t)step));
    json_object_set_new(series, "total", series_json(&c, np));
    for (int p = 0; p < np; p++)
        json_object_set_new(series, larder_proto_name(p), series_json(&c, p));
    free(c.sums);
    larder_admin_send_json(app, req, 200, json_pack("{s:I, s:I, s:I, s:s, s:I, s:o, s:o}", "start", (json_int_t)c.start, "end", (json_int_t)c.end,
                        "step", (json_int_t)step, "range", rs, "resolution", (json_int_t)res, "times", times, "series",
                        series));
}
