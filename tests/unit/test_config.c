/* test_config.c - larder.yaml: defaults, every key, and every class of error with its line number and key. */
#include "config.h"
#include "files.h"
#include "npm.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* the files and npm modules' own sections */
#define FILES_CONF(c) ((const larder_files_conf_t *)larder_proto_conf((c), LARDER_PROTO_FILES))
#define NPM_CONF(c) ((const larder_npm_conf_t *)larder_proto_conf((c), LARDER_PROTO_NPM))

static larder_config_t *parse(const char *yaml, char *err, size_t errlen)
{
    return larder_config_parse(yaml, strlen(yaml), "larder.yaml", err, errlen);
}

/* the text must be refused with a message containing every given fragment */
static void expect_error_at(int line, const char *yaml, const char *frag1, const char *frag2)
{
    char err[512] = "";
    larder_config_t *cfg = parse(yaml, err, sizeof(err));
    char want[64];
    snprintf(want, sizeof(want), "larder.yaml:%d: ", line);
    int ok = !cfg && strncmp(err, want, strlen(want)) == 0 && strstr(err, frag1) && (!frag2 || strstr(err, frag2));
    if (!ok) {
        fprintf(stderr, "expected an error at line %d containing '%s'%s%s%s\n  yaml: %s\n  got: %s\n", line, frag1, frag2 ? " and '" : "", frag2 ? frag2 : "", frag2 ? "'" : "", yaml,
                cfg ? "(accepted)" : err);
        failures++;
    }
    larder_config_free(cfg);
}
#define EXPECT_ERROR(line, yaml, f1, f2)                                                                               \
    do {                                                                                                               \
        int before = failures;                                                                                         \
        expect_error_at(line, yaml, f1, f2);                                                                           \
        if (failures != before)                                                                                        \
            fprintf(stderr, "  (from %s:%d)\n", __FILE__, __LINE__);                                                   \
    } while (0)

static void test_sizes(void)
{
    uint64_t v;
    CHECK(larder_parse_size("0", &v) == 0 && v == 0);
    CHECK(larder_parse_size("1000", &v) == 0 && v == 1000);
    CHECK(larder_parse_size("10B", &v) == 0 && v == 10);
    CHECK(larder_parse_size("1K", &v) == 0 && v == 1024);
    CHECK(larder_parse_size("1k", &v) == 0 && v == 1024);
    CHECK(larder_parse_size("1KiB", &v) == 0 && v == 1024);
    CHECK(larder_parse_size("1kb", &v) == 0 && v == 1000);
    CHECK(larder_parse_size("512M", &v) == 0 && v == 512ULL << 20);
    CHECK(larder_parse_size("512MB", &v) == 0 && v == 512000000ULL);
    CHECK(larder_parse_size("3mib", &v) == 0 && v == 3ULL << 20);
    CHECK(larder_parse_size("10GiB", &v) == 0 && v == 10ULL << 30);
    CHECK(larder_parse_size("10G", &v) == 0 && v == 10ULL << 30);
    CHECK(larder_parse_size("10GB", &v) == 0 && v == 10000000000ULL);
    CHECK(larder_parse_size("2T", &v) == 0 && v == 2ULL << 40);
    CHECK(larder_parse_size("2TB", &v) == 0 && v == 2000000000000ULL);
    CHECK(larder_parse_size("2TiB", &v) == 0 && v == 2ULL << 40);
    CHECK(larder_parse_size("10 GiB", &v) == 0 && v == 10ULL << 30);
    CHECK(larder_parse_size("18446744073709551615", &v) == 0 && v == UINT64_MAX);
    CHECK(larder_parse_size("18446744073709551616", &v) < 0);
    CHECK(larder_parse_size("16777216T", &v) < 0); /* 2^64 */
    CHECK(larder_parse_size("16777215T", &v) == 0 && v == 16777215ULL << 40);
    CHECK(larder_parse_size("", &v) < 0);
    CHECK(larder_parse_size("G", &v) < 0);
    CHECK(larder_parse_size("-1", &v) < 0);
    CHECK(larder_parse_size("+1", &v) < 0);
    CHECK(larder_parse_size("1.5G", &v) < 0);
    CHECK(larder_parse_size("10XB", &v) < 0);
    CHECK(larder_parse_size("10 ", &v) < 0);
    CHECK(larder_parse_size(" 10", &v) < 0);
    CHECK(larder_parse_size("10GiBs", &v) < 0);
    CHECK(larder_parse_size("1P", &v) < 0);
    CHECK(larder_parse_size(NULL, &v) < 0);
}

