/* util.c - small helpers every module shares: clocks, hex and SHA-256 digests, HTTP dates, sizes, files.
 *
 * Everything here is a pure function of its arguments (plus the clock and the file system): no state, no
 * locks, safe from any thread. Digests go through OpenSSL's EVP interface, the same library the fetcher hashes
 * streamed bodies with, so a blob hashed on arrival and re-hashed by fsck always agree. HTTP dates are the
 * RFC 7231 IMF-fixdate form only ("Sun, 06 Nov 1994 08:49:37 GMT"); the parser is given a length rather than
 * a C string because it reads header values straight out of h2o's request buffers, which are not
 * NUL-terminated. Errors are negative errno values, as everywhere in Larder. */
#include <ctype.h>
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t larder_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec;
}

uint64_t larder_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int larder_is_sha256_hex(const char *s)
{
    if (!s)
        return 0;
    for (size_t i = 0; i < 64; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0; /* also stops at the NUL of a short string */
    }
    return s[64] == '\0';
}

void larder_hex(const unsigned char *raw, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static const EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    sha256_md = md ? md : EVP_sha256(); /* kept for the life of the process */
}

const EVP_MD *larder_sha256_md(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_md;
}

int larder_digest_file(const char *path, const EVP_MD *alg, unsigned char *md, unsigned int *mdlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, alg, NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        close(fd);
        return -ENOMEM;
    }
    unsigned char buf[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            rc = -EIO;
            break;
        }
    }
    if (rc == 0 && EVP_DigestFinal_ex(ctx, md, mdlen) != 1)
        rc = -EIO;
    EVP_MD_CTX_free(ctx);
    close(fd);
    return rc;
}

int larder_sha256_file(const char *path, char out[LARDER_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int rc = larder_digest_file(path, larder_sha256_md(), md, &mdlen);
    if (rc == 0 && mdlen != 32)
        rc = -EIO;
    if (rc == 0)
        larder_hex(md, 32, out);
    return rc;
}

int larder_mkdirs(const char *path, int mode)
{
    if (!path || !*path)
        return -EINVAL;
    size_t len = strlen(path);
    char *p = malloc(len + 1);
    if (!p)
        return -ENOMEM;
    memcpy(p, path, len + 1);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    int rc = 0;
    /* create each prefix in turn; a prefix that exists must be a directory */
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) < 0) {
            int e = errno;
            struct stat st;
            if (e != EEXIST) {
                rc = -e;
                break;
            }
            if (stat(p, &st) < 0) {
                rc = -errno;
                break;
            }
            if (!S_ISDIR(st.st_mode)) {
                rc = -ENOTDIR;
                break;
            }
        }
        *s = saved;
        if (saved == '\0')
            break;
        while (s[1] == '/') /* collapse "a//b" */
            s++;
    }
    free(p);
    return rc;
}

