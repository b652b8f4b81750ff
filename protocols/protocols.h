/* protocols.h - the small vtable every protocol handler exposes (one file per protocol in protocols/). */
#ifndef LARDER_PROTOCOLS_H
#define LARDER_PROTOCOLS_H

#include <h2o.h>
#include "app.h"
#include "seedspec.h"

typedef struct larder_protocol {
    int proto;         /* enum larder_proto */
    const char *mount; /* path prefix on the main listener, e.g. "/files/" */
    /* answer a request whose raw path starts with `mount`; rest = path after the mount (query included) */
    void (*handle)(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);
    /* resolve one seed item into a fetch (url and key malloc'd into *url / *key); 0 or -1 with err */
    int (*seed_item)(larder_app_t *app, const larder_seed_item_t *item, larder_fetch_req_t *out, char **url,
                     char **key, char *err, size_t errlen);
} larder_protocol_t;

extern const larder_protocol_t larder_protocol_files;
extern const larder_protocol_t larder_protocol_pypi;

/* the protocol for a seed item or request, NULL when not implemented */
const larder_protocol_t *larder_protocol_get(int proto);

#endif
