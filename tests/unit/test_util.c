/* test_util.c - digests, HTTP dates, sizes, files, and the stderr log format (one escaped line per call). */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[] = "/tmp/larder-test-util-XXXXXX";

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static void test_hex(void)
{
    const unsigned char raw[] = {0x00, 0x01, 0xab, 0xff};
    char out[9];
    larder_hex(raw, 4, out);
    CHECK(strcmp(out, "0001abff") == 0);
    unsigned char back[4] = {0};
    CHECK(larder_unhex("0001ABff", 4, back) == 0 && memcmp(back, raw, 4) == 0);
    CHECK(larder_unhex("0001abfg", 4, back) < 0);
    CHECK(larder_is_sha256_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(!larder_is_sha256_hex("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
    CHECK(!larder_is_sha256_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"));
    CHECK(!larder_is_sha256_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555"));
    CHECK(!larder_is_sha256_hex("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(!larder_is_sha256_hex(""));
    CHECK(!larder_is_sha256_hex(NULL));
}

static void test_sha256_file(void)
{
    char path[256], hex[LARDER_SHA256_HEX];
    snprintf(path, sizeof(path), "%s/abc", tmpdir);
    write_file(path, "abc", 3);
    CHECK(larder_sha256_file(path, hex) == 0);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);

    snprintf(path, sizeof(path), "%s/empty", tmpdir);
    write_file(path, "", 0);
    CHECK(larder_sha256_file(path, hex) == 0);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);

    /* FIPS 180-2 test vector: one million 'a', several reads */
    size_t n = 1000000;
    char *big = malloc(n);
    CHECK(big != NULL);
    if (big) {
        memset(big, 'a', n);
        snprintf(path, sizeof(path), "%s/million", tmpdir);
        write_file(path, big, n);
        free(big);
        CHECK(larder_sha256_file(path, hex) == 0);
        CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
    }

    snprintf(path, sizeof(path), "%s/missing", tmpdir);
    CHECK(larder_sha256_file(path, hex) == -ENOENT);
    CHECK(larder_sha256_file(tmpdir, hex) == -EISDIR);
}

static void test_files(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/a/b//c/", tmpdir);
    CHECK(larder_mkdirs(path, 0750) == 0);
    struct stat st;
    snprintf(path, sizeof(path), "%s/a/b/c", tmpdir);
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(larder_mkdirs(path, 0750) == 0); /* exists already */
    snprintf(path, sizeof(path), "%s/abc/sub", tmpdir); /* "abc" is a file */
    CHECK(larder_mkdirs(path, 0750) == -ENOTDIR);
    CHECK(larder_mkdirs("", 0750) == -EINVAL);

    size_t len = 99;
    snprintf(path, sizeof(path), "%s/abc", tmpdir);
    char *s = larder_read_file(path, &len);
    CHECK(s && len == 3 && strcmp(s, "abc") == 0);
    free(s);
    snprintf(path, sizeof(path), "%s/empty", tmpdir);
    s = larder_read_file(path, &len);
    CHECK(s && len == 0 && s[0] == '\0');
    free(s);
    snprintf(path, sizeof(path), "%s/million", tmpdir);
    s = larder_read_file(path, NULL);
    CHECK(s && strlen(s) == 1000000);
    free(s);
    snprintf(path, sizeof(path), "%s/missing", tmpdir);
    errno = 0;
    CHECK(larder_read_file(path, &len) == NULL && errno == ENOENT);
    /* a file whose size stat() does not know */
    s = larder_read_file("/proc/self/status", &len);
    CHECK(s && len > 0 && strlen(s) == len && strstr(s, "Name:"));
    free(s);
}

/* the parser gets exactly len bytes with no NUL after them, so ASan catches any over-read */
static uint64_t parse_exact(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n ? n : 1);
    memcpy(p, s, n);
    uint64_t t = larder_parse_http_date(p, n);
    free(p);
    return t;
}

static void test_http_date(void)
{
    char buf[64];
    larder_http_date(784111777, buf, sizeof(buf));
    CHECK(strcmp(buf, "Sun, 06 Nov 1994 08:49:37 GMT") == 0);
    CHECK(parse_exact("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
    larder_http_date(0, buf, sizeof(buf));
    CHECK(strcmp(buf, "Thu, 01 Jan 1970 00:00:00 GMT") == 0);

    static const uint64_t samples[] = {1, 86399, 951782400 /* 2000-02-29 */, 1700000000, 1798761599, 4102444800ULL,
                                       253402300799ULL};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        larder_http_date(samples[i], buf, sizeof(buf));
        CHECK(strlen(buf) == 29);
        CHECK(parse_exact(buf) == samples[i]);
    }
    uint64_t now = larder_now();
    larder_http_date(now, buf, sizeof(buf));
    CHECK(parse_exact(buf) == now);
    /* surrounding whitespace (as in a header value) is tolerated */
    CHECK(parse_exact("  Sun, 06 Nov 1994 08:49:37 GMT ") == 784111777);

    static const char *bad[] = {"",
                                "Sun, 06 Nov 1994 08:49:37",
                                "Sun, 06 Nov 1994 08:49:37 UTC",
                                "Sun, 06 Noe 1994 08:49:37 GMT",
                                "Xyz, 06 Nov 1994 08:49:37 GMT",
                                "Sun, 6 Nov 1994 08:49:37 GMT",
                                "Sun, 00 Nov 1994 08:49:37 GMT",
                                "Sun, 32 Nov 1994 08:49:37 GMT",
                                "Sun, 31 Nov 1994 08:49:37 GMT",
                                "Sun, 29 Feb 1995 08:49:37 GMT",
                                "Sun, 06 Nov 1994 24:49:37 GMT",
                                "Sun, 06 Nov 1994 08:60:37 GMT",
                                "Sun, 06 Nov 1969 08:49:37 GMT",
                                "Sun, 06 Nov 19x4 08:49:37 GMT",
                                "Sun,  06 Nov 1994 08:49:37 GMT",
                                "Sunday, 06-Nov-94 08:49:37 GMT",
                                "Sun Nov  6 08:49:37 1994",
                                "Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Injected: 1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_exact(bad[i]) != 0) {
            fprintf(stderr, "parsed a bad date: '%s'\n", bad[i]);
            failures++;
        }
    }
    CHECK(larder_parse_http_date(NULL, 29) == 0);
    /* a length shorter than the string: only len bytes count */
    CHECK(larder_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 28) == 0);
    /* a too small output buffer yields an empty string, not an overflow */
    char small[10];
    larder_http_date(784111777, small, sizeof(small));
    CHECK(small[0] == '\0');
}

static void test_format_size(void)
{
    char b[32];
    larder_format_size(0, b, sizeof(b));
    CHECK(strcmp(b, "0 B") == 0);
    larder_format_size(1023, b, sizeof(b));
    CHECK(strcmp(b, "1023 B") == 0);
    larder_format_size(1024, b, sizeof(b));
    CHECK(strcmp(b, "1 KiB") == 0);
    larder_format_size(1536, b, sizeof(b));
    CHECK(strcmp(b, "1.5 KiB") == 0);
    larder_format_size(3ULL << 29, b, sizeof(b));
    CHECK(strcmp(b, "1.5 GiB") == 0);
    larder_format_size((1ULL << 30) - 1, b, sizeof(b));
    CHECK(strcmp(b, "1 GiB") == 0);
    larder_format_size(10ULL << 40, b, sizeof(b));
    CHECK(strcmp(b, "10 TiB") == 0);
    larder_format_size(UINT64_MAX, b, sizeof(b));
    CHECK(strcmp(b, "16 EiB") == 0);
    char tiny[4];
    larder_format_size(123456789, tiny, sizeof(tiny));
    CHECK(strlen(tiny) == 3);
}

static void test_clock(void)
{
    uint64_t s = larder_now(), ms = larder_now_ms();
    CHECK(s > 1600000000ULL);
    CHECK(ms / 1000 >= s && ms / 1000 <= s + 1);
}

/* stderr goes to a file for a moment; every call must be exactly one line with controls escaped */
static void test_log(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/log", tmpdir);
    unsetenv("JOURNAL_STREAM");
    unsetenv("NOTIFY_SOCKET");
    setenv("LARDER_LOG_LEVEL", "info", 1);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(saved >= 0 && fd >= 0);
    if (saved < 0 || fd < 0)
        return;
    dup2(fd, 2);
    close(fd);
    larder_log_init();
    larder_log_request("files", "GET", "/files/x", 200, "MISS", 123, 45, "note");
    larder_log_request("files", "GET", "/files/evil\n2026-01-01T00:00:00Z info forged\x1b[31m\\", 404, "-", 0, -1,
                       NULL);
    larder_info("hello %d\nworld", 42);
    larder_log(LARDER_LOG_DEBUG, "debug is filtered at info");
    larder_err("an error");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    size_t len;
    char *out = larder_read_file(path, &len);
    CHECK(out != NULL);
    if (!out)
        return;
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += out[i] == '\n';
    CHECK(lines == 4);
    CHECK(strstr(out, "Z info files GET /files/x 200 MISS bytes=123 upstream_ms=45 note\n") != NULL);
    CHECK(strstr(out, " info files GET /files/evil\\x0a2026-01-01T00:00:00Z info forged\\x1b[31m\\\\ 404 - bytes=0 "
                      "upstream_ms=-\n") != NULL);
    CHECK(strstr(out, " info hello 42\\x0aworld\n") != NULL);
    CHECK(strstr(out, "debug is filtered") == NULL);
    CHECK(strstr(out, " err an error\n") != NULL);
    /* lines start with an ISO 8601 UTC timestamp */
    CHECK(len > 21 && out[4] == '-' && out[10] == 'T' && out[19] == 'Z' && out[20] == ' ');
    free(out);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_hex();
    test_sha256_file();
    test_files();
    test_http_date();
    test_format_size();
    test_clock();
    test_log();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    if (failures) {
        fprintf(stderr, "test_util: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_util: ok\n");
    return 0;
}
