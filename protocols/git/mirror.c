/* mirror.c - the bare mirrors under data_dir/git/ and their updates (part of the git protocol).
 *
 * One bare repository per upstream repository, at <data_dir>/git/<remote>/<path>.git, holding the upstream's
 * branches and tags (refs/heads/ and refs/tags/) and HEAD pointing at its default branch. It is updated only by
 * git_transform_update, the transform of the store entry "m/<remote>/<path>": a local fetch of the core on a thread
 * of its own (fetch.h own_thread), so the core gives single flight per repository, waiters, freshness (the entry's
 * fetched_at and git.ttl) and pins; the entry's body is the mirror's ref list ("<id> <refname>" lines, annotated
 * tags followed by their peeled "<id> <refname>^{}"), which seed.c checks refs against.
 *   - first time: `git clone --bare` into .tmp/<unique>, renamed into place when complete (no half mirror is ever
 *     visible; a clone gets the upstream's HEAD in the same request);
 *   - later: `git fetch --atomic --prune --force <url>` of refs/heads/ and refs/tags/ (forced, pruned): the
 *     refs change in one transaction, so an upload-pack never sees half an update; when the set of branches
 *     changed, HEAD is set again from `git ls-remote --symref <url> HEAD`; `git gc --auto` keeps the packs few.
 * The upstream URL is <remote url>/<path>; a server that knows the repository only as <path>.git (a 404 without
 * the suffix) is asked again with it, and the URL that worked is kept in the mirror (larder.url). Processes are
 * bounded by git.max_concurrent (a slot is waited for here, on this thread). A remote that cannot be reached is
 * remembered for GIT_DOWN_SECONDS so that requests serve their mirror at once instead of waiting for timeouts.
 * The mirror's size on disk is the entry's external bytes (fetch.h larder_fetch_set_external): it counts in
 * git.quota and quota.total, and when the store evicts the entry (never a pinned one) git_evicted moves the mirror
 * into .tmp/ and removes it on a thread of its own. */
#include "internal.h"
#include "log.h"
#include "upstreams.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void git_mirror_dir(const git_state_t *s, const char *remote, const char *path, char *out, size_t n)
{
    int k = snprintf(out, n, "%s/%s/%s.git", s->root, remote, path);
    if (k < 0 || (size_t)k >= n)
        out[0] = 0; /* too long for a path: names no mirror (paths are bounded far below this) */
}

