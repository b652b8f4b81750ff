/* upstreams.c - the health of every upstream, and the hold-off of the ones that do not answer.
 *
 * The list is made once at start-up from the configuration: each enabled module's `upstream` and the upstreams its
 * `upstreams` hook names (files mirrors and pins, registries, git remotes, apt hosts); the core never knows what they
 * are. fetch.c (and a module that contacts upstreams itself, git) report each request's outcome here, keyed by the
 * longest configured URL prefix of the fetched URL. After timeouts.holdoff_after consecutive failures to reach an
 * upstream (no connection, DNS, TLS, timeout; an HTTP error is an answer) it is held off: fetch.c fails new fetches
 * of it at once, with a message saying so, for timeouts.holdoff seconds, doubling at each failed probe up to
 * timeouts.holdoff_max. When the time has run out one fetch goes through as the probe; its success ends the hold-off.
 * One mutex guards the list; nothing here blocks (the fetch thread and workers call in). */
#include "upstreams.h"
#include "admin.h"

#include "cache.h"
#include "log.h"
#include "module.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 64 /* upstreams added as they are seen (not configured) */

typedef struct upstream {
    int proto;
    int configured;
    char *name, *url;
    size_t urllen;
    uint64_t last_success, last_failure;
    char last_error[256];
    unsigned consecutive; /* failures to reach it in a row */
    uint64_t held_until;  /* held off until then (0: not held off) */
    uint64_t backoff;     /* the last hold-off's length */
    uint64_t probe_at;    /* a probe was let through then (0: none running) */
} upstream_t;

struct larder_upstreams {
    const larder_config_t *cfg;
    pthread_mutex_t mu;
    upstream_t *v;
    size_t n, cap, seen;
};

typedef struct add_ctx {
    larder_upstreams_t *u;
    int proto;
} add_ctx_t;

static upstream_t *add(larder_upstreams_t *u, int proto, const char *name, const char *url, int configured)
{
    size_t ul = strlen(url);
    while (ul > 1 && url[ul - 1] == '/')
        ul--;
    for (size_t i = 0; i < u->n; i++) { /* the same URL, with or without a trailing '/', is one upstream */
        size_t l = u->v[i].urllen;
        while (l > 1 && u->v[i].url[l - 1] == '/')
            l--;
        if (u->v[i].proto == proto && l == ul && !strncmp(u->v[i].url, url, ul))
            return &u->v[i];
    }
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 16;
        upstream_t *v = realloc(u->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        u->v = v;
        u->cap = cap;
    }
    upstream_t *e = &u->v[u->n];
    memset(e, 0, sizeof(*e));
    e->proto = proto;
    e->configured = configured;
    e->name = strdup(name);
    e->url = strdup(url);
    if (!e->name || !e->url) {
        free(e->name);
        free(e->url);
        return NULL;
    }
    e->urllen = strlen(url);
    u->n++;
    return e;
}

static void add_cb(void *arg, const char *name, const char *url)
{
    add_ctx_t *c = arg;
    if (name && url && *url)
        add(c->u, c->proto, name, url, 1);
}

larder_upstreams_t *larder_upstreams_create(const larder_config_t *cfg)
{
    larder_upstreams_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->cfg = cfg;
    pthread_mutex_init(&u->mu, NULL);
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        if (!m || !cfg->proto[p].enabled)
            continue;
        add_ctx_t c = {u, p};
        if (m->upstreams) /* first: a registry named docker.io keeps its name when `upstream` is the same URL */
            m->upstreams(cfg, add_cb, &c);
        if (cfg->proto[p].upstream)
            add_cb(&c, "upstream", cfg->proto[p].upstream);
    }
    return u;
}

void larder_upstreams_destroy(larder_upstreams_t *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->v[i].name);
        free(u->v[i].url);
    }
    free(u->v);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

/* url is under e's URL: the prefix ends at a '/' of url (or url is it, or its query follows) */
static int under(const upstream_t *e, const char *url)
{
    if (strncmp(url, e->url, e->urllen) != 0)
        return 0;
    char next = url[e->urllen];
    return e->url[e->urllen - 1] == '/' || next == 0 || next == '/' || next == '?' || next == '#';
}

/* the upstream of url: the longest configured prefix, else one for its origin (added as seen). Under mu */
static upstream_t *find(larder_upstreams_t *u, int proto, const char *url)
{
    upstream_t *best = NULL;
    for (size_t i = 0; i < u->n; i++)
        if (u->v[i].proto == proto && under(&u->v[i], url) && (!best || u->v[i].urllen > best->urllen))
            best = &u->v[i];
    if (best)
        return best;
    const char *s = strstr(url, "://");
    if (!s)
        return NULL;
    size_t hl = strcspn(s + 3, "/?#"), ol = (size_t)(s + 3 - url) + hl;
    char origin[300], host[300];
    if (ol >= sizeof(origin) || hl == 0)
        return NULL;
    memcpy(origin, url, ol);
    origin[ol] = 0;
    snprintf(host, sizeof(host), "%.*s", (int)hl, s + 3);
    for (size_t i = 0; i < u->n; i++)
        if (u->v[i].proto == proto && !u->v[i].configured && !strcmp(u->v[i].url, origin))
            return &u->v[i];
    if (u->seen >= MAX_SEEN)
        return NULL;
    upstream_t *e = add(u, proto, host, origin, 0);
    if (e)
        u->seen++;
    return e;
}

