/* seed.c - seeding git repositories (part of the git protocol).
 *
 * A seed item is "<remote>/<path>[ <ref>...]" (module.c parses the spec's `git:` section into that). The
 * repository's mirror update (mirror.c) is added to the job like any fetch, so it is pinned in the spec's pin set
 * and shares the single flight of clients' requests; a mirror fresher than git.ttl is pinned as it is. Once it is
 * there, each ref the spec names is looked up in the mirror's ref list (the entry's body): a branch or tag name, a
 * full refname, or a commit id at a ref's tip; an id elsewhere in the history is asked of the mirror itself
 * (`git cat-file -e <id>^{commit}`). Each missing ref is a failed item of the job, named <repo>@<ref>. */
#include "internal.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct seed_req {
    char repo[LARDER_GIT_REMOTE_MAX + LARDER_GIT_PATH_MAX + 4];
    char dir[4600];
    char url[4400];
    char refs[8192];
} seed_req_t;

static int is_hex_id(const char *s)
{
    size_t n = strspn(s, "0123456789abcdefABCDEF");
    return !s[n] && (n == 40 || n == 64);
}

/* whether the mirror has this commit (an id that is no ref's tip) */
static int mirror_has_commit(git_state_t *s, const char *dir, const char *id)
{
    char spec[80];
    snprintf(spec, sizeof(spec), "%s^{commit}", id);
    const char *argv[] = {"git", "-C", dir, "cat-file", "-e", spec, NULL};
    git_env_t env;
    git_env_init(&env, s);
    int rc = git_run(s, argv, git_env_finish(&env), -1, NULL, NULL, 0);
    git_env_free(&env);
    return rc == 0;
}

static void check_refs(larder_seed_ctx_t *c, int proto, const char *key, void *data)
{
    seed_req_t *sr = data;
    if (!sr->refs[0])
        return;
    larder_app_t *app = larder_seed_app(c);
    larder_entry_t e;
    char label[9000], path[4096], msg[4800];
    if (larder_store_get(app->store, proto, key, &e) < 0) {
        larder_seed_fail(c, sr->repo, "the mirror's ref list vanished from the store");
        return;
    }
    larder_store_blob_path(app->store, e.digest, path, sizeof(path));
    larder_entry_clear(&e);
    size_t len = 0;
    char *list = larder_read_file(path, &len);
    if (!list) {
        larder_seed_fail(c, sr->repo, "the mirror's ref list cannot be read");
        return;
    }
    char *sv;
    for (char *ref = strtok_r(sr->refs, " ", &sv); ref; ref = strtok_r(NULL, " ", &sv)) {
        if (larder_git_ref_find(list, len, ref))
            continue;
        if (is_hex_id(ref) && git_state() && mirror_has_commit(git_state(), sr->dir, ref))
            continue;
        snprintf(label, sizeof(label), "%s@%s", sr->repo, ref);
        snprintf(msg, sizeof(msg), "%s has no branch, tag or commit '%s'", sr->url, ref);
        larder_seed_fail(c, label, msg);
    }
    free(list);
}

void git_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx)
{
    char remote[LARDER_GIT_REMOTE_MAX + 1], path[LARDER_GIT_PATH_MAX + 1], msg[900], names[600];
    const char *refs, *err;
    if (larder_git_seed_item(item->ref, remote, sizeof(remote), path, sizeof(path), &refs, &err) < 0) {
        larder_seed_fail(ctx, item->ref, err);
        return;
    }
    char repo[sizeof(remote) + sizeof(path) + 1];
    snprintf(repo, sizeof(repo), "%s/%s", remote, path);
    const larder_git_remote_t *r = git_remote(app->cfg, remote);
    if (!r) {
        git_remote_names(app->cfg, names, sizeof(names));
        snprintf(msg, sizeof(msg), "unknown remote '%s' (git.remotes: %s)", remote, names);
        larder_seed_fail(ctx, repo, msg);
        return;
    }
    git_state_t *s = git_state();
    if (!s || !s->git[0]) {
        larder_seed_fail(ctx, repo, "git is not available on the larder host");
        return;
    }
    seed_req_t *sr = calloc(1, sizeof(*sr));
    if (!sr) {
        larder_seed_fail(ctx, repo, "out of memory");
        return;
    }
    snprintf(sr->repo, sizeof(sr->repo), "%s", repo);
    snprintf(sr->refs, sizeof(sr->refs), "%s", refs);
    git_mirror_dir(s, remote, path, sr->dir, sizeof(sr->dir));
    git_upstream_url(r, path, sr->url, sizeof(sr->url));
    char key[sizeof(repo) + 8];
    git_mirror_key(remote, path, key, sizeof(key));
    larder_fetch_req_t fr = {.proto = LARDER_PROTO_GIT,
                             .key = key,
                             .url = sr->url,
                             /* a record without its mirror on disk (removed by hand) is not fresh */
                             .ttl = git_mirror_exists(sr->dir) ? app->cfg->proto[LARDER_PROTO_GIT].ttl : 0,
                             .transform = git_transform_update,
                             .local = 1,
                             .own_thread = 1};
    larder_seed_add(ctx, repo, &fr, check_refs, sr);
}

/* the pin_spec hook: the mirror m/<remote>/<path> -> the repository <remote>/<path> with every branch and tag (the
 * refs a client was served are not recorded; the mirror holds them all) */
int git_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                 char *why, size_t whylen)
{
    (void)e;
    char remote[LARDER_GIT_REMOTE_MAX + 1], path[LARDER_GIT_PATH_MAX + 1];
    const char *refs, *err;
    if (strncmp(key, "m/", 2) != 0 ||
        larder_git_seed_item(key + 2, remote, sizeof(remote), path, sizeof(path), &refs, &err) < 0 || *refs) {
        snprintf(why, whylen, "not a mirror key (m/<remote>/<path>)");
        return -1;
    }
    if (!git_remote(cfg, remote)) {
        snprintf(why, whylen, "remote '%s' is not in git.remotes", remote);
        return -1;
    }
    return larder_seed_append(spec, LARDER_PROTO_GIT, key + 2, NULL);
}
