/* client.h - the `larder` commands that are clients of a running daemon (seed, record): its address, the admin
 * token and one HTTP/1.1 request at a time over libcurl. */
#ifndef LARDER_CLIENT_H
#define LARDER_CLIENT_H

#include <stddef.h>

#include "config.h"

typedef struct larder_membuf {
    char *p; /* NUL-terminated, malloc'd */
    size_t n;
} larder_membuf_t;

/* the daemon's base URL (no trailing '/'): `base` when given (--url), else the first listen entry of cfg
 * (0.0.0.0 -> 127.0.0.1, :: -> ::1, https when it has tls) */
void larder_client_base(const larder_config_t *cfg, const char *base, char *out, size_t n);
/* one request; the HTTP status, or 0 when there was no answer (the reason printed as "<who>: <url>: <why>") */
long larder_client_http(const char *who, const char *method, const char *url, const char *token,
                        const char *content_type, const char *body, size_t blen, larder_membuf_t *out);

/* `larder record start NAME [--client ADDR] | stop | status`: args are what follows "record" */
int larder_cli_record(const larder_config_t *cfg, const char *base, const char *client, int argc, char **argv);

#endif
