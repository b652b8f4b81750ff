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
#include "protocols.h"
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
    char *ref;
    char *key;
    char *url;
    char error[300];
    uint64_t bytes;
} job_item_t;

struct job {
    char id[40];
    char *pin_set;
    uint64_t created, finished;
    size_t nitems, ndone, nfailed;
    job_item_t *items;
    larder_seed_spec_t *spec;
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

void larder_jobs_destroy(larder_jobs_t *jobs)
{
    if (!jobs)
        return;
    /* fetches still running hold pointers to items: only free jobs that are finished */
    job_t *job = jobs->head;
    while (job) {
        job_t *next = job->next;
        if (job->ndone + job->nfailed == job->nitems) {
            for (size_t i = 0; i < job->nitems; i++) {
                free(job->items[i].key);
                free(job->items[i].url);
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
        larder_warn("seed %s: %s: %s", job->id, it->ref, it->error);
    }
    if (job->ndone + job->nfailed == job->nitems) {
        job->finished = larder_now();
        larder_info("seed %s (pin set %s) finished: %zu done, %zu failed", job->id, job->pin_set, job->ndone,
                    job->nfailed);
    }
}

typedef struct done_ctx {
    larder_jobs_t *jobs;
    job_item_t *item;
} done_ctx_t;

static void on_fetch_done(larder_fetch_t *fe, void *arg)
{
    done_ctx_t *c = arg;
    larder_jobs_t *jobs = c->jobs;
    job_item_t *it = c->item;
    int st = atomic_load(&fe->state);
    int ok = (st == LARDER_FETCH_DONE && !fe->uncached) || st == LARDER_FETCH_NOT_MODIFIED;
    if (ok && larder_store_pin(jobs->app->store, it->job->pin_set, it->proto, it->key) < 0)
        ok = 0;
    pthread_mutex_lock(&jobs->mu);
    it->bytes = atomic_load(&fe->written);
    item_finish(it, ok, fe->error[0] ? fe->error : "upstream failed");
    pthread_mutex_unlock(&jobs->mu);
    larder_fetch_release(fe);
    free(c);
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
    job->nitems = spec->nitems;
    job->items = calloc(spec->nitems ? spec->nitems : 1, sizeof(*job->items));
    pthread_mutex_lock(&jobs->mu);
    snprintf(job->id, sizeof(job->id), "%" PRIx64 "-%" PRIu64, job->created, ++jobs->seq);
    job->next = jobs->head;
    jobs->head = job;
    snprintf(id, idlen, "%s", job->id);
    larder_info("seed %s: %zu item(s) into pin set %s", job->id, job->nitems, job->pin_set);

    for (size_t i = 0; i < spec->nitems; i++) {
        const larder_seed_item_t *si = &spec->items[i];
        job_item_t *it = &job->items[i];
        it->job = job;
        it->proto = si->proto;
        it->ref = si->ref;
        const larder_protocol_t *proto = larder_protocol_get(si->proto);
        char e[300];
        larder_fetch_req_t fr;
        if (!proto || !proto->seed_item) {
            item_finish(it, 0, "this protocol cannot be seeded yet");
            continue;
        }
        if (proto->seed_item(app, si, &fr, &it->url, &it->key, e, sizeof(e)) < 0) {
            item_finish(it, 0, e);
            continue;
        }
        fr.pin_set = job->pin_set;
        larder_entry_t ent;
        if (larder_store_get(app->store, it->proto, it->key, &ent) == 0) {
            int usable = larder_entry_is_fresh(&ent, larder_now()) || app->cfg->offline;
            it->bytes = ent.size;
            larder_entry_clear(&ent);
            if (usable) {
                int r = larder_store_pin(app->store, job->pin_set, it->proto, it->key);
                item_finish(it, r == 0, "pinning failed");
                continue;
            }
        }
        if (app->cfg->offline) {
            item_finish(it, 0, "offline and not cached");
            continue;
        }
        int how;
        larder_fetch_t *fe = larder_fetch_start(app->fetcher, &fr, &how);
        if (!fe) {
            int r = larder_store_pin(app->store, job->pin_set, it->proto, it->key);
            item_finish(it, r == 0, "pinning failed");
            continue;
        }
        done_ctx_t *c = malloc(sizeof(*c));
        c->jobs = jobs;
        c->item = it;
        /* the callback takes the mutex: drop it while registering (it may run at once) */
        pthread_mutex_unlock(&jobs->mu);
        larder_fetch_on_done(fe, on_fetch_done, c);
        pthread_mutex_lock(&jobs->mu);
    }
    pthread_mutex_unlock(&jobs->mu);
    return 0;
}

static json_t *job_json(const job_t *job, int with_items)
{
    int done = job->ndone + job->nfailed == job->nitems;
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "id", job->id, "pin_set", job->pin_set, "state",
                          done ? (job->nfailed ? "failed" : "done") : "running", "total", (json_int_t)job->nitems,
                          "done", (json_int_t)job->ndone, "failed", (json_int_t)job->nfailed, "created",
                          (json_int_t)job->created, "finished", (json_int_t)job->finished);
    if (with_items) {
        json_t *items = json_array(), *errors = json_array();
        for (size_t i = 0; i < job->nitems; i++) {
            const job_item_t *it = &job->items[i];
            const char *st = it->state == ITEM_DONE ? "done" : it->state == ITEM_FAILED ? "failed" : "pending";
            json_t *jo = json_pack("{s:s, s:s, s:s, s:I}", "protocol", larder_proto_name(it->proto), "ref", it->ref,
                                   "state", st, "bytes", (json_int_t)it->bytes);
            if (it->state == ITEM_FAILED) {
                json_object_set_new(jo, "error", json_string(it->error));
                json_array_append_new(errors, json_sprintf("%s: %s", it->ref, it->error));
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
