/* tar.c - the POSIX tar subset that bundles are made of (see tar.h and docs/bundles.md).
 *
 * Writing: one ustar header per regular file (mode 0644, owner 0/0 "larder"), preceded by a pax extended header
 * ("path=", "size=") only when the name or the size does not fit ustar. Reading: a state machine fed with pieces
 * of any size, for bytes that come from the network: every header's checksum is checked, sizes are octal only
 * (or pax), names are at most LARDER_TAR_NAME_MAX bytes without NUL, and only regular files, directories (skipped)
 * and pax headers are taken: links, devices, GNU long names and sparse files are refused, as is anything after
 * the end-of-archive marker except the zero padding `tar` adds to fill its last record. It never touches the file
 * system: the callbacks decide what a member's bytes become. */
#include "tar.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_HEADER, S_PAX, S_DATA, S_PAD, S_END, S_FAILED };

/* ---- writing ---- */

static void put_octal(char *field, size_t width, uint64_t v)
{
    /* width-1 digits and a NUL */
    snprintf(field, width, "%0*" PRIo64, (int)(width - 1), v);
}

static void finish_block(char *b)
{
    memset(b + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < LARDER_TAR_BLOCK; i++)
        sum += (unsigned char)b[i];
    snprintf(b + 148, 8, "%06o", sum); /* six digits, NUL, and the space already there */
    b[155] = ' ';
}

static void ustar_block(char *b, const char *name, uint64_t size, uint64_t mtime, char type)
{
    memset(b, 0, LARDER_TAR_BLOCK);
    size_t nl = strlen(name);
    memcpy(b, name, nl < 100 ? nl : 100);
    put_octal(b + 100, 8, 0644);
    put_octal(b + 108, 8, 0);
    put_octal(b + 116, 8, 0);
    put_octal(b + 124, 12, size < 077777777777ULL ? size : 0);
    put_octal(b + 136, 12, mtime & 077777777777ULL);
    b[156] = type;
    static const char magic[8] = {'u', 's', 't', 'a', 'r', 0, '0', '0'}; /* magic and version */
    memcpy(b + 257, magic, sizeof(magic));
    snprintf(b + 265, 32, "larder"); /* uname, gname */
    snprintf(b + 297, 32, "larder");
    finish_block(b);
}

/* "<len> key=value\n", where len counts the whole record, its own digits included */
static size_t pax_record(char *out, size_t room, const char *key, const char *val)
{
    size_t body = 1 + strlen(key) + 1 + strlen(val) + 1; /* ' ' key '=' val '\n' */
    size_t len = body + 1;
    while (snprintf(NULL, 0, "%zu", len) + body != len)
        len++;
    int n = snprintf(out, room, "%zu %s=%s\n", len, key, val);
    return n > 0 && (size_t)n < room ? (size_t)n : 0;
}

static int needs_pax(const char *name, uint64_t size)
{
    return strlen(name) > 100 || size >= 077777777777ULL;
}

size_t larder_tar_header(char *out, const char *name, uint64_t size, uint64_t mtime)
{
    if (strlen(name) > LARDER_TAR_NAME_MAX)
        return 0;
    if (!needs_pax(name, size)) {
        ustar_block(out, name, size, mtime, '0');
        return LARDER_TAR_BLOCK;
    }
    char recs[2 * LARDER_TAR_BLOCK], num[32];
    size_t n = 0;
    if (strlen(name) > 100)
        n += pax_record(recs + n, sizeof(recs) - n, "path", name);
    snprintf(num, sizeof(num), "%" PRIu64, size);
    if (size >= 077777777777ULL)
        n += pax_record(recs + n, sizeof(recs) - n, "size", num);
    char short_name[101];
    snprintf(short_name, sizeof(short_name), "PaxHeaders/%.88s", name + (strlen(name) > 88 ? strlen(name) - 88 : 0));
    ustar_block(out, short_name, n, mtime, 'x');
    /* the records (a path of at most LARDER_TAR_NAME_MAX bytes and a size) fit one block */
    memset(out + LARDER_TAR_BLOCK, 0, LARDER_TAR_BLOCK);
    memcpy(out + LARDER_TAR_BLOCK, recs, n < LARDER_TAR_BLOCK ? n : LARDER_TAR_BLOCK);
    /* the ustar name is cut; readers take the pax path */
    ustar_block(out + 2 * LARDER_TAR_BLOCK, name + (strlen(name) > 100 ? strlen(name) - 100 : 0), size, mtime, '0');
    return 3 * LARDER_TAR_BLOCK;
}

