/* server.c - listeners, TLS and the worker threads that run h2o event loops.
 *
 * The main thread binds every listener once (or takes systemd's sockets via sd_listen_fds) and builds one
 * SSL_CTX per TLS listener with ALPN h2 (unless the listener says http2: false). Each worker thread owns an h2o
 * loop and context and accepts on every listening socket (balanced: see "Accepting" below). One handler routes on
 * the raw request path: /-/ to the admin module, protocol mounts to their handlers, anything else is a 404 that
 * lists the mounts.
 * The fetch thread wakes workers through h2o multithread queues: one preallocated message per worker guarded
 * by an atomic flag, so a burst of progress costs at most one pending wake-up per thread. The main thread
 * waits for signals (INT/TERM stop, HUP checks the config file, USR1/USR2 are logged and ignored) and pings the
 * systemd watchdog.
 *
 * The watchdog. Every tick (a quarter of WATCHDOG_USEC, at most 1 s) the main thread asks each worker's loop a
 * heartbeat question through the worker's h2o queue (a second receiver beside the fetch thread's wake-ups), and
 * the curl thread's loop through curl_multi_wakeup (heartbeat.h). WATCHDOG=1 is sent only while no question has
 * waited longer than half of WATCHDOG_USEC (10 s without a watchdog, when this only logs); otherwise the thread
 * that has kept its question longest is logged once (warn) and named in STATUS=, and the recovery is logged. A
 * request handler, a module or a library call that blocks a loop therefore ends in a restart by systemd, not a
 * silent hang. The commit threads are not asked (fetch.h says why).
 * The test hook: with LARDER_TEST_HOOKS=1 in the environment (tests only, never production) an authenticated
 * POST /-/debug/stall?worker=N&seconds=S blocks worker N's loop (worker=fetch: the fetch thread's; worker=commit:
 * the next commit, once its body is verified) for S seconds; without it /-/debug/ is an unknown admin path (404) like any other.
 *
 * Request bodies. h2o 2.2.5 reads a whole request body into memory before any handler runs, up to
 * globalconf.max_request_entity_size, and its only hooks come after that. So the limit is chosen per
 * connection, before h2o sees it: a worker has two h2o contexts on one loop, "data" (limits.request_body, small:
 * every route but the large bodies below) and "bodies" (the largest of limits.seed_spec and every module's
 * request_body_max). A new connection is first read by the head guard below (after the TLS handshake): it parses
 * the first request head with h2o's own parser and
 *   - answers 400 and closes when the framing is ambiguous (two Content-Length values, Transfer-Encoding with
 *     Content-Length): h2o would silently pick one;
 *   - for POST /-/api/v1/jobs with a body larger than limits.request_body: checks the admin token and reserves
 *     the declared size (limits.seed_spec for chunked) in a process-wide budget of limits.request_bodies bytes,
 *     all before a byte of the body is read (401/403, 413, or 503 with Retry-After when the budget is spent).
 *     The connection then goes to the "bodies" context for this one request (Connection: close), and the
 *     reservation is returned when its socket closes. A bundle chunk (PUT /-/api/v1/imports/<id>, bundle_import.c)
 *     is admitted the same way, at most larder_bundle_chunk_max() bytes;
 *   - for a POST to a module path whose request_body_max (module.h) is larger than limits.request_body (a git
 *     client's upload-pack request): the same, without a token: 413 above the module's limit, the declared size
 *     (the module's limit for chunked) reserved in the same budget, the "bodies" context for this one request;
 *   - hands every other connection to the "data" context, where h2o refuses a larger body with 413 and closes
 *     as soon as it reads Content-Length, and after limits.request_body bytes of a chunked one.
 * Later requests on a kept-alive data connection are framed by h2o alone; on_req parses their head again (it is
 * still at the start of the socket's input buffer) and answers an ambiguous one 400 with the connection closed.
 * HTTP/2 connections (ALPN h2, or the h2c preface) always get the data context: per stream at most
 * limits.request_body. Everything under /-/ closes its connection after the answer, so a browser's seed upload
 * is the first request of a fresh connection; a module that takes large bodies does the same with the answers
 * that come before them (git: info/refs and upload-pack), so that each large POST meets the head guard.
 *
 * Accepting. When accept() fails for want of file descriptors (EMFILE/ENFILE) the pending connection stays in
 * the backlog and the listener stays readable; a worker then stops watching that listener for ACCEPT_BACKOFF_MS
 * instead of spinning, and logs once per burst.
 * Every worker watches every listener and the first to call accept() wins, so a few long-lived connections (4
 * clients each downloading a large file) often all land on one worker while the other cores idle, and those
 * clients get a fraction of a core each (measured: 4 of 4 wrk connections on one thread in 1 of 2 runs). So a
 * worker that holds more client connections than another leaves a pending connection to the less loaded one: it
 * stops watching the listener for ACCEPT_DEFER_MS (the other worker, woken by the same readiness, accepts it). It
 * accepts anyway after ACCEPT_DEFER_MAX deferrals in a row, so a busy or stalled peer delays a connection by a
 * few milliseconds at most. */
#include "server.h"
#include "admin.h"
#include "bundle_export.h"
#include "cache.h"
#include "heartbeat.h"
#include "log.h"
#include "module.h"
#include "reqhead.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <strings.h>
#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>

typedef struct listener {
    int fd;
    SSL_CTX *ssl;
    char name[128];
    int protocol; /* -1: every protocol under its mount; else a listener dedicated to one protocol, at / */
} listener_t;

#define ACCEPT_BACKOFF_MS 250
#define ACCEPT_DEFER_MS 1
#define ACCEPT_DEFER_MAX 8

struct worker;

/* one listening socket as one worker watches it */
typedef struct worker_listener {
    struct worker *w;
    const listener_t *l;
    h2o_socket_t *sock;
    h2o_accept_ctx_t data;      /* every connection, except: */
    h2o_accept_ctx_t bodies;    /* one seed upload or module POST larger than limits.request_body */
    h2o_timeout_entry_t resume; /* accept back-off */
    uint64_t pauses;            /* back-offs in the current burst of EMFILE/ENFILE */
    h2o_timeout_entry_t retry;  /* watching again after leaving a connection to a less loaded worker */
    unsigned defers;            /* deferrals in a row (balanced accept) */
} worker_listener_t;

