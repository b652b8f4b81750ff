/* bundle_cli.c - `larder export SET FILE` and `larder import FILE` (docs/bundles.md).
 *
 * Both talk to the running daemon (RocksDB is locked by it) at the address `larder seed` uses: --url, else the
 * config's first listener, with the config's admin token. export streams GET /-/api/v1/pins/<set>/bundle into
 * FILE.part while checking it with the same incremental reader the daemon imports with (every blob's sha256), then
 * fsyncs and renames it to FILE: a cut or damaged download never leaves a FILE behind. import reads FILE in chunks of
 * the size the daemon names and PUTs them in order, then asks for the commit and follows it; on any refusal it
 * prints the daemon's message (what is wrong, and where) and abandons the import so that its temp files go. Memory
 * is one chunk either way. Progress goes to stderr, only when it is a terminal. */
#include "bundle_cli.h"
#include "bundle.h"
#include "client.h"
#include "util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct cli {
    const larder_config_t *cfg;
    char base[1024];
    int tty;
} cli_t;

static void progress(cli_t *c, const char *what, uint64_t done, uint64_t total)
{
    if (!c->tty)
        return;
    char a[32], b[32];
    larder_format_size(done, a, sizeof(a));
    if (total) {
        larder_format_size(total, b, sizeof(b));
        fprintf(stderr, "\r%s: %s of %s (%d%%)   ", what, a, b, (int)(done * 100 / total));
    } else {
        fprintf(stderr, "\r%s: %s   ", what, a);
    }
    fflush(stderr);
}

static void progress_end(cli_t *c)
{
    if (c->tty)
        fprintf(stderr, "\n");
}

#define RESPONSE_MAX ((size_t)1024 * 1024) /* the daemon's JSON answers and error bodies */

