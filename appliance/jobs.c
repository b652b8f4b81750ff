/* jobs.c - seed jobs.
 *
 * A job is a parsed seed spec plus one record per item. Submitting resolves every item through its protocol
 * (so only what the config allows can be seeded), pins items already cached and starts (or joins) a
 * single-flight fetch for the rest, with the job's pin set attached so the commit pins atomically. Fetch
 * completions arrive on the fetch thread; they pin again (a joined fetch was started without the set) and
 * record success or the error. A cancelled job starts nothing more and detaches from its fetches (which stop when
 * nobody else waits for them); a retry runs the job's spec again in place, keeping its done items. Jobs live in
 * memory and in the store (jobs_persist below: one record per job, written by a thread of its own at state
 * changes and every PERSIST_SECONDS while running), so they survive restarts (a running one comes back
 * interrupted). All job state is under one mutex; nothing here blocks on the network. */
#include "jobs.h"
#include "log.h"
#include "module.h"
#include "seedspec.h"

#include <inttypes.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PERSIST_SECONDS 2
#define INTERRUPTED_ERROR "the daemon stopped before this item finished"

enum { ITEM_PENDING = 0, ITEM_RUNNING, ITEM_DONE, ITEM_FAILED, ITEM_CANCELLED };
static const char *const item_states[] = {"pending", "running", "done", "failed", "cancelled"};

typedef struct job job_t;
typedef struct done_ctx done_ctx_t;

typedef struct job_item {
    job_t *job;
    int state;
    int proto;
    char *label;
    char *key;
    char error[300];
    uint64_t bytes, size; /* size: expected total, 0 unknown */
    larder_fetch_t *fe;   /* while its fetch runs (a reference of ours), else NULL */
    done_ctx_t *waiter;   /* the on_done context registered with fe */
    int retrying;         /* a done item being seeded again by a retry */
    int registering;      /* fe set, its on_done waiter not yet registered: a cancel leaves the detach to the adder */
    larder_seed_then_fn then;
    void *then_data;
} job_item_t;

struct larder_seed_ctx {
    larder_jobs_t *jobs;
    job_t *job;
};

struct job {
    char id[40];
    char *pin_set;
    char kind[32];
    uint64_t created, finished;
    size_t nitems, ndone, nfailed, ncancelled;
    int adding;      /* submission still expanding items: not finished even if every item so far is */
    int cancelled;   /* DELETEd: nothing new starts */
    int interrupted; /* loaded running from the store */
    int retrying;    /* a retry is expanding the spec again */
    int inflight;    /* fetch callbacks still to come: the job may not be freed */
    int dirty;       /* to be written to the store */
    job_item_t **items;
    size_t cap;
    larder_seed_spec_t *spec;
    larder_seed_ctx_t ctx;
    job_t *next;
};

struct larder_jobs {
    larder_app_t *app;
    pthread_mutex_t mu;
    job_t *head;
    uint64_t seq;
    /* the persister: writes dirty jobs at once when woken, running ones every PERSIST_SECONDS */
    pthread_t thread;
    pthread_cond_t cond;
    int stop, started, kick;
    char **deleted; /* ids whose records are to be deleted */
    size_t ndeleted;
};

static void *persist_thread(void *arg);
static void jobs_load(larder_jobs_t *jobs);
static void prune(larder_jobs_t *jobs);

larder_jobs_t *larder_jobs_create(larder_app_t *app)
{
    larder_jobs_t *j = calloc(1, sizeof(*j));
    j->app = app;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cond, NULL);
    if (app && app->store) {
        jobs_load(j);
        pthread_mutex_lock(&j->mu);
        prune(j);
        pthread_mutex_unlock(&j->mu);
        j->started = pthread_create(&j->thread, NULL, persist_thread, j) == 0;
    }
    return j;
}

static int job_finished(const job_t *job)
{
    return !job->adding && job->ndone + job->nfailed + job->ncancelled == job->nitems;
}

static const char *job_state(const job_t *job)
{
    if (job->interrupted)
        return "interrupted";
    if (!job_finished(job))
        return "running";
    return job->cancelled ? "cancelled" : job->nfailed ? "failed" : "done";
}

