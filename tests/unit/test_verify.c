/* test_verify.c - what may answer a request that expects a digest (larder_entry_satisfies), freshness from the
 * ttl in force now (larder_entry_is_fresh), and the upstream Content-Length parser; on a temp data dir. */
#include "registry.h"
#include "fetch.h"
#include "store.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* "<alg>-<base64 of the digest of data>" */
static void sri(const char *prefix, const EVP_MD *md, const char *data, size_t n, char *out, size_t outlen)
{
    unsigned char raw[64], b64[100];
    unsigned int len = 0;
    EVP_Digest(data, n, raw, &len, md, NULL);
    EVP_EncodeBlock(b64, raw, (int)len);
    snprintf(out, outlen, "%s-%s", prefix, b64);
}

int main(void)
{
    char dir[] = "/tmp/larder-test-verify-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    larder_config_t cfg = {0};
    cfg.data_dir = dir;
    larder_store_t *st;
    char err[256], path[4096];
    CHECK(larder_store_open(&cfg, &st, err, sizeof(err)) == 0);

    const char body[] = "the bytes a mirror path stored";
    int fd = larder_store_tmp_create(st, path, sizeof(path));
    CHECK(fd >= 0 && write(fd, body, sizeof(body) - 1) == (ssize_t)(sizeof(body) - 1));
    close(fd);
    larder_entry_t e = {0};
    CHECK(larder_sha256_file(path, e.digest) == 0);
    e.size = sizeof(body) - 1;
    e.fetched_at = larder_now();
    CHECK(larder_store_commit(st, LARDER_PROTO_NPM, "k", path, &e, NULL) == 0);

    /* sha256 */
    const char *other = "0000000000000000000000000000000000000000000000000000000000000000";
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, NULL, NULL) == 1);
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, e.digest, NULL) == 1);
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, other, NULL) == 0);
    char upper[LARDER_SHA256_HEX];
    for (int i = 0; i < LARDER_SHA256_HEX; i++)
        upper[i] = (char)(e.digest[i] >= 'a' && e.digest[i] <= 'f' ? e.digest[i] - 32 : e.digest[i]);
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, upper, NULL) == 1);

    /* SRI: sha512 is computed from the blob once and recorded; sha256 compares with the entry's digest */
    char good512[200], bad512[200], good256[200], good1[200];
    sri("sha512", EVP_sha512(), body, sizeof(body) - 1, good512, sizeof(good512));
    sri("sha512", EVP_sha512(), "other bytes", 11, bad512, sizeof(bad512));
    sri("sha256", EVP_sha256(), body, sizeof(body) - 1, good256, sizeof(good256));
    sri("sha1", EVP_sha1(), body, sizeof(body) - 1, good1, sizeof(good1));
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, NULL, good512) == 1);
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, NULL, bad512) == 0);
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, NULL, good256) == 1);
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, NULL, good1) == 1);
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, other, good512) == 0);
    char mk[100];
    snprintf(mk, sizeof(mk), "sri/SHA512/%s", e.digest);
    size_t len = 0;
    char *rec = larder_store_meta_get(st, LARDER_PROTO_NPM, mk, &len);
    CHECK(rec && len == 128);
    free(rec);
    /* the record, not the blob, answers from now on: a recorded digest that differs is a mismatch */
    larder_store_blob_path(st, e.digest, path, sizeof(path));
    CHECK(unlink(path) == 0);
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, NULL, good512) == 1);
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, NULL, bad512) == 0);
    /* nothing recorded and no blob: unverifiable, so not satisfied */
    char good384[200];
    sri("sha384", EVP_sha384(), body, sizeof(body) - 1, good384, sizeof(good384));
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, NULL, good384) == 0);
    /* an integrity string that cannot be parsed expects nothing (as larder_fetch_start ignores it) */
    CHECK(larder_entry_satisfies(st, LARDER_PROTO_NPM, &e, NULL, "md5-xyz") == 1);

    /* freshness: fetched_at + the ttl given now, whatever fresh_until says */
    larder_entry_t f = {0};
    f.fetched_at = 1000;
    f.fresh_until = 1000 + 86400;
    CHECK(larder_entry_is_fresh(&f, 1500, 86400) == 1);
    CHECK(larder_entry_is_fresh(&f, 1500, 0) == 0);
    CHECK(larder_entry_is_fresh(&f, 1500, 600) == 1);
    CHECK(larder_entry_is_fresh(&f, 1600, 600) == 0);
    f.flags = LARDER_ENTRY_IMMUTABLE;
    CHECK(larder_entry_is_fresh(&f, 1600, 0) == 1);

    /* Content-Length */
    CHECK(larder_parse_content_length("10") == 10);
    CHECK(larder_parse_content_length("0") == 0);
    CHECK(larder_parse_content_length(" 1000 ") == 1000);
    CHECK(larder_parse_content_length("10, 10") == 10);
    CHECK(larder_parse_content_length("10x00") == -1);
    CHECK(larder_parse_content_length("10, 11") == -1);
    CHECK(larder_parse_content_length("") == -1);
    CHECK(larder_parse_content_length("-1") == -1);
    CHECK(larder_parse_content_length("+5") == -1);
    CHECK(larder_parse_content_length("10,") == -1);
    CHECK(larder_parse_content_length("99999999999999999999") == -1);
    CHECK(larder_parse_content_length("9223372036854775799") == 9223372036854775799LL);

    larder_store_close(st);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    if (failures)
        fprintf(stderr, "test_verify: %d failure(s)\n", failures);
    else
        printf("test_verify: all checks passed\n");
    return failures ? 1 : 0;
}