int git_mirror_exists(const char *dir)
{
    char p[4600];
    struct stat sb;
    int k = snprintf(p, sizeof(p), "%s/objects", dir);
    return k > 0 && (size_t)k < sizeof(p) && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

void git_mirror_head(const char *dir, char *out, size_t n)
{
    char path[4700], buf[700] = "";
    snprintf(path, sizeof(path), "%s/HEAD", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t r = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[r > 0 ? r : 0] = 0;
    out[0] = 0;
    if (!strncmp(buf, "ref: ", 5))
        snprintf(out, n, "%.*s", (int)strcspn(buf + 5, "\r\n"), buf + 5);
}

void git_mirror_key(const char *remote, const char *path, char *out, size_t n)
{
    snprintf(out, n, "m/%s/%s", remote, path);
}

void git_upstream_url(const larder_git_remote_t *r, const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", r->url, path);
}

/* ---- remotes that did not answer ---- */

/* remember that remote could not be reached (why), or forget it (why NULL) */
static void mark_remote(git_state_t *s, const char *remote, const char *why)
{
    uint64_t now = larder_now();
    pthread_mutex_lock(&s->mu);
    int found = -1, unused = -1, oldest = 0;
    for (int i = 0; i < GIT_DOWN_SLOTS; i++) {
        struct git_down *d = &s->down[i];
        if (!strcmp(d->remote, remote))
            found = i;
        else if (!d->remote[0] || d->until < now)
            unused = i;
        if (d->until < s->down[oldest].until)
            oldest = i;
    }
    if (why) {
        struct git_down *d = &s->down[found >= 0 ? found : unused >= 0 ? unused : oldest];
        snprintf(d->remote, sizeof(d->remote), "%s", remote);
        d->until = now + GIT_DOWN_SECONDS;
        snprintf(d->why, sizeof(d->why), "%s", why);
    } else if (found >= 0) {
        s->down[found].remote[0] = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

int git_remote_down(git_state_t *s, const char *remote, char *why, size_t n)
{
    int down = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < GIT_DOWN_SLOTS; i++) {
        if (!strcmp(s->down[i].remote, remote) && s->down[i].until >= larder_now()) {
            snprintf(why, n, "%s", s->down[i].why);
            down = 1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return down;
}

/* git's words for an upstream that could not be reached at all */
static int is_unreachable(const char *msg)
{
    static const char *const words[] = {"Could not resolve host", "Failed to connect", "Couldn't connect",
                                        "Connection refused", "Connection timed out", "Operation timed out",
                                        "Could not resolve proxy", "Network is unreachable", "No route to host"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strstr(msg, words[i]))
            return 1;
    return 0;
}

/* git's words for a repository that is not there (GitHub answers 401 for those, hence the user name prompt) */
static int is_not_found(const char *msg)
{
    return (strstr(msg, "repository '") && strstr(msg, "' not found")) || strstr(msg, "could not read Username") ||
           strstr(msg, "Authentication failed") || strstr(msg, "returned error: 404");
}

/* ---- running git against the upstream ---- */

static void upstream_env(git_env_t *e, git_state_t *s, const larder_git_remote_t *r, int for_gc)
{
    const larder_config_t *cfg = s->app->cfg;
    git_env_init(e, s);
    if (!for_gc)
        git_env_config(e, "gc.auto", "0"); /* gc runs when this file says, never detached behind its back */
    else
        git_env_config(e, "gc.autoDetach", "false");
    git_env_config(e, "maintenance.auto", "false");
    git_env_config(e, "credential.helper", "");
    git_env_config(e, "protocol.version", "2");
    git_env_config(e, "protocol.allow", "never");
    git_env_config(e, "protocol.http.allow", "always");
    git_env_config(e, "protocol.https.allow", "always");
    if (cfg->upstream_proxy)
        git_env_config(e, "http.proxy", cfg->upstream_proxy);
    if (cfg->upstream_ca)
        git_env_config(e, "http.sslCAInfo", cfg->upstream_ca);
    if (cfg->idle_timeout) {
        char t[32];
        snprintf(t, sizeof(t), "%llu", (unsigned long long)cfg->idle_timeout);
        git_env_config(e, "http.lowSpeedLimit", "1");
        git_env_config(e, "http.lowSpeedTime", t);
    }
    if (r && r->username && r->password) {
        char plain[1024], b64[1400], hdr[1500];
        int pl = snprintf(plain, sizeof(plain), "%s:%s", r->username, r->password);
        if (pl > 0 && (size_t)pl < sizeof(plain)) {
            EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)plain, pl);
            snprintf(hdr, sizeof(hdr), "Authorization: Basic %s", b64);
            git_env_config(e, "http.extraHeader", hdr);
            /* a redirect would carry the header to another host */
            git_env_config(e, "http.followRedirects", "false");
        }
        OPENSSL_cleanse(plain, sizeof(plain));
        OPENSSL_cleanse(hdr, sizeof(hdr));
    }
}

/* run git with argv against the upstream of r; 0, or -1 with git's message in msg */
static int run_upstream(git_state_t *s, const larder_git_remote_t *r, const char *const *argv, int out,
                        const larder_fetch_t *fe, char *msg, size_t msglen)
{
    git_env_t env;
    upstream_env(&env, s, r, 0);
    int rc = git_run(s, argv, git_env_finish(&env), out, fe, msg, msglen);
    git_env_free(&env);
    return rc == 0 ? 0 : -1;
}

/* a read-only git command in dir: its stdout into a malloc'd NUL-terminated buffer; NULL on failure */
static char *run_local(git_state_t *s, const char *const *argv, const larder_fetch_t *fe, size_t *len)
{
    int fd = git_tmpfile(s);
    if (fd < 0)
        return NULL;
    git_env_t env;
    git_env_init(&env, s);
    char msg[200];
    int rc = git_run(s, argv, git_env_finish(&env), fd, fe, msg, sizeof(msg));
    git_env_free(&env);
    char *out = NULL;
    struct stat sb;
    if (rc != 0)
        larder_warn("git %s failed: %s", argv[3], msg);
    else if (fstat(fd, &sb) == 0 && larder_pread_all(fd, (uint64_t)sb.st_size, &out) == 0)
        *len = (size_t)sb.st_size;
    close(fd);
    return out;
}

/* the ref list stored as the entry's body */
static char *list_refs(git_state_t *s, const char *dir, const larder_fetch_t *fe, size_t *len)
{
    static const char format[] = "--format=%(objectname) %(refname)%(if)%(*objectname)%(then)%0a%(*objectname) "
                                 "%(refname)^{}%(end)";
    const char *argv[] = {"git", "-C", dir, "for-each-ref", format, "refs/heads", "refs/tags", NULL};
    return run_local(s, argv, fe, len);
}

/* the branch names of a ref list, in order, one per line: to tell whether the set of branches changed */
static char *branch_names(const char *list, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *l = list, *end = list + len; l < end;) {
        const char *e = memchr(l, '\n', (size_t)(end - l));
        if (!e)
            e = end;
        const char *sp = memchr(l, ' ', (size_t)(e - l));
        if (sp && (size_t)(e - sp) > 12 && !memcmp(sp + 1, "refs/heads/", 11)) {
            memcpy(o, sp + 1, (size_t)(e - sp - 1));
            o += e - sp - 1;
            *o++ = '\n';
        }
        l = e + 1;
    }
    *o = 0;
    return out;
}

/* does the list have refs/heads/<name>? */
static int has_branch(const char *list, const char *ref)
{
    char needle[600];
    snprintf(needle, sizeof(needle), " %s\n", ref);
    return strstr(list, needle) != NULL;
}

static void set_head(git_state_t *s, const char *dir, const char *ref, const larder_fetch_t *fe)
{
    const char *argv[] = {"git", "-C", dir, "symbolic-ref", "HEAD", ref, NULL};
    size_t len;
    free(run_local(s, argv, fe, &len));
}

/* HEAD like the upstream's; when unknown or gone, main, master or the first branch */
static void fix_head(git_state_t *s, const larder_git_remote_t *r, const char *dir, const char *url,
                     const char *list, int ask, const larder_fetch_t *fe)
{
    char head[600] = "";
    if (ask) {
        int fd = git_tmpfile(s);
        const char *argv[] = {"git", "ls-remote", "--symref", url, "HEAD", NULL};
        char msg[200];
        if (fd >= 0 && run_upstream(s, r, argv, fd, fe, msg, sizeof(msg)) == 0) {
            char buf[700];
            ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
            buf[n > 0 ? n : 0] = 0;
            if (!strncmp(buf, "ref: refs/heads/", 16)) {
                size_t l = strcspn(buf + 5, "\t\n");
                snprintf(head, sizeof(head), "%.*s", (int)l, buf + 5);
            }
        } else if (fd >= 0) {
            larder_warn("git: the default branch of %s is unknown: %s", url, msg);
        }
        if (fd >= 0)
            close(fd);
    }
    if (!head[0]) {
        git_mirror_head(dir, head, sizeof(head));
        if (head[0] && has_branch(list, head))
            return; /* as it is */
        head[0] = 0;
    }
    if (!head[0] || !has_branch(list, head)) {
        const char *first = strstr(list, " refs/heads/");
        if (has_branch(list, "refs/heads/main"))
            snprintf(head, sizeof(head), "refs/heads/main");
        else if (has_branch(list, "refs/heads/master"))
            snprintf(head, sizeof(head), "refs/heads/master");
        else if (first)
            snprintf(head, sizeof(head), "%.*s", (int)strcspn(first + 1, "\n"), first + 1);
        else
            return; /* no branch at all */
    }
    if (larder_git_refname_ok(head, strlen(head)))
        set_head(s, dir, head, fe);
}

/* lock files a killed git left behind would fail every later update; only larder writes a mirror, and only one
 * update of it runs at a time (single flight), so any lock found here is stale */
static int rm_lock(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    size_t l = strlen(path);
    if (type == FTW_F && l > 5 && !strcmp(path + l - 5, ".lock") && unlink(path) == 0)
        larder_warn("git: removed the stale lock %s", path);
    (void)ftw;
    return 0;
}

static void remove_stale_locks(const char *dir)
{
    static const char *const top[] = {"packed-refs.lock", "HEAD.lock", "config.lock", "shallow.lock"};
    char p[4700];
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, top[i]);
        if (unlink(p) == 0)
            larder_warn("git: removed the stale lock %s", p);
    }
    snprintf(p, sizeof(p), "%s/refs", dir);
    nftw(p, rm_lock, 16, FTW_PHYS);
}

