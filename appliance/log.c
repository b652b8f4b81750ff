/* log.c - where log lines go: journald with structured fields under systemd, one line on stderr otherwise.
 *
 * The choice is made once (larder_log_init, or lazily by the first line) and never changes: journald when the
 * service manager says so (NOTIFY_SOCKET for Type=notify, or JOURNAL_STREAM naming the very stream stderr is
 * connected to - a shell started from a unit inherits JOURNAL_STREAM but may have redirected stderr to a file,
 * and its lines belong in that file) and journald's socket exists (sd_journal_send drops lines silently
 * without it). LARDER_LOG_LEVEL (err|warn|info|debug) sets the threshold. That is the only state, written once
 * under pthread_once and read-only afterwards, so any thread may log.
 *
 * A line is formatted completely into a stack buffer and written with one call, so lines from different threads
 * never interleave. Everything that can come from outside (request paths, upstream error text) is escaped:
 * control bytes, bytes >= 0x7f and the backslash become \xNN / \\, so one request can never forge a second line
 * or drive a terminal. Request lines carry protocol, cache status, bytes and upstream time as journal fields
 * (LARDER_PROTOCOL, LARDER_CACHE, LARDER_STATUS, LARDER_BYTES, LARDER_UPSTREAM_MS, LARDER_PATH). */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192

static struct {
    int journal;
    int threshold;
} log_conf = {0, LARDER_LOG_INFO};
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static int stderr_is_journal_stream(const char *js)
{
    unsigned long long dev, ino;
    struct stat st;
    if (sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static void log_setup(void)
{
    const char *js = getenv("JOURNAL_STREAM"), *ns = getenv("NOTIFY_SOCKET");
    /* sd_journal_send() silently drops lines when journald is absent (a container with NOTIFY_SOCKET set) */
    log_conf.journal = ((ns && *ns) || (js && *js && stderr_is_journal_stream(js))) &&
                       access("/run/systemd/journal/socket", W_OK) == 0;
    const char *lv = getenv("LARDER_LOG_LEVEL");
    if (!lv || !*lv)
        return;
    if (!strcasecmp(lv, "err") || !strcasecmp(lv, "error"))
        log_conf.threshold = LARDER_LOG_ERR;
    else if (!strcasecmp(lv, "warn") || !strcasecmp(lv, "warning"))
        log_conf.threshold = LARDER_LOG_WARN;
    else if (!strcasecmp(lv, "info"))
        log_conf.threshold = LARDER_LOG_INFO;
    else if (!strcasecmp(lv, "debug"))
        log_conf.threshold = LARDER_LOG_DEBUG;
    else
        fprintf(stderr, "larder: LARDER_LOG_LEVEL=%.32s is not one of err, warn, info, debug; using info\n", lv);
}

void larder_log_init(void)
{
    pthread_once(&log_once, log_setup);
}

static const char *level_name(int level)
{
    switch (level) {
    case LARDER_LOG_ERR:
        return "err";
    case LARDER_LOG_WARN:
        return "warn";
    case LARDER_LOG_INFO:
        return "info";
    default:
        return level < LARDER_LOG_ERR ? "crit" : level == 5 ? "notice" : "debug";
    }
}

/* a bounded writer: appends never overflow, the last bytes are kept for the NUL (and the newline) */
typedef struct {
    char *p;
    size_t len, cap;
} linebuf_t;

static void lb_raw(linebuf_t *b, const char *s, size_t n)
{
    if (b->len >= b->cap)
        return;
    size_t room = b->cap - b->len;
    if (n > room)
        n = room;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void lb_escaped(linebuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && b->len < b->cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            lb_raw(b, "\\\\", 2);
        } else if (c < 0x20 || c >= 0x7f) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
            lb_raw(b, e, 4);
        } else {
            lb_raw(b, (const char *)&c, 1);
        }
    }
}

static void lb_str(linebuf_t *b, const char *s)
{
    lb_escaped(b, s ? s : "-", s ? strlen(s) : 1);
}

/* a decimal number, without printf (it runs once per request) */
static void lb_u64(linebuf_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    lb_raw(b, tmp + i, sizeof(tmp) - i);
}