static void job_free(job_t *job)
{
    for (size_t i = 0; i < job->nitems; i++) {
        free(job->items[i]->label);
        free(job->items[i]->key);
        free(job->items[i]->then_data);
        free(job->items[i]);
    }
    free(job->items);
    free(job->pin_set);
    larder_seed_free(job->spec);
    free(job);
}

static void persist_flush(larder_jobs_t *jobs);

void larder_jobs_shutdown(larder_jobs_t *jobs)
{
    if (!jobs || !jobs->started)
        return;
    pthread_mutex_lock(&jobs->mu);
    jobs->stop = 1;
    pthread_cond_signal(&jobs->cond);
    pthread_mutex_unlock(&jobs->mu);
    pthread_join(jobs->thread, NULL);
    persist_flush(jobs); /* what changed last; a job still running stays "running" and loads interrupted */
    jobs->started = 0;
}

void larder_jobs_destroy(larder_jobs_t *jobs)
{
    if (!jobs)
        return;
    larder_jobs_shutdown(jobs);
    /* fetches still running hold pointers to items: only free jobs that have none */
    job_t *job = jobs->head;
    while (job) {
        job_t *next = job->next;
        if (job->inflight == 0 && !job->adding)
            job_free(job);
        job = next;
    }
    for (size_t i = 0; i < jobs->ndeleted; i++)
        free(jobs->deleted[i]);
    free(jobs->deleted);
    pthread_cond_destroy(&jobs->cond);
    pthread_mutex_destroy(&jobs->mu);
    free(jobs);
}

/* caller holds mu: write this job soon (now, with urgent) */
static void touch(larder_jobs_t *jobs, job_t *job, int urgent)
{
    job->dirty = 1;
    if (urgent) {
        jobs->kick = 1;
        pthread_cond_signal(&jobs->cond);
    }
}

/* caller holds mu */
static void check_finished(larder_jobs_t *jobs, job_t *job)
{
    if (job_finished(job) && !job->finished) {
        job->finished = larder_now();
        larder_info("seed %s (pin set %s) %s: %zu done, %zu failed, %zu cancelled", job->id, job->pin_set,
                    job_state(job), job->ndone, job->nfailed, job->ncancelled);
        touch(jobs, job, 1);
        prune(jobs);
    }
}

/* caller holds mu */
static void item_finish(larder_jobs_t *jobs, job_item_t *it, int state, const char *err)
{
    job_t *job = it->job;
    if (it->state != ITEM_PENDING && it->state != ITEM_RUNNING)
        return;
    it->state = state;
    if (state == ITEM_DONE)
        job->ndone++;
    else if (state == ITEM_CANCELLED)
        job->ncancelled++;
    else {
        job->nfailed++;
        snprintf(it->error, sizeof(it->error), "%s", err ? err : "failed");
        larder_warn("seed %s: %s: %s", job->id, it->label, it->error);
    }
    touch(jobs, job, 0);
    check_finished(jobs, job);
}

static job_item_t *new_item(larder_seed_ctx_t *c, const char *label, int proto, const char *key)
{
    pthread_mutex_lock(&c->jobs->mu);
    job_t *job = c->job;
    if (job->retrying) /* a retry reaches a done item again: the same record, seeded again */
        for (size_t i = 0; i < job->nitems; i++) {
            job_item_t *o = job->items[i];
            if (o->state == ITEM_DONE && !o->retrying && o->proto == proto && !strcmp(o->label, label) &&
                ((!o->key && !key) || (o->key && key && !strcmp(o->key, key)))) {
                o->retrying = 1;
                o->state = ITEM_RUNNING;
                job->ndone--;
                pthread_mutex_unlock(&c->jobs->mu);
                return o;
            }
        }
    job_item_t *it = calloc(1, sizeof(*it));
    it->job = job;
    it->proto = proto;
    it->state = ITEM_RUNNING;
    it->label = strdup(label);
    it->key = key ? strdup(key) : NULL;
    if (job->nitems == job->cap) {
        job->cap = job->cap ? job->cap * 2 : 16;
        job->items = realloc(job->items, job->cap * sizeof(*job->items)); // NOLINT(bugprone-sizeof-expression): an array of pointers
    }
    job->items[job->nitems++] = it;
    touch(c->jobs, job, 0);
    pthread_mutex_unlock(&c->jobs->mu);
    return it;
}

