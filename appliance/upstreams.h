/* upstreams.h - every configured upstream's health, and the hold-off of upstreams that do not answer. */
#ifndef LARDER_UPSTREAMS_H
#define LARDER_UPSTREAMS_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"

/* what became of one request to an upstream */
enum {
    LARDER_UPSTREAM_OK = 0,      /* it answered (any HTTP status below 500: a 404 is an answer) */
    LARDER_UPSTREAM_FAILED,      /* it answered with an error (5xx) or broke off a body: recorded, no hold-off */
    LARDER_UPSTREAM_UNREACHABLE, /* no answer: connection refused, DNS, TLS, timeout: counts towards the hold-off */
};

/* The upstreams of cfg: each enabled module's section `upstream` and what its `upstreams` hook names (module.h).
 * An upstream fetched from that no configuration names (apt's hosts when apt.allow is empty) is added as it is seen,
 * by origin (at most 64 of them). NULL when out of memory. */
larder_upstreams_t *larder_upstreams_create(const larder_config_t *cfg);
void larder_upstreams_destroy(larder_upstreams_t *u);

/* Before a fetch of url (of protocol proto) contacts its upstream: 0 to go ahead (after a hold-off has run out, the
 * first caller is the probe), or -EAGAIN while the upstream is held off, with "upstream <url> is held off for Ns
 * after N failures: <last error>" in msg. u NULL: 0. */
int larder_upstreams_admit(larder_upstreams_t *u, int proto, const char *url, char *msg, size_t msglen);
/* what the request to url ended with (LARDER_UPSTREAM_*), error: the reason of a failure. u NULL: nothing */
void larder_upstreams_outcome(larder_upstreams_t *u, int proto, const char *url, int outcome, const char *error);

/* The hold-off after `failures` consecutive failures (>= after) whose previous hold-off was `prev` seconds (0: none):
 * first, then doubling up to max. Pure, for the unit tests. */
uint64_t larder_upstreams_backoff(uint64_t prev, uint64_t first, uint64_t max);

/* GET /-/api/v1/upstreams */
void larder_upstreams_handle(larder_app_t *app, h2o_req_t *req);

#endif