static _Thread_local uint64_t du_total;
static int du_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (type == FTW_F)
        du_total += (uint64_t)sb->st_size;
    return 0;
}

/* bytes of the files under a directory */
static uint64_t tree_bytes(const char *dir)
{
    du_total = 0;
    nftw(dir, du_one, 16, FTW_PHYS);
    return du_total;
}

static uint64_t objects_bytes(const char *dir)
{
    char p[4700];
    snprintf(p, sizeof(p), "%s/objects", dir);
    return tree_bytes(p);
}

static void write_url(const char *dir, const char *url)
{
    char p[4700];
    snprintf(p, sizeof(p), "%s/larder.url", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (larder_write_all(fd, url, strlen(url)) < 0)
            larder_warn("git: cannot write %s", p);
        close(fd);
    }
}

/* the upstream URL a mirror was last fetched from, when it is still one of this remote's two spellings */
static void read_url(const char *dir, const char *url, char *out, size_t n)
{
    char p[4700], buf[4400];
    snprintf(p, sizeof(p), "%s/larder.url", dir);
    snprintf(out, n, "%s", url);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[r > 0 ? r : 0] = 0;
    size_t ul = strlen(url);
    if (!strncmp(buf, url, ul) && !strcmp(buf + ul, ".git"))
        snprintf(out, n, "%s", buf);
}