uint64_t larder_upstreams_backoff(uint64_t prev, uint64_t first, uint64_t max)
{
    uint64_t b = prev ? prev * 2 : first;
    if (max && b > max)
        b = max;
    return b ? b : 1;
}

int larder_upstreams_admit(larder_upstreams_t *u, int proto, const char *url, char *msg, size_t msglen)
{
    if (!u || u->cfg->holdoff_after == 0)
        return 0;
    uint64_t now = larder_now();
    int r = 0;
    pthread_mutex_lock(&u->mu);
    upstream_t *e = find(u, proto, url);
    if (e && e->held_until) {
        /* a probe that never reported (it cannot: every fetch ends) is given up after a generous while */
        uint64_t probe_deadline = e->probe_at + u->cfg->connect_timeout * 3 + u->cfg->idle_timeout + 60;
        if (now < e->held_until || (e->probe_at && now < probe_deadline)) {
            uint64_t left = e->held_until > now ? e->held_until - now : 1;
            snprintf(msg, msglen, "upstream %s is held off for %llus after %u failures: %s", e->url,
                     (unsigned long long)left, e->consecutive, e->last_error);
            r = -EAGAIN;
        } else {
            e->probe_at = now; /* this one probes; the others wait for its outcome */
            larder_info("upstream %s: the hold-off ran out; probing it", e->url);
        }
    }
    pthread_mutex_unlock(&u->mu);
    return r;
}

void larder_upstreams_outcome(larder_upstreams_t *u, int proto, const char *url, int outcome, const char *error)
{
    if (!u || !url)
        return;
    uint64_t now = larder_now();
    pthread_mutex_lock(&u->mu);
    upstream_t *e = find(u, proto, url);
    if (!e) {
        pthread_mutex_unlock(&u->mu);
        return;
    }
    if (outcome == LARDER_UPSTREAM_OK) {
        e->last_success = now;
    } else {
        e->last_failure = now;
        snprintf(e->last_error, sizeof(e->last_error), "%s", error && *error ? error : "failed");
        for (char *c = e->last_error; *c; c++) /* shown as JSON: printable ASCII only */
            if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                *c = '?';
    }
    if (outcome != LARDER_UPSTREAM_UNREACHABLE) { /* it answered */
        if (e->held_until)
            larder_info("upstream %s answers again: the hold-off is over", e->url);
        e->consecutive = 0;
        e->held_until = e->backoff = e->probe_at = 0;
    } else {
        e->consecutive++;
        unsigned after = (unsigned)u->cfg->holdoff_after;
        if (after && e->consecutive >= after && (!e->held_until || e->probe_at)) {
            e->backoff = larder_upstreams_backoff(e->held_until ? e->backoff : 0, u->cfg->holdoff_first,
                                                  u->cfg->holdoff_max);
            e->held_until = now + e->backoff;
            e->probe_at = 0;
            larder_warn("upstream %s is held off for %llu s after %u failures: %s", e->url,
                        (unsigned long long)e->backoff, e->consecutive, e->last_error);
        }
    }
    pthread_mutex_unlock(&u->mu);
}

/* ---- GET /-/api/v1/upstreams ---- */

static json_t *time_or_null(uint64_t t) { return t ? json_integer((json_int_t)t) : json_null(); }

void larder_upstreams_handle(larder_app_t *app, h2o_req_t *req)
{
    /* admin.c's router answers any other method than GET and HEAD with 405 and Allow */
    larder_upstreams_t *u = app->upstreams;
    json_t *arr = json_array();
    uint64_t now = larder_now();
    if (u) {
        pthread_mutex_lock(&u->mu);
        for (size_t i = 0; i < u->n; i++) {
            const upstream_t *e = &u->v[i];
            int held = e->held_until && (now < e->held_until || e->probe_at);
            json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:o, s:i, s:b, s:o}", "protocol",
                                  larder_proto_name(e->proto), "name", e->name, "url", e->url, "configured",
                                  e->configured, "last_success", time_or_null(e->last_success), "last_failure",
                                  time_or_null(e->last_failure), "last_error",
                                  e->last_error[0] ? json_string(e->last_error) : json_null(), "consecutive_failures",
                                  (int)e->consecutive, "held_off", held, "held_off_until",
                                  held ? json_integer((json_int_t)e->held_until) : json_null());
            if (o)
                json_array_append_new(arr, o);
        }
        pthread_mutex_unlock(&u->mu);
    }
    larder_admin_send_json(app, req, 200, json_pack("{s:o, s:b}", "upstreams", arr, "offline", app->cfg->offline));
}
