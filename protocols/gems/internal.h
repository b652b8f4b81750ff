/* internal.h - what the gems module's sources share (not for the core or other protocols). */
#ifndef LARDER_GEMS_INTERNAL_H
#define LARDER_GEMS_INTERNAL_H

#include "gems.h"
#include "jobs.h"
#include "registry.h"

/* /gems/<rest>: the compact index, specs, gemspecs and .gem files (gems.c) */
void gems_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);
/* a seed item: "name:version[-platform]" (gems.c) */
void gems_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx);

#endif