/* pinning succeeded: run the follow-up (which may add items) before the item counts as done */
static void item_succeeded(larder_seed_ctx_t *c, job_item_t *it)
{
    if (it->then)
        it->then(c, it->proto, it->key, it->then_data);
    free(it->then_data);
    it->then_data = NULL;
    pthread_mutex_lock(&c->jobs->mu);
    item_finish(c->jobs, it, ITEM_DONE, NULL);
    pthread_mutex_unlock(&c->jobs->mu);
}

static void item_failed(larder_seed_ctx_t *c, job_item_t *it, const char *err)
{
    free(it->then_data);
    it->then_data = NULL;
    pthread_mutex_lock(&c->jobs->mu);
    item_finish(c->jobs, it, ITEM_FAILED, err);
    pthread_mutex_unlock(&c->jobs->mu);
}

void larder_seed_fail(larder_seed_ctx_t *c, const char *label, const char *err)
{
    job_item_t *it = new_item(c, label, -1, NULL);
    item_failed(c, it, err);
}

larder_app_t *larder_seed_app(larder_seed_ctx_t *c) { return c->jobs->app; }
const struct larder_seed_spec *larder_seed_spec_of(larder_seed_ctx_t *c) { return c->job->spec; }

struct done_ctx {
    larder_seed_ctx_t *c;
    job_item_t *item;
};

static void on_fetch_done(larder_fetch_t *fe, void *arg)
{
    done_ctx_t *d = arg;
    larder_seed_ctx_t *c = d->c;
    job_item_t *it = d->item;
    free(d);
    int st = atomic_load(&fe->state);
    int ok = (st == LARDER_FETCH_DONE && !fe->uncached) || st == LARDER_FETCH_NOT_MODIFIED;
    char err[300];
    snprintf(err, sizeof(err), "%s", fe->error[0] ? fe->error : "upstream failed");
    pthread_mutex_lock(&c->jobs->mu);
    it->bytes = atomic_load(&fe->written);
    if (ok && it->bytes)
        it->size = it->bytes;
    it->fe = NULL;
    it->waiter = NULL;
    int cancelled = it->state == ITEM_CANCELLED;
    pthread_mutex_unlock(&c->jobs->mu);
    larder_fetch_release(fe);
    if (!cancelled) {
        if (ok && larder_store_pin(c->jobs->app->store, c->job->pin_set, it->proto, it->key) < 0) {
            ok = 0;
            snprintf(err, sizeof(err), "pinning failed");
        }
        if (ok)
            item_succeeded(c, it);
        else
            item_failed(c, it, err);
    }
    pthread_mutex_lock(&c->jobs->mu);
    c->job->inflight--;
    pthread_mutex_unlock(&c->jobs->mu);
}