typedef struct worker {
    larder_server_t *srv;
    pthread_t tid;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_context_t body_ctx;
    h2o_timeout_t backoff;
    h2o_timeout_t defer;   /* ACCEPT_DEFER_MS */
    _Atomic long nconns;   /* client connections open on this worker (read by the other workers' accepts) */
    h2o_linklist_t guards; /* connections whose first request head is still being read */
    worker_listener_t *wls;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t wake_msg;
    _Atomic int wake_pending;
    _Atomic int ready; /* loop and queue exist: wake-ups may be sent */
    _Atomic int accepting; /* watches the listeners (balanced accept counts it) */
    /* the watchdog's heartbeat and the test hooks' stall: a receiver of their own on the same queue */
    h2o_multithread_receiver_t control;
    h2o_multithread_message_t hb_msg;    /* linked only while beat has a question outstanding */
    larder_beat_t beat;
    h2o_multithread_message_t stall_msg; /* linked only while stall_pending */
    _Atomic int stall_pending;
    _Atomic unsigned stall_seconds;
} worker_t;

typedef struct route_handler {
    h2o_handler_t super;
    larder_app_t *app;
    larder_server_t *srv;
    int dedicated;   /* -1, or the protocol that gets every path of this listener */
    int one_request; /* the "bodies" context: the connection closes after its one request */
} route_handler_t;

struct larder_server {
    larder_app_t *app;
    h2o_globalconf_t globalconf;
    listener_t *listeners;
    size_t nlisteners;
    h2o_hostconf_t *main_hosts[2];                   /* NULL-terminated host lists given to accept contexts */
    h2o_hostconf_t *proto_hosts[LARDER_MAX_PROTO][2];
    h2o_globalconf_t body_conf; /* the "bodies" context's configuration: the largest body limit */
    h2o_hostconf_t *body_hosts[2];
    h2o_hostconf_t *body_proto_hosts[LARDER_MAX_PROTO][2]; /* the same for listeners dedicated to a protocol */
    _Atomic uint64_t body_bytes; /* reserved by seed uploads in flight, at most cfg->bodies_total */
    worker_t *workers;
    size_t nworkers;
    int test_hooks; /* LARDER_TEST_HOOKS=1 in the environment: /-/debug/ exists (tests only) */
    _Atomic int stop;
};

static void debug_hook(larder_server_t *srv, larder_app_t *app, h2o_req_t *req);

/* ---- routing ---- */

/* why a head with this framing is refused (400 and close), or NULL when its framing is acceptable: the one wording
 * of the head guard (first request) and of refuse_ambiguous (later requests of a kept-alive connection) */
static const char *framing_refusal(int framing)
{
    switch (framing) {
    case LARDER_BODY_AMBIGUOUS:
        return "ambiguous request framing: several different Content-Length values, or Transfer-Encoding together "
               "with Content-Length";
    case LARDER_BODY_BAD_LENGTH:
        return "Content-Length is not a decimal number";
    default:
        return NULL;
    }
}

/* A kept-alive HTTP/1 connection's later requests are framed by h2o alone, which takes the first of two
 * Content-Length headers and prefers Transfer-Encoding to Content-Length. When a handler runs, the request head
 * is still at the start of the socket's input buffer (h2o consumes it only after the response), so it can be
 * parsed again here. Returns 1 when the request was answered (400, connection closed). */
static int refuse_ambiguous(larder_app_t *app, h2o_req_t *req)
{
    if (req->version >= 0x200 || !req->conn->callbacks->get_socket)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (!sock || !sock->input || sock->input->size == 0)
        return 0;
    larder_reqhead_t h;
    if (larder_reqhead_parse(sock->input->bytes, sock->input->size, &h) <= 0)
        return 0;
    const char *why = framing_refusal(h.framing);
    if (!why)
        return 0;
    req->http1_is_persistent = 0;
    larder_send_error(app, req, -1, 400, "Bad Request", "%s", why);
    return 1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    larder_app_t *app = ((route_handler_t *)self)->app;
    int dedicated = ((route_handler_t *)self)->dedicated;
    const char *p = req->input.path.base;
    size_t len = req->input.path.len;
    if (((route_handler_t *)self)->one_request)
        req->http1_is_persistent = 0;
    if (refuse_ambiguous(app, req))
        return 0;
    if (dedicated >= 0) {
        /* a listener of one protocol: every path is that protocol's, mounted at / */
        const larder_protocol_t *proto = larder_protocol_get(dedicated);
        if (!proto || !app->cfg->proto[dedicated].enabled) {
            larder_send_error(app, req, -1, 404, "Not Found", "protocol %s is not available on this listener",
                              larder_proto_name(dedicated));
            return 0;
        }
        if (len >= 1 && p[0] == '/')
            proto->handle(app, req, p + 1, len - 1);
        else
            proto->handle(app, req, p, len);
        return 0;
    }
    /* proxy requests: "GET http://host/path" (absolute form), or CONNECT: the module with a proxy mode */
    if ((len >= 7 && strncasecmp(p, "http://", 7) == 0) || (len >= 8 && strncasecmp(p, "https://", 8) == 0) ||
        (req->input.method.len == 7 && memcmp(req->input.method.base, "CONNECT", 7) == 0)) {
        for (int i = 0; i < larder_proto_count(); i++)
            if (larder_protocol_get(i)->handle_proxy) {
                larder_protocol_get(i)->handle_proxy(app, req);
                return 0;
            }
        larder_send_error(app, req, -1, 400, "Bad Request", "this is not a proxy: request a path under one of larder's mounts");
        return 0;
    }
    if (len >= 3 && memcmp(p, "/-/", 3) == 0) {
        /* the next request from a browser (a seed upload) then starts a fresh connection and meets the head guard */
        req->http1_is_persistent = 0;
        if (((route_handler_t *)self)->srv->test_hooks && len >= 9 && memcmp(p, "/-/debug/", 9) == 0) {
            debug_hook(((route_handler_t *)self)->srv, app, req);
            return 0;
        }
        larder_admin_handle(app, req);
        return 0;
    }
    for (int i = 0; i < larder_proto_count(); i++) {
        const larder_protocol_t *proto = larder_protocol_get(i);
        if (!proto || !app->cfg->proto[i].enabled)
            continue;
        size_t ml = strlen(proto->mount);
        if (len >= ml && memcmp(p, proto->mount, ml) == 0) {
            proto->handle(app, req, p + ml, len - ml);
            return 0;
        }
        if (len == ml - 1 && memcmp(p, proto->mount, ml - 1) == 0) {
            proto->handle(app, req, "", 0);
            return 0;
        }
    }
    char mounts[256] = "";
    for (int i = 0; i < larder_proto_count(); i++) {
        size_t ml = strlen(mounts);
        if (app->cfg->proto[i].enabled)
            snprintf(mounts + ml, sizeof(mounts) - ml, "%s%s", ml ? ", " : "", larder_protocol_get(i)->mount);
    }
    larder_send_error(app, req, -1, 404, "Not Found",
                      "larder serves %s (and the admin UI at /-/ui/); nothing is mounted at this path", mounts);
    return 0;
}

/* ---- workers ---- */

