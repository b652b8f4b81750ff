/* module.c - the git module's declaration: its config section (git.remotes, parsed here with the core's helpers;
 * git.max_concurrent; git.max_request_body), its seed section (a list of repositories, each optionally with the refs
 * it must have: parsed and emitted here), its request-body limit for the head guard, and its lifetime: git_start
 * makes the process-wide state every file of the module reads (the data directory, the git program, the bounds on
 * running processes, the reaper of served children) and clears what an earlier run left in .tmp/; git_stop kills
 * and reaps the upload-pack processes still running. Handlers: serve.c and seed.c. */
#include "internal.h"
#include "log.h"
#include "module.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the one state of the module, made by git_start: `larder serve` runs one daemon per process */
static git_state_t *state;

git_state_t *git_state(void) { return state; }

const larder_git_conf_t *git_conf(const larder_config_t *cfg) { return larder_proto_conf(cfg, LARDER_PROTO_GIT); }

const larder_git_remote_t *git_remote(const larder_config_t *cfg, const char *name)
{
    const larder_git_conf_t *gc = git_conf(cfg);
    for (size_t i = 0; gc && i < gc->nremotes; i++)
        if (strcmp(gc->remotes[i].name, name) == 0)
            return &gc->remotes[i];
    return NULL;
}

void git_remote_names(const larder_config_t *cfg, char *out, size_t n)
{
    const larder_git_conf_t *gc = git_conf(cfg);
    out[0] = 0;
    for (size_t i = 0; gc && i < gc->nremotes; i++) {
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s%s", i ? ", " : "", gc->remotes[i].name);
    }
    if (!out[0])
        snprintf(out, n, "none");
}

/* ---- git.remotes ---- */

/* what git.remotes adds to the common endpoint rules: credentials in pairs, outside the URL (a git argument,
 * visible to every local user), and a base URL (repositories are <url>/<path>) */
static int check_remote(larder_conf_t *c, const yaml_node_t *v, const char *key, const larder_conf_endpoint_t *r)
{
    if (!r->username != !r->password)
        return larder_conf_fail(c, v, "key '%s': username and password go together", key);
    if (r->username && strchr(r->username, ':'))
        return larder_conf_fail(c, v, "key '%s.username': a user name cannot contain ':'", key);
    const char *auth = strstr(r->url, "://") + 3;
    size_t alen = strcspn(auth, "/");
    if (strpbrk(r->url, "?#") || memchr(auth, '@', alen))
        return larder_conf_fail(c, v,
                                "key '%s': a remote is a base URL without '?', '#' or user@ (put credentials "
                                "in username and password)",
                                key);
    return 0;
}

static const larder_conf_endpoint_spec_t remotes_spec = {
    .item = "remote",
    .hint = "a host or host:port: letters, digits, . : _ -, not starting with '.' or '-'",
    .name_ok = larder_git_remote_name_ok,
    .unique = 1,
    .check = check_remote,
};

/* git.remotes: {name: URL} or {name: {url, username, password}}; replaces the defaults */
static int parse_remotes(larder_conf_t *c, const yaml_node_t *n, const char *key, void *field, void *base)
{
    larder_git_conf_t *gc = base;
    (void)field;
    return larder_conf_endpoints(c, n, key, &remotes_spec, &gc->remotes, &gc->nremotes);
}

static void print_remotes(FILE *f, const void *field, const void *base, int indent)
{
    const larder_git_conf_t *gc = base;
    (void)field;
    larder_conf_endpoints_print(f, gc->remotes, gc->nremotes, indent);
}

static void release_remotes(void *field, void *base)
{
    larder_git_conf_t *gc = base;
    (void)field;
    larder_conf_endpoints_release(&gc->remotes, &gc->nremotes);
}

#define GITC(f) LARDER_KEY_IN_MODULE, offsetof(larder_git_conf_t, f)
static const larder_conf_key_t git_keys[] = {
    {.name = "remotes", .type = LARDER_KEY_CUSTOM, GITC(remotes),
     .def = "{github.com: 'https://github.com', gitlab.com: 'https://gitlab.com'}",
     .shape = "mapping of name to URL or {url, username, password}",
     .doc = "the hosts whose repositories are mirrored at /git/<name>/<path> (only these are contacted)",
     .parse = parse_remotes, .print = print_remotes, .release = release_remotes},
    {.name = "max_concurrent", .type = LARDER_KEY_INT, GITC(max_concurrent), .def = "16", .min = 1, .max = 1024,
     .doc = "git processes at once: upstream fetches, and (separately) upload-pack processes serving clients"},
    {.name = "max_request_body", .type = LARDER_KEY_SIZE, GITC(max_request_body), .def = "16MiB", .min = 1,
     .max = 1ULL << 30, .doc = "largest git-upload-pack request body (after gzip); larger ones get 413"},
    LARDER_KEYS_END,
};

