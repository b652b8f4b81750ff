/* jobs.h - seed jobs: expand a seed spec into fetches, run them, pin the results in a named set. */
#ifndef LARDER_JOBS_H
#define LARDER_JOBS_H

#include <stddef.h>
#include "app.h"

larder_jobs_t *larder_jobs_create(larder_app_t *app);
void larder_jobs_destroy(larder_jobs_t *jobs);
/* before the fetcher goes: the last state is written (running jobs as running: they load interrupted), and nothing
 * the fetcher's end does to them afterwards is */
void larder_jobs_shutdown(larder_jobs_t *jobs);
/* Parse and start a job. 0 with its id (at least 32 bytes), or -1 with a message. */
int larder_jobs_submit(larder_jobs_t *jobs, const char *yaml, size_t len, char *id, size_t idlen, char *err,
                       size_t errlen);
struct larder_seed_spec;
/* Start a job of a parsed spec (taken over); kind names what it was made from ("spec", "requirements", ...). 0 */
int larder_jobs_start(larder_jobs_t *jobs, struct larder_seed_spec *spec, const char *kind, char *id, size_t idlen);
/* DELETE: 0 with the job's JSON (malloc'd) in *json; -ENOENT unknown, -EBUSY already finished */
int larder_jobs_cancel(larder_jobs_t *jobs, const char *id, char **json);
/* run the failed, cancelled and interrupted items again: 0 with their count; -ENOENT, -EBUSY (running, or
 * nothing to retry) */
int larder_jobs_retry(larder_jobs_t *jobs, const char *id, size_t *retried);
/* ---- for protocols: expanding seed items into fetches ---- */
typedef struct larder_seed_ctx larder_seed_ctx_t;
/* runs (on any thread) once an added fetch is done and pinned; may add more fetches to the same job */
typedef void (*larder_seed_then_fn)(larder_seed_ctx_t *c, int proto, const char *key, void *data);
/* Add one fetch to the job, labelled for progress and errors. Cached entries are pinned at once. `data` is
 * freed with free() after `then` ran (or the fetch failed). */
void larder_seed_add(larder_seed_ctx_t *c, const char *label, const larder_fetch_req_t *fr, larder_seed_then_fn then,
                     void *data);
/* record a failed item (nothing to fetch) */
void larder_seed_fail(larder_seed_ctx_t *c, const char *label, const char *err);
larder_app_t *larder_seed_app(larder_seed_ctx_t *c);
const struct larder_seed_spec *larder_seed_spec_of(larder_seed_ctx_t *c);

/* JSON text of one job (id) or of all jobs (id NULL); malloc'd; NULL when the id is unknown */
char *larder_jobs_json(larder_jobs_t *jobs, const char *id);

#endif