static int create(git_state_t *s, const larder_git_remote_t *r, const char *dir, const char *url,
                  const larder_fetch_t *fe, char *msg, size_t msglen)
{
    char tmp[4200], u[4400];
    snprintf(tmp, sizeof(tmp), "%s/.tmp/c-%ld-%llu", s->root, (long)getpid(),
             (unsigned long long)atomic_fetch_add(&s->seq, 1));
    snprintf(u, sizeof(u), "%s", url);
    int rc = -1;
    for (int attempt = 0; attempt < 2 && rc < 0; attempt++) {
        if (attempt) { /* the server may know the repository as <path>.git only */
            if (!is_not_found(msg))
                break;
            int k = snprintf(u, sizeof(u), "%s.git", url);
            if (k < 0 || (size_t)k >= sizeof(u))
                break;
            git_rmtree(tmp);
        }
        const char *argv[] = {"git", "clone", "--bare", "--quiet", "--template=", "--", u, tmp, NULL};
        rc = run_upstream(s, r, argv, -1, fe, msg, msglen);
    }
    if (rc < 0) {
        git_rmtree(tmp);
        return -1;
    }
    write_url(tmp, u);
    char parent[4600];
    snprintf(parent, sizeof(parent), "%s", dir);
    *strrchr(parent, '/') = 0;
    int mr = larder_mkdirs(parent, 0755);
    if (mr < 0 || rename(tmp, dir) < 0) {
        /* the message buffer is short: the end of the directory name is what tells mirrors apart */
        size_t dl = strlen(dir);
        snprintf(msg, msglen, "cannot move the new mirror into ...%.100s: %.60s", dl > 100 ? dir + dl - 100 : dir,
                 strerror(mr < 0 ? -mr : errno));
        git_rmtree(tmp);
        return -1;
    }
    return 0;
}

static int update(git_state_t *s, const larder_git_remote_t *r, const char *dir, const char *url,
                  const larder_fetch_t *fe, char *msg, size_t msglen)
{
    char u[4400];
    read_url(dir, url, u, sizeof(u));
    remove_stale_locks(dir);
    int rc = -1;
    for (int attempt = 0; attempt < 2 && rc < 0; attempt++) {
        if (attempt) {
            if (!is_not_found(msg) || strcmp(u, url) != 0)
                break;
            snprintf(u, sizeof(u), "%s.git", url);
        }
        const char *argv[] = {"git", "-C", dir, "fetch", "--atomic", "--prune", "--force", "--no-tags",
                              "--no-write-fetch-head", "--quiet", "--", u, "+refs/heads/*:refs/heads/*",
                              "+refs/tags/*:refs/tags/*", NULL};
        rc = run_upstream(s, r, argv, -1, fe, msg, msglen);
    }
    if (rc == 0)
        write_url(dir, u);
    return rc;
}