char *larder_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    size_t cap = 4096;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX / 2)
        cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    size_t n = 0;
    int e = buf ? 0 : ENOMEM;
    while (!e) {
        if (n + 1 >= cap) { /* keep room for the NUL; files may grow while read (or be in /proc) */
            if (cap > SIZE_MAX / 2) {
                e = EFBIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                e = ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno != EINTR)
                e = errno;
            continue;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (e) {
        free(buf);
        errno = e;
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* The daemon never calls setlocale(), so %a and %b are the English names HTTP requires. */
void larder_http_date(uint64_t t, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    struct tm tm;
    time_t tt = (time_t)t;
    if (t > (uint64_t)253402300799ULL /* 9999-12-31T23:59:59Z: keeps the year four digits */ || !gmtime_r(&tt, &tm))
        return;
    if (strftime(out, outlen, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        out[0] = '\0';
}

static int two_digits(const char *s, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 0;
}

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (memcmp(s, names[i], 3) == 0)
            return i;
    return -1;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT": fixed width, so every offset is known and nothing past len is read */
uint64_t larder_parse_http_date(const char *s, size_t len)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (!s)
        return 0;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    if (len != 29)
        return 0;
    if (s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
        s[22] != ':' || s[25] != ' ' || memcmp(s + 26, "GMT", 3) != 0)
        return 0;
    int wday = name_index(s, days, 7), mon = name_index(s + 8, months, 12);
    int mday, yhi, ylo, hh, mm, ss;
    if (wday < 0 || mon < 0 || two_digits(s + 5, &mday) || two_digits(s + 12, &yhi) || two_digits(s + 14, &ylo) ||
        two_digits(s + 17, &hh) || two_digits(s + 20, &mm) || two_digits(s + 23, &ss))
        return 0;
    int year = yhi * 100 + ylo;
    if (year < 1970 || mday < 1 || mday > 31 || hh > 23 || mm > 59 || ss > 60)
        return 0;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon, .tm_mday = mday, .tm_hour = hh, .tm_min = mm,
                    .tm_sec = ss > 59 ? 59 : ss};
    time_t t = timegm(&tm);
    /* timegm normalises "31 Feb" into March; such a date is not a date */
    if (t < 0 || tm.tm_mon != mon || tm.tm_mday != mday)
        return 0;
    return (uint64_t)t;
}

void larder_format_size(uint64_t n, char *out, size_t outlen)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (!out || outlen == 0)
        return;
    if (n < 1024) {
        snprintf(out, outlen, "%llu B", (unsigned long long)n);
        return;
    }
    int u = 0;
    double v = (double)n;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    char num[32];
    snprintf(num, sizeof(num), "%.1f", v);
    if (strcmp(num, "1024.0") == 0 && u < 6) { /* 1023.95 MiB rounds up: say 1 GiB, not 1024.0 MiB */
        snprintf(num, sizeof(num), "1.0");
        u++;
    }
    size_t l = strlen(num);
    if (l > 2 && memcmp(num + l - 2, ".0", 2) == 0)
        num[l - 2] = '\0';
    snprintf(out, outlen, "%s %s", num, units[u]);
}

/* Shared by every protocol that maps a request path onto an upstream path. */
int larder_path_is_safe(const char *p, size_t len, char *err, size_t errlen)
{
    size_t seg_start = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)p[i] : '/';
        if (c == '/') {
            size_t sl = i - seg_start;
            const char *s = p + seg_start;
            if (sl == 0 && i < len) {
                snprintf(err, errlen, "empty path segment");
                return 0;
            }
            if ((sl == 1 && s[0] == '.') || (sl == 2 && s[0] == '.' && s[1] == '.')) {
                snprintf(err, errlen, "dot segments are not allowed");
                return 0;
            }
            seg_start = i + 1;
            continue;
        }
        if (c < 0x20 || c == 0x7f || c == '\\') {
            snprintf(err, errlen, "control characters and backslashes are not allowed");
            return 0;
        }
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)p[i + 1]) || !isxdigit((unsigned char)p[i + 2])) {
                snprintf(err, errlen, "malformed percent-encoding");
                return 0;
            }
            char hex[3] = {p[i + 1], p[i + 2], 0};
            long v = strtol(hex, NULL, 16);
            if (v == '/' || v == '\\' || v == '.' || v < 0x20 || v == 0x7f || v == '%') {
                snprintf(err, errlen, "encoded '/', '\\', '.', '%%' or control characters are not allowed");
                return 0;
            }
        }
    }
    return 1;
}


int larder_pread_all(int fd, uint64_t len, char **out)
{
    char *buf = malloc(len + 1);
    if (!buf)
        return -1;
    uint64_t off = 0;
    while (off < len) {
        ssize_t r = pread(fd, buf + off, len - off, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            return -1;
        }
        off += (uint64_t)r;
    }
    buf[len] = 0;
    *out = buf;
    return 0;
}

int larder_write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int larder_unhex(const char *hex, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < 2 * n; i++) {
        int c = (unsigned char)hex[i], v = c >= '0' && c <= '9' ? c - '0'
                                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return 0;
}

void larder_path_beside(const char *file, const char *name, char *out, size_t outlen)
{
    const char *slash = strrchr(file, '/');
    if (name[0] == '/' || !slash)
        snprintf(out, outlen, "%s", name);
    else
        snprintf(out, outlen, "%.*s/%s", (int)(slash - file), file, name);
}

int larder_pin_set_name_ok(const char *s, size_t len)
{
    if (len < 1 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}
