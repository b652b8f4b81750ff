/* apt_version.c - the Debian version ordering (deb-version(7); dpkg's verrevcmp, which apt implements the same way):
 * a version is [epoch:]upstream[-revision]; the epoch is compared as a number, then upstream, then revision, each
 * by alternating runs: a run of non-digits compared character by character ('~' before the end of the string,
 * the end before letters, letters before everything else), then a run of digits compared as a number (leading
 * zeros ignored, any length). A missing epoch is 0 and a missing revision compares equal to "0". Works on counted
 * strings so callers can compare fields in place. */
#include "apt_version.h"

#include <string.h>

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* the weight of one character in a non-digit run (digits end the run: 0, like the end of the string) */
static int order(int c)
{
    if (is_digit(c))
        return 0;
    if (is_alpha(c))
        return c;
    if (c == '~')
        return -1;
    return c + 256; /* a NUL byte too: only the end of the run weighs 0 */
}

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

/* dpkg's verrevcmp on [a, ae) and [b, be) */
static int fragment_cmp(const char *a, const char *ae, const char *b, const char *be)
{
    while (a < ae || b < be) {
        int first_diff = 0;
        while ((a < ae && !is_digit((unsigned char)*a)) || (b < be && !is_digit((unsigned char)*b))) {
            int ac = a < ae ? order((unsigned char)*a) : 0;
            int bc = b < be ? order((unsigned char)*b) : 0;
            if (ac != bc)
                return sign(ac - bc);
            /* equal weights: both are non-digits here (the end weighs 0, a non-digit never does) */
            a++;
            b++;
        }
        while (a < ae && *a == '0')
            a++;
        while (b < be && *b == '0')
            b++;
        while (a < ae && b < be && is_digit((unsigned char)*a) && is_digit((unsigned char)*b)) {
            if (!first_diff)
                first_diff = *a - *b;
            a++;
            b++;
        }
        if (a < ae && is_digit((unsigned char)*a))
            return 1;
        if (b < be && is_digit((unsigned char)*b))
            return -1;
        if (first_diff)
            return sign(first_diff);
    }
    return 0;
}

typedef struct parts {
    const char *e, *ee, *u, *ue, *r, *re;
} parts_t;

static void split(const char *s, size_t len, parts_t *p)
{
    const char *end = s + len;
    const char *colon = memchr(s, ':', len);
    int epoch = colon != NULL && colon > s;
    for (const char *c = s; epoch && c < colon; c++)
        epoch = is_digit((unsigned char)*c);
    if (epoch) {
        p->e = s;
        p->ee = colon;
        s = colon + 1;
    } else {
        p->e = p->ee = s; /* empty: 0 */
    }
    const char *dash = NULL;
    for (const char *c = s; c < end; c++)
        if (*c == '-')
            dash = c;
    p->u = s;
    p->ue = dash ? dash : end;
    p->r = dash ? dash + 1 : end;
    p->re = end;
}

int larder_apt_vercmp_n(const char *a, size_t alen, const char *b, size_t blen)
{
    parts_t pa, pb;
    split(a, alen, &pa);
    split(b, blen, &pb);
    int r = fragment_cmp(pa.e, pa.ee, pb.e, pb.ee);
    if (!r)
        r = fragment_cmp(pa.u, pa.ue, pb.u, pb.ue);
    if (!r)
        r = fragment_cmp(pa.r, pa.re, pb.r, pb.re);
    return r;
}

int larder_apt_vercmp(const char *a, const char *b)
{
    return larder_apt_vercmp_n(a, strlen(a), b, strlen(b));
}

int larder_apt_relation_ok(const char *have, const char *op, const char *want)
{
    int c = larder_apt_vercmp(have, want);
    if (!strcmp(op, "<<"))
        return c < 0;
    if (!strcmp(op, "<=") || !strcmp(op, "<"))
        return c <= 0;
    if (!strcmp(op, "="))
        return c == 0;
    if (!strcmp(op, ">=") || !strcmp(op, ">"))
        return c >= 0;
    if (!strcmp(op, ">>"))
        return c > 0;
    return -1;
}
