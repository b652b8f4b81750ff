/* main.c - the `larder` command: serve, fsck, seed, config.
 *
 * `serve` wires the parts together (config -> store -> fetcher -> jobs -> server) and is the only place that
 * owns process-wide state. `fsck` opens the store directly (RocksDB's lock keeps it away from a running
 * daemon). `seed` is a client: it expands the local files a spec names with the protocol modules' expanders,
 * posts the spec to the running daemon's admin API and follows the job. `config` prints the effective
 * configuration (every declared key, its value and owner) or checks a file without starting anything. */
#include "app.h"
#include "history.h"
#include "upstreams.h"
#include "client.h"
#include "bundle_cli.h"
#include "bundle_export.h"
#include "config.h"
#include "jobs.h"
#include "log.h"
#include "module.h"
#include "record.h"
#include "util.h"
#include "seedspec.h"
#include "server.h"
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: larder serve [--config FILE]\n"
                 "       larder fsck  [--config FILE] [--repair-db]\n"
                 "       larder seed  [--config FILE] [--url BASE] SPEC.yaml\n"
                 "       larder record start NAME [--client ADDR] | stop | status  [--config FILE] [--url BASE]\n"
                 "       larder export [--config FILE] [--url BASE] SET FILE\n"
                 "       larder import [--config FILE] [--url BASE] FILE\n"
                 "       larder config [--config FILE | --check FILE | --defaults | --keys]\n"
                 "       larder version\n"
                 "With no --config, an embedded default is used (./larder-data, 0.0.0.0:3142, public upstreams).\n");
}

static larder_config_t *load_config(const char *path)
{
    char err[1024];
    larder_config_t *cfg = larder_config_load(path, err, sizeof(err));
    if (!cfg)
        fprintf(stderr, "larder: %s\n", err);
    return cfg;
}

/* the metadata check of a serving daemon: every key read once (larder_store_verify) beside serving, so that
 * start-up does not grow with the store; a damaged table stops the daemon (exit 1) with the recovery in the log */
typedef struct verify_ctx {
    larder_store_t *store;
    _Atomic int stop, failed;
} verify_ctx_t;

static void *verify_main(void *arg)
{
    verify_ctx_t *v = arg;
    char err[1200];
    if (larder_store_verify(v->store, &v->stop, err, sizeof(err)) < 0) {
        larder_err("%s", err);
        atomic_store(&v->failed, 1);
        kill(getpid(), SIGTERM); /* larder_server_run waits for it */
    }
    return NULL;
}

static int cmd_serve(const char *config_path)
{
    /* RocksDB, the fetcher and the job runner start threads of their own: they must inherit the blocked mask */
    larder_server_block_signals();
    larder_config_t *cfg = load_config(config_path);
    if (!cfg)
        return 2;
    char err[1024];
    larder_app_t *app = calloc(1, sizeof(*app));
    app->cfg = cfg;
    app->started_at = larder_now();
    if (larder_store_open(cfg, &app->store, err, sizeof(err)) < 0) {
        larder_err("%s", err);
        return 1;
    }
    /* the lifetime counters are restored before anything counts */
    app->history = larder_history_create(app);
    app->upstreams = larder_upstreams_create(cfg);
    larder_server_t *srv = NULL;
    /* the server must exist before the fetcher can wake it; the fetcher before any request arrives */
    if (larder_server_create(app, &srv, err, sizeof(err)) < 0) {
        larder_err("%s", err);
        larder_history_destroy(app->history);
        larder_upstreams_destroy(app->upstreams);
        larder_store_close(app->store);
        return 1;
    }
    app->fetcher = larder_fetcher_create(cfg, app->store, &app->metrics, larder_server_wake, srv);
    larder_fetcher_set_upstreams(app->fetcher, app->upstreams);
    app->jobs = larder_jobs_create(app);
    app->record = larder_record_create();
    app->bundles = larder_bundles_create(app);
    int started = 0, r = 0;
    for (; started < larder_nprotocols; started++) {
        const larder_protocol_t *m = larder_protocol_get(started);
        if (m->start && cfg->proto[started].enabled && m->start(app, err, sizeof(err)) < 0) {
            larder_err("%s: %s", m->name, err);
            r = 1;
            break;
        }
    }
    verify_ctx_t vc = {.store = app->store};
    pthread_t vt;
    int verifying = r == 0 && pthread_create(&vt, NULL, verify_main, &vc) == 0;
    if (r == 0)
        r = larder_server_run(srv);
    if (verifying) {
        atomic_store(&vc.stop, 1);
        pthread_join(vt, NULL);
        if (atomic_load(&vc.failed))
            r = 1;
    }
    while (started-- > 0) {
        const larder_protocol_t *m = larder_protocol_get(started);
        if (m->stop && cfg->proto[started].enabled)
            m->stop(app);
    }
    larder_jobs_shutdown(app->jobs);
    larder_fetcher_destroy(app->fetcher);
    larder_jobs_destroy(app->jobs);
    larder_bundles_destroy(app->bundles);
    larder_server_destroy(srv);
    larder_record_destroy(app->record);
    larder_history_destroy(app->history); /* after the last count: the fetcher and the jobs are gone */
    larder_upstreams_destroy(app->upstreams);
    larder_store_close(app->store);
    larder_config_free(cfg);
    free(app);
    larder_info("stopped");
    return r;
}

