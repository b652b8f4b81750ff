/* jobs.h - seed jobs: expand a seed spec into fetches, run them, pin the results in a named set. */
#ifndef LARDER_JOBS_H
#define LARDER_JOBS_H

#include <stddef.h>
#include "app.h"

larder_jobs_t *larder_jobs_create(larder_app_t *app);
void larder_jobs_destroy(larder_jobs_t *jobs);
/* Parse and start a job. 0 with its id (at least 32 bytes), or -1 with a message. */
int larder_jobs_submit(larder_jobs_t *jobs, const char *yaml, size_t len, char *id, size_t idlen, char *err,
                       size_t errlen);
/* JSON text of one job (id) or of all jobs (id NULL); malloc'd; NULL when the id is unknown */
char *larder_jobs_json(larder_jobs_t *jobs, const char *id);

#endif
