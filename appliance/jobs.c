/* jobs.c - seed jobs.
 *
 * A job is a parsed seed spec plus one record per item. Submitting resolves every item through its protocol
 * (so only what the config allows can be seeded), pins items already cached and starts (or joins) a
 * single-flight fetch for the rest, with the job's pin set attached so the commit pins atomically. Fetch
 * completions arrive on the fetch thread; they pin again (a joined fetch was started without the set) and
 * record success or the error. Job records live in memory; the pins they create are in the store and survive
 * restarts. All job state is under one mutex; nothing here blocks on the network. */
#include "jobs.h"
#include "log.h"
#include "module.h"
#include "seedspec.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ITEM_PENDING = 0, ITEM_DONE, ITEM_FAILED };

typedef struct job job_t;

typedef struct job_item {
    job_t *job;
    int state;
    int proto;
    char *label;
    char *key;
    char error[300];
    uint64_t bytes;
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
    uint64_t created, finished;
    size_t nitems, ndone, nfailed;
    int adding; /* submission still expanding items: not finished even if every item so far is */
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
};

larder_jobs_t *larder_jobs_create(larder_app_t *app)
{
    larder_jobs_t *j = calloc(1, sizeof(*j));
    j->app = app;
    pthread_mutex_init(&j->mu, NULL);
    return j;
}

static int job_finished(const job_t *job) { return !job->adding && job->ndone + job->nfailed == job->nitems; }

void larder_jobs_destroy(larder_jobs_t *jobs)
{
    if (!jobs)
        return;
    /* fetches still running hold pointers to items: only free jobs that are finished */
    job_t *job = jobs->head;
    while (job) {
        job_t *next = job->next;
        if (job_finished(job)) {
            for (size_t i = 0; i < job->nitems; i++) {
                free(job->items[i]->label);
                free(job->items[i]->key);
                free(job->items[i]);
            }
            free(job->items);
            free(job->pin_set);
            larder_seed_free(job->spec);
            free(job);
        }
        job = next;
    }
    pthread_mutex_destroy(&jobs->mu);
    free(jobs);
}

static void check_finished(job_t *job)
{
    if (job_finished(job) && !job->finished) {
        job->finished = larder_now();
        larder_info("seed %s (pin set %s) finished: %zu done, %zu failed", job->id, job->pin_set, job->ndone,
                    job->nfailed);
    }
}

/* caller holds mu */
static void item_finish(job_item_t *it, int ok, const char *err)
{
    job_t *job = it->job;
    if (it->state != ITEM_PENDING)
        return;
    it->state = ok ? ITEM_DONE : ITEM_FAILED;
    if (ok)
        job->ndone++;
    else {
        job->nfailed++;
        snprintf(it->error, sizeof(it->error), "%s", err ? err : "failed");
        larder_warn("seed %s: %s: %s", job->id, it->label, it->error);
    }
    check_finished(job);
}

static job_item_t *new_item(larder_seed_ctx_t *c, const char *label, int proto, const char *key)
{
    job_item_t *it = calloc(1, sizeof(*it));
    it->job = c->job;
    it->proto = proto;
    it->label = strdup(label);
    it->key = key ? strdup(key) : NULL;
    pthread_mutex_lock(&c->jobs->mu);
    job_t *job = c->job;
    if (job->nitems == job->cap) {
        job->cap = job->cap ? job->cap * 2 : 16;
        job->items = realloc(job->items, job->cap * sizeof(*job->items)); // NOLINT(bugprone-sizeof-expression): an array of pointers
    }
    job->items[job->nitems++] = it;
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
    item_finish(it, 1, NULL);
    pthread_mutex_unlock(&c->jobs->mu);
}

static void item_failed(larder_seed_ctx_t *c, job_item_t *it, const char *err)
{
    free(it->then_data);
    it->then_data = NULL;
    pthread_mutex_lock(&c->jobs->mu);
    item_finish(it, 0, err);
    pthread_mutex_unlock(&c->jobs->mu);
}

void larder_seed_fail(larder_seed_ctx_t *c, const char *label, const char *err)
{
    job_item_t *it = new_item(c, label, -1, NULL);
    item_failed(c, it, err);
}

larder_app_t *larder_seed_app(larder_seed_ctx_t *c) { return c->jobs->app; }
const struct larder_seed_spec *larder_seed_spec_of(larder_seed_ctx_t *c) { return c->job->spec; }

typedef struct done_ctx {
    larder_seed_ctx_t *c;
    job_item_t *item;
} done_ctx_t;

static void on_fetch_done(larder_fetch_t *fe, void *arg)
{
    done_ctx_t *d = arg;
    larder_seed_ctx_t *c = d->c;
    job_item_t *it = d->item;
    free(d);
    int st = atomic_load(&fe->state);
    int ok = (st == LARDER_FETCH_DONE && !fe->uncached) || st == LARDER_FETCH_NOT_MODIFIED;
    it->bytes = atomic_load(&fe->written);
    char err[300];
    snprintf(err, sizeof(err), "%s", fe->error[0] ? fe->error : "upstream failed");
    larder_fetch_release(fe);
    if (ok && larder_store_pin(c->jobs->app->store, c->job->pin_set, it->proto, it->key) < 0) {
        ok = 0;
        snprintf(err, sizeof(err), "pinning failed");
    }
    if (ok)
        item_succeeded(c, it);
    else
        item_failed(c, it, err);
}