/* wait for one of git.max_concurrent slots; 0, or -1 when larder stops meanwhile */
static int slot_take(git_state_t *s, const larder_fetch_t *fe)
{
    int max = git_conf(s->app->cfg)->max_concurrent;
    pthread_mutex_lock(&s->mu);
    while (s->fetching >= max && !larder_fetch_cancelled(fe)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&s->slot_free, &s->mu, &ts);
    }
    int ok = !larder_fetch_cancelled(fe);
    if (ok)
        s->fetching++;
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

static void slot_release(git_state_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->fetching--;
    pthread_cond_signal(&s->slot_free);
    pthread_mutex_unlock(&s->mu);
}

int git_transform_update(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                         char **content_type, char *err, size_t errlen)
{
    (void)st;
    (void)in_fd;
    (void)in_len;
    git_state_t *s = git_state();
    char remote[LARDER_GIT_REMOTE_MAX + 1], path[LARDER_GIT_PATH_MAX + 1];
    const char *perr;
    if (!s || strncmp(fe->key, "m/", 2) != 0 ||
        larder_git_repo_parse(fe->key + 2, strlen(fe->key + 2), remote, sizeof(remote), path, sizeof(path), &perr) < 0) {
        snprintf(err, errlen, "not a git mirror: %s", fe->key);
        return -1;
    }
    const larder_git_remote_t *r = git_remote(s->app->cfg, remote);
    if (!r) {
        snprintf(err, errlen, "remote %s is not in git.remotes", remote);
        return -1;
    }
    char dir[4600], url[4400], msg[200] = "";
    git_mirror_dir(s, remote, path, dir, sizeof(dir));
    if (!dir[0]) {
        snprintf(err, errlen, "repository path too long");
        return -1;
    }
    git_upstream_url(r, path, url, sizeof(url));
    uint64_t t0 = larder_now_ms();
    /* a remote held off after failures to reach it (upstreams.h) is not asked: the mirror is served as it is */
    if (larder_upstreams_admit(s->app->upstreams, LARDER_PROTO_GIT, url, err, errlen) < 0)
        return -1;
    if (slot_take(s, fe) < 0) {
        snprintf(err, errlen, "git update of %s interrupted: larder is stopping", url);
        return -1;
    }
    int existed = git_mirror_exists(dir);
    uint64_t before = existed ? objects_bytes(dir) : 0;
    size_t blen = 0, alen = 0;
    char *blist = existed ? list_refs(s, dir, fe, &blen) : NULL;
    int rc = existed ? update(s, r, dir, url, fe, msg, sizeof(msg)) : create(s, r, dir, url, fe, msg, sizeof(msg));
    char *alist = rc == 0 ? list_refs(s, dir, fe, &alen) : NULL;
    if (rc == 0 && !alist) {
        rc = -1;
        snprintf(msg, sizeof(msg), "cannot list the refs of the mirror");
    }
    if (rc == 0 && existed) {
        char *bn = blist ? branch_names(blist, blen) : NULL, *an = branch_names(alist, alen);
        fix_head(s, r, dir, url, alist, !bn || !an || strcmp(bn, an) != 0, fe);
        free(bn);
        free(an);
        if (!blist || blen != alen || memcmp(blist, alist, alen) != 0) {
            const char *argv[] = {"git", "-C", dir, "gc", "--auto", "--quiet", NULL};
            git_env_t env;
            upstream_env(&env, s, r, 1);
            char gmsg[200];
            if (git_run(s, argv, git_env_finish(&env), -1, fe, gmsg, sizeof(gmsg)) != 0)
                larder_warn("git: gc of %s failed: %s", dir, gmsg);
            git_env_free(&env);
        }
    } else if (rc == 0) {
        fix_head(s, r, dir, url, alist, 0, fe);
    }
    slot_release(s);
    free(blist);
    if (rc < 0) {
        free(alist);
        if (larder_fetch_cancelled(fe))
            snprintf(err, errlen, "git update of %s interrupted: larder is stopping", url);
        else if (is_not_found(msg))
            snprintf(err, errlen, "%s: %s (%s)", GIT_NOT_FOUND, url, msg);
        else
            snprintf(err, errlen, "git %s failed: %s", existed ? "fetch" : "clone", msg);
        if (is_unreachable(msg))
            mark_remote(s, remote, msg);
        if (!larder_fetch_cancelled(fe)) /* the remote's health (GET /-/api/v1/upstreams) */
            larder_upstreams_outcome(s->app->upstreams, LARDER_PROTO_GIT, url,
                                     is_unreachable(msg) ? LARDER_UPSTREAM_UNREACHABLE
                                     : is_not_found(msg) ? LARDER_UPSTREAM_OK
                                                         : LARDER_UPSTREAM_FAILED,
                                     msg);
        return -1;
    }
    mark_remote(s, remote, NULL);
    larder_upstreams_outcome(s->app->upstreams, LARDER_PROTO_GIT, url, LARDER_UPSTREAM_OK, NULL);
    uint64_t after = objects_bytes(dir);
    if (after > before) /* a seed job's update counts as seeding, whoever else waits for it */
        atomic_fetch_add(larder_fetch_by_job(fe) ? &s->app->metrics.bytes_seed[LARDER_PROTO_GIT]
                                                 : &s->app->metrics.bytes_upstream[LARDER_PROTO_GIT],
                         after - before);
    /* the mirror counts in git.quota and quota.total; evicting the entry removes it (git_evicted) */
    larder_fetch_set_external(fe, tree_bytes(dir));
    int wr = larder_write_all(out_fd, alist, alen);
    free(alist);
    if (wr < 0) {
        snprintf(err, errlen, "cannot write the ref list: %s", strerror(errno));
        return -1;
    }
    *content_type = strdup("text/plain; charset=utf-8");
    larder_info("git: %s %s from %s in %llu ms (%llu bytes of objects)", existed ? "updated" : "cloned", dir, url,
                (unsigned long long)(larder_now_ms() - t0), (unsigned long long)after);
    return 0;
}

