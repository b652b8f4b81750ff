/* bundle_cli.h - `larder export SET FILE` and `larder import FILE`: clients of a running daemon's admin API. */
#ifndef LARDER_BUNDLE_CLI_H
#define LARDER_BUNDLE_CLI_H

#include "config.h"

/* cmd "export" (args: SET FILE) or "import" (args: FILE); base: --url or NULL (the config's first listener).
 * Returns the exit status (0 ok, 1 refused or failed, 2 cannot run), or -1 for a usage error. */
int larder_cmd_bundle(const larder_config_t *cfg, const char *cmd, const char *base, int argc, char **argv);

#endif