/* the head guard's question: POSTs to .../git-upload-pack may carry up to git.max_request_body */
static uint64_t git_request_body_max(const larder_config_t *cfg, const char *path, size_t len)
{
    const larder_git_conf_t *gc = git_conf(cfg);
    if (!gc)
        return 0;
    if (!path)
        return gc->max_request_body;
    const char *q = memchr(path, '?', len);
    size_t pl = q ? (size_t)(q - path) : len;
    static const char tail[] = "/git-upload-pack";
    return pl > sizeof(tail) - 1 && memcmp(path + pl - (sizeof(tail) - 1), tail, sizeof(tail) - 1) == 0
               ? gc->max_request_body
               : 0;
}

/* ---- seed section: [repo, {repo, refs: [...]}] -> items "<repo>[ <ref>...]" ---- */

static int add_repo(larder_seed_parse_t *p, const yaml_node_t *n, const char *repo, const larder_seed_strings_t *refs)
{
    char remote[LARDER_GIT_REMOTE_MAX + 1], path[LARDER_GIT_PATH_MAX + 1], qb[300];
    const char *err;
    if (larder_git_repo_parse(repo, strlen(repo), remote, sizeof(remote), path, sizeof(path), &err) < 0)
        return larder_seedp_fail(p, n, "git: '%s' is not a repository (<remote>/<path>): %s",
                                 larder_conf_quote(repo, strlen(repo), qb, sizeof(qb)), err);
    char item[8192];
    int len = snprintf(item, sizeof(item), "%s/%s", remote, path);
    for (size_t i = 0; refs && i < refs->n; i++) {
        int l = snprintf(item + len, sizeof(item) - (size_t)len, " %s", refs->v[i]);
        if (l < 0 || (size_t)len + (size_t)l >= sizeof(item))
            return larder_seedp_fail(p, n, "git: too many refs for %s", repo);
        len += l;
    }
    return larder_seedp_item(p, n, LARDER_PROTO_GIT, item, (size_t)len);
}

static int ref_ok(const char *s, size_t len) { return larder_git_refname_ok(s, len); }

static int parse_git(larder_seed_parse_t *p, const yaml_node_t *n)
{
    char qb[300];
    if (larder_conf_is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return larder_seedp_fail(p, n, "section 'git': expected a list of repositories (<remote>/<path>, or {repo, "
                                       "refs: [...]}), got %s",
                                 larder_conf_type_name(n));
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
        yaml_node_t *it = larder_seedp_node(p, *i, n);
        if (!it)
            return -1;
        if (it->type == YAML_SCALAR_NODE) {
            const char *repo = larder_seedp_scalar(p, it, "git repository");
            if (!repo || add_repo(p, it, repo, NULL) < 0)
                return -1;
            continue;
        }
        if (it->type != YAML_MAPPING_NODE)
            return larder_seedp_fail(p, it, "git: each repository is <remote>/<path> or {repo, refs: [...]}");
        const char *repo = NULL;
        const yaml_node_t *repo_node = it;
        larder_seed_strings_t refs = {0};
        for (yaml_node_pair_t *q = it->data.mapping.pairs.start; q < it->data.mapping.pairs.top; q++) {
            yaml_node_t *k = larder_seedp_node(p, q->key, it), *v = k ? larder_seedp_node(p, q->value, k) : NULL;
            const char *kv = v ? larder_seedp_scalar(p, k, "key") : NULL;
            if (!kv)
                goto bad;
            if (!strcmp(kv, "repo") && !repo) {
                if (!(repo = larder_seedp_scalar(p, v, "repo")))
                    goto bad;
                repo_node = v;
            } else if (!strcmp(kv, "refs") && !refs.n) {
                if (larder_seedp_strings(p, v, "git refs", &refs, ref_ok) < 0)
                    goto bad;
            } else {
                larder_seedp_fail(p, k, "git: unexpected key '%s' in a repository (expected repo, refs; once each)",
                                  larder_conf_quote(kv, strlen(kv), qb, sizeof(qb)));
                goto bad;
            }
        }
        if (!repo) {
            larder_seedp_fail(p, it, "git: a repository needs repo: <remote>/<path>");
            goto bad;
        }
        if (add_repo(p, repo_node, repo, &refs) < 0)
            goto bad;
        larder_seed_strings_free(&refs);
        continue;
    bad:
        larder_seed_strings_free(&refs);
        return -1;
    }
    return 0;
}

