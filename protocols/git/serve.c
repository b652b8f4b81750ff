/* serve.c - /git/<remote>/<path>/...: git's smart HTTP protocol, answered by git itself from the mirrors.
 *
 * GET info/refs?service=git-upload-pack is where a clone or fetch starts, so it is where freshness is decided: a
 * mirror whose m/ entry is fresh is advertised at once (HIT); otherwise, online, the update (mirror.c, a local fetch
 * of the core: single flight per repository) runs first and the request waits for it without blocking the thread
 * (larder_cache_after_fetch), then the mirror is advertised (MISS the first time, REVALIDATED after; STALE with a
 * log line when the update failed but a mirror exists). Offline, or with the remote known to be down, the mirror is
 * advertised as it is (STALE); with no mirror that is a 504. The advertisement is `git upload-pack --stateless-rpc
 * --advertise-refs`, after the "# service=git-upload-pack" pkt-line and a flush for protocol v0/v1 (exactly what
 * git-http-backend sends; v2 has none). POST git-upload-pack runs `git upload-pack --stateless-rpc` on the mirror
 * with the request body (gzip inflated, bounded by git.max_request_body) in a temp file as its stdin, so the child
 * never waits for us to write while we wait for it to read. Both stream the child's stdout: the pipe is an h2o
 * socket on the request's loop, read when h2o asks for more (proceed) and stopped while a buffer is in flight, so a
 * slow client slows git down instead of filling memory. The exit status decides the end (a clean end or an aborted
 * response); the child is waited for by polling on the loop (it has closed its stdout: it is about to exit). A
 * client that goes away has its child's process group killed and reaped (proc.c). upload-pack processes are
 * bounded by git.max_concurrent: a request over the limit waits on a timer of its loop. The client's Git-Protocol
 * header reaches git as GIT_PROTOCOL when it is well-formed (protocol v2). Pushes (git-receive-pack) are refused
 * with 403, the dumb protocol with 404. Every answer closes its HTTP/1 connection, so that every upload-pack POST
 * is the first request of a connection and meets the head guard, which allows it a large body (server.c). */
#include "internal.h"
#include "log.h"
#include "record.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOT_WAIT_MS (5ULL * 60 * 1000) /* an upload-pack waits this long for a slot, then 503 */
#define EXIT_WAIT_POLLS 400          /* polls for the exit status after EOF: 50 at once, then every 100 ms */

enum { ST_WAIT_SLOT = 0, ST_RUNNING, ST_EXITING, ST_DONE };

typedef struct git_stream {
    h2o_generator_t super;
    h2o_req_t *req;
    larder_app_t *app;
    git_state_t *s;
    h2o_socket_t *sock; /* the read end of the child's stdout */
    pid_t pid;          /* 0 when none or reaped */
    int in_fd, err_fd;  /* the child's stdin (the request body) and stderr: anonymous temp files, or -1 */
    char *buf;          /* the bytes given to h2o_send: valid until proceed */
    size_t cap;
    int state, slot, eof, in_send, again, advertise, cache_status;
    int64_t upstream_ms;
    uint64_t sent, started_ms;
    unsigned polls;
    h2o_timeout_entry_t timer;
    char dir[4600];
    char protocol[260]; /* GIT_PROTOCOL, or "" */
    char note[700];
    char path[512], method[16];
} git_stream_t;

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    size_t len = strlen(value);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL,
                          h2o_strdup(&req->pool, value, len).base, len);
}

static int method_is(h2o_req_t *req, const char *m)
{
    return req->input.method.len == strlen(m) && memcmp(req->input.method.base, m, req->input.method.len) == 0;
}

static void send_error(larder_app_t *app, h2o_req_t *req, int status, const char *reason, const char *cache,
                       const char *msg)
{
    if (cache)
        add_header(req, "x-larder-cache", cache);
    req->http1_is_persistent = 0;
    larder_send_error(app, req, LARDER_PROTO_GIT, status, reason, "%s", msg);
}

