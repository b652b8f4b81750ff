/* record.h - recording: while it runs, every object the daemon serves is pinned to one pin set.
 *
 * `larder record start NAME [--client ADDR]` (POST /-/api/v1/record) makes every later answer from the cache
 * (HIT, MISS, STALE, REVALIDATED: documents, indexes and files alike, every protocol) pin its store entry to the
 * set NAME, so that one online build seeds what it used; with a client address (or ADDR/PREFIX) only requests
 * from it are recorded. GET /-/api/v1/pins/NAME/spec then turns the set into a seed spec. One recording at a time;
 * it ends with `larder record stop` (DELETE) or when the daemon stops (the pins written stay). */
#ifndef LARDER_RECORD_H
#define LARDER_RECORD_H

#include <h2o.h>
#include <stdint.h>

#include "app.h"

typedef struct larder_record larder_record_t;

larder_record_t *larder_record_create(void);
void larder_record_destroy(larder_record_t *r);

/* 0; -EBUSY (another recording runs: err names it), -EINVAL (bad name or address: err says which) */
int larder_record_start(larder_record_t *r, const char *set, const char *client, char *err, size_t errlen);
/* 0, or -ENOENT when nothing was recording */
int larder_record_stop(larder_record_t *r);

typedef struct larder_record_status {
    int active;
    char set[80];
    char client[64]; /* empty: every client */
    uint64_t started_at, stopped_at;
    uint64_t recorded; /* distinct entries pinned by this recording */
    uint64_t served;   /* answers recorded (a repeated entry counts each time) */
    uint64_t skipped;  /* answers of other clients while a client filter was set */
} larder_record_status_t;
/* the running recording, or the last one (active 0); set empty when there was none */
void larder_record_get(larder_record_t *r, larder_record_status_t *out);

/* an answer from the cache of (proto, key) to req: pins it when a recording runs and req's client matches.
 * Cheap when no recording runs (one atomic load). */
void larder_record_served(larder_app_t *app, h2o_req_t *req, int proto, const char *key);

/* parse "ADDR" or "ADDR/PREFIX" (IPv4 or IPv6); 0 or -1 (for the CLI and tests) */
int larder_record_parse_client(const char *s, unsigned char addr[16], int *family, int *prefix);

#endif