/* ---- raw input: "<remote>/<path> [ref...]" per line ---- */

static int git_line_ok(const char *s)
{
    char remote[LARDER_GIT_REMOTE_MAX + 1], path[LARDER_GIT_PATH_MAX + 1];
    const char *err;
    size_t rl = strcspn(s, " \t");
    return larder_git_repo_parse(s, rl, remote, sizeof(remote), path, sizeof(path), &err) == 0;
}

/* refs after the repository, a .git suffix or a well-known git host: nothing else writes lines like these */
static int git_line_strong(const char *s)
{
    size_t rl = strcspn(s, " \t");
    return git_line_ok(s) && (s[rl] || (rl > 4 && !memcmp(s + rl - 4, ".git", 4)) || !strncmp(s, "github.com/", 11) ||
                              !strncmp(s, "gitlab.com/", 11));
}

static int detect_git(const char *text, size_t len)
{
    int share = larder_text_line_score(text, len, git_line_ok);
    if (share < 100)
        return share / 2;
    return larder_text_line_score(text, len, git_line_strong) > 0 ? 90 : 50;
}

typedef struct git_lines {
    larder_seed_spec_t *spec;
    int proto;
    unsigned *errline;
    char *err;
    size_t errlen;
} git_lines_t;

static int git_line(void *ctx, unsigned line, char *s)
{
    git_lines_t *c = ctx;
    char remote[LARDER_GIT_REMOTE_MAX + 1], path[LARDER_GIT_PATH_MAX + 1], item[8192];
    const char *err;
    char *sv, *repo = strtok_r(s, " \t", &sv);
    if (!repo || larder_git_repo_parse(repo, strlen(repo), remote, sizeof(remote), path, sizeof(path), &err) < 0) {
        *c->errline = line;
        snprintf(c->err, c->errlen, "line %u: '%.200s' is not a repository (<remote>/<path>): %s", line,
                 repo ? repo : "", repo ? err : "empty");
        return -1;
    }
    int len = snprintf(item, sizeof(item), "%s/%s", remote, path);
    for (char *ref = strtok_r(NULL, " \t", &sv); ref; ref = strtok_r(NULL, " \t", &sv)) {
        int l = larder_git_refname_ok(ref, strlen(ref)) ? snprintf(item + len, sizeof(item) - (size_t)len, " %s", ref) : -1;
        if (l < 0 || (size_t)len + (size_t)l >= sizeof(item)) {
            *c->errline = line;
            snprintf(c->err, c->errlen, "line %u: '%.200s' is not a ref name (or too many refs)", line, ref);
            return -1;
        }
        len += l;
    }
    if (larder_seed_append(c->spec, c->proto, item, NULL) < 0) {
        snprintf(c->err, c->errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int expand_git(const larder_config_t *cfg, larder_seed_spec_t *spec, int proto, const char *text, size_t len,
                      larder_seed_input_report_fn report, void *rctx, unsigned *errline, char *err, size_t errlen)
{
    (void)cfg, (void)report, (void)rctx;
    git_lines_t c = {spec, proto, errline, err, errlen};
    *errline = 0;
    return larder_text_each_line(text, len, git_line, &c) ? -1 : 0;
}

static const larder_seed_input_t git_inputs[] = {
    {.kind = "git", .detect = detect_git, .expand = expand_git},
    {.kind = NULL},
};

static void emit_git(FILE *f, const larder_seed_spec_t *spec, int proto)
{
    fprintf(f, "git:\n");
    for (size_t i = 0; i < spec->nitems; i++) {
        if (spec->items[i].proto != proto)
            continue;
        char buf[8192], *sv;
        snprintf(buf, sizeof(buf), "%s", spec->items[i].ref);
        char *repo = strtok_r(buf, " ", &sv), *ref = strtok_r(NULL, " ", &sv);
        fputs("  - ", f);
        if (!ref) {
            larder_conf_print_str(f, repo ? repo : "");
            fputc('\n', f);
            continue;
        }
        fputs("{repo: ", f);
        larder_conf_print_str(f, repo);
        fputs(", refs: [", f);
        for (int first = 1; ref; ref = strtok_r(NULL, " ", &sv), first = 0) {
            fputs(first ? "" : ", ", f);
            larder_conf_print_str(f, ref);
        }
        fputs("]}\n", f);
    }
}

/* ---- lifetime ---- */

static int git_start(larder_app_t *app, char *err, size_t errlen)
{
    git_state_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->app = app;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->slot_free, NULL);
    pthread_cond_init(&s->reap_cond, NULL);
    snprintf(s->root, sizeof(s->root), "%s/git", app->cfg->data_dir);
    char d[4100];
    snprintf(d, sizeof(d), "%s/.home", s->root);
    int r = larder_mkdirs(d, 0755);
    snprintf(d, sizeof(d), "%s/.tmp", s->root);
    if (r == 0)
        r = larder_mkdirs(d, 0755);
    if (r < 0) {
        snprintf(err, errlen, "cannot create %s: %s", d, strerror(-r));
        free(s);
        return -1;
    }
    static const char *const progs[] = {"/usr/bin/git", "/bin/git", "/usr/local/bin/git"};
    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]) && !s->git[0]; i++)
        if (access(progs[i], X_OK) == 0)
            snprintf(s->git, sizeof(s->git), "%s", progs[i]);
    if (!s->git[0])
        larder_warn("git: the git program is not installed (looked in /usr/bin, /bin, /usr/local/bin): /git/ answers "
                    "503 until it is");
    git_cleanup_tmp(s);
    if (git_reaper_start(s) < 0) {
        snprintf(err, errlen, "cannot start the reaper thread");
        free(s);
        return -1;
    }
    state = s;
    return 0;
}

