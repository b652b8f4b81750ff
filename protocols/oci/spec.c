/* spec.c - the oci module's pin_spec hook: a pinned manifest back into the image reference that fetches it again
 * (GET /-/api/v1/pins/<set>/spec). A tag becomes name:tag@sha256:<the stored digest>, which the seed handler
 * (oci.c) fetches by tag and refuses unless the tag still resolves to that digest; an index is marked
 * --index-only, since the platform manifests a client pulled are pinned (and listed) by digest themselves. Blobs
 * need no item: their keys name no repository, and every manifest item brings its own. Pure: no store. */
#include "oci.h"
#include "registry.h"

#include <stdio.h>
#include <string.h>

static int is_index_type(const char *ct)
{
    return ct && (strstr(ct, "image.index") || strstr(ct, "manifest.list"));
}

int larder_oci_pin_spec(const larder_config_t *cfg, larder_seed_spec_t *spec, const char *key, const larder_entry_t *e,
                        char *why, size_t whylen)
{
    (void)cfg;
    if (!strncmp(key, "b/", 2))
        return 0; /* a blob comes with the manifests that list it (its key names no repository to fetch it from) */
    if (!strncmp(key, "t/", 2)) {
        snprintf(why, whylen, "a tag list cannot be seeded");
        return -1;
    }
    larder_oci_req_t o;
    char ref[1000], err[300];
    if (strncmp(key, "m/", 2) != 0 || strlen(key) >= 600 ||
        larder_oci_parse_ref(key + 2, &o, err, sizeof(err)) < 0 || o.tag[0]) {
        snprintf(why, whylen, "not a manifest key");
        return -1;
    }
    const char *opt = e && is_index_type(e->content_type) ? " " LARDER_OCI_INDEX_ONLY : "";
    if (o.ref_is_digest)
        snprintf(ref, sizeof(ref), "%s/%s@%s%s", o.registry, o.name, o.ref, opt);
    else if (e)
        snprintf(ref, sizeof(ref), "%s/%s:%s@sha256:%s%s", o.registry, o.name, o.ref, e->digest, opt);
    else
        snprintf(ref, sizeof(ref), "%s/%s:%s", o.registry, o.name, o.ref);
    return larder_seed_append(spec, LARDER_PROTO_OCI, ref, NULL);
}

int larder_oci_seed_ref(const char *item, char *ref, size_t reflen)
{
    static const char opt[] = " " LARDER_OCI_INDEX_ONLY;
    size_t rl = strlen(item), ol = sizeof(opt) - 1;
    int index_only = rl > ol && !strcmp(item + rl - ol, opt);
    snprintf(ref, reflen, "%.*s", (int)(index_only ? rl - ol : rl), item);
    return index_only;
}