static void on_wake(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    worker_t *w = H2O_STRUCT_FROM_MEMBER(worker_t, receiver, receiver);
    /* the only message ever sent to this receiver is the worker's own wake_msg */
    if (h2o_linklist_is_linked(&w->wake_msg.link))
        h2o_linklist_unlink(&w->wake_msg.link);
    atomic_store(&w->wake_pending, 0);
    larder_cache_on_wake();
}

/* the watchdog's heartbeat (answered after a stall, which is the point) and the test hooks' stall */
static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    worker_t *w = H2O_STRUCT_FROM_MEMBER(worker_t, control, receiver);
    /* only these two are ever sent to this receiver. Which of them are in this batch is read from the batch
     * itself: the main thread may be linking the next heartbeat into the receiver's own list meanwhile (under
     * the queue's lock), so "is it linked" would not say where */
    int heartbeat = 0, stall = 0;
    for (h2o_linklist_t *n = messages->next; n != messages; n = n->next) {
        if (n == &w->hb_msg.link)
            heartbeat = 1;
        else if (n == &w->stall_msg.link)
            stall = 1;
    }
    if (heartbeat)
        h2o_linklist_unlink(&w->hb_msg.link);
    if (stall)
        h2o_linklist_unlink(&w->stall_msg.link);
    if (stall) {
        /* a test hook (LARDER_TEST_HOOKS=1 only): block this loop as a wedged handler would */
        struct timespec ts = {(time_t)atomic_load(&w->stall_seconds), 0};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        larder_warn("test hook: worker %zu's event loop stalled for %u s, resuming", (size_t)(w - w->srv->workers),
                    atomic_load(&w->stall_seconds));
        atomic_store(&w->stall_pending, 0);
    }
    /* only after the message is unlinked: the watchdog sends it again once the question is answered */
    if (heartbeat)
        larder_beat_answer(&w->beat);
}

void larder_server_wake(void *arg)
{
    larder_server_t *srv = arg;
    for (size_t i = 0; i < srv->nworkers; i++) {
        worker_t *w = &srv->workers[i];
        if (!atomic_load(&w->ready))
            continue;
        if (atomic_exchange(&w->wake_pending, 1) == 0)
            h2o_multithread_send_message(&w->receiver, &w->wake_msg);
    }
}

/* POST /-/debug/stall?worker=N&seconds=S (LARDER_TEST_HOOKS=1 only, with the admin token): block worker N's loop
 * (worker=fetch: the fetch thread's) for S seconds, for the watchdog's test; worker=commit: the next commit of a
 * download waits S seconds once its body is verified (test_cold_release.sh). The answer comes from whichever worker took the request, before the
 * stall starts when that is worker N (its loop turns once more to read the message). */
static void debug_hook(larder_server_t *srv, larder_app_t *app, h2o_req_t *req)
{
    const char *p = req->input.path.base;
    size_t len = req->input.path.len;
    const char *q = memchr(p, '?', len);
    size_t plen = q ? (size_t)(q - p) : len;
    if (plen != strlen("/-/debug/stall") || memcmp(p, "/-/debug/stall", plen) != 0) {
        larder_admin_error(app, req, 404, "unknown debug hook (there is only /-/debug/stall)");
        return;
    }
    if (!larder_admin_allow(app, req, "POST") || !larder_admin_authorized(app, req))
        return;
    char wb[16], sb[16];
    char *end = NULL;
    if (larder_admin_query(req, "worker", wb, sizeof(wb)) != 1 || larder_admin_query(req, "seconds", sb, sizeof(sb)) != 1) {
        larder_admin_error(app, req, 400, "worker=N and seconds=S are required");
        return;
    }
    unsigned long secs = strtoul(sb, &end, 10);
    if (!*sb || *end || secs < 1 || secs > 300) {
        larder_admin_error(app, req, 400, "seconds must be from 1 to 300");
        return;
    }
    if (strcmp(wb, "fetch") == 0 && app->fetcher) {
        larder_warn("test hook: stalling the fetch thread's loop for %lu s (LARDER_TEST_HOOKS is set)", secs);
        larder_fetcher_test_stall(app->fetcher, (unsigned)secs);
        larder_admin_send_json(app, req, 202, json_pack("{s:s,s:I}", "worker", "fetch", "seconds", (json_int_t)secs));
        return;
    }
    if (strcmp(wb, "commit") == 0 && app->fetcher) {
        larder_warn("test hook: the next commit waits %lu s after its verification (LARDER_TEST_HOOKS is set)", secs);
        larder_fetcher_test_stall_commit(app->fetcher, (unsigned)secs);
        larder_admin_send_json(app, req, 202, json_pack("{s:s,s:I}", "worker", "commit", "seconds", (json_int_t)secs));
        return;
    }
    unsigned long wi = strtoul(wb, &end, 10);
    if (!*wb || *end || wi >= srv->nworkers) {
        larder_admin_error(app, req, 400, "worker must be a worker's index, from 0 to threads - 1, fetch or commit");
        return;
    }
    worker_t *w = &srv->workers[wi];
    if (!atomic_load(&w->ready)) {
        larder_admin_error(app, req, 503, "that worker is not running yet");
        return;
    }
    int idle = 0;
    if (!atomic_compare_exchange_strong(&w->stall_pending, &idle, 1)) {
        larder_admin_error(app, req, 409, "that worker is already stalled");
        return;
    }
    atomic_store(&w->stall_seconds, (unsigned)secs);
    larder_warn("test hook: stalling worker %lu's event loop for %lu s (LARDER_TEST_HOOKS is set)", wi, secs);
    h2o_multithread_send_message(&w->control, &w->stall_msg);
    larder_admin_send_json(app, req, 202, json_pack("{s:I,s:I}", "worker", (json_int_t)wi, "seconds", (json_int_t)secs));
}

/* ---- the head guard: a new connection's first request head, read before h2o reads any body ---- */

typedef struct guard {
    worker_listener_t *wl;
    h2o_socket_t *sock;
    struct timeval connected_at;
    h2o_timeout_entry_t timeout;
    h2o_linklist_t link;
    size_t seen;     /* bytes of an incomplete head already parsed */
    char resp[1024]; /* a refusal being written */
} guard_t;

typedef struct body_hold {
    larder_server_t *srv;
    uint64_t bytes;
    void (*prev_cb)(void *); /* the socket's close callback before this hold (the worker's connection count) */
    void *prev_data;
} body_hold_t;

static void guard_free(guard_t *g)
{
    if (h2o_timeout_is_linked(&g->timeout))
        h2o_timeout_unlink(&g->timeout);
    if (h2o_linklist_is_linked(&g->link))
        h2o_linklist_unlink(&g->link);
    free(g);
}

static void guard_close(guard_t *g)
{
    h2o_socket_t *sock = g->sock;
    sock->data = NULL;
    guard_free(g);
    h2o_socket_close(sock);
}

