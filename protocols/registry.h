/* registry.h - the protocol modules this build has, by index (the order of larder_protocols[] in registry.c).
 *
 * The index of a module is stable only within one build: the store names protocols by `name`, never by index. */
#ifndef LARDER_REGISTRY_H
#define LARDER_REGISTRY_H

#include "module.h"

enum larder_proto {
    LARDER_PROTO_FILES = 0,
    LARDER_PROTO_PYPI,
    LARDER_PROTO_NPM,
    LARDER_PROTO_APT,
    LARDER_PROTO_GEMS,
    LARDER_PROTO_OCI,
    LARDER_PROTO_GIT,
    LARDER_NPROTO
};

extern const larder_protocol_t larder_protocol_files;
extern const larder_protocol_t larder_protocol_pypi;
extern const larder_protocol_t larder_protocol_npm;
extern const larder_protocol_t larder_protocol_apt;
extern const larder_protocol_t larder_protocol_gems;
extern const larder_protocol_t larder_protocol_oci;
extern const larder_protocol_t larder_protocol_git;

#endif
