/* fuzz_config.c - larder.yaml parser against arbitrary bytes. Besides ASan/UBSan findings (crashes, leaks,
 * over-reads), an accepted config must hold the invariants the rest of the daemon relies on without checking:
 * at least one listener with a valid port, TLS cert and key together, pin and mirror names that are safe path
 * segments, lower-case digests and mirror prefixes ending in '/'. */
#include "config.h"
#include "files.h"
#include "registry.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 128 || s[0] == '.' || strcmp(s, "sha256") == 0)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int url_ok(const char *u)
{
    return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[512];
    err[0] = 'x';
    larder_config_t *cfg = larder_config_parse((const char *)data, size, "fuzz.yaml", err, sizeof(err));
    if (!cfg) {
        if (strncmp(err, "fuzz.yaml", 9) != 0) /* every error names its source */
            abort();
        return 0;
    }
    if (cfg->nlisten < 1 || !cfg->data_dir || !*cfg->data_dir)
        abort();
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const larder_listen_t *l = &cfg->listen[i];
        if (!l->address || l->port < 1 || l->port > 65535 || !l->tls_cert != !l->tls_key)
            abort();
    }
    const larder_files_conf_t *fc = larder_proto_conf(cfg, LARDER_PROTO_FILES);
    for (size_t i = 0; i < fc->npins; i++) {
        const larder_file_pin_t *p = &fc->pins[i];
        if (!name_ok(p->name) || !url_ok(p->url) || (p->sha256 && !larder_is_sha256_hex(p->sha256)))
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(fc->pins[j].name, p->name) == 0)
                abort();
        for (size_t j = 0; j < fc->nmirrors; j++)
            if (strcmp(fc->mirrors[j].name, p->name) == 0)
                abort();
    }
    for (size_t i = 0; i < fc->nmirrors; i++) {
        const larder_file_mirror_t *m = &fc->mirrors[i];
        size_t n = strlen(m->prefix);
        if (!name_ok(m->name) || !url_ok(m->prefix) || m->prefix[n - 1] != '/')
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(fc->mirrors[j].name, m->name) == 0)
                abort();
    }
    for (int p = 0; p < larder_proto_count(); p++)
        if (cfg->proto[p].upstream && !url_ok(cfg->proto[p].upstream))
            abort();
    if (cfg->connect_timeout < 1)
        abort();
    larder_config_free(cfg);
    return 0;
}
