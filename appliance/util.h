/* util.h - small helpers shared by every module: digests, time, strings, files. */
#ifndef LARDER_UTIL_H
#define LARDER_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define LARDER_SHA256_HEX 65 /* 64 hex chars + NUL */

/* wall clock in seconds / milliseconds */
uint64_t larder_now(void);
uint64_t larder_now_ms(void);

/* 1 if s is exactly 64 lower-case hex characters */
int larder_is_sha256_hex(const char *s);
/* raw 32-byte digest to lower-case hex (out has LARDER_SHA256_HEX bytes) */
void larder_hex(const unsigned char *raw, size_t n, char *out);
/* 2n hex digits (either case) to n raw bytes; 0, or -1 when a character is not a hex digit */
int larder_unhex(const char *hex, size_t n, unsigned char *out);
/* OpenSSL's sha256 implementation, fetched once per process (an EVP_sha256() init fetches it anew each time, under
 * the provider store's lock: measurable on every small hit); returns const EVP_MD * */
const struct evp_md_st *larder_sha256_md(void);
/* digest of a whole file with alg (const EVP_MD *) into md (EVP_MAX_MD_SIZE bytes), its length in *mdlen; 0, or
 * -errno */
int larder_digest_file(const char *path, const struct evp_md_st *alg, unsigned char *md, unsigned int *mdlen);
/* sha256 of a whole file, hex; 0 on success, -errno on failure */
int larder_sha256_file(const char *path, char out[LARDER_SHA256_HEX]);

/* mkdir -p; 0 or -errno */
int larder_mkdirs(const char *path, int mode);
/* read a whole file into a malloc'd NUL-terminated buffer; NULL on error (errno set) */
char *larder_read_file(const char *path, size_t *len);
/* name, relative to the directory of file (absolute names as they are): a file named inside another one */
void larder_path_beside(const char *file, const char *name, char *out, size_t outlen);
/* the first len bytes of fd (pread, from offset 0) into a malloc'd NUL-terminated buffer; 0, or -1 */
int larder_pread_all(int fd, uint64_t len, char **out);
/* write all n bytes (retrying short writes and EINTR); 0, or -1 */
int larder_write_all(int fd, const char *p, size_t n);

/* format an HTTP date (RFC 7231) into out (at least 30 bytes) */
void larder_http_date(uint64_t t, char *out, size_t outlen);
/* parse an HTTP date; 0 on failure */
uint64_t larder_parse_http_date(const char *s, size_t len);

/* 1 when a raw request path is safe to append to an upstream prefix: no dot or empty segments, no
 * backslashes or control characters, no percent-encoded '/', '\\', '.', '%' or control characters, no
 * malformed escapes. Otherwise 0 with the reason in err. */
int larder_path_is_safe(const char *p, size_t len, char *err, size_t errlen);

/* a pin set name: [A-Za-z0-9._-]{1,64} */
int larder_pin_set_name_ok(const char *s, size_t len);

/* human readable size: "1.5 GiB" */
void larder_format_size(uint64_t n, char *out, size_t outlen);

#endif
