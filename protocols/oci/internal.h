/* internal.h - what the oci module's sources share (not for the core or other protocols). */
#ifndef LARDER_OCI_INTERNAL_H
#define LARDER_OCI_INTERNAL_H

#include "jobs.h"
#include "oci.h"
#include "registry.h"

/* /v2/<rest>: the distribution API's read side (oci.c) */
void oci_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);
/* a seed item: an image reference, expanded for the spec's platforms (oci.c) */
void oci_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx);

#endif
