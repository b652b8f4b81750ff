/* client.c - the daemon's clients among the `larder` commands (see client.h) and `larder record`. */
#include "client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void larder_client_base(const larder_config_t *cfg, const char *base, char *out, size_t n)
{
    if (base)
        snprintf(out, n, "%s", base);
    else {
        const larder_listen_t *l = &cfg->listen[0];
        const char *addr = strcmp(l->address, "0.0.0.0") == 0 ? "127.0.0.1"
                           : strcmp(l->address, "::") == 0    ? "::1"
                                                              : l->address;
        int v6 = strchr(addr, ':') != NULL;
        snprintf(out, n, "%s://%s%s%s:%d", l->tls_cert ? "https" : "http", v6 ? "[" : "", addr, v6 ? "]" : "",
                 l->port);
    }
    size_t bl = strlen(out);
    while (bl && out[bl - 1] == '/')
        out[--bl] = 0;
}

size_t larder_client_collect(char *d, size_t s, size_t n, void *ud)
{
    larder_membuf_t *m = ud;
    if (m->max && m->n + s * n > m->max)
        return 0;
    char *np = realloc(m->p, m->n + s * n + 1);
    if (!np)
        return 0;
    m->p = np;
    memcpy(m->p + m->n, d, s * n);
    m->n += s * n;
    m->p[m->n] = 0;
    return s * n;
}

void *larder_client_handle(const char *url, const char *token, const char *header, struct curl_slist **h)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    char hdr[1100];
    *h = NULL;
    if (token) {
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
        *h = curl_slist_append(*h, hdr);
    }
    if (header)
        *h = curl_slist_append(*h, header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *h);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (getenv("LARDER_INSECURE")) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return c;
}

long larder_client_http(const char *who, const char *method, const char *url, const char *token,
                        const char *content_type, const char *body, size_t blen, larder_membuf_t *out)
{
    char ct[300];
    if (content_type)
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
    struct curl_slist *h;
    CURL *c = larder_client_handle(url, token, content_type ? ct : NULL, &h);
    if (!c)
        return 0;
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, larder_client_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)blen);
    }
    long code = 0;
    CURLcode r = curl_easy_perform(c);
    if (r == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    else
        fprintf(stderr, "%s: %s: %s\n", who, url, curl_easy_strerror(r));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

static void print_status(json_t *j)
{
    const char *set = json_string_value(json_object_get(j, "pin_set"));
    int active = json_is_true(json_object_get(j, "recording"));
    if (!set) {
        printf("not recording\n");
        return;
    }
    const char *client = json_string_value(json_object_get(j, "client"));
    time_t started = (time_t)json_integer_value(json_object_get(j, "started_at"));
    struct tm tm;
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&started, &tm));
    printf("%s pin set %s (%s) since %s: %lld entries pinned from %lld answers",
           active ? "recording into" : "not recording; last recording was", set,
           client ? client : "every client", when, (long long)json_integer_value(json_object_get(j, "recorded")),
           (long long)json_integer_value(json_object_get(j, "served")));
    if (client)
        printf(", %lld answers to other clients not recorded",
               (long long)json_integer_value(json_object_get(j, "skipped")));
    printf("\n");
}

int larder_cli_record(const larder_config_t *cfg, const char *base, const char *client, int argc, char **argv)
{
    const char *who = "larder record";
    int start = argc >= 1 && strcmp(argv[0], "start") == 0;
    int known = start || (argc >= 1 && (strcmp(argv[0], "stop") == 0 || strcmp(argv[0], "status") == 0));
    if (!known || argc != (start ? 2 : 1) || (client && !start)) {
        fprintf(stderr, "usage: larder record start NAME [--client ADDR] | stop | status  [--config FILE] [--url BASE]\n");
        return 2;
    }
    char url[1024], u[1200];
    larder_client_base(cfg, base, url, sizeof(url));
    snprintf(u, sizeof(u), "%s/-/api/v1/record", url);
    larder_membuf_t resp = {0};
    long code;
    if (start) {
        json_t *req = json_pack("{s:s}", "pin_set", argv[1]);
        if (client)
            json_object_set_new(req, "client", json_string(client));
        char *body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        code = larder_client_http(who, "POST", u, cfg->admin_token, "application/json", body, strlen(body), &resp);
        free(body);
    } else if (strcmp(argv[0], "stop") == 0)
        code = larder_client_http(who, "DELETE", u, cfg->admin_token, NULL, NULL, 0, &resp);
    else
        code = larder_client_http(who, "GET", u, NULL, NULL, NULL, 0, &resp);
    json_t *j = resp.p ? json_loads(resp.p, 0, NULL) : NULL;
    int rc = 0;
    if (code != 200 || !json_is_object(j)) {
        const char *msg = json_string_value(json_object_get(j, "error"));
        if (code)
            fprintf(stderr, "%s: the daemon answered HTTP %ld: %s\n", who, code, msg ? msg : resp.p ? resp.p : "");
        rc = code == 404 && strcmp(argv[0], "stop") == 0 ? 1 : 2;
    } else
        print_status(j);
    json_decref(j);
    free(resp.p);
    return rc;
}