static void *trash_main(void *arg)
{
    char *path = arg;
    if (git_rmtree(path) < 0)
        larder_warn("git: cannot remove %s: %s (removed at the next start)", path, strerror(errno));
    free(path);
    return NULL;
}

/* a directory out of the way at once (a rename into .tmp/), removed by a thread of its own; leftovers of a stop in
 * between are cleared by the next start. 0, or -1 with errno (ENOENT: nothing there) */
int git_trash(git_state_t *s, const char *dir)
{
    char trash[4200];
    snprintf(trash, sizeof(trash), "%s/.tmp/evicted-%llu", s->root, (unsigned long long)atomic_fetch_add(&s->seq, 1));
    if (rename(dir, trash) < 0)
        return -1;
    char *copy = strdup(trash);
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (!copy || pthread_create(&tid, &attr, trash_main, copy) != 0)
        free(copy); /* left in .tmp/ until the next start */
    pthread_attr_destroy(&attr);
    return 0;
}

/* the entry of a mirror was evicted or deleted: the mirror goes to the trash */
void git_evicted(const larder_config_t *cfg, const char *key)
{
    git_state_t *s = git_state();
    char remote[LARDER_GIT_REMOTE_MAX + 1], path[LARDER_GIT_PATH_MAX + 1], dir[4600];
    const char *err;
    (void)cfg;
    if (!s || strncmp(key, "m/", 2) != 0 ||
        larder_git_repo_parse(key + 2, strlen(key + 2), remote, sizeof(remote), path, sizeof(path), &err) < 0)
        return;
    git_mirror_dir(s, remote, path, dir, sizeof(dir));
    if (!dir[0])
        return;
    if (git_trash(s, dir) < 0) {
        if (errno != ENOENT)
            larder_warn("git: cannot remove the evicted mirror %s: %s", dir, strerror(errno));
        return;
    }
    larder_info("git: mirror %s removed with its entry (evicted, or deleted through the admin API)", dir);
}

char *git_list_refs(git_state_t *s, const char *dir, size_t *len) { return list_refs(s, dir, NULL, len); }

void git_set_head(git_state_t *s, const char *dir, const char *ref) { set_head(s, dir, ref, NULL); }

void git_fix_head(git_state_t *s, const char *dir, const char *list) { fix_head(s, NULL, dir, NULL, list, 0, NULL); }

uint64_t git_tree_bytes(const char *dir) { return tree_bytes(dir); }

void git_cleanup_tmp(git_state_t *s)
{
    char tmp[4100];
    snprintf(tmp, sizeof(tmp), "%s/.tmp", s->root);
    if (git_rmtree(tmp) < 0)
        larder_warn("git: cannot clear %s: %s", tmp, strerror(errno));
    larder_mkdirs(tmp, 0755);
}
