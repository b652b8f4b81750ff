/* internal.h - what the files of the git protocol share; nothing outside protocols/git/ includes it (the pure
 * functions, for the unit tests and the fuzzer, are in git.h).
 *
 *   module.c  the declaration: config keys, seed section, start/stop, the process-wide state below
 *   route.c   client bytes: request paths, Git-Protocol, ref names, gzip bodies (pure)
 *   proc.c    running git: a fixed argv, a clean environment, its own process group, waiting and reaping
 *   mirror.c  the bare mirrors under data_dir/git/ and their update (the transform of the m/ entries)
 *   serve.c   /git/<remote>/<path>/...: info/refs and git-upload-pack, streamed from git
 *   seed.c    seed items: a mirror update pinned in the spec's set, then its refs checked
 *   bundle.c  mirrors in bundles: a git bundle of the mirror out, a new mirror from one in */
#ifndef LARDER_GIT_INTERNAL_H
#define LARDER_GIT_INTERNAL_H

#include "cache.h"
#include "fetch.h"
#include "git.h"
#include "jobs.h"
#include "registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define GIT_DOWN_SLOTS 32
#define GIT_DOWN_SECONDS 60 /* an upstream that could not be reached is left alone this long */

/* the module's process-wide state, made by git_start (module.c) for `larder serve` and read by every file */
typedef struct git_state {
    larder_app_t *app;
    char git[64];    /* the git program */
    char root[4000]; /* <data_dir>/git: one directory per remote, .tmp/ and .home/ */
    pthread_mutex_t mu;
    pthread_cond_t slot_free; /* a fetch slot was released (under mu) */
    int fetching;             /* upstream git processes (clone, fetch, ls-remote) running, under mu */
    _Atomic int serving;      /* upload-pack processes running */
    _Atomic uint64_t seq;     /* unique names under .tmp/ */
    struct git_down {         /* remotes that did not answer (under mu) */
        char remote[LARDER_GIT_REMOTE_MAX + 1];
        uint64_t until;
        char why[200];
    } down[GIT_DOWN_SLOTS];
    /* children: upload-pack processes being served (killed at stop), and killed ones waiting to be reaped */
    pthread_t reaper;
    pthread_cond_t reap_cond;
    pid_t *live, *dead;
    size_t nlive, caplive, ndead, capdead;
    int stopping;
} git_state_t;

/* module.c: the state (NULL before git_start, and outside `larder serve`) and the module's settings */
git_state_t *git_state(void);
const larder_git_conf_t *git_conf(const larder_config_t *cfg);
const larder_git_remote_t *git_remote(const larder_config_t *cfg, const char *name);
/* module.c: "github.com, gitlab.com": the configured remote names, for messages */
void git_remote_names(const larder_config_t *cfg, char *out, size_t n);

/* ---- proc.c ---- */
typedef struct git_env {
    char *v[64];
    int n, nconf;
} git_env_t;
/* the clean environment every git process starts from: PATH, HOME, no system or global config, no prompts */
void git_env_init(git_env_t *e, const git_state_t *s);
void git_env_add(git_env_t *e, const char *name, const char *value);
/* one configuration value, passed as GIT_CONFIG_KEY_<n>/GIT_CONFIG_VALUE_<n> (never in argv) */
void git_env_config(git_env_t *e, const char *key, const char *value);
/* the NULL-terminated array, GIT_CONFIG_COUNT added; valid until git_env_free */
char *const *git_env_finish(git_env_t *e);
void git_env_free(git_env_t *e);
/* start git with argv (argv[0] is "git"), env, and in/out/err as its fds 0-2 (-1: /dev/null), in a process group
 * of its own with default signal handling and no other descriptors; 0 and *pid, or -errno */
int git_spawn(const git_state_t *s, const char *const *argv, char *const *env, int in, int out, int err, pid_t *pid);
/* wait for pid; when fe is cancelled (the daemon stops) the process group is killed. The exit status, or -1 when
 * it was killed by a signal */