static void git_stop(larder_app_t *app)
{
    (void)app;
    /* the state stays: mirror updates still running on their own threads read it until the fetcher is destroyed */
    if (state)
        git_reaper_stop(state);
}

/* GET /-/api/v1/upstreams: the remotes */
static void git_upstreams(const larder_config_t *cfg, void (*add)(void *, const char *, const char *), void *ctx)
{
    const larder_git_conf_t *gc = git_conf(cfg);
    for (size_t i = 0; gc && i < gc->nremotes; i++)
        add(ctx, gc->remotes[i].name, gc->remotes[i].url);
}

/* GET /-/api/v1/info: the remotes a client's insteadOf may name (/git/<remote>/<path>) */
static void git_client_info(const larder_config_t *cfg, json_t *mine, json_t *top)
{
    (void)top;
    const larder_git_conf_t *c = larder_proto_conf(cfg, LARDER_PROTO_GIT);
    json_t *remotes = json_array();
    for (size_t i = 0; c && i < c->nremotes; i++)
        json_array_append_new(remotes, json_pack("{s:s, s:s}", "name", c->remotes[i].name, "url", c->remotes[i].url));
    json_object_set_new(mine, "remotes", remotes);
}

const larder_protocol_t larder_protocol_git = {
    .proto = LARDER_PROTO_GIT,
    .name = "git",
    .mount = "/git/",
    .summary = "git repositories at /git/<remote>/<path> (git clone/fetch over smart HTTP, read-only mirrors)",
    .default_ttl = "5m",
    .conf_size = sizeof(larder_git_conf_t),
    .conf_keys = git_keys,
    .seed_shape = "[<remote>/<path>, {repo: <remote>/<path>, refs: [...]}]",
    .seed_section = parse_git,
    .seed_emit = emit_git,
    .seed_inputs = git_inputs,
    .handle = git_handle,
    .seed = git_seed,
    .pin_spec = git_pin_spec,
    .request_body_max = git_request_body_max,
    .start = git_start,
    .stop = git_stop,
    .evicted = git_evicted,
    .upstreams = git_upstreams,
    .bundle_external_export = git_bundle_export,
    .bundle_external_stage = git_bundle_stage,
    .bundle_external_place = git_bundle_place,
    .client_info = git_client_info,
};
