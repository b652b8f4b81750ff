#!/usr/bin/env bash
# test_harness.sh - the assertions of lib.sh judged by themselves: a helper must not fail a check that holds.
# Regression (issue 10, item 16): assert_match piped printf into `grep -q`; under pipefail the writer died of SIGPIPE
# when grep stopped at the first match, and the check failed although the text matched ("expected /^x: MISS$/ in:
# x: MISS"). A haystack much larger than a pipe buffer, with the match on its first line, made it fail every time.
. "$(dirname "$0")/lib.sh"

big=$(printf 'x-larder-cache: MISS\n'; head -c 400000 /dev/zero | tr '\0' 'a')
# run each in a subshell: a wrongly failing assertion exits the subshell, not this script
( assert_match "$big" '^x-larder-cache: MISS$' "match on the first line of 400 KB" ) ||
    fail "assert_match failed on a haystack that matches on its first line"
( assert_match "$(printf 'a\nb\nx-larder-cache: HIT\n')" '^x-larder-cache: HIT$' "match on a later line" ) ||
    fail "assert_match failed on a later line"
if ( CONTINUE_ON_FAIL=0 assert_match "$big" '^x-larder-cache: HIT$' "must not match" ) 2>/dev/null; then
    fail "assert_match passed on a haystack that does not match"
fi
T_FAILED=0 # the deliberately failing assertion above ran in a subshell; nothing in this shell failed
pass "assert_match"

# assert_contains / assert_header on large input likewise
( assert_contains "$big" "x-larder-cache: MISS" ) || fail "assert_contains on 400 KB"

# the set-up contract (issue 10, item 17): `make run` installs only what building and running need; the test peers
# (nginx, apt-cacher-ng, docker-registry, ruby, clang, ...) come with `make test`
run_deps=$(make -s -n -C "$REPO" run 2>/dev/null | grep install-deps || true)
assert_contains "$run_deps" "install-deps build" "make run installs the build dependencies"
assert_not_contains "$(grep -v 'install-deps build' <<<"$run_deps")" "install-deps" "make run installs nothing else"
test_deps=$(make -s -n -C "$REPO" test 2>/dev/null | grep install-deps || true)
assert_match "$test_deps" 'install-deps$' "make test installs every dependency"
finish
