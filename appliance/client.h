/* client.h - the `larder` commands that are clients of a running daemon (seed, record): its address, the admin
 * token and one HTTP/1.1 request at a time over libcurl. */
#ifndef LARDER_CLIENT_H
#define LARDER_CLIENT_H

#include <stddef.h>

struct curl_slist;

#include "config.h"

typedef struct larder_membuf {
    char *p; /* NUL-terminated, malloc'd */
    size_t n;
    size_t max; /* refuse (end the transfer) past this many bytes; 0: no bound */
} larder_membuf_t;

/* a libcurl write callback appending to a larder_membuf_t */
size_t larder_client_collect(char *d, size_t s, size_t n, void *ud);
/* an easy handle for url with what every request to the daemon has: the token (when given) and one more header
 * (when given) in *h (free it with curl_slist_free_all), a 5 s connect timeout, no proxy, HTTP/1.1 (over HTTP/2 every
 * request body is capped at limits.request_body), and LARDER_INSECURE=1 for a self-signed admin listener */
void *larder_client_handle(const char *url, const char *token, const char *header, struct curl_slist **h);

/* the daemon's base URL (no trailing '/'): `base` when given (--url), else the first listen entry of cfg
 * (0.0.0.0 -> 127.0.0.1, :: -> ::1, https when it has tls) */
void larder_client_base(const larder_config_t *cfg, const char *base, char *out, size_t n);
/* one request; the HTTP status, or 0 when there was no answer (the reason printed as "<who>: <url>: <why>") */
long larder_client_http(const char *who, const char *method, const char *url, const char *token,
                        const char *content_type, const char *body, size_t blen, larder_membuf_t *out);

/* `larder record start NAME [--client ADDR] | stop | status`: args are what follows "record" */
int larder_cli_record(const larder_config_t *cfg, const char *base, const char *client, int argc, char **argv);

#endif
