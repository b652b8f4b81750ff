/* internal.h - what the files of the apt cache share among themselves (never included outside protocols/apt/):
 * proxy.c (requests), indexes.c (Release/Packages parsing and their fetch transforms), closure.c (the package
 * universe) and seed.c (the seed expander). The public, pure API is apt.h. */
#ifndef LARDER_APT_INTERNAL_H
#define LARDER_APT_INTERNAL_H

#include "app.h"
#include "jobs.h"
#include "registry.h"
#include "seedspec.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MAX_INDEX ((size_t)1024 * 1024 * 1024) /* decompressed Packages size cap */

/* whether host is one of list[0..n) (apt.allow, apt.https_hosts): used by requests and by seeding alike */
static inline int in_list(char *const *list, size_t n, const char *host)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], host) == 0)
            return 1;
    return 0;
}

/* fetch transform of InRelease/Release (indexes.c): stores the file as it is, records its SHA256 list */
int apt_release_transform(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                          char **content_type, char *err, size_t errlen);
/* fetch transform of an index under dists/ (indexes.c): stores it as it is, records a Packages file's .deb hashes */
int apt_index_transform(larder_store_t *st, const larder_fetch_t *fe, int in_fd, uint64_t in_len, int out_fd,
                        char **content_type, char *err, size_t errlen);
/* /apt/<host>/<path> (proxy.c) */
void apt_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);
/* a request whose target is an absolute URI, or a CONNECT: apt's proxy mode (proxy.c) */
void larder_apt_handle_proxy(larder_app_t *app, h2o_req_t *req);
/* the seed expander of larder_protocol_apt (seed.c): item ref "pkg1 pkg2 ...", repositories from the spec */
void apt_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx);

#endif