void larder_seed_add(larder_seed_ctx_t *c, const char *label, const larder_fetch_req_t *fr_in, larder_seed_then_fn then,
                     void *data)
{
    larder_app_t *app = c->jobs->app;
    job_item_t *it = new_item(c, label, fr_in->proto, fr_in->key);
    it->retrying = 0;
    free(it->then_data);
    it->then = then;
    it->then_data = data;
    pthread_mutex_lock(&c->jobs->mu);
    int cancelled = c->job->cancelled;
    if (cancelled) { /* pending items of a cancelled job never start */
        free(it->then_data);
        it->then_data = NULL;
        item_finish(c->jobs, it, ITEM_CANCELLED, NULL);
    }
    pthread_mutex_unlock(&c->jobs->mu);
    if (cancelled)
        return;
    larder_fetch_req_t fr = *fr_in;
    fr.pin_set = c->job->pin_set;
    larder_entry_t ent;
    int mismatch = 0;
    if (larder_store_get(app->store, it->proto, it->key, &ent) == 0) {
        /* an entry stored without the digest this item expects (a mirror path, an unpinned request) never counts */
        mismatch = !larder_entry_satisfies(app->store, it->proto, &ent, fr.sha256, fr.integrity);
        int usable = !mismatch && (larder_entry_is_fresh(&ent, larder_now(), fr.ttl) || app->cfg->offline);
        it->bytes = it->size = ent.size;
        larder_entry_clear(&ent);
        if (usable) {
            if (larder_store_pin(app->store, c->job->pin_set, it->proto, it->key) == 0)
                item_succeeded(c, it);
            else
                item_failed(c, it, "pinning failed");
            return;
        }
    }
    if (app->cfg->offline) {
        item_failed(c, it, mismatch ? "offline, and the cached copy does not match the expected digest"
                                    : "offline and not cached");
        return;
    }
    int how;
    larder_fetch_t *fe = larder_fetch_start(app->fetcher, &fr, &how);
    if (!fe) { /* committed meanwhile */
        if (larder_store_pin(app->store, c->job->pin_set, it->proto, it->key) == 0)
            item_succeeded(c, it);
        else
            item_failed(c, it, "pinning failed");
        return;
    }
    done_ctx_t *d = malloc(sizeof(*d));
    d->c = c;
    d->item = it;
    pthread_mutex_lock(&c->jobs->mu);
    it->fe = fe;
    it->waiter = d;
    it->registering = 1;
    c->job->inflight++;
    pthread_mutex_unlock(&c->jobs->mu);
    larder_fetch_on_done(fe, on_fetch_done, d); /* may run on_fetch_done at once */
    pthread_mutex_lock(&c->jobs->mu);
    it->registering = 0;
    /* cancelled meanwhile, and the callback is still to come: detach as the cancel would have */
    if (it->state == ITEM_CANCELLED && it->fe == fe && larder_fetch_detach(fe, on_fetch_done, d)) {
        free(d);
        it->fe = NULL;
        it->waiter = NULL;
        c->job->inflight--;
    }
    pthread_mutex_unlock(&c->jobs->mu);
}

/* expand every item of the job's spec (submission, or a retry) */
static void job_expand(larder_jobs_t *jobs, job_t *job)
{
    larder_app_t *app = jobs->app;
    larder_seed_spec_t *spec = job->spec;
    for (size_t i = 0; i < spec->nitems; i++) {
        const larder_seed_item_t *si = &spec->items[i];
        const larder_protocol_t *proto = larder_protocol_get(si->proto);
        pthread_mutex_lock(&jobs->mu);
        int cancelled = job->cancelled;
        pthread_mutex_unlock(&jobs->mu);
        if (cancelled)
            break;
        if (!proto || !proto->seed) {
            larder_seed_fail(&job->ctx, si->ref, "this protocol cannot be seeded yet");
            continue;
        }
        proto->seed(app, si, &job->ctx);
    }
    pthread_mutex_lock(&jobs->mu);
    job->adding = 0;
    job->retrying = 0;
    for (size_t i = 0; i < job->nitems; i++) /* done items the retry did not reach again stay done */
        job->items[i]->retrying = 0;
    touch(jobs, job, 1);
    check_finished(jobs, job);
    pthread_mutex_unlock(&jobs->mu);
}

int larder_jobs_start(larder_jobs_t *jobs, larder_seed_spec_t *spec, const char *kind, char *id, size_t idlen)
{
    job_t *job = calloc(1, sizeof(*job));
    job->spec = spec;
    job->pin_set = strdup(spec->pin_set);
    snprintf(job->kind, sizeof(job->kind), "%s", kind ? kind : "spec");
    job->created = larder_now();
    job->adding = 1;
    job->ctx.jobs = jobs;
    job->ctx.job = job;
    pthread_mutex_lock(&jobs->mu);
    snprintf(job->id, sizeof(job->id), "%" PRIx64 "-%" PRIu64, job->created, ++jobs->seq);
    job->next = jobs->head;
    jobs->head = job;
    snprintf(id, idlen, "%s", job->id);
    touch(jobs, job, 1);
    pthread_mutex_unlock(&jobs->mu);
    larder_info("seed %s: %zu item(s) (%s) into pin set %s", job->id, spec->nitems, job->kind, job->pin_set);
    job_expand(jobs, job);
    return 0;
}