int git_wait(pid_t pid, const larder_fetch_t *fe);
/* run git to its end: stdout to out (-1: /dev/null), its stderr's most telling line into msg (bounded). The exit
 * status, -1 killed, or -2 not started */
int git_run(git_state_t *s, const char *const *argv, char *const *env, int out, const larder_fetch_t *fe, char *msg,
            size_t msglen);
/* an anonymous temp file under root/.tmp (unlinked); fd or -errno */
int git_tmpfile(git_state_t *s);
/* the last line of an fd's content that starts with "fatal:" or "error:" (else the last line), bounded */
void git_tail_message(int fd, char *msg, size_t msglen);
/* children being served: remember one, forget one (reaped), or kill its group and have it reaped */
void git_child_add(git_state_t *s, pid_t pid);
void git_child_reaped(git_state_t *s, pid_t pid);
void git_child_kill(git_state_t *s, pid_t pid);
int git_reaper_start(git_state_t *s);
void git_reaper_stop(git_state_t *s); /* kills every child still served, reaps them all */
/* rm -rf; 0 or -1 */
int git_rmtree(const char *path);

/* ---- mirror.c ---- */
/* <root>/<remote>/<path>.git */
void git_mirror_dir(const git_state_t *s, const char *remote, const char *path, char *out, size_t n);
/* a mirror is there: its objects directory exists */
int git_mirror_exists(const char *dir);
/* the ref a mirror's HEAD names ("refs/heads/main"), or "" when HEAD is unreadable or not a symbolic ref */
void git_mirror_head(const char *dir, char *out, size_t n);
/* the store key of a mirror's ref list: "m/<remote>/<path>" */
void git_mirror_key(const char *remote, const char *path, char *out, size_t n);
/* <remote url>/<path> */
void git_upstream_url(const larder_git_remote_t *r, const char *path, char *out, size_t n);
/* the transform of an m/ entry (a local fetch on a thread of its own): create or update the mirror, store its refs */
int git_transform_update(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                         char **content_type, char *err, size_t errlen);
/* 1 and why when the remote did not answer lately (not asked again before GIT_DOWN_SECONDS) */
int git_remote_down(git_state_t *s, const char *remote, char *why, size_t n);
/* leftovers of an earlier run under .tmp/, removed at start */
void git_cleanup_tmp(git_state_t *s);
/* the module's `evicted` hook: the m/ entry of a mirror was evicted; the mirror goes with it */
void git_evicted(const larder_config_t *cfg, const char *key);
/* a directory moved into .tmp/ at once and removed by a thread of its own; 0, or -1 with errno */
int git_trash(git_state_t *s, const char *dir);
/* for bundle.c: a mirror's ref list (as its entry stores it; malloc'd, NULL on failure), HEAD set to a branch,
 * HEAD checked against a ref list (main, master or the first branch when it names none), bytes under a directory */
char *git_list_refs(git_state_t *s, const char *dir, size_t *len);
void git_set_head(git_state_t *s, const char *dir, const char *ref);
void git_fix_head(git_state_t *s, const char *dir, const char *list);
uint64_t git_tree_bytes(const char *dir);

/* ---- bundle.c: the bundle_external_* hooks (module.h) ---- */
int git_bundle_export(larder_app_t *app, const char *key, const larder_entry_t *e, int fd, char *note, size_t notelen,
                      char *err, size_t errlen);
int git_bundle_stage(larder_app_t *app, const char *key, const larder_entry_t *e, const char *file, const char *note,
                     char *staged, size_t stagedlen, uint64_t *external, char *err, size_t errlen);
int git_bundle_place(larder_app_t *app, const char *key, const char *staged, int keep, char *err, size_t errlen);

/* errors of an update that mean the repository does not exist upstream start with this */
#define GIT_NOT_FOUND "repository not found upstream"

/* ---- serve.c / seed.c ---- */
void git_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);
void git_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx);

/* seed.c: the pin_spec hook (module.h): a mirror back into its repository item */
int git_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                 char *why, size_t whylen);

#endif