static void log_end(git_stream_t *gs, int status, const char *note)
{
    larder_log_request("git", gs->method, gs->path, status, larder_cache_status_name(gs->cache_status), gs->sent,
                       gs->upstream_ms, note && *note ? note : NULL);
    larder_metrics_answered(&gs->app->metrics, LARDER_PROTO_GIT, gs->cache_status, gs->sent);
}

static void release_slot(git_stream_t *gs)
{
    if (gs->slot) {
        gs->slot = 0;
        atomic_fetch_sub(&gs->s->serving, 1);
    }
}

/* everything the stream holds, except its log line: on dispose and on stop */
static void stream_release(git_stream_t *gs)
{
    if (h2o_timeout_is_linked(&gs->timer))
        h2o_timeout_unlink(&gs->timer);
    if (gs->sock) {
        h2o_socket_read_stop(gs->sock);
        h2o_socket_close(gs->sock);
        gs->sock = NULL;
    }
    if (gs->pid > 0) {
        git_child_kill(gs->s, gs->pid); /* the client went away: stop git and everything it runs */
        gs->pid = 0;
    }
    release_slot(gs);
    if (gs->in_fd >= 0)
        close(gs->in_fd);
    if (gs->err_fd >= 0)
        close(gs->err_fd);
    gs->in_fd = gs->err_fd = -1;
    free(gs->buf);
    gs->buf = NULL;
}

static void stream_dispose(void *p)
{
    git_stream_t *gs = p;
    if (gs->state != ST_DONE) {
        gs->state = ST_DONE;
        log_end(gs, gs->req->res.status ? gs->req->res.status : 499, "client went away");
    }
    stream_release(gs);
}

static void on_stop(h2o_generator_t *g, h2o_req_t *req)
{
    git_stream_t *gs = (git_stream_t *)g;
    if (gs->state != ST_DONE) {
        gs->state = ST_DONE;
        log_end(gs, req->res.status, "client went away");
    }
    stream_release(gs);
}

/* the end: a clean one when git exited 0, else an aborted response (the client must not take it as complete) */
static void stream_finish(git_stream_t *gs, int code)
{
    release_slot(gs);
    char note[800];
    h2o_send_state_t st = H2O_SEND_STATE_FINAL;
    snprintf(note, sizeof(note), "%s", gs->note);
    if (code != 0) {
        char msg[200] = "";
        if (gs->err_fd >= 0)
            git_tail_message(gs->err_fd, msg, sizeof(msg));
        snprintf(note, sizeof(note), "git upload-pack %s%s%s", code < 0 ? "was killed" : "failed",
                 msg[0] ? ": " : "", msg);
        larder_warn("git: upload-pack on %s ended with %d: %s", gs->dir, code, msg[0] ? msg : "no message");
        st = H2O_SEND_STATE_ERROR;
    }
    gs->state = ST_DONE;
    log_end(gs, gs->req->res.status, note);
    h2o_send(gs->req, NULL, 0, st); /* gs may be gone after this */
}

static void on_timer(h2o_timeout_entry_t *entry);