int larder_jobs_submit(larder_jobs_t *jobs, const char *yaml, size_t len, char *id, size_t idlen, char *err,
                       size_t errlen)
{
    larder_seed_spec_t *spec = larder_seed_parse(yaml, len, err, errlen);
    if (!spec)
        return -1;
    return larder_jobs_start(jobs, spec, "spec", id, idlen);
}

static job_t *find(larder_jobs_t *jobs, const char *id)
{
    for (job_t *job = jobs->head; job; job = job->next)
        if (strcmp(job->id, id) == 0)
            return job;
    return NULL;
}

/* caller holds mu */
static json_t *job_json(const job_t *job, int with_items)
{
    uint64_t bytes = 0;
    json_t *items = with_items ? json_array() : NULL, *errors = with_items ? json_array() : NULL;
    for (size_t i = 0; i < job->nitems; i++) {
        const job_item_t *it = job->items[i];
        uint64_t b = it->bytes, size = it->size;
        if (it->fe) { /* in flight: its progress, and the length announced once the body streams */
            b = atomic_load(&it->fe->written);
            if (atomic_load(&it->fe->state) >= LARDER_FETCH_STREAMING && it->fe->content_length >= 0)
                size = (uint64_t)it->fe->content_length;
        }
        bytes += b;
        if (!with_items)
            continue;
        json_t *jo = json_pack("{s:s, s:s, s:s, s:I}", "protocol", it->proto >= 0 ? larder_proto_name(it->proto) : "-",
                               "ref", it->label, "state", item_states[it->state], "bytes", (json_int_t)b);
        if (size)
            json_object_set_new(jo, "size", json_integer((json_int_t)size));
        if (it->state == ITEM_FAILED) {
            json_object_set_new(jo, "error", json_string(it->error));
            json_array_append_new(errors, json_sprintf("%s: %s", it->label, it->error));
        }
        json_array_append_new(items, jo);
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "id", job->id, "pin_set", job->pin_set,
                          "kind", job->kind, "state", job_state(job), "total", (json_int_t)job->nitems, "done",
                          (json_int_t)job->ndone, "failed", (json_int_t)job->nfailed, "cancelled",
                          (json_int_t)job->ncancelled, "bytes", (json_int_t)bytes, "created",
                          (json_int_t)job->created);
    json_object_set_new(o, "finished", json_integer((json_int_t)job->finished)); /* 0 while running */
    if (with_items) {
        json_object_set_new(o, "items", items);
        json_object_set_new(o, "errors", errors);
    }
    return o;
}

static char *dump(json_t *out)
{
    if (!out)
        return NULL;
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return s;
}

char *larder_jobs_json(larder_jobs_t *jobs, const char *id)
{
    json_t *out = NULL;
    pthread_mutex_lock(&jobs->mu);
    if (id) {
        job_t *job = find(jobs, id);
        out = job ? job_json(job, 1) : NULL;
    } else {
        json_t *arr = json_array();
        for (job_t *job = jobs->head; job; job = job->next)
            json_array_append_new(arr, job_json(job, 0));
        out = json_pack("{s:o}", "jobs", arr);
    }
    pthread_mutex_unlock(&jobs->mu);
    return dump(out);
}