/* a JSON request; the answer's status, its JSON in *out (NULL when none); 0 when the daemon was not reached */
static long api(cli_t *c, const char *method, const char *path, const void *body, size_t blen, json_t **out,
                char *err, size_t errlen)
{
    char url[1400];
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    struct curl_slist *h;
    CURL *e = larder_client_handle(url, c->cfg->admin_token, "Expect:", &h);
    larder_membuf_t m = {.max = RESPONSE_MAX};
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, larder_client_collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 600L);
    if (body || strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    long code = 0;
    CURLcode r = curl_easy_perform(e);
    if (r == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    else
        snprintf(err, errlen, "%.900s: %s", url, curl_easy_strerror(r));
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    *out = m.p ? json_loads(m.p, 0, NULL) : NULL;
    if (code && code >= 300) {
        const char *msg = json_string_value(json_object_get(*out, "error"));
        snprintf(err, errlen, "%s (HTTP %ld)", msg ? msg : m.p ? m.p : "no answer", code);
    }
    free(m.p);
    return code;
}

/* ---- export ---- */

typedef struct dl {
    cli_t *c;
    int fd;
    uint64_t got, total;
    larder_bundle_reader_t rd;
    int bad;
    long status;
    larder_membuf_t errbody;
    CURL *e;
} dl_t;

static size_t dl_write(char *d, size_t s, size_t n, void *ud)
{
    dl_t *x = ud;
    size_t len = s * n;
    if (!x->status) {
        curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &x->status);
        curl_off_t cl = -1;
        curl_easy_getinfo(x->e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        x->total = cl > 0 ? (uint64_t)cl : 0;
    }
    if (x->status != 200)
        return larder_client_collect(d, s, n, &x->errbody);
    if (larder_bundle_feed(&x->rd, d, len) < 0) {
        x->bad = 1;
        return 0;
    }
    if (larder_write_all(x->fd, d, len) < 0)
        return 0;
    x->got += len;
    progress(x->c, "export", x->got, x->total);
    return len;
}

static int cmd_export(cli_t *c, const char *set, const char *file)
{
    if (!larder_pin_set_name_ok(set, strlen(set))) {
        fprintf(stderr, "larder export: '%s' is not a pin set name ([A-Za-z0-9._-]{1,64})\n", set);
        return 2;
    }
    char part[4200], url[1400];
    snprintf(part, sizeof(part), "%s.part", file);
    dl_t x = {.c = c, .errbody = {.max = RESPONSE_MAX}};
    x.fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (x.fd < 0) {
        fprintf(stderr, "larder export: cannot create %s: %s\n", part, strerror(errno));
        return 2;
    }
    larder_bundle_reader_init(&x.rd, NULL);
    snprintf(url, sizeof(url), "%s/-/api/v1/pins/%s/bundle", c->base, set);
    struct curl_slist *h;
    x.e = larder_client_handle(url, c->cfg->admin_token, "Expect:", &h);
    curl_easy_setopt(x.e, CURLOPT_WRITEFUNCTION, dl_write);
    curl_easy_setopt(x.e, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(x.e, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled daemon, not a slow disk */
    curl_easy_setopt(x.e, CURLOPT_LOW_SPEED_TIME, 120L);
    CURLcode r = curl_easy_perform(x.e);
    long code = x.status;
    if (!code)
        curl_easy_getinfo(x.e, CURLINFO_RESPONSE_CODE, &code);
    curl_off_t cl = -1;
    if (!x.total && curl_easy_getinfo(x.e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl > 0)
        x.total = (uint64_t)cl;
    curl_slist_free_all(h);
    curl_easy_cleanup(x.e);
    progress_end(c);
    int rc = 0;
    if (code != 200 && (r == CURLE_OK || code)) {
        json_t *j = x.errbody.p ? json_loads(x.errbody.p, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(j, "error"));
        fprintf(stderr, "larder export: the daemon refused to export pin set %s (HTTP %ld): %s\n", set, code,
                msg ? msg : x.errbody.p ? x.errbody.p : "no answer");
        json_decref(j);
        rc = 1;
    } else if (x.bad) {
        fprintf(stderr, "larder export: the daemon sent a damaged bundle: %s\n", larder_bundle_error(&x.rd));
        rc = 1;
    } else if (r != CURLE_OK) {
        fprintf(stderr,
                "larder export: the download of pin set %s stopped after %" PRIu64 " of %" PRIu64 " bytes: %s (when "
                "the daemon aborts an export, its log says why: a stored blob failed verification, or was removed)\n",
                set, x.got, x.total, curl_easy_strerror(r));
        rc = 1;
    } else if (larder_bundle_finish(&x.rd) < 0) {
        fprintf(stderr, "larder export: the daemon sent an incomplete bundle: %s\n", larder_bundle_error(&x.rd));
        rc = 1;
    } else if (fsync(x.fd) < 0 || close(x.fd) < 0) {
        x.fd = -1;
        fprintf(stderr, "larder export: writing %s failed: %s\n", part, strerror(errno));
        rc = 2;
    } else {
        x.fd = -1;
        if (rename(part, file) < 0) {
            fprintf(stderr, "larder export: cannot rename %s to %s: %s\n", part, file, strerror(errno));
            rc = 2;
        } else {
            char sz[32];
            larder_format_size(x.got, sz, sizeof(sz));
            char ext[64] = "";
            if (x.rd.m.nexternal)
                snprintf(ext, sizeof(ext), ", %zu with data outside the blob store", x.rd.m.nexternal);
            printf("pin set %s: %zu entries%s, %zu blobs, %zu module records: %s written (%s)\n", set, x.rd.m.nentries,
                   ext, x.rd.m.nblobs, x.rd.m.nmeta, file, sz);
        }
    }
    if (x.fd >= 0)
        close(x.fd);
    if (rc)
        unlink(part);
    larder_bundle_reader_free(&x.rd);
    free(x.errbody.p);
    return rc;
}

/* ---- import ---- */

static int cmd_import(cli_t *c, const char *file)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        fprintf(stderr, "larder import: cannot read %s: %s\n", file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 2;
    }
    uint64_t size = (uint64_t)sb.st_size;
    char err[1200] = "", path[256];
    json_t *j = NULL;
    snprintf(path, sizeof(path), "/-/api/v1/imports?size=%" PRIu64, size);
    long code = api(c, "POST", path, NULL, 0, &j, err, sizeof(err));
    const char *id = json_string_value(json_object_get(j, "id"));
    json_int_t chunk = json_integer_value(json_object_get(j, "chunk"));
    if (code != 201 || !id || strlen(id) != 32 || chunk <= 0) {
        fprintf(stderr, "larder import: the daemon refused to start an import: %s\n", code ? err : err[0] ? err : "?");
        json_decref(j);
        close(fd);
        return code ? 1 : 2;
    }
    char idb[33];
    snprintf(idb, sizeof(idb), "%s", id);
    json_decref(j);
    char *buf = malloc((size_t)chunk);
    uint64_t off = 0;
    int rc = 0;
    while (rc == 0 && off < size) {
        ssize_t n = pread(fd, buf, (size_t)chunk, (off_t)off);
        if (n <= 0) {
            fprintf(stderr, "\nlarder import: reading %s failed at byte %" PRIu64 ": %s\n", file, off,
                    n < 0 ? strerror(errno) : "the file shrank");
            rc = 2;
            break;
        }
        snprintf(path, sizeof(path), "/-/api/v1/imports/%s?offset=%" PRIu64, idb, off);
        for (int attempt = 0;; attempt++) {
            code = api(c, "PUT", path, buf, (size_t)n, &j, err, sizeof(err));
            if ((code == 503 || code == 0) && attempt < 10) { /* the bodies budget is spent, or a lost connection */
                json_decref(j);
                sleep(1);
                continue;
            }
            break;
        }
        if (code != 200) {
            progress_end(c);
            fprintf(stderr, "larder import: %s was refused at byte %" PRIu64 ": %s\n", file, off, err);
            rc = code ? 1 : 2;
        }
        json_decref(j);
        off += (uint64_t)n;
        progress(c, "import", off, size);
    }
    free(buf);
    close(fd);
    if (rc == 0) {
        progress_end(c);
        snprintf(path, sizeof(path), "/-/api/v1/imports/%s/commit", idb);
        code = api(c, "POST", path, NULL, 0, &j, err, sizeof(err));
        json_decref(j);
        if (code != 202) {
            fprintf(stderr, "larder import: %s was refused: %s\n", file, err);
            rc = code ? 1 : 2;
        }
    }
    if (rc) { /* let the daemon drop what it received (it has, when it refused the bundle itself) */
        snprintf(path, sizeof(path), "/-/api/v1/imports/%s", idb);
        api(c, "DELETE", path, NULL, 0, &j, err, sizeof(err));
        json_decref(j);
        return rc;
    }
    snprintf(path, sizeof(path), "/-/api/v1/imports/%s", idb);
    for (;;) {
        code = api(c, "GET", path, NULL, 0, &j, err, sizeof(err));
        const char *state = json_string_value(json_object_get(j, "state"));
        if (code != 200 || !state) {
            fprintf(stderr, "larder import: lost track of import %s: %s\n", idb, err);
            json_decref(j);
            return 2;
        }
        if (strcmp(state, "done") == 0) {
            json_t *res = json_object_get(j, "result");
            char sz[32];
            larder_format_size((uint64_t)json_integer_value(json_object_get(res, "new_bytes")), sz, sizeof(sz));
            printf("pin set %s: %" JSON_INTEGER_FORMAT " entries pinned (%" JSON_INTEGER_FORMAT
                   " added, %" JSON_INTEGER_FORMAT " replaced, %" JSON_INTEGER_FORMAT
                   " already there), %" JSON_INTEGER_FORMAT " new blobs (%s)\n",
                   json_string_value(json_object_get(j, "pin_set")), json_integer_value(json_object_get(res, "pinned")),
                   json_integer_value(json_object_get(res, "added")),
                   json_integer_value(json_object_get(res, "replaced")),
                   json_integer_value(json_object_get(res, "unchanged")),
                   json_integer_value(json_object_get(res, "new_blobs")), sz);
            json_decref(j);
            return 0;
        }
        if (strcmp(state, "failed") == 0) {
            fprintf(stderr, "larder import: %s was refused: %s\n", file,
                    json_string_value(json_object_get(j, "error")));
            json_decref(j);
            return 1;
        }
        json_decref(j);
        usleep(200 * 1000);
    }
}

int larder_cmd_bundle(const larder_config_t *cfg, const char *cmd, const char *base, int argc, char **argv)
{
    cli_t c = {.cfg = cfg, .tty = isatty(2)};
    larder_client_base(cfg, base, c.base, sizeof(c.base));
    if (!strcmp(cmd, "export") && argc == 2)
        return cmd_export(&c, argv[0], argv[1]);
    if (!strcmp(cmd, "import") && argc == 1)
        return cmd_import(&c, argv[0]);
    return -1;
}
