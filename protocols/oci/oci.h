/* oci.h - the Docker/OCI registry mirror: request parsing (names, references, registry selection), Accept
 * matching and image references for seeding. The pure functions are exposed for the unit tests and fuzzers. */
#ifndef LARDER_OCI_H
#define LARDER_OCI_H

#include <stddef.h>

#include "module.h"

/* one of oci.registries: name ("docker.io", "ghcr.io", "127.0.0.1:5000", lower case), url
 * (https://registry-1.docker.io, no trailing '/'), optional credentials for this upstream */
typedef larder_conf_endpoint_t larder_oci_registry_t;

/* the oci section of larder.yaml beyond the common keys */
typedef struct larder_oci_conf {
    larder_oci_registry_t *registries; /* oci.registries: the registries mirrored (docker.io by default) */
    size_t nregistries;
} larder_oci_conf_t;

enum { LARDER_OCI_ROOT = 1, LARDER_OCI_MANIFEST, LARDER_OCI_BLOB, LARDER_OCI_TAGS, LARDER_OCI_UPLOAD };

typedef struct larder_oci_req {
    int kind;
    int ns_query;       /* the registry came from containerd's ?ns= parameter */
    char tag[160]; /* larder_oci_parse_ref of "name:tag@sha256:<hex>": the tag (ref holds the digest), else "" */
    char registry[256]; /* canonical registry name: "docker.io", "ghcr.io", "127.0.0.1:5000" */
    char name[256];     /* repository name within the registry ("library/alpine") */
    char ref[160];      /* tag, or "sha256:<hex>" (manifests); "sha256:<hex>" (blobs) */
    int ref_is_digest;
} larder_oci_req_t;

/* Parse a request path below /v2/ (no query) and its query string (may be NULL). The registry is containerd's
 * ns= parameter, else a leading path component that looks like a host (has a '.' or ':', or is localhost), else
 * docker.io; docker.io names without a '/' get library/. 0, or -1 with an OCI error code in *code and a message. */
int larder_oci_parse(const char *path, size_t len, const char *query, size_t qlen, larder_oci_req_t *out,
                     const char **code, char *err, size_t errlen);

/* "docker.io" for index.docker.io / registry-1.docker.io / docker.io, otherwise the name lower-cased. */
void larder_oci_canonical_registry(const char *in, size_t len, char *out, size_t outlen);

/* Whether an Accept header value allows this media type (no header, or * / *, or a listed type with q > 0). */
int larder_oci_accepts(const char *accept, size_t len, const char *media_type);

/* An image reference as written by users: [registry/]name[:tag][@sha256:digest] -> parts (tag "latest" when
 * neither is given; with both, the digest in ref and the tag in tag). 0, or -1 with a message. */
int larder_oci_parse_ref(const char *ref, larder_oci_req_t *out, char *err, size_t errlen);

/* a seed item's option: this manifest or index only, not the platform manifests an index lists (a pin set's spec
 * names those it holds, by digest) */
#define LARDER_OCI_INDEX_ONLY "--index-only"

/* a seed item without its --index-only option into ref: 1 when it had it, else 0 */
int larder_oci_seed_ref(const char *item, char *ref, size_t reflen);

/* the pin_spec hook (module.h): a manifest by tag -> "<registry>/<name>:<tag>@sha256:<stored digest>" (the tag must
 * still resolve to it), by digest -> "<registry>/<name>@sha256:<digest>", an index with --index-only; blobs come
 * with the manifests that list them; tag lists cannot be seeded */
int larder_oci_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                        char *why, size_t whylen);

#endif