static void test_durations(void)
{
    uint64_t v;
    CHECK(larder_parse_duration("0", &v) == 0 && v == 0);
    CHECK(larder_parse_duration("30", &v) == 0 && v == 30);
    CHECK(larder_parse_duration("30s", &v) == 0 && v == 30);
    CHECK(larder_parse_duration("10m", &v) == 0 && v == 600);
    CHECK(larder_parse_duration("1h", &v) == 0 && v == 3600);
    CHECK(larder_parse_duration("2d", &v) == 0 && v == 172800);
    CHECK(larder_parse_duration("1w", &v) == 0 && v == 604800);
    CHECK(larder_parse_duration("1H", &v) == 0 && v == 3600);
    CHECK(larder_parse_duration("18446744073709551615", &v) == 0 && v == UINT64_MAX);
    CHECK(larder_parse_duration("18446744073709551615m", &v) < 0);
    CHECK(larder_parse_duration("30500568904944w", &v) < 0); /* just over 2^64 seconds */
    CHECK(larder_parse_duration("99999999999999999999", &v) < 0);
    CHECK(larder_parse_duration("", &v) < 0);
    CHECK(larder_parse_duration("m", &v) < 0);
    CHECK(larder_parse_duration("1y", &v) < 0);
    CHECK(larder_parse_duration("1ms", &v) < 0);
    CHECK(larder_parse_duration("-5s", &v) < 0);
    CHECK(larder_parse_duration("1.5h", &v) < 0);
    CHECK(larder_parse_duration("10 m", &v) < 0);
}

static void test_proto_names(void)
{
    static const char *names[] = {"files", "pypi", "npm", "apt", "gems", "oci", "git"};
    for (int i = 0; i < LARDER_NPROTO; i++) {
        CHECK(strcmp(larder_proto_name(i), names[i]) == 0);
        CHECK(larder_proto_from_name(names[i]) == i);
    }
    CHECK(larder_proto_name(-1) == NULL);
    CHECK(larder_proto_name(LARDER_NPROTO) == NULL);
    CHECK(larder_proto_from_name("FILES") == -1);
    CHECK(larder_proto_from_name("") == -1);
    CHECK(larder_proto_from_name(NULL) == -1);
}

static void check_defaults(const larder_config_t *cfg)
{
    CHECK(cfg->nlisten == 1 && strcmp(cfg->listen[0].address, "0.0.0.0") == 0 && cfg->listen[0].port == 3142);
    CHECK(cfg->listen[0].tls_cert == NULL && cfg->listen[0].tls_key == NULL);
    CHECK(strcmp(cfg->data_dir, "./larder-data") == 0);
    CHECK(cfg->offline == 0 && cfg->threads == 0 && cfg->quota_total == 0);
    CHECK(cfg->min_free == 1ULL << 30);
    CHECK(cfg->admin_token == NULL && cfg->upstream_proxy == NULL);
    CHECK(cfg->connect_timeout == 10 && cfg->idle_timeout == 60 && cfg->max_object_size == 0);
    CHECK(cfg->verify_on_read == 1);
    CHECK(cfg->verify_interval == 600);
    CHECK(cfg->proto[LARDER_PROTO_FILES].ttl == 86400);
    CHECK(cfg->proto[LARDER_PROTO_PYPI].ttl == 600);
    CHECK(cfg->proto[LARDER_PROTO_NPM].ttl == 600);
    CHECK(cfg->proto[LARDER_PROTO_APT].ttl == 1800);
    CHECK(cfg->proto[LARDER_PROTO_GEMS].ttl == 600);
    CHECK(cfg->proto[LARDER_PROTO_OCI].ttl == 3600);
    CHECK(cfg->proto[LARDER_PROTO_FILES].upstream == NULL);
    CHECK(cfg->proto[LARDER_PROTO_APT].upstream == NULL);
    CHECK(strcmp(cfg->proto[LARDER_PROTO_PYPI].upstream, "https://pypi.org/simple/") == 0);
    CHECK(strcmp(cfg->proto[LARDER_PROTO_NPM].upstream, "https://registry.npmjs.org/") == 0);
    CHECK(strcmp(cfg->proto[LARDER_PROTO_GEMS].upstream, "https://rubygems.org/") == 0);
    CHECK(strcmp(cfg->proto[LARDER_PROTO_OCI].upstream, "https://registry-1.docker.io/") == 0);
    for (int p = 0; p < LARDER_NPROTO; p++)
        CHECK(cfg->proto[p].enabled == 1 && cfg->proto[p].quota == 0);
    CHECK(FILES_CONF(cfg)->npins == 0 && FILES_CONF(cfg)->nmirrors == 0);
}