int larder_jobs_cancel(larder_jobs_t *jobs, const char *id, char **json)
{
    *json = NULL;
    pthread_mutex_lock(&jobs->mu);
    job_t *job = find(jobs, id);
    if (!job || job_finished(job) || job->interrupted) {
        pthread_mutex_unlock(&jobs->mu);
        return job ? -EBUSY : -ENOENT;
    }
    job->cancelled = 1;
    size_t detached = 0;
    for (size_t i = 0; i < job->nitems; i++) {
        job_item_t *it = job->items[i];
        if (it->state != ITEM_PENDING && it->state != ITEM_RUNNING)
            continue;
        if (it->fe && !it->registering) {
            /* 0: its callback is already on its way and sees the item cancelled */
            if (larder_fetch_detach(it->fe, on_fetch_done, it->waiter)) {
                free(it->waiter);
                job->inflight--;
                detached++;
            }
            it->fe = NULL;
            it->waiter = NULL;
        }
        free(it->then_data);
        it->then_data = NULL;
        item_finish(jobs, it, ITEM_CANCELLED, NULL);
    }
    larder_info("seed %s cancelled (%zu fetch(es) detached)", job->id, detached);
    touch(jobs, job, 1);
    check_finished(jobs, job);
    *json = dump(job_json(job, 0));
    pthread_mutex_unlock(&jobs->mu);
    return 0;
}

int larder_jobs_retry(larder_jobs_t *jobs, const char *id, size_t *retried)
{
    pthread_mutex_lock(&jobs->mu);
    job_t *job = find(jobs, id);
    if (!job) {
        pthread_mutex_unlock(&jobs->mu);
        return -ENOENT;
    }
    if ((!job_finished(job) && !job->interrupted) || job->inflight || (job->nfailed == 0 && job->ncancelled == 0)) {
        pthread_mutex_unlock(&jobs->mu);
        return -EBUSY;
    }
    /* the failed and cancelled items go; the spec runs again and reaches the done ones again (new_item) */
    size_t keep = 0;
    *retried = job->nfailed + job->ncancelled;
    for (size_t i = 0; i < job->nitems; i++) {
        job_item_t *it = job->items[i];
        if (it->state == ITEM_DONE)
            job->items[keep++] = it;
        else {
            free(it->label);
            free(it->key);
            free(it->then_data);
            free(it);
        }
    }
    job->nitems = keep;
    job->nfailed = job->ncancelled = 0;
    job->cancelled = job->interrupted = 0;
    job->finished = 0;
    job->adding = job->retrying = 1;
    touch(jobs, job, 1);
    pthread_mutex_unlock(&jobs->mu);
    larder_info("seed %s: retrying %zu item(s)", job->id, *retried);
    job_expand(jobs, job);
    return 0;
}

/* ---- persistence: m/-core/jobs/<id> -> {"id", "kind", "pin_set", "created", "finished", "state", "spec", "items"} */

static char *job_record(const job_t *job)
{
    json_t *items = json_array();
    for (size_t i = 0; i < job->nitems; i++) {
        const job_item_t *it = job->items[i];
        json_t *o = json_pack("{s:i, s:s, s:s?, s:i, s:I, s:I}", "p", it->proto, "ref", it->label, "key", it->key,
                              "st", it->state, "bytes", (json_int_t)it->bytes, "size", (json_int_t)it->size);
        if (it->state == ITEM_FAILED)
            json_object_set_new(o, "error", json_string(it->error));
        json_array_append_new(items, o);
    }
    char *yaml = larder_seed_emit(job->spec);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s?, s:o}", "id", job->id, "kind", job->kind, "pin_set",
                          job->pin_set, "created", (json_int_t)job->created, "finished", (json_int_t)job->finished,
                          "state", job_state(job), "spec", yaml, "items", items);
    free(yaml);
    return dump(o);
}