static void on_guard_timeout(h2o_timeout_entry_t *entry)
{
    guard_close(H2O_STRUCT_FROM_MEMBER(guard_t, timeout, entry));
}

/* give the connection to h2o; the bytes read so far stay in sock->input and h2o parses them first */
static void guard_handoff(guard_t *g, h2o_accept_ctx_t *actx, int http2)
{
    h2o_socket_t *sock = g->sock;
    struct timeval at = g->connected_at;
    h2o_socket_read_stop(sock);
    sock->data = NULL;
    guard_free(g);
    if (http2)
        h2o_http2_accept(actx, sock, at);
    else
        h2o_http1_accept(actx, sock, at);
}

/* after a refusal: read and drop what the client still sends (a body it had started), for up to a second, so
 * that closing does not reset the connection before the client has read the answer */
static void on_linger_read(h2o_socket_t *sock, const char *err)
{
    guard_t *g = sock->data;
    if (err) {
        guard_close(g);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
}

static void on_refusal_written(h2o_socket_t *sock, const char *err)
{
    guard_t *g = sock->data;
    if (err) {
        guard_close(g);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    h2o_timeout_unlink(&g->timeout);
    h2o_timeout_link(g->wl->w->loop, &g->wl->w->ctx.one_sec_timeout, &g->timeout);
    h2o_socket_read_start(sock, on_linger_read);
}

/* answer the first request ourselves, with Connection: close, and log it like every other answer */
static void guard_refuse(guard_t *g, const larder_reqhead_t *h, int status, const char *reason, const char *extra,
                         const char *msg)
{
    char body[512];
    json_t *j = json_pack("{s:s}", "error", msg);
    char *js = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int bl = snprintf(body, sizeof(body), "%s\n", js ? js : "{}");
    free(js);
    if (bl < 0 || (size_t)bl >= sizeof(body))
        bl = snprintf(body, sizeof(body), "{}\n");
    int n = snprintf(g->resp, sizeof(g->resp),
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nServer: larder\r\nX-Larder-Cache: BYPASS\r\n%s\r\n%s",
                     status, reason, bl, extra ? extra : "", body);
    if (n < 0 || (size_t)n >= sizeof(g->resp))
        n = snprintf(g->resp, sizeof(g->resp), "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                     status, reason);
    char method[16], path[512];
    snprintf(method, sizeof(method), "%.*s", (int)(h->method_len < 15 ? h->method_len : 15), h->method);
    snprintf(path, sizeof(path), "%.*s", (int)(h->path_len < 511 ? h->path_len : 511), h->path);
    larder_log_request("-", method, path, status, "BYPASS", 0, -1, msg);
    h2o_socket_read_stop(g->sock);
    h2o_iovec_t buf = h2o_iovec_init(g->resp, (size_t)n);
    h2o_socket_write(g->sock, &buf, 1, on_refusal_written);
}

static void release_body(void *data)
{
    body_hold_t *hold = data;
    atomic_fetch_sub(&hold->srv->body_bytes, hold->bytes);
    void (*prev)(void *) = hold->prev_cb;
    void *prev_data = hold->prev_data;
    free(hold);
    if (prev)
        prev(prev_data);
}

static int is_seed_upload(const larder_reqhead_t *h)
{
    static const char path[] = "/-/api/v1/jobs";
    size_t pl = sizeof(path) - 1;
    return h->method_len == 4 && memcmp(h->method, "POST", 4) == 0 && h->path_len >= pl &&
           memcmp(h->path, path, pl) == 0 && (h->path_len == pl || h->path[pl] == '?');
}

/* a chunk of a bundle import (bundle_import.c): admitted like a seed upload, up to larder_bundle_chunk_max */
static int is_import_chunk(const larder_reqhead_t *h)
{
    static const char path[] = "/-/api/v1/imports/";
    size_t pl = sizeof(path) - 1;
    return h->method_len == 3 && memcmp(h->method, "PUT", 3) == 0 && h->path_len > pl && memcmp(h->path, path, pl) == 0;
}

static int token_matches(const larder_config_t *cfg, const larder_reqhead_t *h)
{
    size_t tl = strlen(cfg->admin_token);
    return h->authorization && h->authorization_len == 7 + tl && strncasecmp(h->authorization, "Bearer ", 7) == 0 &&
           CRYPTO_memcmp(h->authorization + 7, cfg->admin_token, tl) == 0;
}

/* reserve `need` bytes of the bodies budget for this connection's one request and hand it to the bodies context,
 * or refuse it (503) when the budget is spent; the reservation is returned when the socket closes */
static void guard_reserve(guard_t *g, const larder_reqhead_t *h, uint64_t need, const char *what)
{
    larder_server_t *srv = g->wl->w->srv;
    const larder_config_t *cfg = srv->app->cfg;
    char msg[300];
    body_hold_t *hold = malloc(sizeof(*hold));
    uint64_t before = atomic_fetch_add(&srv->body_bytes, need);
    if (!hold || before + need > cfg->bodies_total) {
        atomic_fetch_sub(&srv->body_bytes, need);
        free(hold);
        snprintf(msg, sizeof(msg),
                 "too many large request bodies in flight (limits.request_bodies: %llu bytes); try again in a moment",
                 (unsigned long long)cfg->bodies_total);
        larder_warn("%s of %llu bytes refused: %llu bytes of request bodies already held", what,
                    (unsigned long long)need, (unsigned long long)before);
        guard_refuse(g, h, 503, "Service Unavailable", "Retry-After: 2\r\n", msg);
        return;
    }
    hold->srv = srv;
    hold->bytes = need;
    hold->prev_cb = g->sock->on_close.cb;
    hold->prev_data = g->sock->on_close.data;
    g->sock->on_close.cb = release_body;
    g->sock->on_close.data = hold;
    guard_handoff(g, &g->wl->bodies, 0);
}

/* a seed upload too large for the data context: authenticate it and reserve its size before reading it */
static void guard_seed_upload(guard_t *g, const larder_reqhead_t *h, uint64_t need)
{
    larder_server_t *srv = g->wl->w->srv;
    const larder_config_t *cfg = srv->app->cfg;
    char msg[300];
    if (!cfg->admin_token) {
        guard_refuse(g, h, 403, "Forbidden", NULL, "admin writes are disabled: set admin.token in larder.yaml");
        return;
    }
    if (!token_matches(cfg, h)) {
        guard_refuse(g, h, 401, "Unauthorized", "WWW-Authenticate: Bearer realm=\"larder\"\r\n",
                     "missing or wrong admin token (Authorization: Bearer <admin.token>)");
        return;
    }
    if (is_import_chunk(h) && need > larder_bundle_chunk_max(cfg)) {
        snprintf(msg, sizeof(msg), "a bundle chunk may have at most %llu bytes; this one has %llu",
                 (unsigned long long)larder_bundle_chunk_max(cfg), (unsigned long long)need);
        guard_refuse(g, h, 413, "Payload Too Large", NULL, msg);
        return;
    }
    if (need > cfg->seed_spec_max) {
        snprintf(msg, sizeof(msg), "a seed spec may have at most %llu bytes (limits.seed_spec); this one has %llu",
                 (unsigned long long)cfg->seed_spec_max, (unsigned long long)need);
        guard_refuse(g, h, 413, "Payload Too Large", NULL, msg);
        return;
    }
    guard_reserve(g, h, need, "seed upload");
}

/* the module that answers this raw path on this listener (as on_req routes it), with the path after its mount */
static const larder_protocol_t *module_of(const larder_config_t *cfg, int dedicated, const char *p, size_t len,
                                          const char **rest, size_t *restlen)
{
    if (dedicated >= 0) {
        const larder_protocol_t *m = larder_protocol_get(dedicated);
        if (!m || !cfg->proto[dedicated].enabled)
            return NULL;
        size_t skip = len >= 1 && p[0] == '/';
        *rest = p + skip;
        *restlen = len - skip;
        return m;
    }
    for (int i = 0; i < larder_proto_count(); i++) {
        const larder_protocol_t *m = larder_protocol_get(i);
        size_t ml = m ? strlen(m->mount) : 0;
        if (m && cfg->proto[i].enabled && len >= ml && memcmp(p, m->mount, ml) == 0) {
            *rest = p + ml;
            *restlen = len - ml;
            return m;
        }
    }
    return NULL;
}

/* the largest body a POST to this path may have: a module's own limit when it has a larger one, else 0 */
static uint64_t module_body_max(const larder_config_t *cfg, int dedicated, const larder_reqhead_t *h)
{
    if (h->method_len != 4 || memcmp(h->method, "POST", 4) != 0)
        return 0;
    const char *rest;
    size_t restlen;
    const larder_protocol_t *m = module_of(cfg, dedicated, h->path, h->path_len, &rest, &restlen);
    uint64_t max = m && m->request_body_max ? m->request_body_max(cfg, rest, restlen) : 0;
    return max > cfg->body_max ? max : 0;
}

/* a module POST too large for the data context: refuse it above the module's own limit, else reserve its size */
static void guard_module_body(guard_t *g, const larder_reqhead_t *h, uint64_t need, uint64_t max)
{
    if (need > max) {
        char msg[300];
        snprintf(msg, sizeof(msg), "request body of %llu bytes refused: at most %llu bytes at this path",
                 (unsigned long long)need, (unsigned long long)max);
        guard_refuse(g, h, 413, "Payload Too Large", NULL, msg);
        return;
    }
    guard_reserve(g, h, need, "request body");
}

static void on_guard_read(h2o_socket_t *sock, const char *err)
{
    guard_t *g = sock->data;
    if (err) {
        guard_close(g);
        return;
    }
    larder_reqhead_t h;
    int r = larder_reqhead_parse_more(sock->input->bytes, sock->input->size, g->seen, &h);
    if (r == -2 && sock->input->size < LARDER_REQHEAD_MAX) {
        g->seen = sock->input->size;
        return; /* more of the head to come (the timeout bounds the wait) */
    }
    if (r < 0) {
        /* not an HTTP/1 head: h2o answers it (400, its own size limit) or takes it as HTTP/2 prior knowledge */
        guard_handoff(g, &g->wl->data, 0);
        return;
    }
    const char *why = framing_refusal(h.framing);
    if (why) {
        guard_refuse(g, &h, 400, "Bad Request", NULL, why);
        return;
    }
    const larder_config_t *cfg = g->wl->w->srv->app->cfg;
    uint64_t need = h.framing == LARDER_BODY_CHUNKED ? cfg->seed_spec_max
                    : h.framing == LARDER_BODY_LENGTH ? h.content_length
                                                      : 0;
    if (g->wl->l->protocol < 0 && (is_seed_upload(&h) || is_import_chunk(&h)) && need > cfg->body_max) {
        guard_seed_upload(g, &h, need);
        return;
    }
    uint64_t mmax = h.framing != LARDER_BODY_NONE ? module_body_max(cfg, g->wl->l->protocol, &h) : 0;
    if (mmax) {
        uint64_t mneed = h.framing == LARDER_BODY_CHUNKED ? mmax : h.content_length;
        if (mneed > cfg->body_max) {
            guard_module_body(g, &h, mneed, mmax);
            return;
        }
    }
    if (h.framing == LARDER_BODY_LENGTH && h.content_length > cfg->body_max) {
        /* h2o would answer 413 too, but it closes at once with the body unread, and the client may then see a
         * connection reset before the answer; the refusal here drains what the client still sends */
        char msg[200];
        snprintf(msg, sizeof(msg), "request body of %llu bytes refused: at most %llu bytes (limits.request_body)",
                 (unsigned long long)h.content_length, (unsigned long long)cfg->body_max);
        guard_refuse(g, &h, 413, "Payload Too Large", NULL, msg);
        return;
    }
    guard_handoff(g, &g->wl->data, 0);
}

static void on_guard_handshake(h2o_socket_t *sock, const char *err)
{
    guard_t *g = sock->data;
    if (err) {
        guard_close(g);
        return;
    }
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    for (const h2o_iovec_t *id = h2o_http2_alpn_protocols; id->len; id++) {
        if (proto.len == id->len && memcmp(proto.base, id->base, proto.len) == 0) {
            guard_handoff(g, &g->wl->data, 1);
            return;
        }
    }
    h2o_socket_read_start(sock, on_guard_read);
    if (sock->input->size)
        on_guard_read(sock, NULL);
}

static void guard_start(worker_listener_t *wl, h2o_socket_t *sock)
{
    worker_t *w = wl->w;
    guard_t *g = calloc(1, sizeof(*g));
    if (!g) {
        h2o_socket_close(sock);
        return;
    }
    g->wl = wl;
    g->sock = sock;
    g->connected_at = *h2o_get_timestamp(&w->ctx, NULL, NULL);
    sock->data = g;
    g->timeout.cb = on_guard_timeout;
    /* the head must arrive within h2o's handshake timeout (10 s), as a TLS handshake must */
    h2o_timeout_link(w->loop, &w->ctx.handshake_timeout, &g->timeout);
    h2o_linklist_insert(&w->guards, &g->link);
    if (wl->l->ssl)
        h2o_socket_ssl_handshake(sock, wl->l->ssl, NULL, on_guard_handshake);
    else
        h2o_socket_read_start(sock, on_guard_read);
}

/* ---- accepting ---- */

static void on_accept(h2o_socket_t *listener, const char *err);

static void on_accept_resume(h2o_timeout_entry_t *entry)
{
    worker_listener_t *wl = H2O_STRUCT_FROM_MEMBER(worker_listener_t, resume, entry);
    h2o_socket_read_start(wl->sock, on_accept);
}

/* out of file descriptors: the connection stays in the backlog and the listener stays readable, so watching it
 * now would spin; stop watching it for a while (connections closing in the meantime free descriptors) */
static void accept_backoff(worker_listener_t *wl, int e)
{
    if (wl->pauses++ == 0)
        larder_warn("cannot accept connections on %s: %s; pausing accept for %d ms at a time until descriptors are "
                    "free (raise LimitNOFILE / ulimit -n if this persists)",
                    wl->l->name, strerror(e), ACCEPT_BACKOFF_MS);
    h2o_socket_read_stop(wl->sock);
    h2o_timeout_link(wl->w->loop, &wl->w->backoff, &wl->resume);
}

static void on_accept_retry(h2o_timeout_entry_t *entry)
{
    worker_listener_t *wl = H2O_STRUCT_FROM_MEMBER(worker_listener_t, retry, entry);
    h2o_socket_read_start(wl->sock, on_accept);
}

static void on_conn_close(void *data)
{
    worker_t *w = data;
    atomic_fetch_sub_explicit(&w->nconns, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&w->srv->app->metrics.client_connections, 1, memory_order_relaxed);
}

/* 1 when another worker, accepting too, holds fewer client connections than this one (see the top of the file) */
static int another_is_less_loaded(const worker_t *w)
{
    const larder_server_t *srv = w->srv;
    long mine = atomic_load_explicit(&w->nconns, memory_order_relaxed);
    for (size_t i = 0; i < srv->nworkers; i++) {
        const worker_t *o = &srv->workers[i];
        if (o != w && atomic_load(&o->accepting) && atomic_load_explicit(&o->nconns, memory_order_relaxed) < mine)
            return 1;
    }
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err)
        return;
    worker_listener_t *wl = listener->data;
    for (int i = 0; i < 16; i++) { /* drain a few pending connections per wake-up */
        if (wl->defers < ACCEPT_DEFER_MAX && another_is_less_loaded(wl->w)) {
            wl->defers++;
            h2o_socket_read_stop(listener);
            h2o_timeout_link(wl->w->loop, &wl->w->defer, &wl->retry);
            return;
        }
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock) {
            int e = errno;
            wl->defers = 0; /* nothing pending (another worker took it), or an error */
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
                accept_backoff(wl, e);
            break;
        }
        if (wl->pauses) {
            larder_info("accepting connections on %s again (paused %llu time(s) for want of file descriptors)",
                        wl->l->name, (unsigned long long)wl->pauses);
            wl->pauses = 0;
        }
        wl->defers = 0;
        atomic_fetch_add_explicit(&wl->w->nconns, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&wl->w->srv->app->metrics.client_connections, 1, memory_order_relaxed);
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = wl->w;
        guard_start(wl, sock);
    }
}

/* ---- worker threads ---- */

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    larder_server_t *srv = w->srv;
    /* h2o's socket buffer allocators are per thread: the loop and its queue must be born on this thread */
    w->loop = h2o_evloop_create();
    w->queue = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, on_wake);
    h2o_multithread_register_receiver(w->queue, &w->control, on_control);
    atomic_store(&w->ready, 1);
    larder_beat_answer(&w->beat); /* the start-up question (larder_server_run): the loop exists */
    h2o_context_init(&w->ctx, w->loop, &srv->globalconf);
    h2o_context_init(&w->body_ctx, w->loop, &srv->body_conf);
    h2o_timeout_init(w->loop, &w->backoff, ACCEPT_BACKOFF_MS);
    h2o_timeout_init(w->loop, &w->defer, ACCEPT_DEFER_MS);
    h2o_linklist_init_anchor(&w->guards);
    w->wls = calloc(srv->nlisteners, sizeof(*w->wls));
    for (size_t i = 0; i < srv->nlisteners; i++) {
        worker_listener_t *wl = &w->wls[i];
        wl->w = w;
        wl->l = &srv->listeners[i];
        int pr = wl->l->protocol;
        wl->data.ctx = &w->ctx;
        wl->data.hosts = pr >= 0 && pr < larder_proto_count() && srv->proto_hosts[pr][0] ? srv->proto_hosts[pr] : srv->main_hosts;
        wl->data.ssl_ctx = wl->l->ssl;
        wl->bodies.ctx = &w->body_ctx;
        wl->bodies.hosts = pr >= 0 && pr < larder_proto_count() && srv->body_proto_hosts[pr][0]
                               ? srv->body_proto_hosts[pr]
                               : srv->body_hosts;
        wl->bodies.ssl_ctx = wl->l->ssl;
        wl->resume.cb = on_accept_resume;
        wl->retry.cb = on_accept_retry;
        int fd = dup(wl->l->fd);
        wl->sock = h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        wl->sock->data = wl;
        h2o_socket_read_start(wl->sock, on_accept);
    }
    atomic_store(&w->accepting, 1);
    while (!atomic_load(&srv->stop)) {
        /* without waiting while responses wait for their next buffer (cache.c: one per connection per tick) */
        h2o_evloop_run(w->loop, larder_cache_yielded() ? 0 : 500);
        larder_cache_tick();
    }
    atomic_store(&w->accepting, 0);
    for (size_t i = 0; i < srv->nlisteners; i++) {
        worker_listener_t *wl = &w->wls[i];
        if (h2o_timeout_is_linked(&wl->resume))
            h2o_timeout_unlink(&wl->resume);
        if (h2o_timeout_is_linked(&wl->retry))
            h2o_timeout_unlink(&wl->retry);
        h2o_socket_read_stop(wl->sock);
        h2o_socket_close(wl->sock);
    }
    for (h2o_linklist_t *n = w->guards.next, *next; n != &w->guards; n = next) {
        next = n->next;
        guard_close(H2O_STRUCT_FROM_MEMBER(guard_t, link, n));
    }
    free(w->wls);
    return NULL;
}