void larder_seed_add(larder_seed_ctx_t *c, const char *label, const larder_fetch_req_t *fr_in, larder_seed_then_fn then,
                     void *data)
{
    larder_app_t *app = c->jobs->app;
    job_item_t *it = new_item(c, label, fr_in->proto, fr_in->key);
    it->then = then;
    it->then_data = data;
    larder_fetch_req_t fr = *fr_in;
    fr.pin_set = c->job->pin_set;
    larder_entry_t ent;
    int mismatch = 0;
    if (larder_store_get(app->store, it->proto, it->key, &ent) == 0) {
        /* an entry stored without the digest this item expects (a mirror path, an unpinned request) never counts */
        mismatch = !larder_entry_satisfies(app->store, it->proto, &ent, fr.sha256, fr.integrity);
        int usable = !mismatch && (larder_entry_is_fresh(&ent, larder_now(), fr.ttl) || app->cfg->offline);
        it->bytes = ent.size;
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
    larder_fetch_on_done(fe, on_fetch_done, d);
}

int larder_jobs_submit(larder_jobs_t *jobs, const char *yaml, size_t len, char *id, size_t idlen, char *err,
                       size_t errlen)
{
    larder_app_t *app = jobs->app;
    larder_seed_spec_t *spec = larder_seed_parse(yaml, len, err, errlen);
    if (!spec)
        return -1;
    job_t *job = calloc(1, sizeof(*job));
    job->spec = spec;
    job->pin_set = strdup(spec->pin_set);
    job->created = larder_now();
    job->adding = 1;
    job->ctx.jobs = jobs;
    job->ctx.job = job;
    pthread_mutex_lock(&jobs->mu);
    snprintf(job->id, sizeof(job->id), "%" PRIx64 "-%" PRIu64, job->created, ++jobs->seq);
    job->next = jobs->head;
    jobs->head = job;
    snprintf(id, idlen, "%s", job->id);
    pthread_mutex_unlock(&jobs->mu);
    larder_info("seed %s: %zu item(s) into pin set %s", job->id, spec->nitems, job->pin_set);

    for (size_t i = 0; i < spec->nitems; i++) {
        const larder_seed_item_t *si = &spec->items[i];
        const larder_protocol_t *proto = larder_protocol_get(si->proto);
        if (!proto || !proto->seed) {
            larder_seed_fail(&job->ctx, si->ref, "this protocol cannot be seeded yet");
            continue;
        }
        proto->seed(app, si, &job->ctx);
    }
    pthread_mutex_lock(&jobs->mu);
    job->adding = 0;
    check_finished(job);
    pthread_mutex_unlock(&jobs->mu);
    return 0;
}

static json_t *job_json(const job_t *job, int with_items)
{
    int done = job_finished(job);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "id", job->id, "pin_set", job->pin_set, "state",
                          done ? (job->nfailed ? "failed" : "done") : "running", "total", (json_int_t)job->nitems,
                          "done", (json_int_t)job->ndone, "failed", (json_int_t)job->nfailed, "created",
                          (json_int_t)job->created, "finished", (json_int_t)job->finished);
    if (with_items) {
        json_t *items = json_array(), *errors = json_array();
        for (size_t i = 0; i < job->nitems; i++) {
            const job_item_t *it = job->items[i];
            const char *st = it->state == ITEM_DONE ? "done" : it->state == ITEM_FAILED ? "failed" : "pending";
            json_t *jo = json_pack("{s:s, s:s, s:s, s:I}", "protocol", it->proto >= 0 ? larder_proto_name(it->proto) : "-", "ref", it->label,
                                   "state", st, "bytes", (json_int_t)it->bytes);
            if (it->state == ITEM_FAILED) {
                json_object_set_new(jo, "error", json_string(it->error));
                json_array_append_new(errors, json_sprintf("%s: %s", it->label, it->error));
            }
            json_array_append_new(items, jo);
        }
        json_object_set_new(o, "items", items);
        json_object_set_new(o, "errors", errors);
    }
    return o;
}

char *larder_jobs_json(larder_jobs_t *jobs, const char *id)
{
    json_t *out = NULL;
    pthread_mutex_lock(&jobs->mu);
    if (id) {
        for (job_t *job = jobs->head; job; job = job->next)
            if (strcmp(job->id, id) == 0) {
                out = job_json(job, 1);
                break;
            }
    } else {
        json_t *arr = json_array();
        for (job_t *job = jobs->head; job; job = job->next)
            json_array_append_new(arr, job_json(job, 0));
        out = json_pack("{s:o}", "jobs", arr);
    }
    pthread_mutex_unlock(&jobs->mu);
    if (!out)
        return NULL;
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return s;
}