uint64_t larder_tar_member_size(const char *name, uint64_t size)
{
    return (needs_pax(name, size) ? 3 * LARDER_TAR_BLOCK : LARDER_TAR_BLOCK) + size + larder_tar_padding(size);
}

/* ---- reading ---- */

void larder_tar_reader_init(larder_tar_reader_t *r, const larder_tar_cb_t *cb)
{
    memset(r, 0, sizeof(*r));
    r->cb = *cb;
    r->state = S_HEADER;
}

void larder_tar_reader_free(larder_tar_reader_t *r)
{
    free(r->pax);
    r->pax = NULL;
}

int larder_tar_done(const larder_tar_reader_t *r) { return r->state == S_END; }

int larder_tar_fail(larder_tar_reader_t *r, const char *fmt, ...)
{
    if (!r->error[0]) { /* the first message wins */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof(r->error), fmt, ap);
        va_end(ap);
    }
    r->state = S_FAILED;
    return -1;
}

/* an octal field: digits, optionally led by spaces, ended by NUL or space; -1 when it is anything else */
static int parse_octal(const unsigned char *f, size_t width, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < width && f[i] == ' ')
        i++;
    size_t digits = 0;
    for (; i < width && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v > (UINT64_MAX >> 3))
            return -1;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    if (!digits)
        return -1;
    for (; i < width; i++)
        if (f[i] != 0 && f[i] != ' ')
            return -1;
    *out = v;
    return 0;
}

static int is_zero_block(const unsigned char *b)
{
    for (size_t i = 0; i < LARDER_TAR_BLOCK; i++)
        if (b[i])
            return 0;
    return 1;
}

/* field of at most width bytes, NUL-terminated or full */
static size_t field_len(const unsigned char *f, size_t width)
{
    const unsigned char *z = memchr(f, 0, width);
    return z ? (size_t)(z - f) : width;
}