/* ---- listeners ---- */

static int bind_listener(const larder_listen_t *l, listener_t *out, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
    struct addrinfo *res;
    char port[16];
    snprintf(port, sizeof(port), "%d", l->port);
    int r = getaddrinfo(l->address, port, &hints, &res);
    if (r != 0) {
        snprintf(err, errlen, "listen address %s: %s", l->address, gai_strerror(r));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", l->address, l->port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    out->fd = fd;
    snprintf(out->name, sizeof(out->name), "%s%s:%d%s%s%s", l->tls_cert ? "https://" : "http://", l->address, l->port,
             l->protocol >= 0 ? " (" : "", l->protocol >= 0 ? larder_proto_name(l->protocol) : "",
             l->protocol >= 0 ? " only, at /)" : "");
    return 0;
}

static SSL_CTX *make_ssl(const larder_listen_t *l, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, l->tls_cert) != 1) {
        snprintf(err, errlen, "TLS certificate %s: %s", l->tls_cert, ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, l->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "TLS key %s: %s", l->tls_key, ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (l->http2) /* without it, clients (git's curl over https) stay on HTTP/1.1, where large bodies are taken */
        h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
}

int larder_server_create(larder_app_t *app, larder_server_t **out, char *err, size_t errlen)
{
    const larder_config_t *cfg = app->cfg;
    larder_server_t *srv = calloc(1, sizeof(*srv));
    srv->app = app;
    h2o_config_init(&srv->globalconf);
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("larder"));
    /* the data context: h2o refuses larger bodies with 413 (see the top of this file) */
    srv->globalconf.max_request_entity_size = (size_t)cfg->body_max;
    /* timeouts.client_idle: how long an idle client connection is kept, between HTTP/1 requests (h2o's
     * req_timeout also bounds the wait for a head's or body's next bytes) and on an HTTP/2 connection */
    srv->globalconf.http1.req_timeout = cfg->client_idle_timeout * 1000;
    srv->globalconf.http2.idle_timeout = cfg->client_idle_timeout * 1000;
    h2o_hostconf_t *host = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    route_handler_t *h = (route_handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = on_req;
    h->app = app;
    h->srv = srv;
    h->dedicated = -1;
    srv->main_hosts[0] = host;
    /* the bodies context: one authenticated seed upload or one large module POST per connection, no upgrade to
     * HTTP/2 (whose streams would each get this limit) */
    h2o_config_init(&srv->body_conf);
    srv->body_conf.server_name = h2o_iovec_init(H2O_STRLIT("larder"));
    uint64_t body_limit = cfg->seed_spec_max;
    for (int i = 0; i < larder_proto_count(); i++) {
        const larder_protocol_t *m = larder_protocol_get(i);
        uint64_t mm = m && cfg->proto[i].enabled && m->request_body_max ? m->request_body_max(cfg, NULL, 0) : 0;
        if (mm > cfg->bodies_total)
            larder_warn("%s takes request bodies of up to %llu bytes, more than limits.request_bodies (%llu): larger "
                        "ones are refused with 503",
                        m->name, (unsigned long long)mm, (unsigned long long)cfg->bodies_total);
        if (mm > body_limit)
            body_limit = mm;
    }
    srv->body_conf.max_request_entity_size = (size_t)body_limit;
    srv->body_conf.http1.upgrade_to_http2 = 0;
    srv->body_conf.http1.req_timeout = srv->globalconf.http1.req_timeout;
    srv->body_conf.http2.idle_timeout = srv->globalconf.http2.idle_timeout;
    h2o_hostconf_t *bhost = h2o_config_register_host(&srv->body_conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    route_handler_t *bh =
        (route_handler_t *)h2o_create_handler(h2o_config_register_path(bhost, "/", 0), sizeof(*bh));
    bh->super.on_req = on_req;
    bh->app = app;
    bh->srv = srv;
    bh->dedicated = -1;
    bh->one_request = 1;
    srv->body_hosts[0] = bhost;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        int pr = cfg->listen[i].protocol;
        if (pr < 0 || pr >= larder_proto_count() || srv->proto_hosts[pr][0])
            continue;
        char hn[64];
        snprintf(hn, sizeof(hn), "dedicated-%s", larder_proto_name(pr));
        h2o_hostconf_t *dh = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(hn, strlen(hn)), 65535);
        route_handler_t *d = (route_handler_t *)h2o_create_handler(h2o_config_register_path(dh, "/", 0), sizeof(*d));
        d->super.on_req = on_req;
        d->app = app;
        d->srv = srv;
        d->dedicated = pr;
        srv->proto_hosts[pr][0] = dh;
        h2o_hostconf_t *bdh = h2o_config_register_host(&srv->body_conf, h2o_iovec_init(hn, strlen(hn)), 65535);
        route_handler_t *bd = (route_handler_t *)h2o_create_handler(h2o_config_register_path(bdh, "/", 0), sizeof(*bd));
        bd->super.on_req = on_req;
        bd->app = app;
        bd->srv = srv;
        bd->dedicated = pr;
        bd->one_request = 1;
        srv->body_proto_hosts[pr][0] = bdh;
    }

    int nfds = sd_listen_fds(1);
    if (nfds > 0) {
        srv->nlisteners = (size_t)nfds;
        srv->listeners = calloc(srv->nlisteners, sizeof(*srv->listeners));
        for (int i = 0; i < nfds; i++) {
            srv->listeners[i].fd = SD_LISTEN_FDS_START + i;
            snprintf(srv->listeners[i].name, sizeof(srv->listeners[i].name), "systemd socket %d", i);
            srv->listeners[i].protocol = (size_t)i < cfg->nlisten ? cfg->listen[i].protocol : -1;
            /* TLS for socket-activated listeners follows the config's listeners in order */
            if ((size_t)i < cfg->nlisten && cfg->listen[i].tls_cert &&
                !(srv->listeners[i].ssl = make_ssl(&cfg->listen[i], err, errlen)))
                goto fail;
        }
    } else {
        srv->nlisteners = cfg->nlisten;
        srv->listeners = calloc(srv->nlisteners ? srv->nlisteners : 1, sizeof(*srv->listeners));
        for (size_t i = 0; i < cfg->nlisten; i++) {
            srv->listeners[i].fd = -1;
            srv->listeners[i].protocol = cfg->listen[i].protocol;
            if (bind_listener(&cfg->listen[i], &srv->listeners[i], err, errlen) < 0)
                goto fail;
            if (cfg->listen[i].tls_cert && !(srv->listeners[i].ssl = make_ssl(&cfg->listen[i], err, errlen)))
                goto fail;
        }
    }
    srv->nworkers = cfg->threads > 0 ? (size_t)cfg->threads : (size_t)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv->nworkers < 1)
        srv->nworkers = 1;
    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    for (size_t i = 0; i < srv->nworkers; i++) {
        srv->workers[i].srv = srv;
    }
    const char *hooks = getenv("LARDER_TEST_HOOKS");
    srv->test_hooks = hooks && strcmp(hooks, "1") == 0;
    if (srv->test_hooks)
        larder_warn("LARDER_TEST_HOOKS=1: test hooks are enabled (POST /-/debug/stall blocks a worker); this exists "
                    "for larder's tests only and must never be set in production");
    *out = srv;
    return 0;
