/* proc.c - running git (part of the git protocol).
 *
 * Every git process is started here with posix_spawn: a fixed program (found once by git_start), an argv built by
 * the caller from validated parts (never a shell), and an environment built from nothing: PATH, a HOME of its own
 * under data_dir/git/.home, no system or global configuration, no terminal prompts, and the settings the caller adds
 * as GIT_CONFIG_KEY_n/VALUE_n (credentials among them: never in argv, which every local user can read). The child
 * gets fds 0-2 and nothing else (closefrom), default signal handling (larder ignores SIGPIPE and blocks
 * INT/TERM/HUP: both would be inherited) and a process group of its own, so that killing the group also stops
 * the pack-objects it runs. Mirror updates wait for their processes on their own thread (git_wait polls, so that a
 * stopping daemon can interrupt them with SIGTERM, which lets git remove its lock files); processes serving a
 * client are waited for by serve.c without blocking its event loop, and those it abandons (the client went away)
 * are killed and handed to the reaper thread here. The reaper only ever waits for the pids it is given: other parts
 * of larder run programs and wait for them themselves (waitpid(-1) would steal their status). */
#include "internal.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ENV_MAX ((int)(sizeof(((git_env_t *)0)->v) / sizeof(char *)) - 2) /* room for the count and NULL */

static void env_put(git_env_t *e, char *kv)
{
    if (!kv)
        return;
    if (e->n >= ENV_MAX) {
        larder_warn("git: too many environment entries, %.40s... dropped", kv);
        free(kv);
        return;
    }
    e->v[e->n++] = kv;
}

static char *joined(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s)
        snprintf(s, la + lb + 2, "%s=%s", a, b);
    return s;
}

void git_env_add(git_env_t *e, const char *name, const char *value) { env_put(e, joined(name, value)); }

void git_env_init(git_env_t *e, const git_state_t *s)
{
    e->n = e->nconf = 0;
    char home[4100];
    snprintf(home, sizeof(home), "%s/.home", s->root);
    git_env_add(e, "PATH", "/usr/bin:/bin");
    git_env_add(e, "HOME", home);
    git_env_add(e, "GIT_CONFIG_NOSYSTEM", "1");
    git_env_add(e, "GIT_CONFIG_GLOBAL", "/dev/null");
    git_env_add(e, "GIT_TERMINAL_PROMPT", "0");
    git_env_add(e, "LANG", "C");
    git_env_add(e, "LC_ALL", "C");
}

void git_env_config(git_env_t *e, const char *key, const char *value)
{
    if (e->n + 2 > ENV_MAX) {
        larder_warn("git: too many configuration values, %s dropped", key);
        return;
    }
    char name[40];
    snprintf(name, sizeof(name), "GIT_CONFIG_KEY_%d", e->nconf);
    git_env_add(e, name, key);
    snprintf(name, sizeof(name), "GIT_CONFIG_VALUE_%d", e->nconf);
    git_env_add(e, name, value);
    e->nconf++;
}

char *const *git_env_finish(git_env_t *e)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", e->nconf);
    e->v[e->n++] = joined("GIT_CONFIG_COUNT", n); /* ENV_MAX keeps room for it and the NULL */
    e->v[e->n] = NULL;
    return e->v;
}

void git_env_free(git_env_t *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->v[i]);
    e->n = e->nconf = 0;
}

