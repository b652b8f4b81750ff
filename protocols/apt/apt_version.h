/* apt_version.h - Debian version numbers as dpkg and apt order them ([epoch:]upstream[-revision], '~' before
 * anything, letters before other characters, digit runs compared as numbers), and dependency relations
 * (<<, <=, =, >=, >>). Pure functions, no allocation; used by the apt seed closure to pick apt's candidate. */
#ifndef LARDER_APT_VERSION_H
#define LARDER_APT_VERSION_H

#include <stddef.h>

/* <0, 0, >0 as a sorts before, equal to, after b (dpkg --compare-versions). Never fails: text that is not a valid
 * version still gets a consistent order (an epoch is only taken when everything before the first ':' is digits). */
int larder_apt_vercmp(const char *a, const char *b);
/* the same on counted strings (no NUL needed) */
int larder_apt_vercmp_n(const char *a, size_t alen, const char *b, size_t blen);

/* whether version `have` satisfies "(op want)": op is one of << <= = >= >> (and the obsolete < and >, meaning <=
 * and >=, as dpkg reads them). 1 yes, 0 no, -1 unknown operator. */
int larder_apt_relation_ok(const char *have, const char *op, const char *want);

#endif
