/* internal.h - what the files module's sources share (not for the core or other protocols). */
#ifndef LARDER_FILES_INTERNAL_H
#define LARDER_FILES_INTERNAL_H

#include "files.h"
#include "jobs.h"
#include "registry.h"

/* /files/<rest>: a pin, a mirror path or a blob by digest (files.c) */
void files_handle(larder_app_t *app, h2o_req_t *req, const char *rest, size_t len);
/* a seed item: a pin name or <mirror>/<path> (files.c) */
void files_seed(larder_app_t *app, const larder_seed_item_t *item, larder_seed_ctx_t *ctx);

/* the pin_spec hook: a cached URL back into a pin name or mirror path with its sha256 (files.c) */
int files_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                   char *why, size_t whylen);

#endif