static int name_ok(const char *name, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

/* "len key=value\n" records; only path and size are used */
static int parse_pax(larder_tar_reader_t *r)
{
    const char *p = r->pax, *end = r->pax + r->pax_len;
    while (p < end) {
        if (*p == 0) { /* zero padding at the end of the data is tolerated */
            for (; p < end; p++)
                if (*p)
                    return larder_tar_fail(r, "malformed pax header at byte %" PRIu64, r->offset);
            break;
        }
        size_t len = 0;
        const char *q = p;
        while (q < end && *q >= '0' && *q <= '9' && len < LARDER_TAR_PAX_MAX + 1)
            len = len * 10 + (size_t)(*q++ - '0');
        if (q == p || q >= end || *q != ' ' || len < 5 || len > (size_t)(end - p) || p[len - 1] != '\n')
            return larder_tar_fail(r, "malformed pax header record at byte %" PRIu64, r->offset);
        const char *key = q + 1, *rec_end = p + len - 1;
        const char *eq = memchr(key, '=', (size_t)(rec_end - key));
        if (!eq || eq == key)
            return larder_tar_fail(r, "malformed pax header record at byte %" PRIu64, r->offset);
        size_t kl = (size_t)(eq - key), vl = (size_t)(rec_end - eq - 1);
        const char *val = eq + 1;
        if (kl == 4 && memcmp(key, "path", 4) == 0) {
            if (vl > LARDER_TAR_NAME_MAX || !name_ok(val, vl) || memchr(val, 0, vl))
                return larder_tar_fail(r, "pax path too long or not printable at byte %" PRIu64, r->offset);
            memcpy(r->pax_path, val, vl);
            r->pax_path[vl] = 0;
            r->pax_has_path = 1;
        } else if (kl == 4 && memcmp(key, "size", 4) == 0) {
            uint64_t v = 0;
            if (vl == 0 || vl > 19)
                return larder_tar_fail(r, "bad pax size at byte %" PRIu64, r->offset);
            for (size_t i = 0; i < vl; i++) {
                if (val[i] < '0' || val[i] > '9')
                    return larder_tar_fail(r, "bad pax size at byte %" PRIu64, r->offset);
                v = v * 10 + (uint64_t)(val[i] - '0');
            }
            r->pax_size = v;
            r->pax_has_size = 1;
        }
        p += len;
    }
    return 0;
}

/* a complete header block is in r->block */
static int take_header(larder_tar_reader_t *r)
{
    const unsigned char *b = r->block;
    uint64_t hdr_at = r->offset - LARDER_TAR_BLOCK;
    if (is_zero_block(b)) {
        if (r->pax_has_path || r->pax_has_size || r->pax_len)
            return larder_tar_fail(r, "pax header without a file at byte %" PRIu64, hdr_at);
        if (++r->zero_blocks == 2)
            r->state = S_END;
        return 0;
    }
    if (r->zero_blocks)
        return larder_tar_fail(r, "a lone zero block before byte %" PRIu64 ": not a tar archive", hdr_at);
    if (memcmp(b + 257, "ustar", 5) != 0)
        return larder_tar_fail(r, "no ustar header at byte %" PRIu64 ": not a tar archive (or not a larder bundle)",
                               hdr_at);
    uint64_t want;
    if (parse_octal(b + 148, 8, &want) < 0)
        return larder_tar_fail(r, "bad header checksum field at byte %" PRIu64, hdr_at);
    uint64_t sum = 0;
    for (size_t i = 0; i < LARDER_TAR_BLOCK; i++)
        sum += (i >= 148 && i < 156) ? ' ' : b[i];
    if (sum != want)
        return larder_tar_fail(r, "header checksum mismatch at byte %" PRIu64 ": the archive is damaged", hdr_at);
    uint64_t size;
    if (parse_octal(b + 124, 12, &size) < 0)
        return larder_tar_fail(r, "bad size field at byte %" PRIu64, hdr_at);
    char type = (char)b[156];
    if (type == 'x' || type == 'g') {
        if (r->pax_len || r->pax_has_path || r->pax_has_size)
            return larder_tar_fail(r, "two pax headers in a row at byte %" PRIu64, hdr_at);
        if (size == 0 || size > LARDER_TAR_PAX_MAX)
            return larder_tar_fail(r, "pax header of %" PRIu64 " bytes at byte %" PRIu64 " (at most %d)", size, hdr_at,
                                   LARDER_TAR_PAX_MAX);
        r->pax = malloc((size_t)size);
        if (!r->pax)
            return larder_tar_fail(r, "out of memory");
        r->pax_len = (size_t)size;
        r->pax_have = 0;
        r->pax_is_global = type == 'g';
        r->pad = larder_tar_padding(size);
        r->state = S_PAX;
        return 0;
    }
    char name[LARDER_TAR_NAME_MAX + 1];
    if (r->pax_has_path) {
        snprintf(name, sizeof(name), "%s", r->pax_path);
    } else {
        size_t nl = field_len(b, 100), pl = field_len(b + 345, 155);
        if (pl && pl + 1 + nl <= LARDER_TAR_NAME_MAX)
            snprintf(name, sizeof(name), "%.*s/%.*s", (int)pl, (const char *)b + 345, (int)nl, (const char *)b);
        else if (pl)
            return larder_tar_fail(r, "member name too long at byte %" PRIu64, hdr_at);
        else
            snprintf(name, sizeof(name), "%.*s", (int)nl, (const char *)b);
    }
    if (r->pax_has_size)
        size = r->pax_size;
    r->pax_has_path = r->pax_has_size = 0;
    if (!name_ok(name, strlen(name)))
        return larder_tar_fail(r, "member with an empty or unprintable name at byte %" PRIu64, hdr_at);
    if (type == '5') { /* a directory: nothing to do */
        if (size)
            return larder_tar_fail(r, "directory %s with data at byte %" PRIu64, name, hdr_at);
        return 0;
    }
    if (type != '0' && type != 0)
        return larder_tar_fail(r, "member %s at byte %" PRIu64 " is not a regular file (type '%c'): refused", name,
                               hdr_at, type >= 0x20 && type < 0x7f ? type : '?');
    r->remain = size;
    r->pad = larder_tar_padding(size);
    if (r->cb.begin && r->cb.begin(r->cb.ctx, name, size))
        return r->state == S_FAILED ? -1 : larder_tar_fail(r, "member %s refused", name);
    r->state = S_DATA;
    if (size == 0) {
        r->state = S_HEADER;
        if (r->cb.end && r->cb.end(r->cb.ctx))
            return r->state == S_FAILED ? -1 : larder_tar_fail(r, "member %s refused", name);
    }
    return 0;
}

int larder_tar_feed(larder_tar_reader_t *r, const unsigned char *p, size_t n)
{
    while (n > 0) {
        switch (r->state) {
        case S_FAILED:
            return -1;
        case S_END:
            for (size_t i = 0; i < n; i++)
                if (p[i])
                    return larder_tar_fail(r, "data after the end of the archive at byte %" PRIu64 ": refused",
                                           r->offset + i);
            r->offset += n;
            return 0;
        case S_HEADER: {
            size_t take = LARDER_TAR_BLOCK - r->have;
            if (take > n)
                take = n;
            memcpy(r->block + r->have, p, take);
            r->have += take;
            r->offset += take;
            p += take;
            n -= take;
            if (r->have == LARDER_TAR_BLOCK) {
                r->have = 0;
                if (take_header(r) < 0)
                    return -1;
            }
            break;
        }
        case S_PAX: {
            size_t take = r->pax_len - r->pax_have;
            if (take > n)
                take = n;
            memcpy(r->pax + r->pax_have, p, take);
            r->pax_have += take;
            r->offset += take;
            p += take;
            n -= take;
            if (r->pax_have == r->pax_len) {
                int g = r->pax_is_global;
                int rc = g ? 0 : parse_pax(r); /* global headers hold nothing a bundle needs */
                free(r->pax);
                r->pax = NULL;
                r->pax_len = r->pax_have = 0;
                if (rc < 0)
                    return -1;
                r->state = r->pad ? S_PAD : S_HEADER;
            }
            break;
        }
        case S_DATA: {
            size_t take = r->remain < n ? (size_t)r->remain : n;
            if (r->cb.data && r->cb.data(r->cb.ctx, p, take))
                return r->state == S_FAILED ? -1 : larder_tar_fail(r, "member data refused");
            r->remain -= take;
            r->offset += take;
            p += take;
            n -= take;
            if (r->remain == 0) {
                r->state = r->pad ? S_PAD : S_HEADER;
                if (r->cb.end && r->cb.end(r->cb.ctx))
                    return r->state == S_FAILED ? -1 : larder_tar_fail(r, "member refused");
            }
            break;
        }
        case S_PAD:
        default: {
            size_t take = r->pad < n ? r->pad : n;
            r->pad -= take;
            r->offset += take;
            p += take;
            n -= take;
            if (r->pad == 0)
                r->state = S_HEADER;
            break;
        }
        }
    }
    return r->state == S_FAILED ? -1 : 0;
}
