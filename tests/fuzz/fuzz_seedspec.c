/* fuzz_seedspec.c - the seed spec parser against arbitrary bytes (specs arrive over the admin API). An accepted
 * spec must have a valid pin set name, at least one item, and only relative, bounded, control-free refs with
 * well-formed optional digests; anything else is a parser bug even if it does not crash. */
#include "seedspec.h"
#include "config.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[512];
    err[0] = 0;
    larder_seed_spec_t *s = larder_seed_parse((const char *)data, size, err, sizeof(err));
    if (!s) {
        if (!err[0])
            abort(); /* every refusal says why */
        return 0;
    }
    size_t n = strlen(s->pin_set);
    if (n < 1 || n > 64 ||
        strspn(s->pin_set, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        abort();
    if (s->nitems == 0)
        abort();
    for (size_t i = 0; i < s->nitems; i++) {
        const larder_seed_item_t *it = &s->items[i];
        size_t len = strlen(it->ref);
        if (!larder_proto_name(it->proto) || len == 0 || len > 2048 || it->ref[0] == '/')
            abort();
        for (size_t j = 0; j < len; j++)
            if ((unsigned char)it->ref[j] < 0x20 || it->ref[j] == 0x7f)
                abort();
        if (it->sha256 && !larder_is_sha256_hex(it->sha256))
            abort();
    }
    larder_seed_free(s);
    return 0;
}