static void persist_flush(larder_jobs_t *jobs)
{
    size_t n = 0, cap = 0;
    char **ids = NULL, **vals = NULL;
    pthread_mutex_lock(&jobs->mu);
    for (job_t *job = jobs->head; job; job = job->next) {
        if (!job->dirty)
            continue;
        job->dirty = 0;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            ids = realloc(ids, cap * sizeof(*ids));
            vals = realloc(vals, cap * sizeof(*vals));
        }
        ids[n] = strdup(job->id);
        vals[n++] = job_record(job);
    }
    char **del = jobs->deleted;
    size_t ndel = jobs->ndeleted;
    jobs->deleted = NULL;
    jobs->ndeleted = 0;
    pthread_mutex_unlock(&jobs->mu);
    if (!n && !ndel)
        return;
    larder_meta_batch_t *b = larder_store_meta_begin(jobs->app->store);
    char k[80];
    for (size_t i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "jobs/%s", ids[i]);
        if (b && vals[i])
            larder_meta_batch_put(b, LARDER_META_CORE, k, vals[i], strlen(vals[i]));
        free(ids[i]);
        free(vals[i]);
    }
    for (size_t i = 0; i < ndel; i++) {
        snprintf(k, sizeof(k), "jobs/%s", del[i]);
        if (b)
            larder_meta_batch_delete(b, LARDER_META_CORE, k);
        free(del[i]);
    }
    free(ids);
    free(vals);
    free(del);
    if (b && larder_store_meta_commit(jobs->app->store, b) < 0)
        larder_warn("seed jobs: writing their records to the store failed; they are kept in memory");
}

static void *persist_thread(void *arg)
{
    larder_jobs_t *jobs = arg;
    pthread_mutex_lock(&jobs->mu);
    while (!jobs->stop) {
        if (!jobs->kick) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += PERSIST_SECONDS;
            pthread_cond_timedwait(&jobs->cond, &jobs->mu, &ts);
        }
        jobs->kick = 0;
        if (jobs->stop)
            break;
        prune(jobs); /* jobs.max_age passes without any job finishing too */
        pthread_mutex_unlock(&jobs->mu);
        persist_flush(jobs);
        pthread_mutex_lock(&jobs->mu);
    }
    pthread_mutex_unlock(&jobs->mu);
    return NULL;
}

/* caller holds mu: forget finished jobs beyond jobs.keep or older than jobs.max_age (never one with callbacks due) */
static void prune(larder_jobs_t *jobs)
{
    const larder_config_t *cfg = jobs->app ? jobs->app->cfg : NULL;
    uint64_t keep = cfg && cfg->jobs_keep ? cfg->jobs_keep : 200, max_age = cfg ? cfg->jobs_max_age : 0;
    uint64_t now = larder_now(), kept = 0;
    for (job_t **pp = &jobs->head; *pp;) {
        job_t *job = *pp;
        int done = (job_finished(job) || job->interrupted) && !job->inflight && !job->adding;
        uint64_t end = job->finished ? job->finished : job->created;
        if (done && (kept >= keep || (max_age && end + max_age < now))) {
            *pp = job->next;
            jobs->deleted = realloc(jobs->deleted, (jobs->ndeleted + 1) * sizeof(*jobs->deleted));
            jobs->deleted[jobs->ndeleted++] = strdup(job->id);
            larder_info("seed %s forgotten (jobs.keep %" PRIu64 ", jobs.max_age %" PRIu64 "s)", job->id, keep, max_age);
            job_free(job);
            continue;
        }
        kept += done ? 1U : 0U;
        pp = &job->next;
    }
    if (jobs->ndeleted) {
        jobs->kick = 1;
        pthread_cond_signal(&jobs->cond);
    }
}

typedef struct load_ctx {
    larder_jobs_t *jobs;
    job_t **v;
    size_t n, cap;
} load_ctx_t;

