/* pinspec.h - a pin set as the seed spec that makes it again: GET /-/api/v1/pins/<set>/spec and recording. */
#ifndef LARDER_PINSPEC_H
#define LARDER_PINSPEC_H

#include "config.h"
#include "store.h"

/* The seed spec (YAML, as larder_seed_emit writes it) that fetches every entry of pin set `set` again from the
 * upstreams: each pin, in key order, goes to its module's pin_spec hook (module.h); duplicate items are dropped;
 * pins no hook can express are listed first as "# not reproducible: <proto> <key>: <why>" comment lines.
 * 0 and *out (malloc'd), -ENOENT when the set has no pins, -ENOMEM, or the store's -errno. */
int larder_pins_spec(const larder_config_t *cfg, larder_store_t *st, const char *set, char **out);

#endif
