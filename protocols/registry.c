/* registry.c - the one list of protocol modules. Adding a protocol: its directory under protocols/, an entry in
 * enum larder_proto (registry.h) and one line here (docs/architecture.md). The core reaches modules only
 * through this array. */
#include "registry.h"

#include <assert.h>
#include <string.h>

const larder_protocol_t *const larder_protocols[] = {
    [LARDER_PROTO_FILES] = &larder_protocol_files, [LARDER_PROTO_PYPI] = &larder_protocol_pypi,
    [LARDER_PROTO_NPM] = &larder_protocol_npm,     [LARDER_PROTO_APT] = &larder_protocol_apt,
    [LARDER_PROTO_GEMS] = &larder_protocol_gems,   [LARDER_PROTO_OCI] = &larder_protocol_oci,
    [LARDER_PROTO_GIT] = &larder_protocol_git,
};
const int larder_nprotocols = LARDER_NPROTO;

static_assert(sizeof(larder_protocols) / sizeof(larder_protocols[0]) == LARDER_NPROTO, "one module per index");
static_assert(LARDER_NPROTO <= LARDER_MAX_PROTO, "raise LARDER_MAX_PROTO (config.h)");

const larder_protocol_t *larder_protocol_get(int proto)
{
    return proto >= 0 && proto < LARDER_NPROTO ? larder_protocols[proto] : NULL;
}

int larder_proto_count(void) { return LARDER_NPROTO; }

const char *larder_proto_name(int proto)
{
    const larder_protocol_t *m = larder_protocol_get(proto);
    return m ? m->name : NULL;
}

int larder_proto_from_name(const char *name)
{
    for (int i = 0; name && i < LARDER_NPROTO; i++)
        if (strcmp(name, larder_protocols[i]->name) == 0)
            return i;
    return -1;
}

void *larder_proto_conf(const larder_config_t *cfg, int proto)
{
    return proto >= 0 && proto < LARDER_NPROTO ? cfg->proto[proto].ext : NULL;
}