static void check_exit(git_stream_t *gs)
{
    int st;
    pid_t r = waitpid(gs->pid, &st, WNOHANG);
    if (r == gs->pid || r < 0) {
        git_child_reaped(gs->s, gs->pid);
        gs->pid = 0;
        stream_finish(gs, r < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return;
    }
    if (++gs->polls > EXIT_WAIT_POLLS) { /* stdout closed long ago and still running: give up on it */
        git_child_kill(gs->s, gs->pid);
        gs->pid = 0;
        stream_finish(gs, -1);
        return;
    }
    h2o_context_t *ctx = gs->req->conn->ctx;
    h2o_timeout_link(ctx->loop, gs->polls < 50 ? &ctx->zero_timeout : &ctx->hundred_ms_timeout, &gs->timer);
}

static void on_read(h2o_socket_t *sock, const char *err);

/* push what the child wrote; 1 when a buffer is in flight (wait for proceed) */
static int send_input(git_stream_t *gs)
{
    size_t n = gs->sock ? gs->sock->input->size : 0;
    if (n == 0)
        return 0;
    if (n > gs->cap) {
        char *nb = realloc(gs->buf, n);
        if (!nb) {
            gs->eof = 1;
            return 0;
        }
        gs->buf = nb;
        gs->cap = n;
    }
    memcpy(gs->buf, gs->sock->input->bytes, n);
    h2o_buffer_consume(&gs->sock->input, n);
    gs->sent += n;
    h2o_iovec_t v = h2o_iovec_init(gs->buf, n);
    h2o_send(gs->req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
    return 1;
}

static void step(git_stream_t *gs)
{
    if (gs->in_send) { /* h2o asked for more from inside h2o_send */
        gs->again = 1;
        return;
    }
    gs->in_send = 1;
    do {
        gs->again = 0;
        if (gs->state != ST_RUNNING)
            break;
        if (gs->eof) {
            if (send_input(gs)) /* the last bytes read before the end */
                break;
            if (gs->sock) {
                h2o_socket_read_stop(gs->sock);
                h2o_socket_close(gs->sock);
                gs->sock = NULL;
            }
            gs->state = ST_EXITING;
            gs->in_send = 0;
            check_exit(gs); /* gs may be gone after this */
            return;
        }
        h2o_socket_read_start(gs->sock, on_read);
    } while (gs->again);
    gs->in_send = 0;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    git_stream_t *gs = sock->data;
    h2o_socket_read_stop(sock);
    if (err) /* the end of git's output (or a read error: its exit status tells) */
        gs->eof = 1;
    if (err || !send_input(gs)) /* nothing in flight: read on, or end */
        step(gs);
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    step((git_stream_t *)g);
}

static void stream_run(git_stream_t *gs)
{
    h2o_req_t *req = gs->req;
    int max = git_conf(gs->app->cfg)->max_concurrent;
    if (atomic_fetch_add(&gs->s->serving, 1) >= max) {
        atomic_fetch_sub(&gs->s->serving, 1);
        if (larder_now_ms() - gs->started_ms > SLOT_WAIT_MS) {
            gs->state = ST_DONE;
            add_header(req, "retry-after", "10");
            send_error(gs->app, req, 503, "Service Unavailable", "BYPASS",
                       "too many git upload-pack processes at once (git.max_concurrent); try again");
            return;
        }
        h2o_context_t *ctx = req->conn->ctx;
        h2o_timeout_link(ctx->loop, &ctx->hundred_ms_timeout, &gs->timer);
        return;
    }
    gs->slot = 1;
    int p[2] = {-1, -1};
    gs->err_fd = git_tmpfile(gs->s);
    const char *argv[] = {"git", "-c", "uploadpack.allowFilter=true", "-c", "uploadpack.allowAnySHA1InWant=true",
                          "-c", "uploadpack.allowReachableSHA1InWant=true", "upload-pack", "--stateless-rpc",
                          "--strict", gs->advertise ? "--advertise-refs" : gs->dir, gs->advertise ? gs->dir : NULL,
                          NULL};
    git_env_t env;
    git_env_init(&env, gs->s);
    if (gs->protocol[0])
        git_env_add(&env, "GIT_PROTOCOL", gs->protocol);
    pid_t pid = 0;
    int r = pipe2(p, O_CLOEXEC) < 0 ? -errno : git_spawn(gs->s, argv, git_env_finish(&env), gs->in_fd, p[1], gs->err_fd, &pid);
    git_env_free(&env);
    if (p[1] >= 0)
        close(p[1]);
    if (gs->in_fd >= 0) {
        close(gs->in_fd);
        gs->in_fd = -1;
    }
    if (r < 0) {
        if (p[0] >= 0)
            close(p[0]);
        release_slot(gs);
        gs->state = ST_DONE;
        char msg[200];
        snprintf(msg, sizeof(msg), "cannot run git upload-pack: %s", strerror(-r));
        larder_warn("git: %s", msg);
        send_error(gs->app, req, 500, "Internal Server Error", "BYPASS", msg);
        return;
    }
    gs->pid = pid;
    git_child_add(gs->s, pid);
    gs->sock = h2o_evloop_socket_create(req->conn->ctx->loop, p[0], 0);
    gs->sock->data = gs;
    gs->state = ST_RUNNING;
    req->res.status = 200;
    req->res.reason = "OK";
    add_header(req, "content-type", gs->advertise ? "application/x-git-upload-pack-advertisement"
                                                  : "application/x-git-upload-pack-result");
    add_header(req, "cache-control", "no-cache");
    add_header(req, "x-larder-cache", larder_cache_status_name(gs->cache_status));
    atomic_fetch_add(&gs->app->metrics.responses[LARDER_PROTO_GIT][gs->cache_status], 1);
    h2o_start_response(req, &gs->super);
    if (gs->advertise && !larder_git_protocol_is_v2(gs->protocol, strlen(gs->protocol))) {
        /* protocol v0/v1 over HTTP: the service announcement git-http-backend sends before the refs */
        static const char svc[] = "001e# service=git-upload-pack\n0000";
        gs->buf = malloc(sizeof(svc));
        if (gs->buf) {
            gs->cap = sizeof(svc);
            memcpy(gs->buf, svc, sizeof(svc) - 1);
            gs->sent += sizeof(svc) - 1;
            h2o_iovec_t v = h2o_iovec_init(gs->buf, sizeof(svc) - 1);
            h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
            return; /* proceed starts reading */
        }
    }
    h2o_socket_read_start(gs->sock, on_read);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    git_stream_t *gs = H2O_STRUCT_FROM_MEMBER(git_stream_t, timer, entry);
    if (gs->state == ST_WAIT_SLOT)
        stream_run(gs);
    else if (gs->state == ST_EXITING)
        check_exit(gs);
}

/* answer req from `git upload-pack` on dir; in_fd (taken over) is its stdin, or -1 to advertise. key: the mirror's
 * entry, recorded (record.h) when an advertisement serves it: every clone and fetch starts with one */
static void stream_start(larder_app_t *app, h2o_req_t *req, const char *dir, const char *key, int in_fd,
                         int cache_status, int64_t upstream_ms, const char *note)
{
    if (key && cache_status != LARDER_CACHE_REVALIDATED && cache_status != LARDER_CACHE_MISS)
        larder_record_served(app, req, LARDER_PROTO_GIT, key); /* after a fetch, the core recorded it */
    git_stream_t *gs = h2o_mem_alloc_shared(&req->pool, sizeof(*gs), stream_dispose);
    memset(gs, 0, sizeof(*gs));
    gs->super.proceed = on_proceed;
    gs->super.stop = on_stop;
    gs->req = req;
    gs->app = app;
    gs->s = git_state();
    gs->in_fd = in_fd;
    gs->err_fd = -1;
    gs->advertise = in_fd < 0;
    gs->cache_status = cache_status;
    gs->upstream_ms = upstream_ms;
    gs->started_ms = larder_now_ms();
    gs->timer.cb = on_timer;
    snprintf(gs->dir, sizeof(gs->dir), "%s", dir);
    snprintf(gs->note, sizeof(gs->note), "%s", note ? note : "");
    snprintf(gs->path, sizeof(gs->path), "%.*s", (int)(req->input.path.len < 511 ? req->input.path.len : 511),
             req->input.path.base);
    snprintf(gs->method, sizeof(gs->method), "%.*s", (int)(req->input.method.len < 15 ? req->input.method.len : 15),
             req->input.method.base);
    ssize_t hi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("git-protocol"), -1);
    if (hi >= 0) {
        h2o_iovec_t v = req->headers.entries[hi].value;
        if (larder_git_protocol_ok(v.base, v.len))
            snprintf(gs->protocol, sizeof(gs->protocol), "%.*s", (int)v.len, v.base);
        else
            larder_warn("git: ignoring a malformed Git-Protocol header on %s", gs->path);
    }
    req->http1_is_persistent = 0;
    stream_run(gs);
}

/* ---- info/refs ---- */

typedef struct refs_req {
    char remote[LARDER_GIT_REMOTE_MAX + 1], path[LARDER_GIT_PATH_MAX + 1];
    char key[LARDER_GIT_PATH_MAX + LARDER_GIT_REMOTE_MAX + 8];
    char url[4400], dir[4600];
    int had_mirror;
    uint64_t started_ms;
    larder_fetch_t *fe; /* the update waited for (the waiting response holds it while `after_update` runs) */
} refs_req_t;

static void after_update(larder_app_t *app, h2o_req_t *req, int state, void *data)
{
    refs_req_t *rr = data;
    char error[300];
    snprintf(error, sizeof(error), "%s", rr->fe->error[0] ? rr->fe->error : "the update failed");
    int uncached = rr->fe->uncached;
    rr->fe = NULL;
    int64_t ms = (int64_t)(larder_now_ms() - rr->started_ms);
    int mirror = git_mirror_exists(rr->dir);
    if ((state == LARDER_FETCH_DONE || state == LARDER_FETCH_NOT_MODIFIED) && mirror) {
        const char *note = uncached        ? "updated, but the ref list was not stored (quota or disk): the next "
                                             "request updates again"
                           : rr->had_mirror ? "mirror older than git.ttl: fetched from the upstream first"
                                            : "not mirrored yet: cloned from the upstream";
        stream_start(app, req, rr->dir, rr->key, -1, rr->had_mirror ? LARDER_CACHE_REVALIDATED : LARDER_CACHE_MISS, ms, note);
        return;
    }
    if (mirror) {
        larder_warn("git: serving %s/%s as mirrored: its update failed: %s", rr->remote, rr->path, error);
        char note[400];
        snprintf(note, sizeof(note), "update failed: %s", error);
        stream_start(app, req, rr->dir, rr->key, -1, LARDER_CACHE_STALE, ms, note);
        return;
    }
    char msg[1600];
    if (!strncmp(error, GIT_NOT_FOUND, strlen(GIT_NOT_FOUND))) {
        snprintf(msg, sizeof(msg), "%s", error);
        send_error(app, req, 404, "Not Found", "MISS", msg);
        return;
    }
    snprintf(msg, sizeof(msg), "cannot mirror %s/%s: %s", rr->remote, rr->path, error);
    send_error(app, req, 502, "Bad Gateway", "MISS", msg);
}

static void info_refs(larder_app_t *app, h2o_req_t *req, const larder_git_route_t *rt,
                      const larder_git_remote_t *remote)
{
    git_state_t *s = git_state();
    const larder_config_t *cfg = app->cfg;
    refs_req_t *rr = h2o_mem_alloc_pool(&req->pool, sizeof(*rr));
    memset(rr, 0, sizeof(*rr));
    snprintf(rr->remote, sizeof(rr->remote), "%s", rt->remote);
    snprintf(rr->path, sizeof(rr->path), "%s", rt->path);
    git_mirror_key(rt->remote, rt->path, rr->key, sizeof(rr->key));
    git_upstream_url(remote, rt->path, rr->url, sizeof(rr->url));
    git_mirror_dir(s, rt->remote, rt->path, rr->dir, sizeof(rr->dir));
    rr->started_ms = larder_now_ms();
    uint64_t ttl = cfg->proto[LARDER_PROTO_GIT].ttl;
    larder_fetch_t *fe = NULL;
    for (int attempt = 0; attempt < 2 && !fe; attempt++) {
        larder_entry_t e;
        int have = larder_store_get(app->store, LARDER_PROTO_GIT, rr->key, &e) == 0;
        int mirror = git_mirror_exists(rr->dir);
        int fresh = have && larder_entry_is_fresh(&e, larder_now(), ttl);
        if (have)
            larder_store_touch(app->store, LARDER_PROTO_GIT, rr->key, &e);
        if (have)
            larder_entry_clear(&e);
        if (fresh && mirror) {
            stream_start(app, req, rr->dir, rr->key, -1, LARDER_CACHE_HIT, -1, NULL);
            return;
        }
        char why[220], note[600];
        if (cfg->offline) {
            if (mirror) {
                stream_start(app, req, rr->dir, rr->key, -1, LARDER_CACHE_STALE, -1, "offline: the mirror as it is");
                return;
            }
            char msg[2400];
            snprintf(msg, sizeof(msg),
                     "larder is offline and %s/%s is not mirrored.\nSeed it while online (git: [%s/%s] in a seed "
                     "spec, then `larder seed SPEC.yaml`), or clone it once with `offline: false`.",
                     rr->remote, rr->path, rr->remote, rr->path);
            send_error(app, req, 504, "Gateway Timeout", "MISS", msg);
            return;
        }
        if (git_remote_down(s, rr->remote, why, sizeof(why))) { /* not asked again for a while */
            if (mirror) {
                snprintf(note, sizeof(note), "upstream %s unreachable lately: %s", rr->remote, why);
                larder_warn("git: serving %s/%s as mirrored: %s", rr->remote, rr->path, note);
                stream_start(app, req, rr->dir, rr->key, -1, LARDER_CACHE_STALE, -1, note);
                return;
            }
            char msg[2400];
            snprintf(msg, sizeof(msg),
                     "%s/%s is not mirrored and its upstream %s did not answer lately (%s); try again in a minute",
                     rr->remote, rr->path, rr->remote, why);
            add_header(req, "retry-after", "60");
            send_error(app, req, 504, "Gateway Timeout", "MISS", msg);
            return;
        }
        rr->had_mirror = mirror;
        larder_fetch_req_t fr = {.proto = LARDER_PROTO_GIT,
                                 .key = rr->key,
                                 .url = rr->url,
                                 .ttl = ttl,
                                 .force = !mirror, /* a fresh entry without its mirror (removed by hand) */
                                 .transform = git_transform_update,
                                 .local = 1,
                                 .own_thread = 1};
        int how;
        fe = larder_fetch_start(app->fetcher, &fr, &how);
        if (!fe && how != LARDER_FETCH_NOW_CACHED) {
            send_error(app, req, 502, "Bad Gateway", "MISS", "could not start the mirror update");
            return;
        }
    }
    if (!fe) { /* updated meanwhile, twice: serve what is there */
        stream_start(app, req, rr->dir, rr->key, -1, LARDER_CACHE_HIT, -1, NULL);
        return;
    }
    rr->fe = fe;
    larder_cache_after_fetch(app, req, LARDER_PROTO_GIT, h2o_strdup(&req->pool, rr->key, SIZE_MAX).base, fe,
                             after_update, rr);
}

/* ---- git-upload-pack ---- */

static int sink_fd(void *ctx, const char *p, size_t n) { return larder_write_all(*(int *)ctx, p, n); }

static void upload_pack(larder_app_t *app, h2o_req_t *req, const larder_git_route_t *rt)
{
    git_state_t *s = git_state();
    char dir[4600], msg[900];
    git_mirror_dir(s, rt->remote, rt->path, dir, sizeof(dir));
    if (!git_mirror_exists(dir)) {
        snprintf(msg, sizeof(msg),
                 "no mirror of %s/%s: fetch info/refs?service=git-upload-pack first (git clone and git fetch do)",
                 rt->remote, rt->path);
        send_error(app, req, 404, "Not Found", "MISS", msg);
        return;
    }
    uint64_t max = git_conf(app->cfg)->max_request_body;
    h2o_iovec_t body = req->entity;
    ssize_t ce = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_ENCODING, -1);
    h2o_iovec_t enc = ce >= 0 ? req->headers.entries[ce].value : h2o_iovec_init(NULL, 0);
    int gzip = enc.len && (h2o_lcstris(enc.base, enc.len, H2O_STRLIT("gzip")) ||
                           h2o_lcstris(enc.base, enc.len, H2O_STRLIT("x-gzip")));
    if (enc.len && !gzip && !h2o_lcstris(enc.base, enc.len, H2O_STRLIT("identity"))) {
        send_error(app, req, 415, "Unsupported Media Type", "BYPASS",
                   "only gzip request bodies are accepted (Content-Encoding)");
        return;
    }
    if (body.len > max) {
        snprintf(msg, sizeof(msg), "request body of %zu bytes refused: at most %llu (git.max_request_body)", body.len,
                 (unsigned long long)max);
        send_error(app, req, 413, "Payload Too Large", "BYPASS", msg);
        return;
    }
    int fd = git_tmpfile(s);
    if (fd < 0) {
        snprintf(msg, sizeof(msg), "cannot store the request body: %s", strerror(-fd));
        send_error(app, req, 500, "Internal Server Error", "BYPASS", msg);
        return;
    }
    const char *err = NULL;
    int r = gzip ? larder_git_gunzip(body.base ? body.base : "", body.len, max, sink_fd, &fd, &err)
                 : (larder_write_all(fd, body.base ? body.base : "", body.len) < 0 ? -3 : 0);
    if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
        r = -3;
    if (r < 0) {
        close(fd);
        if (r == -2) {
            snprintf(msg, sizeof(msg), "%s: at most %llu bytes (git.max_request_body)", err, (unsigned long long)max);
            send_error(app, req, 413, "Payload Too Large", "BYPASS", msg);
        } else if (r == -1) {
            send_error(app, req, 400, "Bad Request", "BYPASS", err);
        } else {
            snprintf(msg, sizeof(msg), "cannot store the request body: %s", strerror(errno));
            send_error(app, req, 500, "Internal Server Error", "BYPASS", msg);
        }
        return;
    }
    stream_start(app, req, dir, NULL, fd, LARDER_CACHE_HIT, -1, NULL);
}