/* exit status: 0 clean (or --repair-db succeeded), 1 problems found and repaired, 2 failed (nothing deleted when
 * the metadata could not be read) */
static int cmd_fsck(const char *config_path, int repair_db)
{
    larder_config_t *cfg = load_config(config_path);
    if (!cfg)
        return 2;
    char err[1024];
    larder_store_t *st = NULL;
    if (repair_db && larder_store_repair_db(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "larder fsck: %s\n", err);
        larder_config_free(cfg);
        return 2;
    }
    if (larder_store_open(cfg, &st, err, sizeof(err)) < 0 || larder_store_verify(st, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "larder fsck: %s\n", err);
        if (st)
            larder_store_close(st);
        larder_config_free(cfg);
        return 2;
    }
    larder_fsck_report_t rep;
    int r = repair_db ? larder_store_fsck_reindex(st, &rep) : larder_store_fsck(st, &rep);
    larder_store_close(st);
    uint64_t problems = rep.blobs_corrupt + rep.entries_dropped + rep.blobs_orphaned;
    printf("fsck: %llu blobs checked, %llu corrupt removed, %llu orphaned removed, %llu entries dropped, "
           "%llu kept without an entry: %s\n",
           (unsigned long long)rep.blobs_checked, (unsigned long long)rep.blobs_corrupt,
           (unsigned long long)rep.blobs_orphaned, (unsigned long long)rep.entries_dropped,
           (unsigned long long)rep.blobs_unindexed,
           rep.metadata_unreadable ? "FAILED: the metadata store could not be read; nothing was changed "
                                     "(run `larder fsck --repair-db`)"
           : r < 0                 ? "FAILED to write repairs"
           : repair_db             ? "metadata store repaired"
           : problems              ? "repaired"
                                   : "clean");
    if (repair_db && r == 0)
        printf("fsck: damaged RocksDB files, if any, were moved to %s/db/lost/; blobs without an entry are served by "
               "digest and adopted by the next fetch of the same bytes\n",
               cfg->data_dir);
    larder_config_free(cfg);
    return r < 0 ? 2 : repair_db ? 0 : problems ? 1 : 0;
}

/* ---- seed client ---- */

static void progress(long done, long failed, long total)
{
    int width = 40, filled = total ? (int)((done + failed) * width / total) : width;
    fprintf(stderr, "\r[");
    for (int i = 0; i < width; i++)
        fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %ld/%ld", done + failed, total);
    if (failed)
        fprintf(stderr, " (%ld failed)", failed);
    fflush(stderr);
}

/* Items of the spec's lockfiles and requirement files that `larder seed` cannot turn into seed lines (git sources,
 * direct URLs, unpinned entries): each is a failure of the seed, listed and counted with the daemon's failures. */
static struct {
    char **v;
    size_t n;
} local_failed;

static void local_fail(const char *file, const char *what, const char *why)
{
    char line[1500];
    snprintf(line, sizeof(line), "%s: %s: %s", file, what, why);
    char **nv = realloc(local_failed.v, (local_failed.n + 1) * sizeof(*nv));
    if (!nv)
        abort();
    local_failed.v = nv;
    if (!(nv[local_failed.n++] = strdup(line)))
        abort();
}

/* an item of a local file that is not fetched: a failure, or (failed == 0) a local source, only said; the
 * callback of every module's expander (pip requirement files, npm and Gemfile lockfiles) */