static void test_defaults(void)
{
    char err[512];
    larder_config_t *cfg = parse("", err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg) {
        check_defaults(cfg);
        CHECK(strcmp(cfg->source, "larder.yaml") == 0);
    }
    larder_config_free(cfg);

    cfg = parse("# only a comment\n", err, sizeof(err));
    CHECK(cfg != NULL);
    larder_config_free(cfg);
    cfg = parse("---\n...\n", err, sizeof(err));
    CHECK(cfg != NULL);
    larder_config_free(cfg);
    cfg = parse("~\n", err, sizeof(err));
    CHECK(cfg != NULL);
    larder_config_free(cfg);

    /* the embedded default says the same as the built-in defaults */
    cfg = larder_config_load(NULL, err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg) {
        check_defaults(cfg);
        CHECK(strcmp(cfg->source, "<default>") == 0);
    }
    larder_config_free(cfg);

    /* empty sections keep their defaults */
    cfg = parse("files:\npypi: ~\nquota: {}\n", err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg)
        check_defaults(cfg);
    larder_config_free(cfg);
}

static void test_full(void)
{
    static const char yaml[] =
        "# a full configuration\n"
        "listen:\n"
        "  - address: 127.0.0.1\n"
        "    port: 8080\n"
        "  - address: '::'\n"
        "    port: 8443\n"
        "    tls: {cert: /etc/larder/cert.pem, key: /etc/larder/key.pem}\n"
        "  - port: 9000\n"
        "data_dir: /var/lib/larder\n"
        "offline: yes\n"
        "threads: 4\n"
        "quota:\n"
        "  total: 200GiB\n"
        "  min_free: 5G\n"
        "admin:\n"
        "  token: s3cret-token\n"
        "upstream_proxy: http://proxy.example:3128\n"
        "timeouts: {connect: 5s, idle: 2m}\n"
        "max_object_size: 4GB\n"
        "store: {verify_on_read: false, verify_interval: 0s}\n"
        "files:\n"
        "  enabled: true\n"
        "  quota: 50GiB\n"
        "  ttl: 2d\n"
        "  upstream: https://files.example/base\n"
        "  pins:\n"
        "    - name: node-v20.tar.xz\n"
        "      url: https://nodejs.org/dist/v20.11.1/node-v20.11.1-linux-x64.tar.xz\n"
        "      sha256: 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789ABCDEF\n"
        "    - {name: plain_file-1, url: 'http://example.org/a?b=c'}\n"
        "  mirrors:\n"
        "    - {name: nodejs, url: https://nodejs.org/dist}\n"
        "    - {name: python, url: 'https://www.python.org/ftp/python/'}\n"
        "pypi: {enabled: no, ttl: 15m, upstream: 'https://mirror.example/simple'}\n"
        "npm: {quota: 1TB}\n"
        "apt: {upstream: 'http://deb.debian.org/debian/', ttl: 1h}\n"
        "gems: {enabled: false}\n"
        "oci: {upstream: ~}\n";
    char err[512];
    larder_config_t *cfg = parse(yaml, err, sizeof(err));
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "  error: %s\n", err);
        return;
    }
    CHECK(cfg->nlisten == 3);
    CHECK(strcmp(cfg->listen[0].address, "127.0.0.1") == 0 && cfg->listen[0].port == 8080 && !cfg->listen[0].tls_cert);
    CHECK(strcmp(cfg->listen[1].address, "::") == 0 && cfg->listen[1].port == 8443);
    CHECK(cfg->listen[1].tls_cert && strcmp(cfg->listen[1].tls_cert, "/etc/larder/cert.pem") == 0);
    CHECK(cfg->listen[1].tls_key && strcmp(cfg->listen[1].tls_key, "/etc/larder/key.pem") == 0);
    CHECK(strcmp(cfg->listen[2].address, "0.0.0.0") == 0 && cfg->listen[2].port == 9000);
    CHECK(strcmp(cfg->data_dir, "/var/lib/larder") == 0);
    CHECK(cfg->offline == 1 && cfg->threads == 4);
    CHECK(cfg->quota_total == 200ULL << 30 && cfg->min_free == 5ULL << 30);
    CHECK(cfg->admin_token && strcmp(cfg->admin_token, "s3cret-token") == 0);
    CHECK(cfg->upstream_proxy && strcmp(cfg->upstream_proxy, "http://proxy.example:3128") == 0);
    CHECK(cfg->connect_timeout == 5 && cfg->idle_timeout == 120);
    CHECK(cfg->max_object_size == 4000000000ULL);
    CHECK(cfg->verify_on_read == 0);
    CHECK(cfg->verify_interval == 0);
    const larder_proto_config_t *f = &cfg->proto[LARDER_PROTO_FILES];
    CHECK(f->enabled == 1 && f->quota == 50ULL << 30 && f->ttl == 172800);
    CHECK(f->upstream && strcmp(f->upstream, "https://files.example/base/") == 0);
    CHECK(FILES_CONF(cfg)->npins == 2);
    if (FILES_CONF(cfg)->npins == 2) {
        CHECK(strcmp(FILES_CONF(cfg)->pins[0].name, "node-v20.tar.xz") == 0);
        CHECK(strcmp(FILES_CONF(cfg)->pins[0].url, "https://nodejs.org/dist/v20.11.1/node-v20.11.1-linux-x64.tar.xz") == 0);
        CHECK(FILES_CONF(cfg)->pins[0].sha256 &&
              strcmp(FILES_CONF(cfg)->pins[0].sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") == 0);
        CHECK(strcmp(FILES_CONF(cfg)->pins[1].name, "plain_file-1") == 0 && strcmp(FILES_CONF(cfg)->pins[1].url, "http://example.org/a?b=c") == 0);
        CHECK(FILES_CONF(cfg)->pins[1].sha256 == NULL);
    }
    CHECK(FILES_CONF(cfg)->nmirrors == 2);
    if (FILES_CONF(cfg)->nmirrors == 2) {
        CHECK(strcmp(FILES_CONF(cfg)->mirrors[0].name, "nodejs") == 0 && strcmp(FILES_CONF(cfg)->mirrors[0].prefix, "https://nodejs.org/dist/") == 0);
        CHECK(strcmp(FILES_CONF(cfg)->mirrors[1].prefix, "https://www.python.org/ftp/python/") == 0);
    }
    CHECK(cfg->proto[LARDER_PROTO_PYPI].enabled == 0 && cfg->proto[LARDER_PROTO_PYPI].ttl == 900);
    CHECK(strcmp(cfg->proto[LARDER_PROTO_PYPI].upstream, "https://mirror.example/simple/") == 0);
    CHECK(cfg->proto[LARDER_PROTO_NPM].quota == 1000000000000ULL && cfg->proto[LARDER_PROTO_NPM].ttl == 600);
    CHECK(strcmp(cfg->proto[LARDER_PROTO_APT].upstream, "http://deb.debian.org/debian/") == 0);
    CHECK(cfg->proto[LARDER_PROTO_APT].ttl == 3600);
    CHECK(cfg->proto[LARDER_PROTO_GEMS].enabled == 0);
    CHECK(cfg->proto[LARDER_PROTO_OCI].upstream == NULL);
    larder_config_free(cfg);

    /* flow style and booleans in every spelling */
    cfg = parse("{offline: True, data_dir: \"/srv/larder\", files: {enabled: NO}}", err, sizeof(err));
    CHECK(cfg && cfg->offline == 1 && cfg->proto[0].enabled == 0 && strcmp(cfg->data_dir, "/srv/larder") == 0);
    larder_config_free(cfg);
    cfg = parse("offline: off\nadmin: {token: ~}\nupstream_proxy: socks5h://127.0.0.1:1080\n", err, sizeof(err));
    CHECK(cfg && cfg->offline == 0 && cfg->admin_token == NULL);
    CHECK(cfg && strcmp(cfg->upstream_proxy, "socks5h://127.0.0.1:1080") == 0);
    larder_config_free(cfg);
    cfg = parse("timeouts: {idle: 0}\nfiles: {ttl: 0}\nlisten: [{port: 1}, {port: 65535}]\n", err, sizeof(err));
    CHECK(cfg && cfg->idle_timeout == 0 && cfg->proto[0].ttl == 0 && cfg->nlisten == 2 && cfg->listen[1].port == 65535);
    larder_config_free(cfg);
    /* an anchor used once is harmless */
    cfg = parse("data_dir: &d /srv/x\n", err, sizeof(err));
    CHECK(cfg && strcmp(cfg->data_dir, "/srv/x") == 0);
    larder_config_free(cfg);
}

static void test_npm_keys(void)
{
    char err[512];
    larder_config_t *cfg = parse("listen:\n  - port: 3142\n  - port: 4873\n    protocol: npm\n"
                                 "npm:\n  public_url: https://larder.example/npm/\n",
                                 err, sizeof(err));
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK(cfg->nlisten == 2 && cfg->listen[0].protocol == -1 && cfg->listen[1].protocol == LARDER_PROTO_NPM);
    CHECK(NPM_CONF(cfg)->public_url && !strcmp(NPM_CONF(cfg)->public_url,
                                                              "https://larder.example/npm"));
    larder_config_free(cfg);
    cfg = parse("offline: false\n", err, sizeof(err));
    CHECK(cfg && cfg->listen[0].protocol == -1 && !NPM_CONF(cfg)->public_url);
    larder_config_free(cfg);
}

static void test_errors(void)
{
    /* unknown and duplicate keys */
    EXPECT_ERROR(3, "data_dir: /x\nfiles:\n  quotaa: 1G\n", "unknown key 'quotaa' in 'files'", NULL);
    EXPECT_ERROR(2, "offline: true\nofline: true\n", "unknown top-level key 'ofline'", NULL);
    EXPECT_ERROR(3, "data_dir: /a\noffline: no\ndata_dir: /b\n", "duplicate key 'data_dir'", NULL);
    EXPECT_ERROR(3, "files:\n  ttl: 1h\n  ttl: 2h\n", "duplicate key 'ttl' in 'files'", NULL);
    EXPECT_ERROR(2, "quota:\n  totl: 1G\n", "unknown key 'totl' in 'quota'", NULL);
    EXPECT_ERROR(2, "timeouts:\n  read: 1s\n", "unknown key 'read' in 'timeouts'", NULL);
    EXPECT_ERROR(2, "admin:\n  password: x\n", "unknown key 'password' in 'admin'", NULL);
    EXPECT_ERROR(3, "listen:\n  - port: 1\n    host: x\n", "unknown key 'host' in 'listen[0]'", NULL);
    EXPECT_ERROR(3, "listen:\n  - port: 1\n    tls: {cert: a, key: b, ca: c}\n", "unknown key 'ca' in 'listen[0].tls'",
                 NULL);
    EXPECT_ERROR(2, "pypi:\n  pins: []\n", "unknown key 'pins' in 'pypi'", NULL);
    EXPECT_ERROR(2, "pypi:\n  public_url: http://x/\n", "unknown key 'public_url' in 'pypi'", NULL);
    EXPECT_ERROR(2, "npm:\n  public_url: ftp://x/\n", "npm.public_url", "not an http");
    EXPECT_ERROR(3, "listen:\n  - port: 1\n    protocol: gopher\n", "unknown protocol 'gopher'", NULL);
    EXPECT_ERROR(4, "files:\n  pins:\n    - name: a\n      urll: http://x/\n", "unknown key 'urll' in 'files.pins[0]'",
                 NULL);
    EXPECT_ERROR(4, "files:\n  mirrors:\n    - name: a\n      prefix: http://x/\n",
                 "unknown key 'prefix' in 'files.mirrors[0]'", NULL);
    EXPECT_ERROR(1, "? [a, b]\n: 1\n", "keys must be plain words", NULL);
    EXPECT_ERROR(1, "\"bad\\nkey\": 1\n", "unknown top-level key 'bad\\x0akey'", NULL);

    /* wrong types */
    EXPECT_ERROR(1, "- a\n- b\n", "top level must be a mapping", NULL);
    EXPECT_ERROR(1, "just a string\n", "top level must be a mapping", NULL);
    EXPECT_ERROR(2, "data_dir: /x\noffline: maybe\n", "key 'offline'", "true or false");
    EXPECT_ERROR(1, "offline: [true]\n", "key 'offline'", "got a list");
    EXPECT_ERROR(1, "threads: four\n", "key 'threads'", "whole number");
    EXPECT_ERROR(1, "threads: -1\n", "key 'threads'", NULL);
    EXPECT_ERROR(1, "threads: 100000\n", "key 'threads'", "out of range");
    EXPECT_ERROR(1, "data_dir: {a: b}\n", "key 'data_dir'", "got a mapping");
    EXPECT_ERROR(1, "data_dir: ''\n", "key 'data_dir'", "empty");
    EXPECT_ERROR(1, "data_dir: ~\n", "key 'data_dir'", "needs a value");
    EXPECT_ERROR(1, "data_dir: \"a\\0b\"\n", "key 'data_dir'", "NUL");
    EXPECT_ERROR(1, "data_dir: \"a\\tb\"\n", "key 'data_dir'", "control character");
    EXPECT_ERROR(1, "files: [a]\n", "key 'files'", "expected a mapping");
    EXPECT_ERROR(1, "quota: 10G\n", "key 'quota'", "expected a mapping");
    EXPECT_ERROR(1, "listen: {port: 1}\n", "key 'listen'", "list");
    EXPECT_ERROR(1, "listen: []\n", "key 'listen'", "at least one");
    EXPECT_ERROR(2, "listen:\n  - 3142\n", "key 'listen[0]'", "mapping");
    EXPECT_ERROR(2, "files:\n  pins: {name: a}\n", "key 'files.pins'", "list");
    EXPECT_ERROR(3, "files:\n  pins:\n    - a\n", "key 'files.pins[0]'", "mapping");
    EXPECT_ERROR(2, "files:\n  mirrors: nodejs\n", "key 'files.mirrors'", "list");
    EXPECT_ERROR(2, "files:\n  enabled: 1\n", "key 'files.enabled'", "true or false");
    EXPECT_ERROR(1, "admin: {token: ''}\n", "key 'admin.token'", "empty");
    EXPECT_ERROR(1, "admin: {token: [a]}\n", "key 'admin.token'", NULL);

    /* sizes and durations */
    EXPECT_ERROR(3, "quota:\n  min_free: 1G\n  total: 10XB\n", "key 'quota.total'", "'10XB' is not a size");
    EXPECT_ERROR(2, "files:\n  quota: 1.5G\n", "key 'files.quota'", "not a size");
    EXPECT_ERROR(1, "max_object_size: 99999999999999999999\n", "key 'max_object_size'", "not a size");
    EXPECT_ERROR(1, "max_object_size: 20000000T\n", "key 'max_object_size'", "not a size");
    EXPECT_ERROR(2, "store:\n  verify_on_read: maybe\n", "key 'store.verify_on_read'", "");
    EXPECT_ERROR(2, "npm:\n  ttl: 10y\n", "key 'npm.ttl'", "not a duration");
    EXPECT_ERROR(2, "npm:\n  ttl: 99999999999w\n", "key 'npm.ttl'", "too long");
    EXPECT_ERROR(1, "timeouts: {connect: 0}\n", "key 'timeouts.connect'", "at least 1s");
    EXPECT_ERROR(1, "timeouts: {connect: 2d}\n", "key 'timeouts.connect'", "too long");
    EXPECT_ERROR(1, "timeouts: {idle: soon}\n", "key 'timeouts.idle'", "not a duration");

    /* listeners */
    EXPECT_ERROR(3, "listen:\n  - address: 0.0.0.0\n    port: 0\n", "key 'listen[0].port'", "out of range");
    EXPECT_ERROR(3, "listen:\n  - port: 1\n  - port: 65536\n", "key 'listen[1].port'", "out of range");
    EXPECT_ERROR(2, "listen:\n  - port: http\n", "key 'listen[0].port'", "whole number");
    EXPECT_ERROR(3, "listen:\n  - port: 443\n    tls: {cert: /c.pem}\n", "key 'listen[0].tls'", "cert given without key");
    EXPECT_ERROR(3, "listen:\n  - port: 443\n    tls: {key: /k.pem}\n", "key 'listen[0].tls'", "key given without cert");
    EXPECT_ERROR(2, "listen:\n  - address: 'a b'\n", "key 'listen[0].address'", NULL);

    /* pins and mirrors */
    EXPECT_ERROR(4, "files:\n  pins:\n    - name: a\n      url: ftp://x/a\n", "key 'files.pins[0].url'", "http://");
    EXPECT_ERROR(4, "files:\n  pins:\n    - name: a\n      url: https:///a\n", "key 'files.pins[0].url'", "no host");
    EXPECT_ERROR(4, "files:\n  pins:\n    - name: a\n      url: 'https://x/a b'\n", "key 'files.pins[0].url'", "space");
    EXPECT_ERROR(3, "files:\n  pins:\n    - name: a/b\n      url: https://x/a\n", "key 'files.pins[0].name'",
                 "not a valid name");
    EXPECT_ERROR(3, "files:\n  pins:\n    - name: sha256\n      url: https://x/a\n", "key 'files.pins[0].name'",
                 "not a valid name");
    EXPECT_ERROR(3, "files:\n  pins:\n    - name: .hidden\n      url: https://x/a\n", "key 'files.pins[0].name'",
                 "not a valid name");
    EXPECT_ERROR(3, "files:\n  pins:\n    - name: '..'\n      url: https://x/a\n", "key 'files.pins[0].name'", NULL);
    EXPECT_ERROR(3, "files:\n  mirrors:\n    - name: 'a b'\n      url: https://x/\n", "key 'files.mirrors[0].name'",
                 "not a valid name");
    EXPECT_ERROR(3,
                 "files:\n  pins:\n    - name: "
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaa\n      url: https://x/a\n",
                 "key 'files.pins[0].name'", "not a valid name");
    EXPECT_ERROR(5, "files:\n  pins:\n    - name: a\n      url: https://x/a\n      sha256: 1234\n",
                 "key 'files.pins[0].sha256'", "64 hex");
    EXPECT_ERROR(5,
                 "files:\n  pins:\n    - name: a\n      url: https://x/a\n"
                 "      sha256: g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
                 "key 'files.pins[0].sha256'", "64 hex");
    EXPECT_ERROR(3, "files:\n  pins:\n    - {name: a}\n", "key 'files.pins[0]'", "'url' is required");
    EXPECT_ERROR(3, "files:\n  pins:\n    - {url: 'https://x/a'}\n", "key 'files.pins[0]'", "'name' is required");
    EXPECT_ERROR(3, "files:\n  mirrors:\n    - {name: m}\n", "key 'files.mirrors[0]'", "'url' is required");
    EXPECT_ERROR(4, "files:\n  pins:\n    - {name: a, url: 'https://x/a'}\n    - {name: a, url: 'https://x/b'}\n",
                 "key 'files.pins[1].name'", "already used by files.pins[0]");
    EXPECT_ERROR(5,
                 "files:\n  mirrors:\n    - {name: a, url: 'https://x/'}\n  pins:\n"
                 "    - {name: a, url: 'https://x/b'}\n",
                 "key 'files.pins[0].name'", "already used by files.mirrors[0]");
    EXPECT_ERROR(4, "files:\n  pins:\n    - {name: a, url: 'https://x/a'}\n  mirrors: [{name: a, url: 'https://y/'}]\n",
                 "key 'files.mirrors[0].name'", "already used by files.pins[0]");
    EXPECT_ERROR(2, "pypi:\n  upstream: pypi.org/simple\n", "key 'pypi.upstream'", "http://");
    EXPECT_ERROR(1, "upstream_proxy: proxy:3128\n", "key 'upstream_proxy'", "not a proxy URL");

    /* YAML itself */
    EXPECT_ERROR(4, "data_dir: /x\nfiles:\n  ttl: [1h\n", "YAML syntax error", "flow sequence on line 3");
    EXPECT_ERROR(2, "files:\n\tttl: 1h\n", "YAML syntax error", NULL);
    EXPECT_ERROR(2, "data_dir: /x\n  offline: yes\n", "YAML syntax error", NULL);
    EXPECT_ERROR(3, "data_dir: /x\n---\noffline: yes\n", "only one YAML document", NULL);
    EXPECT_ERROR(2, "data_dir: &a /x\nfiles: {upstream: *a}\n", "aliases", NULL);
    EXPECT_ERROR(1, "a: &x [*x]\nb: *x\n", "unknown top-level key 'a'", NULL);
    {
        char err[512];
        larder_config_t *cfg = parse("data_dir: \"\xff\xfe\"\n", err, sizeof(err));
        CHECK(cfg == NULL && strstr(err, "larder.yaml") && strstr(err, "UTF-8"));
        larder_config_free(cfg);
    }
}

static void test_load(void)
{
    char err[512];
    larder_config_t *cfg = larder_config_load("/nonexistent/larder.yaml", err, sizeof(err));
    CHECK(cfg == NULL && strstr(err, "/nonexistent/larder.yaml") && strstr(err, "No such file"));
    char path[] = "/tmp/larder-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    static const char text[] = "data_dir: /srv/larder\nthreads: 2\nfiles:\n  ttll: 1h\n";
    CHECK(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
    close(fd);
    cfg = larder_config_load(path, err, sizeof(err));
    char want[128];
    snprintf(want, sizeof(want), "%s:4: unknown key 'ttll' in 'files'", path);
    CHECK(cfg == NULL && strcmp(err, want) == 0);
    unlink(path);
    /* a tiny error buffer truncates, never overflows; no buffer at all is allowed too */
    char small[8];
    cfg = parse("bogus: 1\n", small, sizeof(small));
    CHECK(cfg == NULL && strlen(small) == 7);
    cfg = parse("bogus: 1\n", NULL, 0);
    CHECK(cfg == NULL);
    cfg = larder_config_parse(NULL, 0, NULL, err, sizeof(err));
    CHECK(cfg != NULL && strcmp(cfg->source, "<string>") == 0);
    larder_config_free(cfg);
    larder_config_free(NULL);
}

/* write TEXT to a fresh temporary file; its name into PATH (a mkstemp template) */
static int write_temp(char *path, const char *text)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    return ok ? 0 : -1;
}

/* admin.token_file (the Debian package's generated token, issue 15) */
static void test_token_file(void)
{
    char err[512], tok[] = "/tmp/larder-test-token-XXXXXX", conf[] = "/tmp/larder-test-config-XXXXXX";
    CHECK(write_temp(tok, "  s3cr3t-token \r\nsecond line\n") == 0);
    char text[256];
    snprintf(text, sizeof(text), "admin:\n  token_file: %s\n", tok);
    CHECK(write_temp(conf, text) == 0);
    larder_config_t *cfg = larder_config_load(conf, err, sizeof(err));
    CHECK(cfg && cfg->admin_token && strcmp(cfg->admin_token, "s3cr3t-token") == 0);
    larder_config_free(cfg);
    /* admin.token wins over the file */
    snprintf(text, sizeof(text), "admin:\n  token: inline\n  token_file: %s\n", tok);
    unlink(conf);
    strcpy(conf, "/tmp/larder-test-config-XXXXXX");
    CHECK(write_temp(conf, text) == 0);
    cfg = larder_config_load(conf, err, sizeof(err));
    CHECK(cfg && cfg->admin_token && strcmp(cfg->admin_token, "inline") == 0);
    larder_config_free(cfg);
    /* an empty (or blank) file: no token */
    unlink(tok);
    strcpy(tok, "/tmp/larder-test-token-XXXXXX");
    CHECK(write_temp(tok, " \n") == 0);
    snprintf(text, sizeof(text), "admin:\n  token_file: %s\n", tok);
    unlink(conf);
    strcpy(conf, "/tmp/larder-test-config-XXXXXX");
    CHECK(write_temp(conf, text) == 0);
    cfg = larder_config_load(conf, err, sizeof(err));
    CHECK(cfg && cfg->admin_token == NULL);
    larder_config_free(cfg);
    /* a missing file is an error naming the key and the file */
    unlink(tok);
    cfg = larder_config_load(conf, err, sizeof(err));
    CHECK(cfg == NULL && strstr(err, "admin.token_file") && strstr(err, tok) && strstr(err, "No such file"));
    unlink(conf);
}

/* limits: request bodies (issue 10 item 12) */
static void test_limits(void)
{
    char err[512];
    larder_config_t *cfg = parse("", err, sizeof(err));
    CHECK(cfg && cfg->body_max == (64ULL << 10) && cfg->seed_spec_max == (16ULL << 20) &&
          cfg->bodies_total == (64ULL << 20));
    larder_config_free(cfg);
    cfg = parse("limits:\n  request_body: 8KiB\n  seed_spec: 1MiB\n  request_bodies: 3MiB\n", err, sizeof(err));
    CHECK(cfg && cfg->body_max == 8192 && cfg->seed_spec_max == 1 << 20 && cfg->bodies_total == 3 << 20);
    larder_config_free(cfg);
    cfg = parse("limits:\n", err, sizeof(err));
    CHECK(cfg && cfg->seed_spec_max == (16ULL << 20));
    larder_config_free(cfg);
    EXPECT_ERROR(2, "limits:\n  seed_spec: 32MiB\n  request_bodies: 16MiB\n", "key 'limits.seed_spec'", "do not fit in limits.request_bodies");
    EXPECT_ERROR(2, "limits:\n  seed_spec: 0\n", "key 'limits.seed_spec'", "at least 1 byte");
    EXPECT_ERROR(2, "limits:\n  request_body: 2GiB\n", "key 'limits.request_body'", "at most 1GiB");
    EXPECT_ERROR(2, "limits:\n  request_bodies: lots\n", "key 'limits.request_bodies'", "not a size");
    EXPECT_ERROR(2, "limits:\n  body: 1\n", "unknown key 'body' in 'limits'", NULL);
}

int main(void)
{
    test_sizes();
    test_durations();
    test_proto_names();
    test_defaults();
    test_full();
    test_errors();
    test_npm_keys();
    test_load();
    test_token_file();
    test_limits();
    if (failures) {
        fprintf(stderr, "test_config: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_config: ok\n");
    return 0;
}