static int load_one(void *arg, int proto, const char *key, const char *val, size_t len)
{
    (void)proto, (void)key;
    load_ctx_t *c = arg;
    json_t *o = json_loadb(val, len, 0, NULL);
    const char *id = json_string_value(json_object_get(o, "id")), *set = json_string_value(json_object_get(o, "pin_set"));
    const char *yaml = json_string_value(json_object_get(o, "spec")), *st = json_string_value(json_object_get(o, "state"));
    char err[256];
    larder_seed_spec_t *spec = yaml ? larder_seed_parse(yaml, strlen(yaml), err, sizeof(err)) : NULL;
    if (!id || !set || !st || !spec || strlen(id) >= sizeof(((job_t *)0)->id)) {
        larder_warn("seed jobs: the stored record %s is not readable; skipped", key);
        larder_seed_free(spec);
        json_decref(o);
        return 0;
    }
    job_t *job = calloc(1, sizeof(*job));
    snprintf(job->id, sizeof(job->id), "%s", id);
    snprintf(job->kind, sizeof(job->kind), "%s", json_string_value(json_object_get(o, "kind")) ?: "spec");
    job->pin_set = strdup(set);
    job->spec = spec;
    job->created = (uint64_t)json_integer_value(json_object_get(o, "created"));
    job->finished = (uint64_t)json_integer_value(json_object_get(o, "finished"));
    job->ctx.jobs = c->jobs;
    job->ctx.job = job;
    job->cancelled = !strcmp(st, "cancelled");
    int was_running = !strcmp(st, "running") || !strcmp(st, "interrupted");
    size_t i;
    json_t *ji;
    json_array_foreach(json_object_get(o, "items"), i, ji) {
        job_item_t *it = calloc(1, sizeof(*it));
        it->job = job;
        it->proto = (int)json_integer_value(json_object_get(ji, "p"));
        it->label = strdup(json_string_value(json_object_get(ji, "ref")) ?: "?");
        const char *k = json_string_value(json_object_get(ji, "key"));
        it->key = k ? strdup(k) : NULL;
        it->state = (int)json_integer_value(json_object_get(ji, "st"));
        it->bytes = (uint64_t)json_integer_value(json_object_get(ji, "bytes"));
        it->size = (uint64_t)json_integer_value(json_object_get(ji, "size"));
        snprintf(it->error, sizeof(it->error), "%s", json_string_value(json_object_get(ji, "error")) ?: "");
        if (it->state < ITEM_PENDING || it->state > ITEM_CANCELLED || it->proto >= larder_proto_count())
            it->state = ITEM_FAILED, snprintf(it->error, sizeof(it->error), "not readable from the store");
        if (it->state == ITEM_PENDING || it->state == ITEM_RUNNING) {
            it->state = ITEM_FAILED;
            snprintf(it->error, sizeof(it->error), "%s", INTERRUPTED_ERROR);
        }
        job->ndone += it->state == ITEM_DONE;
        job->nfailed += it->state == ITEM_FAILED;
        job->ncancelled += it->state == ITEM_CANCELLED;
        if (job->nitems == job->cap) {
            job->cap = job->cap ? job->cap * 2 : 16;
            job->items = realloc(job->items, job->cap * sizeof(*job->items)); // NOLINT(bugprone-sizeof-expression): an array of pointers
        }
        job->items[job->nitems++] = it;
    }
    if (was_running) {
        job->interrupted = 1;
        if (!job->finished)
            job->finished = larder_now();
        job->dirty = 1;
    }
    json_decref(o);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = realloc(c->v, c->cap * sizeof(*c->v)); // NOLINT(bugprone-sizeof-expression): an array of pointers
    }
    c->v[c->n++] = job;
    return 0;
}

static int newer_first(const void *a, const void *b)
{
    const job_t *x = *(job_t *const *)a, *y = *(job_t *const *)b;
    if (x->created != y->created)
        return x->created < y->created ? 1 : -1;
    return strcmp(y->id, x->id);
}

static void jobs_load(larder_jobs_t *jobs)
{
    load_ctx_t c = {jobs, NULL, 0, 0};
    if (larder_store_each_meta(jobs->app->store, LARDER_META_CORE, "jobs/", load_one, &c) < 0)
        larder_warn("seed jobs: reading the stored jobs failed; the list starts with what could be read");
    if (c.n)
        qsort(c.v, c.n, sizeof(*c.v), newer_first); // NOLINT(bugprone-sizeof-expression): an array of pointers
    job_t **tail = &jobs->head;
    for (size_t i = 0; i < c.n; i++) {
        *tail = c.v[i];
        tail = &c.v[i]->next;
        /* ids "<created hex>-<seq>": new ones continue after the highest sequence number */
        const char *dash = strchr(c.v[i]->id, '-');
        uint64_t seq = dash ? strtoull(dash + 1, NULL, 10) : 0;
        if (seq > jobs->seq)
            jobs->seq = seq;
    }
    free(c.v);
    if (c.n)
        larder_info("seed jobs: %zu loaded from the store", c.n);
}