fail:
    larder_server_destroy(srv);
    return -1;
}

static void signal_set(sigset_t *set)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
    sigemptyset(set);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(set, sigs[i]);
}

void larder_server_block_signals(void)
{
    sigset_t set;
    signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* SIGHUP: the configuration is shared read-only by every thread (listeners, TLS contexts, quotas, upstreams),
 * so it is not swapped while running; the file is parsed again to tell whether a restart would succeed */
static void on_sighup(larder_server_t *srv)
{
    const char *src = srv->app->cfg->source;
    if (!src || !strcmp(src, "<default>")) {
        larder_info("received SIGHUP: running on the embedded default configuration, nothing to re-read; logs go to "
                    "%s and need no reopening",
                    "journald or stderr");
        return;
    }
    char err[1024];
    larder_config_t *cfg = larder_config_load(src, err, sizeof(err));
    if (cfg) {
        larder_config_free(cfg);
        larder_info("received SIGHUP: %s is valid; configuration changes take effect only after a restart "
                    "(systemctl restart larder); logs go to journald or stderr and need no reopening",
                    src);
    } else {
        larder_warn("received SIGHUP: %s has errors and a restart would fail: %s (the running daemon keeps its "
                    "configuration)",
                    src, err);
    }
}

/* the watchdog's state between ticks: which thread was last found stuck, and since when */
typedef struct watch {
    uint64_t limit_ms; /* a question unanswered for longer means a stuck loop */
    int stuck;
    char who[32];
    uint64_t since; /* CLOCK_MONOTONIC ms of the question the stuck thread left unanswered */
} watch_t;

/* ask every loop its heartbeat question; 1 when each answered within the limit, else 0 with w->who naming the
 * thread whose question has waited longest */
static int threads_answer(larder_server_t *srv, watch_t *wt, uint64_t now, uint64_t *waited)
{
    uint64_t worst = 0;
    char who[32] = "";
    for (size_t i = 0; i < srv->nworkers; i++) {
        worker_t *w = &srv->workers[i];
        /* before the loop exists its start-up question (asked in larder_server_run) stays outstanding */
        if (atomic_load(&w->ready) && larder_beat_ask(&w->beat, now))
            h2o_multithread_send_message(&w->control, &w->hb_msg);
        uint64_t t = larder_beat_waiting(&w->beat, now);
        if (t > wt->limit_ms && t > worst) {
            worst = t;
            snprintf(who, sizeof(who), "worker %zu", i);
        }
    }
    if (srv->app->fetcher) {
        uint64_t t = larder_fetcher_heartbeat(srv->app->fetcher, now);
        if (t > wt->limit_ms && t > worst) {
            worst = t;
            snprintf(who, sizeof(who), "the fetch thread");
        }
    }
    *waited = worst;
    if (worst)
        snprintf(wt->who, sizeof(wt->who), "%s", who);
    return worst == 0;
}

/* one tick: WATCHDOG=1 only while every loop answers; a stuck one is logged and put in STATUS= once, its
 * recovery too */
static void watchdog_tick(larder_server_t *srv, watch_t *wt, int wd)
{
    uint64_t now = larder_mono_ms(), waited = 0;
    if (threads_answer(srv, wt, now, &waited)) {
        if (wt->stuck) {
            larder_info("watchdog: every thread answers again (%s was stuck for %.1f s)%s", wt->who,
                        (double)(now - wt->since) / 1000.0, wd ? "; pinging the systemd watchdog again" : "");
            sd_notify(0, "STATUS=serving");
            wt->stuck = 0;
        }
        if (wd)
            sd_notify(0, "WATCHDOG=1");
        return;
    }
    if (wt->stuck && wt->since == now - waited)
        return; /* the same stall, already told */
    wt->stuck = 1;
    wt->since = now - waited;
    larder_warn("watchdog: %s has not answered a heartbeat for %.1f s (limit %.1f s): its event loop is blocked%s",
                wt->who, (double)waited / 1000.0, (double)wt->limit_ms / 1000.0,
                wd ? "; not pinging the systemd watchdog, which restarts larder if this lasts" : "");
    sd_notifyf(0, "STATUS=stuck: %s has not answered a heartbeat for %.1f s; watchdog not pinged", wt->who,
               (double)waited / 1000.0);
}

int larder_server_run(larder_server_t *srv)
{
    sigset_t set;
    signal_set(&set);
    larder_server_block_signals(); /* main() did so before any thread started; again for other callers */
    uint64_t start = larder_mono_ms();
    for (size_t i = 0; i < srv->nworkers; i++) {
        larder_beat_ask(&srv->workers[i].beat, start); /* answered once the worker's loop exists */
        pthread_create(&srv->workers[i].tid, NULL, worker_main, &srv->workers[i]);
    }
    for (size_t i = 0; i < srv->nlisteners; i++)
        larder_info("listening on %s", srv->listeners[i].name);
    larder_info("larder ready: %zu worker thread(s), data in %s%s", srv->nworkers, srv->app->cfg->data_dir,
                srv->app->cfg->offline ? ", OFFLINE (upstreams are never contacted)" : "");
    sd_notify(0, "READY=1\nSTATUS=serving");

    /* every loop is asked each tick and must answer within half the watchdog's interval; ticking at a quarter of
     * it leaves a healthy daemon a ping at least every quarter */
    uint64_t wd_usec = 0;
    int wd = sd_watchdog_enabled(0, &wd_usec) > 0;
    watch_t wt = {.limit_ms = wd ? wd_usec / 2000 : 10000};
    if (wt.limit_ms < 100)
        wt.limit_ms = 100;
    uint64_t tick_usec = wd && wd_usec / 4 < 1000000 ? wd_usec / 4 : 1000000;
    struct timespec ts = {(time_t)(tick_usec / 1000000), (long)(tick_usec % 1000000) * 1000};
    if (wd)
        larder_info("systemd watchdog: every %.1f s; pinged while every worker's and the fetch thread's loop "
                    "answers within %.1f s",
                    (double)wd_usec / 1e6, (double)wt.limit_ms / 1000.0);
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            larder_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        if (sig == SIGHUP)
            on_sighup(srv);
        else if (sig == SIGUSR1 || sig == SIGUSR2)
            larder_info("received %s: ignored (SIGHUP checks the configuration, SIGTERM stops larder)",
                        sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
        watchdog_tick(srv, &wt, wd);
    }
    sd_notify(0, "STOPPING=1");
    atomic_store(&srv->stop, 1);
    for (size_t i = 0; i < srv->nworkers; i++) {
        /* a wake-up makes the loop return so it sees the stop flag */
        larder_server_wake(srv);
        pthread_join(srv->workers[i].tid, NULL);
    }
    return 0;
}

void larder_server_destroy(larder_server_t *srv)
{
    if (!srv)
        return;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        if (srv->listeners[i].fd >= 0)
            close(srv->listeners[i].fd);
        if (srv->listeners[i].ssl)
            SSL_CTX_free(srv->listeners[i].ssl);
    }
    free(srv->listeners);
    free(srv->workers);
    free(srv);
}