static void emit_stderr(int level, const char *msg, size_t len)
{
    /* the timestamp is formatted once a second per thread (a request log line per hit made gmtime + strftime show
     * in profiles), and the line is put together here and written with one write(2), so concurrent lines never
     * interleave */
    static __thread time_t ts_at = (time_t)-1;
    static __thread char ts[32];
    static __thread size_t tslen;
    time_t now = time(NULL);
    if (now != ts_at) {
        struct tm tm;
        tslen = gmtime_r(&now, &tm) ? strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm) : 0;
        if (tslen == 0) {
            ts[0] = '-';
            tslen = 1;
        }
        ts_at = now;
    }
    char line[LINE_MAX_BYTES + 64];
    linebuf_t b = {line, 0, sizeof(line) - 1}; /* the last byte is kept for the newline */
    const char *lv = level_name(level);
    lb_raw(&b, ts, tslen);
    lb_raw(&b, " ", 1);
    lb_raw(&b, lv, strlen(lv));
    lb_raw(&b, " ", 1);
    lb_raw(&b, msg, len);
    line[b.len++] = '\n';
    for (size_t off = 0; off < b.len;) {
        ssize_t w = write(STDERR_FILENO, line + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

static int enabled(int level)
{
    larder_log_init();
    return level <= log_conf.threshold;
}

/* one journal field "NAME=value" as an iovec; the value is already safe (escaped or numeric) */
static int field(struct iovec *iov, char *buf, size_t buflen, const char *name, const char *value)
{
    int n = snprintf(buf, buflen, "%s=%s", name, value);
    iov->iov_base = buf;
    iov->iov_len = n < 0 ? 0 : (size_t)n < buflen ? (size_t)n : buflen - 1;
    return 1;
}

void larder_log(int level, const char *fmt, ...)
{
    if (!enabled(level))
        return;
    char raw[LINE_MAX_BYTES], msg[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t rawlen = (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1;
    linebuf_t b = {msg, 0, sizeof(msg) - 1};
    lb_escaped(&b, raw, rawlen);
    msg[b.len] = '\0';
    if (log_conf.journal) {
        char prio[16];
        snprintf(prio, sizeof(prio), "%d", level);
        if (sd_journal_send("PRIORITY=%s", prio, "MESSAGE=%s", msg, "SYSLOG_IDENTIFIER=larder", NULL) >= 0)
            return;
    }
    emit_stderr(level, msg, b.len);
}

void larder_log_request(const char *proto, const char *method, const char *path, int status, const char *cache_status,
                        uint64_t bytes, int64_t upstream_ms, const char *note)
{
    larder_log_request_at(LARDER_LOG_INFO, proto, method, path, status, cache_status, bytes, upstream_ms, note);
}

void larder_log_request_at(int level, const char *proto, const char *method, const char *path, int status,
                           const char *cache_status, uint64_t bytes, int64_t upstream_ms, const char *note)
{
    if (status >= 500)
        level = LARDER_LOG_WARN;
    if (!enabled(level))
        return;
    /* both buffers start with their journal field name so they can be handed to sd_journal_sendv as they are */
    static const char mpfx[] = "MESSAGE=", ppfx[] = "LARDER_PATH=";
    char mbuf[LINE_MAX_BYTES], pbuf[4096], ups[24];
    if (upstream_ms >= 0) {
        linebuf_t ub = {ups, 0, sizeof(ups) - 1};
        lb_u64(&ub, (uint64_t)upstream_ms);
        ups[ub.len] = '\0';
    } else {
        ups[0] = '-';
        ups[1] = '\0';
    }
    linebuf_t pb = {pbuf, 0, sizeof(pbuf) - 1};
    lb_raw(&pb, ppfx, sizeof(ppfx) - 1);
    lb_str(&pb, path);
    pbuf[pb.len] = '\0';
    const char *epath = pbuf + sizeof(ppfx) - 1;

    linebuf_t b = {mbuf, 0, sizeof(mbuf) - 1};
    lb_raw(&b, mpfx, sizeof(mpfx) - 1);
    lb_str(&b, proto);
    lb_raw(&b, " ", 1);
    lb_str(&b, method);
    lb_raw(&b, " ", 1);
    lb_raw(&b, epath, strlen(epath));
    lb_raw(&b, " ", 1);
    if (status < 0) {
        lb_raw(&b, "-", 1);
        status = -status;
    }
    lb_u64(&b, (uint64_t)status);
    lb_raw(&b, " ", 1);
    lb_str(&b, cache_status);
    lb_raw(&b, " bytes=", 7);
    lb_u64(&b, bytes);
    lb_raw(&b, " upstream_ms=", 13);
    lb_raw(&b, ups, strlen(ups));
    if (note && *note) {
        lb_raw(&b, " ", 1);
        lb_str(&b, note);
    }
    mbuf[b.len] = '\0';
    const char *msg = mbuf + sizeof(mpfx) - 1;

    if (log_conf.journal) {
        /* proto and cache status are our own constants; escaped all the same */
        char eproto[48], ecache[48];
        linebuf_t e1 = {eproto, 0, sizeof(eproto) - 1}, e2 = {ecache, 0, sizeof(ecache) - 1};
        lb_str(&e1, proto);
        lb_str(&e2, cache_status);
        eproto[e1.len] = ecache[e2.len] = '\0';
        char sstatus[16], sbytes[24], slevel[8];
        snprintf(slevel, sizeof(slevel), "%d", level);
        snprintf(sstatus, sizeof(sstatus), "%d", status);
        snprintf(sbytes, sizeof(sbytes), "%" PRIu64, bytes);
        char f[6][80];
        struct iovec iov[9];
        int k = 0;
        k += field(&iov[k], f[k], sizeof(f[k]), "PRIORITY", slevel);
        k += field(&iov[k], f[k], sizeof(f[k]), "LARDER_PROTOCOL", eproto);
        k += field(&iov[k], f[k], sizeof(f[k]), "LARDER_CACHE", ecache);
        k += field(&iov[k], f[k], sizeof(f[k]), "LARDER_STATUS", sstatus);
        k += field(&iov[k], f[k], sizeof(f[k]), "LARDER_BYTES", sbytes);
        if (upstream_ms >= 0)
            k += field(&iov[k], f[k], sizeof(f[k]), "LARDER_UPSTREAM_MS", ups);
        iov[k++] = (struct iovec){mbuf, b.len};
        iov[k++] = (struct iovec){pbuf, pb.len};
        iov[k++] = (struct iovec){(void *)"SYSLOG_IDENTIFIER=larder", 24};
        if (sd_journal_sendv(iov, k) >= 0)
            return;
    }
    emit_stderr(level, msg, strlen(msg));
}
