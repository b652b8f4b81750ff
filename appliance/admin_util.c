/* admin_util.c - what every handler under /-/ shares: JSON answers and errors, query parameters (percent-decoded),
 * the method check that answers 405 with an Allow header, and the headers every /-/ answer carries.
 *
 * Handlers stay small because of these: each one checks its methods once (larder_admin_allow) and then only builds
 * its answer. Nothing here keeps state; answers are copied into the request's pool by larder_send_text. */
#include "admin.h"
#include "cache.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

void larder_admin_send_json(larder_app_t *app, h2o_req_t *req, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        larder_admin_error(app, req, 500, "could not build the answer (out of memory?)");
        return;
    }
    larder_send_text(app, req, -1, status, reason_of(status), "application/json", s, strlen(s));
    free(s);
}

void larder_admin_error(larder_app_t *app, h2o_req_t *req, int status, const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        larder_send_text(app, req, -1, 500, "Internal Server Error", "application/json", oom, sizeof(oom) - 1);
        return;
    }
    larder_send_text(app, req, -1, status, reason_of(status), "application/json", s, strlen(s));
    free(s);
}

static int method_in(h2o_req_t *req, const char *allow)
{
    /* allow: "GET, HEAD, DELETE" */
    const char *m = req->input.method.base;
    size_t ml = req->input.method.len;
    for (const char *p = allow; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == ml && memcmp(p, m, n) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
        while (*p == ' ')
            p++;
    }
    return 0;
}

int larder_admin_allow(larder_app_t *app, h2o_req_t *req, const char *allow)
{
    if (method_in(req, allow))
        return 1;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    char msg[160];
    snprintf(msg, sizeof(msg), "this path takes %s", allow);
    larder_admin_error(app, req, 405, msg);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int larder_admin_query_in(const char *query, size_t len, const char *name, char *out, size_t outlen)
{
    if (outlen == 0)
        return -1;
    const char *q = query, *end = query + len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *seg_end = amp ? amp : end;
        if ((size_t)(seg_end - q) >= nl + 1 && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t o = 0;
            for (const char *c = q + nl + 1; c < seg_end; c++) {
                int ch = (unsigned char)*c;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%') {
                    int hi = seg_end - c > 2 ? hexval(c[1]) : -1, lo = hi >= 0 ? hexval(c[2]) : -1;
                    if (lo < 0)
                        return -1;
                    ch = hi * 16 + lo;
                    c += 2;
                }
                if (ch == 0 || o + 1 >= outlen)
                    return -1;
                out[o++] = (char)ch;
            }
            out[o] = 0;
            return 1;
        }
        q = amp ? amp + 1 : end;
    }
    return 0;
}

int larder_admin_query(h2o_req_t *req, const char *name, char *out, size_t outlen)
{
    if (req->input.query_at == SIZE_MAX)
        return 0;
    return larder_admin_query_in(req->input.path.base + req->input.query_at + 1,
                                 req->input.path.len - req->input.query_at - 1, name, out, outlen);
}

int larder_admin_cursor_decode(const char *hex, char *out, size_t outlen)
{
    size_t n = strlen(hex);
    if (n == 0 || n % 2 || n / 2 >= outlen)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return -1;
        out[i] = (char)(hi * 16 + lo);
    }
    out[n / 2] = 0;
    return 0;
}

char *larder_admin_cursor_encode(const char *name)
{
    static const char digits[] = "0123456789abcdef";
    size_t n = strlen(name);
    char *hex = malloc(2 * n + 1);
    if (!hex)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[(unsigned char)name[i] >> 4];
        hex[2 * i + 1] = digits[(unsigned char)name[i] & 15];
    }
    hex[2 * n] = 0;
    return hex;
}

void larder_admin_common_headers(h2o_req_t *req, int ui)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 1, NULL,
                          H2O_STRLIT("nosniff"));
    if (!ui)
        return;
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 1, NULL,
                          H2O_STRLIT("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                                     "frame-ancestors 'none'; form-action 'none'"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 1, NULL,
                          H2O_STRLIT("no-referrer"));
}
