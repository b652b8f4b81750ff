/* bundle.c - git mirrors in bundles (part of the git protocol): the module's bundle_external_* hooks (module.h).
 *
 * A mirror is a directory outside the blob store, so a bundle carries it as one file of the module's making: a
 * `git bundle` of the mirror (`git bundle create - --all`: every branch and tag and HEAD, from one reading of the
 * refs, so a fetch updating the mirror meanwhile does not tear it), written by the export thread into the store's
 * temp file. It takes about the disk space of the mirror's packs while the export runs. A mirror without any ref
 * travels as an empty file. The branch HEAD names (`git bundle` carries HEAD's commit, not its name) travels as the
 * entry's note.
 * On import the verified file becomes a new bare repository under .tmp/ (`git init --bare`, then `git fetch` of
 * refs/heads/ and refs/tags/ from the bundle, which checks every object as a clone does), HEAD set from the note
 * (or main, master, the first branch), out of sight until the entry is written; then it is renamed into place,
 * exchanged atomically with a mirror already there (which goes to .tmp/ and is removed on a thread of its own, as
 * when evicted). The mirror's size on disk becomes the entry's external bytes. */
#include "internal.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the mirror directory of an m/ key; 0, or -1 with err */
static int key_dir(git_state_t *s, const char *key, char *remote, size_t rlen, char *dir, size_t dlen, char *err,
                   size_t errlen)
{
    char path[LARDER_GIT_PATH_MAX + 1];
    const char *perr = "";
    if (!s) {
        snprintf(err, errlen, "the git module is not running");
        return -1;
    }
    if (strncmp(key, "m/", 2) != 0 || larder_git_repo_parse(key + 2, strlen(key + 2), remote, rlen, path, sizeof(path),
                                                            &perr) < 0) {
        snprintf(err, errlen, "not a git mirror: %.200s %s", key, perr);
        return -1;
    }
    git_mirror_dir(s, remote, path, dir, dlen);
    if (!dir[0]) {
        snprintf(err, errlen, "repository path too long");
        return -1;
    }
    return 0;
}

/* git in the clean environment, with nothing run behind our back */
static int run_git(git_state_t *s, const char *const *argv, int out, char *msg, size_t msglen)
{
    git_env_t env;
    git_env_init(&env, s);
    git_env_config(&env, "gc.auto", "0");
    git_env_config(&env, "maintenance.auto", "false");
    int rc = git_run(s, argv, git_env_finish(&env), out, NULL, msg, msglen);
    git_env_free(&env);
    return rc == 0 ? 0 : -1;
}

int git_bundle_export(larder_app_t *app, const char *key, const larder_entry_t *e, int fd, char *note, size_t notelen,
                      char *err, size_t errlen)
{
    (void)app;
    (void)e;
    git_state_t *s = git_state();
    char remote[LARDER_GIT_REMOTE_MAX + 1], dir[4600], msg[300] = "";
    if (key_dir(s, key, remote, sizeof(remote), dir, sizeof(dir), err, errlen) < 0)
        return -1;
    if (!git_mirror_exists(dir)) {
        snprintf(err, errlen, "its mirror is not on disk");
        return -1;
    }
    /* HEAD's branch: read first, so that it names a branch of the bundle or an older one (fixed on import) */
    char head[700];
    git_mirror_head(dir, head, sizeof(head));
    snprintf(note, notelen, "%s", strncmp(head, "refs/heads/", 11) == 0 ? head : "");
    size_t len = 0;
    char *refs = git_list_refs(s, dir, &len);
    if (!refs) {
        snprintf(err, errlen, "cannot list the refs of its mirror");
        return -1;
    }
    free(refs);
    if (len == 0)
        return 0; /* an empty repository: git refuses an empty bundle; an empty file stands for it */
    const char *argv[] = {"git", "-C", dir, "bundle", "create", "--quiet", "-", "--all", NULL};
    if (run_git(s, argv, fd, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "git bundle create failed: %s", msg);
        return -1;
    }
    return 0;
}

