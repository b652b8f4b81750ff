/* tar.h - POSIX tar (ustar, with pax extended headers) as bundles use it: a header writer and an incremental
 * reader of untrusted bytes. The reader takes bytes in pieces of any size (network chunks) and reports each
 * regular file's name, size and data as it passes; it keeps at most one header block and one pax header (bounded)
 * in memory, never a member's data. */
#ifndef LARDER_TAR_H
#define LARDER_TAR_H

#include <stddef.h>
#include <stdint.h>

#define LARDER_TAR_BLOCK ((size_t)512)
#define LARDER_TAR_NAME_MAX 256   /* longest member name the reader takes (pax path included) */
#define LARDER_TAR_PAX_MAX 4096   /* largest pax extended header the reader takes */

/* ---- writing ---- */

/* The header(s) of a regular file: one ustar block, preceded by a pax extended header (2 blocks) when the name
 * does not fit ustar's 100 bytes or the size its 11 octal digits. out must have room for 3 blocks; returns the
 * bytes written (512 or 1536), or 0 when name is longer than LARDER_TAR_NAME_MAX. */
size_t larder_tar_header(char *out, const char *name, uint64_t size, uint64_t mtime);
/* bytes of zero padding after a member of `size` bytes */
static inline size_t larder_tar_padding(uint64_t size)
{
    return (size_t)((LARDER_TAR_BLOCK - size % LARDER_TAR_BLOCK) % LARDER_TAR_BLOCK);
}
/* the size on the wire of a member (headers, data, padding) */
uint64_t larder_tar_member_size(const char *name, uint64_t size);

/* ---- reading ---- */

typedef struct larder_tar_cb {
    /* a regular file begins; non-zero refuses it (the callback fills the reader's error with larder_tar_fail) */
    int (*begin)(void *ctx, const char *name, uint64_t size);
    /* a piece of its data (pieces add up to size); non-zero stops */
    int (*data)(void *ctx, const unsigned char *p, size_t n);
    /* its last byte arrived; non-zero stops */
    int (*end)(void *ctx);
    void *ctx;
} larder_tar_cb_t;

typedef struct larder_tar_reader {
    larder_tar_cb_t cb;
    int state;              /* internal */
    uint64_t offset;        /* bytes of the archive consumed */
    uint64_t remain;        /* data bytes of the current member still to come */
    size_t pad;             /* padding bytes still to skip */
    unsigned char block[LARDER_TAR_BLOCK];
    size_t have;            /* bytes of block filled */
    char *pax;              /* the pending pax header (malloc'd) */
    size_t pax_len, pax_have;
    char pax_path[LARDER_TAR_NAME_MAX + 1];
    uint64_t pax_size;
    int pax_has_path, pax_has_size, pax_is_global;
    int zero_blocks;        /* consecutive zero blocks seen */
    char error[512];
} larder_tar_reader_t;

void larder_tar_reader_init(larder_tar_reader_t *r, const larder_tar_cb_t *cb);
void larder_tar_reader_free(larder_tar_reader_t *r);
/* feed the next n bytes: 0, or -1 with r->error filled (the archive is refused; feed nothing more). Bytes after the
 * end-of-archive marker are refused too (a bundle is one archive, nothing appended). */
int larder_tar_feed(larder_tar_reader_t *r, const unsigned char *p, size_t n);
/* 1 when the end-of-archive marker (two zero blocks) was read */
int larder_tar_done(const larder_tar_reader_t *r);
/* for callbacks: record why the archive is refused (the first message wins) and return -1 */
int larder_tar_fail(larder_tar_reader_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