void git_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len)
{
    git_state_t *s = git_state();
    char msg[2000], names[600];
    if (!s || !s->git[0]) {
        send_error(app, req, 503, "Service Unavailable", "BYPASS",
                   "git is not available: install git (the git program) on the larder host");
        return;
    }
    larder_git_route_t rt;
    const char *err;
    if (larder_git_route(rest, len, &rt, &err) < 0) {
        snprintf(msg, sizeof(msg), "%s (larder serves git repositories at /git/<remote>/<path>)", err);
        send_error(app, req, 400, "Bad Request", "BYPASS", msg);
        return;
    }
    if (rt.kind == LARDER_GIT_RECEIVE_PACK) {
        send_error(app, req, 403, "Forbidden", "BYPASS", "push is not supported: larder is a read-only mirror");
        return;
    }
    if (rt.kind == LARDER_GIT_DUMB) {
        send_error(app, req, 404, "Not Found", "BYPASS",
                   "larder serves git over smart HTTP only (the dumb protocol's files are not served)");
        return;
    }
    const larder_git_remote_t *remote = git_remote(app->cfg, rt.remote);
    if (!remote) {
        git_remote_names(app->cfg, names, sizeof(names));
        snprintf(msg, sizeof(msg), "unknown remote '%s': larder mirrors only the remotes of git.remotes (%s)",
                 rt.remote, names);
        send_error(app, req, 404, "Not Found", "BYPASS", msg);
        return;
    }
    if (rt.kind == LARDER_GIT_REPO) {
        snprintf(msg, sizeof(msg), "%s/%s is a git repository: clone it with git clone <this URL>", rt.remote,
                 rt.path);
        send_error(app, req, 404, "Not Found", "BYPASS", msg);
        return;
    }
    const char *want = rt.kind == LARDER_GIT_INFO_REFS ? "GET" : "POST";
    if (!method_is(req, want)) {
        add_header(req, "allow", want);
        snprintf(msg, sizeof(msg), "only %s is supported here", want);
        send_error(app, req, 405, "Method Not Allowed", "BYPASS", msg);
        return;
    }
    if (rt.kind == LARDER_GIT_INFO_REFS)
        info_refs(app, req, &rt, remote);
    else
        upload_pack(app, req, &rt);
}
