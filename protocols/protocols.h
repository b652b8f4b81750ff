/* protocols.h - the small vtable every protocol handler exposes (one file per protocol in protocols/). */
#ifndef LARDER_PROTOCOLS_H
#define LARDER_PROTOCOLS_H

#include <h2o.h>
#include "app.h"
#include "seedspec.h"

struct larder_seed_ctx;

typedef struct larder_protocol {
    int proto;         /* enum larder_proto */
    const char *mount; /* path prefix on the main listener, e.g. "/files/" */
    /* answer a request whose raw path starts with `mount`; rest = path after the mount (query included) */
    void (*handle)(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);
    /* expand one seed item into fetches with larder_seed_add() / larder_seed_fail() (jobs.h) */
    void (*seed)(larder_app_t *app, const larder_seed_item_t *item, struct larder_seed_ctx *ctx);
} larder_protocol_t;

extern const larder_protocol_t larder_protocol_files;
extern const larder_protocol_t larder_protocol_pypi;
extern const larder_protocol_t larder_protocol_npm;
extern const larder_protocol_t larder_protocol_apt;
extern const larder_protocol_t larder_protocol_oci;
extern const larder_protocol_t larder_protocol_gems;

/* apt as an HTTP proxy: a request whose target is an absolute URI (or a CONNECT) */
void larder_apt_handle_proxy(larder_app_t *app, h2o_req_t *req);

/* the protocol for a seed item or request, NULL when not implemented */
const larder_protocol_t *larder_protocol_get(int proto);

#endif
