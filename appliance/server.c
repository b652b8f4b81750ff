/* server.c - listeners, TLS and the worker threads that run h2o event loops.
 *
 * The main thread binds every listener once (or takes systemd's sockets via sd_listen_fds) and builds one
 * SSL_CTX per TLS listener with ALPN h2. Each worker thread owns an h2o loop and context and accepts on every
 * listening socket (the kernel spreads connections). One handler routes on the raw request path: /-/ to the
 * admin module, protocol mounts to their handlers, anything else is a 404 that lists the mounts.
 * The fetch thread wakes workers through h2o multithread queues: one preallocated message per worker guarded
 * by an atomic flag, so a burst of progress costs at most one pending wake-up per thread. The main thread
 * waits for SIGINT/SIGTERM and pings the systemd watchdog. */
#include "server.h"
#include "admin.h"
#include "cache.h"
#include "log.h"
#include "protocols.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <strings.h>
#include <h2o.h>
#include <h2o/http2.h>

typedef struct listener {
    int fd;
    SSL_CTX *ssl;
    char name[128];
    int protocol; /* -1: every protocol under its mount; else a listener dedicated to one protocol, at / */
} listener_t;

typedef struct worker {
    larder_server_t *srv;
    pthread_t tid;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t *accept_ctxs;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t wake_msg;
    _Atomic int wake_pending;
    _Atomic int ready; /* loop and queue exist: wake-ups may be sent */
} worker_t;

typedef struct route_handler {
    h2o_handler_t super;
    larder_app_t *app;
    int dedicated; /* -1, or the protocol that gets every path of this listener */
} route_handler_t;

struct larder_server {
    larder_app_t *app;
    h2o_globalconf_t globalconf;
    listener_t *listeners;
    size_t nlisteners;
    h2o_hostconf_t *main_hosts[2];                   /* NULL-terminated host lists given to accept contexts */
    h2o_hostconf_t *proto_hosts[LARDER_NPROTO][2];
    worker_t *workers;
    size_t nworkers;
    _Atomic int stop;
};

/* ---- routing ---- */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    larder_app_t *app = ((route_handler_t *)self)->app;
    int dedicated = ((route_handler_t *)self)->dedicated;
    const char *p = req->input.path.base;
    size_t len = req->input.path.len;
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
    /* apt's proxy requests: "GET http://host/path" (absolute form), or CONNECT */
    if ((len >= 7 && strncasecmp(p, "http://", 7) == 0) || (len >= 8 && strncasecmp(p, "https://", 8) == 0) ||
        (req->input.method.len == 7 && memcmp(req->input.method.base, "CONNECT", 7) == 0)) {
        larder_apt_handle_proxy(app, req);
        return 0;
    }
    if (len >= 3 && memcmp(p, "/-/", 3) == 0) {
        larder_admin_handle(app, req);
        return 0;
    }
    for (int i = 0; i < LARDER_NPROTO; i++) {
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
    larder_send_error(app, req, -1, 404, "Not Found",
                      "larder serves /files/, /pypi/, /npm/ and /apt/ (and the admin UI at /-/ui/); nothing is mounted "
                      "at this path");
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

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err)
        return;
    h2o_accept_ctx_t *actx = listener->data;
    for (int i = 0; i < 16; i++) { /* drain a few pending connections per wake-up */
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            break;
        h2o_accept(actx, sock);
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    larder_server_t *srv = w->srv;
    /* h2o's socket buffer allocators are per thread: the loop and its queue must be born on this thread */
    w->loop = h2o_evloop_create();
    w->queue = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, on_wake);
    atomic_store(&w->ready, 1);
    h2o_context_init(&w->ctx, w->loop, &srv->globalconf);
    w->accept_ctxs = calloc(srv->nlisteners, sizeof(*w->accept_ctxs));
    h2o_socket_t **socks = calloc(srv->nlisteners, sizeof(h2o_socket_t *)); // NOLINT(bugprone-sizeof-expression)
    for (size_t i = 0; i < srv->nlisteners; i++) {
        h2o_accept_ctx_t *a = &w->accept_ctxs[i];
        a->ctx = &w->ctx;
        int pr = srv->listeners[i].protocol;
        a->hosts = pr >= 0 && pr < LARDER_NPROTO && srv->proto_hosts[pr][0] ? srv->proto_hosts[pr] : srv->main_hosts;
        a->ssl_ctx = srv->listeners[i].ssl;
        int fd = dup(srv->listeners[i].fd);
        socks[i] = h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        socks[i]->data = a;
        h2o_socket_read_start(socks[i], on_accept);
    }
    while (!atomic_load(&srv->stop))
        h2o_evloop_run(w->loop, 500);
    for (size_t i = 0; i < srv->nlisteners; i++) {
        h2o_socket_read_stop(socks[i]);
        h2o_socket_close(socks[i]);
    }
    free(socks);
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
    srv->globalconf.max_request_entity_size = (size_t)16 * 1024 * 1024; /* seed specs; nothing else takes a body */
    h2o_hostconf_t *host = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    route_handler_t *h = (route_handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = on_req;
    h->app = app;
    h->dedicated = -1;
    srv->main_hosts[0] = host;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        int pr = cfg->listen[i].protocol;
        if (pr < 0 || pr >= LARDER_NPROTO || srv->proto_hosts[pr][0])
            continue;
        char hn[64];
        snprintf(hn, sizeof(hn), "dedicated-%s", larder_proto_name(pr));
        h2o_hostconf_t *dh = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(hn, strlen(hn)), 65535);
        route_handler_t *d = (route_handler_t *)h2o_create_handler(h2o_config_register_path(dh, "/", 0), sizeof(*d));
        d->super.on_req = on_req;
        d->app = app;
        d->dedicated = pr;
        srv->proto_hosts[pr][0] = dh;
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
    *out = srv;
    return 0;
fail:
    larder_server_destroy(srv);
    return -1;
}

int larder_server_run(larder_server_t *srv)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < srv->nworkers; i++)
        pthread_create(&srv->workers[i].tid, NULL, worker_main, &srv->workers[i]);
    for (size_t i = 0; i < srv->nlisteners; i++)
        larder_info("listening on %s", srv->listeners[i].name);
    larder_info("larder ready: %zu worker thread(s), data in %s%s", srv->nworkers, srv->app->cfg->data_dir,
                srv->app->cfg->offline ? ", OFFLINE (upstreams are never contacted)" : "");
    sd_notify(0, "READY=1\nSTATUS=serving");

    uint64_t wd_usec = 0;
    int wd = sd_watchdog_enabled(0, &wd_usec) > 0;
    struct timespec ts = {1, 0};
    if (wd && wd_usec / 2 < 1000000) {
        ts.tv_sec = 0;
        ts.tv_nsec = (long)(wd_usec / 2) * 1000;
    }
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            larder_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        if (wd)
            sd_notify(0, "WATCHDOG=1");
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
