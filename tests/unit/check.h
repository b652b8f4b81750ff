/* check.h - the one assertion of the unit tests: a failed CHECK prints file, line and expression and counts in
 * `failures`; each test's main() returns non-zero when any failed. Included by exactly one .c file per test. */
#ifndef LARDER_TEST_CHECK_H
#define LARDER_TEST_CHECK_H

#include <stdio.h>

static int failures;
#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                                      \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

#endif