static void not_seeded(void *ctx, const char *file, const char *what, const char *why, int failed)
{
    (void)ctx;
    if (failed)
        local_fail(file, what, why);
    else
        fprintf(stderr, "larder seed: %s: not fetched: %s: %s\n", file, what, why);
}

/* the spec as the daemon takes it: requirement files and lockfiles read here, on the client's machine, relative to
 * the spec */
static char *prepare_spec(const char *spec_path, char *text, size_t *len, char **empty_pin_set)
{
    char err[1024];
    larder_seed_spec_t *spec = larder_seed_parse_ex(text, *len, LARDER_SEED_CLIENT, err, sizeof(err));
    if (!spec) {
        fprintf(stderr, "larder seed: %s: %s\n", spec_path, err);
        free(text);
        return NULL;
    }
    /* every local file a module's FILES key names, read here with the module's expander */
    size_t nlocal = 0;
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        for (int k = 0; m->seed_keys && m->seed_keys[k].key; k++)
            if (m->seed_keys[k].kind == LARDER_SEED_FILES)
                nlocal += spec->opts[p][k].n;
    }
    if (!nlocal) {
        larder_seed_free(spec);
        return text;
    }
    free(text);
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        for (int k = 0; m->seed_keys && m->seed_keys[k].key; k++) {
            if (m->seed_keys[k].kind != LARDER_SEED_FILES)
                continue;
            for (size_t i = 0; i < spec->opts[p][k].n; i++) {
                char path[4096];
                larder_path_beside(spec_path, spec->opts[p][k].v[i], path, sizeof(path));
                if (m->seed_keys[k].expand(spec, p, path, not_seeded, NULL, err, sizeof(err)) < 0) {
                    fprintf(stderr, "larder seed: %s\n", err);
                    larder_seed_free(spec);
                    return NULL;
                }
            }
        }
    }
    if (spec->nitems == 0 && local_failed.n) { /* nothing left to ask the daemon for */
        *empty_pin_set = strdup(spec->pin_set);
        larder_seed_free(spec);
        return NULL;
    }
    char *out = larder_seed_emit(spec);
    larder_seed_free(spec);
    *len = out ? strlen(out) : 0;
    return out;
}

/* the items `larder seed` itself could not seed, as failures */
static void print_local_failures(void)
{
    for (size_t i = 0; i < local_failed.n; i++)
        fprintf(stderr, "FAILED %s\n", local_failed.v[i]);
}

static void free_local_failures(void)
{
    for (size_t i = 0; i < local_failed.n; i++)
        free(local_failed.v[i]);
    free(local_failed.v);
    local_failed.v = NULL;
    local_failed.n = 0;
}

static int cmd_seed(const char *config_path, const char *base, const char *spec_path)
{
    larder_config_t *cfg = load_config(config_path);
    if (!cfg)
        return 2;
    size_t len;
    char *spec = larder_read_file(spec_path, &len);
    if (!spec) {
        fprintf(stderr, "larder seed: cannot read %s: %s\n", spec_path, strerror(errno));
        return 2;
    }
    char *empty_pin_set = NULL;
    if (!(spec = prepare_spec(spec_path, spec, &len, &empty_pin_set))) {
        larder_config_free(cfg);
        if (!empty_pin_set)
            return 2;
        print_local_failures();
        printf("pin set %s: 0 pinned, %zu failed\n", empty_pin_set, local_failed.n);
        free(empty_pin_set);
        free_local_failures();
        return 1;
    }
    char url[1024];
    larder_client_base(cfg, base, url, sizeof(url));
    char u[1200];
    snprintf(u, sizeof(u), "%s/-/api/v1/jobs", url);
    larder_membuf_t resp = {0};
    long code = larder_client_http("larder seed", "POST", u, cfg->admin_token, "application/yaml", spec, len, &resp);
    free(spec);
    json_t *j = resp.p ? json_loads(resp.p, 0, NULL) : NULL;
    if (code != 202 || !j) {
        const char *msg = j && json_string_value(json_object_get(j, "error")) ? json_string_value(json_object_get(j, "error"))
                                                                              : resp.p ? resp.p : "no answer";
        fprintf(stderr, "larder seed: the daemon refused the spec (HTTP %ld): %s\n", code, msg);
        json_decref(j);
        free(resp.p);
        larder_config_free(cfg);
        free_local_failures();
        return 2;
    }
    char id[64];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    free(resp.p);
    fprintf(stderr, "seed job %s submitted\n", id);
    snprintf(u, sizeof(u), "%s/-/api/v1/jobs/%s", url, id);
    int rc = 2;
    for (;;) {
        larder_membuf_t r = {0};
        code = larder_client_http("larder seed", "GET", u, cfg->admin_token, NULL, NULL, 0, &r);
        json_t *js = r.p ? json_loads(r.p, 0, NULL) : NULL;
        free(r.p);
        if (code != 200 || !js) {
            fprintf(stderr, "\nlarder seed: lost track of job %s (HTTP %ld)\n", id, code);
            json_decref(js);
            break;
        }
        long done = (long)json_integer_value(json_object_get(js, "done"));
        long failed = (long)json_integer_value(json_object_get(js, "failed"));
        long total = (long)json_integer_value(json_object_get(js, "total"));
        const char *state = json_string_value(json_object_get(js, "state"));
        progress(done, failed, total);
        if (state && strcmp(state, "running") != 0) {
            fprintf(stderr, "\n");
            json_t *errs = json_object_get(js, "errors");
            size_t i;
            json_t *e;
            json_array_foreach(errs, i, e) fprintf(stderr, "FAILED %s\n", json_string_value(e));
            print_local_failures();
            failed += (long)local_failed.n;
            printf("pin set %s: %ld pinned, %ld failed\n", json_string_value(json_object_get(js, "pin_set")), done,
                   failed);
            rc = failed ? 1 : 0;
            json_decref(js);
            break;
        }
        json_decref(js);
        usleep(300 * 1000);
    }
    free_local_failures();
    larder_config_free(cfg);
    return rc;
}