int git_spawn(const git_state_t *s, const char *const *argv, char *const *env, int in, int out, int err, pid_t *pid)
{
    if (!s->git[0])
        return -ENOENT;
    int devnull = -1;
    if (in < 0 || out < 0 || err < 0) {
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0)
            return -errno;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, in >= 0 ? in : devnull, 0);
    posix_spawn_file_actions_adddup2(&fa, out >= 0 ? out : devnull, 1);
    posix_spawn_file_actions_adddup2(&fa, err >= 0 ? err : devnull, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    static const int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&dfl, sigs[i]);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    int r = posix_spawn(pid, s->git, &fa, &at, (char *const *)argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (devnull >= 0)
        close(devnull);
    return r == 0 ? 0 : -r;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int exit_code(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : -1; }

int git_wait(pid_t pid, const larder_fetch_t *fe)
{
    long delay = 1000; /* us: short first, a git command often ends within milliseconds */
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return exit_code(st);
        if (r < 0 && errno != EINTR)
            return -1;
        if (fe && larder_fetch_cancelled(fe)) {
            /* SIGTERM first: git removes its lock files on it; then whatever is left of the group */
            kill(-pid, SIGTERM);
            for (int i = 0; i < 40; i++) {
                if (waitpid(pid, &st, WNOHANG) == pid)
                    return -1;
                sleep_us(50000);
            }
            kill(-pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        sleep_us(delay);
        if (delay < 50000)
            delay *= 2;
    }
}

int git_tmpfile(git_state_t *s)
{
    char dir[4100];
    snprintf(dir, sizeof(dir), "%s/.tmp", s->root);
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[4200];
    snprintf(path, sizeof(path), "%s/t-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

void git_tail_message(int fd, char *msg, size_t msglen)
{
    char buf[8193];
    struct stat sb;
    msg[0] = 0;
    if (fstat(fd, &sb) < 0)
        return;
    off_t from = sb.st_size > 8192 ? sb.st_size - 8192 : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    if (n <= 0)
        return;
    buf[n] = 0;
    const char *best = NULL, *last = NULL;
    size_t bestlen = 0, lastlen = 0;
    for (char *l = buf; *l;) {
        size_t ll = strcspn(l, "\r\n");
        if (ll > 0) {
            last = l;
            lastlen = ll;
            if (!strncmp(l, "fatal:", 6) || !strncmp(l, "error:", 6)) {
                best = l;
                bestlen = ll;
            }
        }
        l += ll;
        l += strspn(l, "\r\n");
    }
    if (!best) {
        best = last;
        bestlen = lastlen;
    }
    size_t o = 0;
    for (size_t i = 0; best && i < bestlen && o + 1 < msglen; i++)
        msg[o++] = (unsigned char)best[i] < 0x20 || best[i] == 0x7f ? ' ' : best[i];
    msg[o] = 0;
}

int git_run(git_state_t *s, const char *const *argv, char *const *env, int out, const larder_fetch_t *fe, char *msg,
            size_t msglen)
{
    int efd = git_tmpfile(s);
    pid_t pid = 0;
    int r = git_spawn(s, argv, env, -1, out, efd, &pid);
    if (r < 0) {
        if (msg)
            snprintf(msg, msglen, "cannot run git: %s", strerror(-r));
        if (efd >= 0)
            close(efd);
        return -2;
    }
    int rc = git_wait(pid, fe);
    if (msg) {
        msg[0] = 0;
        if (rc != 0 && efd >= 0)
            git_tail_message(efd, msg, msglen);
        if (rc != 0 && !msg[0])
            snprintf(msg, msglen, rc < 0 ? "git %s was interrupted" : "git %s failed", argv[1]);
    }
    if (efd >= 0)
        close(efd);
    return rc;
}

/* ---- children being served, and the reaper ---- */

static void push(pid_t **v, size_t *n, size_t *cap, pid_t pid)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        pid_t *nv = realloc(*v, nc * sizeof(pid_t));
        if (!nv)
            return; /* the pid is then neither killed at stop nor reaped: a zombie until larder exits */
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = pid;
}

static void drop(pid_t *v, size_t *n, pid_t pid)
{
    for (size_t i = 0; i < *n; i++)
        if (v[i] == pid) {
            v[i] = v[--*n];
            return;
        }
}

void git_child_add(git_state_t *s, pid_t pid)
{
    pthread_mutex_lock(&s->mu);
    push(&s->live, &s->nlive, &s->caplive, pid);
    pthread_mutex_unlock(&s->mu);
}

void git_child_reaped(git_state_t *s, pid_t pid)
{
    pthread_mutex_lock(&s->mu);
    drop(s->live, &s->nlive, pid);
    pthread_mutex_unlock(&s->mu);
}

void git_child_kill(git_state_t *s, pid_t pid)
{
    kill(-pid, SIGKILL);
    pthread_mutex_lock(&s->mu);
    drop(s->live, &s->nlive, pid);
    push(&s->dead, &s->ndead, &s->capdead, pid);
    pthread_cond_signal(&s->reap_cond);
    pthread_mutex_unlock(&s->mu);
}

static void *reaper_main(void *arg)
{
    git_state_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->ndead && !s->stopping)
            pthread_cond_wait(&s->reap_cond, &s->mu);
        if (!s->ndead)
            break;
        pid_t pid = s->dead[--s->ndead];
        pthread_mutex_unlock(&s->mu);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int git_reaper_start(git_state_t *s) { return pthread_create(&s->reaper, NULL, reaper_main, s) == 0 ? 0 : -1; }

void git_reaper_stop(git_state_t *s)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nlive; i++) {
        kill(-s->live[i], SIGKILL);
        push(&s->dead, &s->ndead, &s->capdead, s->live[i]);
    }
    s->nlive = 0;
    s->stopping = 1;
    pthread_cond_signal(&s->reap_cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->reaper, NULL);
    free(s->live);
    free(s->dead);
    s->live = s->dead = NULL;
    s->caplive = s->capdead = 0;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_DP)
        return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int git_rmtree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) < 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}