int git_bundle_stage(larder_app_t *app, const char *key, const larder_entry_t *e, const char *file, const char *note,
                     char *staged, size_t stagedlen, uint64_t *external, char *err, size_t errlen)
{
    git_state_t *s = git_state();
    char remote[LARDER_GIT_REMOTE_MAX + 1], dir[4600], tmp[4200], msg[300] = "", abs[4096];
    staged[0] = 0;
    if (key_dir(s, key, remote, sizeof(remote), dir, sizeof(dir), err, errlen) < 0)
        return -1;
    if (!git_remote(app->cfg, remote)) {
        char names[300];
        git_remote_names(app->cfg, names, sizeof(names));
        snprintf(err, errlen, "remote %.100s is not in git.remotes of this larder (%.150s): add it to serve the mirror",
                 remote, names);
        return -1;
    }
    struct stat sb;
    if (!realpath(file, abs) || stat(abs, &sb) < 0) {
        snprintf(err, errlen, "cannot read %.200s: %s", file, strerror(errno));
        return -1;
    }
    int k = snprintf(tmp, sizeof(tmp), "%s/.tmp/i-%ld-%llu", s->root, (long)getpid(),
                     (unsigned long long)atomic_fetch_add(&s->seq, 1));
    if (k < 0 || (size_t)k >= sizeof(tmp) || (size_t)k >= stagedlen) {
        snprintf(err, errlen, "the git directory's path is too long");
        return -1;
    }
    const char *init[] = {"git", "init", "--bare", "--quiet", "--template=", "--", tmp, NULL};
    if (run_git(s, init, -1, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "git init failed: %s", msg);
        git_rmtree(tmp);
        return -1;
    }
    if (sb.st_size > 0) {
        const char *fetch[] = {"git", "-C", tmp, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", abs,
                               "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", NULL};
        if (run_git(s, fetch, -1, msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "git fetch from the bundle failed: %s", msg);
            git_rmtree(tmp);
            return -1;
        }
    }
    size_t len = 0;
    char *list = git_list_refs(s, tmp, &len);
    if (!list) {
        snprintf(err, errlen, "cannot list the refs of the new mirror");
        git_rmtree(tmp);
        return -1;
    }
    if (note && larder_git_refname_ok(note, strlen(note)) && !strncmp(note, "refs/heads/", 11))
        git_set_head(s, tmp, note);
    git_fix_head(s, tmp, list); /* a HEAD naming no branch of the mirror: main, master or the first */
    /* the entry's body is the ref list of the mirror it was made with: tell when the two differ */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[LARDER_SHA256_HEX];
    EVP_Digest(list, len, md, &mdlen, larder_sha256_md(), NULL);
    larder_hex(md, 32, hex);
    free(list);
    if (strcmp(hex, e->digest) != 0)
        larder_warn("git: the mirror of %s in the bundle has other refs than its entry lists (the mirror was updated "
                    "while it was exported); it is imported as it is, the next update lists them again",
                    key);
    char parent[4600];
    snprintf(parent, sizeof(parent), "%s", dir);
    *strrchr(parent, '/') = 0;
    int mr = larder_mkdirs(parent, 0755);
    if (mr < 0) {
        snprintf(err, errlen, "cannot create the directory of the mirror: %s", strerror(-mr));
        git_rmtree(tmp);
        return -1;
    }
    *external = git_tree_bytes(tmp);
    snprintf(staged, stagedlen, "%s", tmp);
    return 0;
}

int git_bundle_place(larder_app_t *app, const char *key, const char *staged, int keep, char *err, size_t errlen)
{
    (void)app;
    git_state_t *s = git_state();
    char remote[LARDER_GIT_REMOTE_MAX + 1], dir[4600], prefix[4100];
    if (!s) {
        snprintf(err, errlen, "the git module is not running");
        return -1;
    }
    /* only ever a directory this module staged */
    snprintf(prefix, sizeof(prefix), "%s/.tmp/i-", s->root);
    if (strncmp(staged, prefix, strlen(prefix)) != 0 || strstr(staged, "/..")) {
        snprintf(err, errlen, "not a staged mirror: %.200s", staged);
        return -1;
    }
    if (!keep) {
        if (git_rmtree(staged) < 0) {
            snprintf(err, errlen, "cannot remove %.200s: %s", staged, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (key_dir(s, key, remote, sizeof(remote), dir, sizeof(dir), err, errlen) < 0)
        return -1;
    if (renameat2(AT_FDCWD, staged, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        /* the old mirror is where the new one was: removed off this thread */
        git_trash(s, staged);
    } else {
        int e = errno;
        if (e == EINVAL || e == ENOSYS) /* no exchange on this file system: the old one out of the way first */
            e = git_trash(s, dir) < 0 ? errno : ENOENT;
        if (e != ENOENT || rename(staged, dir) < 0) {
            snprintf(err, errlen, "cannot move the mirror into place: %s", strerror(e != ENOENT ? e : errno));
            git_rmtree(staged);
            return -1;
        }
    }
    larder_info("git: mirror %s imported from a bundle", dir);
    return 0;
}
