/* test_apt_version.c - the Debian version ordering and dependency relations, with the cases of dpkg's own test
 * suite (lib/dpkg/t/t-version.c) and deb-version(7), checked in both directions. */
#include "apt_version.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

static int sgn(int v)
{
    return (v > 0) - (v < 0);
}

/* a < b, a == b or a > b (want -1, 0, 1), and the reverse */
static void order(const char *a, const char *b, int want)
{
    int got = sgn(larder_apt_vercmp(a, b)), rev = sgn(larder_apt_vercmp(b, a));
    if (got != want || rev != -want) {
        fprintf(stderr, "vercmp(%s, %s) = %d, reverse %d, want %d\n", a, b, got, rev, want);
        failures++;
    }
}

static void test_order(void)
{
    /* dpkg t-version.c: test_version_compare */
    order("0:0-0", "0:0-0", 0);
    order("0:0.0-0", "0:0.0-0", 0);
    order("0:1-0", "0:0-0", 1);
    order("0:0-1", "0:0-0", 1);
    order("1:0-0", "0:0-0", 1);
    order("0:1", "0:1-0", 0); /* a missing revision equals "0" */
    order("1.0", "1.0-0", 0);
    order("1.0", "1.0-1", -1);
    order("1.0-1", "1.0", 1);
    order("1", "0:1", 0); /* a missing epoch is 0 */
    order("00:1", "0:1", 0);
    order("1:1", "2", 1); /* the epoch wins over everything */
    order("1:0.1", "0:99", 1);
    order("2:1.0", "10:0.1", -1); /* epochs are numbers, not strings */
    /* '~' sorts before everything, even the end */
    order("1.0~rc1", "1.0", -1);
    order("1.0~rc1", "1.0~rc2", -1);
    order("1.0~~", "1.0~", -1);
    order("1.0~~a", "1.0~~", 1);
    order("1.0~", "1.0", -1);
    order("1.0~beta", "1.0~~beta", 1);
    order("1.0-1~bpo1", "1.0-1", -1);
    order("2.0~rc1-1", "2.0-1", -1);
    /* letters sort before non-letters, the end before letters */
    order("1.0a", "1.0", 1);
    order("1.0a", "1.0+", -1);
    order("1.0+", "1.0.", -1); /* '+' (43) before '.' (46) */
    order("1.0a", "1.0b", -1);
    order("1.0Z", "1.0a", -1); /* ASCII among letters */
    order("a", "+", -1);
    order("1.0+dfsg", "1.0", 1);
    order("1.0+dfsg-1", "1.0-1", 1);
    /* digit runs are numbers */
    order("1.10", "1.9", 1);
    order("1.010", "1.10", 0);
    order("1.0001", "1.1", 0);
    order("123456789012345678901234567890", "123456789012345678901234567889", 1); /* no overflow */
    order("1.2.3", "1.2", 1);
    order("1.2", "1.2.", -1);
    /* the revision is after the last '-' */
    order("1-2-3", "1-2-4", -1);
    order("1-2-3", "1-3", 1); /* upstream "1-2" vs "1" */
    /* real Debian versions */
    order("7.88.1-10+deb12u5", "7.88.1-10+deb12u15", -1);
    order("7.88.1-10+deb12u15", "7.88.1-10", 1);
    order("2.36-9+deb12u4", "2.36-9+deb12u10", -1);
    order("1:2.38.1-5+deb12u3", "2.40", 1);
    order("3.0.11-1~deb12u2", "3.0.11-1", -1);
    order("3.0.11-1~deb12u2", "3.0.9-1", 1);
    order("1.2.13.dfsg-1", "1.2.13-1", 1);
    order("0.9.8+really0.9.7", "0.9.8", 1);
    /* odd input still gets a consistent order: a non-numeric "epoch" is part of the upstream version */
    order("a:1", "a:1", 0);
    order("", "", 0);
    order("", "0", 0);
    order("", "~", 1);
    order(":1", "1", 1); /* ':' is a character of the upstream version there */
    CHECK(larder_apt_vercmp_n("1.0zzz", 3, "1.0", 3) == 0);
    CHECK(larder_apt_vercmp_n("1.0\0x", 5, "1.0", 3) > 0); /* a NUL byte counts as a character */
}

static void test_relations(void)
{
    CHECK(larder_apt_relation_ok("1.0", ">=", "1.0") == 1);
    CHECK(larder_apt_relation_ok("1.0", ">>", "1.0") == 0);
    CHECK(larder_apt_relation_ok("1.1", ">>", "1.0") == 1);
    CHECK(larder_apt_relation_ok("1.0~rc1", ">=", "1.0") == 0);
    CHECK(larder_apt_relation_ok("1.0", "<<", "1.0") == 0);
    CHECK(larder_apt_relation_ok("1.0~rc1", "<<", "1.0") == 1);
    CHECK(larder_apt_relation_ok("1.0", "<=", "1.0-0") == 1);
    CHECK(larder_apt_relation_ok("1:0.1", "=", "1:0.1") == 1);
    CHECK(larder_apt_relation_ok("0.1", "=", "1:0.1") == 0);
    CHECK(larder_apt_relation_ok("1.0", "<", "1.0") == 1); /* obsolete: <= */
    CHECK(larder_apt_relation_ok("1.0", ">", "1.0") == 1); /* obsolete: >= */
    CHECK(larder_apt_relation_ok("1.0", "!=", "1.0") == -1);
    CHECK(larder_apt_relation_ok("1.0", "", "1.0") == -1);
}

int main(void)
{
    test_order();
    test_relations();
    if (failures) {
        fprintf(stderr, "test_apt_version: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_apt_version: ok\n");
    return 0;
}