/* `larder config`: the effective configuration of a file (or of the defaults), or every declared key */
static int cmd_config(const char *config_path, const char *check, int defaults, int keys)
{
    if (keys) {
        larder_config_keys(stdout);
        return 0;
    }
    const char *path = check ? check : defaults ? NULL : config_path;
    larder_config_t *cfg = load_config(path);
    if (!cfg)
        return 2;
    larder_config_print(stdout, cfg);
    if (check)
        fprintf(stderr, "larder: %s: configuration OK\n", check);
    larder_config_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    larder_log_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("larder 0.1.0\n");
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"url", required_argument, NULL, 'u'},
        {"repair-db", no_argument, NULL, 'R'},    {"check", required_argument, NULL, 'k'},
        {"defaults", no_argument, NULL, 'd'},     {"keys", no_argument, NULL, 'K'},
        {"client", required_argument, NULL, 'C'}, {NULL, 0, NULL, 0}};
    const char *config = NULL, *url = NULL, *check = NULL, *client = NULL;
    int c, repair_db = 0, defaults = 0, keys = 0;
    optind = 2;
    while ((c = getopt_long(argc, argv, "c:u:", opts, NULL)) != -1) {
        if (c == 'c')
            config = optarg;
        else if (c == 'u')
            url = optarg;
        else if (c == 'R' && !strcmp(cmd, "fsck"))
            repair_db = 1;
        else if (c == 'k' && !strcmp(cmd, "config"))
            check = optarg;
        else if (c == 'd' && !strcmp(cmd, "config"))
            defaults = 1;
        else if (c == 'K' && !strcmp(cmd, "config"))
            keys = 1;
        else if (c == 'C' && !strcmp(cmd, "record"))
            client = optarg;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!strcmp(cmd, "serve"))
        return cmd_serve(config);
    if (!strcmp(cmd, "fsck"))
        return cmd_fsck(config, repair_db);
    if (!strcmp(cmd, "config") && optind == argc)
        return cmd_config(config, check, defaults, keys);
    if (!strcmp(cmd, "export") || !strcmp(cmd, "import")) {
        larder_config_t *cfg = load_config(config);
        int rc = cfg ? larder_cmd_bundle(cfg, cmd, url, argc - optind, argv + optind) : 2;
        larder_config_free(cfg);
        if (rc == -1)
            usage(stderr);
        return rc < 0 ? 2 : rc;
    }
    if (!strcmp(cmd, "seed")) {
        if (optind >= argc) {
            usage(stderr);
            return 2;
        }
        return cmd_seed(config, url, argv[optind]);
    }
    if (!strcmp(cmd, "record")) {
        larder_config_t *cfg = load_config(config);
        if (!cfg)
            return 2;
        int rc = larder_cli_record(cfg, url, client, argc - optind, argv + optind);
        larder_config_free(cfg);
        return rc;
    }
    fprintf(stderr, "larder: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
